"""Record headers of the data partition: write_header / read_header (docs/format.md §3).

``read_header`` parses untrusted bytes, so anything it cannot accept must raise
``DamagedError`` and nothing else (DESIGN §7).
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optvol import errors
from optvol.image import records
from optvol.image.records import FIXED_SIZE, Kind, read_header, write_header

SECTOR_SIZES = st.sampled_from([1024, 2048, 4096, 8192])
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40)
BODIES = st.dictionaries(
    st.text(max_size=20),
    st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10),
    max_size=8,
)


def _header(body, *, sector_size=2048, kind=Kind.FILE, sequence=7, payload=b"abc"):
    return write_header(
        kind=kind, sequence=sequence, body=body, payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).digest(), sector_size=sector_size,
    )


@given(
    body=BODIES,
    kind=st.sampled_from(list(Kind)),
    sequence=st.integers(0, 2**64 - 1),
    payload_size=st.integers(0, 2**64 - 1),
    sha=st.binary(min_size=32, max_size=32),
    sector_size=SECTOR_SIZES,
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(body, kind, sequence, payload_size, sha, sector_size):
    encoded = write_header(
        kind=kind, sequence=sequence, body=body, payload_size=payload_size, payload_sha256=sha, sector_size=sector_size
    )
    assert len(encoded) % sector_size == 0
    header = read_header(encoded)
    assert header.kind is kind
    assert header.sequence == sequence
    assert header.payload_size == payload_size
    assert header.payload_sha256 == sha
    assert header.body == body
    assert header.header_sectors == len(encoded) // sector_size
    assert records.header_sectors_of(encoded[:sector_size]) == header.header_sectors
    assert header.total_sectors(sector_size) == header.header_sectors + records.sectors_for(payload_size, sector_size)


@given(body=BODIES, sector_size=SECTOR_SIZES)
def test_pre_encoded_body_gives_the_same_bytes(body, sector_size):
    as_dict = _header(body, sector_size=sector_size)
    as_bytes = _header(records.encode_body(body), sector_size=sector_size)
    assert as_dict == as_bytes


@given(volume=st.text(max_size=32), path=st.text(max_size=300), ints=st.lists(st.integers(0, 2**64), min_size=6,
                                                                          max_size=6))
def test_file_body_is_the_generic_encoding(volume, path, ints):
    version, created, modified, attr_changed, flags, time = ints
    fields = {"volume": volume, "path": path, "version": version, "created": created, "modified": modified,
              "attr_changed": attr_changed, "flags": flags, "time": time}
    assert records.encode_file_body(**fields) == records.encode_body(fields)


def _record_alone(kind, sequence, encoded, payload, sector_size) -> bytes:
    """One record as docs/format.md §3.1 lays it out, built from write_header."""
    header = write_header(kind=kind, sequence=sequence, body=encoded, payload_size=len(payload),
                          payload_sha256=hashlib.sha256(payload).digest(), sector_size=sector_size)
    return header + payload + bytes(-len(payload) % sector_size)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    records_=st.lists(st.tuples(BODIES, st.sampled_from([0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 5000])),
                      min_size=1, max_size=12),
    sector_size=st.sampled_from([1024, 2048]),
    sectors=st.integers(1, 40),
    offset=st.integers(0, 3),
    start=st.integers(0, 2),
)
def test_laid_out_records_are_the_same_bytes_as_one_by_one(records_, sector_size, sectors, offset, start):
    items = []
    for body, size in records_:
        payload = bytes((i * 7 + size) % 251 for i in range(size))
        items.append((records.encode_body(body), payload, hashlib.sha256(payload).digest()))
    start = min(start, len(items) - 1)
    # A buffer holding older bytes everywhere: every byte of a record must be written.
    buf = bytearray(b"\xee" * (sector_size * (offset + sectors)))
    shapes = records.lay_out(buf, sector_size * offset, Kind.FILE, 40, items, start, sector_size)
    expected, at = [], sector_size * offset
    for number, (encoded, payload, _) in enumerate(items[start:]):
        alone = _record_alone(Kind.FILE, 40 + number, encoded, payload, sector_size)
        if at + len(alone) > len(buf):
            break  # it does not fit: nothing of it, nor of any after it
        expected.append(alone)
        at += len(alone)
    assert len(shapes) == len(expected)
    assert [(h + p) * sector_size for h, p in shapes] == [len(e) for e in expected]
    assert bytes(buf[sector_size * offset: at]) == b"".join(expected)
    assert buf[: sector_size * offset] == b"\xee" * (sector_size * offset)
    assert buf[at:] == b"\xee" * (len(buf) - at)
    position = sector_size * offset
    for number, (header_sectors, payload_sectors) in enumerate(shapes):
        header = read_header(bytes(buf[position: position + header_sectors * sector_size]))
        assert (header.sequence, header.header_sectors) == (40 + number, header_sectors)
        assert header.payload_size == len(items[start + number][1])
        position += (header_sectors + payload_sectors) * sector_size


def test_long_path_needs_two_sectors_at_1024():
    # A legal path (< 294 characters with /QOPT/PVOL1) whose UTF-8 form passes one 1024-byte sector.
    path = "/" + "/".join(["目录" * 30] * 4) + "/" + "文件" * 17
    assert len("/QOPT/PVOL1" + path) <= 294
    micros = 1_767_268_800_000_000
    body = {"volume": "PVOL1", "path": path, "version": 1, "created": micros, "modified": micros,
            "attr_changed": micros, "flags": 0}
    assert FIXED_SIZE + len(records.encode_body(body)) > 1024
    encoded = _header(body, sector_size=1024)
    assert len(encoded) == 2048
    assert records.header_sectors_for(records.encode_body(body), 1024) == 2
    assert records.header_sectors_of(encoded[:1024]) == 2
    header = read_header(encoded)
    assert header.header_sectors == 2
    assert header.body["path"] == path
    # The same body fits one 2048-byte sector.
    assert len(_header(body, sector_size=2048)) == 2048
    # Only the first sector is not enough to read it.
    with pytest.raises(errors.DamagedError):
        read_header(encoded[:1024])


def test_crc_mismatch_is_damaged():
    encoded = bytearray(_header({"path": "/A"}))
    encoded[FIXED_SIZE + 2] ^= 0x01  # inside the body
    with pytest.raises(errors.DamagedError) as info:
        read_header(bytes(encoded))
    assert info.value.exit_code == 7
    assert "checksum" in info.value.text


def test_padding_byte_flip_is_damaged():
    encoded = bytearray(_header({"path": "/A"}))
    encoded[-1] ^= 0xFF  # the CRC covers the padding too
    with pytest.raises(errors.DamagedError):
        read_header(bytes(encoded))


def test_bad_magic_is_damaged():
    encoded = bytearray(_header({"path": "/A"}))
    encoded[0:8] = b"NOTOPTVL"
    with pytest.raises(errors.DamagedError) as info:
        read_header(bytes(encoded))
    assert info.value.message_id == "OPV0201"
    with pytest.raises(errors.DamagedError):
        records.header_sectors_of(bytes(encoded))


@pytest.mark.parametrize("length", [0, 1, FIXED_SIZE - 1, FIXED_SIZE, 1000, 2047])
def test_truncated_is_damaged(length):
    encoded = _header({"path": "/A" * 100})
    with pytest.raises(errors.DamagedError):
        read_header(encoded[:length])


def test_newer_record_format_is_damaged():
    encoded = bytearray(_header({"path": "/A"}))
    struct.pack_into("<H", encoded, 8, records.FORMAT_VERSION + 1)
    with pytest.raises(errors.DamagedError, match="newer"):
        read_header(bytes(encoded))


def _with_crc(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, FIXED_SIZE - 4, 0)
    struct.pack_into("<I", buf, FIXED_SIZE - 4, zlib.crc32(buf))
    return bytes(buf)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: struct.pack_into("<B", b, 10, 200), id="unknown-kind"),
        pytest.param(lambda b: struct.pack_into("<I", b, 12, 0), id="zero-header-sectors"),
        pytest.param(lambda b: struct.pack_into("<I", b, 12, 3), id="wrong-header-sectors"),
        pytest.param(lambda b: struct.pack_into("<I", b, FIXED_SIZE - 8, 5000), id="body-longer-than-buffer"),
        pytest.param(lambda b: b.__setitem__(slice(FIXED_SIZE, FIXED_SIZE + 9), b"[1,2,3]  "), id="body-not-object"),
        pytest.param(lambda b: b.__setitem__(slice(FIXED_SIZE, FIXED_SIZE + 2), b"\xff\xfe"), id="body-not-utf8"),
    ],
)
def test_consistent_crc_but_bad_fields_is_damaged(mutate):
    buf = bytearray(_header({"path": "/ABC"}))
    mutate(buf)
    with pytest.raises(errors.DamagedError):
        read_header(_with_crc(buf))


@given(data=st.binary(max_size=3000))
@settings(max_examples=300)
def test_random_bytes_raise_only_damaged(data):
    try:
        read_header(data)
    except errors.DamagedError:
        pass
    try:
        records.header_sectors_of(data)
    except errors.DamagedError:
        pass


@given(
    body=BODIES,
    sector_size=SECTOR_SIZES,
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
@settings(max_examples=200)
def test_corrupted_headers_raise_only_damaged_or_decode_unchanged(body, sector_size, flips, cut):
    encoded = bytearray(_header(body, sector_size=sector_size))
    for position, mask in flips:
        encoded[position % len(encoded)] ^= mask
    if cut is not None:
        encoded = encoded[: cut % (len(encoded) + 1)]
    try:
        header = read_header(bytes(encoded))
    except errors.DamagedError:
        return
    # A flip that a CRC-32 misses is astronomically unlikely; when it passes it must decode to a dict.
    assert isinstance(header.body, dict)


@pytest.mark.parametrize("depth", [3000, 100_000])
def test_hostile_nesting_with_a_valid_crc_is_damaged(depth):
    """A crafted image can carry a correct CRC; deep JSON nesting must not escape as RecursionError."""
    body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    encoded = _header(body, sector_size=8192)
    with pytest.raises(errors.DamagedError):
        read_header(encoded)


@given(body=st.binary(max_size=6000), sector_size=SECTOR_SIZES)
@settings(max_examples=150)
def test_any_body_bytes_with_a_valid_crc_raise_only_damaged(body, sector_size):
    encoded = _header(body, sector_size=sector_size)
    try:
        header = read_header(encoded)
    except errors.DamagedError:
        return
    assert isinstance(header.body, dict)
