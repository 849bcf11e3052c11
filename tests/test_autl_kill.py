"""The authorization-list table moves with the volume, wholly or not at all (hunt25c F2).

Each command runs in a child process that SIGKILLs itself before its Nth call of
``os.rename``, ``os.replace``, ``os.unlink`` or ``os.fsync`` (a real kill -9 at a chosen
point), for every N the command reaches. The next user of the library must then find
the state before the command or the state after it, the authorization lists included,
and a new volume that takes a gone volume's ID must not inherit its list.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest

from conftest import FakeClock, make_volume
from optvol.library import Library
from optvol.model import VolumeType

CHILD = r"""
import os, runpy, signal, sys
limit, calls = int(sys.argv[1]), [0]
def hooked(real):
    def call(*args, **kwargs):
        calls[0] += 1
        if calls[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call
for name in ("rename", "replace", "unlink", "fsync", "fdatasync"):
    setattr(os, name, hooked(getattr(os, name)))
try:
    if sys.argv[2] == "discard":
        from datetime import datetime, timezone
        from optvol.library import Library
        Library(sys.argv[3], clock=lambda: datetime.now(timezone.utc)).discard(sys.argv[4])
    else:
        sys.argv = ["optvol", "--library", *sys.argv[3:]]
        runpy.run_module("optvol", run_name="__main__")
finally:
    sys.stderr.write(f"\ncalls {calls[0]}\n")
"""


def _run(root, limit: int, command: list[str]) -> subprocess.CompletedProcess:
    mode = "discard" if command[0] == "discard" else "cli"
    argv = [str(root), *(command[1:] if mode == "discard" else command)]
    return subprocess.run([sys.executable, "-c", CHILD, str(limit), mode, *argv],
                          capture_output=True, text=True, timeout=120)


def _state(root) -> tuple:
    library = Library(root, clock=FakeClock())  # rolls a journal left behind forward
    labels = {}
    for volume_id in library.volume_ids():
        with library.open(volume_id) as volume:
            label = volume.label()
            labels[volume_id] = (label["type"], label["threshold"], label["text"])
    return labels, library.autl_table()


def _template(tmp_path):
    root = tmp_path / "template"
    library = Library(root, clock=FakeClock())
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    library.set_autl("PVOL1", "MYAUTL")
    library.set_autl("BVOL1", "BKAUTL")
    return root


COMMANDS = {
    "inzopt-rename": ["inzopt", "PVOL1", "PVOL2", "--check", "*NO"],
    "cvtoptbku": ["cvtoptbku", "BVOL1", "PNEW"],
    "chgoptvol": ["cl", "CHGOPTVOL VOL(PVOL1) THRESHOLD(80) TEXT('changed') AUTL(OTHER)"],
    "discard": ["discard", "PVOL1"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_kill_at_any_point_leaves_the_lists_before_or_after(tmp_path, name):
    command = COMMANDS[name]
    template = _template(tmp_path)
    before = _state(template)
    whole = tmp_path / "whole"
    shutil.copytree(template, whole)
    done = _run(whole, 0, command)
    assert done.returncode == 0, done.stderr
    calls = int(done.stderr.rsplit("calls ", 1)[1])
    after = _state(whole)
    assert after != before
    gone = {"inzopt-rename": "PVOL1", "cvtoptbku": "BVOL1", "discard": "PVOL1"}.get(name)
    for limit in range(1, calls + 1):
        root = tmp_path / f"kill-{limit}"
        shutil.copytree(template, root)
        killed = _run(root, limit, command)
        assert killed.returncode == -signal.SIGKILL, (limit, killed.stderr)
        state = _state(root)
        assert state in (before, after), f"killed before call {limit} of {calls}: {state}"
        if gone is not None:  # a new volume that takes the ID of one gone inherits nothing
            library = Library(root, clock=FakeClock())
            if not library.exists(gone):
                make_volume(library, gone)
                assert library.autl(gone) is None, f"killed before call {limit}"
        shutil.rmtree(root)


def test_a_new_volume_takes_no_list_left_behind(tmp_path):
    """An entry a volume gone by the host's tools (or an older optvol) left in autl.json is
    not inherited by a new volume of that ID, whichever command makes it."""
    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "PVOL1")
    library.set_autl("PVOL1", "MYAUTL")
    shutil.rmtree(library.root / "PVOL1.optvol")
    make_volume(library, "PVOL1")
    assert library.autl("PVOL1") is None and library.autl_table() == {}


def test_chgoptvol_refused_changes_no_list(library):
    """CHGOPTVOL THRESHOLD on a *BACKUP is refused (OPV0102): its AUTL is not set either,
    and no journal stays behind."""
    from optvol import errors
    from optvol.change_volume import chgoptvol

    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with pytest.raises(errors.OptvolError) as caught:
        chgoptvol(library, vol="BVOL1", threshold=80, autl="OTHER")
    assert caught.value.message_id == "OPV0102"
    assert library.autl("BVOL1") is None and not (library.root / ".journal.json").exists()
    chgoptvol(library, vol="BVOL1", text="kept", autl="OTHER")
    assert library.autl("BVOL1") == "OTHER" and not (library.root / ".journal.json").exists()


def test_chgoptvol_label_refused_after_the_journal_sets_no_list(library, monkeypatch):
    """The label's commit fails after the journal was written: the journal is dropped, the
    list stays as it was."""
    from optvol import errors
    from optvol.change_volume import chgoptvol
    from optvol.volume import Volume

    make_volume(library, "PVOL1")
    library.set_autl("PVOL1", "MYAUTL")

    def refused(self, **_):
        raise errors.error("OPV0203", volume="PVOL1", reason="full")

    monkeypatch.setattr(Volume, "change_label", refused)
    with pytest.raises(errors.OptvolError):
        chgoptvol(library, vol="PVOL1", threshold=80, autl="OTHER")
    assert library.autl("PVOL1") == "MYAUTL" and not (library.root / ".journal.json").exists()


@pytest.mark.parametrize("command", [["inzopt", "NEWV"], ["inzopt", "PVOL1", "PVOL2", "--check", "*NO"],
                                     ["cl", "CHGOPTVOL VOL(PVOL1) TEXT('x') AUTL(OTHER)"], ["wrkoptvol"]])
def test_a_damaged_list_table_is_reported_and_changes_nothing(tmp_path, command):
    """A damaged autl.json: OPV0006 naming it, not a traceback, before anything is done (no
    journal left for every later command to trip over)."""
    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "PVOL1")
    (library.root / "autl.json").write_text('{"PVOL1": "X",')
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library.root), *command],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "OPV0006" in done.stdout + done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "autl.json is damaged" in done.stdout + done.stderr
    assert not (library.root / ".journal.json").exists() and library.volume_ids() == ["PVOL1"]
    with library.open("PVOL1") as volume:
        assert volume.label()["text"] == ""
