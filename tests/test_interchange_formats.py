"""import-iso of what real images hold beyond plain files: zisofs-compressed files, symbolic
links and other special files, ISO 9660:1999 names, names in other encodings; each image
made here by xorriso or genisoimage and read back by bsdtar too."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from optvol.cli import main
from optvol.interchange import import_iso

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
ZISOFS_MAGIC = bytes((0x37, 0xE4, 0x53, 0x96, 0xC9, 0xDB, 0xD6, 0x07))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(library, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["--library", str(library.root), *argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


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
