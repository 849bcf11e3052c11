"""Whether SQLite's log of an index (its ``-wal``) was cut short by damage (docs/format.md §5).

SQLite reads a log up to its first frame that fails its checksum and drops that frame and
every later one, silently: commits a writer made (and reported done) may go with them. Such
an index ends before its data partition's last committed records, which an open would
otherwise take for a dead writer's torn tail and cut. The log is read here as SQLite's
file format has it (https://www.sqlite.org/fileformat2.html#walformat): a 32-byte header
(magic, format, page size, checkpoint sequence, two salts, a checksum of its first 24
bytes), then frames of a 24-byte header (page number, database size after a commit, the
salts, a checksum) and a page; each checksum runs on from the one before, over the frame
header's first 8 bytes and its page. Frames with other salts are those of a log SQLite
started over after a checkpoint: they are stale, and mean nothing.
"""

from __future__ import annotations

import fcntl
import os
import struct
from array import array
from pathlib import Path
from typing import BinaryIO, NamedTuple

from optvol.image import descriptors

MAGIC_LITTLE, MAGIC_BIG = 0x377F0682, 0x377F0683  # the byte order of the checksum's words
FORMAT = 3007000
HEADER, FRAME_HEADER = 32, 24
MASK = 0xFFFFFFFF
SHARED_HEAD = 136  # of a -shm: its header's two copies (48 bytes each), then its checkpoint information
SHARED_LOCKS = 120, 8  # of a -shm (unix VFS): its lock bytes, write, checkpoint, recover, five read marks
_FLOCK = "hhqqi4x"  # Linux's struct flock: type, whence, start, length, pid
_NATIVE_BIG = array("I", [1]).tobytes() == b"\x00\x00\x00\x01"


def _commit_lost(whole: bytes, big: bool, before: tuple[int, int], stored: tuple[int, int]) -> bool:
    """Whether a frame that fails its checksum and reads as no commit was one whose database size
    (a power of two: 2**k pages) lost its one bit: with that bit, its checksum holds."""
    if struct.unpack_from(">I", whole, 4)[0]:
        return False
    return any(_chained(whole[:4] + struct.pack(">I", 1 << bit), whole, big, before) == stored for bit in range(32))


def _one_bit_off(whole: bytes, big: bool, before: tuple[int, int], stored: tuple[int, int]) -> bool:
    """Whether the frame (``whole``: its header, its page), which fails its checksum, would chain
    on from ``before`` to its ``stored`` checksum with one bit changed, of the words its checksum
    covers or of ``stored`` itself: a bit flipped in a frame SQLite wrote whole, not a stale page
    behind a header a killed writer wrote (that holds by chance about once in 2**49).

    The checksum is sums modulo 2**32: a word changed by ``d`` changes the result by ``d``
    times a factor of its place, (1, 1) for the first word of the last pair and (0, 1) for its
    second, each multiplied by M = [[1, 1], [1, 2]] once per pair after its own."""
    s0, s1 = _chained(whole[:8], whole, big, before)
    if bin((s0 ^ stored[0]) | (s1 ^ stored[1])).count("1") == 1:
        return True  # a bit of the stored checksum
    want = ((stored[0] - s0) & MASK, (stored[1] - s1) & MASK)
    words = _words(whole[:8] + whole[FRAME_HEADER:], big)
    first, second = (1, 1), (0, 1)
    for at in range(len(words) - 2, -1, -2):
        for (f0, f1), word in ((first, words[at]), (second, words[at + 1])):
            for bit in range(32):
                d = -(1 << bit) if word >> bit & 1 else 1 << bit
                if (d * f0 & MASK, d * f1 & MASK) == want:
                    return True
        first = ((first[0] + first[1]) & MASK, (first[0] + 2 * first[1]) & MASK)
        second = ((second[0] + second[1]) & MASK, (second[0] + 2 * second[1]) & MASK)
    return False


