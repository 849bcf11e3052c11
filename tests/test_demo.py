"""``optvol demo``: the narrated tour runs to the end and proves what it narrates."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import pytest

from optvol import errors


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
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("optvol-demo-files-")] == []  # its host files go
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


@pytest.mark.parametrize("step, signum, code", [("cp", signal.SIGINT, 130), ("cpyopt", signal.SIGINT, 130),
                                                ("cvtoptbku", signal.SIGTERM, 143)])
def test_a_signal_during_a_step_ends_the_demo(tmp_path, monkeypatch, capsys, step, signum, code):
    """A hunt of session 19: Ctrl-C or SIGTERM during a step was caught by that step's command,
    and the tour went on (to "Done.", exit 0, or to a converted volume that "differs", after a
    backup cut short). The signal really arrives, inside the step's own command; the tour
    ends with the signal's exit code before its next step, and leaves no host files behind."""
    from optvol import cli
    from optvol.cli import demo

    real_run, real_parse, ran = demo._run, cli.parser.parse, []

    def parse(argv, out=None):
        signal.raise_signal(signum)  # the command has begun: it catches the signal
        return real_parse(argv, out=out)

    def run(inner, argv, out, err):
        ran.append(argv[2])
        with monkeypatch.context() as during:
            if argv[2] == step:
                during.setattr(cli.parser, "parse", parse)
            return real_run(inner, argv, out, err)

    monkeypatch.setattr(demo, "_run", run)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert cli.main(["--library", str(tmp_path / "lib"), "demo"]) == code
    out, err = capsys.readouterr()
    assert ran[-1] == step and "Done." not in out
    assert err.strip().splitlines()[-1] == ("optvol: interrupted" if code == 130 else "optvol: ended by SIGTERM")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("optvol-demo-files-")] == []


def test_a_backup_step_that_fails_ends_the_demo(tmp_path, monkeypatch, capsys):
    """Every step but the write refused on the backup must succeed: a CPYOPT that failed
    (its command starts with "cp", as cp's does) went on to a disaster it could not undo."""
    from optvol import cli, copying

    def full(*args, **kwargs):
        raise errors.error("CPF1F61", volume="BVOL1", needed=1, available=0, threshold=99)

    monkeypatch.setattr(copying, "cpyopt", full)
    assert cli.main(["--library", str(tmp_path / "lib"), "demo"]) == 2
    out, err = capsys.readouterr()
    assert "Disaster" not in out and "OPV0008" in err and "demo step failed: optvol cpyopt" in err


def test_the_library_path_reaches_the_terminal_quoted(tmp_path):
    """A library path with an escape sequence and a new line is shown quoted, as every other
    display shows a path: it neither colours the terminal nor forges a line (hunt28d)."""
    library = tmp_path / "lib\x1b[31mX\nfake"
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library), "demo"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "\x1b" not in done.stdout + done.stderr
    assert not any(line.startswith("fake") for line in (done.stdout + done.stderr).splitlines())
    assert f"scratch library in {str(library)!r}" in done.stdout


def test_the_hint_names_the_library_a_shell_reads(tmp_path):
    """The closing hint is a command a shell runs on this library: a path with a blank is
    quoted for the shell once (it was quoted again, "'/tmp/a b'", and named another library)."""
    library = tmp_path / "my lib"
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library), "demo"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    hint = done.stdout.rsplit("try `", 1)[1].split("`", 1)[0]
    assert shlex.split(hint) == ["optvol", "--library", str(library), "wrkoptvol"], hint
