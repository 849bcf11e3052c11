"""CPYOPT and CVTOPTBKU: the backup model of reference §4-§8 and DESIGN §1.

IBM's scenarios of reference §6.3 and §6.4 and the worked scenario of §17 run here with
a controlled clock: every date below is the date the scenario names.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from integrity_helpers import index_dump
from optvol import backup as backup_rules
from optvol import copy_select, copying, errors, model
from optvol.backup import Range, update
from optvol.change_volume import chgoptvol
from optvol.checking import chkoptvol
from optvol.conversion import cvtoptbku
from optvol.copying import CopyRequest, cpyopt
from optvol.duplicate import dupopt
from optvol.gc_pause import no_cyclic_gc
from optvol.initialize import inzopt
from optvol.library import Library
from optvol.model import BEGIN, VolumeType
from optvol.privileged import PrivilegedWriter
from optvol.recovery import recover
from optvol.volume_rows import optional_meta

SECTOR = 2048


class Clock:
    """A settable clock: user-program writes happen at ``clock.now``."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def set(self, year: int, month: int, day: int, hour: int = 12) -> datetime:
        self.now = datetime(year, month, day, hour, tzinfo=timezone.utc)
        return self.now


def day(month: int, d: int, year: int = 2026, hour: int = 12) -> datetime:
    return datetime(year, month, d, hour, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock(day(1, 1))


@pytest.fixture
def lib(tmp_path, clock) -> Library:
    library = Library(tmp_path / "lib", clock=clock)
    inzopt(library, vol="PVOL1", now=day(1, 1))
    inzopt(library, vol="BVOL1", type=VolumeType.BACKUP, now=day(1, 1))
    return library


def write(lib: Library, clock: Clock, when: datetime, files: dict[str, bytes], *, vol: str = "PVOL1") -> None:
    clock.now = when
    with lib.open(vol) as volume:
        for path, data in files.items():
            volume.mkdir(path.rsplit("/", 1)[0] or "/", parents=True, exist_ok=True)
            volume.write_bytes(path, data)


def backup(lib: Library, when: datetime, *, path: str = "/", subdirs: bool = True, sltfile: str = "*CHANGED",
           start: datetime | None = None, source: str = "PVOL1", target: str = "BVOL1"):
    request = CopyRequest(fromvol=source, frompath=path, tovol=target, totype=VolumeType.BACKUP,
                          cpysubdir=subdirs, sltfile=sltfile, fromtime=start)
    return cpyopt(lib, request, now=when)


def dir_range(lib: Library, path: str, volume: str = "BVOL1"):
    with lib.open(volume) as v:
        return v.stat(path).backup


def recorded_end(lib: Library, path: str | None, volume: str = "BVOL1") -> datetime | None:
    """A range's end as the index records it (``None``: the volume's), shown or not."""
    with sqlite3.connect(f"file:{lib.root / (volume + '.optvol') / 'index.sqlite'}?mode=ro", uri=True) as conn:
        row = (conn.execute("SELECT backup_end FROM label") if path is None else
               conn.execute("SELECT backup_end FROM dirs WHERE path = ?", (path,))).fetchone()
    return None if row[0] is None else model.from_micros(row[0])


def damage(lib: Library, volume: str, path: str) -> None:
    """Flip one byte of the live version's payload in the data partition."""
    with lib.open(volume) as v:
        _, row = v.file_row(path)
        offset = (row.sector + row.header_sectors) * v.image.sector_size
        data_path = v.image.directory / "data.opv"
    with open(data_path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


# ------------------------------------------------------------------------- the pure range rule


def test_range_update_is_reference_6_5():
    t = lambda month: int(day(month, 1).timestamp() * 1_000_000)  # noqa: E731
    first = update(Range(), request_time=t(7), request_start=t(2), seen=t(6), wrote=True, eligible_failed=False)
    assert (first.start, first.end, first.last_changed, first.seen) == (t(2), t(7), t(7), t(6))
    second = update(first, request_time=t(9), request_start=t(6), seen=t(8), wrote=False, eligible_failed=False)
    assert (second.start, second.end, second.last_changed, second.seen) == (t(2), t(9), t(7), t(8))
    gap = update(second, request_time=t(12), request_start=t(10), seen=t(11), wrote=True, eligible_failed=False)
    assert (gap.start, gap.end, gap.last_changed, gap.seen) == (t(2), t(9), t(12), t(8))
    failed = update(second, request_time=t(11), request_start=None, seen=t(10), wrote=True, eligible_failed=True)
    assert (failed.start, failed.end, failed.last_changed, failed.seen) == (t(2), t(9), t(11), t(8))
    earlier = update(second, request_time=t(11), request_start=None, seen=t(10), wrote=False, eligible_failed=False)
    assert earlier.has_range and earlier.start is None and (earlier.end, earlier.seen) == (t(11), t(10))
    # A file found in backup.gap leaves the range where it was, like a failure.
    found = update(second, request_time=t(11), request_start=t(8), seen=t(10), wrote=True, eligible_failed=False,
                   gap_found=True)
    assert (found.start, found.end, found.last_changed, found.seen) == (t(2), t(9), t(11), t(8))


def test_what_a_range_holds_for_certain_and_its_gap():
    """``held_end`` is the lower of a range's end and what its run saw on the source; a range
    that saw nothing (index schema 2) or is empty holds nothing. ``gap`` is what a request
    from FROMTIME must find empty to join a range: the times between what the range holds
    and FROMTIME."""
    t = lambda month: int(day(month, 1).timestamp() * 1_000_000)  # noqa: E731
    assert Range(True, t(2), t(9), None, t(5)).held_end == t(5)
    assert Range(True, t(2), t(9), None, t(11)).held_end == t(9)
    assert Range(True, None, t(9), None, None).held_end is None  # recorded before schema 3
    assert Range(True, t(10), t(9), None, t(11)).held_end is None  # FROMTIME after the request
    assert Range(True, t(6), t(9), None, t(5)).held_end is None  # it saw nothing changed after its start
    assert Range().held_end is None
    node = Range(True, t(2), t(9), None, t(5))
    assert backup_rules.gap(node, None) is None  # *BEGIN compares everything
    assert backup_rules.gap(node, t(10)) is None  # apart from the range: it does not join anyway
    assert backup_rules.gap(node, t(1)) is None and backup_rules.gap(node, t(2)) is None  # the joined range starts at FROMTIME
    assert backup_rules.gap(node, t(4)) is None  # FROMTIME inside what it holds
    assert backup_rules.gap(node, t(8)) == (t(5), t(8))
    assert backup_rules.gap(Range(True, None, t(9), None, None), t(8)) == (None, t(8))  # holds nothing: everything before
    assert backup_rules.gap(Range(True, t(2), t(9), None, None), t(8)) == (t(2) - 1, t(8))
    assert backup_rules.gap(Range(), t(8)) is None


# ------------------------------------------------------------------------- IBM's scenarios


def test_end_date_scenario_of_reference_6_3(lib, clock):
    """S9: 1 Jul from 1 Feb -> 1 Feb-1 Jul; 15 Sep from 1 Jun -> 1 Feb-15 Sep; 1 Dec from 1 Oct -> unchanged."""
    write(lib, clock, day(1, 10), {"/DIR1/OLD": b"january"})
    write(lib, clock, day(3, 10), {"/DIR1/MARCH": b"march"})
    first = backup(lib, day(7, 1), path="/DIR1", start=day(2, 1))
    assert first.copied == 1 and first.not_selected == 1
    assert (dir_range(lib, "/DIR1").range_start, dir_range(lib, "/DIR1").range_end) == (day(2, 1), day(7, 1))
    write(lib, clock, day(8, 1), {"/DIR1/AUGUST": b"august"})
    backup(lib, day(9, 15), path="/DIR1", start=day(6, 1))
    assert (dir_range(lib, "/DIR1").range_start, dir_range(lib, "/DIR1").range_end) == (day(2, 1), day(9, 15))
    write(lib, clock, day(9, 20), {"/DIR1/SEPTEMBER": b"in the gap"})
    write(lib, clock, day(10, 5), {"/DIR1/OCTOBER": b"october"})
    gap = backup(lib, day(12, 1), path="/DIR1", start=day(10, 1))
    assert gap.copied == 1 and gap.failed == 0
    found = dir_range(lib, "/DIR1")
    assert (found.range_start, found.range_end) == (day(2, 1), day(9, 15))  # the gap leaves it
    assert found.last_changed == day(12, 1)


def test_last_changed_scenario_of_reference_6_4(lib, clock):
    """S10: last changed moves only when something is written; after failures it passes the end."""
    write(lib, clock, day(6, 1), {"/DIR1/A": b"a" * 100, "/DIR1/B": b"b" * 100})
    backup(lib, day(7, 1), path="/DIR1")
    found = dir_range(lib, "/DIR1")
    assert (found.range_start, found.range_end, found.last_changed) == (BEGIN, day(7, 1), day(7, 1))
    nothing = backup(lib, day(10, 1), path="/DIR1")
    assert nothing.copied == 0 and nothing.not_selected == 2
    found = dir_range(lib, "/DIR1")
    assert (found.range_start, found.range_end, found.last_changed) == (BEGIN, day(10, 1), day(7, 1))
    write(lib, clock, day(10, 15), {"/DIR1/A": b"a2" * 100, "/DIR1/B": b"b2" * 100})
    damage(lib, "PVOL1", "/DIR1/B")
    partial = backup(lib, day(11, 1), path="/DIR1")
    assert partial.copied == 1 and partial.failed == 1
    assert partial.failures[0].path == "/DIR1/B" and partial.failures[0].message_id == "CPF1F28"
    found = dir_range(lib, "/DIR1")
    assert (found.range_start, found.range_end, found.last_changed) == (BEGIN, day(10, 1), day(11, 1))
    assert found.last_changed > found.range_end  # the sign of a partial backup


def test_worked_scenario_of_reference_17(lib, clock):
    with pytest.raises(errors.NotAllowedError) as refused:
        chgoptvol(lib, vol="BVOL1", threshold=100)
    assert refused.value.message_id == "OPV0102"
    write(lib, clock, day(1, 1), {"/DIR1/A": b"version 1"})
    write(lib, clock, day(1, 5), {"/DIR1/B": b"bee"})
    first = backup(lib, day(1, 30, hour=22), path="/DIR1", subdirs=False)
    assert first.copied == 2
    with lib.open("BVOL1") as bvol, lib.open("PVOL1") as pvol:
        assert bvol.info().primary_volume == "PVOL1"
        a, original = bvol.stat("/DIR1/A"), pvol.stat("/DIR1/A")
    assert (a.created, a.modified, a.attr_changed) == (original.created, original.modified, original.attr_changed)
    assert a.created.date() == day(1, 1).date()
    inzopt(lib, vol="PVOL2", now=day(1, 30))
    with pytest.raises(errors.NotAllowedError) as other:
        backup(lib, day(1, 31), path="/DIR1", source="PVOL2")
    assert other.value.message_id == "OPV0403"
    write(lib, clock, day(2, 1), {"/DIR1/A": b"version 2"})
    second = backup(lib, day(2, 2), path="/DIR1", subdirs=False)
    assert (second.copied, second.not_selected) == (1, 1)
    with lib.open("BVOL1") as bvol:
        used_before = bvol.info().used
    third = backup(lib, day(2, 3), path="/DIR1", subdirs=False)
    assert third.copied == 0
    found = dir_range(lib, "/DIR1")
    assert (found.range_end, found.last_changed) == (day(2, 3), day(2, 2))
    with lib.open("BVOL1") as bvol:
        # 3 sectors of control data for the one directory, 1 for the request log entry.
        assert bvol.info().used - used_before == (3 + 1) * SECTOR
    clock.now = day(2, 4)
    with lib.open("PVOL1") as pvol:
        pvol.remove("/DIR1/B")
    with lib.open("BVOL1") as bvol:
        assert bvol.stat("/DIR1/B").size == 3 and len(bvol.versions("/DIR1/A")) == 2
    lib.discard("PVOL1")
    converted = cvtoptbku(lib, bkuvol="BVOL1")
    assert (converted.volume, converted.type, converted.threshold) == ("PVOL1", VolumeType.PRIMARY, 99)
    with lib.open("PVOL1") as pvol:
        assert pvol.read_bytes("/DIR1/A") == b"version 2"
        assert pvol.read_bytes("/DIR1/B") == b"bee"  # deleted on the lost primary: delete it by hand
        pvol.remove("/DIR1/B")
    assert chgoptvol(lib, vol="PVOL1", threshold=90).threshold == 90
    inzopt(lib, vol="PVOL1", type=VolumeType.BACKUP, check=False, now=day(2, 5))
    with lib.open("PVOL1") as again:
        assert again.info().files == 0 and again.info().type == VolumeType.BACKUP


# ------------------------------------------------------------------------- selection


@pytest.mark.parametrize("name", ["lib #1", "lib?mode=rw", "lib%20x", "lib;x"])
def test_a_library_path_with_uri_characters(tmp_path, clock, name):
    """The selection opens the indexes as SQLite URIs: a library path's "?", "#" and "%" are
    escaped, not taken as URI syntax (they once cut the path: a false OPV0201)."""
    library = Library(tmp_path / name, clock=clock)
    inzopt(library, vol="PVOL1", now=day(1, 1))
    inzopt(library, vol="BVOL1", type=VolumeType.BACKUP, now=day(1, 1))
    write(library, clock, day(1, 2), {"/D/A": b"a", "/D/E/B": b"bb"})
    result = backup(library, day(1, 3))
    assert result.failures == [] and result.copied == 2
    assert backup(library, day(1, 4)).not_selected == 2  # the re-run selects by the target's index too


def test_changed_new_all_and_fromtime(lib, clock):
    write(lib, clock, day(1, 2), {"/D/OLD": b"old", "/D/KEEP": b"keep"})
    backup(lib, day(1, 3), path="/D")
    write(lib, clock, day(1, 4), {"/D/OLD": b"changed", "/D/NEW": b"new"})
    clock.now = day(1, 5)
    with lib.open("PVOL1") as pvol:
        pvol.set_attributes("/D/KEEP", hidden=True)
    new_only = backup(lib, day(1, 6), path="/D", sltfile="*NEW")
    assert (new_only.copied, new_only.not_selected) == (1, 2)
    changed = backup(lib, day(1, 7), path="/D")
    assert changed.copied == 2  # data of OLD and attributes of KEEP changed
    with lib.open("BVOL1") as bvol:
        assert bvol.stat("/D/KEEP").hidden and bvol.versions("/D/OLD")[0].size == len(b"changed")
    everything = backup(lib, day(1, 8), path="/D", sltfile="*ALL")
    assert everything.copied == 3
    late = backup(lib, day(1, 9), path="/D", sltfile="*ALL", start=day(1, 4, hour=13))
    assert (late.copied, late.not_selected) == (1, 2)  # only KEEP's attribute change is that late


def test_no_change_rerun_selects_by_range_not_by_walking(lib, clock):
    write(lib, clock, day(1, 2), {f"/D{d}/F{f}": b"x" for d in range(3) for f in range(20)})
    assert backup(lib, day(1, 3)).copied == 60
    rerun = backup(lib, day(1, 4))
    assert (rerun.copied, rerun.not_selected, rerun.failed, rerun.directories) == (0, 60, 0, 4)
    # A file changed after the range end is found again.
    write(lib, clock, day(1, 5), {"/D1/F3": b"y"})
    assert backup(lib, day(1, 6)).copied == 1


def test_every_traversed_directory_costs_three_sectors(lib, clock):
    write(lib, clock, day(1, 2), {"/A/F": b"1", "/A/B/G": b"2", "/C/H": b"3"})
    backup(lib, day(1, 3))
    with lib.open("BVOL1") as bvol:
        before = bvol.info().used
    backup(lib, day(1, 4))
    with lib.open("BVOL1") as bvol:
        # 4 directories (/, /A, /A/B, /C) + the volume record, 3 sectors each, + 1 request sector.
        assert bvol.info().used - before == (4 * 3 + 3 + 1) * SECTOR
        volume_range = bvol.info().backup
    assert volume_range.range_start == BEGIN and volume_range.range_end == day(1, 4)
    assert volume_range.last_changed == day(1, 3)


@pytest.mark.parametrize("when", ["after_validation", "before_the_claim"])
def test_a_fresh_backup_claimed_by_another_primary_meanwhile_refuses_before_writing(lib, clock, monkeypatch, when):
    """Two CPYOPTs from two primaries onto one fresh backup at once: both read "no primary
    recorded" in ``_validate`` (and, the later one, even just before its claim); the claim
    under the write lock must refuse the second one with OPV0403, writing nothing."""
    inzopt(lib, vol="PVOL2", now=day(1, 1))
    write(lib, clock, day(1, 2), {"/A/FROM1": b"one"})
    clock.now = day(1, 2)
    with lib.open("PVOL2") as pvol2:
        pvol2.mkdir("/A")
        pvol2.write_bytes("/A/FROM2", b"two")
    raced = []

    def pvol2_gets_in_first(target):
        if not raced:
            raced.append(True)
            assert target.label()["primary_volume"] is None
            assert backup(lib, day(1, 3), source="PVOL2").copied == 1

    if when == "after_validation":
        real_validate = copying._validate

        def validate(request, source, target):
            plan = real_validate(request, source, target)
            pvol2_gets_in_first(target)
            return plan

        monkeypatch.setattr(copying, "_validate", validate)
    else:
        real_claim = copying._Copier._claim_backup

        def claim(copier):
            pvol2_gets_in_first(copier.target)
            real_claim(copier)

        monkeypatch.setattr(copying._Copier, "_claim_backup", claim)
    with pytest.raises(errors.NotAllowedError) as refused:
        backup(lib, day(1, 4))
    assert raced and refused.value.message_id == "OPV0403" and "PVOL2" in refused.value.text
    with lib.open("BVOL1") as bvol:
        assert bvol.info().primary_volume == "PVOL2"
        assert bvol.listdir("/A") == ["FROM2"]
        assert [entry["parameters"]["FROMVOL"][0] for entry in bvol.requests()] == ["PVOL2"]
    assert chkoptvol(lib, vol="BVOL1")[0].damaged == []


def test_every_run_has_its_own_request_id_even_after_one_that_was_killed(lib, clock, monkeypatch):
    """A run killed after committing control records logs nothing; the next run must not
    take its ID. Each request row's ID is its REQUEST record's, and its control records'."""
    files = {f"/D{d}/F": b"x" for d in range(3)}
    write(lib, clock, day(1, 2), files)
    monkeypatch.setattr(copying, "BATCH_FILES", 1)  # commit after every directory

    class Killed(BaseException):
        pass

    def killed_at_the_end(self, outcome=None):
        raise Killed  # as SIGKILL: after the groups committed, before the log entry

    with monkeypatch.context() as killing:
        killing.setattr(copying._Copier, "_log_request", killed_at_the_end)
        killing.setattr(copying._Copier, "_log_ended", lambda self, exc: None)
        with pytest.raises(Killed):
            backup(lib, day(1, 3))
    backup(lib, day(1, 4))
    backup(lib, day(1, 5))
    index = sqlite3.connect(f"file:{lib.root / 'BVOL1.optvol' / 'index.sqlite'}?mode=ro", uri=True)
    killed = {r for (r,) in index.execute("SELECT DISTINCT request FROM controls WHERE time <= ?",
                                          (model.to_micros(day(1, 3)),))}
    logged = [r for (r,) in index.execute("SELECT id FROM requests ORDER BY id")]
    index.close()
    assert len(killed) == 1 and len(logged) == 2 and not killed & set(logged)
    with lib.open("BVOL1") as bvol:
        records = {entry["id"]: entry["time"] for entry in bvol.requests()}
    assert sorted(records) == logged
    with lib.open("BVOL1") as bvol:
        bodies = [bvol.image.read_header(row[0]).body for row in bvol.image.conn.execute("SELECT sector FROM requests")]
    assert sorted(body["id"] for body in bodies) == logged


def test_runs_that_end_before_writing_are_logged_each_under_an_id_of_its_own(lib, clock, monkeypatch):
    write(lib, clock, day(1, 2), {"/D/F": b"x"})
    backup(lib, day(1, 2))  # the backup is claimed: a run's first write is now its first copy

    def interrupted(self, dirs, stream):
        raise KeyboardInterrupt  # Ctrl-C before the first write of the run

    with monkeypatch.context() as interrupting:
        interrupting.setattr(copying._Copier, "_copy_tree", interrupted)
        for run in range(2):
            with pytest.raises(KeyboardInterrupt):
                backup(lib, day(1, 3 + run))
    backup(lib, day(1, 5))
    with lib.open("BVOL1") as bvol:
        assert [(e["id"], e["outcome"]) for e in bvol.requests()] == [
            (1, "*COMPLETE"), (2, "*ENDED"), (3, "*ENDED"), (4, "*COMPLETE")]


def test_recover_replays_request_records_that_share_an_id(lib, clock, monkeypatch):
    """optvol before 13aa401 gave two runs at once the same ID in their REQUEST records."""
    write(lib, clock, day(1, 2), {"/D/F": b"x"})
    with monkeypatch.context() as old_ids:
        old_ids.setattr(PrivilegedWriter, "reserve_request_id", lambda self: 1)
        backup(lib, day(1, 3))
        backup(lib, day(1, 4))
    with lib.open("BVOL1") as bvol:
        assert [datetime.fromisoformat(e["time"]) for e in bvol.requests()] == [day(1, 3), day(1, 4)]
    assert recover(lib, vol="BVOL1").damaged == []
    with lib.open("BVOL1") as bvol:
        assert [datetime.fromisoformat(e["time"]) for e in bvol.requests()] == [day(1, 3), day(1, 4)]
    assert backup(lib, day(1, 5)).failures == []


def test_a_run_that_ends_before_it_claims_a_fresh_backup_logs_nothing_there(lib, clock, monkeypatch):
    """Its FROMVOL never wrote the backup: recover must not take it for the primary."""
    write(lib, clock, day(1, 2), {"/D/F": b"x"})

    def interrupted(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as interrupting:
        interrupting.setattr(copying._Copier, "_claim_backup", interrupted)
        with pytest.raises(KeyboardInterrupt):
            backup(lib, day(1, 3))
    recover(lib, vol="BVOL1")
    with lib.open("BVOL1") as bvol:
        assert bvol.requests() == [] and bvol.info().primary_volume is None
    inzopt(lib, vol="PVOL2", now=day(1, 4))
    assert backup(lib, day(1, 5), source="PVOL2").failures == []  # the backup is still free


def test_request_log_on_the_backup_volume(lib, clock):
    write(lib, clock, day(1, 2), {"/A/F": b"1"})
    backup(lib, day(1, 3), start=day(1, 1))
    with lib.open("BVOL1") as bvol:
        (entry,) = bvol.requests()
    assert entry["command"] == "CPYOPT" and entry["outcome"] == "*COMPLETE"
    assert entry["parameters"]["TOVOL"] == ["BVOL1", "*BACKUP"] and entry["parameters"]["CPYSUBDIR"] == "*YES"
    assert (entry["copied"], entry["failed"], entry["directories"]) == (1, 0, 2)
    assert datetime.fromisoformat(entry["time"]) == day(1, 3)


@pytest.mark.parametrize("ending", [KeyboardInterrupt, errors.DamagedError])
def test_a_request_that_ends_early_is_logged_with_what_it_committed(lib, clock, monkeypatch, ending):
    """Ctrl-C, or an error that ends the whole request, after some groups committed: the
    history still holds the run (*ENDED, with the files it did copy), and a re-run finishes."""
    files = {f"/D{d}/F{i}": f"{d}.{i}".encode() for d in range(4) for i in range(3)}
    write(lib, clock, day(1, 2), files)
    monkeypatch.setattr(copying, "BATCH_FILES", 1)  # commit after every directory
    original, seen = copying._Copier._write_piece, []

    def write_piece(self, piece, target_dir):
        if target_dir == "/D2":
            raise ending() if ending is KeyboardInterrupt else ending("OPV0204", "Input/output error on volume BVOL1.")
        seen.append(target_dir)
        original(self, piece, target_dir)

    monkeypatch.setattr(copying._Copier, "_write_piece", write_piece)
    with pytest.raises(ending):
        backup(lib, day(1, 3))
    with lib.open("BVOL1") as bvol:
        (entry,) = bvol.requests()
        copied = [f.path for f in bvol.iter_files("/", recursive=True)]
    assert entry["outcome"] == "*ENDED" and entry["copied"] == len(copied) == 6  # /D0 and /D1
    assert sorted(seen) == ["/D0", "/D1"]
    [check] = chkoptvol(lib, vol="BVOL1")
    assert check.damaged == []
    monkeypatch.setattr(copying._Copier, "_write_piece", original)
    again = backup(lib, day(1, 4))
    assert again.failures == [] and again.copied == len(files) - 6
    with lib.open("BVOL1") as bvol:
        assert [e["outcome"] for e in bvol.requests()] == ["*ENDED", "*COMPLETE"]


def test_a_file_the_primary_replaced_by_a_directory_fails_alone_on_the_backup(lib, clock):
    """The backup keeps the old file /X for ever (nothing on it is deleted), so the primary's
    new directory /X cannot be made there: it and its files fail, listed; every other file
    is still backed up, and the volume's range does not claim the backup complete."""
    write(lib, clock, day(1, 2), {"/X": b"a file", "/A": b"a"})
    backup(lib, day(1, 3))
    with lib.open("PVOL1") as volume:
        clock.now = day(1, 4)
        volume.remove("/X")
    write(lib, clock, day(1, 4, hour=13), {"/X/IN": b"in the directory", "/X/SUB/DEEP": b"deeper", "/B": b"b"})
    result = backup(lib, day(1, 5))
    assert sorted((f.path, f.message_id) for f in result.failures) == [
        ("/X", "CPF1F24"), ("/X/IN", "CPF1F24"), ("/X/SUB", "CPF1F24"), ("/X/SUB/DEEP", "CPF1F24")]
    assert result.copied == 1  # /B
    with lib.open("BVOL1") as bvol:
        assert {f.path for f in bvol.iter_files("/")} == {"/A", "/B", "/X"}
        assert bvol.stat("/").backup.range_end == day(1, 5)  # its own files are all there
        assert bvol.info().backup.range_end == day(1, 3)  # the volume is not complete
        assert [e["outcome"] for e in bvol.requests()] == ["*COMPLETE", "*ERRORS"]
    [check] = chkoptvol(lib, vol="BVOL1")
    assert check.damaged == []


def _file_replaced_by_a_directory(lib, clock) -> None:
    """/X backed up as a file, then made a directory holding /X/IN on the primary."""
    write(lib, clock, day(1, 2), {"/X": b"a file"})
    backup(lib, day(1, 3))
    with lib.open("PVOL1") as volume:
        clock.now = day(1, 4)
        volume.remove("/X")
    write(lib, clock, day(1, 4, hour=13), {"/X/IN": b"in the directory"})


def test_a_file_request_whose_target_directory_is_a_file_fails_as_in_a_tree(lib, clock):
    """hunt28c F2: FROMPATH naming a file whose target directory is a file on the target (the
    backup's copy of a file the primary replaced by a directory) ended the request with
    CPF1F24 (exit 4); a tree request lists the same collision as failures (OPT0125, exit 1),
    as reference §5.6 has it. Both do now, and nothing is written."""
    _file_replaced_by_a_directory(lib, clock)
    with lib.open("BVOL1") as bvol:
        end = bvol.image.meta("committed_end")
    result = backup(lib, day(1, 5), path="/X/IN")
    assert [(f.path, f.message_id) for f in result.failures] == [("/X", "CPF1F24"), ("/X/IN", "CPF1F24")]
    assert result.copied == 0
    with lib.open("BVOL1") as bvol:
        assert {f.path for f in bvol.iter_files("/", recursive=True)} == {"/X"}
        assert [e["outcome"] for e in bvol.requests()] == ["*COMPLETE", "*ERRORS"]
        assert bvol.image.meta("committed_end") > end  # the run's log entry, and no file


def test_a_file_request_not_selecting_its_file_whose_target_directory_is_a_file_fails_only_the_directory(lib, clock):
    """rev31j F1: a file request whose file the request does not choose (FROMTIME after its
    change), its target directory a file on the backup, listed the file as failed too and
    counted nothing not selected; a tree request over the directory fails the directory alone
    and counts the file not selected (messages.md CPF1F24: "the files chosen in it")."""
    _file_replaced_by_a_directory(lib, clock)
    single = backup(lib, day(1, 5), path="/X/IN", start=day(1, 4, hour=14))
    tree = backup(lib, day(1, 6), path="/X", start=day(1, 4, hour=14))
    assert [(f.path, f.message_id) for f in tree.failures] == [("/X", "CPF1F24")] and tree.not_selected == 1
    assert [(f.path, f.message_id) for f in single.failures] == [("/X", "CPF1F24")]
    assert (single.copied, single.not_selected) == (0, 1)
    with lib.open("BVOL1") as bvol:
        assert [(e["outcome"], e["failed"], e["not_selected"]) for e in bvol.requests()][1] == ("*ERRORS", 1, 1)


def test_a_clock_set_back_does_not_hide_a_change_inside_the_range(lib, clock):
    """The backup's range of /D ends at 12:00; the clock is then set back to 11:00 and /D/F
    changed. Its date lies inside the range, yet the backup lacks it: the next run, made
    while the clock still reads earlier than the range's end, compares it (its change time
    lies above what the range's run saw) and copies it."""
    write(lib, clock, day(1, 2, hour=10), {"/D/F": b"old", "/D/G": b"g"})
    backup(lib, day(1, 2, hour=12))
    assert dir_range(lib, "/D").range_end == day(1, 2, hour=12)
    write(lib, clock, day(1, 2, hour=11), {"/D/F": b"new"})  # the clock now reads 11:00
    again = backup(lib, day(1, 2, hour=11) + timedelta(minutes=30))
    assert again.copied == 1 and again.not_selected == 1 and again.failures == []
    with lib.open("PVOL1") as pvol, lib.open("BVOL1") as bvol:
        assert bvol.stat("/D/F").sha256 == pvol.stat("/D/F").sha256  # the new version
        assert bvol.stat("/D/F").modified == pvol.stat("/D/F").modified
    assert dir_range(lib, "/D").range_end == day(1, 2, hour=11) + timedelta(minutes=30)
    # The clock goes on from there: the range skips again, and nothing is copied twice.
    later = backup(lib, day(1, 2, hour=13))
    assert later.copied == 0 and later.failures == []


def test_a_partial_backup_made_with_the_clock_set_back_still_shows_as_partial(lib, clock):
    """A hunt of session 19: the range of /D ends at 10:00; both files change at 10:30, and
    the run made with the clock set back to 09:30 copies one and fails the other. Last
    changed (09:30) came before the end (10:00), so /D and the volume looked complete
    (reference §6.4: last changed after the end marks a partial backup). Now last changed
    lies after the end; the end, which the failure keeps, stays."""
    write(lib, clock, day(1, 2, hour=9), {"/D/A": b"a1", "/D/B": b"b1"})
    backup(lib, day(1, 2, hour=10))
    write(lib, clock, day(1, 2, hour=10) + timedelta(minutes=30), {"/D/A": b"a2", "/D/B": b"b2"})
    damage(lib, "PVOL1", "/D/B")
    partial = backup(lib, day(1, 2, hour=9) + timedelta(minutes=30))
    assert (partial.copied, len(partial.failures)) == (1, 1)
    for node in (dir_range(lib, "/D"), lib.open("BVOL1").info().backup):
        assert node.range_end == day(1, 2, hour=10) and node.last_changed > node.range_end, node


def test_one_run_with_the_clock_years_ahead_does_not_pin_the_range_there(lib, clock):
    """Review 3 of session 19: with the end kept from moving back, one run made while the
    clock read three years ahead kept /D's range (and last changed) in that future after
    the clock was put right, showing the backup complete through it. The end is each
    complete run's request time, as reference §6.3 has it."""
    write(lib, clock, day(1, 2), {"/D/A": b"a"})
    backup(lib, day(1, 3, year=2029))
    write(lib, clock, day(1, 4), {"/D/B": b"b"})
    assert backup(lib, day(1, 5)).copied == 1
    assert dir_range(lib, "/D").range_end == day(1, 5)


def changed_of(lib: Library, path: str, volume: str = "PVOL1") -> int:
    """The change time (``files.changed``, microseconds) of a live file."""
    with lib.open(volume) as v:
        return v.file_row(path)[1].changed


def test_a_file_written_after_a_backup_with_the_clock_set_back_is_copied_by_the_next_run(lib, clock):
    """The backup of / runs at 15:00; the clock is set back to 14:30 and /LATE written, then
    the clock comes right again. /LATE's time lies inside the range *BEGIN..15:00 and the
    backup lacks it: the range does not hold it (it was changed after the run: above what
    the run saw), so the next run, at 16:00, copies it, and the one after copies nothing."""
    write(lib, clock, day(1, 2, hour=10), {"/OLD": b"old", "/D/G": b"g"})
    first = backup(lib, day(1, 2, hour=15))
    assert first.copied == 2
    write(lib, clock, day(1, 2, hour=14) + timedelta(minutes=30), {"/LATE": b"written after the backup", "/D/L": b"l"})
    again = backup(lib, day(1, 2, hour=16))
    assert (again.copied, again.not_selected, again.failures) == (2, 2, [])
    with lib.open("PVOL1") as pvol, lib.open("BVOL1") as bvol:
        for path in ("/LATE", "/D/L"):
            assert bvol.read_verified(bvol.file_row(path)[1], path) == pvol.read_bytes(path)
            assert bvol.stat(path).modified == pvol.stat(path).modified  # the primary's dates, kept
    assert backup(lib, day(1, 2, hour=17)).copied == 0
    assert (dir_range(lib, "/").range_start, dir_range(lib, "/").range_end) == (BEGIN, day(1, 2, hour=17))


def test_a_change_after_a_backup_is_stamped_above_what_the_backup_saw(lib, clock):
    """The clock is set back to before the primary's latest change: a later write, attribute
    change and rename are stamped one microsecond after each other above it (their
    ``changed``), while their dates stay what the clock said; the next backup copies them."""
    write(lib, clock, day(1, 2, hour=14), {"/D/F": b"f", "/D/G": b"g"})
    latest = changed_of(lib, "/D/G")
    backup(lib, day(1, 2, hour=15))
    with lib.open("BVOL1") as bvol:
        assert bvol.image.conn.execute("SELECT backup_seen FROM dirs WHERE path = '/D'").fetchone() == (latest,)
    clock.now = day(1, 2, hour=13)  # before every change the primary holds
    with lib.open("PVOL1") as pvol:
        pvol.write_bytes("/D/NEW", b"new")
        pvol.set_attributes("/D/F", hidden=True)
        pvol.rename("/D/G", "/D/G2")
        assert pvol.image.meta("changed_high") == latest + 3
    assert [changed_of(lib, p) for p in ("/D/NEW", "/D/F", "/D/G2")] == [latest + 1, latest + 2, latest + 3]
    with lib.open("PVOL1") as pvol:
        assert pvol.stat("/D/NEW").modified < day(1, 2, hour=14)  # the clock's time, not the stamp
        assert pvol.stat("/D/F").attr_changed < day(1, 2, hour=14)
    again = backup(lib, day(1, 2, hour=16))
    assert (again.copied, again.failures) == (3, [])
    with lib.open("BVOL1") as bvol:
        assert bvol.stat("/D/F").hidden
        assert [bvol.read_verified(bvol.file_row(p)[1], p) for p in ("/D/G2", "/D/NEW")] == [b"g", b"new"]


def test_fromtime_does_not_join_a_range_across_a_file_it_does_not_hold(lib, clock):
    """Reference §6.5 joins a request's range to the old one when FROMTIME is not after the
    old end. Here /D/LATE was written after the first run with the clock set back to 11:00:
    inside the old range, not held by it, and before FROMTIME (12:00), so the request does
    not compare it. Joined, the range would claim it for good; it stays where it was (and
    the volume's too), and the next *BEGIN run copies the file."""
    write(lib, clock, day(1, 2, hour=10), {"/D/OLD": b"old"})
    backup(lib, day(1, 2, hour=15))
    write(lib, clock, day(1, 2, hour=11), {"/D/LATE": b"late"})
    write(lib, clock, day(1, 2, hour=15) + timedelta(minutes=30), {"/D/NEW": b"new"})
    result = backup(lib, day(1, 2, hour=16), start=day(1, 2, hour=12))
    assert (result.copied, result.not_selected) == (1, 2)  # /D/NEW; /D/LATE is before FROMTIME
    found = dir_range(lib, "/D")
    assert (found.range_start, found.range_end, found.last_changed) == (BEGIN, day(1, 2, hour=15), day(1, 2, hour=16))
    with lib.open("BVOL1") as bvol:
        assert bvol.info().backup.range_end == day(1, 2, hour=15)
        assert not bvol.exists("/D/LATE")
    whole = backup(lib, day(1, 2, hour=17))
    assert whole.copied == 1
    found = dir_range(lib, "/D")
    assert (found.range_start, found.range_end) == (BEGIN, day(1, 2, hour=17))
    # Without such a file, FROMTIME inside the range joins it as reference §6.5 says.
    write(lib, clock, day(1, 2, hour=18), {"/D/EIGHTEEN": b"18"})
    backup(lib, day(1, 2, hour=19), start=day(1, 2, hour=16))
    found = dir_range(lib, "/D")
    assert (found.range_start, found.range_end) == (BEGIN, day(1, 2, hour=19))


def test_a_fromtime_after_the_request_leaves_an_empty_range_that_skips_nothing(lib, clock):
    """A FROMTIME later than the request's own time (a date typed a year ahead) records the
    range FROMTIME..request time, start after end (reference §6.5 as written): it holds
    nothing. Its two windows, "changed after the end" and "changed before the start",
    overlap: a file changed in between was chosen twice, and the next run failed on the
    index (exit 70) for good. An empty range skips nothing, and each file is copied once."""
    write(lib, clock, day(1, 2, hour=10), {"/D/OLD": b"old"})
    ahead = backup(lib, day(1, 2, hour=12), start=day(6, 1))
    assert ahead.copied == 0 and ahead.not_selected == 1
    found = dir_range(lib, "/D")
    assert (found.range_start, found.range_end) == (day(6, 1), day(1, 2, hour=12))  # start after end
    write(lib, clock, day(1, 3), {"/D/NEW": b"new"})  # changed between the range's end and its start
    again = backup(lib, day(1, 4))
    assert (again.copied, again.not_selected, again.failures) == (2, 0, [])
    with lib.open("BVOL1") as bvol:
        assert [v.path for v in bvol.iter_files("/D")] == ["/D/NEW", "/D/OLD"]
        assert [len(bvol.versions(p)) for p in ("/D/NEW", "/D/OLD")] == [1, 1]
    found = dir_range(lib, "/D")
    assert (found.range_start, found.range_end) == (BEGIN, day(1, 4))  # whole again
    assert backup(lib, day(1, 5)).copied == 0


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize("case, message_id", [
    ("wrong source type", "OPV0401"),
    ("wrong target type", "OPV0401"),
    ("backup from backup", "OPV0402"),
    ("topath differs", "OPV0404"),
    ("inside itself", "OPV0110"),
    ("no target directory", "CPF1F02"),
    ("no source path", "CPF1F22"),
    ("a file's path ending in '/'", "CPF1F22"),  # it names a directory, as everywhere else
    ("no source volume", "OPV0002"),
])
def test_validation_refusals_change_nothing(lib, clock, case, message_id):
    write(lib, clock, day(1, 2), {"/A/F": b"1"})
    inzopt(lib, vol="BVOL2", type=VolumeType.BACKUP, now=day(1, 2))
    requests = {
        "wrong source type": CopyRequest(fromvol="PVOL1", fromtype=VolumeType.BACKUP, frompath="/A", tovol="BVOL1", totype=VolumeType.BACKUP),
        "wrong target type": CopyRequest(fromvol="PVOL1", frompath="/A", tovol="BVOL1"),
        "backup from backup": CopyRequest(fromvol="BVOL2", fromtype=VolumeType.BACKUP, frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP),
        "topath differs": CopyRequest(fromvol="PVOL1", frompath="/A", tovol="BVOL1", totype=VolumeType.BACKUP, topath="/B", crtdir=True),
        "inside itself": CopyRequest(fromvol="PVOL1", frompath="/A", tovol="*FROMVOL", topath="/A/SUB", crtdir=True),
        "no target directory": CopyRequest(fromvol="PVOL1", frompath="/A", tovol="PVOL1", topath="/NEW"),
        "no source path": CopyRequest(fromvol="PVOL1", frompath="/MISSING", tovol="BVOL1", totype=VolumeType.BACKUP),
        "a file's path ending in '/'": CopyRequest(fromvol="PVOL1", frompath="/A/F/", tovol="BVOL1",
                                                   totype=VolumeType.BACKUP),
        "no source volume": CopyRequest(fromvol="NOSUCH", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP),
    }
    snapshot = {p: p.stat().st_size for p in (lib.root).rglob("data.opv")}
    with pytest.raises(errors.OptvolError) as refused:
        cpyopt(lib, requests[case], now=day(1, 3))
    assert refused.value.message_id == message_id
    assert {p: p.stat().st_size for p in (lib.root).rglob("data.opv")} == snapshot
    with lib.open("BVOL1") as bvol:
        assert bvol.info().primary_volume is None and bvol.requests() == []


@pytest.mark.parametrize("case, message_id", [
    # Each request breaks two rules; the one of the earlier step of reference §5.9 is named.
    ("wrong source type, no target volume", "OPV0401"),  # step 3 before step 4
    ("topath differs, another primary", "OPV0404"),  # step 7: TOPATH before the recorded primary
    ("no slash, no source volume", "CPF1F48"),  # step 1 (a path's form) before step 2
    ("dot-dot, no target volume", "CPF1F01"),
])
def test_validation_names_the_earliest_rule_broken(lib, clock, case, message_id):
    write(lib, clock, day(1, 2), {"/A/F": b"1"})
    inzopt(lib, vol="PVOL2", now=day(1, 2))
    backup(lib, day(1, 3), source="PVOL2")  # BVOL1 now belongs to PVOL2
    requests = {
        "wrong source type, no target volume": CopyRequest(fromvol="PVOL1", fromtype=VolumeType.BACKUP, frompath="/A",
                                                           tovol="NOSUCH"),
        "topath differs, another primary": CopyRequest(fromvol="PVOL1", frompath="/A", tovol="BVOL1",
                                                       totype=VolumeType.BACKUP, topath="/B"),
        "no slash, no source volume": CopyRequest(fromvol="NOSUCH", frompath="DIR1", tovol="BVOL1"),
        "dot-dot, no target volume": CopyRequest(fromvol="PVOL1", frompath="/A", tovol="NOSUCH", topath="/../X"),
    }
    with pytest.raises(errors.OptvolError) as refused:
        cpyopt(lib, requests[case], now=day(1, 4))
    assert refused.value.message_id == message_id


def test_names_on_the_backup_and_on_a_restore_are_the_sources_whatever_case_the_paths_were_typed_in(lib, clock):
    """Lookups ignore case, names keep it (DESIGN §1); a backup's names are the primary's
    (reference §5.7), so a FROMPATH or TOPATH typed in another case names nothing anew."""
    write(lib, clock, day(1, 2), {"/NewDir/Sub/Mixed.txt": b"1", "/NewDir/Other.txt": b"2"})
    assert backup(lib, day(1, 3), path="/newdir").copied == 2
    request = CopyRequest(fromvol="PVOL1", frompath="/NEWDIR/SUB/MIXED.TXT", topath="/newdir/sub/mixed.txt",
                          tovol="BVOL1", totype=VolumeType.BACKUP, sltfile="*ALL")
    assert cpyopt(lib, request, now=day(1, 4)).copied == 1
    with lib.open("BVOL1") as bvol:
        assert bvol.listdir("/") == ["NewDir"] and bvol.listdir("/NewDir") == ["Sub", "Other.txt"]
        assert bvol.listdir("/NewDir/Sub") == ["Mixed.txt"]
    inzopt(lib, vol="NEWPRI", now=day(1, 5))
    restore = CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/newdir", topath="/nEWdIR",
                          tovol="NEWPRI", cpysubdir=True, sltfile="*ALL", crtdir=True)
    assert cpyopt(lib, restore, now=day(1, 5)).copied == 2
    with lib.open("NEWPRI") as newpri:
        assert newpri.listdir("/") == ["NewDir"] and newpri.listdir("/NewDir/Sub") == ["Mixed.txt"]
    # Between primaries TOPATH may rename; *FROMPATH still means the source's own names.
    renamed = CopyRequest(fromvol="PVOL1", frompath="/newdir/other.txt", topath="/lower.txt", tovol="NEWPRI")
    same = CopyRequest(fromvol="PVOL1", frompath="/NEWDIR/OTHER.TXT", tovol="NEWPRI", sltfile="*ALL")
    assert cpyopt(lib, renamed, now=day(1, 6)).copied == 1 and cpyopt(lib, same, now=day(1, 6)).copied == 1
    with lib.open("NEWPRI") as newpri:
        assert newpri.listdir("/") == ["NewDir", "lower.txt"] and newpri.listdir("/NewDir") == ["Sub", "Other.txt"]


def test_a_rename_on_the_primary_that_changes_only_case_reaches_the_backup(lib, clock):
    """Lookups ignore case, so the backup's /A would take the primary's /a's files for ever;
    a backup keeps its primary's names, so the next run renames it, with a RENAME record
    that recover replays. Files below keep the primary's dates."""
    write(lib, clock, day(1, 2), {"/A/Deep/f": b"one", "/A/g": b"two"})
    backup(lib, day(1, 3))
    clock.now = day(1, 4)
    with lib.open("PVOL1") as pvol:
        pvol.rename("/A", "/a")
        pvol.rename("/a/Deep", "/a/DEEP")
    result = backup(lib, day(1, 5))
    assert result.failures == [] and result.copied == 0  # nothing but names changed
    with lib.open("BVOL1") as bvol, lib.open("PVOL1") as pvol:
        assert bvol.listdir("/") == ["a"] and bvol.listdir("/a") == ["DEEP", "g"]
        for path in ("/a/DEEP/f", "/a/g"):
            copy, original = bvol.stat(path), pvol.stat(path)
            assert (copy.path, copy.created, copy.modified, copy.attr_changed) == (
                original.path, original.created, original.modified, original.attr_changed)
    assert dir_range(lib, "/a").last_changed == day(1, 5)  # the rename wrote the directory
    assert backup(lib, day(1, 6)).copied == 0
    assert chkoptvol(lib, vol="BVOL1")[0].damaged == []
    before = index_dump(lib.root / "BVOL1.optvol" / "index.sqlite")
    recover(lib, vol="BVOL1")
    assert index_dump(lib.root / "BVOL1.optvol" / "index.sqlite") == before


def test_a_subtree_run_below_an_ancestor_renamed_in_case_renames_it_and_marks_nothing_it_did_not_write(lib, clock):
    """Directories above FROMPATH are not traversed (README): a subtree run gives them the
    primary's spelling but no last changed, and the directory at FROMPATH, where nothing
    was written, keeps its own (hunt25m F1: the ancestor's rename was counted as a write
    to FROMPATH's directory). A new directory below such an ancestor gets it renamed too."""
    write(lib, clock, day(1, 2), {"/A/deep/C/f": b"x", "/A/deep/g": b"y"})
    backup(lib, day(1, 3))
    clock.now = day(1, 4)
    with lib.open("PVOL1") as pvol:
        pvol.rename("/A/deep", "/A/DEEP")
    result = backup(lib, day(1, 5), path="/A/DEEP/C")
    assert (result.copied, result.failures) == (0, [])
    with lib.open("BVOL1") as bvol:
        assert bvol.listdir("/A") == ["DEEP"] and bvol.stat("/A/DEEP/C/f").path == "/A/DEEP/C/f"
    assert dir_range(lib, "/A/DEEP/C").last_changed == day(1, 3)  # nothing written there
    assert dir_range(lib, "/A/DEEP/C").range_end == day(1, 5)
    assert dir_range(lib, "/A/DEEP").last_changed == day(1, 3)  # not traversed: no last changed
    write(lib, clock, day(1, 6), {"/A/Deep/New/h": b"z"})  # renamed in case again, and a new directory
    with lib.open("PVOL1") as pvol:
        assert pvol.listdir("/A") == ["DEEP"]
        pvol.rename("/A/DEEP", "/A/Deep")
    assert backup(lib, day(1, 7), path="/A/Deep/New").copied == 1
    with lib.open("BVOL1") as bvol:
        assert bvol.listdir("/A") == ["Deep"] and bvol.listdir("/A/Deep") == ["C", "New", "g"]
    assert dir_range(lib, "/A/Deep/New").last_changed == day(1, 7)
    assert dir_range(lib, "/A/Deep").last_changed == day(1, 3)
    assert dir_range(lib, "/A/Deep/C").last_changed == day(1, 3)
    assert chkoptvol(lib, vol="BVOL1")[0].damaged == []
    before = index_dump(lib.root / "BVOL1.optvol" / "index.sqlite")
    recover(lib, vol="BVOL1")
    assert index_dump(lib.root / "BVOL1.optvol" / "index.sqlite") == before


@pytest.mark.parametrize("how", ["a snapshot put back by DUPOPT", "an older backup converted"])
def test_another_volume_under_the_primarys_name_is_compared_file_by_file(lib, clock, how):
    """The backup's ranges describe the history of the primary it backed up; a volume that
    takes its name has its own, whose files' change times fall inside those ranges. The
    next run compares every file (the bytes differ: copied), in directories it does not
    traverse too, since every range is forgotten; recover rebuilds the same index."""
    write(lib, clock, day(1, 2), {"/D/F": b"v1", "/E/G": b"g1"})
    if how == "a snapshot put back by DUPOPT":
        dupopt(lib, fromvol="PVOL1", tovol="PSNAP", now=day(1, 3))
    else:
        inzopt(lib, vol="BOLD", type=VolumeType.BACKUP, now=day(1, 1))
        backup(lib, day(1, 3), target="BOLD")
    write(lib, clock, day(1, 4), {"/D/F": b"v2", "/E/G": b"g2"})
    assert backup(lib, day(1, 5)).copied == 2  # BVOL1 holds v2 and g2
    if how == "a snapshot put back by DUPOPT":
        dupopt(lib, fromvol="PSNAP", tovol="PVOL1", now=day(1, 6), clear=True)
    else:
        with lib.locked():
            lib.remove("PVOL1")  # the primary is lost
        cvtoptbku(lib, bkuvol="BOLD")
    first = backup(lib, day(1, 7), path="/D")  # one directory: /E is not traversed
    assert (first.copied, first.failures) == (1, [])
    assert recorded_end(lib, "/E") == day(1, 5)  # still recorded: what the backup holds of the old history...
    assert dir_range(lib, "/E").range_end is None  # ...but not shown (hunt-spec F1): it holds nothing for certain
    assert backup(lib, day(1, 8)).copied == 1  # g1 is compared, copied
    with lib.open("BVOL1") as bvol:
        assert [bvol.stat(p).sha256 for p in ("/D/F", "/E/G")] == [hashlib.sha256(b).hexdigest() for b in (b"v1", b"g1")]
    assert backup(lib, day(1, 9)).copied == 0  # the ranges hold the new history from here on
    before = index_dump(lib.root / "BVOL1.optvol" / "index.sqlite")
    recover(lib, vol="BVOL1")
    assert index_dump(lib.root / "BVOL1.optvol" / "index.sqlite") == before
    assert backup(lib, day(1, 10)).copied == 0


@pytest.mark.parametrize("last", ["a file", "a delete"])
def test_a_primary_image_put_back_from_an_older_copy_is_compared_file_by_file(lib, clock, tmp_path, last):
    """A hunt of session 19: a VM restored from a snapshot puts the primary's image back (the
    same history: the same first record) and its clock back with it. A file written then got
    a change time inside the backup's range, and every later *CHANGED run skipped it for
    good, while DSPOPT said the directory was complete. The backup keeps how far the
    primary's history went (its last record, when the run began): a run that does not find
    that record any more compares every file. The last record may be one no index row
    points at (a delete)."""
    write(lib, clock, datetime(2026, 12, 1, 10, 5, tzinfo=timezone.utc), {"/D/A": b"a", "/D/X": b"x"})
    image = lib.root / "PVOL1.optvol"
    shutil.copytree(image, tmp_path / "snapshot")  # every Volume is closed: the image as it stands
    write(lib, clock, datetime(2026, 12, 1, 10, 10, tzinfo=timezone.utc), {"/D/B": b"b"})
    if last == "a delete":
        with lib.open("PVOL1") as volume:
            volume.remove("/D/X")
    assert backup(lib, datetime(2026, 12, 1, 11, tzinfo=timezone.utc)).copied == (3 if last == "a file" else 2)
    shutil.rmtree(image)
    shutil.copytree(tmp_path / "snapshot", image)  # the restore, with the clock at 10:07
    write(lib, clock, datetime(2026, 12, 1, 10, 8, tzinfo=timezone.utc), {"/D/C": b"c"})
    again = backup(lib, datetime(2026, 12, 1, 12, tzinfo=timezone.utc))
    assert (again.copied, again.failures) == ((1, []) if last == "a file" else (2, []))  # C (and X, back again)
    with lib.open("BVOL1") as bvol:
        assert bvol.stat("/D/C").sha256 == hashlib.sha256(b"c").hexdigest()
    assert backup(lib, datetime(2026, 12, 1, 13, tzinfo=timezone.utc)).copied == 0  # trusted again from here
    before = index_dump(lib.root / "BVOL1.optvol" / "index.sqlite")
    recover(lib, vol="BVOL1")  # the place comes back from the control records
    assert index_dump(lib.root / "BVOL1.optvol" / "index.sqlite") == before


def test_a_run_that_overlapped_a_later_one_leaves_the_later_place(lib, clock, tmp_path, monkeypatch):
    """Review 2 of session 19: run A of /A notes the primary's place, then run B of /B, begun
    later, notes a later one (after /B/b3) and ends; A writes its control records last. The
    backup kept A's older place, so when the image was put back to it, with its clock, /B/b4
    (inside /B's range) was never copied. A place is kept only if no later one is."""
    at = lambda h, m=0: datetime(2026, 12, 1, h, m, tzinfo=timezone.utc)  # noqa: E731
    write(lib, clock, at(10), {"/A/a1": b"a1", "/B/b1": b"b1"})
    backup(lib, at(10, 30))
    image = lib.root / "PVOL1.optvol"
    shutil.copytree(image, tmp_path / "snapshot")
    real = copying._place_in_history

    def a_waits(volume, known=None):
        place = real(volume, known)
        monkeypatch.setattr(copying, "_place_in_history", real)
        write(lib, clock, at(11, 10), {"/B/b3": b"b3"})  # while A waits, the primary goes on...
        assert backup(lib, at(11, 20), path="/B").copied == 1  # ...and run B keeps a later place
        return place

    monkeypatch.setattr(copying, "_place_in_history", a_waits)
    backup(lib, at(11), path="/A")
    shutil.rmtree(image)
    shutil.copytree(tmp_path / "snapshot", image)  # put back to where A began, the clock with it
    write(lib, clock, at(11, 5), {"/B/b4": b"b4"})
    assert backup(lib, at(12)).copied >= 1
    with lib.open("BVOL1") as bvol:
        assert bvol.stat("/B/b4").sha256 == hashlib.sha256(b"b4").hexdigest()


def test_a_no_change_run_reads_the_headers_of_what_changed_only(lib, clock, monkeypatch):
    """Review 2 of session 19: the place was found from the newest file's record, reading
    every header after it: 100,000 deletes since the last file written made every no-change
    run read 100,000 headers. It starts from the place the last run found, still there."""
    from optvol.image.image import VolumeImage

    write(lib, clock, day(1, 2), {f"/D/F{n}": b"f" for n in range(300)})
    with lib.open("PVOL1") as volume, volume.batch():
        for n in range(299):
            volume.remove(f"/D/F{n}")
    backup(lib, day(1, 3))
    read, real = [], VolumeImage.read_header
    monkeypatch.setattr(VolumeImage, "read_header", lambda image, sector: read.append(sector) or real(image, sector))
    assert backup(lib, day(1, 4)).copied == 0
    assert len(read) <= 3, len(read)


def test_a_primary_that_only_went_on_keeps_its_backups_ranges(lib, clock):
    """The place a backup keeps names the primary's last record: a primary that went on
    (files written, deleted, renamed, a label change) still holds it, and a no-change run
    compares nothing (the ranges are trusted)."""
    write(lib, clock, day(1, 2), {"/D/F": b"v1", "/E/G": b"g1"})
    assert backup(lib, day(1, 3)).copied == 2
    write(lib, clock, day(1, 4), {"/D/H": b"h"})
    with lib.open("PVOL1") as volume:
        volume.remove("/E/G")
        volume.rename("/D/F", "/D/F2")
    assert backup(lib, day(1, 5)).copied == 2  # H and F2
    trusted = backup(lib, day(1, 6))
    assert trusted.copied == 0
    with lib.open("BVOL1") as bvol:
        place = (optional_meta(bvol.image.conn, "primary_place_sector"), optional_meta(bvol.image.conn, "primary_place_mark"))
    with lib.open("PVOL1") as pvol:
        assert place == copying._place_in_history(pvol) and place[0] > 0


def test_a_run_writes_no_second_equal_version_of_what_another_run_copied_meanwhile(lib, clock):
    """A hunt of session 19: two *CHANGED runs onto one backup at once both copied every file
    (6,010 versions for 3,005 files, charged twice). Inside its write transaction a run
    leaves alone a file whose live version on the target already has its bytes, times and
    flags (another run copied it after this one chose it): small files (``write_files``
    with ``skip_same``) and large ones (``_already_there``); *ALL still writes them."""
    write(lib, clock, day(1, 2), {"/D/SMALL": b"small", "/D/LARGE": os.urandom(5 << 20)})
    backup(lib, day(1, 3))
    with lib.open("PVOL1") as pvol, lib.open("BVOL1") as bvol:
        _, small = pvol.file_row("/D/SMALL")
        again = ("SMALL", b"small", small.sha256, (small.created, small.modified, small.attr_changed), small.flags)
        changed = ("OTHER", b"other", hashlib.sha256(b"other").digest(), (1, 2, 3), 0)
        with bvol.backup_writer() as writer:
            outcomes = writer.write_files("/D", [again, changed], skip_same=True)
        assert outcomes[0] is None and outcomes[1].path == "/D/OTHER"
        assert len(bvol.versions("/D/SMALL")) == 1
        with bvol.backup_writer() as writer:
            assert writer.write_files("/D", [again])[0].version == 2  # without skip_same: written
    request = CopyRequest(fromvol="PVOL1", frompath="/D", tovol="BVOL1", totype=VolumeType.BACKUP)
    with lib.open("PVOL1") as pvol, lib.open("BVOL1") as bvol:
        plan = copying._validate(request, pvol, bvol)
        copier = copying._Copier(request, plan, pvol, bvol, model.to_micros(day(1, 4)), None)
        _, large = pvol.file_row("/D/LARGE")
        candidate = copy_select.Candidate(large, "LARGE", "/D", None, None, None, None)
        assert copier._already_there(candidate, "/D")
        assert not copier._already_there(candidate._replace(row=large._replace(sha256=bytes(32))), "/D")
        write(lib, clock, day(1, 4), {"/D/LARGE": os.urandom(5 << 20)})
    assert backup(lib, day(1, 5)).copied == 1


@pytest.mark.parametrize("path, change", [
    ("/D/F", "bytes"), ("/D/BIG", "bytes"), ("/D", "bytes"), ("/D", "flags"),
])
def test_a_run_writes_no_older_state_over_what_a_later_run_copied(lib, clock, monkeypatch, path, change):
    """Two runs overlapped (review 4 of session 19 suspected it): run A chose /D/F and /D/BIG
    as they were at 11:00; before A wrote them, the primary changed them (bytes or flags) and
    run B copied the new state. A then wrote its older state over B's, and since B's range
    claims the new state, no later *CHANGED run copied it again: the backup kept the old bytes
    for good (a file FROMPATH never moves a range, nor does a directory where A failed). A run
    writes only a version that is still the primary's live state, checked inside the backup's
    write transaction; what it leaves is newer than its run and goes with the next one."""
    big = lambda n: bytes([n]) * (3 << 20)  # noqa: E731  # a large file: copied in the kernel
    write(lib, clock, day(1, 2), {"/D/F": b"v0", "/D/BIG": big(0)})
    backup(lib, day(1, 3))
    write(lib, clock, day(1, 4), {"/D/F": b"v1", "/D/BIG": big(1)})  # what run A chooses
    real = copying._Copier._write_piece

    def a_later_run_first(copier, piece, target_dir):
        monkeypatch.setattr(copying._Copier, "_write_piece", real)
        copier._commit()  # A commits what it wrote so far (it does so every BATCH_FILES files)
        if change == "bytes":
            write(lib, clock, day(1, 6), {"/D/F": b"v2", "/D/BIG": big(2)})
        else:
            clock.now = day(1, 6)
            with lib.open("PVOL1") as pvol:
                pvol.set_attributes("/D/F", read_only=True)
                pvol.set_attributes("/D/BIG", hidden=True)
        assert backup(lib, day(1, 7)).copied == 2  # run B, begun and ended while A waits
        real(copier, piece, target_dir)

    monkeypatch.setattr(copying._Copier, "_write_piece", a_later_run_first)
    a = backup(lib, day(1, 5), path=path)
    chosen = 1 if path.startswith("/D/") else 2
    assert (a.copied, a.failures) == (0, []) and a.not_selected == chosen
    assert backup(lib, day(1, 8)).copied == 0
    with lib.open("PVOL1") as pvol, lib.open("BVOL1") as bvol:
        for name in ("/D/F", "/D/BIG"):
            primary, copy = pvol.stat(name), bvol.stat(name)
            assert (copy.sha256, copy.read_only, copy.hidden, copy.modified) == (
                primary.sha256, primary.read_only, primary.hidden, primary.modified), name
    assert chkoptvol(lib, vol="BVOL1")[0].damaged == []


def test_ranges_already_forgotten_are_not_written_again(lib, clock):
    """Each change of history writes a control record for every range not yet forgotten."""
    write(lib, clock, day(1, 2), {"/D/F": b"v1", "/E/G": b"g1"})
    dupopt(lib, fromvol="PVOL1", tovol="PSNAP", now=day(1, 3))
    backup(lib, day(1, 4))
    index = lib.root / "BVOL1.optvol" / "index.sqlite"

    def records_of(path: str) -> int:
        conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM controls c JOIN dirs d ON d.id = c.dir WHERE d.path = ?",
                                (path,)).fetchone()[0]
        finally:
            conn.close()

    for when in (5, 7):  # twice another history: the snapshot put back, each time a new copy
        dupopt(lib, fromvol="PSNAP", tovol="PVOL1", now=day(1, when), clear=True)
        backup(lib, day(1, when + 1), path="/D")  # /E is not traversed: only forgotten
    assert records_of("/E") == 2  # its run's record, then one forget; the second found it forgotten
    assert records_of("/D") == 5  # run, forget, run, forget, run


def test_a_fromtime_run_onto_another_history_does_not_join_the_old_range(lib, clock):
    """The first run after a snapshot was put back asks FROMTIME: it compares only files
    changed since, so its range must not join one of the old history (which the gap probe,
    reckoned from the old range, would have allowed)."""
    write(lib, clock, day(1, 2), {"/D/F": b"v1"})
    dupopt(lib, fromvol="PVOL1", tovol="PSNAP", now=day(1, 3))
    write(lib, clock, day(1, 4), {"/D/F": b"v2"})
    backup(lib, day(1, 5))
    dupopt(lib, fromvol="PSNAP", tovol="PVOL1", now=day(1, 6), clear=True)
    assert backup(lib, day(1, 7), start=day(1, 3)).copied == 0  # v1 was changed before FROMTIME
    assert recorded_end(lib, "/D") == recorded_end(lib, None) == day(1, 5)  # not joined, nor the volume's range
    assert dir_range(lib, "/D").range_end is None  # and shown as none: forgotten
    assert backup(lib, day(1, 8)).copied == 1  # so the next run compares v1 and copies it


def test_a_backup_with_no_room_to_forget_its_ranges_never_trusts_them(tmp_path, clock):
    """Forgetting costs a control record per range. When they do not fit, nothing of the run
    may commit the new history (its control records, its request entry): a later run on
    another directory must still compare, and end for want of room, not skip silently."""
    lib = Library(tmp_path / "lib", clock=clock)
    inzopt(lib, vol="PVOL1", now=day(1, 1))
    inzopt(lib, vol="BSMALL", type=VolumeType.BACKUP, capacity=1 << 20, now=day(1, 1))
    write(lib, clock, day(1, 2), {f"/E{i:02}/G": b"g1" for i in range(30)} | {"/A/F": b"a", "/A/B/F": b"b"})
    dupopt(lib, fromvol="PVOL1", tovol="PSNAP", now=day(1, 3))
    write(lib, clock, day(1, 4), {"/E00/G": b"g2"})
    backup(lib, day(1, 5), target="BSMALL")
    with lib.open("BSMALL") as small:
        room = small.info().available // SECTOR
    write(lib, clock, day(1, 5), {"/Z/FILL": os.urandom((room - 6 - 12) * SECTOR)})
    backup(lib, day(1, 5, hour=13), path="/Z", target="BSMALL")  # 12 sectors left: 4 control records
    dupopt(lib, fromvol="PSNAP", tovol="PVOL1", now=day(1, 6), clear=True)
    history = lib.root / "BSMALL.optvol" / "index.sqlite"

    def recorded() -> int:
        conn = sqlite3.connect(f"file:{history}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT value FROM meta WHERE key = 'primary_history'").fetchone()[0]
        finally:
            conn.close()

    old = recorded()
    first = backup(lib, day(1, 7), path="/A", target="BSMALL")  # /A is alike in both histories
    assert {f.message_id for f in first.failures} == {"CPF1F61"} and first.copied == 0
    assert recorded() == old
    with pytest.raises(errors.VolumeFullError):  # g1 now, g2 on the backup: compared, no room to copy
        backup(lib, day(1, 8), path="/E00", target="BSMALL")
    assert recorded() == old
    inzopt(lib, vol="BNEW", type=VolumeType.BACKUP, now=day(1, 8))
    assert backup(lib, day(1, 8), target="BNEW").copied == 32  # a fresh backup takes the new history


# ------------------------------------------------------------------------- primary targets


def test_several_primaries_into_one_with_new_dates(lib, clock):
    inzopt(lib, vol="VOLA", now=day(1, 1))
    inzopt(lib, vol="ARCH", now=day(1, 1))
    write(lib, clock, day(1, 2), {"/X/F": b"from pvol1"})
    clock.now = day(1, 2)
    with lib.open("VOLA") as vola:
        vola.mkdir("/Y")
        vola.write_bytes("/Y/G", b"from vola")
    for source in ("PVOL1", "VOLA"):
        result = cpyopt(lib, CopyRequest(fromvol=source, frompath="/", tovol="ARCH", topath=f"/{source}",
                                         cpysubdir=True, sltfile="*NEW", crtdir=True), now=day(3, 1))
        assert result.copied == 1
    with lib.open("ARCH") as arch:
        assert arch.read_bytes("/PVOL1/X/F") == b"from pvol1" and arch.read_bytes("/VOLA/Y/G") == b"from vola"
        copied = arch.stat("/VOLA/Y/G")
        assert copied.created == day(3, 1) and copied.modified == day(3, 1)
        assert arch.info().backup is None


def test_a_file_dated_ahead_of_the_clock_is_not_copied_to_a_primary_on_every_run(lib, clock, tmp_path):
    """Hunt 27a F2: onto a *PRIMARY target, *CHANGED compared the source's dates with the
    copy's write time alone: a file whose date lies ahead of the clock but which changed on
    its volume before the copy (an image imported with its dates, a restore from a backup
    made while a clock ran ahead) was copied again by every no-change run, a new version
    each time, until the clock passed its date."""
    from optvol.interchange import export_iso, import_iso

    write(lib, clock, day(1, 2, year=2031), {"/X/F": b"dated ahead"})
    export_iso(lib, vol="PVOL1", file=tmp_path / "ahead.iso", now=day(1, 2, year=2031))
    clock.now = day(2, 1)
    import_iso(lib, file=tmp_path / "ahead.iso", now=day(2, 1), vol="OLDCD")
    inzopt(lib, vol="ARCH", now=day(2, 1))
    request = CopyRequest(fromvol="OLDCD", frompath="/X", tovol="ARCH", crtdir=True)
    totals = []
    copied = [cpyopt(lib, request, now=day(3, 1) + timedelta(days=run),
                     totals=lambda files, size: totals.append(files)).copied for run in range(3)]
    assert copied == [1, 0, 0] and totals[1:] == [0, 0]
    with lib.open("ARCH") as arch:
        assert arch.read_bytes("/X/F") == b"dated ahead" and len(arch.versions("/X/F")) == 1
    write(lib, clock, day(4, 1), {"/X/F": b"changed since"}, vol="ARCH")  # (a change on the target stays)
    assert cpyopt(lib, request, now=day(4, 2)).copied == 0


def test_a_rename_on_the_source_does_not_make_changed_replace_a_newer_copy_on_a_primary(lib, clock):
    """rev27h F1 (against a rule tried for hunt27a F3, reverted): a directory renamed away and
    back on the source moves its files' change times, not their dates or bytes; *CHANGED onto
    a *PRIMARY must leave alone a copy the user changed on the target since."""
    write(lib, clock, day(1, 2), {"/d/f": b"old source bytes"})
    inzopt(lib, vol="ARCH", now=day(1, 2))
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="ARCH", cpysubdir=True, crtdir=True)
    assert cpyopt(lib, request, now=day(1, 3)).copied == 1
    write(lib, clock, day(1, 4), {"/d/f": b"the user's newer bytes on the target"}, vol="ARCH")
    clock.now = day(1, 5)
    with lib.open("PVOL1") as volume:
        volume.rename("/d", "/e")
        volume.rename("/e", "/d")
    assert cpyopt(lib, request, now=day(1, 6)).copied == 0
    with lib.open("ARCH") as arch:
        assert arch.read_bytes("/d/f") == b"the user's newer bytes on the target"


