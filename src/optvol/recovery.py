"""``optvol recover VOL``: rebuild the index partition from the data partition alone.

Every record of the data partition is replayed, in order, through the same volume code
that wrote it (``image/replay.py``), into a fresh index beside the old one; the fresh
index then replaces the old (lost or corrupt) one. Regions without a sound record header
are reported and skipped; a torn tail (a record cut short by a crash) is cut off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, TypeVar

from optvol import errors, model
from optvol import recovery_left_out as leaving
from optvol.image import image as image_mod
from optvol.image import locks, records, replay, schema
from optvol.image.connection import connect_index, host_failure
from optvol.image.datapart import fsync_dir
from optvol.image.records import Kind
from optvol.library import Library
from optvol.model import VolumeType
from optvol.privileged import PrivilegedWriter
from optvol.volume import Volume
from optvol.volume_rows import highest_request, set_meta

T = TypeVar("T")
RECOVERED_INDEX = image_mod.RECOVERED_INDEX
BUILDING_INDEX = "index.recovering.sqlite"  # the index being rebuilt, never opened as the volume's


class Indexed(NamedTuple):
    """A row the old index pointed into a damaged region with: a ``directory`` (``live``
    false: removed), a ``file`` version (``live`` false: replaced or deleted), a ``control``
    record (``path`` None: the volume's) or a ``request``."""

    record: str
    path: str | None
    version: int | None = None
    live: bool | None = None
    request: int | None = None

    def shown(self, show: Callable[[str], str]) -> str:
        """For the text output, the path as ``show`` (a display's quoting) gives it."""
        if self.record == "request":
            return f"request {self.request}"
        if self.record == "control":
            return "control record of " + ("the volume" if self.path is None else show(self.path))
        if self.record == "directory":
            return f"directory {show(self.path)}" + ("" if self.live else " (removed)")
        return f"file {show(self.path)} (version {self.version}{'' if self.live else ', no longer live'})"


@dataclass
class RecoveryReport:
    """What ``recover`` found in the data partition."""

    volume: str
    records: Counter = field(default_factory=Counter)
    damaged: list[tuple[int, int, str]] = field(default_factory=list)  # (sector, sectors, reason)
    salvaged: list[str] = field(default_factory=list)  # directories made again without their records
    indexed: dict[int, list[Indexed]] = field(default_factory=dict)  # damaged region's sector: the old index's rows there
    tail_cut: int = 0  # bytes
    files: int = 0
    versions: int = 0
    directories: int = 0

    def as_json(self) -> dict:
        return {
            "volume": self.volume, "records": {k.name: v for k, v in sorted(self.records.items())},
            "files": self.files, "versions": self.versions, "directories": self.directories,
            "damaged": [{"sector": s, "sectors": n, "reason": r,
                         "indexed": [held._asdict() for held in self.indexed.get(s, [])]} for s, n, r in self.damaged],
            "salvaged_directories": self.salvaged, "tail_cut_bytes": self.tail_cut,
        }


class ReplayClock:
    """The clock of a replay: the time the record being replayed was written."""

    def __init__(self) -> None:
        self.micros = 0

    def __call__(self) -> datetime:
        return model.from_micros(self.micros)


def recover(library: Library, *, vol: str) -> RecoveryReport:
    """Rebuild the index of volume ``vol`` from its data partition (exclusive: exit 8 if in use)."""
    volume_id = model.volume_id(vol)
    directory = library.root / f"{volume_id}.optvol"
    data_path = directory / image_mod.DATA_FILE
    if not directory.is_dir():
        raise errors.error("OPV0002", volume=volume_id, library=library.root)
    if not data_path.is_file():  # the records are all recover works from
        raise errors.error("OPV0201", volume=volume_id, reason="its data partition is missing: nothing to recover from")
    with library.locked():
        lock = image_mod.lock_exclusive(directory, volume=volume_id)
        try:
            if locks.linked(directory, image_mod.OWN_FILES):  # its tail cut, its index replaced: the copy's too
                raise errors.error("OPV0016", volume=volume_id, operation=f"recovering volume {volume_id}")
            if not os.access(data_path, os.W_OK):  # its lock may be written, its data partition not (mode 0444):
                raise errors.error("OPV0011", volume=volume_id, operation=f"recovering volume {volume_id}")
            _refuse_a_newer_index(directory / image_mod.INDEX_FILE, volume_id)
            return _rebuild(directory, volume_id)
        except (OSError, sqlite3.Error, errors.DamagedError) as exc:  # the host failed the new index
            failure = host_failure(exc, directory, volume_id)
            if failure is None:
                raise
            raise failure from None
        finally:
            os.close(lock)


def _rebuild(directory, volume_id: str) -> RecoveryReport:
    """Build the index aside as ``index.recovering.sqlite``; only once it is complete, in
    one fsynced file, does it become ``index.recovered.sqlite``, the name an open finishes
    the swap from (``image.swap_in_recovered_index``)."""
    label = first_label(directory)
    fresh = directory / BUILDING_INDEX
    _remove_index(fresh)
    _remove_index(directory / RECOVERED_INDEX)  # a complete one a killed run left: built again
    try:
        return _build(directory, volume_id, label, fresh)
    except BaseException:
        _remove_index(fresh)
        raise


def first_label(directory) -> dict:
    """The label the replay starts from: the first record's (INZOPT's). When that record
    cannot be read, the label the index still holds, else the first later LABEL record's
    (the replay applies every LABEL record after it anyway), under the volume ID of the
    first sound record: the ID the records written before any rename carry."""
    data = str(directory / image_mod.DATA_FILE)
    try:
        return replay.probe_label(data)
    except errors.DamagedError as unreadable:
        found = replay.first_sound_record(data)
        if found is None:
            raise unreadable from None
        size, first = found
        label = _label_of_index(directory / image_mod.INDEX_FILE) or replay.later_label(data, size, first.sector)
        if label is None or label.get("sector_size") != size or not isinstance(first.header.body.get("volume"), str):
            raise errors.error("OPV0201", volume=directory.name.removesuffix(".optvol"), reason=(
                f"{errors.cause(unreadable)}, and neither its index nor a later label record gives the label")) from None
        return {**label, "volume": first.header.body["volume"]}


def _refuse_a_newer_index(index, volume_id: str) -> None:
    """OPV0202 when the index can be read and a newer optvol wrote it: its records may mean
    what this optvol's replay does not know (index schema 4 changed how names match), so a
    rebuild here would lose what the newer one keeps. A lost or unreadable index is rebuilt."""
    found = schema.stored_version(index)
    if found is not None and found > schema.SCHEMA_VERSION:
        raise errors.error("OPV0202", path=volume_id, found=found, supported=schema.SCHEMA_VERSION)


def _label_of_index(index) -> dict | None:
    """The label row of a volume's index, if it can still be read."""
    row = schema.read_apart(index, f"SELECT {', '.join(image_mod.LABEL_FIELDS)} FROM label")
    return dict(zip(image_mod.LABEL_FIELDS, row, strict=True)) if row else None


def _committed_end_of_index(index) -> int:
    """``meta.committed_end`` of a volume's index if it can still be read, else 0: the records
    before it were committed, so a damaged one among them is no torn tail (hunt27i F2: a flipped
    byte in the last record's header made recover cut off that file's newest version)."""
    row = schema.read_apart(index, "SELECT value FROM meta WHERE key = 'committed_end'")
    return row[0] if row and isinstance(row[0], int) and row[0] > 0 else 0


# The rows an index points into a sector range with (``Indexed``), by sector.
_INDEXED = """SELECT sector, 'directory', path, NULL, live, NULL FROM dirs WHERE sector BETWEEN ?1 AND ?2
    UNION ALL SELECT f.sector, 'file', d.path || (CASE d.path WHEN '/' THEN '' ELSE '/' END) || f.name, f.version,
        f.live, NULL FROM files f JOIN dirs d ON d.id = f.dir WHERE f.sector BETWEEN ?1 AND ?2
    UNION ALL SELECT c.sector, 'control', d.path, NULL, NULL, NULL FROM controls c LEFT JOIN dirs d ON d.id = c.dir
        WHERE c.sector BETWEEN ?1 AND ?2
    UNION ALL SELECT sector, 'request', NULL, NULL, NULL, id FROM requests WHERE sector BETWEEN ?1 AND ?2"""


def _indexed_at(index, damaged: list[tuple[int, int, str]]) -> dict[int, list[Indexed]]:
    """For each damaged region, the rows the old index pointed into it with, if it still
    reads: a directory whose creation time now comes from an earlier record of its path (a
    backup's re-date) or that was made again, a file version, a control record, a request
    (hunt30h F2: recover and CHKOPTVOL after it named only the sector); a removed directory
    and a version no longer live said so (rev31f F2: a deleted file read as one lost).
    Deletions, renames and attribute changes are in no index row: their regions name nothing."""
    def look(conn) -> dict[int, list[Indexed]]:
        def held(row) -> Indexed:
            return Indexed(row[1], row[2], row[3], None if row[4] is None else bool(row[4]), row[5])
        return {start: [held(row) for row in sorted(conn.execute(_INDEXED, (start, start + count - 1)),
                                                    key=lambda row: (row[0], row[1], row[2] or "", row[3] or 0))]
                for start, count, _ in damaged}
    return schema.read_all_apart(index, look) if damaged else {}


def _remove_index(path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def new_index(path, label: dict) -> None:
    """An empty index of the current schema at ``path`` that holds only ``label``: the one a replay starts from."""
    conn = connect_index(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    schema.create(conn)
    fields = image_mod.LABEL_FIELDS
    conn.execute(f"INSERT INTO label (id, {', '.join(fields)}) VALUES (1, {', '.join('?' * len(fields))})",
                 [label.get(f) for f in fields])
    conn.execute("COMMIT")
    conn.close()


def _build(directory, volume_id: str, label: dict, fresh) -> RecoveryReport:
    new_index(fresh, label)
    report = RecoveryReport(volume_id)
    clock = ReplayClock()
    # The fresh index commits nothing yet: cutting "the tail" now would cut everything.
    image = image_mod.VolumeImage(directory, index_file=BUILDING_INDEX, lock=False, cut_tail=False)
    try:
        old = _label_of_index(directory / image_mod.INDEX_FILE)
        own = directory.name.removesuffix(".optvol")
        end = _replay_all(image, clock, report, keep=_committed_end_of_index(directory / image_mod.INDEX_FILE),
                          named=old if old and old.get("volume") == own else None)
        report.volume = image.label()["volume"]
        report.files, report.versions, report.directories = _counts(image)
        report.indexed = _indexed_at(directory / image_mod.INDEX_FILE, report.damaged)
    finally:
        image.close()
    # The rebuilt index in one file, on disk, before the old one goes (swap_in_recovered_index).
    conn = connect_index(fresh)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(fresh, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(fresh, directory / RECOVERED_INDEX)  # complete: from here an open may finish the swap
    fsync_dir(directory)
    size = os.path.getsize(directory / image_mod.DATA_FILE)
    if size > end * label["sector_size"]:
        report.tail_cut = size - end * label["sector_size"]
        os.truncate(directory / image_mod.DATA_FILE, end * label["sector_size"])
    image_mod.swap_in_recovered_index(directory)
    return report


def _restore_primary(conn) -> None:
    """A backup whose LABEL record of the claim was lost (reported damaged) still knows its
    one primary from its request log: a run that wrote control records onto it had claimed
    it, so it came from that volume (FROMVOL). Without it, the recovered backup would take
    data from any primary."""
    volume_type, primary = conn.execute("SELECT type, primary_volume FROM label").fetchone()
    first = conn.execute("SELECT parameters FROM requests WHERE id IN (SELECT request FROM controls)"
                         " ORDER BY id LIMIT 1").fetchone()
    if volume_type == VolumeType.BACKUP and primary is None and first is not None:
        conn.execute("UPDATE label SET primary_volume = ?", (model.volume_id(json.loads(first[0])["FROMVOL"][0]),))


def _restore_request_reservation(conn) -> None:
    """``meta.next_request`` (PrivilegedWriter.reserve_request_id) after every ID the records
    name; an ID reserved by a run that was killed before it named it in any record is free
    again, since nothing refers to it."""
    found = highest_request(conn)
    if found:
        set_meta(conn, "next_request", found + 1)


def _replay_all(image: image_mod.VolumeImage, clock: ReplayClock, report: RecoveryReport, *, keep: int = 0,
                named: dict | None = None) -> int:
    """Replay every sound record in one transaction; return the sector after the last one
    (or after a damaged region before sector ``keep``, which was committed). ``named``: the
    label of the old index, still readable, whose ID is the one its directory gives; with damage,
    the rebuilt label takes it where the LABEL record that gave it could not be read and no
    record after it carries it (``_renamed_unread``: the last record of a fresh duplicate)."""
    image.conn.execute("BEGIN IMMEDIATE")
    volume, tx, end = replay_records(image, clock, report, keep=keep, named=named)
    tx.end = end
    tx.finish(clock.micros or None)
    _restore_request_reservation(image.conn)
    _restore_primary(image.conn)
    if report.damaged:
        _forget_ranges(image.conn)
        # A history of its own from here (copying._history_of): what a record that could not be
        # replayed did is gone from the index, so its backups' ranges may claim a later state.
        # Named by the damage, so that recover of the same records gives the same index.
        # A region past the committed end the old index gives, cut off with the tail, held nothing
        # committed (a header a crash tore): no older state, no new history (rev27p F3).
        if keep == 0 or any(sector < max(end, keep) for sector, _, _ in report.damaged):
            met = json.dumps([end, report.damaged]).encode()
            set_meta(image.conn, "recovered_mark", int.from_bytes(hashlib.blake2b(met, digest_size=8).digest(), "big") >> 1)
        if named is not None and volume.image.label()["volume"] != named["volume"]:
            _take_id(volume, tx, named["volume"], named)
    image.conn.execute("COMMIT")
    volume._tx = volume._tx_label = None
    return end


def _forget_ranges(conn) -> None:
    """A backup whose records recover could not all replay keeps no range that holds anything
    for certain (``backup_seen`` NULL, docs/format.md §4.2): a range a control record gives
    may claim a file whose record was the damage (rev27j F2: the next *CHANGED run skipped
    it, and it was never backed up again). The next CPYOPT compares every file, as after
    DUPOPT ALWMEDERR(*FILE) left a file out; no record is written (the damage stays, so a
    later recover forgets them again)."""
    if conn.execute("SELECT type FROM label").fetchone()[0] == VolumeType.BACKUP:
        conn.execute("UPDATE dirs SET backup_seen = NULL WHERE backup_seen IS NOT NULL")
        conn.execute("UPDATE label SET backup_seen = NULL WHERE backup_seen IS NOT NULL")


def replay_records(image: image_mod.VolumeImage, clock: ReplayClock, report: RecoveryReport, *,
                   stop: int | None = None, keep: int = 0,
                   named: dict | None = None) -> tuple[Volume, replay.ReplayTransaction, int]:
    """Replay every sound record before sector ``stop`` (all, if None) over the fresh index of
    ``image``, inside the transaction the caller began; the volume and replay transaction it
    ran through, and the sector after the last sound record, or after the part before sector
    ``keep`` of a damaged region (an index that still reads says its records were committed:
    damage, not a torn tail, and not to be cut off). ``named``: that index's label, when it
    names the volume as its directory does (``_take_id``). Nothing is committed."""
    volume = Volume(image, clock=clock)
    tx = replay.ReplayTransaction(image)
    volume._tx, volume._tx_label = tx, image.label()
    end = 0  # after the last sound record; trailing regions without one are cut off
    left_out = []  # versions DUPOPT left out of this duplicate: their damage is no news
    events = []  # what a version left out may have gone through before (leaving.done_before_left_out)
    salvage = _Salvage(volume, tx, report)
    run = _FileRun(volume, tx, clock, report, salvage)
    lost = leaving.LostVersions(image.data.fd, image.sector_size, stop)
    renamed_from = None  # the ID a LABEL record just renamed, while only DELETE records follow it
    trailing = 0  # sectors charged for damaged regions after the last sound record: cut off, not charged
    for found in replay.scan(image.data.fd, image.sector_size, end=stop):
        if found.reason == "torn tail":
            break
        if found.header is None:
            renamed_from = None
            run.replay()
            report.damaged.append((found.sector, found.sectors, found.reason))
            salvage.damaged_at = found.sector
            for parts in lost.within(found, lambda parts: leaving.next_number(volume, parts)):  # (rev27h F2)
                leaving.retire_live(volume, tx, parts)
            charged = _charge_skipped(volume, tx, found)
            if committed := max(0, min(found.sector + found.sectors, keep) - found.sector):
                end, trailing = found.sector + committed, charged - min(charged, committed)
            else:
                trailing += charged
            continue
        end, trailing = found.sector + found.sectors, 0
        renamed_from = renamed_from if _old_dupopt_delete(found.header, renamed_from) else None
        if renamed_from is None and not _belongs(found.header, volume._tx_label["volume"]):
            run.replay()
            if not _renamed_unread(volume, tx, found.header, named):
                report.damaged.append((found.sector, found.sectors, "a record of another volume"))
                _charge_skipped(volume, tx, found)
                continue
        if run.took(found):
            continue
        run.replay()
        if extent := replay.left_out_at(found.header):
            left_out.append(extent)
            events.append(("left out", model.name_key(found.header.body["path"])))
        tx.expect(found)
        clock.micros = _time_of(found.header) or clock.micros  # a CONTROL record has no time
        before = volume._tx_label["volume"]
        try:
            if renamed_from is not None:  # an older DUPOPT's DELETE of a version it left out
                leaving.replay_old_left_out(volume, tx, found.header)
            else:
                _apply(volume, tx, found.header, salvage)
        except errors.OptvolError as exc:
            report.damaged.append((found.sector, found.sectors, f"{found.header.kind.name} record not applied: {exc.text}"))
            if found.header.kind in leaving.OF_A_FILE and exc.message_id == "CPF1F22":
                events.append(("not found", found, report.damaged[-1]))
            continue
        report.records[found.header.kind] += 1
        if found.header.kind == Kind.LABEL and volume._tx_label["volume"] != before:
            renamed_from = before
        if found.header.kind == Kind.RENAME:
            events.append(("moved", model.name_key(found.header.body["from"]), model.name_key(found.header.body["to"])))
    run.replay()
    tx.free(trailing)  # (recover cuts them off with the tail: no room of the volume holds them)
    done = set()
    for found, damage in leaving.done_before_left_out(events):
        done.add(id(damage))
        report.records[found.header.kind] += 1
        _charge_skipped(volume, tx, found)  # charged on HPOFS, as it was when written
    left_out = replay.merged(left_out)
    report.damaged = [d for d in report.damaged if id(d) not in done and (
        d[2] != "no sound record header" or not replay.within(*d[:2], left_out))]
    for index in leaving.LEFT_OUT_INDEXES:
        image.conn.execute(f"DROP INDEX IF EXISTS {index.split()[0]}")
    return volume, tx, end


def _charge_skipped(volume: Volume, tx: replay.ReplayTransaction, found: replay.Found) -> int:
    """A region skipped unread still takes room on an HPOFS volume, which never frees any; on
    UDF it may have been a version freed since, or a record UDF does not charge. The sectors charged."""
    if volume._udf:
        return 0
    tx.charge(found.sectors)
    return found.sectors


def _renamed_unread(volume: Volume, tx: replay.ReplayTransaction, header, named: dict | None = None) -> bool:
    """Whether ``header`` is a record of the ID the volume's directory is named for while the
    replay still holds another: the LABEL record that gave the volume that ID (DUPOPT's of a
    duplicate, a rename) could not be read (its region is reported), so the replay takes
    the ID from here on. Else recover rebuilt the duplicate under its source's ID, which every
    command then refused, and left out every record written onto it since (hunt27n F1)."""
    own = volume.image.directory.name.removesuffix(".optvol")
    if header.body.get("volume") != own or volume._tx_label["volume"] == own:
        return False
    _take_id(volume, tx, own, named)
    return True


# What the unread LABEL record set besides the ID (rev27p F1/F2: CVTOPTBKU's type, DUPOPT's media
# and creation time), taken from the old index that names the volume so; the ranges are the records'.
_TAKEN = ("type", "media_type", "capacity", "threshold", "text", "created", "primary_volume")


def _take_id(volume: Volume, tx: replay.ReplayTransaction, own: str, named: dict | None) -> None:
    """The label takes ID ``own`` (its directory's), and from ``named`` (the old index's label,
    given only when it names the volume so) the rest of what the unread record set."""
    fields = {"volume": own, **({key: named[key] for key in _TAKEN} if named else {})}
    volume.image.conn.execute(f"UPDATE label SET {', '.join(f'{key} = ?' for key in fields)}", list(fields.values()))
    tx.volume, volume._tx_label = own, volume.image.label()


def _belongs(header, current: str) -> bool:
    """A record of this volume: its ID, or a LABEL record that renames it (CVTOPTBKU)."""
    volume = header.body.get("volume")
    if header.kind == Kind.LABEL:
        return volume in (current, (header.body.get("label") or {}).get("volume"))
    return volume == current


def _old_dupopt_delete(header, renamed_from: str | None) -> bool:
    """Whether ``header`` is a DELETE record an optvol before commit 6819782 wrote for a live
    version DUPOPT ALWMEDERR(*FILE) left out: under its source's ID (``renamed_from``, the
    ID the duplicate's LABEL record had just replaced), among the DELETE records right after
    that LABEL record, without ``left_out`` (hunt28f F1: recover skipped them as another
    volume's and brought the damaged versions back; CHKOPTVOL called the duplicate damaged)."""
    return (renamed_from is not None and header.kind == Kind.DELETE and "left_out" not in header.body
            and header.body.get("volume") == renamed_from)


def _time_of(header) -> int:
    body = header.body
    for key in ("time", "modified", "created"):
        if isinstance(body.get(key), int):
            return body[key]
    label = body.get("label") or {}
    return label.get("last_referenced") or label.get("created") or 0


def _apply(volume: Volume, tx: replay.ReplayTransaction, header, salvage: _Salvage) -> None:
    """Run the volume operation that wrote this record again, over the fresh index."""
    body, kind = header.body, header.kind
    writer = PrivilegedWriter(volume, tx, honour_read_only=False)
    if kind == Kind.LABEL:
        tx.write_label(body["label"])
        volume._tx_label = volume.image.label()
    elif kind == Kind.DIRECTORY and body["path"] == "/":
        image_mod.index_root(volume.image.conn, created=body["created"], sector=tx.append(kind, body).sector)
    elif kind == Kind.DIRECTORY and volume._dir(volume._parts(body["path"], is_dir=True)) is not None:
        writer.redate_dir(body["path"], body["created"], replayed=True)  # a backup's directory its primary made again
    elif kind == Kind.DIRECTORY:
        parts = volume._parts(body["path"], is_dir=True)
        salvage.retried(parts[:-1], body["created"], lambda: volume._make_dir(
            tx, parts, parents=False, exist_ok=False, created=body["created"]))
    elif kind == Kind.FILE:
        parts = volume._parts(body["path"])
        salvage.retried(parts[:-1], body.get("time"), lambda: _replay_file(volume, tx, header, parts))
    elif kind == Kind.DELETE and "left_out" in body:  # DUPOPT ALWMEDERR(*FILE) left this version out
        leaving.replay_left_out(volume, tx, header)
    elif kind == Kind.DELETE:
        volume._delete(tx, volume._parts(body["path"]), honour_read_only=False)
    elif kind == Kind.REMOVE_DIRECTORY:
        volume._remove_dir(tx, volume._parts(body["path"], is_dir=True))
    elif kind == Kind.RENAME:
        volume._rename(tx, volume._parts(body["from"]), volume._parts(body["to"]))
    elif kind == Kind.ATTRIBUTES:
        volume._set_flags(tx, volume._parts(body["path"]), body["flags"])
    elif kind == Kind.CONTROL:
        if isinstance(body.get("path"), str):  # (its directory first: the record is taken before it is looked up)
            salvage.ensure(volume._parts(body["path"], is_dir=True), volume._now())
        # A record of index schema 2 or before has no range_seen: its range holds nothing for certain.
        row = (body["range_start"], body["range_end"], body["last_changed"], body.get("range_seen"))
        writer.record_control(body["path"], row, request=body["request"], details={}, sectors=header.header_sectors,
                              primary_history=body.get("primary_history"),
                              primary_place=tuple(body["primary_place"]) if "primary_place" in body else None,
                              place_forward_only=not body.get("primary_place_reset", False))
    elif kind == Kind.REQUEST:
        writer.log_request(body)


class _FileRun:
    """Consecutive FILE records of one directory with names that differ by key, as
    ``PrivilegedWriter.write_files`` writes them (CPYOPT) and a batch of writes (``cp -r``,
    import-iso): replayed together, as that writes them (one look-up of the names, one
    insert), rather than one ``_store`` each, which cost CHKOPTVOL and recover three times
    what they cost before on small files (four statements a record). The index is the one the
    records give one by one: each keeps its change time, and each record's refusal is its
    own, in its place among the damage reported."""

    LIMIT = 1024  # records at a time: what is held stays small whatever a directory holds

    def __init__(self, volume: Volume, tx: replay.ReplayTransaction, clock: ReplayClock, report: RecoveryReport,
                 salvage: _Salvage):
        self.volume, self.tx, self.clock, self.report, self.salvage = volume, tx, clock, report, salvage
        self.records: list[tuple[replay.Found, tuple[str, ...]]] = []
        self.keys: set[str] = set()

    def took(self, found: replay.Found) -> bool:
        """Whether ``found`` joins the run (replaying the run first if it starts another)."""
        header = found.header
        body = header.body
        if header.kind != Kind.FILE or not isinstance(body.get("path"), str) or not all(
                isinstance(body.get(k), int) for k in ("time", "created", "modified", "attr_changed", "flags")):
            return False
        time = body["time"]
        if not time or model.clamp_micros(time) != time:  # (the clock a record of time 0 keeps, or clamps)
            return False
        try:
            parts = self.volume._parts(body["path"])
        except errors.OptvolError:
            return False  # refused by _apply, in its place
        if not parts:
            return False
        key = model.name_key(parts[-1])
        if self.records and (key in self.keys or parts[:-1] != self.records[0][1][:-1]
                             or len(self.records) >= self.LIMIT):
            self.replay()
        self.records.append((found, parts))
        self.keys.add(key)
        return True

    def replay(self) -> None:
        """Replay the records taken so far, as ``_replay_file`` would one after the other."""
        if not self.records:
            return
        run, self.records, self.keys = self.records, [], set()
        for (found, _), refused in zip(run, self._write(run) if len(run) > 1 else self._write_one(*run[0]), strict=True):
            if refused is None:
                self.report.records[Kind.FILE] += 1
            else:
                self.report.damaged.append((found.sector, found.sectors, f"FILE record not applied: {refused.text}"))
        self.clock.micros = run[-1][0].header.body["time"]

    def _write_one(self, found: replay.Found, parts: tuple[str, ...]) -> list[errors.OptvolError | None]:
        """A run of one (a file a user wrote): ``_apply``'s way, without its second look at the path."""
        self.tx.expect(found)
        self.clock.micros = found.header.body["time"]
        try:
            self.salvage.retried(parts[:-1], found.header.body["time"],
                                 lambda: _replay_file(self.volume, self.tx, found.header, parts))
        except errors.OptvolError as exc:
            return [exc]
        return [None]

    def _write(self, run: list[tuple[replay.Found, tuple[str, ...]]]) -> list[errors.OptvolError | None]:
        volume, tx, typed = self.volume, self.tx, run[0][1][:-1]
        try:
            parent = self.salvage.retried(typed, run[0][0].header.body["time"], lambda: volume._parent_dir(tx, typed))
        except errors.OptvolError as exc:
            return [exc] * len(run)
        files = [(parts[-1], model.name_key(parts[-1]), found.header.payload_size, found.header.payload_sha256,
                  (body["created"], body["modified"], body["attr_changed"]), body["flags"])
                 for found, parts in run for body in (found.header.body,)]
        olds = volume._files_named(parent.id, [f[1] for f in files])
        stamps = []  # each record's change time, as _store takes it (its ``changed``, else its time)
        for found, _ in run:
            tx.expect(found)
            self.clock.micros = found.header.body["time"]
            stamps.append(tx.stamp(volume._now()))
        self.clock.micros = run[0][0].header.body["time"]
        outcomes = volume._new_versions(tx, parent, typed, files, olds, replace=True, honour_read_only=False,
                                        now=volume._now(), stamp=stamps[0], charge=False)  # (its bodies unused)
        refused, versions, changed = [], [], []
        for (found, _), (name, key, *_), outcome, stamp in zip(run, files, outcomes, stamps, strict=True):
            if isinstance(outcome, errors.OptvolError):
                refused.append(outcome)
                continue
            new, _, _, old = outcome
            if isinstance(found.header.body.get("version"), int):  # (as _replay_file)
                new = new._replace(version=found.header.body["version"])
            tx.expect(found)
            versions.append((name, key, new, old, tx.append(Kind.FILE, {})))
            changed.append(stamp)
            refused.append(None)
        if versions:
            tx.carry(max(changed))
            volume._index_versions(parent.id, versions, changed=changed)
        return refused


class _Salvage:
    """Directories made again for the records below them when their own record cannot be read
    (hunt27i F1: one changed byte of a directory's record made recover drop every sound file
    below it). Such a directory gets the sector of the last region without a sound header
    before the record that needs it (its record lay there or earlier; CHKOPTVOL names it
    damaged there), the time of that record, and no record is written: the volume's data
    stay as they are. Without a damaged region before it, a missing directory stays an error."""

    def __init__(self, volume: Volume, tx: replay.ReplayTransaction, report: RecoveryReport):
        self.volume, self.tx, self.report = volume, tx, report
        self.damaged_at: int | None = None

    def retried(self, parent: tuple[str, ...], created, write: Callable[[], T]) -> T:
        """``write()``; where it fails for want of directory ``parent`` (CPF1F02) after a
        damaged region, ``parent`` (with every directory above it it lacks) made again and
        ``write()`` once more."""
        try:
            return write()
        except errors.OptvolError as exc:
            if exc.message_id != "CPF1F02" or self.damaged_at is None or not isinstance(created, int) \
                    or not self._make(parent, created):
                raise
        return write()

    def ensure(self, parts: tuple[str, ...], created: int) -> None:
        """Directory ``parts`` made again if it is missing after a damaged region (a backup's
        control record of it: the root's, written before any file needed the root)."""
        if self.damaged_at is not None and self.volume._dir(parts) is None:
            self._make(parts, created)

    def _make(self, parts: tuple[str, ...], created: int) -> bool:
        volume, conn = self.volume, self.volume.image.conn
        if volume._dir(()) is None:  # the root's record (the volume's second) could not be read
            image_mod.index_root(conn, created=created, sector=self.damaged_at)
            self.report.salvaged.append("/")
            if volume._udf:
                self.tx.charge(self._record_sectors())
        for depth in range(1, len(parts) + 1):
            if volume._dir(parts[:depth]) is not None:
                continue
            if volume._lookup(parts[:depth]) is not None:  # a file in its place: no directory there
                return False
            parent = volume._dir(parts[:depth - 1])
            path = parent.path.rstrip("/") + "/" + parts[depth - 1]
            conn.execute("INSERT INTO dirs (parent, name, path, path_key, created, sector, live)"
                         " VALUES (?, ?, ?, ?, ?, ?, 1)",
                         (parent.id, parts[depth - 1], path, model.name_key(path), created, self.damaged_at))
            self.report.salvaged.append(path)
            self.tx.memo.clear()
            if volume._udf:  # UDF charges a live directory's record, and frees what its removal reads there
                self.tx.charge(self._record_sectors())
        return True

    def _record_sectors(self) -> int:
        """The sectors ``Volume._remove_dir`` frees on UDF for a directory made again here
        (it reads them from the damaged region's first header), else the one a record takes
        at least (rev27j F1: uncharged, each removal took them off meta.used_sectors, below 0)."""
        try:
            return records.header_sectors_of(self.volume.image.data.read(self.damaged_at, self.volume.image.sector_size))
        except errors.OptvolError:
            return 1


def _replay_file(volume: Volume, tx: replay.ReplayTransaction, header, parts: tuple[str, ...] | None = None) -> None:
    body, parts = header.body, volume._parts(header.body["path"]) if parts is None else parts
    new = volume._store(tx, parts, size=header.payload_size, payload=lambda data, sector: b"", replace=True,
                        times=(body["created"], body["modified"], body["attr_changed"]), flags=body["flags"],
                        honour_read_only=False)
    if isinstance(body.get("version"), int) and new.version != body["version"]:
        # The record of a version before it could not be read: its number is its record's,
        # which later records name (a DELETE's ``left_out``), not the next free one.
        row = volume._file(volume._need_dir(parts[:-1]).id, parts[-1])
        volume.image.conn.execute("UPDATE files SET version = ? WHERE id = ?", (body["version"], row.id))


def _counts(image: image_mod.VolumeImage) -> tuple[int, int, int]:
    conn = image.conn
    return (conn.execute("SELECT count(*) FROM files WHERE live = 1").fetchone()[0],
            conn.execute("SELECT count(*) FROM files").fetchone()[0],
            conn.execute("SELECT count(*) FROM dirs WHERE live = 1").fetchone()[0])
