"""WRKOPTDIR's SORT and STRDATE (reference §10.4)."""

from __future__ import annotations

import json
import subprocess
import sys

# The library (PVOL1, BVOL1) and settable clock of the CPYOPT tests.
from test_cpyopt import clock, day, lib  # noqa: F401


def test_wrkoptdir_sort_and_start_date(lib, clock):  # noqa: F811 (the fixtures imported above)
    """WRKOPTDIR SORT(*DATE) orders by creation; STRDATE leaves out older directories (reference §10.4)."""
    from optvol.display import work_directories

    for when, path in ((day(3, 1), "/A"), (day(1, 1), "/B"), (day(2, 1), "/C")):
        clock.now = when
        with lib.open("PVOL1") as volume:
            volume.mkdir(path)
    by_name = [d.path for d in work_directories(lib, vol="PVOL1")]
    by_date = [d.path for d in work_directories(lib, vol="PVOL1", by_date=True)]
    recent = [d.path for d in work_directories(lib, vol="PVOL1", since=day(2, 1, hour=0))]
    assert by_name == ["/", "/A", "/B", "/C"]
    assert by_date == ["/", "/B", "/C", "/A"]  # the root was made by INZOPT on 1 Jan at noon, before /B
    assert recent == ["/A", "/C"]
    shell = subprocess.run([sys.executable, "-m", "optvol", "--library", str(lib.root), "--json", "wrkoptdir",
                            "*ALL", "PVOL1", "*DATE", "--strdate", "2026-02-01"], capture_output=True, text=True)
    assert [d["path"] for d in json.loads(shell.stdout)] == ["/C", "/A"]