def test_restore_from_backup_keeps_dates(lib, clock):
    write(lib, clock, day(1, 2), {"/DIR1/SUB/F": b"precious"})
    backup(lib, day(1, 3))
    inzopt(lib, vol="NEWPRI", now=day(2, 1))
    result = cpyopt(lib, CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/DIR1", tovol="NEWPRI",
                                     cpysubdir=True, sltfile="*ALL", crtdir=True), now=day(2, 2))
    assert result.copied == 1
    with lib.open("PVOL1") as pvol, lib.open("NEWPRI") as new:
        original, restored = pvol.stat("/DIR1/SUB/F"), new.stat("/DIR1/SUB/F")
        assert (restored.created, restored.modified, restored.sha256) == (original.created, original.modified, original.sha256)
        assert new.read_bytes("/DIR1/SUB/F") == b"precious"


def test_fromtime_of_a_restore_selects_by_the_files_dates_not_when_the_backup_was_written(lib, clock):
    """Reference §5.4: FROMTIME selects a file created or changed at or after it. A backup
    keeps the primary's dates, but its own change times are those of the backup runs: a
    restore with FROMTIME took every file backed up since, whatever its dates (hunt24b F1)."""
    write(lib, clock, day(1, 2), {"/DIR1/OLD": b"old", "/DIR1/NEW": b"placeholder"})
    write(lib, clock, day(3, 2), {"/DIR1/NEW": b"new"})
    clock.now = day(4, 1)
    backup(lib, day(4, 1))  # both written onto the backup on 1 April
    clock.now = day(5, 1)
    inzopt(lib, vol="NEWPRI", now=day(5, 1))
    result = cpyopt(lib, CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/DIR1", tovol="NEWPRI",
                                     sltfile="*ALL", crtdir=True, fromtime=day(3, 1)), now=day(5, 2))
    assert (result.copied, result.not_selected) == (1, 1)
    with lib.open("NEWPRI") as new:
        assert new.listdir("/DIR1") == ["NEW"]
    one = cpyopt(lib, CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/DIR1/OLD", tovol="NEWPRI",
                                  sltfile="*ALL", fromtime=day(3, 1)), now=day(5, 3))
    assert (one.copied, one.not_selected) == (0, 1)


