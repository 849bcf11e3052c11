"""Images of index schema 2 read, migrated and backed up by the current code.

``tests/golden/v2`` holds a *PRIMARY GPRIM and its *BACKUP GBACK, written by
``tests/golden/make_v2.py`` with the schema 2 code: a backup at minute 60, then
/DOCS/late.txt written with the clock set back to minute 30 (inside the backup's range,
not on the backup: the bug schema 3 fixes) and /DATA/after.bin at minute 70. Each test
copies the two images into a fresh library (the golden files are never opened in place).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.library import Library
from optvol.model import BEGIN, VolumeType, to_micros
from optvol.recovery import recover

GOLDEN = Path(__file__).resolve().parent / "golden" / "v2"
sys.path.insert(0, str(GOLDEN.parent))
import make_v2  # noqa: E402  (the constants the images were written with)


def at(minutes: int):
    return make_v2.T0 + timedelta(minutes=minutes)


@pytest.fixture
def golden(tmp_path) -> Library:
    library = Library(tmp_path / "lib", clock=lambda: at(75))
    for vol in make_v2.VOLUMES:
        shutil.copytree(GOLDEN / f"{vol}.optvol", library.root / f"{vol}.optvol")
    return library


def backup(library: Library, minutes: int):
    request = CopyRequest(fromvol=make_v2.PRIMARY, frompath="/", tovol=make_v2.BACKUP, totype=VolumeType.BACKUP,
                          cpysubdir=True)
    return cpyopt(library, request, now=at(minutes))


def index(library: Library, vol: str) -> sqlite3.Connection:
    return sqlite3.connect(library.root / f"{vol}.optvol" / "index.sqlite")


def test_the_golden_images_are_schema_2_and_alone():
    for vol in make_v2.VOLUMES:
        assert sorted(p.name for p in (GOLDEN / f"{vol}.optvol").iterdir()) == ["data.opv", "index.sqlite"]
        conn = sqlite3.connect(f"file:{GOLDEN / f'{vol}.optvol' / 'index.sqlite'}?immutable=1", uri=True)
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (2,)
        conn.close()


def test_opening_migrates_them_to_the_current_schema(golden):
    """The primary's highest change time is its latest file's (after.bin, minute 70); the
    backup's ranges saw nothing (schema 2 did not record it): they hold nothing for certain."""
    for vol in make_v2.VOLUMES:
        golden.open(vol).close()
    conn = index(golden, make_v2.PRIMARY)
    assert conn.execute("SELECT value FROM meta WHERE key IN ('schema_version', 'changed_high') ORDER BY key"
                        ).fetchall() == [(to_micros(make_v2.AFTER_TIME),), (5,)]
    conn = index(golden, make_v2.BACKUP)
    assert conn.execute("SELECT path, backup_end, backup_seen FROM dirs ORDER BY path").fetchall() == [
        (path, to_micros(make_v2.BACKUP_TIME), None) for path in ("/", "/DATA", "/DOCS")]
    assert conn.execute("SELECT backup_end, backup_seen FROM label").fetchone() == (to_micros(make_v2.BACKUP_TIME), None)
    assert conn.execute("SELECT value FROM meta WHERE key = 'changed_high'").fetchone() == (to_micros(make_v2.BACKUP_TIME),)
    for result in chkoptvol(golden, vol="*ALL"):
        assert result.damaged == [] and result.files_checked == {"GPRIM": 5, "GBACK": 3}[result.volume]


def test_the_first_backup_after_the_upgrade_copies_what_schema_2_skipped(golden):
    """The code of schema 2 copies only after.bin here, and skips late.txt for ever (checked
    when the images were made). A range of schema 2 holds nothing for certain, so the first
    run compares every file and copies both; its ranges then hold what it saw."""
    first = backup(golden, 80)
    assert (first.copied, first.not_selected, first.failures) == (2, 3, [])
    with golden.open(make_v2.BACKUP) as bvol:
        late = bvol.file_row("/DOCS/late.txt")[1]
        assert bvol.read_verified(late, "/DOCS/late.txt") == make_v2.LATE
        assert bvol.stat("/DOCS/late.txt").modified == make_v2.LATE_TIME  # the primary's date, kept
        assert bvol.read_verified(bvol.file_row("/DATA/after.bin")[1], "/DATA/after.bin") == make_v2.AFTER
        for path in ("/", "/DOCS", "/DATA"):
            found = bvol.stat(path).backup
            assert (found.range_start, found.range_end) == (BEGIN, at(80))
        assert bvol.info().backup.range_end == at(80)
    conn = index(golden, make_v2.BACKUP)
    assert {row[0] for row in conn.execute("SELECT backup_seen FROM dirs")} == {to_micros(make_v2.AFTER_TIME)}
    second = backup(golden, 90)
    assert (second.copied, second.failures) == (0, [])


def test_recover_rebuilds_a_schema_2_backup_whose_ranges_saw_nothing(golden):
    """Its CONTROL records have no range_seen: rebuilt, its ranges are where they were and
    hold nothing for certain, and the next run still copies late.txt."""
    golden.open(make_v2.BACKUP).close()
    for suffix in ("", "-wal", "-shm"):
        (golden.root / f"{make_v2.BACKUP}.optvol" / f"index.sqlite{suffix}").unlink(missing_ok=True)
    report = recover(golden, vol=make_v2.BACKUP)
    assert report.damaged == [] and report.files == 3
    conn = index(golden, make_v2.BACKUP)
    assert conn.execute("SELECT path, backup_end, backup_seen FROM dirs ORDER BY path").fetchall() == [
        (path, to_micros(make_v2.BACKUP_TIME), None) for path in ("/", "/DATA", "/DOCS")]
    conn.close()
    assert backup(golden, 80).copied == 2
