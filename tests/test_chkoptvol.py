"""CHKOPTVOL (reference §10.6, DESIGN §4 and §6): healthy volumes check clean; a flipped
byte in the payload of chosen files is named exactly, and no route reads a damaged file;
a date or version that drifted in the index is named too.

Damage is made by flipping one byte of a payload found through the index
(``(files.sector + header_sectors) × sector size``).
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess

import pytest

from conftest import make_volume
from integrity_helpers import content, flip, flip_payload, index_rows, run_cli, volume_dir
from optvol import errors
from optvol.change_volume import chgoptvol
from optvol.checking import chkoptvol
from optvol.conversion import cvtoptbku
from optvol.copying import CopyRequest, cpyopt
from optvol.duplicate import dupopt
from optvol.image import replay
from optvol.image.records import Kind
from optvol.interchange import import_iso
from optvol.model import MediaType, VolumeType
from optvol.recovery import recover

SIZES = [0, 1, 100, 2047, 2048, 2049, 5000, 300_000]  # empty, sector edges, one streamed by CPYOPT


def _fill(volume, *, dirs: int = 3, per_dir: int = 8, salt: str = "") -> dict[str, bytes]:
    """Directories of files of assorted sizes; returns path -> bytes."""
    written = {}
    with volume.batch():
        for d in range(dirs):
            volume.mkdir(f"/D{d}", exist_ok=True)
            for i in range(per_dir):
                path = f"/D{d}/F{i}.dat"
                data = content(path, SIZES[(d + i) % len(SIZES)], salt)
                volume.write_bytes(path, data)
                written[path] = data
    return written


def _backup(library, source: str, target: str, now) -> None:
    request = CopyRequest(fromvol=source, frompath="/", tovol=target, totype=VolumeType.BACKUP, cpysubdir=True)
    result = cpyopt(library, request, now=now)
    assert not result.failures, result.failures


@pytest.fixture
def healthy(library, clock, tmp_path):
    """One volume made by each command: INZOPT, cp, API writes with old versions, CPYOPT to a
    backup, CVTOPTBKU, DUPOPT, a UDF volume and a 1024-byte-sector volume with long paths."""
    make_volume(library, "EMPTY1")
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        expected = _fill(volume)
        volume.write_bytes("/D0/F1.dat", b"second version")  # HPOFS keeps version 1
        expected["/D0/F1.dat"] = b"second version"
        volume.remove("/D1/F2.dat")  # its version stays on HPOFS
        del expected["/D1/F2.dat"]
    host = tmp_path / "host" / "TREE"
    for i in range(6):
        (host / f"S{i % 2}").mkdir(parents=True, exist_ok=True)
        (host / f"S{i % 2}" / f"H{i}").write_bytes(content(f"H{i}", 700 * i))
    make_volume(library, "CPVOL")
    assert run_cli(library.root, "cp", "-r", host, "/QOPT/CPVOL/").rc == 0
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    _backup(library, "PVOL1", "BVOL1", clock())
    make_volume(library, "BVOL2", type=VolumeType.BACKUP)
    _backup(library, "PVOL1", "BVOL2", clock())
    cvtoptbku(library, bkuvol="BVOL2", privol="CONV1")
    dupopt(library, fromvol="PVOL1", tovol="DUP1", now=clock())
    make_volume(library, "UVOL1", medtype=MediaType.DVD_RAM)
    with library.open("UVOL1") as volume:
        _fill(volume, dirs=2, per_dir=4)
        volume.write_bytes("/D0/F0.dat", b"replaced")
    make_volume(library, "SMALL", blksize=1024)
    with library.open("SMALL") as volume:
        deep = "/" + "/".join(["\u20ac" * 60] * 3)  # 3 UTF-8 bytes each: a two-sector header
        volume.mkdir(deep, parents=True)
        volume.write_bytes(deep + "/" + "\u20ac" * 90, b"long path")
    return expected


def test_every_healthy_volume_checks_clean(library, healthy):
    results = {r.volume: r for r in chkoptvol(library, vol="*ALL")}
    assert set(results) == {"EMPTY1", "PVOL1", "CPVOL", "BVOL1", "CONV1", "DUP1", "UVOL1", "SMALL"}
    for result in results.values():
        assert result.damaged == [], result
    # Every version, live or kept by HPOFS, is read: PVOL1 has 24 written + 1 new version.
    assert results["PVOL1"].files_checked == 25
    assert results["DUP1"].files_checked == 25
    assert results["PVOL1"].bytes_checked == sum(r["size"] for r in index_rows(library.root, "PVOL1"))
    assert results["CPVOL"].files_checked == 6
    assert results["EMPTY1"].files_checked == 0
    assert results["SMALL"].files_checked == 1
    assert [r["header_sectors"] for r in index_rows(library.root, "SMALL")] == [2]
    assert results["BVOL1"].files_checked == 23  # the live files of PVOL1
    everything = run_cli(library.root, "chkoptvol", "*ALL", json_output=True)
    assert everything.rc == 0, everything.err
    assert {r["volume"] for r in everything.json()} == set(results)
    assert all(r["damaged"] == [] for r in everything.json())
    one = run_cli(library.root, "chkoptvol", "pvol1", "--output", "*PRINT")
    assert one.rc == 0 and one.out.decode().count("  ok ") == 25


def test_a_generic_name_checks_every_volume_it_matches(library):
    """docs/messages.md: CHKOPTVOL takes generic names, as DSPOPT and WRKOPTVOL; JSON is a list
    for a generic name as for *ALL (even of one volume), one document for a named volume."""
    for vol in ("PV1", "PV2", "OTHER"):
        make_volume(library, vol)
    with library.open("PV2") as volume:
        volume.write_bytes("/a.txt", b"alpha")
    assert [r.volume for r in chkoptvol(library, vol="pv*")] == ["PV1", "PV2"]
    assert chkoptvol(library, vol="NONE*") == []
    several = run_cli(library.root, "chkoptvol", "pv*", json_output=True)
    assert several.rc == 0, several.err
    assert [(r["volume"], r["files_checked"]) for r in several.json()] == [("PV1", 0), ("PV2", 1)]
    one = run_cli(library.root, "chkoptvol", "OTH*", json_output=True)
    assert one.rc == 0 and [r["volume"] for r in one.json()] == ["OTHER"]
    named = run_cli(library.root, "chkoptvol", "PV2", json_output=True)
    assert named.rc == 0 and named.json() == {"volume": "PV2", "files_checked": 1, "bytes_checked": 5, "damaged": []}
    cl = run_cli(library.root, "cl", "CHKOPTVOL VOL(PV*)")
    assert cl.rc == 0 and cl.out.decode().count("CHKOPTVOL PV") == 2, cl.err
    none = run_cli(library.root, "chkoptvol", "NONE*")
    assert none.rc == 3 and none.err.startswith("optvol: OPV0002: Volume NONE* not found"), none.err


def _damage(library, vol: str, count: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Flip one byte in the payload of ``count`` live non-empty files; (damaged, good) rows."""
    rows = [r for r in index_rows(library.root, vol) if r["live"]]
    candidates = [r for r in rows if r["size"] > 0]
    rng = random.Random(seed)
    chosen = rng.sample(candidates, count)
    for row in chosen:
        flip_payload(library.root, vol, row, rng.randrange(row["size"]))
    good = [r for r in index_rows(library.root, vol) if r["id"] not in {c["id"] for c in chosen}]
    return chosen, good


