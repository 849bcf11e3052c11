"""The data partition: one append-only file of sectors (docs/format.md §3).

Positions are sector numbers. Only the committed prefix is ever read; a tail beyond the
committed end is cut by the next writer (``truncate``).

Laid-out records go to the disk past the page cache (``write_direct``, O_DIRECT) where the
file system allows it: an archive's new records are seldom read back soon, and filling
fresh page-cache pages costs more CPU than the rest of a small-file copy (400 MB of
records for 100,000 files of 1 KiB: about 1 s of system time buffered on the project's
machines, 0.02 s direct; notes/cpyopt-speed.md). The kernel keeps the two paths coherent
as long as they do not write the same pages at the same time: ``Transaction`` lets no
buffered write start while a direct one is under way.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import threading
from collections.abc import Iterator

from optvol import errors

CHUNK = 1 << 20
_DIRECT_REFUSED = (errno.EINVAL, errno.EOPNOTSUPP)  # what a write past the page cache may meet: not an I/O error
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)  # sendfile refused: copy by hand


class DataPartition:
    """Sector I/O on the data partition file of one volume."""

    def __init__(self, path: str, *, sector_size: int, volume: str, read_only: bool = False, index: str | None = None):
        """``index``: the name of the index beside it, whose file ``check_writable_at`` watches too."""
        self.path = path
        self.sector_size = sector_size
        self.volume = volume
        self.fd = os.open(path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
        self._direct_fd: int | None = None  # opened with O_DIRECT at the first write_direct; -1: not possible here
        # A writer's files are found again by their names in the volume directory, under the
        # library directory as opened: a library moved since (mv lib lib2) is the same library,
        # and a file or a volume directory put in the place of its own (a restore) is another.
        volume_dir = os.path.dirname(os.path.abspath(path))
        self._root_fd, self._name = -1, os.path.join(os.path.basename(volume_dir), os.path.basename(path))
        # The index and SQLite's files beside it (its log and shared memory, which exist while
        # it is open): a restore that removed the log (rsync --delete) would let a commit go
        # into a log no name leads to, and the next writer reuse its records' sectors.
        self._index = [os.path.join(os.path.basename(volume_dir), index + side) for side in ("", "-wal", "-shm")
                       ] if index else []
        if not read_only:
            try:
                self._root_fd = os.open(os.path.dirname(volume_dir), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                self._index_inos = [self._ino(name) for name in self._index]
            except OSError:
                self.close()
                raise

    def _ino(self, name: str) -> int | None:
        try:
            return os.stat(name, dir_fd=self._root_fd).st_ino
        except FileNotFoundError:
            return None

    def close(self) -> None:
        if self._direct_fd is not None and self._direct_fd >= 0:
            os.close(self._direct_fd)
        self._direct_fd = None
        for name in ("fd", "_root_fd"):
            if getattr(self, name) >= 0:
                os.close(getattr(self, name))
                setattr(self, name, -1)

    def size_sectors(self) -> int:
        """Whole sectors in the file (a torn partial sector counts as one)."""
        return -(-os.fstat(self.fd).st_size // self.sector_size)

    def check_writable_at(self, committed: int) -> None:
        """Before a transaction appends at sector ``committed``, and again before it commits:
        the data partition and the index are still the files of the volume's directory (OPV0004
        where a restore, ``rsync`` say, put others there under an open volume: its writes would
        go to files no name leads to), neither has another name (OPV0016: a copy made by
        ``cp -al`` since the volume was opened would change with it), and the partition holds
        every committed sector (OPV0201 where it ends early, as a copy taken while the volume
        was written can: an append would leave a hole)."""
        own = os.fstat(self.fd)
        try:
            there = os.stat(self._name, dir_fd=self._root_fd)
            index = os.stat(self._index[0], dir_fd=self._root_fd) if self._index else there
        except FileNotFoundError:
            raise errors.error("OPV0004", volume=self.volume) from None
        if not _same_file(there, own) or [self._ino(name) for name in self._index] != self._index_inos:
            raise errors.error("OPV0004", volume=self.volume)
        if own.st_nlink > 1 or index.st_nlink > 1:
            raise errors.error("OPV0016", volume=self.volume, operation=f"writing volume {self.volume}")
        if own.st_size < committed * self.sector_size:
            raise errors.error("OPV0201", volume=self.volume, reason=f"its data partition ends early, at byte "
                               f"{own.st_size:,} of the {committed * self.sector_size:,} its index says were written;"
                               " optvol recover mends it")

    def truncate(self, sectors: int) -> None:
        os.ftruncate(self.fd, sectors * self.sector_size)

    def write(self, sector: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``sector``."""
        self.write_at(sector * self.sector_size, data)

    def write_stream(self, sector: int, chunks: Iterator[bytes], *, limit: int) -> tuple[int, bytes]:
        """Write chunks from ``sector`` on; return (bytes written, their SHA-256).

        Stops with an error before writing past ``limit`` bytes (the space reserved).
        """
        digest = hashlib.sha256()
        offset = sector * self.sector_size
        total = 0
        for chunk in chunks:
            if total + len(chunk) > limit:
                raise errors.error("OPV0302", path=self.path, reason="the source grew while it was copied")
            digest.update(chunk)
            self.write_at(offset, chunk)
            offset += len(chunk)
            total += len(chunk)
        return total, digest.digest()

    def write_direct(self, sector: int, data: mmap.mmap | memoryview) -> None:
        """Write ``data`` at ``sector`` past the page cache (O_DIRECT) if this file system and
        device allow it, else as ``write`` does.

        ``data`` must start on a page boundary (an ``mmap`` or a view from its start) and be
        whole sectors long. Where O_DIRECT is refused (tmpfs, a sector smaller than the
        device's block, an unaligned buffer: EINVAL; a file system without it: EOPNOTSUPP),
        the partition writes through the page cache from then on. The caller must not write
        the same pages buffered meanwhile, nor change ``data`` before this returns.
        """
        fd = self._open_direct()
        view, offset = memoryview(data), sector * self.sector_size
        try:
            while view and fd >= 0:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            if exc.errno not in _DIRECT_REFUSED:
                raise self._host_error(exc) from None
            self._direct_fd = -1
            os.close(fd)
        if view:
            self.write_at(offset, view)

    def _open_direct(self) -> int:
        if self._direct_fd is None:
            self._direct_fd = -1
            if hasattr(os, "O_DIRECT"):
                try:
                    self._direct_fd = os.open(self._name, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC, dir_fd=self._root_fd)
                except OSError:
                    pass  # tmpfs, for one, refuses O_DIRECT: write through the page cache
                if self._direct_fd >= 0 and not _same_file(os.fstat(self._direct_fd), os.fstat(self.fd)):
                    os.close(self._direct_fd)  # another file put in its place: the commit's check refuses
                    self._direct_fd = -1
        return self._direct_fd

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at byte ``offset``; host-disk failures become clear optvol errors."""
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self.fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise self._host_error(exc) from None

    def copy_range(self, *, source_fd: int, source_offset: int, length: int, sector: int) -> None:
        """Copy bytes from another file into this partition in the kernel (``copy_bytes``)."""
        offset = sector * self.sector_size
        try:
            while length:
                done = copy_bytes(source_fd, self.fd, length, source_offset, offset)
                if done == 0:
                    raise errors.error("OPV0201", volume=self.volume, reason="source data partition ends early")
                source_offset += done
                offset += done
                length -= done
        except OSError as exc:
            raise self._host_error(exc) from None

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise self._host_error(exc) from None

    def datasync(self) -> None:
        """fdatasync: an early start of the disk on what was written (``Transaction``). Its
        error must reach the commit: the kernel reports a writeback error once, and the
        fsync after it then succeeds."""
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            raise self._host_error(exc) from None

    def read(self, sector: int, length: int) -> bytes:
        """Read ``length`` bytes at ``sector``; short reads and sectors the host cannot read
        (a media error: EIO) mean a damaged partition."""
        try:
            data = os.pread(self.fd, length, sector * self.sector_size)
        except OSError as exc:
            raise self.unreadable(exc, sector * self.sector_size, length) from None
        if len(data) != length:
            raise errors.error("OPV0201", volume=self.volume, reason=f"data partition ends inside sector {sector}")
        return data

    def chunks(self, sector: int, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
        """The bytes of a payload in chunks, unverified."""
        offset = sector * self.sector_size
        end = offset + size
        while offset < end:
            try:
                data = os.pread(self.fd, min(chunk, end - offset), offset)
            except OSError as exc:
                raise self.unreadable(exc, offset, min(chunk, end - offset)) from None
            if not data:
                raise errors.error("OPV0201", volume=self.volume, reason="data partition ends inside a payload")
            offset += len(data)
            yield data

    def hash_range(self, offset: int, size: int, *, stop: threading.Event | None = None) -> bytes | None:
        """``hash_range`` of bytes of this partition; those the host cannot read are OPV0201."""
        try:
            return hash_range(self.fd, offset, size, stop=stop)
        except OSError as exc:
            raise self.unreadable(exc, offset, size) from None

    def unreadable(self, exc: OSError, offset: int, length: int) -> errors.DamagedError:
        """The error for bytes of this partition the host could not read (EIO: a media error)."""
        first, last = offset // self.sector_size, max(offset, offset + length - 1) // self.sector_size
        where = f"sector {first}" if first == last else f"sectors {first}-{last}"
        return errors.error("OPV0201", volume=self.volume,
                            reason=f"{where} of the data partition cannot be read ({exc.strerror or exc})")

    def _host_error(self, exc: OSError) -> errors.OptvolError:
        return errors.host_write_error(exc, self.volume)


def copy_bytes(source: int, target: int, length: int, source_offset: int, target_offset: int) -> int:
    """Copy up to ``length`` bytes between two files at the given offsets; the bytes copied
    (0: the source ends). In the kernel (sendfile) where it can; where it refuses, through
    a buffer, as ``shutil`` does. Never copy_file_range: on a file system that shares
    blocks (btrfs, xfs) it makes the copy share the source's blocks, and a backup whose
    blocks are its primary's is lost with them (``target``'s file position moves)."""
    try:
        os.lseek(target, target_offset, os.SEEK_SET)
        return os.sendfile(target, source, source_offset, min(length, 1 << 30))
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
    data = os.pread(source, min(length, CHUNK * 4), source_offset)
    written = 0
    while written < len(data):
        written += os.pwrite(target, memoryview(data)[written:], target_offset + written)
    return len(data)


def hash_range(fd: int, offset: int, size: int, chunk: int = 4 << 20, *,
               stop: threading.Event | None = None) -> bytes | None:
    """SHA-256 of a byte range of a file (None if it ends early); hashlib releases the GIL.
    Once ``stop`` is set (a pool stopped: its caller has gone), None at the next chunk."""
    digest = hashlib.sha256()
    end = offset + size
    while offset < end:
        if stop is not None and stop.is_set():
            return None
        data = os.pread(fd, min(chunk, end - offset), offset)
        if not data:
            return None
        digest.update(data)
        offset += len(data)
    return digest.digest()


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync a directory: the names a rename or a create put in it are on the disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_file(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)
