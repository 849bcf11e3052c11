"""Bytes read twice (hunt24e F6): a version checked on one read and handed out, copied or
exported from a second read must be the bytes that were checked (CPYOPT's kernel copy of a
large file still reads the source apart from its hash; the copy's record keeps the SHA-256
its bytes must have, which every read and CHKOPTVOL of it check). Each test changes the
bytes between the check and the second read, as a failing disk could, and expects CPF1F28
(or the file failed), never the changed byte given out or committed."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

import pytest

from optvol import errors, reading
from optvol.image import datapart
from optvol.initialize import inzopt
from optvol.interchange.iso_export import export_iso
from optvol.library import Library
from optvol.model import VolumeType
from optvol.volume import Volume

try:
    from optvol import chunk_check
except ImportError:  # (before the fix: the test must fail, not the import)
    chunk_check = None

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)


@pytest.fixture
def lib(tmp_path) -> Library:
    library = Library(tmp_path / "lib", clock=lambda: NOW)
    inzopt(library, vol="PVOL1", now=NOW)
    inzopt(library, vol="BVOL1", type=VolumeType.BACKUP, now=NOW)
    return library


def _put(lib: Library, size: int) -> tuple[bytes, int]:
    """A file /D/F of ``size`` random bytes on PVOL1; its bytes and the byte offset of its payload."""
    data = os.urandom(size)
    with lib.open("PVOL1") as vol:
        vol.mkdir("/D")
        vol.write_bytes("/D/F", data)
        _, row = vol.file_row("/D/F")
        return data, (row.sector + row.header_sectors) * vol.image.sector_size


def _flip(lib: Library, at: int) -> None:
    with open(lib.root / "PVOL1.optvol" / "data.opv", "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def _after(monkeypatch, owner, name: str, action) -> None:
    original = getattr(owner, name)

    def hooked(*args, **kwargs):
        result = original(*args, **kwargs)
        action()
        return result
    monkeypatch.setattr(owner, name, hooked)


def _check_then_flip(monkeypatch, lib: Library, at: int) -> None:
    """Change a byte just after the whole version was checked (main: ``Volume.verify``)."""
    _after(monkeypatch, Volume, "verify", lambda: _flip(lib, at))
    if chunk_check is not None:
        _after(monkeypatch, chunk_check, "marks", lambda: _flip(lib, at))


@pytest.mark.parametrize("size", [3 * 2048, (12 << 20) + 5])
def test_cat_never_gives_bytes_changed_after_the_check(lib, monkeypatch, size):
    data, start = _put(lib, size)
    _check_then_flip(monkeypatch, lib, start + size - 7)
    try:
        got = b"".join(reading.read_file(lib, "/QOPT/PVOL1/D/F"))
    except errors.DamagedError as exc:
        assert exc.message_id == "CPF1F28"
        return
    assert got == data and size <= getattr(reading, "WHOLE_READ", -1)  # a small file is read once: nothing changed between reads


def test_cat_gives_nothing_of_a_changed_chunk(lib, monkeypatch):
    size = (3 << 20) + 9 + getattr(reading, "WHOLE_READ", 0)
    data, start = _put(lib, size)
    _check_then_flip(monkeypatch, lib, start + (2 << 20) + 1)
    given = []
    with pytest.raises(errors.DamagedError, match="changed after its SHA-256 was checked"):
        for chunk in reading.read_file(lib, "/QOPT/PVOL1/D/F"):
            given.append(chunk)
    assert b"".join(given) == data[: 2 << 20]  # the chunks before the changed one, as checked


@pytest.mark.parametrize("size", [5000, (3 << 20) + 11])
def test_an_open_handle_never_gives_bytes_changed_after_open(lib, size):
    data, start = _put(lib, size)
    with lib.open("PVOL1") as vol, vol.open("/D/F", "rb") as handle:
        assert handle.read(100) == data[:100]
        _flip(lib, start + size - 3)
        if size < (1 << 20):  # its one chunk was read and checked again with the first read: kept, as checked
            assert handle.read() == data[100:]
            return
        with pytest.raises(errors.DamagedError, match="CPF1F28"):
            handle.read()
        handle.seek(0)
        assert handle.read(10) == data[:10]  # the first chunk is still good


def test_an_open_handle_reads_and_seeks_across_chunks(lib):
    data, _ = _put(lib, (2 << 20) + 77)
    with lib.open("PVOL1") as vol, vol.open("/D/F", "rb") as handle:
        assert handle.read() == data
        for at, count in [(0, 1), ((1 << 20) - 3, 10), ((2 << 20) + 70, 100), (5, 3 << 20), (1 << 20, 1 << 20),
                          ((64 << 10) - 1, 2), ((192 << 10) - 7, 70_000), ((2 << 20) + 76, 5)]:
            handle.seek(at)
            assert handle.read(count) == data[at: at + count]


def test_export_iso_writes_only_the_bytes_it_hashed(lib, monkeypatch, tmp_path):
    data, start = _put(lib, 3 << 20)
    hashed = threading.Event()  # before the fix: the kernel copies the source after a thread hashed it
    _after(monkeypatch, datapart.DataPartition, "hash_range", lambda: (_flip(lib, start + 5), hashed.set()))
    original = datapart.copy_bytes

    def copy(*args):
        hashed.wait(10)
        return original(*args)
    monkeypatch.setattr(datapart, "copy_bytes", copy)
    try:
        export_iso(lib, vol="PVOL1", file=tmp_path / "out.iso", now=NOW)
    except errors.DamagedError as exc:
        assert exc.message_id == "CPF1F28"
        return
    assert data in (tmp_path / "out.iso").read_bytes()
