"""Every CPYOPT, CVTOPTBKU, CHGOPTVOL and INZOPT example of the reference (§5.11, §7, §9, §10) parses into the right values and runs."""

from __future__ import annotations

from datetime import date, time

import pytest

from optvol import errors
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


def test_reference_inzopt_example():
    """§9 [C S45]: VOL is left out (IBM's *MOUNTED), DEV is accepted and ignored."""
    command, given = parser.parse("INZOPT NEWVOL(MYVOLUMEID) DEV(OPTVRT01) CHECK(*NO) TEXT('virtual image')")
    values = command.parse_values(given)
    assert (values["VOL"], values["NEWVOL"], values["DEV"], values["CHECK"]) == ("*MOUNTED", "MYVOLUMEID", "OPTVRT01", "*NO")
    assert (values["ENDOPT"], values["CCSID"]) == ("*LEAVE", "*CALC")


@pytest.mark.parametrize("text, keyword, value", [
    ("INZOPT VOL(V1) ENDOPT(*UNLOAD)", "ENDOPT", "*UNLOAD"),
    ("INZOPT VOL(V1) CCSID(850)", "CCSID", 850),
    ("INZOPT VOL(V1) CCSID(500)", "CCSID", 500),
    ("INZOPT VOL(V1) DEV(OPT01)", "DEV", "OPT01"),
    ("DUPOPT V1 V2 FROMDEV(OPT01)", "FROMDEV", "OPT01"),
    ("DUPOPT V1 V2 TODEV(OPTVRT02)", "TODEV", "OPTVRT02"),
    ("DUPOPT V1 V2 OUTPUT(*ERROR)", "OUTPUT", "*ERROR"),
    ("DUPOPT V1 V2 OUTPUT(*NONE)", "OUTPUT", "*NONE"),
    ("DUPOPT V1 V2 FROMENDOPT(*LEAVE)", "FROMENDOPT", "*LEAVE"),
    ("DUPOPT V1 V2 TOENDOPT(*UNLOAD)", "TOENDOPT", "*UNLOAD"),
    ("DSPOPT V1 DEV(OPT01)", "DEV", "OPT01"), ("CHKOPTVOL V1 DEV(*ALL)", "DEV", "*ALL"),
])
def test_ibm_device_keywords_are_accepted(text, keyword, value):
    command, given = parser.parse(text)
    assert command.parse_values(given, cl=True)[keyword] == value


@pytest.mark.parametrize("text, keyword", [
    ("INZOPT VOL(V1) ENDOPT(*EJECT)", "ENDOPT"), ("INZOPT VOL(V1) CCSID(437)", "CCSID"),
    ("INZOPT VOL(V1) CCSID(CALC)", "CCSID"), ("INZOPT VOL(V1) DEV('not a device')", "DEV"),
    ("INZOPT VOL(V1) DEV(DEVICENAME11)", "DEV"), ("DUPOPT V1 V2 OUTPUT(*PRINT)", "OUTPUT"),
    ("DUPOPT V1 V2 FROMDEV(1OPT)", "FROMDEV"), ("DUPOPT V1 V2 TOENDOPT(*NO)", "TOENDOPT"),
    ("DSPOPT V1 DEV('not a device!')", "DEV"), ("CHKOPTVOL V1 DEV('!!')", "DEV"),
])
def test_ibm_device_keywords_refuse_what_ibm_refuses(text, keyword):
    command, given = parser.parse(text)
    with pytest.raises(errors.InvalidError, match=f"^OPV0005: Value .* not valid for {keyword}:"):
        command.parse_values(given, cl=True)


def test_reference_examples_run_end_to_end(tmp_path):
    """The examples of reference §5.11, §7 and §10, run in order as one CL file."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPTVOL_LIBRARY"}
    base = [sys.executable, "-m", "optvol", "--library", str(tmp_path / "lib")]
    setup = "\n".join([
        "INZOPT VOL(PVOL1) TEXT('primary')", "INZOPT VOL(BVOL1) TYPE(*BACKUP)", "INZOPT VOL(NEWPRI)",
        "INZOPT VOL(VOLA)", "INZOPT VOL(ARCH)", "INZOPT VOL(VOL01)", "INZOPT VOL(VOL01BACKUP) TYPE(*BACKUP)",
        "CRTDIR DIR('/QOPT/PVOL1/DIR1')", "CRTDIR DIR('/QOPT/PVOL1/DIR1/SUB')", "CRTDIR DIR('/QOPT/VOLA/DOCS')",
    ])
    (tmp_path / "a.txt").write_text("alpha")
    examples = (tmp_path / "examples.clp")
    examples.write_text(
        "/* reference 5.11 */\n"
        "CPYOPT FROMVOL(PVOL1 *PRIMARY) FROMPATH('/') TOVOL(BVOL1 *BACKUP) +\n"
        "       CPYSUBDIR(*YES) SLTFILE(*CHANGED)\n"
        "CPYOPT FROMVOL(PVOL1 *PRIMARY) FROMPATH('/DIR1') TOVOL(BVOL1 *BACKUP) +\n"
        "       FROMTIME('04/01/1999' '00:00:00')\n"
        "CPYOPT FROMVOL(BVOL1 *BACKUP) FROMPATH('/DIR1') TOVOL(NEWPRI *PRIMARY) +\n"
        "       CPYSUBDIR(*YES) SLTFILE(*ALL) CRTDIR(*YES)\n"
        "CPYOPT FROMVOL(VOLA *PRIMARY) FROMPATH('/') TOVOL(ARCH *PRIMARY) +\n"
        "       TOPATH('/VOLA') CPYSUBDIR(*YES) SLTFILE(*NEW) CRTDIR(*YES)\n"
        "/* reference 10.1 and 7 */\n"
        "CHGOPTVOL VOL(VOL01) THRESHOLD(99)\n"
        "CPYOPT FROMVOL(VOL01) FROMPATH('/') TOVOL(VOL01BACKUP *BACKUP) CPYSUBDIR(*YES)\n"
        "CVTOPTBKU BKUVOL(VOL01BACKUP) PRIVOL(VOL02)\n"
        "/* reference 9: a new virtual image */\n"
        "INZOPT NEWVOL(MYVOLUMEID) DEV(OPTVRT01) CHECK(*NO) TEXT('virtual image')\n"
    )

    def run(*args, stdin=None):
        return subprocess.run(base + list(args), input=stdin, capture_output=True, text=True, env=env)

    assert run("cl", "-", stdin=setup).returncode == 0
    for target in ("/QOPT/PVOL1/DIR1/a.txt", "/QOPT/PVOL1/DIR1/SUB/a.txt", "/QOPT/VOLA/DOCS/a.txt"):
        assert run("cp", str(tmp_path / "a.txt"), target).returncode == 0
    done = run("cl", "-f", str(examples))
    assert done.returncode == 0, done.stderr
    assert run("cat", "/QOPT/NEWPRI/DIR1/SUB/a.txt").stdout == "alpha"
    assert run("cat", "/QOPT/ARCH/VOLA/DOCS/a.txt").stdout == "alpha"
    volumes = {v["volume"]: v for v in json.loads(run("--json", "wrkoptvol").stdout)}
    assert volumes["VOL01"]["threshold"] == 99
    assert volumes["VOL02"]["type"] == "*PRIMARY" and "VOL01BACKUP" not in volumes
    assert volumes["MYVOLUMEID"]["text"] == "virtual image"
    backup = json.loads(run("--json", "dspopt", "BVOL1", "--data", "*DIRATR", "--path", "/DIR1").stdout)
    assert backup[0]["backup"]["range_start"] == "*BEGIN"
