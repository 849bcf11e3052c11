"""Paths an operation reports only at its end, kept in a temporary file rather than in memory.

mv to another volume or the host reports each path it moved once the source is removed, after
the whole copy: a list of 1,000,000 paths would hold over 100 MB (DESIGN §6: any command under
150 MiB). Past ``IN_MEMORY`` bytes they go to a file in the temporary directory (``$TMPDIR``),
NUL after each (no name holds one). Where the host refuses that file (none can be made, or the
disk is full) the rest stays in memory, as before there was a spool: the operation never fails
for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

IN_MEMORY = 4 << 20
_CHUNK = 64 << 10  # (read back so: a chunk split holds a few hundred paths at a time)


class PathSpool:
    """Paths added one at a time, given back in that order (from the start each time)."""

    def __init__(self) -> None:
        self._file = None  # the spilled part: its first ``self._spilled`` bytes
        self._spilled = 0
        self._held = bytearray()  # the rest
        self._spills = True

    def add(self, path: str) -> None:
        self._held += path.encode("utf-8", "surrogateescape") + b"\0"
        if self._spills and len(self._held) >= IN_MEMORY:
            self._spill()

    def _spill(self) -> None:
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(buffering=0)
            view, written = memoryview(self._held), 0
            while written < len(view):
                written += os.pwrite(self._file.fileno(), view[written:], self._spilled + written)
        except OSError:  # the host refuses: the rest stays in memory (a part written is not counted)
            self._spills = False
            return
        self._spilled += written
        self._held = bytearray()

    def __iter__(self) -> Iterator[str]:
        rest, at = b"", 0
        while at < self._spilled:
            chunk = os.pread(self._file.fileno(), min(_CHUNK, self._spilled - at), at)
            if not chunk:  # (cut short behind this process's back)
                raise OSError(f"the temporary file of paths ends at {at} of {self._spilled} bytes")
            at += len(chunk)
            *whole, rest = (rest + chunk).split(b"\0")
            yield from (path.decode("utf-8", "surrogateescape") for path in whole)
        for path in (rest + self._held).split(b"\0")[:-1]:
            yield path.decode("utf-8", "surrogateescape")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
