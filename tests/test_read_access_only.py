"""A user who may read a library but not write it (an auditor's account, say) reads it all.

The reader is real: a child forked from the test and turned into the user ``nobody``
(which needs root, as on the project's CI machines; elsewhere these tests are skipped:
what they check cannot be made otherwise), so the host's own permission checks refuse it
every write. It cannot write a volume's lock, nor the shared-memory file SQLite needs
beside a WAL index: optvol opens the lock for reading and reads a private copy of the
index (``image.py``), while the owner may be writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import make_volume
from integrity_helpers import content
from optvol import errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.display import volumes
from optvol.image import image as image_mod
from optvol.interchange import export_iso
from optvol.library import Library
from optvol.model import VolumeType

NOBODY = 65534
SRC = Path(__file__).resolve().parent.parent / "src"
GOLDEN = Path(__file__).resolve().parent / "golden" / "v1" / "GOLDEN1.optvol"
FILES = {f"/D{d}/F{i:03}": 100 + 37 * i + d for d in range(3) for i in range(40)} | {"/TOP": 300_000}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="becoming another user needs root")

# The reader may not be able to read Python's own library (a Python installed under /root):
# what it would import late is imported now, before the fork.
for codec in ("utf-16-be", "latin-1", "ascii"):
    "".encode(codec)
import ctypes  # noqa: E402, F401 - the CPYOPT read-ahead child's (copy_readahead._die_with)


def clock() -> datetime:
    return datetime.now(timezone.utc)


def as_reader(task, *args, tmp: Path):
    """``task(*args)`` in a child forked from this process and turned into the user nobody,
    with ``tmp`` as its temporary directory: what it returned (through JSON), or the test
    fails with the child's traceback."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            tempfile.tempdir = str(tmp)  # where the private copies of the indexes go
            outcome = {"value": task(*args)}
        except BaseException:  # noqa: BLE001 - everything goes back to the test
            outcome = {"trace": traceback.format_exc()}
        with os.fdopen(write_end, "w") as out:
            json.dump(outcome, out, default=str)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as found:
        outcome = json.loads(found.read() or '{"trace": "the reader died"}')
    os.waitpid(pid, 0)
    if "trace" in outcome:
        pytest.fail(f"the reader failed:\n{outcome['trace']}")
    return outcome["value"]


@pytest.fixture
def shared():
    """A directory everybody may enter and read (a test's tmp_path is its owner's alone),
    with a scratch directory and a temporary directory in it that nobody may write."""
    root = Path(tempfile.mkdtemp(prefix="optvol-shared-", dir="/tmp"))
    root.chmod(0o755)
    for name in ("scratch", "tmp"):
        (root / name).mkdir()
        os.chown(root / name, NOBODY, NOBODY)
    yield root
    shutil.rmtree(root)


def _fill(root: Path) -> Library:
    library = Library(root / "lib", clock=clock)
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume, volume.batch():
        for path, size in FILES.items():
            volume.mkdir(path.rsplit("/", 1)[0] or "/", parents=True, exist_ok=True)
            volume.write_bytes(path, content(path, size))
    with library.open("PVOL1") as volume:
        volume.write_bytes("/TOP", content("/TOP", 1000, "v2"))  # a second version
        volume.set_attributes("/D1/F001", hidden=True)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    assert cpyopt(library, request, now=clock()).failures == []
    return library


