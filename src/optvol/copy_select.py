"""CPYOPT selection and reading: what to copy from each source directory, and its bytes.

A read-only SQLite connection opens the source index and attaches the target's, so one
statement per directory joins source files to their namesakes on the target and, on a
*BACKUP target, skips by index every file whose last change lies inside what the
directory's complete backup range holds for certain (reference §6.1: those are on the
backup already; ``backup.Range.held_end``) (DESIGN §3 "Speed"). ``Choice`` applies
SLTFILE to what the query let through; ``read_directory`` then reads and verifies the chosen small files, in pieces the writer takes one at a
time, as the query's rows come: memory holds a piece, never a whole directory. It reads
only committed state and writes nothing, so it can run ahead of the writer in another
process (``copy_readahead.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from optvol import backup, errors, model
from optvol.backup import Range
from optvol.image.connection import IndexConnection, reading_uri
from optvol.model import MediaFormat
from optvol.privileged import SmallFile
from optvol.volume import Volume
from optvol.volume_rows import FILE_COLUMNS, RANGE_COLUMNS, DirRow, FileRow

SMALL_FILE = 256 << 10  # read whole, verify, then write; larger ones: kernel copy + parallel hash, in a savepoint
SMALL_GROUP = 8 << 20  # at most this many bytes of small files are read into one piece
PIECE_FILES = 1000  # and at most this many files go into one piece

_SOURCE_COLUMNS = ", ".join("s." + c.strip() for c in FILE_COLUMNS.split(","))
_RANGE_COLUMNS = ", ".join(RANGE_COLUMNS)
# The keys of a candidate's rows read again by rowid against the index's (a table's column the
# index holds is read from the index): 1 the source's agree, 2 the target's (or it has none).
_AGREE = ("coalesce(s2.dir = s.dir AND s2.name_key = s.name_key AND s2.changed = s.changed AND s2.live = 1, 0)"
          " + 2 * coalesce(t.rowid IS NULL OR t2.dir = t.dir AND t2.name_key = t.name_key AND t2.live = 1, 0)")
_AGREES = 19  # its column


class Candidate(NamedTuple):
    """A source file the FROMTIME and range filters let through, with its target namesake."""

    row: FileRow
    name: str  # the name on the target
    dir_path: str  # the source directory's path
    target_modified: int | None  # the namesake's on the target, all None when there is none
    target_attr_changed: int | None
    target_sha256: bytes | None
    target_flags: int | None

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

    @property
    def state(self) -> tuple[int, int]:
        """The source version's row and change stamp as chosen: a later write, rename,
        attribute change or delete of the file on the source changes one or the other."""
        return self.row.id, self.row.changed


class Selection:
    """The selection connection of one CPYOPT request (a context manager)."""

    def __init__(self, source: Volume, target: Volume):
        self.source, self.target = source, target
        index = source.image.index_path
        # An IndexConnection: a damaged index fails as damaged data (exit 7), not with a traceback.
        self.conn = sqlite3.connect(reading_uri(index, read_only=source.image.read_only), uri=True,
                                    isolation_level=None, factory=IndexConnection)
        self.conn.where = source.id
        view = getattr(source.image.conn, "view", None)  # read as immutable: stopped by a change, as the volume is
        if view is not None:
            self.conn.view = view.again()
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

    def _select(self, where: str, columns: str | None = None) -> str:
        """The files of a source directory and their namesakes on the target; without
        ``columns``, a candidate's, and whether the keys of both rows read again by rowid
        agree with what the index gave (``_checked``)."""
        again = ""
        if columns is None:
            columns = f"{_SOURCE_COLUMNS}, t.modified, t.attr_changed, t.sha256, t.flags, {_AGREE}"
            again = (f" LEFT JOIN main.files AS s2 ON s2.rowid = s.rowid"
                     f" LEFT JOIN {self.target_schema}.files AS t2 ON t2.rowid = t.rowid")
        return (
            f"SELECT {columns} FROM main.files AS s"
            f" LEFT JOIN {self.target_schema}.files AS t ON t.dir = :tdir AND t.name_key = s.name_key AND t.live = 1"
            f"{again} WHERE s.dir = :sdir AND s.live = 1 {where}"
        )

    def _checked(self, rows: list[tuple]) -> list[tuple]:
        """``rows`` of ``_select``, once the keys of each row read again agree with what the
        index gave: an index entry a changed byte points at another row would give that
        file in this one's place, or a file twice and another not at all (hunt25n F1, as
        ``volume_rows.live_row``). OPV0201 for the volume whose index it is."""
        for row in rows:
            if row[_AGREES] != 3:
                volume = self.target.id if row[_AGREES] & 1 else self.source.id
                raise errors.error("OPV0201", volume=volume, reason=f"an entry of its index finds the row of"
                                   f" {row[2]!r} in another file's place; optvol recover rebuilds it from the records")
        return rows

    def _windows(self, source_dir: DirRow, target_path: str, choice: Choice) -> list[tuple[str, dict]]:
        """The conditions (and their values) of a directory's files changed at or after
        FROMTIME and not inside what its target directory (as committed) holds by
        ``choice.skip``: one or two index range scans (changed after what it holds, and, if
        it has a start, before it)."""
        target_id, target_range = self.target_dir(target_path)
        skip, from_time = choice.skip(target_range), choice.start
        where = "" if from_time is None else from_clause(to_backup=choice.to_backup)
        args = {"sdir": source_dir.id, "tdir": target_id, "from": from_time}
        if skip is None:
            return [(where, args)]
        start, end = skip
        windows = [(where + " AND s.changed > :end", {**args, "end": end})]
        if start is not None:
            windows.append((where + " AND s.changed < :start", {**args, "start": start}))
        return windows

    def gap_found(self, source_dir: DirRow, times: tuple[int | None, int] | None) -> bool:
        """Whether a live file of the directory changed inside ``times`` (``backup.gap``)."""
        if times is None:
            return False
        after, before = times
        lower = "" if after is None else f" AND changed > {int(after)}"
        return self.conn.execute(f"SELECT 1 FROM main.files WHERE dir = ? AND live = 1 AND changed < ?{lower} LIMIT 1",
                                 (source_dir.id, before)).fetchone() is not None

    def candidates(self, source_dir: DirRow, target_path: str, choice: Choice) -> Iterator[list[Candidate]]:
        """The files of a source directory ``_windows`` lets through, in lists of at most
        PIECE_FILES as the query gives them: a directory of a million files is never held
        whole."""
        for where, values in self._windows(source_dir, target_path, choice):
            cursor = self.conn.execute(self._select(where), values)
            while rows := cursor.fetchmany(PIECE_FILES):
                yield [Candidate(FileRow(*r[:15]), r[2], source_dir.path, *r[15:_AGREES]) for r in self._checked(rows)]

    def totals(self, source_dir: DirRow, target_path: str, choice: Choice) -> tuple[int, int]:
        """The files of ``candidates`` that ``choice`` selects, and their bytes, counted by
        SQLite alone (what a progress bar counts up to)."""
        files = size = 0
        for where, values in self._windows(source_dir, target_path, choice):
            found = self.conn.execute(self._select(f"{where} AND {choice.selected_sql()}", "count(*), total(s.size)"),
                                      values).fetchone()
            files, size = files + found[0], size + int(found[1])
        return files, size

    def single(self, source_dir: DirRow, name: str, target_dir: int | None, target_name: str, *,
               from_time: int | None, to_backup: bool = True) -> list[Candidate]:
        """The one file a file FROMPATH names, matched against ``target_name`` on the target (none: ``target_dir`` None)."""
        where = "AND s.name_key = :name" + ("" if from_time is None else " " + from_clause(to_backup=to_backup))
        sql = self._select(where).replace("t.name_key = s.name_key", "t.name_key = :tname")
        rows = self.conn.execute(sql, {"sdir": source_dir.id, "tdir": target_dir, "name": model.name_key(name),
                                       "tname": model.name_key(target_name), "from": from_time}).fetchall()
        return [Candidate(FileRow(*r[:15]), target_name, source_dir.path, *r[15:_AGREES]) for r in self._checked(rows)]

    def target_dir(self, path: str) -> tuple[int | None, Range]:
        """The target directory at ``path`` as committed: its id (None if missing) and backup
        range; its key read again by rowid, as ``volume_rows.live_row`` reads it (an entry a
        changed byte points at another directory gave that one's range: OPV0201)."""
        key, schema = model.name_key(path), self.target_schema
        row = self.conn.execute(f"SELECT d.id, {', '.join('d.' + c for c in RANGE_COLUMNS)}, k.path_key, k.live"
                                f" FROM {schema}.dirs AS d LEFT JOIN {schema}.dirs AS k ON k.rowid = d.rowid"
                                " WHERE d.path_key = ? AND d.live = 1", (key,)).fetchone()
        if row is None:
            return None, Range()
        if row[-2:] != (key, 1):
            raise errors.error("OPV0201", volume=self.target.id, reason=f"the index finds row {row[0]} of dirs for"
                               f" {path!r}; optvol recover rebuilds it from the records")
        return row[0], Range.from_row(*row[1:-2])

    def target_volume(self) -> Range:
        """The target volume's backup range as committed."""
        return Range.from_row(*self.conn.execute(f"SELECT {_RANGE_COLUMNS} FROM {self.target_schema}.label").fetchone())

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
    trust_ranges: bool = True  # False: the backup's ranges describe another volume's history (copying.py)

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
            return ("(t.modified IS NULL OR s.modified != t.modified OR s.attr_changed != t.attr_changed"
                    " OR s.sha256 != t.sha256 OR s.flags != t.flags)")
        if self.keep_dates:
            return "(t.modified IS NULL OR max(s.modified, s.attr_changed) > max(t.modified, t.attr_changed))"
        return "(t.modified IS NULL OR max(s.modified, s.attr_changed) > t.modified AND s.changed > t.modified)"

    def changed_on_source(self, c: Candidate) -> bool:
        """*CHANGED: the source's data or attributes changed since the copy on the target.

        A backup keeps the primary's dates, so there "changed" is "the copy it holds is not
        the primary's version": either date moved (reference §5.4, [C S2]), which is
        "differs", not "is later", or the bytes or flags differ. Else a change made while
        the clock was set back, dated before (or at) the copy's dates, would never reach it.
        A restore onto a primary keeps the backup's dates too: there the later of each side's
        two dates are compared (a restored copy is the source's; a copy the user changed since
        is later, and left alone); a copy dated the request time, with the later of the source's."""
        if c.target_modified is None:
            return False
        if self.to_backup:
            return (c.modified != c.target_modified or c.attr_changed != c.target_attr_changed
                    or c.row.sha256 != c.target_sha256 or c.flags != c.target_flags)
        if self.keep_dates:
            return max(c.modified, c.attr_changed) > max(c.target_modified, c.target_attr_changed)
        # ... and the source changed after the copy was written (its change time): a file dated
        # ahead of the clock (an image's date, a restore from a backup made while a clock ran
        # ahead) is not copied on every run. (One written while the clock runs ahead is stamped
        # ahead too: copied by every run until the clock passes it; rev27h F4.)
        return max(c.modified, c.attr_changed) > c.target_modified and c.row.changed > c.target_modified

    def skip(self, target_range: Range) -> tuple[int | None, int] | None:
        """The change times (start or None, end; inclusive) the query may skip: on a backup,
        what the directory's range holds for certain (``Range.held_end``: not a file written
        after the range's run, whatever time a clock set back gave it; nothing at all for an
        empty range, whose windows "changed after the end" and "changed before the start"
        would overlap). None: compare every file."""
        if not self.to_backup or self.sltfile == "*ALL" or not self.trust_ranges:
            return None
        end = target_range.held_end
        return None if end is None else (target_range.start, end)

    def recorded(self, target_range: Range) -> Range:
        """A target range as the run takes it: without ``trust_ranges`` as ``forget_ranges``
        leaves it (holding nothing for certain), for ``backup.gap`` too."""
        return target_range if self.trust_ranges else dataclasses.replace(target_range, seen=None)

    def times(self, row: FileRow) -> tuple[int, int, int]:
        """The (created, modified, attribute-changed) times a copy of source version ``row`` gets."""
        return (row.created, row.modified, row.attr_changed) if self.keep_dates else (self.now, self.now, self.now)

    def check_name(self, target_dir: str, name: str) -> None:
        """The copy's path must fit the target (CPF1F48 otherwise): its whole /QOPT path with
        the target's ID and TOPATH (reference §3.1), and between media formats that format's rules."""
        if self.target_format is not None:
            model.split_path(join(target_dir, name), volume=self.target, media_format=self.target_format)
        elif len(name) > _room(self.target, target_dir):  # (a length a directory: this runs for every file)
            path = join(target_dir, name)
            model.check_lengths(path, volume=self.target, directories=len(target_dir.rstrip("/")), total=len(path))


class Pick(NamedTuple):
    """The end of one directory's reading: files not selected, whether *NEW left changed
    ones, and whether a file lies in ``backup.gap`` of the directory's range or of the volume's."""

    not_selected: int
    stale: bool
    gap_found: bool = False
    volume_gap_found: bool = False


class Piece(NamedTuple):
    """Part of a directory's copy: small files read and verified, large ones for the kernel to
    copy, and the files that failed before any write (path and error); ``states``: the
    source state each small file was read in (``Candidate.state``), in the same order."""

    small: list[SmallFile]  # or plain tuples of its fields (see read_pieces)
    large: list[Candidate]
    failures: list[tuple[str, errors.OptvolError]]
    states: list[tuple[int, int]]


def read_directory(selection: Selection, source: Volume, choice: Choice, source_dir: DirRow, target_dir: str,
                   volume_gap: tuple[int | None, int] | None = None) -> Iterator[Piece | Pick]:
    """One directory: its Pieces as the query gives the files (the target directory as
    committed decides), then its Pick, which ends it. ``volume_gap``: ``backup.gap`` of the
    target volume's range, looked for in this directory too."""
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
    gap_found = False
    if choice.to_backup and choice.start is not None:
        gap_found = selection.gap_found(source_dir, backup.gap(choice.recorded(selection.target_dir(target_dir)[1]),
                                                               choice.start))
    yield Pick(selection.live_files(source_dir) - chosen, stale, gap_found, selection.gap_found(source_dir, volume_gap))


def read_pieces(source: Volume, choice: Choice, chosen: Iterable[Candidate], target_dir: str) -> Iterator[Piece]:
    """The chosen files in pieces: small ones read whole and verified (at most SMALL_GROUP
    bytes or PIECE_FILES files a piece), large ones passed on by PIECE_FILES."""
    small, large, failures, states, held = [], [], [], [], 0
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
                states.append(c.state)
                held += row.size
        except errors.OptvolError as exc:
            failures.append((join(target_dir, c.name), exc))
        if held >= SMALL_GROUP or len(small) + len(large) + len(failures) >= PIECE_FILES:
            yield Piece(small, large, failures, states)
            small, large, failures, states, held = [], [], [], [], 0
    if small or large or failures:
        yield Piece(small, large, failures, states)


def from_clause(*, to_backup: bool) -> str:
    """FROMTIME's condition on a source file ``s``. Reference §5.4: a file created or changed
    at or after it, by its dates; a restore's source keeps the primary's dates, and a file
    was written there later than they say, so its change time would select it. Onto a
    backup the change time decides (by index): the range a run records claims every file
    changed since FROMTIME, whatever dates a clock gave it."""
    return "AND s.changed >= :from" if to_backup else "AND max(s.created, s.modified, s.attr_changed) >= :from"


@functools.lru_cache(maxsize=64)
def _room(volume: str, target_dir: str) -> int:
    """The longest name ``model.check_lengths`` lets a file of ``target_dir`` have (-1: none)."""
    directories = len(target_dir.rstrip("/"))
    if directories > model.MAX_DIRECTORY_PART:
        return -1
    return model.MAX_QOPT_PATH - len(model.QOPT) - 1 - len(volume) - directories - 1


def join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name
