"""CHKOPTVOL (and DUPOPT, which checks its copy) replays a volume's records into a scratch
index in $TMPDIR (docs/messages.md OPV0006). A $TMPDIR whose file system has run out of
inodes is the host's failure, never damage of the volume: exit 2 OPV0006, not OPV0201 or
OPV0206 (exit 7, "optvol recover rebuilds it"). Needs the right to mount a tmpfs."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone

from conftest import make_volume
from integrity_helpers import run_cli, tmpfs
from optvol.library import Library


def _leave_inodes(mount, free: int) -> None:
    filler = mount / "filler"
    filler.mkdir(exist_ok=True)
    number = len(os.listdir(filler))
    while os.statvfs(mount).f_favail > free:
        (filler / str(number)).touch()
        number += 1


def test_a_scratch_directory_out_of_inodes_is_no_damage(tmp_path, monkeypatch):
    library = Library(tmp_path / "lib", clock=lambda: datetime.now(timezone.utc))
    make_volume(library, "PVOL1")
    make_volume(library, "RVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a.txt", b"a" * 5000)
    with tmpfs(tmp_path / "mnt", "4m,nr_inodes=64") as mount:
        scratch = mount / "tmp"
        scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        seen = set()
        for free in range(1, 8):
            _leave_inodes(mount, free)
            for args in (("chkoptvol", "PVOL1"), ("dupopt", "PVOL1", "RVOL1", "--clear", "*YES")):
                result = run_cli(library.root, *args)
                seen.add(result.rc)
                assert result.rc in (0, 2), (free, args, result.err)
                if result.rc == 2:
                    assert result.err.startswith("optvol: OPV0006: ") and "scratch index" in result.err, result.err
            for name in os.listdir(mount / "filler"):
                (mount / "filler" / name).unlink()
        assert 2 in seen
