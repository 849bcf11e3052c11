"""``optvol cl`` end to end: CL commands from the argument, a file or stdin, run as subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest


def optvol(tmp_path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``optvol --library <tmp>/lib ARGS`` in tmp_path."""
    return subprocess.run(
        [sys.executable, "-m", "optvol", "--library", str(tmp_path / "lib"), *args],
        input=stdin, capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )


def cl(tmp_path, text: str, *options: str) -> subprocess.CompletedProcess:
    return optvol(tmp_path, "cl", *options, text)


def volume_json(tmp_path, vol: str) -> dict:
    done = optvol(tmp_path, "--json", "cl", f"DSPOPT VOL({vol})")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def listing(tmp_path, path: str) -> list[str]:
    done = optvol(tmp_path, "--json", "ls", path)
    assert done.returncode == 0, done.stderr
    return [entry["path"] for entry in json.loads(done.stdout)]


@pytest.fixture
def pvol1(tmp_path):
    """A library with the primary volume PVOL1 holding /Dir1/a.txt ("alpha")."""
    (tmp_path / "a.txt").write_text("alpha")
    done = cl(tmp_path, "INZOPT VOL(PVOL1)\nCRTDIR DIR('/QOPT/PVOL1/Dir1')\nCPY OBJ('a.txt') TODIR('/QOPT/PVOL1/Dir1')")
    assert done.returncode == 0, done.stderr
    return tmp_path


# --------------------------------------------------------------------- the front door


def test_inzopt_through_cl(tmp_path):
    done = cl(tmp_path, "INZOPT VOL(pvol1) THRESHOLD(90) TEXT('Quarterly reports')")
    assert done.returncode == 0, done.stderr
    assert "PVOL1 created" in done.stdout
    info = volume_json(tmp_path, "PVOL1")
    assert (info["volume"], info["threshold"], info["text"], info["type"]) == ("PVOL1", 90, "Quarterly reports", "*PRIMARY")


def test_same_values_as_the_shell(tmp_path):
    assert cl(tmp_path, "INZOPT PVOL1 TEXT('via cl') MEDTYPE(*DVD-RAM)").returncode == 0
    assert optvol(tmp_path, "inzopt", "PVOL2", "--text", "via cl", "--medtype", "dvd-ram").returncode == 0
    one, two = volume_json(tmp_path, "PVOL1"), volume_json(tmp_path, "PVOL2")
    for field in ("media_type", "media_format", "threshold", "capacity", "sector_size", "text"):
        assert one[field] == two[field]


def test_file_with_continuation_and_comments(tmp_path):
    (tmp_path / "setup.cl").write_text(
        "/* Set up the archive volumes */\n"
        "INZOPT VOL(PVOL1) +\n"
        "       TEXT('Primary +\n"
        "             volume')          /* the working volume */\n"
        "\n"
        "INZOPT VOL(BVOL1) TYPE(*BACKUP) TEXT('Backup -\n"
        "  of PVOL1')\n"
        "CHGOPTVOL VOL(PVOL1) THRESHOLD(80)\n"
    )
    done = optvol(tmp_path, "cl", "-f", "setup.cl")
    assert done.returncode == 0, done.stderr
    assert volume_json(tmp_path, "PVOL1")["text"] == "Primary volume"
    assert volume_json(tmp_path, "PVOL1")["threshold"] == 80
    backup = volume_json(tmp_path, "BVOL1")
    assert (backup["type"], backup["text"]) == ("*BACKUP", "Backup   of PVOL1")


@pytest.mark.parametrize("args", [("cl", "-"), ("cl", "-f", "-")])
def test_commands_on_standard_input(tmp_path, args):
    done = optvol(tmp_path, *args, stdin="INZOPT PVOL1\nINZOPT PVOL2 TYPE(*BACKUP)\n")
    assert done.returncode == 0, done.stderr
    assert volume_json(tmp_path, "PVOL2")["type"] == "*BACKUP"


