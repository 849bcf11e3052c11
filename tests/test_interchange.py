"""export-iso and import-iso against real tools: xorriso, isoinfo, 7z, bsdtar, genisoimage."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import data_path, make_volume
from optvol import errors, model
from optvol.cli import main
from optvol.interchange import export_iso, import_iso
from optvol.interchange.iso_import import _label
from optvol.interchange.iso_writer import write_image
from optvol.interchange.names import Namer
from optvol.model import MediaType, VolumeType

LONG = "a file name that is much longer than the sixty four characters Joliet allows.txt"
WHEN = datetime(2024, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
TREE = {
    "Reports/2024/q1 summary.txt": b"first quarter\n" * 100,
    f"Reports/2024/{LONG}": b"long\n",
    "Reports/empty.dat": b"",
    "a/b/c/d/e/f/g/h/i/j/deep.bin": bytes(range(256)) * 40,
    "MixedCase.Name.tar.gz": os.urandom(300_000),
}

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)  # when the exports are made


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(library, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["--library", str(library.root), *argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def filled(library):
    """Volume PVOL1 holding TREE (files written one clock tick apart)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        for path, data in TREE.items():
            if "/" in path:
                volume.mkdir("/" + path.rsplit("/", 1)[0], parents=True, exist_ok=True)
            volume.write_bytes("/" + path, data)
    return library


def _expected_times(library) -> dict[str, float]:
    with library.open("PVOL1") as volume:
        return {info.path[1:]: info.modified.timestamp() for info in volume.iter_files("/", recursive=True)}


def _check_extracted(root: Path, times: dict[str, float], *, joliet: bool = False) -> None:
    """Bytes and modified times of TREE below ``root`` (``joliet``: long names cut to 64)."""
    for path, data in TREE.items():
        extracted = root / path
        if joliet and path.endswith(LONG):
            extracted = extracted.with_name(Namer().joliet(LONG))
        assert _sha(extracted.read_bytes()) == _sha(data), path
        assert abs(extracted.stat().st_mtime - times[path]) < 1.0, path


