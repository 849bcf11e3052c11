"""Volumes copied, renamed or linked by the host's tools (hunt-portable F1, F5, F9).

A volume directory copied under another name held the other volume's label and was
written and backed up as it; a copy made by hard links shared the files optvol writes in
place, so the "snapshot" changed with the library; a directory renamed to lower case
vanished from every listing. Real ``cp``, ``mv`` and ``rsync`` make the copies; the
commands run in subprocesses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from cli_helpers import clean_env, run, snapshot
from optvol import errors
from optvol.library import Library

pytestmark = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is installed by test.sh")


@pytest.fixture
def env(tmp_path):
    return clean_env(tmp_path)


@pytest.fixture
def lib(tmp_path, env):
    """A library with PVOL1 (two files) backed up onto BVOL1."""
    library = tmp_path / "lib"
    (tmp_path / "one").write_bytes(b"one")
    (tmp_path / "two").write_bytes(b"two" * 1000)
    for args in (["inzopt", "PVOL1"], ["inzopt", "BVOL1", "--type", "backup"], ["mkdir", "/QOPT/PVOL1/D"],
                 ["cp", tmp_path / "one", "/QOPT/PVOL1/D/one"], ["cp", tmp_path / "two", "/QOPT/PVOL1/D/two"],
                 ["cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES"]):
        done = run(*args, library=library, env=env)
        assert done.rc == 0, done.err
    return library


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _sh(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True)


def test_a_volume_directory_copied_under_another_name_is_refused_not_written_as_the_original(lib, env, tmp_path):
    _sh("cp", "-a", lib / "PVOL1.optvol", lib / "PCOPY.optvol")
    (tmp_path / "new").write_bytes(b"never PVOL1's")
    backup_before = snapshot(lib / "BVOL1.optvol")
    listed = run("wrkoptvol", library=lib, env=env, json_output=True)
    assert listed.rc == 7
    assert [v["volume"] for v in listed.json()] == ["BVOL1", "PVOL1"]  # PVOL1 once, not twice
    assert "OPV0201" in listed.err and "PCOPY.optvol holds volume PVOL1" in listed.err
    assert "dupopt PVOL1 PCOPY" in listed.err
    written = run("cp", tmp_path / "new", "/QOPT/PCOPY/D/new", library=lib, env=env)
    assert written.rc == 7 and "OPV0201" in written.err
    fed = run("cpyopt", "PCOPY", "/", "BVOL1 *BACKUP", library=lib, env=env)
    assert fed.rc == 7 and "OPV0201" in fed.err
    assert snapshot(lib / "BVOL1.optvol") == backup_before
    checked = run("chkoptvol", "*ALL", library=lib, env=env)
    assert checked.rc == 7 and "CHKOPTVOL PCOPY" in checked.text and "CHKOPTVOL PVOL1" in checked.text
    # INZOPT still replaces it (what it held is counted under the ID typed), and it is then PCOPY.
    refused = run("inzopt", "PCOPY", library=lib, env=env)
    assert refused.rc == 5 and "Volume PCOPY holds 2 file(s)" in refused.err
    done = run("inzopt", "PCOPY", "--check", "no", library=lib, env=env)
    assert done.rc == 0, done.err
    assert run("cp", tmp_path / "new", "/QOPT/PCOPY/new", library=lib, env=env).rc == 0
    assert run("cat", "/QOPT/PVOL1/D/one", library=lib, env=env).out == b"one"


def test_a_volume_directory_renamed_by_hand_is_refused_and_a_rename_gives_it_its_name(lib, env, tmp_path):
    _sh("mv", lib / "PVOL1.optvol", lib / "PVOL9.optvol")
    refused = run("ls", "/QOPT/PVOL9/D", library=lib, env=env)
    assert refused.rc == 7 and "PVOL9.optvol holds volume PVOL1" in refused.err
    assert "rename the directory back" in refused.err
    library = Library(lib, clock=_now)
    with pytest.raises(errors.DamagedError, match="OPV0201"):
        library.open("PVOL9")
    library.rename("PVOL9", "PVOL9")  # the label takes the directory's name
    with library.open("PVOL9") as volume:
        assert volume.label()["volume"] == "PVOL9" and volume.read_bytes("/D/one") == b"one"
    # The ID is in the data partition too: a rebuilt index keeps it.
    assert run("recover", "PVOL9", library=lib, env=env).rc == 0
    assert run("cat", "/QOPT/PVOL9/D/one", library=lib, env=env).out == b"one"
    # PVOL9 is a volume of its own: BVOL1 (PVOL1's backup) does not take its files.
    fed = run("cpyopt", "PVOL9", "/", "BVOL1 *BACKUP", library=lib, env=env)
    assert fed.rc != 0 and "PVOL1" in fed.err


def test_a_volume_directory_not_in_upper_case_is_reported_not_hidden(lib, env):
    _sh("mv", lib / "PVOL1.optvol", lib / "pvol1.optvol")
    listed = run("wrkoptvol", library=lib, env=env)
    assert listed.rc == 7 and "BVOL1" in listed.text
    assert "pvol1.optvol is not named by a volume ID" in listed.err and "PVOL1.optvol" in listed.err
    generic = run("dspopt", "P*", library=lib, env=env)
    assert generic.rc == 7 and "pvol1.optvol" in generic.err
    other = run("wrkoptvol", "B*", library=lib, env=env)  # a pattern it does not match: not named
    assert other.rc == 0 and "pvol1" not in other.err
    checked = run("chkoptvol", "*ALL", library=lib, env=env)
    assert checked.rc == 7 and "CHKOPTVOL pvol1.optvol:" in checked.text
    _sh("mv", lib / "pvol1.optvol", lib / "PVOL1.optvol")
    again = run("wrkoptvol", library=lib, env=env)
    assert again.rc == 0 and "PVOL1" in again.text and again.err == ""


def _sizes(library):
    return {p.relative_to(library).as_posix(): p.stat().st_size
            for p in sorted(library.rglob("*")) if p.is_file() and p.name in ("data.opv", "index.sqlite")}


def test_a_copy_by_hard_links_is_only_read_on_either_side(lib, env, tmp_path):
    """``cp -al`` shares data.opv and index.sqlite between the library and the "snapshot":
    a write through either name changed both, and two writers overwrote each other's
    records. Now both sides are read (through private copies of the index), and every
    write, a torn tail's cut and recover are refused, OPV0016, until the link is gone."""
    (tmp_path / "new").write_bytes(b"new")
    data = lib / "PVOL1.optvol" / "data.opv"
    with open(data, "ab") as handle:
        handle.write(b"\xee" * 3000)  # a tail a killed writer left: an open would cut it
    snap = tmp_path / "snap"
    _sh("cp", "-al", lib, snap)
    before = snapshot(snap)
    tail_size = data.stat().st_size
    for library in (lib, snap):
        assert run("cat", "/QOPT/PVOL1/D/one", library=library, env=env).out == b"one"
        listed = run("wrkoptvol", library=library, env=env)
        assert listed.rc == 0 and "PVOL1" in listed.text
        for args in (["cp", tmp_path / "new", "/QOPT/PVOL1/new"], ["rm", "/QOPT/PVOL1/D/one"],
                     ["cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--sltfile", "*ALL", "--cpysubdir", "*YES"], ["recover", "PVOL1"],
                     ["chgoptvol", "PVOL1", "--text", "changed"]):
            refused = run(*args, library=library, env=env)
            assert refused.rc == 5 and "OPV0016" in refused.err, (library, args, refused.err)
    assert snapshot(snap) == before and data.stat().st_size == tail_size  # nothing written, no tail cut
    shutil.rmtree(snap)
    done = run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env)
    assert done.rc == 0, done.err
    assert run("cat", "/QOPT/PVOL1/new", library=lib, env=env).out == b"new"


