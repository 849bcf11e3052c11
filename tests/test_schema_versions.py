"""Indexes of other schema versions (docs/format.md §6): an older one is brought forward only
with the volume to this process alone, and a newer one is never written or rebuilt.

Two optvol versions may share a library (two machines). An older optvol that has a volume
open goes on writing by its own rules (name keys, counts) into whatever index it finds, so
the upgrade waits for it to close the volume; and this optvol, meeting an index a newer one
has brought forward, neither writes into it nor rebuilds it by its own rules.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shutil
import sqlite3
import threading
import time

import pytest

from conftest import FakeClock, make_volume
from integrity_helpers import downgrade_to_schema_3
from optvol import errors
from optvol.image import image as image_mod
from optvol.image import locks, schema
from optvol.library import Library
from optvol.model import MediaType
from optvol.recovery import recover


def _schema_of(index) -> int:
    conn = sqlite3.connect(index)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        conn.close()


def _set_schema(index, version: int) -> None:
    conn = sqlite3.connect(index)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.close()


def _held_open(library, vol: str) -> int:
    """A shared open lock on the volume, as another process that has it open holds one."""
    fd = os.open(library.root / f"{vol}.optvol" / locks.LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


@pytest.fixture
def old_volume(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/straße.txt", b"old")
    index = library.root / "PVOL1.optvol" / "index.sqlite"
    downgrade_to_schema_3(index)
    return index


def test_an_older_index_open_elsewhere_is_not_upgraded_under_it(library, old_volume, monkeypatch):
    """The upgrade waited for nothing but SQLite's write lock: an older optvol that had the
    volume open then wrote old keys into the new schema (straße.txt listed, not found, and
    replaced by a write to STRASSE.TXT). Now the open waits for the volume to be free, then
    refuses (OPV0004), and the index stays as it was."""
    monkeypatch.setattr(locks, "UPGRADE_WAIT", 0.3)
    held = _held_open(library, "PVOL1")
    try:
        started = time.monotonic()
        with pytest.raises(errors.OptvolError) as caught:
            library.open("PVOL1")
        assert caught.value.message_id == "OPV0004" and time.monotonic() - started >= 0.3
        assert _schema_of(old_volume) == 3
    finally:
        os.close(held)
    with library.open("PVOL1") as volume:  # alone now: brought forward
        volume.write_bytes("/STRASSE.TXT", b"new")
        assert volume.read_bytes("/straße.txt") == b"old" and volume.read_bytes("/strasse.txt") == b"new"
    assert _schema_of(old_volume) == schema.SCHEMA_VERSION


def test_the_upgrade_goes_ahead_once_the_other_process_closes_the_volume(library, old_volume):
    held = _held_open(library, "PVOL1")
    threading.Timer(0.3, os.close, (held,)).start()
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/STRAßE.TXT") == b"old"
    assert _schema_of(old_volume) == schema.SCHEMA_VERSION


def test_an_upgrade_leaves_the_volume_open_to_others(library, old_volume):
    """The upgrade makes the open lock exclusive for a moment, then shared again: another
    process can open the volume while this one has it open (a lost shared lock would let
    recover or INZOPT take the volume from under it)."""
    with library.open("PVOL1"):
        other = os.open(library.root / "PVOL1.optvol" / locks.LOCK_FILE, os.O_RDWR)
        try:
            fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)


def test_an_exclusive_open_of_an_older_index_stays_exclusive(library, old_volume):
    """A journal's relabel opens its image exclusively; the upgrade made the lock shared
    again after it, so another process could open the volume in the middle of the relabel."""
    from optvol.image.image import VolumeImage

    with VolumeImage(library.root / "PVOL1.optvol", exclusive=True) as image:
        assert image.label()["volume"] == "PVOL1" and _schema_of(old_volume) == schema.SCHEMA_VERSION
        other = os.open(library.root / "PVOL1.optvol" / locks.LOCK_FILE, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(other)


def _open_and_hold(root, barrier, results) -> None:
    library = Library(root, clock=FakeClock())
    barrier.wait()
    try:
        volume = library.open("PVOL1")
    except errors.OptvolError as exc:
        results.put(exc.message_id)
        return
    results.put("opened")
    time.sleep(0.5)
    volume.close()


def test_processes_opening_an_older_index_together_all_open_it(library, old_volume):
    """Three processes open one volume of an older index at once and keep it open: one brings
    it forward, and every one opens it. Each kept its shared lock while it waited for the
    others to let it upgrade (all stalled 10 s, then failed), or failed at once while another
    upgraded (review of f8fb9e3 by helper-30)."""
    context = multiprocessing.get_context("fork")
    for _ in range(3):
        barrier, results = context.Barrier(3), context.Queue()
        workers = [context.Process(target=_open_and_hold, args=(library.root, barrier, results)) for _ in range(3)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert [results.get() for _ in workers] == ["opened"] * 3 and time.monotonic() - started < 5
        assert _schema_of(old_volume) == schema.SCHEMA_VERSION
        _set_schema(old_volume, 4)  # older again for the next round


def test_an_open_that_waits_for_an_upgrade_holds_nothing_and_opens_anew(library, old_volume, monkeypatch):
    """A refused exclusive lock drops the shared one (Linux flock): the open went on with the
    index it had opened, which recover could replace in that gap, and a write then landed in
    the replaced index. Now the open starts again from nothing: it sees what recover built."""
    from optvol.image import image as image_mod

    held = _held_open(library, "PVOL1")
    waiting, go = threading.Event(), threading.Event()

    def pause(low, high):
        waiting.set()
        go.wait(10)
        return 0.0

    monkeypatch.setattr(image_mod.random, "uniform", pause)
    opened = {}

    def open_it():
        opened["volume"] = library.open("PVOL1")

    thread = threading.Thread(target=open_it)
    thread.start()
    assert waiting.wait(5)
    os.close(held)
    recover(library, vol="PVOL1")  # the volume is free now: recover takes it and rebuilds its index
    go.set()
    thread.join()
    volume = opened["volume"]
    volume.write_bytes("/b", b"b")
    volume.close()
    with library.open("PVOL1") as again:
        assert again.read_bytes("/b") == b"b" and again.read_bytes("/straße.txt") == b"old"


def _held_alone(library, vol: str) -> int:
    fd = os.open(library.root / f"{vol}.optvol" / locks.LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_an_open_that_waited_for_an_upgrade_waits_for_its_end(library, old_volume):
    """Another process upgrades (the volume is its alone) for longer than 0.5 s, and still has
    it alone for a moment after its commit: the waiting open met a current index held alone
    and gave up at once, since the 0.5 s of that case had passed (review by helper-31)."""
    held = _held_alone(library, "PVOL1")

    def upgrade_elsewhere():
        time.sleep(0.7)
        conn = sqlite3.connect(old_volume)
        schema.migrate(conn, schema.version_of(conn, where="PVOL1"))
        conn.commit()
        conn.close()
        time.sleep(0.3)
        os.close(held)

    threading.Thread(target=upgrade_elsewhere).start()
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/STRAßE.TXT") == b"old"


def test_an_open_whose_volume_is_removed_while_it_waits_says_in_use(library, old_volume):
    """It held nothing while it waited, so the volume went, and the next try called the volume
    damaged (OPV0201, exit 7) for a missing index; it is in use (OPV0004), as before."""
    held = _held_open(library, "PVOL1")

    def remove_elsewhere():
        time.sleep(0.3)
        (library.root / "PVOL1.optvol").rename(library.root / "GONE.optvol.tmp")
        os.close(held)

    threading.Thread(target=remove_elsewhere).start()
    with pytest.raises(errors.OptvolError) as caught:
        library.open("PVOL1")
    assert caught.value.message_id == "OPV0004"


def test_an_open_that_finds_its_volume_gone_at_its_lock_says_in_use(library, monkeypatch):
    """The last CI run of session 19 (once, under load): the volume went between the open's
    look for its directory and its open of the lock, and the open said the library could
    not be used (OPV0006). It is in use (OPV0004), as when it goes at any other moment."""
    make_volume(library, "PVOL1")
    real = locks.os.open

    def gone_first(path, *args, **kwargs):
        if str(path).endswith(locks.LOCK_FILE) and (library.root / "PVOL1.optvol").is_dir():
            (library.root / "PVOL1.optvol").rename(library.root / "GONE.optvol.tmp")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(locks.os, "open", gone_first)
    with pytest.raises(errors.OptvolError) as caught:
        library.open("PVOL1")
    assert caught.value.message_id == "OPV0004"
    monkeypatch.setattr(locks.os, "open", real)
    (library.root / "GONE.optvol.tmp").rename(library.root / "PVOL1.optvol")
    real_data = image_mod.DataPartition

    def gone_at_the_data(path, *args, **kwargs):  # after the lock: the data partition's open fails
        (library.root / "PVOL1.optvol").rename(library.root / "GONE.optvol.tmp")
        return real_data(path, *args, **kwargs)

    monkeypatch.setattr(image_mod, "DataPartition", gone_at_the_data)
    with pytest.raises(errors.OptvolError) as caught:
        library.open("PVOL1")
    assert caught.value.message_id == "OPV0004"


def test_an_open_waits_while_another_finishes_a_killed_recover(library):
    """recover was killed after it removed the old index: the next open finishes the swap, with
    the volume alone; another open then failed at once (OPV0004) instead of waiting for it."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a", b"a")
    recover(library, vol="PVOL1")
    directory = library.root / "PVOL1.optvol"
    shutil.copy(directory / "index.sqlite", directory / image_mod.RECOVERED_INDEX)
    for suffix in ("", "-wal", "-shm"):
        (directory / ("index.sqlite" + suffix)).unlink(missing_ok=True)
    held = _held_alone(library, "PVOL1")
    threading.Timer(0.2, os.close, (held,)).start()
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/a") == b"a"