@pytest.mark.parametrize("args", [("cl", "-f", "bom.cl"), ("cl", "-")])
def test_a_file_saved_with_a_byte_order_mark_runs(tmp_path, args):
    """hunt-cl F12: Notepad starts a UTF-8 file with U+FEFF, which became part of the first
    command's name ('\\ufeffINZOPT' is not a command name)."""
    (tmp_path / "bom.cl").write_bytes("\ufeffINZOPT PVOL1 TEXT('café')\n".encode())
    done = optvol(tmp_path, *args, stdin=(tmp_path / "bom.cl").read_text(encoding="utf-8"))
    assert done.returncode == 0, done.stderr
    assert volume_json(tmp_path, "PVOL1")["text"] == "café"


def test_stops_at_the_first_failing_command(tmp_path):
    done = cl(tmp_path, "INZOPT PVOL1\nCHGOPTVOL NOVOL 50\nINZOPT PVOL2")
    assert done.returncode == 3
    assert "OPV0002" in done.stderr and "(line 2)" in done.stderr
    assert optvol(tmp_path, "dspopt", "PVOL2").returncode == 3  # never ran


def test_continue_runs_everything_and_exits_with_the_first_failure(tmp_path):
    done = cl(tmp_path, "INZOPT PVOL1\nCHGOPTVOL NOVOL 50\nINZOPT PVOL2 BAD(1)\nINZOPT PVOL3", "--continue")
    assert done.returncode == 3
    assert "(line 2)" in done.stderr and "(line 3)" in done.stderr and "BAD" in done.stderr
    assert "2 of 4 CL commands failed" in done.stderr
    assert volume_json(tmp_path, "PVOL3")["volume"] == "PVOL3"


def test_continue_after_the_subcommand_name(tmp_path):
    done = optvol(tmp_path, "cl", "--continue", "CHGOPTVOL NOVOL\nINZOPT PVOL1")
    assert done.returncode == 3
    assert volume_json(tmp_path, "PVOL1")["volume"] == "PVOL1"


def test_json_is_the_commands_own_document(pvol1):
    done = optvol(pvol1, "--json", "cl", "DSPOPT PVOL1 DATA(*FILATR) PATH('/Dir1')")
    assert done.returncode == 0, done.stderr
    assert [f["path"] for f in json.loads(done.stdout)] == ["/Dir1/a.txt"]
    after = optvol(pvol1, "cl", "--json", "CHGOPTVOL PVOL1 TEXT('after')")
    assert json.loads(after.stdout)["text"] == "after"


def test_json_of_several_commands_is_one_document_each(pvol1):
    done = optvol(pvol1, "--json", "cl", "WRKOPTVOL\nDSPOPT PVOL1")
    decoder, text, documents = json.JSONDecoder(), done.stdout.strip(), []
    while text:
        document, end = decoder.raw_decode(text)
        documents.append(document)
        text = text[end:].strip()
    assert [row["volume"] for row in documents[0]] == ["PVOL1"] and documents[1]["volume"] == "PVOL1"


@pytest.mark.parametrize("text, named", [
    ("INZOPT VOL(PVOL1) THRESHOLD(101)", "THRESHOLD"),
    ("INZOPT VOL(PVOL1) TEXT('open", "TEXT"),
    ("CHGOPTVOL PVOL1 50 *NONE EXTRA", "position 4"),
    ("LS '/QOPT/PVOL1'", "not a CL command"),
])
def test_invalid_commands_exit_2_naming_the_fault(tmp_path, text, named):
    done = cl(tmp_path, text)
    assert done.returncode == 2
    assert done.stderr.startswith("optvol: OPV") and named in done.stderr
    assert "Traceback" not in done.stderr


def test_a_broken_source_runs_nothing(tmp_path):
    done = cl(tmp_path, "INZOPT PVOL1\nINZOPT PVOL2 /* not closed")
    assert done.returncode == 2 and "comment" in done.stderr
    assert optvol(tmp_path, "dspopt", "PVOL1").returncode == 3


@pytest.mark.parametrize("args, code", [
    (("cl",), 2),
    (("cl", "INZOPT PVOL1", "-f", "x.cl"), 2),
    (("cl", "-f", "missing.cl"), 3),
    (("cl", "/* nothing */"), 2),
])
def test_bad_cl_invocations(tmp_path, args, code):
    done = optvol(tmp_path, *args)
    assert done.returncode == code and done.stderr.startswith("optvol:")


# --------------------------------------------------------------------- IFS commands


