"""One changed byte of an index entry (files_live) makes SQLite find another file's row by name;
a read must then fail, never hand out the other file's bytes as this one's (hunt25n F1)."""
from __future__ import annotations

import sqlite3

import index_pages
from conftest import make_volume
from integrity_helpers import run_cli, volume_dir


def _point_entry_elsewhere(index, key: bytes, wrong_id: int) -> None:
    """Change the rowid byte after ``key`` in the entry of index files_live until a lookup by ``key`` finds ``wrong_id``."""
    raw = index.read_bytes()
    at = raw.find(key)
    while at >= 0:
        changed = bytearray(raw)
        changed[at + len(key)] = wrong_id
        index.write_bytes(changed)
        conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT id FROM files INDEXED BY files_live WHERE dir = 1 AND name_key = ? AND live = 1",
                                 (key.decode(),)).fetchone()
        except sqlite3.DatabaseError:
            found = None
        finally:
            conn.close()
        if found == (wrong_id,):
            return
        at = raw.find(key, at + 1)
    index.write_bytes(raw)
    raise AssertionError("no index entry to change")


def test_a_read_through_an_index_entry_pointing_at_another_file_fails(library, tmp_path):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/aaaa.txt", b"A" * 5000)
        volume.write_bytes("/bbbb.txt", b"B" * 9)
    conn = sqlite3.connect(volume_dir(library.root, "PVOL1") / "index.sqlite")
    a_id = conn.execute("SELECT id FROM files WHERE name = 'aaaa.txt'").fetchone()[0]
    conn.close()
    _point_entry_elsewhere(volume_dir(library.root, "PVOL1") / "index.sqlite", b"BBBB.TXT", a_id)
    out = run_cli(library.root, "cat", "/QOPT/PVOL1/bbbb.txt")
    assert out.out != b"A" * 5000
    assert out.rc == 7 and "OPV0201" in out.err
    assert run_cli(library.root, "chkoptvol", "PVOL1").rc == 7



def test_a_batch_write_through_an_index_entry_pointing_at_another_file_fails(library):
    """CPYOPT's batch lookup of the target's files (Volume._files_named) checks the rows too
    (rev25o F1: it retired aaaa.txt for bbbb.txt, then SQLite's UNIQUE failure was a traceback, exit 70)."""
    make_volume(library, "PVOL1")
    make_volume(library, "PVOL2")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/bbbb.txt", b"new b")
    with library.open("PVOL2") as volume:
        volume.write_bytes("/aaaa.txt", b"A" * 5000)
        volume.write_bytes("/bbbb.txt", b"B" * 9)
    index = volume_dir(library.root, "PVOL2") / "index.sqlite"
    conn = sqlite3.connect(index)
    a_id = conn.execute("SELECT id FROM files WHERE name = 'aaaa.txt'").fetchone()[0]
    conn.close()
    _point_entry_elsewhere(index, b"BBBB.TXT", a_id)
    out = run_cli(library.root, "cpyopt", "PVOL1", "/", "PVOL2", "--sltfile", "*ALL")
    assert out.rc == 7 and "OPV0201" in out.err and "Traceback" not in out.err
    assert run_cli(library.root, "cat", "/QOPT/PVOL2/aaaa.txt").out == b"A" * 5000


def test_a_copy_from_a_source_whose_index_entry_points_at_another_file_fails(library):
    """CPYOPT's selection reads each candidate's keys again by rowid (copy_select._AGREE): through
    an entry of files_changed pointing at aaaa.txt's row, the scan gave aaaa.txt twice and
    bbbb.txt not at all; the backup lacked bbbb.txt and its range claimed it, exit 0."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/aaaa.txt", b"A" * 5000)
        volume.write_bytes("/bbbb.txt", b"B" * 9)
    assert run_cli(library.root, "inzopt", "BVOL1", "--type", "*BACKUP").rc == 0
    index = volume_dir(library.root, "PVOL1") / "index.sqlite"
    conn = sqlite3.connect(index)
    (a_id,), (b_changed,) = (conn.execute("SELECT id FROM files WHERE name = 'aaaa.txt'").fetchone(),
                             conn.execute("SELECT changed FROM files WHERE name = 'bbbb.txt'").fetchone())
    conn.close()
    index_pages.repoint(index, "files_changed", (1, b_changed), a_id)  # (directory 1: the root)
    out = run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    assert out.rc == 7 and "OPV0201" in out.err and "Volume PVOL1" in out.err and "Traceback" not in out.err
    with library.open("BVOL1") as backup:  # nothing copied, no range claimed
        assert backup.listdir("/") == [] and backup.stat("/").backup is None


def test_a_lookup_through_an_index_entry_pointing_at_no_row_fails_as_damage(library):
    """An entry whose rowid a changed byte made one no row has: the lookup's self-join by rowid
    was an inner join, and the file was simply not found (CPF1F22, exit 3); it is damage."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/aaaa.txt", b"A")
        volume.write_bytes("/bbbb.txt", b"B")  # (row 2: a rowid of one byte in the entry; row 1 takes none)
    index = volume_dir(library.root, "PVOL1") / "index.sqlite"
    index_pages.repoint(index, "files_live", (1, "BBBB.TXT"), 99)
    out = run_cli(library.root, "cat", "/QOPT/PVOL1/bbbb.txt")
    assert out.rc == 7 and "OPV0201" in out.err and "Traceback" not in out.err, out
