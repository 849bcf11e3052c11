"""rev29i: what an open does with a journal another process left half done.

F3, F4: a CVTOPTBKU that keeps its ID (its journal relabels the image and renames nothing),
or one killed past its rename (the roll-forward relabels the image at ``after``), was not
completed by a program's open: the program held the image the relabel needs alone, and every
command of the library, of any volume, was refused with exit 8 until it closed it.
F1: a library only read (a read-only mount) with a journal that renames a volume: every read
of that volume said OPV0004 "in use by another process", for good (review s22c F2: it is read
as it stands)."""

from __future__ import annotations

import os
import subprocess
import sys

import optvol
from integrity_helpers import remount, tmpfs
from test_journal_open_program import backed_up, optvol_cli

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
KILL_AFTER_RENAME = (
    "import os, runpy, signal, sys\n"
    "real = os.rename\n"
    "def rename(a, b, *k, **kw):\n"
    "    real(a, b, *k, **kw)\n"
    "    if str(a).endswith('BVOL1.optvol'):\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "os.rename = rename\n"
    "sys.argv = ['optvol'] + sys.argv[1:]\n"
    "runpy.run_module('optvol', run_name='__main__')\n")


def test_a_killed_cvtoptbku_keeping_its_id_is_completed_by_a_programs_open(tmp_path):
    library = backed_up(tmp_path)
    program = optvol.open_library(library)
    killed = optvol_cli(library, "cvtoptbku", "BVOL1", "BVOL1", killed=True)
    assert killed.returncode == -9 and (library / ".journal.json").exists()
    with program.open("BVOL1") as held:
        assert held.label()["type"] == "*PRIMARY"
        listed = optvol_cli(library, "ls", "/QOPT/PVOL1/")
        assert listed.returncode == 0 and listed.stdout.split() == ["a"], listed.stderr


def test_a_cvtoptbku_killed_past_its_rename_is_completed_by_an_open_of_the_new_id(tmp_path):
    library = backed_up(tmp_path)
    program = optvol.open_library(library)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_RENAME, "--library", str(library), "cvtoptbku",
                             "BVOL1", "NEWP"], env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True)
    assert killed.returncode == -9 and (library / ".journal.json").exists() and (library / "NEWP.optvol").is_dir()
    with program.open("NEWP"):
        listed = optvol_cli(library, "ls", "/QOPT/PVOL1/")
        assert listed.returncode == 0 and listed.stdout.split() == ["a"], listed.stderr
    assert not (library / ".journal.json").exists()


def test_a_volume_a_journal_renames_is_read_as_it_stands_in_a_read_only_library(tmp_path):
    with tmpfs(tmp_path / "mnt", "32m") as mount:
        library = mount / "lib"
        (tmp_path / "a.bin").write_bytes(b"A" * 20_000)
        assert optvol_cli(library, "inzopt", "PVOL1").returncode == 0
        assert optvol_cli(library, "cp", str(tmp_path / "a.bin"), "/QOPT/PVOL1/a").returncode == 0
        program = optvol.open_library(library)
        killed = optvol_cli(library, "inzopt", "PVOL1", "--check", "*NO", killed=True)
        assert killed.returncode == -9 and (library / ".journal.json").exists()
        remount(mount, read_only=True)
        listed = optvol_cli(library, "ls", "/QOPT/PVOL1/")
        assert listed.returncode == 0 and listed.stdout.split() == ["a"], listed.stderr
        with program.open("PVOL1") as volume:
            assert volume.read_bytes("/a") == b"A" * 20_000
        remount(mount, read_only=False)
        again = optvol_cli(library, "ls", "/QOPT/PVOL1/")
        assert again.returncode == 0 and again.stdout.split() == [], again.stderr  # completed once writable


def test_a_damaged_journal_is_refused_with_opv0006_not_a_traceback(tmp_path):
    """F5: a .journal.json that is not JSON, or not optvol's, ended every command in a traceback
    (exit 70), and a program's open of a volume it names too."""
    library = tmp_path / "lib"
    assert optvol_cli(library, "inzopt", "PVOL1").returncode == 0
    program = optvol.open_library(library)
    for text in ("garbage", "[]", '{"renames": [["PVOL1.optvol"]]}', '{"relabel": {"dir": "PVOL1.optvol"}}'):
        (library / ".journal.json").write_text(text)
        listed = optvol_cli(library, "ls", "/QOPT/PVOL1/")
        assert listed.returncode == 2 and "OPV0006" in listed.stderr and "damaged" in listed.stderr, listed.stderr
        try:  # (hunt29k F3: one it cannot read at all was taken for none, and the program wrote into
            program.open("PVOL1").close()  # an image the journal, once mended, swapped out)
            raise AssertionError("opened")
        except optvol.errors.OptvolError as exc:
            assert exc.message_id == "OPV0006"
    (library / ".journal.json").unlink()
    assert optvol_cli(library, "ls", "/QOPT/PVOL1/").returncode == 0


def test_programs_opening_a_volume_a_journal_renames_at_once_all_open_it(tmp_path):
    """F2: every open but one was refused, OPV0004 "in use by another process": the first to
    take the library lock could not lock the volume another opener held for the moment it took
    to see the journal, and the others did not wait for the library lock."""
    import threading

    library = tmp_path / "lib"
    assert optvol_cli(library, "inzopt", "PVOL1").returncode == 0
    for _ in range(3):
        programs = [optvol.open_library(library) for _ in range(4)]
        killed = optvol_cli(library, "inzopt", "PVOL1", "--check", "*NO", killed=True)
        assert killed.returncode == -9 and (library / ".journal.json").exists()
        barrier, results = threading.Barrier(len(programs)), []

        def run(program, barrier=barrier, results=results):
            barrier.wait()
            try:
                with program.open("PVOL1") as volume:
                    results.append(volume.listdir("/"))
            except optvol.errors.OptvolError as exc:
                results.append(exc.message_id)

        threads = [threading.Thread(target=run, args=(program,)) for program in programs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [[]] * len(programs) and not (library / ".journal.json").exists()
