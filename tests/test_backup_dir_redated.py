"""hunt27a F1: a directory removed and made again on the primary (a new creation time) kept
its old creation time on the backup for ever: DSPOPT *DIRATR of the primary and the backup
disagreed, and a restore or a CVTOPTBKU'd backup showed the date of a directory that no longer
existed. The next CPYOPT gives the backup's directory the primary's date, with a DIRECTORY
record of its own that recover replays and CHKOPTVOL checks; the backup's root keeps its own."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from conftest import data_path, index_path, make_volume
from integrity_helpers import damage_header
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.image import replay
from optvol.image.records import Kind
from optvol.model import VolumeType
from optvol.recovery import recover

WHOLE = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)


def _created(library, vol: str, column: str = "created") -> dict[str, int]:
    conn = sqlite3.connect(f"file:{index_path(library, vol)}?mode=ro", uri=True)
    try:
        return dict(conn.execute(f"SELECT path, {column} FROM dirs WHERE live = 1"))
    finally:
        conn.close()


def test_a_directory_made_again_on_the_primary_gives_the_backup_its_new_date(library, clock):
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D/E", parents=True)
        volume.write_bytes("/D/E/f", b"one")
        volume.mkdir("/G")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    clock.now += timedelta(days=30)
    with library.open("PVOL1") as volume:  # /D/E and /G removed and made again: new creation times
        volume.rename("/D/E/f", "/f")
        volume.rmdir("/D/E")
        volume.mkdir("/D/E")
        volume.rename("/f", "/D/E/f")
        volume.rmdir("/G")
        volume.mkdir("/G")
    before, primary = _created(library, "BVOL1"), _created(library, "PVOL1")
    assert before["/G"] != primary["/G"] and before["/D/E"] != primary["/D/E"]
    run = clock()
    assert cpyopt(library, WHOLE, now=run).failures == []
    after = _created(library, "BVOL1")
    assert {p: c for p, c in after.items() if p != "/"} == {p: c for p, c in primary.items() if p != "/"}
    assert after["/"] == before["/"] != primary["/"]  # the backup's root keeps its own
    with library.open("BVOL1") as backup:
        assert backup.dir_row("/G").backup().last_changed == run  # a change to the directory
    records = _created(library, "BVOL1", "sector")
    assert cpyopt(library, WHOLE, now=clock()).failures == []  # nothing more to do: no DIRECTORY record more
    assert _created(library, "BVOL1", "sector") == records
    assert [r.damaged for r in chkoptvol(library, vol="BVOL1")] == [[]]
    recover(library, vol="BVOL1")  # the index rebuilt from the records: the same dates
    assert _created(library, "BVOL1") == after
    assert [r.damaged for r in chkoptvol(library, vol="BVOL1")] == [[]]


def test_recover_takes_a_re_date_record_that_gives_the_time_a_directory_already_has(library, clock):
    """A DIRECTORY record at an existing directory's path is taken by recover whatever its time:
    one left untaken (its time the directory's already, as after a damaged region's salvage)
    ended the replay before it, and the rebuilt index lost the committed end beyond it."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    with library.open("BVOL1") as backup, backup.backup_writer() as writer:
        assert writer.redate_dir("/D", backup.dir_row("/D").created, replayed=True)
    before = _created(library, "BVOL1", "sector"), _created(library, "BVOL1")
    with library.open("BVOL1") as backup:
        end = backup.image.meta("committed_end")
    recover(library, vol="BVOL1")
    assert (_created(library, "BVOL1", "sector"), _created(library, "BVOL1")) == before
    with library.open("BVOL1") as backup:
        assert backup.image.meta("committed_end") == end
    assert [r.damaged for r in chkoptvol(library, vol="BVOL1")] == [[]]


def _sector_of(library, vol: str, kind: Kind) -> int:
    with open(data_path(library, vol), "rb") as handle:
        return [found.sector for found in replay.scan(handle.fileno(), 2048) if found.header.kind == kind][-1]


