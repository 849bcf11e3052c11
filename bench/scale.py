"""Scale benchmark (DESIGN §6; the project's first issue), run by hand:

    python bench/scale.py [--files N] [--dir DIR] [--dirs D] [--batch B] [--keep]

Writes N files of 1 KiB (default 1,000,000) spread round-robin over D directories
(default 1,000) through the Python API, in batches of B files (default 10,000), each
batch one ``Volume.batch()`` transaction. Then lists the volume with
``optvol --json dspopt VOL *ALL *FILATR --path *ALL`` and with the human table form, and
runs every command that reads or copies the whole volume (WRKOPTDIR, WRKOPTF, CHKOPTVOL,
CPYOPT to a backup and its no-change re-run, DUPOPT, recover, CVTOPTBKU, export-iso,
import-iso, export-iso --udf), each as a child process, and measures each one's peak RSS
(``os.wait4``) and its seconds. ``--dirs 1`` puts every file in one directory. DESIGN §6 asks every command to stay under 150 MiB on such a volume; the
seconds show a command whose cost grows faster than the volume (CHKOPTVOL once took 8
minutes for 100,000 files; export-iso --udf, through pycdlib then, about 7.7 GiB for
1,000,000).

The writer runs in a child process too, and the parent imports nothing of optvol: on
Linux a child's ru_maxrss starts at its parent's RSS when it forks, so a listing started
from a big writer process would report the writer's peak, not its own.

It prints, side by side in one run:
- seconds per 10,000 files for the first and the last 10,000 (and a progress line every
  100,000), the ratio last/first, and the ratio of the mean of the last tenth of the
  blocks to the mean of the first tenth (less noisy on a shared machine);
- files/s overall, data and index sizes on disk, the writer's peak RSS;
- for each listing: peak RSS, seconds, lines, and lines/s;
- for each whole-volume command: peak RSS, seconds, and files/s.

Goals (issue 1, DESIGN §6): last/first about 1 (flat cost per file); every peak RSS < 150 MiB.
The library is made in a fresh directory under DIR (default: a temporary directory)
and deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

VOLUME = "SCALE"
FILE_SIZE = 1024
BLOCK = 10_000  # the unit of the per-file cost figures
RSS_GOAL_MIB = 150


def clock() -> datetime:
    return datetime.now().astimezone()


def mib(kib: int) -> float:
    return kib / 1024


def size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def run_counted(argv: list[str]) -> dict:
    """Run a command with stdout to a pipe we only count; return its rusage figures."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = 0
    size = 0
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        lines += chunk.count(b"\n")
        size += len(chunk)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{stderr.decode(errors='replace')}")
    return {"seconds": elapsed, "rss_mib": mib(usage.ru_maxrss), "lines": lines, "bytes": size,
            "cpu": usage.ru_utime + usage.ru_stime}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where to make the scratch library (default: $TMPDIR)")
    parser.add_argument("--dirs", type=int, default=1_000, help="directories the files are spread over")
    parser.add_argument("--batch", type=int, default=BLOCK, help="files per Volume.batch() transaction")
    parser.add_argument("--capacity", default="64G")
    parser.add_argument("--keep", action="store_true", help="keep the library (its path is printed)")
    parser.add_argument("--writer", metavar="LIBRARY", help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.writer:
        return write(args, Path(args.writer))
    if args.files < BLOCK or args.files % BLOCK or BLOCK % args.batch and args.batch % BLOCK:
        parser.error(f"--files must be a multiple of {BLOCK:,}; --batch must divide or be a multiple of it")

    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="optvol-scale-", dir=base))
    root = scratch / "library"
    print(f"optvol scale benchmark: {args.files:,} files of {FILE_SIZE} B in {args.dirs:,} directories, "
          f"batches of {args.batch:,}; library {root}", flush=True)
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def write(args: argparse.Namespace, root: Path) -> int:
    """The writer (a child process): make the volume, write the files, print the figures."""
    from optvol.initialize import inzopt
    from optvol.library import Library
    from optvol.media import parse_capacity
    from optvol.model import MediaType

    library = Library(root, clock=clock)
    inzopt(library, vol=VOLUME, now=clock(), medtype=MediaType.ERASE, capacity=parse_capacity(args.capacity))
    dirs = [f"/D{d:04d}" for d in range(args.dirs)]
    payload = bytearray(os.urandom(FILE_SIZE))

    blocks: list[float] = []  # seconds per BLOCK files
    with library.open(VOLUME) as volume:
        t0 = time.perf_counter()
        with volume.batch():
            for path in dirs:
                volume.mkdir(path)
        print(f"{args.dirs:,} directories made in {time.perf_counter() - t0:.2f} s")

        start = time.perf_counter()
        block_start = start
        for first in range(0, args.files, args.batch):
            with volume.batch():
                for i in range(first, min(first + args.batch, args.files)):
                    payload[:8] = i.to_bytes(8, "big")  # every file different
                    volume.write_bytes(f"{dirs[i % args.dirs]}/F{i:07d}.DAT", payload)
            done = min(first + args.batch, args.files)
            if done % BLOCK == 0:
                now = time.perf_counter()
                blocks.append(now - block_start)
                block_start = now
                if done % 100_000 == 0:
                    rss = mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
                    print(f"  {done:>9,} files  {blocks[-1]:6.3f} s/10k (latest)  "
                          f"{now - start:8.1f} s elapsed  writer peak RSS {rss:6.1f} MiB", flush=True)
        total = time.perf_counter() - start
    writer_rss = mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    image = root / f"{VOLUME}.optvol"
    data = size_of(image / "data.opv")
    index = size_of(image / "index.sqlite")
    wal = size_of(image / "index.sqlite-wal")
    tenth = max(1, len(blocks) // 10)
    head, tail = statistics.mean(blocks[:tenth]), statistics.mean(blocks[-tenth:])

    print()
    print("writing")
    print(f"  first 10k files          {blocks[0]:8.3f} s")
    print(f"  last 10k files           {blocks[-1]:8.3f} s")
    print(f"  ratio last/first         {blocks[-1] / blocks[0]:8.2f}   (goal: about 1)")
    print(f"  mean s/10k, first {tenth * BLOCK // 1000:,}k   {head:8.3f} s")
    print(f"  mean s/10k, last {tenth * BLOCK // 1000:,}k    {tail:8.3f} s")
    print(f"  ratio of those means     {tail / head:8.2f}")
    print(f"  slowest / fastest block  {max(blocks):8.3f} / {min(blocks):.3f} s")
    print(f"  total                    {total:8.1f} s   {args.files / total:,.0f} files/s")
    print(f"  data partition           {data / 2**20:8.1f} MiB  ({data / args.files:,.0f} B/file)")
    print(f"  index (+ WAL)            {index / 2**20:8.1f} MiB  (+ {wal / 2**20:.1f} MiB; "
          f"{(index + wal) / args.files:,.0f} B/file)")
    print(f"  writer peak RSS          {writer_rss:8.1f} MiB")
    ok_flat = tail / head <= 1.5
    return (0 if ok_flat else 4) | (0 if writer_rss < RSS_GOAL_MIB else 8)


def run(args: argparse.Namespace, root: Path) -> int:
    argv = [sys.executable, __file__, "--writer", str(root), "--files", str(args.files), "--dirs", str(args.dirs),
            "--batch", str(args.batch), "--capacity", args.capacity]
    writer = subprocess.run(argv)
    if writer.returncode not in (0, 4, 8, 12):
        sys.exit(f"the writer failed (exit {writer.returncode})")

    optvol = [sys.executable, "-m", "optvol", "--library", str(root)]
    runs = [
        ("startup: dspopt *VOLATR", [*optvol, "--json", "dspopt", VOLUME]),
        ("dspopt --json *FILATR", [*optvol, "--json", "dspopt", VOLUME, "*ALL", "*FILATR", "--path", "*ALL"]),
        ("dspopt *FILATR (table)", [*optvol, "dspopt", VOLUME, "*ALL", "*FILATR", "--path", "*ALL"]),
    ]
    print()
    print("listing (child processes, stdout counted and dropped)")
    print(f"  {'command':26} {'peak RSS':>10} {'seconds':>9} {'lines':>11} {'lines/s':>10} {'MiB out':>8}")
    worst = 0.0
    for name, argv in runs:
        r = run_counted(argv)
        worst = max(worst, r["rss_mib"])
        print(f"  {name:26} {r['rss_mib']:6.1f} MiB {r['seconds']:9.1f} {r['lines']:11,} "
              f"{r['lines'] / r['seconds']:10,.0f} {r['bytes'] / 2**20:8.1f}", flush=True)

    print(f"  expected lines: {args.files + 2:,} for each listing")

    iso = root.parent / "scale.iso"
    commands = [
        ("wrkoptdir *ALL", ["--json", "wrkoptdir", "*ALL", VOLUME]),
        ("wrkoptf *ALL", ["--json", "wrkoptf", VOLUME, "*ALL"]),
        ("chkoptvol", ["chkoptvol", VOLUME]),
        ("cpyopt to a backup", ["cpyopt", VOLUME, "/", "BACKUP *BACKUP", "--cpysubdir", "*YES"]),
        ("cpyopt again, no change", ["cpyopt", VOLUME, "/", "BACKUP *BACKUP", "--cpysubdir", "*YES"]),
        ("dupopt of the backup", ["dupopt", "BACKUP", "DUP"]),
        ("recover the duplicate", ["recover", "DUP"]),
        ("cvtoptbku", ["cvtoptbku", "DUP", "CONVERTED"]),
        ("export-iso", ["export-iso", VOLUME, str(iso)]),
        ("import-iso", ["import-iso", str(iso), "--vol", "IMPORTED"]),
        ("export-iso --udf", ["export-iso", "--udf", VOLUME, str(iso)]),
    ]
    subprocess.run([*optvol, "inzopt", "BACKUP", "--type", "*BACKUP", "--capacity", args.capacity], check=True,
                   stdout=subprocess.DEVNULL)
    print()
    print(f"whole-volume commands (child processes, output dropped), {args.files:,} files each")
    print(f"  {'command':26} {'peak RSS':>10} {'seconds':>9} {'files/s':>10}")
    for name, argv in commands:
        r = run_counted([*optvol, *argv])
        worst = max(worst, r["rss_mib"])
        print(f"  {name:26} {r['rss_mib']:6.1f} MiB {r['seconds']:9.1f} {args.files / r['seconds']:10,.0f}", flush=True)
    iso.unlink(missing_ok=True)
    parent = mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(f"  the parent that ran them peaked at {parent:.1f} MiB")
    print()
    ok_flat = not writer.returncode & 4
    ok_rss = worst < RSS_GOAL_MIB and not writer.returncode & 8
    print(f"goal flat cost per file (mean s/10k of the last tenth / the first tenth <= 1.5): "
          f"{'met' if ok_flat else 'NOT met'}")
    print(f"goal peak RSS < {RSS_GOAL_MIB} MiB (writer, listings and commands): {'met' if ok_rss else 'NOT met'}")
    return 0 if ok_flat and ok_rss else 1


if __name__ == "__main__":
    sys.exit(main())
