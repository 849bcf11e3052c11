"""A user who may write a library's directories and a volume's lock but not the volume's
files (data.opv and index.sqlite made 0444, README "The rules it keeps": such a user reads,
every write is OPV0011). Needs root, to run the commands as another user (skipped otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from integrity_helpers import run_cli

NOBODY = 65534


def _as_nobody(library: Path, *args: str) -> tuple[int, str]:
    """``optvol ARGS`` run in a forked child with the user and group IDs of nobody."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = 70
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.environ["TMPDIR"] = str(library.parent / "tmp")
            import tempfile
            tempfile.tempdir = None
            result = run_cli(library, *args)
            os.write(write, result.err.encode()[:4000])
            code = result.rc
        finally:
            os._exit(code)
    os.close(write)
    err = b""
    while chunk := os.read(read, 4096):
        err += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err.decode()


@pytest.fixture
def shared(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("running a command as another user needs root")
    base = tmp_path
    while base != base.parent and base.name:
        if base.stat().st_uid == os.geteuid():
            base.chmod(base.stat().st_mode | 0o755)  # pytest's 0700 directories: let nobody reach the library
        base = base.parent
    library = tmp_path / "lib"
    assert run_cli(library, "inzopt", "PVOL1", "--capacity", "1M").rc == 0
    assert run_cli(library, "mkdir", "/QOPT/PVOL1/D").rc == 0
    volume = library / "PVOL1.optvol"
    (tmp_path / "tmp").mkdir(mode=0o777)
    (tmp_path / "tmp").chmod(0o777)
    for path in (library, volume, library / ".tmp"):
        path.chmod(0o777)
    for path in (library / ".lock", volume / "lock"):
        path.chmod(0o666)
    for path in (volume / "data.opv", volume / "index.sqlite"):
        path.chmod(0o444)
    return library


def test_reading_leaves_no_file_of_the_reader_in_the_volume(shared):
    rc, err = _as_nobody(shared, "dspopt", "PVOL1")
    assert rc == 0, err
    theirs = [p.name for p in (shared / "PVOL1.optvol").iterdir() if p.stat().st_uid == NOBODY]
    assert theirs == []  # a -wal and -shm of nobody's there kept the owner from writing the volume
    rc, err = _as_nobody(shared, "mkdir", "/QOPT/PVOL1/E")
    assert rc == 5 and "OPV0011" in err, err


def test_recover_is_refused_as_a_volume_this_user_may_only_read(shared):
    rc, err = _as_nobody(shared, "recover", "PVOL1")
    assert rc == 5 and err.startswith("optvol: OPV0011: "), err  # was OPV0204 "Bad file descriptor", exit 7
