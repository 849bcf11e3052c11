"""A UDF file identifier marked as the parent that is not its directory's first (hunt27d F5)."""

from __future__ import annotations

import io
import os
import struct
import subprocess

from optvol.cli import main


def _checksum(data: bytearray, at: int) -> int:
    return (sum(data[at:at + 4]) + sum(data[at + 5:at + 16])) & 0xFF


def test_a_file_identifier_marked_parent_is_refused_not_left_out(library, tmp_path):
    """b.txt's identifier got the PARENT characteristic (its tag checksum made good): the
    file was left out, exit 0, "1 file(s)". Now OPV0701, exit 7, nothing added."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a" * 100)
    (tree / "b.txt").write_bytes(b"precious b\n" * 50)
    image = tmp_path / "p.iso"
    subprocess.run(["genisoimage", "-quiet", "-udf", "-V", "UDFP", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    data = bytearray(image.read_bytes())
    marked = 0
    for at in range(0, len(data) - 40, 4):
        if data[at:at + 2] == b"\x01\x01" and data[at + 4] == _checksum(data, at):
            use = struct.unpack_from("<H", data, at + 36)[0]
            if bytes(data[at + 38 + use + 1:at + 38 + use + data[at + 19]]) == b"b.txt":
                data[at + 18] |= 0x08
                data[at + 4] = _checksum(data, at)
                marked += 1
    assert marked == 1
    image.write_bytes(bytes(data))
    before = sorted(os.listdir(library.root))
    err = io.StringIO()
    rc = main(["--library", str(library.root), "import-iso", str(image), "--vol", "UP"], out=io.StringIO(), err=err)
    assert rc == 7 and "OPV0701" in err.getvalue() and "parent" in err.getvalue(), err.getvalue()
    assert sorted(os.listdir(library.root)) == before
