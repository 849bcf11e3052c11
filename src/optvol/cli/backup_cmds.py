"""Handlers of CPYOPT and CVTOPTBKU."""

from __future__ import annotations

import sys
from datetime import datetime, time

from optvol import conversion, copying, errors
from optvol.cli import render
from optvol.cli.context import Context
from optvol.cli.progress import Bar
from optvol.model import VolumeType, local_moment


def _from_time(value: tuple) -> datetime | None:
    """FROMTIME(date time): *BEGIN is no limit; *AVAIL is the start of the day."""
    day, moment = value
    if day == "*BEGIN":
        return None
    return local_moment(datetime.combine(day, time(0) if moment == "*AVAIL" else moment))


def request_of(values: dict) -> copying.CopyRequest:
    (fromvol, fromtype), (tovol, totype) = values["FROMVOL"], values["TOVOL"]
    return copying.CopyRequest(
        fromvol=fromvol, fromtype=VolumeType(fromtype), frompath=values["FROMPATH"],
        tovol=tovol, totype=VolumeType(totype),
        topath=None if values["TOPATH"] == "*FROMPATH" else values["TOPATH"],
        sltfile=values["SLTFILE"], cpysubdir=values["CPYSUBDIR"] == "*YES", crtdir=values["CRTDIR"] == "*YES",
        alwcpyopp=values["ALWCPYOPP"] == "*YES", copytype=values["COPYTYPE"], fromtime=_from_time(values["FROMTIME"]),
    )


def cpyopt(ctx: Context, values: dict) -> int:
    request = request_of(values)
    with Bar(ctx, "CPYOPT") as bar:
        result = copying.cpyopt(ctx.library(), request, now=ctx.now(), progress=bar.update, totals=bar.totals)
    if ctx.json:
        ctx.print_json(result.as_json())
    else:
        # The target by name (TOVOL(*FROMVOL) is the source volume), and where it lands if TOPATH says.
        target = request.fromvol if request.tovol == "*FROMVOL" else request.tovol
        target += f" {render.shown(request.topath)}" if request.topath else ""
        ctx.print(f"CPYOPT {request.fromvol} {render.shown(request.frompath)} -> {target}: {result.copied} copied "
                  f"({result.bytes_copied:,} bytes), {result.not_selected} not selected, {result.failed} failed, "
                  f"{result.directories} directories.")
        for failure in result.failures:
            ctx.print(f"  failed: {render.shown(failure.path)}: {failure.message_id}: {failure.message}")
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
