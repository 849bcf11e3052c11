"""A close() of any descriptor of index.sqlite drops every POSIX lock the process holds on it,
SQLite's SHARED lock of a WAL index among them: another process's close then took itself for
the last connection and removed the -wal and -shm under the open volume, whose stale committed
end, at its own close, cut the other's committed records off the data partition (rev29g F1:
a second open of the volume in the same process, read through a private copy of its index
while a hard link to its files stood, made that copy with shutil.copyfile)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

from optvol.checking import chkoptvol
from optvol.initialize import inzopt
from optvol.library import Library

NOW = datetime(2021, 5, 1, 9, tzinfo=timezone.utc)


def _locks_here(path) -> list[str]:
    inode = os.stat(path).st_ino
    with open("/proc/locks") as handle:
        return [line for line in handle if f":{inode} " in line and f" {os.getpid()} " in line]


def _other_process(code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=120)


def _close_a_connection(index) -> None:
    _other_process(f"""
        import sqlite3
        c = sqlite3.connect({str(index)!r})
        c.execute("SELECT count(*) FROM files").fetchone()
        c.close()""")


def _write_c(root) -> None:
    _other_process(f"""
        import datetime
        from optvol.library import Library
        lib = Library({str(root)!r}, clock=lambda: datetime.datetime(2021, 5, 1, 10, tzinfo=datetime.timezone.utc))
        with lib.open("PVOL1") as v:
            v.write_bytes("/c.txt", b"C" * 3000)""")


def test_a_second_open_through_a_private_copy_keeps_sqlites_locks(tmp_path):
    library = Library(tmp_path / "lib", clock=lambda: NOW)
    inzopt(library, vol="PVOL1", now=NOW)
    directory = tmp_path / "lib" / "PVOL1.optvol"
    with library.open("PVOL1") as first:
        first.write_bytes("/a.txt", b"A" * 3000)
        assert _locks_here(directory / "index.sqlite")
        os.link(directory / "data.opv", tmp_path / "linked.opv")  # a hard-link backup (cp -al)
        with library.open("PVOL1") as second:  # read through a private copy of the index
            assert second.listdir("/") == ["a.txt"]
        os.unlink(tmp_path / "linked.opv")
        assert _locks_here(directory / "index.sqlite")
        _close_a_connection(directory / "index.sqlite")
        assert (directory / "index.sqlite-wal").exists()
        first.write_bytes("/b.txt", b"B" * 3000)
    _write_c(tmp_path / "lib")
    assert [r.damaged for r in chkoptvol(library, vol="PVOL1")] == [[]]
    with library.open("PVOL1") as v:
        assert [len(v.read_bytes(f"/{n}")) for n in ("a.txt", "b.txt", "c.txt")] == [3000] * 3


def test_a_volume_that_lost_its_index_files_cuts_no_tail_at_its_close(tmp_path):
    library = Library(tmp_path / "lib", clock=lambda: NOW)
    inzopt(library, vol="PVOL1", now=NOW)
    directory = tmp_path / "lib" / "PVOL1.optvol"
    first = library.open("PVOL1")
    first.write_bytes("/a.txt", b"A" * 3000)
    os.close(os.open(directory / "index.sqlite", os.O_RDONLY))  # any such close in this process
    _close_a_connection(directory / "index.sqlite")  # takes itself for the last: removes the -wal and -shm
    _write_c(tmp_path / "lib")
    first.close()  # its committed end is stale: the tail past it is the other process's file
    assert [r.damaged for r in chkoptvol(library, vol="PVOL1")] == [[]]
    with library.open("PVOL1") as v:
        assert v.read_bytes("/c.txt") == b"C" * 3000