@pytest.mark.parametrize("udf", [False, True], ids=["iso", "udf"])
def test_tools_list_and_extract_our_image(filled, tmp_path, udf):
    image = tmp_path / "out.iso"
    args = ["export-iso", "pvol1", str(image)] + (["--udf"] if udf else [])
    rc, out, err = _cli(filled, *args)
    assert rc == 0, err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    times = _expected_times(filled)

    info = subprocess.run(["isoinfo", "-d", "-i", str(image)], capture_output=True, text=True).stdout
    assert "Volume id: PVOL1" in info and "Joliet" in info and "Rock Ridge" in info
    listing = subprocess.run(["isoinfo", "-R", "-l", "-i", str(image)], capture_output=True, text=True).stdout
    for path, data in TREE.items():
        name = path.rsplit("/", 1)[-1]
        assert any(line.endswith(" " + name + " ") or line.endswith(" " + name) for line in listing.splitlines()
                   if f" {len(data)} " in line), name
    found = subprocess.run(["xorriso", "-indev", str(image), "-find", "/", "-type", "f"],
                           capture_output=True, text=True).stdout
    assert {line.strip().strip("'")[1:] for line in found.splitlines() if line.startswith("'")} == set(TREE)

    for tool, command in (
        ("7z", ["7z", "x", "-y", f"-o{tmp_path / '7z'}", str(image)]),
        ("bsdtar", ["bsdtar", "-x", "-f", str(image), "-C", str(tmp_path / "bsdtar")]),
        ("xorriso", ["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(tmp_path / "xorriso")]),
    ):
        (tmp_path / tool).mkdir(exist_ok=True)
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, (tool, done.stderr)
        _check_extracted(tmp_path / tool, times, joliet=tool == "7z" and not udf)  # 7-Zip reads no Rock Ridge
    listed = subprocess.run(["7z", "l", str(image)], capture_output=True, text=True).stdout
    assert (LONG if udf else Namer().joliet(LONG)) in listed
    assert "Reports/2024/q1 summary.txt" in subprocess.run(["bsdtar", "tf", str(image)], capture_output=True, text=True).stdout


def test_backup_volume_is_not_exported(filled, tmp_path):
    """Only CPYOPT reads a *BACKUP volume's files (DESIGN §1): an image of it, which any
    program reads and import-iso makes a primary of, is refused (OPV0101, exit 5) and nothing
    is written (rev28b F1); restored onto a primary by CPYOPT, the files export."""
    make_volume(filled, "BVOL1", type=VolumeType.BACKUP)
    rc, _, err = _cli(filled, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    assert rc == 0, err
    out = tmp_path / "out"
    out.mkdir()
    for argv in (["export-iso", "BVOL1", str(out / "backup.iso")], ["export-iso", "--udf", "BVOL1", str(out / "b.iso")]):
        rc, stdout, err = _cli(filled, *argv)
        assert rc == 5 and "OPV0101" in err and stdout == "", (argv, rc, err)
    with pytest.raises(errors.NotAllowedError):
        export_iso(filled, vol="BVOL1", file=out / "backup.iso", now=NOW)
    # Nor by the function export-iso calls, given the volume by a program (hunt29c F2).
    with filled.open("BVOL1") as backup, open(tmp_path / "direct.iso", "wb") as image:
        with pytest.raises(errors.NotAllowedError) as info:
            write_image(backup, image.fileno(), volume_id="BVOL1", now=NOW)
        assert info.value.message_id == "OPV0101" and os.fstat(image.fileno()).st_size == 0
    assert list(out.iterdir()) == []
    make_volume(filled, "RESTORE")
    rc, _, err = _cli(filled, "cpyopt", "BVOL1 *BACKUP", "/", "RESTORE", "--cpysubdir", "*YES", "--sltfile", "*ALL")
    assert rc == 0, err
    assert export_iso(filled, vol="RESTORE", file=out / "restored.iso", now=NOW).files == len(TREE)
    (tmp_path / "x").mkdir()
    subprocess.run(["bsdtar", "-x", "-f", str(out / "restored.iso"), "-C", str(tmp_path / "x")], check=True)
    assert (tmp_path / "x" / "MixedCase.Name.tar.gz").read_bytes() == TREE["MixedCase.Name.tar.gz"]


def test_damaged_file_fails_export_and_leaves_nothing(filled, tmp_path):
    with filled.open("PVOL1") as volume:
        _, row = volume.file_row("/MixedCase.Name.tar.gz")
        offset = (row.sector + row.header_sectors) * volume.image.sector_size + 1000
    with open(data_path(filled, "PVOL1"), "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    rc, _, err = _cli(filled, "export-iso", "PVOL1", str(tmp_path / "bad.iso"))
    assert rc == 7 and "CPF1F28" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "lib"]


def test_media_type_follows_size():
    now = datetime.now(timezone.utc)
    assert _label("A", 600 * 1000**2, now)["media_type"] == MediaType.CD_ROM
    assert _label("A", 700 * 1000**2, now)["media_type"] == MediaType.DVD_ROM
    huge = _label("A", 9 * 1000**3, now)
    assert huge["media_type"] == MediaType.DVD_ROM and huge["capacity"] >= 9 * 1000**3


# --------------------------------------------------------------------- images made by real tools


def _host_tree(root: Path) -> dict[str, float]:
    """TREE on the host with distinct modified times; returns path -> mtime."""
    times = {}
    for index, (path, data) in enumerate(TREE.items()):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        stamp = WHEN.timestamp() + 3600 * index
        os.utime(target, (stamp, stamp))
        times[path] = stamp
    (root / "empty dir").mkdir()
    return times


MAKERS = {
    "genisoimage-JR-udf": ["genisoimage", "-quiet", "-J", "-joliet-long", "-R", "-udf"],
    "genisoimage-R": ["genisoimage", "-quiet", "-R"],
    "xorriso-JR": ["xorriso", "-as", "mkisofs", "-quiet", "-J", "-joliet-long", "-R"],
    "genisoimage-udf": ["genisoimage", "-quiet", "-udf", "-D"],  # -D: without Rock Ridge it drops deep trees
}


@pytest.mark.parametrize("maker", sorted(MAKERS))
def test_import_images_of_real_tools(library, tmp_path, maker):
    times = _host_tree(tmp_path / "tree")
    image = tmp_path / "in.iso"
    subprocess.run([*MAKERS[maker], "-V", "Tool_Disc", "-o", str(image), str(tmp_path / "tree")],
                   check=True, capture_output=True)
    rc, out, err = _cli(library, "--json", "import-iso", str(image))
    assert rc == 0, err
    assert '"media_type": "*CD-ROM"' in out
    with library.open("TOOL_DISC") as volume:
        info = volume.info()
        assert (info.media_type, info.media_format) == (MediaType.CD_ROM, model.MediaFormat.ISO9660)
        assert volume.is_dir("/empty dir")
        for path, data in TREE.items():
            stat = volume.stat("/" + path)
            assert stat.size == len(data) and stat.sha256 == _sha(data), path
            assert abs(stat.modified.timestamp() - times[path]) < 1.0, path
    rc, out, _ = _cli(library, "cat", "/QOPT/TOOL_DISC/Reports/2024/q1 summary.txt")
    assert rc == 0 and out == TREE["Reports/2024/q1 summary.txt"].decode()
    rc, _, err = _cli(library, "cp", "-r", "/QOPT/TOOL_DISC/a", str(tmp_path / "back"))
    assert rc == 0, err
    assert (tmp_path / "back/b/c/d/e/f/g/h/i/j/deep.bin").read_bytes() == TREE["a/b/c/d/e/f/g/h/i/j/deep.bin"]
    assert _cli(library, "dspopt", "TOOL_DISC")[0] == 0
    rc, _, err = _cli(library, "cp", str(image), "/QOPT/TOOL_DISC/new.iso")
    assert rc == 5 and "CPF1F63" in err


def test_import_joliet_only_uses_joliet_names(library, tmp_path):
    _host_tree(tmp_path / "tree")
    image = tmp_path / "j.iso"
    subprocess.run(["genisoimage", "-quiet", "-J", "-joliet-long", "-V", "JOL", "-o", str(image), str(tmp_path / "tree")],
                   check=True, capture_output=True)
    result = import_iso(library, file=image, now=datetime.now(timezone.utc))
    assert result.namespace == "Joliet"
    with library.open("JOL") as volume:
        assert volume.stat("/MixedCase.Name.tar.gz").size == len(TREE["MixedCase.Name.tar.gz"])


def test_import_plain_iso_uses_iso_names(library, tmp_path):
    _host_tree(tmp_path / "tree")
    image = tmp_path / "p.iso"
    subprocess.run(["genisoimage", "-quiet", "-D", "-V", "PLAIN", "-o", str(image), str(tmp_path / "tree")],
                   check=True, capture_output=True)
    result = import_iso(library, file=image, now=datetime.now(timezone.utc))
    assert result.namespace == "ISO 9660" and result.files == len(TREE)
    with library.open("PLAIN") as volume:
        assert volume.stat("/REPORTS/EMPTY.DAT").size == 0


@pytest.mark.parametrize("name", ["Ünïcode fïlé.txt", "日本語のファイル.txt"], ids=["latin-1", "utf-16"])
def test_import_udf_names_beyond_ascii(library, tmp_path, name):
    """UDF stores names in OSTA CS0: one byte a character (Latin-1) when they fit, else UTF-16.
    A UDF-only image with such names was refused as damaged (names read as UTF-8)."""
    tree = tmp_path / "tree"
    (tree / "Dïr").mkdir(parents=True)
    (tree / "Dïr" / name).write_bytes(b"beyond ascii")
    image = tmp_path / "u.iso"
    subprocess.run(["genisoimage", "-quiet", "-udf", "-D", "-V", "UDFNAMES", "-o", str(image), str(tree)],
                   check=True, capture_output=True)
    result = import_iso(library, file=image, now=datetime.now(timezone.utc))
    assert result.namespace == "UDF"
    with library.open("UDFNAMES") as volume:
        assert volume.stat(f"/Dïr/{name}").sha256 == _sha(b"beyond ascii")


def test_invalid_volume_identifier_needs_vol(library, tmp_path):
    _host_tree(tmp_path / "tree")
    image = tmp_path / "v.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-V", "bad name!", "-o", str(image), str(tmp_path / "tree")],
                   check=True, capture_output=True)
    rc, _, err = _cli(library, "import-iso", str(image))
    assert rc == 2 and "OPV0702" in err and "--vol" in err
    assert _cli(library, "import-iso", str(image), "--vol", "good.name")[0] == 0
    assert library.volume_ids() == ["GOOD.NAME"]
    rc, _, err = _cli(library, "import-iso", str(image), "--vol", "good.name")
    assert rc == 4


def test_round_trip_keeps_names_bytes_and_times(filled, tmp_path):
    image = tmp_path / "rt.iso"
    export_iso(filled, vol="PVOL1", file=image, udf=True, now=NOW)
    import_iso(filled, file=image, vol="COPY1", now=datetime.now(timezone.utc))
    with filled.open("PVOL1") as source, filled.open("COPY1") as copy:
        before = {(i.path, i.size, i.sha256, int(i.modified.timestamp())) for i in source.iter_files("/", recursive=True)}
        after = {(i.path, i.size, i.sha256, int(i.modified.timestamp())) for i in copy.iter_files("/", recursive=True)}
        assert before == after
        assert [d.path for d in source.iter_dirs("/")] == [d.path for d in copy.iter_dirs("/")]


def _isoinfo_flags(image: Path, *, joliet: bool) -> dict[str, int]:
    """The file flags byte of every record, by name, as isoinfo lists them ("[ extent flags]")."""
    listing = subprocess.run(["isoinfo", *(["-J"] if joliet else []), "-l", "-i", str(image)],
                             capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines():
        match = re.search(r"\[\s*\d+ ([0-9a-f]{2})\]\s+(.*?)\s*$", line)
        if match:
            found[match.group(2)] = int(match.group(1), 16)
    return found


@pytest.mark.parametrize("udf", [False, True], ids=["iso", "udf"])
def test_hidden_files_stay_hidden_out_and_back(library, tmp_path, udf):
    """The hidden flag goes out as the existence bit of the ISO 9660 and Joliet records (what
    Windows and 7-Zip call hidden) and UDF's hidden characteristic, and comes back on import;
    read-only stays apart (Rock Ridge's mode, UDF's permissions)."""
    make_volume(library, "HID")
    names = ("secret.txt", "open.txt", "locked.txt")
    with library.open("HID") as volume:
        volume.mkdir("/Dir")
        for name in names:
            volume.write_bytes(f"/Dir/{name}", name.encode())
        volume.set_attributes("/Dir/secret.txt", hidden=True)
        volume.set_attributes("/Dir/locked.txt", read_only=True)
    image = tmp_path / "h.iso"
    export_iso(library, vol="HID", file=image, udf=udf, now=NOW)
    plain, joliet = _isoinfo_flags(image, joliet=False), _isoinfo_flags(image, joliet=True)
    assert [plain[name.upper() + ";1"] for name in names] == [0x01, 0x00, 0x00]
    assert [joliet[name] for name in names] == [0x01, 0x00, 0x00]
    result = import_iso(library, file=image, vol="BACK", now=datetime.now(timezone.utc))
    assert result.namespace == "Rock Ridge"
    with library.open("BACK") as back:
        assert [back.stat(f"/Dir/{name}").hidden for name in names] == [True, False, False]


def test_import_keeps_what_genisoimage_hides(library, tmp_path):
    """``genisoimage -hidden`` sets the existence bit; a new volume and a tree imported onto a
    primary both get the file hidden."""
    tree = tmp_path / "tree"
    (tree / "Sub").mkdir(parents=True)
    (tree / "Sub" / "secret.txt").write_bytes(b"secret")
    (tree / "Sub" / "open.txt").write_bytes(b"open")
    image = tmp_path / "g.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", "-J", "-hidden", "secret.txt", "-V", "HIDING", "-o", str(image),
                    str(tree)], check=True, capture_output=True)
    import_iso(library, file=image, now=datetime.now(timezone.utc))
    make_volume(library, "PVOL2")
    rc, _, err = _cli(library, "import-iso", str(image), "--into", "PVOL2:/In")
    assert rc == 0, err
    for volume_id, top in (("HIDING", ""), ("PVOL2", "/In")):
        with library.open(volume_id) as volume:
            assert [volume.stat(f"{top}/Sub/{name}").hidden for name in ("secret.txt", "open.txt")] == [True, False]


