"""import-iso of what real images hold beyond plain files: zisofs-compressed files, symbolic
links and other special files, ISO 9660:1999 names, names in other encodings; each image
made here by xorriso or genisoimage and read back by bsdtar too."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import make_volume
from optvol.interchange import import_iso
from test_interchange import _cli, _sha

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
ZISOFS_MAGIC = bytes((0x37, 0xE4, 0x53, 0x96, 0xC9, 0xDB, 0xD6, 0x07))


def _library_state(library) -> list[str]:
    """What the library directory holds (its lock file made first: any command makes it)."""
    with library.locked():
        pass
    root = library.root
    return sorted(os.listdir(root)) + sorted("tmp/" + n for n in os.listdir(root / ".tmp"))


# --------------------------------------------------------------------- zisofs


def _zisofs_tree(root: Path) -> dict[str, bytes]:
    """Files for zisofs: several blocks of text, zero blocks between random ones (stored as
    empty blocks), a one-block file, and one xorriso leaves uncompressed (it would not shrink)."""
    files = {
        "text.txt": b"hello world, compress me please\n" * 5000,
        "sub/holes.bin": b"abc" * 1000 + bytes(200_000) + os.urandom(50_000) + bytes(300_000) + b"end",
        "sub/short.txt": b"one block, compressible " * 500,
        "random.bin": os.urandom(70_000),
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return files


@pytest.mark.parametrize("block", ["32k", "128k"])
def test_zisofs_files_are_imported_uncompressed(library, tmp_path, block):
    """xorriso -set_filter_r --zisofs stores files compressed (a Rock Ridge ZF entry): import
    kept the compressed bytes as the file and said nothing. Now they are uncompressed, as
    bsdtar (and Linux) read them."""
    files = _zisofs_tree(tmp_path / "tree")
    image = tmp_path / "z.iso"
    subprocess.run(["xorriso", "-outdev", str(image), "-map", str(tmp_path / "tree"), "/", "-zisofs",
                    f"block_size={block}", "-set_filter_r", "--zisofs", "/", "--"], check=True, capture_output=True)
    assert image.read_bytes().count(ZISOFS_MAGIC) == 3  # random.bin stays as it is
    result = import_iso(library, file=image, vol="ZISO", now=NOW)
    assert (result.files, result.bytes) == (len(files), sum(len(data) for data in files.values()))
    with library.open("ZISO") as volume:
        for path, data in files.items():
            read_back = subprocess.run(["bsdtar", "-xOf", str(image), path], check=True, capture_output=True).stdout
            assert read_back == data, path
            assert volume.read_bytes("/" + path) == data, path
            assert volume.stat("/" + path).sha256 == _sha(data), path


def _zisofs_image(tmp_path: Path, *options: str) -> bytes:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "text.txt").write_bytes(b"hello world, compress me please\n" * 5000)
    image = tmp_path / "z.iso"
    subprocess.run(["xorriso", "-outdev", str(image), "-map", str(tmp_path / "tree"), "/", *options,
                    "-set_filter_r", "--zisofs", "/", "--"], check=True, capture_output=True)
    return image.read_bytes()


def test_a_damaged_zisofs_block_is_refused(library, tmp_path):
    """zlib's checksum of each block catches a changed byte: exit 7, nothing added."""
    data = bytearray(_zisofs_image(tmp_path))
    start = data.index(ZISOFS_MAGIC)
    first_block = struct.unpack_from("<I", data, start + 16)[0]
    data[start + first_block + 20] ^= 0x40
    image = tmp_path / "bad.iso"
    image.write_bytes(bytes(data))
    before = _library_state(library)
    rc, _, err = _cli(library, "import-iso", str(image), "--vol", "BAD")
    assert rc == 7 and "OPV0701" in err and "text.txt" in err, err
    assert _library_state(library) == before


def test_zisofs_version_2_is_refused_naming_the_file(library, tmp_path):
    image = tmp_path / "z2.iso"
    image.write_bytes(_zisofs_image(tmp_path, "-zisofs", "version_2=on"))
    before = _library_state(library)
    rc, _, err = _cli(library, "import-iso", str(image), "--vol", "ZISO2")
    assert rc == 7 and "OPV0703" in err and "/text.txt" in err and "zisofs" in err, err
    assert _library_state(library) == before


def _zisofs_file(blocks: list[bytes | None], size: int, *, log2: int = 15) -> bytes:
    """A stored zisofs file: header, pointer table, the blocks (None: an empty pointer pair)."""
    header = ZISOFS_MAGIC + struct.pack("<IBBH", size, 4, log2, 0)
    at = len(header) + 4 * (len(blocks) + 1)
    pointers, body = [at], b""
    for block in blocks:
        body += block or b""
        pointers.append(at + len(body))
    return header + struct.pack(f"<{len(pointers)}I", *pointers) + body