def test_cpy_host_to_volume_and_back(pvol1):
    assert listing(pvol1, "/QOPT/PVOL1/Dir1") == ["/Dir1/a.txt"]
    done = cl(pvol1, "CPY OBJ('/QOPT/PVOL1/Dir1/a.txt') TOOBJ('back.txt')")
    assert done.returncode == 0, done.stderr
    assert (pvol1 / "back.txt").read_text() == "alpha"


def test_cpy_does_not_replace_unless_told(pvol1):
    (pvol1 / "a.txt").write_text("beta")
    assert cl(pvol1, "CPY 'a.txt' '/QOPT/PVOL1/Dir1/a.txt'").returncode == 4
    assert cl(pvol1, "CPY 'a.txt' '/QOPT/PVOL1/Dir1/a.txt' REPLACE(*YES)").returncode == 0
    assert cl(pvol1, "CPY '/QOPT/PVOL1/Dir1/a.txt' TOOBJ('out.txt')").returncode == 0
    assert (pvol1 / "out.txt").read_text() == "beta"


def test_cpy_subtree(pvol1):
    (pvol1 / "out").mkdir()
    assert cl(pvol1, "CPY '/QOPT/PVOL1/Dir1' TODIR('out')").returncode != 0
    done = cl(pvol1, "CPY '/QOPT/PVOL1/Dir1' TODIR('out') SUBTREE(*ALL)")
    assert done.returncode == 0, done.stderr
    assert (pvol1 / "out" / "Dir1" / "a.txt").read_text() == "alpha"


@pytest.mark.parametrize("command", ["CPY", "MOV"])
def test_an_empty_todir_is_refused_not_the_host_root(pvol1, command):
    """hunt-cl F3: TODIR('') became TODIR('/'): MOV put the file in the host's root directory
    (as root) and took it off the volume."""
    name = f"TODIR_{os.getpid()}_{command}.txt"  # its own name: nothing else makes it in the root directory
    (pvol1 / name).write_text("x")
    assert cl(pvol1, f"CPY '{name}' '/QOPT/PVOL1/Dir1/{name}'").returncode == 0
    done = cl(pvol1, f"{command} OBJ('/QOPT/PVOL1/Dir1/{name}') TODIR('')")
    assert done.returncode == 2 and "OPV0005: Value '' not valid for TODIR: it is empty" in done.stderr, done.stderr
    assert listing(pvol1, "/QOPT/PVOL1/Dir1") == ["/Dir1/a.txt", f"/Dir1/{name}"] and not os.path.exists("/" + name)


def test_cpy_needs_exactly_one_target(pvol1):
    for text in ("CPY 'a.txt'", "CPY 'a.txt' '/QOPT/PVOL1/b' TODIR('/QOPT/PVOL1/Dir1')"):
        done = cl(pvol1, text)
        assert done.returncode == 2 and "TODIR" in done.stderr


def test_mov_rnm_and_del(pvol1):
    done = cl(pvol1, "CRTDIR '/QOPT/PVOL1/Dir2'\n"
                     "MOV OBJ('/QOPT/PVOL1/Dir1/a.txt') TODIR('/QOPT/PVOL1/Dir2')\n"
                     "RNM '/QOPT/PVOL1/Dir2/a.txt' NEWOBJ('Renamed.txt')")
    assert done.returncode == 0, done.stderr
    assert listing(pvol1, "/QOPT/PVOL1/Dir2") == ["/Dir2/Renamed.txt"]
    assert listing(pvol1, "/QOPT/PVOL1/Dir1") == []
    assert cl(pvol1, "RNM '/QOPT/PVOL1/Dir2/Renamed.txt' '/Dir1/x.txt'").returncode == 2
    assert cl(pvol1, "DEL '/QOPT/PVOL1/Dir2/Renamed.txt'").returncode == 0
    assert cl(pvol1, "RMVLNK OBJLNK('/QOPT/PVOL1/Dir2/Renamed.txt')").returncode == 3
    assert cl(pvol1, "DEL '/QOPT/PVOL1/Dir2'").returncode == 5  # a directory