def test_a_changed_restore_settles_and_takes_later_backups(lib, clock):
    """A restore keeps the backup's dates, so a file whose attributes changed after its data
    (hidden, read-only) was copied again by every *CHANGED re-run, and a read-only one failed
    every time: each date is now compared with its own."""
    write(lib, clock, day(1, 2), {"/D/H": b"hidden", "/D/R": b"read-only", "/D/P": b"plain"})
    clock.now = day(1, 3)
    with lib.open("PVOL1") as volume:
        volume.set_attributes("/D/H", hidden=True)
        volume.set_attributes("/D/R", read_only=True)
    backup(lib, day(1, 4))
    inzopt(lib, vol="NEWPRI", now=day(2, 1))
    request = CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/D", tovol="NEWPRI", crtdir=True)
    assert cpyopt(lib, request, now=day(2, 2)).copied == 3
    for n in range(3):
        again = cpyopt(lib, request, now=day(2, 3 + n))
        assert (again.copied, again.failed, again.not_selected) == (0, 0, 3)
    with lib.open("NEWPRI") as volume:
        assert [len(volume.versions(f"/D/{name}")) for name in "HRP"] == [1, 1, 1]
    write(lib, clock, day(3, 1), {"/D/P": b"plain, later"})
    backup(lib, day(3, 2))
    later = cpyopt(lib, request, now=day(3, 3))
    assert later.copied == 1
    with lib.open("NEWPRI") as volume:
        assert volume.read_bytes("/D/P") == b"plain, later"