def _files_of(root: Path) -> dict[str, str]:
    """Every file of the library and its SHA-256: what no reader may change."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_everything(root: str, scratch: str) -> dict:
    """What a reader does: list, display, read every byte, check, export; then try to write."""
    library = Library(root, clock=clock)
    listed = sorted(info.volume for info, _ in volumes(library))
    seen = {}
    with library.open("PVOL1") as volume:
        for info in volume.iter_files("/", recursive=True):
            seen[info.path] = (hashlib.sha256(volume.read_bytes(info.path)).hexdigest(), info.hidden)
        versions = len(volume.versions("/TOP"))
    checked = [(r.volume, r.files_checked, len(r.damaged)) for r in chkoptvol(library, vol="*ALL")]
    exported = export_iso(library, vol="PVOL1", file=Path(scratch) / "p.iso", now=clock()).files
    refused = []
    for attempt in (lambda v: v.write_bytes("/NEW", b"x"), lambda v: v.mkdir("/NEWDIR"),
                    lambda v: v.set_attributes("/TOP", read_only=True), lambda v: v.remove("/TOP"),
                    lambda v: v.open("/BIG", "wb").write(b"x" * (9 << 20))):  # past 8 MiB: a spool file
        try:
            with library.open("PVOL1") as volume:
                attempt(volume)
        except errors.OptvolError as exc:
            refused.append((exc.message_id, exc.exit_code))
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    try:
        cpyopt(library, request, now=clock())
    except errors.OptvolError as exc:
        refused.append((exc.message_id, exc.exit_code))
    # BVOL2 is the reader's own: it backs up the primary it may only read.
    counted = []
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL2", totype=VolumeType.BACKUP, cpysubdir=True)
    backed_up = cpyopt(library, request, now=clock(), totals=lambda files, size: counted.append(files)).copied
    left = [str(p) for p in Path(tempfile.gettempdir()).iterdir()]
    return {"listed": listed, "seen": seen, "versions": versions, "checked": checked, "exported": exported,
            "refused": refused, "backed_up": (backed_up, counted), "left": left}


@needs_root
def test_a_reader_reads_everything_and_writes_nothing(shared):
    library = _fill(shared)
    make_volume(library, "BVOL2", type=VolumeType.BACKUP)
    for path in [library.root / "BVOL2.optvol", *(library.root / "BVOL2.optvol").iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    before = {path: sha for path, sha in _files_of(library.root).items() if not path.startswith("BVOL2")}
    found = as_reader(_read_everything, str(library.root), str(shared / "scratch"), tmp=shared / "tmp")
    assert found["listed"] == ["BVOL1", "BVOL2", "PVOL1"]
    expected = {path: hashlib.sha256(content(path, size) if path != "/TOP" else content("/TOP", 1000, "v2")).hexdigest()
                for path, size in FILES.items()}
    assert {path: sha for path, (sha, _) in found["seen"].items()} == expected
    assert [path for path, (_, hidden) in found["seen"].items() if hidden] == ["/D1/F001"]
    assert found["versions"] == 2
    assert found["checked"] == [["BVOL1", len(FILES), 0], ["BVOL2", 0, 0], ["PVOL1", len(FILES) + 1, 0]]
    assert found["exported"] == len(FILES)
    assert found["refused"] == [["OPV0011", 5]] * 6
    assert found["backed_up"] == [len(FILES), [len(FILES)]]
    assert found["left"] == []  # each private copy of an index went with its volume
    assert {path: sha for path, sha in _files_of(library.root).items() if not path.startswith("BVOL2")} == before
    with library.open("BVOL2") as backup:
        assert backup.read_verified(backup.file_row("/D2/F039")[1], "/D2/F039") == content("/D2/F039", 100 + 37 * 39 + 2)


def _change_the_library(root: str) -> list:
    """What a reader gets from the commands that change the library's volumes."""
    from optvol.change_volume import chgoptvol
    from optvol.initialize import inzopt

    library, refused = Library(root, clock=clock), []
    for attempt in (lambda: chgoptvol(library, vol="PVOL1", text="mine"), lambda: inzopt(library, vol="NEW", now=clock()),
                    lambda: library.open("PVOL1", exclusive=True)):
        try:
            attempt()
        except errors.OptvolError as exc:
            refused.append((exc.message_id, exc.exit_code))
    return refused


@needs_root
def test_a_reader_may_not_change_the_librarys_volumes(shared):
    """CHGOPTVOL and INZOPT of a user who may only read the library said 'cannot be used:
    .lock: Permission denied' (OPV0006, exit 2, the family of invalid input); an exclusive
    open of a volume the same. They are not allowed to this user: OPV0012 and OPV0011, exit 5."""
    library = _fill(shared)
    before = _files_of(library.root)
    assert as_reader(_change_the_library, str(library.root), tmp=shared / "tmp") == [
        ["OPV0012", 5], ["OPV0012", 5], ["OPV0011", 5]]
    assert _files_of(library.root) == before


