"""The replay's versions DUPOPT ALWMEDERR(*FILE) left out of a duplicate (docs/format.md §3.2,
DELETE ``left_out``): their DELETE records, what a user did to them before, and the
version a left-out one replaced when its own record is the damage it was left out for.

A left-out version's FILE record stays in the duplicate's partition, damaged. Had the
replay read it, the version it replaced at its path would have stopped being live there;
unread, that older version stays live, and a user's later RENAME, ATTRIBUTES or DELETE
record of the left-out version found it and moved, re-flagged or deleted it instead
(rev27h F2). ``LostVersions`` finds, at the first damaged region, the left-out versions
that lie in damaged regions and the path each was written at (from its DELETE's path back
through the records after it), so that the replay retires the older version where the
unread record stood; those user records then fail there and count as done before the
version was left out (``done_before_left_out``).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, replace

from optvol import errors, model
from optvol.image import replay
from optvol.image.records import Kind
from optvol.model import VolumeType
from optvol.volume import Volume
from optvol.volume_rows import FILE_COLUMNS, FileRow, count_live

OF_A_FILE = (Kind.DELETE, Kind.RENAME, Kind.ATTRIBUTES)  # records of what a user did to a file

Path = tuple[str, ...]  # a path's elements as a record gives them


def _parts(path: str) -> Path:
    return tuple(part for part in path.split("/") if part)


def _key(parts: Path) -> Path:
    return tuple(model.name_key(part) for part in parts)


@dataclass(frozen=True)
class _LeftOut:
    sector: int  # of its DELETE record
    at: int  # the first sector of the version's own record
    path: Path  # where its row was when DUPOPT left it out
    live: bool
    version: int | None = None  # its number (the DELETE's ``left_out``)


class LostVersions:
    """Left-out versions whose own FILE record lies in a damaged region, with the path each
    was written at: found by reading ahead once, at the first damaged region (a volume
    without damage costs nothing), and asked for at each damaged region."""

    def __init__(self, fd: int, sector_size: int, stop: int | None):
        self.fd, self.sector_size, self.stop = fd, sector_size, stop
        self.written_at: dict[int, Path] | None = None
        self.ambiguous: dict[int, tuple[list[Path], int, dict]] = {}  # paths that fit, its number, lost before

    def within(self, found: replay.Found, numbered=None) -> list[Path]:
        """The paths the lost versions in damaged region ``found`` were written at. Of several
        paths that fit the records, the one where a write now gets the version's number
        (``numbered(path)``, from the index replayed up to here; more by as many lost versions
        of that path as lie before it, unread) when only one does (hunt28i F3)."""
        if self.written_at is None:
            self.written_at = self._look_ahead(found.sector)
        out = [path for at, path in self.written_at.items() if found.sector <= at < found.sector + found.sectors]
        for at, (paths, version, unread) in self.ambiguous.items():
            if found.sector <= at < found.sector + found.sectors and numbered is not None:
                if len(fit := [path for path in paths if (number := numbered(path)) is not None
                               and number <= version <= number + unread[_key(path)]]) == 1:
                    out.append(fit[0])
        return out

    def _look_ahead(self, start: int) -> dict[int, Path]:
        damaged, left_out = [], []
        for found in replay.scan(self.fd, self.sector_size, start=start, end=self.stop):
            if found.reason == "torn tail":
                break
            if found.header is None:
                damaged.append((found.sector, found.sectors))
            elif (extent := replay.left_out_at(found.header)) and isinstance(found.header.body.get("path"), str):
                body = found.header.body
                number = body.get("left_out") if type(body.get("left_out")) is int else None
                left_out.append(_LeftOut(found.sector, extent[0], _parts(body["path"]), bool(body.get("left_out_live")),
                                         number))
        lost = [one for one in left_out if any(at <= one.at < at + n for at, n in damaged)]
        if not lost:
            return {}
        numbers: dict[int, int] = {}
        events = _Events(self._events(min(one.at for one in lost), max(one.sector for one in lost), numbers), numbers)
        # The latest first: when no path fits through the sound records, another left-out
        # version's unread record, at the path found for it, may be what ended this one's
        # life (a write at its name). Tried only then: with them, a path that fits without
        # them can meet a second one (a file renamed onto its name, written over unread).
        written_at: dict[int, Path] = {}
        for one in sorted(lost, key=lambda one: one.at, reverse=True):
            fits = _fits(one, [events])
            if len(fits) != 1 and (unread := sorted((at, Kind.FILE, (where,)) for at, where in written_at.items()
                                                    if one.at < at < one.sector)):  # (in sector order: _Events)
                fits = _fits(one, [events, _Events(unread)]) or fits
            if len(fits) == 1:
                written_at[one.at] = fits[0]
            elif fits and one.version is not None:
                self.ambiguous[one.at] = (fits, one.version, {})
        paths = {one.at: {_key(one.path)} | {_key(path) for path in self.ambiguous.get(one.at, ([],))[0]}
                 | ({_key(written_at[one.at])} if one.at in written_at else set()) for one in lost}
        for at, (fits, _, unread) in self.ambiguous.items():  # the lost versions before it that may be of each path
            unread.update({_key(path): sum(other < at and _key(path) in keys for other, keys in paths.items())
                           for path in fits})
        return dict(sorted(written_at.items()))

    def _events(self, start: int, end: int, numbers: dict[int, int]) -> list[tuple[int, Kind, tuple]]:
        """The sound records between ``start`` and ``end`` that move a file or end its life
        at its name: (sector, kind, paths); a FILE record's version number into ``numbers``."""
        events = []
        for found in replay.scan(self.fd, self.sector_size, start=start, end=end):
            header = found.header
            if header is None or found.reason == "torn tail":
                continue
            body = header.body
            if header.kind == Kind.RENAME and isinstance(body.get("from"), str) and isinstance(body.get("to"), str):
                events.append((found.sector, Kind.RENAME, (_parts(body["from"]), _parts(body["to"]))))
            elif (header.kind in (Kind.FILE, Kind.REMOVE_DIRECTORY) or header.kind == Kind.DELETE
                  and "left_out" not in body) and isinstance(body.get("path"), str):
                # (a left-out version's DELETE ends no life; a directory's removal leaves what
                # was in it at the path it had then: no later rename onto that path moves it)
                events.append((found.sector, header.kind, (_parts(body["path"]),)))
                if header.kind == Kind.FILE and type(body.get("version")) is int:
                    numbers[found.sector] = body["version"]
        return events


