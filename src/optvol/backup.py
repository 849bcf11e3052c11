"""The complete backup range of a backup directory or volume (reference §6, DESIGN §1).

Pure functions over index values (times in microseconds; a range start of None means
``*BEGIN``). ``update`` is reference §6.5, with one more case that leaves a range where
it is (``gap``); copying.py decides what "wrote something" and "an eligible file failed"
mean for each directory and the volume.

What a range holds for certain is ``held``: every file of the primary whose change time
(``files.changed``) lies between its start and ``held_end`` is on the backup. That is the
range's end, or, if lower, ``seen``: the source's ``changed_high`` when the range's run
began. A change committed after that lies above ``seen`` (the source stamps it so,
``Transaction.stamp``), however a clock set back dated it: the range does not claim it,
and the next run compares it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CONTROL_SECTORS = 3  # every traversed backup directory costs 3 sectors per run (reference §4.2)


@dataclass(frozen=True)
class Range:
    """Backup control data: ``has_range`` False means no complete range recorded yet."""

    has_range: bool = False
    start: int | None = None  # None with has_range: *BEGIN
    end: int | None = None
    last_changed: int | None = None
    seen: int | None = None  # the source's changed_high when the range's run began; None: unknown

    @classmethod
    def from_row(cls, start: int | None, end: int | None, last_changed: int | None, seen: int | None = None) -> Range:
        """From the index columns (a NULL start with an end is *BEGIN)."""
        has = end is not None
        return cls(has, start if has else None, end, last_changed, seen if has else None)

    def as_row(self) -> tuple[int | None, int | None, int | None, int | None]:
        """(start, end, last changed, seen) as index values."""
        if not self.has_range:
            return (None, None, self.last_changed, None)
        return (self.start, self.end, self.last_changed, self.seen)

    @property
    def held_end(self) -> int | None:
        """The last change time the range holds for certain: the lower of its end and
        ``seen``. None when it holds nothing for certain: no range, a range recorded before
        index schema 3 (nothing seen), or an empty one (its start after that time; a
        FROMTIME later than its request's own time records one)."""
        if not self.has_range or self.seen is None:
            return None
        end = min(self.end, self.seen)
        if self.start is not None and self.start > end:
            return None
        return end


def gap(node: Range, request_start: int | None) -> tuple[int | None, int] | None:
    """The change times a request from ``request_start`` (FROMTIME) must find no live source
    file at, for its range to join ``node`` (else ``update`` leaves the range as it was).

    A joined range starts at ``node.start``, and the request compares no file changed
    before FROMTIME: between the two, the range holds only what ``node`` holds for certain.
    A file changed after that and before FROMTIME (a clock set back dated it there) would be
    claimed and lacking. Returned as (after, before), both exclusive, ``after`` None for no
    lower bound; None when there is nothing to look for."""
    if request_start is None or not node.has_range or request_start > node.end:
        return None  # *BEGIN compares everything; without a range, or apart from it, nothing joins
    if node.start is not None and request_start <= node.start:
        return None  # the joined range starts at FROMTIME itself
    held = node.held_end
    after = held if held is not None else (None if node.start is None else node.start - 1)
    if after is not None and after >= request_start - 1:
        return None
    return after, request_start


def update(node: Range, *, request_time: int, request_start: int | None, seen: int, wrote: bool,
           eligible_failed: bool, gap_found: bool = False) -> Range:
    """Reference §6.5: the new control data of one backup directory (or the volume).

    ``request_start`` is FROMTIME (None for *BEGIN), ``seen`` the source's changed_high
    when the request began. Last changed moves when the request wrote something; the range
    moves only when no eligible file failed and the new range touches the old one (a gap
    leaves it as it was), and no file was found in ``gap``'s times (``gap_found``).

    A request that wrote without moving the range leaves last changed after its end, the
    sign of a partial backup (reference §6.4), even when the clock was set back before it
    (a hunt of session 19). The end is the request's time, as the reference has it, even
    when that is earlier than the end before (what a range holds is bounded by ``seen``);
    a floor under the clock would keep a range ending years ahead after one run with the
    clock wrong (review 3 of session 19).
    """
    last_changed = request_time if wrote else node.last_changed
    if eligible_failed or gap_found:
        if wrote and node.end is not None:
            last_changed = max(last_changed, node.end + 1)
        return replace(node, last_changed=last_changed)
    if not node.has_range:
        return Range(True, request_start, request_time, last_changed, seen)
    if _le(request_start, node.end):
        return Range(True, _min(node.start, request_start), request_time, last_changed, seen)
    if wrote:  # a range apart from this request's (a FROMTIME after its end): partial as well
        last_changed = max(last_changed, node.end + 1)
    return replace(node, last_changed=last_changed)


def _le(start: int | None, end: int) -> bool:
    return start is None or start <= end


def _min(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else min(a, b)
