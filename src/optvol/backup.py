"""The complete backup range of a backup directory or volume (reference §6, DESIGN §1).

Pure functions over index values (times in microseconds; a range start of None means
``*BEGIN``). ``update`` is reference §6.5 exactly; copying.py decides what "wrote
something" and "an eligible file failed" mean for each directory and the volume.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTROL_SECTORS = 3  # every traversed backup directory costs 3 sectors per run (reference §4.2)


@dataclass(frozen=True)
class Range:
    """Backup control data: ``has_range`` False means no complete range recorded yet."""

    has_range: bool = False
    start: int | None = None  # None with has_range: *BEGIN
    end: int | None = None
    last_changed: int | None = None

    @classmethod
    def from_row(cls, start: int | None, end: int | None, last_changed: int | None) -> Range:
        """From the index columns (a NULL start with an end is *BEGIN)."""
        return cls(end is not None, start if end is not None else None, end, last_changed)

    def as_row(self) -> tuple[int | None, int | None, int | None]:
        return (self.start if self.has_range else None, self.end if self.has_range else None, self.last_changed)

    def covers(self, changed: int) -> bool:
        """True when a file last changed at ``changed`` is on the backup (inside the range)."""
        if not self.has_range:
            return False
        return (self.start is None or changed >= self.start) and changed <= self.end


def update(node: Range, *, request_time: int, request_start: int | None, wrote: bool, eligible_failed: bool) -> Range:
    """Reference §6.5: the new control data of one backup directory (or the volume).

    ``request_start`` is FROMTIME (None for *BEGIN). Last changed moves when the request
    wrote something; the range moves only when no eligible file failed and the new range
    touches the old one (a gap leaves it as it was).
    """
    last_changed = request_time if wrote else node.last_changed
    if eligible_failed:
        return Range(node.has_range, node.start, node.end, last_changed)
    if not node.has_range:
        return Range(True, request_start, request_time, last_changed)
    if _le(request_start, node.end):
        return Range(True, _min(node.start, request_start), request_time, last_changed)
    return Range(True, node.start, node.end, last_changed)


def _le(start: int | None, end: int) -> bool:
    return start is None or start <= end


def _min(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else min(a, b)
