"""Reading an ISO 9660 image made by any tool as a stream of entries (import side).

The image is untrusted: everything the parsers raise on it, and every inconsistency found
here (extents past the end of the image, directory loops, names no volume can hold),
becomes one ``DamagedError`` (OPV0701 / OPV0703). Names come from the richest namespace
the image has: Rock Ridge, then UDF, then Joliet, then ISO 9660:1999, then ISO 9660.

The tree is walked on disk, one directory at a time, in memory that does not grow with
the image: ISO 9660, Joliet and Rock Ridge by ``iso_walk.py``, UDF by ``udf_walk.py``.
A file over 4 GiB is read from the extents of all its records (multi-extent ISO 9660
records, or several UDF allocation descriptors). A Rock Ridge file compressed with zisofs
says so (``Entry.compression``); its reader uncompresses it (``zisofs.py``).
Symbolic links, devices, FIFOs and sockets (Rock Ridge PX and SL, UDF file types) come out
as entries with ``special`` set, which import leaves out and lists. A Rock Ridge name that
is not UTF-8 takes the Joliet name of the same entry (``_Walker._joliet_record``), and a
file's Rock Ridge name cut at 255 bytes its whole UDF name, and a file of 4 GiB or more
whose ISO 9660 size was cut to 32 bits its whole UDF size and extents (``_UdfCounterparts``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from optvol import errors, model
from optvol.interchange import iso_walk, udf_walk, zisofs
from optvol.interchange import names as names_mod
from optvol.interchange.iso9660 import FLAG_ASSOCIATED
from optvol.interchange.iso_walk import Image, NameOf, Record

MAX_DEPTH = model.MAX_DIRECTORY_PART // 2  # /a/b/c...: the deepest tree a volume holds (128)
MAX_ENTRIES = 10_000_000  # entries and file extents of an image
MAX_EXTENTS = 1 << 16  # of one file: 256 TiB in extents of 4 GiB, a bounded list of them in memory
RR_NAME_BYTES = 255  # the longest Rock Ridge name (NM) tools write: export-iso cuts longer ones
# A long name's first characters, which its cut keeps: the stem of a name over 255 bytes holds
# 47 characters or more (an extension takes at most 17, of 4 bytes each), and a cut keeps all
# but the bytes of "_<number>" and the extension (rev26f F4: with 16, names alike in their
# first 16 characters were each tried against every other: import was quadratic in them).
_CUT_KEY = 40
MAX_LONG_NAMES = 100_000  # UDF names longer than that, held to stand for cut Rock Ridge names


def damaged(path: str, reason: str) -> errors.OptvolError:
    return errors.error("OPV0701", path=path, reason=reason)


@dataclass(frozen=True)
class Entry:
    """One directory or file of an image, with its times in microseconds since the epoch."""

    names: tuple[str, ...]
    is_dir: bool
    modified: int
    created: int | None = None
    attr_changed: int | None = None
    size: int = 0
    extents: tuple[tuple[int, int], ...] = ()  # (byte offset in the image, length)
    hidden: bool = False  # a file the image hides (the ISO 9660 or Joliet existence bit, UDF's hidden characteristic)
    compression: zisofs.Compression | None = None  # the extents hold zisofs data; ``size`` is uncompressed
    special: str | None = None  # neither file nor directory: "symbolic link", "FIFO", a device, "socket"
    target: str | None = None  # a symbolic link's target
    cut: bool = False  # its name is a Rock Ridge name export cut, whose whole UDF name could not be told apart


class ImageTree:
    """An open image: its volume identifier, its namespace, and its entries in pre-order (a
    directory, then everything below it), walked anew by every call of ``entries`` (import
    walks twice: once to check and measure, once to copy). Close it, or use it in a ``with``."""

    def __init__(self, path: str, fd: int, *, volume_identifier: str, namespace: str,
                 walk: Callable[[], Iterator[Entry]], close: Callable[[], None] = lambda: None) -> None:
        self.path, self.fd = path, fd
        self.volume_identifier, self.namespace = volume_identifier, namespace
        self.image_size = os.fstat(fd).st_size
        self._walk, self._close = walk, close

    def entries(self) -> Iterator[Entry]:
        count = 0
        try:
            for entry in self._walk():
                count += max(1, len(entry.extents))
                if count > MAX_ENTRIES:
                    raise damaged(self.path, f"more than {MAX_ENTRIES} entries and extents")
                self._check_extents(entry)
                yield entry
        except errors.OptvolError:
            raise
        except Exception as exc:  # any failure of the parser means the bytes are bad
            raise damaged(self.path, _reason(exc)) from None

    def _check_extents(self, entry: Entry) -> None:
        """A file's data lies inside the image, and no two of its extents overlap."""
        end_before = 0
        for offset, length in sorted(entry.extents) if len(entry.extents) > 1 else entry.extents:
            if length < 0 or length and (offset < 0 or offset + length > self.image_size):  # (an empty file's
                # extent may lie anywhere: libarchive gives it 0xFFFFFFF0)
                raise damaged(self.path, f"the data of /{'/'.join(entry.names)} lies beyond the end of the image")
            if length and offset < end_before:
                raise damaged(self.path, f"the extents of /{'/'.join(entry.names)} overlap")
            end_before = max(end_before, offset + length)

    def close(self) -> None:
        try:
            self._close()
        finally:
            os.close(self.fd)

    def __enter__(self) -> ImageTree:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_tree(path: str) -> ImageTree:
    """Open the image at host path ``path``; raises OPV0301/OPV0302 or a DamagedError."""
    if not os.path.exists(path):
        raise errors.error("OPV0301", path=path)
    if not os.path.isfile(path):
        raise errors.error("OPV0302", path=path, reason="it is not a regular file")
    try:  # (O_NONBLOCK: a FIFO put in its place since the check must not hold the open for ever)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise errors.error("OPV0302", path=path, reason=exc.strerror or str(exc)) from None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):  # what was opened, not what the path named a moment before
            raise errors.error("OPV0302", path=path, reason="it is not a regular file")
        os.set_blocking(fd, True)
        image = Image(fd, found.st_size)
        try:
            if udf_walk.recognized(image):  # UDF alone: its logical volume's identifier names it
                return _udf_tree(path, fd, image, None)
            volume = iso_walk.read_volume(image)
            if volume.udf and not volume.rock_ridge:
                return _udf_tree(path, fd, image, volume.identifier, volume.zones)
        except errors.OptvolError:
            raise
        except Exception as exc:  # a read error too: "it cannot be read (...)"
            raise damaged(path, _reason(exc)) from None
        if volume.rock_ridge:
            namespace, root, name_of, skip = "Rock Ridge", volume.root, iso_walk.rock_ridge_name, volume.susp_skip
        elif volume.joliet_root is not None:
            namespace, root, name_of, skip = "Joliet", volume.joliet_root, iso_walk.joliet_name, None
        elif volume.enhanced_root is not None:
            namespace, root, name_of, skip = "ISO 9660:1999", volume.enhanced_root, iso_walk.iso1999_name, None
        else:
            namespace, root, name_of, skip = "ISO 9660", volume.root, iso_walk.iso_name, None
        walker = _Walker(image, block=volume.block, name_of=name_of, susp_skip=skip, path=path,
                         rock_ridge=volume.rock_ridge, joliet_root=volume.joliet_root, zones=volume.zones,
                         udf=_UdfCounterparts(path, image) if volume.rock_ridge and volume.udf else None)
        return ImageTree(path, fd, volume_identifier=volume.identifier, namespace=namespace,
                         walk=lambda: walker.walk(root))
    except BaseException:
        os.close(fd)
        raise


