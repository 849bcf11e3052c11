"""Threads of one program sharing a ``Volume`` (one SQLite connection) while another process
writes the volume (hunt-stress F5 of session 23): a statement one thread had begun and not
read to its end held SQLite's read snapshot between two steps, so another thread's write
failed at once with OPV0004 (SQLITE_BUSY_SNAPSHOT, which waits for nothing) as soon as the
other process had committed, and its reads saw the old state. Every other process here is a
real ``optvol`` process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

import optvol
from conftest import make_volume
from optvol import errors
from optvol.checking import chkoptvol
from optvol.library import Library

NAMES = [f"F{n}" for n in range(6)]


@pytest.fixture
def shared(tmp_path):
    """A library (real clock: another process writes it) with PVOL1 holding /D/F0../D/F5."""
    library = optvol.open_library(tmp_path / "lib")
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        with volume.batch():
            for name in NAMES:
                volume.write_bytes(f"/D/{name}", name.encode())
    return library


def _other_process_changes_text(library: Library, text: str) -> None:
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library.root), "chgoptvol", "PVOL1",
                           "--text", text], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _unfinished_listing(volume):
    """A statement over /D's files begun and read one row: it holds a read snapshot."""
    cursor = volume.image.conn.execute(
        "SELECT name FROM files WHERE live = 1 AND dir = (SELECT id FROM dirs WHERE path = '/D') ORDER BY name")
    return cursor, cursor.fetchone()


