"""A duplicate DUPOPT ALWMEDERR(*FILE) made before commit 6819782 (2026-12-06) wrote the
DELETE record of each live version it left out under its SOURCE's ID, right after the LABEL
record that named the duplicate, and without ``left_out`` (hunt28f F1). Today's recover and
CHKOPTVOL must read such an archive as that optvol left it: CHKOPTVOL called the fresh
duplicate damaged ("a record of another volume", exit 7) and recover brought the damaged
versions back as live files."""
from __future__ import annotations

import hashlib
import os
import sqlite3

from conftest import make_volume
from integrity_helpers import flip, volume_dir
from optvol.checking import chkoptvol
from optvol.duplicate import dupopt
from optvol.image import records, replay
from optvol.recovery import recover


def _as_an_old_dupopt_wrote_them(library, vol: str, source: str) -> list[int]:
    """Rewrite each left-out DELETE record of ``vol`` in the form of an optvol before 6819782."""
    path = volume_dir(library.root, vol) / "data.opv"
    fd = os.open(path, os.O_RDWR)
    try:
        found = [f for f in replay.scan(fd, 2048) if f.header and f.header.kind == records.Kind.DELETE]
        for f in found:
            body = {"volume": source, "path": f.header.body["path"], "time": f.header.body["time"]}
            assert f.header.body.get("left_out_live")  # only a live version got a record then
            raw = records.write_header(kind=records.Kind.DELETE, sequence=f.header.sequence, body=body, payload_size=0,
                                       payload_sha256=hashlib.sha256(b"").digest(), sector_size=2048)
            assert len(raw) == f.sectors * 2048
            os.pwrite(fd, raw, f.sector * 2048)
    finally:
        os.close(fd)
    return [f.sector for f in found]


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
