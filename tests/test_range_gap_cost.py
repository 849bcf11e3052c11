"""A whole-volume FROMTIME CPYOPT onto a backup, whose volume range leaves a gap before
FROMTIME (24c397c, rev25k F3): the volume range read under the write lock is the one the
read-ahead looked for the gap of, in every directory by the index (files_changed), so it is
not looked for again by a scan of every live file of the source (the index's whole length:
O(files) per run, about 0.1-0.2 s at 1,000,000 files, where the run itself took 0.03 s).
A range another run recorded meanwhile is still looked at again (test_range_race.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from conftest import make_volume
from optvol import backup, copying
from optvol.copying import CopyRequest, cpyopt
from optvol.model import VolumeType


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, second, tzinfo=timezone.utc)


def test_a_volume_range_the_read_ahead_read_is_not_scanned_for_again(library, clock, monkeypatch):
    clock.now = at(11, 0)  # the files' change times: well before the first run's time (its range's end)
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        for d in ("/D1", "/D2"):
            volume.mkdir(d)
            volume.write_bytes(f"{d}/A.TXT", b"a")
    to_backup = {"fromvol": "PVOL1", "tovol": "BVOL1", "totype": VolumeType.BACKUP, "frompath": "/", "cpysubdir": True}
    cpyopt(library, CopyRequest(**to_backup), now=at(12, 0, 5))
    with library.open("BVOL1") as backup_volume:
        first = backup_volume.label()["backup_end"]

    statements: list[str] = []
    gaps: list[tuple[int | None, int] | None] = []
    gap_now = copying._Copier._gap_now

    def traced(self, node, source_dir, *, whole):
        if whole:
            gaps.append(backup.gap(self.choice.recorded(node), self.start))
        conn = self.source.image.conn
        conn.set_trace_callback(statements.append)
        try:
            return gap_now(self, node, source_dir, whole=whole)
        finally:
            conn.set_trace_callback(None)

    monkeypatch.setattr(copying._Copier, "_gap_now", traced)
    result = cpyopt(library, CopyRequest(**to_backup, fromtime=at(12, 0, 5)), now=at(13, 0))
    assert result.failed == 0
    assert len(gaps) == 1 and gaps[0] is not None  # the volume's range has a gap before FROMTIME
    scans = [s for s in statements if "FROM files" in s and "dir =" not in s]
    assert scans == []
    with library.open("BVOL1") as backup_volume:  # the range still joins: nothing lies in its gap
        label = backup_volume.label()
        assert label["backup_start"] is None and label["backup_end"] > first
