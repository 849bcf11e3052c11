"""``optvol recover``: the index rebuilt from the data partition equals the original.

Volumes are made by every command that writes (INZOPT, the file API on HPOFS and UDF,
CHGOPTVOL, CPYOPT to a backup, CVTOPTBKU, DUPOPT); then their index is deleted or
corrupted and rebuilt. ``last_referenced`` is the one field the data partition cannot
give back exactly (it is the start time of the last write transaction).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from integrity_helpers import downgrade_to_schema_3, index_dump
from optvol import errors, model
from optvol.change_volume import chgoptvol
from optvol.checking import chkoptvol
from optvol.conversion import cvtoptbku
from optvol.copying import CopyRequest, cpyopt
from optvol.duplicate import dupopt
from optvol.image import schema
from optvol.initialize import inzopt
from optvol.library import Library
from optvol.model import MediaType, VolumeType
from optvol.recovery import recover


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def lib(tmp_path):
    clock = Clock()
    library = Library(tmp_path / "lib", clock=clock)
    library.tick = clock
    return library


def fill(library: Library, vol: str) -> None:
    """Every kind of user write: mkdir, write, replace, attributes, rename (file and directory), delete, rmdir."""
    with library.open(vol) as volume:
        volume.mkdir("/A/B", parents=True)
        volume.write_bytes("/A/one", b"1" * 5000)
        volume.write_bytes("/A/one", b"one again")
        volume.write_bytes("/A/B/two", b"two")
        volume.set_attributes("/A/B/two", read_only=True, hidden=True)
        volume.rename("/A/B", "/A/C")
        volume.write_bytes("/A/gone", b"bye")
        volume.remove("/A/gone")
        volume.mkdir("/EMPTY")
        volume.rmdir("/EMPTY")
        with volume.open("/A/C/big", "wb") as handle:
            handle.write(os.urandom(300_000))
        with volume.batch():
            for number in range(30):
                volume.write_bytes(f"/A/C/batch{number:02}", bytes([number]) * number)


def dump(library: Library, vol: str) -> dict:
    return index_dump(library.root / f"{vol}.optvol" / "index.sqlite")


def _marked(rebuilt: dict) -> dict:
    """An index ``recover`` rebuilt from damaged records, without the ``recovered_mark`` it must
    hold (a history of its own for its backups: copying._history_of)."""
    meta = [row for row in rebuilt["meta"] if row[0] != "recovered_mark"]
    assert len(meta) == len(rebuilt["meta"]) - 1, "recover met damage: the index holds its mark"
    return {**rebuilt, "meta": meta}


def lose_index(library: Library, vol: str, how: str) -> None:
    index = library.root / f"{vol}.optvol" / "index.sqlite"
    if how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            (index.parent / (index.name + suffix)).unlink(missing_ok=True)
    else:
        conn = sqlite3.connect(index)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        with open(index, "r+b") as handle:
            handle.seek(0)
            handle.write(b"this is no longer a database" * 40)


def rebuilt_equals_original(library: Library, vol: str, how: str) -> None:
    before = dump(library, vol)
    lose_index(library, vol, how)
    with pytest.raises(errors.OptvolError) as broken:
        library.open(vol).close()
    assert broken.value.exit_code == 7
    report = recover(library, vol=vol)
    assert report.damaged == [] and report.tail_cut == 0
    assert dump(library, vol) == before
    (result,) = chkoptvol(library, vol=vol)
    assert result.damaged == []


@pytest.mark.parametrize("how", ["deleted", "corrupt"])
def test_file_api_volumes_hpofs_and_udf(lib, how):
    inzopt(lib, vol="HPOFS1", now=lib.tick())
    inzopt(lib, vol="UDF1", medtype=MediaType.DVD_RAM, now=lib.tick())
    for vol in ("HPOFS1", "UDF1"):
        fill(lib, vol)
        chgoptvol(lib, vol=vol, text="changed text")
    chgoptvol(lib, vol="HPOFS1", threshold=80)
    for vol in ("HPOFS1", "UDF1"):
        rebuilt_equals_original(lib, vol, how)
    with lib.open("UDF1") as udf:
        assert udf.read_bytes("/A/one") == b"one again" and udf.stat("/A/C/two").read_only


def test_backup_volume_with_ranges_and_request_log_then_converted_and_duplicated(lib):
    inzopt(lib, vol="PVOL1", now=lib.tick())
    inzopt(lib, vol="BVOL1", type=VolumeType.BACKUP, now=lib.tick())
    fill(lib, "PVOL1")
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    cpyopt(lib, request, now=lib.tick())
    with lib.open("PVOL1") as pvol:
        pvol.write_bytes("/A/one", b"third version")
    cpyopt(lib, request, now=lib.tick())
    dupopt(lib, fromvol="BVOL1", tovol="BCOPY", now=lib.tick())
    rebuilt_equals_original(lib, "BVOL1", "deleted")
    rebuilt_equals_original(lib, "BCOPY", "corrupt")
    with lib.open("BVOL1") as bvol:
        assert len(bvol.requests()) == 2 and bvol.info().primary_volume == "PVOL1"
    lib.discard("PVOL1")
    cvtoptbku(lib, bkuvol="BVOL1")
    rebuilt_equals_original(lib, "PVOL1", "deleted")
    with lib.open("PVOL1") as converted:
        assert converted.info().type == VolumeType.PRIMARY
        assert converted.read_bytes("/A/one") == b"third version"


def test_a_backup_whose_claim_record_is_damaged_keeps_its_one_primary(lib):
    """The LABEL record that recorded the backup's primary is unreadable: recover reports
    it, and takes the primary from the request log, so no other primary may write it."""
    from optvol.image import replay

    inzopt(lib, vol="PVOL1", now=lib.tick())
    inzopt(lib, vol="BVOL1", type=VolumeType.BACKUP, now=lib.tick())
    fill(lib, "PVOL1")
    request = CopyRequest(fromvol="pvol1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    cpyopt(lib, request, now=lib.tick())
    data = lib.root / "BVOL1.optvol" / "data.opv"
    with open(data, "rb") as handle:
        claim = next(found.sector for found in replay.scan(handle.fileno(), 2048)
                     if found.header and found.header.kind.name == "LABEL" and found.header.body["label"]["primary_volume"])
    with open(data, "r+b") as handle:
        handle.seek(claim * 2048 + 100)
        byte = handle.read(1)
        handle.seek(claim * 2048 + 100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    report = recover(lib, vol="BVOL1")
    assert [sector for sector, _, _ in report.damaged] == [claim]
    with lib.open("BVOL1") as bvol:
        assert bvol.info().primary_volume == "PVOL1"
    inzopt(lib, vol="OTHER", now=lib.tick())
    with pytest.raises(errors.NotAllowedError) as refused:
        cpyopt(lib, CopyRequest(fromvol="OTHER", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP), now=lib.tick())
    assert refused.value.message_id == "OPV0403"


def _damage_at(library: Library, vol: str, offset: int) -> None:
    with open(library.root / f"{vol}.optvol" / "data.opv", "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _damage_first_record(library: Library, vol: str) -> None:
    _damage_at(library, vol, 100)


@pytest.mark.parametrize("source", ["a later label record", "the index", "a converted backup's records"])
def test_a_volume_whose_first_record_is_damaged_is_rebuilt(lib, source):
    """The first record (sector 0) holds the label INZOPT wrote, and the sector size a scan
    needs. When it cannot be read, recover finds the sector size by trying each, and the
    label in the index if it still reads, else in the first later LABEL record; the
    records replay under the ID the volume had when they were written."""
    inzopt(lib, vol="PVOL1", now=lib.tick(), medtype=MediaType.WORM, blksize=1024)
    fill(lib, "PVOL1")
    vol = "PVOL1"
    if source == "a later label record":
        chgoptvol(lib, vol="PVOL1", text="a label record after the first", threshold=90)
    elif source == "a converted backup's records":
        inzopt(lib, vol="BVOL1", type=VolumeType.BACKUP, now=lib.tick(), medtype=MediaType.WORM, blksize=1024)
        cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP,
                                cpysubdir=True), now=lib.tick())
        lib.discard("PVOL1")
        cvtoptbku(lib, bkuvol="BVOL1")  # its records before this one say BVOL1
    before = dump(lib, vol)
    _damage_first_record(lib, vol)
    if source != "the index":
        lose_index(lib, vol, "deleted")
    report = recover(lib, vol=vol)
    assert [(sector, reason) for sector, _, reason in report.damaged] == [(0, "no sound record header")]
    after = dump(lib, vol)
    assert _marked(after) == before
    with lib.open(vol) as volume:
        assert volume.read_bytes("/A/one") == b"one again" and volume.info().sector_size == 1024


def test_a_volume_whose_first_record_is_damaged_is_duplicated_and_both_rebuild(lib):
    """DUPOPT copies the damaged first record as it is (the copy's index keeps the label);
    the duplicate's own label record then lets recover rebuild it without its index."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    fill(lib, "PVOL1")
    _damage_first_record(lib, "PVOL1")
    result = dupopt(lib, fromvol="PVOL1", tovol="DVOL1", now=lib.tick())
    assert [d.path for d in result.carried] == ["(the volume's first label record)"] and result.left_out == []
    for vol in ("PVOL1", "DVOL1"):
        before = dump(lib, vol)
        if vol == "DVOL1":  # the source keeps its index: the label comes from there
            lose_index(lib, vol, "deleted")
        report = recover(lib, vol=vol)
        assert [sector for sector, _, _ in report.damaged] == [0] and _marked(dump(lib, vol)) == before, vol
    with lib.open("DVOL1") as duplicate:
        assert duplicate.read_bytes("/A/one") == b"one again" and duplicate.info().volume == "DVOL1"


def test_a_volume_whose_first_record_is_damaged_and_no_label_is_left_is_refused(lib):
    inzopt(lib, vol="PVOL1", now=lib.tick())
    fill(lib, "PVOL1")
    _damage_first_record(lib, "PVOL1")
    lose_index(lib, "PVOL1", "corrupt")
    data = lib.root / "PVOL1.optvol" / "data.opv"
    size = data.stat().st_size
    with pytest.raises(errors.DamagedError) as refused:
        recover(lib, vol="PVOL1")
    assert refused.value.message_id == "OPV0201" and "neither its index nor a later label record" in refused.value.text
    assert data.stat().st_size == size and not (lib.root / "PVOL1.optvol" / "index.recovered.sqlite").exists()


def test_a_record_whose_name_is_gone_is_never_applied_to_another_name(lib):
    """Today straße.txt and STRASSE.TXT are two files. The record of STRASSE.TXT cannot be
    read: recover reports the later deletion of STRASSE.TXT as not applied, and never
    applies it to straße.txt, which str.upper (the fold before index schema 4) matched."""
    inzopt(lib, vol="UDF1", medtype=MediaType.DVD_RAM, now=lib.tick())
    with lib.open("UDF1") as volume:
        volume.write_bytes("/straße.txt", b"keep me")
        volume.write_bytes("/STRASSE.TXT", b"another file")
        volume.remove("/STRASSE.TXT")
    index = sqlite3.connect(lib.root / "UDF1.optvol" / "index.sqlite")
    sector = index.execute("SELECT sector FROM files WHERE name = 'STRASSE.TXT'").fetchone()[0]
    index.close()
    _damage_at(lib, "UDF1", sector * 2048 + 100)
    lose_index(lib, "UDF1", "deleted")
    report = recover(lib, vol="UDF1")
    assert [reason.split(":")[0] for _, _, reason in report.damaged] == ["no sound record header", "DELETE record not applied"]
    with lib.open("UDF1") as volume:
        assert volume.listdir("/") == ["straße.txt"] and volume.read_bytes("/straße.txt") == b"keep me"


def test_records_written_before_index_schema_4_that_name_nothing_now_are_reported(lib, monkeypatch):
    """Before index schema 4 names matched by str.upper's full case mapping, and records keep
    paths as commands typed them: ``rm STRASSE.TXT`` deleted straße.txt. Under today's fold
    that path names nothing: recover reports the record as not applied (it does not guess
    a name, which could be another file's) and the file it deleted stays."""
    inzopt(lib, vol="UDF1", medtype=MediaType.DVD_RAM, now=lib.tick())
    with monkeypatch.context() as old:
        old.setattr(model, "name_key", str.upper)  # the fold of optvol before schema 4
        with lib.open("UDF1") as volume:
            volume.write_bytes("/straße.txt", b"deleted under schema 3")
            volume.remove("/STRASSE.TXT")
    downgrade_to_schema_3(lib.root / "UDF1.optvol" / "index.sqlite")
    with lib.open("UDF1") as volume:
        assert volume.listdir("/") == []
    lose_index(lib, "UDF1", "deleted")
    report = recover(lib, vol="UDF1")
    assert [reason.split(":")[0] for _, _, reason in report.damaged] == ["DELETE record not applied"]
    with lib.open("UDF1") as volume:
        assert volume.listdir("/") == ["straße.txt"]


def test_changes_made_while_the_clock_runs_backwards_are_rebuilt_exactly(tmp_path):
    """A clock that reads a second earlier at every call: each change is stamped one
    microsecond above the last (its ``changed``, docs/format.md §4.1), its dates are the
    clock's. RENAME and ATTRIBUTES records carry that stamp beside their time, so the
    rebuilt index of the primary and of its backup (CPYOPT run twice, the second after
    changes) is the original, change times and the volume's highest one included."""
    clock = Clock()
    clock.now = datetime(2026, 3, 1, tzinfo=timezone.utc)

    def backwards() -> datetime:
        clock.now -= timedelta(seconds=1)
        return clock.now

    library = Library(tmp_path / "lib", clock=backwards)
    inzopt(library, vol="PVOL1", now=backwards())
    inzopt(library, vol="BVOL1", type=VolumeType.BACKUP, now=backwards())
    fill(library, "PVOL1")
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    cpyopt(library, request, now=backwards())
    with library.open("PVOL1") as pvol:
        pvol.set_attributes("/A/C/batch03", hidden=True)
        pvol.rename("/A/C", "/A/D")
        conn = pvol.image.conn
        changed = [r[0] for r in conn.execute("SELECT changed FROM files ORDER BY id")]
        assert conn.execute("SELECT count(*) FROM files WHERE changed = modified").fetchone()[0] < len(changed)
        assert pvol.image.meta("changed_high") == max(changed)
    assert cpyopt(library, request, now=backwards()).copied == 32  # /A/D: 30 small, big, two
    for vol in ("PVOL1", "BVOL1"):
        rebuilt_equals_original(library, vol, "deleted")


def test_a_change_time_given_to_a_refused_write_is_not_the_volumes_highest(lib):
    """A write refused after it was given its change time (a read-only file, in a batch of the
    file API, or every file CPYOPT *ALL sends into a directory) raised ``changed_high`` though
    no record carries that time: recover then lowered it, and with the clock set back a later
    change could fall inside a backup's complete range and never be copied (docs/format.md
    §4.1). Now ``changed_high`` is the highest time a record carries, and recover rebuilds it."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    inzopt(lib, vol="QVOL1", now=lib.tick())
    with lib.open("PVOL1") as pvol:
        pvol.mkdir("/D1")
        pvol.mkdir("/D2")
        pvol.write_bytes("/D1/a", b"a")
        pvol.write_bytes("/D2/r", b"r")
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="QVOL1", cpysubdir=True, crtdir=True)
    cpyopt(lib, request, now=lib.tick())
    with lib.open("QVOL1") as qvol:
        qvol.set_attributes("/D2/r", read_only=True)
        with qvol.batch():
            qvol.write_bytes("/D1/b", b"b")
            with pytest.raises(errors.OptvolError) as refused:
                qvol.write_bytes("/D2/r", b"new")
            assert refused.value.message_id == "CPF1F37"
        highest = qvol.image.conn.execute("SELECT max(changed) FROM files").fetchone()[0]
        assert qvol.image.meta("changed_high") == highest
    with lib.open("PVOL1") as pvol:
        pvol.write_bytes("/D1/a", b"changed")
    result = cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/", tovol="QVOL1", cpysubdir=True,
                                     sltfile="*ALL"), now=lib.tick())
    assert [failure.message_id for failure in result.failures] == ["CPF1F37"]
    with lib.open("QVOL1") as qvol:
        highest = qvol.image.conn.execute("SELECT max(changed) FROM files").fetchone()[0]
        assert qvol.image.meta("changed_high") == highest
    rebuilt_equals_original(lib, "QVOL1", "deleted")


def test_a_change_time_carried_in_a_step_that_is_undone_is_not_the_volumes_highest(lib):
    """CPYOPT to a backup gives a directory the primary's case in one step (a savepoint): the
    first RENAME fits, the second is refused (CPF1F61), the step is undone; the run goes on
    and commits. The undone RENAME's change time stayed in ``changed_high``, which recover
    then lowered (the savepoint kept its records, sectors and space, not that)."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    inzopt(lib, vol="BVOL1", type=VolumeType.BACKUP, capacity=1 << 20, now=lib.tick())
    with lib.open("PVOL1") as pvol:
        pvol.mkdir("/X/Y", parents=True)
        pvol.write_bytes("/X/Y/f", b"f")
    cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True),
           now=lib.tick())
    with lib.open("PVOL1") as pvol:
        pvol.rename("/X/", "/x/")
        pvol.rename("/x/Y/", "/x/y/")
    with lib.open("BVOL1") as bvol:
        with bvol.backup_writer() as writer:  # room for one more RENAME record, not two
            fill = (writer.tx.available_sectors() - 2) * bvol.image.sector_size
            writer.write_file("/FILL", data=b"z" * fill, size=fill, created=1, modified=1, attr_changed=1)
        before = bvol.image.meta("changed_high")
    result = cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/x/y", tovol="BVOL1", totype=VolumeType.BACKUP,
                                     cpysubdir=True), now=lib.tick())
    assert "CPF1F61" in [failure.message_id for failure in result.failures]
    with lib.open("BVOL1") as bvol:
        assert bvol.image.meta("changed_high") == before
    rebuilt_equals_original(lib, "BVOL1", "deleted")


