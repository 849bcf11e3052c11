"""DSPOPT, WRKOPTVOL, WRKOPTDIR and WRKOPTF: what they list (reference §10.2-§10.5).

Each function yields value objects; layer 7 draws them as tables or JSON. Listings are
generators over index cursors, so a volume of a million files streams in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from optvol import errors, model
from optvol.library import Library
from optvol.model import DirInfo, FileInfo, VolumeInfo

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


def volume_attributes(library: Library, vol: str) -> VolumeInfo:
    """DSPOPT DATA(*VOLATR)."""
    with library.open(vol) as volume:
        return volume.info()


def _split_pattern(path: str) -> tuple[str, str | None]:
    """A path whose last element may be generic (``/DIR/AB*``): (directory, pattern)."""
    if path.upper() == ALL:
        return "/", None
    head, _, last = path.rpartition("/")
    if last.endswith("*"):
        return head or "/", last
    return path, None


def directory_attributes(library: Library, vol: str, path: str = ALL) -> Iterator[DirInfo]:
    """DSPOPT DATA(*DIRATR): the directory PATH names, every directory for *ALL, or for a
    generic last element (``/OTHER/IN*``) the directories of its parent that match, as
    *FILATR matches files."""
    with library.open(vol) as volume:
        directory, pattern = _split_pattern(path)
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
    with library.open(vol) as volume:
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
    with library.open(vol) as volume:
        found = (
            info for info in volume.iter_dirs(top, recursive=True)
            if (levels is None or info.path.rstrip("/").count("/") - depth <= levels)
            and (since is None or info.created >= since)
        )
        yield from (sorted(found, key=lambda info: (info.created, info.path)) if by_date else found)


def work_files(library: Library, *, vol: str, dir: str, file: str = ALL) -> Iterator[FileInfo]:
    """WRKOPTF VOL DIR FILE: files of DIR (every directory for *ALL), FILE a name or generic."""
    with library.open(vol) as volume:
        everywhere = dir.upper() == ALL
        pattern = None if file.upper() == ALL else file
        yield from volume.iter_files("/" if everywhere else dir, recursive=everywhere, pattern=pattern)
