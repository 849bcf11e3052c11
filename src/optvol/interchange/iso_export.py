"""export-iso: write a volume as an ISO 9660 image (level 3, Joliet, Rock Ridge; UDF bridge).

Our own writer (``iso_writer.py``) makes the image, with ``--udf`` a UDF bridge too
(``udf.py``). Every file keeps its modified time in every namespace, its bytes are
checked against their SHA-256 while they are copied (a damaged file fails the export with
CPF1F28), and the image is written to a temporary file beside the target that is
fsynced and renamed only at the end, so a failed export leaves nothing. *BACKUP volumes
can be exported: reading them here is not a user-program open.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from optvol import errors, model
from optvol.interchange.iso_writer import write_image
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

    def as_json(self) -> dict:
        return {"volume": self.volume, "file": self.file, "files": self.files,
                "directories": self.directories, "bytes": self.bytes, "udf": self.udf}


def export_iso(library: Library, *, vol: str, file: str | os.PathLike, now: datetime, udf: bool = False,
               progress: Progress | None = None, totals: Progress | None = None) -> ExportResult:
    """export-iso VOL FILE [--udf]: the volume as an ISO 9660 image at host path ``file``.

    ``now`` stamps the volume descriptors (the image's creation time). ``totals`` gets the
    files and bytes to write, ``progress`` those written so far (``iso_writer.write_image``).
    """
    volume_id = model.volume_id(vol)
    target = Path(file).absolute()
    library.check_host_target(target)
    if not target.parent.is_dir():
        raise errors.error("OPV0301", path=target.parent)
    if target.is_dir():
        raise errors.error("OPV0302", path=target, reason="it is a directory")
    with library.open(volume_id) as volume:
        (files, directories), size = _write(
            target, lambda fd: write_image(volume, fd, volume_id=volume_id, now=now, udf=udf, progress=progress,
                                           totals=totals))
    return ExportResult(volume=volume_id, file=str(target), files=files, directories=directories, bytes=size, udf=udf)


def _write(target: Path, produce: Callable[[int], tuple[int, int]]) -> tuple[tuple[int, int], int]:
    """Let ``produce`` write the image to a temporary file beside ``target``, fsync it, then
    rename it; return what ``produce`` returned and the image's size."""
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise errors.error("OPV0302", path=target, reason=exc.strerror or str(exc)) from None
    try:
        try:
            counts = produce(fd)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException as exc:
        os.unlink(temporary)
        if isinstance(exc, OSError):
            raise errors.error("OPV0302", path=target, reason=exc.strerror or str(exc)) from None
        raise
    return counts, size
