"""Rock Ridge continuation areas that many records share (hunt27d F2)."""

from __future__ import annotations

import io
import os
import subprocess

from iso_records import both
from optvol.cli import main

SECTOR = 2048
AREA = 64 << 10  # iso_walk.MAX_CONTINUATION_BYTES: one area may be that long


def _shared_chain_image(tmp_path, files: int, filler: bytes) -> os.PathLike:
    """A Rock Ridge image of ``files`` empty files whose PX entries became CE entries, all
    pointing at one chain of 31 areas of 64 KiB (the most MAX_CONTINUATIONS follows) appended
    to the image, each area filled with ``filler`` after its CE."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(files):
        (tree / f"f{index:04}").write_bytes(b"")
    image = tmp_path / "ce.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-V", "CE", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    data = bytearray(image.read_bytes())
    base = len(data) // SECTOR
    chain = bytearray()
    for index in range(31):
        area = bytearray((filler * (AREA // len(filler)))[:AREA])
        if index < 30:
            area[:28] = b"CE\x1c\x01" + both(base + (index + 1) * (AREA // SECTOR)) + both(0) + both(AREA)
        chain += area
    continuation = b"CE\x1c\x01" + both(base) + both(0) + both(AREA)
    at = 0
    while (at := data.find(b"PX", at + 1)) >= 0:
        length = data[at + 2]
        if length in (36, 44) and data[at + 3] == 1:
            data[at:at + length] = continuation + b"PD" + bytes((length - 28, 1)) + bytes(length - 32)
    image.write_bytes(bytes(data + chain))
    return image


def _state(root) -> list[str]:
    return sorted(os.listdir(root)) + sorted("tmp/" + n for n in os.listdir(root / ".tmp"))


def test_records_that_share_a_chain_of_continuation_areas_are_refused(library, tmp_path):
    """Every record read the whole chain (2 MiB) anew: with areas of four-byte entries, a
    2.4 MB image of 20 such records took 20 s to import and one of 2,000 hours. Now a walk
    reads at most 8 times the image's size of continuation areas: OPV0701, exit 7."""
    image = _shared_chain_image(tmp_path, 40, bytes(4))  # zeros: each area ends after its CE, the test is quick
    before = _state(library.root)
    err = io.StringIO()
    rc = main(["--library", str(library.root), "import-iso", str(image), "--vol", "CE"], out=io.StringIO(), err=err)
    assert rc == 7 and "OPV0701" in err.getvalue() and "continuation" in err.getvalue(), err.getvalue()
    assert _state(library.root) == before


def test_a_few_records_with_long_continuations_still_import(library, tmp_path):
    image = _shared_chain_image(tmp_path, 2, bytes(4))
    err = io.StringIO()
    rc = main(["--library", str(library.root), "import-iso", str(image), "--vol", "CE"], out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
