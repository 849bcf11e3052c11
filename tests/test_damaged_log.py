"""An index whose log SQLite cut short because a frame failed its checksum (hunt24e F3).

A writer reports two files done (their commits fsynced into ``index.sqlite-wal``) and is
killed before any checkpoint; then one bit of the log's last frame flips (media damage).
SQLite drops the frames from the damaged one on, so the index ends before the second
file's records, which an open took for a dead writer's torn tail and cut: a file reported
written was gone, and CHKOPTVOL said nothing. Now such a tail is kept and every command
refused (OPV0201) until ``optvol recover`` brings the records back (docs/format.md §5).
A dead writer's tail with a sound log, and damage in stale frames (of other salts), are
cut as before. Real processes are killed with SIGKILL; real bits flip in the real log.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from cli_helpers import clean_env, run
from optvol import errors
from optvol.library import Library

CHILD = r"""
import os, sqlite3, sys
from datetime import datetime, timezone
from optvol.image import datapart
from optvol.library import Library
library, mode = sys.argv[1], sys.argv[2]
volume = Library(library, clock=lambda: datetime.now(timezone.utc)).open("PVOL1")
volume.write_bytes("/a.txt", b"A" * 3000)
if mode in ("restart", "live"):  # more commits, all checkpointed; the next one starts the log over, leaving theirs stale
    for n in range(8):
        volume.write_bytes(f"/c{n}.txt", b"C" * 3000)
    index = sqlite3.connect(os.path.join(library, "PVOL1.optvol", "index.sqlite"))
    assert index.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0] == 0
    index.close()
    volume.write_bytes("/d.txt", b"D" * 3000)
if mode in ("torn", "restart"):  # killed once b.txt's records are in the data partition, before their commit
    sync = datapart.DataPartition.sync
    def killed(self):
        sync(self)
        os.kill(os.getpid(), 9)
    datapart.DataPartition.sync = killed
volume.write_bytes("/b.txt", b"B" * 3000)
print("done", flush=True)
if mode == "live":  # it runs on while the library is copied, then closes the volume and ends
    sys.stdin.readline()
    volume.close()
    sys.exit(0)
os.kill(os.getpid(), 9)
"""

A, B = b"A" * 3000, b"B" * 3000


@pytest.fixture
def env(tmp_path):
    return clean_env(tmp_path)


@pytest.fixture
def lib(tmp_path, env):
    library = tmp_path / "lib"
    done = run("inzopt", "PVOL1", library=library, env=env)
    assert done.rc == 0, done.err
    return library


def _killed_writer(library, mode: str, env) -> str:
    """Run the writer (``mode``: "done", "torn", "restart") until it kills itself; what it printed."""
    child = subprocess.run([sys.executable, "-c", CHILD, str(library), mode], capture_output=True, env=env,
                           timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    return child.stdout.decode()


def _frames(log) -> tuple[tuple[int, int], list[tuple[int, tuple[int, int], int]]]:
    """The log's salts, and each whole frame's offset, salts and commit field (read here as
    SQLite's format has it, apart from the code under test)."""
    content = log.read_bytes()
    page_size = struct.unpack_from(">I", content, 8)[0]
    salts = struct.unpack_from(">2I", content, 16)
    frames = []
    for offset in range(32, len(content) - 24 - page_size + 1, 24 + page_size):
        frames.append((offset, struct.unpack_from(">2I", content, offset + 8), struct.unpack_from(">I", content, offset + 4)[0]))
    return salts, frames


def _damage(log, how: str) -> None:
    """Damage the log's last frame, which must be a commit of the log's salts: one bit of its
    page flipped, the file cut inside its page, or a block of zeros over its header."""
    salts, frames = _frames(log)
    offset, frame_salts, commit = frames[-1]
    assert frame_salts == salts and commit != 0  # b.txt's commit, still in the log
    content = bytearray(log.read_bytes())
    if how == "flip":
        content[-100] ^= 0x01
    elif how == "salt":  # a bit of its salts (which its checksum leaves out): SQLite's log ends there all the same
        content[offset + 12] ^= 0x01
    elif how == "cut":
        del content[-1000:]
    else:
        content[offset:offset + 4096] = bytes(4096)
    log.write_bytes(bytes(content))


def _ls(library, env) -> list[str]:
    listed = run("ls", "/QOPT/PVOL1/", library=library, env=env)
    assert listed.rc == 0, listed.err
    return listed.text.split()


@pytest.mark.parametrize("how", ["flip", "salt", "cut", "zeros"])
def test_a_damaged_log_keeps_the_commits_it_lost_and_recover_brings_them_back(lib, env, tmp_path, how):
    assert _killed_writer(lib, "done", env) == "done\n"  # both writes returned: reported done
    log, data = lib / "PVOL1.optvol" / "index.sqlite-wal", lib / "PVOL1.optvol" / "data.opv"
    _damage(log, how)
    size = data.stat().st_size
    (tmp_path / "new").write_bytes(b"new")
    refused = run("cat", "/QOPT/PVOL1/a.txt", library=lib, env=env)
    assert refused.rc == 7 and "OPV0201" in refused.err and "log (index.sqlite-wal) was damaged" in refused.err
    assert "recover" in refused.err
    for args in (["cp", tmp_path / "new", "/QOPT/PVOL1/new"], ["ls", "/QOPT/PVOL1/"]):
        again = run(*args, library=lib, env=env)  # (the refused open's close removed the log: a lost log now)
        assert again.rc == 7 and "OPV0201" in again.err, again.err
    checked = run("chkoptvol", "PVOL1", library=lib, env=env)
    assert checked.rc == 7 and "DAMAGED  (index)" in checked.text and "records past the end" in checked.text
    assert data.stat().st_size == size  # nothing cut: b.txt's records are still there
    recovered = run("recover", "PVOL1", library=lib, env=env)
    assert recovered.rc == 0, recovered.err
    assert _ls(lib, env) == ["a.txt", "b.txt"]
    assert run("cat", "/QOPT/PVOL1/a.txt", library=lib, env=env).out == A
    assert run("cat", "/QOPT/PVOL1/b.txt", library=lib, env=env).out == B
    assert run("chkoptvol", "PVOL1", library=lib, env=env).rc == 0
    done = run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env)
    assert done.rc == 0, done.err


