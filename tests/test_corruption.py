"""Random damage to a volume image (DESIGN §6): byte flips and truncations of the data
partition and of index.sqlite, about a hundred seeded cases.

After each, every command either succeeds with correct data or fails with an optvol
error (exit 7 for damage; never a traceback, exit 70), and CHKOPTVOL names the damaged
files (payload flips) or reports the damage. A read that succeeds never returns wrong bytes.
"""

from __future__ import annotations

import os
import random
import shutil

import pytest

from cli_helpers import ERROR_LINE
from conftest import make_volume
from integrity_helpers import content, flip, index_rows, payload_offset, run_cli, volume_dir
from optvol import errors
from optvol.checking import chkoptvol
from optvol.library import Library
from optvol.model import VolumeType

SEED = 4242
CASES = 100
MUTATIONS = ("payload", "data_flip", "data_truncate", "index_flip", "index_truncate", "index_page")


@pytest.fixture(scope="module")
def template(tmp_path_factory, request):
    from conftest import FakeClock

    root = tmp_path_factory.mktemp("corruption") / "template"
    library = Library(root, clock=FakeClock())
    make_volume(library, "PVOL1")
    expected: dict[str, bytes] = {}
    with library.open("PVOL1") as volume, volume.batch():
        for d in range(3):
            volume.mkdir(f"/D{d}")
            for i in range(10):
                path = f"/D{d}/F{i}"
                expected[path] = content(path, [0, 10, 2048, 3000, 9000][i % 5] + i)
                volume.write_bytes(path, expected[path])
        volume.write_bytes("/D0/F1", b"second version of F1")
        expected["/D0/F1"] = b"second version of F1"
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    return root, expected


def _mutate(root, rng: random.Random, kind: str) -> set[str]:
    """Damage PVOL1; return the paths (as CHKOPTVOL names them) a payload flip damaged."""
    directory = volume_dir(root, "PVOL1")
    data, index = directory / "data.opv", directory / "index.sqlite"
    if kind == "payload":
        rows = [r for r in index_rows(root, "PVOL1") if r["size"] > 0]
        chosen = rng.sample(rows, rng.randint(1, 4))
        for row in chosen:
            flip(data, payload_offset(row, rng.randrange(row["size"])), rng.randrange(1, 256))
        return {r["path"] if r["live"] else f"{r['path']} (version {r['version']})" for r in chosen}
    if kind == "data_flip":
        for _ in range(rng.randint(1, 3)):
            flip(data, rng.randrange(data.stat().st_size), rng.randrange(1, 256))
    elif kind == "data_truncate":
        os.truncate(data, rng.randrange(data.stat().st_size))
    elif kind == "index_flip":
        for _ in range(rng.randint(1, 8)):
            flip(index, rng.randrange(index.stat().st_size), rng.randrange(1, 256))
    elif kind == "index_truncate":
        os.truncate(index, rng.randrange(index.stat().st_size))
    else:
        pages = index.stat().st_size // 4096
        with open(index, "r+b") as handle:
            handle.seek(rng.randrange(pages) * 4096)
            handle.write(bytes(4096))
    return set()


def _ok_or_optvol_error(result, *allowed: int) -> None:
    assert result.rc != 70, result.err
    assert result.rc in (0, *allowed), (result.rc, result.err)
    if result.rc:
        assert result.err.startswith("optvol: "), result.err


def _api_reads(library: Library, expected: dict[str, bytes]) -> dict[str, str]:
    """Read every file through the API: path -> "ok" or the message ID; wrong bytes fail."""
    outcome: dict[str, str] = {}
    try:
        with library.open("PVOL1") as volume:
            listed = [info.path for info in volume.iter_files("/", recursive=True)]
            for path in listed:
                try:
                    data = volume.read_bytes(path)
                except errors.OptvolError as exc:
                    assert exc.exit_code in (3, 7), exc
                    outcome[path] = exc.message_id
                    continue
                # A path the index no longer names correctly still holds some file's bytes.
                assert data == expected[path] if path in expected else data in expected.values(), path
                outcome[path] = "ok"
    except errors.OptvolError as exc:
        assert exc.exit_code in (3, 7), exc
        outcome["(volume)"] = exc.message_id
    return outcome


