"""The open lock of a volume image (docs/format.md §1): a ``flock`` on its ``lock`` file,
shared by every process that has the image open, exclusive for what needs the image alone
(re-initialize, rename, remove, recover, the upgrade of an older index)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from optvol import errors

LOCK_FILE = "lock"
UPGRADE_WAIT = 10.0  # seconds an open of an older index waits for the volume to be free, or brought forward
BUSY_WAIT = 0.5  # seconds an open waits while another process has the volume alone (an upgrade ends so)
# The locks this process took: fd -> (pid, the lock file's (device, inode)). An entry whose fd
# was closed without ``release`` (an exclusive lock's) is told by the fd itself (``_held_here``).
_LOCKED_HERE: dict[int, tuple[int, tuple[int, int]]] = {}


def read_only_error(library: Path, operation: str) -> errors.OptvolError:
    """OPV0010: ``operation`` would write a library on a read-only file system."""
    return errors.error("OPV0010", library=library, operation=operation)


def lock_exclusive(directory: Path, *, volume: str) -> int:
    """The open lock of a volume image, exclusively (exit 8 if it is open); close the fd to release."""
    fd, _ = open_lock(directory, exclusive=True, volume=volume)
    assert fd is not None  # an exclusive lock is taken or refused
    return fd


def open_lock(directory: Path, *, exclusive: bool, volume: str) -> tuple[int | None, str | None]:
    """The open lock, shared or exclusive, and why the image can only be read, if it can:
    "fs" on a read-only file system (no lock then: nothing can change the image), "access"
    when this user may not write the lock (it is opened for reading)."""
    reason = None
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not directory.is_dir():  # removed or renamed as it was opened
            raise errors.error("OPV0004", volume=volume) from None
        if exc.errno == errno.EROFS:
            if not exclusive:
                return None, "fs"
            raise read_only_error(directory.parent, f"changing volume {volume}") from None
        fd = None
        if exc.errno in (errno.EACCES, errno.EPERM) and exclusive:
            raise errors.error("OPV0011", volume=volume, operation=f"changing volume {volume}") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            try:
                fd, reason = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC), "access"
            except OSError:
                pass
        if fd is None:
            raise errors.error("OPV0006", library=directory.parent,
                               reason=f"{directory.name}/{LOCK_FILE}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        held_here = exclusive and _held_here(_key(fd), besides=fd)
        os.close(fd)  # this program's own open (a Volume, a file handle) holds it: not "another process"
        raise errors.error("OPV0020" if held_here else "OPV0004", volume=volume) from None
    except OSError as exc:  # ENOLCK: a network file system without locks
        os.close(fd)
        raise errors.error("OPV0006", library=directory.parent,
                           reason=f"{directory.name}/{LOCK_FILE} cannot be locked ({exc.strerror or exc})") from None
    _LOCKED_HERE[fd] = (os.getpid(), _key(fd))
    return fd, reason


def release(fd: int) -> None:
    """Close a lock of ``open_lock``."""
    _LOCKED_HERE.pop(fd, None)
    os.close(fd)


def _held_here(key: tuple[int, int], *, besides: int) -> bool:
    """Whether this process (not a parent it was forked from) holds a lock of the lock file
    ``key`` through a descriptor other than ``besides``: one still open on that file."""
    for fd, (pid, held) in list(_LOCKED_HERE.items()):
        if fd != besides and pid == os.getpid() and held == key:
            try:
                if _key(fd) == key:
                    return True
            except OSError:  # closed without release: stale
                pass
            _LOCKED_HERE.pop(fd, None)
    return False


def _key(fd: int) -> tuple[int, int]:
    found = os.fstat(fd)
    return found.st_dev, found.st_ino


def linked(directory: Path, names: tuple[str, ...]) -> str | None:
    """"links" when a file of the image has another name (``cp -al``, ``rsync --link-dest``,
    rsnapshot): a copy that shares the files optvol appends to and SQLite writes in place, so
    the image is only read (through a private copy of the index, as "access"), else None."""
    for name in names:
        try:
            if os.stat(directory / name).st_nlink > 1:
                return "links"
        except FileNotFoundError:
            continue
    return None


class Reopen(Exception):
    """An open of an image must start again (``image.VolumeImage``): after a short pause
    while ``wait`` seconds have not passed since it began (then OPV0004), or at once (None)."""

    def __init__(self, *, wait: float | None) -> None:
        super().__init__(f"open again within {wait} s" if wait is not None else "open again")
        self.wait = wait
