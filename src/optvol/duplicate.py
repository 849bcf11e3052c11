"""DUPOPT: duplicate a volume (reference §10.7, DESIGN §1).

The duplicate is identical to the source except its identifier and creation time: a
*BACKUP volume stays *BACKUP with its recorded primary, ranges and request log. The index
is copied with SQLite's backup API (one consistent snapshot) and the data partition up to
that snapshot's committed end with ``os.copy_file_range``; then every file version of the
copy is verified. ALWMEDERR(*NONE) stops at the first damaged file with nothing made;
ALWMEDERR(*FILE) leaves damaged files out of the duplicate and lists them.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from optvol import checking, errors, model
from optvol.image import image as image_mod
from optvol.library import Library
from optvol.model import MediaType, VolumeInfo
from optvol.volume import Volume

READ_ONLY_MEDIA = (MediaType.CD_ROM, MediaType.DVD_ROM)


@dataclass
class DuplicateResult:
    volume: VolumeInfo
    files: int = 0
    bytes: int = 0
    left_out: list[checking.Damage] = field(default_factory=list)


def dupopt(library: Library, *, fromvol: str, tovol: str, now: datetime, newvol: str = "*TOVOL",
           clear: bool = False, allow_media_errors: bool = False) -> DuplicateResult:
    """DUPOPT FROMVOL TOVOL NEWVOL CLEAR ALWMEDERR (``allow_media_errors`` is *FILE)."""
    source_id, target_id = model.volume_id(fromvol), model.volume_id(tovol)
    new_id = {"*TOVOL": target_id, "*FROMVOL": source_id}.get(newvol.upper()) or model.volume_id(newvol)
    with library.locked():
        if target_id == source_id:
            raise errors.error("OPV0406", target=target_id, source=source_id, reason="a volume cannot be its own duplicate")
        with library.open(source_id) as source:
            target = _target_media(library, target_id, source, clear=clear)
            if new_id != target_id and library.exists(new_id):
                raise errors.error("OPV0003", volume=new_id, library=library.root)
            outcome = DuplicateResult(volume=None)
            label = {"volume": new_id, "created": model.to_micros(now), **target}

            def build(staging: Path) -> None:
                _copy_image(source, staging)
                _finish_copy(library, staging, label, outcome, allow_media_errors=allow_media_errors)

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
        existing, versions = target.info(), target.version_count()

    def refuse(reason: str) -> errors.OptvolError:
        return errors.error("OPV0406", target=target_id, source=info.volume, reason=reason)

    if existing.media_type in READ_ONLY_MEDIA:
        raise errors.error("OPV0106", volume=target_id, media_type=existing.media_type)
    allowed = (MediaType.WORM, MediaType.ERASE) if info.media_type is MediaType.WORM else (info.media_type,)
    if existing.media_type not in allowed:
        raise refuse(f"its media is {existing.media_type}; a copy of {info.media_type} needs {' or '.join(allowed)}")
    if existing.sector_size != info.sector_size:
        raise refuse(f"its block size is {existing.sector_size}, the source's {info.sector_size}")
    if existing.capacity < info.capacity:
        raise refuse(f"its capacity {existing.capacity:,} is less than the source's {info.capacity:,}")
    if existing.media_type is MediaType.WORM and versions:
        raise errors.error("OPV0104", volume=target_id)
    if existing.files and not clear:
        raise errors.error("OPV0407", volume=target_id, files=existing.files)
    return {"media_type": str(existing.media_type), "capacity": existing.capacity}


def _copy_image(source: Volume, staging: Path) -> None:
    """A consistent copy: the index snapshot first, then the data it commits to."""
    staging.mkdir(parents=True)
    index = sqlite3.connect(staging / image_mod.INDEX_FILE)
    try:
        source.image.conn.backup(index)
        index.execute("PRAGMA journal_mode = WAL")
        end = index.execute("SELECT value FROM meta WHERE key = 'committed_end'").fetchone()[0]
    finally:
        index.close()
    length = end * source.image.sector_size
    with open(staging / image_mod.DATA_FILE, "wb") as out:
        copied = 0
        while copied < length:
            done = os.copy_file_range(source.image.data.fd, out.fileno(), length - copied, copied, copied)
            if done == 0:
                raise errors.error("OPV0201", volume=source.id, reason="data partition shorter than its committed end")
            copied += done
        os.fsync(out.fileno())


def _finish_copy(library: Library, staging: Path, label: dict, outcome: DuplicateResult, *,
                 allow_media_errors: bool) -> None:
    """Give the copy its new identity, then verify every file version it holds."""
    with Volume(image_mod.VolumeImage(staging), clock=library.clock) as copy:
        with copy.image.transaction() as tx:
            tx.write_label({**copy.image.label(), **label})
        result = checking.check_volume(copy)
        if result.damaged and not allow_media_errors:
            first = result.damaged[0]
            raise errors.error("OPV0206", volume=label["volume"], count=len(result.damaged),
                               reason=f"{first.path}: {first.reason}; ALWMEDERR(*FILE) leaves damaged files out")
        if result.damaged:
            copy.leave_out([d.file_id for d in result.damaged if d.file_id is not None])
        outcome.files, outcome.bytes, outcome.left_out = result.files_checked, result.bytes_checked, result.damaged
