"""The shell front door: argparse built from the command table (DESIGN §4).

``optvol <command> ...`` takes the CL command names in lower case, positional values in
CL order, the other keywords as ``--keyword value``. Positional parameters can also be
given as ``--keyword value``. A value is written as CL writes it inside the parentheses,
so an element list is one shell word.
"""

from __future__ import annotations

import argparse
import re
import sys

from optvol import errors
from optvol.cl import values as v
from optvol.cl.table import COMMANDS, Command


class _Once(argparse.Action):
    """A ``--keyword value`` option given at most once: CL refuses a keyword given twice
    (OPV0009), and the shell must not quietly take the last of two."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            raise errors.error("OPV0008", reason=f"{parser.prog}: {option_string} given more than once")
        setattr(namespace, self.dest, values)


class _Formatter(argparse.HelpFormatter):
    """Usage without brackets round a positional value the command needs (``dspopt VOL
    [DEV] [DATA]``): argparse takes each as optional, since it may come as ``--vol`` too."""

    def _format_args(self, action, default_metavar):
        if getattr(action, "needed", False):
            return "%s" % self._metavar_formatter(action, default_metavar)(1)
        return super()._format_args(action, default_metavar)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one OPV0008 error (exit 2), and takes
    only whole option names: CL refuses an abbreviated keyword (``THR(60)``), so the shell
    refuses ``--thr 60`` too, and ``--lib DIR`` would pass by the global options' scan."""

    out = None  # where --help goes (the command's guarded stdout: lost output is reported), set by ``parse``
    stand_ins: dict[str, str] = {}  # values after ``--`` that start with '-', as parse hides them from argparse

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, formatter_class=_Formatter, **kwargs)

    def _print_message(self, message: str, file=None) -> None:
        if message:
            (self.out if self.out is not None and file in (None, sys.stdout) else file or sys.stderr).write(message)

    def error(self, message: str):  # noqa: D401 - argparse's name
        for key, value in self.stand_ins.items():
            message = message.replace(key, value)
        option = re.fullmatch(r"argument (--[a-z-]+): expected one argument", message)
        if option:  # --text -draft: argparse took -draft for an option
            message += f" (a value that starts with '-' is joined to its option: {option.group(1)}=-value)"
        raise errors.error("OPV0008", reason=f"{self.prog}: {message}")


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="print one JSON document on stdout")
    parser.add_argument("--library", metavar="DIR", default=default, action=_Once,
                        help="library directory (else $OPTVOL_LIBRARY, else ~/.local/share/optvol)")


def _add_command(subparsers, command: Command) -> argparse.ArgumentParser:
    sub = subparsers.add_parser(command.shell_name, help=command.help, description=command.help)
    _global_options(sub, suppress=True)
    for param in command.params:
        # argparse takes the positional values as optional (a value may come as --vol too) and
        # the table checks them: the help and the usage (_Formatter) say which ones are needed.
        text = param.help + (" Required." if param.required else "") + (f" Default: {param.default}." if param.default else "")
        if param.elements:  # one shell word: 'BVOL1 *BACKUP', '2026-01-01 00:00:00'
            text += " Elements, in order: " + "; ".join(
                f"{e.help.rstrip('.')}" + (f" (default {'(' * bool(e.elements)}{e.default}{')' * bool(e.elements)})"
                                           if e.default else "") for e in param.elements) + "."
        if param.specials and param.type != v.SPECIAL:
            text += f" Special values: {', '.join(param.specials)}."
        elif param.type == v.SPECIAL:
            text += f" One of: {', '.join(param.specials)}."
        if param.type == v.FLAG:
            sub.add_argument(param.short, param.shell_option, dest=param.keyword, action="store_true", help=param.help)
            continue
        if param.position:
            # After a "one or more" positional, argparse needs the next ones fixed.
            fixed = any(p.multiple for p in command.params)
            nargs = "+" if param.multiple else (None if fixed else "?")
            positional = sub.add_argument(f"pos_{param.keyword}", metavar=param.keyword, nargs=nargs, help=text)
            # Without brackets only when every value before it is needed too: wrkoptdir's VOL
            # comes after an optional DIR, so 'wrkoptdir PVOL1' would take PVOL1 for DIR.
            positional.needed = param.required and nargs == "?" and all(
                p.required for p in command.positional if p.position < param.position)
            if not param.multiple:
                sub.add_argument(param.shell_option, dest=param.keyword, metavar="VALUE", help=argparse.SUPPRESS,
                                 action=_Once)
        else:
            sub.add_argument(param.shell_option, dest=param.keyword, metavar="VALUE", help=text, action=_Once)
    sub.set_defaults(command=command)
    return sub


