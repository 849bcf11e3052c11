"""User programs that use a volume from several threads, fork, catch Ctrl-C and go on, or
drop a volume unclosed (a hunt of session 18): every write acknowledged is on the disk
and readable, nothing half-done is finished later, misuse is a clear error."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time

import pytest

from conftest import make_volume
from optvol import errors
from optvol.checking import chkoptvol


def _clean(library, vol: str = "PVOL1") -> None:
    for result in chkoptvol(library, vol=vol):
        assert result.damaged == [], result


def _child_code(action, *, done: int) -> int:
    """A forked child's exit code for ``action``: 0 for OPV0013, ``done`` if it raised nothing,
    2 for another optvol error, 3 for anything else."""
    try:
        action()
    except errors.OptvolError as exc:
        return 0 if exc.message_id == "OPV0013" else 2
    except BaseException:
        return 3
    return done


def _interrupt_after(monkeypatch, statement: str) -> None:
    """The next ``statement`` on an index connection runs, then Ctrl-C lands (once)."""
    from optvol.image.connection import IndexConnection

    real = IndexConnection.execute

    def interrupted(self, *args):
        found = real(self, *args)
        if args and args[0] == statement:
            monkeypatch.setattr(IndexConnection, "execute", real)
            raise KeyboardInterrupt
        return found

    monkeypatch.setattr(IndexConnection, "execute", interrupted)


def test_threads_sharing_a_volume_write_one_at_a_time(library):
    """Each thread's write was joined to whichever transaction another thread had open: its
    index row was kept and its data lost with that transaction's buffer (damaged files)."""
    make_volume(library, "PVOL1")
    written: dict[str, bytes] = {}
    failures: list[BaseException] = []
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")

        def work(thread: int) -> None:
            try:
                for number in range(15):
                    data = os.urandom(2_000_000 if number % 3 == 0 else 100 + number)
                    volume.write_bytes(f"/D/T{thread}_{number}", data)
                    written[f"/D/T{thread}_{number}"] = data
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == [] and len(written) == 45
    with library.open("PVOL1") as volume:
        for path, data in written.items():
            assert volume.read_bytes(path) == data
    _clean(library)


def test_a_write_of_another_thread_is_not_undone_with_a_batch_that_fails(library):
    make_volume(library, "PVOL1")
    inside, written = threading.Event(), threading.Event()
    with library.open("PVOL1") as volume:

        def other() -> None:
            inside.wait(5)
            volume.write_bytes("/B.txt", b"of the other thread")
            written.set()

        thread = threading.Thread(target=other)
        thread.start()
        with pytest.raises(RuntimeError), volume.batch():
            volume.write_bytes("/A.txt", b"of the batch")
            inside.set()
            assert not written.wait(0.5)  # the other thread's write waits for the batch to end
            raise RuntimeError("the batch fails")
        thread.join(10)
        assert written.is_set() and not volume.exists("/A.txt")
        assert volume.read_bytes("/B.txt") == b"of the other thread"
    _clean(library)


class _ChildLeaves(Exception):
    pass


