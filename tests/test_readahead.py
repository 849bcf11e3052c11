"""CPYOPT's read-ahead process (copy_readahead.py): order, errors, and that it never outlives its use."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from optvol import copy_readahead, errors
from optvol.copy_readahead import ReadAhead


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_items_arrive_in_order_with_their_bytes():
    items = [(n, os.urandom(n % 5000)) for n in range(3000)]  # more than the pipe holds
    with ReadAhead(lambda: iter(items)) as read_ahead:
        assert list(read_ahead) == items


def test_an_optvol_error_in_the_child_is_raised_as_itself():
    def produce():
        yield "first"
        raise errors.error("CPF1F28", path="/D/F", volume="PVOL1", reason="SHA-256 of the data does not match")

    with ReadAhead(produce) as read_ahead:
        stream = iter(read_ahead)
        assert next(stream) == "first"
        with pytest.raises(errors.DamagedError) as caught:
            next(stream)
    assert caught.value.message_id == "CPF1F28" and "/D/F" in caught.value.text
    assert caught.value.exit_code == 7
    assert caught.value.reason == "SHA-256 of the data does not match"  # quoted as is by errors.cause


def test_a_bug_in_the_child_comes_back_with_its_traceback():
    def produce():
        yield 1
        {}["missing"]

    with ReadAhead(produce) as read_ahead, pytest.raises(RuntimeError, match="KeyError: 'missing'"):
        list(read_ahead)


def test_an_item_that_cannot_cross_the_pipe_is_a_bug_not_a_broken_stream():
    def produce():
        yield "first"
        yield lambda: None  # pickle refuses it: nothing of it may reach the pipe

    with ReadAhead(produce) as read_ahead:
        stream = iter(read_ahead)
        assert next(stream) == "first"
        with pytest.raises(RuntimeError, match="(?s)read-ahead process failed.*pickle"):
            next(stream)


def test_the_child_reads_ahead_beyond_the_pipe_but_no_further(tmp_path, monkeypatch):
    """The sender thread holds what the pipe has no room for, up to AHEAD_BYTES: the child
    gets well past a pipe's worth before the parent reads a thing, and then stops."""
    monkeypatch.setattr(copy_readahead, "AHEAD_BYTES", 4 << 20)  # the child is forked with it
    size, count = 512 << 10, 64
    progress = tmp_path / "made"

    def produce():
        for n in range(count):
            progress.with_suffix(".new").write_text(str(n))  # n items made before this one
            os.replace(progress.with_suffix(".new"), progress)  # whole: the test reads it meanwhile
            yield bytes([n]) * size

    with ReadAhead(produce) as read_ahead:
        made, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 20
        while time.monotonic() - stable_since < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
            now = int(progress.read_text()) if progress.exists() else -1
            if now != made:
                made, stable_since = now, time.monotonic()
        # At most AHEAD_BYTES held by the sender, a pipe (1 MiB, or less), the message in the
        # sender's hands and the one waiting to be taken: 8 + 2 + 1 + 1 items of 512 KiB.
        assert 2 * copy_readahead.PIPE_BYTES // size < made <= 12
        items = list(read_ahead)
    assert [(item[0], len(item)) for item in items] == [(n, size) for n in range(count)]
    assert all(item == bytes([item[0]]) * size for item in items)


def test_leaving_early_ends_the_child():
    def produce():
        n = 0
        while True:
            n += 1
            yield n

    with ReadAhead(produce) as read_ahead:
        pid = read_ahead.pid
        assert next(iter(read_ahead)) == 1
        assert alive(pid)
    assert not alive(pid)  # killed and reaped


def test_the_child_dies_with_a_killed_parent(tmp_path):
    """SIGKILL the process that reads (as kill -9 of a CPYOPT): its child goes too, even one
    busy with a long query that would not notice the closed pipe until its next write."""
    script = textwrap.dedent("""
        import sys, time
        from optvol.copy_readahead import ReadAhead

        def produce():
            yield b"first"
            time.sleep(120)  # no write for a long while: only PR_SET_PDEATHSIG ends it
            yield b"late"

        read_ahead = ReadAhead(produce)
        print(read_ahead.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(child)
    finally:
        parent.kill()
        parent.stdout.close()


def test_a_signal_that_reaches_the_child_as_it_is_forked_is_ignored(monkeypatch):
    """Ctrl-C reaches every process of the command: one landing in the child before it
    ignores it would unwind the parent's stack in the child (its rollback, its *ENDED
    entry). The signals are held back over the fork, then ignored."""
    import signal

    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid == 0:
            try:
                os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it, at the worst moment
                sum(range(1000))  # a handler runs between bytecodes: here, if the signal got through
            except KeyboardInterrupt:
                os._exit(99)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    with ReadAhead(lambda: iter(["a", "b"])) as read_ahead:
        assert list(read_ahead) == ["a", "b"]
