"""Our ISO 9660 writer (interchange/iso_writer.py) on the structures that are easy to get
wrong, each read back by real tools: Rock Ridge names in continuation areas, directories
and path tables of several sectors, multi-extent files, an empty volume, read-only modes,
damaged small and large files. ``isovfy`` (genisoimage) checks every image's structure."""

from __future__ import annotations

import hashlib
import struct
import subprocess
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import data_path, make_volume
from optvol import errors, model
from optvol.interchange import export_iso, import_iso, iso9660, iso_entries, iso_writer, udf
from optvol.interchange.names import Namer, TakenNames

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


# --------------------------------------------------------------------- the UDF bridge (export-iso --udf)


def _crc_itu(data: bytes) -> int:
    """CRC-ITU-T (polynomial 0x1021, initial 0) bit by bit, as ECMA-167 3/7.2.6 defines it:
    a second computation, beside the table the writer uses (binascii.crc_hqx)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = (crc << 1 ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _tag(data: bytes, location: int) -> int:
    """Check a descriptor tag (ECMA-167 3/7.2): checksum, CRC over the length it gives, the
    location it names; return its identifier and the descriptor's length."""
    identifier, _, checksum, _, _, crc, crc_length, recorded_at = struct.unpack_from("<HHBBHHHI", data)
    assert checksum == (sum(data[:4]) + sum(data[5:16])) & 0xFF
    assert crc == _crc_itu(data[16:16 + crc_length]) and recorded_at == location, (identifier, location)
    return identifier


