"""OPV0005 for an inner element list shows the list as it was written (docs/messages.md:
"shown as written, '(X Y)'"), never as a Python list."""

from __future__ import annotations

import contextlib
import io

import pytest

from optvol import cli


@pytest.mark.parametrize("argv", [
    ["cl", "WRKOPTF PVOL1 *ALL *SELECT SLTDATE(*MODIFIED (X Y Z))"],
    ["wrkoptf", "PVOL1", "*ALL", "*SELECT", "--sltdate", "*MODIFIED (X Y Z)"],
])
def test_too_many_inner_elements_are_shown_as_written(tmp_path, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["--library", str(tmp_path / "lib"), "inzopt", "PVOL1"], out=out, err=err) == 0
        code = cli.main(["--library", str(tmp_path / "lib"), *argv], out=out, err=err)
    line = err.getvalue().splitlines()[-1]
    assert code == 2 and line.startswith("optvol: OPV0005: ")
    assert "'(X Y Z)'" in line and "[" not in line, line
