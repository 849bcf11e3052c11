"""A CPYOPT onto a backup that ends early after a group of files committed (hunt30c F1): the
directories those groups wrote into, and the volume, get their last changed (reference §6.4:
set whenever the request wrote anything; later than the range's end, the sign of a partial
backup), and no range moves. Their control records were in the group the end undid: DSPOPT
showed a directory holding the run's files as never written, and no sign of a partial run."""

from __future__ import annotations

import pytest

from conftest import make_volume
from optvol import copying
from optvol.copying import CopyRequest, cpyopt
from optvol.model import VolumeType


def test_an_ended_run_records_last_changed_where_its_committed_groups_wrote(library, monkeypatch):
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        for d in ("A", "C"):
            volume.mkdir(f"/{d}")
            for n in range(4):
                volume.write_bytes(f"/{d}/f{n}", b"x")
    monkeypatch.setattr(copying, "BATCH_FILES", 3)

    def interrupt(files, size):
        if files > 4:  # /A's four files committed, /C's being written
            raise KeyboardInterrupt

    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    now = library._clock()
    with pytest.raises(KeyboardInterrupt):
        cpyopt(library, request, now=now, progress=interrupt)
    with library.open("BVOL1") as backup:
        assert backup.listdir("/A") == ["f0", "f1", "f2", "f3"] and not backup.exists("/C")
        a = backup.dir_row("/A").backup()
        assert a.last_changed == now and a.range_start is None and a.range_end is None  # before: no record at all
        volume = backup.info().backup
        assert volume.last_changed == now and volume.range_end is None
