"""Child processes of the fault and stress tests (run as a script, killed with SIGKILL).

``python fault_driver.py OP ROOT ARGS_JSON PROGRESS`` runs operation OP on the library at
ROOT. It appends ``ready`` to the file PROGRESS once it has started, then one line
``done <item>`` for each item only after the operation has reported it done (a committed
batch, a returned write, a finished command), and ``end`` at the end. The parent kills it
at a random moment and checks that everything reported done survived.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import datetime, timezone


def content(path: str, size: int, salt: str = "") -> bytes:
    """The same deterministic bytes as ``integrity_helpers.content``."""
    seed = hashlib.sha256((salt + path).encode()).digest()
    block = hashlib.sha256(seed + b"block").digest() * 32
    whole = (block * (size // len(block) + 1))[:size]
    return (seed[:8] + whole[8:])[:size] if size >= 8 else seed[:size]


def size_of(path: str, base: int) -> int:
    """A size between ``base`` and about 2.5 × ``base`` that depends on the path."""
    return base + hashlib.sha256(path.encode()).digest()[0] * base // 170


def clock() -> datetime:
    return datetime.now(timezone.utc)


class Progress:
    def __init__(self, path: str):
        self.handle = open(path, "a", buffering=1)

    def line(self, text: str) -> None:
        self.handle.write(text + "\n")
        self.handle.flush()


# --------------------------------------------------------------------- operations


def op_cpyopt_tree(library, args: dict, progress: Progress) -> None:
    """One CPYOPT of the whole tree to a backup; each committed group reports its files."""
    from optvol import copying
    from optvol.model import VolumeType

    original_wrote, original_commit, written = copying._Copier._wrote, copying._Copier._commit, []

    def wrote(self, target_dir, paths, size):  # files written into the open group
        written.extend(paths)
        original_wrote(self, target_dir, paths, size)

    def commit(self):  # report a group's files once its transaction has committed
        original_commit(self)
        for path in written:
            progress.line(f"done {path}")
        written.clear()

    copying._Copier._wrote, copying._Copier._commit = wrote, commit
    copying.BATCH_FILES = args.get("batch_files", copying.BATCH_FILES)  # commits inside directories too
    request = copying.CopyRequest(fromvol=args["from"], frompath="/", tovol=args["to"], totype=VolumeType.BACKUP,
                                  cpysubdir=True, sltfile=args.get("sltfile", "*CHANGED"))
    result = copying.cpyopt(library, request, now=clock())
    if result.failures:
        raise SystemExit(f"failures: {result.failures}")
    progress.line(f"copied {result.copied}")


def op_write_batches(library, args: dict, progress: Progress) -> None:
    """Directories of files, one Volume.batch() per directory, reported after each commit."""
    with library.open(args["vol"]) as volume:
        for d in args["dirs"]:
            paths = [f"/{d}/F{i}" for i in range(args["per_dir"])]
            with volume.batch():
                volume.mkdir(f"/{d}")
                for path in paths:
                    volume.write_bytes(path, content(path, size_of(path, args["size"])))
            for path in paths:
                progress.line(f"done {path}")


def op_write_single(library, args: dict, progress: Progress) -> None:
    """Files written one by one through three API routes, each reported when it returns."""
    with library.open(args["vol"]) as volume:
        for i, path in enumerate(args["paths"]):
            data = content(path, size_of(path, args["size"]))
            if i % 3 == 0:
                volume.write_bytes(path, data)
            elif i % 3 == 1:
                with volume.open(path, "wb") as handle:
                    handle.write(data[: len(data) // 2])
                    handle.write(data[len(data) // 2:])
            else:
                volume.write_chunks(path, iter([data[:1000], data[1000:]]), size=len(data))
            progress.line(f"done {path}")


def op_inzopt_create(library, args: dict, progress: Progress) -> None:
    from optvol.initialize import inzopt

    for vol in args["vols"]:
        inzopt(library, vol=vol, now=clock(), text=f"made {vol}", capacity=8 << 20)
        progress.line(f"done {vol}")


def op_inzopt_reinit(library, args: dict, progress: Progress) -> None:
    """Re-initialize generation after generation, renaming between two IDs each time."""
    from optvol.initialize import inzopt

    names = args["names"]
    for gen in range(args["first"], args["last"] + 1):
        inzopt(library, vol=names[(gen - 1) % 2], newvol=names[gen % 2], check=False, text=f"gen{gen}", now=clock())
        progress.line(f"done {gen}")


def op_cvtoptbku(library, args: dict, progress: Progress) -> None:
    from optvol.conversion import cvtoptbku

    for backup, primary in args["pairs"]:
        cvtoptbku(library, bkuvol=backup, privol=primary)
        progress.line(f"done {backup}")


def op_dupopt(library, args: dict, progress: Progress) -> None:
    from optvol.duplicate import dupopt

    for target in args["targets"]:
        dupopt(library, fromvol=args["from"], tovol=target, now=clock(), clear=True)
        progress.line(f"done {target}")


# --------------------------------------------------------------------- stress workers


def op_stress_writer(library, args: dict, progress: Progress) -> None:
    """Write files until the deadline: single writes and small batches, each reported."""
    import time

    deadline = time.time() + args["seconds"]
    with library.open(args["vol"]) as volume:
        volume.mkdir(f"/{args['prefix']}", exist_ok=True)
        n = 0
        while time.time() < deadline:
            if n % 4 == 3:
                paths = [f"/{args['prefix']}/N{n + k}" for k in range(5)]
                with volume.batch():
                    for path in paths:
                        volume.write_bytes(path, content(path, size_of(path, 1500)))
                n += 5
            else:
                paths = [f"/{args['prefix']}/N{n}"]
                volume.write_bytes(paths[0], content(paths[0], size_of(paths[0], 1500)))
                n += 1
            for path in paths:
                progress.line(f"done {path}")


def op_stress_cpyopt(library, args: dict, progress: Progress) -> None:
    """CPYOPT the primary to the backup again and again until the deadline."""
    import time

    from optvol import copying
    from optvol.model import VolumeType

    deadline = time.time() + args["seconds"]
    while time.time() < deadline:
        request = copying.CopyRequest(fromvol=args["from"], frompath="/", tovol=args["to"],
                                      totype=VolumeType.BACKUP, cpysubdir=True)
        result = copying.cpyopt(library, request, now=clock())
        progress.line(f"run {result.copied} {result.failed}")
        if result.failures:
            progress.line(f"failure {result.failures[0].path} {result.failures[0].message_id}")


def op_stress_reader(library, args: dict, progress: Progress) -> None:
    """List and read every file until the deadline; report mismatches and errors."""
    import time

    from optvol import errors

    deadline = time.time() + args["seconds"]
    reads = 0
    with library.open(args["vol"]) as volume:
        while time.time() < deadline:
            for directory, _, names in list(volume.walk("/")):
                for name in names:
                    path = directory.rstrip("/") + "/" + name
                    try:
                        data = volume.read_bytes(path)
                    except errors.OptvolError as exc:
                        progress.line(f"error {path} {exc.message_id}")
                        continue
                    reads += 1
                    if data != content(path, size_of(path, 1500)):
                        progress.line(f"bad {path}")
    progress.line(f"reads {reads}")


def op_disk_full_write(library, args: dict, progress: Progress) -> None:
    """Write with the host disk 'full' after ``budget`` more bytes of data-partition writes."""
    import errno

    from optvol import errors
    from optvol.image import datapart

    budget = [args["budget"]]
    real_pwrite = os.pwrite

    class _Os:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def pwrite(fd, data, offset):
            if len(data) > budget[0]:
                raise OSError(errno.ENOSPC, "No space left on device")
            budget[0] -= len(data)
            return real_pwrite(fd, data, offset)

    datapart.os = _Os()
    with library.open(args["vol"]) as volume:
        try:
            volume.write_bytes(args["path"], content(args["path"], args["size"]))
        except errors.OptvolError as exc:
            progress.line(f"error {exc.message_id} {exc.exit_code}")
            return
    progress.line("written")


def main() -> None:
    op, root, raw, progress_path = sys.argv[1:5]
    from optvol.library import Library

    progress = Progress(progress_path)
    library = Library(root, clock=clock)
    progress.line("ready")
    globals()[f"op_{op}"](library, json.loads(raw), progress)
    progress.line("end")


if __name__ == "__main__":
    main()