@pytest.mark.parametrize("count", [1, 3, 7])
def test_names_exactly_the_damaged_files(library, healthy, count):
    damaged, good = _damage(library, "PVOL1", count, seed=count)
    [result] = chkoptvol(library, vol="PVOL1")
    assert sorted(d.path for d in result.damaged) == sorted(r["path"] for r in damaged)
    assert all("SHA-256" in d.reason for d in result.damaged)
    assert result.files_checked == len(good)
    assert result.bytes_checked == sum(r["size"] for r in good)
    # The shell: exit 7 with the JSON document, and the three OUTPUT forms.
    shell = run_cli(library.root, "chkoptvol", "PVOL1", json_output=True)
    assert shell.rc == 7
    assert "OPV0206" in shell.err
    document = shell.json()
    assert sorted(d["path"] for d in document["damaged"]) == sorted(r["path"] for r in damaged)
    assert (document["files_checked"], document["bytes_checked"]) == (len(good), sum(r["size"] for r in good))
    listed = run_cli(library.root, "chkoptvol", "PVOL1", "--output", "*ERROR")
    assert listed.rc == 7 and listed.out.decode().count("DAMAGED") == count
    assert f"{len(good)} file version(s)" in listed.out.decode()
    quiet = run_cli(library.root, "chkoptvol", "PVOL1", "--output", "*NONE")
    assert quiet.rc == 7 and "DAMAGED" not in quiet.out.decode()
    printed = run_cli(library.root, "chkoptvol", "PVOL1", "--output", "*PRINT")
    assert printed.rc == 7 and printed.out.decode().count("  ok ") == len(good)
    # Other volumes stay clean; *ALL exits 7 and names only PVOL1's files.
    every = {r.volume: r for r in chkoptvol(library, vol="*ALL")}
    assert [v for v, r in every.items() if r.damaged] == ["PVOL1"]
    assert run_cli(library.root, "chkoptvol", "*ALL").rc == 7


