"""DUPOPT (reference §10.7, DESIGN §1): a duplicate identical to the source except its
identifier and creation time; the target rules; NEWVOL; ALWMEDERR."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from conftest import make_volume
from integrity_helpers import content, damage_header, flip_payload, index_rows, run_cli
from optvol import errors
from optvol.change_volume import chgoptvol
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.duplicate import dupopt
from optvol.model import BEGIN, MediaType, VolumeType
from optvol.recovery import recover

SAME_LABEL = ("type", "media_type", "media_format", "sector_size", "capacity", "threshold", "text",
              "primary_volume", "backup_start", "backup_end", "backup_last_changed")


def _source(library, vol: str = "PVOL1", **media) -> None:
    """A primary with directories, versions, a deleted file, flags, text and threshold."""
    make_volume(library, vol, **media)
    with library.open(vol) as volume:
        volume.mkdir("/A/B", parents=True)
        for i in range(12):
            path = f"/A/B/F{i}" if i % 2 else f"/A/F{i}"
            volume.write_bytes(path, content(path, 500 * i))
        volume.write_bytes("/A/F0", b"version 2")
        volume.write_bytes("/A/F0", b"version 3")
        volume.write_bytes("/GONE", b"deleted later")
        volume.remove("/GONE")
        volume.set_attributes("/A/F2", read_only=True)
        volume.set_attributes("/A/B/F3", hidden=True)
    chgoptvol(library, vol=vol, text="the source volume", threshold=90)


def _state(library, vol: str) -> dict:
    """Everything DUPOPT must reproduce: files with every version, dirs, label, requests."""
    with library.open(vol) as volume:
        files = {}
        for info in volume.iter_files("/", recursive=True):
            files[info.path] = (
                [(v.size, v.created, v.modified, v.attr_changed, v.read_only, v.hidden, v.sha256, v.version)
                 for v in volume.versions(info.path)],
                volume.read_bytes(info.path) if volume.label()["type"] == VolumeType.PRIMARY else None,
            )
        dirs = [(d.path, d.created, d.backup) for d in volume.iter_dirs("/")]
        label = volume.label()
        info = volume.info()
        return {
            "files": files, "dirs": dirs, "label": {k: label[k] for k in SAME_LABEL},
            "used": info.used, "counts": (info.files, info.directories, volume.version_count()),
            "requests": volume.requests(),
            "created": label["created"],
        }


def test_duplicate_is_identical_but_for_id_and_creation(library, clock):
    _source(library)
    before = _state(library, "PVOL1")
    clock.now += timedelta(days=3)
    result = dupopt(library, fromvol="PVOL1", tovol="DVOL1", now=clock())
    assert result.volume.volume == "DVOL1" and result.left_out == []
    assert result.files == before["counts"][2]
    after = _state(library, "DVOL1")
    assert after["created"] != before["created"]
    with library.open("DVOL1") as duplicate:  # referenced when it was made, not before it existed
        assert duplicate.info().last_referenced >= duplicate.info().created
    for key in ("files", "dirs", "label", "counts", "requests"):
        assert after[key] == before[key], key
    assert after["used"] >= before["used"]
    assert _state(library, "PVOL1") == before  # the source is untouched
    [check] = chkoptvol(library, vol="DVOL1")
    assert check.damaged == [] and check.files_checked == before["counts"][2]
    with library.open("DVOL1") as duplicate:  # a primary duplicate is writable
        duplicate.write_bytes("/NEW", b"new")


def test_backup_source_stays_backup_with_its_history(library, clock):
    _source(library)
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    for _ in range(2):
        request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
        assert not cpyopt(library, request, now=clock()).failures
        with library.open("PVOL1") as volume:
            volume.write_bytes("/A/F4", content("again", 77))
    before = _state(library, "BVOL1")
    assert len(before["requests"]) == 2 and before["label"]["primary_volume"] == "PVOL1"
    assert any(backup is not None for _, _, backup in before["dirs"])
    shell = run_cli(library.root, "dupopt", "BVOL1", "BVOL2", json_output=True)
    assert shell.rc == 0, shell.err
    assert shell.json()["volume"]["type"] == "*BACKUP"
    assert shell.json()["volume"]["primary_volume"] == "PVOL1"
    after = _state(library, "BVOL2")
    for key in ("files", "dirs", "label", "counts", "requests"):
        assert after[key] == before[key], key
    with library.open("BVOL2") as duplicate, pytest.raises(errors.NotAllowedError):
        duplicate.read_bytes("/A/F2")  # user programs cannot open a backup's files
    # The duplicate takes further backups of its primary, and only of it.
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL2", totype=VolumeType.BACKUP, cpysubdir=True)
    assert cpyopt(library, request, now=clock()).copied == 1
    make_volume(library, "OTHER")
    with pytest.raises(errors.NotAllowedError):
        cpyopt(library, CopyRequest(fromvol="OTHER", frompath="/", tovol="BVOL2", totype=VolumeType.BACKUP),
               now=clock())


# --------------------------------------------------------------------- target rules


def _refused(library, code: int, message_id: str, *args: str) -> None:
    before = sorted(library.volume_ids())
    result = run_cli(library.root, "dupopt", *args)
    assert result.rc == code, (args, result.rc, result.err)
    assert message_id in result.err, result.err
    assert sorted(library.volume_ids()) == before
    assert list((library.root / ".tmp").iterdir()) == []


def test_media_type_must_match(library):
    _source(library)
    make_volume(library, "DVDRAM", medtype=MediaType.DVD_RAM)
    make_volume(library, "WORM1", medtype=MediaType.WORM)
    _refused(library, 5, "OPV0406", "PVOL1", "DVDRAM")
    _refused(library, 5, "OPV0406", "PVOL1", "WORM1")  # erasable data cannot go to WORM
    _source(library, "WSRC", medtype=MediaType.WORM)
    make_volume(library, "ERASE1")
    assert run_cli(library.root, "dupopt", "WSRC", "ERASE1").rc == 0  # WORM to erasable is allowed
    with library.open("ERASE1") as duplicate:
        assert duplicate.info().media_type is MediaType.ERASE
    make_volume(library, "WORM2", medtype=MediaType.WORM)
    assert run_cli(library.root, "dupopt", "WSRC", "WORM2").rc == 0  # an uninitialized WORM target
    assert _state(library, "WORM2")["files"] == _state(library, "WSRC")["files"]


def test_worm_target_that_held_data_is_refused(library):
    _source(library, "WSRC", medtype=MediaType.WORM)
    make_volume(library, "WORM1", medtype=MediaType.WORM)
    with library.open("WORM1") as target:
        target.write_bytes("/X", b"x")
        target.remove("/X")  # no live files, but it held data
    _refused(library, 5, "OPV0104", "WSRC", "WORM1", "--clear", "*YES")


def test_block_size_and_capacity(library):
    _source(library, capacity=64 << 20)
    make_volume(library, "BIGBLK", blksize=4096, capacity=64 << 20)
    make_volume(library, "SMALLCAP", capacity=32 << 20)
    make_volume(library, "BIGCAP", capacity=128 << 20)
    _refused(library, 5, "OPV0406", "PVOL1", "BIGBLK")
    _refused(library, 5, "OPV0406", "PVOL1", "SMALLCAP")
    assert run_cli(library.root, "dupopt", "PVOL1", "BIGCAP").rc == 0
    with library.open("BIGCAP") as duplicate:
        assert duplicate.info().capacity == 128 << 20


def test_clear_needed_over_a_target_holding_files(library):
    _source(library)
    make_volume(library, "TVOL1")
    with library.open("TVOL1") as target:
        target.write_bytes("/OLD", b"old")
    _refused(library, 5, "OPV0407", "PVOL1", "TVOL1")
    with library.open("TVOL1") as target:
        assert target.read_bytes("/OLD") == b"old"
    assert run_cli(library.root, "dupopt", "PVOL1", "TVOL1", "--clear", "*YES").rc == 0
    with library.open("TVOL1") as duplicate:
        assert not duplicate.exists("/OLD")
    assert _state(library, "TVOL1")["files"] == _state(library, "PVOL1")["files"]


def test_read_only_media_target_is_refused(library, tmp_path):
    from optvol.interchange import export_iso, import_iso

    _source(library)
    export_iso(library, vol="PVOL1", file=tmp_path / "disc.iso", now=datetime.now(timezone.utc))
    import_iso(library, file=tmp_path / "disc.iso", vol="CDROM1", now=library._clock())
    with library.open("CDROM1") as disc:
        assert disc.info().media_type in (MediaType.CD_ROM, MediaType.DVD_ROM)
    _refused(library, 5, "OPV0406", "PVOL1", "CDROM1", "--clear", "*YES")  # (OPV0106 said "cannot be initialized")


def test_a_volume_is_not_its_own_duplicate(library):
    _source(library)
    _refused(library, 5, "OPV0406", "PVOL1", "PVOL1")


# --------------------------------------------------------------------- NEWVOL


def test_newvol(library):
    _source(library)
    make_volume(library, "TVOL1")
    _refused(library, 4, "OPV0003", "PVOL1", "TVOL1", "*FROMVOL")  # the source still exists
    make_volume(library, "TAKEN")
    _refused(library, 4, "OPV0003", "PVOL1", "TVOL1", "TAKEN")
    assert run_cli(library.root, "dupopt", "PVOL1", "TVOL1", "*TOVOL").rc == 0
    assert "TVOL1" in library.volume_ids()
    make_volume(library, "TVOL2")
    assert run_cli(library.root, "dupopt", "PVOL1", "TVOL2", "NEWID").rc == 0
    ids = library.volume_ids()
    assert "NEWID" in ids and "TVOL2" not in ids  # the target took the new identifier
    assert _state(library, "NEWID")["files"] == _state(library, "PVOL1")["files"]


def test_newvol_of_a_tovol_the_library_does_not_hold_is_refused(library):
    """NEWVOL renames the target medium; a TOVOL the library does not hold (mistyped) with
    a NEWVOL is OPV0002, as INZOPT's VOL with a NEWVOL is, and makes nothing (rev27f F5)."""
    _source(library)
    before = library.volume_ids()
    _refused(library, 3, "OPV0002", "PVOL1", "NOPE", "OTHER")
    assert library.volume_ids() == before
    assert run_cli(library.root, "cl", "DUPOPT FROMVOL(PVOL1) TOVOL(NOPE) NEWVOL(OTHER)").rc == 3
    assert library.volume_ids() == before
    assert run_cli(library.root, "dupopt", "PVOL1", "NEW1", "*TOVOL").rc == 0  # a new TOVOL alone is made
    assert "NEW1" in library.volume_ids()


