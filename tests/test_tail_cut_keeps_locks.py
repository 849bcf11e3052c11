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
from optvol.image import descriptors
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


def test_the_shared_index_header_is_read_without_a_close_while_sqlite_holds_the_file(tmp_path):
    """The -shm header is read through a descriptor of optvol's own, kept open while SQLite holds
    the file (a close would drop its locks), used again by the next read, closed with the volume
    (neither another connection's descriptor, which another thread may close, nor one more per read)."""
    library = Library(tmp_path / "lib", clock=lambda: NOW)
    inzopt(library, vol="PVOL1", now=NOW)
    directory = tmp_path / "lib" / "PVOL1.optvol"
    with library.open("PVOL1") as v:
        v.write_bytes("/a", b"a")
        shared = directory / "index.sqlite-shm"
        found = os.stat(shared)
        file = (found.st_dev, found.st_ino)
        held = descriptors.descriptors_of(file)
        locks = [line.split()[1:] for line in open("/proc/locks") if f":{found.st_ino} " in line]
        assert held and locks
        for _ in range(3):
            header = descriptors.read_head(shared, 96)
            assert len(header) == 96 and header[:48] == header[48:96]
        assert len(descriptors.descriptors_of(file)) == len(held) + 1
        assert [line.split()[1:] for line in open("/proc/locks") if f":{found.st_ino} " in line] == locks
    assert descriptors.descriptors_of(file) == []
