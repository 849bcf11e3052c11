"""Benchmark export-iso against genisoimage -J -R on the same trees, in the same run.

Usage: python bench/iso.py [--small N] [--big N] [--udf] [--dir DIR]

Builds two volumes (1,000 files of 1 MiB; 100,000 files of 1 KiB in 100 directories) and
the same trees on the host, then times ``export_iso`` and ``genisoimage -J -R`` on each
(best of ``--runs``) and prints the times and the ratio genisoimage time / optvol time
(goal: at least 0.5 on both).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from warm import warm

from optvol.initialize import inzopt
from optvol.interchange import export_iso
from optvol.library import Library


def _clock() -> datetime:
    return datetime.now(timezone.utc)


def _build(library: Library, host: Path, name: str, *, files: int, size: int, dirs: int) -> None:
    """The same tree on a new volume ``name`` and below host directory ``host``."""
    inzopt(library, vol=name, now=_clock(), capacity=4 << 30)
    payload = os.urandom(size)
    with library.open(name) as volume, volume.batch():
        for d in range(dirs):
            volume.mkdir(f"/D{d:03}")
            (host / f"D{d:03}").mkdir(parents=True)
        for i in range(files):
            path = f"D{i % dirs:03}/F{i:06}.DAT"
            data = payload[:-8] + i.to_bytes(8, "little")
            volume.write_bytes("/" + path, data)
            (host / path).write_bytes(data)
    warm(library.root / f"{name}.optvol")  # bench/warm.py


def _best(runs: int, action) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def _compare(library: Library, scratch: Path, *, size: int, runs: int, udf: bool) -> tuple[float, float]:
    """(export-iso seconds, genisoimage seconds) for the volume and tree of files of ``size``."""
    out = scratch / "out.iso"
    ours = _best(runs, lambda: export_iso(library, vol=f"BENCH{size}", file=out, udf=udf, now=datetime.now(timezone.utc)))
    command = ["genisoimage", "-quiet", "-J", "-R", *(["-udf"] if udf else []), "-o", str(out), str(scratch / f"tree{size}")]
    theirs = _best(runs, lambda: subprocess.run(command, check=True))
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1000, help="files of 1 MiB")
    parser.add_argument("--small", type=int, default=100_000, help="files of 1 KiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--udf", action="store_true", help="also add a UDF bridge (genisoimage -udf)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="optvol-bench-iso-", dir=args.dir))
    try:
        library = Library(scratch / "lib", clock=_clock)
        for label, files, size, dirs in (("1 MiB", args.big, 1 << 20, 10), ("1 KiB", args.small, 1024, 100)):
            _build(library, scratch / f"tree{size}", f"BENCH{size}", files=files, size=size, dirs=dirs)
            ours, theirs = _compare(library, scratch, size=size, runs=args.runs, udf=args.udf)
            print(f"{files:>7} x {label}: optvol {ours:6.2f} s  genisoimage {theirs:6.2f} s  "
                  f"ratio {theirs / ours:4.2f} (goal >= 0.5)", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
