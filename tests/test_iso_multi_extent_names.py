"""Multi-extent records of different names (hunt27d F3)."""

from __future__ import annotations

import io
import os
import struct
import subprocess

import pytest

from optvol.cli import main

SECTOR = 2048


def _state(root) -> list[str]:
    return sorted(os.listdir(root)) + sorted("tmp/" + n for n in os.listdir(root / ".tmp"))


@pytest.mark.parametrize("options", [[], ["-R"], ["-J"]])
def test_a_multi_extent_flag_on_a_file_followed_by_another_is_refused(library, tmp_path, options):
    """A.TXT's record flagged multi-extent, B.TXT's record next: A came in with B's bytes after
    its own and B was gone, exit 0 (ECMA-119 6.5.1: the records of a file all bear its name).
    Now OPV0701, exit 7, nothing added."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"A" * SECTOR)
    (tree / "b.txt").write_bytes(b"B" * 100)
    image = tmp_path / "me.iso"
    subprocess.run(["genisoimage", "-quiet", *options, "-V", "ME", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    data = bytearray(image.read_bytes())
    descriptors = [16 * SECTOR] + ([d * SECTOR for d in range(17, 20) if data[d * SECTOR] == 2] if options == ["-J"]
                                   else [])
    for descriptor in descriptors:  # the ISO 9660 tree, and Joliet's where the walk reads it
        root = descriptor + 156
        position = struct.unpack_from("<I", data, root + 2)[0] * SECTOR
        while data[position]:
            name = bytes(data[position + 33:position + 33 + data[position + 32]])
            if name in (b"A.TXT;1", "a.txt".encode("utf-16-be")):
                data[position + 25] |= 0x80
            position += data[position]
    image.write_bytes(bytes(data))
    before = _state(library.root)
    err = io.StringIO()
    rc = main(["--library", str(library.root), "import-iso", str(image), "--vol", "ME"], out=io.StringIO(), err=err)
    assert rc == 7 and "OPV0701" in err.getvalue() and "different names" in err.getvalue(), err.getvalue()
    assert _state(library.root) == before
