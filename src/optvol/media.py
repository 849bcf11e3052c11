"""The media-type table: formats, sector sizes and default capacities (reference §2.3-§2.6).

Layer 1: values only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from optvol import errors
from optvol.model import MediaFormat, MediaType, VolumeType

MIN_CAPACITY = 1 << 20  # DESIGN §1: at least 1M
MAX_CAPACITY = (1 << 63) - 1  # the largest the index's INTEGER column (and a file offset) holds


@dataclass(frozen=True)
class Media:
    """What one media type allows."""

    media_type: MediaType
    formats: tuple[MediaFormat, ...]  # the first is what MEDFMT(*MEDTYPE) chooses
    sector_sizes: tuple[int, ...]
    default_sector_size: int
    default_capacity: int
    writable: bool

    @property
    def default_format(self) -> MediaFormat:
        return self.formats[0]


_GB = 1000**3
_MB = 1000**2

MEDIA: dict[MediaType, Media] = {
    m.media_type: m
    for m in (
        Media(MediaType.WORM, (MediaFormat.HPOFS,), (1024, 2048, 4096, 8192), 2048, 5_200 * _MB, True),
        Media(MediaType.ERASE, (MediaFormat.HPOFS, MediaFormat.UDF), (1024, 2048, 4096, 8192), 2048, 5_200 * _MB, True),
        Media(MediaType.DVD_RAM, (MediaFormat.UDF,), (2048,), 2048, 4_700 * _MB, True),
        Media(MediaType.CD_ROM, (MediaFormat.ISO9660,), (2048,), 2048, 650 * _MB, False),
        Media(MediaType.DVD_ROM, (MediaFormat.ISO9660,), (2048,), 2048, 4_700 * _MB, False),
    )
}

HPOFS_THRESHOLD = 95
BACKUP_THRESHOLD = 99
UDF_THRESHOLD = 100
UDF_VOLUME_ID = 30  # characters of a UDF volume identifier (reference §2.1)


def media_for(media_type: MediaType) -> Media:
    return MEDIA[media_type]


def choose_format(media_type: MediaType, requested: MediaFormat | None) -> MediaFormat:
    """MEDFMT(*MEDTYPE) when ``requested`` is None, else check the requested format (§2.4)."""
    media = MEDIA[media_type]
    if requested is None:
        return media.default_format
    if requested not in media.formats:
        raise errors.error(
            "OPV0005",
            value=str(requested),
            keyword="MEDFMT",
            reason=f"{media_type} media allows {', '.join(str(f) for f in media.formats)}",
        )
    return requested


def choose_sector_size(media_type: MediaType, requested: int | None) -> int:
    """BLKSIZE: one of the sector sizes of the media type (reference §2.5)."""
    media = MEDIA[media_type]
    if requested is None:
        return media.default_sector_size
    if requested not in media.sector_sizes:
        allowed = ", ".join(str(s) for s in media.sector_sizes)
        raise errors.error("OPV0005", value=str(requested), keyword="BLKSIZE", reason=f"{media_type} allows {allowed}")
    return requested


def choose_capacity(media_type: MediaType, requested: int | None, sector_size: int) -> int:
    """CAPACITY in bytes, rounded down to whole sectors."""
    capacity = MEDIA[media_type].default_capacity if requested is None else requested
    check_capacity(capacity, text=str(capacity))
    return capacity - capacity % sector_size


def check_capacity(capacity: int, *, text: str) -> None:
    """CAPACITY from 1M (DESIGN §1) to what the index holds; OPV0005 quotes ``text``, what was typed."""
    if capacity < MIN_CAPACITY:
        raise errors.error("OPV0005", value=text, keyword="CAPACITY", reason="at least 1M")
    if capacity > MAX_CAPACITY:
        raise errors.error("OPV0005", value=text, keyword="CAPACITY",
                           reason=f"at most {MAX_CAPACITY:,} bytes (8388608T less one byte), what a volume's index holds")


def check_threshold(value: object, *, special: str) -> None:
    """THRESHOLD is a whole percent 1-100 (reference §2.6), or ``special`` (None here); else
    OPV0005. Not a float, a bool or text: the index keeps it as an integer, and the limit
    ``capacity × threshold / 100`` is what keeps writes within the capacity."""
    if value is None:
        return
    if type(value) is not int or not 1 <= value <= 100:
        raise errors.error("OPV0005", value=str(value), keyword="THRESHOLD", reason=f"1-100 or {special}")


def choose_threshold(volume_type: VolumeType, media_format: MediaFormat, requested: int | None) -> int:
    """THRESHOLD: *CALC when None; *BACKUP forces 99 and UDF 100 (DESIGN §1)."""
    check_threshold(requested, special="*CALC")
    if volume_type is VolumeType.BACKUP:
        return BACKUP_THRESHOLD
    if media_format is MediaFormat.UDF:
        return UDF_THRESHOLD
    return HPOFS_THRESHOLD if requested is None else requested


def check_volume_id(volume_id: str, media_format: MediaFormat | str) -> None:
    """A volume identifier the media format can hold: at most 30 characters on UDF, OPT1542
    reason 01 beyond (reference §2.1; ``model.volume_id`` checks the 32 of every format)."""
    if media_format == MediaFormat.UDF and len(volume_id) > UDF_VOLUME_ID:
        raise errors.error("OPT1542", volume=volume_id, reason_code="01",
                           reason=f"a UDF volume identifier has at most {UDF_VOLUME_ID} characters")


_SIZE = re.compile(r"([0-9]+)([KMGT]?)B?", re.IGNORECASE)


def worm_holds_data(media_type: MediaType, *, versions: int, primary_volume: str | None) -> bool:
    """Whether a volume is *WORM media that holds data, so that nothing may write over it
    (INZOPT, DUPOPT: OPV0104): a file version it ever recorded, or, on a backup, the claim of
    its primary with the control records and request log written with it (reference §9)."""
    return media_type is MediaType.WORM and (versions > 0 or primary_volume is not None)


def check_label_change(label: dict, *, volume: str, threshold: int | None) -> None:
    """CHGOPTVOL's volume rules for a new TEXT or THRESHOLD (reference §10.1): no THRESHOLD on
    a volume initialized as *BACKUP (OPV0102), a UDF threshold stays 100 (OPT1542 reason
    05), nothing on read-only media (CPF1F63); a threshold outside 1-100 (OPV0005)."""
    check_threshold(threshold, special="*SAME")
    if threshold is not None:
        if label["type"] == VolumeType.BACKUP:
            raise errors.error("OPV0102", volume=volume)
        if label["media_format"] == MediaFormat.UDF and threshold != UDF_THRESHOLD:
            raise errors.error("OPT1542", volume=volume, reason_code="05", reason="a UDF volume's threshold is always 100")
    if label["media_type"] in (MediaType.CD_ROM, MediaType.DVD_ROM):
        raise errors.error("CPF1F63", volume=volume, media_type=label["media_type"])


def parse_capacity(text: str) -> int:
    """Parse CAPACITY: bytes with an optional K, M, G or T suffix (powers of 1024), 1M at least."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise errors.error("OPV0005", value=text, keyword="CAPACITY", reason="bytes with an optional K, M, G or T suffix")
    number, suffix = int(match.group(1)), match.group(2).upper()
    capacity = number * 1024 ** "_KMGT".index(suffix) if suffix else number
    check_capacity(capacity, text=text)
    return capacity
