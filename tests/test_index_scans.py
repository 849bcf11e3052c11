"""One changed byte of an index entry's rowid makes a scan through that index give another
row under this key: listings, tree walks, CPYOPT's directory list, a rename's subtree and
export-iso must then fail with OPV0201 (exit 7), never list, write, move or walk the other
row as this one (hunt26b F1-F5; lookups by key: test_index_entries.py). So must one changed
byte of a row's live flag, which its index entries do not follow (hunt25n F4's flip)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import index_pages
import optvol
from conftest import make_volume
from integrity_helpers import run_cli, volume_dir


def _tree(library) -> sqlite3.Connection:
    """PVOL1 with /A (a1.txt), /A/SUB (s1.txt), /B (notes.txt, b1.txt), /B/XYZ (x1.txt) and
    /C (notes.txt); a read-only connection to its index."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        for path in ("/A/SUB", "/B/XYZ", "/C"):
            volume.mkdir(path, parents=True)
        for path, data in (("/A/a1.txt", b"a1"), ("/A/SUB/s1.txt", b"s1"), ("/B/notes.txt", b"B's own notes"),
                           ("/B/b1.txt", b"b1"), ("/B/XYZ/x1.txt", b"x1"), ("/C/notes.txt", b"C-notes")):
            volume.write_bytes(path, data)
    return sqlite3.connect(f"file:{_index(library)}?mode=ro", uri=True)


def _index(library):
    return volume_dir(library.root, "PVOL1") / "index.sqlite"


def _dir(conn, path: str) -> int:
    return conn.execute("SELECT id FROM dirs WHERE path = ? AND live = 1", (path,)).fetchone()[0]


def _damaged(out) -> bool:
    return out.rc == 7 and "OPV0201" in out.err and "Traceback" not in out.err


def test_a_listing_and_an_export_through_a_files_live_entry_of_another_file_fail(library, tmp_path):
    """ls, WRKOPTF and export-iso listed /C/notes.txt as /B/notes.txt, and the image held
    C's bytes under /B/notes.txt, exit 0."""
    conn = _tree(library)
    c_notes = conn.execute("SELECT f.id FROM files f JOIN dirs d ON d.id = f.dir"
                           " WHERE d.path = '/C' AND f.name = 'notes.txt'").fetchone()[0]
    index_pages.repoint(_index(library), "files_live", (_dir(conn, "/B"), "NOTES.TXT"), c_notes)
    assert _damaged(run_cli(library.root, "ls", "-l", "/QOPT/PVOL1/B"))
    assert _damaged(run_cli(library.root, "wrkoptf", "PVOL1", "/B"))
    assert _damaged(run_cli(library.root, "export-iso", "PVOL1", str(tmp_path / "p.iso")))
    assert not (tmp_path / "p.iso").exists()


def test_a_directory_list_through_a_dirs_path_entry_of_another_directory_fails(library):
    """WRKOPTDIR listed /A/SUB twice and /B not at all; CPYOPT backed up the tree without /B
    and its range claimed /B's files, exit 0."""
    conn = _tree(library)
    assert run_cli(library.root, "inzopt", "BVOL1", "--type", "*BACKUP").rc == 0
    index_pages.repoint(_index(library), "dirs_path", ("/B",), _dir(conn, "/A/SUB"))
    assert _damaged(run_cli(library.root, "wrkoptdir", "*ALL", "PVOL1"))
    out = run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    assert _damaged(out) and "Volume PVOL1" in out.err
    with library.open("BVOL1") as backup:  # nothing copied, no range claimed
        assert backup.listdir("/") == [] and backup.stat("/").backup is None


def test_a_rename_through_a_dirs_path_entry_of_another_directory_moves_nothing(library):
    """mv /A /Z moved /B/XYZ to /Z/XYZ (the UPDATE of the subtree's range went through the
    entry of /A/SUB) and left /A/SUB unreachable, exit 0."""
    conn = _tree(library)
    index_pages.repoint(_index(library), "dirs_path", ("/A/SUB",), _dir(conn, "/B/XYZ"))
    assert _damaged(run_cli(library.root, "mv", "/QOPT/PVOL1/A", "/QOPT/PVOL1/Z"))
    paths = conn.execute("SELECT path FROM dirs NOT INDEXED WHERE live = 1 ORDER BY path").fetchall()
    assert [p for (p,) in paths] == ["/", "/A", "/A/SUB", "/B", "/B/XYZ", "/C"]


