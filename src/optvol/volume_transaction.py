"""Who may join a volume's write transaction under way (layer 3, beside ``volume.py``).

A thread's transaction is its own: another thread waits for it (``conn.owner``), a forked
child is refused (OPV0013). Within the thread, a write joins the transaction under way only
between the writes of a ``batch`` body, not from a signal's handler or a chunk iterator in
the middle of a write, nor from another asyncio task of the thread while a task's batch
waits at an ``await`` (review 23 F5, F5b, F11: such a write went into the sectors being
written, or with a batch it knew nothing of, undone with it). Those are OPV0017: they cannot
wait for a write of their own thread. The batch is told by the asyncio task that entered it
(none outside a running event loop), not by a context: a generator that holds a batch may
be resumed in another copy of its caller's context (``asyncio.to_thread(next, ...)``), and a
batch of one volume inside a batch of another leaves the first one's body as it was
(review 23a F1, F2).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from optvol import errors

if TYPE_CHECKING:
    from optvol.image.transaction import Transaction
    from optvol.volume import Volume


def _task() -> object | None:
    """The asyncio task running in this thread, if any (asyncio is not imported for it)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        return None


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def marked(volume: Volume) -> contextlib.AbstractContextManager:
    """Mark the user's ``with`` block of a batch or snapshot of ``volume`` as the body of this
    thread's hold (``Owner.body_of``): the first frame out of optvol and contextlib, and every
    frame it was called from (a program's own context manager around ``batch()``, a
    generator that holds it: rev24c F8), so that a generator among them resumed in another
    thread is known there for what it is."""
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename == contextlib.__file__
                                 or frame.f_code.co_filename.startswith(_PACKAGE)):
        frame = frame.f_back
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return volume.image.conn.owner.body_of(frames)


@contextmanager
def joined(volume: Volume, *, batch: bool) -> Iterator[Transaction]:
    """``volume``'s write transaction: the one under way when this may join it, else a new
    one (``batch``: for the body of ``Volume.batch``, whose writes join it)."""
    with volume.image.conn.owner:
        tx = volume._tx if volume.image.writing else None  # (undone: a handler its undo deferred begins anew)
        if tx is not None:
            if tx.busy or (tx.task is not None and _task() is not tx.task):  # (asyncio.run in a batch: F3)
                raise errors.error("OPV0017", volume=volume.id)
            tx.busy = not batch
            try:
                with marked(volume) if batch else contextlib.nullcontext():
                    yield tx
            finally:
                tx.busy = False
            return
        try:
            with volume.image.transaction(now=volume._now()) as tx:
                volume._tx, volume._tx_label = tx, volume.image.label()
                tx.thread, tx.task, tx.busy = threading.get_ident(), _task(), not batch
                try:
                    with marked(volume) if batch else contextlib.nullcontext():
                        yield tx
                finally:
                    tx.busy = True  # committing: nothing joins it now
        finally:  # after the commit, not before it (F5b: a handler then began a transaction of its own)
            volume._tx, volume._tx_label = None, None


def written_here(volume: Volume) -> bool:
    """Whether this thread's write transaction (a batch) of ``volume`` is under way: its rows
    and records are not committed yet (CHKOPTVOL refuses to check such a state: OPV0019)."""
    with volume.image.conn.owner:
        tx = volume._tx if volume.image.writing else None
        return tx is not None and tx.thread == threading.get_ident()