def _chained(head: bytes, whole: bytes, big: bool, before: tuple[int, int]) -> tuple[int, int]:
    """The checksum of a frame (its header's first 8 bytes ``head``, its page in ``whole``),
    going on from the frame before's ``before``."""
    return _checksum(whole[FRAME_HEADER:], big, *_checksum(head, big, *before))


def _checksum(data: bytes, big: bool, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), going on from ``s0``, ``s1``."""
    words = _words(data, big)
    for first, second in zip(words[0::2], words[1::2], strict=True):
        s0 = (s0 + first + s1) & MASK
        s1 = (s1 + second + s0) & MASK
    return s0, s1


def _words(data: bytes, big: bool) -> array:
    """``data`` as the 32-bit words SQLite's checksum adds, in the log's byte order."""
    words = array("I")
    if words.itemsize != 4:  # (no platform optvol runs on)
        words = array("L")
    words.frombytes(data)
    if big != _NATIVE_BIG:
        words.byteswap()
    return words


def _stale_next(log: BinaryIO, salt1: int, salt2: int) -> bool:
    """Whether the frame after the one just read is there and has other salts: one left from
    before SQLite started the log over (the position is read back)."""
    at = log.tell()
    head = log.read(FRAME_HEADER)
    log.seek(at)
    return len(head) == FRAME_HEADER and any(head) and struct.unpack_from(">2I", head, 8) != (salt1, salt2)


def hold(path: Path) -> int | None:
    """A descriptor of the log at ``path`` as an open finds it, before its SQLite connects, or
    None (no log there): while it is held, no new log can take its file's inode, so
    ``replaced`` tells this log from one SQLite made anew after another process's last
    connection closed and removed it (SQLite never locks the log: closing it drops nothing)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def replaced(held: int, path: Path) -> bool:
    """Whether the log at ``path`` is no longer the file ``held`` (of ``hold``), which is closed."""
    try:
        was = os.fstat(held)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return True
        return (now.st_dev, now.st_ino) != (was.st_dev, was.st_ino)
    finally:
        os.close(held)


class Damage(NamedTuple):
    """Where a log is damaged: ``reason``; ``frame``, the number of its first frame that fails
    (0: its header); its ``salts`` (its header's bytes 16-24) and the size of its frames."""

    reason: str
    frame: int
    salts: bytes
    frame_size: int


class Before(NamedTuple):
    """A log as an open found it before SQLite connected (``look``): its ``salts``, its
    ``size``, and ``indexed``: every commit of it reported done lies in its first
    ``indexed`` frames."""

    salts: bytes
    size: int
    indexed: int


def look(path: Path) -> Before | None:
    """The log at ``path`` and what its shared-memory index (``-shm``) says of it, read before
    this process's SQLite connects: the first connection after the last one closed or died
    rebuilds that index from the log, and the rebuilt one no longer tells a frame a dead
    writer was writing from a commit reported done. A COMMIT returns only once its frames
    are indexed (the header's ``mxFrame``), so a writer's index holds every commit reported
    done. None where the index cannot say: none, or one not whole (two header copies that
    differ, its checksum failing, not initialized); one SQLite may have rebuilt (its
    ``nBackfillAttempted``, at byte 128, is ``mxFrame``, as a recovery leaves it, and as a
    checkpoint of every frame does; no commit since, unless it indexes no frame and keeps a
    frame checksum: SQLite's restart of the log keeps the last one, a rebuild that found no
    commit has none); one of another log that indexed frames; one another process is at work
    on (``_still_head``: rebuilding it, or writing a commit past its end)."""
    shared = path.with_name(path.name.removesuffix("-wal") + "-shm")
    try:
        with open(path, "rb") as log:  # (SQLite locks the -shm and the index, never the log)
            header, size = log.read(HEADER), os.fstat(log.fileno()).st_size
        if size <= HEADER:  # no frame, none to excuse: the -shm is not read (nor this process's descriptors scanned)
            return None
        index = _still_head(shared)
    except OSError:
        return None
    if index is None or len(index) < SHARED_HEAD or index[:48] != index[48:96] or index[12] != 1:
        return None
    version, indexed = struct.unpack_from("=I", index, 0)[0], struct.unpack_from("=I", index, 16)[0]
    if version != FORMAT or struct.pack("=2I", *_checksum(index[:40], _NATIVE_BIG, 0, 0)) != index[40:48]:
        return None
    attempted = struct.unpack_from("=I", index, 128)[0]
    if index[32:40] == header[16:24] and indexed > attempted:
        return Before(header[16:24], size, indexed)  # a writer's: it indexed a commit since the last rebuild
    if index[32:40] != header[16:24] and indexed == 0:
        return Before(header[16:24], size, 0)  # from before this log: a first writer's salts are its own until
        # its first commit is indexed (a rebuilt index takes its log's salts)
    if index[32:40] == header[16:24] and indexed == 0 == attempted and any(index[24:32]):
        return Before(header[16:24], size, 0)  # a log its writer's own connection started over (walRestartHdr
        # keeps the last frame's checksum); a rebuild that found no commit has zeros there (rev32a F3)
    return None


