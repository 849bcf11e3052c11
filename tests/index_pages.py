"""Make one entry of a SQLite index point at another row (a test helper): the rowid that
ends the entry's record is rewritten in place, same size, so the page stays well formed
(SQLite keeps no checksum of its pages). The index's B-tree is read page by page, so an
entry is found by its keys however short they are (dirs_parent's is one byte).

    entries(db, index)            -> [(keys, rowid)]  every entry of the index
    repoint(db, index, keys, new) -> the rowid of the entry whose keys are ``keys``, now ``new``
    set_flag(db, table, rowid, column, value)  a 0/1 column of one row of a table, the
                                  indexes untouched (its serial type 8 or 9: no body byte)
"""
from __future__ import annotations

import sqlite3
from pathlib import Path


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        b = buf[at + i]
        if i == 8:
            return (value << 8) | b, at + 9
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, at + i + 1
    raise AssertionError


def _size(serial: int) -> int:
    return {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}.get(serial) if serial < 12 \
        else (serial - 12) // 2 if serial % 2 == 0 else (serial - 13) // 2


def _value(serial: int, raw: bytes):
    if serial == 8:
        return 0
    if serial == 9:
        return 1
    if serial == 0:
        return None
    if 1 <= serial <= 6:
        return int.from_bytes(raw, "big", signed=True)
    if serial >= 13 and serial % 2:
        return raw.decode()
    return bytes(raw)


def _cells(raw: bytes, page_size: int, page: int):
    """(offset of the rowid's bytes, its size, keys, rowid) of every cell below ``page``."""
    base = (page - 1) * page_size
    head = base + (100 if page == 1 else 0)
    kind = raw[head]
    count = int.from_bytes(raw[head + 3:head + 5], "big")
    hsize = 12 if kind == 0x02 else 8
    assert kind in (0x02, 0x0A), f"page {page} is not an index page ({kind:#x})"
    for n in range(count):
        cell = base + int.from_bytes(raw[head + hsize + 2 * n:head + hsize + 2 * n + 2], "big")
        if kind == 0x02:
            child = int.from_bytes(raw[cell:cell + 4], "big")
            yield from _cells(raw, page_size, child)
            cell += 4
        _, at = _varint(raw, cell)  # payload size
        start = at
        header_size, p = _varint(raw, at)
        serials = []
        while p < start + header_size:
            s, p = _varint(raw, p)
            serials.append(s)
        body = start + header_size
        values, offsets = [], []
        for s in serials:
            offsets.append(body)
            values.append(_value(s, raw[body:body + _size(s)]))
            body += _size(s)
        yield offsets[-1], _size(serials[-1]), tuple(values[:-1]), values[-1]
    if kind == 0x02:
        yield from _cells(raw, page_size, int.from_bytes(raw[head + 8:head + 12], "big"))


def _root(db: Path, index: str) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    finally:
        conn.close()
    return root, page_size


def entries(db, index: str) -> list[tuple[tuple, int]]:
    db = Path(db)
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0, "a -wal is beside it"
    root, page_size = _root(db, index)
    raw = db.read_bytes()
    return [(keys, rowid) for _, _, keys, rowid in _cells(raw, page_size, root)]


def repoint(db, index: str, keys: tuple, new: int, *, rowid: int | None = None) -> int:
    """Rewrite the rowid of the first entry of ``index`` with ``keys`` (and ``rowid``, if
    given) to ``new``; return its old rowid."""
    db = Path(db)
    root, page_size = _root(db, index)
    raw = bytearray(db.read_bytes())
    for at, size, found, old in _cells(bytes(raw), page_size, root):
        if found == tuple(keys) and rowid in (None, old):
            raw[at:at + size] = new.to_bytes(size, "big", signed=True)
            db.write_bytes(raw)
            return old
    raise LookupError(f"no entry {keys!r} in {index}: {entries(db, index)}")



def _rows(raw: bytes, page_size: int, page: int):
    """(rowid, [(serial type, its offset)]) of every row below table page ``page``."""
    base = (page - 1) * page_size
    head = base + (100 if page == 1 else 0)
    kind = raw[head]
    count = int.from_bytes(raw[head + 3:head + 5], "big")
    assert kind in (0x05, 0x0D), f"page {page} is not a table page ({kind:#x})"
    for n in range(count):
        cell = base + int.from_bytes(raw[head + (12 if kind == 0x05 else 8) + 2 * n:][:2], "big")
        if kind == 0x05:
            yield from _rows(raw, page_size, int.from_bytes(raw[cell:cell + 4], "big"))
            continue
        _, at = _varint(raw, cell)  # payload size
        rowid, start = _varint(raw, at)
        header_size, p = _varint(raw, start)
        serials = []
        while p < start + header_size:
            s, after = _varint(raw, p)
            serials.append((s, p))
            p = after
        yield rowid, serials
    if kind == 0x05:
        yield from _rows(raw, page_size, int.from_bytes(raw[head + 8:head + 12], "big"))


def set_flag(db, table: str, rowid: int, column: str, value: int) -> None:
    """Set ``column`` (holding 0 or 1) of row ``rowid`` of ``table`` to ``value`` in the page
    itself, as one changed byte would: SQLite writes 0 and 1 as serial types 8 and 9 with no
    body, so the row keeps its size and no index learns of it."""
    db = Path(db)
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0, "a -wal is beside it"
    root, page_size = _root(db, table)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        at = [name for _, name, *_ in conn.execute(f"PRAGMA table_info({table})")].index(column)
    finally:
        conn.close()
    raw = bytearray(db.read_bytes())
    for found, serials in _rows(bytes(raw), page_size, root):
        if found == rowid:
            serial, offset = serials[at]
            assert serial in (8, 9), f"{table}.{column} of row {rowid} is no 0 or 1 (serial type {serial})"
            raw[offset] = 9 if value else 8
            db.write_bytes(raw)
            return
    raise LookupError(f"no row {rowid} in {table}")
