"""CPYOPT selection and reading: what to copy from each source directory, and its bytes.

A read-only SQLite connection opens the source index and attaches the target's, so one
statement per directory joins source files to their namesakes on the target and, on a
*BACKUP target, skips by index every file whose last change lies inside the directory's
complete backup range (reference §6.1: those are on the backup already) (DESIGN §3
"Speed"). ``Choice`` applies SLTFILE to what the query let through; ``read_directory``
then reads and verifies the chosen small files, in pieces the writer takes one at a
time, as the query's rows come: memory holds a piece, never a whole directory. It reads
only committed state and writes nothing, so it can run ahead of the writer in another
process (``copy_readahead.py``).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from optvol import errors, model
from optvol.backup import Range
from optvol.image.image import IndexConnection, reading_uri
from optvol.model import MediaFormat
from optvol.privileged import SmallFile
from optvol.volume import Volume
from optvol.volume_rows import FILE_COLUMNS, DirRow, FileRow

SMALL_FILE = 256 << 10  # read whole, verify, then write; larger ones: kernel copy + parallel hash, in a savepoint
SMALL_GROUP = 8 << 20  # at most this many bytes of small files are read into one piece
PIECE_FILES = 1000  # and at most this many files go into one piece

_SOURCE_COLUMNS = ", ".join("s." + c.strip() for c in FILE_COLUMNS.split(","))


class Candidate(NamedTuple):
    """A source file the FROMTIME and range filters let through, with its target namesake."""

    row: FileRow
    name: str  # the name on the target
    dir_path: str  # the source directory's path
    target_modified: int | None
    target_attr_changed: int | None

    @property
    def path(self) -> str:
        """The path on the source."""
        return self.row.path(self.dir_path)

    @property
    def size(self) -> int:
        return self.row.size

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
        index = source.image.index_path
        # An IndexConnection: a damaged index fails as damaged data (exit 7), not with a traceback.
        self.conn = sqlite3.connect(reading_uri(index, read_only=source.image.read_only), uri=True,
                                    isolation_level=None, factory=IndexConnection)
        self.conn.where = source.id
        self.conn.execute("PRAGMA busy_timeout = 60000")
        # As much page cache as a volume's own connection: a directory's rows lie all over the
        # files table (in the order they were written), so a small cache rereads its pages.
        self.conn.execute("PRAGMA cache_size = -16000")
        if target is source:
            self.target_schema = "main"
        else:
            self.conn.execute("ATTACH DATABASE ? AS tgt",
                              (reading_uri(target.image.index_path, read_only=target.image.read_only),))
            self.target_schema = "tgt"

    def __enter__(self) -> Selection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def _select(self, where: str, columns: str = f"{_SOURCE_COLUMNS}, t.modified, t.attr_changed") -> str:
        return (
            f"SELECT {columns} FROM main.files AS s"
            f" LEFT JOIN {self.target_schema}.files AS t ON t.dir = :tdir AND t.name_key = s.name_key AND t.live = 1"
            f" WHERE s.dir = :sdir AND s.live = 1 {where}"
        )

    def _windows(self, source_dir: DirRow, target_path: str, choice: Choice) -> list[tuple[str, dict]]:
        """The conditions (and their values) of a directory's files changed at or after
        FROMTIME and not inside what its target directory (as committed) holds by
        ``choice.skip``: one or two index range scans (changed after the range, and, if it
        has a start, before it)."""
        target_id, target_range = self.target_dir(target_path)
        skip, from_time = choice.skip(target_range), choice.start
        where = "" if from_time is None else "AND s.changed >= :from"
        args = {"sdir": source_dir.id, "tdir": target_id, "from": from_time}
        if not skip.has_range:
            return [(where, args)]
        windows = [(where + " AND s.changed > :end", {**args, "end": skip.end})]
        if skip.start is not None:
            windows.append((where + " AND s.changed < :start", {**args, "start": skip.start}))
        return windows

    def candidates(self, source_dir: DirRow, target_path: str, choice: Choice) -> Iterator[list[Candidate]]:
        """The files of a source directory ``_windows`` lets through, in lists of at most
        PIECE_FILES as the query gives them: a directory of a million files is never held
        whole."""
        for where, values in self._windows(source_dir, target_path, choice):
            cursor = self.conn.execute(self._select(where), values)
            while rows := cursor.fetchmany(PIECE_FILES):
                yield [Candidate(FileRow(*r[:15]), r[2], source_dir.path, r[15], r[16]) for r in rows]

    def totals(self, source_dir: DirRow, target_path: str, choice: Choice) -> tuple[int, int]:
        """The files of ``candidates`` that ``choice`` selects, and their bytes, counted by
        SQLite alone (what a progress bar counts up to)."""
        files = size = 0
        for where, values in self._windows(source_dir, target_path, choice):
            found = self.conn.execute(self._select(f"{where} AND {choice.selected_sql()}", "count(*), total(s.size)"),
                                      values).fetchone()
            files, size = files + found[0], size + int(found[1])
        return files, size

    def single(self, source_dir: DirRow, name: str, target_dir: int, target_name: str, *,
               from_time: int | None) -> list[Candidate]:
        """The one file a file FROMPATH names, matched against ``target_name`` on the target."""
        where = "AND s.name_key = :name" + ("" if from_time is None else " AND s.changed >= :from")
        sql = self._select(where).replace("t.name_key = s.name_key", "t.name_key = :tname")
        rows = self.conn.execute(sql, {"sdir": source_dir.id, "tdir": target_dir, "name": name.upper(),
                                       "tname": target_name.upper(), "from": from_time}).fetchall()
        return [Candidate(FileRow(*r[:15]), target_name, source_dir.path, r[15], r[16]) for r in rows]

    def target_dir(self, path: str) -> tuple[int | None, Range]:
        """The target directory at ``path`` as committed: its id (None if missing) and backup range."""
        row = self.conn.execute(f"SELECT id, backup_start, backup_end, backup_last_changed FROM {self.target_schema}.dirs"
                                " WHERE path_key = ? AND live = 1", (model.name_key(path),)).fetchone()
        return (None, Range()) if row is None else (row[0], Range.from_row(*row[1:]))

    def live_files(self, source_dir: DirRow) -> int:
        """The directory's live files, as its row keeps them (not a count over the files)."""
        row = self.conn.execute("SELECT live_files FROM main.dirs WHERE id = ?", (source_dir.id,)).fetchone()
        if row is None:  # the row was there a moment ago: a damaged index
            raise errors.error("OPV0201", volume=self.source.id, reason=f"directory {source_dir.path} has no index row")
        return row[0]


