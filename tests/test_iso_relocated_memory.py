"""Records marked RE (Rock Ridge "relocated") by the million: the walk's memory (hunt31h F4)."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from optvol import errors
from optvol.interchange import iso_read

SECTOR = 2048
PER_EMPTY = 1900  # sizes one empty directory sector gives: 100 to 1999 bytes, all within it


def _both16(value: int) -> bytes:
    return struct.pack("<H", value) + struct.pack(">H", value)


def _both32(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def _record(extent: int, size: int, identifier: bytes, system_use: bytes = b"") -> bytes:
    body = (_both32(extent) + _both32(size) + bytes([126, 1, 1, 0, 0, 0, 0, 2, 0, 0]) + _both16(1)
            + bytes([len(identifier)]) + identifier + (b"\x00" if len(identifier) % 2 == 0 else b"") + system_use)
    return bytes([len(body) + 2, 0]) + body


def _image(path, count: int, *, sizes: bool = True) -> None:
    """A root of ``count`` directory records marked RE (38 bytes each), naming empty directories
    by (extent, size) pairs all different: ``sizes``, PER_EMPTY sizes of each directory; else
    a directory each, of its own size."""
    per_sector = SECTOR // 38
    root_at, root_sectors = 20, 1 + -(-count // per_sector)
    empty_at = root_at + root_sectors
    per_empty = PER_EMPTY if sizes else 1
    empties = -(-count // per_empty)
    total = empty_at + empties
    root_size = root_sectors * SECTOR
    data = bytearray(total * SECTOR)
    pvd = bytearray(SECTOR)
    pvd[0:7] = b"\x01CD001\x01"
    pvd[40:72] = b"REMANY".ljust(32)
    pvd[80:88] = _both32(total)
    pvd[120:132] = _both16(1) + _both16(1) + _both16(SECTOR)
    pvd[156:190] = _record(root_at, root_size, b"\x00")
    data[16 * SECTOR:17 * SECTOR] = pvd
    data[17 * SECTOR:17 * SECTOR + 7] = b"\xffCD001\x01"
    sector = bytearray(_record(root_at, root_size, b"\x00", b"SP\x07\x01\xbe\xef\x00RR\x05\x01\x81")
                       + _record(root_at, root_size, b"\x01"))
    at = root_at * SECTOR
    for index in range(count):
        size = 100 + index % PER_EMPTY if sizes else SECTOR
        record = _record(empty_at + index // per_empty, size, b"D", b"RE\x04\x01")
        if len(sector) + len(record) > SECTOR:
            data[at:at + len(sector)] = sector
            at, sector = at + SECTOR, bytearray()
        sector += record
    data[at:at + len(sector)] = sector
    for index in range(empties):
        here = (empty_at + index) * SECTOR
        dot = _record(empty_at + index, SECTOR, b"\x00") + _record(root_at, root_size, b"\x01")
        data[here:here + len(dot)] = dot
    path.write_bytes(bytes(data))


def _walk_peak(path) -> int:
    """The peak of a whole walk: it ends refusing the directories no CL shows (after reading all)."""
    tracemalloc.start()
    try:
        with pytest.raises(errors.OptvolError, match="linked from nowhere"), iso_read.read_tree(str(path)) as tree:
            for _ in tree.entries():
                pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_records_marked_relocated_take_no_memory_each(tmp_path):
    """Each (extent, size) pair was kept in a dict for the whole walk: 1,000,000 such records
    (1,900 sizes of each of 527 empty directories, a 38 MB image) took import-iso to 191 MiB,
    over DESIGN §6's 150. Now a record whose size is not its directory's is refused, and what
    was found of each directory is kept in two bits per block: here, 5,000 or 15,000 records
    of as many empty directories (two sectors each of the image, with their records)."""
    small, large = tmp_path / "small.iso", tmp_path / "large.iso"
    _image(small, 5_000, sizes=False)
    _image(large, 15_000, sizes=False)
    growth = (_walk_peak(large) - _walk_peak(small)) / 10_000
    assert growth < 40, f"{growth:.0f} bytes a record"


def test_a_record_marked_relocated_whose_size_is_not_its_directory_s_is_refused(tmp_path):
    image = tmp_path / "sizes.iso"
    _image(image, 10)
    with pytest.raises(errors.OptvolError, match="OPV0701"), iso_read.read_tree(str(image)) as tree:
        for _ in tree.entries():
            pass
