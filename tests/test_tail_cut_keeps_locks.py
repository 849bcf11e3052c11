"""A tail cut under the write lock reads the index's ``-shm`` header (wal.drop_unindexed);
it opened and closed a descriptor of that file, and a close() drops every POSIX lock the
process holds on it: SQLite's write lock and read marks, in the middle of the transaction
that cut the tail. Another process then began a write at once, at the same committed end:
the two wrote their records over each other, the first's COMMIT failed ('locking protocol',
OPV0201) and the second's file was damaged (hunt29f F1: a program holding a volume open and
writing it, after a killed writer left a tail)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

from optvol.checking import chkoptvol
from optvol.image import wal
from optvol.initialize import inzopt
from optvol.library import Library

NOW = datetime(2021, 5, 1, 9, tzinfo=timezone.utc)


def _other_process_may_write(index: str) -> bool:
    """Whether another process gets the index's write lock at once (busy_timeout 0)."""
    code = textwrap.dedent(f"""
        import sqlite3, sys
        c = sqlite3.connect({index!r}, isolation_level=None)
        c.execute("PRAGMA busy_timeout = 0")
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            sys.exit(3)
        c.execute("ROLLBACK")
        """)
    return subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_batch_that_cut_a_torn_tail_keeps_the_write_lock(tmp_path):
    library = Library(tmp_path / "lib", clock=lambda: NOW)
    inzopt(library, vol="PVOL1", now=NOW)
    with library.open("PVOL1") as v:
        v.write_bytes("/first.bin", b"1" * 5000)
    directory = tmp_path / "lib" / "PVOL1.optvol"
    index = str(directory / "index.sqlite")
    with library.open("PVOL1") as v:
        with open(directory / "data.opv", "ab") as data:  # a writer killed after appending its records
            data.write(os.urandom(8 * 2048))
        with v.batch():
            v.write_bytes("/mine.bin", b"M" * 7000)  # its transaction cuts that tail first
            assert not _other_process_may_write(index)
        v.write_bytes("/later.bin", b"L" * 100)
    assert [r.damaged for r in chkoptvol(library, vol="PVOL1")] == [[]]
    with library.open("PVOL1") as v:
        assert v.read_bytes("/mine.bin") == b"M" * 7000
        assert v.read_bytes("/later.bin") == b"L" * 100


def test_the_shared_index_header_is_read_through_sqlites_own_descriptor(tmp_path):
    library = Library(tmp_path / "lib", clock=lambda: NOW)
    inzopt(library, vol="PVOL1", now=NOW)
    directory = tmp_path / "lib" / "PVOL1.optvol"
    with library.open("PVOL1") as v:
        v.write_bytes("/a", b"a")
        shared = directory / "index.sqlite-shm"
        before = sorted(os.listdir("/proc/self/fd"))
        header = wal._read_shared(shared)
        assert header is not None and len(header) == 96
        assert sorted(os.listdir("/proc/self/fd")) == before
