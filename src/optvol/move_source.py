"""The source of a move off a volume (mv, MOV to another volume or the host): a copy, then
a delete of only what the copy surely took (hunt32c F1).

Another process may write into a tree while it is moved. What it changed after the copy
began may be missing from the copy, or held there in an older version: deleting it would
lose a write reported done, so the delete leaves it, and the directories above it.
"""

from __future__ import annotations

from optvol import errors
from optvol.volume import Volume


def change_mark(volume: Volume) -> tuple[int, int]:
    """Where a volume stands before a move copies off it: its ``changed_high`` (a change
    committed later lies above it, docs/format.md §4.1) and its highest directory row."""
    with volume.snapshot():
        return (volume.image.meta("changed_high"),
                volume.image.conn.execute("SELECT coalesce(max(id), 0) FROM dirs").fetchone()[0])


def remove_moved(volume: Volume, path: str, mark: tuple[int, int]) -> errors.OptvolError | None:
    """Delete what a move copied off the volume, in one batch: each file of ``path`` that no
    change reached since ``mark`` (its copy holds its bytes), and each directory left empty
    that was there then. A file another process wrote, renamed into the tree or changed
    meanwhile stays, with the directories above it (its copy may hold an older version:
    deleting it would lose a write reported done). Gives the error that says so (CPF1F26),
    for the move to raise once it has given what it moved."""
    changed_high, last_dir = mark
    kept, first, holding = 0, None, set()  # holding: directories that keep something
    with volume.batch():
        if not volume.is_dir(path):
            _, row = volume.file_row(path)
            if row.changed > changed_high:
                return _kept(volume, path, 1, path)
            volume.remove(path)
            return None
        # Each directory after every one below it (they sort after it), by its path alone, as rm -r
        # holds them: whole rows took about 560 bytes a directory, 5 times as much (rev32d F2).
        for dirpath in reversed([directory.path for directory in volume.iter_dirs(path)]):
            for _, row in volume.iter_file_rows(dirpath):
                file_path = f"{dirpath.rstrip('/')}/{row.name}"
                if row.changed > changed_high:
                    kept, first = kept + 1, file_path if first is None or file_path < first else first
                    holding.add(dirpath)
                else:
                    volume.remove(file_path)
            if dirpath in holding or dirpath == "/" or volume.dir_row(dirpath).id > last_dir:
                holding.add(dirpath.rsplit("/", 1)[0] or "/")
            else:
                volume.rmdir(dirpath)
    return _kept(volume, path, kept, first) if kept else None


def _kept(volume: Volume, path: str, kept: int, first: str) -> errors.OptvolError:
    return errors.error("CPF1F26", path=first, volume=volume.id, reason=(
        f"another process changed {kept} file(s) of {path!r} while they were moved: they stay "
        f"(this one the first), and so do their directories; their copies hold what the move read"))
