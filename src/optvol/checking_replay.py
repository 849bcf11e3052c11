"""CHKOPTVOL's cross-check of the index with the records (docs/format.md §4.4, its last paragraphs).

The index is what every command reads; the records are what ``recover`` rebuilds it from.
SQLite keeps no checksum of its pages, so a byte of the index that changed (a flipped bit,
a hand with sqlite3) can move the live version of a file to an older one, flip a letter's
case in a name, or lower the space ledger, and every other check still passes. Here the
records before the committed end are replayed, by recover's own code, into a scratch index
in a temporary directory (the volume's files are only read), and the two indexes are
compared row by row, each row found by the sector of the record it stands for.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

from optvol import errors, recovery
from optvol.image import image as image_mod
from optvol.image import schema
from optvol.image.connection import BUSY_TIMEOUT_MS, PrivateCursor, reading_uri
from optvol.volume import Volume
from optvol.volume_rows import optional_meta

MAX_REPORTED = 20  # differences named one by one; past them, one item says there are more
_ADVICE = "(optvol recover rebuilds the index from the records)"
# The label's fields a record sets; ``last_referenced`` is the time of a commit, not of a record.
_LABEL = tuple(f for f in image_mod.LABEL_FIELDS if f != "last_referenced")
_META = ("committed_end", "next_sequence", "used_sectors", "changed_high", "primary_history",
         "primary_place_sector", "primary_place_mark")

# Each table's rows as (sector of the record, name shown, compared columns...), in sector order;
# a row's links to other rows (a file's directory and previous version, a directory's parent,
# a control record's directory) by the sector of the row linked to, which both indexes share.
_TABLES = {
    "directory": (
        ("parent", "name", "path", "path key", "created", "live flag", "range start", "range end",
         "range last changed", "range seen", "live files"),
        "SELECT d.sector, d.path, p.sector, d.name, d.path, d.path_key, d.created, d.live, d.backup_start,"
        " d.backup_end, d.backup_last_changed, d.backup_seen, d.live_files"
        " FROM dirs d LEFT JOIN dirs p ON p.id = d.parent ORDER BY d.sector"),
    "file": (
        ("directory", "name", "name key", "live flag", "version", "previous version", "header sectors", "size",
         "SHA-256", "created time", "modified time", "attribute change time", "change stamp", "flags"),
        "SELECT f.sector, coalesce(rtrim(d.path, '/'), '?') || '/' || f.name || ' (version ' || f.version || ')',"
        " d.sector, f.name, f.name_key, f.live, f.version, p.sector, f.header_sectors, f.size, f.sha256, f.created,"
        " f.modified, f.attr_changed, f.changed, f.flags"
        " FROM files f LEFT JOIN dirs d ON d.id = f.dir LEFT JOIN files p ON p.id = f.prev ORDER BY f.sector"),
    "control record": (
        ("directory", "request", "time"),
        "SELECT c.sector, coalesce(d.path, '(the volume)'), d.sector, c.request, c.time"
        " FROM controls c LEFT JOIN dirs d ON d.id = c.dir ORDER BY c.sector"),
    "request": (
        ("ID", "time", "command", "parameters", "copied", "not selected", "failed", "directories", "outcome"),
        "SELECT sector, 'request ' || id, id, time, command, parameters, copied, not_selected, failed, directories,"
        " outcome FROM requests ORDER BY sector"),
}


def index_differences(volume: Volume, *, named: frozenset[int] = frozenset()) -> list[tuple[str, str]]:
    """Where ``volume``'s index and its records disagree, as (item, reason) pairs; none when
    they agree. File versions whose records lie at the sectors ``named`` are left out (the
    check of the records named them damaged already). It runs inside one read snapshot of the
    index (``_held_index``): a writer at work elsewhere changes neither side, and its records
    after the committed end the snapshot read are not replayed."""
    try:
        scratch = tempfile.TemporaryDirectory(prefix=f"optvol-check-{volume.id}-")
    except OSError as exc:
        raise _scratch_failed(volume, exc) from None
    with scratch, _held_index(volume) as index:
        directory = Path(scratch.name) / f"{volume.id}.optvol"
        label = recovery.first_label(volume.image.directory)  # (the volume's own damage is its own error)
        try:
            directory.mkdir()
            os.symlink(os.path.abspath(volume.image.directory / image_mod.DATA_FILE), directory / image_mod.DATA_FILE)
            recovery.new_index(directory / recovery.BUILDING_INDEX, label)
            image = image_mod.VolumeImage(directory, index_file=recovery.BUILDING_INDEX, lock=False, cut_tail=False,
                                          data_read_only=True)
            image.conn.cursor_class = PrivateCursor  # (this thread's alone)
        except (OSError, sqlite3.Error, errors.DamagedError, errors.VolumeFullError) as exc:  # the scratch
            raise _scratch_failed(volume, exc) from None  # index's: SQLite that cannot make its -wal (no inode)
        try:
            stop = schema.number(index.execute("SELECT value FROM meta WHERE key = 'committed_end'").fetchone(),
                                 "committed_end", volume.id)
            report = recovery.RecoveryReport(volume.id)
            try:
                image.conn.execute("BEGIN IMMEDIATE")
                _, tx, end = recovery.replay_records(image, recovery.ReplayClock(), report, stop=stop)
            except (OSError, sqlite3.Error) as exc:  # (the data partition's failures are damaged regions)
                raise _scratch_failed(volume, exc) from None
            if any(reason == "no sound record header" for _, _, reason in report.damaged):
                return []  # named by the checks of the records; what failed after it may follow from it
            if report.damaged:  # no comparison: the index rightly keeps what the replay could not do
                return [(_where(sector, count), f"recover could not replay it: {reason}")
                        for sector, count, reason in report.damaged[:MAX_REPORTED]]
            replayed = {"committed_end": end, "next_sequence": tx.sequence, "used_sectors": tx.used,
                        "changed_high": tx.changed_high}
            try:
                found = list(islice(_differences(index, image.conn, replayed, named), MAX_REPORTED + 1))
            except sqlite3.Error as exc:  # a value of the volume's index SQLite cannot give (text not UTF-8)
                return [("(index)", f"its rows cannot all be read to compare them with the records ({exc}) {_ADVICE}")]
            if len(found) > MAX_REPORTED:
                found[MAX_REPORTED:] = [("(index)", f"more values differ from the records than the {MAX_REPORTED}"
                                                    f" named {_ADVICE}")]
            return found
        finally:
            image.close()  # (its transaction, never committed, goes with the scratch directory)


@contextmanager
def _held_index(volume: Volume) -> Iterator[sqlite3.Connection]:
    """A read transaction on ``volume``'s index through a connection of its own, which the
    Volume's other threads do not wait for while the records are replayed (rev25g F1: a
    writer thread waited for the whole check). An image on a read-only file system is read
    as immutable, and only its own watched connection sees another's writes through a
    writable path: that one is held (``Volume.snapshot``)."""
    image = volume.image
    if image.read_only and image.conn.watched:
        with volume.snapshot():
            yield image.conn
        return
    # (read as the image's own connection reads it: as it stands where no other process can write it)
    uri = reading_uri(image.index_path, read_only=image.read_only and image._snapshot_dir is None)
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM label").fetchone()  # the snapshot begins at the first read
        yield conn
    finally:
        conn.close()


def _scratch_failed(volume: Volume, exc: BaseException) -> errors.OptvolError:
    if isinstance(exc, errors.OptvolError) and isinstance(exc.__context__, sqlite3.Error):
        exc = exc.__context__  # SQLite's own words, not the volume error the index's cursor made of them
    return errors.error("OPV0006", library=volume.image.directory.parent, reason=(
        f"CHKOPTVOL replays volume {volume.id}'s records into a scratch index in the temporary directory"
        f" ($TMPDIR), and the host failed it ({getattr(exc, 'strerror', None) or exc})"))


def _differences(index, rebuilt, replayed: dict, named: frozenset[int]) -> Iterator[tuple[str, str]]:
    for item, got, want in _label_and_meta(index, rebuilt, replayed):
        yield item, f"the index keeps {got!r}, the records give {want!r} {_ADVICE}"
    for kind, (columns, sql) in _TABLES.items():
        rows = _rows_differ(kind, columns, index.execute(sql), rebuilt.execute(sql))
        yield from ((item, reason) for sector, item, reason in rows if kind != "file" or sector not in named)


def _label_and_meta(index, rebuilt, replayed: dict) -> Iterator[tuple[str, object, object]]:
    fields = ", ".join(_LABEL)
    kept, given = index.execute(f"SELECT {fields} FROM label").fetchone(), rebuilt.execute(f"SELECT {fields} FROM label").fetchone()
    for name, got, want in zip(_LABEL, kept, given, strict=True):
        if got != want:
            yield f"(label {name})", got, want
    for key in _META:
        got = optional_meta(index, key)
        want = replayed.get(key, optional_meta(rebuilt, key))
        # The highest change stamp ever given may be one no record keeps (a version DUPOPT left out).
        if got != want and not (key == "changed_high" and isinstance(got, int) and got > want):
            yield f"(index meta.{key})", got, want
    # A request ID reserved by a run killed before any record named it stays reserved.
    highest = rebuilt.execute("SELECT max(id) FROM requests").fetchone()[0] or 0
    reserved = optional_meta(index, "next_request")  # (an index older than it has none)
    if highest and reserved is not None and reserved <= highest:
        yield "(index meta.next_request)", reserved, f"above {highest}"


def _rows_differ(kind: str, columns: tuple[str, ...], kept: Iterator[tuple],
                 given: Iterator[tuple]) -> Iterator[tuple[int, str, str]]:
    """Merge the two indexes' rows of one table by sector; each disagreement once, as (sector, item, reason)."""
    mine, theirs = next(kept, None), next(given, None)
    while mine is not None or theirs is not None:
        if theirs is None or (mine is not None and mine[0] < theirs[0]):
            yield mine[0], mine[1], f"the index keeps a {kind} at sector {mine[0]} that no record gives {_ADVICE}"
            mine = next(kept, None)
        elif mine is None or theirs[0] < mine[0]:
            yield theirs[0], theirs[1], f"the records give a {kind} at sector {theirs[0]} that the index lacks {_ADVICE}"
            theirs = next(given, None)
        else:
            changed = [(name, a, b) for name, a, b in zip(columns, mine[2:], theirs[2:], strict=True) if a != b]
            if changed:
                said = "; ".join(f"its {name} is {_shown(a)} in the index, {_shown(b)} in the records"
                                 for name, a, b in changed)
                yield theirs[0], theirs[1], f"{said} {_ADVICE}"
            mine, theirs = next(kept, None), next(given, None)


def _shown(value: object) -> str:
    return value.hex()[:16] + "…" if isinstance(value, bytes) else repr(value)


def _where(sector: int, count: int) -> str:
    return f"(sector {sector})" if count == 1 else f"(sectors {sector}-{sector + count - 1})"

