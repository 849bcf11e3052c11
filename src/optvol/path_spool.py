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

from optvol import errors

IN_MEMORY = 4 << 20
_CHUNK = 64 << 10  # (read back so: a chunk split holds a few hundred paths at a time)


class PathSpool:
    """Paths added one at a time, given back in that order (from the start each time); ``what``
    did them (OPV0302 names it where the host fails to read them back)."""

    def __init__(self, what: str) -> None:
        self._what = what
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
            try:
                chunk = os.pread(self._file.fileno(), min(_CHUNK, self._spilled - at), at)
            except OSError as exc:
                raise self._unread(exc.strerror or str(exc)) from None
            if not chunk:
                raise self._unread(f"it ends at byte {at} of {self._spilled}")
            at += len(chunk)
            *whole, rest = (rest + chunk).split(b"\0")
            yield from (path.decode("utf-8", "surrogateescape") for path in whole)
        for path in (rest + self._held).split(b"\0")[:-1]:
            yield path.decode("utf-8", "surrogateescape")

    def _unread(self, reason: str) -> errors.OptvolError:
        return errors.error("OPV0302", path=f"(the temporary file of the paths {self._what} did)", reason=(
            f"{reason}; {self._what} is done, and only the rest of its paths cannot be named"))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