def _still_head(shared: Path) -> bytes | None:
    """The first bytes of the -shm at ``shared``, read while no other process held any of its
    locks exclusively (before and after), or None. SQLite rebuilds the index holding its write
    and recover locks so, and writes the header before it sets ``nBackfillAttempted``: read in
    between, the rebuilt header passed for a writer's (rev32a F2). A writer holds its write
    lock so while its commit, past ``mxFrame``, is under way. An idle connection of another
    process (a reader that outlived a dead writer) holds none: its header is as the writer left it."""
    fd = descriptors.open_kept(shared)  # (a close would drop this process's other locks; F_GETLK takes none)
    try:
        if _at_work(fd):
            return None
        head = os.pread(fd, SHARED_HEAD, 0)
        return None if _at_work(fd) else head
    finally:
        descriptors.close_kept(fd)


def _at_work(fd: int) -> bool:
    """Whether another process holds one of the lock bytes of the -shm open as ``fd`` exclusively."""
    found = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, *SHARED_LOCKS, 0))
    return struct.unpack(_FLOCK, found)[0] != fcntl.F_UNLCK


def damage(path: Path, *, before: Before | None = None) -> str | None:
    """What in the log at ``path`` SQLite dropped as damaged, or None. Damaged: a header that
    is not a log's (with frames after it); a frame of the log's salts that fails its checksum
    or is cut short, where it or a later frame of those salts ends a commit (its header gives
    the database's size); a frame header of zeros. Frames of the log's salts past its last
    good one that end no commit are the pages a transaction rolled back had spilled, which
    SQLite leaves (or a dead writer's, killed before its commit): they mean nothing. Nor do
    frames of other salts, left from before SQLite started the log over. Nor, given what an
    open found before it connected (``before``, of ``look``), does a frame that was there
    then, in the same log, past every commit reported done: a writer killed as it wrote it
    (Linux may end a write short at a fatal signal, between two memory pages)."""
    try:
        with open(path, "rb") as log:  # (a frame at a time: a log a large transaction grew may be large)
            found = _damage_in(log)
    except FileNotFoundError:
        return None
    if found is None:
        return None
    if before is not None and found.frame > before.indexed and found.salts == before.salts and (
            HEADER + (found.frame - 1) * found.frame_size < before.size):
        return None
    return found.reason