def test_a_writer_that_opened_while_the_lock_was_held_does_not_cut_a_damaged_logs_commits(lib, env):
    """The open's own cut finds the write lock taken and leaves the tail to the next writer,
    which looks at the log too; so does the close."""
    _killed_writer(lib, "done", env)
    directory = lib / "PVOL1.optvol"
    _damage(directory / "index.sqlite-wal", "flip")
    size = (directory / "data.opv").stat().st_size
    holder = sqlite3.connect(directory / "index.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        volume = Library(lib, clock=lambda: datetime.now(timezone.utc)).open("PVOL1")
        holder.execute("ROLLBACK")
        with pytest.raises(errors.DamagedError, match="OPV0201.*was damaged"):
            volume.write_bytes("/c.txt", b"c")
        volume.close()
    finally:
        holder.close()
    assert (directory / "data.opv").stat().st_size == size
    assert run("recover", "PVOL1", library=lib, env=env).rc == 0
    assert run("cat", "/QOPT/PVOL1/b.txt", library=lib, env=env).out == B


def test_a_sound_log_after_a_kill_loses_nothing(lib, env):
    _killed_writer(lib, "done", env)
    assert _ls(lib, env) == ["a.txt", "b.txt"]
    assert run("cat", "/QOPT/PVOL1/b.txt", library=lib, env=env).out == B
    assert run("chkoptvol", "PVOL1", library=lib, env=env).rc == 0


def test_a_dead_writers_torn_tail_with_a_sound_log_is_cut(lib, env, tmp_path):
    assert _killed_writer(lib, "torn", env) == ""  # b.txt never returned
    data = lib / "PVOL1.optvol" / "data.opv"
    size = data.stat().st_size
    assert _ls(lib, env) == ["a.txt"]
    assert data.stat().st_size < size  # the tail is cut, as before
    assert run("chkoptvol", "PVOL1", library=lib, env=env).rc == 0
    (tmp_path / "new").write_bytes(b"new")
    assert run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env).rc == 0


def test_damage_in_stale_frames_of_a_log_started_over_means_nothing(lib, env, tmp_path):
    assert _killed_writer(lib, "restart", env) == ""
    log, data = lib / "PVOL1.optvol" / "index.sqlite-wal", lib / "PVOL1.optvol" / "data.opv"
    salts, frames = _frames(log)
    assert frames[0][1] == salts and frames[-1][1] != salts  # d.txt's commit, then the frames left from before
    content = bytearray(log.read_bytes())
    content[-100] ^= 0x01  # in a stale frame
    log.write_bytes(bytes(content))
    size = data.stat().st_size
    assert _ls(lib, env) == ["a.txt", *(f"c{n}.txt" for n in range(8)), "d.txt"]
    assert data.stat().st_size < size  # b.txt's torn tail is cut, as before
    assert run("chkoptvol", "PVOL1", library=lib, env=env).rc == 0
    (tmp_path / "new").write_bytes(b"new")
    assert run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env).rc == 0