class Choice(NamedTuple):
    """SLTFILE and the dates of one request (reference §5.4): which candidates are copied, and with which times."""

    sltfile: str  # *CHANGED, *NEW or *ALL
    to_backup: bool
    keep_dates: bool  # a backup or a restore keeps the source's dates; other copies get the request time
    now: int  # the request time (microseconds)
    start: int | None  # FROMTIME (None: *BEGIN *AVAIL)
    target: str  # the target volume
    target_format: MediaFormat | None  # set when the media formats differ: names must also be valid there

    def selected(self, c: Candidate) -> bool:
        """SLTFILE against the file on the target."""
        if c.target_modified is None or self.sltfile == "*ALL":
            return True
        if self.sltfile == "*NEW":
            return False
        return self.changed_on_source(c)

    def selected_sql(self) -> str:
        """``selected`` as a condition on a row of the selection query (``s`` the source file,
        ``t`` its namesake on the target, all NULL when there is none), for ``Selection.totals``."""
        if self.sltfile == "*ALL":
            return "1"
        if self.sltfile == "*NEW":
            return "t.modified IS NULL"
        if self.to_backup:
            return "(t.modified IS NULL OR s.modified > t.modified OR s.attr_changed > t.attr_changed)"
        return "(t.modified IS NULL OR max(s.modified, s.attr_changed) > t.modified)"

    def changed_on_source(self, c: Candidate) -> bool:
        """*CHANGED: the source's data or attributes changed since the copy on the target."""
        if c.target_modified is None:
            return False
        if self.to_backup:
            return c.modified > c.target_modified or c.attr_changed > c.target_attr_changed
        return max(c.modified, c.attr_changed) > c.target_modified

    def skip(self, target_range: Range) -> Range:
        """What the query may skip: on a backup, what the directory's range says it holds.

        Unless the clock now reads earlier than the range's end (it was set back): a file
        changed since then carries a time inside the range although the backup lacks it,
        so this run compares every file instead (the range then ends at this run's time).
        Nor does an empty range, whose start lies after its end (a request whose FROMTIME
        was later than its own time records one): it holds nothing, and its two windows
        ("changed after the end", "changed before the start") would overlap.
        """
        if not self.to_backup or self.sltfile == "*ALL" or not target_range.has_range:
            return Range()
        if target_range.end > self.now:
            return Range()
        if target_range.start is not None and target_range.start > target_range.end:
            return Range()
        return target_range

    def times(self, row: FileRow) -> tuple[int, int, int]:
        """The (created, modified, attribute-changed) times a copy of source version ``row`` gets."""
        return (row.created, row.modified, row.attr_changed) if self.keep_dates else (self.now, self.now, self.now)

    def check_name(self, target_dir: str, name: str) -> None:
        """Between media formats, a name must also be valid on the target (InvalidError otherwise)."""
        if self.target_format is not None:
            model.split_path(join(target_dir, name), volume=self.target, media_format=self.target_format)


