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


@pytest.mark.parametrize("damaged", [("/A/one",), ("/A/one", "/A")])
def test_a_recovered_backup_claims_no_range_over_a_file_it_lacks(library, clock, damaged):
    """rev27j F2: a backup whose record of /A/one (and of /A) cannot be read: recover applied
    /A's control record, whose range claimed /A/one, and every later *CHANGED run skipped it.
    After damage a recovered backup's ranges hold nothing for certain: the next run compares
    every file and copies /A/one again."""
    from optvol.copying import CopyRequest, cpyopt
    from optvol.model import VolumeType

    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/A")
        volume.write_bytes("/A/one", b"1" * 3000)
        volume.write_bytes("/A/two", b"2")
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    assert cpyopt(library, request, now=clock()).copied == 2
    index = volume_dir(library.root, "BVOL1") / "index.sqlite"
    conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    sectors = [conn.execute("SELECT f.sector FROM files f JOIN dirs d ON d.id = f.dir WHERE d.path = '/A'"
                            " AND f.name = 'one'").fetchone()[0]]
    if "/A" in damaged:
        sectors.append(conn.execute("SELECT sector FROM dirs WHERE path = '/A'").fetchone()[0])
    conn.close()
    for sector in sectors:
        flip(volume_dir(library.root, "BVOL1") / "data.opv", sector * 2048 + 20)
    assert recover(library, vol="BVOL1").damaged
    with library.open("BVOL1") as backup:
        assert (backup.stat("/A").backup.range_start, backup.stat("/A").backup.range_end) == (None, None)
        assert [e.path for e in backup.scandir("/A")] == ["/A/two"]
    outcome = cpyopt(library, request, now=clock())
    assert (outcome.copied, outcome.failed) == (1, 0)
    with library.open("BVOL1") as backup, library.open("PVOL1") as primary:
        assert backup.stat("/A/one").sha256 == primary.stat("/A/one").sha256


@pytest.mark.parametrize("later", [False, True], ids=["fresh", "written-since"])
def test_a_duplicate_whose_naming_label_record_is_damaged_is_recovered_under_its_own_id(library, clock, later):
    """hunt27n F1: the LABEL record DUPOPT writes to name the duplicate D, damaged: recover
    rebuilt D's index under its source's ID, which every command then refused (OPV0201), and
    left out every record written onto D since, as records of another volume."""
    import os

    from optvol.duplicate import dupopt
    from optvol.image import replay

    make_volume(library, "P")
    with library.open("P") as volume:
        volume.write_bytes("/f", b"from the source")
    dupopt(library, fromvol="P", tovol="D", now=clock())
    fd = os.open(volume_dir(library.root, "D") / "data.opv", os.O_RDONLY)
    try:
        naming = [f.sector for f in replay.scan(fd, 2048) if f.header and f.header.kind.name == "LABEL"][-1]
    finally:
        os.close(fd)
    if later:
        with library.open("D") as volume:
            volume.write_bytes("/since", b"written onto the duplicate")
    flip(volume_dir(library.root, "D") / "data.opv", naming * 2048 + 20)
    report = recover(library, vol="D")
    assert report.volume == "D" and [d[0] for d in report.damaged] == [naming]
    with library.open("D") as volume:
        assert volume.read_bytes("/f") == b"from the source"
        assert volume.exists("/since") == later


def test_a_backup_whose_root_record_is_damaged_keeps_its_root_control_records(library, clock):
    """hunt27n F3: the root made again for a file below it, but a control record of "/" that
    came before any such file was reported not applied ("Directory '/' not found")."""
    from optvol.copying import CopyRequest, cpyopt
    from optvol.model import VolumeType

    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    assert cpyopt(library, request, now=clock()).copied == 0  # (the control record of "/" before any file)
    with library.open("PVOL1") as volume:
        volume.write_bytes("/f", b"f")
    assert cpyopt(library, request, now=clock()).copied == 1
    root = sqlite3.connect(f"file:{volume_dir(library.root, 'BVOL1') / 'index.sqlite'}?mode=ro", uri=True).execute(
        "SELECT sector FROM dirs WHERE path = '/'").fetchone()[0]
    flip(volume_dir(library.root, "BVOL1") / "data.opv", root * 2048 + 20)
    report = recover(library, vol="BVOL1")
    assert [d[0] for d in report.damaged] == [root] and report.salvaged == ["/"]
    with library.open("BVOL1") as backup:
        assert [e.path for e in backup.scandir("/")] == ["/f"]