def test_mov_never_replaces(pvol1):
    assert cl(pvol1, "CPY 'a.txt' '/QOPT/PVOL1/b.txt'").returncode == 0
    assert cl(pvol1, "MOV '/QOPT/PVOL1/b.txt' '/QOPT/PVOL1/Dir1/a.txt'").returncode == 4


def test_rmvdir_with_and_without_subtree(pvol1):
    assert cl(pvol1, "RMVDIR '/QOPT/PVOL1/Dir1'").returncode != 0  # not empty
    assert cl(pvol1, "RMVDIR DIR('/QOPT/PVOL1/Dir1') SUBTREE(*ALL)").returncode == 0
    assert listing(pvol1, "/QOPT/PVOL1") == []
    assert cl(pvol1, "MKDIR '/QOPT/PVOL1/Empty'\nRD '/QOPT/PVOL1/Empty'").returncode == 0


def test_chgatr_read_only_and_hidden(pvol1):
    path = "/QOPT/PVOL1/Dir1/a.txt"
    done = optvol(pvol1, "--json", "cl", f"CHGATR OBJ('{path}') ATR(*READONLY) VALUE(*YES)")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["read_only"] is True
    assert cl(pvol1, f"DEL '{path}'").returncode == 5
    done = optvol(pvol1, "--json", "cl", f"CHGATR '{path}' *HIDDEN *YES\nCHGATR '{path}' *READONLY *NO")
    assert done.returncode == 0, done.stderr
    assert cl(pvol1, f"DEL '{path}'").returncode == 0


def test_ifs_commands_refuse_a_backup_volume(pvol1):
    assert cl(pvol1, "INZOPT BVOL1 TYPE(*BACKUP)").returncode == 0
    assert cl(pvol1, "CRTDIR '/QOPT/BVOL1/Dir1'").returncode == 5
    assert cl(pvol1, "CPY 'a.txt' TODIR('/QOPT/BVOL1')").returncode == 5


def test_ifs_commands_in_the_shell_too(pvol1):
    assert optvol(pvol1, "rnm", "/QOPT/PVOL1/Dir1/a.txt", "b.txt").returncode == 0
    assert listing(pvol1, "/QOPT/PVOL1/Dir1") == ["/Dir1/b.txt"]


# --------------------------------------------------------------------- names, not special values


def test_in_cl_a_special_value_needs_its_star_where_a_name_could_be_meant(pvol1):
    """TOVOL(FROMVOL) is the volume FROMVOL, as IBM's command analyzer reads it; only
    *FROMVOL is the source volume. Only-special parameters still take YES for *YES."""
    tmp_path = pvol1
    assert cl(tmp_path, "INZOPT VOL(FROMVOL)\nINZOPT VOL(ALL)").returncode == 0
    for tovol in ("FROMVOL", "'FROMVOL'"):
        done = cl(tmp_path, f"CPYOPT FROMVOL(PVOL1) FROMPATH('/Dir1') TOVOL({tovol}) TOPATH('/COPY') CRTDIR(YES)")
        assert done.returncode == 0, done.stderr
        assert "-> FROMVOL /COPY:" in done.stdout
    assert listing(tmp_path, "/QOPT/FROMVOL/COPY") == ["/COPY/a.txt"]
    assert listing(tmp_path, "/QOPT/PVOL1/") == ["/Dir1"]
    assert volume_json(tmp_path, "ALL")["volume"] == "ALL"  # not every volume
    done = optvol(tmp_path, "--json", "cl", "DSPOPT VOL(*ALL)")
    assert done.returncode == 0 and {v["volume"] for v in json.loads(done.stdout)} == {"PVOL1", "FROMVOL", "ALL"}


@pytest.mark.parametrize("text", [
    "CPYOPT FROMVOL(PVOL1) FROMPATH('/Dir1') TOVOL('teſt') CRTDIR(*YES)",  # ſ.upper() == "S"
    "DSPOPT VOL('ﬀ')",  # "ﬀ".upper() == "FF"
    "INZOPT VOL('dıſk')",
    "CPYOPT PVOL1 '/Dir1' PVOL1 TOPATH('/X') COPYTYPE('*ſyſtem')",
    "CPYOPT PVOL1 '/Dir1' PVOL1 TOPATH('/X') FROMTIME('２０２６-01-01')",  # full-width digits
])
def test_only_ascii_folds_onto_ascii(pvol1, text):
    tmp_path = pvol1
    for volume in ("TEST", "FF"):
        assert cl(tmp_path, f"INZOPT VOL({volume})").returncode == 0
    before = {path: path.stat().st_size for path in (tmp_path / "lib").rglob("*") if path.is_file()}
    done = cl(tmp_path, text)
    assert done.returncode == 2 and re.match(r"optvol: OPV000[159]: ", done.stderr), done.stderr
    assert {path: path.stat().st_size for path in (tmp_path / "lib").rglob("*") if path.is_file()} == before