def test_a_listing_through_a_dirs_parent_entry_of_another_directory_fails(library, tmp_path):
    """ls / listed SUB in /A's place; export-iso wrote /SUB at the root and left /A out, exit 0."""
    conn = _tree(library)
    index_pages.repoint(_index(library), "dirs_parent", (1,), _dir(conn, "/A/SUB"))
    assert _damaged(run_cli(library.root, "ls", "/QOPT/PVOL1/"))
    assert _damaged(run_cli(library.root, "export-iso", "PVOL1", str(tmp_path / "p.iso")))


def test_rm_r_through_a_dirs_parent_entry_of_the_directory_itself_ends(library):
    """/A its own subdirectory through the entry: rm -r (Volume.walk) never ended."""
    conn = _tree(library)
    index_pages.repoint(_index(library), "dirs_parent", (_dir(conn, "/A"),), _dir(conn, "/A"))
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(optvol.__file__))}
    done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(library.root), "rm", "-r", "/QOPT/PVOL1/A"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 7 and "OPV0201" in done.stderr
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/A/a1.txt") == b"a1"


def test_the_volume_counts_its_files_whatever_an_entry_of_dirs_parent_points_at(library):
    """DSPOPT's count of files (sum of dirs.live_files, a scan SQLite ran through dirs_parent)
    counted /A/SUB's file twice and /B's two not at all."""
    conn = _tree(library)
    index_pages.repoint(_index(library), "dirs_parent", (1,), _dir(conn, "/A/SUB"), rowid=_dir(conn, "/B"))
    with library.open("PVOL1") as volume:
        info = volume.info()
    assert (info.files, info.directories) == (6, 6)


def test_a_rename_stamps_no_file_through_a_files_changed_entry_of_another_file(library):
    """mv /B /B2 stamped the files below it through files_changed: /C/notes.txt got the new
    change time, /B/notes.txt (moved) kept its old one, exit 0."""
    conn = _tree(library)
    (b_changed,), (c_id, c_changed) = (
        conn.execute("SELECT changed FROM files WHERE name = 'notes.txt' AND dir = ?", (_dir(conn, "/B"),)).fetchone(),
        conn.execute("SELECT id, changed FROM files WHERE name = 'notes.txt' AND dir = ?", (_dir(conn, "/C"),)).fetchone())
    index_pages.repoint(_index(library), "files_changed", (_dir(conn, "/B"), b_changed), c_id)
    assert _damaged(run_cli(library.root, "mv", "/QOPT/PVOL1/B", "/QOPT/PVOL1/B2"))
    assert conn.execute("SELECT changed FROM files NOT INDEXED WHERE id = ?", (c_id,)).fetchone()[0] == c_changed


def test_a_backup_whose_dirs_path_entry_points_at_another_directory_stops_the_copy(library):
    """CPYOPT's selection took the target directory's range through its dirs_path entry
    (copy_select.target_dir): pointed at another directory, it read that one's range, the
    writes to the directory were refused one by one, and the run ended exit 1 with failures
    as if the backup were only full (hunt26b F8). The target's damage stops it: exit 7."""
    conn = _tree(library)
    assert run_cli(library.root, "inzopt", "BVOL1", "--type", "*BACKUP").rc == 0
    assert run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES").rc == 0
    backup_index = volume_dir(library.root, "BVOL1") / "index.sqlite"
    backup = sqlite3.connect(f"file:{backup_index}?mode=ro", uri=True)
    c_id = backup.execute("SELECT id FROM dirs WHERE path = '/C' AND live = 1").fetchone()[0]
    backup.close()
    index_pages.repoint(backup_index, "dirs_path", ("/B",), c_id)
    out = run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    assert _damaged(out) and "Volume BVOL1" in out.err and "'/B'" in out.err
    assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 6  # (the primary as it was)


