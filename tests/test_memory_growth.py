"""Commands hold a bounded part of a big directory, never all of it (DESIGN §6: any command
under 150 MiB on a volume of 1,000,000 files, whichever way its files are spread).

Memory is measured with tracemalloc (Python's allocations, the same on every run) on one
directory of N files and of 4 × N; what holds the whole directory grows about 4 times.
CPYOPT's reading side and import-iso's walk have their own tests (test_cpyopt.py,
test_interchange.py). export-iso must keep something of every directory of a volume (it
places them all before it writes one); its test bounds what.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from conftest import make_volume
from optvol import reading, transfer
from optvol.interchange import export_iso

SMALL, GROWTH = 1000, 4
NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


def peak(work: Callable[[], int]) -> tuple[int, int]:
    """(peak bytes allocated while ``work`` runs, what it returned)."""
    tracemalloc.start()
    try:
        result = work()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def fill(library, file_name: Callable[[int], str]) -> None:
    """Volume PVOL1 with /SMALL and /LARGE, of SMALL and SMALL × GROWTH files named ``file_name(i)``."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume, volume.batch():
        for name, count in (("SMALL", SMALL), ("LARGE", SMALL * GROWTH)):
            volume.mkdir(f"/{name}")
            for i in range(count):
                volume.write_bytes(f"/{name}/{file_name(i)}", b"%d" % i)


@pytest.fixture
def directories(library):
    fill(library, lambda i: f"a file with a name of some length {i:06}.txt")
    return library


def flat(measure: Callable[[str], tuple[int, int]]) -> None:
    (small, counted_small), (large, counted_large) = measure("SMALL"), measure("LARGE")
    assert (counted_small, counted_large) == (SMALL, SMALL * GROWTH)
    assert large < 1.5 * small, (small, large)


def test_ls_streams_the_directory(directories):
    def measure(name: str) -> tuple[int, int]:
        return peak(lambda: sum(1 for _ in reading.list_directory(directories, f"/QOPT/PVOL1/{name}")))

    flat(measure)


@pytest.mark.parametrize("onto", ["host", "volume"])
def test_cp_r_streams_the_tree_and_its_report(directories, tmp_path, onto):
    """cp -r of one big directory, out to the host or onto another volume: its files are read
    a page at a time and reported as they become durable, never all held."""
    if onto == "volume":
        make_volume(directories, "PVOL2")

    def measure(name: str) -> tuple[int, int]:
        target = str(tmp_path / name) if onto == "host" else f"/QOPT/PVOL2/{name}"
        return peak(lambda: sum(1 for _ in transfer.copy(directories, [f"/QOPT/PVOL1/{name}"], target,
                                                         recursive=True)))

    flat(measure)


def test_rm_r_holds_a_page_of_names_not_the_directory(directories):
    """rm -r (RMVDIR SUBTREE(*ALL), and mv's and rm's trial removal) listed every name of the
    tree first: 270 MiB for 1,000,000 files in one directory (scale31 F1)."""
    def measure(name: str) -> tuple[int, int]:
        with directories.open("PVOL1") as volume:
            count = sum(1 for _ in volume.iter_files(f"/{name}"))
        size, removed = peak(lambda: transfer.remove(directories, [f"/QOPT/PVOL1/{name}"], recursive=True))
        assert removed == [f"/QOPT/PVOL1/{name}"]
        return size, count

    flat(measure)
    with directories.open("PVOL1") as volume:
        assert volume.listdir("/") == []  # both trees gone, every file


