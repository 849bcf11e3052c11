"""Handlers of CPYOPT and CVTOPTBKU."""

from __future__ import annotations

import sys
from datetime import datetime, time

from optvol import conversion, copying, errors
from optvol.cli.context import Context
from optvol.model import VolumeType


def _from_time(value: tuple) -> datetime | None:
    """FROMTIME(date time): *BEGIN is no limit; *AVAIL is the start of the day."""
    day, moment = value
    if day == "*BEGIN":
        return None
    return datetime.combine(day, time(0) if moment == "*AVAIL" else moment).astimezone()


def request_of(values: dict) -> copying.CopyRequest:
    (fromvol, fromtype), (tovol, totype) = values["FROMVOL"], values["TOVOL"]
    return copying.CopyRequest(
        fromvol=fromvol, fromtype=VolumeType(fromtype), frompath=values["FROMPATH"],
        tovol=tovol, totype=VolumeType(totype),
        topath=None if values["TOPATH"] == "*FROMPATH" else values["TOPATH"],
        sltfile=values["SLTFILE"], cpysubdir=values["CPYSUBDIR"] == "*YES", crtdir=values["CRTDIR"] == "*YES",
        alwcpyopp=values["ALWCPYOPP"] == "*YES", copytype=values["COPYTYPE"], fromtime=_from_time(values["FROMTIME"]),
    )


class _Bar:
    """A progress bar on a terminal (files and bytes so far and in all, rate, time left);
    nothing otherwise."""

    def __init__(self, ctx: Context):
        self.progress = None
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
            # the totals are counted (a file FROMPATH has none) the bar pulses and only the
            # counts so far show.
            self.progress = Progress(TextColumn("CPYOPT {task.fields[files]}{task.fields[all_files]} files"),
                                     BarColumn(), FileSizeColumn(), TextColumn("{task.fields[all_bytes]}"),
                                     TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
                                     console=Console(file=ctx.err))
            self.task = self.progress.add_task("copy", total=None, files=0, all_files="", all_bytes="")

    def __enter__(self) -> _Bar:
        if self.progress:
            self.progress.start()
        return self

    def update(self, files: int, done: int) -> None:
        self.progress.update(self.task, completed=done, files=files)

    def totals(self, files: int, size: int) -> None:
        from rich.filesize import decimal

        self.progress.update(self.task, total=size, all_files=f"/{files}", all_bytes=f"of {decimal(size)}")

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()


def cpyopt(ctx: Context, values: dict) -> int:
    request = request_of(values)
    with _Bar(ctx) as bar:
        drawn = bar.progress is not None
        result = copying.cpyopt(ctx.library(), request, now=ctx.now(), progress=bar.update if drawn else None,
                                totals=bar.totals if drawn else None)
    if ctx.json:
        ctx.print_json(result.as_json())
    else:
        ctx.print(f"CPYOPT {request.fromvol} {request.frompath} -> {request.tovol}: {result.copied} copied "
                  f"({result.bytes_copied:,} bytes), {result.not_selected} not selected, {result.failed} failed, "
                  f"{result.directories} directories.")
        for failure in result.failures:
            ctx.print(f"  failed: {failure.path}: {failure.message_id}: {failure.message}")
    if result.failures:
        failure = errors.error("OPT0125", command="CPYOPT", failed=result.failed)
        print(f"optvol: {failure.message_id}: {failure.text}", file=ctx.err or sys.stderr)
        return failure.exit_code
    return 0


def cvtoptbku(ctx: Context, values: dict) -> int:
    privol = None if values["PRIVOL"] == "*PRVPRIVOL" else values["PRIVOL"]
    info = conversion.cvtoptbku(ctx.library(), bkuvol=values["BKUVOL"], privol=privol)
    if ctx.json:
        ctx.print_json(info.as_json())
    else:
        ctx.print(f"Backup volume {values['BKUVOL']} converted: it is now *PRIMARY volume {info.volume} "
                  f"(threshold {info.threshold} %, changeable with CHGOPTVOL).")
    return 0