def test_partial_failure_continues_and_rerun_finishes(lib, clock):
    write(lib, clock, day(1, 2), {"/D/GOOD1": b"1" * 10, "/D/BAD": b"2" * 10, "/D/GOOD2": b"3" * 10})
    damage(lib, "PVOL1", "/D/BAD")
    result = backup(lib, day(1, 3))
    assert (result.copied, result.failed) == (2, 1)
    assert result.as_json()["failures"] == [{"path": "/D/BAD", "message_id": "CPF1F28", "message": result.failures[0].message}]
    assert "/D/BAD" in result.failures[0].message and "PVOL1" in result.failures[0].message  # the damaged source file
    with lib.open("BVOL1") as bvol:
        assert not bvol.exists("/D/BAD")  # nothing half-copied
        assert bvol.stat("/D").backup.range_end is None and bvol.stat("/D").backup.last_changed == day(1, 3)
    write(lib, clock, day(1, 4), {"/D/BAD": b"repaired"})
    again = backup(lib, day(1, 5))
    assert (again.copied, again.failed) == (1, 0)
    assert dir_range(lib, "/D").range_end == day(1, 5)


def test_large_files_hashed_ahead_each_checked_against_its_own_bytes(lib, clock):
    """Files over SMALL_FILE are hashed on threads ahead of their kernel copy: each copy is
    judged by its own file's digest, whatever fails around it."""
    sizes = [300_000, 700_000, 2 << 20, 400_000, 1 << 20, 600_000, 3 << 20]
    files = {f"/D/L{number}": os.urandom(size) for number, size in enumerate(sizes)}
    files["/D/S"] = b"small"
    write(lib, clock, day(1, 2), files)
    damage(lib, "PVOL1", "/D/L1")
    damage(lib, "PVOL1", "/D/L5")
    result = backup(lib, day(1, 3))
    assert (result.copied, result.failed) == (6, 2)
    assert sorted((f.path, f.message_id) for f in result.failures) == [("/D/L1", "CPF1F28"), ("/D/L5", "CPF1F28")]
    with lib.open("BVOL1") as bvol:
        assert not bvol.exists("/D/L1") and not bvol.exists("/D/L5")
        for path, data in files.items():
            if path not in ("/D/L1", "/D/L5"):
                assert bvol.read_verified(bvol.file_row(path)[1], path) == data
    # On a *PRIMARY target a file refused before its copy (a directory of its name) leaves
    # its digest unused; the files after it still get theirs.
    inzopt(lib, vol="PVOL2", now=day(1, 1))
    with lib.open("PVOL2") as pvol2:
        pvol2.mkdir("/D/L2", parents=True)
    other = cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/D", tovol="PVOL2", sltfile="*ALL"), now=day(1, 4))
    assert sorted((f.path, f.message_id) for f in other.failures) == [
        ("/D/L1", "CPF1F28"), ("/D/L2", "OPV0108"), ("/D/L5", "CPF1F28")]
    assert other.copied == 5
    with lib.open("PVOL2") as pvol2:
        for number in (0, 3, 4, 6):
            path = f"/D/L{number}"
            assert pvol2.read_verified(pvol2.file_row(path)[1], path) == files[path]


