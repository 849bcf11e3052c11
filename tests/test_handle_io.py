"""File handles as io gives them (README, "open gives io file objects"): a mode that stdlib
code reads, tell() of a closed handle, and a reader that outlives its volume only as a closed
file does, also for the bytes its buffer holds (hunt27b F2, F3)."""
from __future__ import annotations

import gzip

import pytest

from conftest import make_volume


@pytest.fixture
def volume(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/F", b"0123456789" * 10_000)
        yield volume


@pytest.mark.parametrize("mode, shown", [("rb", "rb"), ("r", "r"), ("wb", "wb"), ("w", "w"), ("ab", "ab"),
                                         ("a", "a"), ("xb", "xb"), ("x", "x")])
def test_a_handle_has_the_mode_a_host_file_of_that_mode_has(volume, mode, shown, tmp_path):
    path = "/F" if mode[0] in "rwa" else "/NEW"
    (tmp_path / "F").write_bytes(b"host")
    with volume.open(path, mode) as handle, open(tmp_path / path[1:], mode) as host:
        assert handle.mode == shown == host.mode


@pytest.mark.filterwarnings("ignore::FutureWarning")  # (GzipFile's mode from its fileobj's, as programs use it)
def test_gzip_writes_through_a_writer_and_reads_through_a_reader(volume):
    """GzipFile(fileobj=...) takes its mode from the handle: without one it took the writer
    for a reader and refused to write."""
    data = b"compress me " * 5000
    with volume.open("/Z.gz", "wb") as raw, gzip.GzipFile(fileobj=raw) as packed:
        packed.write(data)
    with volume.open("/Z.gz", "rb") as raw, gzip.GzipFile(fileobj=raw) as unpacked:
        assert unpacked.read() == data
    assert gzip.decompress(volume.read_bytes("/Z.gz")) == data


@pytest.mark.parametrize("mode", ["rb", "wb"])
def test_tell_of_a_closed_binary_handle_raises_as_a_host_file_s(volume, mode):
    handle = volume.open("/F", mode)
    handle.close()
    with pytest.raises(ValueError):
        handle.tell()


def test_a_reader_holds_no_bytes_after_its_volume_is_closed(library):
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    volume.write_bytes("/F", b"0123456789" * 10_000)
    binary, text = volume.open("/F", "rb"), volume.open("/F", "r")
    assert binary.read(3) == b"012" and text.read(3) == "012"  # (the io buffers hold 8 KiB more)
    volume.close()
    assert binary.closed and text.closed
    for use in (lambda: binary.read(20), lambda: text.read(20), lambda: binary.seek(0), binary.tell, text.readline):
        with pytest.raises(ValueError):
            use()


def test_a_reader_whose_buffer_was_detached_does_not_stop_volumes_closing(library):
    """``io.BufferedReader.detach()`` leaves a buffer without a raw reader: Volume.close
    raised AttributeError for it, leaving the volume open, and so did every later close of
    any volume in the process (rev27h F3)."""
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    volume.write_bytes("/F", b"0123456789")
    buffered = volume.open("/F", "rb")
    raw = buffered.detach()
    volume.close()
    with pytest.raises(ValueError):
        volume.read_bytes("/F")
    with pytest.raises(ValueError):
        raw.read(3)
    with library.open("PVOL1") as again:
        assert again.read_bytes("/F") == b"0123456789"
    assert buffered is not None  # (kept alive until here)
