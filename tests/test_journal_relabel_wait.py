"""hunt29k F1: the roll-forward of a journal that relabels a volume (a CVTOPTBKU keeping its ID,
or one killed past its rename) did not wait for an opener's brief hold of that volume, as the
roll-forward of a rename does (rev29i F2): a command of the library, of any volume, run while a
program or a user who may only read was opening the volume to look at the journal, was refused
at once with exit 8, OPV0004 "Volume BVOL1 is in use by another process"."""

from __future__ import annotations

import os
import threading
import time

import optvol
from optvol.image.locks import open_lock
from test_journal_open_program import backed_up, optvol_cli


def test_a_relabel_roll_forward_waits_for_a_brief_hold_of_its_volume(tmp_path):
    library = backed_up(tmp_path)
    killed = optvol_cli(library, "cvtoptbku", "BVOL1", "BVOL1", killed=True)
    assert killed.returncode == -9 and (library / ".journal.json").exists()
    fd, _ = open_lock(library / "BVOL1.optvol", exclusive=False, volume="BVOL1")  # an opener's moment
    releaser = threading.Timer(0.6, lambda: os.close(fd))
    releaser.start()
    try:
        started = time.monotonic()
        listed = optvol_cli(library, "ls", "/QOPT/PVOL1/")
    finally:
        releaser.join()
    assert listed.returncode == 0 and listed.stdout.split() == ["a"], listed.stderr
    assert time.monotonic() - started < 10 and not (library / ".journal.json").exists()
    shown = optvol_cli(library, "--json", "dspopt", "BVOL1")
    assert shown.returncode == 0 and "*PRIMARY" in shown.stdout


def test_a_library_opened_while_another_thread_briefly_holds_a_volume_its_journal_renames(tmp_path):
    """hunt29k F2: a thread's open_library() rolling forward a journal while another thread of the
    same program held the volume for the moment its open takes to see the journal failed at once
    with OPV0020 "Volume PVOL1 is open in this program: close it": only OPV0004 was waited for."""
    library = tmp_path / "lib"
    assert optvol_cli(library, "inzopt", "PVOL1").returncode == 0
    killed = optvol_cli(library, "inzopt", "PVOL1", "--check", "*NO", killed=True)
    assert killed.returncode == -9 and (library / ".journal.json").exists()
    fd, _ = open_lock(library / "PVOL1.optvol", exclusive=False, volume="PVOL1")  # another thread's moment
    releaser = threading.Timer(0.6, lambda: os.close(fd))
    releaser.start()
    try:
        program = optvol.open_library(library)
    finally:
        releaser.join()
    assert not (library / ".journal.json").exists()
    with program.open("PVOL1") as volume:
        assert volume.listdir("/") == []


def test_a_thread_sharing_the_library_object_waits_for_another_threads_rename(tmp_path, monkeypatch):
    """rev29j F2: thread B opened PVOL2 while thread A, through the same Library object, was
    renaming PVOL1 to it (journal on disk): B was taken for the lock's holder (the count of locked
    sections was the object's, not the thread's), did not wait, and got OPV0002 "not found"."""
    library = tmp_path / "lib"
    assert optvol_cli(library, "inzopt", "PVOL1").returncode == 0
    program = optvol.open_library(library)
    with program.open("PVOL1") as volume:
        volume.write_bytes("/kept", b"kept")
    inside, real_rename = threading.Event(), os.rename

    def slow_rename(source, target, *args, **kwargs):
        if str(source).endswith("PVOL1.optvol"):
            inside.set()
            time.sleep(0.5)
        return real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "rename", slow_rename)
    renamer = threading.Thread(target=program.rename, args=("PVOL1", "PVOL2"))
    renamer.start()
    try:
        assert inside.wait(10) and (library / ".journal.json").exists()
        with program.open("PVOL2") as volume:
            assert volume.read_bytes("/kept") == b"kept"
    finally:
        renamer.join()
    assert not (library / ".journal.json").exists() and not (library / "PVOL1.optvol").exists()
