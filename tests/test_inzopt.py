"""INZOPT (reference §9, DESIGN §1) and CHGOPTVOL (reference §10.1) as Python functions."""

from __future__ import annotations

import pytest

from optvol import errors
from optvol.change_volume import chgoptvol
from optvol.initialize import inzopt
from optvol.media import MEDIA
from optvol.model import MediaFormat, MediaType, VolumeType, to_micros


def _inz(library, vol, **kwargs):
    return inzopt(library, vol=vol, now=library._clock(), **kwargs)


# ----------------------------------------------------------------------------- INZOPT


def test_defaults(library, clock):
    now = clock.peek()
    result = inzopt(library, vol="pvol1", now=now)
    info = result.volume
    assert result.created is True
    assert (result.erased_files, result.erased_bytes, result.previous_id) == (0, 0, None)
    assert info.volume == "PVOL1"
    assert info.type is VolumeType.PRIMARY
    assert info.media_type is MediaType.ERASE
    assert info.media_format is MediaFormat.HPOFS
    assert info.sector_size == 2048
    assert info.threshold == 95
    assert info.capacity == MEDIA[MediaType.ERASE].default_capacity // 2048 * 2048
    assert info.text == ""
    assert to_micros(info.created) == to_micros(now)
    assert info.files == 0 and info.directories == 1
    assert info.primary_volume is None and info.backup is None


@pytest.mark.parametrize("medtype", [MediaType.WORM, MediaType.ERASE, MediaType.DVD_RAM])
def test_each_writable_media_type_and_its_sector_sizes(library, medtype):
    media = MEDIA[medtype]
    for i, size in enumerate(media.sector_sizes):
        info = _inz(library, f"V{i}", medtype=medtype, blksize=size, capacity=4 << 20).volume
        assert (info.media_type, info.sector_size, info.capacity) == (medtype, size, 4 << 20)
        assert info.media_format is media.default_format
        with library.open(f"V{i}") as volume:
            volume.write_bytes("/F", b"x" * (size + 1))
            assert volume.info().used - info.used == 3 * size  # 1 header + 2 payload sectors
    assert library.volume_ids() == [f"V{i}" for i in range(len(media.sector_sizes))]


@pytest.mark.parametrize("medtype,blksize", [
    (MediaType.DVD_RAM, 1024), (MediaType.DVD_RAM, 4096), (MediaType.ERASE, 512), (MediaType.WORM, 3000),
    (MediaType.ERASE, 16384), (MediaType.ERASE, 0 - 1),
])
def test_invalid_sector_size_refused(library, medtype, blksize):
    with pytest.raises(errors.InvalidError) as info:
        _inz(library, "BAD", medtype=medtype, blksize=blksize)
    assert info.value.exit_code == 2
    assert not library.exists("BAD")


def test_capacity_rounded_to_sectors_and_at_least_1m(library):
    assert _inz(library, "A", capacity=(1 << 20) + 1000).volume.capacity == 1 << 20
    assert _inz(library, "B", capacity=1 << 20).volume.capacity == 1 << 20
    with pytest.raises(errors.InvalidError) as info:
        _inz(library, "C", capacity=(1 << 20) - 1)
    assert info.value.exit_code == 2
    assert library.volume_ids() == ["A", "B"]


def test_capacity_at_most_what_the_index_holds(library):
    """A capacity past a signed 64-bit integer was an OverflowError in SQLite (exit 70)."""
    largest = (1 << 63) - 1
    assert _inz(library, "A", capacity=largest).volume.capacity == largest // 2048 * 2048
    with pytest.raises(errors.InvalidError, match=r"^OPV0005: Value '9223372036854775808' not valid for CAPACITY: at most"):
        _inz(library, "B", capacity=largest + 1)
    assert library.volume_ids() == ["A"]


@pytest.mark.parametrize("medtype", [MediaType.CD_ROM, MediaType.DVD_ROM])
def test_read_only_media_cannot_be_initialized(library, medtype):
    with pytest.raises(errors.NotAllowedError) as info:
        _inz(library, "CD", medtype=medtype)
    assert info.value.message_id == "OPV0106"
    assert not library.exists("CD")


