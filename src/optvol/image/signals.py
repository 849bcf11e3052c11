"""SIGINT, SIGTERM and SIGHUP held back while a volume's files change (``signals_held``):
the end of a write, an undo, the close of a writer the collector drops, the reading of the
rest of another thread's statement. What comes meanwhile is delivered after the block."""

from __future__ import annotations

import _thread
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

_ENDING_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # what ends a command (cli), held back at times

# The handlers each held block of the main thread put aside, outermost first: what a child
# forked meanwhile (by another thread) gets back (``_put_back_in_child``).
_HELD: list[dict] = []


@contextmanager
def signals_held(*, inside=None) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP held back for the block, delivered after it: blocked in this
    thread and, in the main thread, their Python handlers deferred too (the kernel may give a
    signal to another thread, a writer thread this block waits for, and Python then runs the
    handler in the main thread all the same). A deferred signal's own handler is run once its
    handler is back and the mask too, once; a wakeup descriptor (asyncio's) stays on and
    hears of it once, as it came. Only Python handlers are deferred: an ending signal left at
    SIG_DFL (a program that set none; the CLI sets its own) still ends the process when the
    kernel gives it to another thread (review 23 F5). ``inside``: the frame of a finalizer
    the block runs in, where CPython drops what a handler raises (``_after_finalizer``)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    caught: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    deferred = {number: signal.getsignal(number) for number in _ENDING_SIGNALS
                if main and callable(signal.getsignal(number))}
    try:
        try:
            _HELD.append(deferred)
            for number in deferred:
                signal.signal(number, lambda signum, _frame: None if signum in caught else caught.append(signum))
            signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING_SIGNALS)
            yield
        finally:
            # The handlers first: until its own is back, a signal another thread took is run
            # by the stand-in, so ``caught`` is whole only then (review 23 F1: read before,
            # the stand-in could take one after the reading, and it was lost).
            signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING_SIGNALS)
            _put_back(deferred)
    finally:  # (a signal handled in the middle of the putting back still lets the mask go back)
        # In a finalizer, a signal the block kept pending is taken unheard (no handler, no
        # wakeup descriptor) and sent again to the main thread once the finalizer's frame is
        # gone: a real signal, heard once, that wakes a blocking call (rev24c F2, F3).
        # First: a signal the mask kept pending is handled as the mask goes back, and its
        # handler (Ctrl-C's KeyboardInterrupt) raises there; left in _HELD, a block's handlers
        # were put back in every child forked later, over the program's own (found by
        # test_signals after a CLI copy stopped by Ctrl-C in a held block).
        _HELD[:] = [held for held in _HELD if held is not deferred]  # (by identity; gone in a child forked here)
        taken = _take_pending([number for number in deferred if number not in mask]) if inside is not None else []
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        finally:  # (a pending Ctrl-C raises as the mask goes back: the caught ones still come, rev26d F1)
            # Each caught one's own handler, called, not made pending again: the wakeup
            # descriptor heard of it as it came, and asyncio ran its callback for each hearing
            # (review 23 F3: twice for one SIGTERM).
            if inside is not None and (caught or taken):
                _after_finalizer(inside, caught, taken)
            else:
                _every([functools.partial(deferred[number], number, None) for number in caught])


def _take_pending(numbers: list[int]) -> list[int]:
    """The signals of ``numbers`` pending for this thread while it blocks them, taken."""
    taken = []
    while numbers and (found := signal.sigtimedwait(numbers, 0)) is not None:
        taken.append(found.si_signo)
    return taken