def test_a_writer_killed_between_a_commit_frames_header_and_page_in_a_log_started_over_leaves_a_volume_that_opens(
        lib, env, tmp_path):
    """hunt25f F1: in a log SQLite started over after a checkpoint, a writer killed between its
    commit frame's header and page leaves that header over a stale frame's, the stale page behind
    it (so it fails its checksum), then more stale frames. That commit never completed: the
    volume opens, its dead writer's tail is cut, as in a log killed so at its end."""
    assert _killed_writer(lib, "restart", env) == ""
    log, data = lib / "PVOL1.optvol" / "index.sqlite-wal", lib / "PVOL1.optvol" / "data.opv"
    salts, frames = _frames(log)
    last = max(i for i, frame in enumerate(frames) if frame[1] == salts)
    assert frames[last][2] != 0 and len(frames) > last + 2  # d.txt's commit, then stale frames
    content = bytearray(log.read_bytes())
    offset = frames[last + 1][0]  # b.txt's commit frame header written there, its page not
    content[offset:offset + 24] = struct.pack(">6I", 2, 12, *salts, 0x12345678, 0x9ABCDEF0)
    log.write_bytes(bytes(content))
    size = data.stat().st_size
    assert _ls(lib, env) == ["a.txt", *(f"c{n}.txt" for n in range(8)), "d.txt"]
    assert data.stat().st_size < size  # b.txt's torn tail is cut
    assert run("chkoptvol", "PVOL1", library=lib, env=env).rc == 0
    (tmp_path / "new").write_bytes(b"new")
    assert run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env).rc == 0


def _log_of(tmp_path, *statements_after_spill: str):
    """A real SQLite log: a commit, a transaction that spills pages into the log and rolls
    back, then ``statements_after_spill``; the log is copied while the connection holds it."""
    db = tmp_path / "x.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA cache_size = 10")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("BEGIN")
    for _ in range(200):
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
    conn.execute("ROLLBACK")
    for statement in statements_after_spill:
        conn.execute(statement)
    copy = tmp_path / "copy-wal"
    copy.write_bytes((tmp_path / "x.sqlite-wal").read_bytes())
    conn.close()
    return copy


def test_pages_a_rolled_back_transaction_spilled_into_the_log_are_no_damage(tmp_path):
    from optvol.image import wal

    log = _log_of(tmp_path, "INSERT INTO t VALUES (1)")
    salts, frames = _frames(log)
    assert len(frames) > 20 and all(found == salts for _, found, _ in frames)  # left past the last commit
    assert wal.damage(log) is None
    content = bytearray(log.read_bytes())
    last_commit = max(offset for offset, _, commit in frames if commit)
    content[last_commit + 24 + 100] ^= 0x01
    log.write_bytes(bytes(content))
    assert wal.damage(log) == "frame 3 fails its checksum"
    content = bytearray(log.read_bytes())
    content[20] ^= 0x01
    log.write_bytes(bytes(content))
    assert wal.damage(log) == "its header fails its checksum"


