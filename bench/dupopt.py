"""DUPOPT speed against ``cp`` of the same files, side by side in one run.

    python bench/dupopt.py [--files 64] [--size-mib 16] [--dir /work/bench-tmp]

A volume of FILES files of SIZE MiB is written through the API; the same files are
written to a host directory. Then, three times each (median): ``optvol dupopt`` (copy of
the data partition with os.copy_file_range, index with SQLite's backup API, every file
version verified by SHA-256, fsynced) and ``cp -r`` of the host directory, without and with
a ``sync`` after it. Warm page cache for all (the volume is read once after it is filled,
since optvol writes past the page cache: bench/warm.py); a sync before each measured
command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from warm import warm


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--dir", default="/work/bench-tmp")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="dupopt-", dir=args.dir)
    try:
        return run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(args, scratch: str) -> int:
    from optvol.initialize import inzopt
    from optvol.library import Library

    library_dir, host = os.path.join(scratch, "lib"), os.path.join(scratch, "host")
    os.makedirs(host)
    library = Library(library_dir, clock=lambda: datetime.now(timezone.utc))
    inzopt(library, vol="SOURCE", capacity=4 * args.files * args.size_mib << 20, now=datetime.now(timezone.utc))
    with library.open("SOURCE") as volume:
        volume.mkdir("/DATA")
        for number in range(args.files):
            data = os.urandom(args.size_mib << 20)
            with volume.batch():
                volume.write_bytes(f"/DATA/F{number:03}", data)
            with open(os.path.join(host, f"F{number:03}"), "wb") as handle:
                handle.write(data)
    warm(os.path.join(library_dir, "SOURCE.optvol"))  # bench/warm.py
    total = args.files * args.size_mib << 20
    optvol = [sys.executable, "-m", "optvol", "--library", library_dir]
    dup_times, cp_times, sync_times = [], [], []
    for attempt in range(3):
        os.sync()
        cp_times.append(timed(["cp", "-r", host, os.path.join(scratch, f"copy{attempt}")]))
        os.sync()
        sync_times.append(timed(["sh", "-c", 'cp -r "$0" "$1" && sync', host, os.path.join(scratch, f"synced{attempt}")]))
        os.sync()
        dup_times.append(timed(optvol + ["dupopt", "SOURCE", f"DUP{attempt}"]))
        shutil.rmtree(os.path.join(scratch, f"copy{attempt}"))
        shutil.rmtree(os.path.join(scratch, f"synced{attempt}"))
    dup, cp, synced = statistics.median(dup_times), statistics.median(cp_times), statistics.median(sync_times)
    print(f"{args.files} files of {args.size_mib} MiB ({total / 2**30:.2f} GiB), median of 3, warm cache")
    print(f"  optvol dupopt (copy + verify)   {dup:7.3f} s   {total / dup / 2**20:8.0f} MiB/s")
    print(f"  cp -r of the same files         {cp:7.3f} s   {total / cp / 2**20:8.0f} MiB/s")
    print(f"  cp -r && sync (bytes on disk)   {synced:7.3f} s   {total / synced / 2**20:8.0f} MiB/s")
    print(f"  speed ratio dupopt / cp         {cp / dup:7.2f}")
    print(f"  speed ratio dupopt / cp && sync {synced / dup:7.2f}   (DUPOPT fsyncs; plain cp does not)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
