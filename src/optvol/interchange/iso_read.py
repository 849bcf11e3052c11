"""Reading an ISO 9660 image made by any tool into a plain tree of entries (import side).

The image is untrusted: everything pycdlib raises while parsing it, and every
inconsistency found here (extents past the end of the image, directory loops, names no
volume can hold), becomes one ``DamagedError`` (OPV0701 / OPV0703). Names come from the
richest namespace the image has: Rock Ridge, then UDF, then Joliet, then ISO 9660.

pycdlib workarounds (notes/pycdlib.md): its Rock Ridge ``access_time`` is the RRIP MODIFY
time (bit 1 of TF), so that is the modified time; a file over 4 GiB is read from the
extents of all its multi-extent directory records, never through a Rock Ridge path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pycdlib
from pycdlib.dr import DirectoryRecord

from optvol import errors

MAX_DEPTH = 64
MAX_ENTRIES = 10_000_000
_MULTI_EXTENT = 0x80


@dataclass(frozen=True)
class Entry:
    """One directory or file of an image, with its times in microseconds since the epoch."""

    names: tuple[str, ...]
    is_dir: bool
    modified: int
    created: int | None = None
    attr_changed: int | None = None
    size: int = 0
    extents: tuple[tuple[int, int], ...] = ()  # (byte offset in the image, length)


@dataclass
class ImageTree:
    """What import-iso needs of an image: its volume identifier and every entry, parents first."""

    path: str
    volume_identifier: str
    namespace: str
    image_size: int
    entries: list[Entry] = field(default_factory=list)

    @property
    def payload_bytes(self) -> int:
        return sum(e.size for e in self.entries)


def damaged(path: str, reason: str) -> errors.OptvolError:
    return errors.error("OPV0701", path=path, reason=reason)


def read_tree(path: str) -> ImageTree:
    """Parse the image at host path ``path``; raises OPV0301/OPV0302 or a DamagedError."""
    if not os.path.exists(path):
        raise errors.error("OPV0301", path=path)
    if not os.path.isfile(path):
        raise errors.error("OPV0302", path=path, reason="it is not a regular file")
    iso = pycdlib.PyCdlib()
    try:
        with _no_silent_truncation():
            iso.open(path)
    except errors.OptvolError:
        raise
    except Exception as exc:  # any failure of the parser means the bytes are bad
        raise damaged(path, _reason(exc)) from None
    try:
        return _tree(iso, path)
    except errors.OptvolError:
        raise
    except Exception as exc:
        raise damaged(path, _reason(exc)) from None
    finally:
        try:
            iso.close()
        except Exception:  # closing a half-parsed object must not hide the real error
            pass


class _BeyondEnd(Exception):
    def __str__(self) -> str:
        return "a file's data reaches beyond the end of the image"


@contextmanager
def _no_silent_truncation() -> Iterator[None]:
    """Make pycdlib's silent cut of a file that ends past the image end an error.

    While parsing, pycdlib shortens such a file to end at the image end (the only call of
    ``DirectoryRecord.set_data_length`` during ``open``); an absurd size is damage.
    """
    original = DirectoryRecord.set_data_length

    def refuse(self, length: int) -> None:
        raise _BeyondEnd()

    DirectoryRecord.set_data_length = refuse
    try:
        yield
    finally:
        DirectoryRecord.set_data_length = original


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "its directory tree nests without end"
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def _tree(iso: pycdlib.PyCdlib, path: str) -> ImageTree:
    identifier = iso.pvd.volume_identifier.decode("ascii", "replace").strip(" \x00")
    tree = ImageTree(path=path, volume_identifier=identifier, namespace="", image_size=os.path.getsize(path))
    block = iso.logical_block_size
    if iso.has_rock_ridge():
        tree.namespace = "Rock Ridge"
        _walk_records(tree, iso.pvd.root_dir_record, (), block, _rock_ridge_name, set())
    elif iso.has_udf():
        tree.namespace = "UDF"
        _walk_udf(tree, iso)
    elif iso.has_joliet():
        tree.namespace = "Joliet"
        _walk_records(tree, iso.joliet_vd.root_dir_record, (), block, _joliet_name, set())
    else:
        tree.namespace = "ISO 9660"
        _walk_records(tree, iso.pvd.root_dir_record, (), block, _iso_name, set())
    for entry in tree.entries:
        for offset, length in entry.extents:
            if offset < 0 or length < 0 or offset + length > tree.image_size:
                raise damaged(path, f"the data of /{'/'.join(entry.names)} lies beyond the end of the image")
    return tree


# --------------------------------------------------------------------- ISO 9660, Joliet, Rock Ridge


def _iso_name(record: DirectoryRecord) -> str:
    name = record.file_identifier().decode("ascii")
    if not record.is_dir():
        name = name.rsplit(";", 1)[0]
        name = name[:-1] if name.endswith(".") else name
    return name


def _joliet_name(record: DirectoryRecord) -> str:
    name = record.file_identifier().decode("utf-16_be")
    return name if record.is_dir() else name.rsplit(";", 1)[0]


def _rock_ridge_name(record: DirectoryRecord) -> str:
    if record.rock_ridge is not None and record.rock_ridge.name():
        return record.rock_ridge.name().decode("utf-8")
    return _iso_name(record)


def _walk_records(tree: ImageTree, directory: DirectoryRecord, names: tuple[str, ...], block: int,
                  name_of, seen: set[int]) -> None:
    """Add the entries below ``directory`` (pre-order), joining multi-extent file records."""
    if len(names) > MAX_DEPTH:
        raise damaged(tree.path, f"directories nest deeper than {MAX_DEPTH} levels")
    if directory.extent_location() in seen:
        raise damaged(tree.path, f"directory /{'/'.join(names)} loops back to one of its parents")
    seen = seen | {directory.extent_location()}
    pieces: list[DirectoryRecord] = []
    for record in _children(directory):
        if record.rock_ridge is not None and record.rock_ridge.relocated_record():
            continue  # the directory shows up where its CL record points
        target = _relocated_target(record)
        if record.is_dir() or target is not None:
            if not names and _only_relocated(record):
                continue  # rr_moved: its directories appear where they belong
            entry_names = names + (name_of(record),)
            _add(tree, Entry(entry_names, True, _record_time(target or record)))
            _walk_records(tree, target or record, entry_names, block, name_of, seen)
            continue
        pieces.append(record)
        if not record.file_flags & _MULTI_EXTENT:
            _add(tree, _file_entry(names + (name_of(pieces[0]),), pieces, block))
            pieces = []
    if pieces:
        raise damaged(tree.path, f"the last extent of a file in /{'/'.join(names)} is missing")


def _children(directory: DirectoryRecord) -> list[DirectoryRecord]:
    children = directory.children
    if len(children) < 2 or not children[0].is_dot() or not children[1].is_dotdot():
        raise ValueError("a directory lacks its '.' and '..' records")
    return [c for c in children[2:] if not (c.is_dot() or c.is_dotdot())]


def _only_relocated(directory: DirectoryRecord) -> bool:
    if not directory.is_dir():
        return False
    children = _children(directory)
    return bool(children) and all(c.rock_ridge is not None and c.rock_ridge.relocated_record() for c in children)


def _relocated_target(record: DirectoryRecord) -> DirectoryRecord | None:
    rock_ridge = record.rock_ridge
    if rock_ridge is not None and rock_ridge.child_link_record_exists():
        return rock_ridge.cl_to_moved_dr
    return None


def _file_entry(names: tuple[str, ...], pieces: list[DirectoryRecord], block: int) -> Entry:
    # Each record's own length: pycdlib's inode length is shared with other namespaces' records.
    extents = tuple((p.extent_location() * block, p.data_length) for p in pieces)
    last = pieces[-1]
    modified = created = attr_changed = _record_time(last)
    tf = last.rock_ridge.dr_entries.tf_record if last.rock_ridge is not None else None
    if tf is not None:
        # pycdlib calls RRIP MODIFY (TF bit 1) access_time and RRIP ACCESS modification_time.
        modified = _date_micros(tf.access_time) or modified
        created = _date_micros(tf.creation_time) or modified
        attr_changed = _date_micros(tf.attribute_change_time) or modified
    return Entry(names, False, modified, created, attr_changed, sum(length for _, length in extents), extents)


def _record_time(record: DirectoryRecord) -> int:
    tf = record.rock_ridge.dr_entries.tf_record if record.rock_ridge is not None else None
    found = _date_micros(tf.access_time) if tf is not None else None
    return found or _date_micros(record.date) or 0


def _date_micros(date) -> int | None:
    """Microseconds of an ECMA-119 date (§9.1.5 seven bytes or §8.4.26.1 seventeen), or None."""
    if date is None:
        return None
    try:
        if hasattr(date, "years_since_1900"):
            moment = datetime(1900 + date.years_since_1900, date.month, date.day_of_month,
                              date.hour, date.minute, date.second)
        else:
            moment = datetime(date.year, date.month, date.dayofmonth, date.hour, date.minute,
                              date.second, date.hundredthsofsecond * 10_000)
        offset = timedelta(minutes=15 * (date.gmtoffset if -48 <= date.gmtoffset <= 52 else 0))
    except (ValueError, TypeError, AttributeError, OverflowError):
        return None
    return _micros(moment.replace(tzinfo=timezone(offset)))


def _micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _add(tree: ImageTree, entry: Entry) -> None:
    if len(tree.entries) >= MAX_ENTRIES:
        raise damaged(tree.path, f"more than {MAX_ENTRIES} entries")
    tree.entries.append(entry)


# --------------------------------------------------------------------- UDF


def _walk_udf(tree: ImageTree, iso: pycdlib.PyCdlib) -> None:
    """Add the entries of the UDF file system, parents first."""
    pending: list[tuple[str, ...]] = [()]
    while pending:
        names = pending.pop()
        if len(names) > MAX_DEPTH:
            raise damaged(tree.path, f"directories nest deeper than {MAX_DEPTH} levels")
        udf_path = "/" + "/".join(names)
        children = []
        for child in iso.list_children(udf_path=udf_path):
            if child is None:
                continue
            entry_names = names + (child.file_identifier().decode("utf-8"),)
            when = _udf_micros(child.mod_time)
            if child.is_dir():
                _add(tree, Entry(entry_names, True, when))
                children.append(entry_names)
            else:
                extents = tuple(iso.get_file_byte_extents(udf_path="/" + "/".join(entry_names)))
                size = child.get_data_length()
                if sum(length for _, length in extents) != size:
                    raise damaged(tree.path, f"the extents of /{'/'.join(entry_names)} do not add up to its size")
                _add(tree, Entry(entry_names, False, when, when, _udf_micros(child.attr_time) or when, size, extents))
        pending.extend(reversed(children))


def _udf_micros(stamp) -> int:
    """Microseconds of an ECMA-167 1/7.3 timestamp (0 when it is not a valid date)."""
    try:
        offset_minutes = stamp.tz & 0x0FFF
        if offset_minutes & 0x800:
            offset_minutes -= 0x1000
        if not -1440 <= offset_minutes <= 1440:
            offset_minutes = 0
        moment = datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
                          stamp.centiseconds * 10_000 + stamp.hundreds_microseconds * 100 + stamp.microseconds,
                          tzinfo=timezone(timedelta(minutes=offset_minutes)))
    except (ValueError, TypeError, AttributeError, OverflowError):
        return 0
    return _micros(moment)
