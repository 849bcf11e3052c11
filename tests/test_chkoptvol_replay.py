"""CHKOPTVOL's cross-check of the index with a replay of the records (checking_replay,
docs/format.md §5 "What CHKOPTVOL checks"; hunt24e F1 and F5).

SQLite keeps no checksum of its pages: a value of the index changed by a flipped bit or a
hand with sqlite3 passed every other check while it made a file's content revert, a backup
writable, or the threshold void. Each edit below is one UPDATE of the index file on disk;
CHKOPTVOL must name it (exit 7), and recover must bring the index back to what checks clean.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import make_volume
from integrity_helpers import content, run_cli, volume_dir
from optvol import checking, errors, recovery
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.image import replay
from optvol.image.records import Kind
from optvol.model import VolumeType

ADVICE = "(optvol recover rebuilds the index from the records)"


@pytest.fixture
def archive(library, clock):
    """PVOL1 with versions, a rename, a moved directory, flags and a delete; BVOL1, its backup by two runs."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/A/B", parents=True)
        for name in ("one", "two", "three", "four"):
            volume.write_bytes(f"/A/B/{name}", content(name, 3000))
        volume.write_bytes("/A/B/one", b"second version of one")
        volume.rename("/A/B/two", "/A/TWO")
        volume.rename("/A/B", "/A/MOVED")
        volume.set_attributes("/A/MOVED/three", read_only=True)
        volume.remove("/A/MOVED/four")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    assert not cpyopt(library, request, now=clock()).failures
    with library.open("PVOL1") as volume:
        volume.write_bytes("/A/TWO", b"two, changed")
    assert not cpyopt(library, request, now=clock()).failures
    return library


def _edit(library, vol: str, sql: str) -> None:
    conn = sqlite3.connect(volume_dir(library.root, vol) / "index.sqlite")
    try:
        with conn:
            for statement in sql.split(";"):
                assert conn.execute(statement).rowcount >= 1, statement
    finally:
        conn.close()