def _in_thread(action):
    """``action()`` run in a thread of its own: what it returned or raised."""
    found: dict = {}

    def run():
        try:
            found["value"] = action()
        except BaseException as exc:  # (the test looks at it)
            found["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(120)
    assert not worker.is_alive()
    if "error" in found:
        raise found["error"]
    return found.get("value")


def test_another_threads_write_waits_for_no_unfinished_statement(shared):
    with shared.open("PVOL1") as volume:
        cursor, first = _unfinished_listing(volume)
        _other_process_changes_text(shared, "changed by another process")
        _in_thread(lambda: volume.write_bytes("/D/NEW", b"written by another thread"))
        assert [first[0], *(row[0] for row in cursor)] == NAMES  # its rows as of its start, each once
        assert volume.read_bytes("/D/NEW") == b"written by another thread"
        assert volume.label()["text"] == "changed by another process"
    assert all(result.damaged == [] for result in chkoptvol(shared, vol="PVOL1"))


def test_another_threads_read_sees_what_another_process_committed(shared):
    with shared.open("PVOL1") as volume:
        assert volume.label()["text"] != "seen"
        cursor, first = _unfinished_listing(volume)
        _other_process_changes_text(shared, "seen")
        assert _in_thread(lambda: volume.label()["text"]) == "seen"  # was read inside the old snapshot
        assert _in_thread(lambda: volume.info().text) == "seen"
        assert [first[0], *(row[0] for row in cursor.fetchmany(2)), *(row[0] for row in cursor.fetchall())] == NAMES


def test_a_threads_own_unfinished_statement_does_not_refuse_its_write(shared):
    with shared.open("PVOL1") as volume:
        cursor, first = _unfinished_listing(volume)
        _other_process_changes_text(shared, "changed")
        volume.write_bytes("/D/MINE", b"mine")
        rest = []
        while (row := cursor.fetchone()) is not None:
            rest.append(row[0])
        assert [first[0], *rest] == NAMES
        assert volume.read_bytes("/D/MINE") == b"mine"


def _raising_at(cursor, step: int, exc: BaseException | type, real):
    """A stand-in for ``_Cursor._unguarded`` that raises ``exc`` at ``cursor``'s ``step``-th fetchone."""
    calls = []

    def stepped(self, method, *args):
        if self is cursor and getattr(method, "__name__", "") == "fetchone":
            calls.append(1)
            if len(calls) == step:
                raise exc
        return real(self, method, *args)

    return stepped


def test_an_interrupt_that_cuts_the_reading_of_the_rest_short_loses_no_row(shared, monkeypatch):
    """The thread whose statement was being read for it gets every row once, in order: the
    buffered ones, then the statement's own."""
    from optvol.image import connection

    with shared.open("PVOL1") as volume:
        cursor, first = _unfinished_listing(volume)
        real = connection._Cursor._unguarded
        monkeypatch.setattr(connection._Cursor, "_unguarded", _raising_at(cursor, 3, KeyboardInterrupt, real))
        with pytest.raises(KeyboardInterrupt):
            _in_thread(lambda: volume.exists("/D/F1"))
        monkeypatch.setattr(connection._Cursor, "_unguarded", real)
        assert [first[0], *(row[0] for row in cursor)] == NAMES
        assert _in_thread(lambda: volume.exists("/D/F1"))


def test_threads_sharing_a_volume_beside_another_writing_process_never_fail(shared):
    """Two threads write, two read, while another process changes the label again and
    again: before, dozens of OPV0004 a second."""
    failures: list[BaseException] = []
    stop = threading.Event()
    done = [0] * 4

    def work(number: int, volume) -> None:
        count = 0
        while not stop.is_set():
            count += 1
            try:
                if number % 2:
                    volume.write_bytes(f"/W{number}/{count % 20}", b"x" * 100)
                else:
                    for _ in volume.walk("/"):
                        pass
                    volume.stat("/D/F1")
                    volume.read_bytes("/D/F2")
                done[number] += 1
            except BaseException as exc:  # (the test reports it)
                failures.append(exc)

    with shared.open("PVOL1") as volume:
        for number in (1, 3):
            volume.mkdir(f"/W{number}")
        workers = [threading.Thread(target=work, args=(n, volume)) for n in range(4)]
        for worker in workers:
            worker.start()
        try:
            for run in range(12):
                _other_process_changes_text(shared, f"run {run}")
                time.sleep(0.01)
        finally:
            stop.set()
            for worker in workers:
                worker.join(120)
    assert failures == [], [str(exc) for exc in failures[:5]]
    assert all(done), done
    assert all(result.damaged == [] for result in chkoptvol(shared, vol="PVOL1"))


def test_an_optvol_error_met_reading_the_rest_reaches_the_statements_own_thread(shared, monkeypatch):
    """A failure while another thread's statement reads the rest of this one (damaged pages,
    say) is raised to this one's reader after its buffered rows, not to the other thread."""
    from optvol.image import connection

    with shared.open("PVOL1") as volume:
        cursor, first = _unfinished_listing(volume)
        real = connection._Cursor._unguarded
        damaged = errors.unreadable_index("PVOL1", "database disk image is malformed")
        monkeypatch.setattr(connection._Cursor, "_unguarded", _raising_at(cursor, 2, damaged, real))
        assert _in_thread(lambda: volume.exists("/D/F1"))
        monkeypatch.setattr(connection._Cursor, "_unguarded", real)
        assert cursor.fetchone()[0] == NAMES[1]
        with pytest.raises(errors.DamagedError):
            cursor.fetchone()


def _program(library, body: str) -> subprocess.CompletedProcess:
    """``body`` run as a program of its own with ``v``, PVOL1 of ``library`` open (killed
    after 60 s: a wait for ever fails the test instead of hanging it)."""
    code = (f"import asyncio, threading, optvol\nfrom optvol import errors\n"
            f"v = optvol.open_library({str(library.root)!r}).open('PVOL1')\n{body}")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("hold, action", [("batch", "v.write_bytes, '/D/B', b'b'"), ("batch", "v.listdir, '/D'"),
                                          ("snapshot", "v.read_bytes, '/D/F1'")])
def test_code_a_task_runs_in_a_thread_inside_its_batch_is_refused_at_once(shared, hold, action):
    """hunt-stress F3 of session 23: ``await asyncio.to_thread(...)`` inside a task's batch
    waited for ever (the thread waited for the batch, the batch for the thread)."""
    done = _program(shared, f"""
async def main():
    with v.{hold}():
        {"v.write_bytes('/D/A', b'a')" if hold == "batch" else "v.listdir('/D')"}
        try:
            await asyncio.to_thread({action})
        except errors.OptvolError as exc:
            print(exc.message_id)
            raise
asyncio.run(main())
""")
    assert done.returncode == 1 and done.stdout.split() == ["OPV0018"], (done.stdout, done.stderr[-2000:])
    with shared.open("PVOL1") as volume:
        assert sorted(volume.listdir("/D")) == NAMES  # the batch undone whole
        volume.write_bytes("/D/AFTER", b"the volume is free")
    assert all(result.damaged == [] for result in chkoptvol(shared, vol="PVOL1"))


def test_a_thread_outside_the_batch_s_context_still_waits_for_it_and_a_batch_ended_refuses_nothing(shared):
    done = _program(shared, """
order = []
def other():
    v.write_bytes('/D/OTHER', b'o')
    order.append('other')
async def main():
    with v.batch():
        v.write_bytes('/D/A', b'a')
        worker = threading.Thread(target=other)  # (no copy of the task's context)
        worker.start()
        await asyncio.sleep(0.3)
        order.append('batch')
    await asyncio.to_thread(v.write_bytes, '/D/AFTER', b'after')  # its mark is gone with it
    worker.join()
    print(order, sorted(v.listdir('/D')))
asyncio.run(main())
""")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(["batch", "other"]) + " " + str(sorted([*NAMES, "A", "AFTER", "OTHER"]))


def test_a_ctrl_c_as_a_step_of_the_rest_returns_loses_no_row(shared, monkeypatch):
    """Ctrl-C in the thread that reads the rest of another thread's statement, just as SQLite
    gave it a row (where the time goes): the row was dropped, and the other thread's listing
    (a ``walk``'s names) lacked it, silently (review 24a F1). It is held back until the rest is read."""
    from optvol.image import connection

    with shared.open("PVOL1") as volume:
        cursor, first = _in_thread(lambda: _unfinished_listing(volume))  # another thread's statement
        real, calls = connection._Cursor._unguarded, []

        def stepped(self, method, *args):
            found = real(self, method, *args)
            if self is cursor and getattr(method, "__name__", "") == "fetchone":
                calls.append(1)
                if len(calls) == 2:
                    signal.raise_signal(signal.SIGINT)  # its handler runs as this returns
            return found

        monkeypatch.setattr(connection._Cursor, "_unguarded", stepped)
        with pytest.raises(KeyboardInterrupt):
            volume.exists("/D/F1")  # this (the main) thread reads the rest first
        monkeypatch.setattr(connection._Cursor, "_unguarded", real)
        assert [first[0], *(row[0] for row in cursor)] == NAMES


def test_the_end_of_a_statements_cursor_runs_no_python_code(shared):
    """A signal handler's exception raised in Python code run as a cursor is collected (a
    WeakSet's callback) is only printed: that Ctrl-C was lost (review 24a F2)."""
    with shared.open("PVOL1") as volume:
        cursor = volume.image.conn.execute("SELECT name FROM files")
        called: list[str] = []
        sys.setprofile(lambda frame, event, arg: called.append(frame.f_code.co_name) if event == "call" else None)
        try:
            del cursor
        finally:
            sys.setprofile(None)
        assert called == []


@pytest.mark.parametrize("outer", ["snapshot", "batch"])
def test_code_a_task_runs_in_a_thread_inside_a_batch_of_another_volume_is_refused_too(shared, outer):
    """rev24c F1: inside a hold of PVOL1 and a batch of PVOL2 (a copy), a thread in the task's
    context that read PVOL1 waited for ever: the inner batch's mark had replaced the outer's."""
    make_volume(shared, "PVOL2")
    done = _program(shared, f"""
w = optvol.open_library({str(shared.root)!r}).open('PVOL2')
async def main():
    with v.{outer}():
        with w.batch():
            w.write_bytes('/COPY', b'c')
            try:
                await asyncio.to_thread(v.read_bytes, '/D/F1')
            except errors.OptvolError as exc:
                print(exc.message_id)
                raise
asyncio.run(main())
""")
    assert done.returncode == 1 and done.stdout.split() == ["OPV0018"], (done.stdout, done.stderr[-2000:])
    with shared.open("PVOL2") as volume:
        assert not volume.exists("/COPY")  # the batch undone
        volume.write_bytes("/AFTER", b"the volume is free")


def test_a_batch_in_a_program_s_own_context_manager_marks_the_generator_that_holds_it(shared):
    """rev24c F8: only the first frame out of optvol was marked, the program's own context
    manager around ``batch()``, suspended while the body runs: a generator holding it,
    resumed in another thread, was refused (OPV0018) and its undo then waited for ever on
    the lock. Every frame the block was entered from is marked, the generator's too."""
    import contextlib

    with shared.open("PVOL1") as volume:
        @contextlib.contextmanager
        def my_batch():
            with volume.batch():
                yield

        def holder():
            with my_batch():
                yield [id(frame) for frame in volume.image.conn.owner.body.frames]

        generator = holder()
        marked = next(generator)
        assert id(generator.gi_frame) in marked
        generator.close()
        assert volume.image.conn.owner.body is None


def test_nested_holds_of_generators_that_end_out_of_order_keep_the_open_one_s_mark(shared):
    """rev24j: a nested hold's frames were taken off the outer mark by count (last in, first
    out): two generators each holding a batch inside the outer one, the first closed first,
    took the second's frames off (its generator no longer marked) and left the closed
    one's, with the locals of the frame that entered it, until the outer hold ended."""
    with shared.open("PVOL1") as volume:
        def nested():
            with volume.batch():
                yield

        def enter(generator):
            next(generator)

        with volume.batch():
            body = volume.image.conn.owner.body
            own = list(body.frames)
            a, b = nested(), nested()
            enter(a)
            next(b)
            a_frame = a.gi_frame
            a.close()
            assert any(frame is b.gi_frame for frame in body.frames)
            assert not any(frame is a_frame for frame in body.frames)
            b.close()
            assert len(body.frames) == len(own) and all(x is y for x, y in zip(body.frames, own, strict=True))
