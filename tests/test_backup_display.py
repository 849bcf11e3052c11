"""How the human displays show a backup's complete range (reference §6.4: a last changed
later than the range end marks a partial backup)."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta

from optvol.cli import render
from optvol.copying import CopyRequest, cpyopt
from optvol.display import directory_attributes, volume_attributes
from optvol.initialize import inzopt
from optvol.model import VolumeType

# The library (PVOL1, BVOL1) and settable clock of the CPYOPT tests.
from test_cpyopt import clock, day, lib, write  # noqa: F401


def _damage_live_version(library, vol: str, name: str) -> None:
    """Flip the first payload byte of ``name``'s live version (a media error on the primary)."""
    directory = library.root / f"{vol}.optvol"
    with sqlite3.connect(directory / "index.sqlite") as conn:
        sector, headers = conn.execute("SELECT sector, header_sectors FROM files WHERE name = ? AND live = 1",
                                       (name,)).fetchone()
        sector_size = conn.execute("SELECT sector_size FROM label").fetchone()[0]
    with open(directory / "data.opv", "r+b") as data:
        data.seek((sector + headers) * sector_size)
        first = data.read(1)
        data.seek(-1, 1)
        data.write(bytes([first[0] ^ 0xFF]))


def _partial_run_in_the_second_of_a_complete_one(lib, clock) -> None:  # noqa: F811
    write(lib, clock, day(1, 1) - timedelta(hours=1), {"/A/F1.TXT": b"one", "/A/F2.TXT": b"two"})
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    start = day(1, 2) + timedelta(microseconds=100_000)
    assert not cpyopt(lib, request, now=start).failures
    write(lib, clock, start + timedelta(milliseconds=200), {"/A/F1.TXT": b"one, changed", "/A/F2.TXT": b"two, changed"})
    _damage_live_version(lib, "PVOL1", "F2.TXT")
    assert len(cpyopt(lib, request, now=start + timedelta(milliseconds=800)).failures) == 1


def test_a_partial_run_in_the_second_of_the_complete_one_is_not_shown_as_complete(lib, clock):  # noqa: F811
    """A run that copied one file and failed another, 0.8 s after a complete run: its last
    changed lies after the range end, but to the second both read 12:00:00, so DSPOPT
    *VOLATR and *DIRATR showed a partial backup as complete (hunt24d F1)."""
    _partial_run_in_the_second_of_a_complete_one(lib, clock)
    rows = dict(line.split(": ", 1) for line in render.volume_attributes(volume_attributes(lib, "BVOL1"), None)
                if ": " in line)
    end, changed = rows["Complete backup range end".ljust(34, ".")], rows["Backup last changed".ljust(34, ".")]
    assert end < changed, (end, changed)
    a = next(info for info in directory_attributes(lib, "BVOL1") if info.path == "/A")
    cells = re.split(r"  +", render.dir_line(a))
    assert cells[2] < cells[3], cells  # range end, last changed
    # A complete range whose last changed is not later keeps the plain display.
    root = next(iter(directory_attributes(lib, "BVOL1", "/")))
    assert render.when(root.backup.range_end) in render.dir_line(root)


def test_chkoptvol_of_several_leaves_out_a_volume_in_use_as_wrkoptvol_does(lib):  # noqa: F811
    """CHKOPTVOL *ALL while another holder has a volume to itself listed it as DAMAGED
    "(volume)" and ended with OPV0206, exit 7, though nothing was damaged; the volume is in
    use (OPV0004, exit 8), as CHKOPTVOL of it alone, WRKOPTVOL and DSPOPT *ALL say (hunt24d F2)."""
    import json

    from integrity_helpers import run_cli

    with lib.open("PVOL1", exclusive=True):
        for vol in ("*ALL", "P*"):  # (P* names PVOL1 alone: its error, as CHKOPTVOL PVOL1)
            checked = run_cli(lib.root, "chkoptvol", vol, json_output=True)
            assert checked.rc == 8, checked.err
            assert "OPV0004" in checked.err and "OPV0206" not in checked.err, checked.err
            listed = {r["volume"]: r["damaged"] for r in json.loads(checked.out or b"[]")}
            assert "PVOL1" not in listed and all(not damaged for damaged in listed.values()), listed
        assert run_cli(lib.root, "wrkoptvol").rc == 8


