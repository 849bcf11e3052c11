"""hunt24l: CL front door findings."""

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