def _udf_descriptors(image: Path) -> Counter:
    """Every UDF descriptor of the image checked, reached as a reader reaches them: the
    anchors, both volume descriptor sequences, the integrity sequence, then the file set and
    the tree of file entries and file identifiers; the count of each descriptor kind."""
    data = image.read_bytes()
    sector = lambda number: data[number * 2048:(number + 1) * 2048]  # noqa: E731
    found: Counter = Counter()
    last = len(data) // 2048 - 1
    for anchor in (256, last):
        found[_tag(sector(anchor), anchor)] += 1
        main, reserve = struct.unpack_from("<4xI4xI", sector(anchor), 16)
    for start in (main, reserve, 64):
        number = start
        while (kind := _tag(sector(number), number)) != 8:
            found[kind] += 1
            if kind == 5:
                partition, length = struct.unpack_from("<II", sector(number), 188)
            number += 1
    assert partition + length == last
    block = lambda at: sector(partition + at)  # noqa: E731
    assert _tag(block(0), 0) == 256 and _tag(block(1), 1) == 8
    found[256] += 1
    pending = [struct.unpack_from("<I", block(0), 404)[0]]
    while pending:
        at = pending.pop()
        entry = block(at)
        assert _tag(entry, at) == 261
        found[261] += 1
        if entry[27] != 4:  # not a directory
            continue
        size = struct.unpack_from("<Q", entry, 56)[0]
        length, start = struct.unpack_from("<II", entry, 176)
        stream, offset = data[(partition + start) * 2048:][:size], 0
        while offset < size:
            name_length, use_length = stream[offset + 19], struct.unpack_from("<H", stream, offset + 36)[0]
            assert _tag(stream[offset:], start + offset // 2048) == 257
            found[257] += 1
            if not stream[offset + 18] & 0x08:  # not the parent
                pending.append(struct.unpack_from("<I", stream, offset + 24)[0])
            offset += (38 + use_length + name_length + 3) & ~3
    return found


def _export_udf(library, tmp_path: Path) -> Path:
    image = tmp_path / "udf.iso"
    export_iso(library, vol="PVOL1", file=image, udf=True, now=NOW)
    verify = subprocess.run(["isovfy", str(image)], capture_output=True, text=True)
    assert "No errors found" in verify.stdout + verify.stderr  # the ISO 9660 side is untouched by the bridge
    return image


def _udfinfo(image: Path) -> dict[str, str]:
    done = subprocess.run(["udfinfo", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_udf_descriptors_check_and_udfinfo_reads_the_volume(library, tmp_path):
    files = {"/A/B/deep.txt": b"deep", "/A/one.bin": bytes(range(256)) * 30, "/empty": b"", "/top.txt": b"top"}
    _fill(library, files, dirs=("/A/B/C",))
    image = _export_udf(library, tmp_path)
    found = _udf_descriptors(image)
    # 2 anchors; 2 x (primary, implementation use, partition, logical volume, unallocated
    # space); the integrity descriptor; the file set; 4 directories (the root, A, B, C) and
    # 4 files; their identifiers: one for each of the 7 entries and one parent's in each directory
    assert found == Counter({2: 2, 1: 2, 4: 2, 5: 2, 6: 2, 7: 2, 9: 1, 256: 1, 261: 8, 257: 11})
    info = _udfinfo(image)
    assert (info["udfrev"], info["integrity"], info["accesstype"]) == ("1.02", "closed", "readonly")
    assert (info["label"], info["numfiles"], info["numdirs"]) == ("PVOL1", "4", "4")
    assert _tree(_extract(image, tmp_path, "7z")) == _expected(files)


def test_udf_names_are_cut_to_what_cs0_holds(library, tmp_path):
    """A UDF file identifier holds 255 bytes: 254 Latin-1 characters, or 127 others."""
    latin, wide = "é" * 240 + ".txt", "日本" * 100 + ".txt"
    files = {f"/{latin}": b"latin", f"/{wide}": b"wide", "/Größe.txt": b"short"}
    _fill(library, files)
    image = _export_udf(library, tmp_path)
    listing = subprocess.run(["7z", "l", "-slt", str(image)], capture_output=True, text=True).stdout
    listed = {line[len("Path = "):] for line in listing.splitlines() if line.startswith("Path = ")} - {str(image)}
    assert listed == {latin, ("日本" * 100)[:123] + ".txt", "Größe.txt"}  # names too long for a host to extract


def test_udf_files_of_several_allocation_descriptors(library, tmp_path, monkeypatch):
    monkeypatch.setattr(udf, "MAX_AD_LENGTH", 4 * udf.SECTOR)  # 8 KiB a descriptor instead of 1 GiB
    files = {"/three.bin": bytes(range(256)) * 80, "/two.bin": b"\x07" * 16384, "/one.bin": b"small"}
    _fill(library, files)
    image = _export_udf(library, tmp_path)
    with image.open("rb") as handle:
        entries = {}
        for number in range(257, image.stat().st_size // 2048):
            handle.seek(number * 2048)
            entry = handle.read(2048)
            if entry[:2] == b"\x05\x01" and entry[27] == 5:  # a file entry of a regular file
                entries[struct.unpack_from("<Q", entry, 56)[0]] = struct.unpack_from("<I", entry, 172)[0] // 8
    assert entries == {20480: 3, 16384: 2, 5: 1}
    assert _tree(_extract(image, tmp_path, "7z")) == _expected(files)
    assert sum(_udf_descriptors(image).values()) > 0


def test_udf_refuses_a_file_its_entry_cannot_describe(library, tmp_path, monkeypatch):
    monkeypatch.setattr(udf, "MAX_FILE_BYTES", 1000)
    _fill(library, {"/fits.bin": b"f" * 1000, "/over.bin": b"o" * 1001})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(errors.NotAllowedError) as caught:
        export_iso(library, vol="PVOL1", file=out / "u.iso", udf=True, now=NOW)
    assert caught.value.message_id == "OPV0704" and "/over.bin" in str(caught.value)
    assert list(out.iterdir()) == []
    export_iso(library, vol="PVOL1", file=out / "plain.iso", now=NOW)  # ISO 9660 alone holds it


def test_udf_export_holds_directories_not_files(library, tmp_path):
    """pycdlib, which made --udf images before, held about 7.7 KiB a file (7.7 GiB for
    1,000,000 files); our writer holds one directory's entries at a time: with 3,000 more
    files (in 120 more directories) its peak of Python memory grows by about 1.4 KiB a
    directory, under 140 bytes a file."""
    import tracemalloc

    for name, count in (("SMALL", 40), ("LARGE", 160)):
        make_volume(library, name)
        with library.open(name) as volume, volume.batch():
            for d in range(count):
                volume.mkdir(f"/directory {d:04}")
                for i in range(25):
                    volume.write_bytes(f"/directory {d:04}/a file with a longer name {i:02}.txt", b"%d" % i)
    export_iso(library, vol="SMALL", file=tmp_path / "warm.iso", udf=True, now=NOW)  # first-use allocations
    peaks = []
    for name in ("SMALL", "LARGE"):
        tracemalloc.start()
        result = export_iso(library, vol=name, file=tmp_path / f"{name}.iso", udf=True, now=NOW)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result.files == (1000 if name == "SMALL" else 4000)
    assert peaks[1] - peaks[0] < 3000 * 140, peaks  # pycdlib: about 23 MB more


# --------------------------------------------------------------------- a directory too large to hold


@pytest.mark.parametrize("bridge", [False, True], ids=["iso", "udf"])
def test_a_directory_too_large_to_hold_makes_the_same_image(library, tmp_path, monkeypatch, bridge):
    """A directory of more than iso_entries.SPILL_AT entries is laid out from a temporary
    database instead of a list: the image is the same, byte for byte (names made unique in
    every namespace, continuation areas, several extents, both sort orders)."""
    monkeypatch.setattr(iso9660, "MAX_EXTENT", 4 * iso9660.SECTOR)
    files = {f"/many/{prefix}{i}{suffix}": b"%d" % i * (i % 7 * 1500)
             for i in range(60) for prefix, suffix in (("File.", ".txt"), ("file_", ".TXT"), ("ü" * 90, ".dat"))}
    _fill(library, files, dirs=tuple(f"/many/sub {i}" for i in range(12)))
    images = []
    for spill_at in (iso_entries.SPILL_AT, 50):
        monkeypatch.setattr(iso_entries, "SPILL_AT", spill_at)
        images.append(tmp_path / f"{spill_at}.iso")
        export_iso(library, vol="PVOL1", file=images[-1], udf=bridge, now=NOW)
    assert images[0].read_bytes() == images[1].read_bytes()
    assert _tree(_extract(images[1], tmp_path, "xorriso")) == _expected(files)  # Rock Ridge: the whole names


@pytest.mark.parametrize("bridge", [False, True], ids=["iso", "udf"])
def test_export_holds_a_bounded_part_of_one_large_directory(library, tmp_path, monkeypatch, bridge):
    """One directory of 4 x N files takes no more Python memory to export than one of N,
    once both are past SPILL_AT (held, they take about 1 KiB a file). The data goes out
    through a buffer of FLUSH_AT bytes, made small here so that both exports fill it."""
    import tracemalloc

    monkeypatch.setattr(iso_entries, "SPILL_AT", 200)
    monkeypatch.setattr(iso_writer, "FLUSH_AT", 64 << 10)
    for name, count in (("SMALL", 1000), ("LARGE", 4000)):
        make_volume(library, name)
        with library.open(name) as volume, volume.batch():
            for i in range(count):
                volume.write_bytes(f"/a file with a name of some length {i:06}.txt", b"%d" % i)
    export_iso(library, vol="SMALL", file=tmp_path / "warm.iso", udf=bridge, now=NOW)  # first-use allocations
    peaks = []
    for name in ("SMALL", "LARGE"):
        tracemalloc.start()
        export_iso(library, vol=name, file=tmp_path / f"{name}.iso", udf=bridge, now=NOW)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks


class _CountedNames(TakenNames):
    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    def claim(self, space: str, key: str) -> bool:
        self.claims += 1
        return super().claim(space, key)


class _CountedFromOne(_CountedNames):
    """Numbering from 1 for every name, as the Namer did before it kept the last number."""

    def last_number(self, base: str) -> int:
        return 0

    def note_number(self, base: str, number: int) -> None:
        pass


def test_names_sharing_a_base_cost_claims_in_proportion():
    """1,000 names that shorten to one base in every namespace get the names that counting
    from 1 gives, in about one claim a name and namespace (counting from 1 takes half a
    million claims a namespace: a directory of 100,000 such names would not finish). Rock
    Ridge names over 255 bytes that cut alike were still numbered from 1 each."""
    def hand_out(names: TakenNames) -> list[tuple[str, str, str, str]]:
        namer = Namer(names)
        return [(namer.iso_file(name), namer.joliet(name), namer.udf(name), namer.rock_ridge(name))
                for name in (f"a scanned invoice {'of the year 2026 ' * 16}number {i:06}.pdf" for i in range(1000))]

    counted, from_one = _CountedNames(), _CountedFromOne()
    handed = hand_out(counted)
    assert handed == hand_out(from_one)
    assert len({iso for iso, _, _, _ in handed}) == 1000 and handed[999][0] == "A_SCANNED_INVOICE_OF_TH_999.PDF;1"
    assert len({rr for _, _, _, rr in handed}) == 1000 and handed[999][3].endswith("_999.pdf")
    assert all(len(rr.encode()) <= 255 for _, _, _, rr in handed)
    assert counted.claims < 2 * 4 * 1000 < from_one.claims // 100, (counted.claims, from_one.claims)
