"""A copy made by optvol stands on blocks of its own (a hunt of session 19).

On a file system that shares blocks between files (xfs, btrfs), ``copy_file_range`` made
a DUPOPT duplicate (and CPYOPT copies, where the offsets allowed) share the source's disk
blocks: one bad block then damaged the primary and its backup together. The test runs on
a real xfs, on a loop device, and asks the file system (``filefrag``) for shared extents.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from optvol.copying import CopyRequest, cpyopt
from optvol.duplicate import dupopt
from optvol.initialize import inzopt
from optvol.library import Library
from optvol.model import VolumeType


def _clock() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def xfs(tmp_path):
    """A fresh xfs mounted on a loop device (skipped where this machine cannot make one)."""
    if os.geteuid() != 0 or not shutil.which("mkfs.xfs") or not shutil.which("filefrag"):
        pytest.skip("needs root, mkfs.xfs (xfsprogs) and filefrag (e2fsprogs)")
    image, mount = tmp_path / "xfs.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(320 << 20)  # xfs wants 300 MB at least
    subprocess.run(["mkfs.xfs", "-q", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"no loop device here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _shared_extents(path) -> int:
    listing = subprocess.run(["filefrag", "-v", str(path)], capture_output=True, text=True, check=True).stdout
    return sum("shared" in line for line in listing.splitlines())


def test_duplicates_and_backups_share_no_blocks_with_their_source(xfs):
    library = Library(xfs / "lib", clock=_clock)
    inzopt(library, vol="PVOL1", now=_clock())
    inzopt(library, vol="BVOL1", type=VolumeType.BACKUP, now=_clock())
    with library.open("PVOL1") as volume:
        for n in range(4):
            volume.write_bytes(f"/BIG{n}", os.urandom(8 << 20))
    dupopt(library, fromvol="PVOL1", tovol="PDUP", now=_clock())
    copied = cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP,
                                         cpysubdir=True), now=_clock())
    assert copied.copied == 4
    for volume in ("PVOL1", "PDUP", "BVOL1"):
        assert _shared_extents(xfs / "lib" / f"{volume}.optvol" / "data.opv") == 0, volume
    with library.open("PDUP") as dup, library.open("BVOL1") as bvol:
        for n in range(4):
            assert hashlib.sha256(dup.read_bytes(f"/BIG{n}")).hexdigest() == bvol.stat(f"/BIG{n}").sha256
