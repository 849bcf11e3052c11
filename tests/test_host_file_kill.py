"""A copy to the host killed on the way leaves nothing behind (hunt25f F2).

``cp`` to a host path and ``export-iso`` write a new file beside their target and put it
in place once whole. Under a hidden name (``.optvol-<hex>.part``), a kill -9 left it there
for good; the file is now made without a name (O_TMPFILE) and named only when whole, so a
killed command leaves the target as it was and nothing else. Real processes, real SIGKILL,
on a real tmpfs (it makes such files on every kernel optvol runs on); a file system that
makes none gets the hidden name, as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import clean_env, run
from integrity_helpers import tmpfs
from optvol import host_names

BIG = 96 << 20  # long enough to write that the kill lands while the file is written


@pytest.fixture
def big(tmp_path):
    """A library whose PVOL1 holds one file of BIG bytes, and the environment to run it in."""
    env = clean_env(tmp_path / "home")
    source = tmp_path / "big.bin"
    with open(source, "wb") as handle:
        for _ in range(BIG >> 20):
            handle.write(os.urandom(1 << 20))
    library = tmp_path / "lib"
    for args in (["inzopt", "PVOL1"], ["cp", source, "/QOPT/PVOL1/big.bin"]):
        done = run(*args, library=library, env=env)
        assert done.rc == 0, done.err
    return library, env, source


def _kill_while_writing(argv: list[str], env: dict, where: Path) -> None:
    """Run ``argv``, and SIGKILL it once it holds a file open in ``where`` that has no name
    there (the new file, being written); fails if it never did."""
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fds, seen = Path(f"/proc/{child.pid}/fd"), None
    deadline = time.monotonic() + 60
    while seen is None and child.poll() is None and time.monotonic() < deadline:
        for fd in list(fds.iterdir()) if fds.exists() else []:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith(f"{where}/") and link.endswith("(deleted)"):
                seen = link
                child.send_signal(signal.SIGKILL)
                break
    child.wait()
    assert seen is not None, f"never saw the new file being written: rc {child.returncode}, {child.stderr.read()!r}"
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("command", ["cp", "export-iso"])
def test_a_copy_to_the_host_killed_while_it_writes_leaves_the_target_as_it_was_and_nothing_else(big, tmp_path,
                                                                                            command):
    library, env, _ = big
    what = "/QOPT/PVOL1/big.bin" if command == "cp" else "PVOL1"
    replace = ["--replace", "yes"] if command == "cp" else []

    def argv(target: Path) -> list[str]:
        return [sys.executable, "-m", "optvol", "--library", str(library), command, what, str(target), *replace]

    with tmpfs(tmp_path / "host", "512M") as host:
        (host / "target").write_bytes(b"the file it would replace")
        (host / "kept.txt").write_bytes(b"mine")
        _kill_while_writing(argv(host / "target"), env, host)
        assert sorted(p.name for p in host.iterdir()) == ["kept.txt", "target"]
        assert (host / "target").read_bytes() == b"the file it would replace"
        _kill_while_writing(argv(host / "new"), env, host)  # a new target: none is there after the kill either
        assert sorted(p.name for p in host.iterdir()) == ["kept.txt", "target"]
        done = run(command, what, host / "target", *replace, library=library, env=env)
        assert done.rc == 0, done.err
        assert sorted(p.name for p in host.iterdir()) == ["kept.txt", "target"]
        assert (host / "target").stat().st_size >= BIG


def test_a_host_without_unnamed_files_gets_a_hidden_name_that_a_finished_copy_takes_away(big, tmp_path,
                                                                                        monkeypatch):
    """O_TMPFILE refused (a FUSE or network file system): the named file of before, renamed
    onto the target; nothing is left beside it, and the replaced file's mode is kept."""
    from optvol import cli

    library, _, source = big
    made = []
    real = host_names._named_file

    def named(directory, mode):
        made.append(directory)
        return real(directory, mode)

    monkeypatch.setattr(host_names, "_unnamed_file", lambda directory, mode: None)
    monkeypatch.setattr(host_names, "_named_file", named)
    host = tmp_path / "host"
    host.mkdir()
    (host / "target").write_bytes(b"old")
    (host / "target").chmod(0o640)
    assert cli.main(["--library", str(library), "cp", "/QOPT/PVOL1/big.bin", str(host / "target"),
                     "--replace", "yes"]) == 0
    assert made == [str(host)]
    assert sorted(p.name for p in host.iterdir()) == ["target"]
    assert (host / "target").read_bytes() == source.read_bytes()
    assert (host / "target").stat().st_mode & 0o777 == 0o640


def test_an_unnamed_file_takes_the_targets_place_when_another_appears_meanwhile(tmp_path):
    """put_in_place links a file with no name straight to a free name; where a file of that
    name appeared meanwhile, it is linked under a hidden name and renamed onto it."""
    with tmpfs(tmp_path / "host", "1M") as host:
        target = host / "target"
        fd, temporary = host_names.new_file_beside(target, None)
        assert temporary is None
        os.write(fd, b"new")
        target.write_bytes(b"came meanwhile")
        host_names.put_in_place(fd, temporary, target)
        os.close(fd)
        assert target.read_bytes() == b"new"
        assert sorted(p.name for p in host.iterdir()) == ["target"]


def test_a_ctrl_c_while_the_hidden_name_is_linked_leaves_nothing_beside_the_target(tmp_path, monkeypatch):
    """Replacing a file, put_in_place links the unnamed file under a hidden name, then renames
    it onto the target: a Ctrl-C that came during that link left the hidden name for good
    (rev26a F1). Now the target is the new file, whole, and nothing is beside it."""
    import signal as signal_mod

    from optvol import cli

    library, data = tmp_path / "lib", os.urandom(100_000)
    (tmp_path / "src.bin").write_bytes(data)
    assert cli.main(["--library", str(library), "inzopt", "PVOL1"]) == 0
    assert cli.main(["--library", str(library), "cp", str(tmp_path / "src.bin"), "/QOPT/PVOL1/f.bin"]) == 0
    with tmpfs(tmp_path / "host", "1M") as host:
        (host / "target").write_bytes(b"the file it would replace")
        real = os.link

        def link(source, name, *args, **kwargs):
            real(source, name, *args, **kwargs)
            if str(name).startswith(".optvol-"):
                os.kill(os.getpid(), signal_mod.SIGINT)  # as a Ctrl-C during the linkat

        monkeypatch.setattr(os, "link", link)
        assert cli.main(["--library", str(library), "cp", "/QOPT/PVOL1/f.bin", str(host / "target")]) == 130
        monkeypatch.undo()
        assert sorted(p.name for p in host.iterdir()) == ["target"]
        assert (host / "target").read_bytes() == data