def test_a_write_into_an_index_a_newer_optvol_brought_forward_is_refused(library):
    """A newer optvol may upgrade the index while this one has the volume open (an older
    optvol does not wait for it): each write transaction checks the schema first."""
    make_volume(library, "PVOL1")
    index = library.root / "PVOL1.optvol" / "index.sqlite"
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a", b"a")
        _set_schema(index, schema.SCHEMA_VERSION + 1)
        with pytest.raises(errors.OptvolError) as caught:
            volume.write_bytes("/b", b"b")
        assert caught.value.message_id == "OPV0202"
        assert not volume.exists("/b")


def test_recover_refuses_an_index_a_newer_optvol_wrote(library):
    """Its records may mean what this optvol's replay does not know (schema 4 changed how
    names match, and an older recover merged straße.txt and STRASSE.TXT into one file)."""
    make_volume(library, "PVOL1")
    index = library.root / "PVOL1.optvol" / "index.sqlite"
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a", b"a")
    _set_schema(index, schema.SCHEMA_VERSION + 1)
    before = index.read_bytes()
    with pytest.raises(errors.OptvolError) as caught:
        recover(library, vol="PVOL1")
    assert caught.value.message_id == "OPV0202" and index.read_bytes() == before
    index.write_bytes(b"not an index any more" * 100)  # an unreadable index is rebuilt, as ever
    for suffix in ("-wal", "-shm"):
        index.with_name(index.name + suffix).unlink(missing_ok=True)
    assert recover(library, vol="PVOL1").damaged == []
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/a") == b"a"