def _case(root, expected, rng: random.Random, kind: str) -> None:
    damaged_paths = _mutate(root, rng, kind)
    library = Library(root, clock=library_clock)
    reads = _api_reads(library, expected)
    checks = run_cli(root, "chkoptvol", "PVOL1", json_output=True)
    _ok_or_optvol_error(checks, 7)
    if kind == "payload":
        assert checks.rc == 7
        assert {d["path"] for d in checks.json()["damaged"]} == damaged_paths
        for path, result in reads.items():
            assert (result == "CPF1F28") == (path in damaged_paths), (path, result)
    if checks.rc == 0:
        # Nothing found: then every file read back intact.
        assert set(reads.values()) <= {"ok"}, reads
    elif checks.out:
        named = {d["path"] for d in checks.json()["damaged"]}
        for path, result in reads.items():
            if result == "CPF1F28":  # a file that fails to read is damaged and CHKOPTVOL says so
                assert path in named or any(n.startswith("(") for n in named), (path, named)
    for args, allowed in (
        (("ls", "-l", "/QOPT/PVOL1/D1"), (3, 7)),
        (("dspopt", "PVOL1"), (7,)),
        (("dspopt", "PVOL1", "--data", "*FILATR", "--path", "/D2"), (3, 7)),
        (("wrkoptvol",), (7,)),
    ):
        _ok_or_optvol_error(run_cli(root, *args, json_output=True), *allowed)
    for path in rng.sample(sorted(expected), 4):
        shown = run_cli(root, "cat", f"/QOPT/PVOL1{path}")
        _ok_or_optvol_error(shown, 3, 7)
        if shown.rc == 0:
            assert shown.out == expected[path], path
        else:
            assert shown.out == b""
    copied = run_cli(root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES", json_output=True)
    _ok_or_optvol_error(copied, 1, 3, 7)
    [backup] = chkoptvol(library, vol="BVOL1")
    assert backup.damaged == []
    with library.open("BVOL1") as volume:  # whatever reached the backup is correct
        for info in volume.iter_files("/", recursive=True):
            _, row = volume.file_row(info.path)
            data = b"".join(volume.verified_chunks(row, info.path))
            assert data == expected[info.path] if info.path in expected else data in expected.values()


def library_clock():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


@pytest.mark.parametrize("block", range(4))
def test_random_damage(template, tmp_path, block):
    root, expected = template
    rng = random.Random(f"{SEED}-{block}")
    per_block = CASES // 4
    for n in range(per_block):
        kind = MUTATIONS[(block * per_block + n) % len(MUTATIONS)]
        case_root = tmp_path / f"case{n}"
        shutil.copytree(root, case_root)
        try:
            _case(case_root, expected, rng, kind)
        except AssertionError as exc:
            raise AssertionError(f"case {block}/{n} ({kind}): {exc}") from exc
        shutil.rmtree(case_root)


def test_damaged_index_is_reported_not_raised(template, tmp_path):
    root, _ = template
    case_root = tmp_path / "zeroed"
    shutil.copytree(root, case_root)
    index = volume_dir(case_root, "PVOL1") / "index.sqlite"
    with open(index, "r+b") as handle:  # every page after the first: the tables are gone
        handle.seek(4096)
        handle.write(bytes(index.stat().st_size - 4096))
    result = run_cli(case_root, "chkoptvol", "*ALL", json_output=True)
    assert result.rc == 7
    by_volume = {r["volume"]: r for r in result.json()}
    assert by_volume["BVOL1"]["damaged"] == []
    assert [d["path"] for d in by_volume["PVOL1"]["damaged"]] == ["(index)"]
    listing = run_cli(case_root, "ls", "/QOPT/PVOL1/")
    assert listing.rc == 7 and "OPV0201" in listing.err


def test_one_damaged_volume_does_not_hide_the_others(tmp_path):
    """WRKOPTVOL and DSPOPT VOL(*ALL) list every volume they can open, name the damaged one
    on stderr and exit 7, with valid JSON; CHKOPTVOL *ALL checks past a volume it cannot open,
    which it leaves out as they do, naming it on stderr (hunt24d F2: it listed it as damaged)."""
    from conftest import FakeClock

    library = Library(tmp_path / "lib", clock=FakeClock())
    for vol in ("AVOL", "BVOL", "CVOL", "DVOL"):
        make_volume(library, vol)
    (volume_dir(library.root, "BVOL") / "index.sqlite").write_bytes(b"not an index")
    lock = volume_dir(library.root, "DVOL") / "lock"
    lock.unlink()
    lock.mkdir()  # a volume whose lock file cannot be opened
    for args in (("wrkoptvol",), ("dspopt", "*ALL")):
        listed = run_cli(library.root, *args, json_output=True)
        assert listed.rc == 7, listed.err
        assert [v["volume"] for v in listed.json()] == ["AVOL", "CVOL"]
        assert "OPV0201: Volume BVOL is damaged" in listed.err and "DVOL.optvol/lock" in listed.err
        table = run_cli(library.root, *args)
        assert table.rc == 7 and "CVOL" in table.out.decode()
    checked = run_cli(library.root, "chkoptvol", "*ALL", json_output=True)
    assert checked.rc == 7 and "DVOL.optvol/lock" in checked.err, checked.err
    assert {r["volume"]: [d["path"] for d in r["damaged"]] for r in checked.json()} == {
        "AVOL": [], "BVOL": ["(index)"], "CVOL": []}


def test_a_file_where_the_library_keeps_its_scratch_directory(tmp_path):
    from conftest import FakeClock

    library = Library(tmp_path / "lib", clock=FakeClock())
    scratch = library.root / ".tmp"
    scratch.rmdir()
    scratch.write_text("not a directory")
    made = run_cli(library.root, "inzopt", "PVOL1")
    assert made.rc == 2 and "OPV0006" in made.err and ".tmp" in made.err, made.err
    scratch.unlink()
    assert run_cli(library.root, "inzopt", "PVOL1").rc == 0  # .tmp is made again


@pytest.mark.parametrize("table, column, value", [
    ("files", "modified", "yesterday"), ("files", "size", "big"), ("files", "flags", "rw"),
    ("files", "sha256", "not bytes"), ("files", "sector", "q"), ("dirs", "created", "x"),
    ("label", "capacity", "x"), ("label", "type", "*WHAT"), ("label", "media_type", "*CD"),
    ("meta", "value", "x"), ("meta", "value", -1),
])
def test_an_index_edited_by_hand_is_damage_not_a_traceback(template, tmp_path, table, column, value):
    """hunt-cl F14: text where the index keeps a time (a row edited by hand; SQLite keeps
    what it is given) made listings, cat, CPYOPT, DUPOPT and export-iso end in a traceback,
    exit 70, and CHKOPTVOL call the index sound. Now a command that fails on such a value is
    OPV0201 naming it, exit 7, and CHKOPTVOL reports it; recover rebuilds the index."""
    import sqlite3

    root, expected = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    conn = sqlite3.connect(volume_dir(case_root, "PVOL1") / "index.sqlite")
    conn.execute(f"UPDATE {table} SET {column} = ?" + (" WHERE key = 'committed_end'" if table == "meta" else ""),
                 (value,))
    conn.commit()
    conn.close()
    where = "meta.committed_end" if table == "meta" else f"{table}.{column}"
    for args in (("ls", "-l", "/QOPT/PVOL1/D0"), ("dspopt", "PVOL1"), ("wrkoptvol",), ("cat", "/QOPT/PVOL1/D0/F1"),
                 ("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES"), ("dupopt", "PVOL1", "PDUP"),
                 ("export-iso", "PVOL1", tmp_path / "out.iso"), ("chkoptvol", "PVOL1")):
        done = run_cli(case_root, *args)
        assert "Traceback" not in done.err and done.rc != 70, (args, done.err)
        assert done.rc == 0 or ERROR_LINE.match(done.err), (args, done.rc, done.err)  # an optvol error, its exit code
        assert "no optvol writes" not in done.err or where in done.err, (args, done.err)
    checked = run_cli(case_root, "chkoptvol", "PVOL1", json_output=True)
    assert checked.rc == 7 and any(where in d["reason"] for d in checked.json()["damaged"])
    assert run_cli(case_root, "recover", "PVOL1").rc == 0
    assert run_cli(case_root, "chkoptvol", "PVOL1").rc == 0
    assert run_cli(case_root, "cat", "/QOPT/PVOL1/D0/F1").out == expected["/D0/F1"]


@pytest.mark.parametrize("edit, words", [
    ("UPDATE label SET sector_size = 0", "label.sector_size"), ("UPDATE label SET sector_size = 3000", "label.sector_size"),
    ("UPDATE meta SET value = 0 WHERE key = 'schema_version'", "schema version"),
])
def test_a_sector_size_or_schema_version_no_optvol_writes_is_damage(template, tmp_path, edit, words):
    """rev25g F2: a label.sector_size of 0 (ZeroDivisionError) or a schema version of 0
    (KeyError) ended every command, CHKOPTVOL too, in a traceback (exit 70)."""
    import sqlite3

    root, expected = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    conn = sqlite3.connect(volume_dir(case_root, "PVOL1") / "index.sqlite")
    conn.execute(edit)
    conn.commit()
    conn.close()
    for args in (("ls", "/QOPT/PVOL1/D0"), ("dspopt", "PVOL1"), ("cat", "/QOPT/PVOL1/D0/F1")):
        done = run_cli(case_root, *args)
        assert done.rc == 7 and "OPV0201" in done.err and words in done.err, (args, done.rc, done.err)
    checked = run_cli(case_root, "chkoptvol", "PVOL1", json_output=True)
    assert checked.rc == 7 and any(words in d["reason"] for d in checked.json()["damaged"])
    assert run_cli(case_root, "recover", "PVOL1").rc == 0
    assert run_cli(case_root, "chkoptvol", "PVOL1").rc == 0
    assert run_cli(case_root, "cat", "/QOPT/PVOL1/D0/F1").out == expected["/D0/F1"]


@pytest.mark.parametrize("old, new", [("path_key            TEXT", "path_key            TEXP"),
                                      ("copied       INTEGER", "copiee       INTEGER"),
                                      ("ON files (dir, name_key) WHERE live = 1", "ON files (dir, name_key)")])
def test_a_schema_text_changed_in_the_index_is_damage(template, tmp_path, old, new):
    """hunt25n F2, F3: one changed byte of the schema's own text (a column's type TEXT made TEXP,
    which changes how SQLite compares its values) passed SQLite's integrity check and CHKOPTVOL,
    and then WRKOPTF listed nothing and CPYOPT copied nothing, exit 0; a renamed column ended
    CHKOPTVOL in a traceback. Every command now refuses the volume (OPV0201), recover mends it."""
    import sqlite3

    root, expected = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    conn = sqlite3.connect(volume_dir(case_root, "PVOL1") / "index.sqlite")
    conn.execute("PRAGMA writable_schema = ON")
    assert conn.execute("UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE instr(sql, ?)", (old, new, old)).rowcount == 1
    conn.commit()
    conn.close()
    for args in (("wrkoptf", "PVOL1", "*ALL"), ("cat", "/QOPT/PVOL1/D0/F1"), ("cpyopt", "PVOL1", "/", "BVOL1 *BACKUP")):
        done = run_cli(case_root, *args)
        assert done.rc == 7 and "OPV0201" in done.err and "schema" in done.err, (args, done.rc, done.err)
    checked = run_cli(case_root, "chkoptvol", "PVOL1", json_output=True)
    assert checked.rc == 7 and "schema" in checked.json()["damaged"][0]["reason"]
    assert run_cli(case_root, "recover", "PVOL1").rc == 0
    assert run_cli(case_root, "chkoptvol", "PVOL1").rc == 0
    assert run_cli(case_root, "cat", "/QOPT/PVOL1/D0/F1").out == expected["/D0/F1"]


@pytest.mark.parametrize("mask", [0x04, 0x80])
def test_a_header_length_changed_in_a_record_is_damage_not_a_memory_error(template, tmp_path, mask):
    """hunt25n F3: a bit of a record header's sector count (its high byte) made a reader ask
    for count x sector size bytes at once (a MemoryError, exit 70) before any check of it."""
    root, expected = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    row = next(r for r in index_rows(case_root, "PVOL1") if r["path"] == "/D1/F3")
    flip(volume_dir(case_root, "PVOL1") / "data.opv", row["sector"] * row["sector_size"] + 15, mask)
    shown = run_cli(case_root, "cat", "/QOPT/PVOL1/D1/F3")
    assert shown.rc == 7 and "CPF1F28" in shown.err and shown.out == b"", shown.err
    checked = run_cli(case_root, "chkoptvol", "PVOL1", json_output=True)
    assert checked.rc == 7 and [d["path"] for d in checked.json()["damaged"]] == ["/D1/F3"]
    recovered = run_cli(case_root, "recover", "PVOL1")
    assert recovered.rc == 1 and "Traceback" not in recovered.err  # the record skipped as damaged (OPV0207)
    assert run_cli(case_root, "cat", "/QOPT/PVOL1/D1/F4").out == expected["/D1/F4"]


@pytest.mark.parametrize("parameters", ["{", "[]", '{"FROMVOL": 5}', 5,
                                        '{"FROMVOL": ["PVOL1"], "FROMPATH": "/", "TOVOL": ["BVOL1", "*BACKUP"]}'])
def test_request_parameters_edited_by_hand_are_damage_not_a_traceback(template, tmp_path, parameters):
    """hunt-contract F4: a logged request's parameters that are not the JSON object CPYOPT
    writes (text in a text column: the type check passes it) made DSPOPT *BKUHST end in a
    traceback, exit 70 (or, in JSON, show them as they were), and CHKOPTVOL call the volume
    clean. Now both are OPV0201 naming requests.parameters; recover rebuilds the log."""
    import sqlite3

    root, _ = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    assert run_cli(case_root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES").rc == 0
    conn = sqlite3.connect(volume_dir(case_root, "BVOL1") / "index.sqlite")
    conn.execute("UPDATE requests SET parameters = ?", (parameters,))
    conn.commit()
    conn.close()
    for json_output in (False, True):
        shown = run_cli(case_root, "dspopt", "BVOL1", "--data", "*BKUHST", json_output=json_output)
        assert shown.rc == 7 and ERROR_LINE.match(shown.err) and "requests.parameters" in shown.err, shown.err
        assert "Traceback" not in shown.err and shown.out == b""
    checked = run_cli(case_root, "chkoptvol", "BVOL1", json_output=True)
    assert checked.rc == 7 and any("requests.parameters" in d["reason"] for d in checked.json()["damaged"])
    assert run_cli(case_root, "recover", "BVOL1").rc == 0
    shown = run_cli(case_root, "dspopt", "BVOL1", "--data", "*BKUHST", json_output=True)
    assert shown.rc == 0 and shown.json()[0]["parameters"]["FROMVOL"] == ["PVOL1", "*PRIMARY"]


def test_a_json_listing_an_error_cuts_short_is_still_one_document(template, tmp_path):
    """A --json listing that meets damage after its first rows (here a row edited by hand)
    was left unterminated; it is now closed, holds the rows before the damaged one, and the
    exit code and the error line say what cut it short."""
    import json
    import sqlite3

    root, _ = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    conn = sqlite3.connect(volume_dir(case_root, "PVOL1") / "index.sqlite")
    conn.execute("UPDATE files SET modified = 'yesterday' WHERE name = 'F5'")
    conn.commit()
    conn.close()
    done = run_cli(case_root, "ls", "-l", "/QOPT/PVOL1/D0", json_output=True)
    assert done.rc == 7 and ERROR_LINE.match(done.err) and "files.modified" in done.err
    assert [entry["path"] for entry in json.loads(done.out)] == [f"/D0/F{i}" for i in range(5)]


@pytest.mark.parametrize("size", [1e20, 5.5, "five"])
def test_a_size_of_another_type_is_damage_in_every_listing(template, tmp_path, size):
    """hunt24d F8: a REAL (or a text) a hand put in files.size was listed (``1e+20``, exit 0)
    where CHKOPTVOL calls the index damaged: a listing now fails on it as on a time of
    another type (OPV0201 naming the column, exit 7), after the rows before it."""
    import sqlite3

    root, _ = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    conn = sqlite3.connect(volume_dir(case_root, "PVOL1") / "index.sqlite")
    conn.execute("UPDATE files SET size = ? WHERE name = 'F5'", (size,))
    conn.commit()
    conn.close()
    for args, json_output in ((("wrkoptf", "PVOL1", "/D0"), False), (("ls", "-l", "/QOPT/PVOL1/D0"), False),
                              (("dspopt", "PVOL1", "--path", "/D0", "--data", "*FILATR"), True)):
        done = run_cli(case_root, *args, json_output=json_output)
        assert done.rc == 7 and ERROR_LINE.match(done.err) and "files.size" in done.err, (args, done.err)
        assert b"F4" in done.out and b"F5" not in done.out and b"e+20" not in done.out, (args, done.out)


def test_a_table_whose_name_holds_a_quote_does_not_hide_damage(template, tmp_path):
    """Review 23 F6: the check of the columns' types built its SQL with the table names as
    given; a table a hand added as ``we"ird`` made it fail, and the whole check then found
    nothing: a label type no optvol writes ended the listing in a traceback, exit 70."""
    import sqlite3

    root, _ = template
    case_root = tmp_path / "edited"
    shutil.copytree(root, case_root)
    conn = sqlite3.connect(volume_dir(case_root, "PVOL1") / "index.sqlite")
    conn.execute('CREATE TABLE "we""ird" ("a""b" INTEGER)')
    conn.execute("UPDATE label SET type = 'BOGUS'")
    conn.commit()
    conn.close()
    for args in (("dspopt", "PVOL1"), ("wrkoptvol",)):
        done = run_cli(case_root, *args)
        assert done.rc == 7 and "label.type" in done.err and "Traceback" not in done.err, done.err
    checked = run_cli(case_root, "chkoptvol", "PVOL1", json_output=True)
    assert checked.rc == 7 and any("label.type" in d["reason"] for d in checked.json()["damaged"])
