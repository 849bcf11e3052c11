"""Volume rules: *BACKUP refusal, read-only media, HPOFS versions and space, UDF space,
the threshold, read-only files (reference §2.6, §4.2, §11; DESIGN §1, §3)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from conftest import data_path, dump_index, make_volume, read_data
from optvol import errors, openfile
from optvol.change_volume import chgoptvol
from optvol.image.records import sectors_for
from optvol.model import MediaFormat, MediaType, VolumeType, to_micros

MICROS = to_micros(datetime(2025, 5, 1, tzinfo=timezone.utc))

# ----------------------------------------------------------------------------- *BACKUP


@pytest.fixture
def backup(library):
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    volume = library.open("BVOL1")
    with volume.backup_writer() as writer:  # what CPYOPT does; user programs cannot
        writer.make_dir("/D", created=MICROS)
        writer.make_dir("/D/EMPTY", created=MICROS)
        writer.write_file("/D/F", chunks=iter([b"backed up"]), size=9, created=MICROS, modified=MICROS,
                          attr_changed=MICROS)
    yield volume
    volume.close()


BACKUP_OPERATIONS = {
    "write_bytes": lambda v: v.write_bytes("/D/NEW", b"x"),
    "write_bytes_replace": lambda v: v.write_bytes("/D/F", b"x"),
    "open_read": lambda v: v.open("/D/F", "rb"),
    "open_text_read": lambda v: v.open("/D/F", "r"),
    "read_bytes": lambda v: v.read_bytes("/D/F"),
    "open_write": lambda v: v.open("/D/NEW", "wb"),
    "open_append": lambda v: v.open("/D/F", "ab"),
    "open_exclusive": lambda v: v.open("/D/NEW", "x"),
    "mkdir": lambda v: v.mkdir("/NEWDIR"),
    "rmdir": lambda v: v.rmdir("/D/EMPTY"),
    "remove": lambda v: v.remove("/D/F"),
    "rename_file": lambda v: v.rename("/D/F", "/D/G"),
    "rename_dir": lambda v: v.rename("/D", "/E"),
    "set_attributes": lambda v: v.set_attributes("/D/F", read_only=True),
    "write_chunks": lambda v: v.write_chunks("/D/NEW", iter([b"x"]), size=1),
    # The classes of the handles ``open`` gives, made by a program itself (hunt29c F1).
    "reader_class": lambda v: openfile.VolumeReader(v, "/D/F").readall(),
    "writer_class": lambda v: _write_and_close(openfile.VolumeWriter(v, "/D/F", "w")),
    "append_class": lambda v: _write_and_close(openfile.VolumeWriter(v, "/D/F", "a")),
}


def _write_and_close(writer) -> None:
    writer.write(b"not through CPYOPT")
    writer.close()


@pytest.mark.parametrize("operation", sorted(BACKUP_OPERATIONS))
def test_backup_volume_refuses_user_programs(library, backup, operation):
    index_before = dump_index(library, "BVOL1")
    data_before = read_data(library, "BVOL1")
    with pytest.raises(errors.NotAllowedError) as info:
        BACKUP_OPERATIONS[operation](backup)
    assert info.value.exit_code == 5
    assert info.value.message_id == "OPV0101"
    assert dump_index(library, "BVOL1") == index_before
    assert read_data(library, "BVOL1") == data_before


def test_a_user_program_changes_a_label_only_as_chgoptvol_may(library, backup):
    """``change_label`` keeps CHGOPTVOL's rules: a backup's threshold is 99 for life, and no
    other label field (its type, its primary) can be given."""
    index_before = dump_index(library, "BVOL1")
    with pytest.raises(errors.NotAllowedError) as info:
        backup.change_label(threshold=50)
    assert info.value.message_id == "OPV0102"
    with pytest.raises(TypeError):
        backup.change_label(type=VolumeType.PRIMARY)
    assert dump_index(library, "BVOL1") == index_before
    backup.change_label(text="Backup of PVOL1")  # TEXT may change, as CHGOPTVOL allows
    assert backup.info().text == "Backup of PVOL1" and backup.info().threshold == 99


def test_backup_volume_can_be_listed(backup):
    assert backup.listdir("/D") == ["EMPTY", "F"]
    info = backup.stat("/D/F")
    assert info.size == 9
    assert to_micros(info.created) == MICROS  # the primary's dates were kept
    assert [top for top, _, _ in backup.walk()] == ["/", "/D", "/D/EMPTY"]
    assert backup.info().threshold == 99


def test_backup_writer_only_for_backup_volumes(primary):
    with pytest.raises(errors.NotAllowedError):
        with primary.backup_writer():
            pass


# ----------------------------------------------------------------------------- read-only media


def _install_cdrom(library, vol="CD001"):
    with library.locked():
        library.install(vol, replace=False, label={
            "volume": vol, "type": "*PRIMARY", "media_type": "*CD-ROM", "media_format": "*ISO9660",
            "sector_size": 2048, "capacity": 650 * 1000**2, "threshold": 100, "text": "a disc",
            "created": MICROS, "last_referenced": MICROS, "primary_volume": None,
            "backup_start": None, "backup_end": None, "backup_last_changed": None,
        })
    volume = library.open(vol)
    with volume.mastering_writer() as writer:  # the ISO import path
        writer.make_dir("/DIR", created=MICROS)
        writer.make_dir("/DIR/SUB", created=MICROS)
        writer.write_file("/DIR/FILE", chunks=iter([b"on disc"]), size=7, created=MICROS, modified=MICROS,
                          attr_changed=MICROS)
    return volume


CDROM_OPERATIONS = {
    "write_bytes": lambda v: v.write_bytes("/DIR/NEW", b"x"),
    "replace": lambda v: v.write_bytes("/DIR/FILE", b"x"),
    "open_write": lambda v: v.open("/DIR/NEW", "wb"),
    "open_append": lambda v: v.open("/DIR/FILE", "a"),
    "mkdir": lambda v: v.mkdir("/NEWDIR"),
    "rmdir": lambda v: v.rmdir("/DIR/SUB"),
    "remove": lambda v: v.remove("/DIR/FILE"),
    "rename": lambda v: v.rename("/DIR/FILE", "/DIR/OTHER"),
    "set_attributes": lambda v: v.set_attributes("/DIR/FILE", hidden=True),
}


@pytest.mark.parametrize("operation", sorted(CDROM_OPERATIONS))
def test_cdrom_refuses_writes(library, operation):
    with _install_cdrom(library) as cd:
        index_before = dump_index(library, "CD001")
        with pytest.raises(errors.NotAllowedError) as info:
            CDROM_OPERATIONS[operation](cd)
        assert info.value.message_id == "CPF1F63"
        assert info.value.exit_code == 5
        assert dump_index(library, "CD001") == index_before
        assert cd.read_bytes("/DIR/FILE") == b"on disc"  # reading is fine


def test_cdrom_threshold_and_text_cannot_change(library):
    _install_cdrom(library).close()
    with pytest.raises(errors.NotAllowedError) as info:
        chgoptvol(library, vol="CD001", text="new")
    assert info.value.message_id == "CPF1F63"


def test_mastering_writer_only_for_read_only_media(primary):
    with pytest.raises(errors.NotAllowedError):
        with primary.mastering_writer():
            pass


# ----------------------------------------------------------------------------- HPOFS space and versions


def test_hpofs_keeps_every_version_and_used_only_grows(primary):
    ss = primary.info().sector_size
    assert ss == 2048 and primary.info().media_format is MediaFormat.HPOFS
    used = primary.info().used
    history = [used]

    def expect(sectors):
        nonlocal used
        used += sectors * ss
        assert primary.info().used == used
        history.append(used)

    primary.mkdir("/D")
    expect(1)
    primary.write_bytes("/D/F", b"a" * 5000)
    expect(1 + 3)
    primary.write_bytes("/D/F", b"b" * 2048)
    expect(1 + 1)
    primary.write_bytes("/D/F", b"")
    expect(1)
    versions = primary.versions("/D/F")
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.size for v in versions] == [0, 2048, 5000]
    primary.set_attributes("/D/F", hidden=True)
    expect(1)
    primary.rename("/D/F", "/D/G")
    expect(1)
    primary.remove("/D/G")
    expect(1)
    primary.mkdir("/E")
    expect(1)
    primary.rmdir("/E")
    expect(1)
    with primary.open("/D/H", "wb") as handle:
        handle.write(os.urandom(10_000))
    expect(1 + sectors_for(10_000, ss))
    assert history == sorted(history) and len(set(history)) == len(history)
    # The deleted file's three versions are still recorded (and on the media).
    assert primary.version_count() == 4
    rows = primary.image.conn.execute("SELECT version, live FROM files WHERE name = 'G' OR name = 'F' ORDER BY version").fetchall()
    assert rows == [(1, 0), (2, 0), (3, 0)]
    info = primary.info()
    limit = info.capacity * info.threshold // 100 // ss * ss
    assert info.available == limit - info.used


def test_hpofs_old_version_bytes_stay_on_the_media(primary, library):
    primary.write_bytes("/F", b"first version")
    primary.write_bytes("/F", b"second")
    with open(data_path(library, "PVOL1"), "rb") as handle:
        assert b"first version" in handle.read()
    assert primary.read_bytes("/F") == b"second"


@pytest.mark.parametrize("medtype,medfmt", [(MediaType.DVD_RAM, None), (MediaType.ERASE, MediaFormat.UDF)])
def test_udf_frees_space_on_replace_and_delete(library, medtype, medfmt):
    make_volume(library, "UDF1", medtype=medtype, medfmt=medfmt)
    with library.open("UDF1") as volume:
        info = volume.info()
        assert info.media_format is MediaFormat.UDF and info.threshold == 100
        ss = info.sector_size
        base = info.used
        volume.mkdir("/D")
        assert volume.info().used == base + ss
        volume.write_bytes("/D/F", b"a" * 5000)
        assert volume.info().used == base + ss + 4 * ss
        volume.write_bytes("/D/F", b"b" * 100)  # the old version's 4 sectors are freed
        assert volume.info().used == base + ss + 2 * ss
        volume.set_attributes("/D/F", read_only=False)
        volume.rename("/D/F", "/D/G")
        assert volume.info().used == base + ss + 2 * ss
        volume.remove("/D/G")
        assert volume.info().used == base + ss
        volume.rmdir("/D")
        assert volume.info().used == base


# ----------------------------------------------------------------------------- threshold


@pytest.fixture
def small(library):
    make_volume(library, "SMALL", capacity=1 << 20)  # 1M, threshold 95 (*CALC on HPOFS)
    volume = library.open("SMALL")
    yield volume
    volume.close()


def test_write_past_threshold_fails_and_writes_nothing(library, small):
    info = small.info()
    assert (info.capacity, info.threshold, info.sector_size) == (1 << 20, 95, 2048)
    limit_sectors = (1 << 20) * 95 // 100 // 2048
    free = limit_sectors - info.used // 2048
    assert info.available == free * 2048
    small.write_bytes("/FILL", b"f" * (free - 20) * 2048)  # header + payload: free - 19 sectors
    assert small.info().available == 19 * 2048
    index_before = dump_index(library, "SMALL")
    size_before = os.path.getsize(data_path(library, "SMALL"))
    too_big = b"x" * (18 * 2048 + 1)  # 1 header + 19 payload sectors = 20 > 19
    with pytest.raises(errors.VolumeFullError) as info:
        small.write_bytes("/BIG", too_big)
    assert info.value.exit_code == 6
    assert info.value.message_id == "CPF1F61"
    with pytest.raises(errors.VolumeFullError):
        with small.open("/BIG", "wb") as handle:
            handle.write(too_big)
    with pytest.raises(errors.VolumeFullError):
        small.write_chunks("/BIG", iter([too_big]), size=len(too_big))
    assert dump_index(library, "SMALL") == index_before
    assert os.path.getsize(data_path(library, "SMALL")) == size_before
    assert not small.exists("/BIG")
    # Exactly filling the threshold is allowed.
    small.write_bytes("/EXACT", b"e" * 18 * 2048)
    assert small.info().available == 0
    with pytest.raises(errors.VolumeFullError):
        small.mkdir("/ANY")
    with pytest.raises(errors.VolumeFullError):
        small.write_bytes("/EMPTY", b"")


def test_raising_threshold_lets_the_write_through(library, small):
    free = small.info().available // 2048
    small.write_bytes("/FILL", b"f" * (free - 1) * 2048)
    with pytest.raises(errors.VolumeFullError):
        small.write_bytes("/MORE", b"m" * 4096)
    chgoptvol(library, vol="SMALL", threshold=100)  # IBM's recipe (reference §2.6)
    small.write_bytes("/MORE", b"m" * 4096)
    assert small.read_bytes("/MORE") == b"m" * 4096


def _write_both_ways(volumes: dict, path: str, size: int) -> str | None:
    """Write ``size`` bytes at ``path`` with write_bytes on one volume and through a handle
    (in three pieces) on the other; the one outcome both routes give (None: written)."""
    outcomes = []
    for way, volume in volumes.items():
        data = bytes([len(outcomes) + 65]) * size
        try:
            if way == "BYTES":
                volume.write_bytes(path, data)
            else:
                with volume.open(path, "wb") as handle:
                    for piece in (data[: size // 3], data[size // 3 : size // 2], data[size // 2 :]):
                        handle.write(piece)
        except errors.VolumeFullError as exc:
            outcomes.append(str(exc).replace(f"volume {way}:", "volume V:"))
        else:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]
    spaces = {volume.space() for volume in volumes.values()}
    assert len(spaces) == 1, spaces
    return outcomes[0]


@pytest.mark.parametrize("medfmt", [MediaFormat.HPOFS, MediaFormat.UDF])
@pytest.mark.parametrize("name, header", [("G", 1), ("\U0001d11e" * 240, 2)])  # header sectors of its FILE record
def test_a_handle_takes_exactly_the_writes_write_bytes_takes(library, medfmt, name, header):
    """One rule decides (Volume._store's): the header a version's path needs, and on UDF the
    space the version it replaces frees."""
    volumes = {}
    for vol in ("BYTES", "HANDLE"):
        make_volume(library, vol, medtype=MediaType.ERASE, medfmt=medfmt, capacity=1 << 20, threshold=100, blksize=1024)
        volumes[vol] = library.open(vol)
    try:
        assert _write_both_ways(volumes, "/F", 600_000) is None
        replaced = _write_both_ways(volumes, "/F", 600_000)  # UDF frees the old version's space first
        assert (replaced is None) == (medfmt is MediaFormat.UDF)
        limit, used = volumes["BYTES"].space()
        free = (limit - used) // 1024
        assert "CPF1F61" in _write_both_ways(volumes, "/" + name, (free - header) * 1024 + 1)  # a sector too many
        assert _write_both_ways(volumes, "/" + name, (free - header) * 1024) is None  # exactly the room left
        assert volumes["HANDLE"].space() == (limit, limit)
    finally:
        for volume in volumes.values():
            volume.close()


def test_full_batch_is_all_or_nothing(library, small):
    index_before = dump_index(library, "SMALL")
    size_before = os.path.getsize(data_path(library, "SMALL"))
    with pytest.raises(errors.VolumeFullError):
        with small.batch():
            for i in range(1000):
                small.write_bytes(f"/F{i}", b"z" * 3000)
    assert dump_index(library, "SMALL") == index_before
    assert os.path.getsize(data_path(library, "SMALL")) == size_before
    assert small.listdir("/") == []


# ----------------------------------------------------------------------------- read-only files


READ_ONLY_OPERATIONS = {
    "write_bytes": lambda v: v.write_bytes("/D/RO", b"new"),
    "open_write": lambda v: v.open("/D/RO", "wb"),
    "open_text_write": lambda v: v.open("/d/ro", "w"),
    "open_append": lambda v: v.open("/D/RO", "ab"),
    "write_chunks": lambda v: v.write_chunks("/D/RO", iter([b"new"]), size=3),
    "remove": lambda v: v.remove("/D/RO"),
    "rename": lambda v: v.rename("/D/RO", "/D/OTHER"),
    "move": lambda v: v.rename("/D/RO", "/RO"),
}


@pytest.mark.parametrize("fmt", ["hpofs", "udf"])
@pytest.mark.parametrize("operation", sorted(READ_ONLY_OPERATIONS))
def test_read_only_file_refused(library, primary, udf, fmt, operation):
    volume = primary if fmt == "hpofs" else udf
    volume.mkdir("/D")
    volume.write_bytes("/D/RO", b"protected")
    volume.set_attributes("/D/RO", read_only=True)
    vol_id = volume.id
    index_before = dump_index(library, vol_id)
    with pytest.raises(errors.NotAllowedError) as info:
        READ_ONLY_OPERATIONS[operation](volume)
    assert info.value.message_id == "CPF1F37"
    assert info.value.exit_code == 5
    assert dump_index(library, vol_id) == index_before
    assert volume.read_bytes("/D/RO") == b"protected"
    volume.set_attributes("/D/RO", read_only=False)  # clearing the flag is allowed
    volume.write_bytes("/D/RO", b"now writable")
    assert volume.read_bytes("/D/RO") == b"now writable"


def test_udf_rmdir_frees_a_two_sector_directory_record(tmp_path):
    """A long multi-byte directory name takes a two-sector record at 1024-byte sectors; rmdir frees both."""
    from datetime import datetime, timedelta, timezone

    from optvol.initialize import inzopt
    from optvol.library import Library
    from optvol.model import MediaFormat, MediaType

    moments = iter(datetime(2026, 5, 1, tzinfo=timezone.utc) + timedelta(seconds=n) for n in range(100))
    library = Library(tmp_path / "lib", clock=lambda: next(moments))
    inzopt(library, vol="U", medtype=MediaType.ERASE, medfmt=MediaFormat.UDF, blksize=1024, now=next(moments))
    with library.open("U") as volume:
        before = volume.info().used
        name = "\U0001d11e" * 240  # 240 characters, 960 bytes of UTF-8
        volume.mkdir("/" + name)
        assert volume.info().used - before == 2 * 1024
        volume.rmdir("/" + name)
        assert volume.info().used == before


def test_a_threshold_lowered_inside_a_batch_binds_the_rest_of_the_batch(library):
    """hunt-api F9: change_label(threshold=...) inside a batch left the writes after it under
    the threshold the batch began with (a volume ended 4 x past its new limit), and label()
    still showed the old label inside the batch."""
    make_volume(library, "PVOL1", capacity=64 << 20)
    with library.open("PVOL1") as volume:
        with pytest.raises(errors.OptvolError, match="CPF1F61"):
            with volume.batch():
                volume.write_bytes("/before.bin", b"b" * (1 << 20))
                volume.change_label(threshold=5, text="lowered")
                assert volume.label()["threshold"] == 5 and volume.label()["text"] == "lowered"
                volume.write_bytes("/over.bin", b"o" * (8 << 20))  # past 5 % of 64 MiB
        assert volume.listdir("/") == [] and volume.label()["threshold"] != 5
        with volume.batch():
            volume.change_label(threshold=50)
            volume.write_bytes("/under.bin", b"u" * (8 << 20))  # a raised one lets it in, as ever
        assert volume.listdir("/") == ["under.bin"] and volume.label()["threshold"] == 50


def test_the_library_s_relabel_makes_only_a_rename_s_and_cvtoptbku_s_changes(library):
    """hunt-api F6: Library.relabel, public, let a program make a *BACKUP a *PRIMARY, write and
    delete on it, make it a *BACKUP again, and set its fixed threshold to 50, leaving no trace.
    It gives a volume a new ID, or makes a *BACKUP a *PRIMARY (CVTOPTBKU), and nothing else."""
    make_volume(library, "BVOL1", type=VolumeType.BACKUP)
    make_volume(library, "PVOL1")
    for volume, fields, refused in (
        ("BVOL1", {"threshold": 50}, "OPV0005"), ("BVOL1", {"type": "*PRIMARY", "text": "x"}, "OPV0005"),
        ("PVOL1", {"type": "*BACKUP"}, "OPV0005"), ("PVOL1", {"type": "*PRIMARY"}, "only a .BACKUP is made"),
    ):
        with library.locked(), pytest.raises(errors.OptvolError, match=refused):
            library.relabel(volume, fields=fields)
    with library.open("BVOL1") as backup:
        assert (backup.label()["type"], backup.label()["threshold"]) == ("*BACKUP", 99)
    with library.locked():
        library.relabel("PVOL1", fields={"volume": "PVOL2"})
    assert library.volume_ids() == ["BVOL1", "PVOL2"]
