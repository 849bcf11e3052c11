"""Costs that must follow what an operation touches, not the size of the volume: counted
(SQLite's virtual-machine steps, the statements run), never timed (timings are bench/'s).

Each case was superlinear until a hunt measured it (a batch making directories between
its writes: ratio 15.6 for 4 × the pairs; 200 renames of one empty directory: 4.1 for 4 ×
the other directories on the volume; a walk of a directory of many subdirectories)."""

from __future__ import annotations

import pytest

from conftest import make_volume
from optvol.cl.parser import split_statements


def _steps(volume, action) -> int:
    """SQLite virtual-machine steps (in hundreds) that ``action`` takes on ``volume``'s index."""
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    volume.image.conn.set_progress_handler(tick, 100)
    try:
        action()
    finally:
        volume.image.conn.set_progress_handler(None, 0)
    return counted[0]


def _statements(volume, action) -> list[str]:
    seen: list[str] = []
    volume.image.conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        volume.image.conn.set_trace_callback(None)
    return seen


def test_a_write_looks_up_its_own_name_not_every_subdirectory(primary):
    """A write is refused where a directory has its name (OPV0108): it read every subdirectory
    of its directory, and a batch forgot them at each mkdir, so a batch making directories
    between its writes read them all again for each file."""
    primary.mkdir("/D")
    with primary.batch():
        for number in range(300):
            primary.mkdir(f"/D/S{number}")
    with primary.batch():
        seen = _statements(primary, lambda: [(primary.mkdir(f"/D/T{n}"), primary.write_bytes(f"/D/f{n}", b"x"))
                                             for n in range(20)])
    assert not [s for s in seen if "FROM dirs WHERE parent" in s], seen[:5]
    with pytest.raises(Exception) as refused:
        primary.write_bytes("/D/s7", b"a directory has this name")
    assert getattr(refused.value, "message_id", None) == "OPV0108"


def test_a_directory_rename_reads_its_own_subtree_only(library):
    """A rename or move of a directory chose its subtree by a prefix that no index serves:
    every directory of the volume was read, twice, for each rename."""
    steps = {}
    for vol, others in (("FEW", 10), ("MANY", 2000)):
        make_volume(library, vol)
        with library.open(vol) as volume:
            volume.mkdir("/A/B", parents=True)
            volume.write_bytes("/A/B/f", b"f")
            with volume.batch():
                for number in range(others):
                    volume.mkdir(f"/Z{number:05}")
            steps[vol] = _steps(volume, lambda volume=volume: [
                volume.rename(*(("/A", "/A2") if n % 2 == 0 else ("/A2", "/A"))) for n in range(10)])
            assert volume.read_bytes("/A/B/f") == b"f" and volume.is_dir("/A/B")
    assert steps["MANY"] < 1.5 * steps["FEW"], steps


def test_walk_goes_top_down_in_name_order(primary):
    for path in ("/b/y", "/b/x/deep", "/a", "/c"):
        primary.mkdir(path, parents=True)
    primary.write_bytes("/b/x/file", b"")
    assert [top for top, _, _ in primary.walk()] == ["/", "/a", "/b", "/b/x", "/b/x/deep", "/b/y", "/c"]
    assert next(files for top, _, files in primary.walk("/b/x") if top == "/b/x") == ["file"]


def test_a_statement_begins_at_its_first_line_that_is_not_a_continuation_alone():
    """The splitter asked, for each character, whether the statement had begun by joining
    all of it so far (quadratic in a statement's length); now it counts its characters."""
    (statement,) = split_statements("+\n  DSPOPT VOL(PVOL1) +\n  DATA(*VOLATR)\n")
    assert statement.line == 2 and statement.text.split() == ["DSPOPT", "VOL(PVOL1)", "DATA(*VOLATR)"]
    (long,) = split_statements("DSPOPT VOL(" + "A" * 20_000 + ")")
    assert len(long.text) == 20_012
