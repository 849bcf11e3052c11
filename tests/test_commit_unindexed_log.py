"""A COMMIT SQLite wrote and synced whole to the index's log (``-wal``) but could not index
in its shared memory (``-shm``), which must grow by 32 KiB every 4,096 frames and cannot on
a full disk (SQLITE_IOERR_SHMSIZE): optvol reports the write refused (OPV0203, "nothing was
changed") and cuts its records from the data partition. The frames stayed in the log: once
the last connection closed (a reader that kept the log from starting over, killed), the
next open rebuilt the index from the log, the refused change was in force, and CHKOPTVOL
found the data partition shorter than the committed end (rev28h F2). A real tmpfs, a real
reader process killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from integrity_helpers import run_cli, tmpfs

LOG_FRAMES_PER_SHM_BLOCK = 4062  # frames the -shm's first 32 KiB index (4096, less its headers)


def test_a_refused_commit_never_comes_back_from_the_log(tmp_path):
    with tmpfs(tmp_path / "mnt", "64m") as mount:
        library = mount / "lib"
        assert run_cli(library, "inzopt", "PVOL1", "--capacity", "8M", "--text", "t0").rc == 0
        index = library / "PVOL1.optvol" / "index.sqlite"
        log = index.with_name("index.sqlite-wal")
        reader = subprocess.Popen([sys.executable, "-c", (  # a reader that keeps the log from starting over
            "import sqlite3, time\n"
            f"c = sqlite3.connect({str(index)!r}, isolation_level=None)\n"
            "c.execute('BEGIN'); c.execute('SELECT count(*) FROM label').fetchall()\n"
            "print('ready', flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout.readline().strip() == "ready"

            def frames() -> int:
                return max(0, (log.stat().st_size - 32) // (4096 + 24))

            done, n = "t0", 0
            while True:  # up to just below the -shm's first block's end
                n += 1
                before = frames()
                assert run_cli(library, "chgoptvol", "PVOL1", "--text", f"t{n}").rc == 0
                done = f"t{n}"
                if frames() + 2 * (frames() - before) > LOG_FRAMES_PER_SHM_BLOCK:
                    break
            refused = 0
            for free in range(0, 128 << 10, 4 << 10):  # the disk full at each point of the next commits
                filler = mount / "filler"
                room = os.statvfs(mount)
                with open(filler, "wb") as handle:
                    if room.f_bavail * room.f_frsize > free:
                        os.posix_fallocate(handle.fileno(), 0, room.f_bavail * room.f_frsize - free)
                result = run_cli(library, "chgoptvol", "PVOL1", "--text", f"r{free}")
                filler.unlink()
                if result.rc == 0:
                    done = f"r{free}"
                    if frames() > LOG_FRAMES_PER_SHM_BLOCK + 2:
                        break
                else:
                    assert result.rc == 6 and "nothing was changed" in result.err, result.err
                    refused += 1
                    if frames() > LOG_FRAMES_PER_SHM_BLOCK:
                        break  # its frames left in the log past the index: see whether they come back
            assert refused and frames() > LOG_FRAMES_PER_SHM_BLOCK  # the -shm's growth was met on a full disk
        finally:
            reader.send_signal(signal.SIGKILL)
            reader.wait()
        shown = run_cli(library, "dspopt", "PVOL1", json_output=True)
        assert shown.rc == 0 and shown.json()["text"] == done  # no refused change in force
        assert run_cli(library, "chkoptvol", "PVOL1").rc == 0