def _shown(identifier: bytes) -> str:
    return repr(identifier.decode("latin-1"))


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "its directory tree nests without end"
    if isinstance(exc, OSError):
        return f"it cannot be read ({exc.strerror or exc})"
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


class Visited:
    """The directories a walk has entered, one bit for each block they may start at: a
    directory whose extent (UDF: whose file entry) another one has already shown is refused.
    Records that share a directory without a loop would make a tree of 2**n directories of
    an image of n levels (a few hundred KB: millions of directories)."""

    def __init__(self, blocks: int, path: str) -> None:
        self._bits, self._blocks, self._path = bytearray((blocks >> 3) + 1), blocks, path
        self._moved: tuple[bytearray, bytearray] | None = None  # RE records' and CL targets' blocks
        # directories marked RE, by block: read, and found a relocation directory (two bits, not a
        # dict of (extent, size): a million RE records of as many pairs took 191 MiB, hunt31h F4)
        self._read_as_relocation: tuple[bytearray, bytearray] | None = None

    def add(self, block: int, names: tuple[str, ...]) -> None:
        if not 0 <= block < self._blocks:
            raise damaged(self._path, f"directory /{'/'.join(names)} lies beyond the end of the image")
        if self._bits[block >> 3] & 1 << (block & 7):
            raise damaged(self._path, f"directory /{'/'.join(names)} is another directory's too (the image's"
                                      " directories share their records)")
        self._bits[block >> 3] |= 1 << (block & 7)

    def relocation_directory(self, block: int) -> bool | None:
        """What ``found_relocation_directory`` kept of the directory marked RE at ``block``
        (inside the image: its '.' record was read), or None."""
        if self._read_as_relocation is None:
            return None
        read, found = self._read_as_relocation
        bit = 1 << (block & 7)
        return bool(found[block >> 3] & bit) if read[block >> 3] & bit else None

    def found_relocation_directory(self, block: int, found: bool) -> None:
        if self._read_as_relocation is None:
            self._read_as_relocation = (bytearray(len(self._bits)), bytearray(len(self._bits)))
        self._read_as_relocation[0][block >> 3] |= 1 << (block & 7)
        if found:
            self._read_as_relocation[1][block >> 3] |= 1 << (block & 7)

    def relocated(self, block: int, linked: bool) -> None:
        """A Rock Ridge directory record marked RE (``linked`` False), left out where it is
        because a CL record shows it elsewhere, or a CL record's target (True)."""
        if self._moved is None:
            self._moved = (bytearray(len(self._bits)), bytearray(len(self._bits)))
        if 0 <= block < self._blocks:
            self._moved[linked][block >> 3] |= 1 << (block & 7)

    def check_relocated(self) -> None:
        """Every directory marked RE is shown where a CL record points: one that none points
        at would leave its whole tree out without a word."""
        if self._moved is not None:
            moved, linked = (int.from_bytes(bits, "little") for bits in self._moved)
            if moved & ~linked:
                raise damaged(self._path, "a directory marked relocated (Rock Ridge RE) is linked from nowhere"
                                          " (no CL record points at it): its files would be left out")


