"""Human displays: fixed-width lines in the manner of the IBM i displays."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from optvol.model import BEGIN, BackupRange, DirInfo, FileInfo, VolumeInfo, from_iso, local


def shown(text: str) -> str:
    """A name, path or text as a display shows it: as it is if every character of it prints,
    else quoted as Python writes a string, so that no character of it (a control, a bidi
    override, a zero-width or a line separator, a byte the locale could not decode) can
    reach the terminal, fake a line or make one name look like another. A blank that starts
    or ends it is quoted too (``'/REPORT.TXT '`` and ``/REPORT.TXT`` are two names), and one
    that starts with a quote, so that what a display shows quoted is always such a text."""
    plain = text.isprintable() and text.strip(" ") == text and not text.startswith(("'", '"'))
    return text if plain else repr(text)


def cl_string(text: str) -> str:
    """``text`` as a CL quoted string (a quote doubled: ``'/IT''S'``), shown as ``shown`` shows
    what does not print (then it is no longer CL, but nothing reaches the terminal)."""
    quoted = "'" + text.replace("'", "''") + "'"
    return quoted if text.isprintable() else shown(text)


def when(moment, *, precise: bool = False) -> str:
    """A moment as displays show it: local, to the second (``precise``: to the microsecond)."""
    if moment is None:
        return "-"
    if moment == BEGIN:
        return BEGIN
    shown = local(moment)  # (strftime's %Y does not pad years before 1000: FROMTIME could not take it back)
    text = f"{shown.year:04}-{shown:%m-%d %H:%M:%S}" + (f".{shown.microsecond:06}" if precise else "")
    # In the hour the clocks go back over, a wall time names two moments: the zone tells
    # them apart, so that a backup's end and last changed compare as they are (reference §6.4).
    zone = _zone_if_ambiguous(shown)
    return f"{text} {zone}" if zone else text


def _zone_if_ambiguous(shown) -> str:
    """Where local wall time ``shown`` comes twice (the clocks went back over it), what tells
    its two passes apart: the zone's name, or its offset from UTC where both passes have one
    name (Moscow went back from MSK +04 to MSK +03 in 2014); else nothing."""
    if not _offset_changes_near(shown.year, shown.month, shown.day, _zone_key()):  # (most days: a listing's cost)
        return ""
    wall = shown.replace(tzinfo=None)
    try:
        passes = wall.replace(fold=0).astimezone(), wall.replace(fold=1).astimezone()
    except (OverflowError, ValueError, OSError):
        return ""
    if passes[0].utcoffset() == passes[1].utcoffset():
        return ""
    if passes[0].tzname() != passes[1].tzname():
        return f"{shown:%Z}"
    offset = int(shown.utcoffset().total_seconds()) // 60
    return f"UTC{'-' if offset < 0 else '+'}{abs(offset) // 60:02}:{abs(offset) % 60:02}"


def _zone_key() -> tuple:
    """The local zone as the cache of ``_offset_changes_near`` tells zones apart: its names
    alone are shared by zones of other rules (America/New_York and
    America/Indiana/Indianapolis, which kept no daylight saving time in 2000, are both EST/EDT)."""
    return os.environ.get("TZ"), time.tzname, time.timezone, time.altzone


@functools.lru_cache(maxsize=1024)
def _offset_changes_near(year: int, month: int, day: int, _zone: tuple) -> bool:
    """Whether the local offset from UTC differs between the day before this date and the
    day after it (``_zone``: ``_zone_key``, so that another zone is a new key)."""
    try:
        midnight = datetime(year, month, day)
        return (midnight - timedelta(days=1)).astimezone().utcoffset() != (
            midnight + timedelta(days=2)).astimezone().utcoffset()
    except (OverflowError, ValueError, OSError):  # (the first and last days a volume holds: a change there is none)
        return False


def when_text(text: str) -> str:
    """A timestamp of a JSON document (ISO 8601 with its offset) shown as ``when`` shows one;
    other text (``*BEGIN``, a time without an offset) as it is."""
    moment = from_iso(text)
    return text if moment is None else when(moment)


def size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


def volume_attributes(info: VolumeInfo, autl: str | None) -> list[str]:
    """DSPOPT DATA(*VOLATR) as IBM's "Display Optical Volume Attributes" lays it out."""
    rows = [
        ("Volume identifier", info.volume),
        ("Volume type", str(info.type)),
        ("Media type", str(info.media_type)),
        ("Media format", str(info.media_format)),
        ("Volume full threshold", f"{info.threshold} %"),
        ("Volume capacity (bytes)", f"{info.capacity:,}"),
        ("Space used (bytes)", f"{info.used:,}"),
        ("Space available (bytes)", f"{info.available:,}"),
        ("Volume block size", str(info.sector_size)),
        ("Text", shown(info.text) if info.text else "*BLANK"),
        ("Authorization list", autl or "*NONE"),
        ("Creation date/time", when(info.created)),
        ("Last referenced", when(info.last_referenced)),
        ("Directories / files", f"{info.directories} / {info.files}"),
    ]
    if info.primary_volume:
        rows.append(("Primary volume identifier", info.primary_volume))
    rows += backup_rows(info.backup)
    return ["Display Optical Volume Attributes", ""] + [f"{label:.<34}: {value}" for label, value in rows]


