"""A second Ctrl-C while a command removes the image it was building aside (DUPOPT, import-iso
--vol, INZOPT of a new volume: ``Library._install``) waits for the removal: it left the whole
staged image in ``.tmp/`` until a later command took the lock (hunt31k F1)."""

from __future__ import annotations

import os
import signal
import threading
from datetime import datetime, timezone

import pytest

from conftest import make_volume
from optvol.duplicate import dupopt
from optvol.library import Library

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signals reach the main thread only")


def test_second_interrupt_during_the_removal_of_the_staged_image(library, monkeypatch):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/F", b"x" * 5000)
    build_failure = Library._build_failure

    def interrupted_twice(self, exc, volume):  # the first Ctrl-C is being handled; the second comes now
        os.kill(os.getpid(), signal.SIGINT)
        return build_failure(self, exc, volume)

    def first_interrupt(source, staging, new_id):  # Ctrl-C while the copy is half made
        staging.mkdir()
        (staging / "data.opv").write_bytes(b"half a copy")
        raise KeyboardInterrupt

    monkeypatch.setattr(Library, "_build_failure", interrupted_twice)
    monkeypatch.setattr("optvol.duplicate._copy_image", first_interrupt)
    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            dupopt(library, fromvol="PVOL1", tovol="DUPV", now=datetime.now(timezone.utc))
    finally:
        signal.signal(signal.SIGINT, handler)
    assert list((library.root / ".tmp").iterdir()) == []
    assert not (library.root / "DUPV.optvol").exists()


def test_an_interrupt_while_the_journal_is_written_leaves_no_temporary_file(library, monkeypatch):
    """A Ctrl-C during the fsync of ``.tmp/journal-<hex>`` (before its rename) left it in ``.tmp/``:
    only an OSError removed it (hunt31k F3)."""
    make_volume(library, "PVOL1")
    fsync = os.fsync

    def interrupting(fd):
        if "/.tmp/journal-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise KeyboardInterrupt
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", interrupting)
    with pytest.raises(KeyboardInterrupt):
        dupopt(library, fromvol="PVOL1", tovol="DUPV", now=datetime.now(timezone.utc))
    monkeypatch.setattr(os, "fsync", fsync)
    assert list((library.root / ".tmp").iterdir()) == []
    assert not (library.root / "DUPV.optvol").exists()
