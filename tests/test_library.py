"""The library: location, creation, unique volume IDs, journal, locks, concurrency (DESIGN §1-§4)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import proc_workers
from conftest import FakeClock, make_volume
from optvol import errors
from optvol.image.image import VolumeImage
from optvol.initialize import inzopt
from optvol.library import JOURNAL, MARKER, TMP, Library, resolve_root

# ----------------------------------------------------------------------------- location


def test_resolve_root_explicit_wins(tmp_path):
    env = {"OPTVOL_LIBRARY": str(tmp_path / "env"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert resolve_root(str(tmp_path / "explicit"), env, tmp_path / "home") == tmp_path / "explicit"


def test_resolve_root_environment_next(tmp_path):
    env = {"OPTVOL_LIBRARY": str(tmp_path / "env"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert resolve_root(None, env, tmp_path / "home") == tmp_path / "env"
    with pytest.raises(errors.InvalidError, match="OPV0006"):  # an empty --library is no library (hunt-cl F4)
        resolve_root("", env, tmp_path / "home")


def test_resolve_root_xdg_then_home(tmp_path):
    assert resolve_root(None, {"XDG_DATA_HOME": str(tmp_path / "xdg")}, tmp_path / "home") == tmp_path / "xdg" / "optvol"
    assert resolve_root(None, {}, tmp_path / "home") == tmp_path / "home" / ".local" / "share" / "optvol"
    assert resolve_root(None, {"OPTVOL_LIBRARY": ""}, tmp_path / "home") == tmp_path / "home" / ".local" / "share" / "optvol"


def test_resolve_root_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_root("rel/lib", {}, tmp_path) == tmp_path / "rel" / "lib"
    assert resolve_root(None, {"OPTVOL_LIBRARY": "envlib"}, tmp_path) == tmp_path / "envlib"


# ----------------------------------------------------------------------------- creation


def test_library_created_on_first_use(tmp_path):
    root = tmp_path / "deep" / "lib"
    first = Library(root, clock=FakeClock())
    assert first.created is True
    assert (root / MARKER).is_file()
    second = Library(root, clock=FakeClock())
    assert second.created is False


def test_empty_directory_becomes_a_library(tmp_path):
    (tmp_path / "empty").mkdir()
    assert Library(tmp_path / "empty", clock=FakeClock()).created is True


def test_non_empty_directory_refused(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "thesis.txt").write_text("mine")
    with pytest.raises(errors.InvalidError) as info:
        Library(root, clock=FakeClock())
    assert info.value.message_id == "OPV0006"
    assert info.value.exit_code == 2
    assert sorted(p.name for p in root.iterdir()) == ["thesis.txt"]


def test_a_library_name_too_long_for_the_host_is_refused(tmp_path):
    with pytest.raises(errors.InvalidError) as info:
        Library(tmp_path / ("x" * 300), clock=FakeClock())  # one name over the host's 255 bytes
    assert info.value.message_id == "OPV0006" and "File name too long" in info.value.text


def test_a_file_system_without_locks_is_said_so(tmp_path, monkeypatch):
    """flock fails with ENOLCK on some network file systems: OPV0006, not a traceback, for
    a volume's open lock and for the library's lock alike."""
    import errno
    import fcntl

    from conftest import make_volume

    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "PVOL1")

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(errors.InvalidError) as opened:
        library.open("PVOL1")
    with pytest.raises(errors.InvalidError) as locked:
        with library.locked():
            pass
    for caught in (opened, locked):
        assert caught.value.message_id == "OPV0006" and "No locks available" in caught.value.text


@pytest.mark.parametrize("step", ["journal", "autl"])
def test_a_full_disk_at_the_library_s_own_files_changes_nothing(tmp_path, monkeypatch, step):
    """The journal of INZOPT, or the authorization-list table, cannot be written (ENOSPC at
    its rename): OPV0203 naming the volume, not a traceback, and nothing changed."""
    import errno

    from conftest import make_volume

    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "PVOL1")
    real_replace = os.replace

    def full(source, target):
        if os.path.basename(source).startswith(f"{step}-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(errors.VolumeFullError) as caught:
        if step == "journal":
            make_volume(library, "PVOL2")
        else:
            library.set_autl("PVOL1", "QRCLAUTL")
    assert caught.value.message_id == "OPV0203" and "PVOL" in caught.value.text
    monkeypatch.setattr(os, "replace", real_replace)
    assert library.volume_ids() == ["PVOL1"] and library.autl("PVOL1") is None
    assert [p.name for p in (library.root / ".tmp").iterdir()] == []


def test_a_full_disk_after_chgoptvol_changed_the_label_says_so(tmp_path, monkeypatch):
    """CHGOPTVOL TEXT with AUTL whose label committed but whose list the full disk kept from
    being written: OPV0209 (exit 6) says the label changed and the next command sets the
    list; OPV0203 said "nothing was changed" (hunt28a F7). The next command sets it."""
    import errno

    from conftest import make_volume
    from optvol.change_volume import chgoptvol

    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "PVOL1")
    real_replace = os.replace

    def full(source, target):
        if os.path.basename(source).startswith("autl-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(errors.VolumeFullError) as caught:
        chgoptvol(library, vol="PVOL1", text="new text", autl="QRCLAUTL")
    assert caught.value.message_id == "OPV0209" and caught.value.exit_code == 6
    assert "nothing was changed" not in caught.value.text and "label changed" in caught.value.text
    monkeypatch.setattr(os, "replace", real_replace)
    again = Library(tmp_path / "lib", clock=FakeClock())
    with again.open("PVOL1") as volume:
        assert volume.info().text == "new text"
    assert again.autl("PVOL1") == "QRCLAUTL"


def test_a_label_change_that_committed_before_its_error_says_so(tmp_path):
    """A CHGOPTVOL TEXT with AUTL whose label commit took effect though it raised a full
    disk's error (a log SQLite wrote whole, then failed to index): the list follows, and the
    error says the label changed after all, not "nothing was changed"."""
    import errno

    from conftest import make_volume

    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "PVOL1")

    def change():
        with library.open("PVOL1") as volume:
            volume.change_label(text="new text")
        raise errors.host_write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "PVOL1")

    def label():
        with library.open("PVOL1") as volume:
            return volume.image.label()

    with library.locked(), pytest.raises(errors.VolumeFullError) as caught:
        library.set_autl_with_label("PVOL1", "QRCLAUTL", fields={"text": "new text"}, change=change, label=label)
    assert caught.value.message_id == "OPV0209" and "nothing was changed" not in caught.value.text
    assert library.autl("PVOL1") == "QRCLAUTL"


def test_a_file_is_not_a_library(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.InvalidError) as info:
        Library(tmp_path / "file", clock=FakeClock())
    assert info.value.message_id == "OPV0006"


# ----------------------------------------------------------------------------- volume IDs


def test_volume_ids_are_folded_to_upper_case(library):
    result = make_volume(library, "pvol1")
    assert result.volume.volume == "PVOL1"
    assert library.volume_ids() == ["PVOL1"]
    assert library.exists("pVoL1")
    with library.open("pvol1") as volume:
        assert volume.id == "PVOL1"


def test_same_id_in_other_case_reinitializes_the_same_volume(library):
    assert make_volume(library, "pvol1").created is True
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
    again = make_volume(library, "PVOL1")
    assert again.created is False
    assert library.volume_ids() == ["PVOL1"]
    assert [p.name for p in library.root.iterdir() if p.name.endswith(".optvol")] == ["PVOL1.optvol"]
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "A" * 33, "/etc", "..", ".X", "-X", "A B", "A\x00B", "X\\Y", "É1"])
def test_bad_volume_ids_refused_and_nothing_created(tmp_path, library, bad):
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(errors.InvalidError) as info:
        inzopt(library, vol=bad, now=library._clock())
    assert info.value.exit_code == 2
    assert info.value.message_id == "OPV0001"
    for call in (library.open, library.exists):
        with pytest.raises(errors.InvalidError):
            call(bad)
    if bad:  # NEWVOL("") is NEWVOL(*VOL)
        with pytest.raises(errors.InvalidError):
            inzopt(library, vol="GOOD", newvol=bad, now=library._clock())
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_longest_volume_id_accepted(library):
    make_volume(library, "a" * 32)
    assert library.volume_ids() == ["A" * 32]


def test_open_missing_volume(library):
    with pytest.raises(errors.NotFoundError) as info:
        library.open("NOPE")
    assert info.value.message_id == "OPV0002"
    assert info.value.exit_code == 3


# ----------------------------------------------------------------------------- journal


def _write_journal(library, journal):
    library._write_journal(journal, volume="PVOL1")  # the same writer the library uses before acting
    assert (library.root / JOURNAL).exists()


def test_relabel_rename_rolled_forward_after_crash_before_acting(tmp_path, library):
    make_volume(library, "OLD")
    with library.open("OLD") as volume:
        volume.write_bytes("/KEEP", b"kept")
    # The crash: relabel wrote its journal, then died before touching label or directory.
    _write_journal(library, {
        "relabel": {"dir": "OLD.optvol", "after": "NEW.optvol", "fields": {"volume": "NEW", "text": "renamed"}},
        "renames": [["OLD.optvol", "NEW.optvol"]],
    })
    reopened = Library(library.root, clock=FakeClock())
    assert not (library.root / JOURNAL).exists()
    assert reopened.volume_ids() == ["NEW"]
    with reopened.open("NEW") as volume:
        assert volume.label()["volume"] == "NEW"
        assert volume.label()["text"] == "renamed"
        assert volume.read_bytes("/KEEP") == b"kept"


def test_relabel_rolled_forward_after_crash_between_label_and_rename(library):
    make_volume(library, "OLD")
    with VolumeImage(library.root / "OLD.optvol", exclusive=True) as image:
        with image.transaction() as tx:
            tx.write_label({**image.label(), "volume": "NEW"})  # label done, rename not done
    _write_journal(library, {
        "relabel": {"dir": "OLD.optvol", "after": "NEW.optvol", "fields": {"volume": "NEW"}, "before": {"volume": "OLD"}},
        "renames": [["OLD.optvol", "NEW.optvol"]],
    })
    reopened = Library(library.root, clock=FakeClock())
    assert reopened.volume_ids() == ["NEW"]
    with reopened.open("NEW") as volume:
        assert volume.id == "NEW"


def test_relabel_rolled_forward_after_crash_after_rename(library):
    make_volume(library, "OLD")
    with VolumeImage(library.root / "OLD.optvol", exclusive=True) as image:
        with image.transaction() as tx:
            tx.write_label({**image.label(), "volume": "NEW"})
    os.rename(library.root / "OLD.optvol", library.root / "NEW.optvol")  # only the journal unlink is missing
    _write_journal(library, {
        "relabel": {"dir": "OLD.optvol", "after": "NEW.optvol", "fields": {"volume": "NEW"}, "before": {"volume": "OLD"}},
        "renames": [["OLD.optvol", "NEW.optvol"]],
    })
    reopened = Library(library.root, clock=FakeClock())
    assert not (library.root / JOURNAL).exists()
    assert reopened.volume_ids() == ["NEW"]


def _staged_install(library, vol, label_from):
    """Build a new image aside as install does; return its staging name."""
    staging = f"new-{uuid.uuid4().hex}"
    VolumeImage.create(library.root / TMP / staging, label={**label_from, "text": "new image"})
    return staging


def test_install_rolled_forward_after_crash_half_way(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/OLDFILE", b"old")
        label = volume.label()
    staging = _staged_install(library, "PVOL1", label)
    old_aside = f"{TMP}/old-{uuid.uuid4().hex}"
    _write_journal(library, {"renames": [["PVOL1.optvol", old_aside], [f"{TMP}/{staging}", "PVOL1.optvol"]]})
    os.rename(library.root / "PVOL1.optvol", library.root / old_aside)  # first rename done, then the crash
    assert library.volume_ids() == []
    reopened = Library(library.root, clock=FakeClock())
    assert not (library.root / JOURNAL).exists()
    assert reopened.volume_ids() == ["PVOL1"]
    with reopened.open("PVOL1") as volume:
        assert volume.label()["text"] == "new image"
        assert volume.listdir("/") == []
    assert list((library.root / TMP).iterdir()) == []  # the old image and leftovers are gone


def test_install_journal_before_any_rename(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        label = volume.label()
    staging = _staged_install(library, "PVOL1", label)
    _write_journal(library, {"renames": [["PVOL1.optvol", f"{TMP}/old-x"], [f"{TMP}/{staging}", "PVOL1.optvol"]]})
    reopened = Library(library.root, clock=FakeClock())
    with reopened.open("PVOL1") as volume:
        assert volume.label()["text"] == "new image"


def test_staged_image_without_journal_is_discarded(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/F", b"old")
        label = volume.label()
    _staged_install(library, "PVOL1", label)  # crash before the journal: the old volume stays
    reopened = Library(library.root, clock=FakeClock())
    with reopened.locked():
        pass
    assert list((library.root / TMP).iterdir()) == []
    with reopened.open("PVOL1") as volume:
        assert volume.read_bytes("/F") == b"old"


def test_journal_file_is_what_relabel_writes(library, monkeypatch):
    """The hand-written journals above have the shape the library itself writes."""
    make_volume(library, "OLD")
    seen = []
    original = library._write_journal

    def spy(journal, **keywords):
        seen.append(json.loads(json.dumps(journal)))
        original(journal, **keywords)

    monkeypatch.setattr(library, "_write_journal", spy)
    with library.locked():
        library.relabel("OLD", fields={"volume": "NEW"})
    assert seen == [{
        "relabel": {"dir": "OLD.optvol", "after": "NEW.optvol", "fields": {"volume": "NEW"}, "before": {"volume": "OLD"}},
        "renames": [["OLD.optvol", "NEW.optvol"]],
        "autl": {"OLD": None, "NEW": None},  # the list goes with the ID (none here)
    }]
    assert library.volume_ids() == ["NEW"]


# ----------------------------------------------------------------------------- locks


def test_exclusive_open_refused_while_open(library, primary):
    with pytest.raises(errors.LockedError) as info:
        library.open("PVOL1", exclusive=True)
    assert info.value.exit_code == 8
    assert info.value.message_id == "OPV0020"  # this program's own open: not "another process" (hunt29c F3)
    primary.close()
    with library.open("PVOL1", exclusive=True) as volume:
        with pytest.raises(errors.LockedError):
            library.open("PVOL1")
        assert volume.id == "PVOL1"


def test_what_needs_a_volume_alone_names_the_program_s_own_open_or_another_process_s(library, tmp_path):
    """INZOPT of a volume this program keeps open said "in use by another process" (hunt29c
    F3): it is OPV0020 now; another process's open is OPV0004 as before, and once the
    program's open is closed the volume is this program's alone again."""
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    volume.write_bytes("/F", b"data")
    with volume.open("/F", "rb"), pytest.raises(errors.LockedError) as info:
        make_volume(library, "PVOL1", check=False)
    assert info.value.message_id == "OPV0020"
    volume.close()
    other = subprocess.Popen([sys.executable, "-c", (
        "import time, optvol\n"
        f"v = optvol.open_library({str(library.root)!r}).open('PVOL1'); print('open', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert other.stdout.readline().strip() == "open"
        with pytest.raises(errors.LockedError) as info:
            make_volume(library, "PVOL1", check=False)
        assert info.value.message_id == "OPV0004"
    finally:
        other.kill()
        other.wait()
    make_volume(library, "PVOL1", check=False)
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == []


def test_reinitialize_refused_while_open(library, primary):
    primary.write_bytes("/F", b"data")
    with pytest.raises(errors.LockedError) as info:
        make_volume(library, "PVOL1", check=False)
    assert info.value.exit_code == 8
    assert primary.read_bytes("/F") == b"data"
    assert not (library.root / JOURNAL).exists()


def test_a_volume_being_replaced_stays_locked_until_it_is_swapped_out(library, clock):
    """DUPOPT CLEAR(*YES) (and INZOPT of an existing ID) builds the new image aside, then
    swaps it in: a process that opened the old volume meanwhile would write into an image
    about to vanish. It is refused (exit 8) until the swap is done. (flock locks are per
    open file: a second Library in this process stands for another process.)"""
    from optvol.duplicate import dupopt

    make_volume(library, "SRC")
    make_volume(library, "TGT")
    with library.open("SRC") as src, library.open("TGT") as tgt:
        src.write_bytes("/src", b"s")
        tgt.write_bytes("/old", b"o")
    tries = []

    def during_the_build(files, size):
        with pytest.raises(errors.LockedError) as refused:
            Library(library.root, clock=clock).open("TGT")
        tries.append(refused.value.message_id)

    dupopt(library, fromvol="SRC", tovol="TGT", now=clock(), clear=True, totals=during_the_build)
    assert tries == ["OPV0004"]
    with library.open("TGT") as tgt:
        assert tgt.listdir("/") == ["src"]
    assert not (library.root / JOURNAL).exists()


def test_a_volume_being_relabelled_cannot_be_opened_between_its_journal_and_its_rename(library, clock, monkeypatch):
    """CVTOPTBKU renames through a journal; an open in between used to make the roll-forward
    fail after the journal was written: exit 8 reported, the rename done later anyway."""
    make_volume(library, "OLD")
    original, tries = library._write_journal, []
    other = Library(library.root, clock=clock)  # made before the journal: it does not wait on it

    def write_journal(journal, **keywords):
        original(journal, **keywords)
        with pytest.raises(errors.LockedError) as refused:
            other.open("OLD")
        tries.append(refused.value.message_id)

    monkeypatch.setattr(library, "_write_journal", write_journal)
    with library.locked():
        library.relabel("OLD", fields={"volume": "NEW"})
    assert tries == ["OPV0004"] and library.volume_ids() == ["NEW"]
    assert not (library.root / JOURNAL).exists()


@pytest.mark.parametrize("command", ["inzopt", "dupopt"])
def test_a_volume_is_held_from_the_check_of_its_rules_to_its_replacement(library, clock, monkeypatch, command):
    """INZOPT and DUPOPT check the old volume's rules (a WORM volume holding data, CLEAR)
    first: a process that opened it after the check could write into it and be erased."""
    from optvol import duplicate, initialize
    from optvol.model import MediaType

    make_volume(library, "SRC", medtype=MediaType.WORM)
    make_volume(library, "TGT", medtype=MediaType.WORM)
    other, tries = Library(library.root, clock=clock), []

    def checked(module, name):
        real = getattr(module, name)

        def check(*args, **keywords):
            found = real(*args, **keywords)
            with pytest.raises(errors.LockedError) as refused:
                other.open("TGT")  # too late to write: the check has passed
            tries.append(refused.value.message_id)
            return found
        monkeypatch.setattr(module, name, check)

    if command == "inzopt":
        checked(initialize, "_check_reinitialize")
        initialize.inzopt(library, vol="TGT", now=clock(), check=False)
    else:
        checked(duplicate, "_target_media")
        duplicate.dupopt(library, fromvol="SRC", tovol="TGT", now=clock(), clear=True)
    assert tries == ["OPV0004"]
    with other.open("TGT") as target:  # and free again afterwards
        assert target.listdir("/") == []


def test_remove_volume(library):
    make_volume(library, "GONE")
    library.set_autl("GONE", "MYLIST")
    with library.locked():
        library.remove("GONE")
    assert library.volume_ids() == []
    assert library.autl("GONE") is None
    with pytest.raises(errors.NotFoundError):
        library.open("GONE")


# ----------------------------------------------------------------------------- concurrency


def test_four_processes_create_volumes_at_once(tmp_path):
    root = str(tmp_path / "lib")
    Library(root, clock=FakeClock())
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            jobs = [pool.apply_async(
                proc_workers.inzopt_many, (root, [f"D{i}", "same", f"E{i}"], start)
            ) for i in range(4)]
            outcomes = [job.get(timeout=60) for job in jobs]
    same = [result for outcome in outcomes for vol, result in outcome if vol == "same"]
    assert same.count("created") == 1, outcomes
    for result in same:
        assert result in ("created", "reinitialized", "OPV0004"), outcomes
    for i, outcome in enumerate(outcomes):
        assert (f"D{i}", "created") in outcome
        assert (f"E{i}", "created") in outcome
    library = Library(root, clock=FakeClock())
    expected = sorted([f"D{i}" for i in range(4)] + [f"E{i}" for i in range(4)] + ["SAME"])
    assert library.volume_ids() == expected
    assert sorted(p.name for p in Path(root).iterdir() if p.name.endswith(".optvol")) == [v + ".optvol" for v in expected]
    for vol in expected:
        with library.open(vol) as volume:
            assert volume.id == vol
    assert list((Path(root) / TMP).iterdir()) == []
    assert not (Path(root) / JOURNAL).exists()


@pytest.mark.parametrize("refusal", [errno.EXDEV, errno.EBUSY])
@pytest.mark.parametrize("operation", ["relabel", "replace"])
def test_a_rename_the_host_refuses_for_good_is_undone_not_left_in_the_journal(library, monkeypatch, refusal,
                                                                             operation):
    """A hunt of session 19: a library in a lower overlayfs layer (EXDEV) or a volume directory
    that is a mount point (EBUSY) refused the journal's rename for ever, and every later
    command, reading ones too, failed with OPV0006; CVTOPTBKU had already written the new
    label. Such a rename is undone: the label and the directories as they were, no journal,
    the library usable."""
    from optvol import library as library_mod

    make_volume(library, "OLD")
    with library.open("OLD") as volume:
        volume.write_bytes("/kept", b"kept")
        new_label = {**volume.label(), "volume": "NEW"}
    real = os.rename

    def refused(source, target, *args, **kwargs):
        if str(target).endswith("NEW.optvol"):
            raise OSError(refusal, os.strerror(refusal))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(library_mod.os, "rename", refused)
    with pytest.raises(errors.InvalidError) as undone:
        with library.locked():
            if operation == "relabel":
                library.relabel("OLD", fields={"volume": "NEW"})
            else:
                library.install("NEW", replace=True, previous="OLD", label=new_label)
    assert undone.value.message_id == "OPV0006" and "nothing changed" in undone.value.text
    monkeypatch.setattr(library_mod.os, "rename", real)
    assert not (library.root / JOURNAL).exists() and list((library.root / TMP).iterdir()) == []
    assert Library(library.root, clock=library.clock).volume_ids() == ["OLD"]
    with library.open("OLD") as volume:
        assert volume.label()["volume"] == "OLD" and volume.read_bytes("/kept") == b"kept"


def test_a_refused_rename_of_an_older_optvols_journal_is_undone_too(library, monkeypatch):
    """Review 4 of session 19: a journal written by an optvol before its relabel kept
    "before" could not be undone, and left every command failing as before. A rename's
    "before" is the ID of its directory, a CVTOPTBKU's (the one relabel that changes the
    type) a backup's type."""
    from optvol import library as library_mod
    from optvol.model import VolumeType

    make_volume(library, "OLD", type=VolumeType.BACKUP)
    real_write, real_rename = library._write_journal, os.rename

    def as_an_older_optvol(journal, **keywords):
        journal["relabel"].pop("before")
        real_write(journal, **keywords)

    def refused(source, target, *args, **kwargs):
        if str(target).endswith("NEW.optvol"):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(library, "_write_journal", as_an_older_optvol)
    monkeypatch.setattr(library_mod.os, "rename", refused)
    with pytest.raises(errors.InvalidError, match="nothing changed"):
        with library.locked():
            library.relabel("OLD", fields={"volume": "NEW", "type": str(VolumeType.PRIMARY)})
    monkeypatch.setattr(library_mod.os, "rename", real_rename)
    assert not (library.root / JOURNAL).exists()
    with library.open("OLD") as volume:
        assert (volume.label()["volume"], volume.label()["type"]) == ("OLD", VolumeType.BACKUP)


