"""Progress of the long commands: CHKOPTVOL, DUPOPT, export-iso and import-iso report
through callbacks (DESIGN §2; CPYOPT's are tested in test_cpyopt.py), and the CLI draws
every one of them, CPYOPT's too, as a bar on a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from conftest import make_volume
from optvol import checking, duplicate
from optvol.interchange import export_iso, import_iso

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
SIZES = [0, 1, 2048, 5000, 300_000, 1 << 20] + [700] * 20


class Calls:
    """What a command told its two callbacks, in order."""

    def __init__(self):
        self.events = []

    def totals(self, files: int, size: int) -> None:
        self.events.append(("totals", files, size))

    def progress(self, files: int, size: int) -> None:
        self.events.append(("progress", files, size))

    def check(self, files: int, size: int) -> None:
        """Totals first, then counts that only grow, ending at those totals."""
        assert self.events[0] == ("totals", files, size)
        counts = [event[1:] for event in self.events[1:]]
        assert all(event[0] == "progress" for event in self.events[1:])
        assert counts == sorted(counts) and len(set(counts)) == len(counts)
        assert counts[-1] == (files, size) and len(counts) == files


@pytest.fixture
def filled(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/A/B", parents=True)
        for number, size in enumerate(SIZES):
            volume.write_bytes(f"/{'A/B' if number % 2 else 'A'}/F{number:02}", os.urandom(size))
        volume.write_bytes("/A/F00", b"a second version")  # CHKOPTVOL and DUPOPT count versions
    return library


def test_chkoptvol_reports_every_version(filled):
    calls = Calls()
    [result] = checking.chkoptvol(filled, vol="PVOL1", progress=calls.progress, totals=calls.totals)
    assert result.files_checked == len(SIZES) + 1 and not result.damaged
    calls.check(result.files_checked, result.bytes_checked)


def test_chkoptvol_of_every_volume_starts_again_for_each(filled):
    make_volume(filled, "PVOL2")
    with filled.open("PVOL2") as volume:
        volume.write_bytes("/ONE", b"one")
    calls = Calls()
    results = checking.chkoptvol(filled, vol="*ALL", progress=calls.progress, totals=calls.totals)
    assert [event for event in calls.events if event[0] == "totals"] == [
        ("totals", r.files_checked, r.bytes_checked) for r in results]
    assert calls.events[-2:] == [("totals", 1, 3), ("progress", 1, 3)]


def test_dupopt_reports_the_check_of_its_copy(filled):
    calls = Calls()
    result = duplicate.dupopt(filled, fromvol="PVOL1", tovol="DUP1", now=NOW, progress=calls.progress,
                              totals=calls.totals)
    assert result.files == len(SIZES) + 1
    calls.check(result.files, result.bytes)


@pytest.mark.parametrize("udf", [False, True], ids=["iso", "udf"])
def test_export_and_import_report_each_file(filled, tmp_path, udf):
    image = tmp_path / "out.iso"
    calls = Calls()
    exported = export_iso(filled, vol="PVOL1", file=image, now=NOW, udf=udf, progress=calls.progress,
                          totals=calls.totals)
    assert exported.files == len(SIZES)  # live files only: an image holds no old versions
    calls.check(len(SIZES), sum(SIZES[1:]) + len(b"a second version"))
    for into in (None, "PVOL1:/BACK"):
        calls = Calls()
        imported = import_iso(filled, file=image, now=NOW, vol=None if into else "COPY", into=into,
                              progress=calls.progress, totals=calls.totals)
        calls.check(imported.files, imported.bytes)
        assert imported.files == len(SIZES)


def _drawn(argv: list[str], env: dict) -> tuple[subprocess.CompletedProcess, bytes]:
    """Run ``argv`` with its standard error on a pseudo-terminal: what it printed, and what it drew."""
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=terminal, env=env, timeout=300)
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    return done, drawn


def test_the_bar_on_a_terminal(tmp_path):
    """On a terminal (a real pseudo-terminal here) each command draws its bar: its name,
    files and bytes so far and in all, and a rate."""
    env = {k: v for k, v in os.environ.items() if k != "OPTVOL_LIBRARY"}
    env.update(COLUMNS="120", TERM="xterm")
    base = [sys.executable, "-m", "optvol", "--library", str(tmp_path / "lib")]
    subprocess.run(base + ["inzopt", "PVOL1"], check=True, capture_output=True, env=env)
    subprocess.run(base + ["inzopt", "BVOL1", "--type", "*BACKUP"], check=True, capture_output=True, env=env)
    source = tmp_path / "tree"
    source.mkdir()
    for number in range(40):
        (source / f"F{number:02}").write_bytes(os.urandom(2 << 20))
    subprocess.run(base + ["cp", "-r", str(source), "/QOPT/PVOL1/TREE"], check=True, capture_output=True, env=env)
    image = tmp_path / "p.iso"
    for label, argv in (
        (b"CPYOPT", ["cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES"]),
        (b"CHKOPTVOL", ["chkoptvol", "PVOL1"]),
        (b"DUPOPT", ["dupopt", "PVOL1", "DUP1"]),
        (b"export-iso", ["export-iso", "PVOL1", str(image)]),
        (b"import-iso", ["import-iso", str(image), "--vol", "IMP1"]),
    ):
        done, drawn = _drawn(base + argv, env)
        assert done.returncode == 0, (label, drawn[-2000:])
        assert label + b" " in drawn and b"/40 files" in drawn and b"of 83.9 MB" in drawn, (label, drawn[-2000:])
        assert re.search(rb"\d [kMG]?B\x1b", drawn) and re.search(rb"\d [kMG]?B/s", drawn)  # bytes so far, a rate
        assert b"/?" not in drawn  # never "x/? MB" before the totals are known
    done, drawn = _drawn(base + ["--json", "chkoptvol", "PVOL1"], env)  # JSON: no bar, even on a terminal
    assert done.returncode == 0 and b'"files_checked": 40' in done.stdout and b"CHKOPTVOL" not in drawn
