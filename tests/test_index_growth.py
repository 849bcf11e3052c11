"""Every command's index work grows with the volume, not with its square.

A query that looks rows up by a column without an index (a correlated subquery, a nested
scan) costs nothing on the small volumes of the other tests and hours on an archive:
CHKOPTVOL once took 8 minutes for 100,000 files that way. Timings belong in bench/, so this
test counts instead: SQLite's virtual-machine instructions (a progress handler on every
connection optvol opens), which are the same on every run and every machine. Each command
runs on a library of N files and on one of 4 × N; linear work gives a ratio of about 4,
a sort (n log n) a little more, a quadratic one 16.
"""

from __future__ import annotations

import sqlite3
import threading
from io import StringIO

import pytest

from optvol import cli
from optvol.cli.context import system_clock
from optvol.library import Library

SMALL = 160
GROWTH = 4
LIMIT = 7.0  # above linear and n log n at these sizes, far below quadratic (16)
PER_DIR = 20
TICK = 10  # VM instructions per progress-handler call

# The commands, in order, run on each library (the shell syntax; {lib} is the library).
COMMANDS = [
    ("cpyopt to a backup", ["cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES"]),
    ("cpyopt *CHANGED again", ["cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES"]),
    ("cpyopt *ALL to a primary", ["cpyopt", "PVOL1", "/", "QVOL1 *PRIMARY", "--cpysubdir", "*YES",
                                  "--sltfile", "*ALL"]),
    ("chkoptvol", ["chkoptvol", "PVOL1"]),
    ("chkoptvol of the backup", ["chkoptvol", "BVOL1"]),
    ("dspopt *FILATR", ["--json", "dspopt", "PVOL1", "--data", "*FILATR", "--path", "*ALL"]),
    ("dspopt *DIRATR", ["--json", "dspopt", "BVOL1", "--data", "*DIRATR", "--path", "*ALL"]),
    ("wrkoptdir", ["--json", "wrkoptdir", "*ALL", "BVOL1"]),
    ("wrkoptf", ["--json", "wrkoptf", "PVOL1", "*ALL"]),
    ("dupopt", ["dupopt", "BVOL1", "DVOL1"]),
    ("recover", ["recover", "DVOL1"]),
    ("cvtoptbku", ["cvtoptbku", "DVOL1", "NEWPRI"]),
    ("cp -r out", ["cp", "-r", "/QOPT/PVOL1/D1", "{host}/out"]),
    ("rm -r", ["rm", "-r", "/QOPT/QVOL1/D1", "/QOPT/QVOL1/D2"]),
    ("mv of a directory", ["mv", "/QOPT/QVOL1/D3", "/QOPT/QVOL1/D4/MOVED"]),
    ("ls -l", ["--json", "ls", "-l", "/QOPT/PVOL1/D0/S0"]),
    ("export-iso --udf", ["export-iso", "--udf", "QVOL1", "{host}/q.iso"]),
    ("import-iso", ["import-iso", "{host}/q.iso", "--vol", "IMP1"]),
    ("chkoptvol of the import", ["chkoptvol", "IMP1"]),
]


class Counter:
    """Counts the VM instructions of every connection opened while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ticks = 0
        connect = sqlite3.connect

        def counted(*args, **kwargs):
            conn = connect(*args, **kwargs)
            conn.set_progress_handler(self._tick, TICK)
            return conn

        monkeypatch.setattr(sqlite3, "connect", counted)

    def _tick(self) -> int:
        self.ticks += 1
        return 0


def run(tmp_path, files: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Fill a library with ``files`` files (replaced and deleted ones among them), then run
    every command; the VM instructions (in TICKs) of each."""
    lib, host = tmp_path / f"lib{files}", tmp_path / f"host{files}"
    host.mkdir()

    def optvol(*argv: str) -> None:
        out, err = StringIO(), StringIO()
        code = cli.main(["--library", str(lib), *[a.format(host=host) for a in argv]], out=out, err=err)
        assert code == 0, (argv, err.getvalue())

    for vol, kind in (("PVOL1", "*PRIMARY"), ("BVOL1", "*BACKUP"), ("QVOL1", "*PRIMARY")):
        optvol("inzopt", vol, "--type", kind)
    library = Library(lib, clock=system_clock)
    with library.open("PVOL1") as volume, volume.batch():
        for i in range(files):
            directory = f"/D{i // PER_DIR}/S{i % 2}"
            volume.mkdir(directory, parents=True, exist_ok=True)
            volume.write_bytes(f"{directory}/F{i}", b"x" * (i % 300))
        for i in range(0, files, 5):
            volume.write_bytes(f"/D{i // PER_DIR}/S{i % 2}/F{i}", b"replaced")  # a second version
        for i in range(3, files, 7):
            volume.remove(f"/D{i // PER_DIR}/S{i % 2}/F{i}")

    counter = Counter(monkeypatch)
    counts = {}
    for name, argv in COMMANDS:
        counter.ticks = 0
        optvol(*argv)
        counts[name] = counter.ticks
    monkeypatch.undo()
    return counts


@pytest.fixture
def in_process_reads():
    """CPYOPT reads in its own process only while it runs no other thread (copy_readahead.py):
    one idle thread keeps its queries in this process, where they are counted."""
    stop = threading.Event()
    idle = threading.Thread(target=stop.wait)
    idle.start()
    yield
    stop.set()
    idle.join()


def test_no_command_does_index_work_that_grows_faster_than_the_volume(tmp_path, monkeypatch, in_process_reads):
    small = run(tmp_path, SMALL, monkeypatch)
    large = run(tmp_path, SMALL * GROWTH, monkeypatch)
    ratios = {name: large[name] / max(small[name], 1) for name in small}
    assert all(small[name] > 20 for name in small), small  # every command was counted
    too_steep = {name: f"{ratio:.1f}" for name, ratio in ratios.items() if ratio > LIMIT}
    assert not too_steep, (too_steep, small, large)
