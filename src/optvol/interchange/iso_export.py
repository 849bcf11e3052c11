"""export-iso: write a volume as an ISO 9660 image (level 3, Joliet, Rock Ridge; UDF bridge).

Our own writer (``iso_writer.py``) makes the image, with ``--udf`` a UDF bridge too
(``udf.py``). Every file keeps its modified time in every namespace, its bytes are
checked against their SHA-256 while they are copied (a damaged file fails the export with
CPF1F28), and the image is written to a temporary file beside the target that is
fsynced and renamed only at the end, so a failed export leaves nothing. A symbolic link
is written through (the image replaces the file it names, or is made there); a target
that is no regular file (a device, a FIFO) is refused: renaming over it would replace
the node, and nothing would reach the device. A *BACKUP volume is not exported (OPV0101):
only CPYOPT reads its files (DESIGN §1), and an image any program reads, or imports as a
primary, would hand them out (rev28b F1); restore it onto a primary with CPYOPT first.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from optvol import errors, host_names, host_sync, model
from optvol.interchange.iso_writer import Renamed, Renames, write_image
from optvol.library import Library
from optvol.model import Progress


@dataclass(frozen=True)
class ExportResult:
    """What export-iso wrote."""

    volume: str
    file: str
    files: int
    directories: int
    bytes: int
    udf: bool
    renamed: int = 0  # entries whose Rock Ridge (or UDF) name is not their name: the format cannot hold it
    renamed_entries: tuple[Renamed, ...] = ()  # the first 10,000 of them

    def as_json(self) -> dict:
        return {"volume": self.volume, "file": self.file, "files": self.files,
                "directories": self.directories, "bytes": self.bytes, "udf": self.udf, "renamed": self.renamed,
                "renamed_entries": [entry.as_json() for entry in self.renamed_entries]}


def export_iso(library: Library, *, vol: str, file: str | os.PathLike, now: datetime, udf: bool = False,
               progress: Progress | None = None, totals: Progress | None = None) -> ExportResult:
    """export-iso VOL FILE [--udf]: the volume as an ISO 9660 image at host path ``file``.

    ``now`` stamps the volume descriptors (the image's creation time). ``totals`` gets the
    files and bytes to write, ``progress`` those written so far (``iso_writer.write_image``).
    """
    volume_id = model.volume_id(vol)
    target = Path(os.path.realpath(Path(file).absolute()))  # a symbolic link is written through, at its target
    library.check_host_target(target)
    host_names.check_target_directory(target.parent)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise errors.error("OPV0302", path=target, reason=exc.strerror or str(exc)) from None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise errors.error("OPV0302", path=target, reason="it is a directory")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise errors.error("OPV0302", path=target, reason="it is not a regular file (a device, a FIFO or a socket);"
                                                          " export-iso writes an image file")
    mode = None if existing is None else stat.S_IMODE(existing.st_mode) & 0o777  # keep the replaced file's
    with library.open(volume_id) as volume:
        volume.check_user_access("export-iso (an image any program reads)")
        (files, directories, renames), size = _write(
            target, mode, lambda fd: write_image(volume, fd, volume_id=volume_id, now=now, udf=udf, progress=progress,
                                                 totals=totals))
    return ExportResult(volume=volume_id, file=str(target), files=files, directories=directories, bytes=size, udf=udf,
                        renamed=renames.count, renamed_entries=tuple(renames.listed))


def _write(target: Path, mode: int | None,
           produce: Callable[[int], tuple[int, int, Renames]]) -> tuple[tuple[int, int, Renames], int]:
    """Let ``produce`` write the image to a new file beside ``target``, fsync it, then put it
    in place (``host_names.put_in_place``); return what ``produce`` returned and the image's
    size. The image gets the ``mode`` of the file it replaces, or (None) the mode of any new
    file: 0o666 less the umask."""
    try:
        fd, temporary = host_names.new_file_beside(target, mode)
    except OSError as exc:
        raise errors.error("OPV0302", path=target, reason=exc.strerror or str(exc)) from None
    try:
        try:
            counts = produce(fd)
            os.fsync(fd)
            size = os.fstat(fd).st_size
            host_names.put_in_place(fd, temporary, target)
            host_sync.sync_names(os.path.dirname(os.path.abspath(target)))  # its name too (hunt29e F1)
        finally:
            os.close(fd)
    except BaseException as exc:
        host_names.discard(None, temporary)
        if isinstance(exc, OSError):
            raise errors.error("OPV0302", path=target, reason=exc.strerror or str(exc)) from None
        raise
    return counts, size