def backup_cells(backup: BackupRange) -> tuple[str, str, str]:
    """A backup range's start, end and last changed as displays show them. A last changed
    later than the end says that a run wrote some files and failed others (reference §6.4):
    where the two fall in one second, both are shown to the microsecond, so that the
    display does not show a partial backup as complete."""
    end, changed = backup.range_end, backup.last_changed
    precise = end is not None and changed is not None and changed > end and when(changed) == when(end)
    return when(backup.range_start), when(end, precise=precise), when(changed, precise=precise)


def backup_rows(backup: BackupRange | None) -> list[tuple[str, str]]:
    if backup is None:
        return []
    start, end, changed = backup_cells(backup)
    return [
        ("Complete backup range start", start),
        ("Complete backup range end", end),
        ("Backup last changed", changed),
    ]


VOLUME_HEADER = f"{'Volume':<32} {'Type':<9} {'Media':<9} {'Format':<9} {'Used':>10} {'Avail':>10} {'Thr':>4}  Text"


def volume_line(info: VolumeInfo) -> str:
    return (f"{info.volume:<32} {info.type:<9} {info.media_type:<9} {info.media_format:<9} "
            f"{size(info.used):>10} {size(info.available):>10} {info.threshold:>3}%  {shown(info.text)}")


TIME_WIDTH = 19  # a time column's width: "YYYY-MM-DD HH:MM:SS"
AHEAD = 4096  # the rows a table reads before it prints, to size its time columns


def time_width(cells: Iterable[str]) -> int:
    """The width of the time columns of a table of these time cells: 19, or the widest cell
    where one carries its zone (the hour the clocks go back over) or its microseconds."""
    return max(TIME_WIDTH, max(map(len, cells), default=0))


def sized(items: Iterable, times: Callable[..., list[str]]) -> tuple[int, Iterator]:
    """A table's time-column width, sized on its first AHEAD rows (``times`` gives a row's time
    cells), and all its rows. An error at the first row is raised here, before anything is
    printed (not found); one that cuts the first rows short is raised after the rows before it,
    as a listing fails."""
    iterator, first, cut = iter(items), [], None
    try:
        for item in iterator:
            first.append(item)
            if len(first) == AHEAD:
                break
    except Exception as exc:
        if not first:
            raise
        cut = exc

    def rows() -> Iterator:
        yield from first
        if cut is not None:
            raise cut
        yield from iterator

    return time_width(cell for item in first for cell in times(item)), rows()


def dir_header(width: int = TIME_WIDTH) -> str:
    return "  ".join(f"{c:<{width}}" for c in ("Created", "Backup start", "Backup end", "Last changed")) + "  Directory"


def dir_times(info: DirInfo) -> list[str]:
    backup = info.backup
    return [when(info.created), *(backup_cells(backup) if backup else ("-", "-", "-"))]


def dir_line(info: DirInfo, width: int = TIME_WIDTH) -> str:
    return "  ".join(f"{c:<{width}}" for c in dir_times(info)) + "  " + shown(info.path)


def file_header(width: int = TIME_WIDTH) -> str:
    return f"{'Size':>12}  " + "  ".join(f"{c:<{width}}" for c in ("Created", "Modified", "Attr changed")) + "  RH  File"


def file_times(info: FileInfo) -> list[str]:
    return [when(info.created), when(info.modified), when(info.attr_changed)]


def file_line(info: FileInfo, width: int = TIME_WIDTH) -> str:
    flags = ("R" if info.read_only else "-") + ("H" if info.hidden else "-")
    return f"{info.size:>12}  " + "  ".join(f"{c:<{width}}" for c in file_times(info)) + f"  {flags}  {shown(info.path)}"


class Table(NamedTuple):
    """A listing's table: its header, a row's line and a row's time cells, at a width."""
    header: Callable[[int], str]
    line: Callable[..., str]
    times: Callable[..., list[str]]


DIRS, FILES = Table(dir_header, dir_line, dir_times), Table(file_header, file_line, file_times)
DIR_HEADER, FILE_HEADER = dir_header(), file_header()