def test_keys_an_optvol_stored_under_python_3_14_are_made_again(library):
    """Before the fold was frozen at Unicode 14.0, optvol folded by the running Python's
    Unicode: under Python 3.14 (Unicode 16.0) ƛ folds to U+A7DC. Such a stored key is found
    by no lookup today; schema 5 makes every key again."""
    make_volume(library, "DVD1", medtype=MediaType.DVD_RAM)
    with library.open("DVD1") as volume:
        volume.mkdir("/ƛdir")
        volume.write_bytes("/ƛdir/ƛ.txt", b"lambda")
    index = library.root / "DVD1.optvol" / "index.sqlite"
    conn = sqlite3.connect(index)
    with conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("UPDATE files SET name_key = ? WHERE name = ?", ("\ua7dc.TXT", "ƛ.txt"))
        conn.execute("UPDATE dirs SET path_key = ? WHERE path = ?", ("/\ua7dcDIR", "/ƛdir"))
        conn.execute("UPDATE meta SET value = 4 WHERE key = 'schema_version'")
        conn.execute("DROP INDEX controls_request")  # schema 5's other change
    conn.close()
    with library.open("DVD1") as volume:
        assert volume.read_bytes("/ƛDIR/ƛ.TXT") == b"lambda"
    assert _schema_of(index) == schema.SCHEMA_VERSION == 5
    conn = sqlite3.connect(index)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'controls_request'").fetchone() == (1,)
    conn.close()