_MOVES = (Kind.RENAME, Kind.REMOVE_DIRECTORY)  # what moves a name's file, or leaves it where it was


class _Events:
    """Records (sector, kind, paths), in sector order, found by the names they touch (each
    kept as (sector, kind, paths, their keys)): a walk of one name meets only the records of
    that name and of the directories above it, not every record between a left-out version
    and its DELETE (rev28e F2: a walk over all of them for each left-out version cost the
    product of the two)."""

    def __init__(self, events: list[tuple[int, Kind, tuple]], numbers: dict[int, int] | None = None):
        self.numbers = numbers or {}  # a FILE record's version number, by its sector
        self.by_key: dict[Path, list[tuple]] = {}
        for sector, kind, paths in events:
            keys = tuple(_key(path) for path in paths)
            for key in set(keys):
                self.by_key.setdefault(key, []).append((sector, kind, paths, keys))
        self.sectors = {key: [event[0] for event in found] for key, found in self.by_key.items()}
        self._after_moves: dict[Path, list[int]] = {}  # each name's writes and deletions right after a move of it

    def nearest(self, key: Path, sector: int, bound: int, *, before: bool, own: bool = True) -> tuple | None:
        """The record of name ``key`` (not with ``own`` false) or a directory above it nearest
        ``sector`` before it (after it), down to (up to) ``bound`` not included."""
        best = None
        for depth in range(1, len(key) + 1 if own else len(key)):
            sectors = self.sectors.get(key[:depth])
            if not sectors:
                continue
            at = bisect.bisect_left(sectors, sector) - 1 if before else bisect.bisect_right(sectors, sector)
            if not 0 <= at < len(sectors) or (sectors[at] <= bound if before else sectors[at] >= bound):
                continue
            if best is None or (sectors[at] > best[0] if before else sectors[at] < best[0]):
                best = self.by_key[key[:depth]][at]
        return best

    def last_removal(self, key: Path, low: int, high: int) -> int | None:
        """The sector of the last removal of directory ``key`` between ``low`` and ``high``."""
        sectors, found = self.sectors.get(key, []), self.by_key.get(key, [])
        for at in reversed(range(bisect.bisect_right(sectors, low), bisect.bisect_left(sectors, high))):
            if found[at][1] == Kind.REMOVE_DIRECTORY:
                return found[at][0]
        return None

    def endings(self, key: Path, low: int, high: int) -> list[tuple]:
        """The writes and deletions at name ``key`` between sectors ``low`` and ``high`` that a
        walk back while live from them may pass: the first, and each after a rename of that
        name (a walk from one right after another write or deletion there meets it: no history)."""
        sectors, found = self.sectors.get(key, []), self.by_key.get(key, [])
        first, end = bisect.bisect_right(sectors, low), bisect.bisect_left(sectors, high)
        if key not in self._after_moves:  # (once a name: a name written N times is asked N times)
            self._after_moves[key] = [at for at in range(1, len(found)) if found[at][1] not in _MOVES
                                      and found[at - 1][1] in _MOVES]
        after = self._after_moves[key]
        return ([found[first]] if first < end and found[first][1] not in _MOVES else []) + [
            found[at] for at in after[bisect.bisect_right(after, first):bisect.bisect_left(after, end)]]