def test_forgetting_a_backup_s_ranges_through_a_dirs_parent_entry_of_another_directory_fails(library):
    """rev26d F2: CPYOPT that meets another primary under the name forgets every range of the
    backup (privileged.forget_ranges, a scan through dirs_parent); through an entry of /B that
    points at /A/SUB's row it forgot /A/SUB's twice and kept /B's, exit 0."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/A/SUB", parents=True)
        volume.mkdir("/B")
        volume.write_bytes("/B/b1.txt", b"b1")
        volume.write_bytes("/A/SUB/s1.txt", b"s1")
    assert run_cli(library.root, "inzopt", "BVOL1", "--type", "*BACKUP").rc == 0
    assert run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES").rc == 0
    index = volume_dir(library.root, "BVOL1") / "index.sqlite"
    conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    index_pages.repoint(index, "dirs_parent", (_dir(conn, "/"),), _dir(conn, "/A/SUB"), rowid=_dir(conn, "/B"))
    assert run_cli(library.root, "inzopt", "PVOL1", "--check", "*NO").rc == 0  # another primary under the name
    with library.open("PVOL1") as volume:
        volume.mkdir("/C")
        volume.write_bytes("/C/c1.txt", b"c1")
    out = run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES")
    assert _damaged(out) and "Volume BVOL1" in out.err
    seen = conn.execute("SELECT path, backup_seen IS NULL FROM dirs NOT INDEXED WHERE live = 1 ORDER BY path").fetchall()
    assert seen == [("/", 0), ("/A", 0), ("/A/SUB", 0), ("/B", 0)]  # nothing of the run stays


def _versions(library) -> dict[int, int]:
    """/D/multi.txt written three times on PVOL1 (and /D/other.txt once): version -> row id."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        for data in (b"v1", b"version-two", b"third-version-3"):
            volume.write_bytes("/D/multi.txt", data)
        volume.write_bytes("/D/other.txt", b"other")
    conn = sqlite3.connect(f"file:{_index(library)}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT version, id FROM files WHERE name = 'multi.txt'").fetchall())
    finally:
        conn.close()


def test_a_current_version_whose_live_flag_a_changed_byte_cleared_is_refused(library, tmp_path):
    """hunt25n F4's flip: the row of the current version says it is no longer live while its
    index entries still lead to it. Reads, listings, export-iso and a new version must fail
    with OPV0201 (they read the flag from the row), never take the name for free or absent."""
    rows = _versions(library)
    index_pages.set_flag(_index(library), "files", rows[3], "live", 0)
    assert _damaged(run_cli(library.root, "cat", "/QOPT/PVOL1/D/multi.txt"))
    assert _damaged(run_cli(library.root, "ls", "-l", "/QOPT/PVOL1/D"))
    assert _damaged(run_cli(library.root, "export-iso", "PVOL1", str(tmp_path / "p.iso")))
    host = tmp_path / "new.txt"
    host.write_bytes(b"a fourth version")
    assert _damaged(run_cli(library.root, "cp", str(host), "/QOPT/PVOL1/D/multi.txt"))
    out = run_cli(library.root, "chkoptvol", "PVOL1")
    assert out.rc == 7 and b"files_live" in out.out


def test_an_older_version_whose_live_flag_a_changed_byte_set_is_never_served(library, tmp_path):
    """The other way: version 1's row says live, with no index entry. Every read, listing and
    copy goes through the index, so the current version is the one served and backed up;
    CHKOPTVOL names the index."""
    rows = _versions(library)
    index_pages.set_flag(_index(library), "files", rows[1], "live", 1)
    out = run_cli(library.root, "cat", "/QOPT/PVOL1/D/multi.txt")
    assert out.rc == 0 and out.out == b"third-version-3"
    out = run_cli(library.root, "ls", "/QOPT/PVOL1/D")
    assert out.rc == 0 and out.out.split() == [b"multi.txt", b"other.txt"]
    assert run_cli(library.root, "inzopt", "BVOL1", "--type", "*BACKUP").rc == 0
    assert run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL1 *BACKUP", "--cpysubdir", "*YES").rc == 0
    with library.open("PVOL1") as primary, library.open("BVOL1") as backup:
        assert [(e.path, e.sha256) for e in backup.scandir("/D")] == [
            ("/D/multi.txt", primary.stat("/D/multi.txt").sha256), ("/D/other.txt", primary.stat("/D/other.txt").sha256)]
        assert primary.stat("/D/multi.txt").size == 15
    out = run_cli(library.root, "chkoptvol", "PVOL1")
    assert out.rc == 7 and b"files_live" in out.out
