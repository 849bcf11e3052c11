"""optvol's kept descriptors (image/descriptors.py): a child forked while another thread held
their lock (a close's scan of /proc/self/fd) waited for it for ever at its first close of a
volume (rev30d F1); and every close scanned /proc/self/fd once per kept file, so that with 200
volumes open and read through a read-only view each close took seconds (rev30d F2)."""

from __future__ import annotations

import os
import signal

from optvol.image import descriptors


def test_a_child_forked_while_another_thread_holds_the_kept_lock_does_not_wait_for_it(tmp_path):
    some = tmp_path / "file"
    some.write_bytes(b"0123456789")
    with descriptors._KEPT_LOCK:  # (as another thread's close_unheld does, for its scan)
        pid = os.fork()
        if pid == 0:
            signal.alarm(10)
            try:
                os._exit(0 if descriptors.read_head(some, 4) == b"0123" else 1)
            except BaseException:
                os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_close_unheld_scans_the_descriptors_once_for_all_kept_files(tmp_path, monkeypatch):
    others = []
    for n in range(20):
        path = tmp_path / f"f{n}"
        path.write_bytes(b"x")
        others.append(os.open(path, os.O_RDONLY))  # another descriptor of it: its kept one stays
        descriptors.close_kept(descriptors.open_kept(path))
    assert len(descriptors._KEPT) >= 20
    scans = []
    listdir = os.listdir
    monkeypatch.setattr(descriptors.os, "listdir", lambda path: scans.append(path) or listdir(path))
    descriptors.close_unheld()
    assert scans == ["/proc/self/fd"] and len(descriptors._KEPT) >= 20
    for fd in others:
        os.close(fd)
    descriptors.close_unheld()
    ours = {(found.st_dev, found.st_ino) for found in (os.stat(tmp_path / f"f{n}") for n in range(20))}
    assert not ours & set(descriptors._KEPT)  # (another test's volume left open may keep its own: not ours to judge)
