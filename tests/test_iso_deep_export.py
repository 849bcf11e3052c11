"""export-iso of directories deeper than the eight levels ISO 9660 allows (ECMA-119
§6.8.2.1; hunt26e F3): they were written where they are, 11 levels deep and more. Now they
are relocated in the ISO 9660 tree as Rock Ridge does it (RRIP 1.12 §4.1.5): to RR_MOVED,
with CL, PL and RE entries, and RR_MOVED marked RE, so that Rock Ridge readers (xorriso,
libarchive, our import), Joliet readers (7-Zip) and UDF readers see the volume's tree."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime, timezone

import pytest

from conftest import make_volume
from optvol.interchange import export_iso, import_iso, iso_writer

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


def _fill(library, depth: int, tops: tuple[str, ...] = ("a", "b")) -> dict[str, bytes]:
    """Under each of ``tops`` a chain L1..L<depth>, a file in each: the chains' deep
    directories share their names, so their ISO 9660 names in RR_MOVED must differ."""
    make_volume(library, "PVOL1")
    files = {}
    with library.open("PVOL1") as volume, volume.batch():
        for top in tops:
            path = "/" + top
            volume.mkdir(path)
            for level in range(1, depth + 1):
                path += f"/L{level}"
                volume.mkdir(path)
                files[f"{path}/f{level}"] = f"{path}\n".encode()
                volume.write_bytes(f"{path}/f{level}", files[f"{path}/f{level}"])
    return files


def _export(library, tmp_path, *, udf: bool = False):
    image = tmp_path / "deep.iso"
    export_iso(library, vol="PVOL1", file=image, now=NOW, udf=udf)
    report = subprocess.run(["isovfy", str(image)], capture_output=True, text=True)
    assert "No errors found" in report.stdout + report.stderr, report.stdout + report.stderr
    return image


def _lines(command: list[str]) -> list[str]:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()


def _volume_paths(library, vol: str) -> set[str]:
    with library.open(vol) as volume:
        return ({info.path for info in volume.iter_dirs("/")} | {info.path for info in volume.iter_files("/", recursive=True)}) - {"/"}


def _state(library, vol: str) -> tuple[dict, dict]:
    with library.open(vol) as volume:
        return ({info.path: info.created.replace(microsecond=0) for info in volume.iter_dirs("/") if info.path != "/"},
                {info.path: (info.sha256, info.modified.replace(microsecond=0), info.created.replace(microsecond=0))
                 for info in volume.iter_files("/", recursive=True)})


@pytest.mark.parametrize("udf", [False, True], ids=["plain", "udf"])
def test_deep_directories_are_relocated_and_every_reader_sees_the_volume(library, tmp_path, udf):
    files = _fill(library, 20)  # relocated twice: at level 9, and 6 levels below RR_MOVED again
    image = _export(library, tmp_path, udf=udf)
    iso_paths = _lines(["isoinfo", "-f", "-i", str(image)])
    assert max(path.count("/") for path in iso_paths) == 8  # 8 levels of directories, a file in the 8th
    assert "/RR_MOVED/L7" in iso_paths and "/RR_MOVED/L7_1" in iso_paths and "/RR_MOVED/L13" in iso_paths
    expected = _volume_paths(library, "PVOL1")
    assert all(".rr_moved" not in path and "RR_MOVED" not in path for path in expected)
    xorriso = {line.strip("'") for line in _lines(["xorriso", "-indev", str(image), "-find", "/"])[0:]
               if line.startswith("'/")} - {"/"}
    assert xorriso == expected
    assert {"/" + path.rstrip("/") for path in _lines(["bsdtar", "-tf", str(image)])} - {"/."} == expected
    assert set(_lines(["isoinfo", "-J", "-f", "-i", str(image)])) == expected
    seven = {"/" + line[7:] for line in _lines(["7z", "l", "-slt", str(image)]) if line.startswith("Path = ")}
    assert seven - {"/" + str(image)} == expected
    target = tmp_path / "x"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(target)],
                   check=True, capture_output=True)
    assert {"/" + str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()} == files
    import_iso(library, file=image, vol="BACK", now=NOW)
    assert _state(library, "BACK") == _state(library, "PVOL1")  # names, data and dates, no RR_MOVED


def test_names_of_the_relocation_directory_a_volume_has_stay_its_own(library, tmp_path):
    """A volume whose root holds rr_moved and .rr_moved keeps them, in Rock Ridge and Joliet;
    the relocation directory takes other names."""
    files = _fill(library, 9, tops=("rr_moved", ".rr_moved"))
    image = _export(library, tmp_path)
    assert {"/RR_MOVED", "/RR_MOVED_1", "/_RR_MOVED"} <= set(_lines(["isoinfo", "-f", "-i", str(image)]))
    # named .rr_moved beside the volume's, as libarchive finds it first (hunt31e F1); isoinfo shows what is marked RE
    assert _lines(["isoinfo", "-R", "-f", "-i", str(image)]).count("/.rr_moved") == 2
    listed = subprocess.run(["bsdtar", "-tf", str(image)], capture_output=True, text=True)
    assert listed.returncode == 0 and set(files) <= {"/" + path.rstrip("/") for path in listed.stdout.splitlines()}
    xorriso = {line.strip("'") for line in _lines(["xorriso", "-indev", str(image), "-find", "/"]) if line.startswith("'/")}
    assert xorriso - {"/"} == _volume_paths(library, "PVOL1")
    import_iso(library, file=image, vol="BACK", now=NOW)
    assert _state(library, "BACK") == _state(library, "PVOL1")
    with library.open("BACK") as back:
        assert {path: hashlib.sha256(data).hexdigest() for path, data in files.items()} == {
            info.path: info.sha256 for info in back.iter_files("/", recursive=True)}


def test_a_shallow_volume_has_no_relocation_directory(library, tmp_path):
    _fill(library, 6)  # /a/L1/.../L6: 8 levels with the root
    image = _export(library, tmp_path)
    assert not [path for path in _lines(["isoinfo", "-f", "-i", str(image)]) if "RR_MOVED" in path]


def test_without_room_for_the_relocation_directory_deep_directories_stay(library, tmp_path, monkeypatch):
    """A volume of as many directories as the path tables hold has no room for RR_MOVED:
    its deep directories stay where they are (the export of 65,535 directories is not refused)."""
    files = _fill(library, 9, tops=("a",))  # the root, a, L1..L9: 11 directories
    monkeypatch.setattr(iso_writer, "MAX_DIRECTORIES", 11)
    image = _export(library, tmp_path)
    paths = _lines(["isoinfo", "-f", "-i", str(image)])
    assert "/A/L1/L2/L3/L4/L5/L6/L7/L8/L9/F9.;1" in paths and not [path for path in paths if "RR_MOVED" in path]
    import_iso(library, file=image, vol="BACK", now=NOW)
    assert _state(library, "BACK") == _state(library, "PVOL1") and len(_state(library, "BACK")[1]) == len(files)


@pytest.mark.parametrize("taken", [".rr_moved", "rr_moved"])
def test_libarchive_finds_the_relocation_directory_beside_a_volume_directory_of_its_name(library, tmp_path, taken):
    """libarchive takes the root's first directory named rr_moved or .rr_moved (Rock Ridge) for
    the relocation directory and refuses RE anywhere else: named .rr_moved_1 beside a volume's
    .rr_moved, RR_MOVED made bsdtar refuse the whole image ("Invalid Rockridge RE"; hunt31e F1)."""
    files = _fill(library, 9, tops=(taken,))
    image = _export(library, tmp_path)
    listed = subprocess.run(["bsdtar", "-tf", str(image)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert set(files) <= {"/" + path.rstrip("/") for path in listed.stdout.splitlines()}
    xorriso = {line.strip("'") for line in _lines(["xorriso", "-indev", str(image), "-find", "/"]) if line.startswith("'/")}
    assert xorriso - {"/"} == _volume_paths(library, "PVOL1")
    import_iso(library, file=image, vol="BACK", now=NOW)
    assert _state(library, "BACK") == _state(library, "PVOL1")


def test_relocated_directories_hold_only_their_cut_names(library, tmp_path, monkeypatch):
    """The Rock Ridge name of a relocated directory is kept for RR_MOVED's record only where it
    was cut (over 255 bytes): held for every one, 65,526 relocated names of 241 characters took
    export-iso to 153 MiB, over DESIGN §6's 150 (hunt31e F2). The records still name them."""
    _fill(library, 9)
    long_name = "é" * 200  # 400 bytes of UTF-8: cut in Rock Ridge
    with library.open("PVOL1") as volume:
        volume.mkdir("/a/L1/L2/L3/L4/L5/L6/" + long_name)
    trees = []
    real = iso_writer._dir_tree
    monkeypatch.setattr(iso_writer, "_dir_tree", lambda conn, *, relocate: trees.append(real(conn, relocate=relocate)) or trees[-1])
    image = _export(library, tmp_path)
    (tree,) = trees
    assert sum(tree.relocated(number) for number in range(1, tree.volume_dirs)) == 3  # L7 of a and of b, the long one
    assert [name.decode() for name in tree.moved_names.values()] == ["é" * 127]
    xorriso = {line.strip("'") for line in _lines(["xorriso", "-indev", str(image), "-find", "/"]) if line.startswith("'/")}
    assert "/a/L1/L2/L3/L4/L5/L6/" + "é" * 127 in xorriso and "/b/L1/L2/L3/L4/L5/L6/L7/L8/L9/f9" in xorriso
    listings = _lines(["isoinfo", "-R", "-l", "-i", str(image)])  # (isoinfo follows neither CL nor RE: RR_MOVED's names)
    assert listings.count("Directory listing of /.rr_moved/L7/") == 2
    assert "Directory listing of /.rr_moved/" + "é" * 127 + "/" in listings
