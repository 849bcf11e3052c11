"""DSPOPT, WRKOPTVOL, WRKOPTDIR and WRKOPTF: what they list (reference §10.2-§10.5).

Each function yields value objects; layer 7 draws them as tables or JSON. Listings are
generators over index cursors, so a volume of a million files streams in bounded memory.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from optvol import errors, model
from optvol.library import Library
from optvol.model import DirInfo, FileInfo, MediaFormat, VolumeInfo, VolumeType

ALL = "*ALL"


def volumes(library: Library, pattern: str = ALL, *, unreadable: list[errors.OptvolError] | None = None,
            ) -> Iterator[tuple[VolumeInfo, str | None]]:
    """WRKOPTVOL / DSPOPT VOL(generic): every matching volume with its AUTL. A volume that
    cannot be opened (damaged, say) is left out and its error added to ``unreadable`` if
    given (one damaged volume must not hide the others), else raised."""
    if pattern.upper() not in (ALL, "*") and not pattern.endswith("*"):
        model.volume_id(pattern)
    autl = library.autl_table()
    for volume_id in library.volume_ids(pattern):
        try:
            with library.open(volume_id) as volume:
                info = volume.info()
        except errors.NotFoundError:
            continue  # removed while we listed
        except errors.OptvolError as exc:
            if unreadable is None:
                raise
            unreadable.append(exc)
            continue
        yield info, autl.get(volume_id)
    for entry in library.strays(pattern):  # a directory no ID names, which no command reaches
        if unreadable is None:
            raise library.stray_error(entry)
        unreadable.append(library.stray_error(entry))


def volume_attributes(library: Library, vol: str) -> VolumeInfo:
    """DSPOPT DATA(*VOLATR)."""
    with library.open(vol) as volume:
        return volume.info()


def _split_pattern(path: str) -> tuple[str, str | None]:
    """A path whose last element may be generic (``/DIR/AB*``): (directory, pattern). A
    path that does not start with '/' is CPF1F48, generic or not (``AB*`` is no ``/AB*``)."""
    if path.upper() == ALL:
        return "/", None
    model.check_path_form(path)
    head, _, last = path.rpartition("/")
    if "*" in last and last.upper() != ALL:  # (/DIR/*ALL is refused as a name, as it was)
        return head or "/", model.check_generic(last, "PATH")
    return path, None


def directory_attributes(library: Library, vol: str, path: str = ALL) -> Iterator[DirInfo]:
    """DSPOPT DATA(*DIRATR): the directory PATH names, every directory for *ALL, or for a
    generic last element (``/OTHER/IN*``) the directories of its parent that match, as
    *FILATR matches files."""
    with library.open(vol) as volume, volume.snapshot():  # one state (hunt25i F2)
        directory, pattern = _split_pattern(path)
        if (pattern is not None or path.upper() == ALL) and volume.label()["media_format"] == str(MediaFormat.UDF):
            raise errors.error("OPT1542", volume=volume.id, reason_code="06", reason="DSPOPT DATA(*DIRATR) of a UDF"
                               " volume takes one directory, not *ALL or a generic name (reference §10.2; WRKOPTDIR"
                               " lists them)")  # (hunt24h F3)
        if pattern is None:
            yield from volume.iter_dirs(directory, recursive=path.upper() == ALL)
            return
        for entry in volume.iter_dir(directory):  # directories first
            if not entry.is_dir:
                break
            if model.name_key(entry.path.rsplit("/", 1)[-1]).startswith(model.name_key(pattern[:-1])):
                yield entry


def file_attributes(library: Library, vol: str, path: str = ALL) -> Iterator[FileInfo]:
    """DSPOPT DATA(*FILATR): the file PATH names, the files of a directory, or every file (*ALL)."""
    with library.open(vol) as volume, volume.snapshot():  # one state (hunt25i F2)
        if path.upper() == ALL:
            yield from volume.iter_files("/", recursive=True)
            return
        directory, pattern = _split_pattern(path)
        if pattern is None and not volume.is_dir(path):
            yield volume.stat(path)
            return
        yield from volume.iter_files(directory, pattern=pattern)


def work_directories(library: Library, *, vol: str, dir: str = ALL, levels: int | None = None,
                     by_date: bool = False, since: datetime | None = None) -> Iterator[DirInfo]:
    """WRKOPTDIR DIR VOL SORT SLTLVL STRDATE: directories below DIR.

    ``levels`` None is SLTLVL(*ALL); ``by_date`` is SORT(*DATE) (else by name, streamed);
    ``since`` None is STRDATE(*AVAIL).
    """
    top = "/" if dir.upper() == ALL else dir
    depth = top.rstrip("/").count("/")
    with library.open(vol) as volume, volume.snapshot():  # one state (hunt25i F2)
        found = (
            info for info in volume.iter_dirs(top, recursive=True)
            if (levels is None or info.path.rstrip("/").count("/") - depth <= levels)
            and (since is None or info.created >= since)
        )
        yield from (sorted(found, key=lambda info: (info.created, info.path)) if by_date else found)


class DateKind(enum.StrEnum):
    """The date SLTDATE selects by (reference §10.5)."""

    CREATED = "*CREATED"
    MODIFIED = "*MODIFIED"


@dataclass(frozen=True)
class FileSelection:
    """WRKOPTF FILE(*SELECT): the files whose names run from ``first`` to ``last`` in name
    order (name keys, as listings sort; None: no bound; ``last_generic``: every name that
    starts with ``last`` too) and whose ``kind`` date is at or after ``start`` and before
    ``before`` (None: no bound). Build one with ``file_selection``."""

    first: str | None = None
    last: str | None = None
    last_generic: bool = False
    kind: DateKind = DateKind.CREATED
    start: datetime | None = None
    before: datetime | None = None

    def matches(self, info: FileInfo) -> bool:
        key = model.name_key(info.path.rsplit("/", 1)[-1])
        if self.first is not None and key < self.first:
            return False
        if self.last is not None and key > self.last and not (self.last_generic and key.startswith(self.last)):
            return False
        moment = info.created if self.kind is DateKind.CREATED else info.modified
        return (self.start is None or moment >= self.start) and (self.before is None or moment < self.before)


def file_selection(from_file: str = ALL, to_file: str | None = None, *, kind: DateKind = DateKind.CREATED,
                   start: datetime | None = None, before: datetime | None = None) -> FileSelection:
    """The selection of WRKOPTF SLTFILE(from to) SLTDATE(kind start end).

    From file: a name, a generic name (``AB*``: from the first name starting with AB) or
    *ALL (from the first name). To file: a name or generic name, the last one selected,
    *ALL for no last one; None (left out): only the names the from file matches. A to file
    that sorts before the from file is OPV0005. ``start`` and ``before`` bound the date.
    """
    first = last = None
    last_generic = False
    if from_file.upper() != ALL:
        first = model.name_key(from_file.removesuffix("*"))
        last, last_generic = first, from_file.endswith("*")
    if to_file is not None and to_file.upper() == ALL:
        last, last_generic = None, False
    elif to_file is not None:
        last, last_generic = model.name_key(to_file.removesuffix("*")), to_file.endswith("*")
        if first is not None and first > last and not (last_generic and first.startswith(last)):
            raise errors.error("OPV0005", value=f"{from_file} {to_file}", keyword="SLTFILE",
                               reason="the to file sorts before the from file")
    return FileSelection(first, last, last_generic, DateKind(kind), start, before)


def work_files(library: Library, *, vol: str, dir: str, file: str = ALL, selection: FileSelection | None = None,
               ignored: Callable[[], None] | None = None) -> Iterator[FileInfo]:
    """WRKOPTF VOL DIR FILE SLTFILE SLTDATE: files of DIR (every directory for *ALL), FILE a
    name or generic, or with FILE(*SELECT) those ``selection`` selects. On a *BACKUP volume
    the selection is ignored, as IBM ignores SLTFILE and SLTDATE there (reference §10.5):
    every file is listed, and ``ignored`` is called first to say so."""
    with library.open(vol) as volume, volume.snapshot():  # one state (hunt25i F2)
        if selection is not None and volume.label()["type"] == VolumeType.BACKUP:
            selection = None
            if ignored is not None:
                ignored()
        everywhere = dir.upper() == ALL
        pattern = None if file.upper() in (ALL, "*SELECT") else model.check_generic(file, "FILE")
        files = volume.iter_files("/" if everywhere else dir, recursive=everywhere, pattern=pattern)
        yield from files if selection is None else filter(selection.matches, files)