def test_threshold(library):
    assert _inz(library, "T1", threshold=50).volume.threshold == 50
    assert _inz(library, "T2", threshold=100).volume.threshold == 100
    for bad in (0, 101, -5):
        with pytest.raises(errors.InvalidError) as info:
            _inz(library, "T3", threshold=bad)
        assert info.value.exit_code == 2
    assert not library.exists("T3")


def test_backup_gets_99(library):
    info = _inz(library, "B1", type=VolumeType.BACKUP).volume
    assert (info.type, info.threshold, info.media_format) == (VolumeType.BACKUP, 99, MediaFormat.HPOFS)
    assert _inz(library, "B2", type=VolumeType.BACKUP, threshold=50).volume.threshold == 99  # forced
    assert _inz(library, "B3", type=VolumeType.BACKUP, medtype=MediaType.WORM).volume.threshold == 99


@pytest.mark.parametrize("medtype,medfmt", [(MediaType.DVD_RAM, None), (MediaType.ERASE, MediaFormat.UDF),
                                            (MediaType.DVD_RAM, MediaFormat.UDF)])
def test_udf_gets_100(library, medtype, medfmt):
    info = _inz(library, "U1", medtype=medtype, medfmt=medfmt).volume
    assert (info.media_format, info.threshold) == (MediaFormat.UDF, 100)
    assert _inz(library, "U2", medtype=medtype, medfmt=medfmt, threshold=60).volume.threshold == 100


@pytest.mark.parametrize("medtype,medfmt", [(MediaType.WORM, MediaFormat.UDF), (MediaType.DVD_RAM, MediaFormat.HPOFS)])
def test_media_format_must_suit_media_type(library, medtype, medfmt):
    with pytest.raises(errors.InvalidError):
        _inz(library, "X", medtype=medtype, medfmt=medfmt)
    assert not library.exists("X")


@pytest.mark.parametrize("medtype,medfmt", [(MediaType.DVD_RAM, None), (MediaType.ERASE, MediaFormat.UDF)])
def test_backup_on_udf_refused(library, medtype, medfmt):
    with pytest.raises(errors.NotAllowedError) as info:
        _inz(library, "B", type=VolumeType.BACKUP, medtype=medtype, medfmt=medfmt)
    assert info.value.message_id == "OPV0103"
    assert info.value.exit_code == 5
    assert not library.exists("B")


def test_text(library):
    assert _inz(library, "T", text="x" * 50).volume.text == "x" * 50
    with pytest.raises(errors.InvalidError):
        _inz(library, "U", text="x" * 51)
    assert library.volume_ids() == ["T"]


