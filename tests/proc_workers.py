"""Functions run in child processes (multiprocessing with the spawn start method).

They live in their own module so that spawned children can import them by name. Each
opens the library itself with the system clock; results go back as plain data.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def content_for(name: str, size: int) -> bytes:
    """Deterministic bytes for a file name: any reader can check them without the writer."""
    seed = hashlib.sha256(name.encode()).digest()
    block = hashlib.sha256(seed + b"block").digest() * 64  # 2 KiB
    whole, rest = divmod(size, len(block))
    return seed[:8] + (block * (whole + 1))[: size - 8] if size >= 8 else seed[:size]


def inzopt_many(root: str, volumes: list[str], start) -> list[tuple[str, str]]:
    """INZOPT each volume once; report ("created"|"reinitialized"|message ID) per volume."""
    from optvol import errors
    from optvol.initialize import inzopt
    from optvol.library import Library

    start.wait()
    library = Library(root, clock=system_clock)
    outcome = []
    for vol in volumes:
        try:
            result = inzopt(library, vol=vol, now=system_clock())
            outcome.append((vol, "created" if result.created else "reinitialized"))
        except errors.OptvolError as exc:
            outcome.append((vol, exc.message_id))
    return outcome


def write_files(root: str, volume: str, prefix: str, count: int, size: int, start) -> list[str]:
    """Write ``count`` files /<prefix>/<prefix>_<i> of deterministic content; return their paths."""
    from optvol.library import Library

    start.wait()
    library = Library(root, clock=system_clock)
    written = []
    with library.open(volume) as vol:
        vol.mkdir(f"/{prefix}", exist_ok=True)
        for i in range(count):
            path = f"/{prefix}/{prefix}_{i}"
            vol.write_bytes(path, content_for(path, size + i))
            written.append(path)
    return written


def writer_stream(root: str, volume: str, count: int, size: int, start, done) -> int:
    """Write ``count`` files of ``size`` bytes one commit each, in the root directory."""
    from optvol.library import Library

    library = Library(root, clock=system_clock)
    start.wait()
    with library.open(volume) as vol:
        for i in range(count):
            path = f"/W{i}"
            with vol.open(path, "wb") as handle:
                handle.write(content_for(path, size))
    done.set()
    return count


def reader_poll(root: str, volume: str, size: int, start, done) -> dict:
    """Poll listdir and read every listed file until ``done``; report what was checked and any mismatch."""
    from optvol import errors
    from optvol.library import Library

    library = Library(root, clock=system_clock)
    start.wait()
    checked, bad, failures = 0, [], []
    with library.open(volume) as vol:
        while True:
            finished = done.is_set()
            for name in vol.listdir("/"):
                path = "/" + name
                try:
                    data = vol.read_bytes(path)
                except errors.OptvolError as exc:
                    failures.append((path, exc.message_id))
                    continue
                checked += 1
                if data != content_for(path, size):
                    bad.append(path)
            if finished:
                break
    return {"checked": checked, "bad": bad, "failures": failures}


def batch_writer(root: str, volume: str, first: int, batches: int, per_batch: int, size: int, progress: str) -> None:
    """Write batches ``first`` .. ``batches - 1`` of files, one Volume.batch() each; after
    each commit, append the batch number to the file ``progress``."""
    from optvol.library import Library

    library = Library(root, clock=system_clock)
    with library.open(volume) as vol:
        for b in range(first, batches):
            with vol.batch():
                vol.mkdir(f"/B{b}")
                for i in range(per_batch):
                    path = f"/B{b}/F{i}"
                    vol.write_bytes(path, content_for(path, size + i))
            with open(progress, "a") as handle:
                handle.write(f"{b}\n")
                handle.flush()
                os.fsync(handle.fileno())


if __name__ == "__main__":
    import json
    import sys

    globals()[sys.argv[1]](*json.loads(sys.argv[2]))
