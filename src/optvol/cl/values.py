"""Parameter values of the command table: parsing one value's text by its type.

Both front doors use this: the CL parser hands over the text inside ``KW(...)`` and the
shell hands over an option's word. Special values are accepted in any case, and with or
without the ``*`` except in CL where a name could be meant (``parse``); unquoted values are
folded to upper case (a-z only) where the type says so.
"""

from __future__ import annotations

import re
from datetime import date, time

from optvol import errors, media, model

# Types of values.
VOLUME = "volume"  # a volume identifier, folded to upper case
GENERIC = "generic"  # a volume identifier or generic name (ABC*)
PATH = "path"  # a path, kept as given
TEXT = "text"  # free text, kept as given
INT = "int"  # an integer, within a range
NAME = "name"  # an object name (AUTL), folded to upper case
SIZE = "size"  # bytes with an optional K, M, G or T suffix
DATE = "date"  # MM/DD/YYYY, MM/DD/YY, MMDDYYYY, MMDDYY, YYYY-MM-DD
TIME = "time"  # HH:MM:SS, HHMMSS
SPECIAL = "special"  # only special values
FLAG = "flag"  # a shell switch (no value)


class Quoted(str):
    """A CL value written in quotes (``TEXT('*BLNK')``): its text as given. Only an unquoted
    value that begins with ``*`` is a special value in CL, so only that one can be a
    misspelled special value (``parse``)."""

    __slots__ = ()


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def fold(text: str) -> str:
    """Upper case as the CL command analyzer folds: a-z only. ``str.upper`` would also map
    letters such as ``ſ`` or ``ı`` onto ASCII ones, and name another volume or value."""
    return text.translate(_ASCII_UPPER)


def special(text: str, specials: tuple[str, ...], *, star: bool = False) -> str | None:
    """The special value ``text`` names (``calc``, ``*CALC`` → ``*CALC``), or None; with
    ``star`` (CL, where a name could be meant) only a value written with its ``*``."""
    folded = fold(text.strip())
    if star and not folded.startswith("*"):
        return None
    wanted = folded if folded.startswith("*") else "*" + folded
    return wanted if wanted in specials else None


def parse(text: str, *, keyword: str, type: str, specials: tuple[str, ...] = (),
          low: int | None = None, high: int | None = None, choices: tuple[int, ...] = (),
          cl: bool = False) -> object:
    """Turn the text of one value into its Python value; OPV0005 names the keyword at fault.

    Special values count with or without their ``*`` (DESIGN §4), except in CL (``cl``)
    where the value could also be a name or path: there ``FROMVOL`` is a volume of that name
    and ``*FROMVOL`` the special value, as IBM's command analyzer reads them. An INT with
    ``choices`` takes only those numbers (INZOPT CCSID: 500 or 850)."""
    # A quoted string keeps its case (reference §15), in CL and in an element of the shell's
    # word alike (split_elements: "'fromvol'" is volume FROMVOL there too, not *FROMVOL).
    if isinstance(text, Quoted) and type != SPECIAL:
        found = text if text in specials else None
    else:
        found = special(text, specials, star=cl and type != SPECIAL) if specials else None
    if found is not None:
        return found

    def bad(reason: str) -> errors.OptvolError:
        allowed = f" (special values: {', '.join(specials)})" if specials else ""
        return errors.error("OPV0005", value=text, keyword=keyword, reason=reason + allowed)

    if type == SPECIAL:
        raise errors.error("OPV0005", value=text, keyword=keyword, reason=f"expected one of {', '.join(specials)}")
    if type == INT:
        if not re.fullmatch(r"[+-]?[0-9]{1,30}", text.strip()):  # int() refuses thousands of digits
            raise bad("expected a whole number")
        number = int(text)
        if (low is not None and number < low) or (high is not None and number > high):
            raise bad(f"expected {low}-{high}")
        if choices and number not in choices:
            raise bad(f"expected {' or '.join(map(str, choices))}")
        return number
    if type in (VOLUME, GENERIC):
        return _volume(text, keyword=keyword, generic=type == GENERIC)
    if type == NAME:
        if not re.fullmatch(r"[A-Za-z$#@][A-Za-z0-9_$#@]{0,9}", text):
            raise bad("expected a name of 1-10 characters")
        return fold(text)
    if type == SIZE:
        if len(text) > 40:  # int() refuses thousands of digits
            raise bad("expected bytes with an optional K, M, G or T suffix")
        return media.parse_capacity(text)
    if type == DATE:
        return parse_date(text, bad)
    if type == TIME:
        return parse_time(text, bad)
    if type in (PATH, TEXT):
        if cl and text.startswith("*") and not isinstance(text, Quoted):
            raise bad(f"{keyword} has no special value {text} (unquoted, a value that begins with * is one); "
                      "text that begins with * is written in quotes")
        if "\x00" in text:
            raise bad("NUL is not allowed")
        return text
    raise bad(f"unknown value type {type}")


def _volume(text: str, *, keyword: str, generic: bool) -> str:
    """A volume identifier (``generic``: or a generic name ``ABC*``). A bad one is OPV0001 in
    every command (docs/messages.md), quoting what was typed and naming the keyword."""
    try:
        if generic and text.endswith("*"):
            model.volume_id(text[:-1] or "A")
            return fold(text)
        return model.volume_id(text)
    except errors.OptvolError as exc:
        raise errors.error("OPV0001", volume=text, reason=f"{errors.cause(exc)} (keyword {keyword})") from None


