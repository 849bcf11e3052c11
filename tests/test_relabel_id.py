"""hunt31b F1: Library.relabel wrote a new ID as given (``bvol2``, `` BVOL2``) into the label
while it named the directory by the folded ID: every command then refused the volume as a host's
copy (OPV0201), recover too, and only INZOPT, which erases it, took it back."""

from __future__ import annotations

import pytest

from conftest import make_volume
from optvol.model import VolumeType


@pytest.mark.parametrize("given", ["bvol2", " BVOL2", "Bvol2\n"])
def test_relabel_records_the_folded_id_a_backup_stays_usable(library, given):
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.locked():
        library.relabel("BVOL1", fields={"volume": given})
    assert library.volume_ids() == ["BVOL2"]
    with library.open("BVOL2") as volume:
        label = volume.label()
        assert (label["volume"], label["type"], label["threshold"]) == ("BVOL2", "*BACKUP", 99)