def test_opv0020_for_an_exclusive_open_of_this_program_not_for_a_parent_s(library):
    """rev29g F4: a Volume this program opened exclusively gave OPV0004 "another process"; a
    child forked from a program that has the volume open said OPV0020 of the parent's open."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1", exclusive=True), pytest.raises(errors.LockedError) as info:
        make_volume(library, "PVOL1", check=False)
    assert info.value.message_id == "OPV0020"
    with library.open("PVOL1"):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its parent holds the volume
            try:
                make_volume(library, "PVOL1", check=False)
                said = b"none"
            except errors.OptvolError as exc:
                said = exc.message_id.encode()
            os.write(write, said)
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        assert os.read(read, 16) == b"OPV0004"
        os.close(read)


def test_a_library_without_its_empty_tmp_directory_still_changes_its_volumes(tmp_path):
    """hunt30h F4: a library copied by a tool that drops empty directories has no .tmp/:
    CVTOPTBKU failed OPV0204 "No such file or directory" (exit 7, the damage code), as did the
    other operations whose journal or authorization list is written there first."""
    from optvol.conversion import cvtoptbku
    from optvol.model import VolumeType

    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    make_volume(library, "PVOL1")
    for change in (lambda: cvtoptbku(library, bkuvol="BVOL1", privol="NEWP"),
                   lambda: library.set_autl("PVOL1", "MYAUTL"), lambda: library.rename("PVOL1", "PVOL2"),
                   lambda: library.discard("PVOL2")):
        (tmp_path / "lib" / TMP).rmdir()
        change()
    assert [p.name for p in (tmp_path / "lib").glob("*.optvol")] == ["NEWP.optvol"]
    assert list((tmp_path / "lib" / TMP).iterdir()) == []


def test_a_tmp_that_is_a_link_or_a_file_is_refused_and_nothing_outside_is_touched(tmp_path):
    """rev30i F1, F2: a .tmp/ that is a symbolic link to a directory outside the library was
    emptied by the next INZOPT (``_clean_tmp`` followed the link), and its journal written
    there; one that is a file made CHGOPTVOL AUTL and CVTOPTBKU a traceback (exit 70)."""
    from optvol.conversion import cvtoptbku
    from optvol.model import VolumeType

    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    make_volume(library, "PVOL1")
    outside = tmp_path / "precious"
    (outside / "sub").mkdir(parents=True)
    (outside / "keep.txt").write_text("keep")
    tmp = tmp_path / "lib" / TMP
    for replace in (lambda: tmp.symlink_to(outside), lambda: tmp.write_text("x")):
        for change in (lambda: inzopt(library, vol="PVOL3", now=library._clock()), lambda: library.set_autl("PVOL1", "MYAUTL"),
                       lambda: cvtoptbku(library, bkuvol="BVOL1", privol="NEWP"), lambda: library.discard("PVOL1")):
            tmp.unlink() if tmp.is_symlink() or tmp.is_file() else tmp.rmdir()
            replace()
            with pytest.raises(errors.OptvolError) as refused:
                change()
            assert refused.value.message_id == "OPV0006"
            assert sorted(p.name for p in outside.iterdir()) == ["keep.txt", "sub"]
    assert sorted(p.name for p in (tmp_path / "lib").glob("*.optvol")) == ["BVOL1.optvol", "PVOL1.optvol"]
    assert library.autl("PVOL1") is None


@pytest.mark.parametrize("tmp_state", ["link", "missing"])
def test_a_journal_completed_through_a_tmp_that_is_a_link_or_missing(tmp_path, tmp_state):
    """rev30k F1: a remove's journal left by a crash renames the volume into .tmp/old-*: through a
    .tmp that was a link the roll-forward moved the volume out of the library into the link's
    target; without .tmp every command was OPV0006 for good (No such file or directory)."""
    library = Library(tmp_path / "lib", clock=FakeClock())
    make_volume(library, "PVOL1")
    make_volume(library, "PVOL2")
    library._write_journal({"renames": [["PVOL1.optvol", f"{TMP}/old-{uuid.uuid4().hex}"]],
                            "autl": {"PVOL1": None}}, volume="PVOL1")
    tmp = tmp_path / "lib" / TMP
    tmp.rmdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    if tmp_state == "link":
        tmp.symlink_to(outside)
        with pytest.raises(errors.OptvolError) as refused:
            make_volume(library, "PVOL3")
        assert refused.value.message_id == "OPV0006"
        assert list(outside.iterdir()) == []
        assert (tmp_path / "lib" / "PVOL1.optvol").is_dir() and (tmp_path / "lib" / JOURNAL).exists()
    else:
        make_volume(library, "PVOL3")
        assert library.volume_ids() == ["PVOL2", "PVOL3"]
        assert tmp.is_dir() and list(tmp.iterdir()) == []
