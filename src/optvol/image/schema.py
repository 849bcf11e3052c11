"""The index partition's SQLite schema, declared once and versioned (docs/format.md §2).

Times are integers: microseconds since the Unix epoch (UTC). Names keep their case in
``name``; ``name_key`` and ``path_key`` hold the upper-case fold used for lookups.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path

from optvol import errors, model

SCHEMA_VERSION = 5
# The columns of the label table (a LABEL record's ``label`` object, docs/format.md §4.2).
LABEL_FIELDS = (
    "volume", "type", "media_type", "media_format", "sector_size", "capacity", "threshold", "text",
    "created", "last_referenced", "primary_volume", "backup_start", "backup_end", "backup_last_changed",
    "backup_seen",
)
META_KEYS = ("committed_end", "next_sequence", "used_sectors", "changed_high")  # what every index keeps in meta
_STORED = {"INTEGER": "'integer'", "TEXT": "'text'", "BLOB": "'blob'"}  # a declared type: what typeof() gives

_SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE label (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    volume              TEXT NOT NULL,
    type                TEXT NOT NULL,
    media_type          TEXT NOT NULL,
    media_format        TEXT NOT NULL,
    sector_size         INTEGER NOT NULL,
    capacity            INTEGER NOT NULL,
    threshold           INTEGER NOT NULL,
    text                TEXT NOT NULL,
    created             INTEGER NOT NULL,
    last_referenced     INTEGER NOT NULL,
    primary_volume      TEXT,
    backup_start        INTEGER,
    backup_end          INTEGER,
    backup_last_changed INTEGER
);

CREATE TABLE dirs (
    id                  INTEGER PRIMARY KEY,
    parent              INTEGER REFERENCES dirs (id),
    name                TEXT NOT NULL,
    path                TEXT NOT NULL,
    path_key            TEXT NOT NULL,
    created             INTEGER NOT NULL,
    sector              INTEGER NOT NULL,
    live                INTEGER NOT NULL,
    backup_start        INTEGER,
    backup_end          INTEGER,
    backup_last_changed INTEGER
);
CREATE UNIQUE INDEX dirs_path ON dirs (path_key) WHERE live = 1;
CREATE INDEX dirs_parent ON dirs (parent) WHERE live = 1;

CREATE TABLE files (
    id             INTEGER PRIMARY KEY,
    dir            INTEGER NOT NULL REFERENCES dirs (id),
    name           TEXT NOT NULL,
    name_key       TEXT NOT NULL,
    live           INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    prev           INTEGER,
    sector         INTEGER NOT NULL,
    header_sectors INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    sha256         BLOB NOT NULL,
    created        INTEGER NOT NULL,
    modified       INTEGER NOT NULL,
    attr_changed   INTEGER NOT NULL,
    changed        INTEGER NOT NULL,
    flags          INTEGER NOT NULL
);
CREATE UNIQUE INDEX files_live ON files (dir, name_key) WHERE live = 1;
CREATE INDEX files_changed ON files (dir, changed) WHERE live = 1;

CREATE TABLE requests (
    id           INTEGER PRIMARY KEY,
    time         INTEGER NOT NULL,
    command      TEXT NOT NULL,
    parameters   TEXT NOT NULL,
    copied       INTEGER NOT NULL,
    not_selected INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    directories  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    sector       INTEGER NOT NULL
);

CREATE TABLE controls (
    id      INTEGER PRIMARY KEY,
    dir     INTEGER REFERENCES dirs (id),
    request INTEGER REFERENCES requests (id),
    time    INTEGER NOT NULL,
    sector  INTEGER NOT NULL
);
"""


def _refold(conn: sqlite3.Connection) -> None:
    conn.create_function("optvol_name_key", 1, model.name_key, deterministic=True)
    conn.execute("UPDATE files SET name_key = optvol_name_key(name) WHERE name_key != optvol_name_key(name)")
    conn.execute("UPDATE dirs SET path_key = optvol_name_key(path) WHERE path_key != optvol_name_key(path)")


def _refold_and_index_requests(conn: sqlite3.Connection) -> None:
    _refold(conn)
    conn.execute("CREATE INDEX IF NOT EXISTS controls_request ON controls (request)")


