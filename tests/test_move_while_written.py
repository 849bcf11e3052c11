"""mv off a volume while another process writes into what it moves (hunt32c F1).

mv to another volume or the host copies, then deletes the source. The delete took every
file the tree held by then: a file another process wrote into it, or a new version of one
it held, written after the copy had passed it, was deleted without a copy anywhere though
its write was reported done. Now the delete takes only what no change reached since the
copy began; the rest stays, with its directories, and mv says so (CPF1F26, exit 8).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import make_volume
from optvol import errors, transfer

WRITER = """
import sys
from datetime import datetime, timezone
from optvol.library import Library
with Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open("PVOL1") as volume:
    for path in sys.argv[2:]:
        volume.write_bytes(path, b"written by another process at " + path.encode())
"""


@pytest.fixture
def lib(library):
    make_volume(library, "PVOL1")
    make_volume(library, "PVOL2")
    with library.open("PVOL1") as volume:
        volume.mkdir("/T/S", parents=True)
        volume.mkdir("/T/E")
        for path in ("/T/a", "/T/b", "/T/S/c"):
            volume.write_bytes(path, b"first version of " + path.encode())
    return library


def _write_after_copying(monkeypatch, library, first: str, paths: list[str]) -> None:
    """Once the move has copied ``first``, another process writes ``paths`` on PVOL1."""
    real = transfer._copy_file

    def copy_then_write(volumes, source, destination, **options):
        real(volumes, source, destination, **options)
        if source.path == first:
            subprocess.run([sys.executable, "-c", WRITER, str(library.root), *paths], check=True)

    monkeypatch.setattr(transfer, "_copy_file", copy_then_write)


def _files(library, vol: str) -> dict[str, bytes]:
    with library.open(vol) as volume:
        return {info.path: volume.read_bytes(info.path) for info in volume.iter_files("/", recursive=True)}


@pytest.mark.parametrize("to", ["volume", "host"])
def test_what_another_process_writes_into_a_moving_tree_stays(lib, tmp_path, monkeypatch, to):
    _write_after_copying(monkeypatch, lib, "/T/a", ["/T/a", "/T/S/new"])
    target = "/QOPT/PVOL2/T" if to == "volume" else str(tmp_path / "T")
    with pytest.raises(errors.LockedError) as caught:
        list(transfer.move(lib, ["/QOPT/PVOL1/T"], target))
    assert caught.value.message_id == "CPF1F26" and "changed 2 file(s) of '/T'" in str(caught.value)
    assert "'/T/S/new'" in str(caught.value)  # the first kept, in path order
    assert _files(lib, "PVOL1") == {"/T/a": b"written by another process at /T/a",
                                    "/T/S/new": b"written by another process at /T/S/new"}
    with lib.open("PVOL1") as volume:  # /T/E, empty and unchanged, went with the move
        assert [d.path for d in volume.iter_dirs("/")] == ["/", "/T", "/T/S"]
    if to == "volume":
        copies = _files(lib, "PVOL2")
    else:
        copies = {"/" + str(p.relative_to(tmp_path)): p.read_bytes() for p in (tmp_path / "T").rglob("*") if p.is_file()}
    assert copies == {path: b"first version of " + path.encode() for path in ("/T/a", "/T/b", "/T/S/c")}


def test_a_file_rewritten_while_it_moves_stays(lib, monkeypatch):
    _write_after_copying(monkeypatch, lib, "/T/b", ["/T/b"])
    with pytest.raises(errors.LockedError) as caught:
        list(transfer.move(lib, ["/QOPT/PVOL1/T/b"], "/QOPT/PVOL2/b"))
    assert caught.value.message_id == "CPF1F26" and "changed 1 file(s) of '/T/b'" in str(caught.value)
    assert _files(lib, "PVOL1")["/T/b"] == b"written by another process at /T/b"
    assert _files(lib, "PVOL2") == {"/b": b"first version of /T/b"}


def test_the_sources_after_one_another_process_changed_still_move(lib, monkeypatch):
    """``mv a b DIR``: a CPF1F26 for the first source stopped the move before the second; it is
    said once every source has moved."""
    _write_after_copying(monkeypatch, lib, "/T/a", ["/T/a"])
    moved = []
    with pytest.raises(errors.LockedError, match="CPF1F26.*changed 1 file"):
        for path in transfer.move(lib, ["/QOPT/PVOL1/T/a", "/QOPT/PVOL1/T/b"], "/QOPT/PVOL2/"):
            moved.append(path)
    assert moved == ["/QOPT/PVOL2/a", "/QOPT/PVOL2/b"]
    assert _files(lib, "PVOL2") == {"/a": b"first version of /T/a", "/b": b"first version of /T/b"}
    assert sorted(_files(lib, "PVOL1")) == ["/T/S/c", "/T/a"]  # b moved; a, rewritten meanwhile, stays


def test_a_move_nobody_disturbs_takes_the_whole_tree(lib, tmp_path):
    assert sorted(transfer.move(lib, ["/QOPT/PVOL1/T"], "/QOPT/PVOL2/T")) == ["/QOPT/PVOL2/T/S/c", "/QOPT/PVOL2/T/a", "/QOPT/PVOL2/T/b"]
    with lib.open("PVOL1") as volume:
        assert [d.path for d in volume.iter_dirs("/")] == ["/"] and volume.listdir("/") == []
    with lib.open("PVOL2") as volume:
        assert [d.path for d in volume.iter_dirs("/")] == ["/", "/T", "/T/E", "/T/S"]


RENAMER = """
import sys
from datetime import datetime, timezone
from optvol.library import Library
with Library(sys.argv[1], clock=lambda: datetime.now(timezone.utc)).open("PVOL1") as volume:
    volume.rename(sys.argv[2], sys.argv[3])