def test_a_last_control_record_leaves_last_referenced_at_the_last_time_a_record_gave(lib):
    """A backup too full for its run's REQUEST record ends with CONTROL records, which carry no
    time: the replay's clock became 0 and last_referenced fell back to the last LABEL's value."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    inzopt(lib, vol="BVOL1", type=VolumeType.BACKUP, capacity=1 << 20, now=lib.tick())
    with lib.open("PVOL1") as pvol:
        pvol.mkdir("/X/Y", parents=True)
        pvol.write_bytes("/X/Y/f", b"f")
    request = CopyRequest(fromvol="PVOL1", frompath="/X/Y", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    cpyopt(lib, request, now=lib.tick())
    with lib.open("BVOL1") as bvol, bvol.backup_writer() as writer:
        fill = (writer.tx.available_sectors() - 5) * bvol.image.sector_size
        writer.write_file("/FILL", data=b"z" * fill, size=fill, created=1, modified=1, attr_changed=1)
    with lib.open("PVOL1") as pvol:
        pvol.write_bytes("/X/Y/g", b"")
    cpyopt(lib, request, now=lib.tick())
    with lib.open("BVOL1") as bvol:
        conn = bvol.image.conn
        assert conn.execute("SELECT max(sector) FROM controls").fetchone()[0] > conn.execute(
            "SELECT max(sector) FROM files").fetchone()[0]  # the last record is a CONTROL one
        latest = conn.execute("SELECT max(changed) FROM files").fetchone()[0]
    lose_index(lib, "BVOL1", "deleted")
    recover(lib, vol="BVOL1")
    with lib.open("BVOL1") as bvol:
        assert bvol.image.conn.execute("SELECT last_referenced FROM label").fetchone()[0] == latest


def test_torn_tail_is_cut_and_damaged_region_reported(lib):
    inzopt(lib, vol="PVOL1", now=lib.tick())
    fill(lib, "PVOL1")
    data = lib.root / "PVOL1.optvol" / "data.opv"
    good_size = data.stat().st_size
    with lib.open("PVOL1") as volume:
        _, row = volume.file_row("/A/one")
        sector = volume.image.sector_size
    # A record header half-written by a process that died: an optvol magic and garbage.
    with open(data, "ab") as handle:
        handle.write(b"OPTVOLR1" + os.urandom(3000))
    lose_index(lib, "PVOL1", "deleted")
    report = recover(lib, vol="PVOL1")
    assert report.tail_cut == 3008 and data.stat().st_size == good_size
    assert report.damaged == [(good_size // sector, 2, "no sound record header")]
    # Break one header in the middle: that record is reported, the rest comes back.
    with open(data, "r+b") as handle:
        handle.seek(row.sector * sector + 20)
        handle.write(b"\xff\xff\xff\xff")
    lose_index(lib, "PVOL1", "deleted")
    report = recover(lib, vol="PVOL1")
    assert [d[0] for d in report.damaged] == [row.sector]
    with lib.open("PVOL1") as volume:
        assert volume.read_bytes("/A/C/two") == b"two"
        assert volume.read_bytes("/A/one") == b"1" * 5000  # the version before the damaged one


@pytest.mark.parametrize("tail", ["garbage", "damaged last record"])
def test_a_damaged_tail_recover_cuts_is_not_charged_and_the_rebuilt_index_checks_sound(lib, tail):
    """What recover cuts off (a region without a sound header after the last sound record) is
    no longer in the partition: the HPOFS ledger must not charge it, or CHKOPTVOL names the
    rebuilt index's used_sectors as damaged (rev27e F3)."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/keep", b"k")
        volume.write_bytes("/last", b"x" * 100_000)
        _, row = volume.file_row("/last")
        sector = volume.image.sector_size
    data = lib.root / "PVOL1.optvol" / "data.opv"
    if tail == "garbage":  # a header half-written by a process that died
        with open(data, "ab") as handle:
            handle.write(b"OPTVOLR1" + os.urandom(3000))
    else:  # one byte of the last committed record's header changed
        with open(data, "r+b") as handle:
            handle.seek(row.sector * sector + 20)
            handle.write(b"\xff\xff\xff\xff")
    lose_index(lib, "PVOL1", "deleted")
    report = recover(lib, vol="PVOL1")
    assert report.damaged and report.tail_cut
    with lib.open("PVOL1") as volume:
        assert volume.image.meta("used_sectors") == volume.image.meta("committed_end") == data.stat().st_size // sector
    (result,) = chkoptvol(lib, vol="PVOL1")
    assert result.damaged == []


