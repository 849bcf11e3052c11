"""Writes that keep given dates and bypass the user-program rules (layer 3, beside ``volume.py``).

A ``PrivilegedWriter`` is obtained only from ``Volume.backup_writer`` (CPYOPT and CVTOPTBKU
on a *BACKUP volume), ``Volume.copy_writer`` (CPYOPT onto a *PRIMARY volume, user-write
rules still checked) and ``Volume.mastering_writer`` (filling an imported read-only disc).
Every write still goes through the volume's own steps: ``Volume._store`` for one file, and
for many small files (``write_files``) the same checks and indexing, ``_new_versions`` and
``_index_versions``, with their records appended together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import NamedTuple

from optvol import errors, model
from optvol.image import image as image_mod
from optvol.image.records import Kind, encode_body, header_sectors_for, sectors_for
from optvol.image.signals import held_result
from optvol.model import DirInfo, FileInfo, VolumeType
from optvol.volume_rows import (
    FILE_COLUMNS,
    HIDDEN,
    RANGE_COLUMNS,
    READ_ONLY,
    FileRow,
    highest_request,
    optional_meta,
    scan_sql,
    scanned,
    set_meta,
)

_RANGE_ASSIGNMENTS = ", ".join(f"{c} = ?" for c in RANGE_COLUMNS)


class SourceRange(NamedTuple):
    """Payload bytes of a file version on another (or the same) volume's data partition.

    ``digest`` is their SHA-256 being computed on another thread (a future of ``DataPartition.hash_range``,
    started by the caller, ahead of the copy or with it).
    """

    fd: int
    offset: int
    volume: str
    path: str
    digest: Future


class NewVersion(NamedTuple):
    """A file version just written (times in microseconds)."""

    path: str
    size: int
    created: int
    modified: int
    attr_changed: int
    flags: int
    sha256: bytes
    version: int

    def info(self) -> FileInfo:
        return FileInfo(
            path=self.path, size=self.size, created=model.from_micros(self.created),
            modified=model.from_micros(self.modified), attr_changed=model.from_micros(self.attr_changed),
            read_only=bool(self.flags & READ_ONLY), hidden=bool(self.flags & HIDDEN),
            sha256=self.sha256.hex(), version=self.version,
        )


class SmallFile(NamedTuple):
    """A whole file to write from memory (``write_files``): its verified bytes, times and flags."""

    name: str
    data: bytes
    sha256: bytes  # of ``data``, as verified against the source
    times: tuple[int, int, int]  # created, modified, attribute-changed (microseconds)
    flags: int


class PrivilegedWriter:
    """Writes that keep given dates: CPYOPT targets, CVTOPTBKU, and mastering imported discs.

    Obtained only from ``backup_writer``, ``copy_writer`` or ``mastering_writer``.
    """

    def __init__(self, volume, tx: image_mod.Transaction, *, honour_read_only: bool):
        self.volume, self.tx, self.honour_read_only = volume, tx, honour_read_only

    def savepoint(self):
        """A block whose writes are undone alone if it raises (one file of a batch)."""
        return self.tx.savepoint()

    def make_dir(self, path: str, *, created: int) -> DirInfo:
        """Create a directory (and missing parents) with the given creation time (microseconds)."""
        parts = self.volume._parts(path, is_dir=True)
        return self.volume._make_dir(self.tx, parts, parents=True, exist_ok=True, created=created)

    def redate_dir(self, path: str, created: int, *, replayed: bool = False) -> bool:
        """Give the existing directory at ``path`` the creation time ``created`` with a
        DIRECTORY record of its own: a backup's directory carries its primary's date, also
        after the primary's was removed and made again (CPYOPT; hunt27a F1). Whether it changed.
        ``replayed`` (recover): the record is taken whatever the time, as every record is, and
        with its spelling: where the RENAME record of a case change, or the REMOVE_DIRECTORY
        record before a mkdir of another spelling, could not be read, the directory is named
        as the record names it (hunt30h F1; no RENAME record is written in a replay)."""
        parts = self.volume._parts(path, is_dir=True)
        directory = self.volume._need_dir(parts)
        if replayed and directory.name != parts[-1]:  # (an ancestor's spelling is its own records')
            # The files below changed after every change before (the lost record's stamp, not
            # this record's time: a re-date's is the primary's creation, long before; rev31f F1).
            stamp = max(self.tx.stamp(self.volume._now()), self.tx.changed_high + 1)
            self.tx.carry(stamp)
            self.tx.memo.clear()
            self.volume._move_dir(directory, self.volume._need_dir(parts[:-1]), parts, stamp)
            directory = self.volume._need_dir(parts)
        if directory.created == created and not replayed:
            return False
        self.tx.memo.clear()
        place = self.tx.append(Kind.DIRECTORY, {"path": directory.path, "created": created})
        self.volume.image.conn.execute("UPDATE dirs SET created = ?, sector = ? WHERE id = ?",
                                       (created, place.sector, directory.id))
        return True

    def match_case(self, path: str) -> bool:
        """Give the directory at ``path`` (found without case) and its ancestors the spelling
        of ``path``, each with a RENAME record: a backup keeps its primary's names, also after
        a rename there that changed only their case (CPYOPT). True if the directory at
        ``path`` itself was renamed: an ancestor renamed is not a change to it."""
        parts, renamed = self.volume._parts(path, is_dir=True), False
        for depth in range(1, len(parts) + 1):
            current = self.volume._dir(parts[:depth])
            renamed = current is not None and current.path != model.join(parts[:depth])
            if renamed:
                self.volume._rename(self.tx, tuple(current.path.split("/")[1:]), parts[:depth])
        return renamed

    def write_file(
        self, path: str, *, size: int, created: int, modified: int, attr_changed: int, flags: int = 0,
        data: bytes | None = None, chunks: Iterator[bytes] | None = None, replace: bool = True,
        verified_sha256: bytes | None = None, parts: tuple[str, ...] | None = None,
        copy_from: SourceRange | None = None,
    ) -> NewVersion:
        """Write a file version from ``data``, ``chunks`` or ``copy_from``, keeping the given times and flags.

        ``verified_sha256`` is the known SHA-256 of ``data``; with ``chunks`` it may come
        only when they raise unless their bytes hash to it (``Volume.verified_chunks``): the
        bytes are then hashed once, not twice. With ``copy_from`` it is required: the kernel
        copies the bytes while a second thread hashes the source, and a mismatch fails the
        write (CPF1F28). ``parts`` are ``path``'s elements when the caller has checked them.
        """
        parts = parts or self.volume._parts(path)
        payload: bytes | Callable = data
        if copy_from is not None:
            def payload(partition, sector: int) -> bytes:
                return _copy_verified(partition, sector, copy_from, size=size, expected=verified_sha256)
        elif data is None:
            def payload(partition, sector: int) -> bytes:
                if verified_sha256 is None:
                    written, sha = partition.write_stream(sector, chunks, limit=size)
                else:
                    written, sha = _write_verified(partition, sector, chunks, limit=size), verified_sha256
                if written != size:
                    raise errors.error("OPV0201", volume=self.volume.id, reason=f"{path}: source ended early")
                return sha

        return self.volume._store(
            self.tx, parts, size=size, payload=payload, replace=replace, times=(created, modified, attr_changed),
            flags=flags, honour_read_only=self.honour_read_only, sha256=verified_sha256 if data is not None else None,
        )

    def write_files(self, directory: str, files: list[SmallFile], *,
                    skip_same: bool = False) -> list[NewVersion | errors.OptvolError | None]:
        """Write many small files into ``directory``, keeping their times and flags, each checked alone.

        The result holds, in order, each file's new version or the error that refused it
        (nothing of a refused file is written); with ``skip_same``, None for a file whose
        live version there already has its bytes, times and flags (``same_version``), which
        is not written again. Names must differ by key. A plain tuple of a SmallFile's
        fields will do for a SmallFile.
        """
        volume, tx = self.volume, self.tx
        parts = volume._parts(directory, is_dir=True)
        try:
            parent = volume._parent_dir(tx, parts)
        except errors.OptvolError as exc:
            return [exc] * len(files)
        name_key = model.name_key
        keyed = [(name, name_key(name), len(data), sha256, times, flags) for name, data, sha256, times, flags in files]
        olds = volume._files_named(parent.id, [f[1] for f in keyed])
        if skip_same and any(same_version(olds.get(f[1]), *f[2:]) for f in keyed):
            kept = [same_version(olds.get(f[1]), *f[2:]) for f in keyed]
            outcomes = iter(self.write_files(directory, [f for f, k in zip(files, kept, strict=True) if not k]))
            return [None if k else next(outcomes) for k in kept]
        now = volume._now()
        stamp = tx.stamp(now)
        outcomes = volume._new_versions(tx, parent, parts, keyed, olds, replace=True,
                                        honour_read_only=self.honour_read_only, now=now, stamp=stamp, charge=True)
        records, versions, done = [], [], []
        for (name, key, *_), (_, data, sha256, *_), outcome in zip(keyed, files, outcomes, strict=True):
            if isinstance(outcome, errors.OptvolError):
                done.append(outcome)
                continue
            new, body, _, old = outcome
            records.append((body, data, sha256))
            versions.append((name, key, new, old))
            done.append(new)
        if records:  # every check has passed: only I/O errors can come from here on, and they end the transaction
            places = tx.append_many(Kind.FILE, records)
            tx.carry(stamp)
            tx.write_behind()  # the disk works while the index is written
            volume._index_versions(parent.id, [(*v, place) for v, place in zip(versions, places, strict=True)],
                                   changed=stamp)
        return done

    def set_label(self, **fields: object) -> None:
        self.tx.write_label({**self.volume.image.label(), **fields})
        self.volume._tx_label = self.volume.image.label()

    def record_control(self, path: str | None, row: tuple[int | None, int | None, int | None, int | None], *,
                       request: int, details: dict, sectors: int, primary_history: int | None = None,
                       primary_place: tuple[int, int] | None = None, place_forward_only: bool = True,
                       refusable: bool = True) -> None:
        """Write the backup control record of a directory (``path``) or the volume (None).

        ``row`` is (range start, range end, last changed, seen) as index values
        (``backup.Range.as_row``); the record takes exactly ``sectors`` sectors of the volume
        (reference §4.2: three per directory). ``primary_history``: the history of the primary
        the ranges describe (``meta.primary_history``, ``copying._history_of``);
        ``primary_place``: how far it had gone (``copying._place_in_history``), kept only if
        no other run kept a later one meanwhile (``place_forward_only``: a run that overlapped
        a later one must not take the backup's place back over what that one's ranges claim;
        a run onto another history, or one that found no place, sets its own). Not
        ``refusable``: charged but never refused by the threshold (DUPOPT's bookkeeping).
        """
        start, end, last, seen = row
        body = {"path": path, "range_start": start, "range_end": end, "last_changed": last, "range_seen": seen,
                "request": request}
        if primary_history is not None:
            body["primary_history"] = primary_history
            set_meta(self.volume.image.conn, "primary_history", primary_history)
        if primary_place is not None:
            body["primary_place"] = list(primary_place)
            if not place_forward_only:
                body["primary_place_reset"] = True  # (recover replays it so)
            kept = optional_meta(self.volume.image.conn, "primary_place_sector")
            if not place_forward_only or kept is None or primary_place[0] >= kept:
                set_meta(self.volume.image.conn, "primary_place_sector", primary_place[0])
                set_meta(self.volume.image.conn, "primary_place_mark", primary_place[1])
        sector_size = self.volume.image.sector_size
        # The header's sectors are what a long path of multi-byte characters makes them (up
        # to 3 of 512 bytes), so the padded payload takes the rest of exactly ``sectors``.
        encoded_body = encode_body({"volume": self.tx.volume, **body})
        room = max(0, sectors - header_sectors_for(encoded_body, sector_size)) * sector_size
        encoded = json.dumps(details, separators=(",", ":")).encode()  # ~70 bytes: it fits in any room left
        place = self.tx.append(Kind.CONTROL, encoded_body, encoded.ljust(room) if len(encoded) <= room else b"",
                               charged=refusable)
        if not refusable:
            self.tx.charge(place.sectors)
        conn = self.volume.image.conn
        if path is None:
            conn.execute(f"UPDATE label SET {_RANGE_ASSIGNMENTS}", row)
            self.volume._tx_label = self.volume.image.label()
            dir_id = None
        else:
            dir_id = self.volume._need_dir(self.volume._parts(path, is_dir=True)).id
            conn.execute(f"UPDATE dirs SET {_RANGE_ASSIGNMENTS} WHERE id = ?", (*row, dir_id))
        conn.execute("INSERT INTO controls (dir, request, time, sector) VALUES (?, ?, ?, ?)",
                     (dir_id, request, row[1] if row[1] is not None else (row[2] or 0), place.sector))

    def leave_out(self, file_ids: list[int], *, control_sectors: int) -> None:
        """DUPOPT ALWMEDERR(*FILE): drop damaged file versions from a fresh duplicate. Each gets a
        DELETE record naming it (``left_out``: its version) and leaves the index, so CHKOPTVOL
        of the duplicate finds nothing damaged, nor after ``recover``. On a backup, the ranges
        of the directories that lost a live version, and the volume's, then hold nothing for
        certain (``forget_ranges``; a range only ever skips its own directory's files): they
        claimed the files left out, which the next CPYOPT onto the duplicate must copy again."""
        conn, lost = self.volume.image.conn, set()  # directories that lost a live version
        for file_id in file_ids:
            row = FileRow(*conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE id = ?", (file_id,)).fetchone())
            directory = conn.execute("SELECT path FROM dirs WHERE id = ?", (row.dir,)).fetchone()[0]
            live = bool(conn.execute("SELECT live FROM files WHERE id = ?", (file_id,)).fetchone()[0])
            if live:
                lost.add(directory)
            extent = [row.sector, row.header_sectors + sectors_for(row.size, self.volume.image.sector_size)]
            place = self.tx.append(Kind.DELETE, {"path": row.path(directory), "time": self.volume._now(),
                                                 "left_out": row.version, "left_out_at": extent, "left_out_live": live},
                                   charged=False)  # the duplicate's bookkeeping: charged (HPOFS) but never refused
            self.tx.charge(0 if self.volume._udf else place.sectors)
            self.volume._drop_version(row)
            if live and self.volume._udf:  # UDF charges live versions only: it frees this one, as a delete does
                self.tx.free(extent[1])
        if lost and self.volume.label()["type"] == VolumeType.BACKUP:
            self.forget_ranges(request=self.reserve_request_id(), sectors=control_sectors,
                               primary_history=optional_meta(conn, "primary_history"), paths=lost, refusable=False)

    def forget_ranges(self, *, request: int, sectors: int, primary_history: int | None,
                      primary_place: tuple[int, int] | None = None, place_forward_only: bool = True,
                      paths: set[str] | None = None, refusable: bool = True) -> None:
        """Every range of this backup (or those of ``paths`` and the volume's) now holds nothing
        for certain (its ``seen`` NULL, by a control record of its own): they describe the
        history of another volume than the primary now under that name (``primary_history``),
        or claim files DUPOPT left out. Each still says what the backup holds; CPYOPT compares
        every file again, and its ranges grow from there."""
        conn = self.volume.image.conn
        rows = [(None, self.volume.label())] + [
            (path, dict(zip(RANGE_COLUMNS, values, strict=True))) for _, path, *values in scanned(conn, "dirs", conn.execute(
                scan_sql("dirs", f"id, path, {', '.join(RANGE_COLUMNS)}", "WHERE f.live = 1 AND f.backup_end IS NOT NULL"))
                .fetchall())]  # (checked: an entry of dirs_parent pointing at another row kept its range, rev26d F2)
        for path, found in rows:  # a range already forgotten costs nothing more
            wanted = paths is None or path is None or path in paths  # ``paths``: those and the volume's
            if wanted and found["backup_end"] is not None and found["backup_seen"] is not None:
                row = (found["backup_start"], found["backup_end"], found["backup_last_changed"], None)
                self.record_control(path, row, request=request, details={"forgotten": True}, sectors=sectors,
                                    primary_history=primary_history, primary_place=primary_place,
                                    place_forward_only=place_forward_only, refusable=refusable)

    def reserve_request_id(self) -> int:
        """The ID of a CPYOPT request onto this backup: above every logged request's, every
        control record's and every ID reserved before (``meta.next_request``, committed with
        this transaction), so runs that overlap, or follow a killed one, never share one."""
        conn = self.volume.image.conn
        request_id = max(highest_request(conn) + 1, optional_meta(conn, "next_request") or 0)
        set_meta(conn, "next_request", request_id + 1)
        return request_id

    def log_request(self, entry: dict) -> int:
        """Log one CPYOPT request on the volume (a REQUEST record and a ``requests`` row, whose
        ``id`` is the record's: the one its control records name)."""
        place = self.tx.append(Kind.REQUEST, entry)
        request_id = entry.get("id")
        if request_id is not None and self.volume.image.conn.execute(
                "SELECT 1 FROM requests WHERE id = ?", (request_id,)).fetchone():
            request_id = None  # records of optvol before 13aa401 could share an ID: replayed, each gets a row
        cursor = self.volume.image.conn.execute(
            "INSERT INTO requests (id, time, command, parameters, copied, not_selected, failed, directories, outcome,"
            " sector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request_id, entry["time"], entry["command"], json.dumps(entry["parameters"]), entry["copied"],
             entry["not_selected"], entry["failed"], entry["directories"], entry["outcome"], place.sector),
        )
        return cursor.lastrowid


def same_version(old: FileRow | None, size: int, sha256: bytes, times: tuple[int, int, int] | None,
                 flags: int | None) -> bool:
    """Whether live version ``old`` already has these bytes, times and flags: a CPYOPT that
    selected the file while another run onto the same target copied it meanwhile (both
    selected it) leaves it alone, rather than write (and charge) a second, equal version."""
    return (old is not None and old.size == size and old.sha256 == sha256 and flags == old.flags
            and times == (old.created, old.modified, old.attr_changed))


def _write_verified(partition, sector: int, chunks: Iterator[bytes], *, limit: int) -> int:
    """Write chunks that verify themselves from ``sector`` on; the bytes written."""
    offset = sector * partition.sector_size
    total = 0
    for chunk in chunks:  # runs the iterator to its end, where it checks the SHA-256
        if total + len(chunk) > limit:
            raise errors.error("OPV0302", path=partition.path, reason="the source grew while it was copied")
        partition.write_at(offset + total, chunk)
        total += len(chunk)
    return total


def _copy_verified(partition, sector: int, source: SourceRange, *, size: int, expected: bytes) -> bytes:
    """Copy ``size`` bytes in the kernel (``copy_bytes``) while another thread hashes the source (``source.digest``).

    The hash reads the same bytes, so sectors of the source the host cannot read are the
    source file's damage (CPF1F28), even where the kernel's copy met them first.
    """
    try:
        partition.copy_range(source_fd=source.fd, source_offset=source.offset, length=size, sector=sector)
    except errors.OptvolError as exc:
        _source_digest(source)
        if exc.message_id == "OPV0201":  # the source ended early (copy_range names its own volume)
            raise errors.error("CPF1F28", path=source.path, volume=source.volume, reason=errors.cause(exc)) from None
        raise
    found = _source_digest(source)
    if found != expected:
        raise errors.error("CPF1F28", path=source.path, volume=source.volume, reason="SHA-256 of the data does not match")
    return expected


def _source_digest(source: SourceRange) -> bytes | None:
    """The source's SHA-256; CPF1F28 if its bytes cannot be read."""
    try:
        return held_result(source.digest)  # (hunt31a F1)
    except errors.DamagedError as exc:
        raise errors.error("CPF1F28", path=source.path, volume=source.volume, reason=errors.cause(exc)) from None