@pytest.mark.parametrize("case", ["more than a block", "less than a block", "pointer past the end",
                                  "pointers backwards", "not zlib", "trailing data", "header size differs"])
def test_hostile_zisofs_data_raises_value_error(case):
    """Stored bytes that do not decompress to exactly the size the ZF entry gives raise
    ValueError (the caller's OPV0701), and never yield more than one block at a time."""
    from optvol.interchange import zisofs

    block = 1 << 15
    size, blocks = 2 * block, [zlib.compress(b"a" * block), zlib.compress(b"b" * block)]
    if case == "more than a block":
        blocks[1] = zlib.compress(b"b" * (64 * block))
    elif case == "less than a block":
        blocks[0] = zlib.compress(b"a" * (block - 1))
    elif case == "not zlib":
        blocks[1] = b"\x00" * 40
    elif case == "trailing data":
        blocks[1] = zlib.compress(b"b" * block)[:-4] + b"\x00\x00\x00\x00"
    stored = bytearray(_zisofs_file(blocks, size))
    if case == "pointer past the end":
        struct.pack_into("<I", stored, 24, len(stored) + 1)
    elif case == "pointers backwards":
        struct.pack_into("<I", stored, 20, 10)
    elif case == "header size differs":
        struct.pack_into("<I", stored, 8, size + 1)
    compression = zisofs.read_zf(b"ZF\x10\x01pz\x04\x0f" + struct.pack("<I", size) + struct.pack(">I", size))
    with pytest.raises(ValueError):
        for chunk in zisofs.chunks(lambda o, n: bytes(stored[o:o + n]), len(stored), compression):
            assert len(chunk) <= block


def test_zisofs_reader_reads_what_it_is_given():
    from optvol.interchange import zisofs

    block = 1 << 15
    data = b"x" * block + bytes(block) + b"tail"
    stored = _zisofs_file([zlib.compress(data[:block]), None, zlib.compress(b"tail")], len(data))
    compression = zisofs.read_zf(b"ZF\x10\x01pz\x04\x0f" + struct.pack("<I", len(data)) + struct.pack(">I", len(data)))
    assert b"".join(zisofs.chunks(lambda o, n: stored[o:o + n], len(stored), compression)) == data


# --------------------------------------------------------------------- symbolic links, devices, FIFOs


def _special_tree(root: Path) -> dict[str, tuple[str, str | None]]:
    """A tree with a file, a directory, symbolic links, a FIFO and (as root) a device node;
    returns the special ones: path -> (type, target)."""
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "real.txt").write_bytes(b"target\n")
    os.symlink("sub/real.txt", root / "link.txt")
    os.symlink("/etc/passwd", root / "sub" / "abs_link")
    os.mkfifo(root / "fifo")
    special = {"/link.txt": ("symbolic link", "sub/real.txt"), "/sub/abs_link": ("symbolic link", "/etc/passwd"),
               "/fifo": ("FIFO", None)}
    if os.geteuid() == 0:
        os.mknod(root / "null", 0o20644, os.makedev(1, 3))
        special["/null"] = ("character device", None)
    return special


@pytest.mark.parametrize("maker", ["xorriso", "genisoimage -R"])
def test_rock_ridge_links_devices_and_fifos_are_skipped_and_listed(library, tmp_path, maker):
    """Rock Ridge symbolic links, FIFOs and device nodes became empty regular files and import
    said it had done all. Now they are left out, each listed in the result, and the command
    ends with exit 1 (OPV0705): a volume holds only files and directories."""
    special = _special_tree(tmp_path / "tree")
    image = tmp_path / "s.iso"
    command = (["xorriso", "-outdev", str(image), "-map", str(tmp_path / "tree"), "/"] if maker == "xorriso" else
               ["genisoimage", "-quiet", "-R", "-V", "S", "-o", str(image), str(tmp_path / "tree")])
    subprocess.run(command, check=True, capture_output=True)
    rc, out, err = _cli(library, "--json", "import-iso", str(image), "--vol", "SPECIAL")
    assert rc == 1 and "OPV0705" in err, err
    result = json.loads(out)
    assert (result["files"], result["directories"], result["skipped"]) == (1, 1, len(special))
    assert {e["path"]: (e["type"], e["target"]) for e in result["skipped_entries"]} == special
    with library.open("SPECIAL") as volume:
        assert [info.path for info in volume.iter_files("/", recursive=True)] == ["/sub/real.txt"]
        assert volume.listdir("/") == ["sub"]
    make_volume(library, "PVOL1")
    rc, out, err = _cli(library, "import-iso", str(image), "--into", "PVOL1:/In")
    assert rc == 1 and "OPV0705" in err and "skipped: /link.txt (symbolic link -> sub/real.txt)" in out, (out, err)
    with library.open("PVOL1") as volume:
        assert [info.path for info in volume.iter_files("/", recursive=True)] == ["/In/sub/real.txt"]


