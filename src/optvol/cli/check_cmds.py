"""Handlers of CHKOPTVOL and DUPOPT."""

from __future__ import annotations

from optvol import checking, duplicate, errors, model, recovery
from optvol.cli import render
from optvol.cli.context import Context
from optvol.cli.progress import Bar


def chkoptvol(ctx: Context, values: dict) -> int:
    output, unreadable = values["OUTPUT"], []
    with Bar(ctx, "CHKOPTVOL") as bar:
        results = checking.chkoptvol(ctx.library(), vol=values["VOL"], keep_list=output == "*PRINT",
                                     progress=bar.update, totals=bar.totals, unreadable=unreadable)
    vol = values["VOL"]
    several = vol == "*ALL" or vol.endswith("*")  # a list, as DSPOPT VOL(generic) and WRKOPTVOL print
    if vol != "*ALL" and not results and not unreadable:  # a generic name that matches none
        raise errors.error("OPV0002", volume=vol, library=ctx.library().root)
    if ctx.json:
        ctx.print_json([r.as_json() for r in results] if several else results[0].as_json())
    else:
        for result in results:
            ctx.print(f"CHKOPTVOL {result.volume}: {result.files_checked} file version(s), "
                      f"{result.bytes_checked:,} bytes read back intact; {len(result.damaged)} damaged.")
            if output == "*PRINT":
                for path in result.checked:
                    ctx.print(f"  ok       {render.shown(path)}")
            if output != "*NONE":
                for damage in result.damaged:
                    ctx.print(f"  DAMAGED  {render.shown(damage.path)}: {damage.reason}")
    # Volumes that could not be checked (in use: not damaged) are left out, each with its
    # error on stderr, as WRKOPTVOL leaves them out; their exit code unless one is damaged.
    for exc in unreadable:
        ctx.error(exc)
    code = max((exc.exit_code for exc in unreadable), default=0)
    damaged = [r for r in results if r.damaged]
    if damaged:
        first = damaged[0]
        failure = errors.error("OPV0206", volume=first.volume, count=len(first.damaged),
                               reason=", ".join(d.path for d in first.damaged[:3]))
        ctx.note(f"{failure.message_id}: {failure.text}")
        return failure.exit_code  # (damage found is what a check says first: 7 over an 8 of a volume in use)
    return code


def dupopt(ctx: Context, values: dict) -> int:
    with Bar(ctx, "DUPOPT") as bar:
        result = duplicate.dupopt(ctx.library(), fromvol=values["FROMVOL"], tovol=values["TOVOL"], now=ctx.now(),
                                  newvol=values["NEWVOL"], clear=values["CLEAR"] == "*YES",
                                  allow_media_errors=values["ALWMEDERR"] == "*FILE", progress=bar.update,
                                  totals=bar.totals)
    info = result.volume
    if ctx.json:
        ctx.print_json({"volume": info.as_json(), "files": result.files, "bytes": result.bytes,
                        "left_out": [{"path": d.path, "reason": d.reason} for d in result.left_out],
                        "carried": [{"path": d.path, "reason": d.reason} for d in result.carried]})
    else:
        ctx.print(f"DUPOPT {values['FROMVOL']} -> {info.volume}: {result.files} file version(s), "
                  f"{result.bytes:,} bytes, verified; {info.type} {info.media_type}.")
        for damage in result.left_out:
            ctx.print(f"  left out (damaged): {render.shown(damage.path)}: {damage.reason}")
        for damage in result.carried:
            ctx.print(f"  copied as it is (damaged on {values['FROMVOL']} too): {render.shown(damage.path)}: {damage.reason}")
    if result.left_out:  # completed with errors: files the duplicate lacks
        failure = errors.error("OPV0208", volume=info.volume, count=len(result.left_out))
        ctx.note(f"{failure.message_id}: {failure.text}")
        return failure.exit_code
    return 0


def recover(ctx: Context, values: dict) -> int:
    report = recovery.recover(ctx.library(), vol=values["VOL"])
    if ctx.json:
        ctx.print_json(report.as_json())
    else:
        kinds = ", ".join(f"{count} {kind.name.lower()}" for kind, count in sorted(report.records.items()))
        ctx.print(f"Volume {report.volume} recovered from its data partition: {kinds} record(s); "
                  f"{report.files} file(s), {report.versions} version(s), {report.directories} directories.")
        if report.tail_cut:
            ctx.print(f"  a torn tail of {report.tail_cut:,} bytes was cut off")
        for sector, sectors, reason in report.damaged:
            held = report.indexed.get(sector)
            held = "; ".join(what.shown(render.shown) for what in held or [])
            held = f" (the index before held there: {held})" if held else ""
            ctx.print(f"  DAMAGED  sectors {sector}-{sector + sectors - 1}: {reason}{held}")
        for path in report.salvaged:
            ctx.print(f"  directory made again for what lies below it (its own record could not be read):"
                      f" {render.shown(path)}")
    if report.volume != model.volume_id(values["VOL"]):  # a directory copied or renamed by the host: still refused
        try:
            ctx.library().open(values["VOL"]).close()
        except errors.OptvolError as refused:
            ctx.error(refused)
            return refused.exit_code
    if report.damaged:
        failure = errors.error("OPV0207", volume=report.volume, count=len(report.damaged))
        ctx.note(f"{failure.message_id}: {failure.text}")
        return failure.exit_code
    return 0
