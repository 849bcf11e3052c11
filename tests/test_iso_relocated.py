"""Rock Ridge relocated directories (RE) that no CL record points at (hunt27d F1)."""

from __future__ import annotations

import io
import os
import struct
import subprocess

import pytest

from optvol.cli import main

SECTOR = 2048


def _records(data: bytes, extent: int, size: int):
    position = extent * SECTOR
    while position < extent * SECTOR + size:
        length = data[position]
        if length == 0:
            position = (position // SECTOR + 1) * SECTOR
            continue
        yield position, length
        position += length


def _image(tmp_path, deep: bool) -> bytes:
    tree = tmp_path / "tree"
    parts = ["A", "B"] if not deep else ["A", "B", "c", "d", "e", "f", "g", "h", "i", "j"]
    tree.joinpath(*parts).mkdir(parents=True)
    tree.joinpath(*parts, "precious.txt").write_bytes(b"precious\n" * 100)
    (tree / "top.txt").write_bytes(b"top\n")
    image = tmp_path / "re.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-V", "REL", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    return image.read_bytes()


def _root_record(data: bytes, name: bytes) -> tuple[int, int]:
    root = 16 * SECTOR + 156
    extent, size = struct.unpack_from("<I", data, root + 2)[0], struct.unpack_from("<I", data, root + 10)[0]
    for position, length in _records(data, extent, size):
        if data[position + 33:position + 33 + data[position + 32]] == name:
            return position, length
    raise KeyError(name)


def _import(library, image) -> tuple[int, str]:
    err = io.StringIO()
    rc = main(["--library", str(library.root), "import-iso", str(image), "--vol", "REL"], out=io.StringIO(), err=err)
    return rc, err.getvalue()


def _state(root) -> list[str]:
    return sorted(os.listdir(root)) + sorted("tmp/" + n for n in os.listdir(root / ".tmp"))


def test_a_directory_marked_relocated_that_no_cl_shows_is_refused(library, tmp_path):
    """/A's record marked RE (its TF entry's signature made "RE"): the import left /A and
    everything below it out, exit 0, "0 directories". Now OPV0701, exit 7, nothing added."""
    data = bytearray(_image(tmp_path, deep=False))
    position, length = _root_record(data, b"A")
    at = data.index(b"TF", position + 34, position + length)
    data[at:at + 2] = b"RE"
    image = tmp_path / "orphan.iso"
    image.write_bytes(bytes(data))
    before = _state(library.root)
    rc, err = _import(library, image)
    assert rc == 7 and "OPV0701" in err and "relocated" in err, err
    assert _state(library.root) == before


def test_a_relocated_directory_whose_cl_record_is_gone_is_refused(library, tmp_path):
    """The CL entry of a deep tree's placeholder record gone (its signature changed): the
    placeholder came in as an empty file, and the relocated directory in rr_moved, with
    precious.txt, was left out, exit 0."""
    data = bytearray(_image(tmp_path, deep=True))
    at = data.index(b"CL\x0c\x01")
    data[at:at + 2] = b"XX"
    image = tmp_path / "nolink.iso"
    image.write_bytes(bytes(data))
    rc, err = _import(library, image)
    assert rc == 7 and "OPV0701" in err, err


@pytest.mark.parametrize("deep", [False, True])
def test_images_with_and_without_relocation_import_whole(library, tmp_path, deep):
    image = tmp_path / "whole.iso"
    image.write_bytes(_image(tmp_path, deep=deep))
    rc, err = _import(library, image)
    assert rc == 0, err
    path = "/A/B/c/d/e/f/g/h/i/j/precious.txt" if deep else "/A/B/precious.txt"
    with library.open("REL") as volume:
        assert volume.read_bytes(path) == b"precious\n" * 100


def test_a_relocation_directory_xorriso_marks_relocated_itself_imports(library, tmp_path):
    """xorriso -rr_reloc_dir RR_MOVED marks RR_MOVED itself RE (no CL points at it): it holds
    only relocated directories, so nothing of it is left out; the image imports whole."""
    tree = tmp_path / "tree"
    parts = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    tree.joinpath(*parts).mkdir(parents=True)
    tree.joinpath(*parts, "x.txt").write_bytes(b"deep\n")
    image = tmp_path / "x.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-rr_reloc_dir", "RR_MOVED", "-V", "X", "-o",
                    str(image), str(tree)], check=True, capture_output=True)
    assert b"RR_MOVED" in image.read_bytes()
    rc, err = _import(library, image)
    assert rc == 0, err
    with library.open("REL") as volume:
        assert volume.read_bytes("/" + "/".join(parts) + "/x.txt") == b"deep\n"
        assert volume.listdir("/") == ["a"]


def test_records_marked_relocated_naming_one_directory_read_it_once(library, tmp_path, monkeypatch):
    """rev27k F2: each record marked RE made the walk read the directory it names (is it a
    relocation directory?), so records by the thousand naming one large directory read it
    (a MiB a time) as often: 100,000 of them added 4 s to a 14 MB image. Read once a walk."""
    from optvol.interchange import iso_read, iso_walk

    tree = tmp_path / "many"
    (tree / "A").mkdir(parents=True)
    (tree / "B").mkdir()
    for index in range(50):
        (tree / "A" / f"a{index:03d}").write_bytes(b"")
    (tree / "B" / "a_plain").write_bytes(b"")  # (first: B is no rr_moved)
    for index in range(300):
        (tree / "B" / f"b{index:03d}").write_bytes(b"")
    image = tmp_path / "many.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-o", str(image), str(tree)], check=True, capture_output=True)
    data = bytearray(image.read_bytes())
    a_position, _ = _root_record(data, b"A")
    a_extent, a_size = struct.unpack_from("<I", data, a_position + 2)[0], struct.unpack_from("<I", data, a_position + 10)[0]
    b_position, _ = _root_record(data, b"B")
    b_extent, b_size = struct.unpack_from("<I", data, b_position + 2)[0], struct.unpack_from("<I", data, b_position + 10)[0]
    marked = 0
    for position, length in _records(data, b_extent, b_size):
        name = bytes(data[position + 33:position + 33 + data[position + 32]])
        if name in (b"\x00", b"\x01") or name.startswith(b"A_PLAIN"):
            continue
        at = data.index(b"NM", position + 34, position + length)
        data[at:at + 2] = b"RE"
        for offset, value in ((2, a_extent), (10, a_size)):
            struct.pack_into("<I", data, position + offset, value)
            struct.pack_into(">I", data, position + offset + 4, value)
        data[position + 25] |= 2  # a directory
        marked += 1
    assert marked == 300
    image.write_bytes(bytes(data))
    reads, records = [], iso_walk.records

    def counted(image_, directory, **kwargs):
        if directory.extent == a_extent:
            reads.append(directory.extent)
        return records(image_, directory, **kwargs)

    monkeypatch.setattr(iso_walk, "records", counted)
    with iso_read.read_tree(str(image)) as opened, pytest.raises(Exception, match="relocated"):
        list(opened.entries())
    assert len(reads) <= 3, len(reads)  # (A walked, looked at once, and at most once more)
