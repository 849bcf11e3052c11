"""recover and CHKOPTVOL replay consecutive FILE records of one directory with one change
stamp (what CPYOPT's ``write_files`` writes) together (``recovery._FileRun``). The index they
rebuild must be, row for row, the one the records give replayed one at a time (a run of at
most one record: ``_FileRun.LIMIT = 1``), with the same damage reported in the same order,
and the one the commands kept."""
from __future__ import annotations

import os

import pytest

from conftest import make_volume
from integrity_helpers import flip, index_dump
from optvol import recovery
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.image import replay
from optvol.model import MediaType, VolumeType


def _dump(library, vol: str) -> dict:
    return index_dump(library.root / f"{vol}.optvol" / "index.sqlite")


def _recovered(library, vol: str, monkeypatch, *, limit: int) -> tuple[dict, list, list[int]]:
    """recover ``vol`` with runs of at most ``limit`` records: (its index, the damage it
    reported, the length of each run replayed together)."""
    runs, write = [], recovery._FileRun._write

    def counted(self, run):
        runs.append(len(run))
        return write(self, run)

    with monkeypatch.context() as patched:
        patched.setattr(recovery._FileRun, "LIMIT", limit)
        patched.setattr(recovery._FileRun, "_write", counted)
        report = recovery.recover(library, vol=vol)
    return _dump(library, vol), report.damaged, runs


def _backup(library, clock, *, udf: bool = False) -> str:
    """PVOL1 with three directories of 40 files, backed up onto BVOL1 (or copied onto the UDF
    primary UVOL1); then files replaced, added and removed, and copied again (*CHANGED).
    The target's ID."""
    target = "UVOL1" if udf else "BVOL1"
    make_volume(library, "PVOL1")
    if udf:
        make_volume(library, target, medtype=MediaType.DVD_RAM)
    else:
        make_volume(library, target, type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        for d in ("A", "B", "C"):
            volume.mkdir(f"/{d}")
            for n in range(40):
                volume.write_bytes(f"/{d}/f{n:02}", f"{d}{n}".encode() * (n + 1))
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol=target, cpysubdir=True, crtdir=udf,
                          totype=VolumeType.PRIMARY if udf else VolumeType.BACKUP)
    assert cpyopt(library, request, now=clock()).failed == 0
    with library.open("PVOL1") as volume:
        for n in range(0, 40, 3):
            volume.write_bytes(f"/B/f{n:02}", b"again" * n)
        volume.write_bytes("/C/new", b"new")
        volume.remove("/A/f07")
    assert cpyopt(library, request, now=clock()).copied == 15
    return target


@pytest.mark.parametrize("udf", [False, True], ids=["backup", "udf-primary"])
def test_a_copy_s_runs_rebuild_the_index_the_commands_kept(library, clock, monkeypatch, udf):
    """On UDF a replaced version's sectors are freed: the ledger must come out the same."""
    target = _backup(library, clock, udf=udf)
    kept = _dump(library, target)
    together, damaged, runs = _recovered(library, target, monkeypatch, limit=recovery._FileRun.LIMIT)
    assert damaged == [] and together == kept
    assert runs == [40, 40, 40, 14]  # (/C/new, a run of one, is replayed as a user's file)
    one_by_one, damaged, runs = _recovered(library, target, monkeypatch, limit=1)
    assert damaged == [] and runs == [] and one_by_one == kept
    assert chkoptvol(library, vol=target)[0].damaged == []


def _sector_of(library, vol: str, kind: str, path: str) -> int:
    fd = os.open(library.root / f"{vol}.optvol" / "data.opv", os.O_RDONLY)
    try:
        return next(found.sector for found in replay.scan(fd, 2048)
                    if found.header and found.header.kind.name == kind and found.header.body.get("path") == path)
    finally:
        os.close(fd)