def test_import_into_primary_volume_uses_new_dates(filled, tmp_path, clock):
    image = tmp_path / "in.iso"
    export_iso(filled, vol="PVOL1", file=image, now=NOW)
    make_volume(filled, "PVOL2")
    moment = clock.peek()
    rc, out, err = _cli(filled, "import-iso", str(image), "--into", "pvol2:/Imported/Here")
    assert rc == 0, err
    with filled.open("PVOL2") as volume:
        stat = volume.stat("/Imported/Here/" + "MixedCase.Name.tar.gz")
        assert stat.sha256 == _sha(TREE["MixedCase.Name.tar.gz"]) and stat.modified >= moment
    rc, _, err = _cli(filled, "import-iso", str(image), "--into", "PVOL2:/Imported/Here")
    assert rc == 4  # the files exist: nothing replaced, nothing half-copied
    rc, _, err = _cli(filled, "import-iso", str(image), "--into", "PVOL2")
    assert rc == 2 and "OPV0005" in err


def test_missing_image_is_not_found(library, tmp_path):
    with pytest.raises(errors.NotFoundError):
        import_iso(library, file=tmp_path / "nope.iso", now=datetime.now(timezone.utc))


def _image_of(tmp_path: Path, per_top: int) -> Path:
    """Four top directories of ``per_top`` directories of 25 files each."""
    tree = tmp_path / f"tree{per_top}"
    for top in range(4):
        for d in range(per_top):
            directory = tree / f"top{top}" / f"dir{d:04}"
            directory.mkdir(parents=True)
            for i in range(25):
                (directory / f"a file with a longer name {i:02}.txt").write_bytes(b"%d" % i)
    image = tmp_path / f"{per_top}.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-J", "-R", "-V", "WALK", "-o", str(image), str(tree)],
                   check=True, capture_output=True)
    return image


