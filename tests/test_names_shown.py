"""Names, texts and host paths that a terminal, a locale or the host cannot take as they are
(a hunt of hostile names and locales): each is refused with its message and exit code, or
shown quoted; never a traceback, never a volume text that rules out elsewhere."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from cli_helpers import clean_env, run
from conftest import make_volume
from integrity_helpers import run_cli
from optvol import errors
from optvol.duplicate import dupopt
from optvol.model import MediaType

UNDECODABLE = os.fsdecode(b"Caf\xe9")  # argv's str for a Latin-1 byte in a UTF-8 locale


def _ascii_locale(tmp_path) -> dict[str, str]:
    """A C locale with Python's UTF-8 mode off: the file system encoding is ASCII."""
    return clean_env(tmp_path, LC_ALL="C", LANG="C", PYTHONUTF8="0")


def test_change_label_keeps_the_rules_of_text(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        for text in ("\x1b]0;pwned\x07\x1b[2J", "x" * 51, "line\nforged", UNDECODABLE):
            with pytest.raises(errors.InvalidError) as caught:
                volume.change_label(text=text)
            assert caught.value.message_id == "OPV0005"
        volume.change_label(text="Invoices 2026")
        assert volume.label()["text"] == "Invoices 2026"
    with pytest.raises(errors.InvalidError) as caught:
        library.set_autl("PVOL1", "\x1b[2J")
    assert caught.value.message_id == "OPV0005" and library.autl("PVOL1") is None
    library.set_autl("PVOL1", "arch_1")
    assert library.autl("PVOL1") == "ARCH_1"


@pytest.mark.parametrize("command", [["chgoptvol", "PVOL1", "--text"], ["inzopt", "NEWV", "--text"]])
def test_a_text_of_bytes_the_locale_cannot_decode_is_refused(tmp_path, command):
    env = clean_env(tmp_path)
    assert run("inzopt", "PVOL1", library=tmp_path / "lib", env=env).rc == 0
    done = run(*command, UNDECODABLE, library=tmp_path / "lib", env=env)
    assert done.rc == 2 and "OPV0005" in done.err and "Traceback" not in done.err, done.err
    assert run("dspopt", "NEWV", library=tmp_path / "lib", env=env).rc == 3  # INZOPT made nothing


def test_cp_to_the_host_of_a_name_its_encoding_cannot_write(tmp_path):
    lib, env = tmp_path / "lib", clean_env(tmp_path)
    (tmp_path / "in.txt").write_bytes(b"hi")
    for args in (["inzopt", "UVOL"], ["mkdir", "/QOPT/UVOL/D"], ["cp", tmp_path / "in.txt", "/QOPT/UVOL/D/plain.txt"],
                 ["cp", tmp_path / "in.txt", "/QOPT/UVOL/D/café.txt"]):
        assert run(*args, library=lib, env=env).rc == 0
    out = tmp_path / "out"
    done = run("cp", "-r", "/QOPT/UVOL/D", out, library=lib, env=_ascii_locale(tmp_path))
    assert done.rc == 2 and "OPV0302" in done.err and "(ascii) cannot write" in done.err, done.err
    assert "Traceback" not in done.err
    assert not out.exists()  # every name is measured before anything is copied (session 19)
    moved = run("mv", "/QOPT/UVOL/D", tmp_path / "moved", library=lib, env=_ascii_locale(tmp_path))
    assert moved.rc == 2 and "OPV0302" in moved.err and "Traceback" not in moved.err, moved.err
    assert run("ls", "/QOPT/UVOL/D", library=lib, env=env).text.split() == ["café.txt", "plain.txt"]


def test_cp_of_a_tree_to_the_host_with_a_directory_name_too_long_for_it(tmp_path, library):
    make_volume(library, "PVOL1")
    long_name = "é" * 200  # 200 characters: a volume name; 400 bytes: too long a host name
    with library.open("PVOL1") as volume:
        volume.mkdir(f"/T/{long_name}", parents=True)
        volume.write_bytes(f"/T/{long_name}/f.txt", b"x")
    done = run_cli(library.root, "cp", "-r", "/QOPT/PVOL1/T", tmp_path / "out")
    assert done.rc == 2 and "OPV0302" in done.err and "too long" in done.err, done.err


def test_a_host_path_with_a_byte_utf8_cannot_decode_is_reported_not_a_traceback(tmp_path):
    lib = tmp_path / "lib"
    env = clean_env(tmp_path, LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")  # stdout: UTF-8, strict errors
    assert run("inzopt", "UV", library=lib, env=env).rc == 0
    (tmp_path / "a.txt").write_bytes(b"data")
    assert run("cp", tmp_path / "a.txt", "/QOPT/UV/", library=lib, env=env).rc == 0
    target = os.fsencode(tmp_path) + b"/out\xffdir"
    os.mkdir(target)
    human = run("cp", "/QOPT/UV/a.txt", os.fsdecode(target) + "/h.txt", library=lib, env=env)
    assert human.rc == 0 and human.text.startswith("copied ") and "Traceback" not in human.err, human.err
    done = run("cp", "/QOPT/UV/a.txt", os.fsdecode(target) + "/j.txt", library=lib, env=env, json_output=True)
    assert done.rc == 0, done.err
    document = json.loads(done.out)  # valid JSON, and the exact host path comes back from it
    assert os.fsencode(document["copied"][0]) == target + b"/j.txt"
    assert open(target + b"/j.txt", "rb").read() == b"data"


def test_a_locale_that_cannot_read_utf8_says_so(tmp_path):
    lib = tmp_path / "lib"
    assert run("inzopt", "UV", library=lib, env=clean_env(tmp_path)).rc == 0
    (tmp_path / "café.txt").write_bytes(b"x")
    done = run("cp", tmp_path / "café.txt", "/QOPT/UV/", library=lib, env=_ascii_locale(tmp_path))
    assert done.rc == 2 and "CPF1F48" in done.err and "PYTHONUTF8=1" in done.err, done.err
    bad = tmp_path / os.fsdecode(b"x\xff.txt")
    bad.write_bytes(b"x")
    done = run("cp", bad, "/QOPT/UV/", library=lib, env=clean_env(tmp_path))
    assert done.rc == 2 and "another encoding than UTF-8" in done.err, done.err


def test_listings_quote_names_that_do_not_print(library):
    make_volume(library, "PVOL1")
    names = ["evil\u202etxt.exe", "zero\u200bwidth", "plain name.txt"]
    with library.open("PVOL1") as volume:
        for name in names:
            volume.write_bytes(f"/{name}", b"x")
    listing = run_cli(library.root, "ls", "-l", "/QOPT/PVOL1").out.decode()
    assert repr("evil\u202etxt.exe") in listing and repr("zero\u200bwidth") in listing
    assert "\u202e" not in listing and "\u200b" not in listing and " plain name.txt" in listing
    files = run_cli(library.root, "wrkoptf", "PVOL1", "/").out.decode()
    assert "\u202e" not in files and repr("/evil\u202etxt.exe") in files
    exact = run_cli(library.root, "ls", "/QOPT/PVOL1", json_output=True).json()
    assert sorted(e["path"] for e in exact) == sorted(f"/{n}" for n in names)


def test_import_iso_quotes_the_names_it_skips(tmp_path, library):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "ok.txt").write_bytes(b"x")
    os.symlink("/etc/passwd\n  skipped: /fake.txt (fake)\x1b]0;pwned\x07", tree / "link\x1b[2J\nINJECTED")
    image = tmp_path / "t.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    done = run_cli(library.root, "import-iso", image, "--vol", "IT5")
    shown = done.out.decode()
    assert done.rc == 1 and "OPV0705" in done.err
    assert "\x1b" not in shown and "INJECTED" not in shown.replace(repr("/link\x1b[2J\nINJECTED"), "")
    assert repr("/link\x1b[2J\nINJECTED") in shown and [line[:10] for line in shown.splitlines()].count("  skipped:") == 1


def test_a_udf_volume_identifier_has_at_most_30_characters(library):
    with pytest.raises(errors.NotAllowedError) as caught:
        make_volume(library, "U" * 31, medtype=MediaType.DVD_RAM)
    assert caught.value.message_id == "OPT1542" and "reason code 01" in caught.value.text
    assert not library.exists("U" * 31)
    make_volume(library, "U" * 30, medtype=MediaType.DVD_RAM)
    make_volume(library, "H" * 32)  # HPOFS: 32
    with pytest.raises(errors.NotAllowedError) as caught:
        dupopt(library, fromvol="U" * 30, tovol="D" * 31, now=library._clock())
    assert caught.value.message_id == "OPT1542" and not library.exists("D" * 31)
    with pytest.raises(errors.NotAllowedError):
        library.rename("U" * 30, "R" * 31)
    assert library.exists("U" * 30)


def test_cp_of_a_host_tree_with_a_name_a_volume_cannot_hold_copies_nothing(tmp_path, library):
    make_volume(library, "PVOL1")
    tree = tmp_path / "tree"
    tree.mkdir()
    for number in range(1100):  # more than a batch of the copy commits
        (tree / f"a{number:04d}").write_bytes(b"x")
    bad = os.fsencode(tree) + b"/z\xff"
    with open(bad, "wb") as handle:
        handle.write(b"y")
    done = run_cli(library.root, "cp", "-r", tree, "/QOPT/PVOL1/")
    assert done.rc == 2 and "OPV0302" in done.err and repr(os.fsdecode(bad)) in done.err, done.err
    assert run_cli(library.root, "ls", "/QOPT/PVOL1/").out == b""  # not the first batches: nothing


def test_cp_of_several_host_trees_checks_every_name_before_it_copies_any(tmp_path, library):
    make_volume(library, "PVOL1")
    for tree, names in (("good", ["f1", "f2"]), ("bad", ["ok", "what?"])):
        (tmp_path / tree).mkdir()
        for name in names:
            (tmp_path / tree / name).write_bytes(b"x")
    done = run_cli(library.root, "cp", "-r", tmp_path / "good", tmp_path / "bad", "/QOPT/PVOL1/")
    assert done.rc == 2 and "OPV0302" in done.err and "what?" in done.err, done.err
    assert run_cli(library.root, "ls", "/QOPT/PVOL1/").out == b""  # not even the good tree


def test_a_library_path_that_does_not_print_is_shown_quoted(tmp_path):
    """hunt24d F6: the library's path went to the terminal raw in "created library" and in
    every listing's title: a newline forged a line, an escape sequence reached the terminal."""
    root = tmp_path / "lib\nFAKE LINE\x1b[7m"
    for args in (["inzopt", "PVOL1"], ["wrkoptvol"], ["dspopt", "PVOL1"]):
        done = run_cli(root, *args)
        assert done.rc == 0, done.err
        for text in (done.out.decode(), done.err):
            assert "\x1b" not in text and "\nFAKE LINE" not in text, text
    assert "'" + str(root).replace("\n", "\\n").replace("\x1b", "\\x1b") + "'" in run_cli(root, "wrkoptvol").out.decode()


def test_names_that_differ_by_a_blank_at_an_end_are_told_apart(library):
    """hunt24d F5: ``/REPORT.TXT`` and ``/REPORT.TXT `` (a trailing blank) looked the same in
    the human listings, as ` REPORT.TXT` did at the start of a line in ``ls``. A name that
    starts with a quote is quoted too, so that a quoted display is never a name as it is."""
    make_volume(library, "PVOL1")
    names = ["REPORT.TXT", "REPORT.TXT ", " REPORT.TXT", "'REPORT.TXT '", "DIR /F"]
    with library.open("PVOL1") as volume:
        volume.mkdir("/DIR ")
        for name in names:
            volume.write_bytes(f"/{name}", b"x")
    files = run_cli(library.root, "wrkoptf", "PVOL1", "*ALL").out.decode().splitlines()
    shown = sorted(line.split("  ")[-1] for line in files[2:])
    assert shown == sorted(["/REPORT.TXT", "'/REPORT.TXT '", "/ REPORT.TXT", "/'REPORT.TXT '", "/DIR /F"])
    listed = run_cli(library.root, "ls", "/QOPT/PVOL1").out.decode().splitlines()
    assert sorted(listed) == sorted(["REPORT.TXT", "'REPORT.TXT '", "' REPORT.TXT'", "\"'REPORT.TXT '\"", "'DIR '/"])
    dirs = run_cli(library.root, "wrkoptdir", "*ALL", "PVOL1").out.decode().splitlines()
    assert dirs[-1].endswith("  '/DIR '")
    exact = run_cli(library.root, "ls", "/QOPT/PVOL1", json_output=True).json()
    assert sorted(e["path"] for e in exact) == sorted(["/REPORT.TXT", "/REPORT.TXT ", "/ REPORT.TXT", "/'REPORT.TXT '", "/DIR "])


def test_export_and_import_iso_quote_an_image_path_that_does_not_print(tmp_path, library):
    """hunt28d F3: the line export-iso and import-iso print named the image file as it was,
    so an escape sequence in its name reached the terminal and a newline forged a line."""
    make_volume(library, "PVOL1")
    image = tmp_path / "x\x1b]0;PWNED\x07\nFAKE LINE.iso"
    exported = run_cli(library.root, "export-iso", "PVOL1", image)
    imported = run_cli(library.root, "import-iso", image, "--vol", "IMP")
    for result in (exported, imported):
        text = result.out.decode()
        assert result.rc == 0 and "\x1b" not in text and "\x07" not in text, text
        assert len(text.splitlines()) == 1 and repr(str(image)) in text, text