@pytest.mark.parametrize("lost", [Kind.REMOVE_DIRECTORY, Kind.RENAME], ids=["primary_rmdir", "backup_rename"])
def test_recover_gives_a_directory_the_spelling_of_its_last_directory_record(library, clock, lost):
    """hunt30h F1: where the record between two DIRECTORY records of one path in two
    spellings cannot be read (a primary's REMOVE_DIRECTORY before a mkdir of another
    spelling, a backup's RENAME of the case before its re-date), recover took the second as a
    re-date and left the directory under the first spelling. It takes the record's spelling too:
    the volume ends as before the damage, only the damaged sector named."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/d")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    clock.now += timedelta(days=1)
    with library.open("PVOL1") as volume:
        volume.rmdir("/d")
        volume.mkdir("/D")
        volume.write_bytes("/D/f", b"data")
    assert cpyopt(library, WHOLE, now=clock()).failures == []  # the backup: RENAME /d -> /D, re-date /D
    vol = "PVOL1" if lost == Kind.REMOVE_DIRECTORY else "BVOL1"
    before = _created(library, vol)
    assert "/D" in before and "/d" not in before
    damaged = _sector_of(library, vol, lost)
    damage_header(library.root, vol, damaged, 2048)
    recover(library, vol=vol)
    assert _created(library, vol) == before
    with library.open(vol) as volume:  # the file is where it was (a backup's files are read by CPYOPT only)
        assert [(f.path, f.size) for f in volume.iter_files("/", recursive=True)] == [("/D/f", 4)]
    assert [[d.path for d in r.damaged] for r in chkoptvol(library, vol=vol)] == [[f"(sector {damaged})"]]


def test_recover_names_what_the_index_held_in_a_damaged_region(library, clock):
    """hunt30h F2: a backup directory's re-date record damaged, recover gave it the earlier
    record's date and named only the sector; it names what the old index held there."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/A/SUB", parents=True)
        volume.write_bytes("/A/SUB/f", b"one")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    first = _created(library, "BVOL1")["/A/SUB"]
    clock.now += timedelta(days=1)
    with library.open("PVOL1") as volume:
        volume.rename("/A/SUB/f", "/f")
        volume.rmdir("/A/SUB")
        volume.mkdir("/A/SUB")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    redate = _created(library, "BVOL1", "sector")["/A/SUB"]
    file_sector = _sector_of(library, "BVOL1", Kind.FILE)
    damage_header(library.root, "BVOL1", redate, 2048)
    damage_header(library.root, "BVOL1", file_sector, 2048)
    report = recover(library, vol="BVOL1")
    assert _created(library, "BVOL1")["/A/SUB"] == first  # the earlier record's date, said below
    assert {d["sector"]: [(w["record"], w["path"], w["version"], w["live"]) for w in d["indexed"]]
            for d in report.as_json()["damaged"]} == {
        redate: [("directory", "/A/SUB", None, True)], file_sector: [("file", "/f", 1, True)]}


def test_recover_leaves_a_directory_whose_ancestor_had_another_spelling_and_its_files_as_they_were(library, clock):
    """3b59204 (it came without a test): a backup's /p/s re-dated after the primary renamed /p
    to /P, the RENAME record damaged. The re-date record names /P/s, whose own name is /p/s's:
    nothing moves, and the file below keeps the change time its FILE record gave (the move
    d8d37b7 made re-stamped it with the directory's creation time)."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/p/s", parents=True)
        volume.write_bytes("/p/s/f", b"one")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    clock.now += timedelta(days=1)
    with library.open("PVOL1") as volume:
        volume.remove("/p/s/f")
        volume.rmdir("/p/s")
        volume.rename("/p", "/P")
        volume.mkdir("/P/s")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    created = _created(library, "BVOL1")["/P/s"]
    with open(data_path(library, "BVOL1"), "rb") as handle:
        written = [f.header.body["time"] for f in replay.scan(handle.fileno(), 2048) if f.header.kind == Kind.FILE]
    damage_header(library.root, "BVOL1", _sector_of(library, "BVOL1", Kind.RENAME), 2048)
    recover(library, vol="BVOL1")
    assert _created(library, "BVOL1")["/p/s"] == created
    conn = sqlite3.connect(f"file:{index_path(library, 'BVOL1')}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT changed FROM files WHERE name = 'f'").fetchall() == [(written[0],)]
    finally:
        conn.close()


def test_files_below_a_directory_recover_renames_count_as_changed_after_every_change_before(library, clock):
    """rev31f F1: the files below a directory that recover moves to a re-date record's
    spelling (its case RENAME lost) took that record's time as their change time: the
    primary's creation of the directory, which a clock set back puts before changes made
    earlier. They take a stamp after every change replayed before it."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/f", b"kept on the backup")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    with library.open("BVOL1") as backup:
        before = backup.image.conn.execute("SELECT max(changed) FROM files").fetchone()[0]
    with library.open("PVOL1") as volume:
        volume.remove("/D/f")
        volume.rmdir("/D")
        clock.now -= timedelta(days=30)  # the primary's clock set back
        volume.mkdir("/d")
    clock.now += timedelta(days=60)
    assert cpyopt(library, WHOLE, now=clock()).failures == []  # RENAME /D -> /d, re-date /d
    damage_header(library.root, "BVOL1", _sector_of(library, "BVOL1", Kind.RENAME), 2048)
    recover(library, vol="BVOL1")
    with library.open("BVOL1") as backup:
        (path, changed), = backup.image.conn.execute(
            "SELECT d.path, f.changed FROM files f JOIN dirs d ON d.id = f.dir WHERE f.live = 1")
    assert path == "/d" and changed > before
