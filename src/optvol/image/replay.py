"""Reading the data partition alone: the record scan and the replay transaction.

``scan`` walks the records from sector 0, telling sound records from damaged regions and
a torn tail. ``ReplayTransaction`` lets the volume code that wrote a record run again
over a fresh index: its ``append`` does not write, it hands back the place of the record
being replayed, so the rebuilt index comes from the very code that built the original.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from optvol import errors
from optvol.image import records
from optvol.image.image import Place, Transaction, VolumeImage
from optvol.image.records import Header, Kind

MAX_PROBE = 1 << 16
SECTOR_SIZES = tuple(1 << n for n in range(9, 17))  # 512 .. 65536
PROBE_SECTORS = 8  # the first LABEL record takes 1 header sector, 2 or 3 at small sizes


@dataclass(frozen=True)
class Found:
    """One step of the scan: a sound record, or a damaged region of ``sectors`` sectors."""

    sector: int
    sectors: int
    header: Header | None = None
    reason: str | None = None


def probe_label(path: str) -> dict:
    """The label of the first record (sector 0), which gives the sector size."""
    try:
        with open(path, "rb") as handle:
            first = handle.read(MAX_PROBE)
    except OSError as exc:  # the host cannot read it (EIO: a media error)
        raise errors.error("OPV0201", volume=os.path.basename(os.path.dirname(path)),
                           reason=f"the volume label cannot be read ({exc.strerror or exc})") from None
    try:
        fixed = struct.unpack_from("<8sHBBIQQ32sII", first, 0)
        body = json.loads(first[records.FIXED_SIZE : records.FIXED_SIZE + fixed[8]].decode())
        label = body["label"]
        sector_size = int(label["sector_size"])
        records.read_header(first[: fixed[4] * sector_size])
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError, errors.DamagedError) as exc:
        raise errors.error("OPV0201", volume=os.path.basename(os.path.dirname(path)),
                           reason=f"the data partition does not start with a volume label ({exc})") from None
    if fixed[2] != Kind.LABEL:
        raise errors.error("OPV0201", volume="?", reason="the first record is not a volume label")
    return label


def first_sound_record(path: str) -> tuple[int, Found] | None:
    """When the first record (sector 0) cannot be read: the sector size and the first sound
    record after it, found by trying each size (docs/format.md, "Conventions") on the
    sectors that follow. A header is sound only read at its own size (its checksum covers
    whole sectors), so one size alone finds it."""
    try:
        with open(path, "rb") as handle:
            for size in SECTOR_SIZES:
                for sector in range(1, PROBE_SECTORS + 1):
                    header = _header_at(handle.fileno(), sector, size)
                    if header is not None:
                        return size, Found(sector, header.total_sectors(size), header)
    except OSError:
        return None
    return None


def later_label(path: str, sector_size: int, start: int) -> dict | None:
    """The label of the first sound LABEL record from sector ``start`` on, if any."""
    try:
        with open(path, "rb") as handle:
            for found in scan(handle.fileno(), sector_size, start=start):
                label = found.header.body.get("label") if found.header and found.header.kind == Kind.LABEL else None
                if isinstance(label, dict) and label.get("sector_size") == sector_size:
                    return label
    except OSError:
        return None
    return None


def scan(fd: int, sector_size: int, *, start: int = 0, end: int | None = None) -> Iterator[Found]:
    """Every record from ``start`` (sector 0) to ``end`` (the partition's end); a region
    without a sound header is reported and skipped, a record that runs past ``end`` is the
    torn tail."""
    total = -(-os.fstat(fd).st_size // sector_size) if end is None else end
    sector, bad_from = start, None
    while sector < total:
        header = _header_at(fd, sector, sector_size)
        if header is None:
            bad_from = sector if bad_from is None else bad_from
            sector += 1
            continue
        if bad_from is not None:
            yield Found(bad_from, sector - bad_from, reason="no sound record header")
            bad_from = None
        length = header.total_sectors(sector_size)
        if sector + length > total:
            yield Found(sector, total - sector, header, reason="torn tail")
            return
        yield Found(sector, length, header)
        sector += length
    if bad_from is not None:
        yield Found(bad_from, total - bad_from, reason="no sound record header")


def left_out_at(header: Header) -> tuple[int, int] | None:
    """The (first sector, sectors) of the version a DELETE record of DUPOPT ALWMEDERR(*FILE)
    left out (docs/format.md §3.2 ``left_out_at``): damage there is known and dealt with."""
    extent = header.body.get("left_out_at") if header.kind == Kind.DELETE else None
    if isinstance(extent, list) and len(extent) == 2 and all(isinstance(n, int) for n in extent):
        return extent[0], extent[1]
    return None


def merged(extents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``extents`` (first sector, sectors) sorted, with those that overlap or follow one
    another joined: two damaged versions left out side by side read as one unreadable region."""
    joined: list[tuple[int, int]] = []
    for at, length in sorted(extents):
        if joined and at <= joined[-1][0] + joined[-1][1]:
            first, count = joined[-1]
            joined[-1] = (first, max(count, at + length - first))
        else:
            joined.append((at, length))
    return joined


def within(first: int, count: int, extents: list[tuple[int, int]]) -> bool:
    """Whether sectors ``first`` .. ``first + count - 1`` lie inside one of ``extents``, as
    ``merged`` gives them (a search: callers ask for every damaged region of a volume that
    may have as many left-out versions)."""
    index = bisect.bisect_right(extents, (first, math.inf)) - 1
    return index >= 0 and first + count <= sum(extents[index])


def _header_at(fd: int, sector: int, sector_size: int) -> Header | None:
    """The sound header at ``sector``, or None (damaged, or sectors the host cannot read)."""
    try:
        first = os.pread(fd, sector_size, sector * sector_size)
        count = records.header_sectors_of(first)
        whole = first if count == 1 else os.pread(fd, count * sector_size, sector * sector_size)
        return records.read_header(whole)
    except (errors.DamagedError, OSError):
        return None


class ReplayTransaction(Transaction):
    """A transaction over a fresh index whose appends are the records being replayed."""

    def __init__(self, image: VolumeImage):
        super().__init__(image)
        self._next: Found | None = None
        self._current: Found | None = None

    def expect(self, found: Found) -> None:
        """The record the next append stands for."""
        self._next = self._current = found

    def stamp(self, now: int) -> int:
        """The change time the record gave: its ``changed`` if it has one (the clock read
        earlier than a change before it), else its time (``now``, the replay's clock)."""
        changed = self._current.header.body.get("changed") if self._current else None
        stamp = changed if isinstance(changed, int) else now
        self.changed_high = max(self.changed_high, stamp)
        return stamp

    def _take(self, kind: Kind, charged: bool) -> Place:
        found, self._next = self._next, None
        if found is None or found.header.kind != kind:
            got = found.header.kind.name if found else "nothing"
            raise errors.error("OPV0201", volume=self.volume, reason=f"replay wanted a {kind.name} record, found {got}")
        place = Place(found.sector, found.header.header_sectors, found.header.payload_sectors(self.sector_size))
        self.end = found.sector + found.sectors
        self.sequence = found.header.sequence + 1
        if charged:
            self.charge(place.sectors)
        return place

    def reserve(self, sectors: int) -> None:
        """The original write passed the threshold of its day; a replay does not ask again."""

    def append(self, kind: Kind, body: dict, payload: bytes = b"", *, charged: bool = True,
               sha256: bytes | None = None) -> Place:
        return self._take(kind, charged)

    def append_stream(self, kind: Kind, body: dict, *, size: int, write) -> tuple[Place, bytes]:
        header = self._next.header if self._next else None
        return self._take(kind, True), header.payload_sha256

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        yield

    def _flush(self) -> None:
        """Nothing to write: the records are already there."""
