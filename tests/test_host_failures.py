"""The host fails underneath a command (a hunt of session 18): a writeback error, a
failing fsync of the library directory, a disk out of room for SQLite's copy. Each
command says so with its message and exit code, never a traceback, and loses nothing:
nothing is reported done that is not on the disk, and no half-done step is finished
later behind the user's back.

Errors are injected by replacing ``os`` functions in this process (the kernel's own
errors need a failing device): ``os.fdatasync`` failing once is what Linux does after a
writeback error, whose next fsync on the same file then succeeds.
"""

from __future__ import annotations

import errno
import os
from datetime import datetime, timezone

import pytest

from conftest import make_volume
from optvol import errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.library import Library
from optvol.model import VolumeType


def clock() -> datetime:
    return datetime.now(timezone.utc)


def _eio(*_args) -> None:
    raise OSError(errno.EIO, "Input/output error")


def _clean(library: Library, vol: str) -> None:
    for result in chkoptvol(library, vol=vol):
        assert result.damaged == [], result


def test_a_failed_early_writeback_fails_the_write_of_a_big_file(library, monkeypatch):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/keep.txt", b"kept")
        monkeypatch.setattr(os, "fdatasync", _eio)  # the writer thread's early start on a file of 4 MiB or more
        data = os.urandom(5 << 20)
        with pytest.raises(errors.DamagedError) as caught:
            volume.write_chunks("/big.bin", iter([data[: 1 << 20], data[1 << 20 :]]), size=len(data))  # as cp does
        monkeypatch.undo()
        assert caught.value.message_id == "OPV0204"
        assert not volume.exists("/big.bin") and volume.read_bytes("/keep.txt") == b"kept"
        volume.write_bytes("/big.bin", b"again")  # the disk is fine again: the write goes through
    _clean(library, "PVOL1")


def test_a_failed_early_writeback_leaves_a_backup_and_its_ranges_as_they_were(tmp_path, monkeypatch):
    library = Library(tmp_path / "lib", clock=clock)
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        for i in range(50):  # small files: CPYOPT writes them in groups, each started early (write_behind)
            volume.write_bytes(f"/D/f{i}", os.urandom(3000))
        volume.write_bytes("/D/big", os.urandom(5 << 20))
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    monkeypatch.setattr(os, "fdatasync", _eio)
    with pytest.raises(errors.DamagedError) as caught:
        cpyopt(library, request, now=clock())
    monkeypatch.undo()
    assert caught.value.message_id == "OPV0204"
    with library.open("BVOL1") as backup:
        assert backup.info().files == 0
        assert all(d.backup is None for d in backup.iter_dirs("/"))  # no range claims what is not there
    _clean(library, "BVOL1")
    assert cpyopt(library, request, now=clock()).copied == 51  # the re-run copies everything
