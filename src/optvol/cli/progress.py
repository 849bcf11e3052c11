"""The progress bar of long commands (DESIGN §2: they report through callbacks, this draws).

Drawn on standard error when it is a terminal and the output is not JSON; otherwise the
command gets no callbacks at all. The bar shows the files and bytes done, and, once the
command has counted them (``totals``), of how many, the rate and the time left.
"""

from __future__ import annotations

import time

from optvol.cli.context import Context
from optvol.model import Progress

EVERY = 0.05  # seconds between the counts handed to rich (which redraws ten times a second)


class Bar:
    """Use as a context manager; pass ``update`` and ``totals`` (None when nothing is drawn)
    to the command."""

    def __init__(self, ctx: Context, label: str):
        self.progress = None
        self._last: tuple[int, int] | None = None  # the latest counts, not yet handed on
        self._next = 0.0  # when counts are handed on next
        if not ctx.json and ctx.err.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                FileSizeColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            # On stderr, the terminal it was asked about: stdout may be a pipe or a file. Until
            # the totals are known the bar pulses and only the counts so far show.
            self.progress = Progress(TextColumn(f"{label} {{task.fields[files]}}{{task.fields[all_files]}} files"),
                                     BarColumn(), FileSizeColumn(), TextColumn("{task.fields[all_bytes]}"),
                                     TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
                                     console=Console(file=ctx.err))
            self.task = self.progress.add_task(label, total=None, files=0, all_files="", all_bytes="")

    def __enter__(self) -> Bar:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self._hand_on()
            self.progress.stop()

    @property
    def update(self) -> Progress | None:
        """The callback of the counts so far."""
        return self._update if self.progress else None

    @property
    def totals(self) -> Progress | None:
        """The callback of the counts in all; a new call starts the bar again (the next
        volume of a CHKOPTVOL VOL(*ALL), say)."""
        return self._totals if self.progress else None

    def _update(self, files: int, done: int) -> None:
        """Called for every file of a long command: rich hears of it at most every EVERY
        seconds (an update costs it about 1.5 µs: 1.5 s over a million files)."""
        self._last = (files, done)
        if time.monotonic() >= self._next:
            self._hand_on()

    def _hand_on(self) -> None:
        if self._last is not None:
            files, done = self._last
            self.progress.update(self.task, completed=done, files=files)
            self._last, self._next = None, time.monotonic() + EVERY

    def _totals(self, files: int, size: int) -> None:
        from rich.filesize import decimal

        self._last, self._next = None, 0.0
        self.progress.reset(self.task, total=size, files=0, all_files=f"/{files}", all_bytes=f"of {decimal(size)}")