def test_a_primary_recovered_with_damage_is_compared_whole_by_its_backup(library, clock):
    """hunt27o F2: the primary's attribute change is the damaged record; recover gives the file
    its older flags back, while the backup's range claimed the newer ones, so *CHANGED never
    brought them together. A primary recovered with damage has a history of its own
    (meta.recovered_mark in copying._history_of): the next run compares every file."""
    from optvol.copying import CopyRequest, cpyopt
    from optvol.model import VolumeType

    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    with library.open("PVOL1") as volume:
        volume.write_bytes("/f", b"f")
    assert cpyopt(library, request, now=clock()).copied == 1
    data = volume_dir(library.root, "PVOL1") / "data.opv"
    attributes = data.stat().st_size // 2048  # (the next record's sector)
    with library.open("PVOL1") as volume:
        volume.set_attributes("/f", hidden=True)
        volume.write_bytes("/g", b"g")  # (so that the damaged record is not the last)
    assert cpyopt(library, request, now=clock()).copied == 2
    flip(data, attributes * 2048 + 20)
    assert [d[0] for d in recover(library, vol="PVOL1").damaged] == [attributes]
    with library.open("PVOL1") as primary:
        assert not primary.stat("/f").hidden
    assert cpyopt(library, request, now=clock()).copied == 1
    with library.open("BVOL1") as backup, library.open("PVOL1") as primary:
        assert (backup.stat("/f").hidden, backup.stat("/f").attr_changed) == (False, primary.stat("/f").attr_changed)
    assert cpyopt(library, request, now=clock()).copied == 0  # (and only once)


def _last_label_sector(library, vol: str) -> int:
    import os

    from optvol.image import replay

    fd = os.open(volume_dir(library.root, vol) / "data.opv", os.O_RDONLY)
    try:
        return [f.sector for f in replay.scan(fd, 2048) if f.header and f.header.kind.name == "LABEL"][-1]
    finally:
        os.close(fd)


@pytest.mark.parametrize("later", [False, True], ids=["fresh", "written-since"])
def test_a_converted_backup_whose_converting_label_record_is_damaged_stays_a_primary(library, clock, later):
    """rev27p F1: recover took the ID of the CVTOPTBKU record it could not read, not the type
    that record gave: the converted primary came back a *BACKUP of itself, refusing writes."""
    from optvol.conversion import cvtoptbku
    from optvol.copying import CopyRequest, cpyopt
    from optvol.model import VolumeType

    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.write_bytes("/f", b"f")
    cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP,
                                cpysubdir=True), now=clock())
    library.remove("PVOL1")
    cvtoptbku(library, bkuvol="BVOL1")
    converting = _last_label_sector(library, "PVOL1")
    if later:
        with library.open("PVOL1") as volume:
            volume.write_bytes("/since", b"since")
    flip(volume_dir(library.root, "PVOL1") / "data.opv", converting * 2048 + 20)
    assert [d[0] for d in recover(library, vol="PVOL1").damaged] == [converting]
    with library.open("PVOL1") as volume:
        assert volume.label()["type"] == VolumeType.PRIMARY
        volume.write_bytes("/more", b"more")
        assert volume.exists("/since") == later


def test_a_duplicate_whose_naming_label_record_is_damaged_keeps_its_own_media(library, clock):
    """rev27p F2: DUPOPT's LABEL record also gave the duplicate its medium (an *ERASE of a
    *WORM, a larger capacity) and its creation time; recover kept the source's."""
    from optvol.duplicate import dupopt
    from optvol.initialize import inzopt
    from optvol.model import MediaType

    inzopt(library, vol="P", now=clock(), medtype=MediaType.WORM, capacity=64 * 2**20)
    inzopt(library, vol="D", now=clock(), medtype=MediaType.ERASE, capacity=512 * 2**20)
    with library.open("P") as volume:
        volume.write_bytes("/f", b"from the source")
    dupopt(library, fromvol="P", tovol="D", now=clock())
    keys = ("volume", "type", "media_type", "capacity", "created")
    with library.open("D") as volume:
        before = {key: volume.label()[key] for key in keys}
    flip(volume_dir(library.root, "D") / "data.opv", _last_label_sector(library, "D") * 2048 + 20)
    recover(library, vol="D")
    with library.open("D") as volume:
        assert {key: volume.label()[key] for key in keys} == before


def test_a_torn_header_past_the_committed_end_leaves_no_recovered_mark(library, clock):
    """rev27p F3: nothing committed was lost to a header a crash tore past the committed end
    (recover cuts it off with the tail), yet the mark made every backup another history's."""
    from optvol.copying import CopyRequest, _history_of, cpyopt
    from optvol.model import VolumeType
    from optvol.volume_rows import optional_meta

    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    with library.open("PVOL1") as volume:
        volume.write_bytes("/f", b"f")
    cpyopt(library, request, now=clock())
    with open(volume_dir(library.root, "PVOL1") / "data.opv", "ab") as handle:
        handle.write(b"OP" + b"\xff" * 2046)
    report = recover(library, vol="PVOL1")
    assert report.damaged and report.tail_cut == 2048
    with library.open("PVOL1") as volume:
        assert optional_meta(volume.image.conn, "recovered_mark") is None
    with library.open("PVOL1") as primary, library.open("BVOL1") as backup:  # the same history still
        assert _history_of(primary) == optional_meta(backup.image.conn, "primary_history") is not None
