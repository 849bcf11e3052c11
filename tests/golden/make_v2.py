"""Build the golden images of index schema 2: ``tests/golden/v2/GPRIM.optvol`` and ``GBACK.optvol``.

One library's two volumes, written with a fixed clock by the code of index schema 2
(commit 741c4ed): a *PRIMARY volume GPRIM and a *BACKUP volume GBACK of it. A later
schema (3) migrates such indexes; its tests copy these two images into a fresh library
and check what the migration makes of them. Run it only when a new golden image is wanted
(never over an existing version's), with the schema 2 code first on the path, from a
worktree of that commit::

    git worktree add --detach /tmp/v2 741c4ed
    cd /tmp/v2 && PYTHONPATH=/tmp/v2/src python /path/to/tests/golden/make_v2.py

It refuses to run with any other schema's code. The story, each step with the clock set
to its time (minutes after T0):

- 1 mkdir /DOCS; 2 write /DOCS/readme.txt; 3 write /DOCS/notes.txt; 4 mkdir /DATA;
  5 write /DATA/numbers.bin, all on GPRIM;
- 60 (BACKUP_TIME) a CPYOPT of GPRIM / with its subdirectories onto the *BACKUP GBACK,
  SLTFILE(*CHANGED): GBACK's complete ranges of /, /DOCS, /DATA and the volume are
  now *BEGIN..60;
- the clock is set BACK to 30 (LATE_TIME) and /DOCS/late.txt is written on GPRIM. Its
  change time 30 lies inside the backup's range *BEGIN..60 although GBACK does not hold
  it: the known bug of schema 2 (README, issue 6) that schema 3 fixes. With schema 2, each
  later *CHANGED backup skips late.txt for good;
- 70 (AFTER_TIME) write /DATA/after.bin on GPRIM: a normal change after the range,
  which the next *CHANGED backup copies.

No backup runs after the first one.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from optvol.copying import CopyRequest, cpyopt
from optvol.image import schema
from optvol.initialize import inzopt
from optvol.library import Library
from optvol.model import MediaType, VolumeType

TARGET = Path(__file__).resolve().parent / "v2"
PRIMARY = "GPRIM"
BACKUP = "GBACK"
VOLUMES = (PRIMARY, BACKUP)
SCHEMA = 2
T0 = datetime(2025, 6, 2, 9, 0, 0, tzinfo=timezone.utc)
README = b"the readme of the schema 2 golden library\n"
NOTES = b"notes: backed up at minute 60\n"
NUMBERS = bytes(range(256)) * 12  # 3072 bytes: three 1024-byte sectors exactly
LATE = b"written after the backup, with the clock set back\n"
AFTER = b"after\n"


class SetClock:
    """A clock that says what it is told (each step below sets it)."""

    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


BACKUP_TIME = at(60)
LATE_TIME = at(30)
AFTER_TIME = at(70)


def build(library_dir: Path) -> Path:
    clock = SetClock(T0)
    library = Library(library_dir, clock=clock)
    inzopt(library, vol=PRIMARY, now=T0, medtype=MediaType.ERASE, capacity=4 << 20, blksize=1024,
           text="optvol golden image v2, primary")
    inzopt(library, vol=BACKUP, now=T0, type=VolumeType.BACKUP, medtype=MediaType.ERASE, capacity=4 << 20,
           blksize=1024, text="optvol golden image v2, backup")
    with library.open(PRIMARY) as volume:
        clock.moment = at(1)
        volume.mkdir("/DOCS")
        clock.moment = at(2)
        volume.write_bytes("/DOCS/readme.txt", README)
        clock.moment = at(3)
        volume.write_bytes("/DOCS/notes.txt", NOTES)
        clock.moment = at(4)
        volume.mkdir("/DATA")
        clock.moment = at(5)
        volume.write_bytes("/DATA/numbers.bin", NUMBERS)
    clock.moment = BACKUP_TIME
    result = cpyopt(library, CopyRequest(fromvol=PRIMARY, frompath="/", tovol=BACKUP, totype=VolumeType.BACKUP,
                                         cpysubdir=True), now=BACKUP_TIME)
    if result.failed or result.copied != 3:
        raise SystemExit(f"the backup run did not copy the three files: {result.as_json()}")
    with library.open(PRIMARY) as volume:
        clock.moment = LATE_TIME  # set back: inside the backup's range *BEGIN..BACKUP_TIME
        volume.write_bytes("/DOCS/late.txt", LATE)
        clock.moment = AFTER_TIME
        volume.write_bytes("/DATA/after.bin", AFTER)
    return library_dir


def main() -> int:
    if schema.SCHEMA_VERSION != SCHEMA:
        print(f"this optvol ({Path(schema.__file__).parent.parent}) writes index schema "
              f"{schema.SCHEMA_VERSION}, not {SCHEMA}: run it with the code of commit 741c4ed", file=sys.stderr)
        return 1
    if TARGET.exists():
        print(f"{TARGET} exists; a golden image is never rewritten", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        library_dir = build(Path(scratch) / "lib")
        images = [library_dir / f"{volume}.optvol" for volume in VOLUMES]
        for image in images:
            conn = sqlite3.connect(image / "index.sqlite")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        for image in images:
            (TARGET / image.name).mkdir(parents=True)
            for name in ("index.sqlite", "data.opv"):
                shutil.copyfile(image / name, TARGET / image.name / name)
    print(f"wrote {TARGET} ({', '.join(image.name for image in images)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
