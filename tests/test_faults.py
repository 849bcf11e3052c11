"""Reliability under kill -9 (DESIGN §3 commit protocol, §6 reliability bars).

A child process (``fault_driver.py``) runs an operation and reports each item once it is
done; the parent kills it with SIGKILL after a random delay (a seeded ``random.Random``,
spread over the operation's measured duration). Then: the library opens with no journal
left half done, every volume opens, CHKOPTVOL finds nothing damaged, every item reported
done is intact, nothing partial is visible, and a re-run of the operation completes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import make_volume
from fault_driver import content, size_of
from integrity_helpers import volume_dir
from optvol.checking import chkoptvol
from optvol.conversion import cvtoptbku
from optvol.copying import CopyRequest, cpyopt
from optvol.duplicate import dupopt
from optvol.initialize import inzopt
from optvol.library import JOURNAL, TMP, Library
from optvol.model import VolumeType

DRIVER = Path(__file__).parent / "fault_driver.py"
SEED = 20260101


def clock() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Run:
    reported: list[str]
    finished: bool
    lines: list[str]
    elapsed: float  # from ready to the end or the kill


def run_child(op: str, root: Path, args: dict, *, delay: float | None) -> Run:
    """Start the driver; kill it ``delay`` seconds after it is ready (None: let it finish)."""
    progress = root.parent / f"{root.name}.progress"
    progress.write_text("")
    child = subprocess.Popen([sys.executable, str(DRIVER), op, str(root), json.dumps(args), str(progress)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in progress.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                out, err = child.communicate()
                raise AssertionError(f"driver did not start: {err.decode()}")
            time.sleep(0.002)
        ready = time.monotonic()
        if delay is None:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err.decode()
        else:
            end = time.monotonic() + delay
            while time.monotonic() < end and child.poll() is None:
                time.sleep(0.001)
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            _, err = child.communicate(timeout=60)
            assert child.returncode in (0, -signal.SIGKILL), err.decode()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    elapsed = time.monotonic() - ready
    lines = progress.read_text().splitlines()
    return Run([line[5:] for line in lines if line.startswith("done ")], "end" in lines, lines, elapsed)


def common_checks(root: Path) -> Library:
    """The library opens with no journal left; every volume opens and checks clean."""
    library = Library(root, clock=clock)
    assert not (root / JOURNAL).exists()
    for result in chkoptvol(library, vol="*ALL"):
        assert result.damaged == [], (result.volume, result.damaged)
    for vol in library.volume_ids():
        with library.open(vol) as volume:
            size = os.path.getsize(volume_dir(root, vol) / "data.opv")
            assert size == volume.image.meta("committed_end") * volume.image.sector_size  # tail cut
    return library


def read_any(volume, path: str) -> bytes:
    """The verified bytes of a file on any volume type (a backup's too)."""
    _, row = volume.file_row(path)
    return b"".join(volume.verified_chunks(row, path))


def visible_files(volume) -> dict[str, bytes]:
    return {info.path: read_any(volume, info.path) for info in volume.iter_files("/", recursive=True)}


class Scenario:
    """One operation: a template library, the child's arguments, the checks, a re-run."""

    op = ""
    runs = 0

    def template(self, root: Path) -> None: ...

    def args(self) -> dict: ...

    def check(self, library: Library, run: Run) -> None: ...

    def rerun(self, library: Library, run: Run) -> None: ...


def _tree(library: Library, vol: str, *, dirs: int, per_dir: int, size: int) -> dict[str, bytes]:
    expected = {}
    with library.open(vol) as volume, volume.batch():
        for d in range(dirs):
            volume.mkdir(f"/D{d}")
            for i in range(per_dir):
                path = f"/D{d}/F{i}"
                expected[path] = content(path, size_of(path, size))
                volume.write_bytes(path, expected[path])
    return expected


class CpyoptTree(Scenario):
    op, runs = "cpyopt_tree", 12

    def template(self, root):
        library = Library(root, clock=clock)
        make_volume(library, "PVOL1")
        self.expected = _tree(library, "PVOL1", dirs=10, per_dir=20, size=600)
        with library.open("PVOL1") as volume, volume.batch():  # large files: kernel copy, hashed ahead
            volume.mkdir("/LARGE")
            for i in range(5):
                path = f"/LARGE/F{i}"
                self.expected[path] = content(path, size_of(path, 300_000))
                volume.write_bytes(path, self.expected[path])
        make_volume(library, "BVOL1", type=VolumeType.BACKUP)

    def args(self):
        return {"from": "PVOL1", "to": "BVOL1", "batch_files": 7}  # groups end inside directories

    def check(self, library, run):
        with library.open("BVOL1") as backup:
            seen = visible_files(backup)
            for path, data in seen.items():
                assert data == self.expected[path], path
            assert set(run.reported) <= set(seen)
            # A directory whose complete range is recorded holds every one of its files.
            for d in {p.rsplit("/", 1)[0] for p in self.expected}:
                if backup.exists(d) and backup.stat(d).backup and backup.stat(d).backup.range_end is not None:
                    assert {p for p in seen if p.startswith(d + "/")} == {p for p in self.expected if p.startswith(d + "/")}, d

    def rerun(self, library, run):
        request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
        assert not cpyopt(library, request, now=clock()).failures
        with library.open("BVOL1") as backup:
            assert visible_files(backup) == self.expected
            assert backup.label()["primary_volume"] == "PVOL1"
            assert backup.info().backup is not None  # the whole-volume range is recorded


class WriteBatches(Scenario):
    op, runs = "write_batches", 8
    dirs = [f"B{d}" for d in range(10)]

    def template(self, root):
        make_volume(Library(root, clock=clock), "PVOL1")

    def args(self):
        return {"vol": "PVOL1", "dirs": self.dirs, "per_dir": 20, "size": 800}

    def expected(self, path):
        return content(path, size_of(path, 800))

    def check(self, library, run):
        with library.open("PVOL1") as volume:
            seen = visible_files(volume)
            for path, data in seen.items():
                assert data == self.expected(path), path
            assert set(run.reported) <= set(seen)
            for d in volume.listdir("/"):
                assert len(volume.listdir(f"/{d}")) == 20  # a batch is all or nothing

    def rerun(self, library, run):
        with library.open("PVOL1") as volume:
            missing = [d for d in self.dirs if not volume.exists(f"/{d}")]
        child = run_child(self.op, library.root, {**self.args(), "dirs": missing}, delay=None)
        assert child.finished
        with library.open("PVOL1") as volume:
            assert len(visible_files(volume)) == 200


class WriteSingle(Scenario):
    op, runs = "write_single", 8
    paths = [f"/S{i}" for i in range(150)]

    def template(self, root):
        make_volume(Library(root, clock=clock), "PVOL1")

    def args(self):
        return {"vol": "PVOL1", "paths": self.paths, "size": 1200}

    def check(self, library, run):
        with library.open("PVOL1") as volume:
            seen = visible_files(volume)
            for path, data in seen.items():
                assert data == content(path, size_of(path, 1200)), path
            assert set(run.reported) <= set(seen)
            assert len(seen) <= len(run.reported) + 1  # at most the write in flight committed unreported
            assert not [n for n in os.listdir(volume_dir(library.root, "PVOL1"))
                        if n not in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "data.opv", "lock")
                        and not n.startswith("tmp")]

    def rerun(self, library, run):
        with library.open("PVOL1") as volume:
            missing = [p for p in self.paths if not volume.exists(p)]
        assert run_child(self.op, library.root, {**self.args(), "paths": missing}, delay=None).finished
        with library.open("PVOL1") as volume:
            assert len(visible_files(volume)) == len(self.paths)


