"""CPYOPT benchmark (DESIGN §3 "Speed", §6 quality bars), run by hand:

    python bench/cpyopt.py [--quick] [--big] [--dir DIR] [--repeat N] [--keep]

Prints, side by side in one run, each figure the median of N runs (default 3):

(a) bulk copy: CPYOPT of a volume of 64 files of 16 MiB (1 GiB) onto a fresh *BACKUP
    volume vs ``cp -r`` of the same files between two host directories.
    Goal: CPYOPT speed >= 0.8 x cp -r (time ratio cp/CPYOPT >= 0.8). ``cp -r`` does not
    fsync while CPYOPT must; ``cp -r`` followed by ``sync`` is shown for reference, and
    so is the time SHA-256 alone takes over the same bytes (CPYOPT checks every byte it
    copies): on one thread, and on HASH_THREADS threads as CPYOPT hashes them.
(b) many small files: CPYOPT of 100,000 files of 1 KiB in 100 directories vs ``cp -a``
    of the same tree. Goal: >= 3 x faster than cp -a.
(c) incremental: a no-change SLTFILE(*CHANGED) re-run over those files vs a no-change
    ``rsync -a``. Goal: >= 3 x faster; with --big also at 1,000,000 files (100
    directories of 10,000) where it must take < 2 x its time at 100,000.
(d) memory: peak RSS of every CPYOPT child (os.wait4) < 150 MiB.

CPYOPT runs through the CLI as a child process (``python -m optvol --library L cpyopt
PVOL1 / 'BVOL1 *BACKUP' --cpysubdir *YES``), like cp and rsync; the in-process time of
``copying.cpyopt`` (from a child that imports optvol first) is shown too. Source
volumes are filled through the API in batches, with os.urandom content, by a child;
the host trees hold the same bytes. Nothing is dropped from the page cache (warm cache
for everybody: the source volume, whose records optvol writes past the page cache, is
read once, untimed, after it is filled: bench/warm.py); ``sync`` runs, untimed, before
every measured command so that none pays for the write-back of the one before. The
optvol children run from compiled bytecode, as an installed optvol does (pip compiles it
at install): they write it under the scratch directory (PYTHONPYCACHEPREFIX, even where
PYTHONDONTWRITEBYTECODE is set), compiled before anything is measured. The parent imports
nothing of optvol (a forked child's ru_maxrss starts at its parent's RSS). Scratch data
lives in a fresh directory under DIR (default /work/bench-tmp), deleted at the end
unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from warm import warm

SOURCE, TARGET = "PVOL1", "BVOL1"
CAPACITY = "64G"
RSS_GOAL_MIB = 150
HASH_THREADS = 2  # as optvol.copying.HASH_THREADS (the parent imports nothing of optvol)
FILL_BATCH = 10_000  # small files per Volume.batch() transaction while filling
CHILD_ENV = dict(os.environ)  # the children's environment; main() points their bytecode cache at the scratch


def clock() -> datetime:
    return datetime.now().astimezone()


# ----------------------------------------------------------------------------- children


def child_fill(args: argparse.Namespace) -> int:
    """Fill volume PVOL1 of library ``args.fill`` (and the host tree ``args.host``, if given)."""
    from optvol.initialize import inzopt
    from optvol.library import Library
    from optvol.media import parse_capacity
    from optvol.model import MediaType, VolumeType

    root = Path(args.fill)
    library = Library(root, clock=clock)
    capacity = parse_capacity(CAPACITY)
    inzopt(library, vol=SOURCE, now=clock(), medtype=MediaType.ERASE, capacity=capacity)
    inzopt(library, vol=TARGET, now=clock(), medtype=MediaType.ERASE, capacity=capacity, type=VolumeType.BACKUP)
    host = Path(args.host) if args.host else None
    dirs = [f"D{d:03d}" for d in range(args.dirs)]
    per_batch = max(1, min(FILL_BATCH, (64 << 20) // args.size))
    start = time.perf_counter()
    with library.open(SOURCE) as volume:
        with volume.batch():
            for d in dirs:
                volume.mkdir("/" + d)
                if host:
                    (host / d).mkdir(parents=True)
        names = [(d, f"F{i:07d}.DAT") for i in range(args.per_dir) for d in dirs]
        for first in range(0, len(names), per_batch):
            with volume.batch():
                for d, name in names[first:first + per_batch]:
                    data = os.urandom(args.size)
                    volume.write_bytes(f"/{d}/{name}", data)
                    if host:
                        with open(host / d / name, "wb") as handle:
                            handle.write(data)
    print(json.dumps({"seconds": time.perf_counter() - start}))
    return 0


def child_hash(args: argparse.Namespace) -> int:
    """Time SHA-256 over every file of ``args.hash`` on ``args.threads`` threads (hashlib releases the GIL)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    def digest(path: Path) -> bytes:
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(4 << 20):
                sha.update(chunk)
        return sha.digest()

    paths = sorted(p for p in Path(args.hash).rglob("*") if p.is_file())
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        list(pool.map(digest, paths))
    print(json.dumps({"seconds": time.perf_counter() - start}))
    return 0


