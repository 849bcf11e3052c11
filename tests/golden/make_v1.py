"""Build the golden image of format version 1: ``tests/golden/v1/GOLDEN1.optvol``.

A tiny volume written with a fixed clock: two directories, three files, one of them
replaced by a second version, and one made read-only. ``tests/test_golden.py`` reads it
with the current code, so images written by this version stay readable. Run it from the
project root only when a new golden image is wanted (never over an existing version's)::

    python tests/golden/make_v1.py
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from optvol.initialize import inzopt
from optvol.library import Library
from optvol.model import MediaType

TARGET = Path(__file__).resolve().parent / "v1" / "GOLDEN1.optvol"
T0 = datetime(2024, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
README_V1 = b"first version of the readme\n"
README_V2 = b"second version of the readme, a little longer\n"
NUMBERS = bytes(range(256)) * 12  # 3072 bytes: three 1024-byte sectors exactly
EMPTY = b""


class SetClock:
    """A clock that says what it is told (each step below sets it)."""

    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def build(library_dir: Path) -> Path:
    clock = SetClock(T0)
    library = Library(library_dir, clock=clock)
    inzopt(library, vol="GOLDEN1", now=T0, medtype=MediaType.ERASE, capacity=4 << 20, blksize=1024,
           text="optvol golden image v1")
    with library.open("GOLDEN1") as volume:
        clock.moment = at(1)
        volume.mkdir("/DOCS")
        clock.moment = at(2)
        volume.mkdir("/DATA")
        clock.moment = at(3)
        volume.write_bytes("/DOCS/readme.txt", README_V1)
        clock.moment = at(4)
        volume.write_bytes("/DATA/numbers.bin", NUMBERS)
        clock.moment = at(5)
        volume.write_bytes("/DATA/empty.dat", EMPTY)
        clock.moment = at(6)
        volume.write_bytes("/DOCS/readme.txt", README_V2)
        clock.moment = at(7)
        volume.set_attributes("/DATA/numbers.bin", read_only=True)
    return library_dir / "GOLDEN1.optvol"


def main() -> int:
    if TARGET.exists():
        print(f"{TARGET} exists; a golden image is never rewritten", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        image = build(Path(scratch) / "lib")
        conn = sqlite3.connect(image / "index.sqlite")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        TARGET.mkdir(parents=True)
        for name in ("index.sqlite", "data.opv"):
            shutil.copyfile(image / name, TARGET / name)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