class InzoptCreate(Scenario):
    op, runs = "inzopt_create", 6
    vols = [f"NEW{i}" for i in range(8)]

    def template(self, root):
        Library(root, clock=clock)

    def args(self):
        return {"vols": self.vols}

    def check(self, library, run):
        ids = library.volume_ids()
        assert set(run.reported) <= set(ids) <= set(self.vols)
        for vol in ids:
            with library.open(vol) as volume:
                assert volume.label()["text"] == f"made {vol}" and volume.info().files == 0

    def rerun(self, library, run):
        for vol in self.vols:
            if vol not in library.volume_ids():
                inzopt(library, vol=vol, now=clock(), text=f"made {vol}", capacity=8 << 20)
        assert library.volume_ids() == sorted(self.vols)
        assert list((library.root / TMP).iterdir()) == []  # leftovers of the killed build are gone


class InzoptReinit(Scenario):
    op, runs = "inzopt_reinit", 6
    names = ["REA", "REB"]

    def template(self, root):
        library = Library(root, clock=clock)
        make_volume(library, "REA")
        with library.open("REA") as volume:
            volume.change_label(text="gen0")
        self.files = _tree(library, "REA", dirs=2, per_dir=25, size=500)

    def args(self):
        return {"names": self.names, "first": 1, "last": 12}

    def check(self, library, run):
        ids = library.volume_ids()
        assert len(ids) == 1, ids  # old or new, never both, never none
        with library.open(ids[0]) as volume:
            gen = int(volume.label()["text"][3:])
            last = int(run.reported[-1]) if run.reported else 0
            assert gen in (last, last + 1)
            assert ids[0] == self.names[gen % 2]
            if gen == 0:
                assert visible_files(volume) == self.files
            else:
                assert volume.info().files == 0
        self.gen = gen

    def rerun(self, library, run):
        for gen in (self.gen + 1, self.gen + 2):
            inzopt(library, vol=self.names[(gen - 1) % 2], newvol=self.names[gen % 2], check=False,
                   text=f"gen{gen}", now=clock())
        assert library.volume_ids() == [self.names[(self.gen + 2) % 2]]
        assert list((library.root / TMP).iterdir()) == []


