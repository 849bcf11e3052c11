"""A library on a read-only file system (a write-protected disk, a mounted snapshot).

Every reading command works there: listing, displaying, reading files, CHKOPTVOL, export.
Every writing command fails with OPV0010 (exit 5), never a traceback, and changes nothing.
The library lives on a real tmpfs remounted read-only, so this needs the right to mount
(root, as on the project's CI machines); without it the tests are skipped.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import make_volume
from integrity_helpers import content, downgrade_to_schema_3, read_only_bind, remount, run_cli, tmpfs
from optvol import copy_select, errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.image import descriptors
from optvol.library import Library
from optvol.model import MediaType, VolumeType

FILES = {"/D/A.TXT": content("/D/A.TXT", 1500), "/D/E/B.BIN": content("/D/E/B.BIN", 400_000), "/TOP": b"top"}
SRC = Path(__file__).resolve().parent.parent / "src"


def clock() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def mount(tmp_path):
    with tmpfs(tmp_path / "mnt", "32m") as point:
        yield point


@pytest.fixture
def frozen(mount):
    """A library with a primary and its backup, on a file system then made read-only."""
    root = mount / "lib"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    make_volume(library, "PVOL2")
    with library.open("PVOL1") as volume:
        for path, data in FILES.items():
            volume.mkdir(path.rsplit("/", 1)[0] or "/", parents=True, exist_ok=True)
            volume.write_bytes(path, data)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    assert cpyopt(library, request, now=clock()).failures == []
    before = _snapshot(root)
    remount(mount, read_only=True)
    return root, before


def _snapshot(root: Path) -> dict[str, str]:
    """Every file of the library and the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_reading_command_works(frozen, tmp_path):
    root, _ = frozen
    listed = run_cli(root, "wrkoptvol", json_output=True)
    assert listed.rc == 0, listed.err
    assert sorted(v["volume"] for v in listed.json()) == ["BVOL1", "PVOL1", "PVOL2"]
    assert run_cli(root, "dspopt", "PVOL1").rc == 0
    history = run_cli(root, "dspopt", "BVOL1", "--data", "*BKUHST", json_output=True)
    assert history.rc == 0 and history.out, history.err
    for path, data in FILES.items():
        shown = run_cli(root, "cat", f"/QOPT/PVOL1{path}")
        assert shown.rc == 0 and shown.out == data, shown.err
    assert "A.TXT" in run_cli(root, "ls", "-l", "/QOPT/PVOL1/D").out.decode()
    assert run_cli(root, "wrkoptf", "PVOL1", "/D").rc == 0
    host = tmp_path / "host"
    copied = run_cli(root, "cp", "-r", "/QOPT/PVOL1/D", host)
    assert copied.rc == 0, copied.err
    assert (host / "E" / "B.BIN").read_bytes() == FILES["/D/E/B.BIN"]
    checks = {r.volume: r for r in chkoptvol(Library(root, clock=clock), vol="*ALL")}
    assert {v: (r.damaged, r.files_checked) for v, r in checks.items()} == {
        "PVOL1": ([], 3), "BVOL1": ([], 3), "PVOL2": ([], 0)}
    exported = run_cli(root, "export-iso", "PVOL1", tmp_path / "out.iso")
    assert exported.rc == 0 and (tmp_path / "out.iso").stat().st_size > 0, exported.err
    with Library(root, clock=clock).open("PVOL1") as volume:
        assert volume.image.read_only
        assert volume.read_bytes("/TOP") == b"top"


WRITES = [
    ("cp", "{host}", "/QOPT/PVOL1/NEW"),
    ("mkdir", "/QOPT/PVOL1/NEWDIR"),
    ("rm", "/QOPT/PVOL1/TOP"),
    ("mv", "/QOPT/PVOL1/TOP", "/QOPT/PVOL1/MOVED"),
    ("mv", "/QOPT/PVOL1/TOP", "{out}"),  # refused before the copy: no host file is left (hunt of session 18)
    ("chattr", "/QOPT/PVOL1/TOP", "--readonly", "yes"),
    ("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES"),
    ("cpyopt", "PVOL1", "/D", "PVOL2", "--cpysubdir", "*YES"),
    ("chgoptvol", "PVOL1", "--text", "new text"),
    ("inzopt", "NEW1"),
    ("dupopt", "PVOL1", "DUP1"),
    ("cvtoptbku", "BVOL1", "--privol", "PVOL9"),
    ("recover", "PVOL1"),
    ("import-iso", "{iso}"),
    ("cl", "CRTDIR DIR('/QOPT/PVOL1/CLDIR')"),
]


