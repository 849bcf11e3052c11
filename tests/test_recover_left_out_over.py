"""A version DUPOPT ALWMEDERR(*FILE) left out of a duplicate, written over an older sound
version of its name, and what a user did to it afterwards (rev27h F2): the replay cannot
read its record, so the older version stayed live there and took the user's later rename,
attribute change or deletion; CHKOPTVOL called the fresh duplicate damaged and recover
moved, re-flagged or deleted the older version. The replay now retires the older version
where the left-out one's unread record stands, so the duplicate's index and the one
recover rebuilds are the same."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from conftest import make_volume
from integrity_helpers import damage_header
from optvol.checking import chkoptvol
from optvol.duplicate import dupopt
from optvol.model import MediaFormat, MediaType
from optvol.recovery import recover

# What a version is in an index, but its row ID (a replay numbers rows as it meets them).
_VERSIONS = ("SELECT d.path, f.name, f.version, f.live, f.sector, f.flags, f.created, f.modified, f.attr_changed"
             " FROM files f JOIN dirs d ON d.id = f.dir ORDER BY d.path_key, f.name_key, f.version")


def _versions(library, vol: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{library.root / f'{vol}.optvol' / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(_VERSIONS).fetchall()
    finally:
        conn.close()


def _live_sector(volume, path: str) -> int:
    return volume.image.conn.execute("SELECT sector FROM files WHERE name = ? AND live", (path.rsplit("/", 1)[1],)
                                     ).fetchone()[0]


def _renamed(v, lost):
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.rename("/a", "/b")
    v.set_attributes("/b", hidden=True)


def _flagged(v, lost):
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.set_attributes("/a", read_only=True)


def _deleted(v, lost):
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.remove("/a")


def _renamed_then_written_over(v, lost):
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.rename("/a", "/b")
    v.write_bytes("/b", b"C" * 9000)


def _written_over_then_another_renamed_onto_it(v, lost):
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.write_bytes("/a", b"C" * 9000)
    v.rename("/a", "/c")
    v.write_bytes("/x", b"X" * 9000)
    v.rename("/x", "/a")


def _directory_renamed(v, lost):
    v.mkdir("/D")
    v.write_bytes("/D/a", b"A" * 9000)
    v.write_bytes("/D/a", b"B" * 9000)
    lost.append(_live_sector(v, "/D/a"))
    v.rename("/D", "/E")
    v.rename("/e/A", "/E/b")
    v.set_attributes("/E/b", hidden=True)


def _two_lost_side_by_side(v, lost):
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.write_bytes("/a", b"C" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.rename("/a", "/b")


def _flagged_between_two_lost(v, lost):
    # v2's life is ended by v3, itself left out: its unread record is the write at v2's name (rev28e F1)
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.set_attributes("/a", hidden=True)
    v.write_bytes("/a", b"C" * 9000)
    lost.append(_live_sector(v, "/a"))


def _renamed_between_two_lost(v, lost):
    v.write_bytes("/a", b"A" * 9000)
    v.write_bytes("/a", b"B" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.rename("/a", "/b")
    v.write_bytes("/b", b"C" * 9000)
    lost.append(_live_sector(v, "/b"))


def _deleted_then_another_renamed_onto_it_and_written_over(v, lost):
    # Through the sound records only /P fits; with the second left-out version's write at /P, /X too
    v.write_bytes("/X", b"X" * 9000)
    v.write_bytes("/P", b"A" * 9000)
    v.write_bytes("/P", b"B" * 9000)
    lost.append(_live_sector(v, "/P"))
    v.set_attributes("/P", hidden=True)
    v.remove("/P")
    v.rename("/X", "/P")
    v.write_bytes("/P", b"C" * 9000)
    lost.append(_live_sector(v, "/P"))


def _deleted_and_its_directory_removed(v, lost):
    # Its left-out DELETE names /D/a, and /D is gone: the version is found by its record (hunt28i F1)
    v.mkdir("/D")
    v.write_bytes("/D/a", b"A" * 9000)
    lost.append(_live_sector(v, "/D/a"))
    v.remove("/D/a")
    v.rmdir("/D")


def _flagged_deleted_its_directory_removed_and_another_renamed_onto_it(v, lost):
    # The rename of /E onto /D is not this version's move: it stays in the /D removed before (hunt28i F2)
    v.mkdir("/D")
    v.write_bytes("/D/c", b"1" * 9000)
    v.write_bytes("/D/c", b"2" * 9000)
    lost.append(_live_sector(v, "/D/c"))
    v.set_attributes("/D/c", hidden=True)
    v.remove("/D/c")
    v.rmdir("/D")
    v.mkdir("/E")
    v.rename("/E", "/D")


def _written_over_its_directory_removed_and_another_renamed_onto_it(v, lost):
    v.mkdir("/D")
    v.write_bytes("/D/c", b"1" * 9000)
    v.write_bytes("/D/c", b"2" * 9000)
    lost.append(_live_sector(v, "/D/c"))
    v.write_bytes("/D/c", b"3" * 9000)
    v.remove("/D/c")
    v.rmdir("/D")
    v.mkdir("/E")
    v.rename("/E", "/D")


def _moved_into_a_directory_renamed_onto_a_removed_ones_path(v, lost):
    # The converse: the version is in /E, renamed onto the path of the /D removed before
    v.mkdir("/D")
    v.mkdir("/E")
    v.write_bytes("/D/c", b"0" * 9000)
    v.remove("/D/c")
    v.rmdir("/D")
    v.write_bytes("/E/c", b"1" * 9000)
    v.write_bytes("/E/c", b"2" * 9000)
    lost.append(_live_sector(v, "/E/c"))
    v.rename("/E", "/D")
    v.set_attributes("/D/c", hidden=True)


def _renamed_onto_a_name_written_after_it(v, lost):
    # /b is written (after it) and moved away before it is renamed onto /b: that write is not
    # what ended its life, the DELETE is; and of the two paths that fit, only at /a is its number 4
    for data in (b"1", b"2", b"3"):
        v.write_bytes("/a", data * 9000)
    v.write_bytes("/a", b"4" * 9000)
    lost.append(_live_sector(v, "/a"))
    v.write_bytes("/b", b"x" * 9000)
    v.rename("/b", "/c")
    v.rename("/a", "/b")
    v.remove("/b")


def _renamed_onto_a_deleted_name_and_its_directory_renamed(v, lost):
    # Both /D/c and /D/A fit the records; a write at /D/A would have been version 1, not 4
    v.mkdir("/D")
    for data in (b"1", b"2", b"3"):
        v.write_bytes("/D/c", data * 9000)
    v.write_bytes("/D/c", b"4" * 9000)
    lost.append(_live_sector(v, "/D/c"))
    v.write_bytes("/D/A", b"x" * 9000)
    v.remove("/D/A")
    v.rename("/D/c", "/D/A")
    v.rename("/D", "/d")
    v.write_bytes("/d/A", b"5" * 9000)


def _two_lost_the_later_renamed_onto_a_deleted_name(v, lost):
    # /b v4 and v5 lost; v5 renamed onto /a (deleted), written over: /a and /b fit v5; at /b a
    # write got 4 (v4 unread), at /a 2, and one lost version lies before it: /b
    v.write_bytes("/b", b"1" * 9000)
    v.write_bytes("/b", b"2" * 9000)
    v.write_bytes("/a", b"x" * 9000)
    v.write_bytes("/b", b"3" * 9000)
    v.write_bytes("/b", b"4" * 9000)
    lost.append(_live_sector(v, "/b"))
    v.write_bytes("/b", b"5" * 9000)
    lost.append(_live_sector(v, "/b"))
    v.remove("/a")
    v.rename("/b", "/a")
    v.write_bytes("/a", b"6" * 9000)


def _three_lost_the_first_renamed(v, lost):
    # /A v4 (renamed to /c), /c v5 and v6 lost: v4's life was ended by v5's unread write, found
    # through the later lost versions' writes (taken in sector order)
    for data in (b"1", b"2", b"3"):
        v.write_bytes("/A", data * 9000)
    v.write_bytes("/A", b"4" * 9000)
    lost.append(_live_sector(v, "/A"))
    v.rename("/A", "/c")
    v.write_bytes("/c", b"5" * 9000)
    lost.append(_live_sector(v, "/c"))
    v.write_bytes("/c", b"6" * 9000)
    lost.append(_live_sector(v, "/c"))


def _its_name_taken_by_another_file_renamed_onto_it_and_written_over(v, lost):
    # /A v2 lost (ended by /a v3). /D/c fits too (renamed onto /A, written over), but that write
    # is version 2: over a v2 it would have been 3
    v.mkdir("/D")
    v.write_bytes("/D/c", b"c" * 9000)
    v.write_bytes("/A", b"1" * 9000)
    v.write_bytes("/A", b"2" * 9000)
    lost.append(_live_sector(v, "/A"))
    v.write_bytes("/a", b"3" * 9000)
    v.mkdir("/E")
    v.rename("/D/c", "/E/A")
    v.remove("/a")
    v.rename("/E/A", "/A")
    v.write_bytes("/A", b"4" * 9000)


CASES = [_renamed, _flagged, _deleted, _renamed_then_written_over, _written_over_then_another_renamed_onto_it,
         _directory_renamed, _two_lost_side_by_side, _flagged_between_two_lost, _renamed_between_two_lost,
         _deleted_then_another_renamed_onto_it_and_written_over, _deleted_and_its_directory_removed,
         _flagged_deleted_its_directory_removed_and_another_renamed_onto_it,
         _written_over_its_directory_removed_and_another_renamed_onto_it,
         _moved_into_a_directory_renamed_onto_a_removed_ones_path, _renamed_onto_a_name_written_after_it,
         _renamed_onto_a_deleted_name_and_its_directory_renamed, _two_lost_the_later_renamed_onto_a_deleted_name,
         _three_lost_the_first_renamed, _its_name_taken_by_another_file_renamed_onto_it_and_written_over]


@pytest.mark.parametrize("medfmt", [None, MediaFormat.UDF], ids=["hpofs", "udf"])
@pytest.mark.parametrize("build", CASES, ids=[case.__name__.strip("_") for case in CASES])
def test_a_fresh_duplicate_reads_sound_and_recover_rebuilds_its_index(library, build, medfmt):
    make_volume(library, "S", medtype=MediaType.ERASE, medfmt=medfmt, capacity=4 << 20)
    lost: list[int] = []
    with library.open("S") as volume:
        volume.write_bytes("/keep", b"k" * 100)
        build(volume, lost)
        sector_size = volume.image.sector_size
    for sector in lost:
        damage_header(library.root, "S", sector, sector_size)
    result = dupopt(library, fromvol="S", tovol="D", now=datetime(2026, 6, 1, tzinfo=timezone.utc),
                    allow_media_errors=True)
    assert len(result.left_out) == len(lost)
    duplicated = _versions(library, "D")
    with library.open("D") as volume:
        used = volume.info().used
    assert chkoptvol(library, vol="D")[0].damaged == []
    assert recover(library, vol="D").damaged == []
    assert _versions(library, "D") == duplicated
    with library.open("D") as volume:
        assert volume.info().used == used
        assert volume.read_bytes("/keep") == b"k" * 100


def test_an_older_version_not_written_over_keeps_what_the_user_did(library):
    """The retiring is only of the version the left-out one replaced: a left-out first
    version (a new file) retires nothing, and a sound file renamed onto a name whose only
    version was left out keeps its rename and flags."""
    make_volume(library, "S", medtype=MediaType.ERASE, capacity=4 << 20)
    with library.open("S") as volume:
        volume.write_bytes("/a", b"A" * 9000)
        lost = [_live_sector(volume, "/a")]
        volume.remove("/a")
        volume.write_bytes("/c", b"C" * 9000)
        volume.set_attributes("/c", hidden=True)
        volume.rename("/c", "/a")
        sector_size = volume.image.sector_size
    damage_header(library.root, "S", lost[0], sector_size)
    dupopt(library, fromvol="S", tovol="D", now=datetime(2026, 6, 1, tzinfo=timezone.utc), allow_media_errors=True)
    duplicated = _versions(library, "D")
    assert [(row[1], row[3], row[5]) for row in duplicated] == [("a", 1, 2)]
    assert chkoptvol(library, vol="D")[0].damaged == []
    assert recover(library, vol="D").damaged == []
    assert _versions(library, "D") == duplicated


def test_a_name_written_many_times_gives_one_candidate_per_path():
    """A left-out version of a name written N times after it is followed back through one
    walk per path and state, not one per write (rev28e F2: CHKOPTVOL took 26 s instead of
    0.6 s on a volume of 2,000 versions of one name with 40 left out)."""
    from optvol.image.records import Kind
    from optvol.recovery_left_out import _candidates, _Events, _LeftOut

    between = [(10 + i, Kind.FILE, (("log",),)) for i in range(300)]
    one = _LeftOut(sector=1000, at=5, path=("log",), live=False)
    assert _candidates(one, [_Events(between)]) == [("log",)]


def test_of_a_name_written_many_times_only_the_writes_after_a_rename_onto_it_are_walked_from():
    """Each write at the name may have ended a left-out version's life (hunt28i F3), but a walk
    back from one right after another write meets that one: only the first, and those right
    after a rename onto the name, are walked from (L lost versions by E writes, else)."""
    from optvol.image.records import Kind
    from optvol.recovery_left_out import _Events, _key

    between = [(10 + i, Kind.FILE, (("log",),)) for i in range(300)]
    between.insert(100, (109.5, Kind.RENAME, (("old",), ("log",))))
    assert [found[0] for found in _Events(between).endings(_key(("log",)), 5, 1000)] == [10, 110]


@pytest.mark.parametrize("medfmt", [None, MediaFormat.UDF], ids=["hpofs", "udf"])
def test_a_version_left_out_for_its_data_in_a_removed_directory_stays_out(library, medfmt):
    """Its record reads, so the replay meets the version; its left-out DELETE names a directory
    removed since: the version leaves the index all the same, as it left the duplicate's
    (recover kept it, non-live, and reported the DELETE not applied; hunt28i F1)."""
    make_volume(library, "S", medtype=MediaType.ERASE, medfmt=medfmt, capacity=4 << 20)
    with library.open("S") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/a", b"A" * 100)
        volume.write_bytes("/keep", b"k")
        sector, header_sectors = volume.image.conn.execute(
            "SELECT sector, header_sectors FROM files WHERE name = 'a'").fetchone()
        volume.remove("/D/a")
        volume.rmdir("/D")
        sector_size = volume.image.sector_size
    with open(library.root / "S.optvol" / "data.opv", "r+b") as data:
        data.seek((sector + header_sectors) * sector_size + 7)
        data.write(b"Z")
    result = dupopt(library, fromvol="S", tovol="D", now=datetime(2026, 6, 1, tzinfo=timezone.utc),
                    allow_media_errors=True)
    assert len(result.left_out) == 1
    duplicated = _versions(library, "D")
    assert chkoptvol(library, vol="D")[0].damaged == []
    assert recover(library, vol="D").damaged == []
    assert _versions(library, "D") == duplicated


@pytest.mark.parametrize("medfmt", [None, MediaFormat.UDF], ids=["hpofs", "udf"])
def test_a_duplicate_of_a_duplicate_whose_left_out_name_was_used_again(library, medfmt):
    """/D/A left out live of D; on D /c is renamed to /A and then to /D/a, removed; then /c v3
    (now /D/a), /D/c v2 and /E/c are damaged and left out of E. /c and /D/A both fit /c v3's
    record; only at /c is a write v3, the lost versions before it being of other paths
    (hunt28i F4: the fresh E was damaged and recover moved /c v2 to /D/a)."""
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    make_volume(library, "S", medtype=MediaType.ERASE, medfmt=medfmt, capacity=4 << 20)
    with library.open("S") as volume:
        volume.mkdir("/D")
        volume.mkdir("/E")
        volume.write_bytes("/c", b"1" * 100)
        volume.write_bytes("/E/c", b"")
        volume.write_bytes("/c", b"2")
        volume.write_bytes("/D/c", b"")
        volume.write_bytes("/D/c", b"")
        volume.write_bytes("/c", b"3" * 9000)
        volume.write_bytes("/D/A", b"A" * 2048)
        sector, header_sectors = volume.image.conn.execute("SELECT sector, header_sectors FROM files WHERE name = 'A'"
                                                           ).fetchone()
        sector_size = volume.image.sector_size
    with open(library.root / "S.optvol" / "data.opv", "r+b") as data:
        data.seek((sector + header_sectors) * sector_size + 7)
        data.write(b"Z")
    assert len(dupopt(library, fromvol="S", tovol="D", now=now, allow_media_errors=True).left_out) == 1
    with library.open("D") as volume:
        volume.rename("/c", "/A")
        volume.rename("/A", "/D/a")
        volume.remove("/D/a")
        volume.remove("/D/c")
        lost = [row[0] for row in volume.image.conn.execute(
            "SELECT f.sector FROM files f JOIN dirs d ON d.id = f.dir WHERE (d.path = '/D' AND f.name IN ('c', 'a')"
            " AND f.version IN (2, 3)) OR (d.path = '/E' AND f.name = 'c')")]
    assert len(lost) == 3
    for one in lost:
        damage_header(library.root, "D", one, sector_size)
    assert len(dupopt(library, fromvol="D", tovol="E", now=now, allow_media_errors=True).left_out) == 3
    duplicated = _versions(library, "E")
    assert chkoptvol(library, vol="E")[0].damaged == []
    assert recover(library, vol="E").damaged == []
    assert _versions(library, "E") == duplicated
