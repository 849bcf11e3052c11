"""Rows of the index as the volume layer reads and writes them (layer 3, beside ``volume.py``)."""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import NamedTuple

from optvol import errors, model
from optvol.image.records import sectors_for

READ_ONLY = 1
HIDDEN = 2
# File versions indexed per INSERT: one statement for many rows costs a third less than one
# per row, and 256 rows a little less again than 64. A build of SQLite with a lower limit
# of parameters (999 before 3.32) gets as many rows as fit (``_rows_per_insert``).
_ROWS_PER_INSERT = 256
_FILE_PARAMETERS = 14  # per row of _insert_files

# The backup control columns of ``label`` and ``dirs``, in the order backup.Range.from_row takes them.
RANGE_COLUMNS = ("backup_start", "backup_end", "backup_last_changed", "backup_seen")
DIR_COLUMNS = "id, parent, name, path, path_key, created, sector, " + ", ".join(RANGE_COLUMNS)
FILE_COLUMNS = (
    "id, dir, name, name_key, version, prev, sector, header_sectors, size, sha256,"
    " created, modified, attr_changed, changed, flags"
)


class DirRow(NamedTuple):
    id: int
    parent: int | None
    name: str
    path: str
    path_key: str
    created: int
    sector: int
    backup_start: int | None
    backup_end: int | None
    backup_last_changed: int | None
    backup_seen: int | None

    def range_row(self) -> tuple[int | None, int | None, int | None, int | None]:
        """The RANGE_COLUMNS of the directory."""
        return self.backup_start, self.backup_end, self.backup_last_changed, self.backup_seen

    def backup(self) -> model.BackupRange | None:
        return model.backup_range(*self.range_row())

    def info(self) -> model.DirInfo:
        return model.DirInfo(path=self.path, created=model.from_micros(self.created), backup=self.backup())


class FileRow(NamedTuple):
    id: int
    dir: int
    name: str
    name_key: str
    version: int
    prev: int | None
    sector: int
    header_sectors: int
    size: int
    sha256: bytes
    created: int
    modified: int
    attr_changed: int
    changed: int
    flags: int

    def sectors(self, sector_size: int) -> int:
        """Sectors this version takes in the data partition (header and payload)."""
        return self.header_sectors + sectors_for(self.size, sector_size)

    def path(self, dir_path: str) -> str:
        return dir_path.rstrip("/") + "/" + self.name

    def info(self, dir_path: str) -> model.FileInfo:
        if type(self.size) is not int:  # (a REAL or a text an index edited by hand holds: the
            # listing fails as on a time of another type, and the CLI names the column, OPV0201)
            raise TypeError(f"files.size of {self.path(dir_path)!r} is {self.size!r}, not a count of bytes")
        return model.FileInfo(
            path=self.path(dir_path),
            size=self.size,
            created=model.from_micros(self.created),
            modified=model.from_micros(self.modified),
            attr_changed=model.from_micros(self.attr_changed),
            read_only=bool(self.flags & READ_ONLY),
            hidden=bool(self.flags & HIDDEN),
            sha256=self.sha256.hex(),
            version=self.version,
        )


def live_row(conn: sqlite3.Connection, table: str, columns: str, keys: tuple, name: str) -> tuple | None:
    """``columns`` of the live row of ``table`` whose keys are ``keys`` ("dirs": its path key;
    "files": its directory and name key), found through the table's index, or None. The keys
    are read again from the row itself (by rowid, in the same statement): a lookup through an
    index takes the columns the index holds from the index, so an entry a changed byte points
    at another row would give that row as this name's (hunt25n F1: cat gave another file's
    bytes). OPV0201 when they differ, or the entry points at no row."""
    row = conn.execute(_live_row_sql(table, columns), keys).fetchone()
    if row is None:
        return None
    if row[-len(keys) - 1:] != (*keys, 1):
        raise errors.error("OPV0201", volume=conn.where, reason=f"the index finds row {row[0]} of {table} for {name!r};"
                           " optvol recover rebuilds it from the records")
    return row[:-len(keys) - 1]