def test_old_hpofs_versions_are_checked(library, clock):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/A", b"version one of A")
        volume.write_bytes("/A", b"version two of A")
        volume.write_bytes("/B", b"B before it was deleted")
        volume.remove("/B")
        volume.write_bytes("/C", b"C is fine")
    rows = index_rows(library.root, "PVOL1")
    old_a = next(r for r in rows if r["path"] == "/A" and r["version"] == 1)
    gone_b = next(r for r in rows if r["path"] == "/B")
    flip_payload(library.root, "PVOL1", old_a, 3)
    flip_payload(library.root, "PVOL1", gone_b, 0)
    [result] = chkoptvol(library, vol="PVOL1")
    assert sorted(d.path for d in result.damaged) == ["/A (version 1)", "/B (version 1, deleted)"]
    assert result.files_checked == 2  # /A version 2 and /C
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/A") == b"version two of A"  # the live version is sound


def test_a_damaged_record_header_is_named(library):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        for name in "XYZ":
            volume.write_bytes(f"/{name}", content(name, 3000))
    row = next(r for r in index_rows(library.root, "PVOL1") if r["path"] == "/Y")
    flip(volume_dir(library.root, "PVOL1") / "data.opv", row["sector"] * row["sector_size"] + 100)
    [result] = chkoptvol(library, vol="PVOL1")
    assert [d.path for d in result.damaged] == ["/Y"]
    assert result.files_checked == 2
    with library.open("PVOL1") as volume, pytest.raises(errors.DamagedError):
        volume.read_bytes("/Y")


def _backup_with_damaged_records(library, clock, *, request: bool) -> None:
    """BVOL1, a backup of /D1/F, with its /D1 control record (and its request entry) damaged."""
    make_volume(library, "PVOL1")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D1")
        volume.write_bytes("/D1/F", b"data")
    _backup(library, "PVOL1", "BVOL1", clock())
    index = sqlite3.connect(f"file:{volume_dir(library.root, 'BVOL1') / 'index.sqlite'}?mode=ro", uri=True)
    sectors = [index.execute("SELECT c.sector FROM controls c JOIN dirs d ON d.id = c.dir WHERE d.path = '/D1'").fetchone()[0]]
    if request:
        sectors.append(index.execute("SELECT sector FROM requests").fetchone()[0])
    index.close()
    for sector in sectors:
        flip(volume_dir(library.root, "BVOL1") / "data.opv", sector * 2048 + 100)


def test_a_backups_damaged_control_and_request_records_are_named(library, clock):
    """The ranges and the request log of a backup live in CONTROL and REQUEST records that
    recover rebuilds them from: damage there is damage, though no file is hurt."""
    _backup_with_damaged_records(library, clock, request=True)
    [result] = chkoptvol(library, vol="BVOL1")
    assert [d.path for d in result.damaged] == ["(control record of /D1)", "(request 1 of the log)"]
    assert result.files_checked == 1 and "checksum" in result.damaged[0].reason


def test_a_damaged_first_label_record_is_named(library):
    """Backups know a primary's history by its first record (copying._history_of)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/F", b"data")
    flip(volume_dir(library.root, "PVOL1") / "data.opv", 100)
    [result] = chkoptvol(library, vol="PVOL1")
    assert [d.path for d in result.damaged] == ["(the volume's first label record)"] and result.files_checked == 1


def _records(library, vol: str) -> list[tuple[int, Kind]]:
    """(sector, kind) of every record on a volume's data partition, as recover reads them."""
    with open(volume_dir(library.root, vol) / "data.opv", "rb") as handle:
        return [(found.sector, found.header.kind) for found in replay.scan(handle.fileno(), 2048)]