"""


@pytest.mark.parametrize("to", ["volume", "host"])
def test_a_directory_moved_into_a_moving_tree_stays(lib, tmp_path, monkeypatch, to):
    """A directory another process moved into the tree after the copy passed its place holds no
    file a change stamped (an empty tree): the delete took it, and it was on neither volume (rev32d F1).
    Now an empty directory goes only where the copy holds one in its place."""
    with lib.open("PVOL1") as volume:
        volume.mkdir("/OUT/EMPTY", parents=True)
    real = transfer._copy_file

    def copy_then_rename(volumes, source, destination, **options):
        real(volumes, source, destination, **options)
        if source.path == "/T/b":
            subprocess.run([sys.executable, "-c", RENAMER, str(lib.root), "/OUT", "/T/OUT"], check=True)

    monkeypatch.setattr(transfer, "_copy_file", copy_then_rename)
    target = "/QOPT/PVOL2/T" if to == "volume" else str(tmp_path / "T")
    with pytest.raises(errors.LockedError) as caught:
        list(transfer.move(lib, ["/QOPT/PVOL1/T"], target))
    assert caught.value.message_id == "CPF1F26" and "'/T/OUT'" in str(caught.value)
    assert "made or moved in 2 directory(ies) of '/T'" in str(caught.value)  # /T/OUT and /T/OUT/EMPTY
    with lib.open("PVOL1") as volume:  # the files and /T/E, copied, went with the move
        assert [d.path for d in volume.iter_dirs("/")] == ["/", "/T", "/T/OUT", "/T/OUT/EMPTY"]
        assert list(volume.iter_files("/", recursive=True)) == []


def test_a_directory_the_copy_holds_goes_though_made_again_meanwhile(lib, monkeypatch):
    """An empty directory removed and made again after the copy made it: the copy holds one in
    its place, so nothing is lost, and the move is whole."""
    real = transfer._copy_file

    def copy_then_remake(volumes, source, destination, **options):
        real(volumes, source, destination, **options)
        if source.path == "/T/S/c":
            with lib.open("PVOL1") as volume:
                volume.rmdir("/T/E")
                volume.mkdir("/T/E")

    monkeypatch.setattr(transfer, "_copy_file", copy_then_remake)
    assert len(list(transfer.move(lib, ["/QOPT/PVOL1/T"], "/QOPT/PVOL2/T"))) == 3
    with lib.open("PVOL1") as volume:
        assert [d.path for d in volume.iter_dirs("/")] == ["/"]