def test_newvol_takes_an_identifier_freed_by_removing_the_source(library, clock):
    _source(library)
    dupopt(library, fromvol="PVOL1", tovol="SPARE", now=clock())
    expected = _state(library, "PVOL1")["files"]
    make_volume(library, "TVOL1")
    with pytest.raises(errors.ExistsError):
        dupopt(library, fromvol="SPARE", tovol="TVOL1", now=clock(), newvol="*FROMVOL")
    dupopt(library, fromvol="SPARE", tovol="COPY2", now=clock())
    library.discard("SPARE")
    with pytest.raises(errors.ExistsError):  # COPY2 is there, so *FROMVOL (COPY2) is taken
        dupopt(library, fromvol="COPY2", tovol="TVOL1", now=clock(), newvol="*FROMVOL")
    library.discard("PVOL1")
    dupopt(library, fromvol="COPY2", tovol="TVOL1", now=clock(), newvol="PVOL1")
    assert "PVOL1" in library.volume_ids() and "TVOL1" not in library.volume_ids()
    assert _state(library, "PVOL1")["files"] == expected


# --------------------------------------------------------------------- ALWMEDERR


def _damage(library, vol: str) -> list[str]:
    rows = {(r["path"], r["version"]): r for r in index_rows(library.root, vol)}
    flip_payload(library.root, vol, rows[("/A/B/F5", 1)], 10)
    flip_payload(library.root, vol, rows[("/A/F0", 2)], 0)  # an old version
    return ["/A/B/F5", "/A/F0 (version 2)"]


