"""``optvol demo``: the narrated tour runs to the end and proves what it narrates."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys


def test_demo_runs_on_a_scratch_library_and_loses_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPTVOL_LIBRARY"}
    env["TMPDIR"] = str(tmp_path)  # the scratch library and files go here
    env["HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-m", "optvol", "demo"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "OPV0101" in out  # the backup refused a user write
    assert re.search(r"CPYOPT PVOL1 / -> BVOL1: 3 copied .* 0 failed", out)
    assert re.search(r"CPYOPT PVOL1 / -> BVOL1: 1 copied .* 2 not selected, 0 failed", out)  # only the change
    assert out.count("  same  ") == 3 and "DIFFERENT" not in out
    assert "890.00 (corrected)" in out
    mkdirs = [line for line in out.splitlines() if line.startswith("$ optvol mkdir ")]
    assert len(mkdirs) == len(set(mkdirs)) == 2  # each directory made once
    library = re.search(r"scratch library in (\S+)", out).group(1)
    assert library.startswith(str(tmp_path))
    assert not (tmp_path / "home" / ".local" / "share" / "optvol").exists()  # the default library is untouched
    listing = subprocess.run([sys.executable, "-m", "optvol", "--library", library, "--json", "wrkoptvol"],
                             capture_output=True, text=True, env=env)
    assert [v["volume"] for v in json.loads(listing.stdout)] == ["PVOL1"]
    again = subprocess.run([sys.executable, "-m", "optvol", "--library", library, "demo"],
                           capture_output=True, text=True, env=env)  # a library that holds volumes: said at once
    assert again.returncode == 2 and again.stderr.startswith("optvol: OPV0006: ") and "PVOL1" in again.stderr
    assert again.stdout == ""


def test_demo_with_json_is_refused_and_prints_nothing(tmp_path):
    """Under --json every command prints one JSON document or one error line: the demo
    narrates, so it refuses (OPV0008) and makes no library."""
    done = subprocess.run([sys.executable, "-m", "optvol", "--json", "--library", str(tmp_path / "lib"), "demo"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("optvol: OPV0008: ") and not (tmp_path / "lib").exists()
