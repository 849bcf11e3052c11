"""hunt24e: damage every reading route must see, not only cat's.

F2: a FILE record whose header is damaged (payload intact) fails cat (CPF1F28) and CHKOPTVOL
names it; CPYOPT (small files read whole, large ones copied in the kernel) and export-iso
copied it as good, exit 0, and the record is lost to ``optvol recover``.
F4: a data partition cut inside its last committed sector: every write refuses it (OPV0201),
so CHKOPTVOL must report it too.
"""

from __future__ import annotations

import os

import pytest

from conftest import make_volume
from integrity_helpers import flip, index_rows, run_cli, volume_dir
from optvol.model import VolumeType


@pytest.mark.parametrize("size", [0, 3000, 300_000])  # empty, read whole, copied in the kernel
def test_a_damaged_record_header_fails_every_copy(library, tmp_path, size):
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    make_volume(library, "PVOL2")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/f.bin", os.urandom(size))
    [row] = index_rows(library.root, "PVOL1")
    flip(volume_dir(library.root, "PVOL1") / "data.opv", row["sector"] * 2048 + 80)  # the header's JSON body
    assert run_cli(library.root, "cat", "/QOPT/PVOL1/f.bin").rc == 7
    for target, extra in (("BVOL1 *BACKUP", []), ("PVOL2", ["--sltfile", "*ALL"])):
        copied = run_cli(library.root, "cpyopt", "PVOL1", "/", target, *extra, json_output=True)
        assert copied.rc == 1, copied.err
        assert [f["message_id"] for f in copied.json()["failures"]] == ["CPF1F28"]
    exported = run_cli(library.root, "export-iso", "PVOL1", str(tmp_path / "p.iso"))
    assert exported.rc == 7, exported.err
    assert not (tmp_path / "p.iso").exists()


def test_a_partition_cut_inside_its_last_sector_is_reported(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/h.txt", b"hello")
    data = volume_dir(library.root, "PVOL1") / "data.opv"
    os.truncate(data, os.path.getsize(data) - 1)
    checked = run_cli(library.root, "chkoptvol", "PVOL1", json_output=True)
    assert checked.rc == 7
    assert [d["path"] for d in checked.json()["damaged"]] == ["(data partition)"]
    assert run_cli(library.root, "cp", "/QOPT/PVOL1/h.txt", "/QOPT/PVOL1/h2.txt").rc == 7  # as a writer sees it


@pytest.mark.parametrize("needle, mask", [(b"report.txt", 0x10), (b"Folder", 0x20)])
def test_a_name_changed_by_a_byte_of_the_index_is_reported(library, needle, mask):
    """F1: one byte of index.sqlite inside a name: ls shows another name, CPYOPT copies it under
    that name, lookups by it fail; CHKOPTVOL said nothing (integrity_check and the records agree)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/Folder")
        volume.write_bytes("/Folder/report.txt", b"hello")
    index = volume_dir(library.root, "PVOL1") / "index.sqlite"
    data = bytearray(index.read_bytes())
    data[data.find(needle)] ^= mask  # the first occurrence: the name itself (its key is upper case)
    index.write_bytes(bytes(data))
    checked = run_cli(library.root, "chkoptvol", "PVOL1", json_output=True)
    assert checked.rc == 7, checked.out


def test_a_record_whose_body_is_no_json_though_its_crc_holds_is_not_copied_as_good(library):
    """rev24j F1: the small-file read checks a header by its fixed fields and CRC only (to stay
    fast); a body rewritten into bytes that are no JSON, with a CRC made to hold, was copied
    by CPYOPT as good where cat and CHKOPTVOL call it damaged."""
    import struct
    import zlib

    from optvol.image import records

    make_volume(library, "PVOL1")
    make_volume(library, "PVOL2")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/small", b"hello")
    [row] = index_rows(library.root, "PVOL1")
    with open(volume_dir(library.root, "PVOL1") / "data.opv", "r+b") as data:
        data.seek(row["sector"] * 2048)
        head = bytearray(data.read(row["header_sectors"] * 2048))
        body_len = struct.unpack_from("<I", head, records.FIXED_SIZE - 8)[0]
        head[records.FIXED_SIZE:records.FIXED_SIZE + body_len] = b"\xff" * body_len
        struct.pack_into("<I", head, records._CRC_OFFSET, 0)
        struct.pack_into("<I", head, records._CRC_OFFSET, zlib.crc32(head))
        data.seek(row["sector"] * 2048)
        data.write(head)
    copied = run_cli(library.root, "cpyopt", "PVOL1", "/small", "PVOL2", json_output=True)
    assert copied.rc == 1 and copied.json()["copied"] == 0, copied.out
    assert [f["message_id"] for f in copied.json()["failures"]] == ["CPF1F28"]
    assert run_cli(library.root, "cat", "/QOPT/PVOL1/small").rc == 7
