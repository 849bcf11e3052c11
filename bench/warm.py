"""The page cache, warm for everybody: what the benchmarks read first, read once untimed.

optvol writes its records past the page cache (O_DIRECT, ``image/datapart.py``), where the
host trees that cp, rsync and genisoimage read stay cached from their writing. So a
benchmark reads the volume it has just filled once before it measures anything.
"""

from __future__ import annotations

import os


def warm(directory: str | os.PathLike) -> None:
    """Read every file directly in ``directory`` once."""
    for entry in os.scandir(directory):
        if entry.is_file():
            with open(entry.path, "rb", buffering=0) as handle:
                while handle.read(8 << 20):
                    pass
