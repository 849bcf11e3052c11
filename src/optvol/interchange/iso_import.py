"""import-iso: an ISO 9660 image becomes a read-only volume, or a tree on a primary volume.

A new volume is *CD-ROM media when its files fit in 650 MB, else *DVD-ROM, media format
*ISO9660, its volume ID the image's volume identifier unless ``vol`` names one. It is
built in the library's staging area through ``Volume.mastering_writer`` (which keeps the
image's times, and the hidden flag of the files the image hides) and appears in the library
only once complete: a damaged or hostile image adds nothing. ``into`` copies the tree onto
an existing volume instead, through the user-program API (new dates, the volume rules
apply; a hidden file is made hidden after it is written), in one transaction.

The image's tree is walked twice and never held whole (``iso_read.py``): first to check
every name and measure what the volume needs, then to copy. Entries that are neither file
nor directory (Rock Ridge or UDF symbolic links, devices, FIFOs, sockets: a volume holds
none) are left out and listed in the result; the command then ends with exit 1 (OPV0705).
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from optvol import errors, media, model
from optvol.interchange import zisofs
from optvol.interchange.iso_read import Entry, ImageTree, damaged, read_tree
from optvol.library import Library
from optvol.model import MediaFormat, MediaType, Progress, VolumeType
from optvol.volume import Volume
from optvol.volume_rows import HIDDEN

READ_CHUNK = 1 << 20
SECTOR = 2048
IMPORT_THRESHOLD = 100  # a mastered disc is full by design
MAX_LISTED = 10_000  # skipped entries a result names (it counts them all): memory bounded on any image


@dataclass(frozen=True)
class ImportResult:
    """What import-iso added: a new volume, or a tree below ``path`` of an existing one."""

    file: str
    volume: str
    path: str
    media_type: str | None
    namespace: str
    files: int
    directories: int
    bytes: int
    skipped: int = 0  # entries that are neither file nor directory, left out
    skipped_entries: tuple[Skipped, ...] = ()  # the first MAX_LISTED of them
    cut: int = 0  # entries imported under the Rock Ridge name export-iso cut (their whole UDF names alike)
    cut_entries: tuple[str, ...] = ()  # the first MAX_LISTED of them, by path

    def as_json(self) -> dict:
        return {"file": self.file, "volume": self.volume, "path": self.path, "media_type": self.media_type,
                "namespace": self.namespace, "files": self.files, "directories": self.directories,
                "bytes": self.bytes, "skipped": self.skipped,
                "skipped_entries": [skip.as_json() for skip in self.skipped_entries],
                "cut": self.cut, "cut_entries": list(self.cut_entries)}


@dataclass(frozen=True)
class Skipped:
    """An entry of the image that import left out: its path in the image, what it is
    ("symbolic link", "FIFO", "character device", "block device", "socket"), and a symbolic
    link's target."""

    path: str
    type: str
    target: str | None = None

    def as_json(self) -> dict:
        return {"path": self.path, "type": self.type, "target": self.target}


def import_iso(library: Library, *, file: str | os.PathLike, now: datetime,
               vol: str | None = None, into: str | None = None, progress: Progress | None = None,
               totals: Progress | None = None) -> ImportResult:
    """import-iso FILE [--vol ID] [--into VOL:/PATH]. ``totals`` gets the image's files and
    bytes once the first walk has counted them, ``progress`` those copied so far."""
    path = os.path.abspath(file)
    if vol is not None and into is not None:
        raise errors.error("OPV0008", reason="give --vol or --into, not both")
    target = _into(into) if into is not None else None
    counter = _Counter(progress, totals)
    with read_tree(path) as tree:
        if target is not None:
            return _copy_into(library, tree, *target, counter)
        return _new_volume(library, tree, vol, now, counter)


