"""import-iso of images of UDF alone, with no ISO 9660 descriptors: what Linux's mkudffs,
NetBSD's newfs_udf and udfclient, DVD-RAM and most UDF discs hold. Such an image was
refused ("the image has no ISO 9660 volume descriptors"). Every image here is made by those
tools; one has a file's creation time changed in place, its descriptor's CRC made anew, to
show that an extended file entry's creation time is read."""

from __future__ import annotations

import binascii
import json
import os
import struct
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from test_interchange import _cli, _sha

TAG_EXTENDED_FILE_ENTRY = 266
LABEL = "UDFONLY1"


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"hello\n",
        "empty.txt": b"",
        "D1/with space.txt": b"spaced\n",
        "D1/big.bin": os.urandom(300_000),
        "D1/D2/deep.txt": b"deep\n" * 1000,
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return files


def _udfclient_image(tmp_path: Path, block: int) -> tuple[Path, dict[str, bytes], float, float]:
    """An image newfs_udf formats (logical blocks of ``block`` bytes) and udfclient fills
    with ``_tree``; and the times (seconds) before and after udfclient wrote it."""
    tree, image = tmp_path / "tree", tmp_path / f"u{block}.img"
    tree.mkdir()
    files = _tree(tree)
    with open(image, "wb") as handle:
        handle.truncate(128 << 20)  # (sparse; newfs_udf lays out 4096-byte blocks in no less)
    subprocess.run(["newfs_udf", "-b", str(block), "-L", LABEL, str(image)], check=True, capture_output=True)
    listed = subprocess.run(["udfclient", "-b", str(block), str(image)], input="ls\nquit\n", text=True,
                            capture_output=True, check=True).stdout
    fileset = next(line.split()[-1] for line in listed.splitlines() if line.startswith("drwx"))
    before = time.time()
    done = subprocess.run(["udfclient", "-b", str(block), "-W", str(image)], cwd=tree, text=True, capture_output=True,
                          input=f"cd {fileset}\nmput a.txt empty.txt D1\nquit\n", check=True)
    after = time.time()
    assert "finished" in done.stdout, done.stdout
    info = subprocess.run(["udfinfo", str(image)], capture_output=True, text=True, check=True).stdout
    assert f"blocksize={block}" in info and f"label={LABEL}" in info, info
    return image, files, before, after


@pytest.mark.parametrize("block", [2048, 512, 1024, 4096])  # (4096: the recognition sequence a block apart, review s21b F1)
def test_an_image_of_udf_alone_is_imported_whole(library, tmp_path, block):
    image, files, before, after = _udfclient_image(tmp_path, block)
    rc, out, err = _cli(library, "--json", "import-iso", str(image))
    assert rc == 0, err
    result = json.loads(out)
    assert (result["volume"], result["namespace"], result["files"]) == (LABEL, "UDF", len(files))
    with library.open(LABEL) as volume:
        found = {path.lstrip("/"): volume.read_bytes(path) for path in _files(volume, "/")}
        assert {p: _sha(d) for p, d in found.items()} == {p: _sha(d) for p, d in files.items()}
        for path in files:
            info = volume.stat("/" + path)
            for moment in (info.created, info.modified, info.attr_changed):  # udfclient writes its own time
                assert int(before) - 1 <= moment.timestamp() <= after + 1, (path, moment)
    assert subprocess.run(["udfinfo", str(image)], capture_output=True).returncode == 0  # left as it was


def _files(volume, directory: str) -> list[str]:
    paths = []
    for name in volume.listdir(directory):
        path = directory.rstrip("/") + "/" + name
        paths += _files(volume, path) if volume.stat(path).is_dir else [path]
    return paths


@pytest.mark.parametrize(("options", "block"), [
    (["--media-type=dvdram"], 2048),  # UDF 2.01, extended file entries, as a DVD-RAM holds
    (["--media-type=hd"], 512),
    (["--media-type=dvdram", "--udfrev=0x0102"], 2048),  # file entries
])
def test_an_empty_volume_mkudffs_made_is_imported_under_its_label(library, tmp_path, options, block):
    image = tmp_path / "mk.img"
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkudffs", *options, "--lvid=MKUDF1", str(image)], check=True, capture_output=True)
    assert f"blocksize={block}" in subprocess.run(["udfinfo", str(image)], capture_output=True, text=True).stdout
    rc, out, err = _cli(library, "--json", "import-iso", str(image))
    assert rc == 0, err
    assert (json.loads(out)["volume"], json.loads(out)["files"], json.loads(out)["directories"]) == ("MKUDF1", 0, 0)
    with library.open("MKUDF1") as volume:
        assert volume.listdir("/") == []