def test_import_walks_the_image_in_memory_that_does_not_grow_with_it(tmp_path):
    """The check-and-measure walk of import-iso holds the directories on the way down, never
    the tree: with 3,000 more files its peak of Python memory grows by far less than the
    300 bytes a file that holding the entries would cost (about 3 KiB a file through pycdlib)."""
    import tracemalloc

    from optvol.interchange.iso_import import _survey
    from optvol.interchange.iso_read import read_tree

    def survey(image: Path):
        with read_tree(str(image)) as tree:
            return _survey(tree, volume="WALK", top=(), media_format=model.MediaFormat.ISO9660)

    images = [_image_of(tmp_path, 10), _image_of(tmp_path, 40)]
    survey(images[0])  # first-use allocations (caches, compiled patterns) out of the way
    peaks, counted = [], []
    for image in images:
        tracemalloc.start()
        found = survey(image)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        counted.append((found.directories, found.files))
    assert counted == [(44, 1000), (164, 4000)]
    assert peaks[1] - peaks[0] < 200_000, peaks  # under 70 bytes for each of 3,000 more files


def test_the_deepest_tree_a_volume_holds_comes_back_from_its_image(library, tmp_path):
    """Directory names may take 256 characters in all, so one-letter names nest 128 deep. Our
    export wrote such a tree and import-iso refused it as damaged (it allowed 64 levels)."""
    make_volume(library, "DEEP")
    path = "/" + "/".join("abcdefghij"[d % 10] for d in range(128))
    with library.open("DEEP") as volume:
        volume.mkdir(path, parents=True)
        volume.write_bytes(path + "/bottom.txt", b"the bottom")
    image = tmp_path / "deep.iso"
    export_iso(library, vol="DEEP", file=image, now=NOW)
    import_iso(library, file=image, vol="BACK", now=NOW)
    with library.open("BACK") as back:
        assert back.stat(path + "/bottom.txt").sha256 == _sha(b"the bottom")


def _pycdlib_micros(stamp) -> int:
    """A pycdlib UDF timestamp in microseconds, by the same ECMA-167 rule (an independent reading)."""
    offset = stamp.tz & 0x0FFF
    offset = offset - 0x1000 if offset & 0x800 else offset
    moment = datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
                      stamp.centiseconds * 10_000 + stamp.hundreds_microseconds * 100 + stamp.microseconds,
                      tzinfo=timezone(timedelta(minutes=offset if -1440 <= offset <= 1440 else 0)))
    return round((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1))


