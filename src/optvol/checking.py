"""CHKOPTVOL: read every directory and every file version and check it (reference §10.6).

The index is checked by SQLite (``PRAGMA integrity_check``: its indexes too); every record it points to (a
directory's, a file version's, a backup's control records and request log) must have a
sound header that agrees with the index (size, SHA-256, version and dates), and a payload
that hashes to its header's SHA-256; every file version, live or kept by HPOFS, must hash
to the SHA-256 the index recorded. Last, the records are replayed and the index compared
with what they give (``checking_replay``). The report names exactly the damaged files,
with the count and bytes of the good ones (DESIGN §4 CHKOPTVOL JSON).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from optvol import checking_replay, errors, volume_transaction
from optvol.backup import CONTROL_SECTORS
from optvol.image import replay, schema
from optvol.image.records import FIXED_SIZE, Kind
from optvol.image.signals import HeldPool, held_result
from optvol.library import Library
from optvol.model import Progress, name_key
from optvol.volume import Volume
from optvol.volume_rows import FILE_COLUMNS, FileRow, request_problems

HASH_WORKERS = max(2, os.cpu_count() or 2)
PARALLEL_SIZE = 1 << 20
_FILE_COLUMNS = ", ".join("f." + c.strip() for c in FILE_COLUMNS.split(","))
# Index fields of a file version that only its FILE record sets (besides size and SHA-256),
# as a report names them.
_WRITTEN_ONCE = {"version": "version", "created": "created time", "modified": "modified time"}


@dataclass(frozen=True)
class Damage:
    path: str
    reason: str
    file_id: int | None = None  # the damaged file version's index row, if it is one
    unindexed: bool = False  # records the index does not point to: only a replay (recover) reads them


@dataclass
class CheckResult:
    """What CHKOPTVOL found on one volume."""

    volume: str
    files_checked: int = 0
    bytes_checked: int = 0
    damaged: list[Damage] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # every good file, for OUTPUT(*PRINT)

    def as_json(self) -> dict:
        return {
            "volume": self.volume, "files_checked": self.files_checked, "bytes_checked": self.bytes_checked,
            "damaged": [{"path": d.path, "reason": d.reason} for d in self.damaged],
        }


def chkoptvol(library: Library, *, vol: str, keep_list: bool = False, progress: Progress | None = None,
              totals: Progress | None = None, unreadable: list[errors.OptvolError] | None = None) -> list[CheckResult]:
    """CHKOPTVOL VOL (an ID, a generic name ``ABC*`` or *ALL): one result per volume, none
    for a generic name that matches none; ``keep_list`` keeps good paths too. A volume of
    several that cannot be opened for a reason other than damage (another process has it to
    itself: OPV0004) is no damaged volume: with ``unreadable`` given, it is left out and its
    error added there, as WRKOPTVOL leaves it out; else it is listed with a "(volume)" item.

    ``progress`` gets each volume's file versions and bytes read back intact so far;
    ``totals`` its versions and bytes in all, before its first (once per volume).
    """
    generic = vol.upper() == "*ALL" or vol.endswith("*")
    ids = library.volume_ids(vol) if generic else [vol]
    results = []
    for volume_id in ids:
        try:
            volume = library.open(volume_id)
        except errors.DamagedError as exc:
            results.append(CheckResult(volume_id.upper(), damaged=[Damage(getattr(exc, "item", "(index)"), exc.text)]))
            continue
        except errors.OptvolError as exc:
            if len(ids) == 1:
                raise
            # *ALL goes on to the others; this one could not be checked (its lock, say).
            if unreadable is not None:
                unreadable.append(exc)
                continue
            results.append(CheckResult(volume_id.upper(), damaged=[Damage("(volume)", exc.text)]))
            continue
        with volume:
            try:
                results.append(check_volume(volume, keep_list=keep_list, progress=progress, totals=totals))
            except errors.DamagedError as exc:  # the index failed in the middle of the check
                results.append(CheckResult(volume_id.upper(), damaged=[Damage("(index)", exc.text)]))
    if generic:  # a directory no ID names is not hidden
        results += [CheckResult(entry, damaged=[Damage("(volume)", library.stray_error(entry).text)])
                    for entry in library.strays(vol)]
    return results


def check_volume(volume: Volume, *, keep_list: bool = False, progress: Progress | None = None,
                 totals: Progress | None = None) -> CheckResult:
    """Check one open volume: index, directory records, every file version (committed: not
    from inside this thread's own batch of it, OPV0019)."""
    if volume_transaction.written_here(volume):
        raise errors.error("OPV0019", volume=volume.id)
    result = CheckResult(volume.id)
    conn = volume.image.conn
    problems = _index_problems(conn)
    if problems:
        result.damaged.append(Damage("(index)", "; ".join(problems)))
        return result
    committed = volume.image.meta("committed_end")
    # In bytes, as a writer checks it (a partial last sector is not a committed one: OPV0201 to every write)
    if os.fstat(volume.image.data.fd).st_size < committed * volume.image.sector_size:
        result.damaged.append(Damage("(data partition)", "shorter than the committed end"))
    for path, sector in _directory_records(conn):
        reason = _header_problem(volume, sector, Kind.DIRECTORY)
        if reason:
            result.damaged.append(Damage(path, reason))
    result.damaged.extend(_unindexed_damage(volume, min(committed, volume.image.data.size_sectors())))
    for what, sector, kind in _backup_records(conn):
        reason = _header_problem(volume, sector, kind)
        if reason:
            result.damaged.append(Damage(what, reason + " (the backup's ranges and history rest on it)"))
    for path, reason in _names_astray(conn):
        result.damaged.append(Damage(path, reason))
    for path, kept, counted in _miscounted_directories(conn):
        result.damaged.append(Damage(path, f"the index keeps {kept} live files for the directory, it holds {counted}"
                                           " (optvol recover rebuilds the index from the records)"))
    latest, mark = _latest_change(conn), volume.image.meta("changed_high")
    if latest is not None and latest > mark:
        # Changes stamped from here on could fall under ranges that do not hold them.
        result.damaged.append(Damage("(index)", f"a file's change time ({latest}) lies above the highest change time"
                                                f" the index keeps ({mark}) (optvol recover rebuilds the index from"
                                                " the records)"))
    sound = not result.damaged  # (else the records a replay needs are named damaged already)
    if totals:
        versions, size = conn.execute("SELECT count(*), total(size) FROM files").fetchone()
        totals(versions, int(size))
    with HeldPool(max_workers=HASH_WORKERS) as pool:  # (Ctrl-C held back in submit: hunt31a F1)
        pending: deque = deque()
        for path, row, live, newer in _versions(conn):
            name = path if live else f"{path} (version {row.version}{', deleted' if not newer else ''})"
            # Big versions are hashed on all cores (hashlib releases the GIL); small ones inline.
            problem = pool.submit(_version_problem, volume, row, pool.stopping) if row.size >= PARALLEL_SIZE else _version_problem(volume, row)
            pending.append((name, row, problem))
            while pending and (len(pending) > 2 * HASH_WORKERS or not isinstance(pending[0][2], Future)):
                _record(result, *pending.popleft(), keep_list=keep_list, progress=progress)
        while pending:
            _record(result, *pending.popleft(), keep_list=keep_list, progress=progress)
    if sound:
        named = frozenset(conn.execute("SELECT sector FROM files WHERE id = ?", (d.file_id,)).fetchone()[0]
                          for d in result.damaged if d.file_id is not None)
        result.damaged += [Damage(item, reason) for item, reason in checking_replay.index_differences(volume, named=named)]
    return result


def _record(result: CheckResult, name: str, row: FileRow, problem, *, keep_list: bool,
            progress: Progress | None) -> None:
    reason = held_result(problem) if isinstance(problem, Future) else problem
    if reason:
        result.damaged.append(Damage(name, reason, row.id))
        return
    result.files_checked += 1
    result.bytes_checked += row.size
    if keep_list:
        result.checked.append(name)
    if progress:
        progress(result.files_checked, result.bytes_checked)


def _index_problems(conn: sqlite3.Connection) -> list[str]:
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        return (schema.type_problems(conn) + request_problems(conn))[:5] if rows == ["ok"] else rows[:5]
    except (sqlite3.DatabaseError, errors.DamagedError) as exc:
        return [str(exc)]


def _directory_records(conn: sqlite3.Connection) -> Iterator[tuple[str, int]]:
    yield from conn.execute("SELECT path, sector FROM dirs WHERE live = 1 ORDER BY path_key")


def _backup_records(conn: sqlite3.Connection) -> Iterator[tuple[str, int, Kind]]:
    """The CONTROL and REQUEST records the index points to (a backup's, docs/format.md §4.5, §4.6)."""
    for path, sector in conn.execute("SELECT d.path, c.sector FROM controls c"
                                     " LEFT JOIN dirs d ON d.id = c.dir ORDER BY c.sector"):
        yield f"(control record of {path})" if path else "(the volume's control record)", sector, Kind.CONTROL
    for request_id, sector in conn.execute("SELECT id, sector FROM requests ORDER BY id"):
        yield f"(request {request_id} of the log)", sector, Kind.REQUEST


def _unindexed_damage(volume: Volume, end: int) -> list[Damage]:
    """Damaged regions among the records the index does not point to (labels, deletions,
    renames, attribute changes; docs/format.md §3.2), up to sector ``end``. The index keeps
    what they did, but ``recover`` replays them: one it cannot read is an effect it loses.

    Only the gaps between the records the index points to are read: a file version's place
    is in its row, a directory's, control record's or logged request's in its header. A
    region that starts inside such a record with a damaged header is its damage, named by
    its own check; so is a version DUPOPT left out of a duplicate (its DELETE record's
    ``left_out_at``, docs/format.md §3.2)."""
    image, size = volume.image, volume.image.sector_size
    regions: list[tuple[int, int, str]] = []  # (first sector, sectors, reason)
    left_out, named = [], {}  # extents of versions left out; sector after a damaged header: sectors it may own
    position = 0

    def walk(start: int, stop: int) -> None:
        for found in replay.scan(image.data.fd, size, start=start, end=stop):
            if found.header is None:
                regions.append((found.sector, found.sectors, found.reason))
            elif found.reason:  # its length runs past the gap
                regions.append((found.sector, found.sectors, "a record header that runs over the next record"))
            elif extent := replay.left_out_at(found.header):
                left_out.append(extent)

    for sector, sectors, kind in image.conn.execute(_INDEXED_EXTENTS, (size, size)):
        if sector >= end:
            break
        if sector > position:
            walk(position, sector)
        if sectors is None:  # not a file version: its header says how long it is
            try:
                sectors = image.read_header(sector).total_sectors(size)
            except errors.DamagedError:
                sectors = 1
                named[sector + 1] = _most_sectors(kind, size) - 1
        position = max(position, sector + sectors)
    if position < end:
        walk(position, end)
    damage = []
    left_out = replay.merged(left_out)
    for first, count, reason in regions:
        own = named.get(first, 0)  # (a record after it, damaged too, is named: rev27e F2)
        first, count = first + min(own, count), count - min(own, count)
        if not count or replay.within(first, count, left_out):
            continue
        where = "(the volume's first label record)" if first == 0 else (
            f"(sector {first})" if count == 1 else f"(sectors {first}-{first + count - 1})")
        damage.append(Damage(where, f"{reason}: records the index does not point to cannot be read (a label,"
                                    " deletion, rename or attribute change, a version no longer indexed, or a"
                                    " backup directory's earlier creation time);"
                                    " optvol recover could not replay them", unindexed=True))
    return damage


# Every record the index points to, in sector order: a file version's place and length (its
# header and payload sectors), a directory's, control record's and logged request's place.
_INDEXED_EXTENTS = (
    f"SELECT sector, header_sectors + (size + ? - 1) / ?, {int(Kind.FILE)} FROM files"
    f" UNION ALL SELECT sector, NULL, {int(Kind.DIRECTORY)} FROM dirs"
    f" UNION ALL SELECT sector, NULL, {int(Kind.CONTROL)} FROM controls"
    f" UNION ALL SELECT sector, NULL, {int(Kind.REQUEST)} FROM requests ORDER BY 1")


def _most_sectors(kind: int, sector_size: int) -> int:
    """The most sectors a record of ``kind`` the index points to can take, when its header
    cannot be read to say: a control record takes CONTROL_SECTORS, a directory's header a
    path of 294 characters of 4 bytes each (the volume ID and creation time besides). A
    logged request's length has no such bound: what follows it is taken for its own."""
    if kind == Kind.CONTROL:
        return CONTROL_SECTORS
    if kind == Kind.DIRECTORY:
        return -(-(FIXED_SIZE + 1400) // sector_size)
    return 1 << 62


def _miscounted_directories(conn: sqlite3.Connection) -> Iterator[tuple[str, int, int]]:
    """Directories whose ``live_files`` (docs/format.md §4.3) is not the number of their live files."""
    yield from conn.execute(
        "SELECT d.path, d.live_files, count(f.id) FROM dirs d LEFT JOIN files f ON f.dir = d.id AND f.live = 1"
        " WHERE d.live = 1 GROUP BY d.id HAVING d.live_files != count(f.id) ORDER BY d.path_key")


def _names_astray(conn: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    """Live names and paths whose key is not their fold (docs/format.md "Keys"): a byte of the index
    changed in one of them, so listings and copies show one name while lookups find another."""
    for path, name, key in conn.execute("SELECT d.path, f.name, f.name_key FROM files f JOIN dirs d ON d.id = f.dir"
                                        " WHERE f.live = 1 AND d.live = 1 ORDER BY d.path_key, f.name_key"):
        if name_key(name) != key:
            yield f"{path.rstrip('/')}/{name}", f"the index's name and its key differ ({key!r}) (optvol recover rebuilds the index)"
    for path, name, key, parent in conn.execute(
            "SELECT d.path, d.name, d.path_key, p.path FROM dirs d LEFT JOIN dirs p ON p.id = d.parent"
            " WHERE d.live = 1 ORDER BY d.path_key"):
        whole = "/" if parent is None else f"{parent.rstrip('/')}/{name}"
        if name_key(path) != key or path != whole:
            yield path, f"the index's path, name and key of the directory disagree ({whole!r}, {key!r}) (optvol recover rebuilds the index)"


def _latest_change(conn: sqlite3.Connection) -> int | None:
    """The latest change time of any file version (docs/format.md §4.1 ``changed_high``)."""
    return conn.execute("SELECT max(changed) FROM files").fetchone()[0]


def _versions(conn: sqlite3.Connection) -> Iterator[tuple[str, FileRow, bool, bool]]:
    """Every file version: (path, row, is live, has a newer version)."""
    # "prev" has no index (every write would pay for one): the replaced versions are listed
    # once, not looked for per version, which made a check quadratic in the volume's files.
    sql = (f"SELECT {_FILE_COLUMNS}, d.path, f.live, f.id IN (SELECT prev FROM files WHERE prev IS NOT NULL)"
           " FROM files f JOIN dirs d ON d.id = f.dir ORDER BY d.path_key, f.name_key, f.version")
    for r in conn.execute(sql):
        row = FileRow(*r[:15])
        yield row.path(r[15]), row, bool(r[16]), bool(r[17])


def _header_problem(volume: Volume, sector: int, kind: Kind) -> str | None:
    """What is wrong with the record at ``sector`` that should be of ``kind``: its header, and
    its payload where it has one (a CONTROL record's padded JSON: hunt25n F5, a flipped bit of
    it passed), against the header's SHA-256."""
    try:
        header = volume.image.read_header(sector)
        if header.kind != kind:
            return f"record at sector {sector} is a {header.kind.name}, not a {kind.name}"
        if header.payload_size and volume.image.payload_sha256(
                sector=sector, header_sectors=header.header_sectors, size=header.payload_size) != header.payload_sha256:
            return "SHA-256 of its payload does not match its header"
    except errors.DamagedError as exc:
        return errors.cause(exc)
    return None


def _version_problem(volume: Volume, row: FileRow, stop: threading.Event | None = None) -> str | None:
    """What is wrong with a version's record or data, if anything; in a pool, "stopped" once
    ``stop`` is set (the command left: rev31g F1)."""
    try:
        header = volume.image.read_header(row.sector)
    except errors.DamagedError as exc:
        return f"record header: {errors.cause(exc)}"
    if header.kind != Kind.FILE or header.payload_size != row.size or header.payload_sha256 != row.sha256:
        return "record header does not match the index"
    # Fields no later record changes (a rename or new flags change only the attribute time):
    # an index whose dates drifted from the record is damaged, however sound the data.
    drifted = [words for name, words in _WRITTEN_ONCE.items() if header.body.get(name) != getattr(row, name)]
    if drifted:
        return (f"the index's {' and '.join(drifted)} {'differ' if len(drifted) > 1 else 'differs'} from the"
                " file's record (optvol recover rebuilds the index from the records)")
    digest = hashlib.sha256()
    try:
        for chunk in volume.image.payload_chunks(sector=row.sector, header_sectors=row.header_sectors, size=row.size):
            if stop is not None and stop.is_set():
                return "stopped"
            digest.update(chunk)
    except errors.DamagedError as exc:
        return errors.cause(exc)
    return None if digest.digest() == row.sha256 else "SHA-256 of the data does not match"