def test_udf_links_devices_and_fifos_are_skipped_and_listed(library, tmp_path):
    """The UDF tree says what an entry is in its ICB file type (ECMA-167 4/14.6.6): 12 a
    symbolic link, 6 and 7 devices, 9 a FIFO. They were imported as empty files."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(udf="2.60", interchange_level=3)
    iso.add_fp(io.BytesIO(b"target data"), 11, "/FILE.TXT;1", udf_path="/file.txt")
    iso.add_directory("/SUB", udf_path="/sub")
    iso.add_symlink(udf_symlink_path="/sub/link", udf_target="../file.txt")
    iso.add_fp(io.BytesIO(b"fifo..."), 7, "/FIFO.;1", udf_path="/fifo")
    image = tmp_path / "u.iso"
    iso.write(str(image))
    iso.close()
    data = bytearray(image.read_bytes())
    for sector in range(len(data) // 2048):  # the file entry of /fifo (7 bytes) becomes a FIFO's
        at = sector * 2048
        if struct.unpack_from("<H", data, at)[0] == 261 and struct.unpack_from("<Q", data, at + 56)[0] == 7:
            data[at + 27] = 9
            data[at + 4] = (sum(data[at:at + 4]) + sum(data[at + 5:at + 16])) & 0xFF
    image.write_bytes(bytes(data))
    rc, out, err = _cli(library, "--json", "import-iso", str(image), "--vol", "UDFSPEC")
    assert rc == 1 and "OPV0705" in err, err
    result = json.loads(out)
    assert result["namespace"] == "UDF" and (result["files"], result["directories"]) == (1, 1)
    assert sorted(result["skipped_entries"], key=lambda e: e["path"]) == [
            {"path": "/fifo", "type": "FIFO", "target": None},
            {"path": "/sub/link", "type": "symbolic link", "target": "../file.txt"}]
    with library.open("UDFSPEC") as volume:
        assert [info.path for info in volume.iter_files("/", recursive=True)] == ["/file.txt"]


def test_a_result_names_a_bounded_number_of_skipped_entries(library, tmp_path, monkeypatch):
    """The result counts every skipped entry but names only the first MAX_LISTED: memory
    bounded on an image of millions of links."""
    from optvol.interchange import iso_import

    monkeypatch.setattr(iso_import, "MAX_LISTED", 2)
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(5):
        os.symlink(f"target{index}", tree / f"link{index}")
    image = tmp_path / "links.iso"
    subprocess.run(["xorriso", "-outdev", str(image), "-map", str(tree), "/"], check=True, capture_output=True)
    rc, out, err = _cli(library, "import-iso", str(image), "--vol", "LINKS")
    assert rc == 1 and "without 5 entry(ies)" in err, err
    assert out.count("skipped: /link") == 2 and "skipped: 3 more" in out, out


# --------------------------------------------------------------------- names


def test_iso_9660_1999_names_come_back_whole(library, tmp_path):
    """genisoimage -iso-level 4 writes names as they are, without ";1" versions, and an enhanced
    volume descriptor (ISO 9660:1999). Import cut every name at its last ";" and dropped a
    final dot ('file;semi.txt' became 'file', 'a;1.txt' and 'a;2.txt' both 'a': refused), and
    refused a name of UTF-8 bytes as damaged."""
    tree = tmp_path / "tree"
    (tree / "Dir.name").mkdir(parents=True)
    names = ["file;semi.txt", "trailing.", "a;1.txt", "a;2.txt", "x;2", "ünï.txt", "Dir.name/inner;1.dat"]
    for index, name in enumerate(names):
        (tree / name).write_bytes(b"%d" % index)
    with open(os.path.join(os.fsencode(tree), b"caf\xe9.txt"), "wb") as handle:  # Latin-1 bytes on the host
        handle.write(b"latin")
    image = tmp_path / "l4.iso"
    subprocess.run(["genisoimage", "-quiet", "-iso-level", "4", "-V", "L4", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    result = import_iso(library, file=image, vol="L4", now=NOW)
    assert result.namespace == "ISO 9660:1999" and result.files == len(names) + 1
    with library.open("L4") as volume:
        for index, name in enumerate(names):
            assert volume.read_bytes("/" + name) == b"%d" % index, name
        assert volume.read_bytes("/café.txt") == b"latin"


@pytest.mark.parametrize(("identifier", "is_dir", "name"), [
    (b"NAME.TXT;1", False, "NAME.TXT"), (b"NAME.;1", False, "NAME"), (b"NAME;1", False, "NAME"),
    (b"NAME.", False, "NAME."), (b"A;B.TXT", False, "A;B.TXT"), (b"A.B;C", False, "A.B;C"),
    (b"DIR.X", True, "DIR.X"), (b"CAF\xc3\x89.TXT;1", False, "CAFÉ.TXT"), (b"CAF\xc9.TXT;1", False, "CAFÉ.TXT"),
])
def test_iso_names_lose_only_their_version(identifier, is_dir, name):
    from optvol.interchange.iso_walk import Record, iso_name

    assert iso_name(Record(0, 0, 2 if is_dir else 0, bytes(7), identifier)) == name


def _latin1_tree(root: Path) -> None:
    """Names as a Latin-1 system writes them: bytes that are not UTF-8."""
    host = os.fsencode(root)
    os.makedirs(host + b"/r\xe9sum\xe9s")
    os.makedirs(host + b"/other")
    for name, data in ((b"/r\xe9sum\xe9s/\xfcber.txt", b"u"), (b"/r\xe9sum\xe9s/plain.txt", b"p"),
                       (b"/caf\xe9.txt", b"c"), (b"/empty\xe9", b""), (b"/empty", b""), (b"/other/x", b"x")):
        with open(host + name, "wb") as handle:
            handle.write(data)


def test_rock_ridge_names_that_are_not_utf8_take_their_joliet_names(library, tmp_path):
    """genisoimage writes Rock Ridge names as the bytes it finds: Latin-1 on a Latin-1 system.
    The whole image was refused as damaged; now such an entry takes the Joliet name of the
    same file (same data) or directory, and every other entry keeps its Rock Ridge name."""
    _latin1_tree(tmp_path / "tree")
    image = tmp_path / "latin.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-J", "-input-charset", "iso8859-1", "-V", "LATIN", "-o",
                    str(image), str(tmp_path / "tree")], check=True, capture_output=True)
    result = import_iso(library, file=image, vol="LATIN", now=NOW)
    assert result.namespace == "Rock Ridge" and (result.files, result.directories) == (6, 2)
    with library.open("LATIN") as volume:
        assert sorted(volume.listdir("/")) == ["café.txt", "empty", "emptyé", "other", "résumés"]
        assert volume.read_bytes("/résumés/über.txt") == b"u" and volume.read_bytes("/other/x") == b"x"


def test_many_names_that_are_not_utf8_in_one_directory_each_take_their_own_joliet_name(library, tmp_path):
    """A Latin-1 disc with many empty files (one shared extent) and directories in one
    directory: each takes its own Joliet name. The Joliet directory is read once for all of
    them, where reading it anew for each made 4,000 names take two minutes."""
    host = os.fsencode(tmp_path / "tree")
    for number in range(300):
        os.makedirs(host + b"/d\xe9%03d" % number if number % 10 == 0 else host, exist_ok=True)
        with open(host + b"/caf\xe9%03d" % number, "wb"):
            pass
    image = tmp_path / "many.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-J", "-input-charset", "iso8859-1", "-V", "MANY", "-o",
                    str(image), str(tmp_path / "tree")], check=True, capture_output=True)
    result = import_iso(library, file=image, vol="MANY", now=NOW)
    assert (result.files, result.directories) == (300, 30)
    with library.open("MANY") as volume:
        assert sorted(volume.listdir("/")) == sorted([f"dé{n:03d}" for n in range(0, 300, 10)]
                                                     + [f"café{n:03d}" for n in range(300)])


def test_a_joliet_directory_is_read_once_however_many_subdirectories_need_it(library, tmp_path, monkeypatch):
    """A Latin-1 disc whose root holds many directories, each with a name that is not UTF-8:
    each subdirectory finds its Joliet counterpart in the root's Joliet index. Only the last
    directory's index was kept, so the root's was read again for every subdirectory (quadratic
    in a directory's subdirectories); now each Joliet directory is read once a walk (import
    walks twice: to check and measure, then to copy)."""
    from optvol.interchange import iso_walk

    host = os.fsencode(tmp_path / "tree")
    for number in range(40):
        os.makedirs(host + b"/d%02d" % number)
        with open(host + b"/d%02d/caf\xe9" % number, "wb") as handle:
            handle.write(b"%d" % number)
    image = tmp_path / "dirs.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-J", "-input-charset", "iso8859-1", "-V", "DIRS", "-o",
                    str(image), str(tmp_path / "tree")], check=True, capture_output=True)
    reads, records = {}, iso_walk.records

    def counted(image, directory, *, block, susp_skip):
        if susp_skip is None:  # a Joliet directory
            reads[directory.extent] = reads.get(directory.extent, 0) + 1
        return records(image, directory, block=block, susp_skip=susp_skip)

    monkeypatch.setattr(iso_walk, "records", counted)
    result = import_iso(library, file=image, vol="DIRS", now=NOW)
    assert (result.files, result.directories) == (40, 40)
    assert len(reads) == 41 and set(reads.values()) == {2}, reads
    with library.open("DIRS") as volume:
        assert all(volume.read_bytes(f"/d{n:02d}/café") == b"%d" % n for n in range(40))


def test_rock_ridge_names_that_are_not_utf8_without_joliet_are_refused(library, tmp_path):
    _latin1_tree(tmp_path / "tree")
    image = tmp_path / "latin.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-input-charset", "iso8859-1", "-V", "LATIN", "-o", str(image),
                    str(tmp_path / "tree")], check=True, capture_output=True)
    before = _library_state(library)
    rc, _, err = _cli(library, "import-iso", str(image))
    assert rc == 7 and "OPV0703" in err and "not UTF-8" in err and "damaged" not in err, err
    assert _library_state(library) == before


def test_a_udf_symbolic_link_keeps_an_absolute_target():
    """ECMA-167 4/14.16: a root component (type 2) then the name 'usr' is the target /usr;
    the root's empty identifier was once read as a name, which failed, and the target was lost."""
    from optvol.interchange import udf_walk
    from optvol.interchange.udf import FILE_TYPE_SYMLINK

    def component(kind: int, identifier: bytes = b"") -> bytes:
        return bytes((kind, len(identifier), 0, 0)) + identifier

    for data, target in ((component(2) + component(5, b"\x08usr"), "/usr"),
                         (component(5, b"\x08usr") + component(5, b"\x08lib"), "usr/lib"),
                         (component(3) + component(5, b"\x08bin"), "../bin")):
        image = type("Image", (), {"read": lambda self, offset, length, what, data=data: data[offset:offset + length]})()
        link = udf_walk.Node(is_dir=False, modified=b"", attr_changed=b"", size=len(data), extents=((0, len(data)),),
                             file_type=FILE_TYPE_SYMLINK)
        assert udf_walk.symlink_target(image, link) == target


