"""The host fails underneath a command (a hunt of session 18): a writeback error, a
failing fsync of the library directory, a disk out of room for SQLite's copy. Each
command says so with its message and exit code, never a traceback, and loses nothing:
nothing is reported done that is not on the disk, and no half-done step is finished
later behind the user's back.

Errors are injected by replacing ``os`` functions in this process (the kernel's own
errors need a failing device): ``os.fdatasync`` failing once is what Linux does after a
writeback error, whose next fsync on the same file then succeeds.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from conftest import make_volume
from integrity_helpers import run_cli, tmpfs
from optvol import errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.library import Library
from optvol.model import VolumeType


def clock() -> datetime:
    return datetime.now(timezone.utc)


def _eio(*_args) -> None:
    raise OSError(errno.EIO, "Input/output error")


def _clean(library: Library, vol: str) -> None:
    for result in chkoptvol(library, vol=vol):
        assert result.damaged == [], result


def test_a_failed_early_writeback_fails_the_write_of_a_big_file(library, monkeypatch):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/keep.txt", b"kept")
        monkeypatch.setattr(os, "fdatasync", _eio)  # the writer thread's early start on a file of 4 MiB or more
        data = os.urandom(5 << 20)
        with pytest.raises(errors.DamagedError) as caught:
            volume.write_chunks("/big.bin", iter([data[: 1 << 20], data[1 << 20 :]]), size=len(data))  # as cp does
        monkeypatch.undo()
        assert caught.value.message_id == "OPV0204"
        assert not volume.exists("/big.bin") and volume.read_bytes("/keep.txt") == b"kept"
        volume.write_bytes("/big.bin", b"again")  # the disk is fine again: the write goes through
    _clean(library, "PVOL1")


def test_a_failed_early_writeback_leaves_a_backup_and_its_ranges_as_they_were(tmp_path, monkeypatch):
    library = Library(tmp_path / "lib", clock=clock)
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        for i in range(50):  # small files: CPYOPT writes them in groups, each started early (write_behind)
            volume.write_bytes(f"/D/f{i}", os.urandom(3000))
        volume.write_bytes("/D/big", os.urandom(5 << 20))
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    monkeypatch.setattr(os, "fdatasync", _eio)
    with pytest.raises(errors.DamagedError) as caught:
        cpyopt(library, request, now=clock())
    monkeypatch.undo()
    assert caught.value.message_id == "OPV0204"
    with library.open("BVOL1") as backup:
        assert backup.info().files == 0
        assert all(d.backup is None for d in backup.iter_dirs("/"))  # no range claims what is not there
    _clean(library, "BVOL1")
    assert cpyopt(library, request, now=clock()).copied == 51  # the re-run copies everything


def test_a_failed_fsync_after_the_journal_takes_it_back_and_keeps_the_volume(library, monkeypatch):
    from optvol import library as library_mod
    from optvol.initialize import inzopt

    make_volume(library, "PVOL2")
    with library.open("PVOL2") as volume:
        volume.write_bytes("/keep.bin", b"kept")
    real, calls = library_mod.fsync_dir, []

    def first_fails(directory) -> None:  # the library directory's fsync after the journal's rename
        calls.append(directory)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        real(directory)

    monkeypatch.setattr(library_mod, "fsync_dir", first_fails)
    with pytest.raises(errors.DamagedError) as caught:
        inzopt(library, vol="PVOL2", now=clock(), check=False, text="again")
    monkeypatch.undo()
    assert caught.value.message_id == "OPV0204" and calls
    assert not (library.root / library_mod.JOURNAL).exists()
    make_volume(library, "OTHER")  # the next command that changes the library finds nothing to finish
    with library.open("PVOL2") as volume:  # the volume INZOPT was to erase is there, as it was
        assert volume.read_bytes("/keep.bin") == b"kept" and volume.label()["text"] != "again"
    assert list((library.root / ".tmp").iterdir()) == []


def _fill_inodes(mount, *, leave: int = 0) -> None:
    """Leave the tmpfs at ``mount`` with ``leave`` free inodes (its limit set just above what it uses)."""
    found = os.statvfs(mount)
    subprocess.run(["mount", "-o", f"remount,nr_inodes={found.f_files - found.f_ffree + 8}", str(mount)], check=True)
    filler = mount / "filler"
    filler.mkdir()
    for number in range(100):
        try:
            (filler / str(number)).touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            for left in range(leave):
                (filler / str(left)).unlink()
            return
    raise AssertionError("the inodes did not run out")


def _backed_up_library(mount) -> Library:
    library = Library(mount / "lib", clock=clock)
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/a.txt", b"alpha")
    cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP,
                                cpysubdir=True), now=clock())
    return library


def test_out_of_inodes_volumes_read_and_writes_are_refused_as_full(tmp_path):
    with tmpfs(tmp_path / "mnt", "64M") as mount:
        library = _backed_up_library(mount)
        _fill_inodes(mount)
        listing = run_cli(library.root, "ls", "/QOPT/PVOL1/D")  # no inode for SQLite's side files
        assert listing.rc == 0 and listing.out == b"a.txt\n", listing.err
        assert run_cli(library.root, "cat", "/QOPT/PVOL1/D/a.txt").out == b"alpha"
        assert run_cli(library.root, "chkoptvol", "PVOL1").rc == 0
        refused = run_cli(library.root, "mkdir", "/QOPT/PVOL1/E")
        assert refused.rc == 6 and "OPV0203" in refused.err, refused.err
        with library.open("PVOL1") as reading:  # read as it stands: immutable to SQLite
            shutil.rmtree(mount / "filler")  # room again, for a writer: it must wait, or the reader
            busy = run_cli(library.root, "mkdir", "/QOPT/PVOL1/E")  # would see half its commits
            assert busy.rc == 8 and "OPV0004" in busy.err, busy.err
            assert [f.path for f in reading.iter_files("/D")] == ["/D/a.txt"]
        assert run_cli(library.root, "mkdir", "/QOPT/PVOL1/E").rc == 0
        _clean(library, "PVOL1")


def test_a_cvtoptbku_refused_for_want_of_inodes_is_not_finished_by_the_next_command(tmp_path):
    from optvol.conversion import cvtoptbku

    with tmpfs(tmp_path / "mnt", "64M") as mount:
        library = _backed_up_library(mount)
        _fill_inodes(mount, leave=2)  # room for the journal and SQLite's -wal, not its -shm
        with pytest.raises(errors.VolumeFullError):
            cvtoptbku(library, bkuvol="BVOL1", privol="PNEW")
        shutil.rmtree(mount / "filler")  # room again
        assert run_cli(library.root, "wrkoptvol").rc == 0
        assert library.exists("BVOL1") and not library.exists("PNEW")
        with library.open("BVOL1") as backup:
            assert backup.label()["type"] == VolumeType.BACKUP
        _clean(library, "BVOL1")


def test_a_rollback_the_disk_refuses_to_cut_reports_the_first_error(library, monkeypatch):
    from optvol.image.datapart import DataPartition

    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/keep.txt", b"kept")

        def read_only(self, sectors) -> None:  # ext4 remounted read-only after a disk error
            raise OSError(errno.EROFS, "Read-only file system")

        def failing(self) -> None:
            raise errors.host_write_error(OSError(errno.EIO, "Input/output error"), "PVOL1")

        monkeypatch.setattr(DataPartition, "sync", failing)
        monkeypatch.setattr(DataPartition, "truncate", read_only)
        with pytest.raises(errors.DamagedError) as caught:  # not the truncate's OSError (a traceback)
            volume.write_bytes("/new.txt", b"lost")
        monkeypatch.undo()
        assert caught.value.message_id == "OPV0204"
        assert not volume.exists("/new.txt") and volume.read_bytes("/keep.txt") == b"kept"
    _clean(library, "PVOL1")


@pytest.mark.parametrize(("failure", "message_id"), [
    (OSError(errno.ENOSPC, "No space left on device"), "OPV0203"),
    (__import__("sqlite3").OperationalError("database or disk is full"), "OPV0203"),
    (__import__("sqlite3").OperationalError("disk I/O error"), "OPV0204"),
    (PermissionError(errno.EACCES, "Permission denied"), "OPV0012"),
])
def test_building_a_duplicate_aside_fails_with_the_hosts_error_for_the_volume(library, monkeypatch, failure,
                                                                              message_id):
    from optvol import duplicate
    from optvol.duplicate import dupopt

    make_volume(library, "PVOL1")

    def refused(*_args):
        raise failure

    monkeypatch.setattr(duplicate, "_copy_image", refused)
    with pytest.raises(errors.OptvolError) as caught:
        dupopt(library, fromvol="PVOL1", tovol="PDUP", now=clock())
    assert caught.value.message_id == message_id and "new-" not in caught.value.text
    assert "PDUP" in caught.value.text
    assert not library.exists("PDUP") and list((library.root / ".tmp").iterdir()) == []


def test_recover_meets_a_host_error_while_it_swaps_the_index_in(library, monkeypatch):
    from optvol.recovery import recover

    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a.txt", b"alpha")
    monkeypatch.setattr(os, "replace", _eio)
    with pytest.raises(errors.DamagedError) as caught:
        recover(library, vol="PVOL1")
    monkeypatch.undo()
    assert caught.value.message_id == "OPV0204"
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/a.txt") == b"alpha"
    _clean(library, "PVOL1")
    assert recover(library, vol="PVOL1").files == 1


def _without_dac_override(library: Library, *args: str, tmp_path) -> tuple[int, str]:
    """``optvol`` as root without CAP_DAC_OVERRIDE: the files' modes apply to it, as to a user."""
    import sys

    from cli_helpers import clean_env

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("dropping root's override of file modes needs root and setpriv")
    drop = "-dac_override,-dac_read_search"
    done = subprocess.run(["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--", sys.executable, "-m",
                           "optvol", "--library", str(library.root), *args], capture_output=True,
                          env=clean_env(tmp_path), timeout=120)
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize(("changed", "mode", "args", "code", "message"), [
    ("PVOL1.optvol/data.opv", 0o444, ["ls", "/QOPT/PVOL1/D"], 0, ""),
    ("PVOL1.optvol/data.opv", 0o444, ["chkoptvol", "PVOL1"], 0, ""),
    ("PVOL1.optvol/data.opv", 0o444, ["mkdir", "/QOPT/PVOL1/E"], 5, "OPV0011"),
    ("PVOL1.optvol/data.opv", 0o000, ["ls", "/QOPT/PVOL1/D"], 2, "OPV0006"),
    ("PVOL1.optvol", 0o555, ["ls", "/QOPT/PVOL1/D"], 0, ""),
    ("PVOL1.optvol", 0o555, ["mkdir", "/QOPT/PVOL1/E"], 5, "OPV0011"),
    ("PVOL1.optvol/index.sqlite", 0o444, ["ls", "/QOPT/PVOL1/D"], 0, ""),
    ("PVOL1.optvol/index.sqlite", 0o444, ["mkdir", "/QOPT/PVOL1/E"], 5, "OPV0011"),
    ("PVOL1.optvol/index.sqlite", 0o000, ["chkoptvol", "PVOL1"], 2, "OPV0006"),
    ("PVOL1.optvol", 0o111, ["ls", "/QOPT/PVOL1/D"], 0, ""),
    ("PVOL1.optvol", 0o000, ["chkoptvol", "PVOL1"], 2, "OPV0006"),
    (".tmp", 0o555, ["inzopt", "NEWV"], 5, "OPV0012"),
    (".", 0o555, ["inzopt", "NEWV"], 5, "OPV0012"),
])
def test_modes_changed_under_a_library_read_what_can_be_read_and_refuse_the_rest(library, tmp_path, changed, mode,
                                                                                 args, code, message):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/a.txt", b"alpha")
    target = library.root / changed
    before = target.stat().st_mode
    target.chmod(mode)
    try:
        done, err = _without_dac_override(library, *args, tmp_path=tmp_path)
    finally:
        target.chmod(before)
    assert done == code and message in err and "Traceback" not in err, err
    _clean(library, "PVOL1")