def _dump(library, vol: str) -> list:
    conn = sqlite3.connect(f"file:{volume_dir(library.root, vol) / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return [conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("files", "dirs", "controls", "requests", "meta")]
    finally:
        conn.close()


_MOVED_BACK = ("UPDATE files SET live = 0 WHERE name = 'one' AND version = 2;"
               "UPDATE files SET live = 1 WHERE name = 'one' AND version = 1")
# (volume, the edit, the item CHKOPTVOL names, words of its reason)
EDITS = [
    # The live version moved back: cat would serve version 1 as the file's content.
    ("PVOL1", _MOVED_BACK, "/A/MOVED/one (version 2)",
     "its live flag is 0 in the index, 1 in the records"),
    ("PVOL1", "UPDATE files SET flags = 0 WHERE name = 'three'", "/A/MOVED/three (version 1)",
     "its flags is 0 in the index, 1 in the records"),
    ("PVOL1", "UPDATE files SET attr_changed = attr_changed - 1 WHERE name = 'three'", "/A/MOVED/three (version 1)",
     "attribute change time"),
    # One letter's case: the key stays, so no lookup notices.
    ("PVOL1", "UPDATE files SET name = 'Three' WHERE name = 'three'", "/A/MOVED/three (version 1)",
     "its name is 'Three' in the index, 'three' in the records"),
    ("PVOL1", "UPDATE dirs SET path = '/A/moved', name = 'moved' WHERE path = '/A/MOVED'", "/A/MOVED",
     "its name is 'moved' in the index, 'MOVED' in the records"),
    ("PVOL1", "UPDATE dirs SET live = 0, live_files = 0 WHERE path = '/A/MOVED'", "/A/MOVED",
     "its live flag is 0 in the index, 1 in the records"),
    ("PVOL1", "UPDATE files SET prev = NULL WHERE name = 'one' AND version = 2", "/A/MOVED/one (version 2)",
     "its previous version is None in the index"),
    # The space ledger lowered: the threshold no longer binds.
    ("PVOL1", "UPDATE meta SET value = 3 WHERE key = 'used_sectors'", "(index meta.used_sectors)",
     "the index keeps 3, the records give"),
    ("PVOL1", "UPDATE meta SET value = value - 3 WHERE key = 'next_sequence'", "(index meta.next_sequence)",
     "the records give"),
    ("PVOL1", "UPDATE label SET text = 'forged'", "(label text)", "the index keeps 'forged'"),
    # The backup's own rules: its type, its one primary, its 99 % threshold, its ranges.
    ("BVOL1", "UPDATE label SET type = '*PRIMARY'", "(label type)", "the records give '*BACKUP'"),
    ("BVOL1", "UPDATE label SET primary_volume = 'OTHER'", "(label primary_volume)", "the records give 'PVOL1'"),
    ("BVOL1", "UPDATE label SET threshold = 50", "(label threshold)", "the index keeps 50, the records give 99"),
    ("BVOL1", "UPDATE dirs SET backup_end = backup_end + 86400000000 WHERE path = '/A'", "/A",
     "its range end is"),
    ("BVOL1", "UPDATE label SET backup_last_changed = backup_last_changed - 1", "(label backup_last_changed)",
     "the records give"),
    ("BVOL1", "UPDATE files SET changed = changed - 1 WHERE name = 'TWO' AND live = 1", "/A/TWO (version 2)",
     "its change stamp is"),
    ("BVOL1", "UPDATE controls SET time = time - 1 WHERE id = (SELECT max(id) FROM controls)", "(the volume)",
     "its time is"),
    ("BVOL1", "UPDATE requests SET outcome = 'forged' WHERE id = (SELECT min(id) FROM requests)", "request 1",
     "its outcome is 'forged' in the index"),
]


@pytest.mark.parametrize("vol, sql, item, words", EDITS, ids=[e[1][:48] for e in EDITS])
def test_an_index_value_that_differs_from_the_records_is_named(archive, vol, sql, item, words):
    library = archive
    assert chkoptvol(library, vol=vol)[0].damaged == []
    before = _dump(library, vol)
    _edit(library, vol, sql)
    [result] = chkoptvol(library, vol=vol)
    named = {d.path: d.reason for d in result.damaged}
    assert item in named, result.damaged
    assert words in named[item] and named[item].endswith(ADVICE), named[item]
    shell = run_cli(library.root, "chkoptvol", vol, json_output=True)
    assert shell.rc == 7 and "OPV0206" in shell.err
    assert item in [d["path"] for d in shell.json()["damaged"]]
    # The records hold the truth: recover gives back the index as it was, and it checks clean.
    assert run_cli(library.root, "recover", vol).rc == 0
    assert chkoptvol(library, vol=vol)[0].damaged == []
    assert _dump(library, vol) == before


def test_a_live_version_moved_back_is_named_before_anything_serves_it(archive):
    """hunt24e F5: the file's content silently reverted; CHKOPTVOL said nothing."""
    library = archive
    _edit(library, "PVOL1", _MOVED_BACK)
    shell = run_cli(library.root, "cat", "/QOPT/PVOL1/A/MOVED/one")
    assert shell.out != b"second version of one"  # what the damaged index serves...
    check = run_cli(library.root, "chkoptvol", "PVOL1")
    assert check.rc == 7  # ...and CHKOPTVOL now says so, naming both versions
    assert "/A/MOVED/one (version 1)" in check.out.decode() and "/A/MOVED/one (version 2)" in check.out.decode()


def test_the_check_only_reads_the_volume_and_leaves_no_scratch(archive, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    data = volume_dir(archive.root, "PVOL1") / "data.opv"
    before = (data.read_bytes(), data.stat().st_mtime_ns)
    assert chkoptvol(archive, vol="*ALL")[0].damaged == []
    assert (data.read_bytes(), data.stat().st_mtime_ns) == before
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in volume_dir(archive.root, "PVOL1").iterdir()
                  if p.name not in ("index.sqlite-wal", "index.sqlite-shm")) == ["data.opv", "index.sqlite", "lock"]


def test_a_scratch_index_the_host_cannot_make_is_a_clear_error(archive, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    with pytest.raises(errors.OptvolError) as caught:
        chkoptvol(archive, vol="PVOL1")
    assert caught.value.message_id == "OPV0006" and "scratch index" in caught.value.text
    shell = run_cli(archive.root, "chkoptvol", "PVOL1")
    assert shell.rc == 2 and "OPV0006" in shell.err and "Traceback" not in shell.err


_WRITER = """
import sys, time
from optvol.library import Library
from datetime import datetime, timezone
library = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc))
end = time.monotonic() + float(sys.argv[2])
n = 0
with library.open("PVOL1") as volume:
    while time.monotonic() < end:
        with volume.batch():
            for i in range(5):
                volume.write_bytes(f"/W/f{n % 40}", b"x" * (n % 3000))
                n += 1
        if n % 50 == 0:
            volume.set_attributes(f"/W/f{n % 40}", hidden=bool(n % 100))
print(n)
"""


def test_a_writer_in_another_process_does_not_make_the_check_cry_wolf(archive):
    """The replay stops at the committed end of the check's snapshot: records another process
    commits meanwhile are on neither side of the comparison."""
    library = archive
    with library.open("PVOL1") as volume:
        volume.mkdir("/W")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(library.root), "6"], env=env,
                              stdout=subprocess.PIPE, text=True)
    checks = 0
    try:
        time.sleep(0.5)
        while writer.poll() is None:
            [result] = chkoptvol(library, vol="PVOL1")
            assert result.damaged == [], result.damaged
            checks += 1
    finally:
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and int(out) > 0 and checks >= 2
    assert chkoptvol(library, vol="PVOL1")[0].damaged == []


