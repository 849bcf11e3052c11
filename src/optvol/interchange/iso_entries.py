"""The entries of one directory of an image being written (export side), in the orders
its namespaces need them.

``iso_writer.py`` lays out a directory's ISO 9660 records in ISO order (ECMA-119 §9.3),
its Joliet records in Joliet order and its UDF file identifiers in any order. A directory
of up to ``SPILL_AT`` entries is held in a list and sorted there (``Held``). A larger one
goes to a temporary SQLite database, SQLite's own temporary file that is deleted when it
is closed, and comes back sorted by SQLite (``Spilled``), so that export-iso never holds
more than ``SPILL_AT`` entries of a directory, whatever it holds: one directory of
1,000,000 files took 1.5 GiB when every directory was held (DESIGN §6 asks under
150 MiB). The names the directory has handed out (``names.Namer``) are kept in the same
place as its entries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from operator import attrgetter
from typing import NamedTuple

from optvol.interchange import iso9660 as iso
from optvol.interchange.names import TakenNames

SPILL_AT = 20_000  # entries of a directory held in memory; about 1 KiB each while laid out
_BATCH = 500  # rows read or written at once


class Entry(NamedTuple):
    """One name of a directory, as the records of every namespace need it."""

    iso_name: bytes
    joliet_name: bytes  # UCS-2 big-endian
    rr_name: bytes  # UTF-8
    udf_name: bytes  # OSTA CS0; empty without a UDF bridge
    child: int | None  # the subdirectory's id; None for a file
    sector: int  # a file's first data sector (0 in the first pass, and for an empty file)
    size: int
    flags: int  # a file's flags (volume_rows.READ_ONLY, HIDDEN)
    created: int
    modified: int
    attr_changed: int
    udf_entry: int  # the sector of a file's UDF file entry


def iso_key(name: bytes) -> bytes:
    """A byte string that sorts as ``iso9660.iso_order`` does: name, then extension.
    Identifiers hold d-characters, so the 0 between them sorts before any of theirs."""
    stem, extension = iso.iso_order(name)
    return stem + b"\x00" + extension


def entries_for(count: int) -> Held | Spilled:
    """Where the entries of a directory of ``count`` entries are kept."""
    return Spilled() if count > SPILL_AT else Held()


class Held:
    """A directory's entries in a list."""

    def __init__(self) -> None:
        self._items: list[Entry] = []
        self.names = TakenNames()

    def add(self, entry: Entry) -> None:
        self._items.append(entry)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._items)

    def iso_order(self) -> list[Entry]:
        return sorted(self._items, key=lambda entry: iso_key(entry.iso_name))

    def joliet_order(self) -> list[Entry]:
        return sorted(self._items, key=attrgetter("joliet_name"))

    def close(self) -> None:
        self._items = []


class Spilled:
    """A directory's entries, and the names it has taken, in a temporary SQLite database."""

    _COLUMNS = ", ".join(Entry._fields)

    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # "": a private temporary database on disk, deleted on close
        self._db.executescript(f"""
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
            CREATE TABLE entries (iso_key BLOB, {self._COLUMNS});
            CREATE TABLE taken (space TEXT, key TEXT, PRIMARY KEY (space, key)) WITHOUT ROWID;
            CREATE TABLE numbers (base TEXT PRIMARY KEY, number INTEGER) WITHOUT ROWID;
        """)
        self._pending: list[tuple] = []
        self.names = self  # names.Names

    def claim(self, space: str, key: str) -> bool:
        return self._db.execute("INSERT OR IGNORE INTO taken VALUES (?, ?)", (space, key)).rowcount == 1

    def last_number(self, base: str) -> int:
        row = self._db.execute("SELECT number FROM numbers WHERE base = ?", (base,)).fetchone()
        return row[0] if row else 0

    def note_number(self, base: str, number: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO numbers VALUES (?, ?)", (base, number))

    def add(self, entry: Entry) -> None:
        self._pending.append((iso_key(entry.iso_name), *entry))
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        marks = ", ".join("?" * (len(Entry._fields) + 1))
        self._db.executemany(f"INSERT INTO entries VALUES ({marks})", self._pending)
        self._pending = []

    def _rows(self, order: str) -> Iterator[Entry]:
        self._flush()
        cursor = self._db.execute(f"SELECT {self._COLUMNS} FROM entries ORDER BY {order}")
        while True:
            rows = cursor.fetchmany(_BATCH)
            if not rows:
                return
            yield from map(Entry._make, rows)
            del rows  # one batch at a time: this one goes before the next is fetched

    def __iter__(self) -> Iterator[Entry]:
        return self._rows("rowid")

    def iso_order(self) -> Iterator[Entry]:
        return self._rows("iso_key")

    def joliet_order(self) -> Iterator[Entry]:
        return self._rows("joliet_name")

    def close(self) -> None:
        self._db.close()
