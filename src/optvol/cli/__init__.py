"""Layer 7: argv, environment, clock, printing and exit codes (DESIGN §4).

``main`` is the one place that turns exceptions into exit codes: an ``OptvolError``
prints ``optvol: MSGID: text`` on stderr and exits with its family's code; anything else
is a bug, shown with its traceback, exit 70.

SIGTERM and SIGHUP (``kill``, ``timeout``, a service stopped, a terminal closed) end a
command the way Ctrl-C does: as an exception in the main thread, so that what a command
does when interrupted (CPYOPT logging its run as *ENDED, a staged image removed) happens
for them too. A signal the caller ignores (``nohup``) stays ignored.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping

from optvol import errors
from optvol.cli import parser
from optvol.cli.context import Context, Guarded, tolerant

# Handlers by command name, as "module:function" of optvol.cli, imported when first used
# so that starting a command loads only what that command needs.
_HANDLER_NAMES = {
    "INZOPT": "volume_cmds:inzopt", "CHGOPTVOL": "volume_cmds:chgoptvol", "DSPOPT": "volume_cmds:dspopt",
    "WRKOPTVOL": "volume_cmds:wrkoptvol", "WRKOPTDIR": "volume_cmds:wrkoptdir", "WRKOPTF": "volume_cmds:wrkoptf",
    "CPYOPT": "backup_cmds:cpyopt", "CVTOPTBKU": "backup_cmds:cvtoptbku",
    "CHKOPTVOL": "check_cmds:chkoptvol", "DUPOPT": "check_cmds:dupopt", "RECOVER": "check_cmds:recover",
    "CP": "file_cmds:cp", "MV": "file_cmds:mv", "RM": "file_cmds:rm", "MKDIR": "file_cmds:mkdir",
    "RMDIR": "file_cmds:rmdir", "LS": "file_cmds:ls", "CAT": "file_cmds:cat", "CHATTR": "file_cmds:chattr",
    "CPY": "ifs_cmds:cpy", "MOV": "ifs_cmds:mov", "RNM": "ifs_cmds:rnm", "RMVLNK": "ifs_cmds:rmvlnk",
    "CRTDIR": "ifs_cmds:crtdir", "RMVDIR": "ifs_cmds:rmvdir", "CHGATR": "ifs_cmds:chgatr",
    "DEMO": "demo:handle", "EXPORT-ISO": "interchange_cmds:export_iso", "IMPORT-ISO": "interchange_cmds:import_iso",
}


class _Handlers(Mapping):
    """Command name -> handler(ctx, values), importing its module on first use."""

    def __getitem__(self, name: str):
        module, function = _HANDLER_NAMES[name].split(":")
        return getattr(importlib.import_module(f"optvol.cli.{module}"), function)

    def __iter__(self):
        return iter(_HANDLER_NAMES)

    def __len__(self) -> int:
        return len(_HANDLER_NAMES)


HANDLERS = _Handlers()

_ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: the command ends as if interrupted, with exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _signals_end_the_command() -> Iterator[None]:
    """While a command runs, SIGTERM and SIGHUP raise Terminated (where their action is the default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in _ENDING_SIGNALS}
    for signum, handler in before.items():
        if handler is signal.SIG_DFL:
            signal.signal(signum, _terminate)
    try:
        yield
    finally:
        for signum, handler in before.items():
            if handler is signal.SIG_DFL:
                signal.signal(signum, handler)


def main(argv: list[str] | None = None, *, out=None, err=None) -> int:
    """Run one optvol command line; return its exit code (``out``/``err`` default to stdout/stderr)."""
    argv = sys.argv[1:] if argv is None else argv
    ctx = Context(library_arg=None, json=False, out=Guarded(out or tolerant(sys.stdout)),
                  err=Guarded(err or tolerant(sys.stderr)))
    with _signals_end_the_command():
        code = _run(ctx, argv)
        try:  # still under the command's handling: a SIGTERM now must not cut the output short unsaid
            return _after_output(ctx, code)
        except Terminated as exc:
            return _interrupted(ctx, exc)


def _after_output(ctx: Context, code: int) -> int:
    """The exit code once the output is flushed: output a full disk, an I/O error or a closed
    stdout lost is OPV0302 (exit 2 unless the command failed first); a reader that went away
    (``| head``) changes nothing. Either way the interpreter's last flush of the lost output
    goes nowhere, without "Exception ignored" noise."""
    ctx.out.flush()
    lost = ctx.out.lost
    if lost is None:
        return code
    if ctx.out.stream is sys.stdout and sys.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if isinstance(lost, BrokenPipeError):
        return code
    ctx.error(errors.error("OPV0302", path="(standard output)", reason=lost.strerror or str(lost)))
    return code or 2


def _run(ctx: Context, argv: list[str]) -> int:
    try:
        try:
            namespace = parser.parse(argv, out=ctx.out)
        except SystemExit as done:  # --help written: its output, lost or not, is reported as any command's
            return done.code if isinstance(done.code, int) else 2
        except Exception as exc:  # raised by argparse's own clean-up while a Ctrl-C unwound it: the Ctrl-C's
            behind = _interrupt_behind(exc)
            if behind is None:
                raise
            return _interrupted(ctx, behind)
        ctx.json, ctx.library_arg = namespace.json, namespace.library
        if getattr(namespace, "cl_front_door", False):
            from optvol.cli import cl_cmd

            return cl_cmd.run(ctx, namespace, HANDLERS)
        command = getattr(namespace, "command", None)
        if command is None:  # (an error as any bad command line's: stdout, JSON or not, stays empty)
            raise errors.error("OPV0008", reason="optvol: a command is required (optvol --help lists them)")
        values = command.parse_values(parser.given_values(command, namespace))
        return HANDLERS[command.name](ctx, values)
    except errors.OptvolError as exc:
        ctx.error(exc)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt as exc:
        return _interrupted(ctx, exc)
    except Exception:  # a bug: show it, unless an index it read holds values no optvol writes
        damage = _index_damage(ctx)
        if damage is not None:
            ctx.error(damage)
            return damage.exit_code
        traceback.print_exc()
        return 70


def _index_damage(ctx: Context) -> errors.OptvolError | None:
    """OPV0201 for the first volume the command opened whose index holds values of another
    type than their column's, or a label no optvol writes (an index edited by hand): the
    command failed on them, and recover mends them."""
    from optvol.image import schema
    from optvol.image.image import INDEX_FILE

    for directory in sorted(ctx.opened_volumes()):
        problems = schema.problems_apart(directory / INDEX_FILE)
        if problems:
            return errors.error("OPV0201", volume=directory.name.removesuffix(".optvol"), reason=(
                f"its index holds values no optvol writes ({'; '.join(problems[:3])}); optvol recover rebuilds it"
                " from the data partition"))
    return None


def _interrupted(ctx: Context, exc: KeyboardInterrupt) -> int:
    """Ctrl-C (exit 130), or SIGTERM and SIGHUP (``Terminated``: 128 + the signal)."""
    if isinstance(exc, Terminated):
        print(f"optvol: ended by {signal.Signals(exc.signum).name}", file=ctx.err)
        return 128 + exc.signum
    print("optvol: interrupted", file=ctx.err)
    return 130


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt during whose handling ``exc`` was raised, if any (its ``__context__`` chain)."""
    seen, behind = set(), exc.__context__
    while behind is not None and id(behind) not in seen:
        if isinstance(behind, KeyboardInterrupt):
            return behind
        seen.add(id(behind))
        behind = behind.__context__
    return None