@pytest.mark.parametrize(("media", "kind"), [("bdr", "virtual partitions (a VAT"), ("cdr", "virtual partitions (a VAT")])
def test_partitions_the_reader_does_not_follow_are_refused_by_name(library, tmp_path, media, kind):
    """mkudffs for a BD-R (UDF 2.50) or a CD-R writes a virtual partition (a VAT), which the
    reader does not follow, and says so (review s21b F2: "metadata or virtual" for any)."""
    image = tmp_path / f"{media}.img"
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkudffs", f"--media-type={media}", "--lvid=REFUSED", str(image)], check=True, capture_output=True)
    rc, _, err = _cli(library, "import-iso", str(image))
    assert rc == 7 and "OPV0701" in err and f"UDF {kind}" in err and err.rstrip().endswith("are not supported."), err
    assert not library.exists("REFUSED")


def test_an_extended_file_entrys_creation_time_is_the_files_created_time(library, tmp_path):
    """udfclient writes a file's creation time equal to its modified time; here the creation
    time of a.txt's extended file entry is set back to 2001-02-03 04:05:06.789 at +01:00
    and its descriptor's CRC written anew (udfinfo still reads the image)."""
    image, _, _, _ = _udfclient_image(tmp_path, 2048)
    data = bytearray(image.read_bytes())
    entry = _entry_of(data, b"a.txt")
    stamp = struct.pack("<HHBBBBBBBB", 0x1000 | 60, 2001, 2, 3, 4, 5, 6, 78, 90, 0)
    data[entry + 104:entry + 116] = stamp
    crc_length = struct.unpack_from("<H", data, entry + 10)[0]
    struct.pack_into("<H", data, entry + 8, binascii.crc_hqx(bytes(data[entry + 16:entry + 16 + crc_length]), 0))
    data[entry + 4] = (sum(data[entry:entry + 4]) + sum(data[entry + 5:entry + 16])) & 0xFF
    image.write_bytes(bytes(data))
    assert subprocess.run(["udfinfo", str(image)], capture_output=True).returncode == 0
    rc, _, err = _cli(library, "import-iso", str(image))
    assert rc == 0, err
    with library.open(LABEL) as volume:
        info, other = volume.stat("/a.txt"), volume.stat("/empty.txt")
    assert info.created == datetime(2001, 2, 3, 3, 5, 6, 789_000, tzinfo=timezone.utc)
    assert info.modified != info.created and other.created == other.modified


def _entry_of(data: bytearray, name: bytes) -> int:
    """The byte offset of the extended file entry a file identifier named ``name`` (CS0, 8 bits) points at."""
    cs0 = b"\x08" + name
    at = data.index(cs0)
    identifier = at - 38  # the name follows a 38-byte file identifier (no implementation use here)
    assert struct.unpack_from("<H", data, identifier)[0] == 257 and data[identifier + 19] == len(cs0)
    block = struct.unpack_from("<I", data, identifier + 24)[0]
    for entry in range(0, len(data), 2048):  # the partition's start: find the entry by its tag location
        if struct.unpack_from("<H", data, entry)[0] == TAG_EXTENDED_FILE_ENTRY and \
                struct.unpack_from("<I", data, entry + 12)[0] == block:
            return entry
    raise AssertionError("no extended file entry for " + name.decode())


def test_names_udfclient_stores_as_utf_8_bytes_come_in_whole_where_latin_1_cannot_read_them(library, tmp_path):
    """udfclient stores a name's UTF-8 bytes as 8-bit characters. Read as Latin-1 (the
    standard), Cyrillic and CJK names hold C1 controls, which no name holds: the whole image
    was refused (review s21b F3). Those are read as UTF-8; a name Latin-1 reads (café's
    UTF-8 bytes: cafÃ©) stays as the standard reads it, as Linux shows it."""
    tree, image = tmp_path / "tree", tmp_path / "names.img"
    (tree / "N").mkdir(parents=True)
    for name in ("Привет.txt", "日本.txt", "café.txt"):  # in a directory: udfclient names its files as read
        (tree / "N" / name).write_bytes(name.encode())
    with open(image, "wb") as handle:
        handle.truncate(32 << 20)
    subprocess.run(["newfs_udf", "-b", "2048", "-L", LABEL, str(image)], check=True, capture_output=True)
    listed = subprocess.run(["udfclient", "-b", "2048", str(image)], input="ls\nquit\n", text=True,
                            capture_output=True, check=True).stdout
    fileset = next(line.split()[-1] for line in listed.splitlines() if line.startswith("drwx"))
    subprocess.run(["udfclient", "-b", "2048", "-W", str(image)], cwd=tree, capture_output=True, check=True,
                   input=f"cd {fileset}\nmput N\nquit\n".encode())
    rc, _, err = _cli(library, "import-iso", str(image))
    assert rc == 0, err
    with library.open(LABEL) as volume:
        assert sorted(volume.listdir("/N")) == sorted(["Привет.txt", "日本.txt", "cafÃ©.txt"])
        assert volume.read_bytes("/N/Привет.txt") == "Привет.txt".encode()


