"""CPF1F22 for a file named with a final '/' (which names a directory, so no file has it)
quotes the path as typed, as cat, rm and chattr do: without the '/' the message named a
file that exists (docs/messages.md CPF1F22)."""

from __future__ import annotations

import contextlib
import io

from optvol import cli


def _err(library, *argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["--library", str(library), *argv], out=out, err=err)
    return code, err.getvalue()


def test_cp_and_cpyopt_quote_a_final_slash(tmp_path):
    lib, host = tmp_path / "lib", tmp_path / "a.txt"
    host.write_text("x")
    for argv in (["inzopt", "PVOL1"], ["inzopt", "PVOL2"], ["mkdir", "/QOPT/PVOL1/D"], ["cp", str(host), "/QOPT/PVOL1/D/"]):
        assert _err(lib, *argv)[0] == 0
    for argv in (["cpyopt", "PVOL1", "/D/a.txt/", "PVOL2", "--topath", "/c.txt"],
                 ["cp", "/QOPT/PVOL1/D/a.txt/", str(tmp_path / "b.txt")],
                 ["cat", "/QOPT/PVOL1/D/a.txt/"]):
        code, err = _err(lib, *argv)
        assert code == 3 and err == "optvol: CPF1F22: File '/D/a.txt/' not found on volume PVOL1.\n", (argv, err)
