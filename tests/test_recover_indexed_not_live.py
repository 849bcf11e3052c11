"""recover's ``indexed`` (rev31f F2): what the old index held in a damaged region names a
removed directory and a version no longer live as such. A removed directory's record was
named not at all, and a deleted file's as ``file /gone.dat (version 1)``, which reads as a
file lost."""

from __future__ import annotations

from conftest import data_path, make_volume
from integrity_helpers import damage_header
from optvol.image import replay
from optvol.image.records import Kind
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
    assert sorted(named) == ["directory /X (removed)", "file /gone.dat (version 1, no longer live)",
                             "file /kept.dat (version 1, no longer live)"]