def test_a_zisofs2_z2_entry_is_refused_not_imported_compressed():
    """zisofs version 2 marks a file with Z2 as well as ZF: both reach read_zf, which refuses
    what is not version 1 ('pz'), so such a file is OPV0703, never its compressed bytes."""
    from optvol.interchange import iso_walk, zisofs

    entry = b"Z2" + bytes((16, 2)) + b"zs" + bytes((4, 15)) + (100).to_bytes(4, "little") + (100).to_bytes(4, "big")
    record = iso_walk._with_rock_ridge(iso_walk.Record(0, 0, 0, b"\x00" * 7, b"F"), entry, None, 2048)
    assert record.zf == entry
    with pytest.raises(zisofs.Unsupported):
        zisofs.read_zf(record.zf)


# --------------------------------------------------------------------- files over 4 GiB


def test_a_file_whose_iso_9660_size_genisoimage_cut_at_4_gib_is_read_whole_from_udf(tmp_path):
    """``genisoimage -allow-limited-size -udf`` records a file of 4 GiB or more in ISO 9660
    with its size's last 32 bits, and its whole size in UDF: import took the Rock Ridge tree
    with the cut size, 4 GiB of the file silently gone (bigfiles hunt of session 18). The
    source and the image are sparse (markers in a file of zeros): a few MB of disk."""
    from optvol.interchange.iso_read import read_tree

    size = (5 << 30) + 12345
    markers = {offset: f"marker at {offset}".encode() for offset in (0, (1 << 30) + 7, (4 << 30) - 40, (4 << 30) + 8,
                                                                         size - 100)}
    (tmp_path / "src").mkdir()
    with open(tmp_path / "src" / "H5", "wb") as source:
        source.truncate(size)
        for offset, marker in markers.items():
            source.seek(offset)
            source.write(marker)
    image = _limited_size_image(tmp_path / "src", tmp_path / "g5.iso")
    with read_tree(str(image)) as tree:
        assert tree.namespace == "Rock Ridge"
        (entry,) = [e for e in tree.entries() if not e.is_dir]
    assert entry.names == ("H5",) and entry.size == size and sum(length for _, length in entry.extents) == size
    with open(image, "rb") as data:
        for offset, marker in markers.items():  # each marker where the extents put that byte of the file
            for start, length in entry.extents:
                if offset < length:
                    data.seek(start + offset)
                    assert data.read(len(marker)) == marker
                    break
                offset -= length


