"""The volume image's commit protocol (DESIGN §3, image/image.py)."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import sqlite3
import threading
import time

import pytest

from conftest import data_path, dump_index, index_path, make_volume, meta, read_data
from optvol import errors
from optvol.checking import chkoptvol
from optvol.copying import CopyRequest, cpyopt
from optvol.image import schema
from optvol.image.datapart import DataPartition
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


# ------------------------------------------------------------ records written past the page cache


def _copy_of_mixed_sizes(library, sector):
    """PVOL1 with files of every size class, copied by one CPYOPT to PVOL2: small files are
    laid out in pieces (written O_DIRECT where possible), the large ones streamed through the
    page cache, so pieces start on odd sectors inside pages the streamed writes touched."""
    make_volume(library, "PVOL1", blksize=sector)
    make_volume(library, "PVOL2", blksize=sector)
    rng = random.Random(sector)
    sizes = [0, 1, 700, sector - 1, sector, sector + 1, 3 * sector + 5]
    files = {}
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        with volume.batch():
            for i in range(1500):
                size = 300_000 + i if i % 100 == 7 else rng.choice(sizes)  # the large ones: > copy_select.SMALL_FILE
                files[f"/D/F{i}"] = rng.randbytes(size)
                volume.write_bytes(f"/D/F{i}", files[f"/D/F{i}"])
    result = cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/D", tovol="PVOL2", cpysubdir=True, crtdir=True),
                    now=library._clock())
    assert (result.copied, result.failed) == (len(files), 0)
    return files


def _assert_copied(library, files):
    [check] = chkoptvol(library, vol="PVOL2")
    assert check.damaged == [] and check.files_checked == len(files)
    with library.open("PVOL2") as volume:
        assert all(volume.read_bytes(path) == data for path, data in files.items())
    assert meta(library, "PVOL2", "committed_end") * SECTOR >= os.path.getsize(data_path(library, "PVOL2"))


@pytest.fixture
def direct_writes(monkeypatch):
    """Every os.pwrite, as whether it went past the page cache; ``refuse_after`` makes the
    direct ones after that many fail with ``refuse_with`` (EINVAL, as an unaligned write
    would; ``refused``: the files they were for)."""
    seen = {"direct": 0, "buffered": 0, "refused": [], "refuse_after": None, "refuse_with": errno.EINVAL}
    real = os.pwrite

    def pwrite(fd, data, offset):
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        if direct and seen["refuse_after"] is not None and seen["direct"] >= seen["refuse_after"]:
            seen["refused"].append(os.readlink(f"/proc/self/fd/{fd}"))
            raise OSError(seen["refuse_with"], os.strerror(seen["refuse_with"]))
        written = real(fd, data, offset)
        seen["direct" if direct else "buffered"] += 1
        return written

    monkeypatch.setattr(os, "pwrite", pwrite)
    return seen


def _o_direct_allowed(directory) -> bool:
    probe = directory / "probe"
    probe.write_bytes(b"")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_DIRECT))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("sector", [1024, 2048])
def test_records_go_past_the_page_cache_and_read_back_the_same(library, tmp_path, direct_writes, sector):
    files = _copy_of_mixed_sizes(library, sector)
    _assert_copied(library, files)
    if _o_direct_allowed(tmp_path):
        assert direct_writes["direct"] >= 3  # the pieces: 1,500 small files are more than one
    else:  # a file system that refuses O_DIRECT (tmpfs): every write goes through the page cache
        assert direct_writes["direct"] == 0


@pytest.mark.parametrize("refusal", [errno.EINVAL, errno.EOPNOTSUPP])
def test_refused_direct_write_falls_back_to_the_page_cache(library, tmp_path, direct_writes, refusal):
    if _o_direct_allowed(tmp_path):
        direct_writes["refuse_after"] = 2  # a few pieces go direct, then the device refuses
        direct_writes["refuse_with"] = refusal
    files = _copy_of_mixed_sizes(library, 2048)
    _assert_copied(library, files)
    # Refused once per data partition (the source's batch, then the copy), never tried again.
    assert sorted(direct_writes["refused"]) == ([data_path(library, "PVOL1"), data_path(library, "PVOL2")]
                                                if _o_direct_allowed(tmp_path) else [])


def test_no_o_direct_at_all_writes_through_the_page_cache(library, monkeypatch, direct_writes):
    real = os.open

    def refuse_direct(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_direct)
    files = _copy_of_mixed_sizes(library, 2048)
    _assert_copied(library, files)
    assert direct_writes["direct"] == 0


def test_no_buffered_write_while_a_direct_one_is_under_way(library, monkeypatch):
    """The kernel keeps O_DIRECT and the page cache coherent only if they do not write the
    same pages at once: ``Transaction`` settles the writer thread before streaming."""
    in_flight, clashes, lock = set(), [], threading.Lock()
    direct, write_at, copy_range = DataPartition.write_direct, DataPartition.write_at, DataPartition.copy_range

    def slow_direct(self, sector, data):
        with lock:
            in_flight.add(threading.get_ident())
        try:
            time.sleep(0.02)  # a slow disk: the main thread runs on meanwhile
            direct(self, sector, data)
        finally:
            with lock:
                in_flight.discard(threading.get_ident())

    def buffered(real):
        def write(self, *args, **kwargs):
            with lock:
                if in_flight - {threading.get_ident()}:
                    clashes.append(real.__name__)
            return real(self, *args, **kwargs)
        return write

    monkeypatch.setattr(DataPartition, "write_direct", slow_direct)
    monkeypatch.setattr(DataPartition, "write_at", buffered(write_at))
    monkeypatch.setattr(DataPartition, "copy_range", buffered(copy_range))
    files = _copy_of_mixed_sizes(library, 2048)
    _assert_copied(library, files)
    assert clashes == []


def test_copy_range_from_a_source_that_ends_early_is_damaged(tmp_path):
    source = tmp_path / "source"
    source.write_bytes(os.urandom(10_000))
    target = tmp_path / "data.opv"
    target.write_bytes(b"")
    partition = DataPartition(str(target), sector_size=2048, volume="TEST")
    fd = os.open(source, os.O_RDONLY)
    try:
        with pytest.raises(errors.DamagedError) as caught:
            partition.copy_range(source_fd=fd, source_offset=0, length=20_000, sector=0)
    finally:
        os.close(fd)
        partition.close()
    assert caught.value.message_id == "OPV0201" and "ends early" in caught.value.text


@pytest.mark.parametrize("refusal", [errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_kernel_copies_refused_are_done_through_a_buffer(tmp_path, monkeypatch, refusal):
    """Where the kernel copy (``sendfile``) is refused (no support for these files, say: a
    FUSE or an O_APPEND target refuses it with EINVAL), the kernel copy into a partition
    (CPYOPT's large files) copies the bytes anyway (export-iso writes the bytes it hashed)."""
    payload = os.urandom(9 * (1 << 20) + 123)  # more than one buffer
    source = tmp_path / "source"
    source.write_bytes(b"x" * 100 + payload)
    calls = []

    def refused(*args, **kwargs):
        calls.append(args)
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "sendfile", refused)
    (tmp_path / "data.opv").write_bytes(b"")
    partition = DataPartition(str(tmp_path / "data.opv"), sector_size=2048, volume="TEST")
    fd = os.open(source, os.O_RDONLY)
    try:
        partition.copy_range(source_fd=fd, source_offset=100, length=len(payload), sector=3)
        assert partition.read(3, len(payload)) == payload
    finally:
        os.close(fd)
        partition.close()
    assert calls  # the kernel was asked first