def _nearest(sources: list[_Events], key: Path, sector: int, bound: int, *, before: bool,
             own: bool = True) -> tuple | None:
    found = [event for events in sources if (event := events.nearest(key, sector, bound, before=before, own=own))]
    if not found:
        return None
    return max(found, key=lambda event: event[0]) if before else min(found, key=lambda event: event[0])


def _fits(one: _LeftOut, sources: list[_Events]) -> list[Path]:
    """The paths ``one`` may have been written at: those that, followed forward through the
    records after it (of ``sources``, up to its DELETE), end where its DELETE names it, live
    or not as it says. One is the path; of several, the version's number may tell (``within``);
    else the replay does as it did."""
    found = {}
    for candidate in _candidates(one, sources):
        if _followed(candidate, one, sources) == (_key(one.path), one.live):
            found[_key(candidate)] = candidate
    return list(found.values())


def _candidates(one: _LeftOut, sources: list[_Events]) -> list[Path]:
    """Paths the version may have been written at, from its DELETE's path back: while it was
    live every rename onto its name was its own (no rename goes onto a live name), and no
    write or deletion at its name came (a walk that meets one is no history); once a later
    version or a deletion ended its life there, only its directories' renames moved it. A
    version live to the end has one candidate; one that was not, one for each write or
    deletion at its name that may have ended its life (a walk back from a later one meets the
    earlier while live unless a rename onto the name lies between them: hunt28i F3)."""
    out: dict[Path, Path] = {}
    walks, seen = [(one.path, _key(one.path), one.live, one.sector)], set()
    while walks:
        name, key, live, sector = walks.pop()
        if (key, live, sector) in seen:
            continue
        seen.add((key, live, sector))
        event = _nearest(sources, key, sector, one.at, before=True, own=live)
        if not live:  # each write or deletion at its name may have ended its life (a rename onto
            for events in sources:  # the name between two of them hides the first from the second)
                for ending in events.endings(key, event[0] if event else one.at, sector):
                    walks.append((name, key, True, ending[0]))
        if event is None:
            if live:
                out.setdefault(key, name)
            continue
        at, kind, paths, keys = event
        if kind == Kind.RENAME:
            if not (live and key == keys[1]) and (removed := max(
                    (found for events in sources if (found := events.last_removal(keys[1], one.at, at)) is not None),
                    default=None)) is not None:
                walks.append((name, key, live, removed))  # it may lie in the directory removed there (hunt28i F2)
            name = _back(name, *paths, file_too=live)
            walks.append((name, _key(name), live, at))
        elif keys[0] != key:  # a file at the name a directory above it had or has: no record of it
            walks.append((name, key, live, at))
        # else a write or deletion at its name while it was live: no history gives this walk
    return list(out.values())


def _back(name: Path, source: Path, target: Path, *, file_too: bool) -> Path:
    """``name`` before the rename of ``source`` to ``target``."""
    if file_too and _key(name) == _key(target):
        return source
    if len(name) > len(target) and _key(name[:len(target)]) == _key(target):
        return source + name[len(target):]
    return name