def child_inproc(args: argparse.Namespace) -> int:
    """Time copying.cpyopt in process (imports done before the clock starts)."""
    from optvol import copying
    from optvol.library import Library
    from optvol.model import VolumeType

    library = Library(Path(args.inproc), clock=clock)
    request = copying.CopyRequest(fromvol=SOURCE, frompath="/", tovol=TARGET, totype=VolumeType.BACKUP,
                                  cpysubdir=True)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    result = copying.cpyopt(library, request, now=clock())
    seconds = time.perf_counter() - start
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    print(json.dumps({"seconds": seconds, "copied": result.copied, "failed": result.failed}))
    return 0


# ----------------------------------------------------------------------------- parent


def run(argv: list[str]) -> dict:
    """Run an untimed helper command to the end (exits on failure)."""
    return run_reaped(argv)


def measured(argv: list[str], *, before: list[list[str]] = (), repeat: int) -> dict:
    """Run ``argv`` ``repeat`` times (after the untimed ``before`` commands and a sync)."""
    times, rss = [], []
    last = None
    for _ in range(repeat):
        for command in before:
            run(command)
        os.sync()
        last = run_reaped(argv)
        times.append(last["seconds"])
        rss.append(last["rss_mib"])
    return {"median": statistics.median(times), "best": min(times), "times": times, "rss_mib": max(rss),
            "out": last["out"]}


def measured_fresh(argv: list[str], under: Path, *, repeat: int) -> dict:
    """Run ``argv`` + a new destination under ``under`` ``repeat`` times (a sync before each)."""
    times = []
    under.mkdir(parents=True, exist_ok=True)
    for attempt in range(repeat):
        os.sync()
        times.append(run_reaped([*argv, str(under / f"run{attempt}")])["seconds"])
    return {"median": statistics.median(times), "best": min(times), "times": times}


