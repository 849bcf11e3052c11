"""Joliet names that differ only by trailing dots or spaces (hunt26e F2): 7-Zip drops a
Joliet file name's last dot and Windows every trailing dot and space, so ``trail`` and
``trail.`` were two Joliet names that `7z x` wrote to one host file, the second over the
first. Export now numbers the second in Joliet, as it does names a reader folding case
takes for one; Rock Ridge keeps every name exact, and the volume is not changed."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime, timezone

from conftest import make_volume
from optvol.interchange import export_iso, import_iso
from optvol.interchange.names import Namer

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
FILES = ["trail", "trail.", "trail..", "sp", "sp ", "x.txt", "x.txt."]
DIRS = ["d", "d.", "d "]


def _fill(library) -> dict[str, bytes]:
    make_volume(library, "PVOL1")
    files = {f"/{name}": f"content of {name!r}\n".encode() for name in FILES}
    files.update({f"/{name}/f": f"in {name!r}\n".encode() for name in DIRS})
    with library.open("PVOL1") as volume, volume.batch():
        for name in DIRS:
            volume.mkdir("/" + name)
        for path, data in files.items():
            volume.write_bytes(path, data)
    return files


def _joliet_names(image) -> list[str]:
    """The Joliet names of the root directory, as isoinfo lists them."""
    listing = subprocess.run(["isoinfo", "-J", "-l", "-i", str(image)], capture_output=True, text=True, check=True)
    root = listing.stdout.split("Directory listing of /\n")[1].split("Directory listing of")[0]
    return [line[line.index("]") + 3:-1] for line in root.splitlines() if "]  " in line]


def test_names_apart_only_by_trailing_dots_or_spaces_are_numbered_in_joliet():
    namer = Namer()
    assert [namer.joliet(name) for name in ["trail", "trail.", "trail..", "sp", "sp ", "TRAIL ."]] == [
        "trail", "trail_1.", "trail._2.", "sp", "sp _1", "TRAIL _3."]
    assert Namer().joliet("a.") == "a."  # alone, a name keeps its dot


def test_7z_extracts_every_file_and_rock_ridge_keeps_the_names(library, tmp_path):
    files = _fill(library)
    image = tmp_path / "t.iso"
    export_iso(library, vol="PVOL1", file=image, now=NOW)
    names = _joliet_names(image)
    assert {"trail", "trail_1.", "trail._2.", "sp", "sp _1", "x.txt", "x.txt_1.", "d", "d _1", "d_2."} <= set(names)
    stripped = [name.rstrip(". ").upper() for name in names if name not in (".", "..")]
    assert len(stripped) == len(set(stripped)), names  # no two names Windows takes for one
    target = tmp_path / "7z"
    subprocess.run(["7z", "x", "-y", f"-o{target}", str(image)], check=True, capture_output=True)
    contents = sorted(p.read_bytes() for p in target.rglob("*") if p.is_file())
    assert contents == sorted(files.values())  # every file, none written over another
    rr = tmp_path / "rr"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(rr)],
                   check=True, capture_output=True)
    assert {"/" + str(p.relative_to(rr)): p.read_bytes() for p in rr.rglob("*") if p.is_file()} == files
    import_iso(library, file=image, vol="BACK", now=NOW)
    with library.open("BACK") as back, library.open("PVOL1") as volume:
        assert {info.path: info.sha256 for info in back.iter_files("/", recursive=True)} == {
            path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
        assert {info.path for info in volume.iter_files("/", recursive=True)} == set(files)  # the volume as it was
