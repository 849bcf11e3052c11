"""What every command handler gets: the library, the clock, the output streams."""

from __future__ import annotations

import codecs
import errno
import functools
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from optvol.cli import render
from optvol.errors import OptvolError
from optvol.library import Library, resolve_root


def _is_utf8(encoding: str | None) -> bool:
    return encoding is None or codecs.lookup(encoding).name == "utf-8"


def tolerant(stream: TextIO | None) -> TextIO | None:
    """A standard stream that never fails the command over a character: one whose encoding is
    not UTF-8 (a legacy locale) writes what it cannot encode as escapes (``\\u20ac``); a
    UTF-8 one writes a host path's undecodable bytes (os.fsdecode's escapes) as those bytes,
    as ``ls`` would."""
    if stream is not None and hasattr(stream, "reconfigure"):
        utf8 = _is_utf8(getattr(stream, "encoding", None))
        stream.reconfigure(errors="surrogateescape" if utf8 else "backslashreplace")
    return stream


class Guarded:
    """A standard stream as a command writes it: one that cannot take more (its reader gone,
    EPIPE; a full disk or an I/O error; closed, ``>&-``) does not end the command midway and
    never takes another stream's text. What failed is kept in ``lost``; the command does its
    work to its end, and ``cli.main`` reports lost output (OPV0302) after it."""

    def __init__(self, stream: TextIO | None):
        self.stream = stream
        self.lost: OSError | None = None if stream is not None else OSError(errno.EBADF, "it is closed")

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                return self.stream.write(text)
            except OSError as exc:
                self.lost = exc
        return len(text)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self.stream.flush()
            except OSError as exc:
                self.lost = exc

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    @property
    def buffer(self):
        """The binary stream beneath (``cat``), which raises its errors itself."""
        if self.stream is None:
            raise OSError(errno.EBADF, "it is closed")
        return self.stream.buffer

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def system_clock() -> datetime:
    """The time now, local and aware: the one clock optvol reads (layer 7)."""
    return datetime.now().astimezone()


@dataclass
class Context:
    library_arg: str | None
    json: bool
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _library: Library | None = None

    def library(self) -> Library:
        """The library (created on first use; the creation is named on stderr)."""
        if self._library is None:
            root = resolve_root(self.library_arg, self.environ, Path.home())
            self._library = Library(root, clock=system_clock)
            if self._library.created:
                self.note(f"created library {render.shown(str(root))}")
        return self._library

    def opened_volumes(self) -> set[Path]:
        """The volume directories this command opened (none before it used the library)."""
        return set() if self._library is None else set(self._library.opened)

    def now(self) -> datetime:
        return system_clock()

    def note(self, text: str) -> None:
        print(f"optvol: {text}", file=self.err)

    def error(self, exc: OptvolError) -> None:
        """An error as every command reports it: ``optvol: <message ID>: <text>`` on stderr."""
        self.note(f"{exc.message_id}: {exc.text}")

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    @functools.cached_property
    def _ascii(self) -> bool:
        """JSON in ASCII escapes where the output's encoding is not UTF-8: exact either way."""
        return not _is_utf8(getattr(self.out, "encoding", None))

    def print_json(self, document: object) -> None:
        self.out.write(self._json(document, indent=2) + "\n")

    def _json(self, value: object, *, indent: int | None = None) -> str:
        """``value`` as JSON text the output can carry exactly: in ASCII escapes where the
        output is not UTF-8, or where the text holds a host path's undecodable bytes
        (os.fsdecode's lone surrogates, which UTF-8 cannot write: ``"\\udcff"`` keeps them)."""
        text = json.dumps(value, indent=indent, ensure_ascii=self._ascii)
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                text = json.dumps(value, indent=indent, ensure_ascii=True)
        return text

    def print_json_list(self, items: Iterable[object]) -> None:
        """A JSON list written item by item, so a million rows stream in bounded memory.

        The first item is fetched before anything is written, so an error (volume not
        found, say) leaves stdout empty; an error after the first closes the list, which
        then holds the items before it (stdout stays one JSON document), and is raised.
        """
        iterator = iter(items)
        first = next(iterator, None)
        if first is None:
            self.out.write("[]\n")
            return
        self.out.write("[\n  " + self._json(first))
        try:
            for item in iterator:
                self.out.write(",\n  " + self._json(item))
        finally:  # (a stdout that cannot take it says so later: Guarded)
            self.out.write("\n]\n")

    def print_json_report(self, key: str, items: Iterable[str]) -> None:
        """``{key: [items]}`` (as print_json lays it out) written item by item: what a command
        did, as it does it. The first item is fetched before anything is written (an error
        before any work leaves stdout empty); an error after some work closes the document,
        which then lists what was done, and is raised."""
        iterator = iter(items)
        first = next(iterator, None)
        head = f"{{\n  {json.dumps(key)}: "
        if first is None:
            self.out.write(head + "[]\n}\n")
            return
        self.out.write(head + "[\n    " + self._json(first))
        try:
            for item in iterator:
                self.out.write(",\n    " + self._json(item))
        finally:  # (a stdout that cannot take it says so later: Guarded)
            self.out.write("\n  ]\n}\n")
