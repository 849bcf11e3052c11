"""CL quoted values keep their case (hunt24l F1: a quoted lower-case special value was read as the
special value, and `TOVOL('*fromvol')` copied onto the source volume), and a lone CR ends a
line in every door (F2)."""

from __future__ import annotations

import io

from optvol.cli import main


def _run(library, *argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--library", str(library), *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _setup(library):
    assert _run(library, "cl", "INZOPT NEWVOL(PVOL1) MEDTYPE(*ERASE) CAPACITY(8M)")[0] == 0
    assert _run(library, "cl", "CRTDIR DIR('/QOPT/PVOL1/DIR')")[0] == 0


def test_a_quoted_lower_case_special_value_is_no_special_value(tmp_path):
    """'*fromvol' in quotes keeps its case: it is not *FROMVOL (no copy onto the source volume)."""
    library = tmp_path / "lib"
    _setup(library)
    code, _, err = _run(library, "cl", "CPYOPT PVOL1 '/DIR' TOVOL('*fromvol') TOPATH('/COPY') CRTDIR(*YES)")
    assert code == 2 and "OPV0001" in err
    code, _, err = _run(library, "cl", "CHGOPTVOL PVOL1 TEXT('*same')")
    assert code == 0
    code, out, _ = _run(library, "--json", "dspopt", "PVOL1")
    assert '"text": "*same"' in out


def test_unquoted_and_shell_special_values_still_count(tmp_path):
    library = tmp_path / "lib"
    _setup(library)
    assert _run(library, "cl", "CPYOPT PVOL1 '/DIR' TOVOL(*fromvol) TOPATH('/COPY') CRTDIR(*YES)")[0] == 0
    assert _run(library, "cpyopt", "PVOL1", "/DIR", "fromvol", "--topath", "/COPY2", "--crtdir", "yes")[0] == 0


def test_a_lone_cr_ends_a_line_in_every_door(tmp_path):
    """hunt24l F2: `cl -f` (a file read with universal newlines) took a lone CR for a line
    end, `cl "..."` and `cl -` for a blank: one text ran two commands or one other."""
    library = tmp_path / "lib"
    _setup(library)
    assert _run(library, "cl", "INZOPT NEWVOL(PVOL2) MEDTYPE(*ERASE) CAPACITY(8M)")[0] == 0
    code, out, err = _run(library, "--json", "cl", "WRKOPTVOL\rDSPOPT PVOL2")
    assert code == 0, err
    assert out.count("PVOL2") >= 2 and "PVOL1" in out  # WRKOPTVOL of all, then DSPOPT PVOL2


def test_a_date_of_eight_digits_without_separators_is_mmddyyyy(tmp_path):
    """hunt24l F3: MMDDYYYY was refused where MM/DD/YYYY and MMDDYY are taken (reference §15:
    the job's date format with or without separators)."""
    from optvol.cl import values

    def bad(reason):
        return AssertionError(reason)

    assert values.parse_date("01152026", bad) == values.parse_date("01/15/2026", bad)
    assert values.parse_date("011526", bad) == values.parse_date("01/15/2026", bad)


def test_cl_from_standard_input_is_utf_8_as_from_a_file(tmp_path):
    """hunt24l F4: Latin-1 text on stdin ran command by command with misleading refusals
    (`café`'s TEXT "at most 50 printable characters"); -f refused the file as not UTF-8."""
    import subprocess
    import sys

    library = tmp_path / "lib"
    _setup(library)
    text = "CHGOPTVOL PVOL1 TEXT('caf\xe9')\n".encode("latin-1")
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library), "cl", "-"], input=text,
                          capture_output=True)
    assert done.returncode == 2 and b"OPV0302" in done.stderr and b"not UTF-8" in done.stderr, done.stderr
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library), "cl", "-"],
                          input="CHGOPTVOL PVOL1 TEXT('caf\xe9')\r\n".encode("utf-8-sig"), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert '"text": "café"' in _run(library, "--json", "dspopt", "PVOL1")[1]


def test_a_quoted_element_of_a_shell_word_keeps_its_case_as_in_cl(tmp_path):
    """hunt30a F1: the shell's word is written as CL writes the value inside the parentheses,
    but a quoted element was still matched as a special value: "'fromvol'" copied onto the
    source volume (CL: volume FROMVOL) and "'*fromvol'" too (CL: OPV0001)."""
    library = tmp_path / "lib"
    _setup(library)
    assert _run(library, "cl", "INZOPT NEWVOL(FROMVOL) MEDTYPE(*ERASE) CAPACITY(8M)")[0] == 0
    assert _run(library, "cl", "CRTDIR DIR('/QOPT/PVOL1/DIR/SUB')")[0] == 0
    code, out, err = _run(library, "cpyopt", "PVOL1", "/DIR", "'fromvol'", "--topath", "/COPY", "--crtdir", "yes",
                          "--cpysubdir", "yes")
    assert code == 0, err
    assert "-> FROMVOL /COPY" in out
    code, _, err = _run(library, "cpyopt", "PVOL1", "/DIR", "'*fromvol'", "--topath", "/COPY2", "--crtdir", "yes")
    assert code == 2 and "OPV0001" in err
    code, out, _ = _run(library, "--json", "wrkoptdir", "*ALL", "PVOL1")
    assert "/COPY" not in out  # nothing landed on the source volume
    code, _, err = _run(library, "cpyopt", "PVOL1", "/DIR", "'FROMVOL' '*n'", "--topath", "/COPY3", "--crtdir", "yes")
    assert code == 2 and "OPV0005" in err  # a quoted '*n' is no omitted element, as in CL
    assert _run(library, "cpyopt", "PVOL1", "/DIR", "'*FROMVOL' *n", "--topath", "/COPY4", "--crtdir", "yes")[0] == 0