def test_a_rename_an_earlier_optvol_wrote_past_the_path_limits_is_reported_not_applied(lib, monkeypatch):
    """Before the check of reference §3.1 on moves, a rename could take the paths below a
    directory past 256 characters of directory names; recover leaves that tree where every
    command reaches it and names the record."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    deep = "/A/" + "D" * 200
    with lib.open("PVOL1") as volume:
        volume.mkdir(deep, parents=True)
        volume.write_bytes(deep + "/f.txt", b"payload")
        monkeypatch.setattr(type(volume), "_check_move", lambda *args: None)  # what an earlier optvol did
        volume.rename("/A", "/" + "B" * 100)
    monkeypatch.undo()
    lose_index(lib, "PVOL1", "deleted")
    report = recover(lib, vol="PVOL1")
    ((_, _, reason),) = report.damaged
    assert reason.startswith("RENAME record not applied: Path name") and "below it" in reason
    with lib.open("PVOL1") as volume:
        assert volume.read_bytes(deep + "/f.txt") == b"payload"


WRITE_AND_DIE = """
import os, signal, sys
from datetime import datetime, timezone
from optvol.library import Library

volume = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open("PVOL1")
volume.write_bytes("/LATE", b"committed, then killed")
os.kill(os.getpid(), signal.SIGKILL)
"""

KILLER = """
import os, pathlib, signal, sys
from datetime import datetime, timezone
from optvol.image import image
from optvol.library import Library
from optvol.recovery import recover

