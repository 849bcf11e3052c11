"""The host disk fills up during a write (DESIGN §4 exit 6, OPV0203).

A small tmpfs is mounted for the library when this process may mount (root); every test
unmounts it in a ``finally``. A second test uses a fault-injection seam instead: a child
process whose data-partition ``os.pwrite`` fails with ENOSPC after a byte budget, so the
behaviour is checked on machines where mounting is not allowed too.

Expected: a clear error (exit 6, OPV0203), the volume intact (CHKOPTVOL clean, previous
files readable, the failed file absent), and writes succeed again once there is room.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import make_volume
from integrity_helpers import content, downgrade_to_schema_3, remount, run_cli, tmpfs
from optvol import errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.library import Library
from optvol.model import VolumeType

DRIVER = Path(__file__).parent / "fault_driver.py"


def clock() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def _full_library(tmp_path: Path, size: str, files: dict[str, bytes]) -> Iterator[tuple[Path, Library]]:
    """A library on a tmpfs of ``size`` with PVOL1 holding ``files``."""
    with tmpfs(tmp_path / "mnt", size) as mount:
        library = Library(mount / "lib", clock=clock)
        make_volume(library, "PVOL1")
        with library.open("PVOL1") as volume:
            for path, data in files.items():
                volume.write_bytes(path, data)
        yield mount, library


def _intact(library: Library, vol: str, expected: dict[str, bytes], absent: list[str]) -> None:
    for result in chkoptvol(library, vol=vol):
        assert result.damaged == [], result
    with library.open(vol) as volume:
        for path, data in expected.items():
            assert volume.read_bytes(path) == data
        for path in absent:
            assert not volume.exists(path)
        data_file = volume.image.directory / "data.opv"
        assert data_file.stat().st_size == volume.image.meta("committed_end") * volume.image.sector_size


def _fill_host(directory: Path, leave: int) -> Path:
    """Fill the file system of ``directory`` until about ``leave`` bytes are free."""
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        while True:
            free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
            if free <= leave:
                break
            try:
                handle.write(bytes(min(64 << 10, free - leave)))
                handle.flush()
            except OSError:
                break
    return filler


def test_tmpfs_full(tmp_path):
    expected = {f"/F{i}": content(f"/F{i}", 20_000) for i in range(5)}
    # Where mounting is not permitted, test_seam_full covers the behaviour.
    with _full_library(tmp_path, "3m", expected) as (mount, library):
        root = library.root
        make_volume(library, "BVOL1", type=VolumeType.BACKUP)
        # A file larger than the whole host file system: through the API...
        with library.open("PVOL1") as volume, pytest.raises(errors.VolumeFullError) as caught:
            volume.write_bytes("/BIG", content("/BIG", 4 << 20))
        assert caught.value.message_id == "OPV0203"
        _intact(library, "PVOL1", expected, ["/BIG"])
        # ...through a handle, whose spool outgrows memory onto the full disk...
        with library.open("PVOL1") as volume, pytest.raises(errors.VolumeFullError) as caught:
            with volume.open("/BIG", "wb") as handle:
                for _ in range(9):
                    handle.write(content("/BIG", 1 << 20))
        assert caught.value.message_id == "OPV0203"
        _intact(library, "PVOL1", expected, ["/BIG"])
        # ...and through the shell, streamed from a host file.
        host = tmp_path / "big.bin"
        host.write_bytes(content("/BIG", 4 << 20))
        result = run_cli(root, "cp", host, "/QOPT/PVOL1/BIG")
        assert result.rc == 6, result.err
        assert result.err.startswith("optvol: OPV0203: ")
        _intact(library, "PVOL1", expected, ["/BIG"])

        # Nearly full: small writes fail wherever the disk runs out (data or index).
        # (Opening needs room for SQLite's shared-memory file: that fails with OPV0203 too.)
        filler = _fill_host(mount, 48 << 10)
        failures = []
        for i in range(40):
            try:
                with library.open("PVOL1") as volume:
                    volume.write_bytes(f"/SMALL{i}", content(f"/SMALL{i}", 3000))
            except errors.OptvolError as exc:
                failures.append(exc.message_id)
                assert exc.exit_code == 6, exc
            else:
                expected[f"/SMALL{i}"] = content(f"/SMALL{i}", 3000)
        assert failures and set(failures) == {"OPV0203"}
        assert run_cli(root, "ls", "/QOPT/PVOL1/").rc in (0, 6)
        # CPYOPT onto a backup on the full disk: per-file failures, nothing corrupt.
        request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
        try:
            copied = cpyopt(library, request, now=clock())
            assert {f.message_id for f in copied.failures} <= {"OPV0203"}
        except errors.OptvolError as exc:
            assert exc.message_id == "OPV0203"
        failed_paths = [f"/SMALL{i}" for i in range(40) if f"/SMALL{i}" not in expected]
        filler.unlink()
        _intact(library, "PVOL1", expected, failed_paths)
        for result in chkoptvol(library, vol="BVOL1"):
            assert result.damaged == []

        # Space is back: the same writes succeed.
        with library.open("PVOL1") as volume:
            volume.write_bytes("/AFTER", b"room again")
            expected["/AFTER"] = b"room again"
        assert not cpyopt(library, request, now=clock()).failures
        _intact(library, "PVOL1", expected, ["/BIG"])


@pytest.mark.parametrize("budget", [0, 2048, 30_000])
def test_seam_full(tmp_path, budget):
    """ENOSPC injected into the data partition's writes of a child process."""
    root = tmp_path / "lib"
    library = Library(root, clock=clock)
    make_volume(library, "PVOL1")
    expected = {f"/F{i}": content(f"/F{i}", 5000) for i in range(3)}
    with library.open("PVOL1") as volume:
        for path, data in expected.items():
            volume.write_bytes(path, data)
    progress = tmp_path / "progress"
    progress.write_text("")
    args = {"vol": "PVOL1", "path": "/NEW", "size": 100_000, "budget": budget}
    child = subprocess.run([sys.executable, str(DRIVER), "disk_full_write", str(root), json.dumps(args), str(progress)],
                           capture_output=True, timeout=60)
    assert child.returncode == 0, child.stderr.decode()
    assert "error OPV0203 6" in progress.read_text().splitlines()
    _intact(library, "PVOL1", expected, ["/NEW"])
    with library.open("PVOL1") as volume:
        volume.write_bytes("/NEW", content("/NEW", 100_000))
    expected["/NEW"] = content("/NEW", 100_000)
    _intact(library, "PVOL1", expected, [])