def test_dupopt_of_a_damaged_source_names_the_source(library):
    """OPV0206 named the duplicate (a volume that then did not exist) for damage on the source."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/u.txt", b"u" * 100)
    flip_payload(library.root, "PVOL1", next(r for r in index_rows(library.root, "PVOL1") if r["path"] == "/u.txt"))
    result = run_cli(library.root, "dupopt", "PVOL1", "PVDUP")
    assert result.rc == 7 and result.err.startswith("optvol: OPV0206: Volume PVOL1 has 1 damaged item(s): /u.txt")


def test_alwmederr_none_fails_and_adds_nothing(library):
    _source(library)
    _damage(library, "PVOL1")
    _refused(library, 7, "OPV0206", "PVOL1", "DVOL1")
    _refused(library, 7, "OPV0206", "PVOL1", "DVOL1", "--alwmederr", "*NONE")
    make_volume(library, "TVOL1")
    with library.open("TVOL1") as target:
        target.write_bytes("/KEEP", b"keep")
    _refused(library, 7, "OPV0206", "PVOL1", "TVOL1", "--clear", "*YES")
    with library.open("TVOL1") as target:
        assert target.read_bytes("/KEEP") == b"keep"


def test_alwmederr_file_leaves_damaged_files_out(library):
    _source(library)
    damaged = _damage(library, "PVOL1")
    before = _state_without(library, "PVOL1", damaged)
    result = run_cli(library.root, "dupopt", "PVOL1", "DVOL1", "--alwmederr", "*FILE", json_output=True)
    assert result.rc == 1 and result.err == ("optvol: OPV0208: Volume DVOL1 was duplicated without "
                                             f"{len(damaged)} damaged file version(s); the result lists them.\n")
    document = result.json()
    assert sorted(d["path"] for d in document["left_out"]) == sorted(damaged)
    [check] = chkoptvol(library, vol="DVOL1")
    assert check.damaged == []
    with library.open("DVOL1") as duplicate:
        assert not duplicate.exists("/A/B/F5")
        assert duplicate.read_bytes("/A/F0") == b"version 3"
        for path, data in before.items():
            assert duplicate.read_bytes(path) == data
        assert {f.path for f in duplicate.iter_files("/", recursive=True)} == set(before)
    assert check.files_checked == document["files"]
    # The duplicate's own records say what it left out, under its own ID: recover rebuilds
    # the same index, and nothing damaged comes back.
    kept = index_rows(library.root, "DVOL1")
    report = recover(library, vol="DVOL1")
    assert report.damaged == [] and index_rows(library.root, "DVOL1") == kept
    assert chkoptvol(library, vol="DVOL1")[0].damaged == []
    conn = sqlite3.connect(library.root / "DVOL1.optvol" / "index.sqlite")  # recover's own indexes are gone
    assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'recover%'").fetchall() == []
    conn.close()


def test_a_region_within_left_out_versions_is_found_by_a_search():
    """``replay.within`` sorted every extent for every damaged region (quadratic when a
    duplicate left many versions out); it searches the merged extents now, with the answers
    of the walk over all of them, and extents that overlap (a forged record) count whole."""
    import random

    from optvol.image import replay

    def walked(first: int, count: int, extents: list[tuple[int, int]]) -> bool:
        end = first
        for at, length in sorted(extents):
            if at <= end < at + length:
                end = at + length
            if end >= first + count:
                return True
        return False

    chance = random.Random(6)
    for _ in range(2000):
        extents, at = [], 0
        for _ in range(chance.randrange(0, 8)):
            at += chance.randrange(0, 4)
            length = chance.randrange(1, 5)
            extents.append((at, length))
            at += length
        first, count = chance.randrange(0, at + 3), chance.randrange(1, 8)
        assert replay.within(first, count, replay.merged(extents)) == walked(first, count, extents), (
            first, count, extents)
    assert replay.within(50, 10, replay.merged([(0, 100), (10, 5)]))  # not only the last extent starting before


def test_alwmederr_file_of_a_backup_lets_the_next_cpyopt_bring_the_file_back(library, clock):
    """The backup's ranges claimed the files DUPOPT left out of its duplicate: they are
    forgotten, so the next *CHANGED run onto the duplicate copies them again."""
    _source(library)
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    cpyopt(library, request, now=clock())
    rows = {(r["path"], r["version"]): r for r in index_rows(library.root, "BVOL1")}
    flip_payload(library.root, "BVOL1", rows[("/A/B/F5", 1)], 10)
    result = run_cli(library.root, "dupopt", "BVOL1", "BDUP", "--alwmederr", "*FILE", json_output=True)
    assert result.rc == 1 and "OPV0208" in result.err, result.err  # completed with errors (hunt-spec F1)
    assert [d["path"] for d in result.json()["left_out"]] == ["/A/B/F5"]
    with library.open("BDUP") as duplicate:  # only /A/B's range, and the volume's, claimed F5
        forgotten = {d.path for d in duplicate.iter_dirs("/") if d.backup and
                     duplicate.image.conn.execute("SELECT backup_seen FROM dirs WHERE path = ?", (d.path,)).fetchone()[0]
                     is None}
        assert forgotten == {"/A/B"} and duplicate.label()["backup_seen"] is None
    # DSPOPT showed those ranges as complete, while the duplicate lacks F5: now as none.
    shown = run_cli(library.root, "dspopt", "BDUP", "--data", "*DIRATR", "--path", "/A/B", json_output=True).json()
    assert [(d["path"], d["backup"]["range_start"], d["backup"]["range_end"]) for d in shown] == [("/A/B", None, None)]
    assert shown[0]["backup"]["last_changed"] is not None
    volume = run_cli(library.root, "dspopt", "BDUP", json_output=True).json()
    assert (volume["backup"]["range_start"], volume["backup"]["range_end"]) == (None, None)
    with library.open("BDUP") as duplicate:
        assert duplicate.stat("/A").backup.range_start == BEGIN  # a range that still holds what it claims
        assert duplicate.stat("/A").backup.range_end is not None
    again = cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BDUP", totype=VolumeType.BACKUP,
                                        cpysubdir=True), now=clock())
    assert (again.copied, again.failures) == (1, [])
    with library.open("BDUP") as duplicate, library.open("PVOL1") as primary:
        assert duplicate.stat("/A/B/F5").sha256 == primary.stat("/A/B/F5").sha256
    assert chkoptvol(library, vol="BDUP")[0].damaged == []
    kept = index_rows(library.root, "BDUP")
    assert recover(library, vol="BDUP").damaged == [] and index_rows(library.root, "BDUP") == kept


def _state_without(library, vol: str, damaged: list[str]) -> dict[str, bytes]:
    with library.open(vol) as volume:
        return {info.path: volume.read_bytes(info.path) for info in volume.iter_files("/", recursive=True)
                if info.path not in damaged}


@pytest.mark.parametrize("case", ["two versions side by side", "a file deleted before", "renamed before",
                                  "renamed, its attributes changed, its directory renamed",
                                  "deleted, its directory renamed"])
def test_recover_and_chkoptvol_of_a_duplicate_know_every_version_left_out(library, case):
    """Two damaged versions left out side by side read as one unreadable region, and a user's
    DELETE of a version left out finds nothing to delete: neither is damage, and recover
    rebuilds the same used space (HPOFS charges the DELETE). So are a user's renames and
    attribute changes of a version left out, followed through renames of its directory
    (rev27e F1: the fresh duplicate was damaged for CHKOPTVOL, recover exit 1)."""
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    make_volume(library, "S", medtype=MediaType.ERASE, capacity=4 << 20)
    with library.open("S") as volume:
        volume.write_bytes("/keep", b"k" * 5000)
        volume.mkdir("/D")
        volume.write_bytes("/D/a", b"A" * 30_000)
        if case == "two versions side by side":
            volume.write_bytes("/D/a", b"B" * 37_000)
        elif case == "a file deleted before":
            volume.remove("/D/a")
        elif case == "renamed before":
            volume.rename("/D/a", "/D/b")
        elif case == "deleted, its directory renamed":
            volume.remove("/D/a")
            volume.rename("/D", "/E")
        else:
            volume.rename("/D/a", "/D/b")
            volume.set_attributes("/D/b", hidden=True)
            volume.rename("/D", "/E")
            volume.rename("/E/b", "/E/c")
        sectors = [row[0] for row in volume.image.conn.execute("SELECT sector FROM files WHERE name != 'keep'")]
        sector_size = volume.image.sector_size
    for sector in sectors:
        damage_header(library.root, "S", sector, sector_size)
    result = dupopt(library, fromvol="S", tovol="D", now=now, allow_media_errors=True)
    assert len(result.left_out) == len(sectors)
    assert chkoptvol(library, vol="D")[0].damaged == []
    with library.open("D") as volume:
        used = volume.info().used
    report = recover(library, vol="D")
    assert report.damaged == []
    with library.open("D") as volume:
        assert volume.info().used == used and volume.read_bytes("/keep") == b"k" * 5000
        assert [info.path for info in volume.iter_files("/", recursive=True)] == ["/keep"]


def test_worm_backup_that_recorded_its_primary_is_no_target(library):
    """A WORM backup that a CPYOPT of directories alone claimed holds no file version, but
    its claim, control records and request log are written once: DUPOPT may not write over
    it, as INZOPT may not (OPV0104; review 24f F1)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
    make_volume(library, "BW", medtype=MediaType.WORM, type=VolumeType.BACKUP)
    cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BW", totype=VolumeType.BACKUP, cpysubdir=True),
           now=datetime(2026, 1, 2, tzinfo=timezone.utc))
    _source(library, "WSRC", medtype=MediaType.WORM)
    _refused(library, 5, "OPV0104", "WSRC", "BW", "--clear", "*YES")
    with library.open("BW") as volume:
        assert volume.label()["primary_volume"] == "PVOL1"
        assert volume.label()["type"] == VolumeType.BACKUP
