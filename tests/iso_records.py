"""ISO 9660 structures written by hand for tests of hostile images (a test helper):

    both(value)                         -> a 32-bit value both-endian (ECMA-119 7.3.3)
    record(identifier, extent, size, flags) -> a directory record (ECMA-119 9.1), padded even
"""
from __future__ import annotations

import struct


def both(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def record(identifier: bytes, extent: int, size: int, flags: int) -> bytes:
    body = bytes(1) + both(extent) + both(size) + bytes(7) + bytes((flags, 0, 0)) + b"\x01\x00\x00\x01" + \
        bytes((len(identifier),)) + identifier
    body += bytes(1 - len(body) % 2)
    return bytes((len(body) + 1,)) + body