def test_a_commit_whose_database_size_lost_its_one_bit_is_damage(tmp_path):
    """The last commit frame's database size is a power of two (2**k pages) and its one bit flips:
    the frame reads as no commit, and SQLite drops that commit all the same (rev24i F2)."""
    from optvol.image import wal

    db = tmp_path / "x.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t(x)")
    rows = 0
    while True:
        conn.execute("INSERT INTO t VALUES (?)", (bytes(1500),))
        rows += 1
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        if rows > 3 and pages & (pages - 1) == 0:
            break
    left = tmp_path / "left"
    left.mkdir()
    shutil.copy(db, left)
    shutil.copy(tmp_path / "x.sqlite-wal", left)  # as a writer killed before a checkpoint leaves them
    conn.close()
    log = left / "x.sqlite-wal"
    assert wal.damage(log) is None
    content = bytearray(log.read_bytes())
    page_size = struct.unpack_from(">I", content, 8)[0]
    last = 32 + ((len(content) - 32) // (24 + page_size) - 1) * (24 + page_size)
    size = struct.unpack_from(">I", content, last + 4)[0]
    assert size == pages
    struct.pack_into(">I", content, last + 4, 0)  # its one bit flipped
    log.write_bytes(bytes(content))
    with sqlite3.connect(left / "x.sqlite") as found:
        assert found.execute("SELECT count(*) FROM t").fetchone()[0] == rows - 1  # SQLite dropped the last commit
    assert wal.damage(log) is not None


def test_a_writer_killed_between_its_commit_frames_header_and_page_leaves_a_volume_that_opens(lib, env, tmp_path):
    """hunt25c F1: SQLite writes a log frame's header and its page with two writes; a writer
    killed between them (strace -e inject=pwrite64:signal=SIGKILL) leaves the commit frame's
    header alone at the log's end. That commit never completed, nothing of it was reported
    done: the volume opens (no OPV0201 until recover) and the dead writer's tail is cut."""
    _killed_writer(lib, "done", env)
    log, data = lib / "PVOL1.optvol" / "index.sqlite-wal", lib / "PVOL1.optvol" / "data.opv"
    salts, frames = _frames(log)
    assert frames[-1][1] == salts and frames[-1][2] != 0  # b.txt's commit frame ends the log
    page_size = struct.unpack_from(">I", log.read_bytes(), 8)[0]
    log.write_bytes(log.read_bytes()[:-page_size])  # its page never written
    size = data.stat().st_size
    assert _ls(lib, env) == ["a.txt"]
    assert data.stat().st_size < size
    assert run("chkoptvol", "PVOL1", library=lib, env=env).rc == 0
    (tmp_path / "new").write_bytes(b"new")
    assert run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env).rc == 0


