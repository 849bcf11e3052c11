"""Four processes on one library at once (DESIGN §6): two writers on one primary, a CPYOPT
loop to a backup and a reader that checks every byte it reads. Nothing lost, nothing
corrupt, CHKOPTVOL clean, every file a writer reported present with the right bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from conftest import make_volume
from fault_driver import content, size_of
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.library import Library
from optvol.model import VolumeType

DRIVER = Path(__file__).parent / "fault_driver.py"
SECONDS = 3.0


def clock() -> datetime:
    return datetime.now(timezone.utc)


def test_four_processes_at_once(tmp_path):
    root = tmp_path / "lib"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    jobs = {
        "w1": ("stress_writer", {"vol": "PVOL1", "prefix": "W1", "seconds": SECONDS}),
        "w2": ("stress_writer", {"vol": "PVOL1", "prefix": "W2", "seconds": SECONDS}),
        "copy": ("stress_cpyopt", {"from": "PVOL1", "to": "BVOL1", "seconds": SECONDS}),
        "read": ("stress_reader", {"vol": "PVOL1", "seconds": SECONDS}),
    }
    children = {}
    for name, (op, args) in jobs.items():
        progress = tmp_path / f"{name}.progress"
        progress.write_text("")
        children[name] = (progress, subprocess.Popen(
            [sys.executable, str(DRIVER), op, str(root), json.dumps(args), str(progress)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    lines = {}
    for name, (progress, child) in children.items():
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, (name, err.decode())
        lines[name] = progress.read_text().splitlines()
        assert lines[name][-1] == "end", (name, lines[name][-3:])

    written = [line[5:] for name in ("w1", "w2") for line in lines[name] if line.startswith("done ")]
    runs = [line.split() for line in lines["copy"] if line.startswith("run ")]
    reads = int(next(line.split()[1] for line in lines["read"] if line.startswith("reads ")))
    print(f"{len(written)} files written, {len(runs)} CPYOPT runs, {reads} reads checked")
    assert len(written) > 50 and len(runs) >= 1 and reads > 0
    assert [line for line in lines["read"] if line.startswith(("bad ", "error "))] == []
    assert [line for line in lines["copy"] if line.startswith("failure ")] == []
    assert sum(int(copied) for _, copied, _ in runs) > 0

    for result in chkoptvol(library, vol="*ALL"):
        assert result.damaged == [], result
    with library.open("PVOL1") as volume:
        files = {info.path for info in volume.iter_files("/", recursive=True)}
        assert files == set(written)  # nothing lost, nothing unreported
        for path in written:
            assert volume.read_bytes(path) == content(path, size_of(path, 1500)), path
    # The backup holds only correct copies, and one more run completes it.
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    assert not cpyopt(library, request, now=clock()).failures
    with library.open("BVOL1") as backup:
        on_backup = {}
        for info in backup.iter_files("/", recursive=True):
            _, row = backup.file_row(info.path)
            on_backup[info.path] = b"".join(backup.verified_chunks(row, info.path))
    assert set(on_backup) == set(written)
    for path, data in on_backup.items():
        assert data == content(path, size_of(path, 1500)), path
    [check] = chkoptvol(library, vol="BVOL1")
    assert check.damaged == []
