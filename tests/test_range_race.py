"""Two CPYOPT runs at once onto one backup, the clock set back between them (hunt25i F1):
a FROMTIME run whose directory another run gave its first range meanwhile must look for
that range's gap before it joins it, or the joined range claims a file neither run copied."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from conftest import make_volume
from optvol import copying
from optvol.copying import CopyRequest, cpyopt
from optvol.model import VolumeType


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, second, tzinfo=timezone.utc)


def test_a_range_joined_meanwhile_claims_no_file_neither_run_copied(library, clock, monkeypatch):
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/A.TXT", b"a")
    to_backup = {"fromvol": "PVOL1", "tovol": "BVOL1", "totype": VolumeType.BACKUP}
    cpyopt(library, CopyRequest(frompath="/D/A.TXT", **to_backup), now=at(12, 0, 5))  # /D made, no range
    with library.open("PVOL1") as volume:
        volume.write_bytes("/D/B.TXT", b"b")

    a_ready, a_go, b_ready, b_go = (threading.Event() for _ in range(4))
    commit, control, who = copying._Copier._commit, copying._Copier._control, threading.local()

    def held_commit(self):
        if getattr(who, "name", "") == "A" and self._group is not None:
            a_ready.set()
            a_go.wait(30)
        return commit(self)

    def held_control(self, path, **kwargs):
        if getattr(who, "name", "") == "B":
            b_ready.set()
            b_go.wait(30)
        return control(self, path, **kwargs)

    monkeypatch.setattr(copying._Copier, "_commit", held_commit)
    monkeypatch.setattr(copying._Copier, "_control", held_control)

    def run(name: str, now: datetime, **kwargs) -> None:
        who.name = name
        cpyopt(library, CopyRequest(frompath="/D", **to_backup, **kwargs), now=now)

    a = threading.Thread(target=run, args=("A", at(12, 0, 10)))
    a.start()
    assert a_ready.wait(30)  # A has read /D and copied B.TXT; its range is not committed yet
    clock.now = at(11, 0)  # set back: X.TXT's change time is stamped just above A's seen
    with library.open("PVOL1") as volume:
        volume.write_bytes("/D/X.TXT", b"x")
    b = threading.Thread(target=run, args=("B", at(12, 30)), kwargs={"fromtime": at(12, 0, 10)})
    b.start()
    assert b_ready.wait(30)  # B read /D with no range there: no gap to look for
    a_go.set()
    a.join(30)
    b_go.set()
    b.join(30)
    monkeypatch.undo()

    result = cpyopt(library, CopyRequest(frompath="/D", **to_backup), now=at(13, 0))
    with library.open("BVOL1") as backup_volume:
        assert "X.TXT" in backup_volume.listdir("/D")
    assert result.copied == 1