root, point = sys.argv[1], sys.argv[2]
real_unlink, real_replace = pathlib.Path.unlink, image.os.replace

def unlink(self, missing_ok=False):
    if self.name == point:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_unlink(self, missing_ok=missing_ok)

def replace(source, target):
    if point == "replace" and str(target).endswith("index.sqlite"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(source, target)

pathlib.Path.unlink, image.os.replace = unlink, replace
if point in ("replaying", "replayed"):  # in the middle of the replay, or after its commit
    from optvol import recovery
    from optvol.image import replay
    real_take, real_counts, taken = replay.ReplayTransaction._take, recovery._counts, []

    def take(*args):  # (every record replayed, one at a time or a run of files together)
        taken.append(1)
        if len(taken) == 20:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_take(*args)

    def counts(image):
        os.kill(os.getpid(), signal.SIGKILL)

    replay.ReplayTransaction._take, recovery._counts = take, counts if point == "replayed" else real_counts
recover(Library(root, clock=lambda: datetime.now(timezone.utc)), vol="PVOL1")
"""


@pytest.mark.parametrize("point", ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "replace"])
def test_recover_killed_while_it_swaps_the_indexes_leaves_a_volume_that_opens(lib, point):
    """SIGKILL at each step of putting the rebuilt index in place of the old one: the next
    open finds the old index whole, or finishes the swap; never no index, never the old
    index without the commits of its log."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    fill(lib, "PVOL1")
    # A writer killed after its commit: that commit is only in the index's log (-wal).
    late = subprocess.run([sys.executable, "-c", WRITE_AND_DIE, str(lib.root)], capture_output=True, text=True)
    assert late.returncode == -9 and (lib.root / "PVOL1.optvol" / "index.sqlite-wal").stat().st_size, late.stderr
    killed = subprocess.run([sys.executable, "-c", KILLER, str(lib.root), point], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    for _ in range(2):  # as the kill left it, then after recover runs again over what it left
        with lib.open("PVOL1") as volume:
            assert volume.read_bytes("/A/one") == b"one again" and len(volume.listdir("/A/C")) == 32
            assert volume.read_bytes("/LATE") == b"committed, then killed"
        assert chkoptvol(lib, vol="PVOL1")[0].damaged == []
        assert recover(lib, vol="PVOL1").damaged == []


@pytest.mark.parametrize("point", ["replaying", "replayed"])
def test_recover_of_a_lost_index_killed_before_its_index_is_complete_loses_nothing(lib, point):
    """The index is gone (what recover is for) and recover is killed while it rebuilds: the
    half-built index must never be taken for the volume's (its committed_end would cut the
    whole data partition as a torn tail). The volume stays unopenable until recover runs."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    fill(lib, "PVOL1")
    before = dump(lib, "PVOL1")
    lose_index(lib, "PVOL1", "deleted")
    data = lib.root / "PVOL1.optvol" / "data.opv"
    size = data.stat().st_size
    killed = subprocess.run([sys.executable, "-c", KILLER, str(lib.root), point], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    for _ in range(2):  # a reader, then a writer: neither may take the half-built index
        with pytest.raises(errors.DamagedError) as unopenable:
            lib.open("PVOL1").close()
        assert unopenable.value.message_id == "OPV0201"
    assert data.stat().st_size == size
    assert recover(lib, vol="PVOL1").damaged == [] and dump(lib, "PVOL1") == before
    assert sorted(p.name for p in data.parent.iterdir()) == ["data.opv", "index.sqlite", "lock"]


def test_cli_recover_and_refusals(tmp_path):
    library_dir = tmp_path / "lib"
    base = [sys.executable, "-m", "optvol", "--library", str(library_dir)]
    env = {k: v for k, v in os.environ.items() if k != "OPTVOL_LIBRARY"}

    def run(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True, env=env)

    assert run("inzopt", "PVOL1").returncode == 0
    (tmp_path / "f").write_bytes(b"content")
    assert run("cp", str(tmp_path / "f"), "/QOPT/PVOL1/f").returncode == 0
    (library_dir / "PVOL1.optvol" / "index.sqlite").unlink()
    for side in ("-wal", "-shm"):
        (library_dir / "PVOL1.optvol" / f"index.sqlite{side}").unlink(missing_ok=True)
    assert run("cat", "/QOPT/PVOL1/f").returncode == 7
    done = run("--json", "recover", "PVOL1")
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["files"] == 1 and report["records"]["FILE"] == 1 and report["damaged"] == []
    assert run("cat", "/QOPT/PVOL1/f").stdout == "content"
    missing = run("recover", "NOSUCH")
    assert missing.returncode == 3 and missing.stderr.startswith("optvol: OPV0002:")
    (library_dir / "EMPTY.optvol").mkdir()  # a volume directory without its data partition
    nothing = run("recover", "EMPTY")
    assert nothing.returncode == 7 and nothing.stderr.startswith("optvol: OPV0201:") and "data partition" in nothing.stderr
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from optvol.library import Library; from datetime import datetime, timezone;"
        f"v = Library({str(library_dir)!r}, clock=lambda: datetime.now(timezone.utc)).open('PVOL1');"
        "print('open', flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "open"
        busy = run("recover", "PVOL1")
        assert busy.returncode == 8 and busy.stderr.startswith("optvol: OPV0004:")
    finally:
        holder.kill()
        holder.wait()


def test_imported_disc_and_exported_round_trip(lib, tmp_path):
    """A read-only volume made by import-iso (genisoimage's image) and one made from our own export."""
    from optvol.interchange import export_iso, import_iso

    tree = tmp_path / "tree"
    (tree / "DOCS" / "DEEP").mkdir(parents=True)
    (tree / "DOCS" / "readme.txt").write_text("read me")
    (tree / "DOCS" / "DEEP" / "empty.dat").write_bytes(b"")
    image = tmp_path / "disc.iso"
    subprocess.run(["genisoimage", "-quiet", "-J", "-R", "-V", "DISC1", "-o", str(image), str(tree)], check=True)
    import_iso(lib, file=image, now=lib.tick())
    rebuilt_equals_original(lib, "DISC1", "deleted")
    with lib.open("DISC1") as disc:
        assert disc.read_bytes("/DOCS/readme.txt") == b"read me" and disc.info().type == VolumeType.PRIMARY
    export_iso(lib, vol="DISC1", file=tmp_path / "again.iso", now=lib.tick())
    import_iso(lib, file=tmp_path / "again.iso", vol="DISC2", now=lib.tick())
    rebuilt_equals_original(lib, "DISC2", "corrupt")


def test_a_write_onto_a_data_partition_that_ends_before_its_committed_end_is_refused(lib):
    """hunt-portable F2: a copy of a volume taken while it was written (``cp -a`` of the
    library) can hold a data partition shorter than the committed end its index records. A
    write appended past that end, leaving a hole that cut the last file's payload; recover
    then skipped it as damage and CHKOPTVOL reported the file damaged for good. Now the write
    is refused (OPV0201, exit 7) and nothing changes; recover mends the volume (it cuts the
    torn record), and the next write and CHKOPTVOL are clean."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    fill(lib, "PVOL1")
    data = lib.root / "PVOL1.optvol" / "data.opv"
    os.truncate(data, data.stat().st_size - 150_000)  # into /A/C/big's payload
    before = (data.read_bytes(), dump(lib, "PVOL1"))
    with lib.open("PVOL1") as volume, pytest.raises(errors.DamagedError, match="OPV0201.*ends early") as refused:
        volume.write_bytes("/after", b"after")
    assert refused.value.exit_code == 7 and "optvol recover" in refused.value.text
    assert (data.read_bytes(), dump(lib, "PVOL1")) == before
    report = recover(lib, vol="PVOL1")
    assert report.damaged == [] and report.tail_cut > 0
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/after", b"after")
        assert volume.read_bytes("/after") == b"after" and not volume.exists("/A/C/big")
    assert chkoptvol(lib, vol="PVOL1")[0].damaged == []


@pytest.mark.parametrize("replaced", ["data.opv", "index.sqlite", "both"])
def test_a_write_through_a_volume_whose_files_a_restore_replaced_is_refused(lib, tmp_path, replaced):
    """hunt-portable F8: rsync restoring a volume directory while a program held the volume
    open: the program's next write said done, and its bytes went to the replaced data
    partition, which no name leads to any more (a new process listed the file, and cat
    said damaged). Now such a write is OPV0004 (open the volume again), and nothing is lost."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    directory = lib.root / "PVOL1.optvol"
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/kept", b"kept")
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("data.opv", "index.sqlite"):
        (saved / name).write_bytes((directory / name).read_bytes())
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/before", b"warm")  # the volume is open and has written
        for name in (["data.opv", "index.sqlite"] if replaced == "both" else [replaced]):
            (saved / name).rename(directory / (name + ".restored"))
            os.replace(directory / (name + ".restored"), directory / name)  # as rsync puts a file in place
        with pytest.raises(errors.OptvolError, match="OPV0004") as refused:
            volume.write_bytes("/lost", b"would be lost")
        assert refused.value.exit_code == 8


@pytest.mark.parametrize("first_write", ["before", "after"])
def test_a_restore_that_lands_while_a_transaction_runs_is_rolled_back_not_committed(lib, tmp_path, first_write):
    """Review s22a F1: the check ran only as a transaction began. A restore (``rsync -a``)
    during a batch (or a long CPYOPT) let it commit: its records went to the replaced data
    partition, its rows into the index rsync had left, and the restored volume listed files
    it could not read. Worse, the descriptor for writes past the page cache was opened by
    name at the first such write, so records could land in the restored file after a hole.
    Now the commit checks again and the batch is OPV0004; the restored files stay as the
    restore left them."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    directory = lib.root / "PVOL1.optvol"
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/kept", b"kept" * 10_000)
    backup = tmp_path / "backup"
    subprocess.run(["cp", "-a", lib.root, backup], check=True)
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/later", b"written after the backup")  # so that rsync replaces data.opv
        with pytest.raises(errors.OptvolError, match="OPV0004"), volume.batch():
            if first_write == "before":
                volume.write_bytes("/INBATCH1", os.urandom(2_000_000))  # records past the page cache
            subprocess.run(["rsync", "-a", f"{backup}/", f"{lib.root}/"], check=True)
            restored = (directory / "data.opv").read_bytes()
            volume.write_bytes("/INBATCH2", os.urandom(2_000_000))
    assert (directory / "data.opv").read_bytes() == restored
    # The live index's log stays beside the restored index (rsync deletes nothing): recover
    # gives the volume as the backup held it, and nothing of the batch.
    assert recover(lib, vol="PVOL1").damaged == []
    with lib.open("PVOL1") as volume:
        assert volume.listdir("/") == ["kept"] and volume.read_bytes("/kept") == b"kept" * 10_000
    assert chkoptvol(lib, vol="PVOL1")[0].damaged == []


def test_a_program_s_writes_go_on_after_its_library_directory_is_moved(lib, tmp_path):
    """Review s22a F3: the files were looked up by the path at open, so ``mv lib lib2`` made
    every later write "in use by another process" (OPV0004). They are looked up through the
    volume directory as opened: a moved library is the same volume."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/a", b"a")
        os.rename(lib.root, tmp_path / "moved")
        volume.write_bytes("/b", os.urandom(2_000_000))
    moved = Library(tmp_path / "moved", clock=lib.tick)
    with moved.open("PVOL1") as volume:
        assert volume.listdir("/") == ["a", "b"]
    assert chkoptvol(moved, vol="PVOL1")[0].damaged == []


def test_a_volume_directory_moved_aside_and_replaced_under_a_program_is_refused(lib, tmp_path):
    """Review s22b F1: a restore by ``mv PVOL1.optvol aside; mv backup PVOL1.optvol`` while a
    program held PVOL1: its writes followed the directory it had opened, went into the one
    moved aside and said done. The files are found by their names under the library
    directory: the volume directory at PVOL1's name is another one, OPV0004."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    directory = lib.root / "PVOL1.optvol"
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/one", b"one")
    subprocess.run(["cp", "-a", directory, tmp_path / "backup"], check=True)
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/two", b"two")
        os.rename(directory, tmp_path / "aside")
        os.rename(tmp_path / "backup", directory)
        restored = (directory / "data.opv").read_bytes()
        with pytest.raises(errors.OptvolError, match="OPV0004"):
            volume.write_bytes("/after", b"after")
    assert (directory / "data.opv").read_bytes() == restored
    with lib.open("PVOL1") as volume:
        assert volume.listdir("/") == ["one"]


def test_a_copy_that_left_out_the_index_s_log_keeps_its_records_for_recover(lib, tmp_path):
    """hunt-portable F6: a library copied while a program had it open, without
    ``index.sqlite-wal``: the copy's index lacks the log's commits, its data partition holds
    their records. The first open, any command's, cut them as a torn tail; recover could not
    bring them back after that. Now the open refuses (OPV0201) and keeps them, and recover
    gives every file back. A writer that died (its log left beside the index) still has its
    tail cut at the next open."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/before", b"before")
    copy = tmp_path / "copy"
    with lib.open("PVOL1") as volume:
        for n in range(5):
            volume.write_bytes(f"/F{n}", b"x" * 5000 + bytes([n]))  # commits in the log, not yet in index.sqlite
        subprocess.run(["cp", "-a", lib.root, copy], check=True)
    (copy / "PVOL1.optvol" / "index.sqlite-wal").unlink()
    (copy / "PVOL1.optvol" / "index.sqlite-shm").unlink(missing_ok=True)
    data = copy / "PVOL1.optvol" / "data.opv"
    size = data.stat().st_size
    index = copy / "PVOL1.optvol" / "index.sqlite"
    # Review 23 F2: a read apart (an open that meets the volume locked, the CLI's damage
    # check after a bug) left an empty -wal, and the next open then cut these records.
    assert schema.stored_version(index) == schema.SCHEMA_VERSION and schema.problems_apart(index) == []
    assert sorted(p.name for p in index.parent.iterdir() if p.name.startswith("index")) == ["index.sqlite"]
    copied = Library(copy, clock=lib.tick)
    for _ in range(2):  # every open, not just the first
        with pytest.raises(errors.DamagedError, match="OPV0201.*optvol recover brings them back"):
            copied.open("PVOL1")
        assert data.stat().st_size == size
    assert chkoptvol(copied, vol="PVOL1")[0].damaged[0].path == "(index)"
    assert recover(copied, vol="PVOL1").damaged == []
    with copied.open("PVOL1") as volume:
        assert volume.listdir("/") == ["before", "F0", "F1", "F2", "F3", "F4"]
        assert volume.read_bytes("/F4") == b"x" * 5000 + b"\x04"
    assert chkoptvol(copied, vol="PVOL1")[0].damaged == []


def test_an_open_that_refuses_a_copy_without_its_log_makes_no_log(lib, tmp_path, monkeypatch):
    """rev32a F6: the refused open's SQLite made a new, empty log; another command opening at
    that moment took it for the index's own log (not lost), found no damage in it, and cut the
    tail: every commit of the lost log, gone (1 run in 40 of two ``optvol ls`` at once). The
    open now judges such an index apart, before SQLite connects, and refuses without making one."""
    from optvol.image import image as image_mod

    inzopt(lib, vol="PVOL1", now=lib.tick())
    copy = tmp_path / "copy"
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/F0", b"in the log only")
        subprocess.run(["cp", "-a", lib.root, copy], check=True)
    for name in ("index.sqlite-wal", "index.sqlite-shm"):
        (copy / "PVOL1.optvol" / name).unlink(missing_ok=True)
    connected = []
    real = image_mod.connect_index
    monkeypatch.setattr(image_mod, "connect_index", lambda *a, **k: (connected.append(a[0]), real(*a, **k))[1])
    with pytest.raises(errors.DamagedError, match="OPV0201.*came without its log"):
        Library(copy, clock=lib.tick).open("PVOL1")
    assert connected == []
    assert sorted(p.name for p in (copy / "PVOL1.optvol").iterdir() if p.name.startswith("index")) == ["index.sqlite"]
    with lib.open("PVOL1") as volume:  # a volume with its log, or with no tail, opens as before
        assert volume.read_bytes("/F0") == b"in the log only"
    assert connected


def test_a_restore_that_removes_the_index_s_log_under_a_program_stops_its_writes(lib, tmp_path):
    """Review s22c F1: ``rsync -a --delete`` from a backup whose data partition and index
    match the volume's files removes only the log (``-wal``) and shared memory a program
    holding the volume had made. Its next write went into the removed log and said done;
    a second process then wrote over that write's sectors. Now the write is OPV0004."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    directory = lib.root / "PVOL1.optvol"
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/one", b"one")
    with lib.open("PVOL1") as volume:
        for name in ("index.sqlite-wal", "index.sqlite-shm"):
            (directory / name).unlink()
        before = (directory / "data.opv").read_bytes()
        with pytest.raises(errors.OptvolError, match="OPV0004"):
            volume.write_bytes("/lost", b"would be lost")
        assert (directory / "data.opv").read_bytes() == before
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/two", b"two")
        assert volume.listdir("/") == ["one", "two"]
    assert chkoptvol(lib, vol="PVOL1")[0].damaged == []


def test_an_upgrade_after_an_older_writer_died_cuts_its_tail_and_refuses_nothing(lib):
    """Review s22d F3: an older optvol's writer died mid-commit (its tail and its log left, the
    index of an older schema). The first open brings the index forward and opens again; the
    connection it closed in between removed the log, and the second try took the dead
    writer's tail for a lost log's commits: every command refused the volume until recover,
    which brought the dead write back. What the first try found is what counts."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/one", b"one")
    killed = ("import os, signal, sys, optvol\n"
              "from optvol.image import transaction\n"
              "def finish(self, now):\n"
              "    self.land(); self.image.data.sync(); os.kill(os.getpid(), signal.SIGKILL)\n"
              "transaction.Transaction.finish = finish\n"
              "optvol.open_library(sys.argv[1]).open('PVOL1').write_bytes('/dead', b'K' * 3000)\n")
    assert subprocess.run([sys.executable, "-c", killed, str(lib.root)]).returncode == -9
    index = lib.root / "PVOL1.optvol" / "index.sqlite"
    older = ("import os, signal, sqlite3, sys\n"
             f"sys.path.insert(0, {str(os.path.dirname(__file__))!r})\n"
             "from integrity_helpers import downgrade_to_schema_3\n"
             "downgrade_to_schema_3(sys.argv[1])\n"
             "c = sqlite3.connect(sys.argv[1]); c.execute('SELECT * FROM meta').fetchall()\n"
             "c.execute('BEGIN IMMEDIATE'); os.kill(os.getpid(), signal.SIGKILL)\n")  # an older optvol, dead
    assert subprocess.run([sys.executable, "-c", older, str(index)]).returncode == -9
    assert (index.parent / "index.sqlite-wal").exists()
    data = index.parent / "data.opv"
    tail = data.stat().st_size
    with lib.open("PVOL1") as volume:
        assert volume.listdir("/") == ["one"]
    assert data.stat().st_size < tail
    assert chkoptvol(lib, vol="PVOL1")[0].damaged == []


def test_a_read_apart_leaves_a_log_beside_an_empty_index_where_it_was(lib, tmp_path):
    """Review 23 F7: SQLite removes a log beside an empty index file as it opens it, even
    read only; a read apart (recover's first look) does not open an empty index at all."""
    inzopt(lib, vol="PVOL1", now=lib.tick())
    index = lib.root / "PVOL1.optvol" / "index.sqlite"
    log = index.with_name("index.sqlite-wal")
    log.write_bytes(b"\x00" * 4096)
    index.write_bytes(b"")
    assert schema.stored_version(index) is None and schema.problems_apart(index) == []
    assert log.read_bytes() == b"\x00" * 4096
