"""A volume filled to its threshold (reference §2.6; docs/format.md §7): its label can still
change, it can be converted, renamed and duplicated, and what cannot fit is refused before
anything changes; the ledger (``used``) is what ``recover`` rebuilds."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from conftest import dump_index, make_volume, read_data
from optvol import errors, move_source, transfer
from optvol.change_volume import chgoptvol
from optvol.conversion import cvtoptbku
from optvol.duplicate import dupopt
from optvol.image import image as image_mod
from optvol.model import MediaType, VolumeType, to_micros
from optvol.recovery import recover

MICROS = to_micros(datetime(2025, 5, 1, tzinfo=timezone.utc))
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def fill(volume, path: str = "/FILL", *, leave: int = 0) -> None:
    """Write one file that takes every sector left under the threshold (1 header sector) but ``leave``."""
    info = volume.info()
    size = (info.available // info.sector_size - 1 - leave) * info.sector_size
    if info.type == VolumeType.BACKUP:
        with volume.backup_writer() as writer:
            writer.write_file(path, chunks=iter([b"f" * size]), size=size, created=MICROS, modified=MICROS,
                              attr_changed=MICROS)
    else:
        volume.write_bytes(path, b"f" * size)
    assert volume.info().available == leave * info.sector_size


def used(library, vol: str) -> int:
    with library.open(vol) as volume:
        return volume.info().used


def test_a_full_backup_converts_and_the_library_stays_usable(library):
    """CVTOPTBKU is how a full backup ends its life: its new label goes past the threshold."""
    make_volume(library, "BVOL1", type=VolumeType.BACKUP, capacity=1 << 20)
    with library.open("BVOL1") as volume:
        fill(volume)
        sector, before = volume.info().sector_size, volume.info().used
    info = cvtoptbku(library, bkuvol="BVOL1", privol="NEWP")
    assert (info.volume, info.type, info.available) == ("NEWP", VolumeType.PRIMARY, 0)
    assert info.used == before + sector  # one LABEL record
    assert not (library.root / ".journal.json").exists()
    assert [v.volume for v, _ in __import__("optvol.display", fromlist=["volumes"]).volumes(library)] == ["NEWP"]
    with library.open("NEWP") as volume:
        assert volume.read_bytes("/FILL")[:1] == b"f"
    recover(library, vol="NEWP")
    assert used(library, "NEWP") == before + sector


def test_a_full_volume_takes_a_new_text_and_a_lower_threshold(library):
    """A label goes past the threshold up to the capacity: 5 % of room on HPOFS, none on a
    full UDF volume, whose threshold is 100."""
    for vol, medtype in (("HP", MediaType.ERASE), ("UDF", MediaType.DVD_RAM)):
        make_volume(library, vol, medtype=medtype, capacity=1 << 20)
        with library.open(vol) as volume:
            fill(volume)
    before = used(library, "HP")
    assert chgoptvol(library, vol="HP", text="full").text == "full"
    assert used(library, "HP") > before
    assert chgoptvol(library, vol="HP", threshold=50).threshold == 50
    with library.open("HP") as volume:
        assert volume.info().available == 0
        with pytest.raises(errors.VolumeFullError):
            volume.write_bytes("/MORE", b"m")  # files are still held to the threshold
    index = dump_index(library, "UDF")
    with pytest.raises(errors.VolumeFullError):
        chgoptvol(library, vol="UDF", text="full")
    assert dump_index(library, "UDF") == index
    for vol in ("HP", "UDF"):
        expected = used(library, vol)
        recover(library, vol=vol)
        assert used(library, vol) == expected


def test_labels_past_the_threshold_stop_at_the_capacity(library):
    make_volume(library, "HP", medtype=MediaType.ERASE, capacity=1 << 20, blksize=1024)
    with library.open("HP") as volume:
        fill(volume)
    changes = 0
    with pytest.raises(errors.VolumeFullError):
        while changes < 1000:
            chgoptvol(library, vol="HP", text=f"text {changes}")
            changes += 1
    assert 0 < changes < 1000 and used(library, "HP") <= 1 << 20
    assert os.path.getsize(library.root / "HP.optvol" / "data.opv") <= 1 << 20


def test_a_full_volume_duplicates(library):
    make_volume(library, "SRC", capacity=1 << 20)
    with library.open("SRC") as volume:
        fill(volume)
        source_used, sector = volume.info().used, volume.info().sector_size
    result = dupopt(library, fromvol="SRC", tovol="DUP", now=NOW)
    assert result.volume.used == source_used + sector  # the duplicate's own label
    with library.open("DUP") as volume:
        assert volume.read_bytes("/FILL") == b"f" * (volume.stat("/FILL").size)
    recover(library, vol="DUP")
    assert used(library, "DUP") == source_used + sector


def test_inzopt_of_a_tiny_limit_creates_the_volume(library):
    """1M of 8 KiB sectors at 1 % is a limit of one sector; a new image takes two (LABEL, /)."""
    info = make_volume(library, "TINY", medtype=MediaType.ERASE, capacity=1 << 20, blksize=8192, threshold=1).volume
    assert (info.threshold, info.used, info.available) == (1, 2 * 8192, 0)
    with library.open("TINY") as volume, pytest.raises(errors.VolumeFullError):
        volume.mkdir("/D")


def test_a_relabel_that_cannot_be_written_is_undone_not_left_to_block_the_library(library, monkeypatch):
    make_volume(library, "PVOL1")

    def refuse(self, label):
        raise errors.error("OPV0203", volume=label["volume"], reason="the host's disk is full")

    monkeypatch.setattr(image_mod.Transaction, "write_label", refuse)
    with pytest.raises(errors.OptvolError, match="OPV0203"):
        library.rename("PVOL1", "PVOL2")
    monkeypatch.undo()
    assert not (library.root / ".journal.json").exists()
    assert library.volume_ids() == ["PVOL1"]
    with library.locked():  # every later command starts so, and the journal no longer stands in its way
        pass
    library.rename("PVOL1", "PVOL2")
    assert library.volume_ids() == ["PVOL2"]


def _full_source_and_target(library, *, leave: int = 0):
    make_volume(library, "S", medtype=MediaType.ERASE, capacity=1 << 20)  # HPOFS: a delete is charged
    make_volume(library, "T", medtype=MediaType.ERASE, capacity=4 << 20)
    with library.open("S") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/a", b"a" * 5000)
        volume.write_bytes("/b", b"b" * 5000)
        fill(volume, leave=leave)


@pytest.mark.parametrize("sources", [["/QOPT/S/b"], ["/QOPT/S/D"], ["/QOPT/S/b", "/QOPT/S/D"]])
def test_mv_off_a_full_hpofs_volume_is_refused_before_anything_is_copied(library, sources):
    _full_source_and_target(library)
    before = {vol: (dump_index(library, vol), read_data(library, vol)) for vol in ("S", "T")}
    with pytest.raises(errors.VolumeFullError) as caught:
        list(transfer.move(library, sources, "/QOPT/T/"))
    assert "volume S" in str(caught.value)
    assert {vol: (dump_index(library, vol), read_data(library, vol)) for vol in ("S", "T")} == before


def test_rm_of_several_paths_on_a_full_hpofs_volume_deletes_none(library):
    """Room for one DELETE record, not two: neither path is deleted."""
    _full_source_and_target(library, leave=1)
    before = (dump_index(library, "S"), read_data(library, "S"))
    with pytest.raises(errors.VolumeFullError):
        transfer.remove(library, ["/QOPT/S/b", "/QOPT/S/D/a"])
    assert (dump_index(library, "S"), read_data(library, "S")) == before


def test_mv_off_a_full_udf_volume_frees_what_it_moves(library):
    make_volume(library, "S", medtype=MediaType.DVD_RAM, capacity=1 << 20)  # UDF: a delete is free
    make_volume(library, "T", medtype=MediaType.ERASE, capacity=4 << 20)
    with library.open("S") as volume:
        volume.write_bytes("/b", b"b" * 5000)
        fill(volume)
    assert list(transfer.move(library, ["/QOPT/S/b"], "/QOPT/T/")) == ["/QOPT/T/b"]
    with library.open("S") as volume:
        assert not volume.exists("/b") and volume.info().available > 0


def test_a_control_record_takes_three_sectors_whatever_its_path(library):
    """A directory path of 4-byte UTF-8 characters makes the record's header two sectors of
    1 KiB: the padding takes the third, not one more (reference §4.2)."""
    from optvol.copying import CopyRequest, cpyopt

    make_volume(library, "PVOL1", medtype=MediaType.ERASE, blksize=1024)
    make_volume(library, "BVOL1", medtype=MediaType.ERASE, blksize=1024, type=VolumeType.BACKUP)
    path = ""
    with library.open("PVOL1") as volume:
        for _ in range(4):
            path += "/" + "\U0001d11e" * 62
            volume.mkdir(path)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    cpyopt(library, request, now=NOW)
    before = used(library, "BVOL1")
    result = cpyopt(library, request, now=NOW.replace(day=2))  # copies nothing: control records and the log
    assert (result.copied, result.directories) == (0, 5)
    # 3 sectors for each of the 5 directories and the volume, 1 for the REQUEST record of the run
    assert (used(library, "BVOL1") - before) // 1024 == 3 * (5 + 1) + 1
    assert os.path.getsize(library.root / "BVOL1.optvol" / "data.opv") == used(library, "BVOL1")


def test_a_udf_version_dupopt_leaves_out_is_freed_and_recover_agrees(library):
    """On UDF only live versions are charged: one DUPOPT ALWMEDERR(*FILE) leaves out is freed,
    and so is, in a recover that cannot read it, the version it had replaced."""
    make_volume(library, "S", medtype=MediaType.DVD_RAM, capacity=4 << 20)
    with library.open("S") as volume:
        volume.write_bytes("/keep", b"k" * 10_000)
        volume.write_bytes("/bad", b"1" * 50_000)
        volume.write_bytes("/bad", b"2" * 100_000)  # replaces the first, which UDF frees
        _, row = volume.file_row("/bad")
        sector = volume.image.sector_size
        volume_used = volume.info().used
    with open(library.root / "S.optvol" / "data.opv", "r+b") as data:  # damage the live version's header
        data.seek(row.sector * sector + 20)
        data.write(b"\xff\xff\xff\xff")
    result = dupopt(library, fromvol="S", tovol="D", now=NOW, allow_media_errors=True)
    assert [d.path for d in result.left_out] == ["/bad"]
    freed = row.sectors(sector) * sector
    assert result.volume.used == volume_used + sector - freed  # its own label, less the version left out
    recover(library, vol="D")
    assert used(library, "D") == result.volume.used
    with library.open("D") as volume:
        assert not volume.exists("/bad") and volume.read_bytes("/keep") == b"k" * 10_000


@pytest.mark.parametrize("kind", [VolumeType.PRIMARY, VolumeType.BACKUP])
def test_dupopt_leaves_a_damaged_file_out_of_a_full_volume_s_duplicate(library, kind):
    """The DELETE (and, on a backup, CONTROL) records with which DUPOPT ALWMEDERR(*FILE)
    leaves a damaged version out of its duplicate are its bookkeeping: never refused."""
    from optvol.copying import CopyRequest, cpyopt

    make_volume(library, "P", medtype=MediaType.ERASE, capacity=4 << 20, blksize=1024)
    make_volume(library, "S", medtype=MediaType.ERASE, capacity=1 << 20, blksize=1024, type=kind)
    target = "P" if kind == VolumeType.BACKUP else "S"
    with library.open(target) as volume:
        volume.mkdir("/d")
        volume.write_bytes("/d/bad", b"b" * 20_000)
        volume.write_bytes("/d/ok", b"o" * 20_000)
    if kind == VolumeType.BACKUP:
        cpyopt(library, CopyRequest(fromvol="P", frompath="/", tovol="S", totype=VolumeType.BACKUP, cpysubdir=True),
               now=NOW)
    with library.open("S") as volume:
        fill(volume)
        _, row = volume.file_row("/d/bad")
    with open(library.root / "S.optvol" / "data.opv", "r+b") as data:
        data.seek(row.sector * 1024 + 12)
        data.write(b"\x07\x07")
    result = dupopt(library, fromvol="S", tovol="D", now=NOW, allow_media_errors=True)
    assert [d.path for d in result.left_out] == ["/d/bad"]
    with library.open("D") as volume:
        assert volume.exists("/d/ok") and not volume.exists("/d/bad")
    expected = used(library, "D")
    recover(library, vol="D")
    assert used(library, "D") == expected


def test_mv_of_nested_sources_off_a_full_hpofs_volume_says_why(library):
    """The trial deletes each path once: a file inside a directory also named is no 'not found'."""
    _full_source_and_target(library, leave=1)  # room for one DELETE record: /b's, then none for /D/a's
    with pytest.raises(errors.VolumeFullError):
        list(transfer.move(library, ["/QOPT/S/b", "/QOPT/S/B", "/QOPT/S/D/a", "/QOPT/S/D"], "/QOPT/T/"))
    with library.open("S") as volume:
        assert volume.exists("/D/a") and volume.exists("/b")


def test_no_trial_of_the_deletes_on_a_volume_with_room(library, monkeypatch):
    make_volume(library, "S", medtype=MediaType.ERASE, capacity=4 << 20)
    make_volume(library, "T", medtype=MediaType.ERASE, capacity=4 << 20)
    with library.open("S") as volume:
        volume.write_bytes("/a", b"a")
        volume.write_bytes("/b", b"b")
    calls = []
    real, real_moved = transfer._remove, move_source.remove_moved
    monkeypatch.setattr(transfer, "_remove", lambda *a, **k: (calls.append(a[1]), real(*a, **k)))
    monkeypatch.setattr(move_source, "remove_moved", lambda *a, **k: (calls.append(a[1]), real_moved(*a, **k))[1])
    assert list(transfer.move(library, ["/QOPT/S/a"], "/QOPT/T/")) == ["/QOPT/T/a"]
    transfer.remove(library, ["/QOPT/S/b", "/QOPT/T/a"])
    assert calls == ["/a", "/b", "/a"]  # each delete once: no trial before it


def test_a_relabel_whose_commit_reports_an_error_after_it_landed_keeps_its_journal(library, monkeypatch):
    """If the label did change, the journal stays: the next command finishes the rename."""
    from contextlib import contextmanager

    make_volume(library, "PVOL1")
    original = image_mod.VolumeImage.transaction

    @contextmanager
    def landed_then_failed(self, *args, **kwargs):
        with original(self, *args, **kwargs) as tx:
            yield tx
        raise errors.error("OPV0204", volume=self.volume, reason="disk I/O error")

    monkeypatch.setattr(image_mod.VolumeImage, "transaction", landed_then_failed)
    with pytest.raises(errors.DamagedError):
        library.rename("PVOL1", "PVOL2")
    monkeypatch.undo()
    assert (library.root / ".journal.json").exists()
    with library.locked():
        pass
    assert library.volume_ids() == ["PVOL2"] and not (library.root / ".journal.json").exists()
    with library.open("PVOL2") as volume:
        assert volume.label()["volume"] == "PVOL2"


def test_info_inside_a_batch_counts_the_batch(library):
    """Inside a batch info() counted the batch's files but not their space: a program that
    wrote what it called available was refused (CPF1F61; hunt24h F5)."""
    make_volume(library, "PVOL1", capacity=1 << 20, blksize=1024)
    with library.open("PVOL1") as volume:
        with volume.batch():
            volume.write_bytes("/A", b"a" * 500_000)
            info = volume.info()
            assert info.files == 1 and info.used == (2 + 1 + 489) * 1024
            fill(volume, "/B")
        assert volume.info().available == 0


def test_a_refused_label_names_the_threshold_in_force(library):
    """CHGOPTVOL THRESHOLD(40) refused on a volume full to its capacity said "under threshold
    40%", a threshold the volume never got (hunt24h F4)."""
    make_volume(library, "PVOL1", capacity=1 << 20, blksize=1024, threshold=100)
    with library.open("PVOL1") as volume:
        fill(volume)
    with pytest.raises(errors.VolumeFullError) as info:
        chgoptvol(library, vol="PVOL1", threshold=40)
    assert "threshold 100%" in info.value.text
    with library.open("PVOL1") as volume:
        assert volume.info().threshold == 100


