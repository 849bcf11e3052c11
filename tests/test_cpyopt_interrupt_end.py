"""A Ctrl-C that comes as CPYOPT waits for its hashing threads to end (hunt27o F1): the run's
last group of files, written but not committed, is undone, and the target opens after it
(it was left with records past its committed end and no log: OPV0201 until `optvol recover`)."""

from __future__ import annotations

import gc
import os

import pytest

from conftest import make_volume
from optvol import copying
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.model import VolumeType


@pytest.mark.parametrize("totype", [VolumeType.BACKUP, VolumeType.PRIMARY])
def test_an_interrupt_as_the_hashing_threads_end_leaves_the_target_sound(library, monkeypatch, totype):
    make_volume(library, "PVOL1")
    make_volume(library, "TVOL1", type=totype)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        for n in range(3):
            volume.write_bytes(f"/D/f{n}.bin", os.urandom(300_000))
    close = copying._Prehash.close

    def interrupted(self):
        close(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(copying._Prehash, "close", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="TVOL1", totype=totype, cpysubdir=True),
               now=library._clock())
    gc.collect()
    monkeypatch.setattr(copying._Prehash, "close", close)
    with library.open("TVOL1") as target:  # OPV0201 before the fix
        assert [f.path for f in target.iter_files("/", recursive=True)] == []
    assert not chkoptvol(library, vol="TVOL1")[0].damaged
    result = cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="TVOL1", totype=totype, cpysubdir=True),
                    now=library._clock())
    assert result.copied == 3 and not result.failures
    assert not chkoptvol(library, vol="TVOL1")[0].damaged