@pytest.mark.parametrize("maker", ["genisoimage-udf", "optvol --udf"])
def test_our_udf_reader_agrees_with_pycdlib(library, tmp_path, maker):
    """udf_walk.py against a second reader of the same UDF file system: every name, kind,
    size, byte extent, modified time and hidden characteristic alike. With our own image,
    pycdlib is a second reader of what iso_writer.py wrote too (one file hidden)."""
    import pycdlib

    from optvol.interchange import iso_read, iso_walk

    image = tmp_path / "u.iso"
    if maker == "optvol --udf":  # our own writing: a UDF tree beside Rock Ridge
        make_volume(library, "PVOL1")
        with library.open("PVOL1") as volume:
            for path, data in TREE.items():
                volume.mkdir("/" + path.rpartition("/")[0], parents=True, exist_ok=True)
                volume.write_bytes("/" + path, data)
            volume.set_attributes("/Reports/empty.dat", hidden=True)
        export_iso(library, vol="PVOL1", file=image, udf=True, now=NOW)
    else:
        _host_tree(tmp_path / "tree")
        subprocess.run([*MAKERS[maker], "-V", "U", "-o", str(image), str(tmp_path / "tree")], check=True,
                       capture_output=True)
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    expected = set()

    def walk(names: tuple[str, ...]) -> None:
        for child in iso.list_children(udf_path="/" + "/".join(names)):
            if child is None:
                continue
            entry = names + (child.file_identifier().decode(child.file_ident.encoding),)
            when = _pycdlib_micros(child.mod_time)
            if child.is_dir():
                expected.add((entry, True, when, 0, (), False))
                walk(entry)
            else:
                extents = tuple(tuple(e) for e in iso.get_file_byte_extents(udf_path="/" + "/".join(entry)))
                hidden = bool(child.file_ident.file_characteristics & 0x01)  # ECMA-167 4/14.4.3, bit 0
                expected.add((entry, False, when, child.get_data_length(), extents, hidden))

    walk(())
    iso.close()
    fd = os.open(image, os.O_RDONLY)
    with iso_read._udf_tree(str(image), fd, iso_walk.Image(fd, os.fstat(fd).st_size), "U") as tree:
        found = {(e.names, e.is_dir, e.modified, e.size, e.extents, e.hidden) for e in tree.entries()}
    assert found == expected and len(found) > len(TREE)
    assert sum(e[-1] for e in found) == (1 if maker == "optvol --udf" else 0)


def test_export_onto_a_device_or_fifo_is_refused_and_leaves_it(filled, tmp_path):
    """export-iso wrote a temporary file and renamed it over the target: a device node (a USB
    stick's /dev/sdb) or a FIFO was replaced by a regular file, reported as done, and nothing
    reached the device. Now any target that is no regular file is refused (OPV0302)."""
    fifo = tmp_path / "to-burner"
    os.mkfifo(fifo)
    targets = [fifo]
    if os.geteuid() == 0:
        os.mknod(tmp_path / "fake-sdb", 0o20644, os.makedev(1, 3))
        targets.append(tmp_path / "fake-sdb")
    for target in targets:
        rc, _, err = _cli(filled, "export-iso", "PVOL1", str(target))
        assert rc == 2 and "OPV0302" in err and "not a regular file" in err, err
        assert not target.is_file() and (target.is_fifo() or target.is_char_device())
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    rc, _, err = _cli(filled, "export-iso", "PVOL1", str(link))
    assert rc == 2 and "OPV0302" in err and link.is_symlink() and fifo.is_fifo(), err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["lib", "link-to-fifo", *(t.name for t in targets)])


def test_export_through_a_symbolic_link_writes_the_file_it_names(filled, tmp_path):
    """A link to an image elsewhere: the link was replaced by the image and the file it names
    never written. Now the image is written at the link's target, the link stays; a dangling
    link makes its target."""
    (tmp_path / "elsewhere").mkdir()
    old = tmp_path / "elsewhere" / "disc.iso"
    old.write_bytes(b"an older image")
    link = tmp_path / "disc.iso"
    link.symlink_to("elsewhere/disc.iso")
    result = export_iso(filled, vol="PVOL1", file=link, now=NOW)
    assert link.is_symlink() and os.readlink(link) == "elsewhere/disc.iso"
    assert result.file == str(old) and old.stat().st_size == result.bytes > 0
    dangling = tmp_path / "new.iso"
    dangling.symlink_to("elsewhere/new.iso")
    export_iso(filled, vol="PVOL1", file=dangling, now=NOW)
    assert dangling.is_symlink() and (tmp_path / "elsewhere" / "new.iso").read_bytes() == old.read_bytes()
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["disc.iso", "new.iso"]


def test_an_exported_image_has_the_mode_of_a_new_file_or_of_the_one_it_replaces(filled, tmp_path):
    """The image was left with the temporary file's mode, 0600, whatever the umask said."""
    previous = os.umask(0o022)
    try:
        export_iso(filled, vol="PVOL1", file=tmp_path / "new.iso", now=NOW)
        assert (tmp_path / "new.iso").stat().st_mode & 0o7777 == 0o644
        os.umask(0o027)
        export_iso(filled, vol="PVOL1", file=tmp_path / "other.iso", now=NOW)
        assert (tmp_path / "other.iso").stat().st_mode & 0o7777 == 0o640
        (tmp_path / "new.iso").chmod(0o604)
        export_iso(filled, vol="PVOL1", file=tmp_path / "new.iso", now=NOW)
        assert (tmp_path / "new.iso").stat().st_mode & 0o7777 == 0o604
    finally:
        os.umask(previous)