@needs_root
def test_a_reader_sees_each_commit_whole_while_the_owner_writes(shared):
    """The owner writes batch after batch (its log is folded into the index over and over)
    while the reader opens and reads the volume again and again: every opening sees whole
    batches, every file intact."""
    library = _fill(shared)
    script = ("import sys; from datetime import datetime, timezone; sys.path.insert(0, sys.argv[2]);"
              " from integrity_helpers import content; from optvol.library import Library\n"
              "library = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc))\n"
              "for batch in range(150):\n"
              "    with library.open('PVOL1') as volume, volume.batch():\n"
              "        for i in range(20):\n"
              "            path = f'/W/B{batch:03}/F{i:02}'\n"
              "            volume.mkdir(path.rsplit('/', 1)[0], parents=True, exist_ok=True)\n"
              "            volume.write_bytes(path, content(path, 3000 + i))\n"
              "    if batch == 0:\n"
              "        print('first', flush=True)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(library.root), str(Path(__file__).parent)],
                              env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "first\n"

    def read_while_written(root: str) -> list[int]:
        batches, started = [], time.monotonic()
        library = Library(root, clock=clock)
        while not batches or batches[-1] < 150 and time.monotonic() - started < 240:
            with library.open("PVOL1") as volume:
                written = list(volume.iter_files("/W", recursive=True))
                for info in written:
                    assert volume.read_bytes(info.path) == content(info.path, info.size), info.path
                assert len(written) % 20 == 0, len(written)  # whole batches only
                batches.append(len(written) // 20)
        return batches

    try:
        batches = as_reader(read_while_written, str(library.root), tmp=shared / "tmp")
    finally:
        assert writer.wait(timeout=300) == 0
    assert batches == sorted(batches) and batches[-1] == 150, batches
    assert len({b for b in batches if 0 < b < 150}) >= 3, batches  # it read while the writer wrote


@needs_root
def test_a_reader_reads_an_old_index_and_commits_a_killed_writer_left(shared):
    """A volume of index schema 1 is brought forward in the reader's private copy (its own
    file stays as it is); commits a killed writer left in the log are read."""
    library = Library(shared / "lib", clock=clock)
    make_volume(library, "PVOL1")
    shutil.copytree(GOLDEN, library.root / "GOLDEN1.optvol")
    (library.root / "GOLDEN1.optvol" / "lock").touch()  # every volume has one (the golden files are only the image)
    script = ("import os, signal, sys; from datetime import datetime, timezone; from optvol.library import Library;"
              " v = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open('PVOL1');"
              " v.write_bytes('/LATE', b'committed, then killed'); os.kill(os.getpid(), signal.SIGKILL)")
    killed = subprocess.run([sys.executable, "-c", script, str(library.root)], env={**os.environ, "PYTHONPATH": str(SRC)})
    assert killed.returncode == -signal.SIGKILL
    assert (library.root / "PVOL1.optvol" / "index.sqlite-wal").stat().st_size > 0
    before = _files_of(library.root)

    def read(root: str) -> tuple[int, str, bytes]:
        library = Library(root, clock=clock)
        with library.open("GOLDEN1") as golden, library.open("PVOL1") as volume:
            return len(list(golden.iter_files("/", recursive=True))), volume.read_bytes("/LATE").decode()

    files, late = as_reader(read, str(library.root), tmp=shared / "tmp")
    assert files > 0 and late == "committed, then killed"
    assert _files_of(library.root) == before
    index = f"file:{library.root / 'GOLDEN1.optvol' / 'index.sqlite'}?mode=ro&immutable=1"
    with sqlite3.connect(index, uri=True) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (1,)


def test_a_copy_taken_while_the_index_changed_is_taken_again(library, monkeypatch):
    """The private copy counts only if the index did not change while it was copied (a
    writer's checkpoint): changed once, it is copied twice; changed every time, OPV0004."""
    make_volume(library, "PVOL1")
    real_copy, copies = shutil.copyfile, []

    def copy_while_written(source, target, *, changes: int):
        copies.append(Path(source).name)
        if Path(source).name == "index.sqlite" and copies.count("index.sqlite") <= changes:
            os.utime(source, ns=(time.time_ns(), time.time_ns() + 1000))  # as a checkpoint writing it would
        return real_copy(source, target)

    with library.open("PVOL1") as volume:
        image = volume.image
        monkeypatch.setattr(image_mod.time, "sleep", lambda seconds: None)
        monkeypatch.setattr(image_mod.shutil, "copyfile", lambda a, b: copy_while_written(a, b, changes=1))
        monkeypatch.setattr(image_mod.descriptors, "copy_file", lambda a, b: copy_while_written(a, b, changes=1))
        copy = image._snapshot(image.directory / "index.sqlite")
        assert copies.count("index.sqlite") == 2 and copy.parent == image._snapshot_dir
        with sqlite3.connect(copy) as conn:
            assert conn.execute("SELECT volume FROM label").fetchone() == ("PVOL1",)
        image._release_snapshot()
        copies.clear()
        monkeypatch.setattr(image_mod.shutil, "copyfile", lambda a, b: copy_while_written(a, b, changes=10**6))
        monkeypatch.setattr(image_mod.descriptors, "copy_file", lambda a, b: copy_while_written(a, b, changes=10**6))
        with pytest.raises(errors.LockedError) as raised:
            image._snapshot(image.directory / "index.sqlite")
        assert raised.value.message_id == "OPV0004" and copies.count("index.sqlite") == image_mod.SNAPSHOT_TRIES