def test_one_flipped_bit_of_a_last_commit_before_stale_frames_keeps_that_commit(lib, env, tmp_path):
    """rev25k F1: a log SQLite started over nearly always has stale frames after its last one,
    so one flipped bit of a last commit's page, in a log a host backup copied while the writer
    ran (no crash anywhere), was taken for a writer killed between SQLite's two writes of that
    frame: the open cut the data partition's tail and a write reported done was gone. A frame
    that holds with one bit changed is damage (OPV0201 until recover)."""
    copy = tmp_path / "copy"
    writer = subprocess.Popen([sys.executable, "-c", CHILD, str(lib), "live"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert writer.stdout.readline() == "done\n"  # b.txt's write returned
        shutil.copytree(lib, copy)  # a host backup taken while the writer runs
    finally:
        writer.communicate("\n", timeout=60)
    assert writer.returncode == 0
    log = copy / "PVOL1.optvol" / "index.sqlite-wal"
    salts, frames = _frames(log)
    offset, _, commit = [f for f in frames if f[1] == salts][-1]
    assert commit != 0 and offset != frames[-1][0]  # b.txt's commit frame, stale frames after it
    content = bytearray(log.read_bytes())
    content[offset + 24 + 100] ^= 0x01
    log.write_bytes(bytes(content))
    refused = run("ls", "/QOPT/PVOL1/", library=copy, env=env)
    assert refused.rc == 7 and "OPV0201" in refused.err and "was damaged" in refused.err, (refused.rc, refused.err)
    assert run("recover", "PVOL1", library=copy, env=env).rc == 0
    assert "b.txt" in run("ls", "/QOPT/PVOL1/", library=copy, env=env).text.split()
    assert run("cat", "/QOPT/PVOL1/b.txt", library=copy, env=env).out == B


KILLED_AS_IT_COMMITS = r"""
import os, sys
from datetime import datetime, timezone
from optvol.image import descriptors
from optvol.library import Library
library, first = sys.argv[1], sys.argv[2] == "first"
directory = os.path.join(library, "PVOL1.optvol")
volume = Library(library, clock=lambda: datetime.now(timezone.utc)).open("PVOL1")
if not first:
    volume.write_bytes("/a.txt", b"A" * 3000)
print(descriptors.read_head(os.path.join(directory, "index.sqlite-shm"), 136).hex(), flush=True)
print(os.path.getsize(os.path.join(directory, "data.opv")), flush=True)
volume.write_bytes("/b.txt", b"B" * 3000)
os.kill(os.getpid(), 9)
"""


def _killed_as_it_committed(library, env, *, first: bool) -> int:
    """A writer killed as it wrote b.txt's commit frame, its page cut short: SQLite writes a
    frame's page with one write, which Linux may end short at a fatal signal, between two
    memory pages (test_faults.py's write_single met it once in a few CI runs). Made here from a
    whole run: the log cut inside its last page, the -shm's header put back as it was before
    that COMMIT (the dead writer never indexed the frame). ``first``: b.txt's commit is the
    log's first (its salts not yet the index's). The data partition's size before it."""
    child = subprocess.run([sys.executable, "-c", KILLED_AS_IT_COMMITS, str(library), "first" if first else "second"],
                           capture_output=True, env=env, timeout=120, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    head, size = child.stdout.split()
    directory = library / "PVOL1.optvol"
    log = directory / "index.sqlite-wal"
    salts, frames = _frames(log)
    assert frames[-1][1] == salts and frames[-1][2] != 0  # b.txt's commit frame ends the log
    with open(directory / "index.sqlite-shm", "r+b") as shared:
        shared.write(bytes.fromhex(head))
    log.write_bytes(log.read_bytes()[:-1000])
    return int(size)


@pytest.mark.parametrize("first", [False, True], ids=["after-a-commit", "first-commit-of-its-log"])
def test_a_writer_killed_as_it_wrote_its_commit_frames_page_leaves_a_volume_that_opens(lib, env, tmp_path, first):
    """Nothing of that commit was reported done: the volume opens (it said OPV0201 until recover,
    taking the frame for damage to a commit reported done) and the dead writer's tail is cut."""
    size = _killed_as_it_committed(lib, env, first=first)
    data = lib / "PVOL1.optvol" / "data.opv"
    assert data.stat().st_size > size  # b.txt's records, past the index's end
    listed = run("ls", "/QOPT/PVOL1/", library=lib, env=env)
    assert listed.rc == 0, listed.err
    assert listed.text.split() == ([] if first else ["a.txt"])
    assert data.stat().st_size == size  # its tail cut
    if not first:
        assert run("cat", "/QOPT/PVOL1/a.txt", library=lib, env=env).out == A
    assert run("chkoptvol", "PVOL1", library=lib, env=env).rc == 0
    (tmp_path / "new").write_bytes(b"new")
    assert run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env).rc == 0


def test_a_cut_log_whose_index_sqlite_rebuilt_still_keeps_the_commits_it_lost(lib, env):
    """The first connection after the writer died rebuilds the -shm from the log, which ends
    before the damaged frame: such an index (its checkpoint mark at its end, no commit since)
    says nothing of which commits were reported done, even when that connection died too
    before it could remove the log."""
    _killed_writer(lib, "done", env)  # a.txt and b.txt reported done
    directory = lib / "PVOL1.optvol"
    _damage(directory / "index.sqlite-wal", "cut")
    rebuilt = subprocess.run([sys.executable, "-c", (
        "import os, sqlite3, sys\n"
        "index = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "print(index.execute('SELECT count(*) FROM sqlite_master').fetchone()[0] > 0, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"), str(directory / "index.sqlite")], capture_output=True, env=env, text=True,
        timeout=60)
    assert rebuilt.returncode == -signal.SIGKILL and rebuilt.stdout == "True\n", rebuilt.stderr
    shared = (directory / "index.sqlite-shm").read_bytes()
    indexed, attempted = struct.unpack_from("=I", shared, 16)[0], struct.unpack_from("=I", shared, 128)[0]
    assert 0 < indexed == attempted  # rebuilt: a.txt's commit, the last one before the cut frame
    size = (directory / "data.opv").stat().st_size
    refused = run("cat", "/QOPT/PVOL1/a.txt", library=lib, env=env)
    assert refused.rc == 7 and "OPV0201" in refused.err and "was damaged" in refused.err, refused.err
    assert (directory / "data.opv").stat().st_size == size
    assert run("recover", "PVOL1", library=lib, env=env).rc == 0
    assert run("cat", "/QOPT/PVOL1/b.txt", library=lib, env=env).out == B


@pytest.mark.parametrize("where", [12, 16, 40, 60])
def test_a_shm_header_not_whole_says_nothing(lib, env, where):
    """wal.look takes an index's word only when both copies of its header agree and its
    checksum holds (one changed byte: of isInit, mxFrame, the checksum, the second copy)."""
    from optvol.image import wal

    _killed_writer(lib, "done", env)
    directory = lib / "PVOL1.optvol"
    log = directory / "index.sqlite-wal"
    found = wal.look(log)
    assert found is not None and found.indexed == len(_frames(log)[1])  # every frame: two commits reported done
    shared = bytearray((directory / "index.sqlite-shm").read_bytes())
    shared[where] ^= 0x04
    (directory / "index.sqlite-shm").write_bytes(bytes(shared))
    assert wal.look(log) is None


def test_an_open_that_brings_the_index_forward_keeps_a_damaged_logs_lost_commits(lib, env, monkeypatch):
    """An older index is brought forward and the open starts again; the upgrade's close lets
    SQLite checkpoint and remove the log, so the next try found no log to read, took the tail
    for a dead writer's and cut it: b.txt, reported done, was gone. The damage found before
    the upgrade goes with the next try (as a lost log)."""
    from optvol.image import schema

    _killed_writer(lib, "done", env)
    directory = lib / "PVOL1.optvol"
    _damage(directory / "index.sqlite-wal", "flip")
    size = (directory / "data.opv").stat().st_size
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)  # the index is one behind
    monkeypatch.setitem(schema.MIGRATIONS, schema.SCHEMA_VERSION - 1, lambda conn: None)
    library = Library(lib, clock=lambda: datetime.now(timezone.utc))
    with pytest.raises(errors.DamagedError, match="OPV0201"):
        library.open("PVOL1")
    assert not (directory / "index.sqlite-wal").exists()  # (the upgrade's close removed it)
    assert (directory / "data.opv").stat().st_size == size  # nothing cut
    from optvol.recovery import recover

    recover(library, vol="PVOL1")  # (in this process: the patched schema is the one it builds)
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/b.txt") == B


OTHER_OPEN_FIRST = r"""
import subprocess, sys
from optvol.image import image
library = sys.argv[1]
connect = image.VolumeImage._open_index
def another_open_first(self, path, **kwargs):  # between this open's look at the log and its SQLite's connect
    image.VolumeImage._open_index = connect
    other = subprocess.run([sys.executable, "-m", "optvol", "--library", library, "ls", "/QOPT/PVOL1/"],
                           capture_output=True, text=True)
    print("other:", other.returncode, other.stderr.strip(), file=sys.stderr, flush=True)
    return connect(self, path, **kwargs)
image.VolumeImage._open_index = another_open_first
sys.argv = ["optvol", "--library", library, "ls", "/QOPT/PVOL1/"]
from optvol.__main__ import run
sys.exit(run())
"""


def test_a_damaged_log_another_open_removed_after_this_open_looked_at_it_keeps_the_commits_it_lost(lib, env):
    """Two commands opened at once (rev32a F1): the other one, first to connect, refuses (the log
    is damaged) and, closing as the last connection, lets SQLite remove the log, after this open
    saw it there and before its SQLite connected (to a new, empty log): b.txt's records were
    cut as a dead writer's, a write reported done gone for good. Now that index came without
    its log, as if the open had found none."""
    _killed_writer(lib, "done", env)
    directory = lib / "PVOL1.optvol"
    _damage(directory / "index.sqlite-wal", "flip")
    size = (directory / "data.opv").stat().st_size
    opened = subprocess.run([sys.executable, "-c", OTHER_OPEN_FIRST, str(lib)], capture_output=True, env=env,
                            text=True, timeout=120)
    assert "other: 7 optvol: OPV0201" in opened.stderr and "was damaged" in opened.stderr, opened.stderr
    assert opened.returncode == 7 and "came without its log" in opened.stderr, (opened.returncode, opened.stderr)
    assert (directory / "data.opv").stat().st_size == size  # b.txt's records kept
    assert run("recover", "PVOL1", library=lib, env=env).rc == 0
    assert run("cat", "/QOPT/PVOL1/b.txt", library=lib, env=env).out == B


def test_a_shm_header_another_connection_is_rebuilding_says_nothing(lib, env):
    """SQLite's recovery writes the rebuilt -shm header (mxFrame: the last commit before the
    damaged frame) and only then sets nBackfillAttempted to it, holding its write lock
    throughout: an open that read the -shm in between (race_look.py of rev32a caught it twice
    in 30,000 rebuilds) took the rebuilt header for a dead writer's, every frame past it for
    that writer's, and cut b.txt's records, a write reported done (rev32a F2). Made here from
    a connection that rebuilt it and holds the write lock, nBackfillAttempted put back to what
    a fresh -shm has: the -shm is taken at its word only while no other process holds one of
    its locks exclusively."""
    from optvol.image import wal

    _killed_writer(lib, "done", env)
    directory = lib / "PVOL1.optvol"
    log = directory / "index.sqlite-wal"
    _damage(log, "flip")
    rebuilder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys\n"
        "index = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "index.execute('BEGIN IMMEDIATE')\n"
        "print(index.execute('SELECT count(*) FROM sqlite_master').fetchone()[0] > 0, flush=True)\n"
        "sys.stdin.readline()\n"), str(directory / "index.sqlite")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env=env, text=True)
    try:
        assert rebuilder.stdout.readline() == "True\n"
        with open(directory / "index.sqlite-shm", "r+b") as shared:
            head = bytearray(shared.read(136))
            indexed = struct.unpack_from("=I", head, 16)[0]
            assert 0 < indexed == struct.unpack_from("=I", head, 128)[0] < len(_frames(log)[1])  # rebuilt, short
            shared.seek(128)
            shared.write(bytes(4))  # as between walIndexWriteHdr and the nBackfillAttempted store
        found = wal.look(log)
        damaged, last = wal.damage(log, before=found), len(_frames(log)[1])
    finally:
        rebuilder.communicate("\n", timeout=60)  # (its close removes the log)
    assert found is None  # (it was a writer's, indexing a.txt's commit: b.txt's damaged frame past it, exempted)
    assert damaged == f"frame {last} fails its checksum"


def test_a_writer_killed_as_it_committed_while_another_process_kept_the_index_open_leaves_a_volume_that_opens(
        lib, env):
    """The -shm of a reader that outlived the dead writer (its connection idle) is as that writer
    left it: its tail is cut (each open found the -shm in use and refused, OPV0201, in the first
    take of rev32a F2's fix)."""
    reader = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys\n"
        "index = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "print(index.execute('PRAGMA journal_mode').fetchone()[0], flush=True)\n"
        "sys.stdin.readline()\n"), str(lib / "PVOL1.optvol" / "index.sqlite")], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert reader.stdout.readline() == "wal\n"
        size = _killed_as_it_committed(lib, env, first=False)
        listed = run("ls", "/QOPT/PVOL1/", library=lib, env=env)
    finally:
        reader.communicate("\n", timeout=60)
    assert listed.rc == 0 and listed.text.split() == ["a.txt"], (listed.rc, listed.err)
    assert (lib / "PVOL1.optvol" / "data.opv").stat().st_size == size


