"""DUPOPT: duplicate a volume (reference §10.7, DESIGN §1).

The duplicate is identical to the source except its identifier and creation time: a
*BACKUP volume stays *BACKUP with its recorded primary, ranges and request log. The index
is copied with SQLite's backup API (one consistent snapshot) and the data partition up to
that snapshot's committed end in the kernel (``copy_bytes``: on blocks of its own); then
every file version of the copy is verified. ALWMEDERR(*NONE) stops at the first damaged file with nothing made;
ALWMEDERR(*FILE) leaves damaged files out of the duplicate and lists them.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from optvol import backup, checking, errors, initialize, media, model
from optvol.image import image as image_mod
from optvol.image.datapart import copy_bytes
from optvol.image.records import sectors_for
from optvol.library import Library
from optvol.model import MediaType, Progress, VolumeInfo
from optvol.volume import Volume
from optvol.volume_rows import check_paths_fit

READ_ONLY_MEDIA = (MediaType.CD_ROM, MediaType.DVD_ROM)
SALVAGE_BLOCK = 1 << 20  # after a media error, the source is copied this much at a time


@dataclass
class DuplicateResult:
    volume: VolumeInfo
    files: int = 0
    bytes: int = 0
    left_out: list[checking.Damage] = field(default_factory=list)
    carried: list[checking.Damage] = field(default_factory=list)  # damaged records the index does not point to


def dupopt(library: Library, *, fromvol: str, tovol: str, now: datetime, newvol: str = "*TOVOL",
           clear: bool = False, allow_media_errors: bool = False, progress: Progress | None = None,
           totals: Progress | None = None) -> DuplicateResult:
    """DUPOPT FROMVOL TOVOL NEWVOL CLEAR ALWMEDERR (``allow_media_errors`` is *FILE).

    ``totals`` and ``progress`` follow the check of the copy (``checking.check_volume``),
    which reads back every file version; the kernel copy before it reports nothing.
    """
    source_id, target_id = model.volume_id(fromvol), model.volume_id(tovol)
    new_id = {"*TOVOL": target_id, "*FROMVOL": source_id}.get(newvol.upper()) or model.volume_id(newvol)
    with library.locked():
        if target_id == source_id:
            raise errors.error("OPV0406", target=target_id, source=source_id, reason="a volume cannot be its own duplicate")
        with library.holding(target_id), library.open(source_id) as source:  # the target's rules hold to its swap
            if new_id != target_id and not library.exists(target_id):  # NEWVOL renames a TOVOL that is there (as INZOPT's)
                raise errors.error("OPV0002", volume=target_id, library=library.root)
            target = _target_media(library, target_id, source, clear=clear)
            if new_id != target_id and library.exists(new_id):
                raise errors.error("OPV0003", volume=new_id, library=library.root)
            outcome = DuplicateResult(volume=None)
            media.check_volume_id(new_id, source.label()["media_format"])  # a duplicate keeps its format
            check_paths_fit(source.image.conn, new_id)
            label = {"volume": new_id, "created": model.to_micros(now), **target}

            def build(staging: Path) -> None:
                unreadable = _copy_image(source, staging, new_id)
                _finish_copy(library, staging, label, outcome, allow_media_errors=allow_media_errors,
                             unreadable=unreadable, source_id=source.id, progress=progress, totals=totals)

            previous = target_id if library.exists(target_id) else None
            library.install(new_id, build=build, replace=previous is not None, previous=previous)
        with library.open(new_id) as duplicate:
            outcome.volume = duplicate.info()
    return outcome


def _target_media(library: Library, target_id: str, source: Volume, *, clear: bool) -> dict:
    """The target rules of reference §10.7; the media fields the duplicate takes."""
    info = source.info()
    if not library.exists(target_id):
        return {}
    with library.open(target_id) as target:
        existing = target.info()
        versions = initialize.written(target, existing.media_type)

    def refuse(reason: str) -> errors.OptvolError:
        return errors.error("OPV0406", target=target_id, source=info.volume, reason=reason)

    if existing.media_type in READ_ONLY_MEDIA:  # (OPV0106 is INZOPT's: "cannot be initialized"; rev28b F6)
        raise refuse(f"it is read-only {existing.media_type} media")
    allowed = (MediaType.WORM, MediaType.ERASE) if info.media_type is MediaType.WORM else (info.media_type,)
    if existing.media_type not in allowed:
        raise refuse(f"its media is {existing.media_type}; a copy of {info.media_type} needs {' or '.join(allowed)}")
    if existing.sector_size != info.sector_size:
        raise refuse(f"its block size is {existing.sector_size}, the source's {info.sector_size}")
    if existing.capacity < info.capacity:
        raise refuse(f"its capacity {existing.capacity:,} is less than the source's {info.capacity:,}")
    if media.worm_holds_data(existing.media_type, versions=versions, primary_volume=existing.primary_volume):
        raise errors.error("OPV0104", volume=target_id)
    if existing.files and not clear:
        raise errors.error("OPV0407", volume=target_id, files=existing.files)
    return {"media_type": str(existing.media_type), "capacity": existing.capacity}


def _copy_image(source: Volume, staging: Path, new_id: str) -> list[tuple[int, int]]:
    """A consistent copy: the index snapshot first, then the data it commits to; the
    (first, last) sectors of each run the host could not read (left as zeros)."""
    staging.mkdir(parents=True)
    index = sqlite3.connect(staging / image_mod.INDEX_FILE)
    try:
        source.image.conn.backup(index)
        source.image.conn.check_unchanged()  # an index read as immutable, changed through another path meanwhile
        index.execute("PRAGMA journal_mode = WAL")
        end = index.execute("SELECT value FROM meta WHERE key = 'committed_end'").fetchone()[0]
    finally:
        index.close()
    with open(staging / image_mod.DATA_FILE, "wb") as out:
        try:
            unreadable = _copy_data(source, out.fileno(), end * source.image.sector_size)
            os.ftruncate(out.fileno(), end * source.image.sector_size)  # unread sectors at the end are zeros too
            os.fsync(out.fileno())
        except OSError as exc:  # writing the duplicate
            raise errors.host_write_error(exc, new_id) from None
    return unreadable


def _copy_data(source: Volume, out: int, length: int) -> list[tuple[int, int]]:
    """Copy the first ``length`` bytes of the source's data partition in the kernel. Where the
    host cannot read (a media error), copy a block at a time, and sector by sector in a block
    that fails, leaving the unreadable sectors as zeros: the check that follows finds the
    files they belong to, which ALWMEDERR then refuses or leaves out."""
    fd, sector_size, copied, unreadable = source.image.data.fd, source.image.sector_size, 0, []
    while copied < length:
        try:
            done = copy_bytes(fd, out, length - copied, copied, copied)
        except OSError:  # reading the source or writing the copy: the next block by hand tells
            done = _salvage(fd, out, copied, min(SALVAGE_BLOCK, length - copied), sector_size, unreadable)
        if done == 0:
            raise errors.error("OPV0201", volume=source.id, reason="data partition shorter than its committed end")
        copied += done
    return unreadable


def _salvage(fd: int, out: int, offset: int, length: int, sector_size: int, unreadable: list[tuple[int, int]]) -> int:
    """Copy one block with pread and pwrite (whose errors are the copy's), sector by sector
    if the block cannot be read; note the sectors that cannot (merged into runs). The bytes
    done: ``length``, or 0 if the source ends first."""
    try:
        data = os.pread(fd, length, offset)
    except OSError:
        data = None
    if data is not None:
        os.pwrite(out, data, offset)
        return len(data) if len(data) == length else 0
    for at in range(offset, offset + length, sector_size):
        try:
            sector = os.pread(fd, sector_size, at)
        except OSError:
            first = at // sector_size
            if unreadable and unreadable[-1][1] == first - 1:
                unreadable[-1] = (unreadable[-1][0], first)
            else:
                unreadable.append((first, first))
            continue
        os.pwrite(out, sector, at)
    return length


def _finish_copy(library: Library, staging: Path, label: dict, outcome: DuplicateResult, *,
                 allow_media_errors: bool, unreadable: list[tuple[int, int]], source_id: str,
                 progress: Progress | None, totals: Progress | None) -> None:
    """Give the copy its new identity, then verify every file version it holds."""
    with Volume(image_mod.VolumeImage(staging), clock=library.clock) as copy:
        with copy.image.transaction(now=label["created"]) as tx:  # referenced when it is made, not before
            tx.write_label({**copy.image.label(), **label}, once=True)
        result = checking.check_volume(copy, progress=progress, totals=totals)
        if unreadable:
            result.damaged = [_name_media_error(copy, d, unreadable, source_id) for d in result.damaged]
        # Damage of records the index does not point to stays as it is on the source: the
        # copy's index keeps what they did, and CHKOPTVOL names them on both volumes.
        outcome.carried = [d for d in result.damaged if d.unindexed]
        result.damaged = [d for d in result.damaged if not d.unindexed]
        records = [d for d in result.damaged if d.file_id is None]  # a directory's, a control record, the index
        if records or (result.damaged and not allow_media_errors):
            first = (records or result.damaged)[0]
            remedy = "only damaged files can be left out" if records else "ALWMEDERR(*FILE) leaves damaged files out"
            raise errors.error("OPV0206", volume=source_id, count=len(result.damaged),  # the damage is the source's
                               reason=f"{first.path}: {first.reason}; {remedy}")
        if result.damaged:
            copy.leave_out([d.file_id for d in result.damaged], control_sectors=backup.CONTROL_SECTORS)
        outcome.files, outcome.bytes, outcome.left_out = result.files_checked, result.bytes_checked, result.damaged


def _name_media_error(copy: Volume, damage: checking.Damage, unreadable: list[tuple[int, int]],
                      source_id: str) -> checking.Damage:
    """A damaged file version whose sectors include ones the source could not give: say so."""
    if damage.file_id is None:
        return damage
    sector, header_sectors, size = copy.image.conn.execute(
        "SELECT sector, header_sectors, size FROM files WHERE id = ?", (damage.file_id,)).fetchone()
    last = sector + header_sectors + sectors_for(size, copy.image.sector_size) - 1
    lost = [(max(a, sector), min(b, last)) for a, b in unreadable if a <= last and b >= sector]
    if not lost:
        return damage
    where = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in lost)
    plural = "s" if len(lost) > 1 or lost[0][0] != lost[0][1] else ""
    return replace(damage, reason=f"sector{plural} {where} of volume {source_id} cannot be read (a media error)")
