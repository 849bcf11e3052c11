"""rev29j F3: a user who may only read the library opens, as it stands, a volume that a journal
left by a killed remove renames away; its shared open lock refused the owner's every command
(any volume, even ``ls``) with exit 8 after 2 s, for as long as it kept the volume open. It
now reads without that lock, as a reader of a read-only file system does."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import optvol
from test_journal_open_program import optvol_cli
from test_read_access_only import NOBODY, needs_root


@needs_root
def test_a_reader_of_a_volume_a_journal_renames_does_not_block_the_owner():
    root = Path(tempfile.mkdtemp(prefix="optvol-shared-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / "tmp").mkdir()
        os.chown(root / "tmp", NOBODY, NOBODY)
        library = root / "lib"
        for volume in ("PVOL1", "PVOL2"):
            assert optvol_cli(library, "inzopt", volume).returncode == 0
        (library / ".journal.json").write_text(  # a remove of PVOL1 killed just past its journal
            '{"renames": [["PVOL1.optvol", ".tmp/old-0123456789abcdef0123456789abcdef"]], "autl": {"PVOL1": null}}')
        for path in [library, *library.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
        opened_r, opened_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the reader, user nobody: keeps PVOL1 open until told
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                tempfile.tempdir = str(root / "tmp")
                with optvol.open_library(library).open("PVOL1"):
                    os.write(opened_w, b"1")
                    os.read(done_r, 1)
            finally:
                os._exit(0)
        try:
            assert os.read(opened_r, 1) == b"1"
            started = time.monotonic()
            found = optvol_cli(library, "ls", "/QOPT/PVOL2")
            assert found.returncode == 0, found.stderr
            assert time.monotonic() - started < 1.5
            assert not (library / ".journal.json").exists() and not (library / "PVOL1.optvol").exists()
        finally:
            os.write(done_w, b"1")
            os.waitpid(pid, 0)
    finally:
        shutil.rmtree(root)