def test_a_link_made_while_a_program_holds_the_volume_open_stops_its_next_write(lib, tmp_path):
    library = Library(lib, clock=_now)
    with library.open("PVOL1") as volume:
        volume.write_bytes("/warm", b"warm")
        data = lib / "PVOL1.optvol" / "data.opv"
        os.link(data, tmp_path / "linked.opv")  # what cp -al does to each file
        size = data.stat().st_size
        with pytest.raises(errors.NotAllowedError, match="OPV0016") as refused:
            volume.write_bytes("/after", b"after")
        assert refused.value.exit_code == 5 and data.stat().st_size == size
        (tmp_path / "linked.opv").unlink()
        volume.write_bytes("/after", b"after")
        assert volume.read_bytes("/after") == b"after"


def test_rsync_link_dest_snapshots_share_files_with_each_other_not_with_the_library(lib, env, tmp_path):
    """rsnapshot's way: each snapshot links the unchanged files of the one before. The live
    library shares nothing and stays writable; the snapshots are read, never written."""
    (tmp_path / "new").write_bytes(b"new")
    first, second = tmp_path / "daily.1", tmp_path / "daily.0"
    _sh("rsync", "-a", f"{lib}/", first)
    _sh("rsync", "-a", f"--link-dest={first}", f"{lib}/", second)
    assert (second / "PVOL1.optvol" / "data.opv").stat().st_nlink == 2
    done = run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=lib, env=env)
    assert done.rc == 0, done.err
    before = _sizes(first)
    assert run("cat", "/QOPT/PVOL1/D/two", library=second, env=env).out == b"two" * 1000
    refused = run("cp", tmp_path / "new", "/QOPT/PVOL1/new", library=second, env=env)
    assert refused.rc == 5 and "OPV0016" in refused.err
    assert _sizes(first) == before