class Pick(NamedTuple):
    """The end of one directory's reading: files not selected, and whether *NEW left changed ones."""

    not_selected: int
    stale: bool


class Piece(NamedTuple):
    """Part of a directory's copy: small files read and verified, large ones for the kernel to
    copy, and the files that failed before any write (path and error)."""

    small: list[SmallFile]  # or plain tuples of its fields (see read_pieces)
    large: list[Candidate]
    failures: list[tuple[str, errors.OptvolError]]


def read_directory(selection: Selection, source: Volume, choice: Choice, source_dir: DirRow, target_dir: str,
                   ) -> Iterator[Piece | Pick]:
    """One directory: its Pieces as the query gives the files (the target directory as
    committed decides), then its Pick, which ends it."""
    batches = selection.candidates(source_dir, target_dir, choice)
    chosen, stale = 0, False

    def choose() -> Iterator[list[Candidate]]:
        nonlocal chosen, stale
        for batch in batches:
            # *NEW leaves changed files alone: the range cannot claim their new versions.
            if choice.sltfile == "*NEW" and not stale:
                stale = any(choice.changed_on_source(c) for c in batch)
            picked = [c for c in batch if choice.selected(c)]
            chosen += len(picked)
            yield picked

    yield from read_pieces(source, choice, itertools.chain.from_iterable(choose()), target_dir)
    yield Pick(selection.live_files(source_dir) - chosen, stale)


def read_pieces(source: Volume, choice: Choice, chosen: Iterable[Candidate], target_dir: str) -> Iterator[Piece]:
    """The chosen files in pieces: small ones read whole and verified (at most SMALL_GROUP
    bytes or PIECE_FILES files a piece), large ones passed on by PIECE_FILES."""
    small, large, failures, held = [], [], [], 0
    for c in chosen:
        row = c.row
        try:
            choice.check_name(target_dir, c.name)
            if row.size > SMALL_FILE:
                large.append(c)
            else:
                # A SmallFile's fields as a plain tuple: it crosses the read-ahead pipe five times faster.
                small.append((c.name, source.read_verified(row, directory=c.dir_path), row.sha256, choice.times(row),
                              row.flags))
                held += row.size
        except errors.OptvolError as exc:
            failures.append((join(target_dir, c.name), exc))
        if held >= SMALL_GROUP or len(small) + len(large) + len(failures) >= PIECE_FILES:
            yield Piece(small, large, failures)
            small, large, failures, held = [], [], [], 0
    if small or large or failures:
        yield Piece(small, large, failures)


def join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name