def live_files_named(conn: sqlite3.Connection, columns: str, dir_id: int, keys: list[str]) -> list[tuple]:
    """``columns`` of the live files of directory ``dir_id`` with these name keys (one query),
    each row's keys read again from the row itself as ``live_row`` reads them: a batch that
    took an index entry a changed byte points at another file's row retired that file in
    this name's place (rev25o F1). OPV0201 when they differ."""
    rows = conn.execute(_live_row_sql("files", columns).replace("f.name_key = ?", "f.name_key IN"
                        " (SELECT value FROM json_each(?))"), (dir_id, json.dumps(keys, ensure_ascii=False))).fetchall()
    for row in rows:
        if row[-3:] != (dir_id, row[3], 1):  # (``columns`` starts id, dir, name, name_key)
            raise errors.error("OPV0201", volume=conn.where, reason=f"the index finds row {row[0]} of files for"
                               f" name key {row[3]!r}; optvol recover rebuilds it from the records")
    return [row[:-3] for row in rows]


@functools.cache
def _live_row_sql(table: str, columns: str) -> str:
    names = ("path_key",) if table == "dirs" else ("dir", "name_key")
    found = ", ".join(f"f.{c.strip()}" for c in columns.split(","))
    again = ", ".join(f"t.{c}" for c in (*names, "live"))
    where = " AND ".join(f"f.{c} = ?" for c in names)
    return f"SELECT {found}, {again} FROM {table} f LEFT JOIN {table} t ON t.rowid = f.rowid WHERE {where} AND f.live = 1"


# The columns the indexes of each table hold (dirs_path, dirs_parent; files_live, files_changed):
# a query that goes through one of them reads these from the index entry, the rest from the
# row the entry's rowid points at.
_INDEXED = {"dirs": ("parent", "path_key"), "files": ("dir", "name_key", "changed")}


@functools.cache
def scan_sql(table: str, columns: str, rest: str) -> str:
    """A scan of ``table`` (alias ``f``; ``rest`` its WHERE, ORDER and LIMIT, written with
    ``f.``) giving ``columns`` and, last, whether the row's indexed columns read again by rowid
    (alias ``k``, in the same statement) agree with what the scan gave and the row is live:
    as ``live_row`` for a lookup by key, for a scan through an index (hunt26b: through an
    entry a changed byte points at another row, a listing named another directory's file,
    export-iso wrote its bytes, CPYOPT's directory list left a directory out, a rename moved
    another directory). ``scanned`` checks and drops that column."""
    found = ", ".join(f"f.{c.strip()}" for c in columns.split(","))
    again = " AND ".join(f"k.{c} IS f.{c}" for c in _INDEXED[table])
    return (f"SELECT {found}, coalesce({again} AND k.live = 1, 0) FROM {table} AS f"
            f" LEFT JOIN {table} AS k ON k.rowid = f.rowid {rest}")  # (an entry pointing at no row: 0 too)


def scanned(conn: sqlite3.Connection, table: str, rows: list[tuple]) -> list[tuple]:
    """``rows`` of a ``scan_sql`` query without their last column, once each says the row's
    keys agree; OPV0201 (the index points elsewhere) otherwise."""
    for row in rows:
        if not row[-1]:
            raise errors.error("OPV0201", volume=conn.where, reason=f"an entry of an index of {table} points at row"
                               f" {row[0]}, which is not the row it names; optvol recover rebuilds it from the records")
    return [row[:-1] for row in rows]


def space_limit(label: dict) -> int:
    """The bytes a volume may use under its threshold, in whole sectors (reference §2.6)."""
    return label["capacity"] * label["threshold"] // 100 // label["sector_size"] * label["sector_size"]


def volume_info(label: dict, *, used: int, files: int, directories: int) -> model.VolumeInfo:
    """The VolumeInfo of a label row with the bytes used and the live files and directories."""
    return model.VolumeInfo(
        volume=label["volume"],
        type=model.VolumeType(label["type"]),
        media_type=model.MediaType(label["media_type"]),
        media_format=model.MediaFormat(label["media_format"]),
        sector_size=label["sector_size"],
        capacity=label["capacity"],
        used=used,
        available=max(0, space_limit(label) - used),
        threshold=label["threshold"],
        text=label["text"],
        created=model.from_micros(label["created"]),
        last_referenced=model.from_micros(label["last_referenced"]),
        primary_volume=label["primary_volume"],
        backup=model.backup_range(*(label[column] for column in RANGE_COLUMNS)),
        files=files,
        directories=directories,
    )