def test_times_before_1970_and_outside_1900_to_2155_go_out_and_come_back(library, tmp_path):
    """The UDF bridge dated every time before 1970 1970-01-01 (what 7-Zip and Windows show,
    reading UDF first), and Rock Ridge's seven-byte TF dates cut years outside 1900-2155.
    Now UDF keeps any time, and TF takes seventeen-byte dates where seven bytes do not hold
    it: 7-Zip (UDF), xorriso (Rock Ridge) and import-iso read them all back."""
    times = {"/1965.txt": datetime(1965, 3, 1, 12, tzinfo=timezone.utc),
             "/1850.txt": datetime(1850, 6, 1, 1, 2, 3, tzinfo=timezone.utc),
             "/2200.txt": datetime(2200, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
             "/2024.txt": datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)}
    make_volume(library, "OLD")
    with library.open("OLD") as volume, volume.copy_writer() as writer:
        for path, moment in times.items():
            stamp = model.to_micros(moment)
            writer.write_file(path, data=path.encode(), size=len(path), created=stamp, modified=stamp, attr_changed=stamp)
    image = tmp_path / "old.iso"
    export_iso(library, vol="OLD", file=image, udf=True, now=NOW)
    seconds = {path[1:]: int(moment.timestamp()) for path, moment in times.items()}

    listing = subprocess.run(["7z", "l", "-slt", str(image)], capture_output=True, text=True, check=True,
                             env={**os.environ, "TZ": "UTC"}).stdout
    found = dict(re.findall(r"Path = (\S+\.txt)\nFolder = -\nSize = \d+\nPacked Size = \d*\nModified = (\S+ \S+)",
                            listing))
    assert {name: datetime.fromisoformat(when + "+00:00").timestamp() for name, when in found.items()} == seconds
    subprocess.run(["bsdtar", "-c", "-f", str(tmp_path / "o.tar"), "--format", "pax", f"@{image}"], check=True)
    import tarfile

    with tarfile.open(tmp_path / "o.tar") as tar:
        bsdtar = {m.name: int(m.mtime) for m in tar if m.isfile()}
    # libarchive reads a seventeen-byte date's month as one more (isodate17 lacks tm_mon - 1): the
    # year is right, where seven bytes would have said 1900 and 2155; seven-byte dates are exact
    assert {name: bsdtar[name] for name in ("1965.txt", "2024.txt")} == {n: seconds[n] for n in ("1965.txt", "2024.txt")}
    for name in ("1850.txt", "2200.txt"):
        assert 0 <= bsdtar[name] - seconds[name] <= 31 * 86_400, name
    xorriso = subprocess.run(["xorriso", "-indev", str(image), "-lsl", "/"], capture_output=True, text=True).stdout
    for expected in ("Jun  1  1850 '1850.txt'", "Jan  2  2200 '2200.txt'", "Mar  1  1965 '1965.txt'"):
        assert expected in xorriso, xorriso
    import_iso(library, file=image, vol="BACK", now=NOW)
    with library.open("BACK") as back:
        assert {path: back.stat(path).modified for path in times} == times


def test_names_over_255_bytes_come_back_from_the_udf_tree_and_renames_are_listed(library, tmp_path):
    """A name of more than 255 bytes of UTF-8 (a volume holds 255 characters) is cut in Rock
    Ridge, which import reads first: it came back cut, and neither command said a word. Now
    export lists every entry whose Rock Ridge or UDF name differs from its name, and import
    takes a file's whole name from the UDF tree of an image that has one: by its data, and
    where it has none to be found by (an empty file, a directory: hunt-iso F6 of session 20,
    they came back cut) by its directory and its cut name."""
    latin, wide, emoji = "ü" * 200 + ".txt", "日" * 100 + ".dat", "😀" * 70 + ".txt"
    directory, empty = "é" * 130, "ö" * 140
    make_volume(library, "LONGN")
    with library.open("LONGN") as volume:
        volume.mkdir("/" + directory)
        for path in (latin, wide, emoji, f"{directory}/inside.txt", "short.txt"):
            volume.write_bytes("/" + path, path.encode())
        volume.write_bytes(f"/{directory}/{empty}", b"")
    image = tmp_path / "l.iso"
    rc, out, err = _cli(library, "--json", "export-iso", "LONGN", str(image), "--udf")
    assert rc == 0, err
    renamed = {entry["path"]: entry for entry in json.loads(out)["renamed_entries"]}
    assert json.loads(out)["renamed"] == len(renamed) == 5
    assert {path: (entry["rock_ridge"] is not None, entry["udf"] is not None) for path, entry in renamed.items()} == {
        "/" + latin: (True, False), "/" + wide: (True, False), "/" + emoji: (True, True), "/" + directory: (True, False),
        f"/{directory}/{empty}": (True, False)}
    assert all(len(entry["rock_ridge"].encode()) <= 255 for entry in renamed.values())
    assert renamed["/" + emoji]["udf"] == "_" * 70 + ".txt"  # UDF 1.02 holds no character beyond U+FFFF
    rc, out, _ = _cli(library, "export-iso", "LONGN", str(tmp_path / "plain.iso"))
    assert rc == 0 and out.count("  renamed: ") == 5 and "UDF" not in out, out

    import_iso(library, file=image, vol="BACK", now=NOW)
    with library.open("BACK") as back:
        found = {info.path for info in back.iter_files("/", recursive=True)}
    cut_directory = "/" + renamed["/" + directory]["rock_ridge"]
    cut_empty = renamed[f"/{directory}/{empty}"]["rock_ridge"]
    assert found == {"/" + latin, "/" + wide, "/" + renamed["/" + emoji]["rock_ridge"], f"/{directory}/inside.txt",
                     f"/{directory}/{empty}", "/short.txt"}
    import_iso(library, file=tmp_path / "plain.iso", vol="PLAIN", now=NOW)  # no UDF tree: the names listed come back
    with library.open("PLAIN") as plain:
        assert {info.path for info in plain.iter_files("/", recursive=True)} == {
            "/" + renamed["/" + name]["rock_ridge"] for name in (latin, wide, emoji)} | {
            cut_directory + "/inside.txt", f"{cut_directory}/{cut_empty}", "/short.txt"}