KEPT_OPEN = r"""
import os, sys
from datetime import datetime, timezone
from optvol import errors
from optvol.library import Library
library = sys.argv[1]
directory = os.path.join(library, "PVOL1.optvol")
log = os.path.join(directory, "index.sqlite-wal")
volume = Library(library, clock=lambda: datetime.now(timezone.utc)).open("PVOL1")  # cuts the dead writer's tail
at = os.path.getsize(log)
volume.write_bytes("/c.txt", b"C" * 3000)
print("c.txt written", flush=True)
with open(log, "r+b") as frames:  # one bit of c.txt's first frame's page flips (media damage)
    frames.seek(at + 24 + 100)
    flipped = frames.read(1)[0] ^ 0x01
    frames.seek(at + 24 + 100)
    frames.write(bytes([flipped]))
with open(os.path.join(directory, "index.sqlite-shm"), "r+b") as shared:  # and the -shm's second header copy:
    shared.seek(48 + 24)  # SQLite rebuilds the -shm from the log, under this open, and drops c.txt's commit
    changed = shared.read(1)[0] ^ 0x01
    shared.seek(48 + 24)
    shared.write(bytes([changed]))
try:
    volume.write_bytes("/d.txt", b"D" * 3000)
    print("d.txt written", flush=True)
except errors.OptvolError as exc:
    print(exc.message_id, flush=True)
volume.close()
"""


