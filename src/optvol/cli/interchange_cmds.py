"""Handlers of export-iso and import-iso (ISO 9660 / UDF interchange)."""

from __future__ import annotations

from optvol import errors
from optvol.cli import render
from optvol.cli.context import Context
from optvol.cli.progress import Bar


def export_iso(ctx: Context, values: dict) -> int:
    from optvol import interchange  # the image code loads only for these commands

    with Bar(ctx, "export-iso") as bar:
        result = interchange.export_iso(ctx.library(), vol=values["VOL"], file=values["FILE"], udf=values["UDF"],
                                        now=ctx.now(), progress=bar.update, totals=bar.totals)
    if ctx.json:
        ctx.print_json(result.as_json())
    else:
        bridge = " with a UDF bridge" if result.udf else ""
        ctx.print(f"exported volume {result.volume} to {render.shown(str(result.file))}{bridge}: "
                  f"{result.files} file(s), {result.directories} directory(ies), {result.bytes} bytes")
        for entry in result.renamed_entries:
            names = "; ".join(f"{space} {name!r}" for space, name in (("Rock Ridge", entry.rock_ridge),
                                                                      ("UDF", entry.udf)) if name is not None)
            ctx.print(f"  renamed: {render.shown(entry.path)}: {names}")
        if result.renamed > len(result.renamed_entries):
            ctx.print(f"  renamed: {result.renamed - len(result.renamed_entries)} more")
    return 0


def import_iso(ctx: Context, values: dict) -> int:
    from optvol import interchange

    with Bar(ctx, "import-iso") as bar:
        result = interchange.import_iso(ctx.library(), file=values["FILE"], vol=values["VOL"], into=values["INTO"],
                                        now=ctx.now(), progress=bar.update, totals=bar.totals)
    if ctx.json:
        ctx.print_json(result.as_json())
    elif result.media_type is None:
        ctx.print(f"imported {render.shown(str(result.file))} ({result.namespace} names) into /QOPT/{result.volume}{result.path}: "
                  f"{result.files} file(s), {result.directories} directory(ies), {result.bytes} bytes")
    else:
        ctx.print(f"imported {render.shown(str(result.file))} ({result.namespace} names) as {result.media_type} volume {result.volume}: "
                  f"{result.files} file(s), {result.directories} directory(ies), {result.bytes} bytes")
    if not ctx.json:
        for skip in result.skipped_entries:
            target = f" -> {render.shown(skip.target)}" if skip.target else ""  # an image's names: anything at all
            ctx.print(f"  skipped: {render.shown(skip.path)} ({skip.type}{target})")
        if result.skipped > len(result.skipped_entries):
            ctx.print(f"  skipped: {result.skipped - len(result.skipped_entries)} more")
        for path in result.cut_entries:
            ctx.print(f"  cut name kept: {render.shown(path)} (the whole UDF name it was cut from cannot be told)")
        if result.cut > len(result.cut_entries):
            ctx.print(f"  cut name kept: {result.cut - len(result.cut_entries)} more")
    if result.skipped:
        failure = errors.error("OPV0705", path=result.file, count=result.skipped)
        ctx.note(f"{failure.message_id}: {failure.text}")
        return failure.exit_code
    return 0
