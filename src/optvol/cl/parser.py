"""The CL front door's language: IBM CL command text parsed against the command table.

``split_statements`` cuts CL source into commands: one per line, a line ending in ``+``
or ``-`` continues on the next (``+`` skips the next line's leading blanks, ``-`` keeps
them), ``/* comments */`` count as one blank. ``parse_statement`` turns one command into
its ``Command`` and a dict of keyword -> text (or list of element texts) for
``Command.parse_values``, so the values are typed by the same table as the shell's.

Syntax (reference §15): ``NAME`` (optionally ``QSYS/NAME``), positional values in the
table's position order, then ``KEYWORD(value)`` parameters; element lists
``FROMVOL(PVOL1 *PRIMARY)``; quoted strings with ``''`` for a quote keep their case,
unquoted values are folded to upper case as the IBM command analyzer folds them; ``*N``
stands for an omitted value. Every error is OPV0009 (exit 2) naming the keyword or
position at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from optvol import errors
from optvol.cl import table
from optvol.cl import values as v
from optvol.cl.table import Command, Param

_NAME = re.compile(r"[A-Za-z$#@][A-Za-z0-9_$#@]{0,9}")
_LIBRARIES = ("QSYS", "*LIBL", "*SYSTEM")  # qualifiers that still mean IBM's command
_DELIMITERS = "()'"
_OMITTED = None  # what an unquoted *N element becomes


@dataclass(frozen=True)
class Statement:
    """One CL command of a source text: continuations joined, comments blanked."""

    text: str
    line: int  # the line it starts on, counting from 1


def _fail(where: str, reason: str) -> errors.OptvolError:
    return errors.error("OPV0009", where=where, reason=reason)


# --------------------------------------------------------------------- statements


class _Splitter:
    """Cuts CL source into statements, one character at a time (quotes and comments matter)."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.buf: list[str] = []
        self.line = self.first_line = 1
        self.line_start = 0  # where the current line starts in buf
        self.quote = self.skip_blanks = self.continued = False
        self.solid = 0  # characters in buf that are not blanks (the statement has begun)

    def run(self, source: str) -> list[Statement]:
        source, index = source.replace("\r\n", "\n").replace("\r", "\n"), 0  # (a lone CR ends a line, as in a file read by `cl -f`)
        while index < len(source):
            char = source[index]
            if self.skip_blanks and char in " \t":
                index += 1
                continue
            self.skip_blanks = False
            if char == "\n":
                self._end_of_line(final=False)
            elif not self.quote and source.startswith("/*", index):
                index = self._comment(source, index)
                continue
            else:
                self.quote ^= char == "'"  # '' inside a string toggles twice
                self._add(char)
            index += 1
        self._end_of_line(final=True)
        return self.statements

    def _add(self, char: str) -> None:
        if not char.isspace():
            if not self.solid:
                self.first_line = self.line
            self.solid += 1
            self.continued = False
        self.buf.append(char)

    def _comment(self, source: str, index: int) -> int:
        end = source.find("*/", index + 2)
        if end < 0:
            raise _fail(f"line {self.line}", "a comment is not closed with */")
        self.line += source.count("\n", index, end)
        self.buf.append(" ")
        return end + 2

    def _end_of_line(self, *, final: bool) -> None:
        while len(self.buf) > self.line_start and self.buf[-1] in " \t":
            self.buf.pop()
        if len(self.buf) > self.line_start and self.buf[-1] in "+-":
            if final:
                raise _fail(f"line {self.line}", "the last line ends with a continuation character")
            # '+' continues at the next line's first non-blank, '-' at its first character.
            self.skip_blanks, self.solid = self.buf.pop() == "+", self.solid - 1
            self.continued, self.line_start = True, len(self.buf)
            self.line += 1
            return
        if final and self.continued:
            raise _fail(f"line {self.line}", "the input ends after a continuation character")
        text = "".join(self.buf).strip()
        if text:
            self.statements.append(Statement(text, self.first_line))
        self.buf, self.line_start, self.quote, self.continued, self.solid = [], 0, False, False, 0
        self.line += 1


def split_statements(source: str) -> list[Statement]:
    """The CL commands of ``source``; blank and comment-only lines are skipped."""
    return _Splitter().run(source)


# --------------------------------------------------------------------- one command


class _Reader:
    """A cursor over one statement's text."""

    def __init__(self, text: str):
        self.text, self.index = text, 0

    def blank(self) -> None:
        while self.index < len(self.text) and self.text[self.index].isspace():
            self.index += 1

    def peek(self) -> str:
        return self.text[self.index] if self.index < len(self.text) else ""

    def token(self) -> str:
        """Characters up to a blank, a parenthesis or a quote."""
        start = self.index
        while self.index < len(self.text) and not self.text[self.index].isspace() and self.text[self.index] not in _DELIMITERS:
            self.index += 1
        return self.text[start : self.index]

    def value(self, where: str) -> str | None:
        """One quoted or unquoted value (folded to upper case); None for an unquoted ``*N``."""
        if self.peek() == "'":
            try:
                text, self.index = v.quoted_string(self.text, self.index, keyword=where)
            except errors.InvalidError:
                raise _fail(where, f"the quoted string at character {self.index + 1} is not closed") from None
            if self.peek() not in ("", ")") and not self.peek().isspace():
                raise _fail(where, f"a blank is missing after the quoted string {text!r}")
            return v.Quoted(text)
        token = self.token()
        if self.peek() in ("(", "'"):
            raise _fail(where, f"{token!r} is directly followed by {self.peek()!r}")
        folded = v.fold(token)
        return _OMITTED if folded == "*N" else folded

    def group(self, where: str, depth: int = 0) -> list:
        """The values inside ``( ... )``, the reader standing on the ``(``; a list within
        it (``SLTDATE(*MODIFIED (*AVAIL '01/01/26'))``) is a list item, one level deep."""
        self.index += 1
        items: list = []
        while True:
            self.blank()
            char = self.peek()
            if not char:
                raise _fail(where, "a closing parenthesis is missing")
            if char == ")":
                self.index += 1
                return items
            if char == "(":
                if depth:
                    raise _fail(where, "lists are nested at most two deep")
                items.append(self.group(where, depth + 1))
                continue
            items.append(self.value(where))