def test_import_iso_whose_new_volume_the_disk_cannot_take_names_that_volume(library, tmp_path, monkeypatch):
    from optvol.interchange import import_iso, iso_import

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"alpha")
    image = tmp_path / "a.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", str(image), str(tree)], check=True)

    def full(*_args):  # the host fills up while the image's files are written into the volume built aside
        raise errors.host_write_error(OSError(errno.ENOSPC, "No space left on device"), "new-0123")

    monkeypatch.setattr(iso_import, "_chunks", full)
    with pytest.raises(errors.VolumeFullError) as caught:
        import_iso(library, file=image, vol="IMP1", now=clock())
    assert caught.value.message_id == "OPV0203" and "IMP1" in caught.value.text and "new-" not in caught.value.text
    assert not library.exists("IMP1") and list((library.root / ".tmp").iterdir()) == []


def test_a_commit_the_disk_refuses_leaves_the_connection_usable(library, monkeypatch):
    """A program keeps its volume open: after a commit that failed (a full disk at SQLite's
    log), the next write goes through and nothing of the failed one is there."""
    from optvol.image.connection import IndexConnection

    make_volume(library, "PVOL1")
    real, failed = IndexConnection.execute, []

    def execute(self, *args):
        if args and args[0] == "COMMIT" and not failed:
            failed.append(True)
            raise errors.error("OPV0203", volume="PVOL1", reason="the host file system is full")
        return real(self, *args)

    with library.open("PVOL1") as volume:
        monkeypatch.setattr(IndexConnection, "execute", execute)
        with pytest.raises(errors.VolumeFullError):
            volume.write_bytes("/lost.txt", b"lost")
        monkeypatch.undo()
        volume.write_bytes("/kept.txt", b"kept")
        assert volume.read_bytes("/kept.txt") == b"kept" and not volume.exists("/lost.txt")
    _clean(library, "PVOL1")


