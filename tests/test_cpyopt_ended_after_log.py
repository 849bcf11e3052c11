"""hunt30j F1: a Ctrl-C or SIGTERM that lands once CPYOPT's last group (the one that holds the
run's *COMPLETE request log entry) has committed logged the same run again, as *ENDED under
the same ID: two entries for one run, and an index whose next_request the records contradict
(CHKOPTVOL damage, exit 7, until a recover). The run's entry stands; nothing more is logged."""

from __future__ import annotations

import contextlib

import pytest

from conftest import make_volume
from optvol import copying, errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.model import VolumeType
from optvol.volume import Volume


def _interrupted_after_the_entry(library, monkeypatch, *, then=lambda: None) -> None:
    """A CPYOPT of PVOL1's /A/f onto BVOL1 whose Ctrl-C arrives as the commit of the run's
    entry returns (``then`` runs just before it)."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/A")
        volume.write_bytes("/A/f", b"data")
    logged, commit, log = [False], copying._Copier._commit, copying._Copier._log_request

    def log_request(self, outcome=None):
        log(self, outcome)
        logged[0] = outcome is None

    def late_commit(self):
        commit(self)
        if logged[0]:
            logged[0] = False
            then()
            raise KeyboardInterrupt

    monkeypatch.setattr(copying._Copier, "_commit", late_commit)
    monkeypatch.setattr(copying._Copier, "_log_request", log_request)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    with pytest.raises(KeyboardInterrupt):
        cpyopt(library, request, now=library._clock())


def test_an_interrupt_after_the_last_commit_logs_the_run_once(library, monkeypatch):
    _interrupted_after_the_entry(library, monkeypatch)
    with library.open("BVOL1") as backup:
        assert [r["outcome"] for r in backup.requests()] == ["*COMPLETE"]
        assert backup.listdir("/A") == ["f"]
    assert [r.damaged for r in chkoptvol(library, vol="BVOL1")] == [[]]


@pytest.mark.parametrize("batch", [2, 10_000])  # the last of two groups; the run's only group
def test_an_interrupt_as_the_last_groups_commit_returns_logs_the_run_once(library, monkeypatch, batch):
    """hunt30j F2: the signal lands once SQLite committed the group, before _commit noted it: the
    run's only group (its ID not known to be committed) was logged again as *ENDED under a new ID."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/A")
        for name in "fgh":
            volume.write_bytes(f"/A/{name}", name.encode())
    logged, log = [False], copying._Copier._log_request

    def log_request(self, outcome=None):
        log(self, outcome)
        logged[0] = outcome is None

    class LateStack(contextlib.ExitStack):
        def close(self):  # the group's transaction commits; the signal lands as it returns
            super().close()
            if logged[0]:
                logged[0] = False
                raise KeyboardInterrupt

    monkeypatch.setattr(copying, "BATCH_FILES", batch)
    monkeypatch.setattr(copying._Copier, "_log_request", log_request)
    monkeypatch.setattr(copying, "ExitStack", LateStack)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    with pytest.raises(KeyboardInterrupt):
        cpyopt(library, request, now=library._clock())
    monkeypatch.undo()
    with library.open("BVOL1") as backup:
        assert [(r["outcome"], r["copied"]) for r in backup.requests()] == [("*COMPLETE", 3)]
        assert backup.listdir("/A") == ["f", "g", "h"]
    assert [r.damaged for r in chkoptvol(library, vol="BVOL1")] == [[]]


def test_a_log_that_cannot_be_read_at_the_end_leaves_the_interrupt_as_the_error(library, monkeypatch):
    """hunt30j: the end reads the backup's log to see whether the run's entry committed; where
    that read fails (a damaged index), what ended the request is still what is raised."""
    def damaged(self):
        raise errors.error("OPV0201", volume=self.id, reason="a damaged log")

    _interrupted_after_the_entry(library, monkeypatch, then=lambda: monkeypatch.setattr(Volume, "requests", damaged))
