"""recover's ``indexed`` (rev31f F2, F3): what the old index held in a damaged region names a
removed directory and a version no longer live as such. A removed directory's record was
named not at all, and a deleted file's as ``file /gone.dat (version 1)``, which reads as a
file lost."""

from __future__ import annotations

import io
import json
import shutil

from conftest import data_path, make_volume
from integrity_helpers import damage_header
from optvol import cli
from optvol.image import replay
from optvol.recovery import recover


def _sectors(library, vol: str) -> list[tuple[str, str, int]]:
    with open(data_path(library, vol), "rb") as handle:
        return [(f.header.kind.name, f.header.body.get("path"), f.sector) for f in replay.scan(handle.fileno(), 2048)]


def test_recover_names_a_removed_directory_and_a_deleted_version_as_such(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/X")
        volume.write_bytes("/gone.dat", b"x")
        volume.write_bytes("/kept.dat", b"one")
        volume.write_bytes("/kept.dat", b"two")
        volume.rmdir("/X")
        volume.remove("/gone.dat")
    records = _sectors(library, "PVOL1")
    at = {(kind, path): sector for kind, path, sector in records}
    kept = [sector for _, path, sector in records if path == "/kept.dat"]
    damage_header(library.root, "PVOL1", at[("DIRECTORY", "/X")], 2048)
    damage_header(library.root, "PVOL1", at[("FILE", "/gone.dat")], 2048)
    damage_header(library.root, "PVOL1", kept[0], 2048)
    report = recover(library, vol="PVOL1")
    named = [what for d in report.as_json()["damaged"] for what in d["indexed"]]
    assert sorted(named, key=lambda what: what["path"]) == [
        {"record": "directory", "path": "/X", "version": None, "live": False, "request": None},
        {"record": "file", "path": "/gone.dat", "version": 1, "live": False, "request": None},
        {"record": "file", "path": "/kept.dat", "version": 1, "live": False, "request": None}]


def test_recover_text_quotes_a_name_of_what_the_index_held(library, tmp_path):
    """rev31f F3: the text shows each path named as a display shows names (render.shown): a
    name that ends in a blank was shown bare, as two names that differ by it were one."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/REPORT.TXT ", b"x")
        volume.write_bytes("/REPORT.TXT", b"y")
        volume.mkdir("/D")
    records = _sectors(library, "PVOL1")
    for kind, _, sector in records:
        if kind in ("FILE", "DIRECTORY") and sector > 1:
            damage_header(library.root, "PVOL1", sector, 2048)
    fresh = tmp_path / "copy"
    shutil.copytree(library.root, fresh)

    def run(*args, root):
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
        assert cli.main(["--library", str(root), *args], out=out, err=io.StringIO()) == 1
        return out.buffer.getvalue().decode()

    text = run("recover", "PVOL1", root=library.root)
    assert "file '/REPORT.TXT ' (version 1); file /REPORT.TXT (version 1)" in text
    assert "directory /D" in text
    held = [what for d in json.loads(run("--json", "recover", "PVOL1", root=fresh))["damaged"] for what in d["indexed"]]
    assert sorted((what["record"], what["path"], what["live"]) for what in held) == [
        ("directory", "/D", True), ("file", "/REPORT.TXT", True), ("file", "/REPORT.TXT ", True)]