def test_unquoted_values_fold_a_to_z_only(pvol1):
    tmp_path = pvol1
    done = cl(tmp_path, "CPYOPT FROMVOL(PVOL1) FROMPATH('/Dir1') TOVOL(*FROMVOL) TOPATH(/straße) CRTDIR(*YES)")
    assert done.returncode == 0, done.stderr
    assert "/STRAßE" in listing(tmp_path, "/QOPT/PVOL1/")


@pytest.mark.parametrize("fromtime", ["'12/31/9999' '23:59:59'", "'9999-12-31'", "'9999-12-30'", "'0001-01-01'",
                                      "'0001-01-02'"])
def test_a_fromtime_at_the_ends_of_the_calendar_is_refused_in_any_time_zone(pvol1, monkeypatch, fromtime):
    monkeypatch.setenv("TZ", "America/New_York")
    done = cl(pvol1, f"CPYOPT PVOL1 '/Dir1' PVOL1 TOPATH('/X') CRTDIR(*YES) FROMTIME({fromtime})")
    assert done.returncode == 2 and done.stderr.startswith("optvol: OPV0005: FROMTIME element 1:"), done.stderr
    assert "0001-01-03 to 9999-12-29" in done.stderr


def test_an_unclosed_quote_is_a_cl_syntax_error(pvol1):
    done = cl(pvol1, "DSPOPT VOL(PVOL1) DATA(*FILATR) PATH('/Dir1)")
    assert done.returncode == 2 and done.stderr.startswith("optvol: OPV0009: CL command not valid: DSPOPT keyword PATH:")


def test_library_and_a_cl_file_given_twice_are_refused_and_an_empty_library_too(pvol1, tmp_path_factory):
    """hunt-cl F4, F5: the last --library won (a library made there), the first -f file was
    skipped without a word; an empty --library (a script's unset variable) was the user's
    default library, made if missing."""
    other = tmp_path_factory.mktemp("other") / "lib"
    (pvol1 / "one.clp").write_text("CRTDIR DIR('/QOPT/PVOL1/ONE')\n")
    (pvol1 / "two.clp").write_text("CRTDIR DIR('/QOPT/PVOL1/TWO')\n")
    for args in (["--library", str(other), "wrkoptvol"], ["wrkoptvol", "--library", str(other)],
                 ["cl", "-f", "one.clp", "-f", "two.clp"], ["cl", "--file=one.clp", "-f", "two.clp"]):
        done = optvol(pvol1, *args)
        assert done.returncode == 2 and "given more than once" in done.stderr, (args, done.stderr)
    assert not other.exists() and listing(pvol1, "/QOPT/PVOL1/") == ["/Dir1"]
    home = tmp_path_factory.mktemp("home")
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", "", "wrkoptvol"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home)})
    assert (done.returncode, done.stderr) == (2, "optvol: OPV0006: Library '' cannot be used: an empty path "
                                                 "names no directory.\n")
    assert list(home.iterdir()) == []


def test_the_shell_refuses_an_option_given_twice_and_an_empty_element_list(pvol1):
    tmp_path = pvol1
    twice = optvol(tmp_path, "cpyopt", "PVOL1", "/Dir1", "PVOL1", "--topath", "/ONE", "--topath", "/TWO", "--crtdir", "*YES")
    assert twice.returncode == 2 and "--topath given more than once" in twice.stderr
    empty = optvol(tmp_path, "cpyopt", "PVOL1", "/Dir1", "PVOL1", "--topath", "/ONE", "--crtdir", "*YES", "--fromtime", "")
    assert empty.returncode == 2 and empty.stderr.startswith("optvol: OPV0005: Value '' not valid for FROMTIME")
    assert listing(tmp_path, "/QOPT/PVOL1/") == ["/Dir1"]


