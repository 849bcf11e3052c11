"""Value types of optvol and the validation of volume IDs, names, paths and the data given to write.

Layer 1: no I/O, no clock. Rules come from reference §2.1 (volume identifiers), §3.1 and
§3.2 (paths and names) and DESIGN §1 (case folding).
"""

from __future__ import annotations

import enum
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from optvol import case_fold, errors


class VolumeType(enum.StrEnum):
    """Volume type (reference §2.2)."""

    PRIMARY = "*PRIMARY"
    BACKUP = "*BACKUP"


class MediaType(enum.StrEnum):
    """Media type (reference §2.3)."""

    WORM = "*WORM"
    ERASE = "*ERASE"
    DVD_RAM = "*DVD-RAM"
    CD_ROM = "*CD-ROM"
    DVD_ROM = "*DVD-ROM"


class MediaFormat(enum.StrEnum):
    """Media format, the file system on the volume (reference §2.4)."""

    HPOFS = "*HPOFS"
    UDF = "*UDF"
    ISO9660 = "*ISO9660"


BEGIN = "*BEGIN"
"""Start of a complete backup range that has no lower limit (FROMTIME(*BEGIN *AVAIL))."""

# The callbacks of long commands (DESIGN §2): (files, bytes) done so far, or in all.
Progress = Callable[[int, int], None]

QOPT = "/QOPT"
MAX_QOPT_PATH = 294  # whole /QOPT/VOL/... path (reference §3.1)
MAX_DIRECTORY_PART = 256  # all directory names of a path together
MAX_ELEMENT = {MediaFormat.HPOFS: 255, MediaFormat.UDF: 254, MediaFormat.ISO9660: 255}
MAX_TEXT = 50

_VOLUME_ID = re.compile(r"[A-Z0-9][A-Z0-9_.\-]{0,31}")
# X'00'-X'3F' and X'FF' of EBCDIC are its control characters: C0, DEL and C1 here.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_INVALID_ANY = set('"*<>?\\')


# --------------------------------------------------------------------- timestamps


_EARLIEST = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
_LATEST = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (the index's time unit)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: optvol needs aware timestamps")
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def clamp_micros(micros: int) -> int:
    """``micros`` within the moments a datetime holds in UTC (years 1-9999)."""
    return min(max(micros, _EARLIEST), _LATEST)


def wall_micros(wall: datetime, offset_minutes: int) -> int:
    """Microseconds of naive wall time ``wall`` at ``offset_minutes`` east of UTC, within
    the moments a datetime holds in UTC (an image's 9999-12-31 23:59 at UTC-12 lies in year
    10000 in UTC: it becomes the last moment of 9999, not a date nothing can show)."""
    return clamp_micros(to_micros(wall.replace(tzinfo=timezone.utc)) - offset_minutes * 60_000_000)


def from_micros(micros: int) -> datetime:
    """The aware local-time datetime for microseconds since the epoch (one past what a
    datetime holds, as an older import could store, at the nearest it holds)."""
    seconds, rest = divmod(clamp_micros(micros), 1_000_000)
    return local(datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=rest))


def local(moment: datetime) -> datetime:
    """``moment`` in local time, or in UTC where local time would pass year 1 or 9999: a
    moment stored near the date limits from a zone far to the other side of the world,
    or by an optvol whose limits were one day from the ends (0001-01-02 to 9999-12-30)."""
    try:
        return moment.astimezone()
    except (OverflowError, ValueError, OSError):
        return moment.astimezone(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 local time with offset, as the JSON contract writes timestamps. ISO 8601
    offsets are whole minutes: a local mean time's (Monrovia's -00:44:30 until 1972) is
    written to the nearest minute, with the wall time of that offset: the same moment."""
    if moment is None:
        return None
    shown = local(moment)
    offset = shown.utcoffset().total_seconds()
    if offset % 60:
        try:
            shown = shown.astimezone(timezone(timedelta(minutes=round(offset / 60))))
        except OverflowError:  # (past year 1 or 9999 at that offset)
            shown = shown.astimezone(timezone.utc)
    return shown.isoformat(timespec="microseconds")


def from_iso(text: object) -> datetime | None:
    """The moment an ISO 8601 text with an offset names (as ``iso`` writes one); None for
    anything else (``*BEGIN``, a time without an offset, no text)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return None if moment.tzinfo is None else moment


