"""The volume image's commit protocol (DESIGN §3, image/image.py)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from conftest import data_path, dump_index, index_path, make_volume, meta, read_data
from optvol import errors
from optvol.image import schema
from optvol.image.image import VolumeImage
from optvol.image.records import Kind
from optvol.model import MediaType

SECTOR = 2048


def _size_in_sectors(library, vol="PVOL1", sector=SECTOR):
    size = os.path.getsize(data_path(library, vol))
    assert size % sector == 0, "the data partition holds whole sectors only"
    return size // sector


def test_new_volume_is_committed_to_its_end(library, primary):
    assert meta(library, "PVOL1", "committed_end") == _size_in_sectors(library) > 0


@pytest.mark.parametrize("size", [0, 1, SECTOR - 1, SECTOR, SECTOR + 1, 5 * SECTOR + 17])
def test_data_partition_ends_at_committed_end_after_each_write(library, primary, size):
    before = meta(library, "PVOL1", "committed_end")
    primary.write_bytes("/F", b"x" * size)
    after = meta(library, "PVOL1", "committed_end")
    assert after == _size_in_sectors(library)
    assert after - before == 1 + -(-size // SECTOR)  # one header sector plus the payload


def test_batch_of_writes_is_one_commit(library, primary):
    primary.mkdir("/D")
    with primary.batch():
        for i in range(20):
            primary.write_bytes(f"/D/F{i}", bytes([i]) * (i * 300))
    assert meta(library, "PVOL1", "committed_end") == _size_in_sectors(library)
    assert [primary.read_bytes(f"/D/F{i}") for i in range(20)] == [bytes([i]) * (i * 300) for i in range(20)]


def test_large_streamed_write_ends_at_committed_end(library, primary):
    payload = os.urandom(3 * 1024 * 1024 + 5)
    with primary.open("/BIG", "wb") as handle:
        handle.write(payload)
    assert meta(library, "PVOL1", "committed_end") == _size_in_sectors(library)
    assert primary.read_bytes("/BIG") == payload


def _append_garbage(library, vol="PVOL1", amount=3 * SECTOR + 100):
    with open(data_path(library, vol), "ab") as handle:
        handle.write(os.urandom(amount))


def test_torn_tail_cut_when_opened_while_idle(library, primary):
    primary.write_bytes("/A", b"a" * 5000)
    primary.close()
    committed = meta(library, "PVOL1", "committed_end")
    good = read_data(library, "PVOL1")
    _append_garbage(library)
    assert os.path.getsize(data_path(library, "PVOL1")) > committed * SECTOR
    with library.open("PVOL1") as volume:
        assert os.path.getsize(data_path(library, "PVOL1")) == committed * SECTOR
        assert read_data(library, "PVOL1") == good
        assert volume.read_bytes("/A") == b"a" * 5000


def test_torn_tail_cut_by_next_writer(library, primary):
    primary.write_bytes("/A", b"a" * 5000)
    committed = meta(library, "PVOL1", "committed_end")
    _append_garbage(library)  # appears while the volume is open: a writer elsewhere died
    info = primary.write_bytes("/B", b"b" * 3000)
    assert meta(library, "PVOL1", "committed_end") == _size_in_sectors(library) == committed + 1 + 2
    row = primary.image.conn.execute("SELECT sector FROM files WHERE name = 'B' AND live = 1").fetchone()
    assert row[0] == committed, "the new record starts at the old committed end, over the torn tail"
    assert primary.read_bytes("/B") == b"b" * 3000
    assert info.size == 3000
    assert primary.read_bytes("/A") == b"a" * 5000


def test_open_does_not_cut_an_active_writers_tail(library, primary):
    payload = os.urandom(200_000)
    with primary.batch():
        primary.write_bytes("/BIG", os.urandom(9 << 20))  # passes the flush size: on disk before commit
        with primary.open("/S", "wb") as handle:
            handle.write(payload)
        size_during = os.path.getsize(data_path(library, "PVOL1"))
        assert size_during > meta(library, "PVOL1", "committed_end") * SECTOR
        with library.open("PVOL1") as other:  # idle check must see the writer and leave its tail
            assert os.path.getsize(data_path(library, "PVOL1")) == size_during
            assert other.listdir("/") == []
    with library.open("PVOL1") as other:
        assert other.read_bytes("/S") == payload
        assert other.stat("/BIG").size == 9 << 20
        other.read_bytes("/BIG")  # verified, so no byte was cut


def test_failed_transaction_leaves_index_and_data_as_before(library, primary):
    primary.mkdir("/D")
    primary.write_bytes("/D/KEEP", b"keep" * 1000)
    index_before = dump_index(library, "PVOL1")
    data_before = read_data(library, "PVOL1")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with primary.batch():
            primary.write_bytes("/D/NEW", os.urandom(50_000))
            primary.write_bytes("/D/BIG", os.urandom(9 << 20))
            primary.write_bytes("/D/KEEP", b"changed")
            primary.mkdir("/E/F", parents=True)
            primary.set_attributes("/D/KEEP", read_only=True)
            primary.rename("/D", "/G")
            raise Boom
    assert dump_index(library, "PVOL1") == index_before
    assert read_data(library, "PVOL1") == data_before
    assert primary.listdir("/") == ["D"]
    assert primary.read_bytes("/D/KEEP") == b"keep" * 1000
    # The volume still works afterwards.
    primary.write_bytes("/D/AFTER", b"ok")
    assert primary.read_bytes("/D/AFTER") == b"ok"


def test_failed_rule_inside_one_call_leaves_everything_as_before(library, primary):
    primary.write_bytes("/A", b"a")
    index_before = dump_index(library, "PVOL1")
    data_before = read_data(library, "PVOL1")
    with pytest.raises(errors.ExistsError):
        primary.write_bytes("/A", b"b", replace=False)
    with pytest.raises(errors.NotFoundError):
        primary.write_bytes("/NO/A", b"b")
    assert dump_index(library, "PVOL1") == index_before
    assert read_data(library, "PVOL1") == data_before


def test_raw_transaction_that_raises_truncates_its_records(library, primary):
    image = primary.image
    data_before = read_data(library, "PVOL1")
    index_before = dump_index(library, "PVOL1")
    with pytest.raises(RuntimeError):
        with image.transaction() as tx:
            tx.append(Kind.FILE, {"path": "/X"}, b"z" * 20_000)
            tx._flush()
            tx._settle()  # the writer thread has written it
            assert os.path.getsize(data_path(library, "PVOL1")) > len(data_before)
            raise RuntimeError("die")
    assert read_data(library, "PVOL1") == data_before
    assert dump_index(library, "PVOL1") == index_before


def test_schema_version_is_stored(library, primary):
    assert meta(library, "PVOL1", "schema_version") == schema.SCHEMA_VERSION
    conn = sqlite3.connect(index_path(library, "PVOL1"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_newer_schema_version_is_refused(library, primary):
    primary.close()
    conn = sqlite3.connect(index_path(library, "PVOL1"))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (schema.SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(errors.DamagedError) as info:
        library.open("PVOL1")
    assert info.value.exit_code == 7
    assert info.value.message_id == "OPV0202"
    with pytest.raises(errors.OptvolError) as info:
        VolumeImage(library.root / "PVOL1.optvol")
    assert info.value.message_id == "OPV0202"
    # Refusing does not leave the lock held: an exclusive open of the directory's lock works.
    import fcntl

    fd = os.open(library.root / "PVOL1.optvol" / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def test_index_that_is_not_sqlite_is_damaged(library, primary):
    primary.close()
    for suffix in ("-wal", "-shm"):
        try:
            os.remove(index_path(library, "PVOL1") + suffix)
        except FileNotFoundError:
            pass
    with open(index_path(library, "PVOL1"), "wb") as handle:
        handle.write(b"this is not a database" * 300)
    with pytest.raises(errors.DamagedError) as info:
        library.open("PVOL1")
    assert info.value.exit_code == 7


def test_missing_data_partition_is_damaged(library, primary):
    primary.close()
    os.remove(data_path(library, "PVOL1"))
    with pytest.raises(errors.DamagedError):
        library.open("PVOL1")


def test_long_path_record_takes_two_header_sectors_at_1024(library):
    make_volume(library, "SMALL", medtype=MediaType.ERASE, blksize=1024)
    dirs = "/" + "/".join(["目录" * 30] * 4)
    name = "文件" * 17
    with library.open("SMALL") as volume:
        volume.mkdir(dirs, parents=True)
        volume.write_bytes(f"{dirs}/{name}", b"payload" * 100)
        volume.write_bytes("/SHORT", b"s")
        rows = dict(volume.image.conn.execute("SELECT name, header_sectors FROM files").fetchall())
        assert rows[name] == 2
        assert rows["SHORT"] == 1
        assert volume.read_bytes(f"{dirs}/{name}") == b"payload" * 100
        assert meta(library, "SMALL", "committed_end") == os.path.getsize(data_path(library, "SMALL")) // 1024
