"""A program that writes a volume through the library's own path while it reads the same
volume through a read-only bind mount of the library (hunt30f F1).

SQLite shares one mapping of an index's -shm among a process's connections to that file; one
first opened through the read-only path is read-only, and the writer's connection got it too:
"attempt to write a readonly database", reported as OPV0011 ("can only be read by this
user") to root writing its own library, while another process held the volume open."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from conftest import make_volume
from integrity_helpers import read_only_bind
from optvol.library import Library

SRC = Path(__file__).resolve().parent.parent / "src"
HOLD = ("import sys, time\nfrom optvol import open_library\nv = open_library(sys.argv[1]).open('PVOL1')\n"
        "v.write_bytes('/HELD', b'h' * 2000)\nprint('open', flush=True)\nsys.stdin.read()\n")


def clock() -> datetime:
    return datetime.now(timezone.utc)


def test_a_read_only_view_does_not_refuse_the_same_programs_writer(tmp_path):
    root, view = tmp_path / "lib", tmp_path / "view"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/A", b"a")
    with read_only_bind(root, view):
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env={**os.environ, "PYTHONPATH": str(SRC)})
        try:
            assert holder.stdout.readline() == b"open\n"  # its commit is in the log, the -shm beside it
            with Library(view, clock=clock).open("PVOL1") as reader:
                assert sorted(reader.listdir("/")) == ["A", "HELD"]
                with library.open("PVOL1") as writer:
                    writer.write_bytes("/B", b"b" * 3000)
                    assert writer.read_bytes("/B") == b"b" * 3000
                assert reader.read_bytes("/A") == b"a"
            with Library(view, clock=clock).open("PVOL1") as again:
                assert again.read_bytes("/B") == b"b" * 3000
        finally:
            holder.stdin.close()
            holder.wait()
    with library.open("PVOL1") as volume:
        assert sorted(volume.listdir("/")) == ["A", "B", "HELD"]