def test_a_label_change_that_changes_nothing_writes_nothing(library):
    """hunt30e F2: CHGOPTVOL of the threshold or text the volume already has wrote a LABEL
    record: a sector charged for good on HPOFS (WORM), and on a volume full to its capacity
    the command, its AUTL with it, was refused CPF1F61 though nothing was to change."""
    from optvol.model import MediaType
    make_volume(library, "PVOL1", capacity=1 << 20, blksize=1024, threshold=100, medtype=MediaType.WORM)
    with library.open("PVOL1") as volume:
        volume.change_label(text="same")
        used = volume.info().used
        volume.change_label(threshold=100, text="same")
        assert volume.info().used == used
        fill(volume)
        used = volume.info().used
    chgoptvol(library, vol="PVOL1", threshold=100, text="same", autl="L1")
    assert library.autl("PVOL1") == "L1"
    with library.open("PVOL1") as volume:
        assert volume.info().used == used and volume.info().text == "same"
    with pytest.raises(errors.VolumeFullError):  # a real change still needs its sector
        chgoptvol(library, vol="PVOL1", text="other")


def test_a_label_refused_for_space_inside_a_batch_leaves_the_batch_s_limit_as_it_was(library, monkeypatch):
    """Review 24j S1: a LABEL record refused for space left the batch's limit raised to the
    refused threshold, so a batch that caught the refusal and went on could write past the
    threshold in force. (A LABEL record takes one sector at any sector size, so the refusal
    is made here to come for it.)"""
    from optvol.image.records import Kind
    from optvol.image.transaction import Transaction

    make_volume(library, "PVOL1", capacity=1 << 20, threshold=50)
    real = Transaction.append

    def refuse_labels(self, kind, *args, **kwargs):
        if kind == Kind.LABEL:
            raise errors.error("CPF1F61", volume="PVOL1", needed=2048, available=0, threshold=50)
        return real(self, kind, *args, **kwargs)

    with library.open("PVOL1") as volume, volume.batch():
        monkeypatch.setattr(Transaction, "append", refuse_labels)
        with pytest.raises(errors.VolumeFullError):
            volume.change_label(threshold=100)
        monkeypatch.setattr(Transaction, "append", real)
        with pytest.raises(errors.VolumeFullError):  # the threshold in force is 50 %: half of 1 MiB
            volume.write_bytes("/big", b"x" * (600 << 10))
