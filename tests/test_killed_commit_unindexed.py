"""A writer killed (SIGKILL) after SQLite wrote its COMMIT's frames to the index's log
(``-wal``) but before it indexed them in the shared memory (``-shm``), while another process
kept the ``-shm`` (a program holding the volume open): the next command saw the last
committed state and cut the killed write's records from the data partition, and once the
holder was killed too the next open rebuilt the index from the log, with the killed write
in force over a data partition without it: CHKOPTVOL found the data partition shorter than
the committed end and the file damaged (hunt29a F1). strace injects the SIGKILL at the
writer's syncs of the log, so that the kill lands in that window every time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def optvol(library, *args: str, strace: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    argv = [sys.executable, "-m", "optvol", "--library", str(library), *args]
    return subprocess.run((strace or []) + argv, env=env, capture_output=True, text=True, errors="replace", timeout=120)


@pytest.mark.parametrize("first_write", [False, True], ids=["log-empty", "log-with-frames"])
@pytest.mark.parametrize("sync", [1, 2, 3])
def test_a_killed_commit_never_comes_back_over_a_cut_tail(tmp_path, first_write, sync):
    library = tmp_path / "lib"
    (tmp_path / "a.bin").write_bytes(os.urandom(50_000))
    (tmp_path / "x.bin").write_bytes(os.urandom(50_000))
    assert optvol(library, "inzopt", "PVOL1").returncode == 0
    assert optvol(library, "cp", str(tmp_path / "a.bin"), "/QOPT/PVOL1/a").returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, optvol\n"
        f"v = optvol.open_library({str(library)!r}).open('PVOL1'); v.listdir('/')\n"
        "print('ready', flush=True); time.sleep(600)")],
        env=dict(os.environ, PYTHONPATH=SRC), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        if first_write:
            assert optvol(library, "cp", str(tmp_path / "a.bin"), "/QOPT/PVOL1/b").returncode == 0
        killed = optvol(library, "cp", str(tmp_path / "x.bin"), "/QOPT/PVOL1/x", strace=[
            "strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=fdatasync",
            "-e", f"inject=fdatasync:signal=SIGKILL:when={sync}"])
        listed = optvol(library, "ls", "/QOPT/PVOL1/")  # the next command, the holder still there
        assert listed.returncode == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    checked = optvol(library, "chkoptvol", "PVOL1")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = optvol(library, "ls", "/QOPT/PVOL1/").stdout.split()
    assert names == listed.stdout.split()  # what the next command saw stays
    if killed.returncode == 0:  # reported done: it stays
        assert "x" in names
        assert optvol(library, "cat", "/QOPT/PVOL1/x").returncode == 0


def test_a_killed_commit_never_comes_back_after_the_next_writer_cut_its_tail(tmp_path):
    """The same, where the tail is cut by the next writer (the holder's own batch, which then
    fails and writes nothing to the log), not by an open: its cut dropped the log's frames
    past the -shm index too."""
    library = tmp_path / "lib"
    (tmp_path / "x.bin").write_bytes(os.urandom(50_000))
    assert optvol(library, "inzopt", "PVOL1").returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, optvol\n"
        f"v = optvol.open_library({str(library)!r}).open('PVOL1'); v.listdir('/')\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "try:\n"
        "    with v.batch():\n"
        "        v.write_bytes('/y', b'y')\n"
        "        raise KeyError('the program changed its mind')\n"
        "except KeyError:\n"
        "    pass\n"
        "print(sorted(v.listdir('/')), flush=True); time.sleep(600)")],
        env=dict(os.environ, PYTHONPATH=SRC), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        data = library / "PVOL1.optvol" / "data.opv"
        size = data.stat().st_size
        killed = optvol(library, "cp", str(tmp_path / "x.bin"), "/QOPT/PVOL1/x", strace=[
            "strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=fdatasync", "-e", "inject=fdatasync:signal=SIGKILL:when=3"])
        assert killed.returncode == -signal.SIGKILL
        assert data.stat().st_size > size  # the killed write's records: a tail past the committed end
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "[]"  # the holder's batch cut the tail and wrote nothing
        assert data.stat().st_size == size
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    checked = optvol(library, "chkoptvol", "PVOL1")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert optvol(library, "ls", "/QOPT/PVOL1/").stdout.split() == []
