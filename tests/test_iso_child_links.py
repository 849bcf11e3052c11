"""Rock Ridge CL records that would put another directory's tree in a directory's place (hunt31h F1, F2)."""

from __future__ import annotations

import io
import struct
import subprocess

from optvol.cli import main
from test_iso_relocated import SECTOR, _records, _state  # (an image's records, the library's files)


def _find(data: bytes, path: str) -> tuple[int, int, int]:
    """(position, length, extent) of the record of an ISO 9660 path of identifiers."""
    root = 16 * SECTOR + 156
    extent, size = struct.unpack_from("<I", data, root + 2)[0], struct.unpack_from("<I", data, root + 10)[0]
    for part in path.split("/"):
        for position, length in _records(data, extent, size):
            if data[position + 33:position + 33 + data[position + 32]] == part.encode():
                extent, size = (struct.unpack_from("<I", data, position + at)[0] for at in (2, 10))
                found = position, length, extent
                break
        else:
            raise KeyError(part)
    return found


def _both(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def _image(tmp_path) -> bytearray:
    """/top.txt and /d0/d1/.../d10, each with a file: genisoimage relocates d7 to RR_MOVED."""
    tree = tmp_path / "tree"
    level = tree
    for index in range(11):
        level = level / f"d{index}"
        level.mkdir(parents=True)
        (level / f"f{index}.txt").write_bytes(b"precious\n" * 50)
    (tree / "top.txt").write_bytes(b"top\n")
    image = tmp_path / "deep.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-V", "DEEP", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    return bytearray(image.read_bytes())


def _import(library, tmp_path, data: bytes) -> tuple[int, str]:
    image = tmp_path / "hostile.iso"
    image.write_bytes(bytes(data))
    err = io.StringIO()
    rc = main(["--library", str(library.root), "import-iso", str(image), "--vol", "DEEP"], out=io.StringIO(), err=err)
    return rc, err.getvalue()


def test_a_directory_record_with_a_cl_entry_is_refused(library, tmp_path):
    """/d0's own directory record given a CL entry to RR_MOVED/D7 (its PX entry made CL and
    padding; the real placeholder's CL made padding): /d0 came in as d7's tree, exit 0, and
    d0's own six directories and seven files were left out without a word."""
    data = _image(tmp_path)
    moved = _find(data, "RR_MOVED/D7")[2]
    position, length, _ = _find(data, "D0")
    px = data.index(b"PX", position + 34, position + length)
    size = data[px + 2]
    data[px:px + 16] = b"CL\x0c\x01" + _both(moved) + b"PD" + bytes([size - 12, 1])
    position, length, _ = _find(data, "D0/D1/D2/D3/D4/D5/D6/D7")
    cl = data.index(b"CL\x0c\x01", position + 34, position + length)
    data[cl:cl + 2] = b"PD"
    before = _state(library.root)
    rc, err = _import(library, tmp_path, data)
    assert rc == 7 and "OPV0701" in err and "CL" in err, err
    assert _state(library.root) == before


def test_a_relocated_directory_whose_dot_record_names_another_extent_is_refused(library, tmp_path):
    """RR_MOVED/D7's own '.' record says it starts at RR_MOVED's block: the walk went into
    RR_MOVED in d7's place, exit 0, d7 came in empty and everything below it was left out."""
    data = _image(tmp_path)
    moved = _find(data, "RR_MOVED/D7")[2]
    data[moved * SECTOR + 2:moved * SECTOR + 10] = _both(_find(data, "RR_MOVED")[2])
    before = _state(library.root)
    rc, err = _import(library, tmp_path, data)
    assert rc == 7 and "OPV0701" in err, err
    assert _state(library.root) == before


def test_the_untouched_relocated_image_imports_whole(library, tmp_path):
    rc, err = _import(library, tmp_path, _image(tmp_path))
    assert rc == 0, err
    out = io.StringIO()
    assert main(["--library", str(library.root), "dspopt", "DEEP", "*ALL", "*FILATR",
                 "--path", "/d0/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/f10.txt"], out=out, err=io.StringIO()) == 0, out.getvalue()


def test_an_empty_directory_marked_relocated_that_no_cl_shows_is_refused(library, tmp_path):
    """/a/b/empty's record marked RE (its TF entry made RE), no CL anywhere: it was taken for
    an empty relocation directory and left out, exit 0 (hunt31h F3)."""
    tree = tmp_path / "tree"
    (tree / "a" / "b" / "empty").mkdir(parents=True)
    (tree / "a" / "b" / "x.txt").write_bytes(b"x\n")
    image = tmp_path / "empty.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-V", "DEEP", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    data = bytearray(image.read_bytes())
    position, length, _ = _find(data, "A/B/EMPTY")
    tf = data.index(b"TF", position + 34, position + length)
    data[tf:tf + 2] = b"RE"
    before = _state(library.root)
    rc, err = _import(library, tmp_path, data)
    assert rc == 7 and "OPV0701" in err and "relocated" in err, err
    assert _state(library.root) == before


def test_an_empty_relocated_directory_imports(library, tmp_path):
    """genisoimage relocates an empty directory nine levels down: it comes in where it belongs."""
    tree = tmp_path / "tree"
    deep = tree.joinpath(*"abcdefghi")
    deep.mkdir(parents=True)
    (tree / "top.txt").write_bytes(b"top\n")
    image = tmp_path / "deep.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-V", "DEEP", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    assert b"RR_MOVED" in image.read_bytes()
    rc, err = _import(library, tmp_path, image.read_bytes())
    assert rc == 0, err
    with library.open("DEEP") as volume:
        assert volume.listdir("/a/b/c/d/e/f/g/h/i") == []
