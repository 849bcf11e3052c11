"""Hostile CL text (DESIGN §6): the parser and the table's typing raise only exit-2 errors."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optvol import errors
from optvol.cl import parser

VALID = [
    "CPYOPT FROMVOL(PVOL1 *PRIMARY) FROMPATH('/') TOVOL(BVOL1 *BACKUP) CPYSUBDIR(*YES) SLTFILE(*CHANGED)",
    "CPYOPT FROMVOL(PVOL1) FROMPATH('/DIR1') TOVOL(BVOL1 *BACKUP) FROMTIME('04/01/1999' '00:00:00')",
    "CPYOPT PVOL1 '/' *FROMVOL TOPATH('/Copy') FROMTIME(*N 120000)",
    "CVTOPTBKU BKUVOL(VOL01BACKUP) PRIVOL(VOL02)",
    "INZOPT VOL(PVOL1) THRESHOLD(90) TEXT('It''s mine') TYPE(*BACKUP) CAPACITY(10M) BLKSIZE(2048)",
    "CHGOPTVOL VOL01 99 *NONE TEXT(*BLANK)",
    "DSPOPT VOL(ARCH*) DATA(*FILATR) PATH('/Dir1/*')",
    "WRKOPTF PVOL1 '/Dir1' FILE(REP*)",
    "WRKOPTDIR '/' PVOL1 SLTLVL(3)",
    "CPY OBJ('/QOPT/PVOL1/a.txt') TODIR('/QOPT/BVOL1/Dir') REPLACE(*YES)",
    "RNM '/QOPT/V/a' NEWOBJ('b.txt')",
    "CHGATR OBJ('/QOPT/V/a') ATR(*READONLY) VALUE(*YES)",
    "RMVDIR DIR('/QOPT/V/Dir') SUBTREE(*ALL) /* comment */",
    "INZOPT VOL(PVOL1) +\n   TEXT('abc -\n def')",
]
CL_CHARACTERS = "()'*+-/ \n\tABCVOLPTXYZ019:._$#@\x00é"

EXAMPLES = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(text: str) -> None:
    """Parse and type ``text``; only an invalid-command error may come out."""
    try:
        command, given_texts = parser.parse(text)
        command.parse_values(given_texts)
    except errors.OptvolError as exc:
        assert isinstance(exc, errors.InvalidError) and exc.exit_code == 2, repr(exc)


@st.composite
def mutated(draw) -> str:
    """A valid command with characters inserted, deleted, swapped or duplicated."""
    text = list(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "swap", "duplicate"]))
        if action == "insert":
            text.insert(where, draw(st.sampled_from(CL_CHARACTERS)))
        elif text and action == "delete":
            del text[min(where, len(text) - 1)]
        elif text and action == "swap":
            other = draw(st.integers(0, len(text) - 1))
            where = min(where, len(text) - 1)
            text[where], text[other] = text[other], text[where]
        elif action == "duplicate":
            text[where:where] = text[where : where + draw(st.integers(1, 12))]
    return "".join(text)


@EXAMPLES
@given(st.text(alphabet=st.sampled_from(CL_CHARACTERS), max_size=80))
def test_random_cl_text(text):
    check(text)


@EXAMPLES
@given(st.text(max_size=60))
def test_random_unicode(text):
    check(text)


@EXAMPLES
@given(mutated())
def test_mutated_valid_commands(text):
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([
    "CHGOPTVOL V THRESHOLD({})", "INZOPT V CAPACITY({}M) BLKSIZE({})", "CPYOPT V '/' B FROMTIME({} {})",
    "WRKOPTDIR '/' V SLTLVL(-{})",
]), st.text(alphabet="0123456789", min_size=1, max_size=6000))
def test_long_numbers(template, digits):
    check(template.format(digits, digits))


def test_the_valid_commands_are_valid():
    for text in VALID:
        command, given_texts = parser.parse(text)
        command.parse_values(given_texts)
