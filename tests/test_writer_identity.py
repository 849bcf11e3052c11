"""A writer's close writes over the file it opened, never over another file made at its path
meanwhile (hunt27b F1): README, 'a writer whose file was deleted (or moved away) before it
closes raises CPF1F22 on close() and writes nothing'."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_volume
from optvol import errors
from optvol.model import MediaType

SRC = Path(__file__).resolve().parent.parent / "src"


def _other_process(library, code: str) -> None:
    """Run ``code`` with ``volume`` (PVOL1 of ``library``) in another process: its handles are not seen here."""
    script = ("import sys; from datetime import datetime, timezone; from optvol.library import Library;"
              " volume = Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open('PVOL1'); " + code)
    done = subprocess.run([sys.executable, "-c", script, str(library.root)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("medtype", [None, MediaType.DVD_RAM])
@pytest.mark.parametrize("how", ["moved", "deleted", "directory moved"])
def test_a_writer_whose_file_went_away_never_writes_over_the_file_made_in_its_place(library, medtype, how):
    make_volume(library, "PVOL1", medtype=medtype)
    with library.open("PVOL1") as volume:
        volume.mkdir("/P")
        volume.write_bytes("/P/F", b"orig")
        writer = volume.open("/P/F", "wb")
        writer.write(b"mine")
        away = {"moved": "volume.rename('/P/F', '/P/G')", "deleted": "volume.remove('/P/F')",
                "directory moved": "volume.rename('/P', '/Q'); volume.mkdir('/P')"}[how]
        _other_process(library, away + "; volume.write_bytes('/P/F', b'the other program')")
        with pytest.raises(errors.NotFoundError) as caught:
            writer.close()
        assert caught.value.message_id == "CPF1F22"
        assert volume.read_bytes("/P/F") == b"the other program"


def test_a_writer_still_replaces_its_file_after_another_version_or_a_rename_back(library):
    """Last writer wins over a newer version of the same file, as before; a file moved away and back is the same file."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/F", b"v1")
        writer = volume.open("/F", "wb")
        writer.write(b"mine")
        volume.write_bytes("/F", b"v2")
        volume.rename("/F", "/G")
        volume.rename("/G", "/F")
        writer.close()
        assert volume.read_bytes("/F") == b"mine"