# Two days inside Python's date range at each end, so that any time of the date converts
# to and from any time zone: a FROMTIME is stored in UTC and shown in local time, and the
# zones' offsets, their local mean times of long ago included, span about 32 hours.
FIRST_DATE, LAST_DATE = date(1, 1, 3), date(9999, 12, 29)


def parse_date(text: str, bad) -> date:
    """Dates as MM/DD/YY, MM/DD/YYYY, MMDDYY, MMDDYYYY or YYYY-MM-DD (reference §15: the
    job's date format, MDY, with or without separators)."""
    value = text.strip()
    patterns = (
        (r"([0-9]{4})-([0-9]{2})-([0-9]{2})", (0, 1, 2)),
        (r"([0-9]{2})/([0-9]{2})/([0-9]{4})", (2, 0, 1)),
        (r"([0-9]{2})/([0-9]{2})/([0-9]{2})", (2, 0, 1)),
        (r"([0-9]{2})([0-9]{2})([0-9]{4})", (2, 0, 1)),
        (r"([0-9]{2})([0-9]{2})([0-9]{2})", (2, 0, 1)),
    )
    for pattern, (y, m, d) in patterns:
        match = re.fullmatch(pattern, value)
        if match:
            parts = [int(g) for g in match.groups()]
            year = parts[y]
            if len(match.group(y + 1)) == 2:  # YY: 40-99 is 19YY, 00-39 is 20YY
                year += 1900 if year >= 40 else 2000
            try:
                found = date(year, parts[m], parts[d])
            except ValueError as exc:
                raise bad(str(exc)) from None
            if not FIRST_DATE <= found <= LAST_DATE:
                raise bad(f"expected a date from {FIRST_DATE} to {LAST_DATE}")
            return found
    raise bad("expected a date MM/DD/YYYY, MM/DD/YY, MMDDYYYY, MMDDYY or YYYY-MM-DD")


def parse_time(text: str, bad) -> time:
    """Times as HH:MM:SS or HHMMSS."""
    match = re.fullmatch(r"([0-9]{2}):?([0-9]{2}):?([0-9]{2})", text.strip())
    if not match or (":" in text and text.count(":") != 2):
        raise bad("expected a time HH:MM:SS or HHMMSS")
    try:
        return time(*(int(g) for g in match.groups()))
    except ValueError as exc:
        raise bad(str(exc)) from None


def split_elements(text: str, *, keyword: str) -> list:
    """Split an element list written as CL writes it (``BVOL1 *BACKUP``, ``'04/01/99' '00:00:00'``);
    a list within the list (``*MODIFIED (*AVAIL 2026-01-01) (*AVAIL *END)``) is one element,
    the list of its own elements. Lists are nested at most two deep, the word being the first,
    as CL's parser has them (``cl/parser.py``): one pass, no recursion that a word of a
    thousand parentheses could exhaust. An error shows the word as it was typed."""
    def bad(reason: str) -> errors.OptvolError:
        return errors.error("OPV0005", value=text, keyword=keyword, reason=reason)

    elements: list = []
    inner: list | None = None  # the list within the list, while it is read
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "(":
            if inner is not None:
                raise bad("lists are nested at most two deep")
            inner, index = [], index + 1
        elif char == ")":
            if inner is None:
                raise bad("a closing parenthesis without an opening one")
            elements.append(inner)
            inner, index = None, index + 1
        else:
            value, index = _element_at(text, index, keyword=keyword, closing=inner is not None)
            (elements if inner is None else inner).append(value)
    if inner is not None:
        raise bad("a closing parenthesis is missing")
    return elements


def _element_at(text: str, index: int, *, keyword: str, closing: bool) -> tuple[str, int]:
    """The value at ``text[index]``, quoted or not, and the index after it: a blank or the
    end follows it, or, with ``closing`` (inside a list within the list), the ``)`` that
    closes that list. As CL: ``'x'(`` is no two values, nor ``report(1).txt`` a value."""
    if text[index] == "'":
        value, end = quoted_string(text, index, keyword=keyword)
        value = Quoted(value)
        fault = f"a blank is missing after the quoted string {value!r}"
    else:
        end = index
        while end < len(text) and not text[end].isspace() and text[end] not in "()":
            end += 1
        value = text[index:end]
        fault = f"{value!r} is directly followed by {text[end:end + 1]!r} (quote a value that holds parentheses)"
    if end < len(text) and not text[end].isspace() and not (closing and text[end] == ")"):
        raise errors.error("OPV0005", value=text, keyword=keyword, reason=fault)
    return value, end


def quoted_string(text: str, index: int, *, keyword: str) -> tuple[str, int]:
    """The value of the quoted string at ``text[index]`` ('' is a quote) and the index after it."""
    out = []
    index += 1
    while True:
        end = text.find("'", index)
        if end < 0:
            raise errors.error("OPV0005", value=text, keyword=keyword, reason="a quoted string is not closed")
        out.append(text[index:end])
        if text.startswith("''", end):
            out.append("'")
            index = end + 2
            continue
        return "".join(out), end + 1
