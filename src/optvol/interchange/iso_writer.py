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
Directories deeper than eight levels stay where they are, without Rock Ridge relocation,
as xorriso writes them by default: Rock Ridge and Joliet readers need none. Payloads are
checked against their SHA-256 as they are copied; a damaged file raises CPF1F28 and the
caller throws the image away. Memory holds one directory's entries at a time.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from optvol import errors, model
from optvol.interchange import iso9660 as iso
from optvol.interchange import udf as udfs
from optvol.interchange.iso9660 import SECTOR
from optvol.interchange.names import Namer
from optvol.volume import Volume
from optvol.volume_rows import READ_ONLY, DirRow, FileRow

PATH_TABLES = 19  # the first sector after the volume descriptors
PARTITION = udfs.ANCHOR + 1  # where the UDF partition starts: its file set descriptor
COPY_IN_KERNEL = 256 << 10  # payloads from this size on are copied by copy_file_range
FLUSH_AT = 4 << 20
FILE_MODE, READ_ONLY_MODE, DIR_MODE = 0o100644, 0o100444, 0o040755
MAX_DIRECTORIES = 0xFFFF  # a path table names its parents in 16 bits
_ENTRY_ROCK_RIDGE = bytes(len(iso.rr_entry(0) + iso.px_entry(0, 0) + iso.tf_entry(created=0, modified=0,
                                                                                  attr_changed=0)))


@dataclass
class _Dir:
    """A directory of the image: its names in its parent, and the places the first pass gave it."""

    row: DirRow
    links: int
    iso_name: bytes = b""
    joliet_name: bytes = b""
    iso: tuple[int, int] = (0, 0)  # (sector, bytes) of its ISO 9660 extent
    joliet: tuple[int, int] = (0, 0)
    continuation: tuple[int, int] = (0, 0)  # (sector, bytes) of its Rock Ridge continuation area
    udf_entry: int = 0  # the sector of its UDF file entry
    udf_identifiers: tuple[int, int] = (0, 0)  # (sector, bytes) of its UDF file identifiers


@dataclass
class _Entry:
    """One name in a directory, as its records need it."""

    iso_name: bytes
    joliet_name: bytes
    rr_name: bytes
    extents: list[tuple[int, int]]  # (sector, bytes) of each extent in the ISO 9660 tree
    joliet_extents: list[tuple[int, int]]  # the same for a file; a directory's Joliet extent
    flags: int
    date: bytes
    rock_ridge: bytes  # RR, PX and TF (NM is added when the record is laid out)
    udf_name: bytes = b""  # in CS0; empty without a UDF bridge
    udf_entry: int = 0  # the sector of its UDF file entry


class _Output:
    """The image file: data appended through a buffer, metadata written at its places."""

    def __init__(self, fd: int, sector: int) -> None:
        self.fd = fd
        self.sector = sector  # the next free sector
        self._pending = bytearray()
        self._pending_at = sector * SECTOR

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


def write_image(volume: Volume, fd: int, *, volume_id: str, now: datetime, udf: bool = False) -> tuple[int, int]:
    """Write the volume's tree as an image to the empty host file ``fd``, with a UDF bridge
    if ``udf``; return (files, directories)."""
    with volume.snapshot():
        rows = volume.dir_rows("/", recursive=True)  # parents first
        if len(rows) > MAX_DIRECTORIES:
            raise errors.error("OPV0704", volume=volume_id, reason=f"{len(rows)} directories: ISO 9660 allows 65,535")
        children: dict[int, list[DirRow]] = defaultdict(list)
        for row in rows[1:]:
            children[row.parent].append(row)
        dirs = {row.id: _Dir(row, links=2 + len(children[row.id])) for row in rows}
        for row in rows:
            _measure(volume, dirs, row, children[row.id], udf=udf)
        root = dirs[rows[0].id]
        tables = {joliet: _path_table_entries(root, dirs, children, joliet=joliet) for joliet in (False, True)}
        data_start = _place(dirs, tables, udf=udf)
        out = _Output(fd, data_start)
        files = sum(_write_directory(volume, out, dirs, row, children[row.id], udf=udf) for row in rows)
        out.flush()
    if udf:
        _write_udf_volume(out, root, volume_id=volume_id, now=now, files=files, directories=len(rows))
    _write_tables(out, root, dirs, tables, volume_id=volume_id, now=now, first=PARTITION + 2 if udf else PATH_TABLES)
    return files, len(rows) - 1


