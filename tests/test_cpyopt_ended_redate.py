"""hunt30h F3: a CPYOPT onto a backup that ends early after a group committed that only re-dated
(or made) a directory, no file: the volume's last changed did not move (reference §6.4: set
whenever the request wrote anything, directory attributes too), since the ended run's volume
control record was written only where files had been copied."""

from __future__ import annotations

import pytest

from conftest import make_volume
from optvol import copying
from optvol.copying import CopyRequest, cpyopt
from optvol.model import VolumeType

WHOLE = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)


@pytest.mark.parametrize("change", ["redate", "mkdir"])
def test_an_ended_run_that_committed_only_a_directory_moves_the_volume_last_changed(library, clock, monkeypatch, change):
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/A")  # empty
        volume.mkdir("/C")
        volume.write_bytes("/C/f", b"c")
    assert cpyopt(library, WHOLE, now=clock()).failures == []
    with library.open("PVOL1") as volume:
        if change == "redate":
            volume.rmdir("/A")
        volume.mkdir("/A" if change == "redate" else "/B")  # made again, or a new empty directory
        volume.write_bytes("/C/f", b"changed")
    monkeypatch.setattr(copying, "BATCH_FILES", 2 if change == "redate" else 3)  # / /A (/B) commit; then /C

    def interrupt(files, size):
        raise KeyboardInterrupt

    now = clock()
    with pytest.raises(KeyboardInterrupt):
        cpyopt(library, WHOLE, now=now, progress=interrupt)
    with library.open("BVOL1") as backup:
        changed = "/A" if change == "redate" else "/B"
        assert backup.dir_row(changed).backup().last_changed == now
        assert backup.info().backup.last_changed == now  # before: the previous run's
