"""A listing of many directories while another writer renames them (hunt25i F2): directory
rows are read a page at a time, so without one read snapshot a directory moved past the
listing's place was listed twice, one moved before it left out, and a file made in a
renamed directory shown under the old name, a path that never existed."""

from __future__ import annotations

from conftest import make_volume
from optvol import display, volume

DIRS = volume.FILE_PAGE + 100


def test_dspopt_filatr_lists_one_state_while_directories_move(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as vol, vol.batch():
        for number in range(DIRS):
            vol.mkdir(f"/D{number:04}")
            vol.write_bytes(f"/D{number:04}/F.TXT", b"f")
    with library.open("PVOL1") as vol:
        before = [info.path for info in vol.iter_files("/", recursive=True)]
    listing = display.file_attributes(library, "PVOL1", "*ALL")
    rows = [next(listing).path for _ in range(3)]
    with library.open("PVOL1") as other:  # another writer of the volume
        other.rename("/D0100", "/Z0100")
        other.rename(f"/D{DIRS - 50:04}", "/A0000")
        other.rename("/D0500", "/Y0500")
        other.write_bytes("/Y0500/NEW.TXT", b"new")
    rows += [info.path for info in listing]
    assert rows == before