def test_only_the_first_differences_are_named(archive):
    library = archive
    with library.open("PVOL1") as volume:
        for i in range(40):
            volume.write_bytes(f"/many{i}", b"x")
    _edit(library, "PVOL1", "UPDATE files SET flags = 2 WHERE name LIKE 'many%'")
    [result] = chkoptvol(library, vol="PVOL1")
    assert len(result.damaged) == 21
    assert all("its flags is 2 in the index, 0 in the records" in d.reason for d in result.damaged[:20])
    assert result.damaged[20].path == "(index)" and "more values differ" in result.damaged[20].reason


def test_a_damaged_payload_does_not_keep_the_index_from_being_checked(archive):
    """A flipped byte of a file's data leaves its record header sound: the replay still runs,
    and both the file and an index edit are named."""
    library = archive
    conn = sqlite3.connect(volume_dir(library.root, "PVOL1") / "index.sqlite")
    sector, header_sectors, size = conn.execute(
        "SELECT f.sector, f.header_sectors, l.sector_size FROM files f, label l WHERE f.name = 'TWO' AND f.live = 1"
    ).fetchone()
    conn.close()
    with open(volume_dir(library.root, "PVOL1") / "data.opv", "r+b") as handle:
        handle.seek((sector + header_sectors) * size)
        byte = handle.read(1)
        handle.seek((sector + header_sectors) * size)
        handle.write(bytes([byte[0] ^ 1]))
    _edit(library, "PVOL1", "UPDATE files SET flags = 1 WHERE name = 'one' AND live = 1")
    [result] = chkoptvol(library, vol="PVOL1")
    assert sorted(d.path for d in result.damaged) == ["/A/MOVED/one (version 2)", "/A/TWO"]


def test_the_scratch_directory_is_not_the_volumes(archive):
    """The replay's index is built apart: nothing named like recover's files appears in the volume."""
    directory = volume_dir(archive.root, "PVOL1")
    chkoptvol(archive, vol="PVOL1")
    assert not any(p.name.startswith("index.recover") for p in Path(directory).iterdir())