# Forward migrations: MIGRATIONS[n] turns version n into n + 1.
MIGRATIONS: dict[int, str | Callable[[sqlite3.Connection], None]] = {
    # 2: each directory keeps the number of its live files, so that CPYOPT's count of the
    # files it did not select costs one row per directory, not one per file.
    1: """
ALTER TABLE dirs ADD COLUMN live_files INTEGER NOT NULL DEFAULT 0;
UPDATE dirs SET live_files = (SELECT count(*) FROM files WHERE files.dir = dirs.id AND files.live = 1)
""",
    # 3: the volume keeps the highest change time it ever gave a file (``changed_high``; every
    # later change is stamped above it), and each backup range the one its run saw on the
    # source (``backup_seen``), so a range never claims a file written after its run whatever
    # a clock set back stamped it with. A range of an older index saw nothing (NULL): it
    # claims nothing until its next run.
    2: """
ALTER TABLE label ADD COLUMN backup_seen INTEGER;
ALTER TABLE dirs ADD COLUMN backup_seen INTEGER;
INSERT INTO meta (key, value) SELECT 'changed_high', coalesce(max(changed), 0) FROM files
""",
    # 4: the lookup keys of names fold each character to one (model.name_key), where they
    # took str.upper's full case mapping: names with ß, ﬁ or ı were one with another name.
    # Only keys of such names change; the new keys are finer, so no two live rows collide.
    3: _refold,
    # 5: the fold is Unicode 14.0's whatever the Python (optvol.case_fold); an optvol before
    # it stored the running Python's, which under Python 3.14 (Unicode 16.0) gives ƛ and ɤ
    # upper cases of their own: such keys are made again. No two live rows can collide: the
    # frozen fold is that of the same Unicode or an older one, which only has fewer pairs.
    # And the control records by request, so that a CPYOPT run finds the highest request ID
    # without reading every control record of the backup's history.
    4: _refold_and_index_requests,
}


def create(conn: sqlite3.Connection) -> None:
    """Create the current schema in an empty database (inside the caller's transaction)."""
    _run(conn, _SCHEMA_V1)
    for version in range(1, SCHEMA_VERSION):
        _run(conn, MIGRATIONS[version])
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("schema_version", SCHEMA_VERSION), ("committed_end", 0), ("next_sequence", 1), ("used_sectors", 0)],
    )


def number(row: tuple | None, key: str, where: str) -> int:
    """The ``meta`` value of ``row``, which optvol writes as an integer: a count of sectors or
    records from 0 to 2**48, or a time (``changed_high``, microseconds from year 1 to 9999):
    OPV0201 for one missing or edited by hand."""
    value = row[0] if row else None
    low, high = (-(1 << 62), 1 << 62) if key == "changed_high" else (0, 1 << 48)
    if not isinstance(value, int) or not low <= value < high:
        kept = f"keeps {value!r} as meta.{key}, not a count" if row else f"has no meta.{key}"
        raise errors.error("OPV0201", volume=where, reason=f"its index {kept}; optvol recover rebuilds it from the"
                           " data partition")
    return value