def test_dupopt_onto_a_full_disk(tmp_path):
    """DUPOPT whose copy of the data partition meets a full host disk: exit 6, nothing made."""
    expected = {f"/F{i}": content(f"/F{i}", 450_000) for i in range(6)}  # the copy of its data cannot fit
    with _full_library(tmp_path, "4m", expected) as (_, library):
        root = library.root
        result = run_cli(root, "dupopt", "PVOL1", "DVOL1")
        assert result.rc == 6, result.err
        assert result.err.startswith("optvol: OPV0203: ") and "DVOL1" in result.err
        assert not library.exists("DVOL1")
        assert sorted(p.name for p in root.iterdir() if p.name.endswith(".optvol")) == ["PVOL1.optvol"]
        _intact(library, "PVOL1", expected, [])


def test_reading_out_onto_a_full_host_disk(tmp_path):
    """cp, cat and export-iso whose host target fills up (or is read only): OPV0302 naming
    it, exit 2, and no partial or temporary file left there."""
    with tmpfs(tmp_path / "mnt", "1m") as mount:
        library = Library(tmp_path / "lib", clock=clock)
        make_volume(library, "PVOL1")
        with library.open("PVOL1") as volume:
            volume.write_bytes("/BIG", content("/BIG", 3 << 20))
        copied = run_cli(library.root, "cp", "/QOPT/PVOL1/BIG", mount / "BIG")
        assert copied.rc == 2 and copied.err.startswith("optvol: OPV0302: ") and str(mount / "BIG") in copied.err
        exported = run_cli(library.root, "export-iso", "PVOL1", mount / "out.iso")
        assert exported.rc == 2 and "OPV0302" in exported.err, exported.err
        assert list(mount.iterdir()) == []
        with open(mount / "cat.out", "wb") as stdout:
            shown = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library.root), "cat", "/QOPT/PVOL1/BIG"],
                                   stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60,
                                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")})
        assert shown.returncode == 2 and "OPV0302" in shown.stderr and "Traceback" not in shown.stderr, shown.stderr
        (mount / "cat.out").unlink()
        remount(mount, read_only=True)
        refused = run_cli(library.root, "cp", "/QOPT/PVOL1/BIG", mount / "BIG")
        assert refused.rc == 2 and "Read-only file system" in refused.err