def _entries(volume: Volume, dirs: dict[int, _Dir], row: DirRow, subdirs: list[DirRow], *,
             out: _Output | None, udf: bool) -> list[_Entry]:
    """The entries of a directory. Without ``out`` (first pass) their places and times are
    placeholders of the right size; with it, file data (after its UDF file entry, with
    ``udf``) is written and real places are used."""
    namer = Namer()
    entries = []
    for subdir in subdirs:
        child = dirs[subdir.id]
        child.iso_name = namer.iso_dir(subdir.name).encode()
        child.joliet_name = namer.joliet(subdir.name).encode("utf-16-be")
        rock_ridge = _dir_rock_ridge(child, with_name=True) if out else _ENTRY_ROCK_RIDGE
        entries.append(_Entry(child.iso_name, child.joliet_name, namer.rock_ridge(subdir.name).encode(),
                              [child.iso], [child.joliet],
                              iso.FLAG_DIRECTORY, iso.record_date(subdir.created) if out else iso.ZERO_DATE,
                              rock_ridge, udfs.cs0(namer.udf(subdir.name)) if udf else b"", child.udf_entry))
    for dir_path, file_row in volume.iter_file_rows(row.path):
        udf_entry = sector = 0
        if udf and file_row.size > udfs.MAX_FILE_BYTES:  # about 251 GB: 234 descriptors in a one-block entry
            raise errors.error("OPV0704", volume=volume.id, reason=f"{file_row.path(dir_path)} has {file_row.size:,} "
                               f"bytes; a UDF file entry of one block describes {udfs.MAX_FILE_BYTES:,} at most")
        if out and udf:
            udf_entry = out.append(_udf_file_entry(out.sector, file_row))
        if out and file_row.size:
            sector = out.append_payload(volume, file_row, file_row.path(dir_path))
        extents = _extents(sector, file_row.size)
        entries.append(_Entry(
            namer.iso_file(file_row.name).encode(), namer.joliet(file_row.name).encode("utf-16-be"),
            namer.rock_ridge(file_row.name).encode(), extents, extents, 0,
            iso.record_date(file_row.modified) if out else iso.ZERO_DATE,
            _file_rock_ridge(file_row) if out else _ENTRY_ROCK_RIDGE,
            udfs.cs0(namer.udf(file_row.name)) if udf else b"", udf_entry,
        ))
    return entries


def _measure(volume: Volume, dirs: dict[int, _Dir], row: DirRow, subdirs: list[DirRow], *, udf: bool) -> None:
    """First pass: name the entries of a directory and measure its extents, continuation
    area and UDF file identifiers."""
    me = dirs[row.id]
    parent = dirs[row.parent] if row.parent is not None else me
    entries = _entries(volume, dirs, row, subdirs, out=None, udf=udf)
    names, continued = _iso_plan(me, parent, entries)
    me.iso = (0, _offsets(_iso_lengths(me, parent, entries, names))[1])
    me.continuation = (0, _offsets([len(area) for area in continued])[1])
    me.joliet = (0, _offsets(_joliet_lengths(entries))[1])
    if udf:
        me.udf_identifiers = (0, sum(udfs.identifier_length(entry.udf_name) for entry in entries)
                              + udfs.identifier_length(b""))


def _place(dirs: dict[int, _Dir], tables: dict[bool, list], *, udf: bool) -> int:
    """Give the path tables, then every directory (and, with ``udf``, every directory's UDF
    file entry and identifiers) its place; return the first sector for data."""
    sector = PARTITION + 2 if udf else PATH_TABLES
    for joliet, entries in tables.items():
        sector += 2 * _sectors(len(_path_table(entries, joliet=joliet, big_endian=False)))
    for joliet in (False, True):
        for _, directory, _ in tables[joliet]:
            if joliet:
                directory.joliet = (sector, directory.joliet[1])
                sector += _sectors(directory.joliet[1])
                continue
            directory.iso = (sector, directory.iso[1])
            sector += _sectors(directory.iso[1])
            directory.continuation = (sector, directory.continuation[1])
            sector += _sectors(directory.continuation[1])
    for _, directory, _ in tables[False] if udf else ():
        directory.udf_entry = sector
        directory.udf_identifiers = (sector + 1, directory.udf_identifiers[1])
        sector += 1 + _sectors(directory.udf_identifiers[1])
    return sector