def test_a_damaged_record_in_a_run_splits_it_and_is_reported_in_its_place(library, clock, monkeypatch):
    """A FILE record in the middle of a run whose header no longer reads (the first version
    of /B/f21): the records before and after it are replayed, it is named once, where it
    lies, and its second version, in the next run, keeps its number 2."""
    _backup(library, clock)
    at = _sector_of(library, "BVOL1", "FILE", "/B/f21")
    flip(library.root / "BVOL1.optvol" / "data.opv", at * 2048 + 100)
    together, damaged_together, runs = _recovered(library, "BVOL1", monkeypatch, limit=recovery._FileRun.LIMIT)
    assert [d[0] for d in damaged_together] == [at] and runs == [40, 21, 18, 40, 14]
    # /A/f21, /C/f21 and /B/f21 (files: id, dir, name, name_key, live, version, ...)
    assert sorted(row[5] for row in together["files"] if row[2] == "f21") == [1, 1, 2]
    one_by_one, damaged_one_by_one, _ = _recovered(library, "BVOL1", monkeypatch, limit=1)
    assert (together, damaged_together) == (one_by_one, damaged_one_by_one)


def test_a_record_refused_in_a_run_is_refused_alone(library, clock, monkeypatch):
    """CPYOPT onto a primary writes /D/a, /D/X and /D/z in one run; /D/X had been a directory,
    removed before. With the record of its removal damaged, the replay still has /D/X as a
    directory: that FILE record alone is refused (OPV0108), in its place among the damage,
    and /D/a and /D/z are replayed."""
    make_volume(library, "PVOL1")
    make_volume(library, "PVOL2")
    with library.open("PVOL2") as volume:
        volume.mkdir("/D/X", parents=True)
        volume.rmdir("/D/X")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        for name in ("a", "X", "z"):
            volume.write_bytes(f"/D/{name}", name.encode())
    request = CopyRequest(fromvol="PVOL1", frompath="/D", tovol="PVOL2", topath="/D", crtdir=True)
    assert cpyopt(library, request, now=clock()).copied == 3
    removed = _sector_of(library, "PVOL2", "REMOVE_DIRECTORY", "/D/X")
    flip(library.root / "PVOL2.optvol" / "data.opv", removed * 2048 + 100)
    together, damaged_together, runs = _recovered(library, "PVOL2", monkeypatch, limit=recovery._FileRun.LIMIT)
    assert runs == [3] and [reason.split(":")[0] for _, _, reason in damaged_together] == [
        "no sound record header", "FILE record not applied"]
    assert damaged_together[1][2].endswith("is a directory; writing needs a file.")
    one_by_one, damaged_one_by_one, _ = _recovered(library, "PVOL2", monkeypatch, limit=1)
    assert (together, damaged_together) == (one_by_one, damaged_one_by_one)
    assert sorted(row[2] for row in together["files"]) == ["a", "z"]


def test_a_primary_written_in_batches_replays_in_runs_each_file_its_own_change_time(library, clock, monkeypatch):
    """A batch of writes (``cp -r``, import-iso) stamps each file with its own change time:
    a run keeps each one's, and a file written again later in the run's directory, a rename
    and a delete between batches come out as one at a time gives them."""
    make_volume(library, "PVOL1", medtype=MediaType.DVD_RAM)
    with library.open("PVOL1") as volume:
        volume.mkdir("/A")
        with volume.batch():
            for n in range(25):
                volume.write_bytes(f"/A/f{n:02}", bytes([n]) * (n * 100))
        volume.write_bytes("/A/f03", b"again")
        volume.rename("/A/f04", "/A/g04")
        volume.remove("/A/f05")
        with volume.batch():
            for n in range(10, 30):
                volume.write_bytes(f"/A/f{n:02}", b"second batch %d" % n)
    kept = _dump(library, "PVOL1")
    assert len({row[14] for row in kept["files"]}) == len(kept["files"])  # (files.changed: each its own)
    together, damaged, runs = _recovered(library, "PVOL1", monkeypatch, limit=recovery._FileRun.LIMIT)
    assert damaged == [] and together == kept and runs == [25, 20]
    one_by_one, damaged, runs = _recovered(library, "PVOL1", monkeypatch, limit=1)
    assert damaged == [] and runs == [] and one_by_one == kept