def test_a_sound_record_of_another_volume_among_the_records_is_named(library):
    """A record spliced in from another volume (a restore of the wrong sectors) has a sound
    header, so no check of the records sees it; recover would drop what it stands for."""
    for vol in ("PVOL1", "PVOL2"):
        make_volume(library, vol)
        with library.open(vol) as volume:
            volume.write_bytes("/f", b"data")
            volume.set_attributes("/f", read_only=True)
            size = volume.image.sector_size
    found = {}
    for vol in ("PVOL1", "PVOL2"):
        with open(volume_dir(library.root, vol) / "data.opv", "rb") as handle:
            found[vol] = next(f for f in replay.scan(handle.fileno(), size) if f.header and f.header.kind == Kind.ATTRIBUTES)
    mine, theirs = found["PVOL1"], found["PVOL2"]
    assert mine.sectors == theirs.sectors
    with open(volume_dir(library.root, "PVOL2") / "data.opv", "rb") as handle:
        handle.seek(theirs.sector * size)
        record = handle.read(theirs.sectors * size)
    with open(volume_dir(library.root, "PVOL1") / "data.opv", "r+b") as handle:
        handle.seek(mine.sector * size)
        handle.write(record)
    [result] = chkoptvol(library, vol="PVOL1")
    assert [(d.path, d.reason) for d in result.damaged] == [
        (f"(sector {mine.sector})", "recover could not replay it: a record of another volume")]


def test_a_writer_thread_of_the_same_volume_does_not_wait_for_the_replay(archive, monkeypatch):
    """rev25g F1: the check held the Volume's own snapshot while it replayed every record, and
    another thread's write on that Volume waited for the whole check."""
    replaying, written, in_time = threading.Event(), threading.Event(), []
    original = recovery.replay_records

    def slow(*args, **kwargs):
        replaying.set()
        in_time.append(written.wait(10))  # the write below must get through while this replay runs
        return original(*args, **kwargs)

    monkeypatch.setattr(recovery, "replay_records", slow)
    with archive.open("PVOL1") as volume:
        def write():
            replaying.wait(10)
            volume.write_bytes("/during", b"written while the check replays")
            written.set()

        writer = threading.Thread(target=write)
        writer.start()
        result = checking.check_volume(volume)
        writer.join(30)
        assert in_time == [True] and result.damaged == []
        assert volume.read_bytes("/during") == b"written while the check replays"
    assert chkoptvol(archive, vol="PVOL1")[0].damaged == []


def test_a_value_sqlite_cannot_decode_is_named_not_a_traceback(archive):
    """hunt25n F3: a flipped bit that left a request's outcome not UTF-8 ended CHKOPTVOL in a traceback."""
    _edit(archive, "BVOL1", "UPDATE requests SET outcome = CAST(x'ff80' AS TEXT) WHERE id = (SELECT min(id) FROM requests)")
    shell = run_cli(archive.root, "chkoptvol", "BVOL1", json_output=True)
    assert shell.rc == 7 and "Traceback" not in shell.err, shell.err
    assert any(d["path"] in ("(index)", "request 1") for d in shell.json()["damaged"])


def test_dupopt_refuses_a_source_whose_index_differs_from_its_records(archive):
    """DUPOPT checks its copy as CHKOPTVOL does: a copy of an index that differs from its
    records would carry the difference on; it is refused (OPV0206), nothing made."""
    _edit(archive, "PVOL1", "UPDATE files SET flags = 0 WHERE name = 'three'")
    shell = run_cli(archive.root, "dupopt", "PVOL1", "PDUP")
    assert shell.rc == 7 and "OPV0206" in shell.err and "its flags is 0 in the index, 1 in the records" in shell.err
    assert not archive.exists("PDUP")