def _volume_of_every_record_kind(library) -> None:
    """PVOL1 with a deletion, a removed directory, a rename, an attribute change and a
    second label record: the records the index does not point to."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/EMPTY")
        for name in ("GONE", "OLD", "RO", "KEPT"):
            volume.write_bytes(f"/{name}", content(name, 3000))
        volume.remove("/GONE")
        volume.rmdir("/EMPTY")
        volume.rename("/OLD", "/NEW")
        volume.set_attributes("/RO", read_only=True)
    chgoptvol(library, vol="PVOL1", text="a label record after the first")


@pytest.mark.parametrize("kind", [Kind.LABEL, Kind.DELETE, Kind.REMOVE_DIRECTORY, Kind.RENAME, Kind.ATTRIBUTES])
def test_a_damaged_record_the_index_does_not_point_to_is_named(library, kind):
    """Deletions, renames, attribute changes and label changes live in records the index
    does not point to; recover replays them, and one it cannot read is an effect it loses.
    Every file still reads back, yet the volume is damaged: CHKOPTVOL names the record."""
    _volume_of_every_record_kind(library)
    before = chkoptvol(library, vol="PVOL1")[0]
    assert before.damaged == [] and before.files_checked == 4  # GONE's version is kept
    sector = max(s for s, k in _records(library, "PVOL1") if k == kind)  # a LABEL: the second one
    flip(volume_dir(library.root, "PVOL1") / "data.opv", sector * 2048 + 100)
    [result] = chkoptvol(library, vol="PVOL1")
    assert [d.path for d in result.damaged] == [f"(sector {sector})"]
    assert result.damaged[0].unindexed and "recover could not replay them" in result.damaged[0].reason
    assert result.files_checked == 4
    shell = run_cli(library.root, "chkoptvol", "PVOL1", json_output=True)
    assert shell.rc == 7 and [d["path"] for d in shell.json()["damaged"]] == [f"(sector {sector})"]
    # What the report warns of: a recover meets the same damage, and skips the record.
    report = recover(library, vol="PVOL1")
    assert [(first, count) for first, count, _ in report.damaged] == [(sector, 1)]


def test_a_damaged_record_the_index_does_not_point_to_is_copied_by_dupopt(library):
    """The duplicate's index keeps what the record did, as the source's does: DUPOPT copies the
    volume as it is (nothing to leave out), and CHKOPTVOL names the record on both."""
    _volume_of_every_record_kind(library)
    sector = max(s for s, k in _records(library, "PVOL1") if k == Kind.DELETE)
    flip(volume_dir(library.root, "PVOL1") / "data.opv", sector * 2048 + 100)
    shell = run_cli(library.root, "dupopt", "PVOL1", "DVOL1", json_output=True)
    assert shell.rc == 0, shell.err
    assert shell.json()["left_out"] == [] and shell.json()["files"] == 4
    assert [d["path"] for d in shell.json()["carried"]] == [f"(sector {sector})"]
    checks = {r.volume: [d.path for d in r.damaged] for r in chkoptvol(library, vol="*ALL")}
    assert checks == {"PVOL1": [f"(sector {sector})"], "DVOL1": [f"(sector {sector})"]}
    with library.open("DVOL1") as duplicate:
        assert sorted(duplicate.listdir("/")) == ["KEPT", "NEW", "RO"]


@pytest.mark.parametrize("damaged", [2, 1], ids=["the live version", "an older version"])
def test_a_version_left_out_for_a_damaged_header_leaves_the_duplicate_clean(library, clock, damaged):
    """DUPOPT ALWMEDERR(*FILE) leaves out a version whose record header is damaged; the
    duplicate still holds that region, which its DELETE record names (``left_out_at``):
    neither CHKOPTVOL nor recover of the duplicate reports it again, and recover, which
    cannot read that version, rebuilds the index DUPOPT left."""
    _volume_of_every_record_kind(library)
    with library.open("PVOL1") as volume:
        volume.write_bytes("/KEPT", b"version 2")
    row = next(r for r in index_rows(library.root, "PVOL1") if r["path"] == "/KEPT" and r["version"] == damaged)
    flip(volume_dir(library.root, "PVOL1") / "data.opv", row["sector"] * 2048 + 100)
    result = dupopt(library, fromvol="PVOL1", tovol="DVOL1", now=clock(), allow_media_errors=True)
    assert [d.path for d in result.left_out] == ["/KEPT" if damaged == 2 else "/KEPT (version 1)"]
    [check] = chkoptvol(library, vol="DVOL1")
    assert check.damaged == [] and check.files_checked == 4  # one version of /KEPT stays

    def rows() -> list[dict]:  # a version never read back gets no row ID: the rest must agree
        return [{k: v for k, v in r.items() if k != "id"} for r in index_rows(library.root, "DVOL1")]

    kept = rows()
    expected = [(1, 0)] if damaged == 2 else [(2, 1)]  # version 1 stays, not live; or version 2, live
    assert [(r["version"], r["live"]) for r in kept if r["path"] == "/KEPT"] == expected
    assert recover(library, vol="DVOL1").damaged == [] and rows() == kept
    with library.open("DVOL1") as duplicate:
        assert duplicate.exists("/KEPT") == (damaged == 1)
        if damaged == 1:
            assert duplicate.read_bytes("/KEPT") == b"version 2"


@pytest.mark.parametrize("damaged", [1, 2], ids=["version 1 of the first file", "version 2 of the first file"])
def test_a_version_left_out_of_an_earlier_file_of_the_name_spares_the_later_one(library, clock, damaged):
    """/F is written twice, deleted, and written again: a new file under the same name, whose
    version 1 is live. A version of the first /F is left out for its damaged header; recover
    of the duplicate must leave the later /F live and whole, as DUPOPT did (the left-out
    version is found by its record's place, and only a version that was live ends the
    life of the one before it)."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.write_bytes("/F", b"first file, version 1")
        volume.write_bytes("/F", b"first file, version 2")
        volume.remove("/F")
        volume.write_bytes("/F", b"the later file")
    row = next(r for r in index_rows(library.root, "PVOL1") if r["version"] == damaged and not r["live"]
               and r["path"] == "/F")
    flip(volume_dir(library.root, "PVOL1") / "data.opv", row["sector"] * 2048 + 100)
    dupopt(library, fromvol="PVOL1", tovol="DVOL1", now=clock(), allow_media_errors=True)
    kept = [{k: v for k, v in r.items() if k != "id"} for r in index_rows(library.root, "DVOL1")]
    recover(library, vol="DVOL1")
    assert [{k: v for k, v in r.items() if k != "id"} for r in index_rows(library.root, "DVOL1")] == kept
    with library.open("DVOL1") as duplicate:
        assert duplicate.read_bytes("/F") == b"the later file"


