"""Names of one volume entry in each namespace of an ISO 9660 image (export side).

Pure functions, no I/O. Rock Ridge keeps the real name unless it is longer than 255 bytes
of UTF-8 (POSIX ``NAME_MAX``: no reader could create it); the other namespaces have limits:
- ISO 9660 level 3 (ECMA-119 §7.5, §7.6): d-characters ``A-Z 0-9 _``; a file identifier
  is ``NAME.EXT;1`` with name and extension together at most 30 characters, a directory
  identifier at most 31 characters;
- Joliet (Joliet specification §3.1): at most 64 UCS-2 characters, without ``* / : ; ? \\``,
  told apart upper-cased and without trailing dots and spaces (7-Zip and Windows drop them);
- UDF (OSTA UDF 1.02 §2.3.4.2, 2.1.1): a file identifier of at most 255 bytes in OSTA CS0,
  whose first byte says one byte a character (254 Latin-1 characters at most) or UTF-16
  (127 characters of the Basic Multilingual Plane at most).
Each directory hands out names through a ``Namer``, which makes them unique there; the
names it has taken are kept in memory, or where its caller says (a directory too large to
hold, iso_entries.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

ISO_FILE_MAX = 30
ISO_DIR_MAX = 31
JOLIET_MAX = 64
UDF_MAX_LATIN1, UDF_MAX_UTF16 = 254, 127
ROCK_RIDGE_MAX_BYTES = 255

_NOT_D_CHARACTER = re.compile(r"[^A-Z0-9_]")
_NOT_JOLIET = re.compile(r"[*/:;?\\\x00-\x1f]|[^\u0000-\uffff]")
_NOT_UDF = re.compile(r"[/\x00]|[^\u0000-\uffff]")


def _d_characters(text: str) -> str:
    return _NOT_D_CHARACTER.sub("_", text.upper())


def _shorten(stem: str, extension: str, limit: int, suffix: str = "") -> str:
    """``stem`` + ``suffix`` + ``extension`` cut to ``limit``, the stem shortened first."""
    extension = extension[: max(0, limit - 1 - len(suffix))] if extension else ""
    room = limit - len(extension) - len(suffix)
    return stem[: max(room, 0)] + suffix + extension


class Names(Protocol):
    """Where a Namer keeps the names it has handed out."""

    def claim(self, space: str, key: str) -> bool:
        """Take ``key`` (upper-cased where ``space`` folds case); False if it was taken already."""

    def last_number(self, base: str) -> int:
        """The last number a numbered name of ``base`` was given (0: none yet)."""

    def note_number(self, base: str, number: int) -> None:
        """Remember ``number`` as the last one a numbered name of ``base`` was given."""


class TakenNames:
    """The names a directory has handed out, in memory: one set per namespace, and the
    last number of each numbered name."""

    def __init__(self) -> None:
        self._taken: dict[str, set[str]] = {"iso": set(), "joliet": set(), "udf": set(), "rr": set()}
        self._numbers: dict[str, int] = {}

    def claim(self, space: str, key: str) -> bool:
        taken = self._taken[space]
        if key in taken:
            return False
        taken.add(key)
        return True

    def last_number(self, base: str) -> int:
        return self._numbers.get(base, 0)

    def note_number(self, base: str, number: int) -> None:
        self._numbers[base] = number


class Namer:
    """Unique ISO 9660, Joliet and UDF names for the entries of one directory, kept in
    ``names`` (by default a ``TakenNames`` in memory)."""

    def __init__(self, names: Names | None = None) -> None:
        self._names = names or TakenNames()

    def _unique(self, space: str, stem: str, extension: str, limit: int, *, fold: bool, trail: bool = False) -> str:
        """The name itself if free, else the first free one numbered ``_1``, ``_2``, ...
        Names are told apart upper-cased if ``fold``, and without their trailing dots and
        spaces if ``trail`` (7-Zip drops a Joliet name's last dot, Windows every trailing
        dot and space: ``a``, ``a.`` and ``a `` would be one file there; hunt26e F2).

        Names that shorten to the same unnumbered name share every numbered one too, so
        numbering goes on from the last number that base was given: every number below it
        is taken, the name is the one counting from 1 gives, and a directory of n names
        sharing a base costs n claims, not n².
        """
        def key_of(name: str) -> str:
            name = name.rstrip(". ") if trail else name
            return name.upper() if fold else name

        candidate = _shorten(stem, extension, limit)
        key = key_of(candidate)
        if self._names.claim(space, key):
            return candidate
        base = f"{space}/{limit}/{key}"  # no name of any namespace holds a "/"
        number = self._names.last_number(base)
        while True:
            number += 1
            candidate = _shorten(stem, extension, limit, f"_{number}")
            if self._names.claim(space, key_of(candidate)):
                self._names.note_number(base, number)
                return candidate

    def iso_file(self, name: str) -> str:
        """``NAME.EXT;1`` (a name without extension keeps its dot: ``NAME.;1``)."""
        stem, dot, extension = name.rpartition(".")
        if not dot or not stem:
            stem, extension = name, ""
        stem = _d_characters(stem) or "_"
        extension = _d_characters(extension)
        return self._unique("iso", stem, "." + extension, ISO_FILE_MAX + 1, fold=True) + ";1"

    def iso_dir(self, name: str) -> str:
        return self._unique("iso", _d_characters(name) or "_", "", ISO_DIR_MAX, fold=True)

    def joliet(self, name: str) -> str:
        return self._long_name("joliet", _NOT_JOLIET.sub("_", name), JOLIET_MAX, trail=True)

    def udf(self, name: str) -> str:
        name = _NOT_UDF.sub("_", name)
        return self._long_name("udf", name, UDF_MAX_LATIN1 if max(name) < "\u0100" else UDF_MAX_UTF16)

    def rock_ridge(self, name: str, *, another_has: Callable[[str], bool] = lambda candidate: False) -> str:
        """The real name, or, over 255 bytes of UTF-8, its stem cut (and numbered if need be).
        Numbering goes on from the last number the same cut with the same extension was
        given, as in ``_unique``: such names cut their stems to the same numbered names. A
        cut is never a name ``another_has`` says an entry of the directory has as its own,
        which it keeps, whichever comes first (a cut took one, and its owner was renamed)."""
        stem, extension = _stem_and_extension(name)
        fits = len(name.encode()) <= ROCK_RIDGE_MAX_BYTES
        candidate = name if fits else rock_ridge_cut(name)
        if (fits or not another_has(candidate)) and self._names.claim("rr", candidate):
            return candidate
        base = f"rr/{extension}/{candidate}"  # no name holds a "/"
        number = self._names.last_number(base)
        while True:
            number += 1
            candidate = _cut_bytes(stem, f"_{number}{extension}")
            if (fits or not another_has(candidate)) and self._names.claim("rr", candidate):
                self._names.note_number(base, number)
                return candidate

    def _long_name(self, space: str, name: str, limit: int, *, trail: bool = False) -> str:
        stem, extension = _stem_and_extension(name)
        return self._unique(space, stem, extension, limit, fold=True, trail=trail)


def rock_ridge_cut(name: str, number: int | None = None) -> str:
    """A name over 255 bytes of UTF-8 as ``Namer.rock_ridge`` cuts it: first unnumbered,
    then, if that is taken, numbered ``number``."""
    stem, extension = _stem_and_extension(name)
    return _cut_bytes(stem, extension if number is None else f"_{number}{extension}")


def is_rock_ridge_cut(cut: str, name: str) -> bool:
    """Whether ``Namer.rock_ridge`` may have given long ``name`` the name ``cut``."""
    extension = _stem_and_extension(name)[1]
    numbered = re.fullmatch(r"(.*)_([1-9][0-9]*)", cut[:len(cut) - len(extension)] if extension else cut)
    return cut == rock_ridge_cut(name) or (numbered is not None and cut.endswith(extension)
                                           and cut == rock_ridge_cut(name, int(numbered.group(2))))


def _cut_bytes(stem: str, tail: str) -> str:
    """``stem`` cut by whole characters so that it and ``tail`` take at most 255 bytes of UTF-8
    (its bytes cut once, a character cut in two dropped: import asks this of every long
    name it may stand for, rev26f F4)."""
    room, data = ROCK_RIDGE_MAX_BYTES - len(tail.encode()), stem.encode()
    return (stem if len(data) <= room else data[:max(room, 0)].decode("utf-8", "ignore")) + tail


def _stem_and_extension(name: str) -> tuple[str, str]:
    """("report", ".txt") of "report.txt"; an extension over 16 characters stays in the stem."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        return name, ""
    return stem, "." + extension