@pytest.mark.parametrize("command", WRITES, ids=lambda c: " ".join(c[:2]))
def test_every_writing_command_is_refused_and_changes_nothing(frozen, tmp_path, command):
    root, before = frozen
    host = tmp_path / "host.txt"
    host.write_bytes(b"host file")
    iso = tmp_path / "in.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "DISC1", "-o", str(iso), str(host)], check=True)
    args = [a.format(host=host, iso=iso, out=tmp_path / "out") for a in command]
    result = run_cli(root, *args)
    assert result.rc == 5 and not (tmp_path / "out").exists(), result.err
    assert result.err.startswith("optvol: OPV0010: ") and "read-only file system" in result.err
    assert "Traceback" not in result.err
    assert _snapshot(root) == before


def test_the_api_refuses_writes_with_the_same_error(frozen):
    root, before = frozen
    with Library(root, clock=clock).open("PVOL1") as volume:
        with pytest.raises(errors.NotAllowedError) as caught:
            volume.write_bytes("/NEW", b"new")
        assert caught.value.message_id == "OPV0010" and caught.value.exit_code == 5
        with pytest.raises(errors.NotAllowedError):
            with volume.open("/NEW2", "wb") as handle:
                handle.write(b"new")
        for mode in ("wb", "a"):  # refused when opened: past 8 MiB a writer spools to the volume's directory
            with pytest.raises(errors.NotAllowedError) as caught:
                with volume.open("/TOP", mode) as handle:
                    handle.write(b"x" * (9 << 20) if mode == "wb" else "x" * (9 << 20))
            assert caught.value.message_id == "OPV0010"
    assert _snapshot(root) == before


def test_commits_left_in_the_log_by_a_killed_writer_are_read(mount):
    """A writer killed before SQLite folded its log into the index leaves index.sqlite-wal
    and -shm: on the read-only file system the committed file is still there."""
    root = mount / "lib"
    make_volume(Library(root, clock=clock), "PVOL1")
    script = ("import os, signal, sys; from datetime import datetime, timezone; from optvol.library import Library;"
              " v = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open('PVOL1');"
              " v.write_bytes('/LATE', b'committed, then killed'); os.kill(os.getpid(), signal.SIGKILL)")
    killed = subprocess.run([sys.executable, "-c", script, str(root)], env={**os.environ, "PYTHONPATH": str(SRC)})
    assert killed.returncode == -signal.SIGKILL
    image = root / "PVOL1.optvol"
    assert (image / "index.sqlite-wal").stat().st_size > 0 and (image / "index.sqlite-shm").exists()
    remount(mount, read_only=True)
    shown = run_cli(root, "cat", "/QOPT/PVOL1/LATE")
    assert shown.rc == 0 and shown.out == b"committed, then killed", shown.err
    # Without the shared-memory file SQLite cannot read the log there: said, not "damaged".
    remount(mount, read_only=False)
    (image / "index.sqlite-shm").unlink()
    remount(mount, read_only=True)
    refused = run_cli(root, "cat", "/QOPT/PVOL1/LATE")
    assert refused.rc == 5 and "OPV0010" in refused.err and "index.sqlite-wal" in refused.err, refused.err
    # Writable again: the log is folded in as usual.
    remount(mount, read_only=False)
    assert run_cli(root, "cat", "/QOPT/PVOL1/LATE").out == b"committed, then killed"


def test_a_private_copy_that_does_not_fit_names_the_temporary_directory(mount, tmp_path, monkeypatch):
    """rev30i F5: a $TMPDIR with some room, but not enough for the index and its log, said
    only "cannot be copied to read it": the library was blamed, not where the copy goes."""
    root = mount / "lib"
    make_volume(Library(root, clock=clock), "PVOL1")
    script = ("import os, signal, sys; from datetime import datetime, timezone; from optvol.library import Library;"
              " v = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open('PVOL1');"
              " v.write_bytes('/LATE', b'committed, then killed'); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", script, str(root)], env={**os.environ, "PYTHONPATH": str(SRC)})
    remount(mount, read_only=True)
    with tmpfs(tmp_path / "small", "8k") as small:
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        refused = run_cli(root, "cat", "/QOPT/PVOL1/LATE")
        assert refused.rc == 2 and "OPV0006" in refused.err and f"{small} ($TMPDIR)" in refused.err, refused.err
        assert list(small.iterdir()) == []  # no partial copy left
        monkeypatch.setattr(tempfile, "tempdir", None)
    assert run_cli(root, "cat", "/QOPT/PVOL1/LATE").out == b"committed, then killed"