class _Counter:
    """The progress of the copying walk, after the totals of the first."""

    def __init__(self, progress: Progress | None, totals: Progress | None):
        self.progress, self.totals, self.files, self.bytes = progress, totals, 0, 0

    def surveyed(self, survey: _Survey) -> None:
        if self.totals:
            self.totals(survey.files, survey.bytes)

    def copied(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.progress:
            self.progress(self.files, self.bytes)


def _into(text: str) -> tuple[str, str]:
    """``VOL:/PATH`` (or ``/QOPT/VOL/PATH``) as (volume ID, volume path)."""
    found = model.parse_qopt(text)
    if found is None:
        volume, colon, inner = text.partition(":")
        if not colon or not inner.startswith("/"):
            raise errors.error("OPV0005", value=text, keyword="INTO", reason="write VOL:/PATH")
        found = (model.volume_id(volume), inner)
    return found


@dataclass
class _Survey:
    """What the first walk found: counts, and the space the volume needs (a header sector per
    file, whole payload sectors, a sector per directory, and the label and root records)."""

    files: int = 0
    directories: int = 0
    bytes: int = 0
    sectors: int = 4
    skipped: int = 0
    skipped_entries: list[Skipped] = field(default_factory=list)
    cut: int = 0
    cut_entries: list[str] = field(default_factory=list)


def _survey(tree: ImageTree, *, volume: str, top: tuple[str, ...], media_format: MediaFormat) -> _Survey:
    """Walk the image once: every path must be a valid volume path, unique when compared
    case-insensitively. Two paths alike but for case have parents alike but for case, so
    it is enough to compare each name with its siblings': only the directories on the way
    from the root to the entry keep their children's names."""
    survey = _Survey()
    open_dirs = [((), _Siblings())]  # (names of a directory, its children's names)
    for entry in tree.entries():
        if entry.special is not None:
            survey.skipped += 1
            if len(survey.skipped_entries) < MAX_LISTED:
                survey.skipped_entries.append(Skipped(model.join(entry.names), entry.special, entry.target))
            continue
        parts = top + entry.names
        if any("/" in name for name in entry.names):
            raise errors.error("OPV0703", path=tree.path, reason=f"name {entry.names[-1]!r} holds a '/'")
        if not entry.names[-1]:  # a path would drop it: the entry would be its parent
            raise errors.error("OPV0703", path=tree.path, reason=f"an entry of {model.join(entry.names[:-1])!r} has an"
                                                                 " empty name")
        try:
            model.split_path(model.join(parts), volume=volume, media_format=media_format, is_dir=entry.is_dir)
        except errors.InvalidError as exc:
            raise errors.error("OPV0703", path=tree.path, reason=f"{model.join(entry.names)!r}: {exc.text.rstrip('.')}") from None
        parent = entry.names[:-1]
        while open_dirs[-1][0] != parent:  # parents come first: this one is open
            open_dirs.pop()
        found = open_dirs[-1][1].add(entry.names[-1])
        if found is not None:
            raise errors.error("OPV0703", path=tree.path, reason=f"{model.join(entry.names)!r} " + (
                "is in its directory twice (two versions of one name: a volume holds one file of a name)" if found
                else "differs from another name only in case"))  # (True: ISO 9660 versions ;1 and ;2 of one name)
        if entry.cut:
            survey.cut += 1
            if len(survey.cut_entries) < MAX_LISTED:
                survey.cut_entries.append(model.join(parts))  # where it is on the volume (--into too)
        if entry.is_dir:
            open_dirs.append((entry.names, _Siblings()))
            survey.directories += 1
            survey.sectors += 1
        else:
            survey.files += 1
            survey.bytes += entry.size
            survey.sectors += 1 + -(-entry.size // SECTOR)
    return survey


_SIBLINGS_KEY = os.urandom(16)


class _Siblings:
    """The names of a directory's children, held as two 64-bit digests each (of the name's
    case-insensitive key, and of the name) in an open-addressed table: 16 to 32 bytes a name
    where a dict of the names took about 180 (hunt27d F4: a directory of 1,000,000 files
    took the survey past DESIGN's 150 MiB). Two names of one digest by chance (about one in
    10**7 for a directory of a million names) would be refused as alike."""

    def __init__(self) -> None:
        self._keys, self._names, self._count = array("Q", bytes(8 * 8)), array("Q", bytes(8 * 8)), 0

    @staticmethod
    def _digest(text: str) -> int:
        # Keyed anew by each process (as Python keys str hashing): unkeyed, names could be chosen
        # once whose digests share their low bits, each add then probing past all (rev27k F1)
        return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8,
                                              key=_SIBLINGS_KEY).digest(), "little") | 1  # (0 marks a free slot)

    def add(self, name: str) -> bool | None:
        """Add ``name``: None if no sibling's key is its key, else whether the sibling's name
        is the very name."""
        key, whole = self._digest(model.name_key(name)), self._digest(name)
        mask = len(self._keys) - 1
        slot = key & mask
        while self._keys[slot]:
            if self._keys[slot] == key:
                return self._names[slot] == whole
            slot = (slot + 1) & mask
        self._keys[slot], self._names[slot] = key, whole
        self._count += 1
        if 2 * self._count > len(self._keys):
            self._grow()
        return None

    def _grow(self) -> None:
        keys, names = self._keys, self._names
        self._keys, self._names = array("Q", bytes(16 * len(keys))), array("Q", bytes(16 * len(keys)))
        mask = len(self._keys) - 1
        for key, whole in zip(keys, names, strict=True):
            if key:
                slot = key & mask
                while self._keys[slot]:
                    slot = (slot + 1) & mask
                self._keys[slot], self._names[slot] = key, whole