def test_on_a_file_system_blind_to_case_a_volume_directory_in_any_case_is_the_volume(tmp_path, env, exfat):
    """Review s22b F2, F3: on exFAT (FUSE gives each spelling an inode of its own) a volume
    directory renamed ``pvol1.optvol`` or ``PVOL1.OPTVOL`` is the one every command reaches
    as PVOL1: it is listed as PVOL1, once, not reported as unreachable nor left out."""
    library = exfat / "lib"
    (tmp_path / "one").write_bytes(b"one")
    for args in (["inzopt", "PVOL1"], ["cp", tmp_path / "one", "/QOPT/PVOL1/one"]):
        assert run(*args, library=library, env=env).rc == 0
    for spelling in ("pvol1.optvol", "PVOL1.OPTVOL", "Pvol1.Optvol"):
        current = next(p for p in library.iterdir() if p.name.lower() == "pvol1.optvol")
        current.rename(library / spelling)
        listed = run("wrkoptvol", library=library, env=env, json_output=True)
        assert listed.rc == 0 and [v["volume"] for v in listed.json()] == ["PVOL1"], (spelling, listed.err)
        checked = run("chkoptvol", "*ALL", library=library, env=env)
        assert checked.rc == 0 and "CHKOPTVOL PVOL1: 1 file version(s)" in checked.text, (spelling, checked.err)
        assert run("cat", "/QOPT/PVOL1/one", library=library, env=env).out == b"one"



def test_on_a_file_system_blind_to_case_the_library_in_another_case_is_the_same_library(tmp_path, env, exfat):
    """Review s22c F3: exFAT through FUSE gives /mnt/LIB and /mnt/lib inodes of their own, so
    a volume held alone through one spelling (here its exclusive open lock, as INZOPT or
    recover hold it) could be opened and written through the other. The library's path is
    now spelled as its directory stores it, so the locks meet."""
    from optvol.image.locks import lock_exclusive

    (tmp_path / "one").write_bytes(b"one")
    assert run("inzopt", "PVOL1", library=exfat / "lib", env=env).rc == 0
    assert Library(exfat / "LIB", clock=_now).root == exfat / "lib"
    fd = lock_exclusive(exfat / "lib" / "PVOL1.optvol", volume="PVOL1")
    try:
        for spelling in ("LIB", "Lib"):
            refused = run("cp", tmp_path / "one", "/QOPT/PVOL1/one", library=exfat / spelling, env=env)
            assert refused.rc == 8 and "OPV0004" in refused.err, (spelling, refused.err)
    finally:
        os.close(fd)
    assert run("cp", tmp_path / "one", "/QOPT/PVOL1/one", library=exfat / "LIB", env=env).rc == 0
    assert run("cat", "/QOPT/PVOL1/one", library=exfat / "lib", env=env).out == b"one"
    assert Library(tmp_path / "New" / "LIB", clock=_now).root == tmp_path / "New" / "LIB"  # made as given
    (exfat / "STRAßE").mkdir()  # review 23c F2: "straße".swapcase() is "STRASSE", which opens nothing
    assert run("inzopt", "PVOL2", library=exfat / "STRAßE" / "lib", env=env).rc == 0
    assert Library(exfat / "straße" / "LIB", clock=_now).root == exfat / "STRAßE" / "lib"

