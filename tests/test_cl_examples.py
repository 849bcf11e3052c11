"""Every CPYOPT and CVTOPTBKU example of the reference (§5.11, §7) parses into the right values."""

from __future__ import annotations

from datetime import date, time

import pytest

from optvol.cl import parser, table

CPYOPT_DEFAULTS = {
    "TOPATH": "*FROMPATH", "SLTFILE": "*CHANGED", "CPYSUBDIR": "*NO", "CRTDIR": "*NO",
    "ALWCPYOPP": "*NO", "COPYTYPE": "*SYSTEM", "FROMTIME": ("*BEGIN", "*AVAIL"),
}


@pytest.mark.parametrize("text, expected", [
    (
        "CPYOPT FROMVOL(PVOL1 *PRIMARY) FROMPATH('/') TOVOL(BVOL1 *BACKUP)\n"
        "       CPYSUBDIR(*YES) SLTFILE(*CHANGED)",
        {"FROMVOL": ("PVOL1", "*PRIMARY"), "FROMPATH": "/", "TOVOL": ("BVOL1", "*BACKUP"),
         "CPYSUBDIR": "*YES", "SLTFILE": "*CHANGED"},
    ),
    (
        "CPYOPT FROMVOL(PVOL1 *PRIMARY) FROMPATH('/DIR1') TOVOL(BVOL1 *BACKUP)\n"
        "       FROMTIME('04/01/1999' '00:00:00')",
        {"FROMVOL": ("PVOL1", "*PRIMARY"), "FROMPATH": "/DIR1", "TOVOL": ("BVOL1", "*BACKUP"),
         "FROMTIME": (date(1999, 4, 1), time(0, 0))},
    ),
    (
        "CPYOPT FROMVOL(BVOL1 *BACKUP) FROMPATH('/DIR1') TOVOL(NEWPRI *PRIMARY)\n"
        "       CPYSUBDIR(*YES) SLTFILE(*ALL) CRTDIR(*YES)",
        {"FROMVOL": ("BVOL1", "*BACKUP"), "FROMPATH": "/DIR1", "TOVOL": ("NEWPRI", "*PRIMARY"),
         "CPYSUBDIR": "*YES", "SLTFILE": "*ALL", "CRTDIR": "*YES"},
    ),
    (
        "CPYOPT FROMVOL(VOLA *PRIMARY) FROMPATH('/') TOVOL(ARCH *PRIMARY)\n"
        "       TOPATH('/VOLA') CPYSUBDIR(*YES) SLTFILE(*NEW) CRTDIR(*YES)",
        {"FROMVOL": ("VOLA", "*PRIMARY"), "FROMPATH": "/", "TOVOL": ("ARCH", "*PRIMARY"),
         "TOPATH": "/VOLA", "CPYSUBDIR": "*YES", "SLTFILE": "*NEW", "CRTDIR": "*YES"},
    ),
])
def test_reference_cpyopt_examples(text, expected):
    """§5.11, written on two lines as there; as CL source the second line needs a '+'."""
    first, second = text.split("\n")
    command, given = parser.parse(first + " +\n" + second)
    assert command is table.command("CPYOPT")
    assert command.parse_values(given) == {**CPYOPT_DEFAULTS, **expected}


def test_design_cpyopt_example():
    command, given = parser.parse("CPYOPT FROMVOL(PVOL1) FROMPATH('/') TOVOL(BVOL1 *BACKUP) CPYSUBDIR(*YES)")
    assert command.parse_values(given) == {**CPYOPT_DEFAULTS, "FROMVOL": ("PVOL1", "*PRIMARY"), "FROMPATH": "/",
                                           "TOVOL": ("BVOL1", "*BACKUP"), "CPYSUBDIR": "*YES"}


def test_cpyopt_to_fromvol():
    command, given = parser.parse("CPYOPT PVOL1 '/Dir1' *FROMVOL TOPATH('/Copy') CRTDIR(*YES)")
    assert command.parse_values(given)["TOVOL"] == ("*FROMVOL", "*PRIMARY")


def test_reference_cvtoptbku_example():
    command, given = parser.parse("CVTOPTBKU BKUVOL(VOL01BACKUP) PRIVOL(VOL02)")
    assert command is table.command("CVTOPTBKU")
    assert command.parse_values(given) == {"BKUVOL": "VOL01BACKUP", "PRIVOL": "VOL02"}


def test_cvtoptbku_default_and_positions():
    command, given = parser.parse("cvtoptbku bvol1")
    assert command.parse_values(given) == {"BKUVOL": "BVOL1", "PRIVOL": "*PRVPRIVOL"}