def local_moment(wall: datetime, *, latest: bool = False) -> datetime:
    """The first instant whose local wall-clock time is ``wall`` (naive) or later: the
    instant itself where that time exists (where the clocks go back and it comes twice,
    the earlier, or with ``latest`` the later: an end bound then takes in both passes),
    else, where a daylight-saving change skips it, the instant the clocks jump: so a day
    whose midnight is skipped starts at 01:00. ``wall.astimezone()`` alone puts a skipped
    time one gap-length early, at 23:00 of the day before for such a midnight."""
    candidates = sorted({wall.replace(fold=0).astimezone(), wall.replace(fold=1).astimezone()}, reverse=latest)
    for moment in candidates:
        if moment.replace(tzinfo=None) == wall:
            return moment
    candidates.sort()
    low, high = candidates[0], candidates[-1]  # local times before wall, and after it
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone().replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.astimezone()


# --------------------------------------------------------------------- validation


def volume_id(text: str) -> str:
    """Fold a volume identifier to upper case and check it (DESIGN §1, reference §2.1)."""
    folded = text.strip().upper() if isinstance(text, str) else ""
    if not folded:
        raise errors.error("OPV0001", volume=text, reason="it is empty")
    if folded.startswith("*") and folded[1:].isalpha():  # a special value where none is taken
        reason = ("*MOUNTED is the volume in a device, and a library has no device: name the volume"
                  if folded == "*MOUNTED" else f"{folded} is not a value this parameter takes: name the volume")
        raise errors.error("OPV0001", volume=text, reason=reason)
    # ASCII first: str.upper maps some other letters (ſ, ı) onto A-Z, and would name another volume.
    if not text.isascii() or not _VOLUME_ID.fullmatch(folded):
        raise errors.error(
            "OPV0001",
            volume=text,
            reason="use 1-32 characters A-Z 0-9 - _ . starting with a letter or digit",
        )
    return folded