def _after_finalizer(frame, numbers: list[int], taken: list[int] = ()) -> None:
    """Deliver the signals ``numbers`` (their stand-ins took them) and ``taken`` (kept pending)
    to the main thread once it has left ``frame``, a finalizer's (``__del__``): CPython drops
    an exception raised there, and a Ctrl-C while the collector closed a writer was lost
    (hunt-stress F2 of session 23). A thread of its own waits for that, makes each of
    ``numbers`` pending again (``_thread.interrupt_main``: a wakeup descriptor heard of it as
    it came) and sends each of ``taken`` to the main thread, as the kernel would have."""
    main = threading.main_thread().ident

    def deliver() -> None:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            found = sys._current_frames().get(main)
            while found is not None and found is not frame:
                found = found.f_back
            if found is None:
                break
            time.sleep(0.001)
        for number in numbers:
            _thread.interrupt_main(number)
        for number in taken:
            signal.pthread_kill(main, number)

    helper = threading.Thread(target=deliver, name="optvol-signals", daemon=True)
    helper.optvol_signals = True  # holds no handle: the exit's close of writers does not wait for it (rev24c F6)
    try:
        helper.start()
    except RuntimeError:  # the interpreter shuts down: no thread starts; the handlers run here
        for number in numbers:
            _thread.interrupt_main(number)
        for number in taken:
            signal.pthread_kill(main, number)


def _put_back(handlers: dict) -> None:
    """Put each handler back, and raise after that what a handler run meanwhile raised. A
    pending signal's handler runs inside ``signal.signal`` before it changes anything, and
    one that raises there leaves the old handler in place: the stand-in stayed, and every
    later SIGINT or SIGTERM of the process was swallowed (review 23b F1). So each is put
    back until it is."""
    raised = None
    for number, handler in handlers.items():
        while True:
            try:
                if signal.getsignal(number) is handler:
                    break
                signal.signal(number, handler)
            except BaseException as exc:
                raised = raised or exc
    if raised is not None:
        raise raised


def _every(calls: list) -> None:
    """Make each call, even when a signal's handler raises in the middle of one."""
    if calls:
        try:
            calls[0]()
        finally:
            _every(calls[1:])


def _put_back_in_child() -> None:
    """A child forked while the main thread held signals (by another thread: multiprocessing,
    a ProcessPoolExecutor) gets the handlers the blocks put aside: with the stand-ins, its
    SIGTERM and Ctrl-C were swallowed for life (review 23 F4). Its one thread is its main one."""
    for handlers in reversed(_HELD):  # the outermost block's last: it put aside the program's own
        for number, handler in handlers.items():
            signal.signal(number, handler)
    _HELD.clear()


os.register_at_fork(after_in_child=_put_back_in_child)


def held(call: Callable, *args: object) -> object:
    """``call(*args)`` with the ending signals held back until it returns: for a pool's
    ``submit`` and a Future's ``done`` or ``result``. Each enters a ``threading.Condition`` (the
    pool's idle semaphore's, the Future's), and an interrupt raised in its ``__enter__`` once
    the lock is taken leaves it taken: a worker then waits for it for ever, and the pool's
    shutdown (a transaction undone, a ``with`` pool left) for that worker; Ctrl-C hung CPYOPT and
    CHKOPTVOL, a second one held back by the undo (hunt31a F1)."""
    with signals_held():
        return call(*args)


def held_result(future: Future, *, every: float = 0.05) -> object:
    """``future.result()``, the ending signals held back only while it holds the Future's
    lock (``held``): waited for in steps of ``every`` seconds, so that a Ctrl-C during a long
    wait (a large file's SHA-256) ends it within a step, not once the work is done."""
    while not held(future.done):
        held(wait, (future,), every)
    return held(future.result)


class HeldPool(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose ``submit`` holds the ending signals back (``held``), and
    whose ``stopping`` its work may watch: set by ``stop``, and as a ``with`` is left by an
    exception (a Ctrl-C), which then waits only for the work to see it, not for all of it
    (a large file's SHA-256 went on to its end: rev31g F1)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()

    def submit(self, fn, /, *args, **kwargs):
        with signals_held():
            return super().submit(fn, *args, **kwargs)

    def stop(self) -> None:
        """Set ``stopping``, cancel what has not begun (``Future.cancel`` enters its Condition
        too: held) and wait for the threads, which end once their work sees ``stopping``."""
        with signals_held():
            self.stopping.set()
            super().shutdown(wait=False, cancel_futures=True)
        super().shutdown(wait=True)

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            self.stop()
            return False
        return super().__exit__(exc_type, exc, traceback)