def run_reaped(argv: list[str]) -> dict:
    """Run a child, reaping it with os.wait4 for its own peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed (exit {code}): {' '.join(map(str, argv))}\n{err.decode(errors='replace')}")
    return {"seconds": seconds, "rss_mib": usage.ru_maxrss / 1024, "out": out}


def fill(library: Path, host: Path | None, *, dirs: int, per_dir: int, size: int) -> float:
    argv = [sys.executable, __file__, "--fill", str(library), "--dirs", str(dirs), "--per-dir", str(per_dir),
            "--size", str(size)]
    if host:
        argv += ["--host", str(host)]
    seconds = json.loads(run_reaped(argv)["out"])["seconds"]
    warm(library / f"{SOURCE}.optvol")  # bench/warm.py
    return seconds


def optvol(library: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "optvol", "--library", str(library), *args]


def cpyopt_argv(library: Path) -> list[str]:
    return optvol(library, "--json", "cpyopt", SOURCE, "/", f"{TARGET} *BACKUP", "--cpysubdir", "*YES")


def reset_target(library: Path) -> list[str]:
    return optvol(library, "inzopt", TARGET, "--type", "*BACKUP", "--check", "*NO", "--medtype", "*ERASE",
                  "--capacity", CAPACITY)


def copied(result: dict) -> int:
    return json.loads(result["out"])["copied"]


def fmt(r: dict) -> str:
    return f"{r['median']:8.3f} s  (runs {', '.join(f'{t:.3f}' for t in r['times'])})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (256 MiB bulk, 10,000 small files)")
    parser.add_argument("--big", action="store_true", help="also the 1,000,000-file incremental run")
    parser.add_argument("--dir", default="/work/bench-tmp")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--only", choices=("a", "bc", "big"), help="run one part only")
    parser.add_argument("--fill", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--dirs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--per-dir", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inproc", help=argparse.SUPPRESS)
    parser.add_argument("--hash", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        return child_fill(args)
    if args.inproc:
        return child_inproc(args)
    if args.hash:
        return child_hash(args)

    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="cpyopt-", dir=base))
    CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    run([sys.executable, "-c", "import compileall, optvol, os; compileall.compile_dir(os.path.dirname(optvol.__file__), quiet=1)"])
    try:
        return bench(args, scratch)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def bench(args: argparse.Namespace, scratch: Path) -> int:
    big_files, big_size = (16, 16 << 20) if args.quick else (64, 16 << 20)
    small_dirs, small_per_dir = (100, 100) if args.quick else (100, 1000)
    huge_dirs, huge_per_dir = (100, 1000) if args.quick else (100, 10_000)
    small_n, huge_n = small_dirs * small_per_dir, huge_dirs * huge_per_dir
    n = args.repeat
    print(f"optvol CPYOPT benchmark in {scratch}  (median of {n} runs each; warm page cache; "
          f"{os.cpu_count()} CPUs; python {sys.version.split()[0]})", flush=True)
    goals: list[tuple[str, bool]] = []
    rss_all: list[tuple[str, float]] = []

    if args.only in (None, "a"):
        # ---------------------------------------------------------------- (a) bulk
        lib, host = scratch / "lib-a", scratch / "host-a"
        secs = fill(lib, host / "src", dirs=1, per_dir=big_files, size=big_size)
        total = big_files * big_size
        print(f"\n(a) bulk: {big_files} files of {big_size >> 20} MiB = {total / 2**30:.2f} GiB "
              f"(filled in {secs:.1f} s)", flush=True)
        dst = host / "dst"
        cp = measured(["cp", "-r", str(host / "src"), str(dst)], before=[["rm", "-rf", str(dst)]], repeat=n)
        # cp -r, then sync (timed together): what it takes to have the bytes on disk, as CPYOPT does.
        cps = measured(["sh", "-c", 'cp -r "$0" "$1" && sync', str(host / "src"), str(dst)],
                       before=[["rm", "-rf", str(dst)]], repeat=n)
        hashes = {threads: measured([sys.executable, __file__, "--hash", str(host / "src"), "--threads", str(threads)],
                                    repeat=n) for threads in (1, HASH_THREADS)}
        opt = measured(cpyopt_argv(lib), before=[reset_target(lib)], repeat=n)
        assert copied(opt) == big_files, opt["out"]
        inproc = []
        for _ in range(n):
            run(reset_target(lib))
            inproc.append(json.loads(run_reaped([sys.executable, __file__, "--inproc", str(lib)])["out"])["seconds"])
        shutil.rmtree(dst, ignore_errors=True)
        ratio = cp["best"] / opt["median"]  # against cp's fastest run: its runs vary widely here
        print(f"  cp -r                       {fmt(cp)}   {total / cp['median'] / 2**20:7.0f} MiB/s")
        print(f"  cp -r && sync               {fmt(cps)}   {total / cps['median'] / 2**20:7.0f} MiB/s")
        print(f"  CPYOPT (CLI)                {fmt(opt)}   {total / opt['median'] / 2**20:7.0f} MiB/s"
              f"   peak RSS {opt['rss_mib']:.1f} MiB")
        print(f"  copying.cpyopt in process   {statistics.median(inproc):8.3f} s")
        for threads, r in hashes.items():
            inner = json.loads(r["out"])["seconds"]
            print(f"  SHA-256 alone, {threads} thread{'s' if threads > 1 else ' '}     {fmt(r)}"
                  f"   ({inner:.3f} s of it hashing: cp's best / that = {cp['best'] / inner:.2f})")
        print(f"  speed CPYOPT / cp -r        {ratio:8.2f}   (goal >= 0.8; CPYOPT's median against cp's fastest run)")
        print(f"  speed CPYOPT / cp -r && sync {cps['best'] / opt['median']:7.2f}   (for reference)")
        goals.append(("(a) bulk CPYOPT >= 0.8 x cp -r", ratio >= 0.8))
        rss_all.append(("(a) CPYOPT bulk", opt["rss_mib"]))
        shutil.rmtree(lib, ignore_errors=True)
        shutil.rmtree(host, ignore_errors=True)

    small_noop = None
    if args.only in (None, "bc"):
        # ---------------------------------------------------------------- (b) many small files
        lib, host = scratch / "lib-b", scratch / "host-b"
        secs = fill(lib, host / "src", dirs=small_dirs, per_dir=small_per_dir, size=1024)
        print(f"\n(b) many small files: {small_n:,} files of 1 KiB in {small_dirs} directories "
              f"(filled in {secs:.1f} s)", flush=True)
        dst = host / "dst"
        # Each cp -a into a fresh directory, all deleted only afterwards, so that no deletion
        # is in its way. Its runs still vary from about 4 s to a minute on these machines.
        cpa = measured_fresh(["cp", "-a", str(host / "src")], host / "cp-a", repeat=n)
        shutil.rmtree(host / "cp-a", ignore_errors=True)
        inproc = []
        for _ in range(n):
            run(reset_target(lib))
            inproc.append(json.loads(run_reaped([sys.executable, __file__, "--inproc", str(lib)])["out"])["seconds"])
        opt = measured(cpyopt_argv(lib), before=[reset_target(lib)], repeat=n)
        assert copied(opt) == small_n, opt["out"]
        ratio = cpa["best"] / opt["median"]  # against cp's fastest run: its runs vary widely here
        print(f"  cp -a                       {fmt(cpa)}")
        print(f"  CPYOPT (CLI)                {fmt(opt)}   {small_n / opt['median']:9,.0f} files/s"
              f"   peak RSS {opt['rss_mib']:.1f} MiB")
        print(f"  copying.cpyopt in process   {statistics.median(inproc):8.3f} s")
        print(f"  times faster than cp -a     {ratio:8.2f}   (goal >= 3; CPYOPT's median against cp's fastest run)")
        goals.append(("(b) small files CPYOPT >= 3 x faster than cp -a", ratio >= 3))
        rss_all.append(("(b) CPYOPT small files", opt["rss_mib"]))

        # ---------------------------------------------------------------- (c) incremental
        print(f"\n(c) no-change re-run over {small_n:,} files", flush=True)
        run(["rsync", "-a", f"{host / 'src'}/", f"{dst}/"])
        rs = measured(["rsync", "-a", f"{host / 'src'}/", f"{dst}/"], repeat=n)
        noop = measured(cpyopt_argv(lib), repeat=n)
        assert copied(noop) == 0, noop["out"]
        ratio = rs["best"] / noop["median"]
        small_noop = noop["median"]
        print(f"  rsync -a (no change)        {fmt(rs)}")
        print(f"  CPYOPT *CHANGED (no change) {fmt(noop)}   peak RSS {noop['rss_mib']:.1f} MiB")
        print(f"  times faster than rsync -a  {ratio:8.2f}   (goal >= 3; CPYOPT's median against rsync's fastest run)")
        goals.append(("(c) no-change *CHANGED >= 3 x faster than rsync -a", ratio >= 3))
        rss_all.append(("(c) CPYOPT no change", noop["rss_mib"]))
        shutil.rmtree(lib, ignore_errors=True)
        shutil.rmtree(host, ignore_errors=True)

    if args.big or args.only == "big":
        print(f"\n(c) at {huge_n:,} files ({huge_dirs} directories of {huge_per_dir:,})", flush=True)
        lib = scratch / "lib-c"
        secs = fill(lib, None, dirs=huge_dirs, per_dir=huge_per_dir, size=1024)
        print(f"  filled in {secs:.1f} s", flush=True)
        first = run_reaped(cpyopt_argv(lib))
        assert copied({"out": first["out"]}) == huge_n, first["out"]
        print(f"  CPYOPT full copy (once)     {first['seconds']:8.3f} s   {huge_n / first['seconds']:9,.0f} files/s"
              f"   peak RSS {first['rss_mib']:.1f} MiB")
        noop = measured(cpyopt_argv(lib), repeat=n)
        assert copied(noop) == 0, noop["out"]
        print(f"  CPYOPT *CHANGED (no change) {fmt(noop)}   peak RSS {noop['rss_mib']:.1f} MiB")
        rss_all += [(f"(c) CPYOPT full copy {huge_n:,}", first["rss_mib"]), (f"(c) CPYOPT no change {huge_n:,}",
                                                                            noop["rss_mib"])]
        if small_noop is not None:
            growth = noop["median"] / small_noop
            print(f"  time at {huge_n:,} / at {small_n:,}  {growth:8.2f}   (goal < 2)")
            goals.append((f"(c) no-change cost at {huge_n:,} < 2 x at {small_n:,}", growth < 2))
        shutil.rmtree(lib, ignore_errors=True)

    print("\n(d) peak RSS of the CPYOPT children")
    for name, rss in rss_all:
        print(f"  {name:36} {rss:7.1f} MiB")
    goals.append((f"(d) every CPYOPT peak RSS < {RSS_GOAL_MIB} MiB", all(r < RSS_GOAL_MIB for _, r in rss_all)))

    print("\ngoals")
    for name, ok in goals:
        print(f"  {'met    ' if ok else 'NOT met'}  {name}")
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