@pytest.mark.parametrize("entry, advice, kept", [
    ("PVOL1.OPTVOL", "(PVOL1.optvol, if that is its ID)", False),
    ("my vol.optvol", "(the ID its label holds", False),
    ("PVOL1.OPTVOL", "(the ID its label holds", True),
])
def test_a_directory_no_id_names_is_reported_with_advice_that_fits(lib, env, entry, advice, kept):
    """Review s22b F3, F9, s22c F4: ``PVOL1.OPTVOL`` (the suffix in upper case) was neither
    listed nor reported; ``my vol.optvol`` was advised to become ``MY VOL.optvol``, no
    volume ID; a ``PVOL1.OPTVOL`` beside PVOL1.optvol was reported as PVOL1, which
    CHKOPTVOL then called damaged, and advised to become PVOL1.optvol, which exists."""
    if kept:
        _sh("cp", "-a", lib / "PVOL1.optvol", lib / entry)
    else:
        (lib / "PVOL1.optvol").rename(lib / entry)
    listed = run("wrkoptvol", library=lib, env=env)
    assert listed.rc == 7 and f"its directory {entry} is not named by a volume ID" in listed.err
    assert advice in listed.err and "MY VOL.optvol" not in listed.err
    checked = run("chkoptvol", "*ALL", library=lib, env=env, json_output=True)
    results = {r["volume"]: r["damaged"] for r in checked.json()}
    assert checked.rc == 7 and results[entry] and (not kept or results["PVOL1"] == [])


def test_a_second_name_of_a_volume_directory_does_not_list_the_volume_twice(lib, env):
    """Review s22b F8: a symbolic link ``pvol1.optvol`` beside PVOL1.optvol listed PVOL1 twice."""
    os.symlink("PVOL1.optvol", lib / "pvol1.optvol")
    listed = run("wrkoptvol", library=lib, env=env, json_output=True)
    assert [v["volume"] for v in listed.json()] == ["BVOL1", "PVOL1"]
    assert listed.rc == 7 and "pvol1.optvol is not named by a volume ID" in listed.err
    assert "(the ID its label holds" in listed.err  # not: rename it onto PVOL1.optvol, which exists


def test_the_refusal_of_a_copied_or_moved_directory_offers_the_remedy_that_fits(lib, env):
    """Review s22b F11: a directory moved by hand (the only copy) was advised to be removed;
    CHKOPTVOL filed the refusal under (index); recover said "Volume PVOL1 recovered", exit 0,
    and the directory was refused still."""
    _sh("cp", "-a", lib / "PVOL1.optvol", lib / "PCOPY.optvol")
    copied = run("ls", "/QOPT/PCOPY", library=lib, env=env)
    assert copied.rc == 7 and "remove this copy, then dupopt PVOL1 PCOPY" in copied.err
    assert "rename the directory back" not in copied.err
    _sh("mv", lib / "PVOL1.optvol", lib / "PMOVED.optvol")
    moved = run("ls", "/QOPT/PMOVED", library=lib, env=env)
    assert moved.rc == 7 and "rename the directory back to PVOL1.optvol" in moved.err and "remove" not in moved.err
    checked = run("chkoptvol", "PMOVED", library=lib, env=env)
    assert checked.rc == 7 and "DAMAGED  (volume):" in checked.text
    recovered = run("recover", "PMOVED", library=lib, env=env)
    assert recovered.rc == 7 and "rename the directory back to PVOL1.optvol" in recovered.err


def test_a_rename_another_process_left_half_done_is_completed_by_a_program_s_open(lib, tmp_path):
    """Review s22b F5: a rename killed between its label write and its directory rename left
    a long-lived program unable to open the volume by either name (and advised to remove
    its only copy); a new command completed it. The program's open completes it too."""
    library = Library(lib, clock=_now)
    script = (
        "import os, sys, datetime\n"
        "from optvol.library import Library\n"
        "lib = Library(sys.argv[1], clock=lambda: datetime.datetime.now().astimezone())\n"
        "real = os.rename\n"
        "def killed(a, b, *k, **kw):\n"
        "    if str(a).endswith('PVOL1.optvol'):\n"
        "        os.kill(os.getpid(), 9)\n"
        "    return real(a, b, *k, **kw)\n"
        "os.rename = killed\n"
        "lib.rename('PVOL1', 'PVOL2')\n")
    died = subprocess.run([sys.executable, "-c", script, str(lib)], capture_output=True)
    assert died.returncode == -9 and (lib / ".journal.json").exists() and (lib / "PVOL1.optvol").is_dir()
    with library.open("PVOL2") as volume:
        assert volume.label()["volume"] == "PVOL2" and volume.read_bytes("/D/one") == b"one"
    with pytest.raises(errors.NotFoundError):
        library.open("PVOL1")
