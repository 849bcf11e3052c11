"""Our ISO 9660 writer: a volume as an image with Joliet and Rock Ridge.

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

from optvol import errors
from optvol.interchange import iso9660 as iso
from optvol.interchange.iso9660 import SECTOR
from optvol.interchange.names import Namer
from optvol.volume import Volume
from optvol.volume_rows import READ_ONLY, DirRow, FileRow

PATH_TABLES = 19  # the first sector after the volume descriptors
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


def write_image(volume: Volume, fd: int, *, volume_id: str, now: datetime) -> tuple[int, int]:
    """Write the volume's tree as an image to the empty host file ``fd``; return (files, directories)."""
    with volume.snapshot():
        rows = volume.dir_rows("/", recursive=True)  # parents first
        if len(rows) > MAX_DIRECTORIES:
            raise errors.error("OPV0704", volume=volume_id, reason=f"{len(rows)} directories: ISO 9660 allows 65,535")
        children: dict[int, list[DirRow]] = defaultdict(list)
        for row in rows[1:]:
            children[row.parent].append(row)
        dirs = {row.id: _Dir(row, links=2 + len(children[row.id])) for row in rows}
        for row in rows:
            _measure(volume, dirs, row, children[row.id])
        root = dirs[rows[0].id]
        tables = {joliet: _path_table_entries(root, dirs, children, joliet=joliet) for joliet in (False, True)}
        data_start = _place(dirs, tables)
        out = _Output(fd, data_start)
        files = sum(_write_directory(volume, out, dirs, row, children[row.id]) for row in rows)
        out.flush()
    _write_tables(out, root, dirs, tables, volume_id=volume_id, now=now)
    return files, len(rows) - 1


def _entries(volume: Volume, dirs: dict[int, _Dir], row: DirRow, subdirs: list[DirRow], *,
             out: _Output | None) -> list[_Entry]:
    """The entries of a directory. Without ``out`` (first pass) their places and times are
    placeholders of the right size; with it, file data is written and real places are used."""
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
                              rock_ridge))
    for dir_path, file_row in volume.iter_file_rows(row.path):
        sector = out.append_payload(volume, file_row, file_row.path(dir_path)) if out and file_row.size else 0
        extents = _extents(sector, file_row.size)
        entries.append(_Entry(
            namer.iso_file(file_row.name).encode(), namer.joliet(file_row.name).encode("utf-16-be"),
            namer.rock_ridge(file_row.name).encode(), extents, extents, 0,
            iso.record_date(file_row.modified) if out else iso.ZERO_DATE,
            _file_rock_ridge(file_row) if out else _ENTRY_ROCK_RIDGE,
        ))
    return entries


def _measure(volume: Volume, dirs: dict[int, _Dir], row: DirRow, subdirs: list[DirRow]) -> None:
    """First pass: name the entries of a directory and measure its extents and continuation area."""
    me = dirs[row.id]
    parent = dirs[row.parent] if row.parent is not None else me
    entries = _entries(volume, dirs, row, subdirs, out=None)
    names, continued = _iso_plan(me, parent, entries)
    me.iso = (0, _offsets(_iso_lengths(me, parent, entries, names))[1])
    me.continuation = (0, _offsets([len(area) for area in continued])[1])
    me.joliet = (0, _offsets(_joliet_lengths(entries))[1])


def _place(dirs: dict[int, _Dir], tables: dict[bool, list]) -> int:
    """Give the path tables, then every directory, its place; return the first sector for data."""
    sector = PATH_TABLES
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
    return sector


def _sectors(size: int) -> int:
    return -(-size // SECTOR)


def _write_directory(volume: Volume, out: _Output, dirs: dict[int, _Dir], row: DirRow,
                     subdirs: list[DirRow]) -> int:
    """Second pass: write a directory's file data, then its records at their places; return its file count."""
    me = dirs[row.id]
    parent = dirs[row.parent] if row.parent is not None else me
    entries = _entries(volume, dirs, row, subdirs, out=out)
    names, continued = _iso_plan(me, parent, entries)
    records = _iso_records(me, parent, entries, names, continued)
    for (sector, size), data in ((me.iso, _pack(records)), (me.continuation, _pack(continued)),
                                 (me.joliet, _pack(_joliet_records(me, parent, entries)))):
        if len(data) != size:  # the two passes must agree: a difference is a bug (exit 70), not bad input
            raise RuntimeError(f"export-iso: {row.path} measured {size} bytes in the first pass, {len(data)} now")
        out.write_at(sector * SECTOR, data)
    return sum(1 for entry in entries if not entry.flags & iso.FLAG_DIRECTORY)


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
                  volume_id: str, now: datetime) -> None:
    """The path tables and the volume descriptors, now that every place is known."""
    sector = PATH_TABLES
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