def test_check_yes_refuses_a_volume_with_files(library):
    _inz(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/F", b"precious")
    with pytest.raises(errors.NotAllowedError) as info:
        _inz(library, "PVOL1")  # CHECK(*YES) is the default
    assert info.value.message_id == "OPV0105"
    with library.open("PVOL1") as volume:
        assert volume.read_bytes("/D/F") == b"precious"


def test_check_yes_allows_a_volume_with_only_directories(library):
    _inz(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
    assert _inz(library, "PVOL1", check=True).created is False
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == []


def test_check_no_reinitializes_and_erases(library):
    _inz(library, "PVOL1", text="old", threshold=80, capacity=8 << 20)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/F1", b"1" * 3000)
        volume.write_bytes("/F2", b"2")
        volume.write_bytes("/F2", b"22")
        used = volume.info().used
    result = _inz(library, "PVOL1", check=False, text="new")
    assert result.created is False
    assert result.erased_files == 2
    assert result.erased_bytes == used
    info = result.volume
    assert (info.files, info.directories, info.text) == (0, 1, "new")
    assert info.capacity == 8 << 20  # kept from the volume when not given
    assert info.threshold == 95  # *CALC again
    with library.open("PVOL1") as volume:
        assert volume.listdir("/") == []
        assert volume.version_count() == 0
        assert volume.info().used < used
    assert library.volume_ids() == ["PVOL1"]


def test_reinitialize_cannot_change_media_type(library):
    _inz(library, "PVOL1")
    with pytest.raises(errors.InvalidError):
        _inz(library, "PVOL1", medtype=MediaType.WORM)


def test_worm_that_held_a_file_cannot_be_reinitialized(library):
    _inz(library, "W1", medtype=MediaType.WORM)
    with library.open("W1") as volume:
        volume.mkdir("/D")
    assert _inz(library, "W1", check=False).created is False  # directories only: still allowed
    with library.open("W1") as volume:
        volume.write_bytes("/F", b"once")
        volume.remove("/F")  # deleted, but it was written once
    for check in (True, False):
        with pytest.raises(errors.NotAllowedError) as info:
            _inz(library, "W1", check=check)
        assert info.value.message_id == "OPV0104"
    with library.open("W1") as volume:
        assert volume.version_count() == 1


@pytest.mark.parametrize("route", ["dupopt left it out", "recover lost it"])
def test_worm_whose_index_lost_its_only_file_is_still_written_once(library, route):
    """hunt30e F1: a WORM duplicate whose only version DUPOPT ALWMEDERR(*FILE) left out, or a
    WORM volume whose file record recover could not read, has no row in ``files``; its FILE
    (and DELETE) records stay on the write-once medium: INZOPT and DUPOPT onto it are OPV0104."""
    from integrity_helpers import damage_header, flip
    from optvol.duplicate import dupopt
    from optvol.recovery import recover
    _inz(library, "W1", medtype=MediaType.WORM, blksize=1024)
    with library.open("W1") as volume:
        volume.write_bytes("/F", b"once" * 1000)
    if route == "dupopt left it out":
        flip(library.root / "W1.optvol" / "data.opv", 3 * 1024 + 10)  # a byte of its payload
        dupopt(library, fromvol="W1", tovol="W2", now=library._clock(), allow_media_errors=True)
        target = "W2"
    else:
        damage_header(library.root, "W1", 2, 1024)  # its FILE record's header
        recover(library, vol="W1")
        target = "W1"
    with library.open(target) as volume:
        assert volume.version_count() == 0
        used = volume.info().used
    _inz(library, "SRC", medtype=MediaType.WORM, blksize=1024)
    for attempt in (lambda: _inz(library, target, check=False),
                    lambda: dupopt(library, fromvol="SRC", tovol=target, now=library._clock(), clear=True)):
        with pytest.raises(errors.NotAllowedError) as info:
            attempt()
        assert info.value.message_id == "OPV0104"
    with library.open(target) as volume:
        assert volume.info().used == used


def test_worm_backup_that_recorded_its_primary_cannot_be_reinitialized(library):
    """CPYOPT of a primary holding only directories wrote the WORM backup's claim, control
    records and request log: its history is written once, as a file would be (hunt24b F3)."""
    from optvol.copying import CopyRequest, cpyopt
    _inz(library, "PVOL1")
    _inz(library, "BW", medtype=MediaType.WORM, type=VolumeType.BACKUP)
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
    cpyopt(library, CopyRequest(fromvol="PVOL1", frompath="/", tovol="BW", totype=VolumeType.BACKUP, cpysubdir=True),
           now=library._clock())
    for check in (True, False):
        with pytest.raises(errors.NotAllowedError) as info:
            _inz(library, "BW", check=check, type=VolumeType.BACKUP)
        assert info.value.message_id == "OPV0104"
    with library.open("BW") as volume:
        assert volume.label()["primary_volume"] == "PVOL1"


def test_newvol_renames(library):
    _inz(library, "OLD", text="keep me")
    with library.open("OLD") as volume:
        volume.write_bytes("/F", b"x")
    result = _inz(library, "old", newvol="new", check=False)
    assert result.previous_id == "OLD"
    assert result.volume.volume == "NEW"
    assert result.created is False
    assert library.volume_ids() == ["NEW"]
    assert not library.exists("OLD")
    with library.open("NEW") as volume:
        assert volume.id == "NEW"
        assert volume.listdir("/") == []


def test_newvol_to_existing_id_refused(library):
    _inz(library, "A")
    _inz(library, "B")
    with library.open("A") as volume:
        volume.mkdir("/KEEP")
    with pytest.raises(errors.ExistsError) as info:
        _inz(library, "A", newvol="b")
    assert info.value.message_id == "OPV0003"
    assert info.value.exit_code == 4
    assert library.volume_ids() == ["A", "B"]
    with library.open("A") as volume:
        assert volume.listdir("/") == ["KEEP"]


def test_mounted_newvol_of_a_volume_in_use_is_opv0003_not_a_lock_error(library):
    """INZOPT VOL(*MOUNTED) makes a new volume: one of that name exists (OPV0003, exit 4),
    whether or not another program has it open; nothing of it is touched."""
    _inz(library, "PVOL1")
    with library.open("PVOL1") as volume:  # held open, as a reader or a user program holds it
        volume.mkdir("/KEEP")
        with pytest.raises(errors.ExistsError) as info:
            _inz(library, "*MOUNTED", newvol="PVOL1")
        assert (info.value.message_id, info.value.exit_code) == ("OPV0003", 4)
        assert volume.listdir("/") == ["KEEP"]


def test_newvol_of_missing_volume_refused(library):
    with pytest.raises(errors.NotFoundError):
        _inz(library, "GHOST", newvol="NEW")
    assert library.volume_ids() == []


# ----------------------------------------------------------------------------- CHGOPTVOL


def test_chgoptvol_threshold_and_text(library):
    _inz(library, "PVOL1", text="before")
    info = chgoptvol(library, vol="pvol1", threshold=80)
    assert (info.threshold, info.text) == (80, "before")
    info = chgoptvol(library, vol="PVOL1", text="after")
    assert (info.threshold, info.text) == (80, "after")
    info = chgoptvol(library, vol="PVOL1", text="")  # *BLANK
    assert info.text == ""
    with library.open("PVOL1") as volume:
        assert volume.info().threshold == 80
        limit = info.capacity * 80 // 100 // 2048 * 2048
        assert volume.info().available == limit - volume.info().used


def test_chgoptvol_label_change_costs_a_sector_on_hpofs(library):
    _inz(library, "PVOL1")
    with library.open("PVOL1") as volume:
        before = volume.info().used
    chgoptvol(library, vol="PVOL1", text="t")
    with library.open("PVOL1") as volume:
        assert volume.info().used == before + 2048


def test_chgoptvol_backup_threshold_refused(library):
    _inz(library, "B1", type=VolumeType.BACKUP)
    for value in (99, 100, 50):
        with pytest.raises(errors.NotAllowedError) as info:
            chgoptvol(library, vol="B1", threshold=value)
        assert info.value.message_id == "OPV0102"
    assert chgoptvol(library, vol="B1", text="backup").text == "backup"
    with library.open("B1") as volume:
        assert volume.info().threshold == 99


def test_chgoptvol_udf_threshold(library):
    _inz(library, "U1", medtype=MediaType.DVD_RAM)
    with pytest.raises(errors.NotAllowedError) as info:
        chgoptvol(library, vol="U1", threshold=90)
    assert info.value.message_id == "OPT1542"
    assert "05" in info.value.text
    assert chgoptvol(library, vol="U1", threshold=100).threshold == 100


@pytest.mark.parametrize("bad", [0, 101, -1])
def test_chgoptvol_threshold_range(library, bad):
    _inz(library, "PVOL1")
    with pytest.raises(errors.InvalidError) as info:
        chgoptvol(library, vol="PVOL1", threshold=bad)
    assert info.value.exit_code == 2
    with library.open("PVOL1") as volume:
        assert volume.info().threshold == 95


@pytest.mark.parametrize("bad", [500, 0, -3, 99.5, 50.0, True, "50"])
def test_every_threshold_door_keeps_the_range(library, bad):
    """Volume.change_label (the Python API's CHGOPTVOL) and inzopt took any threshold: 500 let
    a 1 MiB volume take 4 MiB of files, 99.5 left an index CHKOPTVOL calls damaged, "50" was a
    TypeError (hunt24h F2). Each is OPV0005, and nothing changes."""
    _inz(library, "PVOL1", capacity=1 << 20)
    with library.open("PVOL1") as volume:
        with pytest.raises(errors.InvalidError) as info:
            volume.change_label(threshold=bad)
        assert info.value.message_id == "OPV0005"
        assert volume.info().threshold == 95
        with pytest.raises(errors.VolumeFullError):
            volume.write_bytes("/big", b"x" * (2 << 20))
    with pytest.raises(errors.InvalidError):
        chgoptvol(library, vol="PVOL1", threshold=bad)
    with pytest.raises(errors.InvalidError):
        _inz(library, "T9", threshold=bad)
    assert not library.exists("T9")


def test_chgoptvol_missing_volume(library):
    with pytest.raises(errors.NotFoundError):
        chgoptvol(library, vol="NONE", text="x")


def test_chgoptvol_autl_kept_by_the_library(library):
    _inz(library, "PVOL1")
    with library.open("PVOL1") as volume:
        label_before = volume.label()
    chgoptvol(library, vol="PVOL1", autl="mylist")
    assert library.autl("PVOL1") == "MYLIST"
    with library.open("PVOL1") as volume:
        assert volume.label() == label_before  # not on the volume
    # Survives re-opening the library and a re-initialization.
    from conftest import FakeClock
    from optvol.library import Library

    again = Library(library.root, clock=FakeClock())
    assert again.autl("pvol1") == "MYLIST"
    # It follows a rename, and *NONE removes it.
    _inz(again, "PVOL1", newvol="PVOL2", check=False)
    assert again.autl("PVOL2") == "MYLIST" and again.autl("PVOL1") is None
    chgoptvol(again, vol="PVOL2", autl="*NONE")
    assert again.autl("PVOL2") is None
    with pytest.raises(errors.InvalidError):
        chgoptvol(again, vol="PVOL2", autl="BAD/NAME")
    with pytest.raises(errors.InvalidError):
        chgoptvol(again, vol="PVOL2", autl="ELEVENCHARS")


def test_chgoptvol_changes_are_recorded_in_the_data_partition(library):
    """From the data partition alone the label can be rebuilt (DESIGN §3): a LABEL record holds the change."""
    from optvol.image.records import Kind

    _inz(library, "PVOL1")
    chgoptvol(library, vol="PVOL1", threshold=70, text="recorded")
    with library.open("PVOL1") as volume:
        image = volume.image
        sector, last = 0, None
        while sector < image.meta("committed_end"):
            header = image.read_header(sector)
            if header.kind is Kind.LABEL:
                last = header.body["label"]
            sector += header.total_sectors(image.sector_size)
        assert last["threshold"] == 70 and last["text"] == "recorded"


@pytest.mark.parametrize("kwargs,expected", [
    (dict(type="*BACKUP", threshold=50), (VolumeType.BACKUP, MediaFormat.HPOFS, 99)),
    (dict(type="*backup"), (VolumeType.BACKUP, MediaFormat.HPOFS, 99)),
    (dict(medfmt="*UDF", threshold=50), (VolumeType.PRIMARY, MediaFormat.UDF, 100)),
    (dict(medtype="*ERASE", medfmt="*HPOFS", threshold=50), (VolumeType.PRIMARY, MediaFormat.HPOFS, 50)),
])
def test_the_api_takes_ibm_s_strings_as_the_enums_under_the_same_rules(library, kwargs, expected):
    """The enums are StrEnums: "*BACKUP" == VolumeType.BACKUP, so a program passes the string IBM
    writes. It keeps every rule the enum keeps (rev27f F1: a *BACKUP with threshold 50, a
    *BACKUP on *UDF, a UDF volume with threshold 50)."""
    info = _inz(library, "S1", **kwargs).volume
    assert (info.type, info.media_format, info.threshold) == expected
    assert (type(info.type), type(info.media_format)) == (VolumeType, MediaFormat)


@pytest.mark.parametrize("kwargs", [dict(type="*BACKUP", medtype="*DVD-RAM"),
                                    dict(type="*BACKUP", medtype=MediaType.ERASE, medfmt="*UDF")])
def test_a_backup_on_udf_is_refused_by_the_strings_too(library, kwargs):
    with pytest.raises(errors.NotAllowedError) as info:
        _inz(library, "B", **kwargs)
    assert info.value.message_id == "OPV0103"
    assert not library.exists("B")


@pytest.mark.parametrize("kwargs,keyword", [(dict(type="*SECONDARY"), "TYPE"), (dict(medfmt="*FAT"), "MEDFMT"),
                                            (dict(medtype="*TAPE"), "MEDTYPE"), (dict(type=3), "TYPE"),
                                            (dict(type=None), "TYPE")])
def test_a_value_no_enum_has_is_opv0005(library, kwargs, keyword):
    with pytest.raises(errors.InvalidError) as info:
        _inz(library, "X", **kwargs)
    assert info.value.message_id == "OPV0005" and keyword in str(info.value)
    assert not library.exists("X")


def test_reinitializing_with_the_media_type_s_string_is_not_a_change_of_media(library):
    _inz(library, "W1", medtype=MediaType.WORM)
    assert _inz(library, "W1", medtype="*WORM").volume.media_type is MediaType.WORM
