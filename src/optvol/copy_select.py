"""CPYOPT selection: a query over the source and target indexes (DESIGN §3 "Speed").

A read-only SQLite connection opens the source index and attaches the target's, so one
statement per directory joins source files to their namesakes on the target and, on a
*BACKUP target, skips by index every file whose last change lies inside the directory's
complete backup range (reference §6.1: those are on the backup already).
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from optvol.backup import Range
from optvol.image.image import IndexConnection
from optvol.volume import Volume
from optvol.volume_rows import FILE_COLUMNS, FileRow

_SOURCE_COLUMNS = ", ".join("s." + c.strip() for c in FILE_COLUMNS.split(","))


class Candidate(NamedTuple):
    """A source file the FROMTIME and range filters let through, with its target namesake."""

    row: FileRow
    name: str  # the name on the target
    path: str  # the path on the source
    target_modified: int | None
    target_attr_changed: int | None

    @property
    def size(self) -> int:
        return self.row.size

    @property
    def created(self) -> int:
        return self.row.created

    @property
    def modified(self) -> int:
        return self.row.modified

    @property
    def attr_changed(self) -> int:
        return self.row.attr_changed

    @property
    def flags(self) -> int:
        return self.row.flags


class Selection:
    """The selection connection of one CPYOPT request (a context manager)."""

    def __init__(self, source: Volume, target: Volume):
        self.source = source
        index = source.image.directory / "index.sqlite"
        # An IndexConnection: a damaged index fails as damaged data (exit 7), not with a traceback.
        self.conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True, isolation_level=None, factory=IndexConnection)
        self.conn.where = source.id
        self.conn.execute("PRAGMA busy_timeout = 60000")
        # As much page cache as a volume's own connection: a directory's rows lie all over the
        # files table (in the order they were written), so a small cache rereads its pages.
        self.conn.execute("PRAGMA cache_size = -16000")
        if target is source:
            self.target_schema = "main"
        else:
            self.conn.execute("ATTACH DATABASE ? AS tgt", (f"file:{target.image.directory / 'index.sqlite'}?mode=ro",))
            self.target_schema = "tgt"

    def __enter__(self) -> Selection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def _select(self, where: str) -> str:
        return (
            f"SELECT {_SOURCE_COLUMNS}, d.path, t.modified, t.attr_changed FROM main.files AS s"
            f" JOIN main.dirs AS d ON d.id = s.dir"
            f" LEFT JOIN {self.target_schema}.files AS t ON t.dir = :tdir AND t.name_key = s.name_key AND t.live = 1"
            f" WHERE s.dir = :sdir AND s.live = 1 {where}"
        )

    def candidates(self, source_dir: int, target_dir: int, *, from_time: int | None, skip: Range) -> list[Candidate]:
        """Files of a source directory changed at or after ``from_time`` and not inside ``skip``."""
        where = "" if from_time is None else "AND s.changed >= :from"
        args = {"sdir": source_dir, "tdir": target_dir, "from": from_time}
        if not skip.has_range:
            rows = self.conn.execute(self._select(where), args).fetchall()
        else:
            # Two index range scans: changed after the range, and (if it has a start) before it.
            rows = self.conn.execute(self._select(where + " AND s.changed > :end"), {**args, "end": skip.end}).fetchall()
            if skip.start is not None:
                rows += self.conn.execute(self._select(where + " AND s.changed < :start"),
                                          {**args, "start": skip.start}).fetchall()
        return [self._candidate(r) for r in rows]

    def single(self, source_dir: int, name: str, target_dir: int, target_name: str, *,
               from_time: int | None) -> list[Candidate]:
        """The one file a file FROMPATH names, matched against ``target_name`` on the target."""
        where = "AND s.name_key = :name" + ("" if from_time is None else " AND s.changed >= :from")
        sql = self._select(where).replace("t.name_key = s.name_key", "t.name_key = :tname")
        rows = self.conn.execute(sql, {"sdir": source_dir, "tdir": target_dir, "name": name.upper(),
                                       "tname": target_name.upper(), "from": from_time}).fetchall()
        return [self._candidate(r, name=target_name) for r in rows]

    def live_files(self, source_dir: int) -> int:
        return self.conn.execute("SELECT count(*) FROM main.files WHERE dir = ? AND live = 1", (source_dir,)).fetchone()[0]

    @staticmethod
    def _candidate(r: tuple, name: str | None = None) -> Candidate:
        row = FileRow(*r[:15])
        return Candidate(row, name or row.name, row.path(r[15]), r[16], r[17])
