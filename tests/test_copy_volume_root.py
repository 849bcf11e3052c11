"""cp -r (CPY SUBTREE(*ALL)) of a volume's root into a directory makes a directory named by the
volume ID there, as cp -r of any directory makes one of its name (hunt30a F3: the volume's
entries were copied straight into the target directory, replacing its files of those names)."""

from __future__ import annotations

import io

from optvol.cli import main


def _run(library, *argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--library", str(library), *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_volume_root_copied_into_a_directory_lands_under_its_volume_id(tmp_path):
    library, home = tmp_path / "lib", tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    (tmp_path / "notes.txt").write_text("the volume's")
    assert _run(library, "inzopt", "PVOL1", "--capacity", "8M")[0] == 0
    assert _run(library, "inzopt", "PVOL2", "--capacity", "8M")[0] == 0
    assert _run(library, "cp", str(tmp_path / "notes.txt"), "/QOPT/PVOL1/notes.txt")[0] == 0
    code, _, err = _run(library, "cp", "-r", "/QOPT/PVOL1", f"{home}/")
    assert code == 0, err
    assert (home / "notes.txt").read_text() == "mine"  # left alone
    assert (home / "PVOL1" / "notes.txt").read_text() == "the volume's"
    code, _, err = _run(library, "cl", "CPY OBJ('/QOPT/PVOL1/') TODIR('/QOPT/PVOL2') SUBTREE(*ALL)")
    assert code == 0, err
    assert _run(library, "cat", "/QOPT/PVOL2/PVOL1/notes.txt")[1] == "the volume's"
    code, _, err = _run(library, "cp", "-r", "/QOPT/PVOL1", str(tmp_path / "new"))  # a new name: the contents
    assert code == 0, err
    assert (tmp_path / "new" / "notes.txt").read_text() == "the volume's"