def test_a_name_that_another_names_cut_would_be_keeps_its_own(library, tmp_path):
    """Review s20c: a directory of 127 "é" (254 bytes: never cut) beside one of 200, whose
    cut would be the first's name and so is numbered (é×126_1): import gave the first the
    second's whole name, its files under it, and the second the numbered cut. A name that
    is an entry's own in the UDF tree is not taken for another's cut; a numbered cut takes
    the one long name that export may have cut so (review s20d: it stayed cut)."""
    short, long = "é" * 127, "é" * 200
    make_volume(library, "SWAP")
    with library.open("SWAP") as volume:
        for name in (short, long):
            volume.mkdir(f"/{name}")
            volume.write_bytes(f"/{name}/inside", name.encode())
            volume.mkdir("/d", exist_ok=True)
            volume.write_bytes(f"/d/{name}", b"")
    export_iso(library, vol="SWAP", file=tmp_path / "s.iso", now=NOW, udf=True)
    import_iso(library, file=tmp_path / "s.iso", vol="BACK", now=NOW)
    with library.open("BACK") as back:  # and the other, cut and numbered, takes its whole name (review s20d F4)
        assert sorted(back.listdir("/")) == sorted(["d", short, long]) and sorted(back.listdir("/d")) == sorted([short, long])
        assert [back.read_bytes(f"/{name}/inside") for name in (short, long)] == [short.encode(), long.encode()]


def test_a_cut_never_takes_the_name_of_another_entry(library, tmp_path):
    """Review s20e: a directory é×150 + "_1.txt" was cut and numbered to exactly the name of
    an empty file of the same directory (é×124 + "_1.txt", 254 bytes, never cut), which
    export then renamed; import gave the directory the file's name. A cut skips every name
    an entry of the directory has as its own."""
    names = {"a": "é" * 150 + ".txt", "b": "é" * 150 + "_1.txt", "f": "é" * 124 + "_1.txt"}
    make_volume(library, "CUTS")
    with library.open("CUTS") as volume:
        volume.mkdir("/D")
        for key in ("a", "b"):
            volume.mkdir(f"/D/{names[key]}")
            volume.write_bytes(f"/D/{names[key]}/child", key.encode())
        volume.write_bytes(f"/D/{names['f']}", b"")
    rc, out, err = _cli(library, "--json", "export-iso", "CUTS", str(tmp_path / "c.iso"), "--udf")
    assert rc == 0, err
    assert f"/D/{names['f']}" not in {entry["path"] for entry in json.loads(out)["renamed_entries"]}
    import_iso(library, file=tmp_path / "c.iso", vol="BACK", now=NOW)
    with library.open("BACK") as back:
        assert back.stat(f"/D/{names['f']}").size == 0  # the file keeps its own name
        children = {name: back.read_bytes(f"/D/{name}/child") for name in back.listdir("/D") if name != names["f"]}
        assert sorted(children.values()) == [b"a", b"b"] and names["f"] not in children


def test_directories_whose_whole_names_cut_alike_keep_the_cuts_and_are_named(library, tmp_path):
    """hunt26e F1: two directories whose names are alike in their first 255 bytes are cut to
    one Rock Ridge name, numbered; import cannot tell which whole UDF name is whose (they
    have no data to be found by), kept the cuts and said nothing, exit 0. It keeps them and
    names them (``cut``, ``cut_entries``); the files, found by their data, come back whole."""
    stem = "é" * 128
    make_volume(library, "CUT")
    with library.open("CUT") as volume:
        volume.mkdir("/N")
        for last in "ab":
            volume.write_bytes(f"/N/{stem}{last}", last.encode())
        for last in "cd":
            volume.mkdir(f"/N/{stem}{last}")
            volume.write_bytes(f"/N/{stem}{last}/inner", last.encode())
    export_iso(library, vol="CUT", file=tmp_path / "c.iso", now=NOW, udf=True)
    rc, out, err = _cli(library, "--json", "import-iso", str(tmp_path / "c.iso"), "--vol", "BACK")
    assert rc == 0, err
    result = json.loads(out)
    with library.open("BACK") as back:
        names = back.listdir("/N")
        assert sorted(n for n in names if not back.is_dir(f"/N/{n}")) == [stem + "a", stem + "b"]
        kept = sorted(f"/N/{n}" for n in names if back.is_dir(f"/N/{n}"))
        assert all(len(path.encode()) <= 3 + 255 for path in kept) and len(kept) == 2
        assert sorted(back.read_bytes(f"{path}/inner") for path in kept) == [b"c", b"d"]
    assert (result["cut"], sorted(result["cut_entries"])) == (2, kept)
    rc, out, _ = _cli(library, "import-iso", str(tmp_path / "c.iso"), "--vol", "BACK2")
    assert rc == 0 and out.count("  cut name kept: ") == 2, out