def test_a_forked_child_writes_nothing_through_its_parents_volume(library):
    """A child forked inside the parent's batch that writes through the parent's volume is
    refused (OPV0013); one that leaves the batch as ``sys.exit`` would (its exception runs
    the with blocks' exits in the child) undoes nothing of the parent's."""
    make_volume(library, "PVOL1")
    try:
        with library.open("PVOL1") as volume, volume.batch():
            volume.write_bytes("/parent.bin", os.urandom(3_000_000))
            pid = os.fork()
            if pid == 0:
                try:
                    volume.write_bytes("/child.txt", b"child")
                    code = 1
                except errors.InvalidError as exc:
                    code = 0 if exc.message_id == "OPV0013" else 2
                raise _ChildLeaves(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            volume.write_bytes("/after.txt", b"after the fork")
    except _ChildLeaves as leaving:  # only in the child, after its with blocks were left
        os._exit(leaving.args[0])
    with library.open("PVOL1") as volume:
        assert len(volume.read_bytes("/parent.bin")) == 3_000_000 and not volume.exists("/child.txt")
        assert volume.read_bytes("/after.txt") == b"after the fork"
    _clean(library)


def test_a_forked_child_reads_nothing_through_its_parents_volume(library):
    """A child forked while a thread of the parent is inside a batch read that batch's
    uncommitted files through the parent's ``Volume`` (SQLite's connection is the parent's),
    or waited for ever on a lock that thread held. Every read through it is OPV0013; the
    child opens the volume again and reads what is committed; a write handle the parent had
    open writes nothing when the child drops it."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/old.txt", b"committed before")
        handle = volume.open("/handle.txt", "wb")
        handle.write(b"the parent's handle")
        inside, leave = threading.Event(), threading.Event()

        def batch() -> None:
            with volume.batch():
                volume.write_bytes("/new.txt", b"not committed")
                inside.set()
                leave.wait(30)

        thread = threading.Thread(target=batch)
        thread.start()
        assert inside.wait(30)
        pid = os.fork()
        if pid == 0:  # the child: its exit code says what it saw
            code = 0
            try:
                for read in (lambda: volume.read_bytes("/new.txt"), lambda: volume.exists("/old.txt"),
                             lambda: volume.listdir("/"), volume.info):
                    try:
                        read()
                        code |= 1
                    except errors.InvalidError as exc:
                        code |= 0 if exc.message_id == "OPV0013" else 2
                del handle  # collected in the child: the parent's to write, not the child's
                with library.open("PVOL1") as again:
                    if again.read_bytes("/old.txt") != b"committed before" or again.exists("/new.txt"):
                        code |= 4
            except BaseException:  # noqa: BLE001 - the child reports by its exit code only
                code |= 8
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        leave.set()
        thread.join(30)
        assert os.waitstatus_to_exitcode(status) == 0
        handle.close()
        assert volume.read_bytes("/new.txt") == b"not committed"
        assert volume.read_bytes("/handle.txt") == b"the parent's handle"
    _clean(library)


def test_a_thread_that_writes_through_a_second_volume_inside_its_batch_is_refused_at_once(library, clock):
    """The same volume opened twice in one thread: a write through the second inside the
    first one's batch waited 60 s for SQLite's write lock, which only that thread could
    release, then said another process had the volume. It is OPV0014 at once, writing
    nothing; the batch goes on, and the second volume writes once the batch is over."""
    from optvol import Library

    make_volume(library, "PVOL1")
    alias = library.root.parent / "alias"  # the same library, spelt another way
    alias.symlink_to(library.root)
    other_library = Library(alias, clock=clock)
    with library.open("PVOL1") as first, other_library.open("PVOL1") as second:
        with first.batch():
            first.write_bytes("/inbatch.txt", b"the batch's")
            start = time.monotonic()
            with pytest.raises(errors.InvalidError) as refused:
                second.write_bytes("/second.txt", b"the second volume's")
            assert refused.value.message_id == "OPV0014" and time.monotonic() - start < 5
            with pytest.raises(errors.InvalidError, match="OPV0014"):
                with second.open("/handle.txt", "wb") as handle:
                    handle.write(b"nor this")
            first.write_bytes("/after.txt", b"still the batch's")
        assert second.read_bytes("/inbatch.txt") == b"the batch's"
        second.write_bytes("/second.txt", b"the second volume's")  # no batch left: it writes
        assert first.read_bytes("/second.txt") == b"the second volume's"
        assert not first.exists("/handle.txt") and first.read_bytes("/after.txt") == b"still the batch's"
    _clean(library)


@pytest.mark.parametrize("ending", ["fails", "commits"])
def test_info_inside_the_threads_own_batch_reads_the_batch_and_ends_nothing(library, ending):
    """``info()`` inside the same thread's batch: its snapshot's cleanup committed the batch's
    half-done transaction (review 1 of session 19: a failed batch's files stayed, damaged;
    a good one was told the volume was damaged); then it was OPV0004 "in use by another
    process" (review 2). It reads inside the batch, as every other read there does, and a
    snapshot inside a snapshot is that one; nothing is ended."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        with pytest.raises(RuntimeError) if ending == "fails" else contextlib.nullcontext():
            with volume.batch():
                volume.write_bytes("/one.bin", os.urandom(3_000_000))
                assert volume.info().files == 1
                volume.write_bytes("/two.bin", b"two" * 1000)
                if ending == "fails":
                    raise RuntimeError("the program gives up its batch")
        assert volume.exists("/one.bin") == volume.exists("/two.bin") == (ending == "commits")
        if ending == "commits":
            assert volume.read_bytes("/two.bin") == b"two" * 1000 and len(volume.read_bytes("/one.bin")) == 3_000_000
        with volume.snapshot():
            files = volume.listdir("/")
            assert volume.info().files == len(files)
            volume_two = library.open("PVOL1")
            volume_two.write_bytes("/three.txt", b"committed meanwhile")
            volume_two.close()
            assert volume.listdir("/") == files  # the outer snapshot still sees its own state
        assert volume.exists("/three.txt")
    _clean(library)


def test_an_interrupt_while_the_writer_thread_starts_leaves_no_write_behind(library, monkeypatch):
    """Ctrl-C landing in ``Thread.start`` of the writer thread: the thread runs but its
    executor does not know it, so the rollback did not wait for it, and it wrote its piece
    over the next write's records."""
    from optvol.image.datapart import DataPartition

    make_volume(library, "PVOL1")
    real_start, real_write, interrupted = threading.Thread.start, DataPartition.write_direct, []

    def start(thread) -> None:
        real_start(thread)
        if not interrupted and "ThreadPoolExecutor" in thread.name:
            interrupted.append(thread)
            raise KeyboardInterrupt

    def slow_write(self, sector, data) -> None:  # the stray thread's big piece lands late
        time.sleep(0.5 if len(data) > 1 << 20 else 0)
        real_write(self, sector, data)

    with library.open("PVOL1") as volume:
        monkeypatch.setattr(threading.Thread, "start", start)
        monkeypatch.setattr(DataPartition, "write_direct", slow_write)
        with pytest.raises(KeyboardInterrupt):
            volume.write_bytes("/big.bin", os.urandom(12 << 20))  # several pieces for the writer thread
        monkeypatch.setattr(threading.Thread, "start", real_start)
        assert interrupted
        for number in range(5):  # what the stray thread could write over
            volume.write_bytes("/probe.txt", b"probe %d" % number)
            assert volume.read_bytes("/probe.txt") == b"probe %d" % number
        interrupted[0].join(10)
        monkeypatch.undo()
        assert not volume.exists("/big.bin") and volume.read_bytes("/probe.txt") == b"probe 4"
    _clean(library)


def test_an_interrupt_between_begin_and_its_cleanup_does_not_lock_the_volume(library, monkeypatch):
    """Ctrl-C right after BEGIN IMMEDIATE, before anything could undo it: the connection
    kept SQLite's write lock, every later write of the object failed, and every other
    process waited 60 s for the volume. Then (session 18) the next write of the object
    rolled it back, but until then info() was OPV0004 and other writers waited (review 3
    of session 19): the lock goes back at once."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume, library.open("PVOL1") as other:
        _interrupt_after(monkeypatch, "BEGIN IMMEDIATE")
        with pytest.raises(KeyboardInterrupt):
            volume.write_bytes("/lost.txt", b"lost")
        assert not volume.image.conn.in_transaction and volume.info().files == 0
        start = time.monotonic()
        other.write_bytes("/b.txt", b"another writer: no wait for the lock")
        assert time.monotonic() - start < 5
        volume.write_bytes("/a.txt", b"written all the same")
        assert volume.read_bytes("/a.txt") == b"written all the same" and not volume.exists("/lost.txt")
        assert not volume.image.conn.in_transaction


def test_a_closed_volume_says_so(library):
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    volume.write_bytes("/a.txt", b"a")
    files = volume.iter_files("/")
    volume.close()
    for use in (lambda: volume.read_bytes("/a.txt"), lambda: volume.write_bytes("/b.txt", b"b"),
                lambda: list(files), lambda: volume.listdir("/")):
        with pytest.raises(ValueError, match="closed volume"):
            use()
    volume.close()  # twice: nothing


def test_a_volume_dropped_unclosed_gives_its_descriptors_back(library):
    import gc

    make_volume(library, "PVOL1")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        library.open("PVOL1").label()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_reads_of_other_threads_wait_for_a_batch_and_never_end_it(library):
    """A thread that reads (info, read_bytes) while another thread's batch is open on the
    same Volume: its snapshot was rolled back or committed by the writer's begin, or
    committed the writer's half-written batch; a read of a file of the batch landed the
    batch's buffer from the wrong thread. Now a reader waits for the batch to end."""
    make_volume(library, "PVOL1")
    written: dict[str, bytes] = {}
    stop, failures = threading.Event(), []
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")

        def read() -> None:
            try:
                while not stop.is_set():
                    volume.info()
                    for path in list(written)[-3:]:
                        assert volume.read_bytes(path) == written[path]
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        for batch in range(20):
            with pytest.raises(RuntimeError) if batch % 4 == 3 else _nothing(), volume.batch():
                for number in range(10):
                    data = os.urandom(300_000 if number % 5 == 0 else 500)
                    volume.write_bytes(f"/D/B{batch}_{number}", data)
                    if batch % 4 != 3:
                        written[f"/D/B{batch}_{number}"] = data
                if batch % 4 == 3:
                    raise RuntimeError("this batch fails")
        stop.set()
        reader.join(30)
    assert failures == [] and len(written) == 150
    with library.open("PVOL1") as volume:
        assert sorted(f.path for f in volume.iter_files("/D")) == sorted(written)
        for path, data in written.items():
            assert volume.read_bytes(path) == data
    _clean(library)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_an_interrupted_snapshot_does_not_keep_later_writes_out(library, monkeypatch):
    """Ctrl-C right after a snapshot's BEGIN (``info()``): the read transaction was left
    open, and every later write of the object was OPV0004 (review 4 of session 18)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        _interrupt_after(monkeypatch, "BEGIN")
        with pytest.raises(KeyboardInterrupt):
            volume.info()
        volume.write_bytes("/a.txt", b"a")
        assert volume.info().files == 1 and not volume.image.conn.in_transaction


def test_a_write_barrier_beside_other_threads_reports_nothing_damaged(library):
    """CPYOPT's barrier on a volume other threads read and write: its BEGIN and COMMIT were
    separate steps, and another thread's write rolled the barrier's transaction back."""
    make_volume(library, "PVOL1")
    stop, failures = threading.Event(), []
    with library.open("PVOL1") as volume:

        def loop(work) -> None:
            try:
                while not stop.is_set():
                    work()
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=loop, args=(work,)) for work in (volume.write_barrier, volume.info)]
        for thread in threads:
            thread.start()
        for number in range(60):
            volume.write_bytes(f"/F{number}", b"%d" % number)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert failures == []
    _clean(library)


def test_a_writer_collected_unclosed_writes_only_outside_a_transaction(library):
    """The collector closes a writer in whatever thread allocates: outside any transaction
    it writes its version, as a file does; inside one (perhaps another thread's batch, which
    waited for this thread: a deadlock) it writes nothing (review 4 of session 18)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        handle = volume.open("/kept.txt", "wb")
        handle.write(b"kept")
        del handle
        assert volume.read_bytes("/kept.txt") == b"kept"
        with volume.batch():
            volume.write_bytes("/a.txt", b"a")
            handle = volume.open("/dropped.txt", "wb")
            handle.write(b"dropped")
            del handle
        assert volume.read_bytes("/a.txt") == b"a" and not volume.exists("/dropped.txt")
    _clean(library)


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_a_writer_in_a_reference_cycle_writes_its_whole_version_or_nothing(library, mode):
    """The collector finalizes the parts of a reference cycle in any order: the raw writer
    (or its spool) closed before the handle above it wrote a version without what that
    handle still held, silently: an existing file became empty (review 1 of session 19).
    Each dropped handle in a cycle now leaves the file as it was or writes it whole."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        for n in range(20):
            path, data = f"/F{n}", f"version two of file {n} ".encode() * 50
            volume.write_bytes(path, b"version one")
            handle = volume.open(path, mode)
            handle.write(data if mode == "wb" else data.decode())
            if n % 2:
                handle.cycle = handle  # the handle the program was given, in a cycle
            else:  # the raw writer and the handle in one cycle
                handle.volume_writer.cycle, handle.volume_writer.up = handle.volume_writer, handle
            del handle
            gc.collect()
            assert volume.read_bytes(path) in (b"version one", data), path
    _clean(library)


@pytest.mark.parametrize("listing", ["iter_file_rows", "iter_files", "iter_dirs", "iter_dir"])
def test_an_unfinished_listing_does_not_keep_the_volume_from_writing(library, monkeypatch, listing):
    """Review 1 of session 19: an unfinished iter_file_rows (or iter_dirs) kept its statement,
    and so a read transaction, open between two items: once another process committed, this
    Volume's writes failed with OPV0004. Every listing now reads a page at a time (two rows
    here), and gives every item once, in order, whatever is written meanwhile."""
    from optvol import volume as volume_mod

    monkeypatch.setattr(volume_mod, "FILE_PAGE", 2)
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as first, library.open("PVOL1") as second:
        for d in ("/D", "/D/E1", "/D/E2", "/D/E3", "/D/E4", "/D/E5"):
            first.mkdir(d)
        for n in range(5):
            first.write_bytes(f"/D/F{n}", b"f")
        items = {"iter_file_rows": lambda: first.iter_file_rows("/D"),
                 "iter_files": lambda: first.iter_files("/D"),
                 "iter_dirs": lambda: first.iter_dirs("/D"),
                 "iter_dir": lambda: first.iter_dir("/D")}[listing]
        expected = list(items())
        stream = iter(items())
        seen = [next(stream), next(stream)]  # (iter_dirs gives its top before any query)
        second.write_bytes("/other", b"committed by another connection")
        first.write_barrier()
        first.write_bytes("/mine", b"written while the listing is unfinished")
        seen += list(stream)
        assert seen == expected and len(seen) >= 5
        assert first.read_bytes("/mine") == b"written while the listing is unfinished"
    _clean(library)



def test_an_interrupt_as_a_snapshot_begins_ends_it(library, monkeypatch):
    """Review 5 of session 19: Ctrl-C just as a snapshot's BEGIN returned left the read
    transaction open: every later info() or snapshot of that Volume was OPV0004 until it
    wrote again. The snapshot's end commits what its BEGIN began, interrupted or not."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a.txt", b"a")
        _interrupt_after(monkeypatch, "BEGIN")
        with pytest.raises(KeyboardInterrupt):
            volume.info()
        assert not volume.image.conn.in_transaction
        assert volume.info().files == 1
    _clean(library)


