"""Duplicates DUPOPT ALWMEDERR(*FILE) made by an older optvol, read by today's.

A duplicate made before commit 6819782 (2026-12-06) wrote the
DELETE record of each live version it left out under its SOURCE's ID, right after the LABEL
record that named the duplicate, and without ``left_out`` (hunt28f F1). Today's recover and
CHKOPTVOL must read such an archive as that optvol left it: CHKOPTVOL called the fresh
duplicate damaged ("a record of another volume", exit 7) and recover brought the damaged
versions back as live files.

One made before 4125b2b wrote ``left_out`` without ``left_out_at`` (hunt28f F2): a file
deleted and written again has two versions of that number, and recover dropped the sound
one and kept the damaged live one it was told to leave out."""
from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from conftest import make_volume
from integrity_helpers import flip, volume_dir
from optvol.checking import chkoptvol
from optvol.duplicate import dupopt
from optvol.image import records, replay
from optvol.recovery import recover


def _rewrite_deletes(library, vol: str, chosen, body_of) -> list[int]:
    """Rewrite the DELETE records of ``vol`` that ``chosen(body)`` picks with the body
    ``body_of(body)`` (same sectors); their sectors."""
    fd = os.open(volume_dir(library.root, vol) / "data.opv", os.O_RDWR)
    try:
        found = [f for f in replay.scan(fd, 2048) if f.header and f.header.kind == records.Kind.DELETE
                 and chosen(f.header.body)]
        for f in found:
            raw = records.write_header(kind=records.Kind.DELETE, sequence=f.header.sequence, body=body_of(f.header.body),
                                       payload_size=0, payload_sha256=hashlib.sha256(b"").digest(), sector_size=2048)
            assert len(raw) == f.sectors * 2048
            os.pwrite(fd, raw, f.sector * 2048)
    finally:
        os.close(fd)
    return [f.sector for f in found]


def _as_an_old_dupopt_wrote_them(library, vol: str, source: str) -> list[int]:
    """Rewrite each left-out DELETE record of ``vol`` in the form of an optvol before 6819782."""
    def body_of(body: dict) -> dict:
        assert body.get("left_out_live")  # only a live version got a record then
        return {"volume": source, "path": body["path"], "time": body["time"]}
    return _rewrite_deletes(library, vol, lambda body: True, body_of)


def test_a_duplicate_an_older_dupopt_left_a_live_file_out_of_reads_as_it_was_made(library, clock):
    make_volume(library, "P")
    with library.open("P") as volume:
        volume.write_bytes("/keep", b"a sound file")
        volume.write_bytes("/gone", b"a file whose data is damaged")
    conn = sqlite3.connect(f"file:{volume_dir(library.root, 'P') / 'index.sqlite'}?mode=ro", uri=True)
    first, head = conn.execute("SELECT sector, header_sectors FROM files WHERE name = 'gone'").fetchone()
    conn.close()
    flip(volume_dir(library.root, "P") / "data.opv", (first + head) * 2048 + 3)
    outcome = dupopt(library, fromvol="P", tovol="D", now=clock(), allow_media_errors=True)
    assert [d.path for d in outcome.left_out] == ["/gone"]
    assert _as_an_old_dupopt_wrote_them(library, "D", "P")
    [result] = chkoptvol(library, vol="D")
    assert result.damaged == []
    report = recover(library, vol="D")
    assert report.damaged == []
    with library.open("D") as volume:
        assert volume.listdir("/") == ["keep"]
        assert volume.read_bytes("/keep") == b"a sound file"
    [result] = chkoptvol(library, vol="D")
    assert result.damaged == []


def _without_left_out_at(library, vol: str) -> int:
    """Rewrite each left-out DELETE record of ``vol`` as an optvol before 4125b2b wrote it."""
    return len(_rewrite_deletes(library, vol, lambda body: "left_out" in body,
                                lambda body: {k: body[k] for k in ("volume", "path", "time", "left_out")}))


@pytest.mark.parametrize("damaged", [0, 1], ids=["deleted-version", "live-version"])
def test_a_left_out_version_whose_number_a_later_file_reuses_is_the_damaged_one(library, clock, damaged):
    make_volume(library, "P")
    with library.open("P") as volume:
        volume.write_bytes("/g", b"first life of g")
        volume.remove("/g")
        volume.write_bytes("/g", b"second life of g, the live one")
    conn = sqlite3.connect(f"file:{volume_dir(library.root, 'P') / 'index.sqlite'}?mode=ro", uri=True)
    places = conn.execute("SELECT sector, header_sectors, version FROM files WHERE name = 'g' ORDER BY id").fetchall()
    conn.close()
    assert [p[2] for p in places] == [1, 1]
    first, head, _ = places[damaged]
    flip(volume_dir(library.root, "P") / "data.opv", (first + head) * 2048 + 3)
    outcome = dupopt(library, fromvol="P", tovol="D", now=clock(), allow_media_errors=True)
    assert len(outcome.left_out) == 1
    assert _without_left_out_at(library, "D") == 1
    [result] = chkoptvol(library, vol="D")
    assert result.damaged == []
    assert recover(library, vol="D").damaged == []
    with library.open("D") as volume:
        assert volume.exists("/g") == (damaged == 0)
        if damaged == 0:
            assert volume.read_bytes("/g") == b"second life of g, the live one"
    [result] = chkoptvol(library, vol="D")
    assert result.damaged == []


