"""Who may join a volume's write transaction under way (layer 3, beside ``volume.py``).

A thread's transaction is its own: another thread waits for it (``conn.owner``), a forked
child is refused (OPV0013). Within the thread, a write joins the transaction under way only
from the body of its ``batch``, between the writes there: not from a signal's handler or a
chunk iterator in the middle of a write, nor from another asyncio task of the thread while a
batch waits (review 23 F5, F5b, F11: such a write went into the sectors being written, or
with a batch it knew nothing of, undone with it). Those are OPV0017: they cannot wait for a
write of their own thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from optvol import errors

if TYPE_CHECKING:
    from optvol.image.transaction import Transaction
    from optvol.volume import Volume

# The transaction whose ``batch`` body this context runs in: an asyncio task runs in a
# context of its own, a signal's handler in the one it interrupts.
_BATCH: contextvars.ContextVar = contextvars.ContextVar("optvol_batch", default=None)


@contextmanager
def joined(volume: Volume, *, batch: bool) -> Iterator[Transaction]:
    """``volume``'s write transaction: the one under way when this may join it, else a new
    one (``batch``: for the body of ``Volume.batch``, whose writes join it)."""
    with volume.image.conn.owner:
        tx = volume._tx
        if tx is not None:
            if tx.busy or _BATCH.get() is not tx:
                raise errors.error("OPV0017", volume=volume.id)
            tx.busy = not batch
            try:
                yield tx
            finally:
                tx.busy = False
            return
        try:
            with volume.image.transaction(now=volume._now()) as tx:
                volume._tx, volume._tx_label = tx, volume.image.label()
                tx.thread, tx.busy = threading.get_ident(), not batch
                token = _BATCH.set(tx) if batch else None
                try:
                    yield tx
                finally:
                    tx.busy = True  # committing: nothing joins it now
                    if token is not None:
                        with contextlib.suppress(ValueError):  # left in another context (a generator's)
                            _BATCH.reset(token)
        finally:  # after the commit, not before it (F5b: a handler then began a transaction of its own)
            volume._tx, volume._tx_label = None, None
