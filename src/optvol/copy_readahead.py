"""CPYOPT's read-ahead process: selection and verified reads on the second core (DESIGN §6).

A CPYOPT of many small files spends about as long choosing and reading them as writing
them, and Python runs one thread at a time. So a tree copy forks a child that runs the
reading side (``copy_select.read_directory``: index queries, preads, SHA-256 checks)
ahead of the parent, which does every write. The child writes nothing and reads only
committed state; it sends what it read through a pipe, a pickled message at a time. It
does not wait for room in the pipe: what does not fit waits in a backlog of at most
AHEAD_BYTES, topped up into the pipe at each message, so the child reads on up to that far
(and a pipe) ahead, and the writer finds the next piece waiting even after the reader was
slowed down for a while. (A pipe holds only 1 MiB without privileges, about one piece.)

The child is forked while the parent runs no other thread (the caller sees to it). It
ignores SIGINT, SIGTERM and SIGHUP, which a terminal or a service manager sends to every
process of the command (the parent ends on them as on Ctrl-C, and logs what it did): the
parent ends it with SIGKILL when done, early or not, since a child that writes nothing may
stop anywhere. It dies with its parent (PR_SET_PDEATHSIG on
Linux) and leaves with ``os._exit``, so nothing of the parent's (SQLite connections,
buffers, atexit handlers) runs in it. An optvol error in the child reaches the parent as
that error; anything else as a RuntimeError with the child's traceback (a bug: exit 70).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import select
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from optvol import errors
from optvol.image import connection

PIPE_BYTES = 1 << 20  # the pipe's capacity, if the system allows (1 MiB is the unprivileged limit)
AHEAD_BYTES = 8 << 20  # what the child may hold beyond what the pipe holds
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+ on Linux); given here for older builds
_PR_SET_PDEATHSIG = 1
_ENDING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # what a terminal or a service manager sends


class ReadAhead:
    """Run ``produce()`` in a child process; iterate over what it yields, in order.

    Use as a context manager: leaving it (early or not) ends and reaps the child.
    """

    def __init__(self, produce: Callable[[], Iterable[object]]):
        read_fd, write_fd = os.pipe()
        try:
            fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", _F_SETPIPE_SZ), PIPE_BYTES)
        except OSError:
            pass  # a smaller pipe only runs less far ahead
        parent = os.getpid()
        # Held back over the fork: one that reached the child before it ignores them would
        # unwind the parent's stack in the child (a rollback, an *ENDED entry written twice).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # as it is: restored whatever comes next
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING)
            pid = os.fork()
            if pid == 0:  # the child: never returns
                os.close(read_fd)
                _child(produce, write_fd, parent, mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        self.pid = pid
        self.input = os.fdopen(read_fd, "rb", buffering=PIPE_BYTES)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[object]:
        while True:
            try:
                kind, value = pickle.load(self.input)
            except EOFError:
                raise RuntimeError("the CPYOPT read-ahead process ended without a word") from None
            if kind == "item":
                yield value
            elif kind == "end":
                return
            elif kind == "error":
                raise value
            else:
                raise RuntimeError(f"the CPYOPT read-ahead process failed:\n{value}")

    def close(self) -> None:
        """End the child (it writes nothing, so it may stop anywhere) and reap it."""
        if self.pid:
            self.input.close()
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0


def _child(produce: Callable[[], Iterable[object]], write_fd: int, parent: int, mask: set) -> None:
    status = 0
    try:
        for signum in _ENDING:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # what came meanwhile is ignored now
        _die_with(parent)
        connection.adopt_in_child()  # the parent's connections refuse a forked child's statements
        sender = _Sender(write_fd)
        try:
            for item in produce():
                sender.send("item", item)
            sender.send("end", None)
        except BrokenPipeError:
            raise
        except errors.OptvolError as exc:
            sender.send("error", exc)
        except BaseException:  # noqa: BLE001 - a bug: the parent shows its traceback
            sender.send("bug", traceback.format_exc())
            status = 70
        sender.close()
    except BrokenPipeError:
        pass  # the parent stopped reading: it has finished or failed on its own
    except BaseException:  # noqa: BLE001 - nothing may leave the child but os._exit
        status = 70
    finally:
        os._exit(status)


class _Sender:
    """Writes the child's pickled messages to the pipe without waiting for room: what does not
    fit stays in a backlog, topped up into the pipe at each ``send``. ``send`` waits for room
    only while the backlog holds more than AHEAD_BYTES; ``close`` waits until all of it is in
    the pipe. BrokenPipeError once the parent has gone."""

    def __init__(self, fd: int):
        os.set_blocking(fd, False)
        self.fd, self.backlog, self.held = fd, deque(), 0

    def send(self, kind: str, value: object) -> None:
        message = memoryview(pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL))
        self.backlog.append(message)
        self.held += len(message)
        self._flush(wait_above=AHEAD_BYTES)

    def close(self) -> None:
        self._flush(wait_above=0)
        os.close(self.fd)

    def _flush(self, *, wait_above: int) -> None:
        """Put as much of the backlog into the pipe as fits; wait for room while more than
        ``wait_above`` bytes would stay behind."""
        while self.backlog:
            try:
                written = os.write(self.fd, self.backlog[0])
            except BlockingIOError:
                if self.held <= wait_above:
                    return
                select.select([], [self.fd], [])
                continue
            self.held -= written
            rest = self.backlog[0][written:]
            if rest:
                self.backlog[0] = rest
            else:
                self.backlog.popleft()


def _die_with(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies; leave now if it already has."""
    import ctypes  # here, in the child: the CLI's start does not pay for it

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the child still leaves at its next write after the parent is gone
    if os.getppid() != parent:
        os._exit(0)
