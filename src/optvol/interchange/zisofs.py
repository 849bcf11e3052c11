"""zisofs: the compressed files of Rock Ridge images (import side).

``xorriso -set_filter_r --zisofs`` and ``mkisofs -z`` store a file compressed, and say so
with a Rock Ridge ZF entry (RRIP extension of the zisofs tools): "pz" (zisofs version 1),
the file header's size in four-byte words, the log2 of the block size (15, 16 or 17) and
the uncompressed size. Linux, bsdtar and xorriso read such files uncompressed, so import
does too. The stored file is:
- a header: eight magic bytes, the uncompressed size (32 bits, little-endian), the header
  size in four-byte words, the block size's log2, two reserved bytes;
- a table of one more block pointer than there are blocks, 32 bits little-endian each,
  from the start of the file: block i lies between pointers i and i + 1;
- each block a zlib stream of one block of data (the last one shorter); a block whose two
  pointers are equal holds zeros.
zisofs version 2 (``-zisofs version_2=on``: 64-bit pointers, other algorithms) is refused.

The stored bytes are untrusted: anything that does not fit raises ValueError, which the
caller turns into OPV0701 naming the file. zlib checks every block (Adler-32), so no
wrong byte comes out.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAGIC = bytes((0x37, 0xE4, 0x53, 0x96, 0xC9, 0xDB, 0xD6, 0x07))
HEADER = 16  # bytes of the header version 1 writes (4 words)
BLOCK_LOG2 = (15, 16, 17)
POINTERS_AT_ONCE = 8192  # block pointers read at a time: memory bounded by this, not by the file

_LE32 = struct.Struct("<I")


class Unsupported(ValueError):
    """A ZF entry import cannot read: another algorithm, zisofs version 2, an odd block size."""


@dataclass(frozen=True)
class Compression:
    """What a ZF entry says of a file."""

    header_words: int
    block_log2: int
    size: int  # uncompressed


def read_zf(entry: bytes) -> Compression:
    """The ZF entry (signature, length, version, algorithm, header words, block log2, size both-endian)."""
    if len(entry) < 16:
        raise ValueError("a Rock Ridge ZF entry is cut short")
    version, algorithm = entry[3], bytes(entry[4:6])
    if version != 1 or algorithm != b"pz":
        raise Unsupported(f"it is compressed as {algorithm.decode('ascii', 'replace')!r} (ZF version {version}),"
                          " which import-iso cannot read; only zisofs version 1 ('pz')")
    if entry[7] not in BLOCK_LOG2:
        raise Unsupported(f"its zisofs blocks of 2**{entry[7]} bytes are not 32, 64 or 128 KiB")
    if entry[6] < HEADER // 4:
        raise ValueError("a zisofs header is shorter than 16 bytes")
    return Compression(entry[6], entry[7], _LE32.unpack_from(entry, 8)[0])


def chunks(read: Callable[[int, int], bytes], stored: int, compression: Compression) -> Iterator[bytes]:
    """The uncompressed bytes, block by block; ``read(offset, length)`` reads the stored
    file of ``stored`` bytes."""
    block, size = 1 << compression.block_log2, compression.size
    header_size = compression.header_words * 4
    header = _read(read, stored, 0, HEADER)
    if header[:8] != MAGIC:
        raise ValueError("its zisofs header lacks the magic number")
    if _LE32.unpack_from(header, 8)[0] != size or header[12] != compression.header_words or \
            header[13] != compression.block_log2:
        raise ValueError("its zisofs header and its ZF entry disagree")
    blocks = -(-size // block)
    done = 0
    for first in range(0, blocks, POINTERS_AT_ONCE):
        count = min(POINTERS_AT_ONCE, blocks - first)
        table = _read(read, stored, header_size + 4 * first, 4 * (count + 1))
        pointers = struct.unpack(f"<{count + 1}I", table)
        for index in range(count):
            want = min(block, size - done)
            yield _block(read, stored, pointers[index], pointers[index + 1], want, block)
            done += want


def _block(read: Callable[[int, int], bytes], stored: int, start: int, end: int, want: int, block: int) -> bytes:
    if start == end:
        return bytes(want)
    if end < start or end - start > 2 * block:  # zlib grows a block by a few bytes at most
        raise ValueError(f"a zisofs block pointer is wrong ({start} to {end})")
    inflate = zlib.decompressobj()
    try:
        data = inflate.decompress(_read(read, stored, start, end - start), want)
        if not inflate.eof and inflate.decompress(inflate.unconsumed_tail, 1):  # only its checksum may be left
            raise ValueError("a zisofs block holds more than its block of data")
    except zlib.error as exc:
        raise ValueError(f"a zisofs block cannot be decompressed ({exc})") from None
    if len(data) != want or not inflate.eof:
        raise ValueError("a zisofs block does not hold its block of data")
    return data


def _read(read: Callable[[int, int], bytes], stored: int, offset: int, length: int) -> bytes:
    if offset + length > stored:
        raise ValueError("its zisofs data ends early")
    return read(offset, length)
