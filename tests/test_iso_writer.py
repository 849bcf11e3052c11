"""Our ISO 9660 writer (interchange/iso_writer.py) on the structures that are easy to get
wrong, each read back by real tools: Rock Ridge names in continuation areas, directories
and path tables of several sectors, multi-extent files, an empty volume, read-only modes,
damaged small and large files. ``isovfy`` (genisoimage) checks every image's structure."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import data_path, make_volume
from optvol import errors, model
from optvol.interchange import export_iso, import_iso, iso9660
from optvol.interchange.names import Namer

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


def _fill(library, files: dict[str, bytes], *, dirs: tuple[str, ...] = ()) -> None:
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume, volume.batch():
        for path in dirs:
            volume.mkdir(path, parents=True, exist_ok=True)
        for path, data in files.items():
            volume.mkdir(path.rsplit("/", 1)[0] or "/", parents=True, exist_ok=True)
            volume.write_bytes(path, data)


def _export(library, tmp_path: Path, *, multi_extent: bool = False) -> Path:
    image = tmp_path / "out.iso"
    export_iso(library, vol="PVOL1", file=image, now=NOW)
    verify = subprocess.run(["isovfy", str(image)], capture_output=True, text=True)
    report = verify.stdout + verify.stderr
    if multi_extent:  # isovfy predates multi-extent files: it lists each such record, and nothing else may be listed
        assert all("Flags=(80)" in line for line in report.splitlines()[2:]), report
    else:
        assert "No errors found" in report, report
    return image


def _extract(image: Path, tmp_path: Path, tool: str) -> Path:
    target = tmp_path / tool
    target.mkdir()
    command = {
        "bsdtar": ["bsdtar", "-x", "-f", str(image), "-C", str(target)],
        "xorriso": ["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(target)],
        "7z": ["7z", "x", "-y", f"-o{target}", str(image)],
    }[tool]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, (tool, done.stderr)
    return target


def _tree(root: Path) -> dict[str, str]:
    return {"/" + str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def _expected(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}


def test_long_names_continue_in_continuation_areas(library, tmp_path):
    files = {"/" + "n" * 255: b"255 ascii", "/a/" + "x" * 200 + ".dat": b"in a subdirectory"}
    files.update({f"/many/{i:03}" + "m" * 197: bytes([i]) * i for i in range(40)})  # 8 kB of NM entries
    _fill(library, files)
    image = _export(library, tmp_path)
    listing = subprocess.run(["isoinfo", "-R", "-l", "-i", str(image)], capture_output=True, text=True).stdout
    for path in files:
        assert path.rsplit("/", 1)[1] in listing, path[:20]
    for tool in ("bsdtar", "xorriso"):
        assert _tree(_extract(image, tmp_path, tool)) == _expected(files), tool
    import_iso(library, file=image, vol="BACK", now=NOW)
    with library.open("BACK") as back:
        assert {i.path: i.sha256 for i in back.iter_files("/", recursive=True)} == _expected(files)


def test_names_over_255_bytes_are_cut_to_what_posix_can_hold(library, tmp_path):
    long = "\u00e9" * 200 + ".txt"  # 200 characters the volume holds, 404 bytes of UTF-8
    files = {"/" + long: b"first", "/" + "\u00e9" * 199 + "\u00e8.txt": b"second"}
    _fill(library, files)
    image = _export(library, tmp_path)
    extracted = _tree(_extract(image, tmp_path, "xorriso"))
    namer = Namer()  # names are handed out in the volume's order
    expected = {"/" + namer.rock_ridge(path[1:]): digest
                for path, digest in sorted(_expected(files).items(), key=lambda item: model.name_key(item[0]))}
    assert extracted == expected
    assert {name[1:] for name in expected} == {"\u00e9" * 125 + ".txt", "\u00e9" * 124 + "_1.txt"}  # 254 bytes each


def test_directories_and_path_tables_of_many_sectors(library, tmp_path):
    files = {f"/big/F{i:04}.DAT": i.to_bytes(4, "big") * 10 for i in range(400)}
    dirs = tuple(f"/D/DIRECTORY_NUMBER_{i:03}/SUB" for i in range(300))
    _fill(library, files, dirs=dirs)
    image = _export(library, tmp_path)
    found = subprocess.run(["xorriso", "-indev", str(image), "-find", "/", "-type", "d"],
                           capture_output=True, text=True).stdout
    listed = {line.strip().strip("'") for line in found.splitlines() if line.startswith("'")}
    assert set(dirs) <= listed
    for tool in ("bsdtar", "xorriso", "7z"):  # 7-Zip reads the Joliet tree
        extracted = _extract(image, tmp_path, tool)
        assert _tree(extracted) == _expected(files), tool
        assert all((extracted / path[1:]).is_dir() for path in dirs), tool


def test_multi_extent_files(library, tmp_path, monkeypatch):
    monkeypatch.setattr(iso9660, "MAX_EXTENT", 4 * iso9660.SECTOR)  # 8 KiB extents instead of 4 GiB
    files = {"/three.bin": bytes(range(256)) * 80, "/two.bin": b"\x07" * 16384, "/one.bin": b"small"}
    _fill(library, files)
    image = _export(library, tmp_path, multi_extent=True)
    listing = subprocess.run(["isoinfo", "-l", "-i", str(image)], capture_output=True, text=True).stdout
    assert sum("THREE.BIN;1" in line for line in listing.splitlines()) == 3
    for tool in ("bsdtar", "xorriso", "7z"):
        assert _tree(_extract(image, tmp_path, tool)) == _expected(files), tool
    import_iso(library, file=image, vol="BACK", now=NOW)
    with library.open("BACK") as back:
        assert {i.path: i.sha256 for i in back.iter_files("/", recursive=True)} == _expected(files)


def test_empty_volume(library, tmp_path):
    _fill(library, {})
    image = _export(library, tmp_path)
    info = subprocess.run(["isoinfo", "-d", "-i", str(image)], capture_output=True, text=True).stdout
    assert "Volume id: PVOL1" in info and "Volume size is: " in info
    found = subprocess.run(["xorriso", "-indev", str(image), "-find", "/"], capture_output=True, text=True).stdout
    assert [line for line in found.splitlines() if line.startswith("'")] == ["'/'"]
    assert image.stat().st_size % iso9660.SECTOR == 0


def test_modes_times_and_size(library, tmp_path):
    _fill(library, {"/ro.txt": b"read only", "/rw.txt": b"x" * 5000})
    with library.open("PVOL1") as volume:
        volume.set_attributes("/ro.txt", read_only=True)
        modified = volume.stat("/rw.txt").modified
    image = _export(library, tmp_path)
    listing = subprocess.run(["isoinfo", "-R", "-l", "-i", str(image)], capture_output=True, text=True).stdout
    assert any(line.startswith("-r--r--r--") and line.rstrip().endswith("ro.txt") for line in listing.splitlines())
    assert any(line.startswith("-rw-r--r--") and line.rstrip().endswith("rw.txt") for line in listing.splitlines())
    extracted = _extract(image, tmp_path, "xorriso")
    assert int((extracted / "rw.txt").stat().st_mtime) == int(modified.timestamp())
    sectors = int(next(line for line in subprocess.run(["isoinfo", "-d", "-i", str(image)], capture_output=True,
                                                       text=True).stdout.splitlines() if "Volume size" in line)
                  .split()[-1])
    assert image.stat().st_size == sectors * iso9660.SECTOR


@pytest.mark.parametrize("size", [1000, 600_000], ids=["read-in-python", "copied-by-kernel"])
def test_damaged_file_fails_and_leaves_nothing(library, tmp_path, size):
    _fill(library, {"/good.bin": b"g" * 100, "/bad.bin": b"b" * size})
    with library.open("PVOL1") as volume:
        _, row = volume.file_row("/bad.bin")
        offset = (row.sector + row.header_sectors) * volume.image.sector_size + size // 2
    with open(data_path(library, "PVOL1"), "r+b") as handle:
        handle.seek(offset)
        handle.write(b"X")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(errors.DamagedError) as caught:
        export_iso(library, vol="PVOL1", file=out / "bad.iso", now=NOW)
    assert caught.value.message_id == "CPF1F28" and "/bad.bin" in str(caught.value)
    assert list(out.iterdir()) == []