def text_value(text: str) -> str:
    """Check a volume description (TEXT, at most 50 characters, no control characters, text
    that UTF-8 can write: not the escapes of bytes a locale could not decode)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT or _CONTROL.search(text) or not _is_text(text):
        raise errors.error("OPV0005", value=text, keyword="TEXT", reason="at most 50 printable characters")
    return text


def autl_name(name: str) -> str:
    """Check an authorization list name (CHGOPTVOL AUTL): 1-10 characters A-Z 0-9 _ $ # @, not
    starting with a digit or _; returned in upper case."""
    if not isinstance(name, str) or not _AUTL.fullmatch(name):
        raise errors.error("OPV0005", value=name, keyword="AUTL",
                           reason="a name of 1-10 characters A-Z 0-9 _ $ # @, *NONE or *SAME")
    return name.upper()


_AUTL = re.compile(r"[A-Za-z$#@][A-Za-z0-9_$#@]{0,9}")


def _undecoded(path: str) -> str:
    """Why a path holding os.fsdecode's escapes is no text: a host name in another encoding
    than UTF-8, or UTF-8 that this locale's encoding could not read (Python's UTF-8 mode off)."""
    encoding = sys.getfilesystemencoding()
    try:
        os.fsencode(path).decode()
    except UnicodeError:
        return "it is not valid text (a host name in another encoding than UTF-8)"
    return (f"this locale's encoding ({encoding}) cannot read its UTF-8: run optvol in a UTF-8 locale"
            " or with PYTHONUTF8=1")


def _is_text(value: str) -> bool:
    """``value`` holds no lone surrogate (os.fsdecode's escape of a byte the locale could not decode)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def name_key(name: str) -> str:
    """The case-insensitive lookup key of a name or path (reference §3.2: upper-case fold).

    Each character folds to its one upper-case partner, as an EBCDIC code page folds, and
    only where the pair is a true one (its lower case is the character's own): full case
    mapping (str.upper) made 'straße' and 'STRASSE', 'ﬁle' and 'FILE', 'kılavuz' and
    'KILAVUZ' one name, so a write to one replaced the other. A key is as long as its name.
    The fold is Unicode 14.0's whatever the Python (``case_fold``): keys are stored.
    """
    if name.isascii():
        return name.upper()
    return name.translate(_FOLD)


_FOLD = case_fold.table()


def check_generic(pattern: str, keyword: str) -> str:
    """A name or generic name (``AB*``: one ``*``, last) for ``keyword`` (WRKOPTF FILE, the
    last element of a DSPOPT PATH), or *ALL: what no name can match (``A*B``, ``x/y``, a
    misspelled ``*SELCT``) is OPV0005, not an empty listing."""
    if pattern.upper() in ("*ALL", "*"):
        return pattern
    stem = pattern[:-1] if pattern.endswith("*") else pattern
    if not stem:
        reason = "it is empty"
    elif stem.startswith("*"):
        takes = "*ALL, or a name or generic name AB*" if keyword == "FILE" else "a name or generic name AB*"
        reason = f"not a special value of this parameter ({takes})"
    elif "/" in stem or _CONTROL.search(stem) or set(stem) & _INVALID_ANY:
        reason = 'a name or generic name (AB*: one * at the end) has no / " * < > ? \\ or control characters'
    else:
        return pattern
    raise errors.error("OPV0005", value=pattern, keyword=keyword, reason=reason)


def matches_generic(name: str, pattern: str) -> bool:
    """``name`` against *ALL, a generic name (``ABC*``) or a name, without regard to case."""
    wanted = name_key(pattern)
    if wanted in ("*ALL", "*"):
        return True
    return name_key(name).startswith(wanted[:-1]) if wanted.endswith("*") else name_key(name) == wanted


def _check_element(name: str, *, is_dir: bool, media_format: MediaFormat) -> None:
    message_id = "CPF1F01" if is_dir else "CPF1F21"

    def bad(reason: str) -> errors.OptvolError:
        return errors.error(message_id, name=name, reason=reason)

    if name in ("", ".", ".."):
        raise bad("empty, '.' and '..' are not names")
    if _CONTROL.search(name):
        raise bad("control characters are not allowed")
    if set(name) & _INVALID_ANY:
        raise bad('the characters " * < > ? \\ are not allowed')
    if media_format is MediaFormat.HPOFS and "-" in name:
        raise bad("'-' is not allowed in names on HPOFS volumes (reference §3.1)")
    if len(name) > MAX_ELEMENT[media_format]:
        raise bad(f"longer than {MAX_ELEMENT[media_format]} characters")


def _check_form(path: str) -> None:
    if not isinstance(path, str):  # (a pathlib path is the host's: hunt-api F8)
        raise errors.error("CPF1F48", path=path, reason=f"a volume path is a str, not {type(path).__name__}")
    if not path.startswith("/"):
        raise errors.error("CPF1F48", path=path, reason="a volume path starts with '/'")
    if "\x00" in path:
        raise errors.error("CPF1F48", path=path, reason="NUL is not allowed")
    if not path.isascii() and not _is_text(path):  # os.fsdecode's escapes of bytes the locale could not decode
        raise errors.error("CPF1F48", path=path, reason=_undecoded(path))
    if path.count("//"):
        raise errors.error("CPF1F48", path=path, reason="empty path element")


def check_path_form(path: str) -> None:
    """What a volume path must be on any media format, checked with the command's values
    (reference §5.9 step 1), before any volume is looked up: it starts with '/', holds no NUL
    and no empty, '.' or '..' element. ``split_path`` checks the rest on its volume."""
    _check_form(path)
    for part in path.split("/")[1:]:
        if part in (".", ".."):
            raise errors.error("CPF1F01", name=part, reason="empty, '.' and '..' are not names")


def split_path(path: str, *, volume: str, media_format: MediaFormat, is_dir: bool = False) -> tuple[str, ...]:
    """Check a path inside volume ``volume`` (``/DIR/FILE``) and return its elements.

    ``is_dir`` says the last element names a directory, which counts against the 256
    characters of directory names (reference §3.1).
    """
    _check_form(path)
    parts = tuple(p for p in path.split("/") if p != "")
    if not parts:
        return ()
    for index, part in enumerate(parts):
        _check_element(part, is_dir=is_dir or index < len(parts) - 1, media_format=media_format)
    dir_parts = parts if is_dir else parts[:-1]
    check_lengths(path, volume=volume, directories=sum(len(p) + 1 for p in dir_parts),
                  total=sum(len(p) + 1 for p in parts))
    return parts


def check_lengths(path: str, *, volume: str, directories: int, total: int, below: bool = False) -> None:
    """Refuse (CPF1F48) a path of ``total`` characters after ``/QOPT/VOL`` whose directory names
    (each with its '/') take ``directories`` of them: reference §3.1 allows 256 and 294 with
    ``/QOPT/VOL``. ``below``: the lengths are those of the longest paths below ``path``."""
    if directories > MAX_DIRECTORY_PART:
        where = "of a path below it would " if below else ""
        raise errors.error("CPF1F48", path=path, reason=f"directory names {where}exceed {MAX_DIRECTORY_PART} characters")
    if len(QOPT) + 1 + len(volume) + total > MAX_QOPT_PATH:
        what = "a path below it would be longer" if below else "longer"
        raise errors.error("CPF1F48", path=path, reason=f"{what} than {MAX_QOPT_PATH} characters with /QOPT/{volume}")


def names_dir(path: str) -> bool:
    """A volume path ending in '/' names a directory, as POSIX reads it (``/``, ``/DIR/``):
    no file has such a path."""
    return isinstance(path, str) and path.endswith("/")


def join(parts: tuple[str, ...] | list[str]) -> str:
    """The volume path of a tuple of elements."""
    return "/" + "/".join(parts)


def parse_qopt(path: str) -> tuple[str, str] | None:
    """Split ``/QOPT/VOL/...`` into (volume ID, volume path); None for a host path."""
    if not isinstance(path, str):
        return None
    if path.upper() != QOPT and not path.upper().startswith(QOPT + "/"):
        return None
    if len(path) > MAX_QOPT_PATH:
        raise errors.error("CPF1F48", path=path, reason=f"longer than {MAX_QOPT_PATH} characters")
    rest = path[len(QOPT) + 1 :]
    volume, _, inner = rest.partition("/")
    if not volume:
        raise errors.error("CPF1F48", path=path, reason="no volume named after /QOPT/")
    return volume_id(volume), "/" + inner


# --------------------------------------------------------------------- values


@dataclass(frozen=True)
class BackupRange:
    """Backup control data of a backup directory or volume (reference §6.1)."""

    range_start: datetime | str | None  # a datetime, BEGIN, or None if no range yet
    range_end: datetime | None
    last_changed: datetime | None

    def as_json(self) -> dict:
        start = self.range_start if self.range_start in (BEGIN, None) else iso(self.range_start)
        return {"range_start": start, "range_end": iso(self.range_end), "last_changed": iso(self.last_changed)}


def backup_range(start: int | None, end: int | None, last_changed: int | None,
                 seen: int | None) -> BackupRange | None:
    """The BackupRange of index values (microseconds; a NULL start with an end is *BEGIN), as
    shown: a range whose ``seen`` is NULL holds nothing for certain (forgotten: another
    primary's history, a file DUPOPT left out; or recorded before index schema 3; docs/
    format.md section 4.2) and is shown as none, its last changed as it is. (A range whose
    start lies after its end, a FROMTIME ahead of the request, is shown as recorded.)"""
    if seen is None:
        end = None
    if end is None and last_changed is None:
        return None
    return BackupRange(
        range_start=None if end is None else (BEGIN if start is None else from_micros(start)),
        range_end=None if end is None else from_micros(end),
        last_changed=None if last_changed is None else from_micros(last_changed),
    )


@dataclass(frozen=True)
class VolumeInfo:
    """The volume label and space figures (DSPOPT DATA(*VOLATR), DESIGN §4)."""

    volume: str
    type: VolumeType
    media_type: MediaType
    media_format: MediaFormat
    sector_size: int
    capacity: int
    used: int
    available: int
    threshold: int
    text: str
    created: datetime
    last_referenced: datetime
    primary_volume: str | None
    backup: BackupRange | None
    files: int
    directories: int

    def as_json(self) -> dict:
        return {
            "volume": self.volume,
            "type": str(self.type),
            "media_type": str(self.media_type),
            "media_format": str(self.media_format),
            "sector_size": self.sector_size,
            "capacity": self.capacity,
            "used": self.used,
            "available": self.available,
            "threshold": self.threshold,
            "text": self.text,
            "created": iso(self.created),
            "last_referenced": iso(self.last_referenced),
            "primary_volume": self.primary_volume,
            "backup": self.backup.as_json() if self.backup else None,
        }


@dataclass(frozen=True)
class DirInfo:
    """A directory (DSPOPT DATA(*DIRATR))."""

    path: str
    created: datetime
    backup: BackupRange | None

    is_dir = True

    def as_json(self) -> dict:
        return {"path": self.path, "created": iso(self.created), "backup": self.backup.as_json() if self.backup else None}


@dataclass(frozen=True)
class FileInfo:
    """The live version of a file (DSPOPT DATA(*FILATR), reference §3.3)."""

    path: str
    size: int
    created: datetime
    modified: datetime
    attr_changed: datetime
    read_only: bool
    hidden: bool
    sha256: str
    version: int

    is_dir = False

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "size": self.size,
            "created": iso(self.created),
            "modified": iso(self.modified),
            "attr_changed": iso(self.attr_changed),
            "read_only": self.read_only,
            "hidden": self.hidden,
            "sha256": self.sha256,
        }