def test_tree_read_ahead_in_a_child_or_here_when_other_threads_run(lib, clock, monkeypatch):
    """A tree is read by a forked child; a process with other threads must not fork, and
    reads in process instead, with the same outcome."""
    import threading

    from optvol import copy_readahead

    files = {f"/D{d}/F{n}": os.urandom(100 + n) for d in range(3) for n in range(30)}
    write(lib, clock, day(1, 2), files)
    forks = []
    real_fork = copy_readahead.os.fork

    def counted_fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(copy_readahead.os, "fork", counted_fork)
    first = backup(lib, day(1, 3))
    assert len(forks) == 1 and first.copied == len(files)
    inzopt(lib, vol="BVOL2", type=VolumeType.BACKUP, now=day(1, 1))
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        second = backup(lib, day(1, 3), target="BVOL2")
    finally:
        release.set()
        other.join()
    assert len(forks) == 1  # no fork this time
    assert (second.copied, second.directories, second.failed) == (first.copied, first.directories, 0)
    with lib.open("BVOL1") as one, lib.open("BVOL2") as two:
        for path, data in files.items():
            assert one.read_verified(one.file_row(path)[1], path) == two.read_verified(two.file_row(path)[1], path) == data
            assert one.stat(path).modified == two.stat(path).modified


