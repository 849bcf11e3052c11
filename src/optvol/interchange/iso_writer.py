"""Our ISO 9660 writer: a volume as an image with Joliet and Rock Ridge, and a UDF bridge on request.

Two passes over one snapshot of the volume's index. The first lays out the metadata: it
names every entry and measures every directory's records, so every directory gets its
place. The second writes the records, now with real places, and the files' data after
them. The image, in the order streaming readers such as libarchive need (parents before
children, a continuation area after the directory that points to it, data last):
- sectors 0-15: the system area (zeros); 16: the primary volume descriptor; 17: the
  Joliet supplementary one; 18: the terminator;
- the four path tables (ISO 9660 L and M, Joliet L and M);
- the ISO 9660 directories breadth first, each followed by its Rock Ridge continuation
  area, then the Joliet directories breadth first;
- the files' data, directory by directory in path order.

With a UDF bridge (``export-iso --udf``; the structures are ``udf.py``'s) the UDF volume
recognition sequence follows the terminator (19-21), the volume descriptor sequences and
the integrity descriptor lie at 32, 48 and 64, the anchor at 256 and at the last sector,
and a read-only partition spans everything between: its file set descriptor comes first
(257, with a terminating descriptor at 258), then the path tables and directories as above,
then each directory's UDF file entry and file identifiers, then the data, which the three
namespaces share, each file's after its UDF file entry.

Files of more than 4 GiB less one sector get several extents (multi-extent records).
Directories deeper than the eight levels ISO 9660 allows are relocated in its tree as Rock
Ridge does it, to a directory ``RR_MOVED`` of the root (``iso_tree.py``; genisoimage's way):
Joliet, UDF and Rock Ridge readers see the volume's tree. Payloads are
checked against their SHA-256 as they are copied; a damaged file raises CPF1F28 and the
caller throws the image away. Memory holds the entries of one directory at a time, and of a
directory too large for that a bounded part (``iso_entries.py``); of every directory it holds
only the numbers and the path table names that its place needs (``iso_tree.py``), and reads
its row again from the index when the directory is laid out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from optvol import errors, model
from optvol.interchange import iso9660 as iso
from optvol.interchange import udf as udfs
from optvol.interchange.iso9660 import SECTOR
from optvol.interchange.iso_entries import Entry, Held, Spilled, entries_for
from optvol.interchange.iso_tree import DirTree
from optvol.interchange.names import Namer
from optvol.model import Progress
from optvol.volume import Volume
from optvol.volume_rows import HIDDEN, READ_ONLY, FileRow, scan_sql, scanned

PATH_TABLES = 19  # the first sector after the volume descriptors
PARTITION = udfs.ANCHOR + 1  # where the UDF partition starts: its file set descriptor
COPY_IN_KERNEL = 256 << 10  # payloads from this size on are copied in the kernel (copy_bytes)
FLUSH_AT = 4 << 20
FILE_MODE, READ_ONLY_MODE, DIR_MODE = 0o100644, 0o100444, 0o040755
MAX_DIRECTORIES = 0xFFFF  # a path table names its parents in 16 bits
RELOCATION_NAME = ".rr_moved"  # RR_MOVED's Rock Ridge name, hidden as genisoimage -hide-rr-moved names it
RELOCATION_NAMES = (RELOCATION_NAME, "rr_moved")  # the names libarchive knows it by (hunt31e F1)
MAX_LISTED = 10_000  # renamed entries an export's result names (it counts them all)
_RR_AND_PX = len(iso.rr_entry(0) + iso.px_entry(0, 0))  # what an entry's Rock Ridge holds before its TF


@dataclass(frozen=True)
class Renamed:
    """An entry whose name Rock Ridge (names over 255 bytes of UTF-8 are cut) or, with a UDF
    bridge, UDF (254 Latin-1 or 127 UTF-16 characters, no character beyond U+FFFF) cannot
    hold as it is: its path, and its name in each namespace that changed it (else None)."""

    path: str
    rock_ridge: str | None
    udf: str | None

    def as_json(self) -> dict:
        return {"path": self.path, "rock_ridge": self.rock_ridge, "udf": self.udf}


@dataclass
class Renames:
    """The renamed entries of an image: how many, and the first MAX_LISTED (memory stays bounded)."""

    count: int = 0
    listed: list[Renamed] = field(default_factory=list)

    def note(self, path: str, name: str, rock_ridge: str, udf: str | None) -> None:
        if rock_ridge == name and udf in (None, name):
            return
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(Renamed(path, rock_ridge if rock_ridge != name else None, udf if udf != name else None))


class _Output:
    """The image file: data appended through a buffer, metadata written at its places."""

    def __init__(self, fd: int, sector: int, progress: Progress | None = None) -> None:
        self.fd = fd
        self.sector = sector  # the next free sector
        self._pending = bytearray()
        self._pending_at = sector * SECTOR
        self.progress, self.files, self.bytes = progress, 0, 0  # the files written so far, and their bytes
        self.renames = Renames()

    def wrote(self, size: int) -> None:
        """A file of ``size`` bytes is in the image."""
        self.files += 1
        self.bytes += size
        if self.progress:
            self.progress(self.files, self.bytes)

    def append(self, data: bytes) -> int:
        """Write ``data`` at the next free sector, padded to whole sectors; return that sector."""
        start = self.sector
        self._pending += data
        if len(data) % SECTOR:
            self._pending += bytes(SECTOR - len(data) % SECTOR)
        self.sector = start + -(-len(data) // SECTOR)
        if len(self._pending) >= FLUSH_AT:
            self.flush()
        return start

    def append_payload(self, volume: Volume, row: FileRow, path: str) -> int:
        """A file's payload at the next free sector, copied and checked; return that sector."""
        if row.size < COPY_IN_KERNEL:
            return self.append(volume.read_verified(row, path))
        self.flush()
        start = self.sector
        volume.copy_payload(row, path, fd=self.fd, offset=start * SECTOR)
        self.sector = start + -(-row.size // SECTOR)
        self._pending_at = self.sector * SECTOR
        return start

    def flush(self) -> None:
        self.write_at(self._pending_at, self._pending)
        self._pending_at += len(self._pending)
        self._pending = bytearray()

    def write_at(self, offset: int, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written


def write_image(volume: Volume, fd: int, *, volume_id: str, now: datetime, udf: bool = False,
                progress: Progress | None = None, totals: Progress | None = None) -> tuple[int, int, Renames]:
    """Write the volume's tree as an image to the empty host file ``fd``, with a UDF bridge
    if ``udf``; return (files, directories, the entries renamed in Rock Ridge or UDF).
    ``totals`` gets the files and their bytes in all, before any is written; ``progress``
    those written so far, as they are. A *BACKUP volume is refused (OPV0101), also to a
    program that calls this itself: only CPYOPT reads its files (DESIGN §1; hunt29c F2)."""
    volume.check_user_access("export-iso (an image any program reads)")
    with volume.snapshot():
        if totals:
            found = volume.image.conn.execute("SELECT count(*), total(size) FROM files WHERE live = 1").fetchone()
            totals(found[0], int(found[1]))
        conn = volume.image.conn
        count = conn.execute("SELECT count(*) FROM dirs WHERE live = 1").fetchone()[0]
        if count > MAX_DIRECTORIES:
            raise errors.error("OPV0704", volume=volume_id, reason=f"{count} directories: ISO 9660 allows 65,535")
        tree = _dir_tree(conn, relocate=True)
        if len(tree) > MAX_DIRECTORIES:  # no room for RR_MOVED: deep directories stay where they are, as before
            tree = _dir_tree(conn, relocate=False)
        for number in range(len(tree)):  # parents first
            _measure(volume, tree, number, udf=udf)
        tables = {joliet: tree.path_table(joliet=joliet) for joliet in (False, True)}
        data_start = _place(tree, tables, udf=udf)
        out = _Output(fd, data_start, progress)
        files = sum(_write_directory(volume, out, tree, number, udf=udf) for number in range(len(tree)))
        out.flush()
    if udf:
        _write_udf_volume(out, tree, volume_id=volume_id, now=now, files=files, directories=tree.volume_dirs)
    _write_tables(out, tree, tables, volume_id=volume_id, now=now, first=PARTITION + 2 if udf else PATH_TABLES)
    return files, tree.volume_dirs - 1, out.renames


def _dir_tree(conn, *, relocate: bool) -> DirTree:
    return DirTree(scanned(conn, "dirs", conn.execute(scan_sql("dirs", "id, parent, created",
                                                              "WHERE f.live = 1 ORDER BY f.path_key")).fetchall()),
                   relocate=relocate)


def _entries(volume: Volume, tree: DirTree, me: int, path: str, store: Held | Spilled, *,
             out: _Output | None, udf: bool) -> int:
    """Put the entries of directory ``me`` (at ``path``) in ``store``; return its number of
    files. Without ``out`` (first pass) file places are 0 and its subdirectories get their
    path table names; with it, file data (after its UDF file entry, with ``udf``) is written."""
    namer = Namer(store.names)

    def here(candidate: str) -> bool:
        """Whether an entry of this directory has ``candidate`` as its own name (a long name's
        cut must not take it: asked of the index, for long names only)."""
        return volume.image.conn.execute(
            "SELECT 1 FROM dirs WHERE parent = ? AND name = ? AND live = 1"
            " UNION ALL SELECT 1 FROM files WHERE dir = ? AND name = ? AND live = 1 LIMIT 1",
            (tree.ids[me], candidate, tree.ids[me], candidate)).fetchone() is not None

    def long_names(path: str, name: str) -> tuple[str, str | None]:
        """The Rock Ridge and UDF names (noted if renamed, in the second pass)."""
        rock_ridge, udf_name = namer.rock_ridge(name, another_has=here), namer.udf(name) if udf else None
        if out is not None:
            out.renames.note(path, name, rock_ridge, udf_name)
        return rock_ridge, udf_name

    if tree.is_moved(me):
        return _relocated_entries(volume, tree, namer, store, out=out)
    if me == 0 and tree.moved:  # its names first: no entry of the volume's takes them
        # libarchive takes the root's first directory named rr_moved or .rr_moved (Rock Ridge) for
        # the relocation directory and refuses RE anywhere else (hunt31e F1): one of those names,
        # the first the volume leaves free; where it has both, .rr_moved beside its own (RR_MOVED's
        # record comes first, its ISO 9660 name claimed first; readers that honour RE hide it)
        free = next((name for name in RELOCATION_NAMES if not here(name)), None)
        name = namer.rock_ridge(free) if free else RELOCATION_NAME  # (unclaimed: the volume's keeps it)
        store.add(Entry(namer.iso_dir("RR_MOVED").encode(), b"", name.encode(), b"", tree.moved,
                        0, 0, 0, tree.created[0], tree.created[0], tree.created[0], 0))
    subdirs = scanned(volume.image.conn, "dirs", volume.image.conn.execute(scan_sql(  # (ISO 9660: at most 65,535)
        "dirs", "id, name, path, created", "WHERE f.parent = ? AND f.live = 1 ORDER BY f.path_key"), (tree.ids[me],)).fetchall())
    for dir_id, name, subdir_path, created in subdirs:
        child = tree.number(dir_id)
        iso_name, joliet_name = namer.iso_dir(name).encode(), namer.joliet(name).encode("utf-16-be")
        if out is None:
            tree.joliet_names[child] = joliet_name
            if not tree.relocated(child):  # else named by RR_MOVED, laid out last
                tree.iso_names[child] = iso_name
        rock_ridge, udf_name = long_names(subdir_path, name)
        if out is None and tree.relocated(child) and rock_ridge != name:
            tree.moved_names[child] = rock_ridge.encode()
        store.add(Entry(iso_name, joliet_name, rock_ridge.encode(), udfs.cs0(udf_name) if udf else b"", child, 0, 0, 0,
                        created, created, created, tree.udf_entry[child]))
    files = 0
    for dir_path, file_row in volume.iter_file_rows(path):
        udf_entry = sector = 0
        if udf and file_row.size > udfs.MAX_FILE_BYTES:  # about 251 GB: 234 descriptors in a one-block entry
            raise errors.error("OPV0704", volume=volume.id, reason=f"{file_row.path(dir_path)} has {file_row.size:,} "
                               f"bytes; a UDF file entry of one block describes {udfs.MAX_FILE_BYTES:,} at most")
        if out is not None and udf:
            udf_entry = out.append(_udf_file_entry(out.sector, file_row))
        if out is not None and not file_row.size:  # no payload to read: its record is checked all the same
            volume.check_record(file_row, file_row.path(dir_path))
        if out is not None and file_row.size:
            sector = out.append_payload(volume, file_row, file_row.path(dir_path))
        if out is not None:
            out.wrote(file_row.size)
        iso_name, joliet_name = namer.iso_file(file_row.name).encode(), namer.joliet(file_row.name).encode("utf-16-be")
        rock_ridge, udf_name = long_names(file_row.path(dir_path), file_row.name)
        store.add(Entry(iso_name, joliet_name, rock_ridge.encode(), udfs.cs0(udf_name) if udf else b"",
                        None, sector, file_row.size, file_row.flags, file_row.created, file_row.modified,
                        file_row.attr_changed, udf_entry))
        files += 1
    return files


def _relocated_entries(volume: Volume, tree: DirTree, namer: Namer, store: Held | Spilled, *,
                       out: _Output | None) -> int:
    """Put the directories relocated to RR_MOVED in its ``store``, under the ISO 9660 names
    it gives them and the Rock Ridge names their CL records have (libarchive takes the name
    of a relocated directory from its RE record), which two of them may share, as with
    genisoimage; return 0, its number of files."""
    for child in range(1, tree.volume_dirs):
        if tree.relocated(child):
            name, created = volume.image.conn.execute("SELECT name, created FROM dirs WHERE id = ?",
                                                      (tree.ids[child],)).fetchone()
            iso_name = namer.iso_dir(name).encode()
            if out is None:
                tree.iso_names[child] = iso_name
            store.add(Entry(iso_name, b"", tree.moved_names.get(child) or name.encode(), b"", child, 0, 0, 0,
                            created, created, created, 0))
    return 0


def _lay_out(volume: Volume, tree: DirTree, me: int, *, out: _Output | None,
             udf: bool) -> tuple[tuple[int, int, int, int], int]:
    """The ISO 9660 records, continuation area, Joliet records and UDF file identifiers of
    directory ``me``, measured (first pass, without ``out``) or written at their places:
    their sizes in bytes, and the directory's number of files."""
    path, live_files = volume.image.conn.execute("SELECT path, live_files FROM dirs WHERE id = ?", (tree.ids[me],)
                                                 ).fetchone() if not tree.is_moved(me) else ("/" + RELOCATION_NAME, 0)
    store = entries_for(tree.links[me] - 2 + live_files)
    try:
        files = _entries(volume, tree, me, path, store, out=out, udf=udf)
        parent, volume_dir = tree.parent[me], not tree.is_moved(me)
        sizes = (*_iso_directory(tree, me, tree.iso_parent[me], store, out=out),
                 _joliet_directory(tree, me, parent, store, out=out) if volume_dir else 0,
                 _udf_identifiers(tree, me, parent, store, out=out) if udf and volume_dir else 0)
    finally:
        store.close()
    if out is not None and sizes != _measured(tree, me):  # the passes must agree: else a bug (exit 70), not bad input
        raise RuntimeError(f"export-iso: {path} measured {_measured(tree, me)} bytes in the first pass, {sizes} now")
    return sizes, files


def _measured(tree: DirTree, me: int) -> tuple[int, int, int, int]:
    return tree.iso[me][1], tree.continuation[me][1], tree.joliet[me][1], tree.udf_identifiers[me][1]


def _measure(volume: Volume, tree: DirTree, me: int, *, udf: bool) -> None:
    """First pass: name the entries of a directory and measure its extents, continuation
    area and UDF file identifiers."""
    (tree.iso[me], tree.continuation[me], tree.joliet[me], tree.udf_identifiers[me]) = (
        (0, size) for size in _lay_out(volume, tree, me, out=None, udf=udf)[0])


def _place(tree: DirTree, tables: dict[bool, tuple], *, udf: bool) -> int:
    """Give the path tables, then every directory (and, with ``udf``, every directory's UDF
    file entry and identifiers) its place; return the first sector for data."""
    sector = PARTITION + 2 if udf else PATH_TABLES
    for joliet, table in tables.items():
        sector += 2 * _sectors(len(_path_table(tree, table, joliet=joliet, big_endian=False)))
    for joliet in (False, True):
        for directory in tables[joliet][0]:
            if joliet:
                tree.joliet[directory] = (sector, tree.joliet[directory][1])
                sector += _sectors(tree.joliet[directory][1])
                continue
            tree.iso[directory] = (sector, tree.iso[directory][1])
            sector += _sectors(tree.iso[directory][1])
            tree.continuation[directory] = (sector, tree.continuation[directory][1])
            sector += _sectors(tree.continuation[directory][1])
    for directory in tables[False][0] if udf else ():
        if tree.is_moved(directory):
            continue
        tree.udf_entry[directory] = sector
        tree.udf_identifiers[directory] = (sector + 1, tree.udf_identifiers[directory][1])
        sector += 1 + _sectors(tree.udf_identifiers[directory][1])
    return sector


def _sectors(size: int) -> int:
    return -(-size // SECTOR)


def _write_directory(volume: Volume, out: _Output, tree: DirTree, me: int, *, udf: bool) -> int:
    """Second pass: write a directory's file data, then its records at their places; return its file count."""
    files = _lay_out(volume, tree, me, out=out, udf=udf)[1]
    if udf and not tree.is_moved(me):
        out.write_at(tree.udf_entry[me] * SECTOR, _udf_directory_entry(tree, me))
    return files


def _unique(sector: int, *, root: bool = False) -> int:
    """The UDF unique ID of the file entry at ``sector``: 0 for the root, else 16 and up (UDF 3.2.1.1)."""
    return 0 if root else 16 + sector - PARTITION


def _udf_file_entry(sector: int, row: FileRow) -> bytes:
    """The UDF file entry of a file, at ``sector``, its data in the sectors that follow it."""
    return udfs.file_entry(sector - PARTITION, directory=False, mode=READ_ONLY_MODE if row.flags & READ_ONLY
                           else FILE_MODE, links=1, size=row.size, ads=udfs.short_ads(sector + 1 - PARTITION, row.size),
                           modified=row.modified, attr_changed=row.attr_changed, unique=_unique(sector))


def _udf_directory_entry(tree: DirTree, me: int) -> bytes:
    """The UDF file entry of directory ``me``; its links: its parent's identifier and each subdirectory's ".."."""
    sector, size = tree.udf_identifiers[me]
    entry, created = tree.udf_entry[me], tree.created[me]
    return udfs.file_entry(entry - PARTITION, directory=True, mode=DIR_MODE, links=tree.links[me] - 1, size=size,
                           ads=udfs.short_ads(sector - PARTITION, size), modified=created, attr_changed=created,
                           unique=_unique(entry, root=me == 0))


def _udf_identifiers(tree: DirTree, me: int, parent: int, store: Held | Spilled, *, out: _Output | None) -> int:
    """The file identifiers of a directory (4/14.4): its parent's, then one for each entry."""
    start = tree.udf_identifiers[me][0]
    identifiers = _Packer(out, start, whole=False)

    def add(name: bytes, characteristics: int, sector: int, *, root: bool = False) -> None:
        block = start + identifiers.offset // SECTOR - PARTITION
        identifiers.add(udfs.file_identifier(block, name=name, characteristics=characteristics,
                                             entry=sector - PARTITION, unique=_unique(sector, root=root))
                        if out is not None else udfs.identifier_length(name))

    add(b"", udfs.CHAR_PARENT | udfs.CHAR_DIRECTORY, tree.udf_entry[parent], root=parent == 0)
    for entry in store:
        if tree.is_moved(entry.child):
            continue
        characteristics = udfs.CHAR_DIRECTORY if entry.child is not None else \
            udfs.CHAR_HIDDEN if entry.flags & HIDDEN else 0
        add(entry.udf_name, characteristics, entry.udf_entry)
    return identifiers.close()


def _write_udf_volume(out: _Output, tree: DirTree, *, volume_id: str, now: datetime, files: int,
                      directories: int) -> None:
    """The UDF descriptors outside the directories: the recognition sequence, the volume
    descriptor sequences, the integrity descriptor, the file set descriptor and the two
    anchors, the second one in a sector of its own at the end of the image."""
    last = out.sector
    out.sector += 1
    length = last - PARTITION
    recorded = model.to_micros(now)

    def sectors(*descriptors: bytes) -> bytes:
        return b"".join(descriptor.ljust(SECTOR, b"\x00") for descriptor in descriptors)

    out.write_at(udfs.RECOGNITION_SEQUENCE * SECTOR,
                 b"".join(udfs.volume_structure(name) for name in (b"BEA01", b"NSR02", b"TEA01")))
    for start in (udfs.MAIN_SEQUENCE, udfs.RESERVE_SEQUENCE):
        out.write_at(start * SECTOR, sectors(*udfs.volume_sequence(start, volume_id=volume_id, recorded=recorded,
                                                                    partition=(PARTITION, length))))
    integrity = udfs.integrity(recorded=recorded, next_unique=16 + length, partition_length=length, files=files,
                               directories=directories)
    out.write_at(udfs.INTEGRITY_SEQUENCE * SECTOR, sectors(integrity, udfs.terminating(udfs.INTEGRITY_SEQUENCE + 1)))
    file_set = udfs.file_set(recorded=recorded, volume_id=volume_id, root=tree.udf_entry[0] - PARTITION)
    out.write_at(PARTITION * SECTOR, sectors(file_set, udfs.terminating(1)))  # blocks 0 and 1 of the partition
    for sector in (udfs.ANCHOR, last):
        out.write_at(sector * SECTOR, udfs.anchor(sector))


def _extents(sector: int, size: int) -> list[tuple[int, int]]:
    """(sector, bytes) of each extent of a file of ``size`` bytes starting at ``sector``."""
    extents = []
    while size > iso.MAX_EXTENT:
        extents.append((sector, iso.MAX_EXTENT))
        sector, size = sector + iso.MAX_EXTENT // SECTOR, size - iso.MAX_EXTENT
    extents.append((sector, size))
    return extents


def _rock_ridge(entry: Entry, tree: DirTree) -> bytes:
    """RR, PX and TF of an entry's record (NM is added when the record is laid out)."""
    if entry.child is not None:
        return _dir_rock_ridge(tree, entry.child, with_name=True)
    return (iso.rr_entry(iso.RR_PX | iso.RR_NM | iso.RR_TF)
            + iso.px_entry(READ_ONLY_MODE if entry.flags & READ_ONLY else FILE_MODE, 1)
            + iso.tf_entry(created=entry.created, modified=entry.modified, attr_changed=entry.attr_changed))


def _dir_rock_ridge(tree: DirTree, directory: int, *, with_name: bool) -> bytes:
    created = tree.created[directory]
    links = tree.links[directory] + (1 if directory == 0 and tree.moved else 0)  # the root's holds RR_MOVED too
    return (iso.rr_entry(iso.RR_PX | iso.RR_TF | (iso.RR_NM if with_name else 0))
            + iso.px_entry(DIR_MODE, links)
            + iso.tf_entry(created=created, modified=created, attr_changed=created))


def _dot_system_use(tree: DirTree, me: int, ce: bytes) -> bytes:
    """Rock Ridge of the "." record; the root's starts with SP and continues (``ce``) with ER."""
    dot = _dir_rock_ridge(tree, me, with_name=False)
    return iso.sp_entry() + dot[:5] + ce + dot[5:] if me == 0 else dot


def _dots(tree: DirTree, me: int, parent: int, *, joliet: bool,
          system_use: tuple[bytes, bytes] = (b"", b"")) -> list[bytes]:
    """The "." and ".." records of a directory."""
    records = []
    for identifier, directory, use in ((iso.DOT, me, system_use[0]), (iso.DOTDOT, parent, system_use[1])):
        extent, size = tree.joliet[directory] if joliet else tree.iso[directory]
        records.append(iso.directory_record(identifier, extent=extent, size=size, flags=iso.FLAG_DIRECTORY,
                                            date=iso.record_date(tree.created[directory]), system_use=use))
    return records


def _iso_directory(tree: DirTree, me: int, parent: int, store: Held | Spilled, *,
                   out: _Output | None) -> tuple[int, int]:
    """The ISO 9660 records of a directory in ISO order, and its Rock Ridge continuation area:
    (their sizes). A record whose Rock Ridge entries do not fit in 255 bytes keeps RR, PX and
    TF and continues (CE) with its NM entries in the area; the root's "." continues with ER."""
    area = tree.continuation[me][0]
    records, continued = _Packer(out, tree.iso[me][0]), _Packer(out, area)

    def ce(piece: bytes) -> bytes:
        at = continued.add(piece)
        return iso.ce_entry(area + at // SECTOR, at % SECTOR, len(piece))

    dot = _dot_system_use(tree, me, ce(iso.er_entry()) if me == 0 else b"")
    dotdot = _dir_rock_ridge(tree, parent, with_name=False)
    if tree.relocated(me):  # its parent in the volume (RRIP 1.12 §4.1.5.2)
        dotdot = _flagged(dotdot, iso.RR_PL) + iso.pl_entry(tree.iso[tree.parent[me]][0])
    for record in _dots(tree, me, parent, joliet=False, system_use=(dot, dotdot)):
        records.add(record)
    for entry in store.iso_order():
        rock_ridge = _rock_ridge(entry, tree) if out is not None else bytes(
            _RR_AND_PX + iso.tf_length(created=entry.created, modified=entry.modified, attr_changed=entry.attr_changed))
        link = entry.child is not None and tree.relocated(entry.child)
        if (link and tree.is_moved(me)) or tree.is_moved(entry.child):
            # a relocated directory's own record (§4.1.5.3); and RR_MOVED's, which Rock Ridge readers
            # then hide (the Linux kernel, libisofs, libarchive), as xorriso -rr_reloc_dir marks it
            rock_ridge = _flagged(rock_ridge, iso.RR_RE) + iso.re_entry()
        elif link:  # a file record in its place, linking to it (§4.1.5.1)
            rock_ridge = _flagged(rock_ridge, iso.RR_CL) + iso.cl_entry(tree.iso[entry.child][0])
        nm = b"".join(iso.nm_entries(entry.rr_name))
        if iso.record_length(len(entry.iso_name), len(rock_ridge) + len(nm)) > iso.MAX_RECORD:
            nm = ce(nm)
        for record in _records(entry, tree, entry.iso_name, rock_ridge + nm, out=out,
                               placeholder=link and not tree.is_moved(me)):
            records.add(record)
    return records.close(), continued.close()


def _flagged(rock_ridge: bytes, flag: int) -> bytes:
    """``rock_ridge``, which starts with its RR entry, with ``flag`` set there."""
    return rock_ridge[:4] + bytes((rock_ridge[4] | flag,)) + rock_ridge[5:]


def _joliet_directory(tree: DirTree, me: int, parent: int, store: Held | Spilled, *, out: _Output | None) -> int:
    """The Joliet records of a directory, in Joliet order: their size."""
    records = _Packer(out, tree.joliet[me][0])
    for record in _dots(tree, me, parent, joliet=True):
        records.add(record)
    for entry in store.joliet_order():
        if tree.is_moved(entry.child):
            continue
        for record in _records(entry, tree, entry.joliet_name, joliet=True, out=out):
            records.add(record)
    return records.close()


def _records(entry: Entry, tree: DirTree, identifier: bytes, system_use: bytes = b"", *,
             joliet: bool = False, out: _Output | None, placeholder: bool = False) -> Iterator[bytes | int]:
    """The directory records of an entry, one per extent, all but the last flagged
    multi-extent; without ``out`` (first pass) only their lengths. A ``placeholder`` of a
    relocated directory is an empty file record, as genisoimage writes it."""
    if placeholder:
        extents, flags, date = [(0, 0)], 0, entry.created
    elif entry.child is not None:
        extents = [tree.joliet[entry.child] if joliet else tree.iso[entry.child]]
        flags, date = iso.FLAG_DIRECTORY, entry.created
    else:
        extents, flags, date = (_extents(entry.sector, entry.size), iso.FLAG_HIDDEN if entry.flags & HIDDEN else 0,
                                entry.modified)
    if out is None:
        yield from [iso.record_length(len(identifier), len(system_use))] * len(extents)
        return
    last = len(extents) - 1
    for index, (sector, size) in enumerate(extents):
        yield iso.directory_record(identifier, extent=sector, size=size, date=iso.record_date(date),
                                   flags=flags | (iso.FLAG_MULTI_EXTENT if index < last else 0), system_use=system_use)


class _Packer:
    """The pieces of a directory's extent, one after another from ``sector`` on, written
    through a buffer, or only measured without an output (the first pass: a piece may then
    be given as its length). Where ``whole``, no piece straddles two sectors: the rule of
    directory records (ECMA-119 §6.8.1.1) and of continuation areas; UDF file identifiers
    may straddle them."""

    def __init__(self, out: _Output | None, sector: int, *, whole: bool = True) -> None:
        self._out, self._at, self._whole = out, sector * SECTOR, whole
        self._buffer = bytearray()
        self.offset = 0  # bytes laid out so far

    def add(self, piece: bytes | int) -> int:
        """Lay out ``piece``; return its offset in the extent."""
        length = piece if isinstance(piece, int) else len(piece)
        if self._whole and self.offset % SECTOR + length > SECTOR:
            self._pad(SECTOR - self.offset % SECTOR)
        at = self.offset
        self.offset += length
        if self._out is not None:
            self._buffer += piece
            if len(self._buffer) >= FLUSH_AT:
                self._flush()
        return at

    def close(self) -> int:
        """Write what is left, padded to whole sectors; return the extent's size: whole
        sectors where ``whole``, else the bytes laid out."""
        size = self.offset
        self._pad(-self.offset % SECTOR)
        if self._out is not None:
            self._flush()
        return self.offset if self._whole else size

    def _pad(self, length: int) -> None:
        self.offset += length
        if self._out is not None:
            self._buffer += bytes(length)

    def _flush(self) -> None:
        self._out.write_at(self._at, self._buffer)
        self._at += len(self._buffer)
        self._buffer = bytearray()


def _write_tables(out: _Output, tree: DirTree, tables: dict[bool, tuple], *,
                  volume_id: str, now: datetime, first: int) -> None:
    """The path tables (from sector ``first`` on) and the volume descriptors, now that every place is known."""
    sector = first
    for joliet in (False, True):
        little = _path_table(tree, tables[joliet], joliet=joliet, big_endian=False)
        size = len(little)
        out.write_at(sector * SECTOR, little)
        del little  # (the two tables are never held at once: a Joliet table may take 9 MB)
        out.write_at((sector + _sectors(size)) * SECTOR, _path_table(tree, tables[joliet], joliet=joliet, big_endian=True))
        extent, length = tree.joliet[0] if joliet else tree.iso[0]
        record = iso.directory_record(iso.DOT, extent=extent, size=length, date=iso.record_date(tree.created[0]),
                                      flags=iso.FLAG_DIRECTORY)
        out.write_at((17 if joliet else 16) * SECTOR, iso.volume_descriptor(
            joliet=joliet, volume_id=volume_id, sectors=out.sector, path_table_size=size,
            l_table=sector, m_table=sector + _sectors(size), root=record, created=now))
        sector += 2 * _sectors(size)
    out.write_at(18 * SECTOR, iso.terminator())
    os.ftruncate(out.fd, out.sector * SECTOR)  # the last file's data may end inside its last sector


def _path_table(tree: DirTree, table: tuple[Iterable[int], Iterable[int]], *, joliet: bool,
                big_endian: bool) -> bytes | bytearray:
    """A path table of ``table`` (``DirTree.path_table``), with each directory's place."""
    names, places = (tree.joliet_names, tree.joliet) if joliet else (tree.iso_names, tree.iso)
    order, parents = table
    return iso.path_table(((names[directory], places[directory][0], parent)
                           for directory, parent in zip(order, parents, strict=True)), big_endian=big_endian)
