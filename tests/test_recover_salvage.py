"""recover makes a directory whose own record cannot be read again for the records below it
(recovery._Salvage; hunt27i F1: one changed byte of a directory's record made recover drop
every sound file below it, and CHKOPTVOL afterwards named only the sector)."""
from __future__ import annotations

import sqlite3

import pytest

from conftest import make_volume
from integrity_helpers import flip, volume_dir
from optvol.checking import chkoptvol
from optvol.recovery import recover

FILES = {"/A/one": b"1" * 5000, "/A/two": b"two", "/A/SUB/three": b"3" * 3000, "/B/four": b"four"}


def _written(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        for path, data in FILES.items():
            volume.mkdir(path.rsplit("/", 1)[0], parents=True, exist_ok=True)
            volume.write_bytes(path, data)


def _dir_sector(library, path: str) -> int:
    conn = sqlite3.connect(f"file:{volume_dir(library.root, 'PVOL1') / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT sector FROM dirs WHERE path = ? AND live = 1", (path,)).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("damaged", ["/A", "/"])
def test_the_files_below_a_directory_whose_record_is_damaged_are_recovered(library, damaged):
    _written(library)
    sector = _dir_sector(library, damaged)
    flip(volume_dir(library.root, "PVOL1") / "data.opv", sector * 2048 + 20)
    report = recover(library, vol="PVOL1")
    assert [d[0] for d in report.damaged] == [sector]
    assert report.salvaged == ([damaged] if damaged == "/A" else ["/"])
    assert report.as_json()["salvaged_directories"] == report.salvaged
    with library.open("PVOL1") as volume:
        assert {path: volume.read_bytes(path) for path in FILES} == FILES
        assert volume.listdir("/A") == ["SUB", "one", "two"]
    named = [d.path for d in chkoptvol(library, vol="PVOL1")[0].damaged]
    assert named == [damaged]  # (its record, at the sector it is given, cannot be read)


def test_without_damage_before_it_a_missing_directory_is_no_salvage(library):
    """A directory is made again only after a region that could have held its record."""
    _written(library)
    report = recover(library, vol="PVOL1")
    assert report.damaged == [] and report.salvaged == []


def test_on_udf_a_directory_made_again_and_removed_keeps_the_space_count(library):
    """rev27j F1: on UDF a directory made again was not charged, but the replay of its
    REMOVE_DIRECTORY record freed its record's sectors: meta.used_sectors fell below what an
    undamaged replay gives, and below 0 (the volume then could not be opened)."""
    from optvol.image import replay
    from optvol.model import MediaType
    make_volume(library, "UVOL1", medtype=MediaType.DVD_RAM)
    with library.open("UVOL1") as volume:
        for i in range(6):
            volume.mkdir(f"/D{i}")
            volume.write_bytes(f"/D{i}/f", b"x")
            volume.remove(f"/D{i}/f")
            volume.rmdir(f"/D{i}")
        volume.write_bytes("/keep", b"k")
        used = volume.image.meta("used_sectors")
    data = volume_dir(library.root, "UVOL1") / "data.opv"
    with open(data, "rb") as handle:
        found = [f for f in replay.scan(handle.fileno(), 2048)]
    for f in found:
        if f.header is not None and f.header.kind.name == "DIRECTORY" and f.header.body["path"] != "/":
            flip(data, f.sector * 2048 + 20)
    report = recover(library, vol="UVOL1")
    assert len(report.salvaged) == 6
    with library.open("UVOL1") as volume:
        assert volume.image.meta("used_sectors") == used
