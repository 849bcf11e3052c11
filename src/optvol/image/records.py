"""Records of the data partition: the header sector and its body (docs/format.md §3).

Every record starts with a header of one sector (two or more only when a long path does
not fit in a 1024-byte sector), followed by its payload rounded up to whole sectors.
``write_header`` and ``read_header`` are a symmetric pair; ``read_header`` parses untrusted
bytes and raises only ``DamagedError``.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import mmap
import struct
import zlib
from dataclasses import dataclass
from json.encoder import encode_basestring

from optvol import errors

MAGIC = b"OPTVOLR1"
FORMAT_VERSION = 1
# magic, format version, kind, reserved, header sectors, sequence, payload size,
# payload SHA-256, body length, header CRC-32.
_FIXED_FORMAT = "8sHBBI QQ32s II"
_FIXED = struct.Struct("<" + _FIXED_FORMAT)
FIXED_SIZE = _FIXED.size  # 72 bytes
_CRC_OFFSET = FIXED_SIZE - 4
_CRC = struct.Struct("<I")
EMPTY_SHA256 = hashlib.sha256(b"").digest()


class Kind(enum.IntEnum):
    """What a record says; docs/format.md §3.2 gives each body's fields."""

    LABEL = 1  # the volume label, written at INZOPT and at every label change
    DIRECTORY = 2  # a directory was created
    FILE = 3  # a file version: header plus payload
    DELETE = 4  # a file was deleted
    REMOVE_DIRECTORY = 5  # an empty directory was removed
    RENAME = 6  # a file or directory was renamed or moved
    ATTRIBUTES = 7  # read-only / hidden flags of a file changed
    CONTROL = 8  # backup control record of a directory or the volume (3 sectors)
    REQUEST = 9  # a CPYOPT request logged on a backup volume


@dataclass(frozen=True)
class Header:
    """A parsed record header."""

    kind: Kind
    header_sectors: int
    sequence: int
    payload_size: int
    payload_sha256: bytes
    body: dict

    def payload_sectors(self, sector_size: int) -> int:
        return sectors_for(self.payload_size, sector_size)

    def total_sectors(self, sector_size: int) -> int:
        return self.header_sectors + self.payload_sectors(sector_size)