def test_dupopt_leaves_out_damaged_files_only(library, clock):
    """ALWMEDERR(*FILE) leaves damaged files out; a damaged control record is no file: the
    duplicate would carry it, so DUPOPT refuses (OPV0206) and installs nothing."""
    _backup_with_damaged_records(library, clock, request=False)
    with pytest.raises(errors.DamagedError) as refused:
        dupopt(library, fromvol="BVOL1", tovol="BDUP", now=clock(), allow_media_errors=True)
    assert refused.value.message_id == "OPV0206" and "only damaged files can be left out" in refused.value.text
    assert not library.exists("BDUP")


# --------------------------------------------------------------------- every read route


@pytest.fixture
def damaged(library, tmp_path):
    """PVOL1 with a small and a large (> 1 MiB, several chunks) damaged file among good ones."""
    make_volume(library, "PVOL1")
    good = {f"/DIR/G{i}": content(f"G{i}", 1000 * i + 5) for i in range(5)}
    bad = {"/DIR/SMALL": content("SMALL", 1500), "/DIR/LARGE": content("LARGE", 2_500_000)}
    with library.open("PVOL1") as volume:
        volume.mkdir("/DIR")
        for path, data in {**good, **bad}.items():
            volume.write_bytes(path, data)
    rows = {r["path"]: r for r in index_rows(library.root, "PVOL1")}
    flip_payload(library.root, "PVOL1", rows["/DIR/SMALL"], 1499)
    flip_payload(library.root, "PVOL1", rows["/DIR/LARGE"], 2_400_000)  # in the last chunk
    host = tmp_path / "host"
    host.mkdir()
    return good, bad, host


def test_api_reads_fail(library, damaged):
    good, bad, _ = damaged
    with library.open("PVOL1") as volume:
        for path in bad:
            with pytest.raises(errors.DamagedError) as caught:
                with volume.open(path) as handle:
                    handle.read()
            assert caught.value.message_id == "CPF1F28" and caught.value.exit_code == 7
            with pytest.raises(errors.DamagedError):
                volume.open(path).read(10)  # not even the first bytes
            with pytest.raises(errors.DamagedError):
                volume.read_bytes(path)
            with pytest.raises(errors.DamagedError):
                with volume.open(path, "ab") as handle:  # append reads the old data first
                    handle.write(b"more")
        for path, data in good.items():
            assert volume.read_bytes(path) == data


def test_cat_fails_with_nothing_on_stdout(library, damaged):
    good, bad, _ = damaged
    for path in bad:
        result = run_cli(library.root, "cat", f"/QOPT/PVOL1{path}")
        assert result.rc == 7, result.err
        assert result.out == b""
        assert "CPF1F28" in result.err
    for path, data in good.items():
        assert run_cli(library.root, "cat", f"/QOPT/PVOL1{path}").out == data