class Cvtoptbku(Scenario):
    op, runs = "cvtoptbku", 6
    pairs = [(f"B{i}", f"P{i}") for i in range(5)]

    def template(self, root):
        library = Library(root, clock=clock)
        make_volume(library, "PVOL1")
        self.expected = _tree(library, "PVOL1", dirs=2, per_dir=20, size=500)
        make_volume(library, "B0", type=VolumeType.BACKUP)
        request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="B0", totype=VolumeType.BACKUP, cpysubdir=True)
        assert not cpyopt(library, request, now=clock()).failures
        for backup, _ in self.pairs[1:]:
            dupopt(library, fromvol="B0", tovol=backup, now=clock())

    def args(self):
        return {"pairs": self.pairs}

    def check(self, library, run):
        ids = set(library.volume_ids())
        for backup, primary in self.pairs:
            assert (backup in ids) != (primary in ids), ids  # converted or not, never half
            with library.open(primary if primary in ids else backup) as volume:
                assert volume.label()["type"] == (VolumeType.PRIMARY if primary in ids else VolumeType.BACKUP)
                assert volume.label()["primary_volume"] == "PVOL1"
                assert visible_files(volume) == self.expected
        assert {p for b, p in self.pairs if b in run.reported} <= ids

    def rerun(self, library, run):
        for backup, primary in self.pairs:
            if library.exists(backup):
                cvtoptbku(library, bkuvol=backup, privol=primary)
        assert set(library.volume_ids()) == {"PVOL1"} | {p for _, p in self.pairs}


class Dupopt(Scenario):
    op, runs = "dupopt", 8
    targets = [f"D{i}" for i in range(4)]

    def template(self, root):
        library = Library(root, clock=clock)
        make_volume(library, "PVOL1")
        self.expected = _tree(library, "PVOL1", dirs=5, per_dir=40, size=500)

    def args(self):
        return {"from": "PVOL1", "targets": self.targets}

    def check(self, library, run):
        ids = set(library.volume_ids())
        assert set(run.reported) <= ids <= {"PVOL1", *self.targets}
        for target in ids - {"PVOL1"}:
            with library.open(target) as volume:
                assert visible_files(volume) == self.expected

    def rerun(self, library, run):
        for target in self.targets:
            dupopt(library, fromvol="PVOL1", tovol=target, now=clock(), clear=True)
        assert set(library.volume_ids()) == {"PVOL1", *self.targets}
        assert list((library.root / TMP).iterdir()) == []


SCENARIOS = [CpyoptTree, WriteBatches, WriteSingle, InzoptCreate, InzoptReinit, Cvtoptbku, Dupopt]
TOTAL_RUNS = sum(s.runs for s in SCENARIOS)


def test_at_least_fifty_killed_runs():
    assert TOTAL_RUNS >= 50


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.op)
def test_sigkill(scenario, tmp_path):
    case = scenario()
    template = tmp_path / "template"
    case.template(template)
    # Runs to the end measure the operation and prove the driver reports every item: the shorter
    # of two (a first run slowed by a busy machine drew delays past the end of most later runs).
    durations = []
    for n in range(2):
        calibrate = tmp_path / f"calibrate{n}"
        shutil.copytree(template, calibrate)
        full = run_child(case.op, calibrate, case.args(), delay=None)
        assert full.finished and full.reported
        durations.append(full.elapsed)
        shutil.rmtree(calibrate)
    duration = min(durations)
    rng = random.Random(f"{SEED}-{case.op}")
    outcomes = []
    for n in range(case.runs):
        root = tmp_path / f"run{n}"
        shutil.copytree(template, root)
        delay = rng.uniform(0.0, duration)
        run = run_child(case.op, root, case.args(), delay=delay)
        library = common_checks(root)
        case.check(library, run)
        case.rerun(library, run)
        common_checks(root)
        outcomes.append((round(delay, 3), len(run.reported), run.finished))
        shutil.rmtree(root)
    print(case.op, f"duration {duration:.3f}s", outcomes)
    # The delays must actually interrupt the operation (its speed varies from run to run).
    assert sum(not finished for _, _, finished in outcomes) >= case.runs // 3, outcomes
