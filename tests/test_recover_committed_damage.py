"""recover and a damaged record among the committed ones at the end of the data partition
(hunt27i F2): a flipped byte in the last record's header is damage, not a torn tail, when the
index still says that record was committed; recover must not cut the record off (the newest
version's payload, often intact) and CHKOPTVOL afterwards still names the region."""

from __future__ import annotations

import pytest

from optvol.checking import chkoptvol
from optvol.initialize import inzopt
from optvol.model import MediaType
from optvol.recovery import recover
from test_recover import lib  # noqa: F401  (the fixture)


@pytest.mark.parametrize("medium", [(MediaType.ERASE,), (MediaType.DVD_RAM,)])
def test_a_damaged_last_committed_record_is_kept_and_named(lib, medium):  # noqa: F811
    inzopt(lib, vol="PVOL1", now=lib.tick(), medtype=medium[0])
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/f", b"old" * 1000)
        volume.write_bytes("/f", b"new" * 1000)
        _, row = volume.file_row("/f")
        sector = volume.image.sector_size
        used = volume.image.meta("used_sectors")
    data = lib.root / "PVOL1.optvol" / "data.opv"
    size = data.stat().st_size
    assert (row.sector + row.header_sectors) * sector + 3000 <= size  # the last record
    with open(data, "r+b") as handle:
        handle.seek(row.sector * sector + 20)
        handle.write(b"\xff")
    report = recover(lib, vol="PVOL1")
    assert [d[:2] for d in report.damaged] == [(row.sector, row.header_sectors + 2)]
    assert report.tail_cut == 0 and data.stat().st_size == size
    with lib.open("PVOL1") as volume:
        assert volume.image.meta("committed_end") == size // sector
        if not volume._udf:
            assert volume.image.meta("used_sectors") == used
    (result,) = chkoptvol(lib, vol="PVOL1")
    assert [d.path for d in result.damaged] == [f"(sectors {row.sector}-{row.sector + row.header_sectors + 1})"]