def test_an_open_kept_open_takes_its_look_at_the_shm_for_its_own_cut_alone(lib, env):
    """What the -shm said before this process's SQLite connected tells a dead writer's frame
    from a commit reported done only at that moment: a program that keeps the volume open
    makes commits past it, reported done. One of them (c.txt) damaged and the -shm rebuilt
    under that open (its header not whole), a later write's tail check took its frame for
    the dead writer's and cut c.txt's records (rev32a F4); now refused (OPV0201), recover
    brings c.txt back."""
    size = _killed_as_it_committed(lib, env, first=False)
    kept = subprocess.run([sys.executable, "-c", KEPT_OPEN, str(lib)], capture_output=True, env=env, text=True,
                          timeout=120)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.split("\n")[:2] == ["c.txt written", "OPV0201"], kept.stdout
    directory = lib / "PVOL1.optvol"
    assert (directory / "data.opv").stat().st_size > size  # c.txt's records kept
    assert run("recover", "PVOL1", library=lib, env=env).rc == 0
    assert run("cat", "/QOPT/PVOL1/c.txt", library=lib, env=env).out == b"C" * 3000


OLDER_WRITER = r"""
import os, sys
from datetime import datetime, timezone
from optvol.image import schema
schema.SCHEMA_VERSION = 4  # an optvol of index schema 4
from optvol.library import Library
volume = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open("PVOL1")
volume.write_bytes("/a.txt", b"A" * 3000)
volume.write_bytes("/b.txt", b"B" * 3000)
print("done", flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_damaged_log_of_an_older_index_keeps_the_commits_it_lost_through_the_upgrade(lib, env):
    """An older optvol's writer reports a.txt and b.txt done and is killed; b.txt's commit frame
    is damaged. The open that brings the index forward wrote the upgrade over that frame and,
    closing its connection to open anew, let SQLite remove the log: the next try found no
    damage and cut b.txt's records (rev32a F5). The log is judged before the upgrade now."""
    index = lib / "PVOL1.optvol" / "index.sqlite"
    conn = sqlite3.connect(index)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("UPDATE meta SET value = 4 WHERE key = 'schema_version'")
    conn.execute("DROP INDEX IF EXISTS controls_request")  # (schema 5's)
    conn.commit()
    conn.close()
    child = subprocess.run([sys.executable, "-c", OLDER_WRITER, str(lib)], capture_output=True, env=env, text=True,
                           timeout=120)
    assert child.returncode == -signal.SIGKILL and child.stdout == "done\n", child.stderr
    _damage(lib / "PVOL1.optvol" / "index.sqlite-wal", "flip")
    size = (lib / "PVOL1.optvol" / "data.opv").stat().st_size
    refused = run("ls", "/QOPT/PVOL1/", library=lib, env=env)
    assert refused.rc == 7 and "OPV0201" in refused.err, (refused.rc, refused.err)
    assert (lib / "PVOL1.optvol" / "data.opv").stat().st_size == size
    assert run("recover", "PVOL1", library=lib, env=env).rc == 0
    assert run("cat", "/QOPT/PVOL1/b.txt", library=lib, env=env).out == B


