"""ls and cat: a directory's entries, and a file's bytes, checked before they are given
(the reading side of the file commands; transfer.py writes)."""

from __future__ import annotations

from collections.abc import Iterator

from optvol import chunk_check
from optvol.library import Library
from optvol.model import DirInfo, FileInfo
from optvol.transfer import volume_location
from optvol.volume import Volume

WHOLE_READ = 8 << 20  # cat reads a file up to this size once, whole, into memory


def list_directory(library: Library, path: str) -> Iterator[FileInfo | DirInfo]:
    """ls: the entries of a directory, or the file itself, one at a time (the volume stays
    open until the last one); a missing path fails at the first."""
    where = volume_location(path)
    with library.open(where.volume) as volume:
        if volume.is_dir(where.path):
            yield from volume.iter_dir(where.path)
        else:
            yield volume.stat(where.path)


def _readable_row(volume: Volume, path: str):
    """The row of the file cat reads at ``path``: refused on a *BACKUP volume, for no such file or a directory."""
    volume.check_user_access("reading a file")
    return volume.file_row(path)[1]


def check_file(library: Library, path: str) -> None:
    """What ``read_file`` refuses before it reads (no such volume or file, a directory, a *BACKUP volume)."""
    where = volume_location(path)
    with library.open(where.volume) as volume:
        _readable_row(volume, where.path)


def read_file(library: Library, path: str) -> Iterator[bytes]:
    """cat: the bytes of a file, checked against its SHA-256 before the first one is given.

    Up to WHOLE_READ bytes are read once and given whole; a larger file is read twice, and
    each chunk of the second read is given only once it matches the first (``chunk_check``)."""
    where = volume_location(path)
    with library.open(where.volume) as volume:
        row = _readable_row(volume, where.path)
        if row.size <= WHOLE_READ:
            yield volume.read_verified(row, where.path)
            return
        marks = chunk_check.marks(volume, row, where.path, prefix=True)
        yield from chunk_check.rechecked(volume, row, where.path, marks)
