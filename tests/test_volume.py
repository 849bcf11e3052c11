"""The file API of a volume: open, listdir, scandir, stat, walk, mkdir, rmdir, remove,
rename, set_attributes; times (reference §3.3); name rules (reference §3.1-§3.2, DESIGN §1);
and readers that never get wrong bytes (DESIGN §6)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import sqlite3
import subprocess
import sys
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import data_path, make_volume
from integrity_helpers import downgrade_to_schema_3, run_cli
from optvol import cli, errors, model
from optvol.model import DirInfo, FileInfo, MediaType

README = Path(__file__).resolve().parents[1] / "README.md"
SRC = Path(__file__).resolve().parent.parent / "src"

# ----------------------------------------------------------------------------- README


def test_readme_python_examples_run_as_written(tmp_path):
    """Every ```python block of README.md, run as it stands on the library its tour leaves
    (PVOL1 with /INVOICES/2026, as ``optvol mkdir -p`` made it there), through $OPTVOL_LIBRARY."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)
    assert blocks, "README.md has no Python example"
    library = tmp_path / "archive"
    for argv in (["inzopt", "PVOL1", "--text", "Invoices"], ["mkdir", "-p", "/QOPT/PVOL1/INVOICES/2026"]):
        assert cli.main(["--library", str(library), *argv]) == 0, argv
    env = {**os.environ, "OPTVOL_LIBRARY": str(library)}
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], env=env, capture_output=True, timeout=300)
        assert done.returncode == 0, f"{block}\n{done.stderr.decode()}"


# ----------------------------------------------------------------------------- open modes


def test_open_wb_rb_round_trip(primary):
    payload = os.urandom(100_000)
    with primary.open("/F.BIN", "wb") as handle:
        assert handle.write(payload[:1000]) == 1000
        handle.write(payload[1000:])
    with primary.open("/F.BIN", "rb") as handle:
        assert handle.read(10) == payload[:10]
        assert handle.tell() == 10
        handle.seek(-5, io.SEEK_END)
        assert handle.read() == payload[-5:]
        handle.seek(0)
        assert handle.read() == payload
    assert primary.read_bytes("/F.BIN") == payload
    assert primary.stat("/F.BIN").size == len(payload)


def test_seek_refuses_a_bad_whence_and_a_negative_position(primary):
    """As io seeks (BufferedReader over BytesIO): ValueError, and the position stays."""
    primary.write_bytes("/F", b"0123456789")
    with primary.open("/F", "rb") as handle:
        handle.seek(4)
        for offset, whence in ((-1, io.SEEK_SET), (-5, io.SEEK_CUR), (-11, io.SEEK_END), (0, 3), (0, 4), (0, 7)):
            with pytest.raises(ValueError):
                handle.seek(offset, whence)
        assert handle.tell() == 4 and handle.read() == b"456789"
        assert handle.seek(-10, io.SEEK_END) == 0 and handle.seek(20) == 20 and handle.read() == b""


def test_default_mode_is_rb(primary):
    primary.write_bytes("/F", b"bytes")
    with primary.open("/F") as handle:
        assert handle.read() == b"bytes"


@pytest.mark.parametrize("chunks", [[b"abc", b"de"], [b"abcdefgh", b"ijk"], [b"abcdefghijk"]])
def test_write_chunks_of_another_size_than_given_write_nothing(primary, chunks):
    """The size given is wrong for the data: OPV0005 naming the volume path, never a host path
    (OPV0302), and nothing is written; the batch around it goes on."""
    primary.mkdir("/D")
    used = primary.space()[1]
    with primary.batch():
        with pytest.raises(errors.InvalidError) as info:
            primary.write_chunks("/D/F", iter(chunks), size=10)
        primary.write_bytes("/D/KEPT", b"k")
    assert info.value.message_id == "OPV0005" and info.value.exit_code == 2
    assert "/D/F" in info.value.text and "Host path" not in info.value.text
    kept = primary.space()[1] - used
    primary.write_bytes("/D/KEPT2", b"k")  # what the one file kept cost
    assert primary.listdir("/D") == ["KEPT", "KEPT2"] and primary.space()[1] - used == 2 * kept
    assert primary.write_chunks("/D/F", iter([b"abcde", b"fghij"]), size=10).size == 10


def test_open_w_r_text(primary):
    with primary.open("/T.TXT", "w") as handle:
        handle.write("héllo\nwörld\n")
    with primary.open("/T.TXT", "r") as handle:
        assert handle.read() == "héllo\nwörld\n"
    assert primary.read_bytes("/T.TXT") == "héllo\nwörld\n".encode()
    with primary.open("/L.TXT", "w", encoding="latin-1") as handle:
        handle.write("é")
    assert primary.read_bytes("/L.TXT") == b"\xe9"
    with primary.open("/L.TXT", "r", encoding="latin-1") as handle:
        assert handle.read() == "é"


def test_open_w_replaces(primary):
    primary.write_bytes("/F", b"old contents")
    with primary.open("/F", "wb") as handle:
        handle.write(b"new")
    assert primary.read_bytes("/F") == b"new"
    assert primary.stat("/F").version == 2


def test_open_x_creates_only(primary):
    with primary.open("/X", "xb") as handle:
        handle.write(b"1")
    with pytest.raises(errors.ExistsError) as info:
        primary.open("/X", "xb")
    assert info.value.message_id == "CPF1F24"
    with pytest.raises(errors.ExistsError):
        primary.open("/x", "x")  # case-insensitive
    assert primary.read_bytes("/X") == b"1"


def test_open_a_appends_or_creates(primary):
    with primary.open("/A", "ab") as handle:
        handle.write(b"one")
    with primary.open("/A", "ab") as handle:
        handle.write(b"two")
    with primary.open("/A", "a") as handle:
        handle.write("three")
    assert primary.read_bytes("/A") == b"onetwothree"
    assert primary.stat("/A").version == 3


@pytest.mark.parametrize("meanwhile", ["another append", "a replacement", "a new file of the name"])
def test_an_append_over_what_another_program_wrote_meanwhile_is_refused(primary, library, meanwhile):
    """An append handle holds the version it opened plus its own bytes. If another program
    (here another Volume of the volume) wrote the file meanwhile, closing it would drop that
    write: CPF1F26, nothing of the handle is written, the other write stays."""
    if meanwhile != "a new file of the name":
        primary.write_bytes("/LOG", b"X")
    appending = primary.open("/LOG", "ab")
    appending.write(b"1")
    with library.open("PVOL1") as other:
        if meanwhile == "another append":
            with other.open("/LOG", "ab") as handle:
                handle.write(b"2")
        else:
            other.write_bytes("/log", b"written meanwhile")
        kept = other.read_bytes("/LOG")
    with pytest.raises(errors.LockedError) as refused:
        appending.close()
    assert refused.value.message_id == "CPF1F26" and "nothing of the handle was written" in refused.value.text
    assert primary.read_bytes("/LOG") == kept


@pytest.mark.parametrize("mode", ["r+", "rw", "wbb", "q", "rt", "w+b", ""])
def test_bad_modes_refused(primary, mode):
    primary.write_bytes("/F", b"x")
    with pytest.raises(errors.InvalidError) as info:
        primary.open("/F", mode)
    assert info.value.exit_code == 2
    assert primary.read_bytes("/F") == b"x"


def test_binary_mode_with_encoding_refused(primary):
    with pytest.raises(errors.InvalidError):
        primary.open("/F", "wb", encoding="utf-8")


@pytest.mark.parametrize("mode", ["w", "a", "x", "r"])
@pytest.mark.parametrize("encoding", ["no-such-codec", "base64", 5])
def test_an_encoding_python_has_no_text_files_for_is_refused_and_changes_nothing(primary, mode, encoding):
    """hunt-api F1: open(..., encoding=<unknown>) raised LookupError after the writer was made,
    and the collector then wrote it: the file was replaced by an empty one ("a": a version
    more, its date moved; "x": a new empty file). Now OPV0005, and nothing is written."""
    import gc

    primary.write_bytes("/keep.txt", b"kept bytes")
    before = primary.stat("/keep.txt")
    with pytest.raises(errors.InvalidError, match="OPV0005") as info:
        primary.open("/new.txt" if mode == "x" else "/keep.txt", mode, encoding=encoding)
    assert "encoding" in info.value.text
    gc.collect()
    assert primary.listdir("/") == ["keep.txt"] and primary.read_bytes("/keep.txt") == b"kept bytes"
    assert primary.stat("/keep.txt") == before and len(primary.versions("/keep.txt")) == 1



@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig", "UTF16", "latin-1"])
def test_a_text_writer_writes_the_bytes_python_s_own_file_writes(primary, tmp_path, encoding):
    """hunt-api F4: a writer cannot seek, so Python's text layer could not tell it stood at
    the start: a UTF-16 or UTF-32 file got no byte order mark (reading it back with the same
    encoding failed), an append in UTF-8-SIG a second mark mid-file. Byte for byte now what
    open() writes on the host, for a new file, an append, and an append to nothing."""
    host = tmp_path / "host.txt"
    for mode, text in (("w", "hello "), ("a", "world")):
        with primary.open("/T", mode, encoding=encoding) as handle:
            handle.write(text)
        with open(host, mode, encoding=encoding) as handle:
            handle.write(text)
    with primary.open("/NEW", "a", encoding=encoding) as handle:
        handle.write("new")
    assert primary.read_bytes("/T") == host.read_bytes()
    assert primary.read_bytes("/NEW") == "new".encode(encoding)
    with primary.open("/EMPTY", "w", encoding=encoding):  # nothing written: empty, as open() leaves it
        pass
    assert primary.read_bytes("/EMPTY") == b""  # (review 23c F5: the mark alone)
    with primary.open("/T", "r", encoding=encoding) as handle:
        assert handle.read() == "hello world"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-8-sig", "latin-1"])
@pytest.mark.parametrize("mode", ["w", "a", "x"])
def test_a_text_writer_tells_its_position_as_a_host_text_file_does(primary, tmp_path, encoding, mode):
    """hunt30c F2: a text writer's tell() raised UnsupportedOperation (the handle cannot seek)
    where a host text file's tells the bytes written: the mark, the text, an append's start."""
    host, name = tmp_path / "host.txt", f"/T{mode}"
    if mode == "a":
        host.write_bytes(b"0123")
        primary.write_bytes(name, b"0123")
    told = []
    with open(host, mode, encoding=encoding) as ours, primary.open(name, mode, encoding=encoding) as theirs:
        for text in ("h\u00e9llo\n", "x" * 9000, "\u00fc"):
            ours.write(text)
            theirs.write(text)
            told.append((ours.tell(), theirs.tell()))
    assert all(a == b for a, b in told) and told[-1][0] == len(host.read_bytes()), told
    assert primary.read_bytes(name) == host.read_bytes()


def test_a_binary_writer_tells_where_it_is_so_tarfile_can_write_into_it(primary):
    """hunt-api F12: a writer had no tell(); tarfile.open(fileobj=handle, mode="w") failed."""
    import tarfile

    with primary.open("/T", "wb") as handle:
        with tarfile.open(fileobj=handle, mode="w") as archive:
            member = tarfile.TarInfo("a.bin")
            member.size = 5000
            archive.addfile(member, io.BytesIO(b"x" * 5000))
        assert handle.tell() == tarfile.RECORDSIZE  # one record: header, data, end blocks, padding
    assert len(primary.read_bytes("/T")) == tarfile.RECORDSIZE
    with tarfile.open(fileobj=io.BytesIO(primary.read_bytes("/T"))) as archive:
        assert archive.getnames() == ["a.bin"] and archive.extractfile("a.bin").read() == b"x" * 5000

def test_data_given_as_a_buffer_of_wider_items_is_written_by_its_bytes(primary):
    """hunt-api F2: write_bytes and write_chunks took len() of an array('i') (its items) for the
    file's size and wrote its bytes: the file read back damaged, all said done."""
    from array import array

    numbers = array("i", range(1000))
    assert primary.write_bytes("/arr.bin", numbers).size == numbers.itemsize * 1000
    assert primary.write_bytes("/view.bin", memoryview(numbers)).size == numbers.itemsize * 1000
    primary.write_chunks("/chunks.bin", [array("i", range(500)), array("i", range(500, 1000))],
                         size=numbers.itemsize * 1000)
    for path in ("/arr.bin", "/view.bin", "/chunks.bin"):
        assert primary.read_bytes(path) == numbers.tobytes()
    for data in ("text", 5, None):  # bytes(5) made five zero bytes
        with pytest.raises(errors.InvalidError, match="OPV0005"):
            primary.write_bytes("/bad.bin", data)
    with pytest.raises(errors.InvalidError, match="OPV0005"):
        primary.write_chunks("/bad.bin", [b"ab"], size="2")
    with pytest.raises(errors.OptvolError, match="a volume path is a str"):
        primary.write_bytes(Path("/p.bin"), b"p")
    with pytest.raises(errors.InvalidError, match="OPV0005"):
        primary.open("/F", None)
    assert primary.listdir("/") == ["arr.bin", "chunks.bin", "view.bin"]
    data = b"d" * 1000
    assert model.as_bytes(data, path="/d") is data  # no copy of a bytes object (review 23a F6: 400 MiB more)


def test_nothing_visible_before_close(primary, library):
    handle = primary.open("/LATE", "wb")
    handle.write(b"data")
    with library.open("PVOL1") as other:
        assert not other.exists("/LATE")
    assert not primary.exists("/LATE")
    handle.close()
    with library.open("PVOL1") as other:
        assert other.read_bytes("/LATE") == b"data"


def test_open_missing_file_and_directories(primary):
    primary.mkdir("/D")
    with pytest.raises(errors.NotFoundError) as info:
        primary.open("/NOFILE", "rb")
    assert info.value.message_id == "CPF1F22"
    with pytest.raises(errors.NotFoundError) as info:
        primary.open("/NODIR/F", "wb")
    assert info.value.message_id == "CPF1F02"
    with pytest.raises(errors.NotAllowedError) as info:
        primary.open("/D", "rb")
    assert info.value.message_id == "OPV0108"
    with pytest.raises(errors.NotAllowedError):
        primary.open("/D", "wb")
    with pytest.raises(errors.NotAllowedError):
        primary.write_bytes("/D", b"x")
    assert primary.listdir("/") == ["D"]


# ----------------------------------------------------------------------------- listing


def test_listdir_scandir_stat(primary):
    primary.mkdir("/b")
    primary.mkdir("/A")
    primary.write_bytes("/z.txt", b"zz")
    primary.write_bytes("/C.TXT", b"c")
    assert primary.listdir("/") == ["A", "b", "C.TXT", "z.txt"]  # directories first, each sorted case-insensitively
    entries = primary.scandir("/")
    assert [type(e) for e in entries] == [DirInfo, DirInfo, FileInfo, FileInfo]
    assert [e.path for e in entries] == ["/A", "/b", "/C.TXT", "/z.txt"]
    info = primary.stat("/z.txt")
    assert isinstance(info, FileInfo)
    assert (info.path, info.size, info.read_only, info.hidden, info.version) == ("/z.txt", 2, False, False, 1)
    assert info.sha256 == hashlib.sha256(b"zz").hexdigest()
    assert isinstance(primary.stat("/b"), DirInfo)
    assert primary.stat("/").path == "/"
    with pytest.raises(errors.NotFoundError):
        primary.stat("/nothing")
    with pytest.raises(errors.NotFoundError):
        primary.listdir("/nothing")
    with pytest.raises(errors.NotAllowedError):
        primary.listdir("/z.txt")


def test_walk_matches_a_model(primary):
    tree = {
        "/": (["docs", "src"], ["README"]),
        "/docs": (["img"], ["a.md", "B.md"]),
        "/docs/img": ([], ["logo.png"]),
        "/src": (["pkg", "empty"], ["setup.py"]),
        "/src/pkg": ([], ["__init__.py", "mod.py"]),
        "/src/empty": ([], []),
    }
    for directory, (dirs, files) in tree.items():
        for d in dirs:
            primary.mkdir(directory.rstrip("/") + "/" + d, parents=True, exist_ok=True)
        for f in files:
            primary.write_bytes(directory.rstrip("/") + "/" + f, f.encode())
    walked = list(primary.walk("/"))
    key = str.upper
    assert {top: (sorted(d, key=key), sorted(f, key=key)) for top, d, f in walked} == {
        top: (sorted(d, key=key), sorted(f, key=key)) for top, (d, f) in tree.items()
    }
    # Top down: every directory comes after its parent, and each list is sorted case-insensitively.
    order = [top for top, _, _ in walked]
    assert order[0] == "/"
    for top in order[1:]:
        assert order.index(top.rsplit("/", 1)[0] or "/") < order.index(top)
    for _, dirs, files in walked:
        assert dirs == sorted(dirs, key=key) and files == sorted(files, key=key)
    assert [top for top, _, _ in primary.walk("/docs")] == ["/docs", "/docs/img"]


# ----------------------------------------------------------------------------- directories


def test_mkdir_rules(primary):
    with pytest.raises(errors.NotFoundError) as info:
        primary.mkdir("/A/B/C")
    assert info.value.message_id == "CPF1F02"
    assert primary.listdir("/") == []
    primary.mkdir("/A/B/C", parents=True)
    assert [top for top, _, _ in primary.walk()] == ["/", "/A", "/A/B", "/A/B/C"]
    with pytest.raises(errors.ExistsError) as info:
        primary.mkdir("/a/b")
    assert info.value.message_id == "CPF1F04"
    assert primary.mkdir("/A/B", exist_ok=True).path == "/A/B"
    with pytest.raises(errors.ExistsError):
        primary.mkdir("/")
    primary.write_bytes("/A/FILE", b"")
    with pytest.raises(errors.ExistsError) as info:
        primary.mkdir("/A/FILE")
    assert info.value.message_id == "CPF1F24"
    with pytest.raises(errors.OptvolError):
        primary.mkdir("/A/FILE/SUB", parents=True)
    assert primary.listdir("/A") == ["B", "FILE"]


def test_rmdir_rules(primary):
    primary.mkdir("/D/E", parents=True)
    with pytest.raises(errors.NotAllowedError) as info:
        primary.rmdir("/D")
    assert info.value.message_id == "CPF1F0A"
    assert info.value.exit_code == 5
    primary.rmdir("/d/e")
    primary.write_bytes("/D/FILE", b"x")
    with pytest.raises(errors.NotAllowedError) as info:
        primary.rmdir("/D")
    assert info.value.message_id == "CPF1F0A"
    primary.remove("/D/FILE")
    primary.rmdir("/D")
    assert primary.listdir("/") == []
    with pytest.raises(errors.NotFoundError) as info:
        primary.rmdir("/D")
    assert info.value.message_id == "CPF1F02"
    with pytest.raises(errors.NotAllowedError):
        primary.rmdir("/")
    primary.write_bytes("/FILE", b"")
    with pytest.raises(errors.NotAllowedError):
        primary.rmdir("/FILE")
    assert primary.listdir("/") == ["FILE"]


def test_remove(primary):
    primary.mkdir("/D")
    primary.write_bytes("/D/F", b"x")
    primary.remove("/d/f")
    assert primary.listdir("/D") == []
    assert not primary.exists("/D/F")
    with pytest.raises(errors.NotFoundError) as info:
        primary.remove("/D/F")
    assert info.value.message_id == "CPF1F22"
    with pytest.raises(errors.NotAllowedError) as info:
        primary.remove("/D")
    assert info.value.message_id == "OPV0108"
    with pytest.raises(errors.NotFoundError):
        primary.read_bytes("/D/F")
    primary.write_bytes("/D/F", b"again")
    assert primary.read_bytes("/D/F") == b"again"


def test_an_open_file_cannot_be_deleted(library, primary):
    """Reference §3.5: CPF1F26 while a handle of this process has it open, for any access."""
    primary.write_bytes("/R", b"read me")
    primary.write_bytes("/W", b"old")
    reader, writer = primary.open("/R", "rb"), primary.open("/W", "wb")
    writer.write(b"new")
    with library.open("PVOL1") as other:  # the same volume opened again: the same files
        for volume, path in ((primary, "/R"), (primary, "/w"), (other, "/R")):
            with pytest.raises(errors.LockedError) as caught:
                volume.remove(path)
            assert caught.value.message_id == "CPF1F26" and caught.value.exit_code == 8
        assert run_cli(library.root, "rm", "/QOPT/PVOL1/R").rc == 8
    reader.close()
    writer.close()
    assert primary.read_bytes("/W") == b"new"
    primary.remove("/R")
    primary.remove("/W")
    closed = library.open("PVOL1")
    primary.write_bytes("/S", b"s")
    stale = closed.open("/S", "rb")
    closed.close()
    primary.remove("/S")  # the handle of a closed volume is closed as far as anyone can use it
    stale.close()
    assert primary.listdir("/") == []


def test_a_writer_never_brings_back_a_file_deleted_while_it_was_open(library, primary):
    """Another process sees no handle of this one: its delete goes through, and the writer's close refuses."""
    primary.write_bytes("/W", b"old")
    with pytest.raises(errors.NotFoundError) as caught:
        with primary.open("/W", "w") as writer:
            writer.write("new")
            deleted = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library.root), "rm", "/QOPT/PVOL1/W"],
                                     capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(SRC)})
            assert deleted.returncode == 0, deleted.stderr
    assert caught.value.message_id == "CPF1F22"
    assert not primary.exists("/W")


# ----------------------------------------------------------------------------- rename


def test_names_differ_in_case_only_by_a_one_to_one_fold(library):
    """é and É are one letter in two cases; ß (upper case SS), ﬁ (FI) and ı (whose upper
    case I is i's) have no such partner: names that differ by them are different names,
    and a write to one never replaces the other."""
    make_volume(library, "DVD1", medtype=MediaType.DVD_RAM)  # UDF: these characters are names there
    with library.open("DVD1") as volume:
        pairs = [("straße.txt", "STRASSE.TXT"), ("ﬁle.txt", "FILE.TXT"), ("kılavuz.txt", "KILAVUZ.TXT")]
        for one, other in pairs:
            volume.write_bytes("/" + one, one.encode())
            volume.write_bytes("/" + other, other.encode())
        volume.write_bytes("/Résumé.txt", b"first")
        volume.write_bytes("/RÉSUMÉ.TXT", b"second")  # the same name: a new version
        volume.mkdir("/Maße/innen", parents=True)
        volume.mkdir("/MASSE")
        assert sorted(volume.listdir("/")) == sorted(
            [n for pair in pairs for n in pair] + ["RÉSUMÉ.TXT", "Maße", "MASSE"])  # a version takes the new spelling
        for one, other in pairs:
            assert volume.read_bytes("/" + one.upper() if one.isascii() else "/" + one) == one.encode()
            assert volume.read_bytes("/" + other.lower()) == other.encode()
        assert volume.read_bytes("/résumé.txt") == b"second" and volume.stat("/Résumé.txt").version == 2
        assert volume.is_dir("/MAßE/INNEN") and volume.listdir("/MASSE") == []


def test_the_fold_of_names_is_unicode_14_whatever_the_python():
    """Keys are stored, so the fold must not follow the running Python's Unicode data:
    Unicode 16.0 (Python 3.14) gives ƛ and ɤ upper cases of their own, and a name stored
    under 3.11 would not be found under 3.14. The frozen table is the one Python 3.11
    computes; a later Unicode only adds case pairs (its Case Pair Stability policy), so
    there the table is part of what the running Python computes."""
    from optvol import case_fold

    frozen = case_fold.table()
    running = {code: code + offset for first, last, step, offset in case_fold.computed()
               for code in range(first, last + 1, step)}
    if unicodedata.unidata_version == case_fold.UNICODE_VERSION:
        assert case_fold.computed() == case_fold.RUNS
    assert frozen.items() <= running.items() and len(frozen) == 1400
    assert model.name_key("ƛɤ Résumé ß ς") == "ƛɤ RÉSUMÉ ß ς"
    assert all(model.name_key(chr(code)) == chr(frozen.get(code, code)) for code in range(0x110000))


def test_an_index_of_schema_3_gets_the_finer_name_keys(library):
    """An index written with str.upper's keys (schema 3) is brought forward on opening:
    its keys become the one-to-one fold, so STRASSE is then a name of its own."""
    make_volume(library, "DVD1", medtype=MediaType.DVD_RAM)
    with library.open("DVD1") as volume:
        volume.mkdir("/Maße")
        volume.write_bytes("/Maße/straße.txt", b"old")
    index = library.root / "DVD1.optvol" / "index.sqlite"
    downgrade_to_schema_3(index)
    conn = sqlite3.connect(index)
    assert conn.execute("SELECT path_key FROM dirs WHERE path = '/Maße'").fetchone() == ("/MASSE",)
    conn.close()
    with library.open("DVD1") as volume:
        volume.write_bytes("/MASSE", b"a file named like the directory's old key")
        volume.write_bytes("/Maße/STRASSE.TXT", b"new")
        assert volume.read_bytes("/MAßE/STRAßE.TXT") == b"old" and volume.read_bytes("/Maße/strasse.txt") == b"new"
    conn = sqlite3.connect(index)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (5,)
    assert conn.execute("SELECT path_key FROM dirs WHERE path = '/Maße'").fetchone() == ("/MAßE",)
    conn.close()


def test_rename_file(primary):
    primary.mkdir("/A")
    primary.mkdir("/B")
    primary.write_bytes("/A/F", b"data")
    primary.rename("/A/F", "/B/G")
    assert primary.listdir("/A") == []
    assert primary.listdir("/B") == ["G"]
    assert primary.read_bytes("/B/G") == b"data"
    assert primary.stat("/b/g").path == "/B/G"
    primary.rename("/B/G", "/B/g")  # a change of case only
    assert primary.listdir("/B") == ["g"]
    with pytest.raises(errors.NotFoundError):
        primary.rename("/A/F", "/A/H")
    with pytest.raises(errors.NotFoundError):
        primary.rename("/B/g", "/NODIR/g")
    with pytest.raises(errors.InvalidError) as info:
        primary.rename("/B/g", "/B/g")
    assert info.value.message_id == "CPF1F23"
    primary.write_bytes("/B/OTHER", b"o")
    with pytest.raises(errors.ExistsError) as info:
        primary.rename("/B/g", "/B/other")
    assert info.value.message_id == "CPF1F24"
    with pytest.raises(errors.ExistsError):
        primary.rename("/B/g", "/A")  # onto a directory
    assert primary.read_bytes("/B/OTHER") == b"o"
    assert primary.read_bytes("/B/g") == b"data"


def test_rename_directory_moves_everything_below(primary):
    primary.mkdir("/TOP/MID/LOW", parents=True)
    primary.mkdir("/TOPX")
    primary.write_bytes("/TOP/A", b"a")
    primary.write_bytes("/TOP/MID/B", b"b")
    primary.write_bytes("/TOP/MID/LOW/C", b"c")
    primary.write_bytes("/TOPX/KEEP", b"k")
    primary.mkdir("/DEST")
    primary.rename("/top", "/DEST/New")
    assert primary.listdir("/") == ["DEST", "TOPX"]
    assert [top for top, _, _ in primary.walk("/DEST")] == ["/DEST", "/DEST/New", "/DEST/New/MID", "/DEST/New/MID/LOW"]
    assert primary.read_bytes("/DEST/New/A") == b"a"
    assert primary.read_bytes("/dest/new/mid/b") == b"b"
    assert primary.read_bytes("/DEST/New/MID/LOW/C") == b"c"
    assert primary.stat("/DEST/New/MID/LOW/C").path == "/DEST/New/MID/LOW/C"
    assert primary.stat("/DEST/New/MID/LOW").path == "/DEST/New/MID/LOW"
    assert [i.path for i in primary.iter_files("/", recursive=True)] == [
        "/DEST/New/A", "/DEST/New/MID/B", "/DEST/New/MID/LOW/C", "/TOPX/KEEP"
    ]
    assert primary.read_bytes("/TOPX/KEEP") == b"k"  # a sibling whose name starts the same is untouched
    for gone in ("/TOP", "/TOP/A", "/TOP/MID"):
        assert not primary.exists(gone)
    primary.mkdir("/TOP")  # the old name is free again
    primary.write_bytes("/DEST/New/MID/LOW/D", b"d")
    assert primary.listdir("/DEST/New/MID/LOW") == ["C", "D"]


def test_move_directory_into_itself_refused(primary):
    primary.mkdir("/A/B/C", parents=True)
    primary.mkdir("/AB")
    for target in ("/A/X", "/A/B/X", "/a/b/c/X"):
        with pytest.raises(errors.NotAllowedError) as info:
            primary.rename("/A", target)
        assert info.value.message_id == "OPV0110"
    assert [top for top, _, _ in primary.walk()] == ["/", "/A", "/A/B", "/A/B/C", "/AB"]
    primary.rename("/A", "/AB/A")  # a name that merely starts the same is fine
    assert [top for top, _, _ in primary.walk()] == ["/", "/AB", "/AB/A", "/AB/A/B", "/AB/A/B/C"]


def _refused_move(volume, source: str, target: str) -> None:
    """``rename`` refuses with CPF1F48 and writes nothing (no RENAME record, the tree as it was)."""
    tree, used = list(volume.walk()), volume.space()[1]
    with pytest.raises(errors.InvalidError) as info:
        volume.rename(source, target)
    assert info.value.message_id == "CPF1F48" and "below it" in info.value.text
    assert list(volume.walk()) == tree and volume.space()[1] == used


def test_move_directory_keeps_directory_names_below_within_256(primary):
    """Reference §3.1: all directory names of a path together take at most 256 characters, also
    after a rename or move of a directory above them (else no command reaches their files)."""
    deep = "/A/" + "D" * 200  # 2 + 201 = 203 characters of directory names
    primary.mkdir(deep, parents=True)
    primary.write_bytes(deep + "/f.txt", b"payload")
    _refused_move(primary, "/A", "/" + "B" * 100)
    primary.mkdir("/" + "C" * 60)
    _refused_move(primary, "/A", "/" + "C" * 60 + "/A")  # a move down grows them too
    _refused_move(primary, "/A", "/" + "B" * 55)  # 56 + 201 = 257
    primary.rename("/A", "/" + "B" * 54)  # 55 + 201 = 256: fits
    assert primary.read_bytes("/" + "B" * 54 + "/" + "D" * 200 + "/f.txt") == b"payload"
    primary.rename("/" + "B" * 54, "/A")  # shorter again


def test_move_directory_keeps_the_directory_itself_within_256(primary):
    """The target is checked as a file path (its last name not counted as a directory): the
    moved directory's own path must keep within 256 characters too."""
    primary.mkdir("/" + "C" * 150)
    primary.mkdir("/E")
    _refused_move(primary, "/E", "/" + "C" * 150 + "/" + "E" * 110)  # 151 + 111 = 262
    primary.rename("/E", "/" + "C" * 150 + "/" + "E" * 104)  # 151 + 105 = 256
    assert primary.is_dir("/" + "C" * 150 + "/" + "E" * 104)


def test_move_directory_keeps_file_paths_below_within_294(primary):
    """Reference §3.1: a whole path with /QOPT/VOL takes at most 294 characters."""
    primary.mkdir("/A/" + "D" * 150, parents=True)  # 153 characters of directory names
    name = "F" * 120
    primary.write_bytes("/A/" + "D" * 150 + "/" + name, b"f")  # /QOPT/PVOL1 (11) + 153 + 121 = 285
    primary.mkdir("/A/" + "S" * 180)  # a longer directory, without files, fits after the move
    _refused_move(primary, "/A", "/" + "B" * 11)  # 295 with /QOPT/PVOL1
    primary.rename("/A", "/" + "B" * 10)  # 294
    assert primary.read_bytes("/" + "B" * 10 + "/" + "D" * 150 + "/" + name) == b"f"


def test_set_attributes(primary):
    primary.write_bytes("/F", b"x")
    info = primary.set_attributes("/f", read_only=True)
    assert (info.read_only, info.hidden) == (True, False)
    info = primary.set_attributes("/F", hidden=True)
    assert (info.read_only, info.hidden) == (True, True)
    info = primary.set_attributes("/F", read_only=False)
    assert (info.read_only, info.hidden) == (False, True)
    assert primary.stat("/F") == info
    with pytest.raises(errors.NotFoundError):
        primary.set_attributes("/NONE", hidden=True)
    primary.mkdir("/D")
    with pytest.raises(errors.NotAllowedError):
        primary.set_attributes("/D", hidden=True)


# ----------------------------------------------------------------------------- times (reference §3.3)

def test_set_attributes_that_change_no_flag_write_nothing(primary):
    """No ATTRIBUTES record (a sector) and no new attr_changed, which would make the next
    *CHANGED backup copy the file again, for a call that changes nothing."""
    primary.write_bytes("/F", b"x")
    primary.set_attributes("/F", hidden=True)
    before, used = primary.stat("/F"), primary.space()[1]
    for flags in ({}, {"hidden": True}, {"read_only": False}, {"read_only": False, "hidden": True}):
        assert primary.set_attributes("/F", **flags) == before
    assert primary.stat("/F") == before and primary.space()[1] == used
    changed = primary.set_attributes("/F", hidden=False)
    assert changed.attr_changed > before.attr_changed and primary.space()[1] > used
    with pytest.raises(errors.NotFoundError):
        primary.set_attributes("/NOPE")  # the rules still hold for a call that changes nothing



def test_times(primary, clock):
    t0 = clock.peek()
    created = primary.write_bytes("/F", b"one")
    t1 = clock.peek()
    assert t0 <= created.created < t1
    assert created.modified == created.created == created.attr_changed

    clock.now += timedelta(hours=1)
    t2 = clock.peek()
    rewritten = primary.write_bytes("/F", b"two")
    assert rewritten.created == created.created  # created is kept on rewrite
    assert rewritten.modified >= t2  # modified moves on a data write
    assert rewritten.attr_changed == created.attr_changed  # attributes were not written
    assert primary.stat("/F") == rewritten

    clock.now += timedelta(hours=1)
    t3 = clock.peek()
    changed = primary.set_attributes("/F", hidden=True)
    assert changed.attr_changed >= t3  # attr_changed moves on an attribute change
    assert changed.modified == rewritten.modified  # and modified does not
    assert changed.created == created.created

    clock.now += timedelta(hours=1)
    with primary.open("/F", "ab") as handle:
        handle.write(b"!")
    appended = primary.stat("/F")
    assert appended.modified > changed.modified
    assert appended.attr_changed == changed.attr_changed
    assert appended.created == created.created
    assert appended.hidden is True  # flags survive a data write


def test_directory_created_time_and_last_referenced(primary, clock):
    t0 = clock.peek()
    info = primary.mkdir("/D")
    assert t0 <= info.created < clock.peek()
    assert primary.stat("/D").created == info.created
    clock.now += timedelta(days=2)
    t1 = clock.peek()
    primary.write_bytes("/D/F", b"")
    assert primary.info().last_referenced >= t1


# ----------------------------------------------------------------------------- name rules


def test_path_length_limit(primary):
    # /QOPT/PVOL1 is 11 characters: 283 more make exactly 294.
    directory = "/" + "A" * 200
    primary.mkdir(directory)
    ok = directory + "/" + "B" * 81
    assert len("/QOPT/PVOL1" + ok) == 294
    primary.write_bytes(ok, b"fits")
    assert primary.read_bytes(ok) == b"fits"
    too_long = directory + "/" + "B" * 82
    with pytest.raises(errors.InvalidError) as info:
        primary.write_bytes(too_long, b"no")
    assert info.value.message_id == "CPF1F48"
    assert info.value.exit_code == 2
    assert primary.listdir(directory) == ["B" * 81]


def test_directory_names_limit(primary):
    primary.mkdir("/" + "A" * 200)
    ok = "/" + "A" * 200 + "/" + "B" * 54  # 201 + 55 = 256 characters of directory names
    primary.mkdir(ok)
    primary.write_bytes(ok + "/F", b"")
    with pytest.raises(errors.InvalidError) as info:
        primary.mkdir(ok + "X")
    assert info.value.message_id == "CPF1F48"
    with pytest.raises(errors.InvalidError):
        primary.write_bytes("/" + "A" * 200 + "/" + "B" * 55 + "/F", b"")
    assert primary.listdir("/" + "A" * 200) == ["B" * 54]


def test_element_length_limit(primary, udf):
    primary.write_bytes("/" + "N" * 255, b"")
    with pytest.raises(errors.InvalidError) as info:
        primary.write_bytes("/" + "N" * 256, b"")
    assert info.value.message_id == "CPF1F21"
    udf.write_bytes("/" + "N" * 254, b"")
    with pytest.raises(errors.InvalidError):
        udf.write_bytes("/" + "M" * 255, b"")


@pytest.mark.parametrize("char", ['"', "*", "<", ">", "?", "\\", "\x00", "\x01", "\x1f", "\x7f", "\x85"])
def test_invalid_characters_refused(primary, udf, char):
    for volume in (primary, udf):
        with pytest.raises(errors.InvalidError) as info:
            volume.write_bytes(f"/A{char}B", b"")
        assert info.value.exit_code == 2
        assert info.value.message_id in ("CPF1F21", "CPF1F48")
        with pytest.raises(errors.InvalidError) as info:
            volume.mkdir(f"/D{char}")
        assert info.value.message_id in ("CPF1F01", "CPF1F48")
        assert volume.listdir("/") == []


@pytest.mark.parametrize("path", ["relative", "", "/A//B", "/A/./B", "/A/../B", "/.."])
def test_malformed_paths_refused(primary, path):
    primary.mkdir("/A/B", parents=True)
    with pytest.raises(errors.InvalidError):
        primary.write_bytes(path, b"")
    with pytest.raises(errors.InvalidError):
        primary.stat(path)


def _fails(call, message_id: str) -> None:
    with pytest.raises(errors.OptvolError) as info:
        call()
    assert info.value.message_id == message_id, info.value


def test_a_path_ending_in_slash_names_a_directory(primary):
    """As POSIX reads ``f.txt/``: no file has a path that ends in '/'. A file operation on one
    finds no file (CPF1F22) and writes nothing; a lookup of either kind takes it as a directory."""
    primary.mkdir("/D/SUB", parents=True)
    primary.write_bytes("/D/f.txt", b"data")
    used = primary.space()[1]
    for call in (lambda: primary.read_bytes("/D/f.txt/"), lambda: primary.open("/D/f.txt/"),
                 lambda: primary.write_bytes("/D/f.txt/", b"new"), lambda: primary.write_bytes("/D/new.txt/", b"x"),
                 lambda: primary.open("/D/new.txt/", "wb"), lambda: primary.remove("/D/f.txt/"),
                 lambda: primary.set_attributes("/D/f.txt/", hidden=True), lambda: primary.versions("/D/f.txt/"),
                 lambda: primary.write_chunks("/D/f.txt/", iter([b"x"]), size=1), lambda: primary.remove("/D/SUB/")):
        _fails(call, "CPF1F22")
    _fails(lambda: primary.stat("/D/f.txt/"), "OPV0109")  # a file where a directory is named
    _fails(lambda: primary.rename("/D/f.txt/", "/D/g.txt"), "OPV0109")
    _fails(lambda: primary.rename("/D/f.txt", "/D/g.txt/"), "OPV0109")
    _fails(lambda: primary.stat("/D/nope/"), "CPF1F02")
    assert not primary.exists("/D/f.txt/") and primary.exists("/D/f.txt") and primary.exists("/D/SUB/")
    assert primary.listdir("/D") == ["SUB", "f.txt"] and primary.space()[1] == used
    assert primary.read_bytes("/D/f.txt") == b"data" and not primary.stat("/D/f.txt").hidden
    assert primary.stat("/D/SUB/").path == "/D/SUB" and primary.stat("/").path == "/"
    primary.rename("/D/SUB/", "/D/MOVED/")  # a directory may be named either way
    assert primary.listdir("/D") == ["MOVED", "f.txt"]


def test_dash_refused_on_hpofs_allowed_on_udf(primary, udf):
    with pytest.raises(errors.InvalidError) as info:
        primary.write_bytes("/A-B", b"")
    assert info.value.message_id == "CPF1F21"
    with pytest.raises(errors.InvalidError) as info:
        primary.mkdir("/D-E")
    assert info.value.message_id == "CPF1F01"
    assert primary.listdir("/") == []
    udf.mkdir("/D-E")
    udf.write_bytes("/D-E/A-B", b"ok")
    assert udf.read_bytes("/D-E/A-B") == b"ok"


def test_case_kept_lookup_insensitive(primary):
    primary.mkdir("/MixedDir")
    primary.write_bytes("/MixedDir/ReadMe.Txt", b"hi")
    assert primary.listdir("/") == ["MixedDir"]
    assert primary.listdir("/mixeddir") == ["ReadMe.Txt"]
    assert primary.read_bytes("/MIXEDDIR/README.TXT") == b"hi"
    assert primary.stat("/mixeddir/readme.txt").path == "/MixedDir/ReadMe.Txt"
    assert primary.is_dir("/MIXEDDIR")


def test_names_differing_only_in_case_cannot_coexist(primary):
    primary.write_bytes("/README", b"upper")
    with pytest.raises(errors.ExistsError):
        primary.write_bytes("/readme", b"lower", replace=False)
    with pytest.raises(errors.ExistsError):
        primary.open("/Readme", "xb")
    with pytest.raises(errors.ExistsError) as info:
        primary.mkdir("/readme")  # file vs dir
    assert info.value.message_id == "CPF1F24"
    primary.mkdir("/Docs")
    with pytest.raises(errors.NotAllowedError):
        primary.write_bytes("/DOCS", b"")  # dir vs file
    with pytest.raises(errors.ExistsError):
        primary.mkdir("/docs")  # dir vs dir
    primary.write_bytes("/OTHER", b"")
    with pytest.raises(errors.ExistsError):
        primary.rename("/OTHER", "/readme")
    with pytest.raises(errors.ExistsError):
        primary.rename("/OTHER", "/docs")
    primary.write_bytes("/readme", b"replaced")  # a write under another case is the same file
    assert len(primary.listdir("/")) == 3
    assert primary.read_bytes("/README") == b"replaced"
    assert primary.stat("/README").version == 2


# ----------------------------------------------------------------------------- writer failures


def test_writer_with_block_that_raises_leaves_no_file(primary, library):
    data_before = os.path.getsize(data_path(library, "PVOL1"))
    with pytest.raises(KeyError):
        with primary.open("/NEW", "wb") as handle:
            handle.write(b"partial" * 1000)
            raise KeyError("boom")
    assert not primary.exists("/NEW")
    with pytest.raises(ZeroDivisionError):
        with primary.open("/NEW.TXT", "w") as handle:
            handle.write("text")
            raise ZeroDivisionError
    assert primary.listdir("/") == []
    assert os.path.getsize(data_path(library, "PVOL1")) == data_before


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_a_refused_write_spoils_the_handle(library, mode):
    """Nothing is lost silently: after a refused write, every write and close() say so (OPV0111)."""
    make_volume(library, "SMALL", medtype=MediaType.ERASE, capacity=1 << 20, threshold=100)
    with library.open("SMALL") as volume:
        volume.write_bytes("/LOG.TXT", b"old version")
        size_before = os.path.getsize(data_path(library, "SMALL"))
        line, big = ("first record\n", "z" * (2 << 20)) if mode == "w" else (b"first record\n", b"z" * (2 << 20))
        handle = volume.open("/LOG.TXT", mode)
        handle.write(line * 1000)
        with pytest.raises(errors.VolumeFullError) as refused:
            handle.write(big)
        assert refused.value.message_id == "CPF1F61"
        for attempt in (lambda: handle.write(line), handle.close):
            with pytest.raises(errors.NotAllowedError) as spoilt:
                attempt()
            assert spoilt.value.message_id == "OPV0111" and "No free space on volume SMALL" in spoilt.value.text
        assert handle.closed
        handle = volume.open("/LOG.TXT", mode)
        handle.write(big[:1_046_000])  # held in the handle's buffer: refused by close's flush, which says so
        with pytest.raises(errors.VolumeFullError):
            handle.close()
        assert handle.closed
        with pytest.raises(errors.VolumeFullError):  # inside with: the refusal itself, and nothing kept
            with volume.open("/LOG.TXT", mode) as handle:
                handle.write(line)
                handle.write(big)
        assert volume.read_bytes("/LOG.TXT") == b"old version" and volume.stat("/LOG.TXT").version == 1
        assert os.path.getsize(data_path(library, "SMALL")) == size_before


def test_a_handle_of_a_closed_volume_is_a_closed_file_not_damage(library, primary):
    primary.write_bytes("/F", b"sound bytes" * 1000)
    volume = library.open("PVOL1")
    reader = volume.open("/F", "rb")
    assert reader.read(5) == b"sound"
    writer = volume.open("/NEW", "wb")
    writer.write(b"x" * 10_000)  # past the handle's buffer: the writer has it
    volume.close()
    assert reader.closed  # (closed with its volume: test_handle_io.py)
    with pytest.raises(ValueError):
        reader.read()
    with pytest.raises(ValueError, match="volume PVOL1 is closed"):
        writer.write(b"y" * 10_000)
    with pytest.raises(ValueError, match="volume PVOL1 is closed"):
        writer.close()  # what it was given cannot be written: said, not dropped
    reader.close()
    assert primary.read_bytes("/F") == b"sound bytes" * 1000 and not primary.exists("/NEW")


def test_writer_that_raises_keeps_the_old_version(primary):
    primary.write_bytes("/F", b"old")
    with pytest.raises(RuntimeError):
        with primary.open("/F", "wb") as handle:
            handle.write(b"new")
            raise RuntimeError
    assert primary.read_bytes("/F") == b"old"
    assert primary.stat("/F").version == 1


# ----------------------------------------------------------------------------- damaged data


def _payload_offset(volume, path):
    sector, header_sectors, size = volume.image.conn.execute(
        "SELECT f.sector, f.header_sectors, f.size FROM files f JOIN dirs d ON d.id = f.dir "
        "WHERE f.live = 1 AND d.path || CASE WHEN d.path = '/' THEN '' ELSE '/' END || f.name = ?", (path,)
    ).fetchone()
    return (sector + header_sectors) * volume.image.sector_size, size


def _flip(library, offset):
    with open(data_path(library, "PVOL1"), "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("where", [0, 1, 4095, 99_999])
def test_flipped_payload_byte_never_read(primary, library, where):
    payload = os.urandom(100_000)
    primary.write_bytes("/GOOD", b"good")
    primary.write_bytes("/F", payload)
    offset, size = _payload_offset(primary, "/F")
    assert size == len(payload)
    _flip(library, offset + where)
    with pytest.raises(errors.DamagedError) as info:
        primary.open("/F", "rb")
    assert info.value.exit_code == 7
    assert info.value.message_id == "CPF1F28"
    with pytest.raises(errors.DamagedError):
        primary.read_bytes("/F")
    with pytest.raises(errors.DamagedError):
        primary.open("/F", "r")
    with pytest.raises(errors.DamagedError):
        primary.open("/F", "ab")  # appending needs the old bytes: refused too
    with pytest.raises(errors.DamagedError):
        primary.read_bytes("/F")  # the refused append left no new version holding the bad bytes
    assert primary.stat("/F").version == 1
    assert primary.read_bytes("/GOOD") == b"good"  # other files are still readable
    with library.open("PVOL1") as other:
        with pytest.raises(errors.DamagedError):
            other.read_bytes("/F")


def test_flipped_header_byte_never_read(primary, library):
    primary.write_bytes("/F", b"abc" * 1000)
    offset, _ = _payload_offset(primary, "/F")
    _flip(library, offset - primary.image.sector_size + 40)  # inside the header sector
    with pytest.raises(errors.DamagedError) as info:
        primary.read_bytes("/F")
    assert info.value.exit_code == 7


def test_truncated_data_partition_never_read(primary, library):
    primary.write_bytes("/F", b"abc" * 10_000)
    primary.close()
    size = os.path.getsize(data_path(library, "PVOL1"))
    os.truncate(data_path(library, "PVOL1"), size - 5000)
    with library.open("PVOL1") as volume:
        with pytest.raises(errors.DamagedError):
            volume.read_bytes("/F")


def test_a_batch_never_writes_a_file_over_a_directory_made_in_it(primary):
    """The per-transaction memory of subdirectories forgets them when a directory is made."""
    with primary.batch():
        primary.write_bytes("/first", b"1")  # loads what the root holds
        primary.mkdir("/NAME")
        with pytest.raises(errors.NotAllowedError) as caught:
            primary.write_bytes("/name", b"x")
    assert caught.value.message_id == "OPV0108"
    assert primary.is_dir("/NAME") and primary.listdir("/") == ["NAME", "first"]


@pytest.mark.parametrize("fixture", ["primary", "udf"])
def test_a_batch_reads_its_own_writes(request, fixture):
    """Records a batch wrote may still be in its memory: every read sees them, with the right bytes."""
    volume = request.getfixturevalue(fixture)
    big = os.urandom(300_000)
    with volume.batch():
        volume.write_bytes("/LOG.TXT", b"line 1\n")
        volume.write_bytes("/BIG", big)
        volume.write_bytes("/SMALL", b"small")
        assert volume.read_bytes("/LOG.TXT") == b"line 1\n"
        with volume.open("/LOG.TXT", "a") as handle:
            handle.write("line 2\n")
        assert volume.read_bytes("/LOG.TXT") == b"line 1\nline 2\n"
        assert volume.read_bytes("/BIG") == big and volume.read_bytes("/SMALL") == b"small"
        volume.mkdir("/D")
        volume.rmdir("/D")  # UDF reads the directory's record to free it
    assert volume.read_bytes("/LOG.TXT") == b"line 1\nline 2\n" and volume.read_bytes("/BIG") == big


def test_a_reader_of_a_batch_that_rolled_back_never_ends_early(primary):
    big = os.urandom(300_000)
    with pytest.raises(KeyError):
        with primary.batch():
            primary.write_bytes("/BIG", big)
            handle = primary.open("/BIG", "rb")
            assert handle.read(10) == big[:10]
            raise KeyError
    with pytest.raises(errors.DamagedError):
        handle.read()  # its version is gone with the batch: an error, not 10 bytes and an end
    handle.close()
    assert not primary.exists("/BIG")


def test_a_reader_of_a_batch_that_rolled_back_never_reads_the_file_written_over_it(primary):
    """The batch's sectors are written again by the next commit: the reader it left behind
    fails (CPF1F28) rather than hand out that other file's bytes as its own."""
    secret = b"A" * 10_000
    with pytest.raises(KeyError):
        with primary.batch():
            primary.write_bytes("/a.txt", secret)
            handle = primary.open("/a.txt", "rb")
            assert handle.read(4) == b"AAAA"
            raise KeyError
    primary.write_bytes("/b.txt", b"B" * 20_000)  # laid at the same sectors
    with pytest.raises(errors.DamagedError) as refused:
        handle.read()
    assert "undone" in refused.value.text
    handle.close()
    with primary.batch():  # committed: the reader of a batch reads on after the batch ends
        primary.write_bytes("/c.txt", b"C" * 10_000)
        kept = primary.open("/c.txt", "rb")
        assert kept.read(4) == b"CCCC"
    assert kept.read() == b"C" * 9_996
    kept.close()


# ----------------------------------------------------------------------------- live file counts


def _live_counts(volume) -> dict[str, tuple[int, int]]:
    """Each live directory: (the number of live files its row keeps, the number it holds)."""
    return {path: (kept, counted) for path, kept, counted in volume.image.conn.execute(
        "SELECT path, live_files, (SELECT count(*) FROM files WHERE files.dir = dirs.id AND files.live = 1)"
        " FROM dirs WHERE live = 1")}


@pytest.mark.parametrize("fixture", ["primary", "udf"])
def test_each_directory_keeps_its_number_of_live_files(request, fixture):
    """dirs.live_files (docs/format.md §4.3), which CPYOPT's not-selected count reads."""
    volume = request.getfixturevalue(fixture)
    volume.mkdir("/A")
    volume.mkdir("/B")
    with volume.batch():
        for i in range(5):
            volume.write_bytes(f"/A/F{i}", b"x" * i)
    volume.write_bytes("/A/F0", b"a new version")  # replaces: still five
    volume.rename("/A/F1", "/B/MOVED")  # moves: four and one
    volume.rename("/A/F2", "/A/RENAMED")  # renames in place
    volume.remove("/A/F3")
    volume.rename("/B", "/A/B")  # a moved directory keeps its files
    assert _live_counts(volume) == {"/": (0, 0), "/A": (3, 3), "/A/B": (1, 1)}