def test_a_file_size_limit_of_the_host_is_a_full_volume_not_damage(library, tmp_path):
    """A hunt of session 19: a data partition the host allows no larger (FAT's 4 GiB; here a
    RLIMIT_FSIZE, as `ulimit -f` sets) was OPV0204 "Input/output error", exit 7, which sends a
    user looking for damage. It is OPV0203, exit 6: nothing changed, the volume is sound."""
    import resource
    import sys

    make_volume(library, "PVOL1")
    data = library.root / "PVOL1.optvol" / "data.opv"
    limit = data.stat().st_size + (1 << 20)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(4 << 20))

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    ran = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library.root), "cp", str(big),
                          "/QOPT/PVOL1/big"], capture_output=True, text=True, preexec_fn=limited, timeout=120)
    assert ran.returncode == 6 and "OPV0203" in ran.stderr and "no file that large" in ran.stderr, ran.stderr
    with library.open("PVOL1") as volume:
        assert not volume.exists("/big")
    _clean(library, "PVOL1")


def test_a_commit_the_disk_refuses_leaves_no_tail_behind(library, monkeypatch):
    """A hunt of session 19: a full disk at SQLite's COMMIT (its log cannot grow) left the
    run's appended records in data.opv, keeping the disk full until the next command opened
    the volume. The tail is cut at once, under the write lock (the commit did not happen)."""
    from optvol.image.connection import IndexConnection

    make_volume(library, "PVOL1")
    data = library.root / "PVOL1.optvol" / "data.opv"
    with library.open("PVOL1") as volume:
        volume.write_bytes("/kept", b"kept")
        before = data.stat().st_size
        real = IndexConnection.execute

        def full_at_commit(self, *args):
            if args and args[0] == "COMMIT":
                monkeypatch.setattr(IndexConnection, "execute", real)
                raise errors.error("OPV0203", volume="PVOL1", reason="the host file system is full")  # as the cursor maps it
            return real(self, *args)

        monkeypatch.setattr(IndexConnection, "execute", full_at_commit)
        with pytest.raises(errors.VolumeFullError):
            volume.write_bytes("/big", os.urandom(6 << 20))
        assert data.stat().st_size == before
        assert not volume.exists("/big") and volume.read_bytes("/kept") == b"kept"
        volume.write_bytes("/after", b"after")
    _clean(library, "PVOL1")