def test_cut_entries_name_the_volume_paths_of_an_import_into_a_directory(library, tmp_path):
    """rev26f: ``import-iso --into VOL:/X`` named the entries it kept under their cuts by
    their paths in the image (/N/...), which the volume does not hold: /X/N/... it does."""
    stem = "é" * 128
    make_volume(library, "CUT")
    with library.open("CUT") as volume:
        volume.mkdir("/N")
        for last in "cd":
            volume.mkdir(f"/N/{stem}{last}")
    export_iso(library, vol="CUT", file=tmp_path / "c.iso", now=NOW, udf=True)
    make_volume(library, "INTO")
    with library.open("INTO") as volume:
        volume.mkdir("/X")
    rc, out, err = _cli(library, "--json", "import-iso", str(tmp_path / "c.iso"), "--into", "INTO:/X")
    assert rc == 0, err
    result = json.loads(out)
    with library.open("INTO") as into:
        assert result["cut"] == 2 and sorted(result["cut_entries"]) == sorted(f"/X/N/{n}" for n in into.listdir("/X/N"))


def test_past_the_long_names_it_looks_up_every_cut_name_kept_is_named(library, tmp_path, monkeypatch):
    """rev26f F1: past MAX_LONG_NAMES long UDF names nothing is looked up by path, and a cut
    kept so came in unnamed (cut 0). Every entry that keeps a cut is named then."""
    from optvol.interchange import iso_read

    stem = "é" * 128
    make_volume(library, "CUT")
    with library.open("CUT") as volume:
        for last in "cd":
            volume.mkdir(f"/{stem}{last}")
        volume.write_bytes(f"/{stem}e", b"")  # empty: found by its directory and its cut, as a directory
    export_iso(library, vol="CUT", file=tmp_path / "c.iso", now=NOW, udf=True)
    monkeypatch.setattr(iso_read, "MAX_LONG_NAMES", 1)
    result = import_iso(library, file=tmp_path / "c.iso", vol="BACK", now=NOW)
    with library.open("BACK") as back:
        kept = sorted("/" + name for name in back.listdir("/") if len(name.encode()) <= 255)
    assert len(kept) == 3 and (result.cut, sorted(result.cut_entries)) == (3, kept)


def test_long_names_alike_in_their_first_characters_are_each_tried_against_few(library, tmp_path, monkeypatch):
    """rev26f F4: long names were grouped by their first 16 characters, and each directory's
    cut was tried against every long name of its group: 1,000 directories named "Project
    archive 000123 é…" took 10 s to import, 2,000 took 40 s. The groups now hold what a cut
    keeps (40 characters): each cut is tried against its own name."""
    from optvol.interchange import iso_read

    count = 150
    make_volume(library, "MANY")
    with library.open("MANY") as volume:
        volume.mkdir("/N")
        for i in range(count):
            volume.mkdir(f"/N/Project archive {i:06d} " + "é" * 130)
    export_iso(library, vol="MANY", file=tmp_path / "m.iso", now=NOW, udf=True)
    tried = []
    real = iso_read.names_mod.is_rock_ridge_cut
    monkeypatch.setattr(iso_read.names_mod, "is_rock_ridge_cut", lambda cut, name: tried.append(cut) or real(cut, name))
    result = import_iso(library, file=tmp_path / "m.iso", vol="BACK", now=NOW)
    assert result.cut == 0 and result.directories == count + 1
    assert len(tried) <= 2 * count  # (it was count × count / 2 and more)
    with library.open("BACK") as back:
        assert sorted(back.listdir("/N")) == sorted(f"Project archive {i:06d} " + "é" * 130 for i in range(count))


def test_a_directory_whose_cut_a_file_shares_takes_its_whole_name(library, tmp_path):
    """rev26f F3: a file (found by its data) and a directory whose long names cut alike: the
    directory was tried against both whole names, kept its cut and was named. A directory's
    cut is tried against the directories' names only."""
    stem = "é" * 128
    make_volume(library, "CUT")
    with library.open("CUT") as volume:
        volume.write_bytes(f"/{stem}a", b"data")
        volume.mkdir(f"/{stem}b")
    export_iso(library, vol="CUT", file=tmp_path / "c.iso", now=NOW, udf=True)
    result = import_iso(library, file=tmp_path / "c.iso", vol="BACK", now=NOW)
    with library.open("BACK") as back:
        assert (back.read_bytes(f"/{stem}a"), back.is_dir(f"/{stem}b")) == (b"data", True)
    assert (result.cut, result.cut_entries) == (0, ())
