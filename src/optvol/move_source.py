"""The source of a move off a volume (mv, MOV to another volume or the host): a copy, then
a delete of only what the copy surely took (hunt32c F1).

Another process may write into a tree while it is moved. What it changed after the copy
began may be missing from the copy, or held there in an older version: deleting it would
lose a write reported done, so the delete leaves it, and the directories above it. A
directory it made or moved into the tree after the copy passed its place is in no copy
(a move stamps the files below a directory, not the directory: an empty one carries no
sign of it), so an empty directory goes only where the copy holds one in its place.
"""

from __future__ import annotations

from collections.abc import Callable

from optvol import errors
from optvol.volume import Volume


def change_mark(volume: Volume) -> int:
    """Where a volume stands before a move copies off it: its ``changed_high`` (a change
    committed later lies above it, docs/format.md §4.1)."""
    with volume.snapshot():
        return volume.image.meta("changed_high")


def remove_moved(volume: Volume, path: str, mark: int,
                 copied_dir: Callable[[str], bool]) -> errors.OptvolError | None:
    """Delete what a move copied off the volume, in one batch: each file of ``path`` that no
    change reached since ``mark`` (its copy holds its bytes), and each directory left empty
    whose place in the copy holds a directory (``copied_dir`` of its path on this volume).
    A file another process wrote, renamed into the tree or changed meanwhile stays, with the
    directories above it (its copy may hold an older version: deleting it would lose a write
    reported done), and so does a directory it made or moved in after the copy passed its
    place (rev32d F1). Gives the error that says so (CPF1F26), for the move to raise once it
    has given what it moved."""
    kept, first, holding = 0, None, set()  # holding: directories that keep something
    kept_dirs, first_dir = 0, None
    with volume.batch():
        if not volume.is_dir(path):
            _, row = volume.file_row(path)
            if row.changed > mark:
                return _kept(volume, path, 1, path)
            volume.remove(path)
            return None
        # Each directory after every one below it (they sort after it), by its path alone, as rm -r
        # holds them: whole rows took about 560 bytes a directory, 5 times as much (rev32d F2).
        for dirpath in reversed([directory.path for directory in volume.iter_dirs(path)]):
            for _, row in volume.iter_file_rows(dirpath):
                file_path = f"{dirpath.rstrip('/')}/{row.name}"
                if row.changed > mark:
                    kept, first = kept + 1, file_path if first is None or file_path < first else first
                    holding.add(dirpath)
                else:
                    volume.remove(file_path)
            if dirpath != "/" and not copied_dir(dirpath):
                kept_dirs, first_dir = kept_dirs + 1, dirpath  # (the last in reverse order: the first by path)
                holding.add(dirpath)
            if dirpath in holding or dirpath == "/":
                holding.add(dirpath.rsplit("/", 1)[0] or "/")
            else:
                volume.rmdir(dirpath)
    return _kept(volume, path, kept, first or first_dir, kept_dirs) if kept or kept_dirs else None


def _kept(volume: Volume, path: str, kept: int, first: str, kept_dirs: int = 0) -> errors.OptvolError:
    changes = " and ".join(what for what in (kept and f"changed {kept} file(s)",
                                             kept_dirs and f"made or moved in {kept_dirs} directory(ies)") if what)
    return errors.error("CPF1F26", path=first, volume=volume.id, reason=(
        f"another process {changes} of {path!r} while they were moved: they stay "
        f"(this one the first), and so do their directories; their copies hold what the move read"))
