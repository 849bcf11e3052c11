"""A Volume closed by one thread while another writes or waits to read through it (hunt28g):
the close waits for the write under way, as a file's close waits for a write in progress,
and a thread that comes after it meets a closed volume's ValueError."""

from __future__ import annotations

import threading

from conftest import make_volume
from optvol.checking import chkoptvol


def test_close_waits_for_another_threads_batch(library):
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    inside, go_on, outcome = threading.Event(), threading.Event(), []

    def writer():
        try:
            with volume.batch():
                for number in range(3):
                    volume.write_bytes(f"/B{number}.TXT", bytes([number]) * 300_000)  # appended at once
                inside.set()
                go_on.wait(10)
                volume.write_bytes("/B3.TXT", b"last")
            outcome.append("committed")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    closer = threading.Thread(target=volume.close)
    closer.start()
    closer.join(0.5)
    waited = closer.is_alive()
    go_on.set()
    thread.join(30)
    closer.join(30)
    assert waited, "close() returned while another thread's batch was open"
    assert outcome == ["committed"]
    with library.open("PVOL1") as again:  # was OPV0201: the batch's records past the end, its log gone
        assert sorted(again.listdir("/")) == ["B0.TXT", "B1.TXT", "B2.TXT", "B3.TXT"]
    assert [result.damaged for result in chkoptvol(library, vol="PVOL1")] == [[]]


def test_a_read_waiting_while_another_thread_closes_gets_value_error(library):
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    inside, go_on, outcomes = threading.Event(), threading.Event(), []

    def writer():
        with volume.batch():
            volume.write_bytes("/A.TXT", b"a")
            inside.set()
            go_on.wait(10)

    def reader():
        try:
            outcomes.append(volume.listdir("/"))
        except BaseException as exc:
            outcomes.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    waiting = [threading.Thread(target=reader) for _ in range(4)]
    for each in waiting:
        each.start()
    closer = threading.Thread(target=volume.close)
    closer.start()
    go_on.set()
    for each in (thread, closer, *waiting):
        each.join(30)
    assert len(outcomes) == 4
    for found in outcomes:  # was sqlite3.ProgrammingError: Cannot operate on a closed database
        assert found == ["A.TXT"] or isinstance(found, ValueError), repr(found)


class _InterruptedAsItReturns:
    """A lock whose next acquire takes it, then raises KeyboardInterrupt: what Python does
    when a Ctrl-C's handler runs as the C lock's acquire returns, before the ``with`` begins."""

    def __init__(self, real):
        self.real, self.armed = real, True

    def acquire(self, *args):
        taken = self.real.acquire(*args)
        if taken and self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return taken

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_ctrl_c_as_the_volume_lock_is_taken_leaves_it_free_for_other_threads(library):
    """hunt28g F3: the main thread kept the volume's lock after the KeyboardInterrupt, and
    every other thread of the program that used the volume waited for ever."""
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    owner = volume.image.conn.owner
    owner._lock = _InterruptedAsItReturns(owner._lock)
    try:
        volume.listdir("/")
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("no KeyboardInterrupt")
    done = []
    thread = threading.Thread(target=lambda: done.append(volume.write_bytes("/A.TXT", b"a")), daemon=True)
    thread.start()
    thread.join(10)
    assert done, "another thread waited for the lock the interrupted one kept"
    assert volume.read_bytes("/A.TXT") == b"a"
    volume.close()


def test_another_thread_does_not_open_a_volume_the_library_holds_for_its_replacement(library):
    """hunt28g F4: while DUPOPT or INZOPT held the target's exclusive lock
    (``Library.holding``), another thread of the program opened it through the same Library
    without the open lock, and its writes, acknowledged, vanished with the old image."""
    from optvol import errors

    make_volume(library, "DVOL1")
    holding, release, seen = threading.Event(), threading.Event(), []

    def holder():
        with library.locked(), library.holding("DVOL1"):
            holding.set()
            release.wait(10)
            seen.append("released")

    def other():
        try:
            with library.open("DVOL1") as volume:
                seen.append("opened" if not seen else "opened after")
                volume.write_bytes("/B.TXT", b"b")
        except errors.OptvolError as exc:
            seen.append(exc.message_id)

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(10)
    opener = threading.Thread(target=other)
    opener.start()
    opener.join(1.5)  # (an open waits half a second while another has the volume alone)
    release.set()
    thread.join(10)
    opener.join(10)
    assert seen[0] == "released" or seen[0] == "OPV0004", seen


def test_another_thread_does_not_see_the_label_of_a_batch_under_way(library):
    """hunt28g F5: ``Volume.label()`` gave another thread the label a batch had changed and
    not committed (and then undid), where every other read waits for the batch."""
    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    inside, go_on, seen = threading.Event(), threading.Event(), []

    def writer():
        try:
            with volume.batch():
                volume.change_label(text="UNCOMMITTED")
                inside.set()
                go_on.wait(10)
                raise RuntimeError("undone")
        except RuntimeError:
            pass

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    reader = threading.Thread(target=lambda: seen.append(volume.label()["text"]))
    reader.start()
    reader.join(0.5)
    go_on.set()
    thread.join(10)
    reader.join(10)
    assert seen == [""]
    volume.close()


def test_a_write_goes_on_when_another_thread_opens_a_volume_as_it_begins(library, monkeypatch):
    """hunt28g F6: a write's BEGIN walks the process's connections (a WeakSet) while another
    thread's open adds one: the write raised RuntimeError ('Set changed size during
    iteration'). The walk meets that change here, once."""
    import weakref

    from optvol.image import connection

    class ChangedOnce(weakref.WeakSet):
        changed = False

        def __iter__(self):
            if not ChangedOnce.changed:
                ChangedOnce.changed = True
                raise RuntimeError("Set changed size during iteration")
            return super().__iter__()

    make_volume(library, "PVOL1")
    volume = library.open("PVOL1")
    registry = ChangedOnce()
    for each in list(connection._CONNECTIONS):
        registry.add(each)
    monkeypatch.setattr(connection, "_CONNECTIONS", registry)
    volume.write_bytes("/A.TXT", b"a")
    assert ChangedOnce.changed and volume.read_bytes("/A.TXT") == b"a"
    volume.close()