# --------------------------------------------------------------------- ISO 9660, Joliet, Rock Ridge


class _UdfCounterparts:
    """What the UDF tree of an image with both trees says of a file that ISO 9660 and Rock
    Ridge cannot hold, read once when first asked: names over 255 bytes of UTF-8, by the
    offset of their data (export-iso --udf keeps the whole name there, where its Rock Ridge
    name was cut), and files of 4 GiB or more, by path (``genisoimage -allow-limited-size
    -udf`` records their ISO 9660 size cut to its last 32 bits, their whole size in UDF; it
    points an empty file at the data of the next one, so the offset alone does not tell).
    A UDF tree that cannot be read refuses the image: without it a file over 4 GiB would
    come in cut, without a word."""

    def __init__(self, path: str, image: Image) -> None:
        self._path, self._image, self._names, self._big, self._by_path = path, image, None, None, None
        self._gave_up = False  # more long names than MAX_LONG_NAMES: none is looked up by path

    def get(self, offset: int) -> str | None:
        if self._names is None:
            self._read()
        return self._names.get(offset)

    def by_path(self, parent: tuple[str, ...], cut: str, *, is_dir: bool) -> tuple[str | None, bool]:
        """The whole UDF name of the entry of directory ``parent`` whose Rock Ridge name export
        cut to ``cut`` (numbered or not): for what has no data of its own to be found by (an
        empty file, a directory), if no other long name of that directory may have been cut
        so (of its kind: a directory's, a file's), and no entry there has ``cut`` as its own
        name; and, where none is found, whether
        ``cut`` is the cut of several (export numbered their cuts alike: which is whose cannot
        be told) or may be one (past MAX_LONG_NAMES nothing is looked up: rev26f F1)."""
        if self._by_path is None:
            self._read()
        if self.is_own(parent, cut):  # an entry's own name, never cut, that a longer one's cut would be
            return None, False
        found = [name for name, directory in self._by_path.get((parent, cut[:_CUT_KEY]), ())
                 if directory == is_dir and names_mod.is_rock_ridge_cut(cut, name)]
        return (found[0], False) if len(found) == 1 else (None, len(found) > 1 or self._gave_up)

    def is_own(self, parent: tuple[str, ...], name: str) -> bool:
        """Whether UDF names an entry of directory ``parent`` ``name`` (252-255 bytes): its own, never cut."""
        if self._by_path is None:
            self._read()
        return (parent, name) in self._uncut

    def big_file(self, names: tuple[str, ...], offset: int) -> Entry | None:
        """The UDF entry of a file of 4 GiB or more at path ``names`` whose data starts at ``offset``."""
        if self._big is None:
            self._read()
        found = self._big.get(names)
        return found if found is not None and found.extents[0][0] == offset else None

    def _read(self) -> None:
        names: dict[int, str | None] = {}  # None: two files share the data, so the name is not sure
        big: dict[tuple[str, ...], Entry] = {}
        by_path: dict[tuple[tuple[str, ...], str], list[tuple[str, bool]]] = {}  # long names (and whether of a
        # directory) by directory and first characters
        uncut: set[tuple[tuple[str, ...], str]] = set()  # names of 252-255 bytes: a cut of another may be one
        kept = 0
        try:
            volume = udf_walk.read_volume(self._image)
            root = udf_walk.node(self._image, volume, volume.root)
            for entry in _udf_entries(self._path, self._image, volume, root):
                size = len(entry.names[-1].encode())
                if entry.special is None and size > RR_NAME_BYTES - 4:
                    kept += 1  # past MAX_LONG_NAMES nothing is found by path (an uncut name not kept would not stop it)
                    if size > RR_NAME_BYTES and kept <= MAX_LONG_NAMES:
                        by_path.setdefault((entry.names[:-1], entry.names[-1][:_CUT_KEY]), []).append(
                            (entry.names[-1], entry.is_dir))
                    elif kept <= MAX_LONG_NAMES:
                        uncut.add((entry.names[:-1], entry.names[-1]))
                if not entry.extents or entry.special is not None:
                    continue
                offset = entry.extents[0][0]
                if len(entry.names[-1].encode()) > RR_NAME_BYTES and len(names) < MAX_LONG_NAMES:
                    names[offset] = None if offset in names else entry.names[-1]
                if entry.size >= 1 << 32:  # few: each takes 4 GiB of the image
                    big[entry.names] = entry
        except errors.OptvolError:
            raise
        except Exception as exc:
            raise damaged(self._path, f"its UDF tree cannot be read ({_reason(exc)}), and without it the sizes"
                                      " of files over 4 GiB cannot be checked") from None
        self._names, self._big, self._uncut = names, big, uncut
        self._by_path, self._gave_up = (by_path, False) if kept <= MAX_LONG_NAMES else ({}, True)


