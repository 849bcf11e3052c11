"""Media errors: sectors of a volume's data partition that the host cannot read (EIO).

A failing disk under a library does not flip bytes, it refuses to read them. Every route
that reads a file version must then fail that file alone with a clear message (CPF1F28,
exit 7), never with a traceback, and CPYOPT, CHKOPTVOL and DUPOPT ALWMEDERR(*FILE) must
go on with the rest (issue 6 point 6, reference §10.7).

The machines this runs on have no device mapper to make a real failing device, so the
failure is injected where the host reports it: ``os.pread`` and ``os.sendfile`` (the
kernel copy, ``datapart.copy_bytes``) raise EIO for byte ranges of one data partition, in this process and in CPYOPT's
read-ahead child (forked from it). Everything else is real: the library on disk, the
reads, the copies, the checks.
"""

from __future__ import annotations

import errno
import os

import pytest

from conftest import make_volume
from integrity_helpers import content, index_rows, run_cli, volume_dir
from optvol import errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.image.datapart import DataPartition
from optvol.model import VolumeType
from optvol.recovery import recover

GOOD = {f"/DIR/G{i}": content(f"G{i}", 1000 * i + 5) for i in range(5)}
BAD = {"/DIR/SMALL": content("SMALL", 1500), "/DIR/LARGE": content("LARGE", 2_500_000)}  # LARGE is streamed


class FailingDisk:
    """Makes the host fail reads of chosen byte ranges of one data partition with EIO."""

    def __init__(self, monkeypatch, data_path: str):
        self.data_path, self.ranges, self.refused = data_path, [], 0
        real_pread, real_sendfile = os.pread, os.sendfile

        def pread(fd, length, offset):
            self._check(fd, offset, length)
            return real_pread(fd, length, offset)

        def sendfile(out_fd, in_fd, offset, count):
            if offset is not None:
                self._check(in_fd, offset, count)
            return real_sendfile(out_fd, in_fd, offset, count)

        monkeypatch.setattr(os, "pread", pread)
        monkeypatch.setattr(os, "sendfile", sendfile)

    def fail(self, start: int, end: int) -> None:
        self.ranges.append((start, end))

    def heal(self) -> None:
        self.ranges = []

    def _check(self, fd: int, offset: int, length: int) -> None:
        if not any(offset < end and offset + length > start for start, end in self.ranges):
            return
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return
        if path == self.data_path:
            self.refused += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))


def _payload(row: dict) -> tuple[int, int]:
    start = (row["sector"] + row["header_sectors"]) * row["sector_size"]
    return start, start + row["size"]


