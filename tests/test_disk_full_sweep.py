"""A real small file system run out of room at every point of a short write (DESIGN §3 Commit,
docs/messages.md OPV0203): each refused run leaves the volume as it was and readable, and the
same command succeeds once there is room. Needs the right to mount a tmpfs (skipped otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

from integrity_helpers import run_cli, tmpfs


def _fill(mount: Path, leave: int) -> Path:
    """A filler file that leaves ``leave`` bytes of ``mount`` free."""
    stat = os.statvfs(mount)
    filler = mount / "filler"
    with open(filler, "wb") as handle:
        size = stat.f_bavail * stat.f_frsize - leave
        if size > 0:
            os.posix_fallocate(handle.fileno(), 0, size)
    return filler


def test_a_label_change_the_full_disk_refuses_at_its_commit_leaves_the_volume_readable(tmp_path):
    # CHGOPTVOL appends a LABEL record, then commits; where the disk fills while SQLite writes
    # the commit into a log it had to create, the torn log frame is the refused commit's own:
    # its record must be cut, not kept as a damaged log's commits (every command then refused
    # the volume, OPV0201, and recover brought back the change reported as not made).
    with tmpfs(tmp_path / "mnt", "4m") as mount:
        lib = mount / "lib"
        assert run_cli(lib, "inzopt", "PVOL1", "--capacity", "1M", "--text", "old").rc == 0
        host = tmp_path / "f.bin"
        host.write_bytes(os.urandom(20_000))
        assert run_cli(lib, "cp", host, "/QOPT/PVOL1/f.bin").rc == 0
        refused = 0
        for free in range(0, 96 << 10, 4 << 10):
            filler = _fill(mount, free)
            try:
                changed = run_cli(lib, "chgoptvol", "PVOL1", "--text", f"new{free}")
            finally:
                filler.unlink()
            assert changed.rc in (0, 6), changed.err
            shown = run_cli(lib, "dspopt", "PVOL1", json_output=True)
            assert shown.rc == 0, (free, changed.err, shown.err)
            text = shown.json()["text"]
            if changed.rc == 6:
                refused += 1
                assert changed.err.startswith("optvol: OPV0203: ")
                assert text != f"new{free}", free
            else:
                assert text == f"new{free}", free
            assert run_cli(lib, "chgoptvol", "PVOL1", "--text", "old").rc == 0, free
            checked = run_cli(lib, "chkoptvol", "PVOL1", json_output=True)
            assert checked.rc == 0 and checked.json()["damaged"] == [], checked.err
        assert refused
