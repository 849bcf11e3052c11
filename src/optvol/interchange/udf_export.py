"""export-iso --udf: the image made by pycdlib, with a UDF bridge beside ISO 9660, Joliet and Rock Ridge.

Without ``--udf`` our own writer (``iso_writer.py``) makes the image; UDF's descriptors,
tags and checksums are left to pycdlib here.

pycdlib workarounds (notes/pycdlib.md): it stamps every record with ``time.time()`` when
added, so the clock it sees is set to the entry's time around each add call; it keeps
every file object given to ``add_fp`` until ``write_fp``, so the objects handed over
hold no descriptor (they read through the volume's open data partition). Directories
deeper than eight levels are relocated by pycdlib (Rock Ridge ``RR_MOVED``).
"""

from __future__ import annotations

import os
import time as real_time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pycdlib
import pycdlib.pycdlib
import pycdlib.udf
from pycdlib.pycdlibexception import PyCdlibException

from optvol import errors
from optvol.gc_pause import no_cyclic_gc
from optvol.interchange.names import Namer
from optvol.volume import Volume
from optvol.volume_rows import READ_ONLY, FileRow

WRITE_BLOCK = 1 << 20
FILE_MODE = 0o100644
READ_ONLY_MODE = 0o100444
DIR_MODE = 0o040755


def write_udf_image(volume: Volume, fd: int, *, volume_id: str, now: datetime) -> tuple[int, int]:
    """Write the volume as an image with a UDF bridge to host file ``fd``; return (files, directories)."""
    with volume.snapshot(), no_cyclic_gc(), _pycdlib_clock(now.timestamp()) as clock:
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", udf="2.60",
                vol_ident=volume_id, sys_ident="OPTVOL", app_ident_str="OPTVOL")
        try:
            files, directories = _fill(iso, volume, clock)
            with os.fdopen(os.dup(fd), "wb", buffering=0) as handle:
                iso.write_fp(handle, blocksize=WRITE_BLOCK)
        except PyCdlibException as exc:
            raise errors.error("OPV0704", volume=volume_id, reason=str(exc)) from None
        finally:
            iso.close()
    return files, directories


class _Clock:
    """Stands in for the ``time`` module inside pycdlib: ``time()`` returns ``now``.

    Only ``time()`` is ours; pycdlib's other uses of the module (conversions) pass through.
    """

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(real_time, name)


@contextmanager
def _pycdlib_clock(now: float) -> Iterator[_Clock]:
    """Let the caller set the time pycdlib stamps on the records it adds (starting at ``now``)."""
    clock = _Clock(now)
    modules = (pycdlib.pycdlib, pycdlib.udf)
    saved = [module.time for module in modules]
    for module in modules:
        module.time = clock
    try:
        yield clock
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.time = original


class _Payload:
    """A read-only file object over one file version for pycdlib.

    It holds no descriptor of its own. Reads stream through ``Volume.verified_chunks``;
    the read that reaches the end also runs the SHA-256 check, so damaged data raises
    CPF1F28 before the last bytes are handed over. A seek anywhere but the current
    position (multi-extent files) restarts the stream from the beginning.
    """

    mode = "rb"  # pycdlib checks for binary mode

    def __init__(self, volume: Volume, row: FileRow, path: str):
        self._volume, self._row, self._path = volume, row, path
        self._chunks: Iterator[bytes] | None = None
        self._chunk, self._offset = b"", 0
        self._streamed = 0  # bytes of the stream consumed so far
        self._position = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._row.size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        if self._chunks is None or self._position != self._streamed:
            self._restart()
        remaining = self._row.size - self._position
        data = self._take(remaining if size < 0 else min(size, remaining))
        self._position = self._streamed
        if self._position == self._row.size:
            for _ in self._chunks:  # runs the SHA-256 check at the end of the stream
                pass
        return data

    def _restart(self) -> None:
        self._chunks = self._volume.verified_chunks(self._row, self._path)
        self._chunk, self._offset, self._streamed = b"", 0, 0
        while self._streamed < self._position:
            self._take(min(self._position - self._streamed, WRITE_BLOCK))

    def _take(self, wanted: int) -> bytes:
        parts = []
        while wanted > 0:
            if self._offset == len(self._chunk):
                self._chunk, self._offset = next(self._chunks), 0
            if self._offset == 0 and wanted >= len(self._chunk):
                piece = self._chunk
            else:
                piece = self._chunk[self._offset:self._offset + wanted]
            self._offset += len(piece)
            self._streamed += len(piece)
            wanted -= len(piece)
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)


@dataclass
class _Place:
    """Where a volume directory lives in each namespace, and the names it has handed out."""

    iso: str
    joliet: str
    udf: str
    namer: Namer

    def child(self, kind: str, name: str) -> tuple[str, str, str, str]:
        """(ISO path, Joliet path, UDF path, Rock Ridge name) of entry ``name`` of this directory."""
        iso_name = self.namer.iso_dir(name) if kind == "dir" else self.namer.iso_file(name)
        return (_join(self.iso, iso_name), _join(self.joliet, self.namer.joliet(name)),
                _join(self.udf, self.namer.udf(name)), self.namer.rock_ridge(name))


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def _fill(iso: pycdlib.PyCdlib, volume: Volume, clock: _Clock) -> tuple[int, int]:
    """Add every directory, then every file, of the volume; return (files, directories)."""
    places = {"/": _Place("/", "/", "/", Namer())}
    files = directories = 0
    for directory in volume.iter_dirs("/"):
        if directory.path == "/":
            continue
        parent_path, _, name = directory.path.rpartition("/")
        iso_path, joliet_path, udf_path, rr_name = places[(parent_path or "/").upper()].child("dir", name)
        clock.now = directory.created.timestamp()
        iso.add_directory(iso_path=iso_path, rr_name=rr_name, joliet_path=joliet_path,
                          udf_path=udf_path, file_mode=DIR_MODE)
        places[directory.path.upper()] = _Place(iso_path, joliet_path, udf_path, Namer())
        directories += 1
    for dir_path, row in volume.iter_file_rows("/", recursive=True):
        iso_path, joliet_path, udf_path, rr_name = places[dir_path.upper()].child("file", row.name)
        clock.now = row.modified / 1_000_000
        iso.add_fp(_Payload(volume, row, row.path(dir_path)), row.size, iso_path=iso_path, rr_name=rr_name,
                   joliet_path=joliet_path, udf_path=udf_path,
                   file_mode=READ_ONLY_MODE if row.flags & READ_ONLY else FILE_MODE)
        files += 1
    return files, directories