def test_a_failed_transaction_cuts_its_records_before_it_lets_another_writer_in(library, monkeypatch, tmp_path):
    """Review s22d F1: a failed transaction rolled back (SQLite's write lock released) and only
    then cut the data partition back to where it began: another process's writer could commit
    records there in between and lose them to that cut (its cp said done; the file then read
    as damaged). The cut now comes while the write lock is held: another process's writer
    waits for it, and its records stay."""
    import subprocess
    import sys

    make_volume(library, "PVOL1")
    cut_inside: list[bool] = []
    real = DataPartition.truncate

    def truncate(self, sectors):
        cut_inside.append(volume.image.conn.in_transaction)
        if len(cut_inside) == 1:  # another process's writer tries now; it must wait for the lock
            other = subprocess.run(
                [sys.executable, "-c", "import sys, optvol; v = optvol.open_library(sys.argv[1]).open('PVOL1');"
                 " v.image.conn.execute('PRAGMA busy_timeout = 0'); v.write_bytes('/OTHER', b'other')",
                 str(library.root)], capture_output=True, text=True, timeout=60)
            cut_inside.append("OPV0004" in other.stderr)
        real(self, sectors)

    with library.open("PVOL1") as volume:
        volume.write_bytes("/keep", b"kept" * 1000)
        monkeypatch.setattr(DataPartition, "truncate", truncate)
        with pytest.raises(RuntimeError), volume.batch():
            volume.write_bytes("/failed", os.urandom(300_000))
            volume.image.data.sync()  # (its records on disk, past the committed end)
            raise RuntimeError("the program fails inside its batch")
        monkeypatch.undo()
    assert cut_inside[:2] == [True, True]  # cut under the lock; the other writer was kept out meanwhile
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == ["keep"]
    assert chkoptvol(library, vol="PVOL1")[0].damaged == []