def test_cp_to_host_leaves_no_file(library, damaged):
    good, bad, host = damaged
    for path in bad:
        target = host / path.rsplit("/", 1)[1]
        result = run_cli(library.root, "cp", f"/QOPT/PVOL1{path}", target)
        assert result.rc == 7 and "CPF1F28" in result.err
        assert list(host.iterdir()) == []  # neither the target nor a temporary file
    # A tree with damaged files in it: the damaged files never appear, nothing temporary stays.
    result = run_cli(library.root, "cp", "-r", "/QOPT/PVOL1/DIR", host / "tree")
    assert result.rc == 7
    left = {p.name for p in (host / "tree").iterdir()} if (host / "tree").exists() else set()
    assert not left & {"SMALL", "LARGE"}
    assert not [n for n in left if n.startswith(".")]
    for name in left:
        assert (host / "tree" / name).read_bytes() == good[f"/DIR/{name}"]


def test_cp_to_another_volume_writes_nothing(library, damaged):
    _, bad, _ = damaged
    make_volume(library, "PVOL2")
    with library.open("PVOL2") as volume:
        used = volume.info().used
    for path in bad:
        result = run_cli(library.root, "cp", f"/QOPT/PVOL1{path}", "/QOPT/PVOL2/COPY")
        assert result.rc == 7 and "CPF1F28" in result.err
    with library.open("PVOL2") as volume:
        assert volume.listdir("/") == [] and volume.info().used == used
    [result] = chkoptvol(library, vol="PVOL2")
    assert result.damaged == []


def test_cpyopt_fails_the_damaged_files_only(library, damaged, clock):
    good, bad, _ = damaged
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    request = CopyRequest(fromvol="PVOL1", frompath="/", tovol="BVOL1", totype=VolumeType.BACKUP, cpysubdir=True)
    result = cpyopt(library, request, now=clock())
    assert sorted(f.path for f in result.failures) == sorted(bad)
    assert {f.message_id for f in result.failures} == {"CPF1F28"}
    assert result.copied == len(good)
    [check] = chkoptvol(library, vol="BVOL1")
    assert check.damaged == [] and check.files_checked == len(good)
    with library.open("BVOL1") as backup:
        names = {f.path for f in backup.iter_files("/DIR")}
        assert names == set(good)
    # Restore the backup onto a new primary to read the copied bytes back.
    make_volume(library, "RVOL1")
    restore = CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/", tovol="RVOL1", cpysubdir=True)
    assert not cpyopt(library, restore, now=clock()).failures
    with library.open("RVOL1") as volume:
        for path, data in good.items():
            assert volume.read_bytes(path) == data
    # The shell: exit 1, each failure listed.
    make_volume(library, "BVOL2", type=VolumeType.BACKUP)
    shell = run_cli(library.root, "cpyopt", "PVOL1", "/", "BVOL2 *BACKUP", "--cpysubdir", "*YES", json_output=True)
    assert shell.rc == 1, shell.err
    document = shell.json()
    assert document["copied"] == len(good) and document["failed"] == 2
    assert sorted(f["path"] for f in document["failures"]) == sorted(bad)


def test_export_iso_fails_and_leaves_no_image(library, damaged):
    _, bad, host = damaged
    result = run_cli(library.root, "export-iso", "PVOL1", host / "out.iso")
    assert result.rc == 7, result.err
    assert "CPF1F28" in result.err
    assert list(host.iterdir()) == []


def test_damaged_file_reads_fail_from_a_copied_image(library, damaged, tmp_path):
    """The damage travels with the image: a copied library reports the same files."""
    _, bad, _ = damaged
    copy = tmp_path / "copy"
    shutil.copytree(library.root, copy)
    result = run_cli(copy, "chkoptvol", "PVOL1", json_output=True)
    assert result.rc == 7
    assert sorted(d["path"] for d in result.json()["damaged"]) == sorted(bad)
    assert os.path.isdir(copy / "PVOL1.optvol")


# --------------------------------------------------------------------- the index against the records


def _set_index(library, vol: str, file_id: int, column: str, value: int) -> None:
    """Change one value of a file version in a volume's index on disk (as a flipped bit would)."""
    conn = sqlite3.connect(volume_dir(library.root, vol) / "index.sqlite")
    try:
        with conn:
            conn.execute(f"UPDATE files SET {column} = ? WHERE id = ?", (value, file_id))
    finally:
        conn.close()


