"""Pausing Python's cycle collector while a command builds many objects and no cycles.

The collector runs after every 700 new container objects and walks the young ones each
time, and older ones now and then. CPYOPT makes several short-lived tuples per file
copied and no reference cycles (a copy of 100,000 files leaves no cyclic garbage behind),
so those passes are pure cost: about 6 % of its wall time (notes/cpyopt-speed.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause the cycle collector for the block (reference counting goes on freeing memory);
    a process forked inside inherits the pause."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