@pytest.mark.parametrize("onto", ["host", "volume"])
def test_mv_to_another_volume_or_the_host_keeps_the_paths_it_moved_on_disk(library, tmp_path, monkeypatch, onto):
    """mv reports each path once the source is gone, after the whole copy: it kept them all in a
    list (scale31: about 70 MB at 1,000,000 files). They go to a temporary file past a limit,
    made small here so that both sizes spill; every path comes back, in order. (Names of 200
    characters: the list of 4,000 would be about 1 MB, as much as the copy's own peak; the
    bound is tighter than ``flat``'s: with the list, 1.42 × onto the host, 1.68 × onto a volume.)"""
    from optvol import path_spool

    monkeypatch.setattr(path_spool, "IN_MEMORY", 4096)
    fill(library, lambda i: f"{'n' * 190}{i:06}.txt")
    make_volume(library, "PVOL2")

    def in_order(moved, target: str) -> int:
        count, last = 0, ""
        for path in moved:  # each file once, in the copy's order (names sorted), under the target
            assert path.startswith(f"{target}/") and path > last, (path, last)
            count, last = count + 1, path
        return count

    def measure(name: str) -> tuple[int, int]:
        target = str(tmp_path / name) if onto == "host" else f"/QOPT/PVOL2/{name}"
        return peak(lambda: in_order(transfer.move(library, [f"/QOPT/PVOL1/{name}"], target), target))

    (small, moved_small), (large, moved_large) = measure("SMALL"), measure("LARGE")
    assert (moved_small, moved_large) == (SMALL, SMALL * GROWTH)
    assert large < 1.25 * small, (small, large)
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == []


@pytest.mark.parametrize("udf", [False, True])
def test_export_iso_keeps_numbers_and_path_table_names_of_each_directory(library, tmp_path, udf):
    """export-iso gives every directory its place before it writes any, and the path tables
    name them all, so it holds something of each: numbers and its two path table names, not
    its row. Holding each directory's row and names as objects cost about 3 KiB of Python
    memory a directory of a 200-character name in this test, and peaked at 239 MB of RSS on
    a volume of 65,534 of them (DESIGN §6: under 150 MiB); 600 directories more must cost
    under 1 KiB each (about 270 bytes now)."""
    small, large = 200, 800

    def filled(vol: str, count: int) -> str:
        make_volume(library, vol)
        with library.open(vol) as volume, volume.batch():  # 50 to a group: no directory of the volume is large
            for i in range(count):
                if i % 50 == 0:
                    volume.mkdir(f"/group {i // 50:02}")
                volume.mkdir(f"/group {i // 50:02}/d{i:04} " + "a directory name of two hundred characters " * 5)
        return vol

    def measure(vol: str) -> tuple[int, int]:
        return peak(lambda: export_iso(library, vol=vol, file=tmp_path / f"{vol}.iso", now=NOW, udf=udf).directories)

    volumes = filled("SMALL", small), filled("LARGE", large)
    measure(volumes[0])  # first-use allocations (caches, compiled patterns) out of the way
    (small_peak, counted_small), (large_peak, counted_large) = measure(volumes[0]), measure(volumes[1])
    assert (counted_small, counted_large) == (small + small // 50, large + large // 50)
    assert large_peak - small_peak < 1024 * (large - small), (small_peak, large_peak)


def test_mv_deletes_a_tree_of_many_directories_holding_no_more_than_rm_r(library):
    """mv's delete (move_source.remove_moved) held every directory's whole row: about 560 bytes
    a directory against rm -r's 115, some 530 MiB at 1,000,000 directories of one file (rev32d F2)."""
    from optvol import move_source

    for vol in ("PVOL1", "PVOL2"):
        make_volume(library, vol)
        with library.open(vol) as volume, volume.batch():
            for i in range(2000):
                volume.mkdir(f"/T/a directory with a name of some length, number {i:06}", parents=True)
                volume.write_bytes(f"/T/a directory with a name of some length, number {i:06}/f", b"f")
    with library.open("PVOL2") as volume:  # (first: what the first delete of a process allocates once counts here)
        removed, _ = peak(lambda: transfer._remove(volume, "/T", recursive=True))
    with library.open("PVOL1") as volume:
        mark = move_source.change_mark(volume)
        moved, left = peak(lambda: move_source.remove_moved(volume, "/T", mark, copied_dir=lambda path: True))
        assert left is None and volume.listdir("/") == []
    assert moved < 1.25 * removed, (moved, removed)
