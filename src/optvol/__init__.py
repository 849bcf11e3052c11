"""optvol: IBM i optical volume management, rebuilt in Python.

The Python API for user programs::

    import optvol
    library = optvol.open_library("/path/to/library")   # or None: $OPTVOL_LIBRARY, ~/.local/share/optvol
    with library.open("PVOL1") as volume:
        with volume.open("/DIR1/report.txt", "w") as handle:
            handle.write("hello")
        print(volume.listdir("/DIR1"), volume.stat("/DIR1/report.txt"))
"""

from __future__ import annotations

import os
from pathlib import Path

from optvol.errors import OptvolError
from optvol.library import Library, resolve_root
from optvol.model import DirInfo, FileInfo, MediaFormat, MediaType, VolumeInfo, VolumeType
from optvol.volume import Volume

__all__ = [
    "DirInfo", "FileInfo", "Library", "MediaFormat", "MediaType", "OptvolError", "Volume", "VolumeInfo",
    "VolumeType", "open_library",
]


def open_library(path: str | os.PathLike | None = None) -> Library:
    """The library at ``path``, else ``$OPTVOL_LIBRARY``, else ``~/.local/share/optvol``, with the system clock."""
    from optvol.cli.context import system_clock

    root = resolve_root(None if path is None else str(path), os.environ, Path.home())
    return Library(root, clock=system_clock)
