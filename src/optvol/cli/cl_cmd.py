"""``optvol cl``: the CL front door (DESIGN §4).

Runs IBM CL commands given as the argument, in a file (``-f FILE``) or on standard input
(``-`` or ``-f -``), one command per line with ``+``/``-`` continuation and ``/* comments */``.
Each command goes through the same handler as its shell subcommand, so its output (and
its ``--json`` document) is the same. The source is split into commands before anything
runs, so an unclosed comment or a dangling continuation runs nothing; each command is
then parsed just before it runs.

Exit code: the first failing command's code. Without ``--continue`` the run stops there;
with it every command runs and the exit code is still the first failure's, because later
failures are often its consequences and exit codes are families, not severities.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping

from optvol import errors
from optvol.cl import parser as cl_parser
from optvol.cli.context import Context

Handler = Callable[[Context, dict], int]


def _read(name: str) -> str:
    """The text of a host file of CL commands, or of standard input for ``-``; without the
    byte order mark an editor (Notepad) puts at the start of a UTF-8 file."""
    if name == "-":
        if sys.stdin is None:  # closed (<&-)
            raise errors.error("OPV0302", path="(standard input)", reason="it is closed")
        raw = getattr(sys.stdin, "buffer", None)
        if raw is None:  # (a text stream a program put there: its text as it is)
            return sys.stdin.read().removeprefix("\ufeff")
        try:  # strictly UTF-8, as a file given to -f (hunt24l F4: Latin-1 text failed command by command)
            return raw.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise errors.error("OPV0302", path="(standard input)", reason="it is not UTF-8 text") from None
    try:
        with open(name, encoding="utf-8-sig") as handle:
            return handle.read()
    except FileNotFoundError:
        raise errors.error("OPV0301", path=name) from None
    except UnicodeDecodeError:
        raise errors.error("OPV0302", path=name, reason="it is not UTF-8 text") from None
    except OSError as exc:
        raise errors.error("OPV0302", path=name, reason=exc.strerror) from None


def _source(namespace: argparse.Namespace) -> tuple[str, bool]:
    """The CL source and whether it came from a file or standard input."""
    if namespace.text is not None and namespace.file is not None:
        raise errors.error("OPV0008", reason="cl: give CL commands or -f FILE, not both")
    if namespace.file is not None:
        return _read(namespace.file), True
    if namespace.text is None:
        raise errors.error("OPV0008", reason="cl: give CL commands, -f FILE, or - to read standard input")
    if namespace.text == "-":
        return _read("-"), True
    return namespace.text, False


def _run_one(ctx: Context, statement: cl_parser.Statement, handlers: Mapping[str, Handler], *, lines: bool) -> int:
    """Parse and run one command; report its error as the shell would (plus its line)."""
    try:
        command, given = cl_parser.parse_statement(statement.text)
        return handlers[command.name](ctx, command.parse_values(given, cl=True))
    except errors.OptvolError as exc:
        where = f" (line {statement.line})" if lines else ""
        print(f"optvol: {exc.message_id}: {exc.text}{where}", file=ctx.err)
        return exc.exit_code


def run(ctx: Context, namespace: argparse.Namespace, handlers: Mapping[str, Handler]) -> int:
    """Run the CL commands the ``cl`` subcommand was given; return the exit code."""
    source, from_file = _source(namespace)
    statements = cl_parser.split_statements(source)
    if not statements:
        raise errors.error("OPV0009", where="input", reason="no command given")
    lines = from_file or len(statements) > 1
    first_failure, failures = 0, 0
    for statement in statements:
        code = _run_one(ctx, statement, handlers, lines=lines)
        if code:
            failures += 1
            first_failure = first_failure or code
            if not namespace.keep_going:
                break
    if failures and namespace.keep_going:
        ctx.note(f"{failures} of {len(statements)} CL commands failed")
    return first_failure