def _followed(name: Path, one: _LeftOut, sources: list[_Events]) -> tuple[Path, bool]:
    """Where a version written at ``name`` at ``one.at`` is at ``one.sector``, and whether it is live."""
    live, sector, key = True, one.at, _key(name)
    # (once not live, only its directories' renames move it: its name's own records are passed by)
    while (event := _nearest(sources, key, sector, one.sector, before=False, own=live)) is not None:
        sector, kind, paths, keys = event
        if kind == Kind.REMOVE_DIRECTORY:
            if len(key) > len(keys[0]) and key[:len(keys[0])] == keys[0]:  # its directory: it stays there
                return (key, False) if not live else ((), True)  # (none removes a directory with a live file)
        elif kind == Kind.RENAME:
            (source, target), (source_key, _) = paths, keys
            if live and key == source_key:
                name = target
            elif len(key) > len(source_key) and key[:len(source_key)] == source_key:
                name = target + name[len(source):]
            key = _key(name)
        elif live and keys[0] == key:
            number = next((events.numbers[sector] for events in sources if sector in events.numbers), None)
            if kind == Kind.FILE and None not in (number, one.version) and number != one.version + 1:
                return (), True  # a write over a live version gets the number after its (hunt28i F3)
            live = False
    return key, live


def next_number(volume: Volume, parts: Path) -> int | None:
    """The version number a file written at ``parts`` now gets (None: no directory there)."""
    try:
        directory = volume._need_dir(parts[:-1])
    except errors.OptvolError:
        return None
    row = volume.image.conn.execute("SELECT version FROM files WHERE dir = ? AND name_key = ? AND live = 1",
                                    (directory.id, model.name_key(parts[-1]))).fetchone()
    return row[0] + 1 if row else 1


def retire_live(volume: Volume, tx, parts: Path) -> None:
    """The live version at ``parts`` stops being live, as a version written over it makes it
    (on UDF its sectors are freed, as a replaced version's are). Nothing when none is."""
    try:
        directory = volume._need_dir(parts[:-1])
    except errors.OptvolError:
        return
    conn = volume.image.conn
    row = conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE dir = ? AND name_key = ? AND live = 1",
                       (directory.id, model.name_key(parts[-1]))).fetchone()
    if row is None:
        return
    older = FileRow(*row)
    conn.execute("UPDATE files SET live = 0 WHERE id = ?", (older.id,))
    count_live(conn, directory.id, -1)
    if volume._udf:
        tx.free(older.sectors(volume.image.sector_size))


def done_before_left_out(events: list[tuple]) -> list[tuple[replay.Found, tuple]]:
    """The records of a file's deletion, rename or attributes a replay could not apply since
    the file is not there (CPF1F22) that a version DUPOPT ALWMEDERR(*FILE) left out went
    through before it was left out (docs/format.md §3.2, DELETE): done already, as (record,
    its damage) pairs. From each left-out path, ``events`` (in record order) are followed
    back: a rename of the version itself to it, and of a directory above it (rev27e F1: a
    version renamed, or deleted and its directory renamed, before it was left out made the
    fresh duplicate damaged for CHKOPTVOL and recover)."""
    names, done = set(), []
    for event in reversed(events):
        if event[0] == "left out":
            names.add(event[1])
        elif event[0] == "moved":  # a directory's rename carries the paths below it (a file has none)
            _, source, target = event
            names |= {source + name[len(target):] for name in names if name.startswith(target.rstrip("/") + "/")}
        else:
            _, found, damage = event
            body, kind = found.header.body, found.header.kind
            if model.name_key(body["to"] if kind == Kind.RENAME else body["path"]) in names:
                if kind == Kind.RENAME:
                    names.add(model.name_key(body["from"]))
                done.append((found, damage))
    return done


# Indexes of the rebuilt index while it meets versions DUPOPT left out (made at the first,
# dropped before the commit: the schema has no use for them, a replay finds each by them).
LEFT_OUT_INDEXES = ("recover_left_out_at ON files (sector)", "recover_left_out ON files (dir, name_key, version)")


