"""Standard streams that cannot take what a command writes (a hunt of session 18): a reader
that goes away (``| head``), a full disk (``/dev/full``), a closed stdout, stderr or stdin.

The command still does its work to its end and exits with its own code: a damaged volume
piped to ``head`` is exit 7, not 0, and a CL script piped to ``head`` runs every command.
Output lost to an error is OPV0302 (exit 2 unless the command failed first); never a
traceback, never "Exception ignored", never an error line written into stdout.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cli_helpers import clean_env
from conftest import make_volume

FILES = 3000  # ls -l of them: about 200 KB, more than a pipe holds


@pytest.fixture
def big_dir(library):
    make_volume(library, "PV")
    with library.open("PV") as volume, volume.batch() as batch:
        batch.mkdir("/D")
        for number in range(FILES):
            batch.write_bytes(f"/D/f{number:05d}.txt", b"%d" % number)
    return library


def _optvol(library, *args: str, env, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optvol", "--library", str(library.root), *args], env=env,
                            **popen)


def _first_line_only(library, *args: str, env) -> tuple[int, str]:
    """Run with stdout piped to a reader that reads one line and goes away, as ``| head -1`` does."""
    proc = _optvol(library, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


def _env(tmp_path) -> dict[str, str]:
    env = clean_env(tmp_path)
    env.pop("PYTHONUNBUFFERED", None)  # as in a user's shell: stdout is block-buffered into a pipe
    return env


def _damage_one_file(library, path: str) -> None:
    with library.open("PV") as volume:
        _, row = volume.file_row(path)
        offset = (row.sector + row.header_sectors) * volume.image.sector_size
    with open(library.root / "PV.optvol" / "data.opv", "r+b") as data:
        data.seek(offset)
        byte = data.read(1)
        data.seek(offset)
        data.write(bytes([byte[0] ^ 0xFF]))


def test_a_reader_that_goes_away_does_not_hide_a_damaged_volume(big_dir, tmp_path):
    _damage_one_file(big_dir, f"/D/f{FILES - 1:05d}.txt")
    code, err = _first_line_only(big_dir, "chkoptvol", "PV", "--output", "*PRINT", env=_env(tmp_path))
    assert code == 7 and "OPV0206" in err, err
    assert "Traceback" not in err and "Exception ignored" not in err


def test_a_cl_script_piped_to_head_runs_every_command(big_dir, tmp_path):
    script = tmp_path / "nightly.clp"
    script.write_text("WRKOPTF VOL(PV) DIR('/D')\nCRTDIR DIR('/QOPT/PV/AFTER')\n")
    code, err = _first_line_only(big_dir, "cl", "-f", str(script), env=_env(tmp_path))
    assert code == 0 and "Traceback" not in err, err
    with big_dir.open("PV") as volume:
        assert volume.exists("/AFTER/")


def test_cat_stopped_by_its_reader_still_fails_on_a_path_that_names_no_file(big_dir, tmp_path):
    """hunt-cl F13: ``cat BIG MISSING | head`` exited 0 and never looked at MISSING."""
    with big_dir.open("PV") as volume:
        volume.write_bytes("/BIG", b"line\n" * (1 << 20))  # more than a pipe holds, a line at a time
    missing = _first_line_only(big_dir, "cat", "/QOPT/PV/BIG", "/QOPT/PV/D/f00001.txt", "/QOPT/PV/NOPE", env=_env(tmp_path))
    assert missing[0] == 3 and "CPF1F22" in missing[1] and "Traceback" not in missing[1], missing
    whole = _first_line_only(big_dir, "cat", "/QOPT/PV/BIG", "/QOPT/PV/D/f00001.txt", env=_env(tmp_path))
    assert whole == (0, ""), whole


def test_cat_whose_output_a_full_disk_lost_says_so_and_looks_no_further(big_dir, tmp_path):
    """review s21c F5: the lookup of later paths is for a reader that went away; output lost to
    a full disk is OPV0302, exit 2, as before (the later path was "not found", exit 3)."""
    with big_dir.open("PV") as volume:
        volume.write_bytes("/BIG", b"line\n" * (1 << 20))
    with open("/dev/full", "w") as full:
        proc = _optvol(big_dir, "cat", "/QOPT/PV/BIG", "/QOPT/PV/NOPE", env=_env(tmp_path), stdout=full,
                       stderr=subprocess.PIPE)
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert code == 2 and "OPV0302" in err and "CPF1F22" not in err, err


@pytest.mark.parametrize("args", [["dspopt", "PV"], ["--json", "dspopt", "PV"], ["ls", "-l", "/QOPT/PV/D"],
                                  ["cat", "/QOPT/PV/D/f00001.txt"], ["mkdir", "/QOPT/PV/NEW"],
                                  ["--help"], ["cpyopt", "-h"], ["cl", "--help"]])  # (hunt-cl F11: --help was exit 0)
def test_output_a_full_disk_cannot_take_is_reported(big_dir, tmp_path, args):
    with open("/dev/full", "w") as full:
        proc = _optvol(big_dir, *args, env=_env(tmp_path), stdout=full, stderr=subprocess.PIPE)
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert code == 2 and err.count("OPV0302") == 1 and "(standard output)" in err, err
    assert "Traceback" not in err and "Exception ignored" not in err
    if args[0] == "mkdir":  # the work is done all the same
        with big_dir.open("PV") as volume:
            assert volume.exists("/NEW/")


@pytest.mark.parametrize("args", [["dspopt", "PV"], ["cat", "/QOPT/PV/D/f00001.txt"], ["--json", "ls", "/QOPT/PV"]])
def test_a_closed_stdout_is_reported(big_dir, tmp_path, args):
    proc = _optvol(big_dir, *args, env=_env(tmp_path), stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2 and "OPV0302" in err and "Traceback" not in err, err


def test_a_closed_stderr_keeps_errors_out_of_stdout(big_dir, tmp_path):
    proc = _optvol(big_dir, "--json", "dspopt", "NOSUCH", env=_env(tmp_path), stdout=subprocess.PIPE,
                   preexec_fn=lambda: os.close(2))
    assert proc.stdout.read() == b"" and proc.wait(timeout=120) == 3


def test_a_closed_stdin_for_cl_is_reported(big_dir, tmp_path):
    proc = _optvol(big_dir, "cl", "-", env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   preexec_fn=lambda: os.close(0))
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2 and "OPV0302" in err and "(standard input)" in err, err
