"""Host files on the disk before a command reports them (layer 5, beside ``host_names.py``):
a power loss right after "copied" or "exported" loses nothing (DESIGN §3; hunt29e).

One file (``cp`` of a file, ``mv``, an ``export-iso`` image) is fsynced, and then the
directory that names it. A tree copied to the host is reported in groups instead: an
fsync per file costs about as much as the copy of a small file ten times over (a journal
commit and a disk flush each), so the files of a group are written, then the file systems
that hold them synced at once (``syncfs``), then given back, at most GROUP_SECONDS apart
or every GROUP_FILES files.
"""

from __future__ import annotations

import os
import time

from optvol.image.datapart import fsync_dir

GROUP_FILES = 1000
GROUP_SECONDS = 1.0
FEW_FILES = 8  # a group of so few is fsynced file by file: no wait for the rest of the file system's writes


def sync_names(directory: str | os.PathLike) -> None:
    """The names made in a host ``directory`` on the disk before a command reports them: its
    fsync, or, in a directory this user may write but not read (0o333, a drop box, whose
    fsync it cannot open, hunt26c F2), every write of the system's."""
    try:
        fsync_dir(directory)
    except PermissionError:
        os.sync()


def sync_file_system(directory: str | os.PathLike) -> None:
    """Every write of the file system that holds host ``directory`` on the disk (``syncfs``,
    which reports a write the disk refused; where the system has none, or the directory
    cannot be opened, every write of the system's: ``sync``)."""
    import ctypes  # here: a command that syncs no tree does not load it

    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:
        os.sync()
        return
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None:
            os.sync()
        elif syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(directory))
    finally:
        os.close(fd)


def _syncfs_reaches_disk(device: int) -> bool:
    """Whether ``syncfs`` puts the file system of ``device`` on its disk: not where it is FUSE's,
    whose daemon it never asks to write anything (/proc/self/mountinfo; True where not told)."""
    wanted = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open("/proc/self/mountinfo") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[2] == wanted and "-" in fields:
                    return not fields[fields.index("-") + 1].startswith("fuse")
    except OSError:
        pass
    return True


class SyncGroups:
    """The host files and directories a tree copy makes, given back by ``written`` and
    ``flush`` only once on the disk (see the module's docstring). OSError when the host
    cannot sync them (a disk that refused a write)."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.directories: set[str] = set()  # the directories whose names changed
        self.since = time.monotonic()

    def made(self, directory: str) -> None:
        """A directory the copy made (its name in its parent, and what goes in it)."""
        path = os.path.abspath(directory)
        self.directories.update((path, os.path.dirname(path)))

    def written(self, path: str) -> list[str]:
        """``path`` written and put in place: the group's files once on the disk, if its time has come."""
        self.files.append(path)
        self.directories.add(os.path.dirname(os.path.abspath(path)))
        if len(self.files) >= GROUP_FILES or time.monotonic() - self.since >= GROUP_SECONDS:
            return self.flush()
        return []

    def flush(self) -> list[str]:
        """Sync what the group made; its files, to be given back."""
        if not self.files and not self.directories:
            return []
        few = len(self.files) <= FEW_FILES
        if not few or not self._fsync_each():
            devices: dict[int, str] = {}
            for directory in self.directories:
                devices.setdefault(os.stat(directory).st_dev, directory)
            # syncfs of a FUSE file system (exfat-fuse: a USB stick) asks its daemon for nothing; an
            # fsync reaches it (rev29g F3)
            if few or all(_syncfs_reaches_disk(device) for device in devices) or not self._fsync_each():
                for directory in devices.values():
                    sync_file_system(directory)
        done, self.files, self.directories, self.since = self.files, [], set(), time.monotonic()
        return done

    def _fsync_each(self) -> bool:
        """fsync each file, then each directory; False where a file cannot be opened for it
        (mode 0o200, kept from the file it replaced): then the file system is synced instead."""
        for path in self.files:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except PermissionError:
                return False
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for directory in self.directories:
            sync_names(directory)
        return True