def _check_host_room(library: Library, survey: _Survey, volume_id: str) -> None:
    """OPV0203 before anything is written when the host file system under the library has
    no room for what the image holds: its files may claim far more than the image's own
    size (zisofs blocks of zeros, many records of one extent), and a copy that fills the
    disk only to be undone helps nobody."""
    found = os.statvfs(library.root)
    free, needed = found.f_bavail * found.f_frsize, survey.sectors * SECTOR
    if needed > free:
        raise errors.error("OPV0203", volume=volume_id, reason=f"the image's files take {needed:,} bytes and the host"
                                                                f" file system under the library has {free:,} free")


def _label(volume_id: str, needed: int, now: datetime) -> dict:
    cd = media.media_for(MediaType.CD_ROM)
    dvd = media.media_for(MediaType.DVD_ROM)
    if needed <= cd.default_capacity:
        media_type, capacity = MediaType.CD_ROM, cd.default_capacity
    else:
        media_type, capacity = MediaType.DVD_ROM, max(dvd.default_capacity, -(-needed // SECTOR) * SECTOR)
    moment = model.to_micros(now)
    return {
        "volume": volume_id, "type": str(VolumeType.PRIMARY), "media_type": str(media_type),
        "media_format": str(MediaFormat.ISO9660), "sector_size": SECTOR,
        "capacity": media.choose_capacity(media_type, capacity, SECTOR),
        "threshold": media.choose_threshold(VolumeType.PRIMARY, MediaFormat.ISO9660, IMPORT_THRESHOLD),
        "text": "", "created": moment, "last_referenced": moment, "primary_volume": None,
        "backup_start": None, "backup_end": None, "backup_last_changed": None,
    }


def _volume_id(tree: ImageTree, vol: str | None) -> str:
    if vol is not None:
        return model.volume_id(vol)
    try:
        return model.volume_id(tree.volume_identifier)
    except errors.OptvolError as exc:
        raise errors.error("OPV0702", path=tree.path, found=tree.volume_identifier,
                           reason=exc.text.split(": ", 1)[-1].rstrip(".")) from None


def _new_volume(library: Library, tree: ImageTree, vol: str | None, now: datetime, counter: _Counter) -> ImportResult:
    volume_id = _volume_id(tree, vol)
    if library.exists(volume_id):
        raise errors.error("OPV0003", volume=volume_id, library=library.root)
    survey = _survey(tree, volume=volume_id, top=(), media_format=MediaFormat.ISO9660)
    _check_host_room(library, survey, volume_id)
    counter.surveyed(survey)
    label = _label(volume_id, survey.sectors * SECTOR, now)

    def fill(volume: Volume) -> None:
        with volume.mastering_writer() as writer:
            for entry in tree.entries():
                path = model.join(entry.names)
                if entry.special is not None:
                    continue
                if entry.is_dir:
                    writer.make_dir(path, created=entry.modified)
                else:
                    writer.write_file(path, chunks=_chunks(tree, entry), size=entry.size,
                                      created=entry.modified if entry.created is None else entry.created,
                                      modified=entry.modified,  # (a time 0 is the epoch, not "none")
                                      attr_changed=entry.modified if entry.attr_changed is None else entry.attr_changed,
                                      flags=HIDDEN if entry.hidden else 0)
                    counter.copied(entry.size)

    with library.locked():
        library.install(volume_id, label=label, replace=False, fill=fill)
    return _result(tree, survey, volume_id, "/", label["media_type"])


def _copy_into(library: Library, tree: ImageTree, volume_id: str, top: str, counter: _Counter) -> ImportResult:
    with library.open(volume_id) as volume:
        volume.check_user_write("importing an image")
        label = volume.label()
        top_parts = model.split_path(top, volume=volume_id, media_format=MediaFormat(label["media_format"]), is_dir=True)
        survey = _survey(tree, volume=volume_id, top=top_parts, media_format=MediaFormat(label["media_format"]))
        _check_host_room(library, survey, volume_id)
        counter.surveyed(survey)
        with volume.batch():
            if top_parts:
                volume.mkdir(model.join(top_parts), parents=True, exist_ok=True)
            for entry in tree.entries():
                path = model.join(top_parts + entry.names)
                if entry.special is not None:
                    continue
                if entry.is_dir:
                    volume.mkdir(path, exist_ok=True)
                else:
                    volume.write_chunks(path, _chunks(tree, entry), size=entry.size, replace=False)
                    if entry.hidden:
                        volume.set_attributes(path, hidden=True)
                    counter.copied(entry.size)
    return _result(tree, survey, volume_id, model.join(top_parts), None)


def _chunks(tree: ImageTree, entry: Entry) -> Iterator[bytes]:
    """The bytes of a file of the image, extent after extent (uncompressed if it is stored
    compressed); a short read means damage."""
    if entry.compression is None:
        for offset, length in entry.extents:
            yield from _stored(tree, entry, offset, length)
        return
    stored = sum(length for _, length in entry.extents)
    try:
        yield from zisofs.chunks(lambda offset, length: b"".join(_stored_range(tree, entry, offset, length)), stored,
                                 entry.compression)
    except ValueError as exc:
        raise damaged(tree.path, f"the compressed data of {model.join(entry.names)} cannot be read: {exc}") from None


def _stored_range(tree: ImageTree, entry: Entry, offset: int, length: int) -> Iterator[bytes]:
    """``length`` bytes from ``offset`` of a file as the image stores it, across its extents."""
    for start, size in entry.extents:
        if offset >= size:
            offset -= size
            continue
        take = min(length, size - offset)
        yield from _stored(tree, entry, start + offset, take)
        offset, length = 0, length - take
        if not length:
            return


def _stored(tree: ImageTree, entry: Entry, offset: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of the image from byte ``offset``, a chunk at a time."""
    end = offset + length
    while offset < end:
        try:
            data = os.pread(tree.fd, min(READ_CHUNK, end - offset), offset)
        except OSError as exc:  # a scratched disc, a failing disk: the image is damaged there
            raise damaged(tree.path, f"the data of {model.join(entry.names)} cannot be read at byte {offset}"
                                     f" ({exc.strerror or exc})") from None
        if not data:
            raise damaged(tree.path, f"the image ends inside the data of {model.join(entry.names)}")
        offset += len(data)
        yield data


def _result(tree: ImageTree, survey: _Survey, volume_id: str, path: str, media_type: str | None) -> ImportResult:
    return ImportResult(file=tree.path, volume=volume_id, path=path, media_type=media_type,
                        namespace=tree.namespace, files=survey.files, directories=survey.directories,
                        bytes=survey.bytes, skipped=survey.skipped, skipped_entries=tuple(survey.skipped_entries),
                        cut=survey.cut, cut_entries=tuple(survey.cut_entries))