def _damage_in(log: BinaryIO) -> Damage | None:
    header = log.read(HEADER)
    if len(header) < HEADER or not log.read(1):
        return None  # no frame: no commit in it
    log.seek(HEADER)
    magic, version, page_size, _sequence, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
    page_size = 65536 if page_size == 1 else page_size
    size, salts = FRAME_HEADER + page_size, header[16:24]
    if magic not in (MAGIC_LITTLE, MAGIC_BIG) or version != FORMAT or page_size < 512 or page_size & (page_size - 1):
        return Damage("its header is not a log's", 0, salts, size)
    big = magic == MAGIC_BIG
    s0, s1 = _checksum(header[:24], big, 0, 0)
    if (s0, s1) != (c0, c1):
        return Damage("its header fails its checksum", 0, salts, size)
    failed, first, number = None, 0, 0  # the first frame that fails: why, and its number
    while whole := log.read(size):
        number += 1
        head = whole[:FRAME_HEADER]
        if not any(head):
            return Damage(f"frame {number} has a header of zeros", first or number, salts, size)
        if len(head) < 16:  # (its salts cut off: it may be a commit's)
            return Damage(failed or f"frame {number} is cut short", first or number, salts, size)
        commits = len(head) == FRAME_HEADER and struct.unpack_from(">I", head, 4)[0] != 0
        if struct.unpack_from(">2I", head, 8) != (salt1, salt2):
            if (failed is not None or len(whole) < size
                    or _chained(head[:8], whole, big, (s0, s1)) != struct.unpack_from(">2I", head, 16)):
                return None  # a stale frame: the log ends before it
            # its checksum (which leaves the salts out) runs on from the frame before: a frame of this
            # log whose salts were damaged, where SQLite's log ends (a stale frame's would not chain)
            failed, first = f"frame {number} has damaged salts", number
            if commits:
                return Damage(failed, first, salts, size)
            continue
        if failed is None and len(whole) == FRAME_HEADER:
            return None  # the log's last frame, its header written and its page not: SQLite writes them
            # apart, so a writer killed between the two leaves this; that commit never completed
        if failed is None and len(whole) < size:
            failed, first = f"frame {number} is cut short", number
        elif failed is None:
            before, stored = (s0, s1), struct.unpack_from(">2I", head, 16)
            s0, s1 = _chained(head[:8], whole, big, before)
            if (s0, s1) != stored:
                if commits and _stale_next(log, salt1, salt2) and not _one_bit_off(whole, big, before, stored):
                    return None  # its header written over a stale frame, its page not (a writer killed
                    # between SQLite's two writes, in a log started over): that commit never completed.
                    # A stale page it does not chain with; one that holds with one bit changed is damage
                failed, first = f"frame {number} fails its checksum", number
                commits = commits or _commit_lost(whole, big, before, stored)
        if failed is not None and (commits or len(head) < FRAME_HEADER):
            return Damage(failed, first, salts, size)
    return None


def drop_unindexed(path: Path) -> bool:
    """Cut the log at ``path`` after the last frame its shared-memory index (``-shm``) holds,
    and sync it; whether it cut. For a COMMIT that failed after SQLite wrote and synced its
    frames, commit frame and all, but before it could index them (SQLITE_IOERR_SHMSIZE: the
    ``-shm`` could not grow on a full disk): reported as refused, its records cut from the
    data partition, the commit came back in force once the last connection closed and the
    next one rebuilt the index from the log, over a data partition without them (rev28h F2).
    The caller holds SQLite's write lock, so no frame past the index is another writer's.
    Nothing is cut unless the index's two header copies agree, are initialized, and name
    this log (its salts)."""
    shared = path.with_name(path.name.removesuffix("-wal") + "-shm")
    try:
        index = descriptors.read_head(shared, 96)  # (a close would drop SQLite's locks: hunt29f F1)
        with open(path, "r+b") as log:
            header = log.read(HEADER)
            if len(index) < 96 or len(header) < HEADER or index[:48] != index[48:96] or index[12] != 1:
                return False
            indexed = struct.unpack_from("=I", index, 16)[0]
            if struct.unpack_from("=I", index, 0)[0] != FORMAT or index[32:40] != header[16:24] and indexed:
                return False  # (an index of no frame names no log: a first writer's salts are its own, hunt29a F1)
            page_size = struct.unpack_from(">I", header, 8)[0]
            end = HEADER + indexed * (FRAME_HEADER + (65536 if page_size == 1 else page_size)) if indexed else 0
            if os.fstat(log.fileno()).st_size <= end:
                return False
            os.ftruncate(log.fileno(), end)
            os.fsync(log.fileno())
            return True
    except OSError:
        return False
