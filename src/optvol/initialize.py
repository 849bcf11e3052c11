"""INZOPT: initialize (or create) a volume (reference §9, DESIGN §1).

INZOPT of a volume ID the library does not hold creates that volume. Re-initializing an
existing volume erases everything on it; the result says how much was erased.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from optvol import errors, media, model
from optvol.library import Library
from optvol.model import MediaFormat, MediaType, VolumeInfo, VolumeType

MOUNTED = "*MOUNTED"


@dataclass(frozen=True)
class InitializeResult:
    """What INZOPT did: the new volume, and what the old one held if it was replaced."""

    volume: VolumeInfo
    created: bool
    erased_files: int
    erased_bytes: int
    previous_id: str | None


def inzopt(
    library: Library,
    *,
    vol: str,
    now: datetime,
    newvol: str | None = None,
    threshold: int | None = None,
    type: VolumeType = VolumeType.PRIMARY,
    text: str = "",
    check: bool = True,
    clear: bool = False,
    medfmt: MediaFormat | None = None,
    medtype: MediaType | None = None,
    capacity: int | None = None,
    blksize: int | None = None,
) -> InitializeResult:
    """INZOPT VOL NEWVOL THRESHOLD TYPE TEXT CHECK CLEAR MEDFMT, plus MEDTYPE CAPACITY BLKSIZE.

    ``vol`` ``*MOUNTED`` (IBM's default: the medium in a device) is a new blank medium,
    as in IBM's ``INZOPT NEWVOL(MYVOLUMEID) DEV(OPTVRT01)`` of a new virtual image: it
    creates volume ``newvol``, which the library must not hold yet (OPV0003).
    ``newvol`` None is NEWVOL(*VOL); ``threshold`` None is THRESHOLD(*CALC); ``medfmt``
    None is MEDFMT(*MEDTYPE). CLEAR changes nothing more: every re-initialization erases
    the whole image.
    """
    # The enums are StrEnums, so "*BACKUP" == VolumeType.BACKUP and a program may pass IBM's
    # string; the rules below compare by identity, so each value becomes its enum member first.
    type = _member(VolumeType, type, "TYPE", optional=False)  # (None made a label without a type: rev27g F1)
    medfmt, medtype = _member(MediaFormat, medfmt, "MEDFMT"), _member(MediaType, medtype, "MEDTYPE")
    mounted = vol.upper() == MOUNTED
    if mounted and not newvol:
        raise errors.error("OPV0005", value=vol, keyword="VOL",
                           reason="a new blank medium has no identifier yet: give NEWVOL, or name a volume with VOL")
    new_id = model.volume_id(newvol) if newvol else model.volume_id(vol)
    old_id = new_id if mounted else model.volume_id(vol)
    text = model.text_value(text)
    with library.locked():
        if mounted and library.exists(new_id):  # a new medium replaces nothing: no lock on a volume in use
            raise errors.error("OPV0003", volume=new_id, library=library.root)
        with library.holding(old_id):  # the rules are checked on the volume as it is replaced
            previous, versions = _previous(library, old_id)
            if previous is None and newvol and new_id != old_id:
                raise errors.error("OPV0002", volume=old_id, library=library.root)
            if previous is not None:
                _check_reinitialize(previous, versions=versions, medtype=medtype, check=check)
            if new_id != old_id and library.exists(new_id):
                raise errors.error("OPV0003", volume=new_id, library=library.root)
            label = _label(new_id, previous, type=type, text=text, now=now, threshold=threshold, medfmt=medfmt,
                           medtype=medtype, capacity=capacity, blksize=blksize)
            library.install(new_id, label=label, replace=previous is not None, previous=old_id if previous else None)
        with library.open(new_id) as volume:
            info = volume.info()
    return InitializeResult(
        volume=info,
        created=previous is None,
        erased_files=previous.files if previous else 0,
        erased_bytes=previous.used if previous else 0,
        previous_id=old_id if previous and old_id != new_id else None,
    )


def _member(kind: type, value: object, keyword: str, *, optional: bool = True):
    """``value`` as a member of enum ``kind`` (None stays None if ``optional``; text in any
    case); else OPV0005."""
    if value is None and optional:
        return None
    try:
        return kind(value.upper() if isinstance(value, str) else value)
    except ValueError:
        raise errors.error("OPV0005", value=str(value), keyword=keyword,
                           reason=f"expected one of {', '.join(kind)}") from None


def _label(volume_id: str, previous: VolumeInfo | None, *, type: VolumeType, text: str, now: datetime,
           threshold: int | None, medfmt: MediaFormat | None, medtype: MediaType | None,
           capacity: int | None, blksize: int | None) -> dict:
    """The new volume's label: the media table's rules, the old volume's media by default."""
    media_type = medtype or (previous.media_type if previous else MediaType.ERASE)
    if media_type in (MediaType.CD_ROM, MediaType.DVD_ROM):
        raise errors.error("OPV0106", volume=volume_id, media_type=media_type)
    media_format = media.choose_format(media_type, medfmt)
    media.check_volume_id(volume_id, media_format)
    if type is VolumeType.BACKUP and media_format is not MediaFormat.HPOFS:
        raise errors.error("OPV0103", media_type=media_type, media_format=media_format)
    sector_size = media.choose_sector_size(media_type, blksize or (previous.sector_size if previous else None))
    capacity = media.choose_capacity(media_type, capacity or (previous.capacity if previous else None), sector_size)
    moment = model.to_micros(now)
    return {
        "volume": volume_id, "type": str(type), "media_type": str(media_type), "media_format": str(media_format),
        "sector_size": sector_size, "capacity": capacity,
        "threshold": media.choose_threshold(type, media_format, threshold),
        "text": text, "created": moment, "last_referenced": moment, "primary_volume": None,
        "backup_start": None, "backup_end": None, "backup_last_changed": None,
    }


def _previous(library: Library, volume: str) -> tuple[VolumeInfo | None, int]:
    """The volume INZOPT would replace, and how many file versions it ever recorded."""
    if not library.exists(volume):
        return None, 0
    with library.open(volume, any_label=True) as existing:  # replaced, whatever ID its image has (a host's copy)
        info = existing.info()
        return dataclasses.replace(info, volume=model.volume_id(volume)), written(existing, info.media_type)


def written(volume, media_type: MediaType) -> int:
    """File versions the volume ever recorded; on *WORM media at least 1 where its partition holds
    a file's record the index lost (a version DUPOPT ALWMEDERR(*FILE) left out, one recover could
    not read): written once all the same (hunt30e F1)."""
    count = volume.version_count()
    return count or int(media_type is MediaType.WORM and volume.image.holds_file_records())


def _check_reinitialize(previous: VolumeInfo, *, versions: int, medtype: MediaType | None, check: bool) -> None:
    if previous.media_type in (MediaType.CD_ROM, MediaType.DVD_ROM):
        raise errors.error("OPV0106", volume=previous.volume, media_type=previous.media_type)
    if medtype is not None and medtype is not previous.media_type:
        raise errors.error(
            "OPV0005", value=str(medtype), keyword="MEDTYPE",
            reason=f"volume {previous.volume} is {previous.media_type} media",
        )
    # A backup's claim, control records and request log are data written once too: a WORM
    # backup that any CPYOPT wrote keeps its primary and its history (reference §9, DESIGN §1).
    if media.worm_holds_data(previous.media_type, versions=versions, primary_volume=previous.primary_volume):
        raise errors.error("OPV0104", volume=previous.volume)
    if check and previous.files > 0:
        raise errors.error("OPV0105", volume=previous.volume, files=previous.files)
