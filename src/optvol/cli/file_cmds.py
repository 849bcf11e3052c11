"""Handlers of the file commands on /QOPT paths: cp, mv, rm, mkdir, rmdir, ls, cat, chattr."""

from __future__ import annotations

import errno
from collections.abc import Iterable

from optvol import errors, reading, transfer
from optvol.cli import render
from optvol.cli.context import Context


def report(ctx: Context, key: str, paths: Iterable[str], verb: str) -> int:
    """What a file command did, path by path as it is done: ``{key: paths}`` in JSON, else a
    line per path. The paths come as the work is done: if the reader of the output goes away
    (``| head``), the work still goes on to its end, unreported (``context.Guarded``)."""
    if ctx.json:
        ctx.print_json_report(key, paths)
    else:
        for path in paths:
            ctx.print(f"{verb} {render.shown(path)}")
    return 0


def cp(ctx: Context, values: dict) -> int:
    written = transfer.copy(ctx.library(), values["SOURCE"], values["TARGET"],
                            recursive=values["RECURSIVE"], replace=values["REPLACE"] == "*YES")
    return report(ctx, "copied", written, "copied")


def mv(ctx: Context, values: dict) -> int:
    moved = transfer.move(ctx.library(), values["SOURCE"], values["TARGET"])
    return report(ctx, "moved", moved, "moved")


def rm(ctx: Context, values: dict) -> int:
    removed = transfer.remove(ctx.library(), values["PATH"], recursive=values["RECURSIVE"])
    return report(ctx, "removed", removed, "removed")


def mkdir(ctx: Context, values: dict) -> int:
    made = transfer.make_directory(ctx.library(), values["PATH"], parents=values["PARENTS"])
    return report(ctx, "created", made, "created")


def rmdir(ctx: Context, values: dict) -> int:
    return report(ctx, "removed", transfer.remove_directory(ctx.library(), values["PATH"]), "removed")


def ls(ctx: Context, values: dict) -> int:
    entries = reading.list_directory(ctx.library(), values["PATH"])
    if ctx.json:
        ctx.print_json_list(e.as_json() for e in entries)
        return 0
    if not values["LONG"]:
        for entry in entries:
            ctx.print(render.shown(entry.path.rsplit("/", 1)[-1]) + ("/" if entry.is_dir else ""))
        return 0
    width, rows = render.sized(entries, lambda entry: [render.when(_time(entry))])  # (its time column's width)
    for entry in rows:
        ctx.print(_long_line(entry, width))
    return 0


def _time(entry):
    return entry.created if entry.is_dir else entry.modified


def _long_line(entry, width: int) -> str:
    """An entry as ``ls -l`` shows it: size (``<DIR>``), time (a directory's created, a file's
    modified), read-only and hidden flags, name."""
    name = render.shown(entry.path.rsplit("/", 1)[-1]) + ("/" if entry.is_dir else "")
    flags = "--" if entry.is_dir else ("R" if entry.read_only else "-") + ("H" if entry.hidden else "-")
    return f"{'<DIR>' if entry.is_dir else entry.size:>12}  {render.when(_time(entry)):<{width}}  {flags}  {name}"


def cat(ctx: Context, values: dict) -> int:
    """The files' bytes on stdout. Output that cannot be written (a full disk, a reader gone)
    stops cat, as it stops ``cat``; ``cli.main`` says why. Errors reading a volume are the
    volume's (exit 7 for a damaged file), never blamed on stdout. Stopped by a reader that
    went away, it still looks up the paths not reached, so that one that names no file fails
    the command as it would have (``cat A MISSING | head``)."""
    paths = values["PATH"]
    for index, path in enumerate(paths):
        for chunk in reading.read_file(ctx.library(), path):
            if not _put(ctx, chunk):
                if isinstance(ctx.out.lost, BrokenPipeError):  # (output lost otherwise: OPV0302 says so first)
                    for rest in paths[index + 1:]:
                        reading.check_file(ctx.library(), rest)
                return 0
    _put(ctx, b"")  # flushed: what stdout cannot take is lost now, not at the exit
    return 0


def _put(ctx: Context, chunk: bytes) -> bool:
    """Write (and, for an empty chunk, flush) ``chunk`` on stdout; False once stdout cannot take it."""
    try:
        binary = getattr(ctx.out, "buffer", None)
        if binary is None:  # a text stream such as the demo's capture
            ctx.out.write(chunk.decode(errors="replace"))
        elif chunk:
            ctx.out.flush()
            view = memoryview(chunk)
            while view:  # a write the disk took part of returns its count, unraised: the rest raises
                written = binary.write(view)
                if not written:
                    raise OSError(errno.EIO, "standard output took none of the bytes")
                view = view[written:]
        else:
            binary.flush()
    except OSError as exc:
        ctx.out.lost = exc
        return False
    return True


def chattr(ctx: Context, values: dict) -> int:
    if values["READONLY"] is None and values["HIDDEN"] is None:
        raise errors.error("OPV0008", reason="chattr needs --readonly or --hidden (or both)")
    flags = {k: None if values[v] is None else values[v] == "*YES" for k, v in (("read_only", "READONLY"), ("hidden", "HIDDEN"))}
    info = transfer.change_attributes(ctx.library(), values["PATH"], **flags)
    if ctx.json:
        ctx.print_json(info.as_json())
    else:
        ctx.print(f"{render.shown(info.path)}: read-only {'*YES' if info.read_only else '*NO'}, hidden {'*YES' if info.hidden else '*NO'}")
    return 0