def _limited_size_image(tree: Path, image: Path) -> Path:
    """``genisoimage -allow-limited-size -udf -R`` of ``tree``, written sparse."""
    maker = subprocess.Popen(["genisoimage", "-quiet", "-allow-limited-size", "-udf", "-R", str(tree)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    subprocess.run(["cp", "--sparse=always", "/dev/stdin", str(image)], stdin=maker.stdout, check=True)
    assert maker.wait() == 0
    return image


def test_empty_files_beside_files_of_exactly_4_gib_stay_empty_and_a_broken_udf_tree_refuses(tmp_path):
    """genisoimage points an empty file at the data of the next file, and records a file of
    exactly 4 GiB with ISO 9660 size 0: the UDF tree is matched by path, not by offset
    alone (review of session 18). Without a readable UDF tree a cut size cannot be found
    out: the image is refused (OPV0701), not imported cut."""
    from optvol import errors
    from optvol.interchange.iso_read import read_tree

    (tmp_path / "src").mkdir()
    for name in ("0_empty", "B_empty"):
        (tmp_path / "src" / name).write_bytes(b"")
    with open(tmp_path / "src" / "A4", "wb") as big:
        big.truncate(4 << 30)
        big.write(b"first")
    image = _limited_size_image(tmp_path / "src", tmp_path / "e4.iso")
    with read_tree(str(image)) as tree:
        sizes = {e.names: e.size for e in tree.entries() if not e.is_dir}
    assert sizes == {("0_empty",): 0, ("A4",): 4 << 30, ("B_empty",): 0}
    with open(image, "r+b") as data:  # the UDF anchor (sector 256): its tag no longer checks
        data.seek(256 * 2048 + 5)
        byte = data.read(1)
        data.seek(256 * 2048 + 5)
        data.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(errors.DamagedError) as caught, read_tree(str(image)) as tree:
        list(tree.entries())
    assert caught.value.message_id == "OPV0701" and "UDF" in caught.value.text


# --------------------------------------------------------------------- dates (hunt-iso of session 20)


def _dated_tree(root: Path, when: str) -> Path:
    (root / "tree").mkdir(parents=True)
    (root / "tree" / "f.txt").write_bytes(b"dated")
    subprocess.run(["touch", "-d", when, str(root / "tree" / "f.txt")], check=True)
    return root / "tree"


@pytest.mark.parametrize("zone, options, when", [
    # genisoimage writes UDF offset -1440 for UTC from about 2028 on: it read as 1970-01-01
    ("UTC", ("-udf",), datetime(2099, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ("UTC", ("-R", "-J"), datetime(2099, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),  # ISO 9660's -96
    # +14:00: offset +56, past ECMA-119's +52: it read 14 hours late; +13:45 in Chatham's summer: +55
    ("Pacific/Kiritimati", ("-R", "-J"), datetime(2024, 7, 1, 12, tzinfo=timezone.utc)),
    ("Pacific/Chatham", ("-R", "-J"), datetime(2025, 1, 15, 12, tzinfo=timezone.utc)),
    # review s20b: from 2028 on genisoimage writes every zone's offset a day off (its year in a
    # signed byte): Kathmandu +23 as -73, and as 87 where its date is a day ahead of UTC's
    ("Asia/Kathmandu", ("-R",), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),
    ("Asia/Kathmandu", ("-udf",), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),
    ("Asia/Kathmandu", ("-R",), datetime(2040, 12, 31, 23, 30, tzinfo=timezone.utc)),
    ("Asia/Kathmandu", ("-udf",), datetime(2040, 12, 31, 23, 30, tzinfo=timezone.utc)),
    ("America/St_Johns", ("-R",), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),
    ("Etc/GMT+12", ("-R",), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),  # -48 less 96: the byte wraps
    ("Europe/Berlin", ("-udf",), datetime(2030, 7, 15, 2, tzinfo=timezone.utc)),
    # review s20c: zones of +12:00 and beyond (their offset less 96 is a true one), told by the
    # image's own creation date, made before 2028; and where the local date is behind UTC's
    ("Pacific/Auckland", ("-R",), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),
    ("Pacific/Kiritimati", ("-R", "-J"), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),
    ("Pacific/Kiritimati", ("-udf",), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),
    ("Pacific/Honolulu", ("-R",), datetime(2030, 1, 15, 8, tzinfo=timezone.utc)),  # 22:00 the day before there
    ("Asia/Tokyo", ("-R", "-A", "an application"), datetime(2030, 1, 15, 12, tzinfo=timezone.utc)),  # not named
])
def test_dates_of_images_made_in_any_zone_come_back_as_they_were(library, tmp_path, zone, options, when):
    """A hunt of session 20: genisoimage's UDF dates of 2028 on, written from a UTC machine
    (offset -1440 minutes, which Python's timezone() refuses), came back as 1970-01-01 for
    every date of the file; images made at UTC+14:00 and +13:45 (offsets past ECMA-119's
    +52 quarter hours) came back 14 hours and 13¾ hours late. An offset within the zones
    of the world is applied; one past them (a maker's bug) leaves the time as written."""
    tree = _dated_tree(tmp_path, when.strftime("%Y-%m-%d %H:%M:%S UTC"))
    image = tmp_path / "dated.iso"
    subprocess.run(["genisoimage", "-quiet", *options, "-o", str(image), str(tree)], check=True,
                   env={**os.environ, "TZ": zone})
    rc, _, err = _cli(library, "import-iso", str(image), "--vol", "DATED")
    assert rc == 0, err
    with library.open("DATED") as volume:
        found = volume.stat("/f.txt")
    assert found.modified == when, (zone, found.modified)  # (attributes changed: the host file's ctime, now)


def test_date_offsets_are_read_as_their_maker_wrote_them():
    """Reviews s20c and s20d: genisoimage writes offsets a day off for dates from 2028 on,
    in range or not; other makers write them right. An offset in range is taken as it is
    unless genisoimage's image says it is, from 2028 on; one out of range is UTC before
    2028 and genisoimage's from then on (``-A`` may have replaced its name); its readings
    are told apart by the image's own zone (its creation date's offset, right in any year)."""
    from optvol.interchange.iso_walk import UNTOLD, Zones

    for byte in range(-48, 57):  # xorriso, bsdtar, cdrtools' mkisofs, optvol: their zone and the image's agree
        for zones in (UNTOLD, Zones(hint=byte), Zones(hint=max(-48, byte - 4)), Zones(hint=min(56, byte + 4))):
            assert zones.quarters(byte, 2020) == zones.quarters(byte, 2030) == byte, (byte, zones)
    assert all(UNTOLD.quarters(byte, 2027) == 0 for byte in (*range(-128, -48), *range(57, 128)))
    genisoimage = Zones(maker_bug=True)
    assert all(genisoimage.quarters(byte, 2027) == (byte if -48 <= byte <= 56 else 0) for byte in range(-128, 128))
    assert (genisoimage.quarters(-73, 2030), genisoimage.quarters(87, 2030), genisoimage.quarters(-96, 2030)) == (23, 23, 0)
    assert Zones(maker_bug=True, hint=56).quarters(-40, 2030) == 56  # Kiritimati's -40: told by its zone
    assert Zones(maker_bug=True, hint=-40).quarters(-40, 2030) == -40  # Honolulu's, its date behind UTC's
    assert Zones(hint=36).quarters(-60, 2030) == 36  # genisoimage -A in Tokyo: no name, out of range
    from optvol.interchange.iso_walk import zones_of

    def primary(application: bytes, created: bytes) -> bytes:
        sector = bytearray(2048)
        sector[574:574 + len(application)], sector[813:830] = application, created
        return bytes(sector)

    assert zones_of(primary(b"GENISOIMAGE ISO 9660/HFS FILESYSTEM CREATOR", b"2026120612000000" + bytes([48]))) == Zones(
        maker_bug=True, hint=48)
    assert zones_of(primary(b"MKISOFS ISO9660/UDF FILESYSTEM BUILDER", b"2030011512000000" + bytes([36]))) == Zones(hint=36)
    assert zones_of(primary(b"", b"0" * 16 + b"\x00")) == UNTOLD  # "not specified": no zone to go by


@pytest.mark.parametrize("udf", [False, True])
def test_a_time_at_the_epoch_survives_export_and_import(tmp_path, udf):
    """A hunt of session 20: a created time of exactly 1970-01-01T00:00:00Z (0 µs) read as
    "no time" (``x or modified``) and came back as the file's modified time."""
    from optvol.interchange import export_iso
    from optvol.library import Library

    epoch, later = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2001, 1, 1, tzinfo=timezone.utc)
    now = [epoch]
    library = Library(tmp_path / "lib", clock=lambda: now[0])
    make_volume(library, "EPOCH")
    with library.open("EPOCH") as volume:
        volume.write_bytes("/f.txt", b"one")  # created at the epoch
        now[0] = later
        volume.write_bytes("/f.txt", b"two")  # modified in 2001
        source = volume.stat("/f.txt")
    assert source.created == epoch and source.modified == later
    export_iso(library, vol="EPOCH", file=tmp_path / "e.iso", now=NOW, udf=udf)
    assert _cli(library, "import-iso", str(tmp_path / "e.iso"), "--vol", "BACK")[0] == 0
    with library.open("BACK") as volume:
        found = volume.stat("/f.txt")
    assert (found.created, found.modified, found.attr_changed) == (source.created, source.modified, source.attr_changed)


def test_a_date_past_year_9999_in_utc_is_the_last_moment_a_volume_holds(library, tmp_path):
    """A hunt of session 20: a Rock Ridge date valid as written (9999-12-31 23:59:59 at
    UTC-12) lies in year 10000 in UTC: import stored it, and ls -l, WRKOPTF, DSPOPT and
    export-iso of the volume then ended in a traceback. It is the last moment of 9999."""
    from optvol.interchange.iso_walk import date_micros
    from optvol.model import from_micros

    last = date_micros(b"9999123123595900" + bytes([256 - 48]))
    first = date_micros(b"0001010100000000" + bytes([52]))
    assert from_micros(last) == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert from_micros(first) == datetime(1, 1, 1, tzinfo=timezone.utc)
    assert from_micros(last + 10**12).year == 9999  # one an older import stored: shown, not a traceback


@pytest.mark.parametrize("udf", [False, True])
def test_a_volume_holding_a_date_an_older_import_stored_past_9999_is_exported(library, tmp_path, udf):
    """Review s20b: export-iso of such a volume ended in OverflowError (exit 70): it is
    exported at the last moment of 9999, as ``ls`` shows it."""
    from optvol.model import _EARLIEST, _LATEST

    make_volume(library, "EXT")
    with library.open("EXT") as volume, volume.copy_writer() as writer:
        for name, moment in (("past", _LATEST + 2 * 86_400_000_000), ("before", _EARLIEST - 2 * 86_400_000_000)):
            writer.write_file("/" + name, data=name.encode(), size=len(name), created=moment, modified=moment,
                              attr_changed=moment)
    rc, _, err = _cli(library, "export-iso", "EXT", str(tmp_path / "x.iso"), *(["--udf"] if udf else []))
    assert rc == 0, err
    assert _cli(library, "import-iso", str(tmp_path / "x.iso"), "--vol", "BACK")[0] == 0
    with library.open("BACK") as volume:
        assert volume.stat("/past").modified.year == 9999 and volume.stat("/before").modified.year == 1


def test_an_empty_file_of_a_bsdtar_image_is_imported(library, tmp_path):
    """A hunt of session 20: libarchive gives an empty file the extent 0xFFFFFFF0, and import
    refused every such image as damaged ("lies beyond the end of the image"): an empty
    file's extent may lie anywhere."""
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_bytes(b"hello")
    (tmp_path / "tree" / "empty.txt").write_bytes(b"")
    image = tmp_path / "b.iso"
    subprocess.run(["bsdtar", "-cf", str(image), "--format=iso9660", "-C", str(tmp_path / "tree"), "."], check=True)
    rc, _, err = _cli(library, "import-iso", str(image), "--vol", "BSD")
    assert rc == 0, err
    with library.open("BSD") as volume:
        assert (volume.read_bytes("/a.txt"), volume.read_bytes("/empty.txt")) == (b"hello", b"")


@pytest.mark.parametrize("name", [b"file.txt", b"caf\xe9.txt"])
def test_a_resource_fork_of_an_hfs_hybrid_is_left_out_and_listed(library, tmp_path, name):
    """A hunt of session 20: genisoimage -apple records a Mac resource fork as an ISO 9660
    associated file (flag bit 2) under its data file's name; import refused the whole image
    ("two versions of one name"). A volume holds no resource fork: the data file is
    imported, the fork left out and listed (OPV0705), as Linux and 7-Zip hide it. A Latin-1
    Rock Ridge name (review s20b): the data file takes its Joliet name; the fork, which has
    no Joliet record, is listed under its Latin-1 reading (the image was refused)."""
    tree = tmp_path / "ap"
    tree.mkdir()
    (tree / os.fsdecode(name)).write_bytes(b"data\n")
    entries = [(2, b"RESOURCEFORKDATA" * 4), (9, b"TEXTttxt" + bytes(24))]  # AppleDouble: resource fork, Finder info
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", len(entries))
    at, body, table = len(header) + 12 * len(entries), b"", b""
    for kind, data in entries:
        table += struct.pack(">III", kind, at + len(body), len(data))
        body += data
    (tree / os.fsdecode(b"._" + name)).write_bytes(header + table + body)
    image = tmp_path / "ap.iso"
    subprocess.run(["genisoimage", "-quiet", "-apple", "-R", "-J", "--osx-double", "-input-charset", "iso8859-1",
                    "-o", str(image), str(tree)], check=True)
    rc, out, err = _cli(library, "--json", "import-iso", str(image), "--vol", "AP")
    assert rc == 1 and "OPV0705" in err and "resource forks" in err, (rc, err)
    assert [(s["path"], s["type"]) for s in json.loads(out)["skipped_entries"]] == [
        ("/" + name.decode("latin-1"), "associated file (a resource fork)")], out
    with library.open("AP") as volume:
        assert volume.listdir("/") == [name.decode("latin-1")] and volume.read_bytes("/" + volume.listdir("/")[0]) == b"data\n"