def test_an_index_of_an_older_schema_is_read_through_a_copy_brought_forward(mount):
    """An index of schema 3 cannot be migrated where it lies: this process reads a private
    copy migrated for it alone (as a user who may only read does), and the image stays as
    it was. Once writable, the next open migrates it in place."""
    root = mount / "lib"
    make_volume(Library(root, clock=clock), "DVD1", medtype=MediaType.DVD_RAM)
    with Library(root, clock=clock).open("DVD1") as volume:
        volume.write_bytes("/straße.txt", b"written under schema 3")
    index = root / "DVD1.optvol" / "index.sqlite"
    downgrade_to_schema_3(index)
    before = _snapshot(root)
    remount(mount, read_only=True)
    for path in ("/QOPT/DVD1/straße.txt", "/QOPT/DVD1/STRAßE.TXT"):
        shown = run_cli(root, "cat", path)
        assert shown.rc == 0 and shown.out == b"written under schema 3", (path, shown.err)
    assert run_cli(root, "cat", "/QOPT/DVD1/STRASSE.TXT").rc == 3  # another name under schema 4
    assert run_cli(root, "chkoptvol", "DVD1").rc == 0
    refused = run_cli(root, "rm", "/QOPT/DVD1/straße.txt")
    assert refused.rc == 5 and "OPV0010" in refused.err
    assert _snapshot(root) == before
    remount(mount, read_only=False)
    assert run_cli(root, "cat", "/QOPT/DVD1/STRAßE.TXT").rc == 0
    conn = sqlite3.connect(index)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (5,)
    conn.close()


def test_a_damaged_index_on_a_read_only_file_system_is_damaged(mount):
    """Not "can only be read by this user": the directory is not writable on a read-only
    file system, but the index is damaged, and CHKOPTVOL says so (review of session 18)."""
    root = mount / "lib"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    (root / "PVOL1.optvol" / "index.sqlite").write_bytes(os.urandom(49152))
    remount(mount, read_only=True)
    result = run_cli(root, "chkoptvol", "PVOL1")
    assert result.rc == 7 and "OPV0206" in result.err and "not a database" in result.out.decode(), result.err
    assert run_cli(root, "ls", "/QOPT/PVOL1/").rc == 7


def test_a_reader_through_a_read_only_view_stops_at_a_change_made_elsewhere(tmp_path):
    """hunt-fs F2 of session 19: a read-only bind mount of a library that a process writes
    through its own path (a container's read-only volume, a read-only export). SQLite reads
    the index there as immutable, so a reader went on with pages the writer's checkpoints
    had changed under it: it listed files it then could not find (CPF1F22), never saw new
    ones, and a checkpoint in the middle of a query could tear what it read. The first
    read after such a change is OPV0004 (in use): opened again, it reads the new state."""
    root, view = tmp_path / "lib", tmp_path / "view"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        for n in range(40):
            volume.write_bytes(f"/D/F{n}", content(f"/D/F{n}", 100 + n))
    with read_only_bind(root, view):
        with Library(view, clock=clock).open("PVOL1") as reader, copy_select.Selection(reader, reader) as selection:
            assert len(list(reader.iter_files("/D"))) == 40
            assert reader.read_bytes("/D/F7") == content("/D/F7", 107)
            count = "SELECT count(*) FROM files WHERE live = 1"
            assert selection.conn.execute(count).fetchone() == (40,)  # CPYOPT's reading connection
            with library.open("PVOL1") as writer:  # closed, it folds its log into the index
                for n in range(20):
                    writer.remove(f"/D/F{n}")
                writer.write_bytes("/D/NEW", b"new")
            for read in (lambda: reader.read_bytes("/D/NEW"), lambda: list(reader.iter_files("/D")),
                         lambda: reader.stat("/D/F30"), lambda: selection.conn.execute(count).fetchone()):
                with pytest.raises(errors.OptvolError) as changed:
                    read()
                assert changed.value.message_id == "OPV0004", changed.value
        with Library(view, clock=clock).open("PVOL1") as again:
            assert again.read_bytes("/D/NEW") == b"new" and len(list(again.iter_files("/D"))) == 21
        listed = run_cli(view, "ls", "/QOPT/PVOL1/D")
        assert listed.rc == 0 and "NEW" in listed.out.decode() and "F3\n" not in listed.out.decode(), listed.err


