"""Shared fixtures: a library in tmp_path with a fake clock, and a primary volume."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from optvol.library import Library
from optvol.model import MediaFormat, MediaType, VolumeType

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)

# A suite started in the background by a shell (`pytest ... &`, nohup) inherits SIGINT
# ignored: Python then raises no KeyboardInterrupt, and every child it starts ignores SIGINT
# too, so the tests of Ctrl-C saw none. A terminal's Ctrl-C is what they test: the handler a
# Python started from one has (a caught signal is the default again in a child after exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class FakeClock:
    """An aware clock that moves 1 s forward on every call (``step`` changes the stride)."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(seconds=1)):
        self.now = start
        self.step = step
        self.calls = 0

    def __call__(self) -> datetime:
        current = self.now
        self.now = self.now + self.step
        self.calls += 1
        return current

    def peek(self) -> datetime:
        """The time the next call will return, without moving the clock."""
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def library(tmp_path, clock) -> Library:
    return Library(tmp_path / "lib", clock=clock)


def make_volume(
    library: Library,
    vol: str,
    *,
    medtype: MediaType | None = None,
    medfmt: MediaFormat | None = None,
    type: VolumeType = VolumeType.PRIMARY,
    capacity: int | None = None,
    blksize: int | None = None,
    threshold: int | None = None,
    check: bool = True,
):
    """INZOPT a volume with the library's clock and return the InitializeResult."""
    from optvol.initialize import inzopt

    return inzopt(
        library, vol=vol, now=library._clock(), medtype=medtype, medfmt=medfmt, type=type,
        capacity=capacity, blksize=blksize, threshold=threshold, check=check,
    )


@pytest.fixture
def primary(library):
    """An open *ERASE/*HPOFS *PRIMARY volume PVOL1 (2048-byte sectors); closed afterwards."""
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    yield volume
    volume.close()


@pytest.fixture
def udf(library):
    """An open *DVD-RAM/*UDF *PRIMARY volume UVOL1; closed afterwards."""
    make_volume(library, "UVOL1", medtype=MediaType.DVD_RAM)
    volume = library.open("UVOL1")
    yield volume
    volume.close()


def data_path(library: Library, vol: str) -> str:
    return os.path.join(library.root, f"{vol}.optvol", "data.opv")


def index_path(library: Library, vol: str) -> str:
    return os.path.join(library.root, f"{vol}.optvol", "index.sqlite")


def dump_index(library: Library, vol: str) -> list[str]:
    """Every row of a volume's index as SQL text (a fresh read-only connection)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{index_path(library, vol)}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def read_data(library: Library, vol: str) -> bytes:
    with open(data_path(library, vol), "rb") as handle:
        return handle.read()


def meta(library: Library, vol: str, key: str) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{index_path(library, vol)}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def exfat(tmp_path):
    """A fresh exFAT (through FUSE, as a USB stick is read on Linux) on a loop device: a
    file system that takes σ and ς, or A and a, for one name (skipped where none can be made)."""
    import shutil

    if os.geteuid() != 0 or not (shutil.which("mkfs.exfat") and shutil.which("mount.exfat-fuse")):
        pytest.skip("needs root, mkfs.exfat (exfatprogs) and mount.exfat-fuse (exfat-fuse)")
    image, mount = tmp_path / "exfat.img", tmp_path / "exfat"
    mount.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if loop.returncode != 0:
        pytest.skip(f"no loop device here: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    try:
        mounted = subprocess.run(["mount.exfat-fuse", device, str(mount)], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"no FUSE here: {mounted.stderr.strip()}")
        try:
            yield mount
        finally:
            subprocess.run(["fusermount", "-u", str(mount)], check=False)
            subprocess.run(["umount", str(mount)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
