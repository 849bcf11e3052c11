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

TYPE_CHECKING = False  # (typing's would load typing and re: a Ctrl-C in those ~60 ms was a traceback)

if TYPE_CHECKING:  # what type checkers see; at run time each name is loaded when first asked for
    from optvol.errors import OptvolError as OptvolError  # (re-exported: the redundant aliases say so)
    from optvol.library import Library as Library
    from optvol.model import DirInfo as DirInfo
    from optvol.model import FileInfo as FileInfo
    from optvol.model import MediaFormat as MediaFormat
    from optvol.model import MediaType as MediaType
    from optvol.model import VolumeInfo as VolumeInfo
    from optvol.model import VolumeType as VolumeType
    from optvol.volume import Volume as Volume

# The names of the API, loaded from their modules when first asked for: ``import optvol``
# itself loads nothing else, so that the command line's launcher (``optvol.__main__``)
# starts in a few milliseconds and can take a Ctrl-C from the first moment.
_FROM = {
    "OptvolError": "optvol.errors", "Library": "optvol.library", "Volume": "optvol.volume",
    "DirInfo": "optvol.model", "FileInfo": "optvol.model", "MediaFormat": "optvol.model",
    "MediaType": "optvol.model", "VolumeInfo": "optvol.model", "VolumeType": "optvol.model",
}

__all__ = sorted([*_FROM, "open_library"])


def __getattr__(name: str):
    """A name of the API, or a module of the package (``optvol.errors``), loaded now."""
    import importlib  # (here: it loads warnings too, which the launcher does without)

    if name in _FROM:
        value = getattr(importlib.import_module(_FROM[name]), name)
    else:
        try:
            value = importlib.import_module(f"optvol.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"optvol.{name}":
                raise
            raise AttributeError(f"module 'optvol' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM})


def open_library(path: str | os.PathLike | None = None) -> Library:
    """The library at ``path``, else ``$OPTVOL_LIBRARY``, else ``~/.local/share/optvol``, with the system clock."""
    from pathlib import Path

    from optvol.cli.context import system_clock
    from optvol.library import Library, resolve_root

    root = resolve_root(None if path is None else str(path), os.environ, Path.home())
    return Library(root, clock=system_clock)