def test_dspopt_takes_ibms_output_values(pvol1):
    """IBM scripts write DSPOPT ... OUTPUT(*PRINT); both * and *PRINT go to standard output."""
    plain = cl(pvol1, "DSPOPT VOL(PVOL1) DATA(*FILATR) PATH('/Dir1')")
    assert plain.returncode == 0 and "a.txt" in plain.stdout
    for output in ("*", "*PRINT"):
        done = cl(pvol1, f"DSPOPT VOL(PVOL1) DATA(*FILATR) PATH('/Dir1') OUTPUT({output})")
        assert (done.returncode, done.stdout) == (0, plain.stdout)
    refused = cl(pvol1, "DSPOPT VOL(PVOL1) OUTPUT(*OUTFILE)")
    assert refused.returncode == 2 and refused.stderr.startswith("optvol: OPV0005: Value '*OUTFILE' not valid for OUTPUT")


def test_the_shell_takes_star_n_for_an_omitted_element_as_cl_does(pvol1):
    done = optvol(pvol1, "cpyopt", "PVOL1", "/Dir1", "PVOL1 *N", "--topath", "/COPY", "--crtdir", "*YES",
                  "--fromtime", "*n 12:00:00")
    assert done.returncode == 0, done.stderr
    assert listing(pvol1, "/QOPT/PVOL1/COPY") == ["/COPY/a.txt"]


@pytest.mark.parametrize(("statement", "shell"), [
    ("WRKOPTDIR *N PVOL1", ["wrkoptdir", "*N", "PVOL1"]),
    ("DSPOPT PVOL1 *N *FILATR", ["dspopt", "PVOL1", "*n", "*FILATR"]),
    ("CHGOPTVOL PVOL1 *N TEXT('Left out')", ["chgoptvol", "PVOL1", "*N", "--text", "Left out"]),
])
def test_the_shell_takes_a_positional_star_n_as_left_out_as_cl_does(pvol1, statement, shell):
    """hunt30a F5: a CL line written positionally with *N for a value left out was refused in
    the shell (OPV0005, CPF1F48), where CL takes it: the same output in both now."""
    in_cl, in_shell = optvol(pvol1, "--json", "cl", statement), optvol(pvol1, "--json", *shell)
    assert in_shell.returncode == in_cl.returncode == 0, (in_shell.stderr, in_cl.stderr)
    moving = ("used", "available", "last_referenced")  # (CHGOPTVOL writes a label each time)
    shown = [json.loads(done.stdout) for done in (in_shell, in_cl)]
    shown = [{k: x for k, x in o.items() if k not in moving} if isinstance(o, dict) else o for o in shown]
    assert shown[0] == shown[1]


def test_a_quoted_star_n_in_cl_is_a_value_not_an_omission(pvol1):
    done = cl(pvol1, "CPYOPT FROMVOL(PVOL1 '*N') FROMPATH('/Dir1') TOVOL(*FROMVOL) TOPATH('/X') CRTDIR(*YES)")
    assert done.returncode == 2 and done.stderr.startswith("optvol: OPV0005: FROMVOL element 2"), done.stderr


@pytest.mark.parametrize(("text", "keyword"), [
    ("CHGOPTVOL VOL(_V19)", "VOL"), ("INZOPT VOL(PVOL1) NEWVOL(_V19) CHECK(*NO)", "NEWVOL"),
    ("DSPOPT VOL(_V19)", "VOL"), ("DUPOPT FROMVOL(PVOL1) TOVOL(_V19)", "TOVOL"), ("CHKOPTVOL VOL(_V19*)", "VOL"),
])
def test_a_bad_volume_identifier_is_opv0001_naming_what_was_typed_and_the_keyword(pvol1, text, keyword):
    done = cl(pvol1, text)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("optvol: OPV0001: Volume identifier '_V19") and f"(keyword {keyword})" in done.stderr


@pytest.mark.parametrize("text", ["DSPOPT VOL(*MOUNTED)", "CHKOPTVOL VOL(*MOUNTED)", "DUPOPT FROMVOL(*MOUNTED) TOVOL(X)"])
def test_mounted_where_ibm_takes_it_says_a_library_has_no_device(pvol1, text):
    """IBM documents VOL(*MOUNTED) for these commands; it got "use 1-32 characters A-Z ...",
    as if the ID were mistyped (hunt-spec F6)."""
    done = cl(pvol1, text)
    assert done.returncode == 2 and "OPV0001" in done.stderr, done.stderr
    assert "*MOUNTED is the volume in a device, and a library has no device: name the volume" in done.stderr


def test_inzopt_of_the_mounted_medium_creates_newvol_only(pvol1):
    """VOL(*MOUNTED), IBM's default, is a new blank medium (reference §9): NEWVOL names the
    volume it creates; without NEWVOL, or with the ID of a volume the library holds, it is
    refused and nothing changes."""
    created = cl(pvol1, "INZOPT NEWVOL(vimage) DEV(OPTVRT01) CHECK(*NO) TEXT('new image')")
    assert created.returncode == 0 and "VIMAGE created" in created.stdout, created.stderr
    assert volume_json(pvol1, "VIMAGE")["text"] == "new image"
    taken = cl(pvol1, "INZOPT VOL(*MOUNTED) NEWVOL(PVOL1) CHECK(*NO)")
    assert taken.returncode == 4 and taken.stderr.startswith("optvol: OPV0003: Volume PVOL1 already exists")
    assert listing(pvol1, "/QOPT/PVOL1/") == ["/Dir1"]
    for nameless in (cl(pvol1, "INZOPT DEV(OPTVRT01)"), optvol(pvol1, "inzopt")):
        assert nameless.returncode == 2 and nameless.stderr.startswith("optvol: OPV0005: Value '*MOUNTED' not valid for VOL")
    shell = optvol(pvol1, "inzopt", "--newvol", "SHELLV", "--dev", "opt01", "--endopt", "unload", "--ccsid", "500")
    assert shell.returncode == 0 and "SHELLV created" in shell.stdout, shell.stderr
    named = cl(pvol1, "INZOPT VOL(MOUNTED)")  # in CL without its * it is a name
    assert named.returncode == 0 and "MOUNTED created" in named.stdout


def test_dupopt_accepts_ibms_device_keywords(pvol1):
    done = cl(pvol1, "DUPOPT FROMVOL(PVOL1) TOVOL(DUP1) FROMDEV(OPT01) TODEV(OPT02) OUTPUT(*ERROR) "
                     "FROMENDOPT(*LEAVE) TOENDOPT(*UNLOAD)")
    assert done.returncode == 0, done.stderr
    assert listing(pvol1, "/QOPT/DUP1/Dir1") == ["/Dir1/a.txt"]


def test_a_relative_generic_dspopt_path_is_refused_in_cl_too(pvol1):
    done = cl(pvol1, "DSPOPT PVOL1 DATA(*DIRATR) PATH('Dir*')")
    assert done.returncode == 2 and done.stderr.startswith("optvol: CPF1F48: Path name 'Dir*' not valid"), done.stderr
    assert cl(pvol1, "DSPOPT PVOL1 DATA(*DIRATR) PATH('/Dir*')").returncode == 0


@pytest.mark.parametrize("capacity, reason", [("1KB", "at least 1M"), ("10K", "at least 1M"), ("8388608T", "at most"),
                                              ("9223372036854775808", "at most")])
def test_a_capacity_out_of_range_is_quoted_as_typed(tmp_path, capacity, reason):
    for done in (cl(tmp_path, f"INZOPT VOL(BIG) CAPACITY({capacity})"), optvol(tmp_path, "inzopt", "BIG", "--capacity", capacity)):
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"optvol: OPV0005: Value '{capacity}' not valid for CAPACITY: {reason}"), done.stderr


def test_the_cpyopt_summary_names_the_target_volume_not_fromvol(pvol1):
    """TOVOL(*FROMVOL) is the source volume: the summary names it, with the TOPATH given."""
    done = cl(pvol1, "CPYOPT FROMVOL(PVOL1) FROMPATH('/Dir1') TOVOL(*FROMVOL) TOPATH('/Copy') CRTDIR(*YES)")
    assert done.returncode == 0 and done.stdout.startswith("CPYOPT PVOL1 /Dir1 -> PVOL1 /Copy: 1 copied"), done.stdout
    shell = optvol(pvol1, "cpyopt", "PVOL1", "/Dir1", "fromvol", "--topath", "/Copy2", "--crtdir", "yes")
    assert shell.returncode == 0 and shell.stdout.startswith("CPYOPT PVOL1 /Dir1 -> PVOL1 /Copy2: 1 copied"), shell.stdout


@pytest.mark.parametrize("args", [("wrkoptvol", "A", "x\noptvol: OPV0000: all good"), ("cl", "DSPOPT \x1b[2JVOL(PVOL1)"),
                                  ("cl", "DSPOPT VOL(PVOL1) \u202eXYZ(1)")])
def test_an_error_citing_what_was_typed_is_one_visible_line(pvol1, args):
    """hunt-cl F9: OPV0008 cited argparse's raw arguments and OPV0009 a CL keyword as typed:
    a newline made a second, fake message; an escape sequence reached the terminal."""
    done = optvol(pvol1, *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.endswith(".\n"), done.stderr
    assert not set(done.stderr[:-1]) & {"\n", "\x1b", "\u202e"}
    assert any(escape in done.stderr for escape in ("\\n", "\\x1b", "\\u202e")), done.stderr


def test_an_error_shows_values_after_double_dash_as_typed(pvol1):
    """review s21a F2: the stand-ins for values after ``--`` that start with '-' were shown as
    \\x000\\x00 once errors escaped what does not print."""
    done = optvol(pvol1, "wrkoptvol", "PVOL1", "*ALL", "--", "-x", "-y\nz")
    assert done.returncode == 2 and "unrecognized arguments: *ALL -x -y\\nz." in done.stderr, done.stderr
    typed = optvol(pvol1, "wrkoptvol", "PVOL1", "a\\x000\\x00b", "--", "-x")  # what the escaped stand-in looks like
    assert "unrecognized arguments: a\\x000\\x00b -x." in typed.stderr, typed.stderr  # (review s21c F6)


@pytest.mark.parametrize("data", ["*DIRATR", "*FILATR"])
def test_a_dspopt_path_ending_in_star_all_is_refused_as_before(pvol1, data):
    """review s21a F3: PATH('/Dir1/*ALL') passed the generic check; *DIRATR then listed nothing, exit 0."""
    done = optvol(pvol1, "dspopt", "PVOL1", "--data", data, "--path", "/Dir1/*ALL")
    assert done.returncode == 2 and done.stdout == "", done.stdout


def test_an_error_escapes_every_character_that_does_not_print():
    from optvol import errors

    text = errors.error("OPV0005", value="x", keyword="K\u061c\u200b\ufeff\u00a0", reason="é ok").text
    assert text == "Value 'x' not valid for K\\u061c\\u200b\\ufeff\\xa0: é ok."


def test_the_demo_refuses_an_empty_library(tmp_path):
    """review s21a: ``--library '' demo`` went on with a scratch library of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "optvol", "--library", "", "demo"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("optvol: OPV0006: Library ''") and done.stdout == ""


def test_the_hint_for_a_dspopt_path_names_only_what_it_takes(pvol1):
    """review s21c F7: it offered *ALL, which PATH('/Dir1/*ALL') refuses."""
    done = optvol(pvol1, "dspopt", "PVOL1", "--data", "*FILATR", "--path", "/Dir1/**")
    assert done.returncode == 2 and "(a name or generic name AB*)" in done.stderr and "*ALL" not in done.stderr


@pytest.mark.parametrize("shell", [["cp", "/QOPT/PVOL1/Dir1/a.txt", "*N"], ["cp", "/QOPT/PVOL1/Dir1/a.txt", "*n"]])
def test_a_positional_star_n_that_is_a_needed_path_is_a_host_file_of_that_name(pvol1, shell):
    """rev30g F1: since cf8f404 'cp /QOPT/PVOL1/F *N' was refused (OPV0005 'CP needs a value'):
    a path that cannot be left out is never an omitted value; it names a host file '*N'."""
    done = optvol(pvol1, *shell)
    assert done.returncode == 0, done.stderr
    assert (pvol1 / shell[-1]).read_text() == "alpha"
