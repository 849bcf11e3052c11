"""One flipped bit in the last commit frame of a log SQLite started over (stale frames after it).

0a8dff0 took a commit frame of the log's salts that fails its checksum, followed by a stale
frame, for a writer killed between SQLite's two writes of that frame (its header over a stale
frame's, the stale page behind it). But a log SQLite started over nearly always has stale
frames after its last one (the file keeps its largest size), so one flipped bit of a last
commit's page, in a log a host backup copied while the writer ran (no crash anywhere), was
taken for that too: the open cut the data partition's tail and a write reported done was
gone, CHKOPTVOL saying nothing. A frame that holds with one bit changed is damage (OPV0201
until recover); a stale page behind a header a killed writer wrote is still no damage
(test_damaged_log.py)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

from cli_helpers import clean_env, run

WRITER = r"""
import os, sqlite3, sys
from datetime import datetime, timezone
from optvol.library import Library
library = sys.argv[1]
volume = Library(library, clock=lambda: datetime.now(timezone.utc)).open("PVOL1")
for n in range(8):
    volume.write_bytes(f"/c{n}.txt", b"C" * 3000)
index = sqlite3.connect(os.path.join(library, "PVOL1.optvol", "index.sqlite"))
assert index.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0] == 0
index.close()
volume.write_bytes("/d.txt", b"D" * 3000)
volume.write_bytes("/b.txt", b"B" * 3000)
print("done", flush=True)
sys.stdin.readline()
volume.close()
"""


def test_one_flipped_bit_of_a_last_commit_before_stale_frames_keeps_that_commit(tmp_path):
    env = clean_env(tmp_path)
    lib, copy = tmp_path / "lib", tmp_path / "copy"
    assert run("inzopt", "PVOL1", library=lib, env=env).rc == 0
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(lib)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert writer.stdout.readline() == "done\n"  # b.txt's write returned
        shutil.copytree(lib, copy)  # a host backup taken while the writer runs
    finally:
        writer.communicate("\n", timeout=60)
    assert writer.returncode == 0

    log = copy / "PVOL1.optvol" / "index.sqlite-wal"
    content = bytearray(log.read_bytes())
    page_size, salts = struct.unpack_from(">I", content, 8)[0], struct.unpack_from(">2I", content, 16)
    offsets = range(32, len(content) - 24 - page_size + 1, 24 + page_size)
    live = [o for o in offsets if struct.unpack_from(">2I", content, o + 8) == salts]
    last = live[-1]
    assert struct.unpack_from(">I", content, last + 4)[0] != 0  # b.txt's commit frame
    assert last + 24 + page_size < len(content)  # stale frames after it
    content[last + 24 + 100] ^= 0x01
    log.write_bytes(bytes(content))

    refused = run("ls", "/QOPT/PVOL1/", library=copy, env=env)
    assert refused.rc == 7 and "OPV0201" in refused.err and "was damaged" in refused.err, (refused.rc, refused.text)
    assert run("recover", "PVOL1", library=copy, env=env).rc == 0
    listed = run("ls", "/QOPT/PVOL1/", library=copy, env=env)
    assert "b.txt" in listed.text.split()
    assert run("cat", "/QOPT/PVOL1/b.txt", library=copy, env=env).out == b"B" * 3000
    assert os.path.exists(copy / "PVOL1.optvol" / "data.opv")