def test_a_backup_duplicate_an_older_dupopt_made_forgets_the_ranges_that_claimed_a_left_out_file(
        library, clock, monkeypatch):
    """A *BACKUP duplicate DUPOPT ALWMEDERR(*FILE) made before 2026-12-06 (d74cbd7) kept the
    ranges that claimed the file it left out, with no control record to forget them (hunt28f
    F3): *CHANGED then never copied the file again, CHKOPTVOL said sound and recover kept
    them. The replay of its left-out DELETE forgets the directory's range and the volume's,
    as today's DUPOPT's control records do: CHKOPTVOL names the ranges, recover forgets
    them, and the next *CHANGED copies the file."""
    from optvol.copying import CopyRequest, cpyopt
    from optvol.model import VolumeType
    from optvol.privileged import PrivilegedWriter

    make_volume(library, "P")
    make_volume(library, "B", type=VolumeType.BACKUP)
    with library.open("P") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/g.txt", b"the file whose copy is damaged")
        volume.write_bytes("/D/k.txt", b"a sound file")
    request = CopyRequest(fromvol="P", frompath="/", tovol="B", totype=VolumeType.BACKUP, cpysubdir=True,
                          sltfile="*ALL")
    assert cpyopt(library, request, now=clock()).failures == []
    conn = sqlite3.connect(f"file:{volume_dir(library.root, 'B') / 'index.sqlite'}?mode=ro", uri=True)
    first, head = conn.execute("SELECT sector, header_sectors FROM files WHERE name = 'g.txt'").fetchone()
    conn.close()
    flip(volume_dir(library.root, "B") / "data.opv", (first + head) * 2048 + 3)
    monkeypatch.setattr(PrivilegedWriter, "forget_ranges", lambda self, **kwargs: None)  # as that DUPOPT wrote
    assert [d.path for d in dupopt(library, fromvol="B", tovol="BDUP", now=clock(), allow_media_errors=True).left_out] \
        == ["/D/g.txt"]
    monkeypatch.undo()
    [result] = chkoptvol(library, vol="BDUP")
    assert result.damaged and all("seen" in damage.path or "seen" in damage.reason for damage in result.damaged)
    assert recover(library, vol="BDUP").damaged == []
    assert chkoptvol(library, vol="BDUP")[0].damaged == []
    changed = CopyRequest(fromvol="P", frompath="/", tovol="BDUP", totype=VolumeType.BACKUP, cpysubdir=True)
    assert cpyopt(library, changed, now=clock()).copied == 1
    with library.open("P") as primary, library.open("BDUP") as backup:
        assert sorted(info.path for info in backup.iter_files("/", recursive=True)) == ["/D/g.txt", "/D/k.txt"]
        assert primary.stat("/D/g.txt").size == backup.stat("/D/g.txt").size


def test_a_udf_duplicate_an_older_dupopt_made_keeps_the_space_that_dupopt_charged(library, clock):
    """That DUPOPT freed none of the live version it left out on UDF (today's frees it, as a
    deletion does): the replay of its old DELETE record frees none either, so CHKOPTVOL of
    the fresh duplicate said `meta.used_sectors` 7 in the index, 5 in the records, and
    recover changed it (rev28h F3)."""
    from optvol.model import MediaFormat, MediaType

    make_volume(library, "P", medtype=MediaType.ERASE, medfmt=MediaFormat.UDF)
    with library.open("P") as volume:
        volume.write_bytes("/keep", b"a sound file")
        volume.write_bytes("/gone", b"a file whose data is damaged" * 100)
    index = volume_dir(library.root, "P") / "index.sqlite"
    conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    first, head, size = conn.execute("SELECT sector, header_sectors, size FROM files WHERE name = 'gone'").fetchone()
    sector_size = conn.execute("SELECT sector_size FROM label").fetchone()[0]
    conn.close()
    flip(volume_dir(library.root, "P") / "data.opv", (first + head) * sector_size + 3)
    dupopt(library, fromvol="P", tovol="D", now=clock(), allow_media_errors=True)
    assert _as_an_old_dupopt_wrote_them(library, "D", "P")
    conn = sqlite3.connect(volume_dir(library.root, "D") / "index.sqlite")
    with conn:  # as that DUPOPT left the index: the version's sectors still charged
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'used_sectors'", (head + -(-size // sector_size),))
    conn.close()
    with library.open("D") as volume:
        used = volume.info().used
    assert chkoptvol(library, vol="D")[0].damaged == []
    assert recover(library, vol="D").damaged == []
    with library.open("D") as volume:
        assert volume.info().used == used and volume.listdir("/") == ["keep"]
