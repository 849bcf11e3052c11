"""Descriptors of an index's files that never drop this process's SQLite locks.

A close() drops every POSIX lock the process holds on the file, through any of its
descriptors: SQLite's write lock and read marks of another open of the same volume in this
process (hunt29f F1, rev29g F1 and F2). optvol's own descriptors of ``index.sqlite`` and
its ``-shm`` are therefore opened here and, once done with, kept open while the process
holds any other descriptor of the file (Linux's /proc/self/fd); a later open of the same
file uses a kept one again, and each is closed once no other descriptor of its file is open
(with the process's last connection to that index, ``IndexConnection.close``). Where that
cannot be told (no /proc), a descriptor is kept for good (one per file: it is used again).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_KEPT: dict[tuple[int, int], list[int]] = {}  # by (device, inode)
_KEPT_LOCK = threading.Lock()


def open_kept(path: Path) -> int:
    """A descriptor of ``path`` to read, one kept of the same file if there is one."""
    with _KEPT_LOCK:
        found = os.stat(path)
        kept = _KEPT.get((found.st_dev, found.st_ino))
        if kept:
            return kept.pop()
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def close_kept(fd: int) -> None:
    """Done with ``fd`` (from ``open_kept``): closed once no other descriptor of its file is
    open in this process, kept until then."""
    found = os.fstat(fd)
    with _KEPT_LOCK:
        _KEPT.setdefault((found.st_dev, found.st_ino), []).append(fd)
    close_unheld()


def close_unheld() -> None:
    """Close the kept descriptors whose files no other descriptor of this process holds now."""
    if not _KEPT:
        return
    with _KEPT_LOCK:
        try:  # one scan of /proc/self/fd for them all (one each made a close of 200 volumes take seconds)
            held = _held_files(set(_KEPT))
        except OSError:  # cannot be told: kept (one descriptor more, never a lock lost)
            return
        for file, kept in list(_KEPT.items()):
            others = held.get(file, set()) - set(kept)
            if not others:
                for fd in kept:
                    os.close(fd)
                del _KEPT[file]


def read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of ``path``, through a descriptor of ``open_kept``."""
    fd = open_kept(path)
    try:
        return os.pread(fd, size, 0)
    finally:
        close_kept(fd)


def copy_file(source: Path, target: Path) -> None:
    """``shutil.copyfile`` of an index file SQLite may hold locks on in this process (another
    open of the same volume), read through a descriptor of ``open_kept``."""
    fd = open_kept(source)
    try:
        with open(target, "wb") as out:
            at = 0
            while chunk := os.pread(fd, 1 << 20, at):
                out.write(chunk)
                at += len(chunk)
    finally:
        close_kept(fd)


def _held_files(files: set[tuple[int, int]]) -> dict[tuple[int, int], set[int]]:
    """The descriptors this process holds of each of ``files`` (by (device, inode)), in one
    scan of Linux's /proc/self/fd. OSError where that cannot be told."""
    held: dict[tuple[int, int], set[int]] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if (found.st_dev, found.st_ino) in files:
            held.setdefault((found.st_dev, found.st_ino), set()).add(int(name))
    return held


def _new_lock_in_child() -> None:
    """A child forked while another thread held ``_KEPT_LOCK`` (its scan in ``close_unheld``)
    would wait for it for ever at its first close of a volume: it gets a lock of its own."""
    global _KEPT_LOCK
    _KEPT_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def descriptors_of(file: tuple[int, int]) -> list[int]:
    """The descriptors this process holds of the file whose (device, inode) is ``file``
    (Linux's /proc/self/fd). OSError where that cannot be told."""
    return sorted(_held_files({file}).get(file, ()))