def _sectors(size: int) -> int:
    return -(-size // SECTOR)


def _write_directory(volume: Volume, out: _Output, dirs: dict[int, _Dir], row: DirRow,
                     subdirs: list[DirRow], *, udf: bool) -> int:
    """Second pass: write a directory's file data, then its records at their places; return its file count."""
    me = dirs[row.id]
    parent = dirs[row.parent] if row.parent is not None else me
    entries = _entries(volume, dirs, row, subdirs, out=out, udf=udf)
    names, continued = _iso_plan(me, parent, entries)
    records = _iso_records(me, parent, entries, names, continued)
    places = [(me.iso, _pack(records)), (me.continuation, _pack(continued)),
              (me.joliet, _pack(_joliet_records(me, parent, entries)))]
    if udf:
        places.append((me.udf_identifiers, _udf_identifiers(me, parent, entries)))
        out.write_at(me.udf_entry * SECTOR, _udf_directory_entry(me, links=1 + len(subdirs)))
    for (sector, size), data in places:
        if len(data) != size:  # the two passes must agree: a difference is a bug (exit 70), not bad input
            raise RuntimeError(f"export-iso: {row.path} measured {size} bytes in the first pass, {len(data)} now")
        out.write_at(sector * SECTOR, data)
    return sum(1 for entry in entries if not entry.flags & iso.FLAG_DIRECTORY)


def _unique(sector: int, *, root: bool = False) -> int:
    """The UDF unique ID of the file entry at ``sector``: 0 for the root, else 16 and up (UDF 3.2.1.1)."""
    return 0 if root else 16 + sector - PARTITION


def _udf_file_entry(sector: int, row: FileRow) -> bytes:
    """The UDF file entry of a file, at ``sector``, its data in the sectors that follow it."""
    return udfs.file_entry(sector - PARTITION, directory=False, mode=READ_ONLY_MODE if row.flags & READ_ONLY
                           else FILE_MODE, links=1, size=row.size, ads=udfs.short_ads(sector + 1 - PARTITION, row.size),
                           modified=row.modified, attr_changed=row.attr_changed, unique=_unique(sector))


def _udf_directory_entry(me: _Dir, *, links: int) -> bytes:
    sector, size = me.udf_identifiers
    return udfs.file_entry(me.udf_entry - PARTITION, directory=True, mode=DIR_MODE, links=links, size=size,
                           ads=udfs.short_ads(sector - PARTITION, size), modified=me.row.created,
                           attr_changed=me.row.created, unique=_unique(me.udf_entry, root=me.row.parent is None))


def _udf_identifiers(me: _Dir, parent: _Dir, entries: list[_Entry]) -> bytes:
    """The file identifiers of a directory: its parent's, then one for each entry (4/14.4)."""
    targets = [(b"", udfs.CHAR_PARENT | udfs.CHAR_DIRECTORY, parent.udf_entry, parent.row.parent is None)]
    targets += [(entry.udf_name, udfs.CHAR_DIRECTORY if entry.flags & iso.FLAG_DIRECTORY else 0, entry.udf_entry, False)
                for entry in entries]
    start, at, pieces = me.udf_identifiers[0], 0, []
    for name, characteristics, sector, root in targets:
        piece = udfs.file_identifier(start + at // SECTOR - PARTITION, name=name, characteristics=characteristics,
                                     entry=sector - PARTITION, unique=_unique(sector, root=root))
        pieces.append(piece)
        at += len(piece)
    return b"".join(pieces)


def _write_udf_volume(out: _Output, root: _Dir, *, volume_id: str, now: datetime, files: int,
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

    out.write_at(19 * SECTOR, b"".join(udfs.volume_structure(name) for name in (b"BEA01", b"NSR02", b"TEA01")))
    for start in (udfs.MAIN_SEQUENCE, udfs.RESERVE_SEQUENCE):
        out.write_at(start * SECTOR, sectors(*udfs.volume_sequence(start, volume_id=volume_id, recorded=recorded,
                                                                    partition=(PARTITION, length))))
    integrity = udfs.integrity(recorded=recorded, next_unique=16 + length, partition_length=length, files=files,
                               directories=directories)
    out.write_at(udfs.INTEGRITY_SEQUENCE * SECTOR, sectors(integrity, udfs.terminating(udfs.INTEGRITY_SEQUENCE + 1)))
    file_set = udfs.file_set(recorded=recorded, volume_id=volume_id, root=root.udf_entry - PARTITION)
    out.write_at(PARTITION * SECTOR, sectors(file_set, udfs.terminating(1)))  # blocks 0 and 1 of the partition
    for sector in (udfs.ANCHOR, last):
        out.write_at(sector * SECTOR, udfs.anchor(udfs.MAIN_SEQUENCE, udfs.RESERVE_SEQUENCE, sector))


def _extents(sector: int, size: int) -> list[tuple[int, int]]:
    """(sector, bytes) of each extent of a file of ``size`` bytes starting at ``sector``."""
    extents = []
    while size > iso.MAX_EXTENT:
        extents.append((sector, iso.MAX_EXTENT))
        sector, size = sector + iso.MAX_EXTENT // SECTOR, size - iso.MAX_EXTENT
    extents.append((sector, size))
    return extents


def _file_rock_ridge(row: FileRow) -> bytes:
    return (iso.rr_entry(iso.RR_PX | iso.RR_NM | iso.RR_TF)
            + iso.px_entry(READ_ONLY_MODE if row.flags & READ_ONLY else FILE_MODE, 1)
            + iso.tf_entry(created=row.created, modified=row.modified, attr_changed=row.attr_changed))


def _dir_rock_ridge(directory: _Dir, *, with_name: bool) -> bytes:
    created = directory.row.created
    return (iso.rr_entry(iso.RR_PX | iso.RR_TF | (iso.RR_NM if with_name else 0))
            + iso.px_entry(DIR_MODE, directory.links)
            + iso.tf_entry(created=created, modified=created, attr_changed=created))


def _iso_plan(me: _Dir, parent: _Dir, entries: list[_Entry]) -> tuple[list[bytes | int], list[bytes]]:
    """Sort the entries into ISO 9660 order and decide where each one's NM entries go:
    (per entry its NM entries, or the index of its continuation; the continuation areas).

    A record whose Rock Ridge entries do not fit in 255 bytes keeps RR, PX and TF and
    continues (CE) with its NM entries in the area; the root's "." continues with ER.
    """
    entries.sort(key=lambda entry: iso.iso_order(entry.iso_name))
    continued: list[bytes] = [iso.er_entry()] if me is parent else []  # only the root is its own parent
    names: list[bytes | int] = []
    for entry in entries:
        nm = b"".join(iso.nm_entries(entry.rr_name))
        if iso.record_length(len(entry.iso_name), len(entry.rock_ridge) + len(nm)) <= iso.MAX_RECORD:
            names.append(nm)
        else:
            names.append(len(continued))
            continued.append(nm)
    return names, continued


def _dot_system_use(me: _Dir, parent: _Dir, ce: bytes) -> bytes:
    """Rock Ridge of the "." record; the root's starts with SP and continues (``ce``) with ER."""
    dot = _dir_rock_ridge(me, with_name=False)
    return iso.sp_entry() + dot[:5] + ce + dot[5:] if me is parent else dot


def _iso_lengths(me: _Dir, parent: _Dir, entries: list[_Entry], names: list[bytes | int]) -> list[int]:
    """The lengths of the records ``_iso_records`` makes from the same plan (first pass)."""
    lengths = [iso.record_length(1, len(_dot_system_use(me, parent, bytes(iso.CE_LENGTH)))),
               iso.record_length(1, len(_dir_rock_ridge(parent, with_name=False)))]
    for entry, nm in zip(entries, names, strict=True):
        system_use = len(entry.rock_ridge) + (iso.CE_LENGTH if isinstance(nm, int) else len(nm))
        lengths += [iso.record_length(len(entry.iso_name), system_use)] * len(entry.extents)
    return lengths


def _iso_records(me: _Dir, parent: _Dir, entries: list[_Entry], names: list[bytes | int],
                 continued: list[bytes]) -> list[bytes]:
    """The ISO 9660 records of a directory, by the plan of ``_iso_plan``."""
    places, _ = _offsets([len(area) for area in continued])

    def ce(index: int) -> bytes:
        return iso.ce_entry(me.continuation[0] + places[index] // SECTOR, places[index] % SECTOR,
                            len(continued[index]))

    dot = _dot_system_use(me, parent, ce(0) if me is parent else b"")
    records = [iso.directory_record(iso.DOT, extent=me.iso[0], size=me.iso[1], date=iso.record_date(me.row.created),
                                    flags=iso.FLAG_DIRECTORY, system_use=dot),
               iso.directory_record(iso.DOTDOT, extent=parent.iso[0], size=parent.iso[1],
                                    date=iso.record_date(parent.row.created), flags=iso.FLAG_DIRECTORY,
                                    system_use=_dir_rock_ridge(parent, with_name=False))]
    for entry, nm in zip(entries, names, strict=True):
        system_use = entry.rock_ridge + (ce(nm) if isinstance(nm, int) else nm)
        records.extend(_records(entry, entry.iso_name, system_use))
    return records


def _joliet_records(me: _Dir, parent: _Dir, entries: list[_Entry]) -> list[bytes]:
    records = [iso.directory_record(iso.DOT, extent=me.joliet[0], size=me.joliet[1],
                                    date=iso.record_date(me.row.created), flags=iso.FLAG_DIRECTORY),
               iso.directory_record(iso.DOTDOT, extent=parent.joliet[0], size=parent.joliet[1],
                                    date=iso.record_date(parent.row.created), flags=iso.FLAG_DIRECTORY)]
    for entry in sorted(entries, key=lambda entry: entry.joliet_name):
        records.extend(_records(entry, entry.joliet_name, joliet=True))
    return records


def _joliet_lengths(entries: list[_Entry]) -> list[int]:
    """The lengths of the records ``_joliet_records`` makes (first pass)."""
    lengths = [iso.record_length(1, 0)] * 2
    for entry in sorted(entries, key=lambda entry: entry.joliet_name):
        lengths += [iso.record_length(len(entry.joliet_name), 0)] * len(entry.joliet_extents)
    return lengths


def _records(entry: _Entry, identifier: bytes, system_use: bytes = b"", *, joliet: bool = False) -> list[bytes]:
    """The directory records of an entry: one per extent, all but the last flagged multi-extent."""
    extents = entry.joliet_extents if joliet else entry.extents
    last = len(extents) - 1
    return [iso.directory_record(identifier, extent=sector, size=size, date=entry.date,
                                 flags=entry.flags | (iso.FLAG_MULTI_EXTENT if index < last else 0),
                                 system_use=system_use)
            for index, (sector, size) in enumerate(extents)]


def _offsets(lengths: list[int]) -> tuple[list[int], int]:
    """Where pieces of these lengths go when none may straddle two sectors: (offsets, size
    in whole sectors). Directory records and continuation areas are laid out by this rule."""
    offsets, at = [], 0
    for length in lengths:
        if at % SECTOR + length > SECTOR:
            at += SECTOR - at % SECTOR
        offsets.append(at)
        at += length
    return offsets, -(-at // SECTOR) * SECTOR


def _pack(pieces: list[bytes]) -> bytes:
    """Pieces laid into whole sectors by ``_offsets``."""
    offsets, size = _offsets([len(piece) for piece in pieces])
    out = bytearray(size)
    for piece, offset in zip(pieces, offsets, strict=True):
        out[offset:offset + len(piece)] = piece
    return bytes(out)


def _path_table_entries(root: _Dir, dirs: dict[int, _Dir], children: dict[int, list[DirRow]], *,
                        joliet: bool) -> list[tuple[bytes, _Dir, int]]:
    """(identifier, directory, parent number) of every directory, breadth first,
    each level by parent number, then identifier (ECMA-119 §9.4)."""
    entries = [(iso.DOT, root, 1)]
    queue = [root]
    for number, directory in enumerate(queue, start=1):
        kids = [dirs[row.id] for row in children[directory.row.id]]
        kids.sort(key=(lambda kid: kid.joliet_name) if joliet else (lambda kid: iso.iso_order(kid.iso_name)))
        entries.extend((kid.joliet_name if joliet else kid.iso_name, kid, number) for kid in kids)
        queue.extend(kids)
    return entries


def _write_tables(out: _Output, root: _Dir, dirs: dict[int, _Dir], tables: dict[bool, list], *,
                  volume_id: str, now: datetime, first: int) -> None:
    """The path tables (from sector ``first`` on) and the volume descriptors, now that every place is known."""
    sector = first
    for joliet in (False, True):
        little = _path_table(tables[joliet], joliet=joliet, big_endian=False)
        big = _path_table(tables[joliet], joliet=joliet, big_endian=True)
        out.write_at(sector * SECTOR, little)
        out.write_at((sector + _sectors(len(little))) * SECTOR, big)
        extent, length = root.joliet if joliet else root.iso
        record = iso.directory_record(iso.DOT, extent=extent, size=length, date=iso.record_date(root.row.created),
                                      flags=iso.FLAG_DIRECTORY)
        out.write_at((17 if joliet else 16) * SECTOR, iso.volume_descriptor(
            joliet=joliet, volume_id=volume_id, sectors=out.sector, path_table_size=len(little),
            l_table=sector, m_table=sector + _sectors(len(little)), root=record, created=now))
        sector += 2 * _sectors(len(little))
    out.write_at(18 * SECTOR, iso.terminator())
    os.ftruncate(out.fd, out.sector * SECTOR)  # the last file's data may end inside its last sector


def _path_table(entries: list[tuple[bytes, _Dir, int]], *, joliet: bool, big_endian: bool) -> bytes:
    rows = [(name, (directory.joliet if joliet else directory.iso)[0], number) for name, directory, number in entries]
    return iso.path_table(rows, big_endian=big_endian)