def replay_left_out(volume: Volume, tx, header, *, frees: bool = True) -> None:
    """A version DUPOPT left out leaves the rebuilt index, as it left the duplicate's: the
    version whose record lies at ``left_out_at`` (a name and version alone may also fit
    a later file of that name), or in records without it, that name's version."""
    for index in LEFT_OUT_INDEXES:
        volume.image.conn.execute(f"CREATE INDEX IF NOT EXISTS {index}")
    body, extent = header.body, replay.left_out_at(header)
    tx.append(Kind.DELETE, body, charged=not volume._udf)
    parts = volume._parts(body["path"])
    conn, key = volume.image.conn, model.name_key(parts[-1])
    if extent:  # found by its record: a version not live may be in a directory removed since (hunt28i F1)
        row = conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE sector = ?", (extent[0],)).fetchone()
    else:  # a name deleted and written again has two versions of that number: the damaged one (hunt28f F2)
        directory = volume._need_dir(parts[:-1])
        rows = conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE dir = ? AND name_key = ? AND version = ?",
                            (directory.id, key, body["left_out"])).fetchall()
        row = next((r for r in rows if len(rows) > 1 and _data_damaged(volume, FileRow(*r))), rows[0] if rows else None)
    if row is not None:
        version = FileRow(*row)
        live = bool(conn.execute("SELECT live FROM files WHERE id = ?", (version.id,)).fetchone()[0])
        if volume._udf and live and frees:
            tx.free(version.sectors(volume.image.sector_size))  # as leave_out
        volume._drop_version(version)
    elif not extent:
        raise errors.error("CPF1F22", path=f"{body['path']} (version {body['left_out']})", volume=volume.id)
    else:
        # Its record is the damage it was left out for, so it never entered this index. If it
        # was live, it is the last version of its name, and the version it replaced, still
        # live here, stopped being live when it was written (at its damaged record, where
        # LostVersions found its path; here when that could not be found).
        live = bool(body.get("left_out_live"))
        if live:
            retire_live(volume, tx, parts)
    if live and volume.image.label()["type"] == VolumeType.BACKUP:
        _forget(conn, volume._need_dir(parts[:-1]).id)  # (a live version's directory is live)


def _forget(conn, dir_id: int) -> None:
    """A backup's range of the directory that lost its live version, and the volume's, hold
    nothing for certain (``backup_seen`` NULL), as DUPOPT's control records that follow its
    left-out DELETE records say (PrivilegedWriter.leave_out): an optvol before 2026-12-06
    wrote none, and the duplicate's ranges claimed the file left out, which *CHANGED then
    never copied again (hunt28f F3). CHKOPTVOL names such a duplicate's ranges; recover
    forgets them."""
    conn.execute("UPDATE dirs SET backup_seen = NULL WHERE id = ? AND backup_end IS NOT NULL", (dir_id,))
    conn.execute("UPDATE label SET backup_seen = NULL WHERE backup_end IS NOT NULL")


def replay_old_left_out(volume: Volume, tx, header) -> None:
    """A DELETE record an optvol before commit 6819782 wrote for a live version DUPOPT
    ALWMEDERR(*FILE) left out (under the source's ID, without ``left_out``: recovery's
    ``_old_dupopt_delete``): that DUPOPT dropped the live version at its path from the
    duplicate's index outright, and so does the replay (hunt28f F1)."""
    parts = volume._parts(header.body["path"])
    directory = volume._need_dir(parts[:-1])
    row = volume.image.conn.execute("SELECT version FROM files WHERE dir = ? AND name_key = ? AND live = 1",
                                    (directory.id, model.name_key(parts[-1]))).fetchone()
    if row is None:
        raise errors.error("CPF1F22", path=header.body["path"], volume=volume.id)
    # (that DUPOPT freed no sectors of it on UDF, as today's does: rev28h F3)
    replay_left_out(volume, tx, replace(header, body={**header.body, "left_out": row[0], "left_out_live": True}),
                    frees=False)


def _data_damaged(volume: Volume, row: FileRow) -> bool:
    """Whether the data of version ``row`` does not read back as its SHA-256 says: of two
    versions of one number, the one DUPOPT left out (a DELETE record without ``left_out_at``)."""
    digest = hashlib.sha256()
    try:
        for chunk in volume.image.payload_chunks(sector=row.sector, header_sectors=row.header_sectors, size=row.size):
            digest.update(chunk)
    except errors.DamagedError:
        return True
    return digest.digest() != row.sha256
