"""PrivilegedWriter.write_files: many small files at once through the rules of Volume._store.

CPYOPT writes its small files this way (copying.py). The batch must leave exactly what
writing the files one by one leaves (records, index rows, space), and a file that breaks
a rule must fail alone, with nothing of it written.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta

import pytest

from conftest import FakeClock, make_volume
from optvol import errors
from optvol.checking import chkoptvol
from optvol.image import records
from optvol.library import Library
from optvol.model import MediaType, VolumeType
from optvol.privileged import SmallFile

T0 = 1_767_268_800_000_000


def _files(names: list[str], fill: bytes) -> list[SmallFile]:
    files = []
    for i, name in enumerate(names):
        data = fill * (i * 37 % 3000)
        files.append(SmallFile(name, data, hashlib.sha256(data).digest(), (T0 + i, T0 + 2 * i, T0 + 3 * i), i % 2 * 2))  # hidden or not
    return files


def _image(library: Library, vol: str) -> tuple[bytes, list[tuple], list[tuple]]:
    with library.open(vol) as volume:
        conn = volume.image.conn
        data = (volume.image.directory / "data.opv").read_bytes()
        return data, conn.execute("SELECT * FROM files ORDER BY id").fetchall(), conn.execute(
            "SELECT * FROM meta ORDER BY key").fetchall()


@pytest.mark.parametrize("type, medtype", [(VolumeType.BACKUP, MediaType.ERASE),  # HPOFS keeps old versions
                                           (VolumeType.PRIMARY, MediaType.DVD_RAM)])  # UDF frees them
def test_a_batch_leaves_what_one_by_one_leaves(tmp_path, type, medtype):
    names = ["A", "b.txt", "Größe ß", "目录", "E" * 40, "empty"]
    found = []
    for way in ("one by one", "batch"):
        library = Library(tmp_path / way, clock=FakeClock(step=timedelta(0)))  # every write at one time
        make_volume(library, "VOL1", type=type, medtype=medtype)
        with library.open("VOL1") as volume:
            for fill in (b"1", b"22"):  # the second round replaces every file
                with volume.backup_writer() if type is VolumeType.BACKUP else volume.copy_writer() as writer:
                    writer.make_dir("/D/SUB", created=T0)
                    files = _files(names, fill)
                    if way == "batch":
                        assert all(not isinstance(r, Exception) for r in writer.write_files("/D/SUB", files))
                    for f in files if way == "one by one" else []:
                        writer.write_file(f"/D/SUB/{f.name}", data=f.data, size=len(f.data), created=f.times[0],
                                          modified=f.times[1], attr_changed=f.times[2], flags=f.flags,
                                          verified_sha256=f.sha256)
        found.append(_image(library, "VOL1"))
    assert found[0] == found[1]
    assert len(found[0][1]) == 2 * len(names)
    _assert_zero_padded(*found[1][:2], sector_size=2048)


def _assert_zero_padded(data: bytes, rows: list[tuple], *, sector_size: int) -> None:
    """Every FILE record is padded with zero bytes after its body and after its payload (format.md §3.1)."""
    for row in rows:
        sector, header_sectors, size = row[7], row[8], row[9]
        header = data[sector * sector_size:(sector + header_sectors) * sector_size]
        body_length = int.from_bytes(header[64:68], "little")
        assert not any(header[records.FIXED_SIZE + body_length:])
        payload_end = (sector + header_sectors) * sector_size + size
        assert not any(data[payload_end:payload_end + (-size % sector_size)])


def test_each_file_that_breaks_a_rule_fails_alone(library):
    make_volume(library, "PVOL1", capacity=1 << 20)  # 486 sectors of 2048 bytes under the threshold
    with library.open("PVOL1") as volume:
        volume.mkdir("/D/TAKEN", parents=True)
        volume.write_bytes("/D/LOCKED", b"old")
        volume.set_attributes("/D/LOCKED", read_only=True)
        volume.write_bytes("/D/REPLACED", b"old")
        files = [
            SmallFile("FIRST", b"1", hashlib.sha256(b"1").digest(), (T0, T0, T0), 0),
            SmallFile("taken", b"2", hashlib.sha256(b"2").digest(), (T0, T0, T0), 0),  # a directory's name
            SmallFile("locked", b"3", hashlib.sha256(b"3").digest(), (T0, T0, T0), 0),  # read-only
            SmallFile("BIG", bytes(1_000_000), hashlib.sha256(bytes(1_000_000)).digest(), (T0, T0, T0), 0),
            SmallFile("replaced", b"4", hashlib.sha256(b"4").digest(), (T0, T0, T0), 0),
        ]
        with volume.copy_writer() as writer:
            results = writer.write_files("/D", files)
        assert [r.message_id if isinstance(r, errors.OptvolError) else r.path for r in results] == [
            "/D/FIRST", "OPV0108", "CPF1F37", "CPF1F61", "/D/replaced"]
        assert volume.read_bytes("/D/FIRST") == b"1" and volume.read_bytes("/D/LOCKED") == b"old"
        assert volume.read_bytes("/D/REPLACED") == b"4" and len(volume.versions("/D/REPLACED")) == 2
        assert not volume.exists("/D/BIG") and volume.stat("/D/TAKEN").is_dir
        used = volume.image.meta("used_sectors")
        # label, "/", /D, /D/TAKEN, LOCKED (2), its attributes, REPLACED twice (2 + 2), FIRST (2)
        assert used == 13 and volume.image.meta("committed_end") == used
    assert all(result.damaged == [] for result in chkoptvol(library, vol="PVOL1"))


def test_a_missing_directory_fails_every_file(library):
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("BVOL1") as volume, volume.backup_writer() as writer:
        results = writer.write_files("/NONE", _files(["A", "B"], b"x"))
    assert [r.message_id for r in results] == ["CPF1F02", "CPF1F02"]


def test_many_rows_index_alike_under_a_low_sqlite_parameter_limit(tmp_path):
    """More files than one INSERT takes; an SQLite that takes only 999 parameters (before 3.32)
    gets fewer rows per statement, and the same index."""
    names = [f"F{i:04d}" for i in range(600)]
    found = []
    for limit in (None, 999):
        library = Library(tmp_path / str(limit), clock=FakeClock(step=timedelta(0)))
        make_volume(library, "VOL1", type=VolumeType.BACKUP, medtype=MediaType.ERASE)
        with library.open("VOL1") as volume:
            if limit:
                volume.image.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
            with volume.backup_writer() as writer:
                writer.make_dir("/D", created=T0)
                assert all(not isinstance(r, Exception) for r in writer.write_files("/D", _files(names, b"x")))
        found.append(_image(library, "VOL1"))
    assert len(found[0][1]) == len(names)
    assert found[0] == found[1]