def test_target_full_is_a_per_file_failure(tmp_path, clock):
    lib = Library(tmp_path / "lib", clock=clock)
    inzopt(lib, vol="PVOL1", now=day(1, 1))
    inzopt(lib, vol="SMALL", capacity=1 << 20, now=day(1, 1))
    write(lib, clock, day(1, 2), {"/D/BIG": os.urandom(1_200_000), "/D/SMALL": b"fits"})
    result = cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/D", tovol="SMALL", crtdir=True), now=day(1, 3))
    assert result.copied == 1 and [f.message_id for f in result.failures] == ["CPF1F61"]


def test_a_backup_that_fills_up_keeps_every_file_that_fitted(tmp_path, clock):
    """The space runs out where the request log entry, written with the last group of
    files, no longer fits: that entry alone fails (one more failure, exit 1); the files that
    fitted stay, and so does the run after, onto the full backup."""
    lib = Library(tmp_path / "lib", clock=clock)
    inzopt(lib, vol="PVOL1", now=day(1, 1))
    inzopt(lib, vol="BFULL", type=VolumeType.BACKUP, capacity=1 << 20, now=day(1, 1))
    files = {f"/D/F{i:03}": os.urandom(1500) for i in range(260)} | {"/D/A0": os.urandom(3000)}
    write(lib, clock, day(1, 2), files)
    results = [backup(lib, day(1, 3 + run), target="BFULL") for run in range(3)]
    for result in results:
        assert result.failed and {f.message_id for f in result.failures} == {"CPF1F61"}
    assert any("request log entry" in f.message for r in results for f in r.failures)
    assert results[0].copied > 200
    with lib.open("BFULL") as bfull:
        held = bfull.listdir("/D")
        assert len(held) == results[0].copied + results[1].copied + results[2].copied
        for name in held:
            assert bfull.read_verified(bfull.file_row(f"/D/{name}")[1]) == files[f"/D/{name}"]
    assert chkoptvol(lib, vol="BFULL")[0].damaged == []


def test_a_longer_volume_id_that_would_put_a_path_past_294_characters_is_refused(lib, clock):
    """A hunt of session 19: a file at the limit of reference §3.1 (294 characters with
    /QOPT/<volume>) stayed listed, but no command could open it once its volume was converted,
    duplicated or renamed under a longer ID (CPF1F48 on every read). Each of them is refused
    now, before anything changes; an ID of the same length goes on."""
    path = "/" + "A" * 127 + "/" + "B" * 127 + "/" + "F" * (294 - len("/QOPT/PVOL1") - 256 - 1)
    assert len("/QOPT/PVOL1" + path) == 294
    write(lib, clock, day(1, 2), {path: b"at the limit"})
    assert backup(lib, day(1, 3)).copied == 1
    for refused in (lambda: cvtoptbku(lib, bkuvol="BVOL1", privol="BVOL1X"),
                    lambda: dupopt(lib, fromvol="PVOL1", tovol="PVOL1X", now=day(1, 4)),
                    lambda: lib.rename("PVOL1", "PVOL1X")):
        with pytest.raises(errors.InvalidError, match="CPF1F48"):
            refused()
    assert sorted(lib.volume_ids()) == ["BVOL1", "PVOL1"]
    with lib.open("BVOL1") as bvol:
        assert bvol.label()["type"] == VolumeType.BACKUP
    dupopt(lib, fromvol="PVOL1", tovol="PDUP1", now=day(1, 5))
    with lib.open("PDUP1") as dup:
        assert dup.read_bytes(path) == b"at the limit"
    with lib.locked():
        lib.remove("PVOL1")
    cvtoptbku(lib, bkuvol="BVOL1")  # *PRVPRIVOL: PVOL1 again, as long as before
    with lib.open("PVOL1") as converted:
        assert converted.read_bytes(path) == b"at the limit"


def test_cvtoptbku_names_and_refusals(lib, clock):
    write(lib, clock, day(1, 2), {"/A/F": b"1"})
    backup(lib, day(1, 3))
    with pytest.raises(errors.ExistsError):
        cvtoptbku(lib, bkuvol="BVOL1")  # *PRVPRIVOL while PVOL1 is still in the library
    with pytest.raises(errors.NotAllowedError) as not_backup:
        cvtoptbku(lib, bkuvol="PVOL1")
    assert not_backup.value.message_id == "OPV0401"
    info = cvtoptbku(lib, bkuvol="BVOL1", privol="RESTORED")
    assert (info.volume, info.type, info.backup.range_end) == ("RESTORED", VolumeType.PRIMARY, day(1, 3))
    assert not lib.exists("BVOL1")
    with lib.open("RESTORED") as restored:
        restored.write_bytes("/A/NEW", b"writable now")
        assert len(restored.requests()) == 1  # the history stays readable