def sized_chunks(chunks: Iterable[bytes], *, size: int, path: str) -> Iterator[bytes]:
    """The chunks given to write ``path``; OPV0005 before a byte past ``size``, or at their end
    short of it (``cp``'s reader of a host file that changes size refuses it first, OPV0302)."""
    total = 0
    for given in chunks:
        chunk = given if isinstance(given, (bytes, bytearray)) else as_bytes(given, path=path, copy=False)
        total += len(chunk)
        if total > size:
            break
        yield chunk
    if total != size:
        held = f"more than {size}" if total > size else str(total)
        raise errors.error("OPV0005", value=size, keyword="size", reason=f"the chunks given for {path} hold {held} bytes")


def as_bytes(data, *, path: str, copy: bool = True) -> bytes | memoryview:
    """The bytes of ``data``, any object with the buffer protocol (an ``array('i')`` gives its
    bytes, where ``len`` counts its items: the file was recorded shorter than its payload:
    hunt-api F2); OPV0005 for anything else (``bytes(5)`` made five zero bytes of an int).
    Not ``copy``: a flat view of single bytes as it is."""
    if type(data) is bytes:  # (as it is: a copy of 400 MiB took 400 MiB more: review 23a F6)
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise errors.error("OPV0005", value=type(data).__name__, keyword="data",
                           reason=f"the data given for {path} is not bytes") from None
    return view if not copy and view.itemsize == 1 and view.ndim == 1 and view.c_contiguous else view.tobytes()
