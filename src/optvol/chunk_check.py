"""Hand out only bytes whose hash was checked, when a version is read twice (layer 3, beside ``volume.py``).

A reader that must check the whole version's SHA-256 before it hands out a byte (``cat``,
``Volume.open``) reads the payload twice: once to verify it, once to give it out. Bytes
may differ between the two reads (a failing disk, a damaged page cache): the first pass
keeps a 32-byte mark per piece and the second checks each piece against its mark before it
gives out a byte of it (CPF1F28 otherwise).

Two kinds of mark: ``prefix`` marks are the SHA-256 of the payload up to the end of each
CHUNK (1 MiB; snapshots of the verifying hash: no extra hashing in the first pass), for
readers that go from start to end (cat); ``chunk`` marks are the SHA-256 of each
HANDLE_CHUNK (64 KiB) alone, for readers that seek (a handle, which keeps the last piece
it checked). SHA-256, not blake2b or CRC-32: with the CPU's SHA extensions it hashed 1.67 GB/s
here against blake2b's 0.86 (CRC-32 4.1 GB/s, but it misses one change in 2**32).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from optvol import errors

CHUNK = 1 << 20  # the pieces a version is read in, and the span of a ``prefix`` mark
# The span of a ``chunk`` mark (a handle's): a random read re-reads and re-hashes at most this
# much (a 4 KiB read cost 1.2 ms with a 1 MiB span, rev25h F2); its marks take 512 KiB per GiB.
HANDLE_CHUNK = 64 << 10
MARK = 32  # bytes of one mark (a SHA-256)
CHANGED = "the data changed after its SHA-256 was checked"


def marks(volume, row, path: str, *, prefix: bool) -> bytes:
    """Verify version ``row`` whole (CPF1F28 when damaged) and return its marks, MARK bytes
    each: ``prefix``, one per CHUNK; else one per HANDLE_CHUNK."""
    volume._landed(row.sector)
    volume.check_record(row, path)
    whole, found = hashlib.sha256(), []
    for index in range((row.size + CHUNK - 1) // CHUNK):
        data = read_chunk(volume, row, path, index, CHUNK)
        whole.update(data)
        if prefix:
            found.append(whole.copy().digest())
        else:
            view = memoryview(data)
            found += [hashlib.sha256(view[at: at + HANDLE_CHUNK]).digest() for at in range(0, len(data), HANDLE_CHUNK)]
    if whole.digest() != row.sha256:
        raise volume._damaged(path, "SHA-256 of the data does not match")
    return b"".join(found)


def rechecked(volume, row, path: str, prefix_marks: bytes) -> Iterator[bytes]:
    """The payload again, from start to end, each chunk given only once it matches its ``prefix`` mark."""
    whole = hashlib.sha256()
    for index in range(len(prefix_marks) // MARK):
        data = read_chunk(volume, row, path, index, CHUNK)
        whole.update(data)
        if whole.copy().digest() != prefix_marks[index * MARK: (index + 1) * MARK]:
            raise volume._damaged(path, CHANGED)
        yield data


def checked_chunk(volume, row, path: str, chunk_marks: bytes, index: int) -> bytes:
    """HANDLE_CHUNK piece ``index`` of the payload, once it matches its ``chunk`` mark (CPF1F28 otherwise)."""
    data = read_chunk(volume, row, path, index, HANDLE_CHUNK)
    if hashlib.sha256(data).digest() != chunk_marks[index * MARK: (index + 1) * MARK]:
        raise volume._damaged(path, CHANGED)
    return data


def read_chunk(volume, row, path: str, index: int, span: int) -> bytes:
    """Piece ``index`` of ``span`` bytes of the payload of ``row``, unchecked; CPF1F28 if it cannot be read whole."""
    data_part = volume.image.data
    offset = (row.sector + row.header_sectors) * data_part.sector_size + index * span
    length = min(span, row.size - index * span)
    try:
        data = os.pread(data_part.fd, length, offset)
    except OSError as exc:  # sectors the host cannot read: a media error
        raise volume._damaged(path, errors.cause(data_part.unreadable(exc, offset, length))) from None
    if len(data) != length:
        sector = (offset + len(data)) // data_part.sector_size
        raise volume._damaged(path, f"data partition ends inside sector {sector}")
    return data
