"""Several processes on one volume at once, and a writer killed with SIGKILL (DESIGN §6)."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import proc_workers
from conftest import data_path, make_volume, meta
from optvol.library import Library
from proc_workers import content_for

HERE = Path(__file__).parent


def test_two_writers_on_one_volume(tmp_path, library):
    make_volume(library, "PVOL1")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            jobs = [pool.apply_async(proc_workers.write_files, (str(library.root), "PVOL1", prefix, 200, 100, start))
                    for prefix in ("P1", "P2")]
            written = [job.get(timeout=120) for job in jobs]
    assert [len(w) for w in written] == [200, 200]
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == ["P1", "P2"]
        for prefix, paths in zip(("P1", "P2"), written, strict=True):
            assert len(volume.listdir(f"/{prefix}")) == 200
            for i, path in enumerate(paths):
                assert volume.read_bytes(path) == content_for(path, 100 + i)
        assert volume.info().files == 400
    assert meta(library, "PVOL1", "committed_end") * 2048 == os.path.getsize(data_path(library, "PVOL1"))


def test_reader_never_sees_wrong_bytes(tmp_path, library):
    make_volume(library, "PVOL1")
    size, count = 1 << 20, 24
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start, done = manager.Barrier(2), manager.Event()
        with ctx.Pool(2) as pool:
            reader = pool.apply_async(proc_workers.reader_poll, (str(library.root), "PVOL1", size, start, done))
            writer = pool.apply_async(proc_workers.writer_stream, (str(library.root), "PVOL1", count, size, start, done))
            assert writer.get(timeout=120) == count
            seen = reader.get(timeout=120)
    assert seen["bad"] == []
    assert seen["failures"] == []
    assert seen["checked"] >= count  # its last pass, after the writer finished, read every file
    with library.open("PVOL1") as volume:
        assert len(volume.listdir("/")) == count


def _run_batch_writer(root, first, batches, per_batch, size, progress):
    args = [str(root), "PVOL1", first, batches, per_batch, size, str(progress)]
    return subprocess.Popen(
        [sys.executable, str(HERE / "proc_workers.py"), "batch_writer", json.dumps(args)],
        cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _check_batches(volume, per_batch, size):
    """Every visible batch is whole and intact; return how many batches are visible."""
    names = volume.listdir("/")
    batches = sorted(int(n[1:]) for n in names)
    assert batches == list(range(len(batches))), names  # batches commit in order
    for b in batches:
        files = volume.listdir(f"/B{b}")
        assert len(files) == per_batch, (b, files)  # no half batch
        for i in range(per_batch):
            path = f"/B{b}/F{i}"
            assert volume.read_bytes(path) == content_for(path, size + i)
    return len(batches)


def test_sigkill_during_batches(tmp_path, library):
    make_volume(library, "PVOL1")
    batches, per_batch, size = 400, 40, 30_000
    progress = tmp_path / "progress"
    progress.touch()
    rng = random.Random(os.getpid() ^ int(time.time()))
    writer = _run_batch_writer(library.root, 0, batches, per_batch, size, progress)
    deadline = time.monotonic() + 30
    while not progress.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.4))
    assert writer.poll() is None, writer.communicate()  # still in the middle of its work
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    reported = [int(line) for line in progress.read_text().split()]
    assert reported == list(range(len(reported))) and reported

    with library.open("PVOL1") as volume:
        # Opening while idle cut the torn tail.
        assert os.path.getsize(data_path(library, "PVOL1")) == meta(library, "PVOL1", "committed_end") * 2048
        visible = _check_batches(volume, per_batch, size)
        # Every batch reported done is there; at most the one in flight committed without being reported.
        assert len(reported) <= visible <= len(reported) + 1
        assert visible < batches
        assert volume.info().files == visible * per_batch

    # A re-run from where it stopped completes.
    rerun = _run_batch_writer(library.root, visible, visible + 3, per_batch, size, progress)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    with Library(library.root, clock=library._clock).open("PVOL1") as volume:
        assert _check_batches(volume, per_batch, size) == visible + 3
    assert os.path.getsize(data_path(library, "PVOL1")) == meta(library, "PVOL1", "committed_end") * 2048