def sectors_for(size: int, sector_size: int) -> int:
    """Whole sectors that hold ``size`` bytes."""
    return -(-size // sector_size)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_body(body: dict) -> bytes:
    """The UTF-8 JSON text of a header body."""
    return _ENCODER.encode(body).encode()


def encode_file_body(*, volume: str, path: str, version: int, created: int, modified: int, attr_changed: int,
                     flags: int, time: int) -> bytes:
    """The body of a FILE record (§3.3): the bytes ``encode_body`` gives for the same object.

    Written out by hand (strings as ``_ENCODER`` writes them, ``encode_basestring``) because
    it is the body of every file version and the generic encoder takes four times as long.
    """
    return (f'{{"volume":{encode_basestring(volume)},"path":{encode_basestring(path)},"version":{version},'
            f'"created":{created},"modified":{modified},"attr_changed":{attr_changed},"flags":{flags},'
            f'"time":{time}}}').encode()


def header_sectors_for(encoded_body: bytes, sector_size: int) -> int:
    """Sectors a header with this encoded body takes."""
    return sectors_for(FIXED_SIZE + len(encoded_body), sector_size)


def write_header(
    *, kind: Kind, sequence: int, body: dict | bytes, payload_size: int, payload_sha256: bytes, sector_size: int
) -> bytes:
    """Encode a header, padded to whole sectors (``body`` as a dict or already encoded).

    For a header alone (its payload written apart); ``lay_out`` lays out whole records.
    """
    encoded = body if isinstance(body, bytes) else encode_body(body)
    header_sectors = header_sectors_for(encoded, sector_size)
    buf = bytearray(header_sectors * sector_size)
    _FIXED.pack_into(buf, 0, MAGIC, FORMAT_VERSION, kind, 0, header_sectors, sequence, payload_size, payload_sha256,
                     len(encoded), 0)
    buf[FIXED_SIZE : FIXED_SIZE + len(encoded)] = encoded
    _CRC.pack_into(buf, _CRC_OFFSET, zlib.crc32(buf))
    return bytes(buf)


def lay_out(buf: bytearray | mmap.mmap, offset: int, kind: Kind, sequence: int, items: list[tuple[bytes, bytes, bytes]],
            start: int, sector_size: int) -> list[tuple[int, int]]:
    """Lay out whole records of ``items[start:]`` ((encoded body, payload, payload SHA-256)
    each) from ``offset`` of ``buf`` on, numbered from ``sequence``, as many as fit in
    ``buf``: the (header sectors, payload sectors) of each one laid out, in order.

    Every byte of each record is written, its padding zeroed, so ``buf`` may hold older
    records. One ``pack_into`` lays out them all (the same bytes as ``write_header`` and
    the payload, record by record, but it runs once per record CPYOPT writes), then
    each header gets its CRC.
    """
    end, formats, values, shapes, heads = len(buf), ["<"], [], [], []
    for index in range(start, len(items)):
        body, payload, sha = items[index]
        size, body_length = len(payload), len(body)
        layout, header_length, length, shape = _record_layout(body_length, size, sector_size)
        if offset + length > end:
            break
        formats.append(layout)
        values += (MAGIC, FORMAT_VERSION, kind, 0, shape[0], sequence, size, sha, body_length, 0, body, payload)
        shapes.append(shape)
        heads.append((offset, header_length))
        offset += length
        sequence += 1
    if heads:
        struct.pack_into("".join(formats), buf, heads[0][0], *values)
        with memoryview(buf) as view:  # released at once: a bytearray with a view cannot grow
            for at, length in heads:
                _CRC.pack_into(buf, at + _CRC_OFFSET, zlib.crc32(view[at : at + length]))
    return shapes


@functools.lru_cache(maxsize=4096)
def _record_layout(body_length: int, size: int, sector_size: int) -> tuple[str, int, int, tuple[int, int]]:
    """How ``lay_out`` lays out one record: its struct format, the bytes of its header and of
    the whole record, and its (header sectors, payload sectors)."""
    header_sectors, payload_sectors = sectors_for(FIXED_SIZE + body_length, sector_size), sectors_for(size, sector_size)
    header_length = header_sectors * sector_size
    layout = (f"{_FIXED_FORMAT}{body_length}s{header_length - FIXED_SIZE - body_length}x"
              f"{size}s{payload_sectors * sector_size - size}x")
    return layout, header_length, (header_sectors + payload_sectors) * sector_size, (header_sectors, payload_sectors)


def header_sectors_of(first_sector: bytes) -> int:
    """How many sectors the header that starts with ``first_sector`` (one whole sector) takes.
    It must be what its body's length takes: a changed byte of the count alone made readers
    allocate count × sector size bytes before anything else checked it (hunt25n F3: a
    MemoryError)."""
    fields = _check_fixed(first_sector)
    if fields[4] != sectors_for(FIXED_SIZE + fields[8], max(len(first_sector), 1)):
        raise errors.error("OPV0201", volume="?", reason="record header length does not match its body's")
    return fields[4]


def _check_fixed(buf: bytes) -> tuple:
    if len(buf) < FIXED_SIZE:
        raise errors.error("OPV0201", volume="?", reason="record header cut short")
    fields = _FIXED.unpack_from(buf, 0)
    if fields[0] != MAGIC:
        raise errors.error("OPV0201", volume="?", reason="no record header where one was expected")
    if fields[1] > FORMAT_VERSION:
        raise errors.error("OPV0201", volume="?", reason=f"record format version {fields[1]} is newer than this optvol")
    if fields[4] < 1:
        raise errors.error("OPV0201", volume="?", reason="record header length is zero")
    return fields


def _checked(buf: bytes) -> tuple:
    """The fixed fields of a header (all of its sectors) whose length and CRC-32 hold."""
    fields = _check_fixed(buf)
    header_sectors, body_len, crc = fields[4], fields[8], fields[9]
    if len(buf) % header_sectors or FIXED_SIZE + body_len > len(buf):
        raise errors.error("OPV0201", volume="?", reason="record header length does not match")
    view = memoryview(buf)  # (the CRC is of the header with its own field as zeros; no copy of it)
    if zlib.crc32(view[_CRC_OFFSET + 4:], zlib.crc32(b"\0\0\0\0", zlib.crc32(view[:_CRC_OFFSET]))) != crc:
        raise errors.error("OPV0201", volume="?", reason="record header checksum mismatch")
    return fields


def header_payload(buf: bytes) -> tuple[int, int, bytes]:
    """(kind, payload size, payload SHA-256) of a header, verified as ``read_header`` verifies
    it (magic, length, CRC) and its body checked for the text of a JSON object (UTF-8, in
    braces; rev24j F1) but not decoded: what a reader of a file's bytes needs, for every small
    file CPYOPT copies (decoding it cost a third of such a copy's time)."""
    fields = _checked(buf)
    body = bytes(buf[FIXED_SIZE : FIXED_SIZE + fields[8]])
    try:
        text = body.decode().strip()
    except UnicodeDecodeError:
        text = ""
    if not (text.startswith("{") and text.endswith("}")):
        raise errors.error("OPV0201", volume="?", reason="record header body unreadable (not a JSON object)")
    return fields[2], fields[6], fields[7]


def read_header(buf: bytes) -> Header:
    """Decode and verify a header (all of its sectors)."""
    _, _, kind, _, header_sectors, sequence, payload_size, payload_sha, body_len, crc = _checked(buf)
    try:
        body = json.loads(bytes(buf[FIXED_SIZE : FIXED_SIZE + body_len]).decode())
        kind = Kind(kind)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise errors.error("OPV0201", volume="?", reason=f"record header body unreadable ({exc})") from None
    if not isinstance(body, dict):
        raise errors.error("OPV0201", volume="?", reason="record header body is not an object")
    return Header(kind, header_sectors, sequence, payload_size, payload_sha, body)