def test_a_listing_of_every_file_reads_the_directories_as_it_goes(lib, clock, monkeypatch):  # noqa: F811
    """WRKOPTF DIR(*ALL) and DSPOPT *FILATR read every directory row of the volume before
    their first file (``list(self._dir_rows(...))``): 300,000 directories took 176 MiB, past
    DESIGN §6's 150 MiB for a volume of a million files (hunt24d F3). The rows come a page
    at a time already; the listing now takes them as it goes."""
    from optvol.volume import Volume

    write(lib, clock, day(1, 1), {f"/D{n}/F.TXT": b"x" for n in range(5)})
    taken = []
    pages = Volume._dir_rows

    def counted(self, path, *, recursive):
        for row in pages(self, path, recursive=recursive):
            taken.append(row.path)
            yield row

    monkeypatch.setattr(Volume, "_dir_rows", counted)
    with lib.open("PVOL1") as volume:
        first = next(volume.iter_files("/", recursive=True))
    assert first.path == "/D0/F.TXT"
    assert taken == ["/", "/D0"], taken


def test_json_times_have_iso_8601_offsets_in_a_local_mean_time(monkeypatch):
    """A zone whose offset had seconds then (Monrovia's -00:44:30 until 1972, any zone's
    local mean time) gave "-00:44:30", which ISO 8601 and RFC 3339 do not have: JavaScript's
    Date refused every time of the document (hunt24d F4). The same moment, in whole minutes."""
    import time
    from datetime import datetime, timezone

    from optvol import model

    monkeypatch.setenv("TZ", "<-004430>0:44:30")
    time.tzset()
    try:
        moment = datetime(1971, 6, 1, tzinfo=timezone.utc)
        text = model.iso(moment)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d", text), text
        assert model.from_iso(text) == moment
        assert model.iso(datetime(1, 1, 3, tzinfo=timezone.utc)).startswith("0001-01-0")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_chkoptvol_of_several_says_7_for_a_damaged_volume_beside_one_in_use(lib, clock):  # noqa: F811
    """Review 24f F4: the exit code was the larger one, 8 (in use) over 7 (damaged): a script
    that looks for 7 after a check missed the damage it found."""
    from integrity_helpers import run_cli

    inzopt(lib, vol="PVOL2", now=day(1, 1))
    write(lib, clock, day(1, 2), {"/D/A": b"will be damaged"}, vol="PVOL2")
    _damage_live_version(lib, "PVOL2", "A")
    with lib.open("PVOL1", exclusive=True):
        checked = run_cli(lib.root, "chkoptvol", "*ALL")
    assert checked.rc == 7, checked.err
    assert "OPV0004" in checked.err and "OPV0206" in checked.err, checked.err


def test_time_columns_are_as_wide_as_their_widest_cell(lib, clock, tmp_path):  # noqa: F811
    """A time cell with its microseconds (a partial run in the second of a complete one) or
    its zone (the hour the clocks go back over) was wider than the 19-character column and
    pushed that row's later columns out of line (hunt24d F7, rev24f F5). A table's time
    columns are now as wide as its widest cell; a table of ordinary times keeps its layout."""
    from datetime import datetime, timezone

    from cli_helpers import clean_env, run
    from integrity_helpers import run_cli

    _partial_run_in_the_second_of_a_complete_one(lib, clock)
    for args in (("wrkoptdir", "*ALL", "BVOL1"), ("dspopt", "BVOL1", "--path", "/A", "--data", "*DIRATR")):
        lines = run_cli(lib.root, *args).out.decode().splitlines()
        assert lines[1] != render.DIR_HEADER and ".100000" in "".join(lines), lines
        for line in lines[2:]:
            assert line.index("  /") == lines[1].index("Directory") - 2, lines
    lines = run_cli(lib.root, "wrkoptdir", "*ALL", "PVOL1").out.decode().splitlines()
    assert lines[1] == render.DIR_HEADER and all(line.index("  /") == 82 for line in lines[2:]), lines

    fold = datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc)  # 01:30 EDT; an hour later 01:30 EST
    write(lib, clock, fold, {"/F/EDT.TXT": b"1"})
    write(lib, clock, fold + timedelta(hours=1), {"/F/EST.TXT": b"2"})
    write(lib, clock, fold + timedelta(days=3), {"/F/LATER.TXT": b"3"})
    env = {**clean_env(tmp_path), "TZ": "America/New_York"}
    lines = run("wrkoptf", "PVOL1", "/F", library=lib.root, env=env).text.splitlines()
    assert "01:30:00 EDT" in lines[2] and "01:30:00 EST" in lines[3], lines
    for line in lines[2:]:
        assert line.index("  --  /F/") == lines[1].index("RH") - 2, lines
    lines = run("ls", "-l", "/QOPT/PVOL1/F", library=lib.root, env=env).text.splitlines()
    assert len({line.index("  --  ") for line in lines}) == 1, lines
    lines = run("wrkoptf", "PVOL1", "/A", library=lib.root, env=env).text.splitlines()
    assert lines[1] == render.FILE_HEADER and all(line.index("  --  /A/") == 75 for line in lines[2:]), lines