def _command(reader: _Reader) -> Command:
    """The command named at the start of the statement (``QSYS/`` allowed)."""
    reader.blank()
    token = reader.token()
    library, _, name = token.rpartition("/")
    if not token or not _NAME.fullmatch(name) or (library and library.upper() not in _LIBRARIES):
        raise _fail("command name", f"{token or reader.peek()!r} is not a command name")
    if reader.peek() and not reader.peek().isspace():
        raise _fail(f"command {name.upper()}", "a blank must follow the command name")
    command = table.cl_command(name)
    if command is None:
        raise _fail(f"command {name.upper()}", "not a CL command optvol runs")
    return command


def _shape(param: Param, items: list, where: str) -> object:
    """What ``parse_values`` expects: a list of element texts, or one text; None if omitted."""
    if not items:
        raise _fail(where, "a value is missing")
    lists = [item for item in items if isinstance(item, list)]
    if lists and not any(element.elements for element in param.elements):
        raise _fail(where, f"{param.keyword} takes no list within its value")
    if param.elements:
        if len(items) > len(param.elements):
            raise _fail(where, f"at most {len(param.elements)} elements are allowed")
        shaped = []
        for element, item in zip(param.elements, items, strict=False):  # fewer items: defaults
            if isinstance(item, list) and not element.elements:
                raise _fail(where, f"element {element.keyword} takes no list")
            if isinstance(item, list) and not item:
                raise _fail(where, f"element {element.keyword}: a value is missing in ()")
            if item is _OMITTED and element.default is None and element.required:
                raise _fail(where, f"*N given for element {element.keyword}, which has no default")
            shaped.append(element.default if item is _OMITTED else item)  # None: left out
        return shaped
    if param.multiple:
        return [item for item in items if item is not _OMITTED]
    if len(items) > 1:
        raise _fail(where, "only one value is allowed (quote a value that holds blanks)")
    return items[0]


class _Given:
    """The values collected for one command, checking the order and uniqueness rules."""

    def __init__(self, command: Command):
        self.command, self.values, self.positions, self.keyword = command, {}, 0, None

    def positional(self, items: list[str | None]) -> None:
        self.positions += 1
        where = f"{self.command.name} position {self.positions}"
        if self.keyword is not None:
            raise _fail(where, f"a positional value cannot follow keyword {self.keyword}")
        param = next((p for p in self.command.params if p.position == self.positions), None)
        if param is None:
            most = len(self.command.positional)
            raise _fail(where, f"{self.command.name} takes at most {most} positional value{'s' * (most != 1)}")
        self._set(param, items, where)

    def keyworded(self, keyword: str, items: list[str | None]) -> None:
        where = f"{self.command.name} keyword {keyword.upper()}"
        param = next((p for p in self.command.params if p.keyword == keyword.upper()), None)
        # The name check matters: upper() maps some non-ASCII letters to ASCII ones.
        if param is None or not _NAME.fullmatch(keyword) or param.type == v.FLAG:
            raise _fail(where, f"{self.command.name} has no keyword {keyword.upper()}")
        self.keyword = param.keyword
        self._set(param, items, where)

    def _set(self, param: Param, items: list[str | None], where: str) -> None:
        if param.keyword in self.values:
            raise _fail(where, f"{param.keyword} is given more than once")
        self.values[param.keyword] = _shape(param, items, where)  # None (*N) still counts as given


def parse_statement(text: str) -> tuple[Command, dict[str, object]]:
    """One CL command (no continuations, no comments) -> its Command and keyword texts."""
    reader = _Reader(text)
    command = _command(reader)
    given = _Given(command)
    while True:
        reader.blank()
        char = reader.peek()
        if not char:
            return command, {k: t for k, t in given.values.items() if t is not None}
        where = f"{command.name} position {given.positions + 1}"
        if char == ")":
            raise _fail(where, f"a closing parenthesis without an opening one at character {reader.index + 1}")
        if char == "(":
            given.positional(reader.group(where))
        elif char == "'":
            given.positional([reader.value(where)])
        else:
            start = reader.index
            token = reader.token()
            if reader.peek() == "(":
                given.keyworded(token, reader.group(f"{command.name} keyword {token.upper()}"))
            else:
                reader.index = start
                given.positional([reader.value(where)])


def parse(text: str) -> tuple[Command, dict[str, object]]:
    """Exactly one CL command (continuations and comments allowed) -> Command and keyword texts."""
    statements = split_statements(text)
    if len(statements) != 1:
        raise _fail("command", "no command given" if not statements else f"{len(statements)} commands given where one was expected")
    return parse_statement(statements[0].text)
