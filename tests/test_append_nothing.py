"""An append handle closed without a write of its own (hunt29h F1)."""

from __future__ import annotations

import pytest

from conftest import make_volume
from optvol import errors
from optvol.model import MediaType


def test_an_append_of_nothing_writes_no_version(library):
    """It wrote a whole new version: on *WORM the file's size spent for ever, the modified
    time moved (so the next CPYOPT *CHANGED copied it again), where Python's open(path, "ab")
    closed without a write leaves a host file as it was."""
    make_volume(library, "WVOL1", medtype=MediaType.WORM, capacity=8 << 20, threshold=100)
    with library.open("WVOL1") as volume:
        volume.write_bytes("/LOG", b"L" * (3 << 20))
        before, used = volume.stat("/LOG"), volume.space()[1]
        with volume.open("/LOG", "ab"):
            pass
        with volume.open("/LOG", "a", encoding="utf-16") as handle:
            handle.write("")
        assert len(volume.versions("/LOG")) == 1
        assert volume.stat("/LOG") == before and volume.space()[1] == used
        with volume.open("/NEW", "ab"):  # (a new file is still made, empty, as open() makes it)
            pass
        assert volume.read_bytes("/NEW") == b""


def test_an_append_is_refused_by_its_first_byte_not_by_opening(library):
    """Opening to append copied the old bytes through the room check: on a volume without room
    for another version the open itself raised CPF1F61, though nothing was to be written."""
    make_volume(library, "WVOL1", medtype=MediaType.WORM, capacity=4 << 20, threshold=100)
    with library.open("WVOL1") as volume:
        volume.write_bytes("/LOG", b"L" * (3 << 20))
        with volume.open("/LOG", "ab"):
            pass
        with pytest.raises(errors.VolumeFullError):
            with volume.open("/LOG", "ab") as handle:
                handle.write(b"+")
        assert volume.read_bytes("/LOG") == b"L" * (3 << 20) and len(volume.versions("/LOG")) == 1
