"""Dates typed as parameters become the right moments in any local time zone, and every
stored moment can be shown in any zone (reference §15; README "IBM syntax").

Zones are POSIX TZ rules, so that no tz database is needed: CAIRO skips its midnight on the
last Friday of April (2026-04-24: 00:00 EET becomes 01:00 EEST), NEW_YORK skips 02:00-03:00
on 2026-03-08 and passes 01:00-02:00 twice on 2026-11-01; FAR_WEST and FAR_EAST are 32 hours
apart, as the zones' local mean times of long ago are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from optvol import model
from optvol.copying import CopyRequest, cpyopt
from optvol.model import VolumeType

# The library (PVOL1, BVOL1) and settable clock of the CPYOPT tests.
from test_cpyopt import clock, lib  # noqa: F401

CAIRO = "EET-2EEST,M4.5.5/0,M10.5.4/24"
NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"
FAR_WEST, FAR_EAST = "<-16>16", "<+16>-16"
UTC = timezone.utc


@pytest.fixture
def zone(monkeypatch):
    """Set this process's local zone: ``zone(CAIRO)``; put back afterwards."""

    def set_zone(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def optvol(lib, tz: str, *args: str) -> subprocess.CompletedProcess:  # noqa: F811
    env = {"PATH": "/usr/bin:/bin", "TZ": tz, "HOME": str(lib.root.parent)}
    return subprocess.run([sys.executable, "-m", "optvol", "--library", str(lib.root), *args],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(("tz", "wall", "expected"), [
    (CAIRO, datetime(2026, 4, 24), datetime(2026, 4, 23, 22, tzinfo=UTC)),  # the day starts at 01:00 EEST
    (CAIRO, datetime(2026, 4, 24, 0, 30), datetime(2026, 4, 23, 22, tzinfo=UTC)),  # skipped: the jump
    (CAIRO, datetime(2026, 4, 24, 1), datetime(2026, 4, 23, 22, tzinfo=UTC)),
    (CAIRO, datetime(2026, 4, 23, 23, 59, 59), datetime(2026, 4, 23, 21, 59, 59, tzinfo=UTC)),
    (NEW_YORK, datetime(2026, 3, 8, 2, 30), datetime(2026, 3, 8, 7, tzinfo=UTC)),  # 03:00 EDT
    (NEW_YORK, datetime(2026, 11, 1, 1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # the first 01:30 (EDT)
    (NEW_YORK, datetime(2026, 7, 1, 12), datetime(2026, 7, 1, 16, tzinfo=UTC)),
])
def test_local_moment_is_the_first_instant_at_or_after_a_wall_time(zone, tz, wall, expected):
    zone(tz)
    moment = model.local_moment(wall)
    assert moment == expected
    assert moment.utcoffset() == moment.astimezone().utcoffset()  # it carries its local offset


def test_a_day_whose_midnight_is_skipped_starts_at_one(lib, clock):  # noqa: F811
    """STRDATE, FROMTIME (*AVAIL) and SLTDATE of 2026-04-24 in Cairo do not take in the last
    hour of the 23rd; the FROMTIME recorded as the backup's range start is 01:00 EEST."""
    clock.now = datetime(2026, 4, 23, 21, 30, tzinfo=UTC)  # 23:30 on the 23rd, Cairo time
    with lib.open("PVOL1") as volume:
        volume.mkdir("/APR23")
        volume.write_bytes("/APR23/f", b"23rd")
    clock.now = datetime(2026, 4, 24, 6, tzinfo=UTC)
    with lib.open("PVOL1") as volume:
        volume.mkdir("/APR24")
        volume.write_bytes("/APR24/f", b"24th")
    dirs = optvol(lib, CAIRO, "--json", "wrkoptdir", "*ALL", "PVOL1", "--strdate", "2026-04-24")
    assert [d["path"] for d in json.loads(dirs.stdout)] == ["/APR24"], dirs.stderr
    files = optvol(lib, CAIRO, "--json", "wrkoptf", "PVOL1", "*ALL", "*SELECT", "--sltdate", "*CREATED (*AVAIL 2026-04-24)")
    assert [f["path"] for f in json.loads(files.stdout)] == ["/APR24/f"], files.stderr
    before = optvol(lib, CAIRO, "--json", "wrkoptf", "PVOL1", "*ALL", "*SELECT", "--sltdate", "*CREATED *N (*AVAIL 2026-04-23)")
    assert [f["path"] for f in json.loads(before.stdout)] == ["/APR23/f"], before.stderr
    copy = optvol(lib, CAIRO, "--json", "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES",
                  "--fromtime", "2026-04-24")
    assert copy.returncode == 0, copy.stderr
    assert json.loads(copy.stdout)["copied"] == 1  # /APR24/f only
    root = optvol(lib, CAIRO, "--json", "dspopt", "BVOL1", "--data", "*DIRATR", "--path", "/")
    assert json.loads(root.stdout)[0]["backup"]["range_start"] == "2026-04-24T01:00:00.000000+03:00"


def test_the_date_limits_convert_between_zones_32_hours_apart(lib):  # noqa: F811
    """A FROMTIME at the last second of the last date, typed 16 hours west of UTC, is shown
    16 hours east of it; the first date the other way round."""
    for tz, fromtime, path in ((FAR_WEST, "12/29/9999 23:59:59", "/LAST"), (FAR_EAST, "'0001-01-03' '00:00:00'", "/FIRST")):
        with lib.open("PVOL1") as volume:
            volume.mkdir(path)
        done = optvol(lib, tz, "cpyopt", "PVOL1", path, "BVOL1 *BACKUP", "--fromtime", fromtime)
        assert done.returncode == 0, done.stderr
    for tz in (FAR_WEST, FAR_EAST):
        for args in (("wrkoptvol",), ("dspopt", "BVOL1", "--data", "*DIRATR"), ("dspopt", "BVOL1", "--data", "*BKUHST"),
                     ("wrkoptdir", "*ALL", "BVOL1")):
            for form in ((), ("--json",)):
                done = optvol(lib, tz, *form, *args)
                assert done.returncode == 0, (tz, args, done.stderr)


def test_a_moment_stored_beyond_local_range_is_shown_in_utc(lib, clock, zone):  # noqa: F811
    """A range start stored by an optvol with wider limits, and a file time near year 10000,
    pass the end of the calendar in a zone east of UTC: they are shown in UTC, not a traceback."""
    clock.now = datetime(9999, 12, 31, 20, tzinfo=UTC)
    with lib.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/f", b"late")
    request = CopyRequest(fromvol="PVOL1", frompath="/D", tovol="BVOL1", totype=VolumeType.BACKUP,
                          fromtime=datetime(9999, 12, 31, 10, tzinfo=UTC))
    cpyopt(lib, request, now=datetime(9999, 12, 31, 21, tzinfo=UTC))
    east = "<+14>-14"
    for args in (("--json", "dspopt", "BVOL1", "--data", "*DIRATR", "--path", "/D"), ("dspopt", "BVOL1", "--data", "*BKUHST"),
                 ("wrkoptf", "PVOL1", "/D"), ("--json", "wrkoptf", "PVOL1", "/D"), ("wrkoptvol",)):
        done = optvol(lib, east, *args)
        assert done.returncode == 0, (args, done.stderr)
    rows = json.loads(optvol(lib, east, "--json", "wrkoptf", "PVOL1", "/D").stdout)
    assert rows[0]["created"].startswith("9999-12-31T20:00:00") and rows[0]["created"].endswith("+00:00")
    zone(east)
    assert model.iso(datetime(9999, 12, 31, 20, tzinfo=UTC)).endswith("+00:00")
    assert model.iso(datetime(9999, 12, 30, 20, tzinfo=UTC)) == "9999-12-31T10:00:00.000000+14:00"
    assert model.local(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=14)))


def test_the_earliest_fromtime_is_shown_as_it_can_be_typed_back(lib):  # noqa: F811
    """A hunt of session 19: a FROMTIME in year 1 was shown as '1-01-03 00:00:00' (strftime's
    %Y does not pad), which FROMTIME then refused. Listings pad the year to four digits, and
    what the request log shows is taken back."""
    ran = optvol(lib, "UTC0", "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES",
                 "--fromtime", "0001-01-03 00:00:00")
    assert ran.returncode == 0, ran.stderr
    shown = optvol(lib, "UTC0", "dspopt", "BVOL1", "--data", "*BKUHST")
    assert "FROMTIME(0001-01-03 00:00:00)" in shown.stdout, shown.stdout
    again = optvol(lib, "UTC0", "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES",
                   "--fromtime", "0001-01-03 00:00:00")
    assert again.returncode == 0, again.stderr


def test_the_two_passes_of_the_hour_the_clocks_go_back_over_are_shown_apart(zone):
    """A backup's end at 01:50 EDT and its last changed at 01:10 EST (20 minutes later: a
    partial run) were both shown as plain wall times, so the table said 'complete'
    (reference §6.4; hunt24b F2). The zone now tells them apart; other times stay as they were."""
    from optvol.cli.render import when
    zone(NEW_YORK)
    assert when(datetime(2026, 11, 1, 5, 50, tzinfo=UTC)) == "2026-11-01 01:50:00 EDT"
    assert when(datetime(2026, 11, 1, 6, 10, tzinfo=UTC)) == "2026-11-01 01:10:00 EST"
    assert when(datetime(2026, 11, 1, 7, 10, tzinfo=UTC)) == "2026-11-01 02:10:00"
    assert when(datetime(2026, 7, 1, 16, tzinfo=UTC)) == "2026-07-01 12:00:00"


def test_two_passes_of_one_zone_name_are_shown_apart_by_their_offsets(zone):
    """Moscow went back from MSK (+04) to MSK (+03) on 26 October 2014: the zone's name was
    the same on both passes, so a backup's end at 01:50 (+04) and its last changed at 01:10
    (+03), 20 minutes later, still read as complete. The offsets tell them apart (review 24f F2)."""
    from optvol.cli.render import when
    zone("Europe/Moscow")
    assert when(datetime(2014, 10, 25, 21, 50, tzinfo=UTC)) == "2014-10-26 01:50:00 UTC+04:00"
    assert when(datetime(2014, 10, 25, 22, 10, tzinfo=UTC)) == "2014-10-26 01:10:00 UTC+03:00"
    assert when(datetime(2014, 10, 25, 23, 10, tzinfo=UTC)) == "2014-10-26 02:10:00"


def test_the_check_of_a_day_follows_a_change_of_zone_with_the_same_names(zone):
    """Indianapolis kept no daylight saving time in 2000; New York did, with the same zone
    names (EST, EDT): a listing in the first must not leave the second's 01:30 EDT on
    29 October 2000 shown without its zone (review 24f F3)."""
    from optvol.cli.render import when
    moment = datetime(2000, 10, 29, 5, 30, tzinfo=UTC)
    zone("America/Indiana/Indianapolis")
    assert when(moment) == "2000-10-29 00:30:00"
    zone("America/New_York")
    assert when(moment) == "2000-10-29 01:30:00 EDT"