def version_chain(conn: sqlite3.Connection, row: FileRow) -> list[FileRow]:
    """A file version and every version before it still recorded, newest first (``prev`` links)."""
    found = [row]
    while found[-1].prev is not None:
        data = conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE id = ?", (found[-1].prev,)).fetchone()
        if data is None:
            break
        found.append(FileRow(*data))
    return found


def count_live(conn: sqlite3.Connection, dir_id: int, change: int) -> None:
    """Keep ``dirs.live_files`` (docs/format.md §4.3) right: ``change`` files of the directory
    became live (or stopped being live, if negative). Every change of ``files.live`` or of a
    live file's ``dir`` goes with one."""
    if change:
        conn.execute("UPDATE dirs SET live_files = live_files + ? WHERE id = ?", (change, dir_id))


def insert_files(conn: sqlite3.Connection, values: list) -> None:
    """Insert live file versions: ``values`` holds _FILE_PARAMETERS values a row, in the order
    of ``_insert_files`` (``Volume._index_versions``)."""
    step = _rows_per_insert(conn) * _FILE_PARAMETERS
    for first in range(0, len(values), step):
        chunk = values[first:first + step]
        conn.execute(_insert_files(len(chunk) // _FILE_PARAMETERS), chunk)


def _rows_per_insert(conn: sqlite3.Connection) -> int:
    """Rows of ``_insert_files`` per statement on this connection: _ROWS_PER_INSERT, or fewer
    if its SQLite takes fewer parameters."""
    return max(1, min(_ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _FILE_PARAMETERS))


@functools.cache
def _insert_files(rows: int) -> str:
    """An INSERT of ``rows`` new file versions (_FILE_PARAMETERS each)."""
    return ("INSERT INTO files (dir, name, name_key, live, version, prev, sector, header_sectors, size, sha256,"
            " created, modified, attr_changed, changed, flags) VALUES "
            + ", ".join(["(?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


def optional_meta(conn: sqlite3.Connection, key: str) -> int | None:
    """A ``meta`` value older images may lack (``next_request``, ``primary_history``: docs/format.md §4.1)."""
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return found[0] if found else None


def set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def highest_request(conn: sqlite3.Connection) -> int:
    """The highest CPYOPT request ID a request row or a control record names (0: none)."""
    return conn.execute("SELECT max(coalesce((SELECT max(id) FROM requests), 0),"
                        " coalesce((SELECT max(request) FROM controls), 0))").fetchone()[0]


def request_log(conn: sqlite3.Connection, volume_id: str) -> list[dict]:
    """The CPYOPT requests logged on a (backup) volume, oldest first (``Volume.requests``).
    OPV0201 for a request whose parameters are not what CPYOPT logs (an index edited by hand)."""
    rows = conn.execute(
        "SELECT id, time, command, parameters, copied, not_selected, failed, directories, outcome"
        " FROM requests ORDER BY id"
    )
    log = []
    for r in rows:
        parameters = request_parameters(r[3])
        if parameters is None:
            raise errors.error("OPV0201", volume=volume_id, reason=(
                f"its index holds values no optvol writes (requests.parameters of request {r[0]}: {_NOT_PARAMETERS});"
                " optvol recover rebuilds it from the data partition"))
        log.append({"id": r[0], "time": model.iso(model.from_micros(r[1])), "command": r[2],
                    "parameters": _local_fromtime(parameters),
                    "copied": r[4], "not_selected": r[5], "failed": r[6], "directories": r[7], "outcome": r[8]})
    return log


# What CPYOPT logs as a request's parameters (copying.CopyRequest.parameters): each keyword
# of the request, the volumes as two elements (ID and type), every other value as text.
_PARAMETER_KEYWORDS = ("FROMVOL", "FROMPATH", "TOVOL", "TOPATH", "SLTFILE", "CPYSUBDIR", "CRTDIR", "ALWCPYOPP",
                       "COPYTYPE", "FROMTIME")
_ELEMENT_LISTS = ("FROMVOL", "TOVOL")
_NOT_PARAMETERS = "not the JSON object of a request's parameters CPYOPT writes"


def request_parameters(stored: object) -> dict | None:
    """A request's parameters read from their ``requests.parameters`` value; None for one
    that is not the JSON object CPYOPT writes, with its keywords and values of their types
    (an index edited by hand), which DSPOPT *BKUHST would show or fail on."""
    try:
        parameters = json.loads(stored)
    except (TypeError, ValueError, RecursionError):  # (RecursionError: arrays nested thousands deep)
        return None
    if not isinstance(parameters, dict):
        return None
    for keyword in _PARAMETER_KEYWORDS:
        value = parameters.get(keyword)
        fits = (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
                if keyword in _ELEMENT_LISTS else isinstance(value, str))
        if not fits:
            return None
    return parameters


def request_problems(conn: sqlite3.Connection) -> list[str]:
    """The ``requests.parameters`` texts that are not what CPYOPT logs, as a ``table.column``
    text like ``schema.type_problems`` gives (which counts the values that are no text)."""
    bad = sum(request_parameters(text) is None
              for (text,) in conn.execute("SELECT parameters FROM requests WHERE typeof(parameters) = 'text'"))
    return [f"requests.parameters: {bad} value(s) {_NOT_PARAMETERS}"] if bad else []


def _local_fromtime(parameters: dict) -> dict:
    """A request's parameters with FROMTIME in the reader's local time, as every timestamp is
    shown (DESIGN §4): the REQUEST record keeps it as ISO 8601 with the offset of the run's
    time zone. A value without an offset, or no timestamp (``*BEGIN``), is shown as stored."""
    moment = model.from_iso(parameters.get("FROMTIME"))
    return parameters if moment is None else {**parameters, "FROMTIME": model.iso(moment)}


def check_paths_fit(conn: sqlite3.Connection, volume_id: str) -> None:
    """CPF1F48 unless every live path of the volume fits reference §3.1 under the ID
    ``volume_id`` (a volume renamed, converted or duplicated under a longer ID would hold
    files that no command can name). One query over the directories, never a walk."""
    longest_dir, longest_file = longest_in_volume(conn)
    model.check_lengths("/", volume=volume_id, directories=longest_dir, total=max(longest_dir, longest_file), below=True)


def longest_in_volume(conn: sqlite3.Connection) -> tuple[int, int]:
    """(characters of the longest directory path, of the longest file path) of the whole
    volume (``longest_below`` of the root, which that one's range of keys cannot give)."""
    longest_dir, longest_file = conn.execute(
        "SELECT max(CASE WHEN path = '/' THEN 0 ELSE length(path) END),"
        " max(CASE WHEN path = '/' THEN 0 ELSE length(path) END + 1 + (SELECT max(length(name)) FROM files"
        " WHERE dir = dirs.id AND live = 1)) FROM dirs WHERE live = 1").fetchone()
    return longest_dir or 0, longest_file or 0


def longest_below(conn: sqlite3.Connection, directory: DirRow) -> tuple[int, int]:
    """(characters of the longest directory path, of the longest file path) at and below
    ``directory``: what a move of it must keep within reference §3.1. One query over the
    subtree (its range of the dirs_path index), never a walk: a volume holds a million files."""
    prefix = directory.path_key + "/"
    longest_dir, longest_file = conn.execute(
        "SELECT max(length(path)), max(length(path) + 1 + (SELECT max(length(name)) FROM files"
        " WHERE dir = dirs.id AND live = 1)) FROM dirs"
        # One range of the index from the directory to its last descendant; names that only
        # start like it ('/A-B' after '/A') lie inside the range, and the OR leaves them out.
        " WHERE live = 1 AND path_key >= ? AND path_key < ? AND (path_key = ? OR path_key > ?)",
        (directory.path_key, prefix[:-1] + "0", directory.path_key, prefix),
    ).fetchone()
    return longest_dir, longest_file or 0
