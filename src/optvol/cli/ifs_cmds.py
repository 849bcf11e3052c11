"""Handlers of the IFS commands on /QOPT paths (reference §10.9): CPY, MOV, RNM, RMVLNK, CRTDIR, RMVDIR, CHGATR.

They take IBM's parameters and act through ``transfer``, like the shell's cp, mv, rm,
mkdir, rmdir and chattr. Unlike cp, CPY does not replace an existing file unless
REPLACE(*YES), and MOV never replaces.
"""

from __future__ import annotations

from optvol import errors, transfer
from optvol.cli import render
from optvol.cli.context import Context
from optvol.cli.file_cmds import report as _report


def _target(command: str, values: dict) -> str:
    """TOOBJ as it is, or TODIR as a directory to copy into (exactly one of them)."""
    if (values["TOOBJ"] is None) == (values["TODIR"] is None):
        raise errors.error("OPV0009", where=f"{command} keyword TODIR", reason="give either TOOBJ or TODIR")
    if values["TODIR"] == "":  # "" + "/" would be the host's root directory
        raise errors.error("OPV0005", value="", keyword="TODIR", reason="it is empty: name a directory")
    return values["TOOBJ"] if values["TODIR"] is None else values["TODIR"].rstrip("/") + "/"


def cpy(ctx: Context, values: dict) -> int:
    """CPY: copy a file, or with SUBTREE(*ALL) a tree; host paths allowed on either side."""
    written = transfer.copy(ctx.library(), [values["OBJ"]], _target("CPY", values),
                            recursive=values["SUBTREE"] == "*ALL", replace=values["REPLACE"] == "*YES")
    return _report(ctx, "copied", written, "copied")


def mov(ctx: Context, values: dict) -> int:
    """MOV: move a file or directory; an existing target is never replaced."""
    moved = transfer.move(ctx.library(), [values["OBJ"]], _target("MOV", values))
    return _report(ctx, "moved", moved, "moved")


def rnm(ctx: Context, values: dict) -> int:
    """RNM: a new name in the same directory."""
    renamed = transfer.rename(ctx.library(), values["OBJ"], values["NEWOBJ"])
    return _report(ctx, "renamed", [renamed], "renamed to")


def rmvlnk(ctx: Context, values: dict) -> int:
    """RMVLNK (DEL): delete one file."""
    removed = transfer.remove(ctx.library(), [values["OBJLNK"]], operation="RMVLNK")
    return _report(ctx, "removed", removed, "removed")


def crtdir(ctx: Context, values: dict) -> int:
    """CRTDIR (MKDIR): create one directory; its parent must exist."""
    return _report(ctx, "created", transfer.make_directory(ctx.library(), [values["DIR"]]), "created")


def rmvdir(ctx: Context, values: dict) -> int:
    """RMVDIR: remove an empty directory, or with SUBTREE(*ALL) everything below it too."""
    removed = transfer.remove_directory(ctx.library(), [values["DIR"]], subtree=values["SUBTREE"] == "*ALL")
    return _report(ctx, "removed", removed, "removed")


def chgatr(ctx: Context, values: dict) -> int:
    """CHGATR: ATR(*READONLY) or ATR(*HIDDEN) set to VALUE(*YES) or VALUE(*NO)."""
    flag = {"*READONLY": "read_only", "*HIDDEN": "hidden"}[values["ATR"]]
    info = transfer.change_attributes(ctx.library(), values["OBJ"], **{flag: values["VALUE"] == "*YES"})
    if ctx.json:
        ctx.print_json(info.as_json())
    else:
        ctx.print(f"{render.shown(info.path)}: read-only {'*YES' if info.read_only else '*NO'}, hidden {'*YES' if info.hidden else '*NO'}")
    return 0
