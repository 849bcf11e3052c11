"""rm, RMVLNK, rmdir and RMVDIR report what they removed as the other file commands report
what they did (README, JSON): ``/QOPT/<volume>/...`` paths, each entry once."""

from __future__ import annotations

import contextlib
import io
import json

from optvol import cli


def _run(library, *argv) -> tuple[int, object, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["--library", str(library), "--json", *argv], out=out, err=err)
    return code, json.loads(out.getvalue()) if out.getvalue() else None, err.getvalue()


def test_rm_reports_each_file_once_as_a_qopt_path(tmp_path):
    lib, host = tmp_path / "lib", tmp_path / "a.txt"
    host.write_text("x")
    assert _run(lib, "inzopt", "PVOL1")[0] == 0
    assert _run(lib, "mkdir", "/QOPT/PVOL1/docs")[0] == 0
    assert _run(lib, "cp", str(host), "/QOPT/PVOL1/docs/")[0] == 0
    code, document, _ = _run(lib, "rm", "/qopt/pvol1/docs/a.txt", "/QOPT/PVOL1/DOCS/A.TXT")
    assert code == 0 and document == {"removed": ["/QOPT/PVOL1/docs/a.txt"]}  # one file, removed once
    assert _run(lib, "cp", str(host), "/QOPT/PVOL1/docs/")[0] == 0
    code, document, _ = _run(lib, "cl", "DEL '/qopt/pvol1/docs/a.txt'")
    assert code == 0 and document == {"removed": ["/QOPT/PVOL1/docs/a.txt"]}


def test_rmdir_and_rmvdir_report_qopt_paths(tmp_path):
    lib = tmp_path / "lib"
    assert _run(lib, "inzopt", "PVOL1")[0] == 0
    assert _run(lib, "mkdir", "/QOPT/PVOL1/d1", "/QOPT/PVOL1/d2")[0] == 0
    code, document, _ = _run(lib, "rmdir", "/qopt/pvol1/d1/")
    assert code == 0 and document == {"removed": ["/QOPT/PVOL1/d1"]}
    code, document, _ = _run(lib, "cl", "RMVDIR '/qopt/pvol1/d2' SUBTREE(*ALL)")
    assert code == 0 and document == {"removed": ["/QOPT/PVOL1/d2"]}