def version_of(conn: sqlite3.Connection, *, where: str) -> int:
    """The schema version of an index, checking that it is an optvol index at all."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise errors.unreadable_index(where, exc) from None
    if row is None or not isinstance(row[0], int) or row[0] < 1:
        raise errors.error("OPV0201", volume=where, reason="index has no schema version" if row is None else
                           f"its index keeps {row[0]!r} as its schema version; optvol recover rebuilds it")
    if row[0] > SCHEMA_VERSION:
        raise errors.error("OPV0202", path=where, found=row[0], supported=SCHEMA_VERSION)
    return row[0]


def read_apart(index: Path, query: str) -> tuple | None:
    """The first row of ``query`` in the index file ``index``, read apart from any open of
    it (read only); None when there is none or the index cannot be read."""
    return _apart(index, lambda conn: conn.execute(query).fetchone(), None)


def read_all_apart(index: Path, work: Callable[[sqlite3.Connection], dict]) -> dict:
    """``work``'s result on the index file ``index`` read apart (as ``read_apart``); an empty
    dict when the index cannot be read."""
    return _apart(index, work, {})


def _apart(index: Path, work: Callable[[sqlite3.Connection], object], otherwise: object) -> object:
    """``work`` done on a read-only connection of its own to the index file ``index``;
    ``otherwise`` when SQLite cannot read it. It leaves the volume's files as it found them
    (review 23 F2, F7): an index with no log beside it (at rest, or a copy that left the log
    out) is read as immutable, since SQLite makes a ``-wal`` and a ``-shm`` for any other
    connection and a read-only one cannot remove them, and the open's lost-log rule reads
    whether the ``-wal`` exists (docs/format.md §5); an empty index file is not opened, since
    SQLite removes a log beside one. It looks and does not wait for a lock (F8)."""
    try:
        if index.stat().st_size == 0:
            return otherwise
        at_rest = not index.with_name(index.name + "-wal").exists()
    except OSError:
        return otherwise
    try:
        conn = sqlite3.connect(f"{index.as_uri()}?mode=ro{'&immutable=1' * at_rest}", uri=True, timeout=0)
        try:
            return work(conn)
        finally:
            conn.close()
    except (sqlite3.Error, UnicodeDecodeError):  # a damaged schema text: SQLite's message is no UTF-8
        return otherwise


def structure_problems(conn: sqlite3.Connection) -> list[str]:
    """How the tables and indexes of a current index differ from the ones ``create`` makes, as
    texts: a changed byte of the schema's own text (a column's type, say TEXT made TEXP, which
    changes how SQLite compares its values) passes SQLite's integrity check, and lookups then
    find nothing (hunt25n F2: listings empty, CPYOPT copied nothing, exit 0). Tables and
    indexes a hand added are left alone."""
    found, expected = _structure(conn), _expected_structure()
    return [f"{kind} {name}: {'missing' if name not in found[kind] else 'not as optvol made it'}"
            for kind in ("table", "index") for name, shape in expected[kind].items() if found[kind].get(name) != shape]


def _structure(conn: sqlite3.Connection) -> dict[str, dict[str, tuple]]:
    """Each table's columns (PRAGMA table_info) and each index's table and SQL (blanks folded), by name."""
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                               " AND name NOT LIKE 'sqlite%'")]
    return {"table": {name: tuple(conn.execute(f"PRAGMA table_info({_quoted(name)})")) for name in tables},
            "index": {name: (table, " ".join((sql or "").split())) for name, table, sql in
                      conn.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'")}}


@functools.cache
def _expected_structure() -> dict[str, dict[str, tuple]]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        create(conn)
        return _structure(conn)
    finally:
        conn.close()


def type_problems(conn: sqlite3.Connection) -> list[str]:
    """Values no optvol writes, as ``table.column`` texts: of another type than their column
    declares (SQLite keeps what a hand that edited the index gave it), or a label's type,
    media type or media format that is none of optvol's. Every command reads them as written."""
    problems = []
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
                                 " ORDER BY name").fetchall():
        columns = [(name, _STORED[kind.upper()] + ("" if not_null else ", 'null'"))
                   for _, name, kind, not_null, _, _ in conn.execute(f"PRAGMA table_info({_quoted(table)})")
                   if kind.upper() in _STORED]
        sums = ", ".join(f"total(typeof({_quoted(name)}) NOT IN ({kinds}))" for name, kinds in columns)
        counts = conn.execute(f"SELECT {sums} FROM {_quoted(table)}").fetchone() if columns else ()
        problems += [f"{table}.{name}: {int(count)} value(s) not of its type"
                     for (name, _), count in zip(columns, counts, strict=True) if count]
    rows = {key: conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            for key in ("schema_version", *META_KEYS)}
    for key in META_KEYS:  # (an index of an older schema, read apart, may lack one)
        try:
            if rows[key] or rows["schema_version"] == (SCHEMA_VERSION,):
                number(rows[key], key, "")
        except errors.OptvolError as exc:
            problems.append(exc.reason.split(";")[0].removeprefix("its index "))
    if not problems:
        for field, kind in (("type", model.VolumeType), ("media_type", model.MediaType),
                            ("media_format", model.MediaFormat)):
            problems += [f"label.{field}: {value!r} is no {kind.__name__}" for (value,) in
                         conn.execute(f"SELECT {field} FROM label") if value not in {str(k) for k in kind}]
    return problems


def _quoted(name: str) -> str:
    """An SQL identifier for ``name``, whatever it holds (a table a hand added, ``we"ird``)."""
    return '"' + name.replace('"', '""') + '"'


def problems_apart(index: Path) -> list[str]:
    """``type_problems`` of the index file ``index``, read apart (none when it cannot be read)."""
    return _apart(index, type_problems, [])


def stored_version(index: Path) -> int | None:
    """The schema version of the index file ``index``, read apart; None when it cannot be read."""
    row = read_apart(index, "SELECT value FROM meta WHERE key = 'schema_version'")
    return row[0] if row is not None and isinstance(row[0], int) else None


def migrate(conn: sqlite3.Connection, found: int) -> None:
    """Bring an older index forward to SCHEMA_VERSION (inside the caller's transaction)."""
    for version in range(found, SCHEMA_VERSION):
        _run(conn, MIGRATIONS[version])
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))


def _run(conn: sqlite3.Connection, script: str | Callable[[sqlite3.Connection], None]) -> None:
    """Run the statements of ``script`` one by one (executescript would commit), or the
    migration function it is."""
    if callable(script):
        script(conn)
        return
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