@pytest.fixture
def failing(library, monkeypatch):
    """PVOL1 with good files, and two (a small and a streamed one) whose last 100 bytes
    the host cannot read."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/DIR")
        for path, data in {**GOOD, **BAD}.items():
            volume.write_bytes(path, data)
    disk = FailingDisk(monkeypatch, str(volume_dir(library.root, "PVOL1") / "data.opv"))
    rows = {r["path"]: r for r in index_rows(library.root, "PVOL1")}
    for path in BAD:
        _, end = _payload(rows[path])
        disk.fail(end - 100, end)
    return disk


def _unreadable(text: str) -> bool:
    return "cannot be read (Input/output error)" in text


# --------------------------------------------------------------------- reading one file


def test_api_reads_fail_with_the_file_named(library, failing):
    with library.open("PVOL1") as volume:
        for path in BAD:
            with pytest.raises(errors.DamagedError) as caught:
                volume.read_bytes(path)
            assert caught.value.message_id == "CPF1F28" and caught.value.exit_code == 7
            assert path in caught.value.text and _unreadable(caught.value.text)
            assert not caught.value.text.endswith("..")
            with pytest.raises(errors.DamagedError):
                volume.open(path).read(10)  # not even the first bytes
        for path, data in GOOD.items():
            assert volume.read_bytes(path) == data
    assert failing.refused > 0


def test_a_file_that_goes_bad_while_open_fails_its_next_read(library, failing):
    failing.heal()
    with library.open("PVOL1") as volume, volume.open("/DIR/LARGE") as handle:
        assert handle.read(1000) == BAD["/DIR/LARGE"][:1000]  # checked whole when opened
        rows = {r["path"]: r for r in index_rows(library.root, "PVOL1")}
        start, end = _payload(rows["/DIR/LARGE"])
        failing.fail(end - 100, end)
        with pytest.raises(errors.DamagedError) as caught:
            handle.read()
        assert caught.value.message_id == "CPF1F28" and _unreadable(caught.value.text)
        assert "/DIR/LARGE" in caught.value.text


@pytest.mark.parametrize("path", sorted(BAD))
def test_cat_and_cp_fail_and_leave_nothing(library, failing, tmp_path, path):
    shown = run_cli(library.root, "cat", f"/QOPT/PVOL1{path}")
    assert shown.rc == 7 and shown.out == b"", shown.err
    assert "CPF1F28" in shown.err and _unreadable(shown.err) and "Traceback" not in shown.err
    host = tmp_path / "host"
    host.mkdir()
    copied = run_cli(library.root, "cp", f"/QOPT/PVOL1{path}", host / "COPY")
    assert copied.rc == 7 and "CPF1F28" in copied.err
    assert list(host.iterdir()) == []
    make_volume(library, "PVOL2")
    onto = run_cli(library.root, "cp", f"/QOPT/PVOL1{path}", "/QOPT/PVOL2/COPY")
    assert onto.rc == 7 and "CPF1F28" in onto.err
    with library.open("PVOL2") as volume:
        assert volume.listdir("/") == []


def test_export_iso_fails_and_leaves_no_image(library, failing, tmp_path):
    result = run_cli(library.root, "export-iso", "PVOL1", tmp_path / "out.iso")
    assert result.rc == 7, result.err
    assert "CPF1F28" in result.err and _unreadable(result.err)
    assert list(tmp_path.glob("out.iso*")) == []


# --------------------------------------------------------------------- whole-volume commands


@pytest.mark.parametrize("totype", [VolumeType.BACKUP, VolumeType.PRIMARY])
def test_cpyopt_fails_the_unreadable_files_only_and_a_rerun_finishes(library, failing, clock, totype):
    make_volume(library, "TVOL1", type=totype)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="TVOL1", totype=totype, cpysubdir=True)
    result = cpyopt(library, request, now=clock())
    assert sorted(f.path for f in result.failures) == sorted(BAD)
    assert {f.message_id for f in result.failures} == {"CPF1F28"}
    assert all(_unreadable(f.message) and "PVOL1" in f.message for f in result.failures)
    assert result.copied == len(GOOD)
    [check] = chkoptvol(library, vol="TVOL1")
    assert check.damaged == [] and check.files_checked == len(GOOD)
    with library.open("TVOL1") as target:
        assert {f.path for f in target.iter_files("/DIR")} == set(GOOD)
        if totype == VolumeType.BACKUP:  # the directory keeps its old (no) range; its last change moves
            assert target.stat("/DIR").backup.range_end is None
            assert target.stat("/DIR").backup.last_changed is not None
    # The disk is mended (or the primary restored): the same request copies just the two.
    failing.heal()
    again = cpyopt(library, request, now=clock())
    assert again.failures == [] and again.copied == len(BAD)
    if totype == VolumeType.BACKUP:
        with library.open("TVOL1") as target:
            assert target.stat("/DIR").backup.range_end is not None
    # Every file is there with its own bytes (a backup is read back through a restore).
    readable = "TVOL1"
    if totype == VolumeType.BACKUP:
        make_volume(library, readable := "RVOL1")
        restore = CopyRequest(fromvol="TVOL1", fromtype=VolumeType.BACKUP, frompath="/", tovol="RVOL1", cpysubdir=True)
        assert cpyopt(library, restore, now=clock()).failures == []
    with library.open(readable) as volume:
        for path, data in {**GOOD, **BAD}.items():
            assert volume.read_bytes(path) == data


def test_cpyopt_shell_exit_1_with_the_failures(library, failing):
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    shell = run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES", json_output=True)
    assert shell.rc == 1, shell.err
    document = shell.json()
    assert document["copied"] == len(GOOD) and document["failed"] == len(BAD)
    assert sorted(f["path"] for f in document["failures"]) == sorted(BAD)
    assert "Traceback" not in shell.err


def test_chkoptvol_names_exactly_the_unreadable_files(library, failing):
    [result] = chkoptvol(library, vol="PVOL1")
    assert sorted(d.path for d in result.damaged) == sorted(BAD)
    assert all(_unreadable(d.reason) for d in result.damaged)
    assert result.files_checked == len(GOOD)
    assert result.bytes_checked == sum(len(d) for d in GOOD.values())
    shell = run_cli(library.root, "chkoptvol", "PVOL1", json_output=True)
    assert shell.rc == 7 and "OPV0206" in shell.err
    assert sorted(d["path"] for d in shell.json()["damaged"]) == sorted(BAD)


def test_dupopt_alwmederr_none_refuses_and_makes_nothing(library, failing):
    result = run_cli(library.root, "dupopt", "PVOL1", "DVOL1")
    assert result.rc == 7 and "OPV0206" in result.err, result.err
    assert "media error" in result.err and "Traceback" not in result.err
    assert not library.exists("DVOL1")


def test_dupopt_alwmederr_file_copies_around_the_unreadable_sectors(library, failing):
    result = run_cli(library.root, "dupopt", "PVOL1", "DVOL1", "--alwmederr", "*FILE", json_output=True)
    assert result.rc == 1 and "OPV0208" in result.err, result.err  # completed with errors
    left_out = result.json()["left_out"]
    assert sorted(d["path"] for d in left_out) == sorted(BAD)
    assert all("of volume PVOL1 cannot be read (a media error)" in d["reason"] for d in left_out)
    failing.heal()  # the duplicate is another file: nothing of it was ever unreadable
    [check] = chkoptvol(library, vol="DVOL1")
    assert check.damaged == [] and check.files_checked == len(GOOD)
    with library.open("DVOL1") as duplicate:
        assert {f.path for f in duplicate.iter_files("/", recursive=True)} == set(GOOD)
        for path, data in GOOD.items():
            assert duplicate.read_bytes(path) == data


def test_recover_skips_an_unreadable_record_and_keeps_the_rest(library, failing):
    failing.heal()
    rows = {r["path"]: r for r in index_rows(library.root, "PVOL1")}
    header = rows["/DIR/G2"]["sector"] * rows["/DIR/G2"]["sector_size"]
    failing.fail(header, header + 1)  # the first sector of G2's record header
    report = recover(library, vol="PVOL1")
    assert [(sector, reason) for sector, _, reason in report.damaged] == [(rows["/DIR/G2"]["sector"],
                                                                           "no sound record header")]
    failing.heal()
    with library.open("PVOL1") as volume:
        assert not volume.exists("/DIR/G2")
        for path, data in {**GOOD, **BAD}.items():
            if path != "/DIR/G2":
                assert volume.read_bytes(path) == data


# --------------------------------------------------------------------- the message


@pytest.mark.parametrize(("offset", "length", "where"), [
    (0, 2048, "sector 0"), (4096, 1, "sector 2"), (4095, 2, "sectors 1-2"), (2048, 0, "sector 1"),
])
def test_the_unreadable_sectors_are_named(tmp_path, offset, length, where):
    path = tmp_path / "data.opv"
    path.write_bytes(bytes(8192))
    partition = DataPartition(str(path), sector_size=2048, volume="PVOL1")
    try:
        damage = partition.unreadable(OSError(errno.EIO, os.strerror(errno.EIO)), offset, length)
    finally:
        partition.close()
    assert damage.message_id == "OPV0201" and damage.exit_code == 7
    assert damage.reason == f"{where} of the data partition cannot be read (Input/output error)"
    assert errors.cause(damage) == damage.reason
