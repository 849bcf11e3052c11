"""WRKOPTF FILE(*SELECT) with SLTFILE and SLTDATE (reference §10.5), and the lists within
element lists that SLTDATE is written with, in CL and in the shell."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from cli_helpers import TZ
from optvol import errors
from optvol.cl import parser as cl_parser
from optvol.cl import values as v
from optvol.cl.table import cl_command

# The library (PVOL1, BVOL1) and settable clock of the CPYOPT tests.
from test_cpyopt import clock, day, lib  # noqa: F401

NAMES = ("a.txt", "AB1", "abc", "b", "C", "cz", "d")


def wrkoptf(lib, *args: str, cl: str | None = None, tz: str = TZ) -> subprocess.CompletedProcess:  # noqa: F811
    """The shell's (or with ``cl`` the CL front door's) WRKOPTF --json, local time UTC+2 unless ``tz``."""
    argv = [sys.executable, "-m", "optvol", "--library", str(lib.root), "--json"]
    argv += ["cl", cl] if cl is not None else ["wrkoptf", *args]
    env = {"PATH": "/usr/bin:/bin", "TZ": tz, "HOME": str(lib.root.parent)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def listed(done: subprocess.CompletedProcess) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [row["path"].rsplit("/", 1)[-1] for row in json.loads(done.stdout)]


def fill(lib, clock, names=NAMES, directory="/D", when=None) -> None:  # noqa: F811
    clock.now = when or day(1, 5)
    with lib.open("PVOL1") as volume:
        volume.mkdir(directory, parents=True, exist_ok=True)
        for name in names:
            volume.write_bytes(f"{directory}/{name}", name.encode())


@pytest.mark.parametrize(("sltfile", "expected"), [
    ("*ALL", list(NAMES)),
    ("b", ["b"]),
    ("B", ["b"]),  # names are compared without regard to case
    ("A*", ["a.txt", "AB1", "abc"]),
    ("AB* C", ["AB1", "abc", "b", "C"]),  # 'A.TXT' sorts before 'AB'
    ("b C*", ["b", "C", "cz"]),  # a generic to file takes every name it matches
    ("*ALL b", ["a.txt", "AB1", "abc", "b"]),
    ("ab1 ab1", ["AB1"]),
    ("bb cc", ["C"]),  # names need not exist to bound the range
    ("x*", []),
    ("b *ALL", ["b", "C", "cz", "d"]),  # *ALL as the to file: no last name
    ("*ALL *ALL", list(NAMES)),
])
def test_sltfile_selects_a_range_of_names(lib, clock, sltfile, expected):  # noqa: F811
    fill(lib, clock)
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltfile", sltfile)) == expected


def test_sltfile_in_cl_and_over_every_directory(lib, clock):  # noqa: F811
    fill(lib, clock)
    fill(lib, clock, names=("ABX", "zz"), directory="/D/SUB")
    done = wrkoptf(lib, cl="WRKOPTF VOL(PVOL1) DIR(*ALL) FILE(*SELECT) SLTFILE(AB* 'abz')")
    assert listed(done) == ["AB1", "abc", "ABX"]
    rows = json.loads(done.stdout)
    assert [row["path"] for row in rows] == ["/D/AB1", "/D/abc", "/D/SUB/ABX"]


def test_sltfile_to_before_from_is_refused(lib, clock):  # noqa: F811
    fill(lib, clock)
    done = wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltfile", "c b")
    assert done.returncode == 2 and "OPV0005" in done.stderr and "sorts before" in done.stderr
    # a generic to file whose names include the from file's is a range, not an error
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltfile", "cz c*")) == ["cz"]


def test_sltdate_bounds_are_local_days(lib, clock):  # noqa: F811
    """In UTC+2, 21:00 UTC on 10 January is 23:00 on the 10th and 22:00 UTC midnight of the 11th."""
    for name, when in (("late", day(1, 10, hour=21)), ("midnight", day(1, 10, hour=22)),
                       ("noon", day(1, 11, hour=10)), ("after", day(1, 11, hour=10) + timedelta(seconds=1.5))):
        fill(lib, clock, names=(name,), when=when)
    select = ("PVOL1", "/D", "*SELECT", "--sltdate")
    assert listed(wrkoptf(lib, *select, "*CREATED (*AVAIL 01/11/26)")) == ["after", "midnight", "noon"]
    assert listed(wrkoptf(lib, *select, "*CREATED *N (*AVAIL 2026-01-10)")) == ["late"]
    assert listed(wrkoptf(lib, *select, "*CREATED (*AVAIL 011126) (*AVAIL 011126)")) == ["after", "midnight", "noon"]
    # An ending time counts its whole second: noon (12:00:00.000001 local) is in, 12:00:01.5 is not.
    assert listed(wrkoptf(lib, *select, "created (230000 2026-01-10) (12:00:00 2026-01-11)")) == ["late", "midnight", "noon"]
    assert listed(wrkoptf(lib, *select, "*CREATED (12:00:01 2026-01-11)")) == ["after"]
    cl = "WRKOPTF PVOL1 '/D' *SELECT SLTDATE(*CREATED (000000 '01/11/26') (*AVAIL '01/11/26'))"
    assert listed(wrkoptf(lib, cl=cl)) == ["after", "midnight", "noon"]


def test_sltdate_modified_and_both_selections(lib, clock):  # noqa: F811
    fill(lib, clock, names=("old", "new"), when=day(1, 5))
    clock.now = day(3, 1)
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/D/old", b"changed")  # a new version: modified moves, created stays
        info = volume.stat("/D/old")
    assert info.created < datetime(2026, 2, 1, tzinfo=timezone.utc) < info.modified
    since_feb = ("(*AVAIL 2026-02-01)",)
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltdate", "*MODIFIED " + since_feb[0])) == ["old"]
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltdate", "*CREATED " + since_feb[0])) == []
    both = wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltfile", "N*", "--sltdate", "*MODIFIED (*AVAIL 2026-02-01)")
    assert listed(both) == []
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltfile", "N*")) == ["new"]


def test_sltdate_end_before_start_is_refused(lib, clock):  # noqa: F811
    fill(lib, clock)
    done = wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltdate", "*CREATED (*AVAIL 2026-01-05) (*AVAIL 2026-01-04)")
    assert done.returncode == 2 and "OPV0005" in done.stderr and "SLTDATE" in done.stderr
    same_second = "*CREATED (12:00:00 2026-01-05) (11:59:59 2026-01-05)"
    assert wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltdate", same_second).returncode == 2


@pytest.mark.parametrize("args", [
    ("--sltfile", "b"),
    ("b", "--sltdate", "*MODIFIED"),
])
def test_selection_needs_file_select(lib, clock, args):  # noqa: F811
    """SLTFILE and SLTDATE are valid only with FILE(*SELECT): refused, not quietly dropped."""
    fill(lib, clock)
    done = wrkoptf(lib, "PVOL1", "/D", *args)
    assert done.returncode == 2 and "OPV0005" in done.stderr and "FILE(*SELECT)" in done.stderr
    assert done.stdout == ""
    cl = wrkoptf(lib, cl="WRKOPTF PVOL1 '/D' SLTFILE(B)")
    assert cl.returncode == 2 and "FILE(*SELECT)" in cl.stderr


def test_selection_is_ignored_on_a_backup_volume(lib, clock):  # noqa: F811
    """IBM ignores SLTFILE and SLTDATE for a volume initialized as a backup: every file is
    listed, and optvol says so on stderr."""
    fill(lib, clock)
    from optvol.copying import CopyRequest, cpyopt
    from optvol.model import VolumeType

    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    cpyopt(lib, request, now=day(1, 6))
    done = wrkoptf(lib, "BVOL1", "/D", "*SELECT", "--sltfile", "b")
    assert listed(done) == list(NAMES)
    assert "ignored on backup volume BVOL1" in done.stderr
    plain = wrkoptf(lib, "BVOL1", "/D", "b")  # FILE(name) still works there
    assert listed(plain) == ["b"] and plain.stderr == ""


def test_api_selection(lib, clock):  # noqa: F811
    from optvol.display import DateKind, file_selection, work_files

    fill(lib, clock)
    selection = file_selection("abc", "c")
    assert [f.path for f in work_files(lib, vol="PVOL1", dir="/D", file="*SELECT", selection=selection)] == [
        "/D/abc", "/D/b", "/D/C"]
    with pytest.raises(errors.InvalidError):
        file_selection("d", "c")
    later = file_selection(kind=DateKind.MODIFIED, start=day(1, 6))
    assert list(work_files(lib, vol="PVOL1", dir="/D", file="*SELECT", selection=later)) == []


def test_sltdate_range_the_clocks_skip_is_empty_not_refused(lib, clock):  # noqa: F811
    """New York skips 02:00-03:00 on 2026-03-08: a range inside it holds no moment."""
    fill(lib, clock, when=datetime(2026, 3, 8, 6, 59, tzinfo=timezone.utc))  # 01:59 EST
    select = ("PVOL1", "/D", "*SELECT", "--sltdate")
    done = wrkoptf(lib, *select, "*CREATED (02:00:00 2026-03-08) (02:59:58 2026-03-08)", tz="EST5EDT,M3.2.0,M11.1.0")
    assert listed(done) == []
    refused = wrkoptf(lib, *select, "*CREATED (12:00:00 2026-01-05) (11:59:59 2026-01-05)")
    assert refused.returncode == 2 and "(12:00:00 2026-01-05) (11:59:59 2026-01-05)" in refused.stderr


def test_sltdate_ending_time_takes_in_both_passes_of_a_repeated_hour(lib, clock):  # noqa: F811
    """New York passes 01:00-02:00 twice on 2026-11-01: 01:15 EDT and 01:15 EST are both
    before an ending time of 01:30."""
    fill(lib, clock, names=("edt",), when=datetime(2026, 11, 1, 5, 15, tzinfo=timezone.utc))
    fill(lib, clock, names=("est",), when=datetime(2026, 11, 1, 6, 15, tzinfo=timezone.utc))
    fill(lib, clock, names=("late",), when=datetime(2026, 11, 1, 6, 45, tzinfo=timezone.utc))  # 01:45 EST
    done = wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltdate", "*CREATED (01:00:00 2026-11-01) (01:30:00 2026-11-01)",
                   tz="EST5EDT,M3.2.0,M11.1.0")
    assert listed(done) == ["edt", "est"]


# ---------------------------------------------------------------- lists within lists


def test_cl_parses_lists_within_lists():
    command, given = cl_parser.parse("WRKOPTF PVOL1 '/D' *SELECT SLTDATE(*MODIFIED (*AVAIL '01/02/26') (*N '2026-02-01'))")
    values = command.parse_values(given, cl=True)
    assert values["SLTDATE"][0] == "*MODIFIED"
    assert values["SLTDATE"][1] == ("*AVAIL", datetime(2026, 1, 2).date())
    assert values["SLTDATE"][2] == ("*AVAIL", datetime(2026, 2, 1).date())
    # an inner list left out (*N) or cut short takes its defaults
    command, given = cl_parser.parse("WRKOPTF PVOL1 '/D' *SELECT SLTDATE(*CREATED *N (120000))")
    assert command.parse_values(given, cl=True)["SLTDATE"] == ("*CREATED", ("*AVAIL", "*BEGIN"), (datetime(1, 1, 1, 12).time(), "*END"))


@pytest.mark.parametrize(("text", "reason"), [
    ("WRKOPTF PVOL1 '/D' *SELECT SLTDATE(*CREATED ((*AVAIL)))", "nested at most two deep"),
    ("WRKOPTF PVOL1 '/D' FILE((A))", "FILE takes no list within"),
    ("WRKOPTF PVOL1 '/D' *SELECT SLTFILE((A B))", "SLTFILE takes no list within"),
    ("WRKOPTF PVOL1 '/D' *SELECT SLTDATE(*CREATED (*AVAIL '01/02/26')", "closing parenthesis is missing"),
])
def test_cl_refuses_bad_inner_lists(text, reason):
    with pytest.raises(errors.InvalidError, match="OPV0009") as caught:
        command, given = cl_parser.parse(text)
        command.parse_values(given, cl=True)
    assert reason in str(caught.value)


@pytest.mark.parametrize(("text", "reason"), [
    ("SLTDATE((*CREATED) (*AVAIL))", "element TYPE takes no list"),
    ("SLTDATE(*CREATED () (*AVAIL *END))", "a value is missing in ()"),  # as FROMTIME() is refused
])
def test_cl_refuses_a_list_for_an_element_without_elements(text, reason):
    with pytest.raises(errors.InvalidError, match="OPV0009") as caught:
        cl_parser.parse(f"WRKOPTF PVOL1 '/D' *SELECT {text}")
    assert reason in str(caught.value)


def test_star_n_leaves_out_the_to_file_in_cl_as_in_the_shell():
    command, given = cl_parser.parse("WRKOPTF PVOL1 '/D' *SELECT SLTFILE(B *N)")
    assert command.parse_values(given, cl=True)["SLTFILE"] == ("B", None)
    assert cl_command("WRKOPTF").parse_values({"VOL": "P", "DIR": "/", "SLTFILE": "B *N"})["SLTFILE"] == ("B", None)


def test_an_element_s_volume_error_names_the_keyword():
    with pytest.raises(errors.InvalidError, match="OPV0001") as caught:
        command, given = cl_parser.parse("CPYOPT FROMVOL(PVOL1) FROMPATH('/D') TOVOL(_T *BACKUP)")
        command.parse_values(given, cl=True)
    assert "(keyword TOVOL)" in str(caught.value) and "VOLUME" not in str(caught.value)


@pytest.mark.parametrize("keyword, word", [("TOVOL", "((X))"), ("TOVOL", "(" * 1000 + "X" + ")" * 1000),
                                           ("SLTDATE", "*MODIFIED " + "(" * 100000)])
def test_shell_element_lists_are_nested_at_most_two_deep(keyword, word):
    """hunt-contract F5: the shell's word of an element list nested a thousand deep ended in
    a RecursionError (exit 70), where CL refuses a third level. Refused as CL does, showing
    the word as typed."""
    command = cl_command("CPYOPT" if keyword == "TOVOL" else "WRKOPTF")
    given = {"FROMVOL": "PVOL1", "FROMPATH": "/", "TOVOL": word} if keyword == "TOVOL" else {
        "VOL": "P", "DIR": "/", "FILE": "*SELECT", "SLTDATE": word}
    with pytest.raises(errors.InvalidError, match="OPV0005") as caught:
        command.parse_values(given)
    assert caught.value.text == f"Value {word!r} not valid for {keyword}: lists are nested at most two deep."


def test_a_list_where_an_element_takes_none_is_shown_as_written():
    with pytest.raises(errors.InvalidError, match="OPV0005") as caught:
        cl_command("CPYOPT").parse_values({"FROMVOL": "PVOL1", "FROMPATH": "/", "TOVOL": "(X *N)"})
    assert "Value '(X *N)' not valid for VOLUME: a list is not allowed here" in caught.value.text


def test_shell_element_lists_split_inner_lists():
    assert v.split_elements("*MODIFIED (*AVAIL '01/02/26') (12:00:00 *END)", keyword="K") == [
        "*MODIFIED", ["*AVAIL", "01/02/26"], ["12:00:00", "*END"]]
    assert v.split_elements("'a (b)' c", keyword="K") == ["a (b)", "c"]  # quoted parentheses are text
    for bad, reason in (("a (b", "closing parenthesis is missing"), ("'x'(*AVAIL)", "a blank is missing"),
                        ("a )", "without an opening one"), ("a b)", "directly followed by ')'"),
                        ("report(1).txt", "directly followed by '('")):
        with pytest.raises(errors.InvalidError, match="OPV0005") as caught:
            v.split_elements(bad, keyword="K")
        assert reason in str(caught.value)
    assert v.split_elements("(a)(b 'c)') d", keyword="K") == [["a"], ["b", "c)"], "d"]
    with pytest.raises(errors.InvalidError, match="a blank is missing"):
        v.split_elements("('x'y)", keyword="K")
    with pytest.raises(errors.InvalidError, match="a value is missing"):  # as CL's FROMTIME()
        cl_command("WRKOPTF").parse_values({"VOL": "P", "DIR": "/", "SLTDATE": "*CREATED ()"})
    values = cl_command("WRKOPTF").parse_values({"VOL": "P", "DIR": "/", "FILE": "select",
                                                  "SLTDATE": "modified *n (*avail *end)"})
    assert values["SLTDATE"] == ("*MODIFIED", ("*AVAIL", "*BEGIN"), ("*AVAIL", "*END"))


@pytest.mark.parametrize(("tz", "sltdate", "files", "expected"), [
    # New York goes back from 02:00 EDT to 01:00 EST on 2026-11-01: 01:15 EDT is after 00:59:59
    ("EST5EDT,M3.2.0,M11.1.0", "*CREATED (*AVAIL 2026-11-01) (00:59:59 2026-11-01)",
     {"at0030": (11, 1, 4, 30), "at0115edt": (11, 1, 5, 15)}, ["at0030"]),
    # Cuba-like: back from 01:00 CDT to 00:00 CST on 2026-11-01: 00:30 CDT is on the 1st, not the 31st
    ("CST5CDT,M3.2.0/0,M11.1.0/1", "*CREATED *N (*AVAIL 2026-10-31)",
     {"oct31": (11, 1, 3, 30), "nov01": (11, 1, 4, 30)}, ["oct31"]),
])
def test_sltdate_end_before_a_repeated_hour_stops_at_its_first_pass(lib, clock, tz, sltdate, files, expected):  # noqa: F811
    for name, (month, d, hour, minute) in files.items():
        fill(lib, clock, names=(name,), when=datetime(2026, month, d, hour, minute, tzinfo=timezone.utc))
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*SELECT", "--sltdate", sltdate, tz=tz)) == expected


@pytest.mark.parametrize("file", ["*SELCT", "", "x/y", "a?b", "A*B", "**", "*NONE"])
def test_a_file_value_no_name_can_match_is_refused_not_an_empty_list(lib, clock, file):  # noqa: F811
    """hunt-cl F6: a misspelled *SELECT, a name with / or a * inside listed nothing, exit 0:
    "no such files" for what was a typing error."""
    fill(lib, clock)
    done = wrkoptf(lib, "PVOL1", "/D", file)
    assert done.returncode == 2 and f"OPV0005: Value {file!r} not valid for FILE" in done.stderr, done.stderr
    assert done.stdout == ""


def test_names_generics_and_all_still_list(lib, clock):  # noqa: F811
    fill(lib, clock)
    assert listed(wrkoptf(lib, "PVOL1", "/D", "AB*")) == ["AB1", "abc"]
    assert listed(wrkoptf(lib, "PVOL1", "/D", "a.txt")) == ["a.txt"]
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*")) == list(NAMES)
    assert listed(wrkoptf(lib, "PVOL1", "/D", "*all")) == list(NAMES)


def test_a_dspopt_path_whose_last_element_no_name_can_match_is_refused(lib, clock):  # noqa: F811
    fill(lib, clock)
    argv = [sys.executable, "-m", "optvol", "--library", str(lib.root), "--json", "dspopt", "PVOL1", "--data", "*FILATR"]
    bad = subprocess.run(argv + ["--path", "/D/**"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "OPV0005: Value '**' not valid for PATH" in bad.stderr, bad.stderr
    good = subprocess.run(argv + ["--path", "/D/c*"], capture_output=True, text=True, timeout=60)
    assert [row["path"] for row in json.loads(good.stdout)] == ["/D/C", "/D/cz"]
