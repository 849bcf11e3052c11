"""A command that swaps a volume's image through the library journal (INZOPT over a volume,
CVTOPTBKU) killed after the journal reached the disk, before its renames: a program that had
opened the library before opened the volume and got the OLD image; the next command rolled
the journal forward and renamed that image away under the program: the program's write,
acknowledged, was gone (INZOPT); or the program's hold refused every command of the library
with exit 8 (CVTOPTBKU: the roll-forward's relabel needs the image alone) (hunt29d F1, F2).
The kill: a child SIGKILLed as it begins to complete its own journal."""

from __future__ import annotations

import os
import subprocess
import sys

import optvol

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
KILLED = (  # the command, SIGKILLed as it begins to complete its journal (on the disk, nothing done)
    "import os, runpy, signal, sys\n"
    "from optvol import library\n"
    "real = library.Library._complete_journal\n"
    "def complete(self, held):\n"
    "    if (self.root / library.JOURNAL).exists():\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "    return real(self, held)\n"
    "library.Library._complete_journal = complete\n"
    "sys.argv = ['optvol'] + sys.argv[1:]\n"
    "runpy.run_module('optvol', run_name='__main__')\n")


def optvol_cli(library, *args: str, killed: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    argv = [sys.executable] + (["-c", KILLED] if killed else ["-m", "optvol"]) + ["--library", str(library), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_a_program_never_writes_into_an_image_a_killed_inzopt_swaps_out(tmp_path):
    library = tmp_path / "lib"
    (tmp_path / "a.bin").write_bytes(os.urandom(20_000))
    assert optvol_cli(library, "inzopt", "PVOL1").returncode == 0
    assert optvol_cli(library, "cp", str(tmp_path / "a.bin"), "/QOPT/PVOL1/a").returncode == 0
    program = optvol.open_library(library)  # a program that opened the library first
    killed = optvol_cli(library, "inzopt", "PVOL1", "--check", "*NO", killed=True)
    assert killed.returncode == -9 and (library / ".journal.json").exists()
    with program.open("PVOL1") as volume:
        volume.write_bytes("/mine", b"the program's data")  # acknowledged
        listed = optvol_cli(library, "ls", "/QOPT/PVOL1/")  # the next command, the program holding it
        assert volume.read_bytes("/mine") == b"the program's data"
    assert listed.returncode in (0, 8), listed.stderr
    after = optvol_cli(library, "ls", "/QOPT/PVOL1/")
    assert after.returncode == 0 and after.stdout.split() == ["mine"]  # INZOPT done, and the write kept
    assert optvol_cli(library, "chkoptvol", "PVOL1").returncode == 0


def backed_up(tmp_path):
    """A library with PVOL1 holding /a and its backup BVOL1."""
    library = tmp_path / "lib"
    (tmp_path / "a.bin").write_bytes(os.urandom(20_000))
    assert optvol_cli(library, "inzopt", "PVOL1").returncode == 0
    assert optvol_cli(library, "inzopt", "BVOL1", "--type", "*BACKUP").returncode == 0
    assert optvol_cli(library, "cp", str(tmp_path / "a.bin"), "/QOPT/PVOL1/a").returncode == 0
    assert optvol_cli(library, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES").returncode == 0
    return library


def test_a_program_holding_a_volume_a_killed_cvtoptbku_converts_locks_no_command_out(tmp_path):
    library = backed_up(tmp_path)
    program = optvol.open_library(library)
    killed = optvol_cli(library, "cvtoptbku", "BVOL1", "NEWP", killed=True)
    assert killed.returncode == -9 and (library / ".journal.json").exists()
    try:
        held = program.open("BVOL1")  # the conversion is completed first: BVOL1 is NEWP now
    except optvol.errors.OptvolError as exc:
        assert exc.message_id == "OPV0002"
        held = program.open("NEWP")
    with held:
        listed = optvol_cli(library, "ls", "/QOPT/PVOL1/")  # another volume: not refused (exit 8)
        assert listed.returncode == 0 and listed.stdout.split() == ["a"], listed.stderr
    assert optvol_cli(library, "chkoptvol", "NEWP").returncode == 0