@pytest.mark.parametrize("args", [["cp", "/QOPT/PVOL1/D/a.txt", "{box}/a.txt"], ["export-iso", "PVOL1", "{box}/v.iso"]])
def test_a_copy_to_a_directory_that_may_be_written_but_not_read_is_put_in_place(library, tmp_path, args):
    """A drop box (mode 0o333: write and search, no read) took a copy under its hidden name;
    a file made without a name must be linked there too (hunt26c F1: OPV0302 Permission denied)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/a.txt", b"alpha")
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(0o333)
    try:
        for _ in range(2):  # a new file, then one that replaces it (through a hidden name)
            done, err = _without_dac_override(library, *[a.format(box=box) for a in args], tmp_path=tmp_path)
            assert done == 0 and "Traceback" not in err, err
    finally:
        box.chmod(0o755)
    assert [p.name for p in box.iterdir()] == [os.path.basename(args[-1])]


def test_a_move_to_a_directory_that_may_be_written_but_not_read_ends_with_the_file_moved(library, tmp_path):
    """mv makes the host file's name durable before it deletes the volume's file; in a drop
    box (0o333) the directory's fsync could not be opened: OPV0302 with the file in place
    and on the volume both (hunt26c F2). The system's writes are synced instead."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a.txt", b"alpha")
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(0o333)
    try:
        done, err = _without_dac_override(library, "mv", "/QOPT/PVOL1/a.txt", f"{box}/m.txt", tmp_path=tmp_path)
    finally:
        box.chmod(0o755)
    assert done == 0, err
    assert (box / "m.txt").read_bytes() == b"alpha"
    with library.open("PVOL1") as volume:
        assert not volume.exists("/a.txt")