def _index_value(library, vol: str, file_id: int, column: str) -> int:
    conn = sqlite3.connect(f"file:{volume_dir(library.root, vol) / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT {column} FROM files WHERE id = ?", (file_id,)).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def touched(library, clock, tmp_path):
    """PVOL1 after every change a file's index row can see (new versions, renames, a moved
    directory, new flags, a delete), its backup, a restore onto a primary, and an imported disc."""
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/A/B", parents=True)
        for name in ("one", "two", "three", "four"):
            volume.write_bytes(f"/A/B/{name}", content(name, 3000))
        volume.write_bytes("/A/B/one", b"second version of one")
        volume.rename("/A/B/two", "/A/TWO_RENAMED")
        volume.rename("/A/B", "/A/MOVED")
        volume.set_attributes("/A/MOVED/three", read_only=True, hidden=True)
        volume.remove("/A/MOVED/four")
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    _backup(library, "PVOL1", "BVOL1", clock())
    make_volume(library, "RVOL1")
    restore = CopyRequest(fromvol="BVOL1", fromtype=VolumeType.BACKUP, frompath="/", tovol="RVOL1", cpysubdir=True)
    assert not cpyopt(library, restore, now=clock()).failures
    tree = tmp_path / "tree" / "DOCS"
    tree.mkdir(parents=True)
    (tree / "readme.txt").write_text("read me")
    image = tmp_path / "disc.iso"
    subprocess.run(["genisoimage", "-quiet", "-J", "-R", "-V", "DISC1", "-o", str(image), str(tree.parent)], check=True)
    import_iso(library, file=image, now=clock())
    return library


def test_an_index_that_agrees_with_its_records_checks_clean(library, touched):
    results = {r.volume: r for r in chkoptvol(library, vol="*ALL")}
    assert set(results) == {"PVOL1", "BVOL1", "RVOL1", "DISC1"}
    assert all(r.damaged == [] for r in results.values()), results
    assert results["PVOL1"].files_checked == 5  # one (two versions), two, three, four (deleted)
    assert results["BVOL1"].files_checked == results["RVOL1"].files_checked == 3


@pytest.mark.parametrize("vol", ["PVOL1", "BVOL1"])
@pytest.mark.parametrize("column, words", [("modified", "modified time"), ("created", "created time"),
                                           ("version", "version")])
def test_a_date_or_version_that_drifted_in_the_index_is_named(library, touched, vol, column, words):
    row = next(r for r in index_rows(library.root, vol) if r["path"] == "/A/TWO_RENAMED")
    before = _index_value(library, vol, row["id"], column)
    _set_index(library, vol, row["id"], column, before ^ 1)  # one bit
    [result] = chkoptvol(library, vol=vol)
    assert [d.path for d in result.damaged] == ["/A/TWO_RENAMED"]
    assert f"the index's {words} differs from the file's record" in result.damaged[0].reason
    shell = run_cli(library.root, "chkoptvol", vol, json_output=True)
    assert shell.rc == 7 and "OPV0206" in shell.err
    assert [d["path"] for d in shell.json()["damaged"]] == ["/A/TWO_RENAMED"]
    # The records still hold the truth: recover rebuilds the index, and it checks clean again.
    assert run_cli(library.root, "recover", vol).rc == 0
    assert chkoptvol(library, vol=vol)[0].damaged == []
    again = next(r for r in index_rows(library.root, vol) if r["path"] == "/A/TWO_RENAMED")
    assert _index_value(library, vol, again["id"], column) == before


def test_every_field_that_drifted_is_named(library, touched):
    row = next(r for r in index_rows(library.root, "PVOL1") if r["path"] == "/A/MOVED/three")
    for column in ("created", "modified"):
        _set_index(library, "PVOL1", row["id"], column, _index_value(library, "PVOL1", row["id"], column) + 1)
    [result] = chkoptvol(library, vol="PVOL1")
    assert [(d.path, d.reason.split(" (")[0]) for d in result.damaged] == [
        ("/A/MOVED/three", "the index's created time and modified time differ from the file's record")]


@pytest.mark.parametrize("vol", ["PVOL1", "BVOL1"])
def test_a_directory_whose_live_file_count_drifted_is_named(library, touched, vol):
    conn = sqlite3.connect(volume_dir(library.root, vol) / "index.sqlite")
    with conn:
        conn.execute("UPDATE dirs SET live_files = live_files + 1 WHERE path = '/A/MOVED'")
    conn.close()
    [result] = chkoptvol(library, vol=vol)
    assert [(d.path, d.reason.split(" (")[0]) for d in result.damaged] == [
        ("/A/MOVED", "the index keeps 3 live files for the directory, it holds 2")]
    shell = run_cli(library.root, "chkoptvol", vol, json_output=True)
    assert shell.rc == 7 and "OPV0206" in shell.err
    assert run_cli(library.root, "recover", vol).rc == 0
    assert chkoptvol(library, vol=vol)[0].damaged == []