@pytest.mark.parametrize("media", ["cdrw", "dvdrw"])
def test_a_sparable_partition_that_moved_no_packet_is_read_and_one_that_did_is_refused(library, tmp_path, media):
    """mkudffs formats a CD-RW or DVD-RW image with a sparable partition (OSTA UDF 2.01
    §2.2.9), udfclient fills it. While its sparing tables move no packet it reads as a plain
    partition; a table that moves one (a disc with bad spots) refuses the image, since its
    files would read the packets' old places."""
    tree, image = tmp_path / "tree", tmp_path / f"{media}.img"
    tree.mkdir()
    files = _tree(tree)
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkudffs", f"--media-type={media}", "--lvid=RWDISC", str(image)], check=True, capture_output=True)
    listed = subprocess.run(["udfclient", "-b", "2048", str(image)], input="ls\nquit\n", text=True,
                            capture_output=True, check=True).stdout
    fileset = next(line.split()[-1] for line in listed.splitlines() if line.startswith("drwx"))
    subprocess.run(["udfclient", "-b", "2048", "-W", str(image)], cwd=tree, text=True, capture_output=True, check=True,
                   input=f"cd {fileset}\nmput a.txt empty.txt D1\nquit\n")
    assert "sparable" in subprocess.run(["udfclient", "-b", "2048", str(image)], input="quit\n", text=True,
                                        capture_output=True).stdout
    moved = tmp_path / "moved.img"
    data = bytearray(image.read_bytes())
    table = data.index(b"*UDF Sparing Table") - 17
    assert struct.unpack_from("<H", data, table + 48)[0] > 0  # entries, all free
    struct.pack_into("<II", data, table + 56, 1000, 2000)  # packet 1000 moved to 2000
    moved.write_bytes(bytes(data))
    rc, out, err = _cli(library, "--json", "import-iso", str(image))
    assert rc == 0 and json.loads(out)["files"] == len(files), err
    with library.open("RWDISC") as volume:
        assert {p.lstrip("/"): _sha(volume.read_bytes(p)) for p in _files(volume, "/")} == {
            p: _sha(d) for p, d in files.items()}
    rc, _, err = _cli(library, "import-iso", str(moved), "--vol", "MOVED")
    assert rc == 7 and "sparable partitions whose packets were moved" in err and not library.exists("MOVED"), err


def test_a_sparing_table_the_image_ends_inside_does_not_count_as_read(library, tmp_path):
    """review s21d F1: a table cut short by the image's end counted as read; with the other
    copy unreadable, a packet moved past the cut went unseen and the files read old places."""
    image = tmp_path / "rw.img"
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkudffs", "--media-type=cdrw", "--lvid=CUT", str(image)], check=True, capture_output=True)
    data = bytearray(image.read_bytes())
    first, second = [i - 17 for i in (data.index(b"*UDF Sparing Table"), data.rindex(b"*UDF Sparing Table"))]
    assert first < second
    data[first + 17] ^= 0xFF  # the first copy unreadable
    entries = struct.unpack_from("<H", data, second + 48)[0]
    struct.pack_into("<II", data, second + 56 + 8 * (entries - 1), 1000, 2000)  # the last entry moves a packet
    image.write_bytes(bytes(data[:second + 56 + 8]))  # the image ends inside the second copy
    rc, _, err = _cli(library, "import-iso", str(image))
    assert rc == 7 and "the sparing tables of the UDF sparable partition cannot be read" in err, err


def test_the_non_allocatable_space_file_of_udf_1_50_is_not_imported(library, tmp_path):
    """review s21d: mkudffs's UDF 1.50 CD-RW image holds a hidden root file "Non-Allocatable
    Space" (the partition's unusable blocks): the file system's, not a user's."""
    image = tmp_path / "v150.img"
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkudffs", "--media-type=cdrw", "--udfrev=0x0150", "--lvid=V150", str(image)], check=True,
                   capture_output=True)
    rc, out, err = _cli(library, "--json", "import-iso", str(image))
    assert rc == 0 and json.loads(out)["files"] == 0, err
    with library.open("V150") as volume:
        assert volume.listdir("/") == []
