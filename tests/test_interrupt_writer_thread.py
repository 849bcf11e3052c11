"""A Ctrl-C while a write hands a piece to the writer thread, or asks after one, never hangs
the process (hunt31a F1).

``ThreadPoolExecutor.submit`` and a Future's ``done`` and ``result`` each enter a
``threading.Condition``; a KeyboardInterrupt raised in its ``__enter__`` just after the lock
is taken leaves that lock taken. The writer thread then waits for it for ever, and undoing
the transaction waits for the writer thread: CPYOPT stopped by Ctrl-C hung (1 run in ~20 at
the wrong moment; a second Ctrl-C was held back by the undo). Here the Ctrl-C is a real
SIGINT, raised at that very moment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading
    sys.path.insert(0, {tests!r})
    from conftest import FakeClock, make_volume
    from optvol.library import Library
    library = Library(sys.argv[1], clock=FakeClock())
    make_volume(library, "PVOL1")
    MAIN, entered, seen = threading.get_ident(), threading.Condition.__enter__, []
    def entering(self):
        got = entered(self)
        caller = sys._getframe(1)
        if threading.get_ident() == MAIN and caller.f_code.co_name == {caller!r} \\
                and caller.f_code.co_filename.endswith({module!r}):
            seen.append(1)
            if len(seen) == {nth}:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C as the lock is taken
        return got
    threading.Condition.__enter__ = entering
    try:
        with library.open("PVOL1") as volume, volume.batch():
            for i in range({count}):
                volume.write_bytes(f"/f{{i}}", os.urandom({size}))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    threading.Condition.__enter__ = entered
    with library.open("PVOL1") as volume:
        print("files", len(volume.listdir("/")), flush=True)
""")


def _run(script: str, library: Path) -> subprocess.CompletedProcess:
    """``script`` in a process of its own, given ``library``; a failure if it hangs."""
    try:
        return subprocess.run([sys.executable, "-c", script, str(library)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung after the Ctrl-C")


@pytest.mark.parametrize("caller, module, nth, count, size", [
    ("acquire", "threading.py", 2, 40, 1 << 20),  # submit: the executor's idle semaphore, a writer thread running
    ("acquire", "threading.py", 5, 40, 1 << 20),
    ("result", "_base.py", 1, 40, 1 << 20),  # a piece waited for (MAX_PENDING)
])
def test_a_ctrl_c_while_a_piece_goes_to_the_writer_thread_ends_the_write(tmp_path, caller, module, nth, count, size):
    script = SCRIPT.format(tests=str(Path(__file__).parent), caller=caller, module=module, nth=nth,
                           count=count, size=size)
    done = _run(script, tmp_path / "lib")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["interrupted", "files 0"], done.stdout + done.stderr


POOLS = textwrap.dedent("""
    import os, signal, sys, threading
    from datetime import datetime, timezone
    sys.path.insert(0, {tests!r})
    from conftest import FakeClock, make_volume
    from optvol import checking, copying
    from optvol.library import Library
    from optvol.model import VolumeType
    library = Library(sys.argv[1], clock=FakeClock())
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume, volume.batch():
        for i in range(12):
            volume.write_bytes(f"/f{{i}}", os.urandom(2 << 20))
    MAIN, entered, seen = threading.get_ident(), threading.Condition.__enter__, []
    def entering(self):
        got = entered(self)
        caller = sys._getframe(1)
        if threading.get_ident() == MAIN and caller.f_code.co_name == "acquire" and caller.f_back is not None \\
                and caller.f_back.f_code.co_name == "_adjust_thread_count" \\
                and any(sys._getframe(i).f_code.co_name in ("check_volume", "_start") for i in range(2, 8)):
            seen.append(1)
            if len(seen) == 2:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C as the pool's lock is taken
        return got
    threading.Condition.__enter__ = entering
    try:
        if {command!r} == "chkoptvol":
            checking.chkoptvol(library, vol="PVOL1")
        else:
            copying.cpyopt(library, copying.CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1",
                           totype=VolumeType.BACKUP, cpysubdir=True), now=datetime(2026, 6, 1, tzinfo=timezone.utc))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""")


@pytest.mark.parametrize("command", ["chkoptvol", "cpyopt"])
def test_a_ctrl_c_while_a_hashing_pool_takes_a_file_ends_the_command(tmp_path, command):
    """CHKOPTVOL's hashing pool and CPYOPT's prehash of large files (copying._Prehash)."""
    script = POOLS.format(tests=str(Path(__file__).parent), command=command)
    done = _run(script, tmp_path / "lib")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "interrupted\n", done.stdout + done.stderr


def test_a_ctrl_c_while_a_long_result_is_waited_for_ends_the_wait_at_once():
    """held_result holds Ctrl-C back only while it holds the Future's lock: a Ctrl-C during
    the wait for a long piece of work (a large file's SHA-256) ends the wait within a step,
    not when the work is done (held(future.result) held it back for the whole wait)."""
    script = textwrap.dedent("""
        import signal, threading, time
        from concurrent.futures import ThreadPoolExecutor
        from optvol.image.signals import held_result
        release = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(release.wait, 30)
            threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,)).start()
            started = time.monotonic()
            try:
                held_result(future)
            except KeyboardInterrupt:
                print(f"interrupted {time.monotonic() - started < 5}", flush=True)
            release.set()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")})
    assert done.stdout == "interrupted True\n", done.stdout + done.stderr


SLOW_HASH = textwrap.dedent("""
    import os, signal, sys, threading, time
    from datetime import datetime, timezone
    sys.path.insert(0, {tests!r})
    from conftest import FakeClock, make_volume
    from optvol import checking, copying
    from optvol.library import Library
    from optvol.model import VolumeType
    library = Library(sys.argv[1], clock=FakeClock())
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.write_bytes("/big", os.urandom(64 << 20))
    pread = os.pread
    def slow(fd, n, offset):  # a slow disk under the hash: 8 MiB a second, 64 MiB take 8 s
        if n >= 1 << 20:
            time.sleep(n / (8 << 20))
        return pread(fd, n, offset)
    os.pread = slow
    threading.Timer(1.5, signal.raise_signal, (signal.SIGINT,)).start()
    started = time.monotonic()
    try:
        if {command!r} == "chkoptvol":
            checking.chkoptvol(library, vol="PVOL1")
        else:
            copying.cpyopt(library, copying.CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1",
                           totype=VolumeType.BACKUP, cpysubdir=True), now=datetime(2026, 6, 1, tzinfo=timezone.utc))
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {{time.monotonic() - started:.1f}} s", flush=True)
        os.pread = pread
        with library.open("BVOL1") as volume:
            print("files", len(volume.listdir("/")), flush=True)
""")


@pytest.mark.parametrize("command", ["chkoptvol", "cpyopt"])
def test_a_ctrl_c_during_a_large_files_hash_ends_the_command_at_once(tmp_path, command):
    """A Ctrl-C while a hashing pool's thread reads a large file ends the command within a
    chunk, not once the hash is done: leaving the pool (CHKOPTVOL's ``with``, CPYOPT's
    ``_Prehash.close``) waited for every thread's whole hash (rev31g F1)."""
    script = SLOW_HASH.format(tests=str(Path(__file__).parent), command=command)
    done = _run(script, tmp_path / "lib")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0].startswith("interrupted after "), done.stdout + done.stderr
    assert float(lines[0].split()[2]) < 6, done.stdout  # 1.5 s, then a chunk (0.5 s) or two; the whole hash takes 8 s
    assert lines[1:3] == ["files 0", ""], done.stdout + done.stderr