def test_a_journal_left_on_a_read_only_library_does_not_stop_its_readers(mount):
    """Review s22c F2: a library made read-only with the journal of an operation a process
    died in (a volume built aside, its rename into place not done) could not be read at all:
    every command, WRKOPTVOL too, tried to complete the journal and said the library could
    not be changed. It is read as it stands; once writable, the next command completes it."""
    root = mount / "lib"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    make_volume(library, "PVOL2")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/KEPT", b"kept")
    staged = ".tmp/new-0123456789abcdef0123456789abcdef"
    os.rename(root / "PVOL2.optvol", root / staged)  # built aside; the process died before its rename
    (root / ".journal.json").write_text('{"renames": [["%s", "PVOL2.optvol"]]}' % staged)
    remount(mount, read_only=True)
    listed = run_cli(root, "wrkoptvol")
    assert listed.rc == 0 and "PVOL1" in listed.out.decode() and "PVOL2" not in listed.out.decode(), listed.err
    assert run_cli(root, "cat", "/QOPT/PVOL1/KEPT").out == b"kept"
    remount(mount, read_only=False)
    again = run_cli(root, "wrkoptvol")
    assert again.rc == 0 and "PVOL2" in again.out.decode(), again.err
    assert not (root / ".journal.json").exists()


def _locks_held_on(path: Path) -> list[str]:
    inode = os.stat(path).st_ino
    return [line.split()[1:] for line in Path("/proc/locks").read_text().splitlines()
            if f":{inode} " in line and f" {os.getpid()} " in line]


@pytest.mark.parametrize("logged", [True, False], ids=["log-in-use", "log-empty"])
def test_a_read_only_view_in_the_writing_process_keeps_its_sqlite_locks(tmp_path, logged):
    """rev29g F2: a program with a volume open through the library's writable path opened the
    same volume through a read-only bind mount; the view's own descriptor of index.sqlite,
    closed, dropped every POSIX lock the process held on it (SQLite's), so another process's
    close removed the log under the writer, whose next write failed with OPV0004."""
    root, view = tmp_path / "lib", tmp_path / "view"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    index = root / "PVOL1.optvol" / "index.sqlite"
    with read_only_bind(root, view):
        writer = library.open("PVOL1")
        if logged:
            writer.write_bytes("/A", b"a" * 3000)
        else:
            writer.listdir("/")
        held, found = _locks_held_on(index), os.stat(index)
        writers = len(descriptors.descriptors_of((found.st_dev, found.st_ino)))
        assert held and writers
        kept = []
        for _ in range(3):  # a view's descriptors kept are used again, not more each time
            with Library(view, clock=clock).open("PVOL1") as reader:
                assert reader.listdir("/") == (["A"] if logged else [])
            assert _locks_held_on(index) == held
            kept.append(len(descriptors.descriptors_of((found.st_dev, found.st_ino))) - writers)
        assert 0 < kept[0] <= 2 and kept == kept[:1] * 3, kept
        other = subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
                                " c.execute('SELECT count(*) FROM files').fetchall(); c.close()", str(index)],
                               capture_output=True, text=True)
        assert other.returncode == 0, other.stderr
        wrote = subprocess.run([sys.executable, "-c", "import sys; from optvol import open_library\n"
                                "with open_library(sys.argv[1]).open('PVOL1') as v: v.write_bytes('/C', b'c' * 3000)",
                                str(root)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
        assert wrote.returncode == 0, wrote.stderr
        writer.write_bytes("/B", b"b" * 3000)
        writer.close()
        inode = os.stat(index)
        assert descriptors.descriptors_of((inode.st_dev, inode.st_ino)) == []  # the view's descriptor closed too
        assert [r.damaged for r in chkoptvol(library, vol="PVOL1")] == [[]]
        with library.open("PVOL1") as volume:
            assert {n: volume.read_bytes("/" + n) for n in volume.listdir("/")} == (
                {"B": b"b" * 3000, "C": b"c" * 3000} | ({"A": b"a" * 3000} if logged else {}))
