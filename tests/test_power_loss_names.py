"""What a command reports done is on the disk as if the power failed right after: the files it
wrote fsynced, and the directories that name them fsynced once the names are there (hunt29e).
Each test records every fsync (the path of its descriptor, and what the test asks about the
disk at that moment) and checks that the names it reports were made durable."""

from __future__ import annotations

import io
import os

import pytest

from optvol import cli, host_sync


class Calls(list):
    pass


@pytest.fixture
def record(monkeypatch):
    real, calls = os.fsync, Calls()
    calls.probe = lambda: None

    def recording(fd):
        real(fd)
        calls.append((os.readlink(f"/proc/self/fd/{fd}"), calls.probe()))

    monkeypatch.setattr(os, "fsync", recording)
    return calls


def run(lib, *argv) -> None:
    assert cli.main(["--library", str(lib), *map(str, argv)], out=io.StringIO(), err=io.StringIO()) == 0, argv


@pytest.fixture
def lib(tmp_path):
    lib = tmp_path / "lib"
    run(lib, "inzopt", "V1")
    source = tmp_path / "f.bin"
    source.write_bytes(b"payload" * 1000)
    run(lib, "mkdir", "/QOPT/V1/D")
    run(lib, "cp", source, "/QOPT/V1/D/f.bin")
    return lib


def test_export_iso_fsyncs_the_directory_once_the_image_is_named_there(lib, tmp_path, record):
    out = tmp_path / "out"
    out.mkdir()
    record.probe = lambda: (out / "v1.iso").exists()
    run(lib, "export-iso", "V1", out / "v1.iso")
    assert (str(out), True) in record  # the image's name on the disk before "exported"


@pytest.mark.parametrize("tree", [False, True])
def test_cp_to_the_host_fsyncs_the_file_and_its_name_before_copied(lib, tmp_path, record, tree):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "D" / "f.bin" if tree else out / "f.bin"
    record.probe = lambda: (target.exists(), (out / "D").exists())
    if tree:
        run(lib, "cp", "-r", "/QOPT/V1/D", out / "D")
    else:
        run(lib, "cp", "/QOPT/V1/D/f.bin", target)
    assert any(path.startswith(str(target.parent) + "/") and not path.endswith("f.bin") or path == str(target)
               for path, _ in record)  # the file (its temporary, or its name) fsynced
    assert (str(target.parent), (True, tree)) in record  # its name
    if tree:
        assert any(path == str(out) for path, _ in record)  # the name of the directory the tree copy made


def test_cp_of_a_tree_to_the_host_reports_files_once_their_file_system_is_synced(lib, tmp_path, monkeypatch):
    """Many files are synced in groups (syncfs of their file system), not one fsync each (ten
    times the copy's time): none is reported before its group's sync."""
    for i in range(20):
        (tmp_path / f"g{i}").write_bytes(b"x" * i)
        run(lib, "cp", tmp_path / f"g{i}", f"/QOPT/V1/D/g{i}")
    out, printed, synced = tmp_path / "out", io.StringIO(), []
    real = host_sync.sync_file_system

    def recording(directory):
        real(directory)
        synced.append((directory, printed.getvalue().count("copied"), len(list((out / "D").iterdir()))))

    monkeypatch.setattr(host_sync, "sync_file_system", recording)
    assert cli.main(["--library", str(lib), "cp", "-r", "/QOPT/V1/D", str(out / "D")], out=printed, err=io.StringIO()) == 0
    assert synced and all(before == 0 for _, before, _ in synced)
    assert synced[0][2] == 21  # every file of the group in place, none reported yet
    assert printed.getvalue().count("copied") == 21


def test_the_journal_s_removal_is_on_the_disk_before_tmp_is_emptied(lib, record):
    """A replay of a journal the power loss kept, once .tmp/old-* was gone, moved the new
    volume to .tmp/old-* and deleted it (INZOPT again, DUPOPT onto an existing volume)."""
    record.probe = lambda: ((lib / ".journal.json").exists(), sorted(p.name[:4] for p in (lib / ".tmp").iterdir()))
    run(lib, "inzopt", "V1", "--check", "*NO")
    assert (str(lib), (False, ["old-"])) in record


def test_a_new_library_s_name_and_marker_are_on_the_disk(tmp_path, record):
    parent = tmp_path / "a" / "b"
    lib = parent / "lib"
    record.probe = lambda: lib.exists()
    run(lib, "inzopt", "V1")
    assert (str(lib / ".optvol-library"), True) in record
    assert (str(parent), True) in record and (str(tmp_path), True) in record


def test_a_tree_copied_to_a_fuse_file_system_fsyncs_each_file(lib, tmp_path, exfat, record):
    """syncfs of a FUSE file system (exfat-fuse, as a USB stick is read) asks its daemon for
    nothing: the files of a group are fsynced each there, which reaches it (rev29g F3)."""
    for i in range(12):
        (tmp_path / f"g{i}").write_bytes(b"x" * (i + 1))
        run(lib, "cp", tmp_path / f"g{i}", f"/QOPT/V1/D/g{i}")
    run(lib, "cp", "-r", "/QOPT/V1/D", exfat / "D")
    fsynced = {path for path, _ in record}
    assert {str(exfat / "D" / f"g{i}") for i in range(12)} <= fsynced