class _Counterpart:
    """The Joliet directory that stands for a directory of a Rock Ridge walk, looked for only
    when a name needs it, and once: None when there is none, or no sure one."""

    def __init__(self, find: Callable[[], Record | None]) -> None:
        self._find, self._found, self._looked = find, None, False
        self._index: tuple[dict, dict, dict] | None = None

    def get(self) -> Record | None:
        if not self._looked:
            self._found, self._looked = self._find(), True
        return self._found

    def index(self, build: Callable[[Record], tuple[dict, dict, dict]]) -> tuple[dict, dict, dict] | None:
        """``build`` of the Joliet directory, made once: a walk holds it while it walks the
        directory's subdirectories, whose own counterparts are looked up in it."""
        found = self.get()
        if found is not None and self._index is None:
            self._index = build(found)
        return None if found is None else self._index


@dataclass(frozen=True)
class _Walker:
    image: Image
    block: int
    name_of: NameOf
    susp_skip: int | None
    path: str
    rock_ridge: bool = False
    joliet_root: Record | None = None  # a Rock Ridge walk's: where names that are not UTF-8 are looked up
    udf: _UdfCounterparts | None = None  # a Rock Ridge walk's of an image with a UDF tree
    zones: iso_walk.Zones = iso_walk.UNTOLD  # what the image tells of its dates' offsets
    # the Rock Ridge names a cut may be of the directories being walked, by (extent, is_dir): _cuts_of
    _cuts: dict[tuple[int, bool], dict[str, set[str]]] = field(default_factory=dict, compare=False)

    def _records(self, directory: Record) -> Iterator[Record]:
        return iso_walk.records(self.image, directory, block=self.block, susp_skip=self.susp_skip)

    def walk(self, root: Record) -> Iterator[Entry]:
        """The entries of the tree (pre-order)."""
        self.image.new_walk()
        visited = Visited(self.image.size // self.block + 1, self.path)
        yield from self._walk(root, (), frozenset(), visited, _Counterpart(lambda: self.joliet_root))
        visited.check_relocated()

    def _walk(self, directory: Record, names: tuple[str, ...], on_path: frozenset[int], visited: Visited,
              joliet: _Counterpart) -> Iterator[Entry]:
        """The entries below ``directory`` (pre-order), joining multi-extent file records;
        ``joliet`` finds its Joliet counterpart."""
        if len(names) > MAX_DEPTH:
            raise damaged(self.path, f"directories nest deeper than {MAX_DEPTH} levels")
        if directory.extent in on_path:
            raise damaged(self.path, f"directory /{'/'.join(names)} loops back to one of its parents")
        visited.add(directory.extent, names)
        on_path = on_path | {directory.extent}
        first, pieces = None, []  # a file's first record, and (offset, length) of each of its extents
        for record in self._records(directory):
            if record.relocated:  # the directory shows up where its CL record points; or it is the
                # relocation directory itself, which xorriso -rr_reloc_dir marks RE too: it holds only
                # relocated directories (each must be linked), and nothing of it is left out
                if not (record.is_dir and self._relocation_directory(record, visited)):
                    visited.relocated(record.extent, linked=False)
                continue
            target = None
            if record.child_link is not None:
                target = self._child_link(record, names, visited)
            if record.is_dir or target is not None:
                if not names and self._only_relocated(record, visited):
                    continue  # rr_moved: its directories appear where they belong
                name, cut = self._file_name(directory, record, joliet, names, is_dir=True)
                entry_names = names + (name,)
                yield Entry(entry_names, True, iso_walk.record_time(target or record, self.zones), cut=cut)
                below = _Counterpart(lambda record=record: self._joliet_record(directory, joliet, record))
                yield from self._walk(target or record, entry_names, on_path, visited, below)
                continue
            if record.flags & FLAG_ASSOCIATED:  # a Mac resource fork, under its data file's name: left out, listed
                if not record.continues:
                    try:
                        name = self._name(directory, record, joliet, names)
                    except (errors.OptvolError, UnicodeDecodeError):  # no sure name: it is only listed
                        name = (record.rr_name or record.identifier).decode("latin-1")
                    yield Entry(names + (name,), False, iso_walk.record_time(record, self.zones),
                                special="associated file (a resource fork)")
                continue
            if first is not None and record.identifier != first.identifier:  # ECMA-119 6.5.1: one file, one name
                raise damaged(self.path, f"a file of several extents in /{'/'.join(names)} has records of different"
                                         f" names ({_shown(first.identifier)}, {_shown(record.identifier)})")
            first = first or record
            pieces.append((record.extent * self.block, record.size))
            if len(pieces) > MAX_EXTENTS:
                raise damaged(self.path, f"a file in /{'/'.join(names)} has more than {MAX_EXTENTS:,} extents")
            if not record.continues:
                name, cut = self._file_name(directory, first, joliet, names, is_dir=False)
                entry = self._file_entry(names + (name,), first, record, tuple(pieces))
                yield replace(entry, cut=True) if cut else entry
                first, pieces = None, []
        if pieces:
            raise damaged(self.path, f"the last extent of a file in /{'/'.join(names)} is missing")
        for is_dir in (True, False):  # (the directory is walked: what _cuts_of read of it goes)
            self._cuts.pop((directory.extent, is_dir), None)

    def _child_link(self, record: Record, names: tuple[str, ...], visited: Visited) -> Record:
        """The relocated directory a CL record points at (RRIP 1.09 §4.1.5.1: a file record
        stands in its place). A directory record with CL, or a target whose "." record names
        another extent, would put another tree in the place of the one the image holds, and
        leave that one out without a word (hunt31h F1, F2)."""
        where = f"/{'/'.join(names + ((record.rr_name or record.identifier).decode('latin-1'),))}"
        if record.is_dir:
            raise damaged(self.path, f"directory {where} is a directory and carries a Rock Ridge CL record: its own"
                                     " files would be left out")
        visited.relocated(record.child_link, linked=True)
        target = iso_walk.directory_of(self.image, record.child_link, block=self.block, susp_skip=self.susp_skip)
        if target.extent != record.child_link:
            raise damaged(self.path, f"the directory the Rock Ridge CL record {where} points at (block"
                                     f" {record.child_link}) says it starts at block {target.extent}")
        return target

    def _name(self, directory: Record, record: Record, joliet: _Counterpart, names: tuple[str, ...]) -> str:
        """The record's name; a Rock Ridge name that is not UTF-8 (a Latin-1 system's bytes)
        is replaced by the Joliet name of the same file or directory, if the image has a sure one;
        so is the ISO 9660 name of a record that has no Rock Ridge name (a session a tool without
        Rock Ridge added to a Rock Ridge image): 8.3 capitals where Joliet holds the name (hunt30b F2)."""
        try:
            name = self.name_of(record)
        except UnicodeDecodeError:
            if not self.rock_ridge or record.rr_name is None:
                raise
        else:
            if not self.rock_ridge or record.rr_name is not None:
                return name
            counterpart = self._joliet_record(directory, joliet, record)
            return name if counterpart is None else iso_walk.joliet_name(counterpart)
        counterpart = self._joliet_record(directory, joliet, record)
        if counterpart is None:
            raise errors.error("OPV0703", path=self.path, reason=f"the Rock Ridge name {record.rr_name!r} in "
                               f"/{'/'.join(names)} is not UTF-8, and no Joliet name of the image stands for it")
        return iso_walk.joliet_name(counterpart)

    def _file_name(self, directory: Record, first: Record, joliet: _Counterpart, names: tuple[str, ...], *,
                   is_dir: bool) -> tuple[str, bool]:
        """A file's or directory's name: its UDF name where its Rock Ridge name was cut to 255
        bytes (found by its data, else by its directory and cut name), else ``_name``'s; and
        whether that is a cut that stands for one of several UDF names (kept as cut, and
        named in the import's result: hunt26e F1)."""
        if self.udf is not None and first.rr_name and len(first.rr_name) > RR_NAME_BYTES - 4:
            whole = self.udf.get(first.extent * self.block) if first.size and not is_dir else None
            if whole is not None:
                return whole, False
            name = self._name(directory, first, joliet, names)
            whole, unsure = self.udf.by_path(names, name, is_dir=is_dir)
            # Another entry of its kind with a cut of that name: that entry's UDF name was changed
            # (a character beyond U+FFFF, over 127 characters), so which is whose is not sure.
            if whole and any(other != name and names_mod.is_rock_ridge_cut(other, whole)
                             for other in self._cuts_of(directory, names, is_dir).get(name[:_CUT_KEY], ())):
                return name, True
            return (whole, False) if whole else (name, unsure)
        return self._name(directory, first, joliet, names), False

    def _cuts_of(self, directory: Record, names: tuple[str, ...], is_dir: bool) -> dict[str, set[str]]:
        """The Rock Ridge names of 252 bytes or more of ``directory``'s directories (``is_dir``)
        or files that are not UDF's names of entries there (cuts, or names UDF changed), by
        their first _CUT_KEY characters; read once per directory (rev26g F1: a directory whose
        UDF name export changed was given the whole name of another whose cut its own matched)."""
        if (directory.extent, is_dir) not in self._cuts:
            kinds: tuple[dict[str, set[str]], dict[str, set[str]]] = ({}, {})
            for record in self._records(directory):
                if (record.relocated or not record.rr_name or len(record.rr_name) <= RR_NAME_BYTES - 4
                        or record.flags & FLAG_ASSOCIATED):
                    continue
                try:
                    name = self.name_of(record)
                except UnicodeDecodeError:
                    continue
                if not self.udf.is_own(names, name):
                    kind = kinds[record.is_dir or record.child_link is not None]
                    kind.setdefault(name[:_CUT_KEY], set()).add(name)
            self._cuts[(directory.extent, False)], self._cuts[(directory.extent, True)] = kinds
        return self._cuts[(directory.extent, is_dir)]

    def _joliet_record(self, directory: Record, joliet: _Counterpart, record: Record) -> Record | None:
        """The record of the Joliet directory ``joliet`` finds that stands for ``record`` of
        ``directory``: the one file with the same data extent, or the one directory whose name
        is not the Rock Ridge name of another directory there; of several (empty files share
        their extent), the one whose name is the Rock Ridge name read as Latin-1; None if there
        is not exactly one."""
        index = joliet.index(lambda joliet_directory: self._joliet_index(directory, joliet_directory))
        if index is None:
            return None
        files, free, taken = index
        latin1 = record.rr_name.decode("latin-1") if record.rr_name else None
        if record.is_dir or record.child_link is not None:
            try:
                own = taken.get(self.name_of(record), [])  # its own Joliet directory is no other's
            except UnicodeDecodeError:
                own = []
            count = len(own) + (sum(map(len, free.values())) if len(free) < 2 else 2)
            if count == 1:
                return next(iter(free.values()))[0] if free else own[0]
            alike = free.get(latin1, []) + [c for c in own if iso_walk.joliet_name(c) == latin1]
        else:
            by_name = files.get((record.extent, record.size), {})  # empty files share one extent
            if len(by_name) == 1 and len(next(iter(by_name.values()))) == 1:
                return next(iter(by_name.values()))[0]
            alike = by_name.get(latin1, [])
        return alike[0] if len(alike) == 1 else None

    def _joliet_index(self, directory: Record, joliet_directory: Record) -> tuple[dict, dict, dict]:
        """What ``_joliet_record`` looks up in, read once per directory (``_Counterpart.index``;
        reading it anew for each name made a directory of n such names cost n² records): the
        Joliet files by data extent and size, then by name; the Joliet directories no decodable
        Rock Ridge directory name of ``directory`` takes, and those it takes, each by name."""
        names = set()
        for sibling in self._records(directory):
            if sibling.is_dir or sibling.child_link is not None:
                try:
                    names.add(self.name_of(sibling))
                except UnicodeDecodeError:
                    continue
        files, free, taken = {}, {}, {}
        for candidate in iso_walk.records(self.image, joliet_directory, block=self.block, susp_skip=None):
            name = iso_walk.joliet_name(candidate)
            if not candidate.is_dir:
                files.setdefault((candidate.extent, candidate.size), {}).setdefault(name, []).append(candidate)
            else:
                (taken if name in names else free).setdefault(name, []).append(candidate)
        return files, free, taken

    def _relocation_directory(self, record: Record, visited: Visited) -> bool:
        """``_only_relocated`` of a directory marked RE (not empty: an empty one no CL showed was
        left out, hunt31h F3; xorriso writes no empty RR_MOVED), read once a walk: records
        marked RE that all name one directory made the walk read it again for each (rev27k F2).
        The record's size must be the directory's own (its '.' record's), so what one read found
        holds for every record of that block."""
        own = iso_walk.directory_of(self.image, record.extent, block=self.block, susp_skip=self.susp_skip)
        if (own.extent, own.size) != (record.extent, record.size):
            raise damaged(self.path, f"a directory marked relocated (Rock Ridge RE) at block {record.extent} is"
                                     f" {record.size:,} bytes by its record and {own.size:,} by its own '.' record")
        found = visited.relocation_directory(record.extent)
        if found is None:
            found = self._only_relocated(record, visited)
            visited.found_relocation_directory(record.extent, found)
        return found

    def _only_relocated(self, directory: Record, visited: Visited) -> bool:
        """Whether a directory holds relocated directories, and only them (rr_moved), each
        marked in ``visited`` (the walk does not go in: a CL record must show each)."""
        if not directory.is_dir:
            return False
        found = False
        for child in self._records(directory):
            if not child.relocated:
                return False
            visited.relocated(child.extent, linked=False)
            found = True
        return found

    def _file_entry(self, names: tuple[str, ...], first: Record, last: Record,
                    extents: tuple[tuple[int, int], ...]) -> Entry:
        """The file of the records ``first`` to ``last`` (one record, or the pieces of a
        multi-extent file), whose data lies in ``extents``."""
        modified, created, attr_changed = iso_walk.file_times(last, self.zones)
        special = iso_walk.special_kind(first)
        if special is not None:
            target = iso_walk.symlink_target(first) if first.symlink is not None else None
            return Entry(names, False, modified, created, attr_changed, special=special, target=target)
        size, compression = sum(length for _, length in extents), None
        whole = self.udf.big_file(names, extents[0][0]) if self.udf is not None and extents else None
        if whole is not None and whole.size != size and not (first.zf or last.zf):
            if whole.size % (1 << 32) != size % (1 << 32):
                raise damaged(self.path, f"/{'/'.join(names)} holds {size:,} bytes in ISO 9660 and {whole.size:,}"
                                         " in UDF")
            size, extents = whole.size, whole.extents  # ISO 9660 kept only its size's last 32 bits
        zf = first.zf or last.zf
        if zf is not None:
            try:
                compression = zisofs.read_zf(zf)
            except zisofs.Unsupported as exc:
                raise errors.error("OPV0703", path=self.path, reason=f"/{'/'.join(names)}: {exc}") from None
            size = compression.size
        return Entry(names, False, modified, created, attr_changed, size, extents, hidden=first.is_hidden,
                     compression=compression)


# --------------------------------------------------------------------- UDF


def _udf_tree(path: str, fd: int, image: Image, identifier: str | None,
              zones: iso_walk.Zones = iso_walk.UNTOLD) -> ImageTree:
    """The UDF tree of a bridge image (named by its ISO 9660 ``identifier``) or of an image of UDF alone (None)."""
    volume = udf_walk.read_volume(image)
    root = udf_walk.node(image, volume, volume.root)
    if not root.is_dir:
        raise ValueError("the UDF root is not a directory")
    return ImageTree(path, fd, volume_identifier=volume.identifier if identifier is None else identifier, namespace="UDF",
                     walk=lambda: _udf_entries(path, image, volume, root, zones))


def _udf_entries(path: str, image: Image, volume, root, zones: iso_walk.Zones = iso_walk.UNTOLD) -> Iterator[Entry]:
    """Every entry of a UDF tree from its root, in pre-order (a walk of its own each call)."""
    visited = Visited(volume.partition_length, path)
    visited.add(volume.root, ())
    return _walk_udf(path, image, volume, root, (), frozenset({volume.root}), visited, zones)


def _walk_udf(path: str, image: Image, volume: udf_walk.Volume, directory: udf_walk.Node, names: tuple[str, ...],
              on_path: frozenset[int], visited: Visited, zones: iso_walk.Zones = iso_walk.UNTOLD) -> Iterator[Entry]:
    """The entries of the UDF file system below ``names`` (pre-order)."""
    if len(names) > MAX_DEPTH:
        raise damaged(path, f"directories nest deeper than {MAX_DEPTH} levels")
    for cs0, block, hidden in udf_walk.children(image, volume, directory):
        if not names and hidden and cs0 == udf_walk.NON_ALLOCATABLE:  # the file system's own bookkeeping
            continue
        child = udf_walk.node(image, volume, block)
        entry_names = names + (udf_walk.name(cs0),)
        when, attr_changed = (udf_walk.timestamp_micros(child.modified, zones),
                              udf_walk.timestamp_micros(child.attr_changed, zones))
        when = when if when is not None else attr_changed if attr_changed is not None else 0  # (0: the epoch)
        attr_changed = when if attr_changed is None else attr_changed
        if child.is_dir:
            if block in on_path:
                raise damaged(path, f"directory /{'/'.join(entry_names)} loops back to one of its parents")
            visited.add(block, entry_names)
            yield Entry(entry_names, True, when)
            yield from _walk_udf(path, image, volume, child, entry_names, on_path | {block}, visited, zones)
        elif child.special is not None:
            yield Entry(entry_names, False, when, special=child.special,
                        target=udf_walk.symlink_target(image, child))
        else:
            created = None if child.created is None else udf_walk.timestamp_micros(child.created, zones)
            yield Entry(entry_names, False, when, when if created is None else created, attr_changed,
                        child.size, child.extents, hidden=hidden)