@pytest.mark.parametrize("vol", ["PVOL1", "BVOL1"])
def test_a_highest_change_time_below_a_files_is_named(library, touched, vol):
    """docs/format.md §4.1: ``changed_high`` is at least every file's change time (a backup
    range relies on it); an index where it fell behind is reported, and recover puts it back."""
    index = volume_dir(library.root, vol) / "index.sqlite"
    conn = sqlite3.connect(index)
    latest = conn.execute("SELECT max(changed) FROM files").fetchone()[0]
    assert conn.execute("SELECT value FROM meta WHERE key = 'changed_high'").fetchone() == (latest,)
    with conn:
        conn.execute("UPDATE meta SET value = value - 1 WHERE key = 'changed_high'")
    conn.close()
    [result] = chkoptvol(library, vol=vol)
    assert [(d.path, d.reason.split(" (optvol")[0]) for d in result.damaged] == [
        ("(index)", f"a file's change time ({latest}) lies above the highest change time the index keeps"
                    f" ({latest - 1})")]
    shell = run_cli(library.root, "chkoptvol", vol, json_output=True)
    assert shell.rc == 7 and "OPV0206" in shell.err
    assert run_cli(library.root, "recover", vol).rc == 0
    assert chkoptvol(library, vol=vol)[0].damaged == []
    conn = sqlite3.connect(index)
    assert conn.execute("SELECT value FROM meta WHERE key = 'changed_high'").fetchone() == (latest,)
    conn.close()


def test_a_flipped_bit_in_a_control_records_payload_is_named(library, touched):
    """hunt25n F5: a CONTROL record's payload (its JSON padded to three sectors) is covered by
    its header's SHA-256, but CHKOPTVOL read only the header: a flipped bit there passed."""
    conn = sqlite3.connect(f"file:{volume_dir(library.root, 'BVOL1') / 'index.sqlite'}?mode=ro", uri=True)
    sector, size = conn.execute("SELECT c.sector, l.sector_size FROM controls c, label l WHERE c.dir IS NULL"
                                " ORDER BY c.sector DESC LIMIT 1").fetchone()
    conn.close()
    flip(volume_dir(library.root, "BVOL1") / "data.opv", (sector + 3) * size - 1, 0x20)  # its last padding byte
    [result] = chkoptvol(library, vol="BVOL1")
    assert [(d.path, d.reason.split(" (")[0]) for d in result.damaged] == [
        ("(the volume's control record)", "SHA-256 of its payload does not match its header")]


def _first_value(library, vol: str, sql: str):
    conn = sqlite3.connect(f"file:{volume_dir(library.root, vol) / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_a_damaged_record_right_after_a_damaged_directory_record_is_named(library):
    """rev27e F2: one media error over the record of /X (a directory) and the DELETE of /Y
    right after it: CHKOPTVOL named /X only, taking whatever followed its damaged header for
    its own, and recover then brought /Y back without CHKOPTVOL's word. A directory's header
    takes one sector of 2,048 bytes whatever its path: what follows is named."""
    make_volume(library, "V")
    with library.open("V") as volume:
        volume.write_bytes("/Y", b"deleted file")
        with volume.batch():
            volume.mkdir("/X")
            volume.remove("/Y")
    sector = _first_value(library, "V", "SELECT sector FROM dirs WHERE path = '/X'")
    data = volume_dir(library.root, "V") / "data.opv"
    for damaged in (sector, sector + 1):
        flip(data, damaged * 2048 + 80)
    named = [d.path for d in chkoptvol(library, vol="V")[0].damaged]
    assert named == ["/X", f"(sector {sector + 1})"], named


def test_the_sectors_of_a_damaged_control_record_are_its_own(library, clock):
    """...and a control record's three sectors are its own: damage in its payload is not named
    again as records the index does not point to."""
    make_volume(library, "P")
    make_volume(library, "V", type=VolumeType.BACKUP)
    with library.open("P") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/Y", b"y")
    request = CopyRequest(fromvol="P", frompath="/", tovol="V", totype=VolumeType.BACKUP, cpysubdir=True)
    assert cpyopt(library, request, now=clock()).failed == 0
    sector = _first_value(library, "V", "SELECT min(sector) FROM controls")
    data = volume_dir(library.root, "V") / "data.opv"
    for damaged in (sector, sector + 1, sector + 2):
        flip(data, damaged * 2048 + 80)
    named = [d.path for d in chkoptvol(library, vol="V")[0].damaged]
    assert len(named) == 1 and named[0].startswith("(control record of"), named