def test_a_full_disk_still_lets_every_volume_be_read(tmp_path):
    """On a full disk SQLite cannot make an index's shared-memory file: the volumes are read
    as they stand (listing, reading, checking, copying out, exporting), every write is
    OPV0203 naming its volume, and once there is room again everything works as before."""
    expected = {"/A": content("/A", 3000), "/B": content("/B", 100)}
    with _full_library(tmp_path, "512k", expected) as (mount, library):
        root = library.root
        make_volume(library, "BVOL1", type=VolumeType.BACKUP)
        filler = _fill_host(mount, 0)
        listed = run_cli(root, "wrkoptvol", json_output=True)
        assert listed.rc == 0, listed.err
        assert [v["volume"] for v in listed.json()] == ["BVOL1", "PVOL1"]
        assert run_cli(root, "cat", "/QOPT/PVOL1/A").out == expected["/A"]
        assert run_cli(root, "chkoptvol", "*ALL").rc == 0
        out = tmp_path / "out"
        out.mkdir()
        assert run_cli(root, "cp", "/QOPT/PVOL1/B", out / "B").rc == 0 and (out / "B").read_bytes() == expected["/B"]
        assert run_cli(root, "export-iso", "PVOL1", out / "p.iso").rc == 0
        host = out / "new.bin"
        host.write_bytes(b"new")
        for args, volume in ((("cp", host, "/QOPT/PVOL1/NEW"), "PVOL1"), (("inzopt", "PVOL2"), "PVOL2"),
                             (("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES"), "BVOL1")):
            refused = run_cli(root, *args)
            assert refused.rc == 6, (args, refused.err)
            assert refused.err.startswith(f"optvol: OPV0203: Volume {volume} cannot be written"), (args, refused.err)
        filler.unlink()
        assert run_cli(root, "cp", host, "/QOPT/PVOL1/NEW").rc == 0
        copied = run_cli(root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
        assert copied.rc == 0, copied.err
        _intact(library, "PVOL1", {**expected, "/NEW": b"new"}, [])
        _intact(library, "BVOL1", {}, [])


def test_an_index_of_an_older_schema_is_read_on_a_full_disk(tmp_path):
    """No room to migrate an index of schema 3 where it lies: it is read through a private
    copy brought forward (in $TMPDIR), and a write is still OPV0203."""
    with _full_library(tmp_path, "512k", {"/A": b"written under schema 3"}) as (mount, library):
        downgrade_to_schema_3(library.root / "PVOL1.optvol" / "index.sqlite")
        (library.root / "PVOL1.optvol" / "index.sqlite-shm").unlink(missing_ok=True)
        filler = _fill_host(mount, 0)
        shown = run_cli(library.root, "cat", "/QOPT/PVOL1/a")
        assert shown.rc == 0 and shown.out == b"written under schema 3", shown.err
        host = tmp_path / "new.bin"
        host.write_bytes(b"new")
        refused = run_cli(library.root, "cp", host, "/QOPT/PVOL1/NEW")
        assert refused.rc == 6 and "OPV0203" in refused.err, refused.err
        filler.unlink()
        assert run_cli(library.root, "cp", host, "/QOPT/PVOL1/NEW").rc == 0