def _add_cl(subparsers) -> argparse.ArgumentParser:
    """``optvol cl``: not in the table, because it is the CL front door itself."""
    text = "Run IBM CL commands (INZOPT VOL(PVOL1) ...): the argument, -f FILE, or - for standard input."
    sub = subparsers.add_parser("cl", help=text, description=text + " One command per line; a line "
                                "ending in + or - continues on the next; /* comments */ are skipped.")
    _global_options(sub, suppress=True)
    sub.add_argument("text", nargs="?", metavar="COMMANDS", help="CL command(s); - reads standard input")
    sub.add_argument("-f", "--file", metavar="FILE", action=_Once, help="a file of CL commands (- for standard input)")
    sub.add_argument("--continue", dest="keep_going", action="store_true",
                     help="run every command even after one fails (the exit code is the first failure's)")
    sub.set_defaults(cl_front_door=True)
    return sub


def build(only: str | None = None) -> argparse.ArgumentParser:
    """The shell parser; with ``only`` (a known command word) just that subcommand is built.
    Its ``commands`` holds each subcommand's parser by word."""
    parser = _Parser(prog="optvol", description="IBM i optical volume management, rebuilt in Python.")
    _global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    parser.commands = {}
    for command in COMMANDS:
        if only in (None, command.shell_name):
            parser.commands[command.shell_name] = _add_command(subparsers, command)
    if only in (None, "cl"):
        parser.commands["cl"] = _add_cl(subparsers)
    return parser


def parse(argv: list[str], out=None) -> argparse.Namespace:
    """A shell command line. A command's positional values may come before, between or after
    its ``--keyword`` options (``dspopt BVOL1 --path /A '*ALL' '*DIRATR'``): argparse alone
    takes a subcommand's positional values as one run and calls the rest unrecognized.
    ``--help`` is written to ``out`` (else stdout), and ends in SystemExit, as argparse ends."""
    index = _command_index(argv)
    parser = build() if index is None else build(argv[index])
    for each in (parser, *parser.commands.values()):
        each.out = out
    if index is None:
        return parser.parse_args(argv)
    namespace = parser.parse_args(argv[:index])  # the global options before the command word
    args, stand_ins = _after_double_dash(argv[index + 1:])
    parser.commands[argv[index]].stand_ins = stand_ins  # an error shows what was typed, not the stand-ins
    namespace = parser.commands[argv[index]].parse_intermixed_args(args, namespace=namespace)
    for key, value in vars(namespace).items():
        if isinstance(value, list):
            setattr(namespace, key, [stand_ins.get(v, v) if isinstance(v, str) else v for v in value])
        elif isinstance(value, str):
            setattr(namespace, key, stand_ins.get(value, value))
    return namespace


def _after_double_dash(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """``args`` with what follows ``--`` as positional values only: each one that starts with
    '-' stands in as a name no argument can hold (NUL), given back after the parse.
    argparse's intermixed parse reads such a value as an option when no positional value
    comes before ``--`` (``cp -- -q DIR``)."""
    if "--" not in args:
        return args, {}
    cut = args.index("--")
    stand_ins = {f"\0{n}\0": value for n, value in enumerate(args[cut + 1:]) if value.startswith("-")}
    back = {value: key for key, value in stand_ins.items()}
    return args[:cut] + [back.get(value, value) for value in args[cut + 1:]], stand_ins


def _command_index(argv: list[str]) -> int | None:
    """Where the subcommand word of ``argv`` is, if it names a command, skipping the global options."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--library":
            index += 2
        elif word == "--json" or word.startswith("--library="):
            index += 1
        elif word.startswith("-") and word not in ("-", "-h", "--help"):
            # argparse would take the next word for the command ("invalid choice: 'DIR'").
            raise errors.error("OPV0008", reason=f"optvol: unrecognized arguments: {word} (the global options are "
                                                 "--json and --library, written in full)")
        else:
            known = word == "cl" or any(word == c.shell_name for c in COMMANDS)
            return index if known else None
    return None


def given_values(command: Command, namespace: argparse.Namespace) -> dict[str, object]:
    """The texts given for each keyword, positional or ``--keyword``; both at once is an error."""
    given: dict[str, object] = {}
    for param in command.params:
        positional = getattr(namespace, f"pos_{param.keyword}", None)
        if isinstance(positional, str) and positional.upper() == "*N" and not (param.type == "path" and param.required):
            # left out, as CL writes it: 'chgoptvol PVOL1 *N MYAUTL' (hunt30a F5); a path that
            # cannot be left out is a host file of that name ('cp /QOPT/PVOL1/F *N': rev30g F1)
            positional = None
        option = getattr(namespace, param.keyword, None)
        if positional not in (None, []) and option not in (None, False):
            raise errors.error("OPV0008", reason=f"{param.keyword} given twice")
        value = positional if positional not in (None, []) else option
        if value not in (None, False):
            given[param.keyword] = value
    return given
