"""A CPYOPT that meets a full host disk after it committed a group of files (hunt28a F6):
it said OPV0203 "nothing was changed", though the groups before stayed (the files, on a
fresh backup its claim by the primary, the ranges). It says OPV0209, exit 6, with the
count of what stays; a run that fails in its first group still says OPV0203."""

from __future__ import annotations

import errno

import pytest

from conftest import make_volume
from integrity_helpers import run_cli
from optvol import copying, errors
from optvol.model import VolumeType
from optvol.privileged import PrivilegedWriter


def _full_after(monkeypatch, calls: int) -> None:
    """The host disk fills at the ``calls``-th group of files written (groups of two)."""
    monkeypatch.setattr(copying, "BATCH_FILES", 2)
    real, seen = PrivilegedWriter.write_files, []

    def write_files(self, *args, **kwargs):
        seen.append(1)
        if len(seen) >= calls:
            raise errors.host_write_error(OSError(errno.ENOSPC, "No space left on device"), self.volume.id)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PrivilegedWriter, "write_files", write_files)


@pytest.mark.parametrize("totype", [VolumeType.BACKUP, VolumeType.PRIMARY])
def test_what_committed_groups_wrote_is_said_to_stay(library, monkeypatch, totype):
    from optvol.copying import CopyRequest, cpyopt

    make_volume(library, "P")
    make_volume(library, "T", type=totype)
    with library.open("P") as volume:
        for i in range(6):
            volume.mkdir(f"/D{i}")
            volume.write_bytes(f"/D{i}/f", b"x" * 100)
    request = CopyRequest(fromvol="P", frompath="/", tovol="T", totype=totype, cpysubdir=True)
    _full_after(monkeypatch, 3)
    with pytest.raises(errors.VolumeFullError) as raised:
        cpyopt(library, request, now=library._clock())
    assert raised.value.message_id == "OPV0209" and raised.value.exit_code == 6
    assert "nothing was changed" not in raised.value.text
    with library.open("T") as target:
        kept = [info.path for info in target.iter_files("/", recursive=True)]
        assert kept and f"({len(kept)} file(s) copied)" in raised.value.text
        if totype is VolumeType.BACKUP:
            assert target.label()["primary_volume"] == "P"


def test_a_run_full_in_its_first_group_changed_nothing(library, monkeypatch):
    make_volume(library, "P")
    make_volume(library, "B", type=VolumeType.BACKUP)
    with library.open("P") as volume:
        for i in range(4):
            volume.write_bytes(f"/f{i}", b"x" * 100)
    _full_after(monkeypatch, 1)
    result = run_cli(library.root, "cpyopt", "P", "/", "B *BACKUP", "--cpysubdir", "*YES")
    assert result.rc == 6 and "OPV0203" in result.err and "nothing was changed" in result.err, result.err
    with library.open("B") as target:
        assert list(target.iter_files("/", recursive=True)) == [] and target.label()["primary_volume"] is None


@pytest.mark.parametrize("totype", [VolumeType.BACKUP, VolumeType.PRIMARY])
def test_a_full_disk_at_the_last_groups_commit_says_what_stays(library, monkeypatch, totype):
    # The last group commits after the copy loop (_Copier.run): a full disk at that commit,
    # after earlier groups committed, said OPV0203 "nothing was changed" (rev28h F1), and a
    # backup's history got no *ENDED entry for the run that changed it.
    from optvol.copying import CopyRequest, cpyopt
    from optvol.image.transaction import Transaction

    make_volume(library, "P")
    with library.open("P") as volume:
        for i in range(5):
            volume.mkdir(f"/D{i}")
            volume.write_bytes(f"/D{i}/f", b"x" * 100)
    monkeypatch.setattr(copying, "BATCH_FILES", 2)
    real, finished = Transaction.finish, []

    def counting(self, now):
        if self.image.volume.startswith("T"):
            finished.append(self.image.volume)
        return real(self, now)

    monkeypatch.setattr(Transaction, "finish", counting)
    make_volume(library, "T1", type=totype)
    request = CopyRequest(fromvol="P", frompath="/", tovol="T1", totype=totype, cpysubdir=True)
    cpyopt(library, request, now=library._clock())  # how many transactions a whole run commits
    last = len(finished)

    def full_at_the_last(self, now):
        if self.image.volume == "T2":
            finished.append(self.image.volume)
            if finished.count("T2") == last:
                raise errors.host_write_error(OSError(errno.ENOSPC, "No space left on device"), "T2")
        return real(self, now)

    monkeypatch.setattr(Transaction, "finish", full_at_the_last)
    make_volume(library, "T2", type=totype)
    request = CopyRequest(fromvol="P", frompath="/", tovol="T2", totype=totype, cpysubdir=True)
    with pytest.raises(errors.VolumeFullError) as raised:
        cpyopt(library, request, now=library._clock())
    assert raised.value.message_id == "OPV0209" and "nothing was changed" not in raised.value.text, raised.value.text
    monkeypatch.setattr(Transaction, "finish", real)
    with library.open("T2") as target:
        kept = [info.path for info in target.iter_files("/", recursive=True)]
        assert kept and f"({len(kept)} file(s) copied)" in raised.value.text
        if totype is VolumeType.BACKUP:  # the run that changed it is in its history (*ENDED)
            outcomes = target.image.conn.execute("SELECT outcome, copied FROM requests").fetchall()
            assert outcomes == [("*ENDED", len(kept))], outcomes
