"""Old images stay readable: the golden image of format version 1 read with the current code.

``tests/golden/v1/GOLDEN1.optvol`` was written by ``tests/golden/make_v1.py`` with a fixed
clock. Each test copies it into a library in tmp_path (the golden files are never opened
in place) and reads it: through the Python API, and through an independent reader of the
data partition written from ``docs/format.md`` alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import struct
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from optvol import errors
from optvol.library import Library
from optvol.model import MediaFormat, MediaType, VolumeType, to_micros

GOLDEN = Path(__file__).resolve().parent / "golden" / "v1" / "GOLDEN1.optvol"
sys.path.insert(0, str(GOLDEN.parent.parent))
import make_v1  # noqa: E402  (the constants the image was written with)

T0 = datetime(2024, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
SECTOR = 1024


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class FixedClock:
    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def golden_library(tmp_path) -> Library:
    library = Library(tmp_path / "lib", clock=FixedClock(datetime(2030, 1, 1, tzinfo=timezone.utc)))
    shutil.copytree(GOLDEN, library.root / "GOLDEN1.optvol")
    return library


def test_golden_files_are_checkpointed_and_alone():
    assert sorted(p.name for p in GOLDEN.iterdir()) == ["data.opv", "index.sqlite"]
    assert (GOLDEN / "data.opv").stat().st_size == 14 * SECTOR


def test_make_v1_constants_match_what_this_test_expects():
    assert make_v1.T0 == T0
    assert len(make_v1.NUMBERS) == 3 * SECTOR


def test_label(golden_library):
    assert golden_library.volume_ids() == ["GOLDEN1"]
    with golden_library.open("golden1") as volume:
        info = volume.info()
    assert (info.volume, info.type, info.media_type, info.media_format) == (
        "GOLDEN1", VolumeType.PRIMARY, MediaType.ERASE, MediaFormat.HPOFS)
    assert (info.sector_size, info.capacity, info.threshold) == (SECTOR, 4 << 20, 95)
    assert info.text == "optvol golden image v1"
    assert info.created == T0 and info.last_referenced == at(7)
    assert info.used == 14 * SECTOR and info.primary_volume is None and info.backup is None
    assert (info.files, info.directories) == (3, 3)


def test_directories_files_and_bytes(golden_library):
    with golden_library.open("GOLDEN1") as volume:
        assert volume.listdir("/") == ["DATA", "DOCS"]
        assert volume.listdir("/DATA") == ["empty.dat", "numbers.bin"]
        assert volume.read_bytes("/DOCS/readme.txt") == make_v1.README_V2
        assert volume.read_bytes("/docs/README.TXT") == make_v1.README_V2  # case-insensitive lookups
        assert volume.read_bytes("/DATA/numbers.bin") == make_v1.NUMBERS
        assert volume.read_bytes("/DATA/empty.dat") == b""
        assert [d.path for d in volume.iter_dirs("/")] == ["/", "/DATA", "/DOCS"]
        assert volume.stat("/DOCS").created == at(1)


def test_dates_flags_and_versions(golden_library):
    with golden_library.open("GOLDEN1") as volume:
        readme = volume.stat("/DOCS/readme.txt")
        assert (readme.created, readme.modified, readme.attr_changed) == (at(3), at(6), at(3))
        assert readme.version == 2 and readme.size == len(make_v1.README_V2)
        assert readme.sha256 == hashlib.sha256(make_v1.README_V2).hexdigest()
        numbers = volume.stat("/DATA/numbers.bin")
        assert (numbers.created, numbers.modified, numbers.attr_changed) == (at(4), at(4), at(7))
        assert numbers.read_only and not numbers.hidden
        versions = volume.versions("/DOCS/readme.txt")
        assert [v.version for v in versions] == [2, 1]
        assert versions[1].sha256 == hashlib.sha256(make_v1.README_V1).hexdigest()
        assert versions[1].modified == at(3)
        with pytest.raises(errors.NotAllowedError):
            volume.remove("/DATA/numbers.bin")  # the read-only flag is still enforced


def test_current_code_can_write_to_an_old_image(golden_library):
    with golden_library.open("GOLDEN1") as volume:
        volume.write_bytes("/DOCS/new.txt", b"written by today's optvol")
    with golden_library.open("GOLDEN1") as volume:
        assert volume.read_bytes("/DOCS/new.txt") == b"written by today's optvol"
        assert volume.read_bytes("/DOCS/readme.txt") == make_v1.README_V2
        assert volume.info().used == 16 * SECTOR


def test_index_as_format_md_describes_it(golden_library):
    conn = sqlite3.connect(golden_library.root / "GOLDEN1.optvol" / "index.sqlite")
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta == {"schema_version": 1, "committed_end": 14, "next_sequence": 10, "used_sectors": 14}
    assert conn.execute("SELECT created, last_referenced FROM label").fetchone() == (to_micros(T0), to_micros(at(7)))
    dirs = conn.execute("SELECT id, parent, name, path, path_key, sector, live FROM dirs ORDER BY id").fetchall()
    assert dirs == [(1, None, "", "/", "/", 1, 1), (2, 1, "DOCS", "/DOCS", "/DOCS", 2, 1), (3, 1, "DATA", "/DATA", "/DATA", 3, 1)]
    files = conn.execute("SELECT name, name_key, live, version, prev, sector, header_sectors, size, flags FROM files ORDER BY id").fetchall()
    assert files == [
        ("readme.txt", "README.TXT", 0, 1, None, 4, 1, len(make_v1.README_V1), 0),
        ("numbers.bin", "NUMBERS.BIN", 1, 1, None, 6, 1, 3072, 1),
        ("empty.dat", "EMPTY.DAT", 1, 1, None, 10, 1, 0, 0),
        ("readme.txt", "README.TXT", 1, 2, 1, 11, 1, len(make_v1.README_V2), 0),
    ]
    conn.close()


def test_opening_migrates_the_index_to_the_current_schema(golden_library):
    """Schema 2 (docs/format.md §6): each directory keeps its number of live files. Schema 3:
    the volume keeps the highest change time it gave (the latest of the image: the
    attribute change at 7 minutes), and ranges what their run saw (none here). Schema 4:
    finer name keys (its ASCII names keep theirs)."""
    with golden_library.open("GOLDEN1") as volume:
        assert volume.listdir("/DATA") == ["empty.dat", "numbers.bin"]
    conn = sqlite3.connect(golden_library.root / "GOLDEN1.optvol" / "index.sqlite")
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (5,)
    # /DOCS: readme.txt (version 2 live, version 1 not); /DATA: numbers.bin and empty.dat.
    assert conn.execute("SELECT path, live_files, backup_seen FROM dirs ORDER BY id").fetchall() == [
        ("/", 0, None), ("/DOCS", 1, None), ("/DATA", 2, None)]
    assert conn.execute("SELECT value FROM meta WHERE key = 'changed_high'").fetchone() == (to_micros(at(7)),)
    assert conn.execute("SELECT backup_seen FROM label").fetchone() == (None,)
    conn.close()
    with golden_library.open("GOLDEN1") as volume:  # and the count goes on from there
        volume.write_bytes("/DATA/more.bin", b"more")
        assert volume.image.conn.execute("SELECT live_files FROM dirs WHERE path = '/DATA'").fetchone() == (3,)
        # The library's clock reads 2030: the change is stamped with it, and the mark follows.
        assert volume.image.meta("changed_high") == to_micros(datetime(2030, 1, 1, tzinfo=timezone.utc))


# --------------------------------------------------------------------- an independent reader


def read_records(data: bytes, *, sector_size: int, committed_end: int) -> list[dict]:
    """Walk the data partition as docs/format.md §3 specifies, with no optvol code."""
    found, sector = [], 0
    while sector < committed_end:
        start = sector * sector_size
        magic, version, kind, reserved, header_sectors, sequence, size, sha, body_len, crc = struct.unpack_from(
            "<8sHBBIQQ32sII", data, start)
        assert (magic, version, reserved) == (b"OPTVOLR1", 1, 0)
        header = bytearray(data[start : start + header_sectors * sector_size])
        struct.pack_into("<I", header, 68, 0)
        assert zlib.crc32(header) == crc
        assert not any(header[72 + body_len :])
        body = json.loads(header[72 : 72 + body_len].decode("utf-8"))
        payload_start = start + header_sectors * sector_size
        payload = data[payload_start : payload_start + size]
        assert hashlib.sha256(payload).digest() == sha
        payload_sectors = -(-size // sector_size)
        assert not any(data[payload_start + size : payload_start + payload_sectors * sector_size])
        found.append({"sector": sector, "kind": kind, "sequence": sequence, "body": body, "payload": payload,
                      "sectors": header_sectors + payload_sectors})
        sector += header_sectors + payload_sectors
    assert sector == committed_end
    return found


def test_data_partition_as_format_md_describes_it():
    data = (GOLDEN / "data.opv").read_bytes()
    records = read_records(data, sector_size=SECTOR, committed_end=14)
    assert [r["kind"] for r in records] == [1, 2, 2, 2, 3, 3, 3, 3, 7]
    assert [r["sequence"] for r in records] == list(range(1, 10))
    assert [r["sector"] for r in records] == [0, 1, 2, 3, 4, 6, 10, 11, 13]
    assert sum(r["sectors"] for r in records) == 14  # HPOFS: everything is charged
    assert all(r["body"]["volume"] == "GOLDEN1" for r in records)
    label = records[0]["body"]["label"]
    assert label["volume"] == "GOLDEN1" and label["sector_size"] == SECTOR and label["created"] == to_micros(T0)
    assert [r["body"]["path"] for r in records[1:4]] == ["/", "/DOCS", "/DATA"]
    files = records[4:8]
    assert [(f["body"]["path"], f["body"]["version"], f["payload"]) for f in files] == [
        ("/DOCS/readme.txt", 1, make_v1.README_V1),
        ("/DATA/numbers.bin", 1, make_v1.NUMBERS),
        ("/DATA/empty.dat", 1, b""),
        ("/DOCS/readme.txt", 2, make_v1.README_V2),
    ]
    assert files[3]["body"]["created"] == to_micros(at(3)) and files[3]["body"]["modified"] == to_micros(at(6))
    assert records[8]["body"] == {"volume": "GOLDEN1", "path": "/DATA/numbers.bin", "flags": 1, "time": to_micros(at(7))}


def test_independent_reader_rejects_a_flipped_bit():
    data = bytearray((GOLDEN / "data.opv").read_bytes())
    data[4 * SECTOR + 100] ^= 0x01  # inside the body of the first FILE header
    with pytest.raises(AssertionError):
        read_records(bytes(data), sector_size=SECTOR, committed_end=14)