KILLED_AFTER_ITS_OWN_RESTART = r"""
import os, sys
from datetime import datetime, timezone
from optvol.image import descriptors
from optvol.library import Library
library = sys.argv[1]
directory = os.path.join(library, "PVOL1.optvol")
volume = Library(library, clock=lambda: datetime.now(timezone.utc)).open("PVOL1")
volume.write_bytes("/a.txt", b"A" * 3000)
# its own connection checkpoints and starts the log over (as its wal_autocheckpoint does, at 1000 pages)
assert volume.image.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
print(descriptors.read_head(os.path.join(directory, "index.sqlite-shm"), 136).hex(), flush=True)
print(os.path.getsize(os.path.join(directory, "data.opv")), flush=True)
volume.write_bytes("/b.txt", b"B" * 3000)
os.kill(os.getpid(), 9)
"""


def test_a_writer_killed_as_it_wrote_the_first_commit_of_a_log_it_started_over_leaves_a_volume_that_opens(lib, env):
    """The log started over by the writer's own connection (rev32a F3): its -shm has the log's
    new salts and no frame, as a rebuild of a log whose first frame fails has, and the open
    refused (OPV0201) until recover. SQLite's restart keeps the last frame's checksum in the
    header, a rebuild that found no commit has zeros there: the dead writer's tail is cut."""
    child = subprocess.run([sys.executable, "-c", KILLED_AFTER_ITS_OWN_RESTART, str(lib)], capture_output=True,
                           env=env, timeout=120, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    head, size = child.stdout.split()
    directory = lib / "PVOL1.optvol"
    log = directory / "index.sqlite-wal"
    salts, frames = _frames(log)
    shared = bytes.fromhex(head)
    assert shared[32:40] == struct.pack(">2I", *salts) and struct.unpack_from("=I", shared, 16)[0] == 0
    assert frames[-1][1] == salts and frames[-1][2] != 0  # b.txt's commit frame ends the log
    with open(directory / "index.sqlite-shm", "r+b") as index:
        index.write(shared)  # (the dead writer never indexed b.txt's commit)
    log.write_bytes(log.read_bytes()[:-1000])  # its commit frame cut short
    listed = run("ls", "/QOPT/PVOL1/", library=lib, env=env)
    assert listed.rc == 0 and listed.text.split() == ["a.txt"], (listed.rc, listed.err)
    assert (directory / "data.opv").stat().st_size == int(size)
