"""The data partition: one append-only file of sectors (docs/format.md §3).

Positions are sector numbers. Only the committed prefix is ever read; a tail beyond the
committed end is cut by the next writer (``truncate``).
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from optvol import errors

CHUNK = 1 << 20


class DataPartition:
    """Sector I/O on the data partition file of one volume."""

    def __init__(self, path: str, *, sector_size: int, volume: str):
        self.path = path
        self.sector_size = sector_size
        self.volume = volume
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def size_sectors(self) -> int:
        """Whole sectors in the file (a torn partial sector counts as one)."""
        return -(-os.fstat(self.fd).st_size // self.sector_size)

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
        """Copy bytes from another file into this partition without passing them through Python."""
        offset = sector * self.sector_size
        try:
            while length:
                done = os.copy_file_range(source_fd, self.fd, min(length, 1 << 30), source_offset, offset)
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

    def read(self, sector: int, length: int) -> bytes:
        """Read ``length`` bytes at ``sector``; short reads mean a damaged partition."""
        data = os.pread(self.fd, length, sector * self.sector_size)
        if len(data) != length:
            raise errors.error("OPV0201", volume=self.volume, reason=f"data partition ends inside sector {sector}")
        return data

    def chunks(self, sector: int, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
        """The bytes of a payload in chunks, unverified."""
        offset = sector * self.sector_size
        end = offset + size
        while offset < end:
            data = os.pread(self.fd, min(chunk, end - offset), offset)
            if not data:
                raise errors.error("OPV0201", volume=self.volume, reason="data partition ends inside a payload")
            offset += len(data)
            yield data

    def copy_out(self, sector: int, size: int, *, fd: int, offset: int) -> bytes | None:
        """Copy a payload to byte ``offset`` of another file with copy_file_range while a
        second thread hashes it; return its SHA-256 (None if the partition ends early).

        The bytes are copied before they are known to be good: the caller compares the
        hash and throws its output away on a mismatch. Errors writing ``fd`` propagate.
        """
        source = sector * self.sector_size
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(hash_range, self.fd, source, size)
            remaining = size
            while remaining:
                done = os.copy_file_range(self.fd, fd, min(remaining, 1 << 30), source, offset)
                if done == 0:
                    break
                source, offset, remaining = source + done, offset + done, remaining - done
            return digest.result()

    def _host_error(self, exc: OSError) -> errors.OptvolError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return errors.error("OPV0203", volume=self.volume, reason="the host file system is full")
        return errors.error("OPV0204", volume=self.volume, reason=exc.strerror or str(exc))


def hash_range(fd: int, offset: int, size: int, chunk: int = 4 << 20) -> bytes | None:
    """SHA-256 of a byte range of a file (None if it ends early); hashlib releases the GIL."""
    digest = hashlib.sha256()
    end = offset + size
    while offset < end:
        data = os.pread(fd, min(chunk, end - offset), offset)
        if not data:
            return None
        digest.update(data)
        offset += len(data)
    return digest.digest()