def test_an_interrupt_before_a_snapshots_commit_leaves_no_stale_reads(library, monkeypatch):
    """Review 6 of session 19: Ctrl-C landing in a snapshot's end, before its COMMIT, left
    the read transaction open: the next info() was OPV0004 ("another process") and reads
    saw the volume as it was (a file written since through another Volume missing). The
    end holds the interrupt back now, and a snapshot that finds such a leftover ends it."""
    from optvol.image.connection import IndexConnection

    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a.txt", b"a")
        real = IndexConnection.execute

        def interrupted(self, *args):
            if args and args[0] == "COMMIT":  # before it runs: the transaction stays open
                monkeypatch.setattr(IndexConnection, "execute", real)
                raise KeyboardInterrupt
            return real(self, *args)

        monkeypatch.setattr(IndexConnection, "execute", interrupted)
        with pytest.raises(KeyboardInterrupt):
            volume.info()
        assert volume.image.conn.in_transaction  # what the interrupt left
        with library.open("PVOL1") as other:
            other.write_bytes("/b.txt", b"b")
        assert volume.info().files == 2 and not volume.image.conn.in_transaction
        assert volume.listdir("/") == ["a.txt", "b.txt"]
    _clean(library)


def test_a_write_inside_ones_own_snapshot_is_refused_for_what_it_is(library):
    """Review 6 of session 19: a write or a batch inside the thread's own snapshot of the
    volume said OPV0004, "in use by another process". It is OPV0015, at once, and writes
    nothing; the snapshot reads on, and a write after it works."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/a.txt", b"a")
        with volume.snapshot():
            for write in (lambda: volume.write_bytes("/b.txt", b"b"), lambda: volume.mkdir("/D"),
                          lambda: volume.batch().__enter__()):
                with pytest.raises(errors.OptvolError) as refused:
                    write()
                assert refused.value.message_id == "OPV0015", refused.value
            assert volume.listdir("/") == ["a.txt"]
        volume.write_bytes("/b.txt", b"b")
        assert volume.listdir("/") == ["a.txt", "b.txt"]
    _clean(library)


def test_a_write_from_a_chunk_iterator_is_refused_and_the_stream_stays_whole(library):
    """Review 23 F5 (hunt-api): the iterator given to write_chunks wrote a progress file to
    the same volume; that write was laid where the stream was being written, and every file
    involved read back damaged, all said done. It is OPV0017 now, and the stream is whole."""
    make_volume(library, "PVOL1")
    refused = []

    def chunks():
        for n in range(4):
            try:
                volume.write_bytes(f"/progress{n}.log", b"%d" % n)
            except errors.OptvolError as exc:
                refused.append(exc.message_id)
            yield bytes([65 + n]) * 4096

    with library.open("PVOL1") as volume:
        volume.write_chunks("/data.bin", chunks(), size=4 * 4096)
        assert refused == ["OPV0017"] * 4 and volume.listdir("/") == ["data.bin"]
        assert volume.read_bytes("/data.bin") == b"A" * 4096 + b"B" * 4096 + b"C" * 4096 + b"D" * 4096
        volume.write_bytes("/after.txt", b"after")  # the volume takes writes as ever
    _clean(library)


def test_a_write_from_a_handler_while_a_write_commits_is_refused(library, monkeypatch):
    """Review 23 F5b: a signal's handler that wrote to the volume while a big write made its
    data durable found no transaction under way (the volume let it go before the commit),
    rolled the write back, committed its own, and the first write's commit then failed: the
    index promised 210 MB the data partition did not hold. The handler's write is OPV0017
    (here called where a handler would run: inside the commit's fsync)."""
    from optvol.image.transaction import Transaction

    make_volume(library, "PVOL1")
    real, refused = Transaction.finish, []

    def finish_interrupted(self, now):
        try:
            volume.write_bytes("/heartbeat", b"beat")
        except errors.OptvolError as exc:
            refused.append(exc.message_id)
        return real(self, now)

    with library.open("PVOL1") as volume:
        monkeypatch.setattr(Transaction, "finish", finish_interrupted)
        with volume.open("/big.bin", "wb") as handle:
            handle.write(b"x" * 3_000_000)
        monkeypatch.setattr(Transaction, "finish", real)
        assert refused == ["OPV0017"] and volume.listdir("/") == ["big.bin"]
        assert volume.read_bytes("/big.bin") == b"x" * 3_000_000
    _clean(library)


def test_an_asyncio_task_does_not_join_another_task_s_batch(library):
    """Review 23 F11: task B's write, made while task A's batch waited at an await, joined
    A's transaction: it said done and was undone with A's batch. It is OPV0017 now (B cannot
    wait for a write of its own thread); A's batch is A's alone."""
    import asyncio

    make_volume(library, "PVOL1")
    said: list[str] = []

    async def task_a(volume, started):
        with pytest.raises(RuntimeError):
            with volume.batch():
                volume.write_bytes("/a.txt", b"a")
                started.set()
                await asyncio.sleep(0.05)
                raise RuntimeError("task A gives up")

    async def task_b(volume, started):
        await started.wait()
        try:
            volume.write_bytes("/b.txt", b"b")
            said.append("done")
        except errors.OptvolError as exc:
            said.append(exc.message_id)

    async def main(volume):
        started = asyncio.Event()
        await asyncio.gather(task_a(volume, started), task_b(volume, started))

    with library.open("PVOL1") as volume:
        asyncio.run(main(volume))
        assert said == ["OPV0017"] and volume.listdir("/") == []
        volume.write_bytes("/b.txt", b"b")  # once A's batch is over, B writes as ever
        assert volume.listdir("/") == ["b.txt"]
    _clean(library)


@pytest.mark.parametrize("child", ["close", "exit"])
def test_a_forked_child_leaves_its_parent_s_spooled_writer_alone(library, child):
    """hunt-api F3, F3b: a writer past its in-memory spool shares its spool file (one offset)
    with a child forked meanwhile. The child's refused close seeked it, and the parent's close
    then recorded a file of other bytes, the volume refused until recover; a child that only
    exited flushed its copy of the buffer into it, and the parent's close failed. The child's
    use is OPV0013 and its spool is /dev/null: the parent's file is what the parent wrote."""
    from optvol import openfile

    make_volume(library, "PVOL1")
    first, second = b"A" * (openfile.SPOOL_IN_MEMORY + (1 << 20)), b"B" * (2 << 20)
    with library.open("PVOL1") as volume:
        handle = volume.open("/forked.bin", "wb")
        handle.write(first)
        handle.write(b"tail")
        handle.flush()  # into the spool file's own buffer at the fork
        pid = os.fork()
        if pid == 0:  # (os._exit: pytest must not run on in the child)
            if child == "close":
                os._exit(_child_code(handle.close, done=1))
            handle = None  # what the child's exit does: the collector closes what it inherited
            os._exit(_child_code(gc.collect, done=0))
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        handle.write(second)
        handle.close()
        assert volume.read_bytes("/forked.bin") == first + b"tail" + second
    _clean(library)


def test_a_spool_that_gives_fewer_bytes_than_written_to_it_writes_nothing(library):
    """hunt-api F3's second half: a commit took whatever the spool gave back and recorded the
    size the handle had counted, promising bytes the record did not hold (the volume then
    refused every write until recover). Now it writes nothing and says so."""
    from optvol import openfile

    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        handle = volume.open("/short.bin", "wb")
        handle.write(b"A" * (openfile.SPOOL_IN_MEMORY + (1 << 20)))
        handle.flush()
        spool = handle.volume_writer._spool
        spool.flush()
        os.ftruncate(spool.fileno(), 1 << 20)  # as another process sharing the spool file could
        with pytest.raises(errors.OptvolError, match="OPV0302.*nothing was written"):
            handle.close()
        assert volume.listdir("/") == []
        volume.write_bytes("/after", b"after")
    _clean(library)


def test_writers_a_program_leaves_open_as_it_ends_are_all_written(library, tmp_path):
    """hunt-api F7: a program that ended with writers open had the small ones written by the
    collector and a spooled one (past 8 MiB) dropped, silently: the interpreter took its
    spool apart first. Every one is written as it ends, as the collector writes one."""
    import subprocess
    import sys
    import textwrap

    make_volume(library, "PVOL1")
    script = textwrap.dedent(f"""
        import optvol
        v = optvol.open_library({str(library.root)!r}).open("PVOL1")
        t = v.open("/text.txt", "w"); t.write("unclosed text")
        b = v.open("/small.bin", "wb"); b.write(b"B" * 100)
        s = v.open("/spooled.bin", "wb"); s.write(b"S" * (9 << 20))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == ["small.bin", "spooled.bin", "text.txt"]
        assert volume.read_bytes("/spooled.bin") == b"S" * (9 << 20)
        assert volume.read_bytes("/text.txt") == b"unclosed text"
    _clean(library)


def test_batches_of_two_volumes_nest_and_a_generator_s_batch_resumes_anywhere(library):
    """Review 23a F1, F2 (regressions of the rule that refuses a write inside a write): a
    write to volume A inside a batch of B, itself inside A's batch, was refused OPV0017; so
    was a generator holding a batch when it was resumed in another copy of the context
    (asyncio.to_thread(next, ...), contextvars.copy_context().run): the batch was told by
    the context. It is told by the asyncio task now, and both write as they did."""
    import contextvars

    make_volume(library, "A")
    make_volume(library, "B")
    with library.open("A") as a, library.open("B") as b:
        with a.batch():
            a.write_bytes("/x1", b"one")
            with b.batch():
                b.write_bytes("/y1", b"two")
                a.write_bytes("/x2", b"three")
        assert a.listdir("/") == ["x1", "x2"] and b.listdir("/") == ["y1"]

        def writing():
            with a.batch():
                for n in range(3):
                    a.write_bytes(f"/g{n}", b"%d" % n)
                    yield n

        generator = writing()
        assert [contextvars.copy_context().run(next, generator, None) for _ in range(4)] == [0, 1, 2, None]
        assert a.listdir("/") == ["g0", "g1", "g2", "x1", "x2"]


def test_a_child_forked_while_a_parent_thread_writes_a_handle_closes_it_at_once(library, monkeypatch):
    """Review 23a F3: a child forked while another thread of the parent was inside a write to
    a handle hung for ever in its close of that handle: the close flushed, and the buffer's
    lock was held for good by a thread the child does not have. It is OPV0013 at once."""
    import time

    from optvol import openfile

    make_volume(library, "PVOL1")
    real, inside = openfile.VolumeWriter.write, threading.Event()

    def slow(self, data):  # the buffered layer holds its lock while this runs
        inside.set()
        time.sleep(0.5)
        return real(self, data)

    with library.open("PVOL1") as volume:
        handle = volume.open("/big.bin", "wb")
        monkeypatch.setattr(openfile.VolumeWriter, "write", slow)
        writer = threading.Thread(target=handle.write, args=(b"w" * (openfile.WRITE_BUFFER * 2),))
        writer.start()
        inside.wait()
        pid = os.fork()
        if pid == 0:  # (os._exit: pytest must not run on in the child)
            os._exit(_child_code(handle.close, done=1))
        writer.join()
        monkeypatch.setattr(openfile.VolumeWriter, "write", real)
        deadline = time.monotonic() + 20
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0, "the child's close hung or failed"
        handle.close()
        assert volume.read_bytes("/big.bin") == b"w" * (openfile.WRITE_BUFFER * 2)
    _clean(library)


def test_a_signal_s_handler_that_writes_after_a_failed_write_s_undo_writes(library, monkeypatch):
    """Review 23a F5: a SIGTERM during the undo of a failed write ran its handler after the
    undo, but the write still counted as under way: the handler's write (a graceful stop's
    marker) was refused OPV0017, and that error replaced the write's own. The write is over
    once undone; the handler writes, and the caller gets the write's error."""
    import signal

    from optvol.image.transaction import Transaction

    make_volume(library, "PVOL1")
    real_stop, sent = Transaction.stop_writeback, []

    def stop_with_a_signal(self):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # held back by the undo, delivered after it
        return real_stop(self)

    def chunks():
        yield b"x" * 4096
        raise OSError("the source file went away")

    with library.open("PVOL1") as volume:
        said = []

        def on_term(_number, _frame):
            volume.write_bytes("/STOPPED", b"stopped")
            said.append("marker written")

        before = signal.signal(signal.SIGTERM, on_term)
        try:
            monkeypatch.setattr(Transaction, "stop_writeback", stop_with_a_signal)
            with pytest.raises(OSError, match="went away"):
                volume.write_chunks("/data.bin", chunks(), size=8192)
            monkeypatch.setattr(Transaction, "stop_writeback", real_stop)
        finally:
            signal.signal(signal.SIGTERM, before)
        assert sent and said == ["marker written"] and volume.listdir("/") == ["STOPPED"]
    _clean(library)



def test_a_batch_s_body_that_runs_an_event_loop_writes_from_it(library):
    """Review 23c F3: a batch entered outside any event loop whose body ran asyncio.run() of a
    helper that writes was refused OPV0017 (the helper runs as a task, the batch had none)."""
    import asyncio

    make_volume(library, "PVOL1")

    async def helper(volume):
        volume.write_bytes("/from_loop", b"loop")

    with library.open("PVOL1") as volume:
        with volume.batch():
            volume.write_bytes("/before", b"b")
            asyncio.run(helper(volume))
        assert volume.listdir("/") == ["before", "from_loop"]


def test_a_forked_child_leaving_a_writer_s_with_block_on_its_own_error_keeps_it(library):
    """Review 23c F7: a child that left `with volume.open(...)` on an exception (sys.exit) got
    its close's OPV0013 instead, and ended with exit 1 and a traceback."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        handle = volume.open("/f.bin", "wb")
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                with handle:
                    raise SystemExit(0)
            except SystemExit as exc:
                code = 0 if exc.code == 0 else 1
            except BaseException:
                code = 2
            os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        handle.write(b"parent")
        handle.close()
        assert volume.read_bytes("/f.bin") == b"parent"


def test_a_writer_whose_volume_the_program_closed_says_nothing_at_exit(library):
    """Review 23c F6: the exit's closing of writers printed a ValueError for a handle whose
    volume the program had closed (it writes nothing, as a closed file's)."""
    import subprocess
    import sys
    import textwrap

    make_volume(library, "PVOL1")
    script = textwrap.dedent(f"""
        import optvol
        v = optvol.open_library({str(library.root)!r}).open("PVOL1")
        h = v.open("/left.txt", "w"); h.write("small")
        v.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == []
