"""The shell front door end to end (DESIGN §4): real subprocesses of ``python -m optvol``.

Every command runs with ``--library`` in tmp_path and without ``$OPTVOL_LIBRARY``; a few
run in-process through ``optvol.cli.main``. Bad input is checked for its exit code, for
exactly one ``optvol: MSGID: text`` line on stderr, and for leaving the library unchanged.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import (
    BACKUP_FIELDS,
    DIRATR_FIELDS,
    ERROR_LINE,
    FILATR_FIELDS,
    TZ_OFFSET,
    VOLATR_FIELDS,
    clean_env,
    is_iso,
    micros,
    run,
    snapshot,
)
from optvol import cli
from optvol.cl.table import BY_NAME, COMMANDS


class Shell:
    """``optvol`` with a library, an environment and a host directory of its own."""

    def __init__(self, root: Path):
        self.root = root
        self.lib = root / "lib"
        self.home = root / "home"
        self.host = root / "host"
        self.home.mkdir(parents=True, exist_ok=True)
        self.host.mkdir(exist_ok=True)
        self.env = clean_env(self.home)

    def __call__(self, *args, json_output: bool = False, ok: bool = True):
        result = run(*args, library=self.lib, env=self.env, cwd=self.host, json_output=json_output)
        if ok:
            assert result.rc == 0, (args, result.rc, result.err)
        return result

    def json(self, *args):
        return self(*args, json_output=True).json()

    def build(self, *args) -> None:
        """Set-up steps run in-process through ``optvol.cli.main`` (fast); they must succeed."""
        assert cli.main(["--library", str(self.lib), *map(str, args)]) == 0, args

    def write_host(self, name: str, data: bytes) -> Path:
        path = self.host / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


@pytest.fixture
def sh(tmp_path) -> Shell:
    return Shell(tmp_path)


def _payload(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def _check_volatr(row: dict) -> None:
    assert set(row) == VOLATR_FIELDS
    for key in ("sector_size", "capacity", "used", "available", "threshold"):
        assert type(row[key]) is int, key
    for key in ("volume", "type", "media_type", "media_format", "text"):
        assert type(row[key]) is str, key
    assert row["type"] in ("*PRIMARY", "*BACKUP")
    assert row["media_type"] in ("*WORM", "*ERASE", "*DVD-RAM", "*CD-ROM", "*DVD-ROM")
    assert row["media_format"] in ("*HPOFS", "*UDF", "*ISO9660")
    assert is_iso(row["created"]) and is_iso(row["last_referenced"])
    assert row["primary_volume"] is None or type(row["primary_volume"]) is str
    _check_backup(row["backup"])
    assert 0 <= row["used"] and row["available"] == max(0, row["capacity"] * row["threshold"] // 100 // row["sector_size"] * row["sector_size"] - row["used"])


def _check_backup(backup: dict | None) -> None:
    if backup is None:
        return
    assert set(backup) == BACKUP_FIELDS
    assert backup["range_start"] in ("*BEGIN", None) or is_iso(backup["range_start"])
    assert backup["range_end"] is None or is_iso(backup["range_end"])
    assert backup["last_changed"] is None or is_iso(backup["last_changed"])


def _check_dir(row: dict) -> None:
    assert set(row) == DIRATR_FIELDS
    assert row["path"].startswith("/") and is_iso(row["created"])
    _check_backup(row["backup"])


def _check_file(row: dict) -> None:
    assert set(row) == FILATR_FIELDS
    assert type(row["size"]) is int and type(row["read_only"]) is bool and type(row["hidden"]) is bool
    assert all(is_iso(row[k]) for k in ("created", "modified", "attr_changed"))
    assert len(row["sha256"]) == 64 and int(row["sha256"], 16) >= 0


# --------------------------------------------------------------------- entry points and help


def test_python_m_optvol_and_top_level_help(sh):
    result = sh("--help")
    text = "".join(result.text.split())
    for command in COMMANDS:
        assert command.shell_name in result.text
        assert "".join(command.help.split()) in text, command.name
    assert result.err == ""


def test_console_script_command_help_shows_the_table(sh):
    # pip puts the console script beside the interpreter that runs the tests (./test.sh runs
    # .venv/bin/python without activating the venv, so .venv/bin need not be on PATH)
    script = shutil.which("optvol", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert script, "the optvol console script is neither beside the interpreter nor on PATH"
    done = subprocess.run([script, "inzopt", "--help"], capture_output=True, text=True, env=sh.env, timeout=60)
    assert done.returncode == 0
    text = "".join(done.stdout.split())
    command = BY_NAME["INZOPT"]
    assert "".join(command.help.split()) in text
    for param in command.params:
        assert "".join(param.help.split()) in text, param.keyword
        assert f"--{param.keyword.lower()}" in done.stdout or param.position


@pytest.mark.parametrize("word, usage", [
    ("dspopt", "VOL [DEV] [DATA]"), ("wrkoptdir", "[DIR] [VOL] [SORT]"), ("chkoptvol", "VOL [OUTPUT] [DEV]"),
    ("cvtoptbku", "BKUVOL [PRIVOL]"), ("cpyopt", "FROMVOL FROMPATH TOVOL"), ("inzopt", "[VOL] [NEWVOL]"),
])
def test_help_marks_the_positional_values_a_command_needs(word, usage):
    """argparse takes them as optional (they may come as --vol too); the help must not say so."""
    from optvol.cli import parser

    sub = parser.build(word).commands[word]
    text = " ".join(sub.format_help().split())
    assert text.endswith(usage) or f" {usage} " in text, text
    for param in BY_NAME[word.upper()].params:
        if param.position:
            shown = " ".join(param.help.split()) + (" Required." if param.required else "")
            assert shown in text and (param.required or f"{shown} Required." not in text), param.keyword


@pytest.mark.parametrize("args", [[], ["--json"]], ids=["plain", "json"])
def test_no_command_is_an_error_line_and_exit_2(sh, args):
    """One error line on stderr as any bad command line gets, nothing on stdout (no usage
    there, where a --json reader expects JSON), and no library created."""
    result = sh(*args, ok=False)
    assert (result.rc, result.out) == (2, b"")
    assert result.err_lines == ["optvol: OPV0008: Command not valid: optvol: a command is required (optvol --help lists them)."]
    assert not sh.lib.exists()


# --------------------------------------------------------------------- library location


def test_library_option_creates_and_names_the_library(sh):
    first = sh("wrkoptvol")
    assert f"created library {sh.lib}" in first.err
    assert (sh.lib / ".optvol-library").is_file()
    second = sh("wrkoptvol")
    assert "created library" not in second.err
    assert str(sh.lib) in second.text


def test_library_from_environment(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    where = tmp_path / "from-env"
    env = clean_env(home, OPTVOL_LIBRARY=str(where))
    result = run("inzopt", "ENVVOL", library=None, env=env)
    assert result.rc == 0, result.err
    assert f"created library {where}" in result.err
    assert (where / "ENVVOL.optvol").is_dir()
    explicit = tmp_path / "explicit"
    result = run("wrkoptvol", library=explicit, env=env, json_output=True)
    assert result.rc == 0 and result.json() == []  # --library wins over $OPTVOL_LIBRARY
    assert f"created library {explicit}" in result.err


def test_library_default_is_under_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run("inzopt", "HOMEVOL", library=None, env=clean_env(home))
    assert result.rc == 0, result.err
    default = home / ".local" / "share" / "optvol"
    assert f"created library {default}" in result.err
    assert (default / "HOMEVOL.optvol").is_dir()


def test_library_that_is_a_file_is_refused(sh):
    sh.lib.parent.mkdir(exist_ok=True)
    sh.lib.write_text("not a library")
    result = sh("wrkoptvol", ok=False)
    assert result.rc == 2 and ERROR_LINE.match(result.err) and "OPV0006" in result.err
    assert sh.lib.read_text() == "not a library"


# --------------------------------------------------------------------- INZOPT, CHGOPTVOL, DSPOPT *VOLATR


def test_inzopt_and_dspopt_volatr(sh):
    sh("inzopt", "pvol1", "--text", "Archive 2026")
    row = sh.json("dspopt", "PVOL1")
    _check_volatr(row)
    assert row["volume"] == "PVOL1" and row["type"] == "*PRIMARY"
    assert (row["media_type"], row["media_format"], row["threshold"]) == ("*ERASE", "*HPOFS", 95)
    assert row["text"] == "Archive 2026" and row["backup"] is None and row["primary_volume"] is None
    assert row["created"].endswith(TZ_OFFSET)  # local time, with its offset
    human = sh("dspopt", "pvol1").text
    assert "Display Optical Volume Attributes" in human and "PVOL1" in human and "Archive 2026" in human


def test_inzopt_options(sh):
    created = sh.json("inzopt", "BVOL1", "--type", "backup")
    _check_volatr(created["volume"])
    assert created["volume"]["type"] == "*BACKUP" and created["volume"]["threshold"] == 99
    udf = sh.json("inzopt", "DVD1", "--medtype", "*dvd-ram", "--capacity", "2M")["volume"]
    assert (udf["media_format"], udf["threshold"], udf["capacity"]) == ("*UDF", 100, 2 * 1024 * 1024)
    small = sh.json("inzopt", "SMALL", "--blksize", "4096", "--threshold", "50", "--capacity", "8M")["volume"]
    assert (small["sector_size"], small["threshold"], small["capacity"]) == (4096, 50, 8 << 20)
    assert small["used"] == 2 * 4096  # the LABEL and root DIRECTORY records
    # Re-initialize with CHECK(*NO): everything is erased; NEWVOL renames.
    data = sh.write_host("a.bin", b"x" * 5000)
    sh.build("cp", data, "/QOPT/SMALL/a.bin")
    again = sh.json("inzopt", "SMALL", "--newvol", "SMALL2", "--check", "no")
    assert again["created"] is False and again["erased_files"] == 1 and again["volume"]["volume"] == "SMALL2"
    assert [r["volume"] for r in sh.json("wrkoptvol")] == ["BVOL1", "DVD1", "SMALL2"]


def test_chgoptvol(sh):
    sh.build("inzopt", "PVOL1")
    changed = sh.json("chgoptvol", "pvol1", "80", "MYAUTL", "--text", "new text")
    _check_volatr(changed)
    assert changed["threshold"] == 80 and changed["text"] == "new text"
    assert "MYAUTL" in sh("dspopt", "PVOL1").text
    assert sh.json("chgoptvol", "PVOL1", "--text", "*blank")["text"] == ""
    kept = sh.json("chgoptvol", "PVOL1", "--autl", "*none")
    assert kept["threshold"] == 80 and "*NONE" in sh("dspopt", "PVOL1").text


def test_a_value_that_starts_with_a_dash_is_joined_to_its_option(sh):
    """README: --text=-draft; --text -draft is refused with the way to write it."""
    sh.build("inzopt", "PVOL1")
    assert sh.json("chgoptvol", "PVOL1", "--text=-draft")["text"] == "-draft"
    refused = sh("chgoptvol", "PVOL1", "--text", "-draft", ok=False)
    assert refused.rc == 2 and "joined to its option: --text=-value" in refused.err, refused.err


# --------------------------------------------------------------------- listings


@pytest.fixture
def filled(sh) -> Shell:
    """PVOL1 with /D1, /D1/SUB, /DATA and four files; ARCH1, ARCH2 and BVOL1 empty."""
    for vol in ("PVOL1", "ARCH1", "ARCH2"):
        sh.build("inzopt", vol)
    sh.build("inzopt", "BVOL1", "--type", "*BACKUP")
    sh.build("mkdir", "-p", "/QOPT/PVOL1/D1/SUB", "/QOPT/PVOL1/DATA")
    sh.write_host("src/a.txt", b"hello\n")
    sh.write_host("src/abc.txt", b"abc")
    sh.write_host("src/b.bin", _payload(5000))
    sh.write_host("src/z.txt", b"zzz")
    sh.build("cp", sh.host / "src/a.txt", sh.host / "src/abc.txt", sh.host / "src/z.txt", "/QOPT/PVOL1/D1/")
    sh.build("cp", sh.host / "src/b.bin", "/QOPT/PVOL1/D1/SUB/b.bin")
    return sh


def test_dspopt_diratr(filled):
    one = filled.json("dspopt", "PVOL1", "*ALL", "*DIRATR", "--path", "/D1")
    assert [r["path"] for r in one] == ["/D1"]
    everything = filled.json("dspopt", "PVOL1", "--data", "diratr", "--path", "*ALL")
    assert [r["path"] for r in everything] == ["/", "/D1", "/D1/SUB", "/DATA"]
    generic = filled.json("dspopt", "PVOL1", "--data", "*DIRATR", "--path", "/D*")
    assert [r["path"] for r in generic] == ["/D1", "/DATA"]
    # A generic last element matches in its directory only, as *FILATR's does.
    assert [r["path"] for r in filled.json("dspopt", "PVOL1", "--data", "*DIRATR", "--path", "/S*")] == []
    assert [r["path"] for r in filled.json("dspopt", "PVOL1", "--data", "*DIRATR", "--path", "/D1/*")] == ["/D1/SUB"]
    for row in everything:
        _check_dir(row)
    assert "/D1/SUB" in filled("dspopt", "PVOL1", "--data", "*DIRATR", "--path", "*ALL").text


def test_positional_values_may_follow_options(filled):
    """Positional values before, between or after ``--keyword`` options: one command line."""
    expected = filled.json("dspopt", "PVOL1", "*ALL", "*DIRATR", "--path", "/D1")
    assert [r["path"] for r in expected] == ["/D1"]
    for argv in (["dspopt", "--path", "/D1", "PVOL1", "*ALL", "*DIRATR"],
                 ["dspopt", "PVOL1", "--path", "/D1", "*ALL", "*DIRATR"],
                 ["dspopt", "PVOL1", "*ALL", "--path", "/D1", "*DIRATR"]):
        assert filled.json(*argv) == expected, argv
    twice = filled("dspopt", "PVOL1", "--path", "/D1", "*ALL", "*DIRATR", "--data", "*FILATR", ok=False)
    assert twice.rc == 2 and "OPV0008" in twice.err and "DATA given twice" in twice.err
    extra = filled("dspopt", "--path", "/D1", "PVOL1", "*ALL", "*DIRATR", "extra", ok=False)
    assert extra.rc == 2 and "OPV0008" in extra.err and "extra" in extra.err


def test_dspopt_filatr(filled):
    single = filled.json("dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1/SUB/b.bin")
    assert len(single) == 1
    _check_file(single[0])
    assert single[0]["path"] == "/D1/SUB/b.bin" and single[0]["size"] == 5000
    assert single[0]["sha256"] == hashlib.sha256(_payload(5000)).hexdigest()
    assert single[0]["read_only"] is False and single[0]["hidden"] is False
    assert single[0]["modified"].endswith(TZ_OFFSET)
    of_dir = filled.json("dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1")
    assert [r["path"] for r in of_dir] == ["/D1/a.txt", "/D1/abc.txt", "/D1/z.txt"]
    generic = filled.json("dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1/a*")
    assert [r["path"] for r in generic] == ["/D1/a.txt", "/D1/abc.txt"]
    everything = filled.json("dspopt", "PVOL1", "--data", "*FILATR", "--path", "*ALL")
    assert [r["path"] for r in everything] == ["/D1/a.txt", "/D1/abc.txt", "/D1/z.txt", "/D1/SUB/b.bin"]
    for row in everything:
        _check_file(row)
    assert "/D1/abc.txt" in filled("dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1").text


def test_dspopt_generic_volumes(filled):
    rows = filled.json("dspopt", "ARCH*")
    assert [r["volume"] for r in rows] == ["ARCH1", "ARCH2"]
    for row in rows:
        _check_volatr(row)


def test_wrkoptvol(filled):
    rows = filled.json("wrkoptvol")
    assert [r["volume"] for r in rows] == ["ARCH1", "ARCH2", "BVOL1", "PVOL1"]
    for row in rows:
        _check_volatr(row)
    assert {r["volume"]: r["type"] for r in rows}["BVOL1"] == "*BACKUP"
    generic = filled.json("wrkoptvol", "arch*")
    assert [r["volume"] for r in generic] == ["ARCH1", "ARCH2"]
    assert filled.json("wrkoptvol", "*ALL") == rows
    human = filled("wrkoptvol", "ARCH*").text.splitlines()
    assert sum(line.startswith("ARCH") for line in human) == 2 and not any(line.startswith("PVOL1") for line in human)


def test_all_of_a_library_without_volumes_lists_nothing(sh):
    """*ALL names no volume, so it is not OPV0002 (as a volume or generic name that matches none is)."""
    for command in ("wrkoptvol", "dspopt", "chkoptvol"):
        assert sh.json(command, "*ALL") == [], command


def test_wrkoptdir(filled):
    rows = filled.json("wrkoptdir", "--vol", "PVOL1")
    assert [r["path"] for r in rows] == ["/", "/D1", "/D1/SUB", "/DATA"]
    for row in rows:
        _check_dir(row)
    below = filled.json("wrkoptdir", "/D1", "PVOL1")
    assert [r["path"] for r in below] == ["/D1", "/D1/SUB"]
    level = filled.json("wrkoptdir", "*ALL", "PVOL1", "--sltlvl", "1")
    assert [r["path"] for r in level] == ["/", "/D1", "/DATA"]
    assert "/D1/SUB" in filled("wrkoptdir", "--vol", "PVOL1").text


def test_wrkoptf(filled):
    rows = filled.json("wrkoptf", "PVOL1", "/D1")
    assert [r["path"] for r in rows] == ["/D1/a.txt", "/D1/abc.txt", "/D1/z.txt"]
    for row in rows:
        _check_file(row)
    assert [r["path"] for r in filled.json("wrkoptf", "PVOL1", "*ALL", "b*")] == ["/D1/SUB/b.bin"]
    assert [r["path"] for r in filled.json("wrkoptf", "PVOL1", "/D1", "Z.TXT")] == ["/D1/z.txt"]
    assert "/D1/z.txt" in filled("wrkoptf", "PVOL1", "/D1").text


# --------------------------------------------------------------------- cp


def test_cp_host_to_volume_and_back(filled):
    sh = filled
    out = sh.host / "back.bin"
    sh("cp", "/QOPT/PVOL1/D1/SUB/b.bin", out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(_payload(5000)).hexdigest()
    info = sh.json("dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1/SUB/b.bin")[0]
    assert out.stat().st_mtime_ns == micros(info["modified"]) * 1000
    assert sh("cat", "/QOPT/PVOL1/D1/a.txt").out == b"hello\n"
    # Into an existing host directory: the file keeps its name.
    (sh.host / "outdir").mkdir()
    sh("cp", "/QOPT/PVOL1/D1/a.txt", sh.host / "outdir")
    assert (sh.host / "outdir" / "a.txt").read_bytes() == b"hello\n"



def test_a_copy_onto_a_fifo_or_a_device_or_a_link_to_one_is_refused(filled):
    """hunt-contract F8: the copy was renamed over its target, so `cp /QOPT/V/f /dev/null` as
    root made /dev/null a regular file for every process, said "copied" (a FIFO and a block
    device likewise). OPV0302, as export-iso says, and the node stays; a link to nothing is
    still replaced by the file, as a link to a file is."""
    sh, host = filled, filled.host
    os.mkfifo(host / "fifo")
    (host / "to-fifo").symlink_to("fifo")
    (host / "dangling").symlink_to("nothing")
    targets = ["fifo", "to-fifo"]
    if os.geteuid() == 0:
        os.mknod(host / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        targets.append("null")
    for target in targets:
        for args in (("cp", "/QOPT/PVOL1/D1/a.txt", host / target),
                     ("cl", f"CPY OBJ('/QOPT/PVOL1/D1/a.txt') TOOBJ('{host / target}') REPLACE(*YES)")):
            refused = sh(*args, ok=False)
            assert refused.rc == 2 and "OPV0302" in refused.err and "not a regular file" in refused.err, refused.err
    assert stat.S_ISFIFO((host / "fifo").lstat().st_mode) and (host / "to-fifo").is_symlink()
    assert os.geteuid() != 0 or stat.S_ISCHR((host / "null").lstat().st_mode)
    sh("cp", "/QOPT/PVOL1/D1/a.txt", host / "dangling")
    assert not (host / "dangling").is_symlink() and (host / "dangling").read_bytes() == b"hello\n"


def test_a_host_target_below_a_file_is_no_directory_not_a_missing_one(filled):
    """hunt-contract F9: cp and export-iso to plain/x, where plain is a file, said OPV0301 "not
    found", exit 3: the path is there, and is no directory (OPV0302, exit 2)."""
    sh, host = filled, filled.host
    (host / "plain").write_bytes(b"p")
    for args in (("cp", "/QOPT/PVOL1/D1/a.txt", host / "plain" / "x"), ("export-iso", "PVOL1", host / "plain" / "x.iso")):
        refused = sh(*args, ok=False)
        assert refused.rc == 2 and "OPV0302" in refused.err and "not a directory" in refused.err, refused.err
    (host / "dangling").symlink_to("nothing")  # review 23c F4: cp said OPV0302 below it, export-iso OPV0301
    for args in (("cp", "/QOPT/PVOL1/D1/a.txt", host / "nowhere" / "x"), ("cp", "/QOPT/PVOL1/D1/a.txt", host / "dangling" / "x"),
                 ("export-iso", "PVOL1", host / "dangling" / "x.iso")):
        missing = sh(*args, ok=False)
        assert missing.rc == 3 and "OPV0301" in missing.err, (args, missing.err)

def test_files_copied_to_the_host_get_the_mode_of_a_new_file_or_of_the_one_they_replace(filled):
    """hunt-cl F2: every host file cp, mv, CPY and MOV wrote was 0600 (mkstemp's) whatever the
    umask, and a file one replaced lost its mode: a restored tree readable by its owner alone."""
    sh, host = filled, filled.host
    previous = os.umask(0o022)
    try:
        sh("cp", "/QOPT/PVOL1/D1/a.txt", host / "new.txt")
        sh("cp", "-r", "/QOPT/PVOL1/D1", host / "tree")
        os.umask(0o027)
        sh("cl", f"CPY OBJ('/QOPT/PVOL1/D1/abc.txt') TOOBJ('{host / 'cpy.txt'}')")
        sh("mv", "/QOPT/PVOL1/D1/SUB/b.bin", host / "moved.bin")
        (host / "kept.sh").write_bytes(b"#!/bin/sh\n")
        (host / "kept.sh").chmod(0o751)
        sh("cp", "/QOPT/PVOL1/D1/z.txt", host / "kept.sh", "--replace", "yes")
    finally:
        os.umask(previous)
    modes = {path: (host / path).stat().st_mode & 0o7777 for path in (
        "new.txt", "tree/a.txt", "tree/SUB/b.bin", "cpy.txt", "moved.bin", "kept.sh")}
    assert modes == {"new.txt": 0o644, "tree/a.txt": 0o644, "tree/SUB/b.bin": 0o644, "cpy.txt": 0o640,
                     "moved.bin": 0o640, "kept.sh": 0o751}
    assert (host / "kept.sh").read_bytes() == b"zzz"
    assert not [p for p in host.rglob(".optvol-*")]  # no temporary file left


def test_a_file_copied_to_the_host_is_never_wider_than_0600_before_its_mode_is_set(filled, monkeypatch):
    """review s21a F1: the temporary file was made 0666 less the umask and only then given a
    private file's 0600: another user could open it in between and read what it received.
    A new file is made as any new file is, its mode never set (review s21c F1, F2: a chmod
    FAT through FUSE does not implement, a directory's default ACL)."""
    from optvol import host_names

    seen, real = [], os.fchmod

    def fchmod(fd, mode):
        seen.append((os.fstat(fd).st_mode & 0o777, mode))
        real(fd, mode)

    monkeypatch.setattr(host_names.os, "fchmod", fchmod)
    private = filled.host / "private.txt"
    private.write_bytes(b"old")
    private.chmod(0o600)
    previous = os.umask(0o022)
    try:
        filled.build("cp", "/QOPT/PVOL1/D1/a.txt", private, "--replace", "yes")  # in this process: fchmod seen
        filled.build("cp", "/QOPT/PVOL1/D1/abc.txt", filled.host / "fresh.txt")
    finally:
        os.umask(previous)
    assert seen == [(0o600, 0o600)]
    assert (private.stat().st_mode & 0o777, (filled.host / "fresh.txt").stat().st_mode & 0o777) == (0o600, 0o644)


def test_a_file_system_without_chmod_takes_copies_as_it_makes_them(filled, monkeypatch):
    """review s21c F1: fusefat answers a chmod with ENOSYS, and every copy that replaced a file failed."""
    import errno

    from optvol import host_names

    def fchmod(fd, mode):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(host_names.os, "fchmod", fchmod)
    (filled.host / "old.txt").write_bytes(b"old")
    filled.build("cp", "/QOPT/PVOL1/D1/a.txt", filled.host / "old.txt", "--replace", "yes")
    assert (filled.host / "old.txt").read_bytes() == b"hello\n"
    assert not list(filled.host.glob(".optvol-*"))


@pytest.mark.skipif(shutil.which("setfacl") is None, reason="setfacl (package acl) is not installed")
def test_a_new_file_gets_the_rights_a_directorys_default_acl_gives(filled):
    """review s21c F2: made 0600 and given 0666 less the umask, a new file lowered the ACL mask
    the directory's default ACL gives (a user it lets write could not)."""
    target = filled.host / "shared"
    target.mkdir()
    subprocess.run(["setfacl", "-d", "-m", "u:nobody:rw", str(target)], check=True)
    (target / "touched").touch()
    previous = os.umask(0o022)
    try:
        filled.build("cp", "/QOPT/PVOL1/D1/a.txt", target / "copied")
    finally:
        os.umask(previous)

    def mask(path):
        listing = subprocess.run(["getfacl", "-c", str(path)], capture_output=True, text=True, check=True).stdout
        return [line for line in listing.splitlines() if line.startswith("mask::")]

    assert mask(target / "copied") == mask(target / "touched") == ["mask::rw-"]


def test_cp_empty_and_large_files(sh):
    sh.build("inzopt", "PVOL1", "--capacity", "64M")
    empty = sh.write_host("empty", b"")
    large = sh.write_host("large", _payload(3 * 1024 * 1024 + 7, seed=3))
    sh("cp", empty, large, "/QOPT/PVOL1/")
    assert sh("cat", "/QOPT/PVOL1/empty").out == b""
    sh("cp", "/QOPT/PVOL1/large", sh.host / "large.back")
    assert (sh.host / "large.back").read_bytes() == large.read_bytes()


def test_cp_of_a_host_file_not_the_size_it_says_writes_nothing(sh):
    """A /proc file says 0 bytes and holds more: it is refused (OPV0302), not stored empty.
    (A file that grows or shrinks while it is copied is refused the same way.)"""
    sh.build("inzopt", "PVOL1")
    refused = sh("cp", "/proc/self/status", "/QOPT/PVOL1/STATUS", ok=False)
    assert refused.rc == 2 and "OPV0302" in refused.err and "/proc/self/status" in refused.err
    assert "holds more than its size (0 bytes)" in refused.err
    assert sh("ls", "/QOPT/PVOL1/").out == b""


@pytest.mark.parametrize("fault", ["read error", "shrinks"])
def test_a_host_file_that_fails_while_it_is_read_writes_nothing(tmp_path, monkeypatch, fault):
    from integrity_helpers import run_cli

    library = tmp_path / "lib"
    assert run_cli(library, "inzopt", "PVOL1").rc == 0
    source = tmp_path / "source.bin"
    source.write_bytes(_payload(3 << 20))
    real_read = os.read

    def read(fd, count):
        if os.path.realpath(f"/proc/self/fd/{fd}") != str(source):
            return real_read(fd, count)
        if fault == "read error":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return b""  # the file was cut short under the copy

    monkeypatch.setattr(os, "read", read)
    result = run_cli(library, "cp", source, "/QOPT/PVOL1/COPY")
    assert result.rc == 2 and "OPV0302" in result.err and str(source) in result.err, result.err
    assert ("Input/output error" if fault == "read error" else "it shrank while it was copied") in result.err
    monkeypatch.setattr(os, "read", real_read)
    assert run_cli(library, "ls", "/QOPT/PVOL1/").out == b""


@pytest.mark.parametrize("odd", ["fifo", "dangling symlink"])
def test_cp_of_a_host_tree_with_an_odd_entry_says_so(sh, odd):
    """A FIFO in a host tree is refused at once (not waited on for a writer); a symbolic
    link to nothing is "not found"; neither is a traceback."""
    sh.build("inzopt", "PVOL1")
    tree = sh.host / "tree"
    sh.write_host("tree/a.txt", b"a")
    if odd == "fifo":
        os.mkfifo(tree / "odd")
    else:
        os.symlink(sh.host / "nowhere", tree / "odd")
    result = sh("cp", "-r", tree, "/QOPT/PVOL1/TREE", ok=False)  # run() has a timeout: a FIFO wait fails it
    assert result.rc == (2 if odd == "fifo" else 3), result.err
    assert result.err.startswith("optvol: OPV030") and str(tree / "odd") in result.err


def test_cp_r_that_fills_the_target_reports_what_it_kept(tmp_path):
    """cp -r onto a volume commits every 1,000 items: when the volume fills in the second
    batch, the first stays, and the report (text or a complete JSON document) names exactly
    the files that stayed; the error follows on stderr with its exit code."""
    import io

    lib = str(tmp_path / "lib")
    for argv in (["inzopt", "PVOL1"], ["inzopt", "SMALL", "--capacity", "10M"]):
        assert cli.main(["--library", lib, *argv], out=io.StringIO(), err=io.StringIO()) == 0
    from optvol.cli.context import system_clock
    from optvol.library import Library

    library = Library(Path(lib), clock=system_clock)
    with library.open("PVOL1") as volume, volume.batch():
        volume.mkdir("/BIG")
        for i in range(2500):
            volume.write_bytes(f"/BIG/F{i:04}", i.to_bytes(2, "big") * 2048)
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["--library", lib, "--json", "cp", "-r", "/QOPT/PVOL1/BIG", "/QOPT/SMALL/BIG"], out=out, err=err)
    assert rc == 6 and err.getvalue().startswith("optvol: CPF1F61"), err.getvalue()
    reported = json.loads(out.getvalue())["copied"]
    with library.open("SMALL") as small:
        kept = ["/QOPT/SMALL" + info.path for info in small.iter_files("/BIG")]
    assert 900 < len(reported) < 1000 and reported == kept  # the first batch: the directory and 998 files


@pytest.mark.parametrize("onto", ["host", "volume"])
def test_cp_r_finishes_when_its_output_is_cut_short(tmp_path, onto):
    """``optvol cp -r ... | head -1``: the reader leaves after a line, and the copy must still
    finish (it used to be reported only at the end; now it reports as it goes)."""
    import io

    lib = tmp_path / "lib"
    for argv in (["inzopt", "PVOL1"], ["inzopt", "PVOL2"]):
        assert cli.main(["--library", str(lib), *argv], out=io.StringIO(), err=io.StringIO()) == 0
    from optvol.cli.context import system_clock
    from optvol.library import Library

    library = Library(lib, clock=system_clock)
    with library.open("PVOL1") as volume, volume.batch():
        volume.mkdir("/BIG")
        for i in range(3000):  # more lines than a pipe holds
            volume.write_bytes(f"/BIG/F{i:04}", b"%d" % i)
    target = str(tmp_path / "out") if onto == "host" else "/QOPT/PVOL2/BIG"
    proc = subprocess.Popen([sys.executable, "-m", "optvol", "--library", str(lib), "cp", "-r", "/QOPT/PVOL1/BIG",
                             target], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"copied ")
    proc.stdout.close()  # as head -1 does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err, err
    if onto == "host":
        assert len(os.listdir(target)) == 3000
    else:
        with library.open("PVOL2") as volume:
            assert len(volume.listdir("/BIG")) == 3000


def test_cp_replace_keeps_versions_on_hpofs(filled):
    sh = filled
    before = sh.json("dspopt", "PVOL1")["used"]
    new = sh.write_host("a2.txt", b"hello again\n")
    sh("cp", new, "/QOPT/PVOL1/D1/a.txt")
    assert sh("cat", "/QOPT/PVOL1/D1/a.txt").out == b"hello again\n"
    after = sh.json("dspopt", "PVOL1")
    assert after["used"] == before + 2 * after["sector_size"]  # a new header and payload sector; the old stay
    refused = sh("cp", new, "/QOPT/PVOL1/D1/a.txt", "--replace", "*no", ok=False)
    assert refused.rc == 4 and "CPF1F24" in refused.err


def test_cp_volume_to_volume(filled):
    sh = filled
    sh("cp", "/QOPT/PVOL1/D1/SUB/b.bin", "/QOPT/ARCH1/")
    copy = sh.json("dspopt", "ARCH1", "--data", "*FILATR", "--path", "/b.bin")[0]
    original = sh.json("dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1/SUB/b.bin")[0]
    assert copy["sha256"] == original["sha256"] and copy["size"] == 5000
    assert sh("cat", "/QOPT/ARCH1/b.bin").out == _payload(5000)


def test_cp_recursive_both_ways(filled):
    sh = filled
    tree = {"t/top.txt": b"top", "t/one/x.bin": _payload(3000, 1), "t/one/two/y.txt": b"", "t/three/z.txt": b"z" * 4097}
    for name, data in tree.items():
        sh.write_host(name, data)
    (sh.host / "t" / "emptydir").mkdir()
    sh("cp", "-r", sh.host / "t", "/QOPT/PVOL1/DATA")
    dirs = [r["path"] for r in sh.json("wrkoptdir", "/DATA", "PVOL1")]
    assert dirs == ["/DATA", "/DATA/t", "/DATA/t/emptydir", "/DATA/t/one", "/DATA/t/one/two", "/DATA/t/three"]
    files = {r["path"]: r["size"] for r in sh.json("wrkoptf", "PVOL1", "*ALL") if r["path"].startswith("/DATA/")}
    assert files == {"/DATA/" + k: len(v) for k, v in tree.items()}
    # Back to the host, into a new directory, then volume to volume.
    sh("cp", "-r", "/QOPT/PVOL1/DATA/t", sh.host / "restored")
    for name, data in tree.items():
        restored = sh.host / "restored" / Path(name).relative_to("t")
        assert restored.read_bytes() == data
    assert (sh.host / "restored" / "emptydir").is_dir()
    sh("cp", "-r", "/QOPT/PVOL1/DATA/t", "/QOPT/ARCH2/")
    assert sh("cat", "/QOPT/ARCH2/t/one/x.bin").out == tree["t/one/x.bin"]


def test_cp_several_sources_into_a_directory(filled):
    sh = filled
    sh("cp", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/z.txt", "/QOPT/PVOL1/D1/SUB/b.bin", "/QOPT/ARCH1/")
    assert [r["path"] for r in sh.json("ls", "/QOPT/ARCH1/")] == ["/a.txt", "/b.bin", "/z.txt"]
    sh("cp", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/z.txt", sh.host)
    assert (sh.host / "a.txt").read_bytes() == b"hello\n" and (sh.host / "z.txt").read_bytes() == b"zzz"


# --------------------------------------------------------------------- mv, rm, mkdir, rmdir


def test_mv(filled):
    sh = filled
    sh("mv", "/QOPT/PVOL1/D1/z.txt", "/QOPT/PVOL1/D1/renamed.txt")
    sh("mv", "/QOPT/PVOL1/D1/renamed.txt", "/QOPT/PVOL1/DATA/")
    sh("mv", "/QOPT/PVOL1/D1/SUB", "/QOPT/PVOL1/DATA/MOVED")
    assert [r["path"] for r in sh.json("wrkoptf", "PVOL1", "*ALL")] == [
        "/D1/a.txt", "/D1/abc.txt", "/DATA/renamed.txt", "/DATA/MOVED/b.bin"]
    assert sh("cat", "/QOPT/PVOL1/DATA/MOVED/b.bin").out == _payload(5000)
    # Across volumes: a copy, then the source is gone.
    sh("mv", "/QOPT/PVOL1/DATA/MOVED", "/QOPT/ARCH1/")
    assert sh("cat", "/QOPT/ARCH1/MOVED/b.bin").out == _payload(5000)
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/", "/D1", "/DATA"]
    # Off the volume to the host.
    sh("mv", "/QOPT/PVOL1/D1/abc.txt", sh.host / "abc.txt")
    assert (sh.host / "abc.txt").read_bytes() == b"abc"
    assert sh("ls", "/QOPT/PVOL1/D1").text.split() == ["a.txt"]


def test_mv_never_replaces_a_file(filled):
    """Within a volume, across volumes or to the host, mv refuses a target file that exists,
    before anything is copied: both files stay as they were (a signed contract is not
    replaced by a draft); CL MOV the same."""
    sh = filled
    sh.build("cp", sh.host / "src/z.txt", "/QOPT/ARCH1/a.txt")
    sh.build("cp", sh.host / "src/z.txt", "/QOPT/PVOL1/D1/other.txt")
    (sh.host / "a.txt").write_bytes(b"on the host")
    for target, code, message in (("/QOPT/PVOL1/D1/other.txt", 4, "CPF1F24"), ("/QOPT/ARCH1/a.txt", 4, "CPF1F24"),
                                  (sh.host / "a.txt", 4, "OPV0303")):
        result = sh("mv", "/QOPT/PVOL1/D1/a.txt", target, ok=False)
        assert result.rc == code and message in result.err, (target, result.rc, result.err)
        moved = sh("cl", f"MOV OBJ('/QOPT/PVOL1/D1/a.txt') TOOBJ('{target}')", ok=False)
        assert moved.rc == code and message in moved.err, (target, moved.rc, moved.err)
    assert sh("cat", "/QOPT/PVOL1/D1/a.txt").out == b"hello\n"
    assert sh("cat", "/QOPT/ARCH1/a.txt").out == b"zzz" and sh("cat", "/QOPT/PVOL1/D1/other.txt").out == b"zzz"
    assert (sh.host / "a.txt").read_bytes() == b"on the host"


def test_an_interrupted_mv_across_volumes_is_finished_by_running_it_again(filled):
    """mv copies, then deletes: cut short (Ctrl-C), it leaves part of the copy on the target
    and the whole source. Run again, it takes a target file with the source's bytes as
    copied and goes on; a different file in the way is still refused, before anything."""
    sh = filled
    sh("mkdir", "-p", "/QOPT/ARCH1/D1/SUB")
    sh("cp", "/QOPT/PVOL1/D1/a.txt", "/QOPT/ARCH1/D1/a.txt")  # what the cut-short run had copied
    sh("cp", "/QOPT/PVOL1/D1/SUB/b.bin", "/QOPT/ARCH1/D1/SUB/b.bin")
    sh("cp", sh.host / "src/a.txt", "/QOPT/ARCH2/a.txt")
    sh("mv", "/QOPT/PVOL1/D1", "/QOPT/ARCH1/")
    assert sorted(r["path"] for r in sh.json("wrkoptf", "ARCH1", "*ALL")) == [
        "/D1/SUB/b.bin", "/D1/a.txt", "/D1/abc.txt", "/D1/z.txt"]
    assert sh("cat", "/QOPT/ARCH1/D1/SUB/b.bin").out == _payload(5000)
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/", "/DATA"]
    sh("cp", sh.host / "src/z.txt", "/QOPT/PVOL1/DATA/a.txt")  # other bytes than ARCH2's a.txt
    refused = sh("mv", "/QOPT/PVOL1/DATA/a.txt", "/QOPT/ARCH2/", ok=False)
    assert refused.rc == 4 and "CPF1F24" in refused.err
    assert sh("cat", "/QOPT/PVOL1/DATA/a.txt").out == b"zzz" and sh("cat", "/QOPT/ARCH2/a.txt").out == b"hello\n"


def test_mv_takes_no_file_as_moved_that_is_damaged_or_on_a_backup(filled):
    """The same bytes on the target let an mv go on only if they read back intact, on a
    volume user programs may write: else the source would go with no good copy left."""
    from optvol.library import Library

    sh = filled
    sh("cp", "/QOPT/PVOL1/D1/a.txt", "/QOPT/ARCH1/a.txt")
    library = Library(sh.lib, clock=lambda: None)
    with library.open("ARCH1") as volume:
        _, row = volume.file_row("/a.txt")
        offset = (row.sector + row.header_sectors) * volume.image.sector_size
    with open(sh.lib / "ARCH1.optvol" / "data.opv", "r+b") as data:
        data.seek(offset)
        data.write(b"J")  # "hello" becomes "Jello" on ARCH1: its SHA-256 no longer matches
    refused = sh("mv", "/QOPT/PVOL1/D1/a.txt", "/QOPT/ARCH1/a.txt", ok=False)
    assert refused.rc == 4 and "CPF1F24" in refused.err
    sh("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")  # BVOL1 holds /D1/z.txt now
    refused = sh("mv", "/QOPT/PVOL1/D1/z.txt", "/QOPT/BVOL1/D1/z.txt", ok=False)
    assert refused.rc == 5 and "OPV0101" in refused.err  # a user program writes no backup, same bytes or not
    assert sh("cat", "/QOPT/PVOL1/D1/a.txt").out == b"hello\n" and sh("cat", "/QOPT/PVOL1/D1/z.txt").out == b"zzz"


def test_mv_to_the_host_keeps_the_source_when_the_host_cannot_make_the_copy_durable(filled, monkeypatch):
    import errno
    import os

    from integrity_helpers import run_cli

    sh = filled
    real = os.fsync

    def failing(fd):  # the disk under the host directory fails the write-back
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    done = run_cli(sh.lib, "mv", "/QOPT/PVOL1/D1/a.txt", sh.host / "a.txt")
    monkeypatch.setattr(os, "fsync", real)
    assert done.rc == 2 and "OPV0302" in done.err, done.err
    assert sh("cat", "/QOPT/PVOL1/D1/a.txt").out == b"hello\n"


def test_double_dash_ends_the_options_before_the_first_positional_value_too(sh):
    """``cp -- -x.txt /QOPT/V/`` copies the host file ./-x.txt (argparse's intermixed parse
    read it as an option when no positional value came before ``--``)."""
    sh.build("inzopt", "UVOL", "--medtype", "*DVD-RAM")  # UDF names may hold '-'
    sh.write_host("-x.txt", b"dash")
    sh("cp", "--", "-x.txt", "/QOPT/UVOL/")
    sh("cp", "--replace", "no", "--", "-x.txt", "/QOPT/UVOL/-y.txt")
    assert sh("cat", "/QOPT/UVOL/-x.txt").out == b"dash" and sh("cat", "/QOPT/UVOL/-y.txt").out == b"dash"
    sh("cp", "/QOPT/UVOL/-y.txt", "--", "-z.txt")
    assert (sh.host / "-z.txt").read_bytes() == b"dash"


def test_rm_of_several_paths_deletes_none_if_one_cannot_go(filled):
    sh = filled
    sh("chattr", "/QOPT/PVOL1/D1/z.txt", "--readonly", "yes")
    for paths in (["/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/z.txt"], ["/QOPT/PVOL1/D1/SUB", "/QOPT/PVOL1/D1"]):
        result = sh("rm", "-r", *paths, ok=False)
        assert result.rc == 5 and "CPF1F37" in result.err and "z.txt" in result.err, (paths, result.err)
    assert [r["path"] for r in sh.json("wrkoptf", "PVOL1", "*ALL")] == [
        "/D1/a.txt", "/D1/abc.txt", "/D1/z.txt", "/D1/SUB/b.bin"]
    twice = sh("rm", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/A.TXT")  # one file named twice: deleted once
    assert twice.rc == 0 and [r["path"] for r in sh.json("wrkoptf", "PVOL1", "*ALL")] == [
        "/D1/abc.txt", "/D1/z.txt", "/D1/SUB/b.bin"]
    sh("chattr", "/QOPT/PVOL1/D1/z.txt", "--readonly", "no")
    nested = sh("rm", "-r", "/QOPT/PVOL1/D1", "/QOPT/PVOL1/d1/SUB/b.bin", "/QOPT/PVOL1/D1/")  # all within /D1
    assert nested.rc == 0, nested.err
    assert sh.json("wrkoptf", "PVOL1", "*ALL") == []


def test_rm_and_space_on_udf(sh):
    sh.build("inzopt", "DVD1", "--medtype", "*DVD-RAM", "--capacity", "4M")
    sh.build("mkdir", "-p", "/QOPT/DVD1/A/B")
    data = sh.write_host("f.bin", _payload(10_000))
    sh.build("cp", data, "/QOPT/DVD1/A/B/f1.bin")
    sh.build("cp", data, "/QOPT/DVD1/A/f2.bin")
    used = sh.json("dspopt", "DVD1")["used"]
    sh("rm", "/QOPT/DVD1/A/f2.bin")
    assert sh.json("dspopt", "DVD1")["used"] == used - 2048 * (1 + 5)  # UDF frees header and payload
    sh("rm", "-r", "/QOPT/DVD1/A")
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "DVD1")] == ["/"]
    assert sh.json("dspopt", "DVD1")["used"] == 2 * 2048  # LABEL and root directory records


def test_rm_keeps_space_on_hpofs(filled):
    sh = filled
    used = sh.json("dspopt", "PVOL1")["used"]
    sh("rm", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/z.txt")
    assert sh.json("dspopt", "PVOL1")["used"] == used + 2 * 2048  # two DELETE records, nothing freed
    sh("rm", "-r", "/QOPT/PVOL1/D1")
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/", "/DATA"]


def test_mkdir_and_rmdir(sh):
    sh.build("inzopt", "PVOL1")
    made = sh.json("mkdir", "-p", "/QOPT/PVOL1/A/B/C")
    assert made == {"created": ["/QOPT/PVOL1/A", "/QOPT/PVOL1/A/B", "/QOPT/PVOL1/A/B/C"]}
    assert sh.json("mkdir", "-p", "/QOPT/PVOL1/A/B") == {"created": []}  # exists: no error with -p, nothing made
    sh("mkdir", "/QOPT/PVOL1/A/X", "/QOPT/PVOL1/Y")
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/", "/A", "/A/B", "/A/B/C", "/A/X", "/Y"]
    sh("rmdir", "/QOPT/PVOL1/A/B/C", "/QOPT/PVOL1/Y")
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/", "/A", "/A/B", "/A/X"]


def test_mkdir_and_rmdir_report_what_they_did_before_a_path_fails(sh):
    """A later path failing leaves the earlier ones done: they are reported, not only the error."""
    sh.build("inzopt", "PVOL1")
    sh.build("mkdir", "/QOPT/PVOL1/D1", "/QOPT/PVOL1/D1/F")
    made = sh("mkdir", "/QOPT/PVOL1/N1", "/QOPT/PVOL1/D1", json_output=True, ok=False)
    assert made.rc == 4 and made.err.startswith("optvol: CPF1F04: ") and made.json() == {"created": ["/QOPT/PVOL1/N1"]}
    removed = sh("rmdir", "/QOPT/PVOL1/N1", "/QOPT/PVOL1/D1", ok=False)
    assert removed.rc == 5 and removed.text == "removed /QOPT/PVOL1/N1\n"
    sh.build("mkdir", "/QOPT/PVOL1/E1")
    removed = sh("rmdir", "/QOPT/PVOL1/E1", "/QOPT/PVOL1/NOPE", json_output=True, ok=False)
    assert removed.rc == 3 and removed.json() == {"removed": ["/QOPT/PVOL1/E1"]}
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/", "/D1", "/D1/F"]


def test_mkdir_reports_qopt_paths_of_every_directory_it_made(sh):
    """As CRTDIR and the other file commands report: the volume is in the path; -p lists its parents."""
    sh.build("inzopt", "PVOL1")
    sh.build("inzopt", "PVOL2")
    sh.build("mkdir", "/QOPT/PVOL2/Reports")
    made = sh.json("mkdir", "-p", "/QOPT/PVOL1/A/B", "/QOPT/PVOL2/REPORTS/Jan/x")
    assert made == {"created": ["/QOPT/PVOL1/A", "/QOPT/PVOL1/A/B", "/QOPT/PVOL2/Reports/Jan", "/QOPT/PVOL2/Reports/Jan/x"]}
    assert sh("mkdir", "/QOPT/PVOL1/C").text == "created /QOPT/PVOL1/C\n"
    assert sh.json("cl", "CRTDIR DIR('/QOPT/PVOL1/D')") == {"created": ["/QOPT/PVOL1/D"]}


def test_mkdir_keeps_the_stored_case_of_the_parent(sh):
    sh.build("inzopt", "PVOL1")
    sh("mkdir", "/QOPT/PVOL1/Reports", "/QOPT/PVOL1/REPORTS/Jan")
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/", "/Reports", "/Reports/Jan"]


def test_mv_of_a_directory_whose_name_changes_length_when_folded(sh):
    sh.build("inzopt", "DVD1", "--medtype", "*DVD-RAM")  # UDF: no name rule against these
    sh("mkdir", "-p", "/QOPT/DVD1/straße/inner/deep")
    sh("mv", "/QOPT/DVD1/straße", "/QOPT/DVD1/x")
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "DVD1")] == ["/", "/x", "/x/inner", "/x/inner/deep"]


def test_mv_of_a_directory_onto_another_case_of_its_name_renames_it(filled):
    """As mv of a file does: the directory is there already under that key, so mv took it as
    the directory to move into, and refused a move into itself (OPV0110). With a trailing
    slash, or as a copy, it still is one."""
    sh = filled
    sh("mv", "/QOPT/PVOL1/D1", "/QOPT/PVOL1/d1")
    assert [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")][:3] == ["/", "/d1", "/d1/SUB"]
    assert sh("cat", "/QOPT/PVOL1/d1/a.txt").out == b"hello\n"
    for args, message in ((["mv", "/QOPT/PVOL1/d1", "/QOPT/PVOL1/D1/"], "OPV0110"),
                          (["cp", "-r", "/QOPT/PVOL1/d1", "/QOPT/PVOL1/D1"], "OPV0110"),
                          (["mv", "/QOPT/PVOL1/d1", "/QOPT/PVOL1/d1"], "CPF1F23")):
        result = sh(*args, ok=False)
        assert message in result.err, (args, result.err)


def test_a_source_named_twice_is_moved_or_copied_once(filled):
    """mv moved the first, then failed on the second naming of the same entry (CPF1F22, exit 3)
    after the work was done; on the host, names that differ in case are two files."""
    sh = filled
    sh("mv", "/QOPT/PVOL1/D1/SUB", "/QOPT/PVOL1/d1/sub", "/QOPT/PVOL1/DATA")
    assert sh("cat", "/QOPT/PVOL1/DATA/SUB/b.bin").out == _payload(5000)
    sh("cp", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/A.TXT", "/QOPT/ARCH1/")
    assert [r["path"] for r in sh.json("ls", "/QOPT/ARCH1/")] == ["/a.txt"]
    (sh.host / "x").write_bytes(b"lower")
    (sh.host / "X").write_bytes(b"upper")
    # Two files, one name there: the second replaced the first, silently; since review 4 of
    # session 19 refused before anything is copied.
    refused = sh("cp", sh.host / "x", sh.host / "X", "/QOPT/ARCH2/", ok=False)
    assert refused.rc == 2 and "two sources have the name" in refused.err and sh.json("ls", "/QOPT/ARCH2/") == []


def test_the_root_of_a_volume_is_not_moved_and_rm_r_of_it_empties_the_volume(filled):
    """mv of a volume's root onto another volume copied the whole tree there and emptied the
    source in one command; docs/messages.md says the root is not moved (CPF1F0A), as rmdir
    and RNM of it are refused. rm -r of the root empties the volume and keeps the root."""
    sh = filled
    before = [r["path"] for r in sh.json("wrkoptf", "PVOL1", "*ALL")]
    for args in (["mv", "/QOPT/PVOL1/", "/QOPT/ARCH1/Y"], ["mv", "/QOPT/PVOL1", "/QOPT/ARCH1/"],
                 ["cl", "MOV OBJ('/QOPT/PVOL1') TODIR('/QOPT/ARCH1')"]):
        result = sh(*args, ok=False)
        assert result.rc == 5 and "CPF1F0A" in result.err, (args, result.rc, result.err)
    assert [r["path"] for r in sh.json("wrkoptf", "PVOL1", "*ALL")] == before
    assert sh.json("ls", "/QOPT/ARCH1/") == []
    sh("rm", "-r", "/QOPT/PVOL1/")
    assert sh.json("ls", "/QOPT/PVOL1/") == [] and [r["path"] for r in sh.json("wrkoptdir", "*ALL", "PVOL1")] == ["/"]


def test_mkdir_below_a_file_says_it_is_a_file(filled):
    """It said 'Directory not found' (CPF1F02) of a path that exists, as a file; cp, ls and
    the listings say OPV0109, as docs/messages.md does for mkdir too."""
    sh = filled
    for args in (["mkdir", "/QOPT/PVOL1/D1/a.txt/sub"], ["cl", "CRTDIR DIR('/QOPT/PVOL1/D1/a.txt/sub')"]):
        result = sh(*args, ok=False)
        assert result.rc == 5 and "OPV0109" in result.err and "'/D1/a.txt'" in result.err, (args, result.err)
    assert sh("mkdir", "/QOPT/PVOL1/NOPE/sub", ok=False).err.startswith("optvol: CPF1F02: Directory '/NOPE'")


def test_a_volume_directory_copied_without_r_is_named_as_a_volume_path(filled):
    """cp of a volume's directory without -r said 'Host path ...' (OPV0302) of a /QOPT path;
    a missing target directory was quoted with the '/' the target ends in."""
    sh = filled
    result = sh("cp", "/QOPT/PVOL1/D1", str(sh.host / "x"), ok=False)
    assert result.rc == 5 and result.err.startswith("optvol: OPV0108: '/D1' on volume PVOL1 is a directory"), result.err
    missing = sh("cl", "CPY OBJ('/QOPT/PVOL1/D1/a.txt') TODIR('/QOPT/ARCH1/Reports')", ok=False)
    assert missing.rc == 3 and "Directory '/Reports' not found" in missing.err, missing.err


# --------------------------------------------------------------------- ls, cat, chattr


def test_ls(filled):
    sh = filled
    assert sh("ls", "/QOPT/PVOL1/D1").text.split() == ["SUB/", "a.txt", "abc.txt", "z.txt"]
    long = sh("ls", "-l", "/QOPT/PVOL1/D1").text.splitlines()
    assert len(long) == 4 and "<DIR>" in long[0] and long[1].split()[0] == "6" and long[1].endswith("a.txt")
    listed = sh.json("ls", "/QOPT/PVOL1/D1")
    _check_dir(listed[0])
    for row in listed[1:]:
        _check_file(row)
    assert [r["path"] for r in sh.json("ls", "/QOPT/PVOL1/D1/a.txt")] == ["/D1/a.txt"]


def test_cat_several_files(filled):
    assert filled("cat", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/abc.txt").out == b"hello\nabc"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_names_an_output_encoding_cannot_show_are_escaped(sh, encoding):
    """Under a legacy locale (stdout not UTF-8) names are printed escaped, JSON stays exact,
    and a message naming such a path keeps its exit code: never a UnicodeEncodeError."""
    sh.build("inzopt", "PVOL1")
    sh.build("cp", sh.write_host("src.txt", b"euro"), "/QOPT/PVOL1/\u20acuro.txt")
    sh.env["PYTHONIOENCODING"] = encoding
    assert sh("ls", "/QOPT/PVOL1/").out.decode("ascii").split() == ["\\u20acuro.txt"]
    assert [f["path"] for f in sh.json("wrkoptf", "PVOL1", "/")] == ["/\u20acuro.txt"]
    missing = sh("cat", "/QOPT/PVOL1/\u20acx", ok=False)
    assert missing.rc == 3 and "CPF1F22" in missing.err and "\\u20acx" in missing.err


def test_chattr(filled):
    sh = filled
    info = sh.json("chattr", "/QOPT/PVOL1/D1/a.txt", "--readonly", "yes", "--hidden", "*YES")
    _check_file(info)
    assert info["read_only"] is True and info["hidden"] is True
    refused = sh("rm", "/QOPT/PVOL1/D1/a.txt", ok=False)
    assert refused.rc == 5 and "CPF1F37" in refused.err
    assert "RH" in sh("ls", "-l", "/QOPT/PVOL1/D1/a.txt").text
    assert sh.json("chattr", "/QOPT/PVOL1/D1/a.txt", "--readonly", "no")["read_only"] is False
    sh("rm", "/QOPT/PVOL1/D1/a.txt")


def test_backup_volume_can_be_listed(filled):
    assert filled.json("ls", "/QOPT/BVOL1/") == []
    assert [r["path"] for r in filled.json("wrkoptdir", "*ALL", "BVOL1")] == ["/"]


def test_backup_fields_after_a_backup(filled):
    sh = filled
    sh.build("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    row = sh.json("dspopt", "BVOL1")
    _check_volatr(row)
    assert row["type"] == "*BACKUP" and row["primary_volume"] == "PVOL1"
    assert row["backup"]["range_start"] == "*BEGIN" and row["backup"]["range_end"].endswith(TZ_OFFSET)
    dirs = sh.json("dspopt", "BVOL1", "--data", "*DIRATR", "--path", "*ALL")
    assert [d["path"] for d in dirs] == ["/", "/D1", "/D1/SUB", "/DATA"]
    for d in dirs:
        _check_dir(d)
        assert d["backup"] is not None
    files = sh.json("wrkoptf", "BVOL1", "*ALL")  # listing a backup volume is allowed
    assert [f["path"] for f in files] == ["/D1/a.txt", "/D1/abc.txt", "/D1/z.txt", "/D1/SUB/b.bin"]
    pvol = {f["path"]: f for f in sh.json("wrkoptf", "PVOL1", "*ALL")}
    for f in files:
        _check_file(f)
        assert (f["sha256"], f["modified"], f["created"]) == tuple(pvol[f["path"]][k] for k in ("sha256", "modified", "created"))


# --------------------------------------------------------------------- in-process


def test_main_in_process(filled, capsys):
    lib = str(filled.lib)
    capsys.readouterr()
    assert cli.main(["--library", lib, "--json", "dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1/a.txt"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == ["/D1/a.txt"]
    assert cli.main(["--library", lib, "mkdir", "/QOPT/PVOL1/INPROC"]) == 0
    assert cli.main(["--library", lib, "--json", "wrkoptdir", "/INPROC", "PVOL1"]) == 0
    assert [r["path"] for r in json.loads(capsys.readouterr().out.split("\n", 1)[1])] == ["/INPROC"]
    assert cli.main(["--library", lib, "dspopt", "NOPE"]) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and ERROR_LINE.match(captured.err)


# --------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A library for the bad-input table, built in-process once; each case must leave it unchanged."""
    sh = Shell(tmp_path_factory.mktemp("world"))
    do = sh.build
    do("inzopt", "PVOL1", "--capacity", "16M")
    do("inzopt", "ARCH1")
    do("inzopt", "ARCH2")
    do("inzopt", "BVOL1", "--type", "*BACKUP")
    do("inzopt", "FULL1", "--medtype", "*DVD-RAM", "--capacity", "1M")
    do("mkdir", "-p", "/QOPT/PVOL1/D1/SUB")
    do("cp", sh.write_host("a.txt", b"hello\n"), "/QOPT/PVOL1/D1/a.txt")
    do("cp", sh.write_host("b.bin", _payload(5000)), "/QOPT/PVOL1/D1/SUB/b.bin")
    do("cp", sh.write_host("ro.txt", b"read only"), "/QOPT/PVOL1/ro.txt")
    do("chattr", "/QOPT/PVOL1/ro.txt", "--readonly", "yes")
    do("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    sh.write_host("big.bin", _payload(2 << 20))
    (sh.host / "dir").mkdir()
    return sh


BAD = [
    # (case id, argv with {host} for the host directory, exit code, message ID)
    ("unknown-volume", ["dspopt", "NOPE"], 3, "OPV0002"),
    ("bad-volume-id", ["dspopt", "bad vol!"], 2, "OPV0001"),
    ("volume-id-too-long", ["inzopt", "X" * 33], 2, "OPV0001"),
    # A bad volume ID is OPV0001 in every command, whatever the keyword's type (docs/messages.md).
    ("inzopt-bad-volume-id", ["inzopt", "_V19"], 2, "OPV0001"),
    ("inzopt-bad-newvol", ["inzopt", "ARCH1", "--newvol", "_V19"], 2, "OPV0001"),
    ("chgoptvol-bad-volume-id", ["chgoptvol", "_V19"], 2, "OPV0001"),
    ("cvtoptbku-bad-volume-id", ["cvtoptbku", "_V19"], 2, "OPV0001"),
    ("dupopt-bad-volume-id", ["dupopt", "_V19", "ARCH1"], 2, "OPV0001"),
    ("wrkoptdir-bad-volume-id", ["wrkoptdir", "*ALL", "_V19"], 2, "OPV0001"),
    ("wrkoptf-bad-volume-id", ["wrkoptf", "_V19", "/"], 2, "OPV0001"),
    ("cpyopt-bad-volume-id", ["cpyopt", "PVOL1", "/", "_V19"], 2, "OPV0001"),
    ("threshold-out-of-range", ["inzopt", "NEWV", "--threshold", "101"], 2, "OPV0005"),
    ("bad-type", ["inzopt", "NEWV", "--type", "sideways"], 2, "OPV0005"),
    ("capacity-too-small", ["inzopt", "NEWV", "--capacity", "10K"], 2, "OPV0005"),
    ("capacity-not-a-size", ["inzopt", "NEWV", "--capacity", "lots"], 2, "OPV0005"),
    ("capacity-past-the-index", ["inzopt", "NEWV", "--capacity", "9223372036854775808"], 2, "OPV0005"),
    ("capacity-past-the-index-with-suffix", ["inzopt", "NEWV", "--capacity", "8388608T"], 2, "OPV0005"),
    ("capacity-far-past-the-index", ["inzopt", "NEWV", "--capacity", "99999999999999999999999T"], 2, "OPV0005"),
    ("blksize-not-for-media", ["inzopt", "NEWV", "--medtype", "*DVD-RAM", "--blksize", "4096"], 2, "OPV0005"),
    ("backup-on-udf", ["inzopt", "NEWV", "--medtype", "*dvd-ram", "--type", "*backup"], 5, "OPV0103"),
    ("inzopt-volume-with-files", ["inzopt", "PVOL1"], 5, "OPV0105"),
    ("inzopt-newvol-exists", ["inzopt", "ARCH2", "--newvol", "ARCH1"], 4, "OPV0003"),
    ("inzopt-newvol-of-missing", ["inzopt", "NOPE", "--newvol", "NEWV"], 3, "OPV0002"),
    ("unknown-option", ["inzopt", "NEWV", "--frobnicate", "1"], 2, "OPV0008"),
    # Options are written in full, as CL refuses an abbreviated keyword (THR for THRESHOLD).
    ("abbreviated-option", ["chgoptvol", "PVOL1", "--thr", "60"], 2, "OPV0008"),
    ("abbreviated-option-of-text", ["chgoptvol", "PVOL1", "--te", "x"], 2, "OPV0008"),
    ("abbreviated-global-option", ["--lib", "{host}", "inzopt", "NEWV"], 2, "OPV0008"),
    ("abbreviated-global-option-joined", ["--lib={host}", "inzopt", "NEWV"], 2, "OPV0008"),
    ("abbreviated-json", ["--js", "inzopt", "NEWV"], 2, "OPV0008"),
    ("abbreviated-json-after-the-command", ["inzopt", "NEWV", "--js"], 2, "OPV0008"),
    ("abbreviated-cl-option", ["cl", "--cont", "INZOPT VOL(NEWV)"], 2, "OPV0008"),
    ("unknown-command", ["frobnicate"], 2, "OPV0008"),
    ("missing-required", ["dspopt"], 2, "OPV0005"),
    ("missing-target", ["cp", "/QOPT/PVOL1/D1/a.txt"], 2, "OPV0008"),
    ("chgoptvol-backup-threshold", ["chgoptvol", "BVOL1", "50"], 5, "OPV0102"),
    ("chgoptvol-udf-threshold", ["chgoptvol", "FULL1", "50"], 5, "OPT1542"),
    # Reference §10.2 [C]: DSPOPT *DIRATR of a UDF volume names one directory (hunt24h F3).
    ("dspopt-udf-diratr-all", ["dspopt", "FULL1", "--data", "*DIRATR"], 5, "OPT1542"),
    ("dspopt-udf-diratr-generic", ["dspopt", "FULL1", "--data", "*DIRATR", "--path", "/A*"], 5, "OPT1542"),
    ("chgoptvol-threshold-zero", ["chgoptvol", "PVOL1", "0"], 2, "OPV0005"),
    ("chgoptvol-unknown-volume", ["chgoptvol", "NOPE", "50"], 3, "OPV0002"),
    ("chgoptvol-text-too-long", ["chgoptvol", "PVOL1", "--text", "x" * 51], 2, "OPV0005"),
    ("chgoptvol-bad-autl", ["chgoptvol", "PVOL1", "--autl", "not a name"], 2, "OPV0005"),
    ("dspopt-bad-data", ["dspopt", "PVOL1", "--data", "bogus"], 2, "OPV0005"),
    ("dspopt-missing-file", ["dspopt", "PVOL1", "--data", "*FILATR", "--path", "/nope.txt"], 3, "CPF1F22"),
    ("dspopt-missing-dir", ["dspopt", "PVOL1", "*ALL", "*DIRATR", "--path", "/NODIR"], 3, "CPF1F02"),
    ("dspopt-generic-none", ["dspopt", "NO*"], 3, "OPV0002"),
    # Every PATH but *ALL starts with '/', generic or not (docs/messages.md, CPF1F48).
    ("dspopt-relative-file", ["dspopt", "PVOL1", "--data", "*FILATR", "--path", "ro.txt"], 2, "CPF1F48"),
    ("dspopt-relative-generic-file", ["dspopt", "PVOL1", "--data", "*FILATR", "--path", "ro*"], 2, "CPF1F48"),
    ("dspopt-relative-generic-dir", ["dspopt", "PVOL1", "--data", "*DIRATR", "--path", "D*"], 2, "CPF1F48"),
    ("dspopt-relative-star", ["dspopt", "PVOL1", "--data", "*DIRATR", "--path", "*"], 2, "CPF1F48"),
    ("dspopt-relative-generic-below", ["dspopt", "PVOL1", "--data", "*FILATR", "--path", "D1/a*"], 2, "CPF1F48"),
    ("wrkoptvol-bad-generic", ["wrkoptvol", "bad!*"], 2, "OPV0001"),
    ("wrkoptvol-unknown-volume", ["wrkoptvol", "NOPE"], 3, "OPV0002"),  # as DSPOPT
    ("wrkoptvol-generic-none", ["wrkoptvol", "NO*"], 3, "OPV0002"),
    ("wrkoptdir-missing-dir", ["wrkoptdir", "/nope", "PVOL1"], 3, "CPF1F02"),
    ("wrkoptdir-bad-level", ["wrkoptdir", "*ALL", "PVOL1", "--sltlvl", "0"], 2, "OPV0005"),
    ("wrkoptf-unknown-volume", ["wrkoptf", "NOPE", "/"], 3, "OPV0002"),
    ("wrkoptf-missing-dir", ["wrkoptf", "PVOL1", "/nope"], 3, "CPF1F02"),
    ("cp-to-unknown-volume", ["cp", "{host}/a.txt", "/QOPT/NOPE/"], 3, "OPV0002"),
    ("cp-into-missing-dir", ["cp", "{host}/a.txt", "/QOPT/PVOL1/nodir/x.txt"], 3, "CPF1F02"),
    ("cp-missing-volume-file", ["cp", "/QOPT/PVOL1/D1/missing", "{host}/dir"], 3, "CPF1F22"),
    ("cp-missing-host-file", ["cp", "{host}/missing", "/QOPT/PVOL1/D1/"], 3, "OPV0301"),
    ("cp-one-source-missing", ["cp", "{host}/a.txt", "{host}/missing", "/QOPT/ARCH1/"], 3, "OPV0301"),
    ("cp-to-backup-volume", ["cp", "{host}/a.txt", "/QOPT/BVOL1/x.txt"], 5, "OPV0101"),
    ("cp-from-backup-volume", ["cp", "/QOPT/BVOL1/D1/a.txt", "{host}/dir"], 5, "OPV0101"),
    ("cp-tree-from-backup-volume", ["cp", "-r", "/QOPT/BVOL1/D1", "{host}/fromb"], 5, "OPV0101"),  # no directory made
    ("cp-backup-to-volume", ["cp", "/QOPT/BVOL1/D1/a.txt", "/QOPT/ARCH1/"], 5, "OPV0101"),
    ("cp-onto-backup-file", ["cp", "{host}/a.txt", "/QOPT/BVOL1/D1/a.txt"], 5, "OPV0101"),
    ("cp-volume-full", ["cp", "{host}/big.bin", "/QOPT/FULL1/"], 6, "CPF1F61"),
    ("cp-no-replace", ["cp", "{host}/a.txt", "/QOPT/PVOL1/D1/a.txt", "--replace", "no"], 4, "CPF1F24"),
    # hunt30a F4: "already exists" is exit 4 (DESIGN §4) on the host too, not OPV0302's exit 2.
    ("cp-no-replace-host", ["cp", "/QOPT/PVOL1/D1/a.txt", "{host}/a.txt", "--replace", "no"], 4, "OPV0303"),
    ("mv-onto-host-file", ["mv", "/QOPT/PVOL1/D1/a.txt", "{host}/a.txt"], 4, "OPV0303"),
    ("cp-onto-read-only", ["cp", "{host}/a.txt", "/QOPT/PVOL1/ro.txt"], 5, "CPF1F37"),
    ("cp-bad-name-on-hpofs", ["cp", "{host}/a.txt", "/QOPT/PVOL1/bad-name.txt"], 2, "CPF1F21"),
    ("cp-dot-dot", ["cp", "{host}/a.txt", "/QOPT/PVOL1/../x.txt"], 2, "CPF1F01"),
    ("cp-dir-without-r", ["cp", "/QOPT/PVOL1/D1", "{host}/dir"], 5, "OPV0108"),
    ("cp-into-itself", ["cp", "-r", "/QOPT/PVOL1/D1", "/QOPT/PVOL1/D1/SUB"], 5, "OPV0110"),
    ("cp-host-to-host", ["cp", "{host}/a.txt", "{host}/dir"], 2, "OPV0302"),
    # A newline in a path stays inside the one line of the message (quoted as Python does).
    ("cp-host-path-newline", ["cp", "{host}/no\nsuch", "/QOPT/PVOL1/D1/"], 3, "OPV0301"),
    ("cp-host-target-newline", ["cp", "{host}/a.txt", "{host}/b\nc"], 2, "OPV0302"),
    ("cp-volume-path-newline", ["cp", "{host}/a.txt", "/QOPT/PVOL1/a\nb/"], 3, "CPF1F02"),
    ("cp-volume-name-newline", ["cp", "{host}/a.txt", "/QOPT/PV\nOL1/"], 2, "OPV0001"),
    ("ls-volume-path-newline", ["ls", "/QOPT/PVOL1/D1/a\nb"], 2, "CPF1F21"),
    ("cp-bad-replace", ["cp", "{host}/a.txt", "/QOPT/ARCH1/", "--replace", "maybe"], 2, "OPV0005"),
    ("mkdir-exists", ["mkdir", "/QOPT/PVOL1/D1"], 4, "CPF1F04"),
    ("mkdir-missing-parent", ["mkdir", "/QOPT/PVOL1/x/y"], 3, "CPF1F02"),
    ("mkdir-on-backup", ["mkdir", "/QOPT/BVOL1/X"], 5, "OPV0101"),
    ("mkdir-bad-volume-id", ["mkdir", "/QOPT/bad vol/X"], 2, "OPV0001"),
    ("mkdir-too-long", ["mkdir", "/QOPT/PVOL1/" + "x" * 300], 2, "CPF1F48"),
    ("mkdir-host-path", ["mkdir", "{host}/newdir"], 2, "CPF1F48"),
    ("rmdir-not-empty", ["rmdir", "/QOPT/PVOL1/D1"], 5, "CPF1F0A"),
    ("rmdir-missing", ["rmdir", "/QOPT/PVOL1/nope"], 3, "CPF1F02"),
    ("rm-read-only", ["rm", "/QOPT/PVOL1/ro.txt"], 5, "CPF1F37"),
    ("rm-tree-with-read-only", ["rm", "-r", "/QOPT/PVOL1/"], 5, "CPF1F37"),
    ("rm-dir-without-r", ["rm", "/QOPT/PVOL1/D1"], 5, "OPV0108"),
    ("rm-missing", ["rm", "/QOPT/PVOL1/nope.txt"], 3, "CPF1F22"),
    ("rm-one-missing", ["rm", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/nope.txt"], 3, "CPF1F22"),
    ("rm-on-backup", ["rm", "-r", "/QOPT/BVOL1/"], 5, "OPV0101"),
    ("rm-backup-file", ["rm", "/QOPT/BVOL1/D1/a.txt"], 5, "OPV0101"),
    ("rmdir-on-backup", ["rmdir", "/QOPT/BVOL1/D1/SUB"], 5, "OPV0101"),
    ("mv-read-only-off-volume", ["mv", "/QOPT/PVOL1/ro.txt", "/QOPT/ARCH1/"], 5, "CPF1F37"),
    ("mv-read-only-to-host", ["mv", "/QOPT/PVOL1/ro.txt", "{host}/dir"], 5, "CPF1F37"),
    ("mv-root", ["mv", "/QOPT/PVOL1/", "/QOPT/ARCH1/ALL"], 5, "CPF1F0A"),
    ("mv-tree-with-read-only", ["mv", "/QOPT/PVOL1/D1", "/QOPT/PVOL1/ro.txt", "/QOPT/ARCH1/"], 5, "CPF1F37"),
    ("mv-missing", ["mv", "/QOPT/PVOL1/nope", "/QOPT/PVOL1/D1/"], 3, "CPF1F22"),
    ("mv-onto-existing", ["mv", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/SUB/b.bin"], 4, "CPF1F24"),
    ("mv-into-itself", ["mv", "/QOPT/PVOL1/D1", "/QOPT/PVOL1/D1/SUB/"], 5, "OPV0110"),
    ("mv-onto-itself", ["mv", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/a.txt"], 2, "CPF1F23"),
    ("mv-into-its-own-directory", ["mv", "/QOPT/PVOL1/D1/a.txt", "/QOPT/PVOL1/D1/"], 2, "CPF1F23"),
    ("mv-to-backup", ["mv", "/QOPT/PVOL1/D1/a.txt", "/QOPT/BVOL1/"], 5, "OPV0101"),
    ("mv-from-host", ["mv", "{host}/a.txt", "/QOPT/ARCH1/"], 2, "OPV0302"),
    ("ls-missing", ["ls", "/QOPT/PVOL1/nope"], 3, "CPF1F22"),
    ("ls-host-path", ["ls", "relative/host"], 2, "CPF1F48"),
    ("ls-unknown-volume", ["ls", "/QOPT/NOPE/"], 3, "OPV0002"),
    ("cat-on-backup", ["cat", "/QOPT/BVOL1/D1/a.txt"], 5, "OPV0101"),
    ("cat-directory", ["cat", "/QOPT/PVOL1/D1"], 5, "OPV0108"),
    ("cat-missing", ["cat", "/QOPT/PVOL1/D1/nope"], 3, "CPF1F22"),
    ("chattr-missing", ["chattr", "/QOPT/PVOL1/nope", "--readonly", "yes"], 3, "CPF1F22"),
    ("chattr-bad-value", ["chattr", "/QOPT/PVOL1/D1/a.txt", "--readonly", "maybe"], 2, "OPV0005"),
    ("chattr-on-backup", ["chattr", "/QOPT/BVOL1/D1/a.txt", "--hidden", "yes"], 5, "OPV0101"),
    ("chattr-no-flag", ["chattr", "/QOPT/PVOL1/D1/a.txt"], 2, "OPV0008"),  # would change nothing
    ("mv-within-backup", ["mv", "/QOPT/BVOL1/D1/a.txt", "/QOPT/BVOL1/D1/b.txt"], 5, "OPV0101"),
    ("mv-off-backup", ["mv", "/QOPT/BVOL1/D1/a.txt", "/QOPT/ARCH1/"], 5, "OPV0101"),
    # A path ending in '/' names a directory: no file has it (Volume._parts).
    ("cat-file-slash", ["cat", "/QOPT/PVOL1/D1/a.txt/"], 3, "CPF1F22"),
    ("rm-file-slash", ["rm", "/QOPT/PVOL1/D1/a.txt/"], 3, "CPF1F22"),
    ("chattr-file-slash", ["chattr", "/QOPT/PVOL1/D1/a.txt/", "--hidden", "yes"], 3, "CPF1F22"),
    ("cp-file-slash", ["cp", "/QOPT/PVOL1/D1/a.txt/", "{host}/dir"], 3, "CPF1F22"),
    ("mv-file-slash", ["mv", "/QOPT/PVOL1/D1/a.txt/", "/QOPT/PVOL1/D1/b.txt"], 3, "CPF1F22"),
    ("cp-onto-file-slash", ["cp", "{host}/a.txt", "/QOPT/PVOL1/D1/a.txt/"], 3, "CPF1F02"),
    ("ls-file-slash", ["ls", "/QOPT/PVOL1/D1/a.txt/"], 5, "OPV0109"),
    ("dspopt-file-slash", ["dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D1/a.txt/"], 5, "OPV0109"),
]


@pytest.mark.parametrize(("argv", "code", "message_id"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_fails_cleanly_and_changes_nothing(world, argv, code, message_id):
    argv = [a.replace("{host}", str(world.host)) for a in argv]
    host_before = _host_tree(world.host)
    before = snapshot(world.lib)
    result = run(*argv, library=world.lib, env=world.env, cwd=world.host)
    assert result.rc == code, result.err
    assert len(result.err_lines) == 1, result.err
    match = ERROR_LINE.match(result.err_lines[0])
    assert match and match.group(1) == message_id, result.err
    assert result.out == b"" or argv[0] in ("dspopt", "frobnicate"), result.out  # usage text aside, no output
    assert snapshot(world.lib) == before
    assert _host_tree(world.host) == host_before


def _host_tree(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (None) under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def test_the_bad_input_table_covers_every_family():
    codes = {c[2] for c in BAD}
    assert {2, 3, 4, 5, 6} <= codes
    assert len({c[0] for c in BAD}) == len(BAD)


def test_snapshot_sees_a_change(world, tmp_path):
    """The unchanged-library check would catch a write."""
    copy = tmp_path / "copy"
    shutil.copytree(world.lib, copy)
    before = snapshot(copy)
    assert cli.main(["--library", str(copy), "mkdir", "/QOPT/ARCH2/NEW"]) == 0
    assert snapshot(copy) != before


def test_python_executable_runs_the_installed_package():
    done = subprocess.run([sys.executable, "-c", "import optvol, os; print(os.path.dirname(optvol.__file__))"],
                          capture_output=True, text=True, timeout=60)
    assert Path(done.stdout.strip()) == Path(__file__).resolve().parent.parent / "src" / "optvol"
    assert os.path.isfile(Path(done.stdout.strip()) / "__main__.py")


def test_dspopt_diratr_of_one_directory_of_a_udf_volume_is_shown(world):
    """Only *ALL and generic names are refused on UDF (OPT1542 reason 06): one directory shows."""
    shown = world("--json", "dspopt", "FULL1", "--data", "*DIRATR", "--path", "/")
    assert [d["path"] for d in json.loads(shown.out)] == ["/"]
    refused = world("dspopt", "FULL1", "--data", "*DIRATR", ok=False)
    assert refused.rc == 5 and "reason code 06" in refused.err and refused.out == b""