def test_mv_whose_temporary_directory_fails_keeps_the_paths_in_memory(library, tmp_path, monkeypatch):
    """mv keeps the paths it moved in $TMPDIR past a limit (path_spool): where the host refuses
    that file the rest stay in memory, and the move completes, every path reported."""
    import tempfile

    from optvol import path_spool, transfer

    make_volume(library, "PVOL1")
    make_volume(library, "PVOL2")
    with library.open("PVOL1") as volume, volume.batch():
        volume.mkdir("/T")
        for i in range(50):
            volume.write_bytes(f"/T/f{i:03}", b"x%d" % i)
    monkeypatch.setattr(path_spool, "IN_MEMORY", 100)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    moved = list(transfer.move(library, ["/QOPT/PVOL1/T"], "/QOPT/PVOL2/T"))
    assert moved == [f"/QOPT/PVOL2/T/f{i:03}" for i in range(50)]
    with library.open("PVOL2") as volume:
        assert [volume.read_bytes(f"/T/f{i:03}") for i in range(50)] == [b"x%d" % i for i in range(50)]
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == []


@pytest.mark.parametrize("fails_at", [None, 0, 1, 3])
def test_a_path_spool_gives_back_every_path_as_it_was_given(monkeypatch, fails_at):
    """Also when the host fails a write to its file (``fails_at``: the how-manyth, after writing
    part of it): the part written is not counted, the rest stays in memory."""
    from optvol import path_spool

    monkeypatch.setattr(path_spool, "IN_MEMORY", 64)
    monkeypatch.setattr(path_spool, "_CHUNK", 7)  # (paths split across reads)
    calls, real = [], os.pwrite

    def pwrite(fd, data, at):
        calls.append(at)
        if len(calls) - 1 == fails_at:
            real(fd, bytes(data[:10]), at)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, bytes(data[:50]), at)  # (a short write now and then)

    monkeypatch.setattr(path_spool.os, "pwrite", pwrite)
    paths = ["/a", "/QOPT/V/line\nbreak", "/host/\udcff\udcfe", "/é" * 30, "/x", *(f"/d/{i}" * 9 for i in range(40))]
    spool = path_spool.PathSpool("test")
    for path in paths:
        spool.add(path)
    assert list(spool) == paths
    assert list(spool) == paths  # (again, from the start)
    assert len(calls) > (3 if fails_at is None else fails_at)
    if spool._spilled:  # the host fails the reading back: said so, no traceback (the paths before it given)
        monkeypatch.setattr(path_spool.os, "pread", lambda *args: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
        with pytest.raises(errors.InvalidError, match="OPV0302.*temporary file of the paths test did.*test is done"):
            list(spool)
    spool.close()