def test_request_log_shows_fromtime_in_the_readers_time_zone(tmp_path):
    """DSPOPT *BKUHST: FROMTIME is stored as the run's local time with its offset (UTC here);
    a reader two hours east sees it in its own time, as it sees the request's time. A stored
    value that is no timestamp with an offset is shown as it is."""
    from cli_helpers import clean_env, run

    env_utc, env_east = clean_env(tmp_path), clean_env(tmp_path)
    env_utc["TZ"] = "UTC0"  # env_east keeps the helpers' zone, OPV-02: UTC+2

    def sh(env, *args, json_output=False):
        done = run(*args, library=tmp_path / "lib", env=env, json_output=json_output)
        assert done.rc == 0, done.err
        return done

    sh(env_utc, "inzopt", "PVOL1")
    sh(env_utc, "inzopt", "BVOL1", "--type", "*BACKUP")
    sh(env_utc, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--fromtime", "2026-01-01 00:00:00")
    sh(env_utc, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP")
    index = tmp_path / "lib" / "BVOL1.optvol" / "index.sqlite"
    stored = [json.loads(r[0])["FROMTIME"] for r in sqlite3.connect(index).execute("SELECT parameters FROM requests")]
    assert stored == ["2026-01-01T00:00:00.000000+00:00", "*BEGIN"]  # the on-disk format stays
    (first, second) = json.loads(sh(env_east, "dspopt", "BVOL1", "--data", "*BKUHST", json_output=True).out)
    assert first["parameters"]["FROMTIME"] == "2026-01-01T02:00:00.000000+02:00" and first["time"].endswith("+02:00")
    assert second["parameters"]["FROMTIME"] == "*BEGIN"
    # The human lines show times as every other display does (render.when): local, to the second.
    lines = sh(env_east, "dspopt", "BVOL1", "--data", "*BKUHST").text.splitlines()[1:]
    local = datetime.fromisoformat(first["time"]).strftime("%Y-%m-%d %H:%M:%S")
    assert lines[0].startswith(local + "  *COMPLETE") and lines[0].endswith("FROMTIME(2026-01-01 02:00:00)"), lines
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", lines[1]) and lines[1].endswith("FROMTIME(*BEGIN)"), lines
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE requests SET parameters = json_set(parameters, '$.FROMTIME', '2026-01-01T00:00:00')")
    shown = json.loads(sh(env_east, "dspopt", "BVOL1", "--data", "*BKUHST", json_output=True).out)
    assert [entry["parameters"]["FROMTIME"] for entry in shown] == ["2026-01-01T00:00:00"] * 2
    assert "FROMTIME(2026-01-01T00:00:00)" in sh(env_east, "dspopt", "BVOL1", "--data", "*BKUHST").text


def test_the_result_line_and_the_request_log_show_frompath_quoted_as_cl_and_visible(tmp_path):
    """hunt-cl F10: *BKUHST logged FROMPATH('/IT'S'), not CL (the quote not doubled), and the
    CPYOPT line and *BKUHST printed a bidi override in a path to the terminal as it is."""
    from cli_helpers import clean_env, run

    env = clean_env(tmp_path)

    def sh(*args):
        done = run(*args, library=tmp_path / "lib", env=env)
        assert done.rc == 0, done.err
        return done.text

    sh("inzopt", "PVOL1")
    sh("inzopt", "BVOL1", "--type", "*BACKUP")
    sh("mkdir", "/QOPT/PVOL1/IT'S", "/QOPT/PVOL1/ev\u202elif")
    quoted = sh("cpyopt", "PVOL1", "/IT'S", "BVOL1 *BACKUP")
    bidi = sh("cpyopt", "PVOL1", "/ev\u202elif", "BVOL1 *BACKUP")
    assert quoted.startswith("CPYOPT PVOL1 /IT'S -> BVOL1:") and bidi.startswith("CPYOPT PVOL1 '/ev\\u202elif' -> BVOL1:")
    log = sh("dspopt", "BVOL1", "--data", "*BKUHST")
    assert "FROMPATH('/IT''S')" in log and "FROMPATH('/ev\\u202elif')" in log and "\u202e" not in log, log


def test_cli_cpyopt_exit_codes_and_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPTVOL_LIBRARY"}
    base = [sys.executable, "-m", "optvol", "--library", str(tmp_path / "lib")]

    def run(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True, env=env)

    assert run("inzopt", "PVOL1").returncode == 0
    assert run("inzopt", "BVOL1", "--type", "backup").returncode == 0
    source = tmp_path / "f.txt"
    source.write_text("data")
    assert run("mkdir", "/QOPT/PVOL1/D").returncode == 0
    assert run("cp", str(source), "/QOPT/PVOL1/D/").returncode == 0
    done = run("--json", "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "yes")
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads(done.stdout) == {"copied": 1, "not_selected": 0, "failed": 0, "directories": 2, "failures": []}
    history = json.loads(run("--json", "dspopt", "BVOL1", "--data", "*BKUHST").stdout)
    assert len(history) == 1 and history[0]["outcome"] == "*COMPLETE"
    refused = run("cpyopt", "PVOL1", "/D", "BVOL1 *BACKUP", "--topath", "/E")
    assert refused.returncode == 5 and refused.stderr.startswith("optvol: OPV0404:")
    index = tmp_path / "lib" / "PVOL1.optvol" / "index.sqlite"
    sector = sqlite3.connect(index).execute("SELECT sector + header_sectors FROM files").fetchone()[0]
    with open(tmp_path / "lib" / "PVOL1.optvol" / "data.opv", "r+b") as handle:
        handle.seek(sector * SECTOR)
        handle.write(b"X")
    (tmp_path / "g.txt").write_text("more")
    assert run("cp", str(tmp_path / "g.txt"), "/QOPT/PVOL1/D/").returncode == 0
    partial = run("--json", "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "yes", "--sltfile", "all")
    assert partial.returncode == 1
    assert json.loads(partial.stdout)["failed"] == 1 and partial.stderr.startswith("optvol: OPT0125:")
    assert model.volume_id("bvol1") == "BVOL1"


def test_a_write_in_flight_when_cpyopt_starts_is_never_skipped(lib, clock):
    """The barrier: a file stamped before the request time but committed after it is copied now."""
    import threading
    import time

    write(lib, clock, day(1, 2), {"/D/OLD": b"old"})
    backup(lib, day(1, 3))
    stamped, release = threading.Event(), threading.Event()

    def writer():
        with lib.open("PVOL1") as volume, volume.batch():
            clock.now = day(1, 4)
            volume.write_bytes("/D/LATE", b"late")  # its change time is taken now, under the lock
            stamped.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    assert stamped.wait(5)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    first = backup(lib, day(1, 5))
    thread.join()
    assert time.monotonic() - started >= 0.25  # it waited for the write to commit
    assert first.copied == 1
    with lib.open("BVOL1") as bvol:
        assert bvol.read_verified(bvol.file_row("/D/LATE")[1], "/D/LATE") == b"late"


def test_a_write_committed_during_a_run_is_not_claimed_by_its_range(lib, clock, monkeypatch):
    """A file written on the primary while a backup runs, after its directory was read and
    dated before the run's time (the clock reads earlier than the request's), is not on the
    backup: the range the run records for that directory must not hold it (it holds only
    what the run saw as it began), and the next run copies it."""
    write(lib, clock, day(1, 2, hour=10), {"/D/OLD": b"old", "/E/OLD": b"old"})
    backup(lib, day(1, 2, hour=11))
    write(lib, clock, day(1, 2, hour=12), {"/D/NEW": b"new"})
    real_control = copying._Copier._control
    written = []

    def control(self, path, **kwargs):
        if path == "/D":  # /D is read and copied; its range is about to be recorded
            clock.now = day(1, 2, hour=13)
            with lib.open("PVOL1") as pvol:
                pvol.write_bytes("/D/DURING", b"written during the run")
                written.append(pvol.file_row("/D/DURING")[1].changed)
        return real_control(self, path, **kwargs)

    monkeypatch.setattr(copying._Copier, "_control", control)
    run = backup(lib, day(1, 2, hour=15))
    assert run.copied == 1 and written  # /D/NEW, not /D/DURING
    found = dir_range(lib, "/D")
    assert (found.range_start, found.range_end) == (BEGIN, day(1, 2, hour=15))
    with lib.open("BVOL1") as bvol:
        assert not bvol.exists("/D/DURING")
        seen = bvol.image.conn.execute("SELECT backup_seen FROM dirs WHERE path = '/D'").fetchone()[0]
    assert written[0] < model.to_micros(day(1, 2, hour=15)) and written[0] > seen  # dated inside, not held
    _backup_holds_its_ranges(lib, day(1, 2, hour=15), run_saw_all=False)
    monkeypatch.setattr(copying._Copier, "_control", real_control)
    assert backup(lib, day(1, 2, hour=16)).copied == 1
    _backup_holds_its_ranges(lib, day(1, 2, hour=16))


STEPS = st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from(["/A/F1", "/A/F2", "/A/B/G1", "/A/B/G2", "/TOP"]),
              st.binary(max_size=3000)),
    st.tuples(st.just("hide"), st.sampled_from(["/A/F1", "/A/B/G1", "/TOP"]), st.booleans()),
    st.tuples(st.just("remove"), st.sampled_from(["/A/F2", "/A/B/G2"]), st.none()),
    st.tuples(st.just("back"), st.none(), st.integers(1, 6)),  # the clock is set back some hours
    st.tuples(st.just("copy"), st.sampled_from(["*CHANGED", "*NEW", "*ALL"]),
              st.tuples(st.sampled_from(["BVOL1", "PVOL2"]), st.integers(-120, 240), st.none() | st.integers(0, 30))),
), min_size=1, max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
# A FROMTIME after the run's own time, then a change: the empty range of 5f45097.
@example(steps=[("write", "/A/F1", b""), ("copy", "*CHANGED", ("BVOL1", 0, 30)), ("write", "/A/F2", b"x"),
                ("copy", "*CHANGED", ("BVOL1", 0, None))])
# A write with the clock behind the last backup's time (issue 6): inside that range, not held by it.
@example(steps=[("write", "/A/F1", b"1"), ("copy", "*CHANGED", ("BVOL1", 240, None)), ("write", "/A/F2", b"2"),
                ("copy", "*CHANGED", ("BVOL1", 0, None))])
# The same, then a FROMTIME after that write inside the range: the ranges must not join across it.
@example(steps=[("write", "/A/F1", b"1"), ("copy", "*CHANGED", ("BVOL1", 240, None)), ("write", "/A/F2", b"2"),
                ("copy", "*CHANGED", ("BVOL1", 60, 4))])
# A change soon after a range's end: skipped only if the skip reached past the end.
@example(steps=[("write", "/A/F1", b"1"), ("copy", "*CHANGED", ("BVOL1", 30, None)), ("write", "/A/F2", b"2"),
                ("copy", "*CHANGED", ("BVOL1", 0, None))])
# New data written with the clock set back: dated before the copy the backup holds.
@example(steps=[("write", "/A/F1", b"1"), ("copy", "*CHANGED", ("BVOL1", 0, None)), ("back", None, 3),
                ("write", "/A/F1", b"2"), ("copy", "*CHANGED", ("BVOL1", 0, None))])
def test_totals_agree_with_the_copy_whatever_came_before(tmp_path_factory, steps):
    """Choice.selected_sql (the bar's totals) and Choice.selected (the copy) are one rule
    written twice: after any mix of writes, attribute changes, deletions and copies of any
    SLTFILE onto a backup or a primary, with writes and runs at times that may go back (a
    clock set back) and with any FROMTIME, the totals are what the copy writes. And after each copy onto
    the backup, every range holds what it promises, whatever the clock did before: the
    ranges that run moved, all their files; every other one, the files changed up to what
    its own run saw (``_backup_holds_its_ranges``)."""
    clock = Clock(day(1, 1))
    lib = Library(tmp_path_factory.mktemp("lib") / "lib", clock=clock)
    inzopt(lib, vol="PVOL1", now=day(1, 1))
    inzopt(lib, vol="BVOL1", type=VolumeType.BACKUP, now=day(1, 1))
    inzopt(lib, vol="PVOL2", now=day(1, 1))
    moment = day(1, 2)
    for number, (kind, what, how) in enumerate(steps):
        moment += timedelta(hours=1)
        clock.now = moment
        if kind == "copy":
            target, run_minutes, start_hours = how  # the run's time: minutes from this step's
            counted = []
            request = CopyRequest(fromvol="PVOL1", frompath="/", tovol=target, cpysubdir=True, sltfile=what,
                                  totype=VolumeType.BACKUP if target == "BVOL1" else VolumeType.PRIMARY,
                                  fromtime=None if start_hours is None else day(1, 2) + timedelta(hours=start_hours))
            # (plus the step's number in microseconds: no two runs at one time, so a range
            # that ends at this run's time is one this run moved)
            now = moment + timedelta(minutes=run_minutes, microseconds=number)
            result = cpyopt(lib, request, now=now, totals=lambda files, size, seen=counted: seen.append((files, size)))
            assert result.failed == 0
            assert counted == [(result.copied, result.bytes_copied)], (steps, kind, what, how)
            if target == "BVOL1":
                _backup_holds_its_ranges(lib, now)
            continue
        if kind == "back":
            moment -= timedelta(hours=how)
            continue
        with lib.open("PVOL1") as volume:
            if kind == "write":
                volume.mkdir(what.rsplit("/", 1)[0] or "/", parents=True, exist_ok=True)
                volume.write_bytes(what, how)
            elif volume.exists(what):
                if kind == "hide":
                    volume.set_attributes(what, hidden=how)
                else:
                    volume.remove(what)


def _backup_holds_its_ranges(lib: Library, run: datetime, *, run_saw_all: bool = True) -> None:
    """Reference §6.1, the promise of a range, checked right after a run at ``run``: every
    live file of a primary directory changed (``files.changed``) inside what its backup
    directory's range holds for certain (its start up to the lower of its end and what its
    run saw of the primary) is on the backup, the same bytes, dates and flags (read from
    both indexes). When nothing was written during the run (``run_saw_all``), a range this
    run moved saw all the primary holds now: its promise is its whole range."""
    files = ("SELECT d.path_key, f.name_key, f.changed, f.sha256, f.created, f.modified, f.attr_changed, f.flags"
             " FROM files AS f JOIN dirs AS d ON d.id = f.dir WHERE f.live = 1")
    with lib.open("PVOL1") as pvol, lib.open("BVOL1") as bvol:
        ranges = {row[0]: row[1:] for row in bvol.image.conn.execute(
            "SELECT path_key, backup_start, backup_end, backup_seen FROM dirs WHERE live = 1 AND backup_end IS NOT NULL")}
        for _start, end, seen in ranges.values():
            assert seen is not None  # every range of this (schema 3) volume saw the primary
            if end == model.to_micros(run) and run_saw_all:
                assert seen == pvol.image.meta("changed_high")
        held = {(row[0], row[1]): row[3:] for row in bvol.image.conn.execute(files)}
        for dir_key, name_key, changed, *kept in pvol.image.conn.execute(files):
            if dir_key in ranges:
                start, end, seen = ranges[dir_key]
                if (start is None or changed >= start) and changed <= min(end, seen):
                    assert held.get((dir_key, name_key)) == tuple(kept), (dir_key, name_key, start, end, seen, changed)


def test_progress_counts_files_as_they_are_written(lib, clock):
    """The progress callback (the bar's) moves with every file written, large ones one by
    one, before their group commits; it ends at what was copied."""
    sizes = [300 << 10] * 6 + [10] * 3  # six files above SMALL_FILE (256 KiB), each copied alone
    write(lib, clock, day(1, 2), {f"/D/F{i}": os.urandom(size) for i, size in enumerate(sizes)})
    calls = []
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    result = cpyopt(lib, request, now=day(1, 3), progress=lambda files, done: calls.append((files, done)))
    assert result.copied == len(sizes) and result.bytes_copied == sum(sizes)
    assert calls[-1] == (len(sizes), sum(sizes))
    assert [files for files, _ in calls] == sorted(files for files, _ in calls)  # never backwards
    # The three small files come in one piece; then each large file moves the count on its own.
    assert [files for files, _ in calls] == [3, 4, 5, 6, 7, 8, 9]


def test_totals_of_a_single_file_request(lib, clock):
    """FROMPATH names a file: the bar gets its totals too, the file and its bytes when it is
    chosen, nothing when *CHANGED finds it unchanged."""
    write(lib, clock, day(1, 2), {"/D/BIG": os.urandom(300 << 10)})
    for when, expected in ((day(1, 3), [(1, 300 << 10)]), (day(1, 4), [(0, 0)])):
        counted = []
        result = cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/D/BIG", tovol="BVOL1", totype=VolumeType.BACKUP),
                        now=when, totals=lambda files, size, seen=counted: seen.append((files, size)))
        assert counted == expected == [(result.copied, result.bytes_copied)]


@pytest.mark.parametrize("totype", [VolumeType.BACKUP, VolumeType.PRIMARY], ids=["backup", "primary"])
@pytest.mark.parametrize("sltfile", ["*CHANGED", "*NEW", "*ALL"])
def test_totals_are_what_the_copy_then_writes(lib, clock, sltfile, totype):
    """The bar's totals, counted by SQLite (``Choice.selected_sql``) apart from the selection
    the copy runs (``Choice.selected``), are the files and bytes the copy then writes: on a
    first run, after data, attribute and new-file changes, and with FROMTIME."""
    target = "BVOL1" if totype is VolumeType.BACKUP else "PVOL2"
    if target == "PVOL2":
        inzopt(lib, vol="PVOL2", now=day(1, 1))
    write(lib, clock, day(1, 2), {f"/A/F{i}": os.urandom(100 + i) for i in range(30)}
          | {f"/A/B/G{i}": os.urandom(3000 + i) for i in range(10)} | {"/TOP": b"top"})
    runs = []

    def run(when: datetime, start: datetime | None = None) -> None:
        counted = []
        request = CopyRequest(fromvol="PVOL1", frompath="/", tovol=target, totype=totype, cpysubdir=True,
                              sltfile=sltfile, fromtime=start)
        result = cpyopt(lib, request, now=when, totals=lambda files, size: counted.append((files, size)))
        assert result.failed == 0
        assert counted == [(result.copied, result.bytes_copied)]
        runs.append(result.copied)

    run(day(1, 3))
    write(lib, clock, day(1, 4), {"/A/F1": b"new data", "/A/B/G2": os.urandom(5000), "/A/NEW": b"new file"})
    clock.now = day(1, 4)
    with lib.open("PVOL1") as pvol:
        pvol.set_attributes("/A/F2", hidden=True)  # (read-only would refuse *ALL's replacement on a primary)
    run(day(1, 5))
    write(lib, clock, day(1, 6), {"/A/F3": b"later", "/A/B/LATER": b"later file"})
    run(day(1, 7), start=day(1, 6))
    run(day(1, 8))  # nothing changed since the last run
    expected = {"*CHANGED": [41, 4, 2, 0], "*NEW": [41, 1, 1, 0], "*ALL": [41, 42, 2, 43]}[sltfile]
    assert runs == expected


# ------------------------------------------------------------ the cycle collector


def test_copy_runs_without_the_cycle_collector_and_leaves_no_cycles(lib, clock, monkeypatch):
    """CPYOPT pauses the collector (gc_pause.py): sound only while a copy makes no cycles,
    which this checks, with the read-ahead child and a failed file in the run."""
    files = {f"/D{d}/F{i}": os.urandom(100 + i) for d in range(3) for i in range(200)}
    files["/D1/BIG"] = os.urandom(400_000)  # a large file: the hashing threads too
    write(lib, clock, day(1, 2), files)
    inzopt(lib, vol="PVOL2", now=day(1, 2))
    with lib.open("PVOL2") as target:  # a directory where a file should land: that file fails
        target.mkdir("/D0/F7", parents=True)
    states = []
    real_run = copying._Copier.run

    def run(self):
        states.append(gc.isenabled())
        result = real_run(self)
        states.append(gc.collect())  # still paused: what the copy left for the collector
        return result

    monkeypatch.setattr(copying._Copier, "run", run)
    gc.collect()
    result = cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/", tovol="PVOL2", cpysubdir=True), now=day(1, 3))
    assert (result.copied, result.failed) == (len(files) - 1, 1)
    assert states == [False, 0]  # paused, and no cyclic garbage at all
    assert gc.isenabled()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_pause_gives_back_the_collector_as_it_found_it(enabled):
    gc.enable() if enabled else gc.disable()
    try:
        with pytest.raises(RuntimeError), no_cyclic_gc():
            assert not gc.isenabled()
            raise RuntimeError("the block fails")
        assert gc.isenabled() == enabled
    finally:
        gc.enable()


def test_the_reading_of_a_directory_holds_a_piece_never_the_directory(lib, clock):
    """One directory of many files: the selection's rows come as the query gives them and
    go out in pieces, so the reading side's memory stays the same at four times the files
    (a directory of 1,000,000 files once took about 1 GiB of candidates before its first piece)."""
    import tracemalloc

    from optvol.copy_select import Choice, Pick, Selection, read_directory

    peaks = []
    for n, name in ((3000, "SMALL"), (12000, "LARGE")):
        clock.now = day(1, 2)
        inzopt(lib, vol=f"P{name}", now=clock.now)
        with lib.open(f"P{name}") as volume, volume.batch():
            volume.mkdir("/D")
            for i in range(n):
                volume.write_bytes(f"/D/F{i:05}", b"%05d" % i)
        choice = Choice("*CHANGED", to_backup=True, keep_dates=True, now=model.to_micros(day(1, 3)), start=None,
                        target="BVOL1", target_format=None)
        with lib.open(f"P{name}") as source, lib.open("BVOL1") as target, Selection(source, target) as selection:
            tracemalloc.start()
            files = 0
            for item in read_directory(selection, source, choice, source.dir_row("/D"), "/D"):
                if isinstance(item, Pick):
                    assert item == Pick(0, False)
                else:
                    files += len(item.small)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        assert files == n
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_consolidating_a_whole_volume_under_topath_matches_its_root_files(tmp_path, clock):
    """FROMPATH('/') TOPATH('/VOLA'): the source root's files are compared with their copies
    in /VOLA like any directory's. They were not (the root's target path was '/VOLA/'), so
    *NEW wrote them again on every run and a second source replaced the first one's."""
    lib = Library(tmp_path / "lib", clock=clock)
    for vol in ("VOLA", "VOLB", "ARCH"):
        inzopt(lib, vol=vol, now=day(1, 1))
    for vol in ("VOLA", "VOLB"):
        clock.now = day(1, 2)
        with lib.open(vol) as volume:
            volume.mkdir("/SUB")
            volume.write_bytes("/report.txt", f"from {vol}".encode())
            volume.write_bytes("/SUB/x", f"from {vol}".encode())
    new = dict(tovol="ARCH", topath="/ALL", cpysubdir=True, crtdir=True, sltfile="*NEW")
    assert cpyopt(lib, CopyRequest(fromvol="VOLA", frompath="/", **new), now=day(1, 3)).copied == 2
    again = cpyopt(lib, CopyRequest(fromvol="VOLA", frompath="/", **new), now=day(1, 4))
    assert (again.copied, again.not_selected) == (0, 2)
    changed = cpyopt(lib, CopyRequest(fromvol="VOLA", frompath="/", **{**new, "sltfile": "*CHANGED"}), now=day(1, 5))
    assert changed.copied == 0
    assert cpyopt(lib, CopyRequest(fromvol="VOLB", frompath="/", **new), now=day(1, 6)).copied == 0
    with lib.open("ARCH") as volume:
        assert volume.read_bytes("/ALL/report.txt") == b"from VOLA" and volume.read_bytes("/ALL/SUB/x") == b"from VOLA"
        assert len(volume.versions("/ALL/report.txt")) == 1


@pytest.mark.parametrize("size", [100, 300_000], ids=["small", "large"])
@pytest.mark.parametrize("totype", [VolumeType.PRIMARY, VolumeType.BACKUP])
def test_a_copy_whose_path_would_be_too_long_on_the_target_fails_alone(tmp_path, clock, size, totype):
    """/QOPT/S/D…/F… fits in 294 characters; /QOPT/<32-character ID>/D…/F… does not: that
    file fails with CPF1F48 (exit 1), instead of landing where no command reaches it and
    recover drops it."""
    lib = Library(tmp_path / "lib", clock=clock)
    target = "T" * 32
    inzopt(lib, vol="S", now=day(1, 1))
    inzopt(lib, vol=target, now=day(1, 1), type=totype)
    long_path = "/" + "D" * 200 + "/" + "F" * 80
    write(lib, clock, day(1, 2), {long_path: os.urandom(size), "/" + "D" * 200 + "/ok": b"fits"}, vol="S")
    result = cpyopt(lib, CopyRequest(fromvol="S", frompath="/", tovol=target, totype=totype, cpysubdir=True),
                    now=day(1, 3))
    assert result.copied == 1 and [(f.path, f.message_id) for f in result.failures] == [(long_path, "CPF1F48")]
    assert "294" in result.failures[0].message


def test_one_file_whose_directories_and_name_pass_256_characters_is_copied(tmp_path, clock):
    """Reference §3.1: the 256 characters are the directory names'; the file name takes what
    the 294 leave. CPYOPT of such a file alone counted its name as a directory's."""
    lib = Library(tmp_path / "lib", clock=clock)
    inzopt(lib, vol="S", now=day(1, 1))
    inzopt(lib, vol="S2", now=day(1, 1))
    path = "/" + "D" * 200 + "/" + "F" * 80
    write(lib, clock, day(1, 2), {path: b"long"}, vol="S")
    assert cpyopt(lib, CopyRequest(fromvol="S", frompath=path, tovol="S2", crtdir=True), now=day(1, 3)).copied == 1
    other = CopyRequest(fromvol="S", frompath=path, tovol="S2", topath="/" + "E" * 200 + "/" + "G" * 80, crtdir=True)
    assert cpyopt(lib, other, now=day(1, 4)).copied == 1
    with lib.open("S2") as volume:
        assert volume.read_bytes(path) == b"long"
    with pytest.raises(errors.InvalidError, match="CPF1F48"):  # a directory's name does count
        cpyopt(lib, CopyRequest(fromvol="S", frompath="/" + "D" * 200, tovol="S2", topath="/" + "E" * 200 + "/" + "E" * 60,
                                crtdir=True), now=day(1, 5))


def test_a_file_s_topath_ending_in_a_slash_is_refused(lib, clock):
    write(lib, clock, day(1, 2), {"/D/a": b"a"})
    inzopt(lib, vol="TGT", now=day(1, 1))
    with pytest.raises(errors.InvalidError, match="CPF1F48") as caught:
        cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/D/a", tovol="TGT", topath="/NEWDIR/", crtdir=True), now=day(1, 3))
    assert "names a directory" in str(caught.value)
    with lib.open("TGT") as volume:
        assert not volume.exists("/NEWDIR")


def test_a_source_that_ends_inside_a_large_file_is_the_source_s_damage(lib, clock):
    """The kernel copy meets the end of the source's data partition: CPF1F28 naming the
    source file on the source volume, not OPV0201 naming the target."""
    write(lib, clock, day(1, 2), {"/D/ok": b"ok", "/D/big": os.urandom(600_000)})  # /D/ok lies before the cut
    inzopt(lib, vol="TGT", now=day(1, 1))
    with lib.open("PVOL1") as volume:
        _, row = volume.file_row("/D/big")
        cut = (row.sector + row.header_sectors) * volume.image.sector_size + 100_000
    os.truncate(lib.root / "PVOL1.optvol" / "data.opv", cut)
    result = cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/D", tovol="TGT", crtdir=True), now=day(1, 3))
    assert [(f.path, f.message_id) for f in result.failures] == [("/D/big", "CPF1F28")]
    assert "PVOL1" in result.failures[0].message


def test_a_changed_restore_leaves_a_later_file_on_the_primary_alone(lib, clock):
    """NEWPRI's own /D/a, rewritten after the backup's version was made (a rewrite keeps the
    attribute-changed date): the later of each side's dates decides, and the primary's is later."""
    inzopt(lib, vol="NEWPRI", now=day(1, 1))
    clock.now = day(1, 2)
    with lib.open("NEWPRI") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/a", b"newpri, first")
    write(lib, clock, day(1, 3), {"/D/a": b"from the primary"})
    backup(lib, day(1, 4))
    clock.now = day(1, 5)
    with lib.open("NEWPRI") as volume:
        volume.write_bytes("/D/a", b"newpri, latest")
        assert volume.stat("/D/a").attr_changed < day(1, 3) < volume.stat("/D/a").modified
    request = CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/D", tovol="NEWPRI")
    assert cpyopt(lib, request, now=day(1, 6)).copied == 0
    with lib.open("NEWPRI") as volume:
        assert volume.read_bytes("/D/a") == b"newpri, latest"


def test_one_file_too_long_on_the_target_is_refused_before_its_directory_is_made(tmp_path, clock):
    lib = Library(tmp_path / "lib", clock=clock)
    target = "T" * 32
    inzopt(lib, vol="S", now=day(1, 1))
    inzopt(lib, vol=target, now=day(1, 1))
    path = "/" + "D" * 200 + "/" + "F" * 80
    write(lib, clock, day(1, 2), {path: b"long"}, vol="S")
    with pytest.raises(errors.InvalidError, match="CPF1F48"):
        cpyopt(lib, CopyRequest(fromvol="S", frompath=path, tovol=target, crtdir=True), now=day(1, 3))
    with lib.open(target) as volume:
        assert volume.listdir("/") == []


def test_a_directory_topath_with_a_bad_name_is_a_directory_name_error(lib, clock):
    write(lib, clock, day(1, 2), {"/SRC/f": b"f"})
    inzopt(lib, vol="TGT", now=day(1, 1))
    with pytest.raises(errors.InvalidError, match="^CPF1F01"):
        cpyopt(lib, CopyRequest(fromvol="PVOL1", frompath="/SRC", tovol="TGT", topath="/A-B", crtdir=True), now=day(1, 3))


@pytest.mark.parametrize("field, value", [("copytype", "hello world"), ("copytype", "*system"), ("sltfile", "*BOGUS")])
def test_a_program_s_request_with_a_value_cl_would_refuse_is_refused_first(lib, clock, field, value):
    """hunt24b F4: the Python API took any COPYTYPE and logged it on the backup, and checked
    SLTFILE only after the backup's owner (reference §5.9: values are step 1)."""
    write(lib, clock, day(1, 1), {"/D/A": b"a"})
    backup(lib, day(1, 2), path="/D")
    inzopt(lib, vol="PVOL2", now=day(1, 3))
    with lib.open("BVOL1") as bvol:
        before = (bvol.requests(), bvol.label())
    for source in ("PVOL1", "PVOL2"):  # (PVOL2: BVOL1 belongs to PVOL1, which is OPV0403 once values pass)
        request = CopyRequest(fromvol=source, frompath="/D", tovol="BVOL1", totype=VolumeType.BACKUP,
                              **{field: value})
        with pytest.raises(errors.InvalidError) as refused:
            cpyopt(lib, request, now=day(1, 4))
        assert refused.value.message_id == "OPV0005" and field.upper() in refused.value.text
    with lib.open("BVOL1") as bvol:
        assert (bvol.requests(), bvol.label()) == before


def test_a_full_backup_s_failures_say_which_control_record_failed(tmp_path):
    """hunt24k F1 / hunt24h F6: the volume's control record and the root directory's both
    failed as path "/" with the same text: a reader took the root's range for unmoved."""
    now = day(5, 1)
    library = Library(tmp_path / "lib", clock=lambda: now)
    inzopt(library, vol="P", now=now)
    inzopt(library, vol="B", now=now, type=VolumeType.BACKUP, capacity=1 << 20)
    with library.open("B") as target:
        available = target.info().available
    with library.open("P") as source:
        source.mkdir("/A")
        source.write_bytes("/A/f", b"x" * (available - 2048 - 3 * 2048 - 2 * 2048))
    result = cpyopt(library, CopyRequest(fromvol="P", frompath="/", tovol="B", totype=VolumeType.BACKUP,
                                         cpysubdir=True), now=now)
    messages = {(f.path, f.message.split(":")[0]) for f in result.failures}
    assert ("/", "the volume's control record") in messages, messages
    assert all(text != "No free space on volume B" for _, text in messages), messages
    with library.open("B") as target:
        assert target.info().backup is None  # the volume's range did not move
        assert target.dir_row("/").info().backup.range_end is not None  # the root's did
