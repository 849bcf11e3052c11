"""The survey of a directory of very many files (hunt27d F4)."""

from __future__ import annotations

import struct
import tracemalloc

from iso_records import both, record
from optvol import model

SECTOR = 2048
ROOT = 21  # the root directory's first sector, after the descriptors and path tables


def _flat_image(path, files: int) -> None:
    """A plain ISO 9660 image whose root holds ``files`` empty files F0000000..."""
    records = bytearray()
    for index, name in enumerate([b"\x00", b"\x01"] + [b"F%07d.;1" % i for i in range(files)]):
        piece = record(name, ROOT if index < 2 else 0, 0, 2 if index < 2 else 0)
        if len(records) % SECTOR + len(piece) > SECTOR:
            records += bytes(SECTOR - len(records) % SECTOR)
        records += piece
    records += bytes(-len(records) % SECTOR)
    for at in (0, records[0]):  # "." and ".." hold the directory's size
        records[at + 10:at + 18] = both(len(records))
    primary = bytearray(SECTOR)
    primary[0:7] = b"\x01CD001\x01"
    primary[40:72] = b"FLAT".ljust(32)
    primary[80:88] = both(ROOT + len(records) // SECTOR)
    primary[120:132] = b"\x01\x00\x00\x01\x01\x00\x00\x01\x00\x08\x08\x00"
    primary[132:140] = both(10)
    primary[140:144], primary[148:152] = struct.pack("<I", 18), struct.pack(">I", 19)
    primary[156:190] = record(b"\x00", ROOT, len(records), 2)
    primary[881] = 1
    terminator = bytearray(SECTOR)
    terminator[0:7] = b"\xffCD001\x01"
    tables = (b"\x01\x00" + struct.pack("<IH", ROOT, 1) + bytes(2)).ljust(SECTOR, b"\x00") + \
        (b"\x01\x00" + struct.pack(">IH", ROOT, 1) + bytes(2)).ljust(SECTOR, b"\x00")
    path.write_bytes(bytes(16 * SECTOR) + primary + terminator + tables + bytes(SECTOR) + records)


def test_the_survey_of_a_flat_directory_keeps_a_few_bytes_a_name(tmp_path):
    """It kept every sibling's name and key in a dict, about 180 bytes a name: an image of
    1,000,000 files in one directory took the survey to 177 MiB (DESIGN: under 150 MiB)."""
    from optvol.interchange.iso_import import _survey
    from optvol.interchange.iso_read import read_tree

    def peak(files: int) -> int:
        image = tmp_path / f"{files}.iso"
        _flat_image(image, files)
        tracemalloc.start()
        with read_tree(str(image)) as tree:
            found = _survey(tree, volume="FLAT", top=(), media_format=model.MediaFormat.ISO9660)
        result = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert found.files == files
        return result

    peak(100)
    small, large = peak(20_000), peak(60_000)
    assert (large - small) / 40_000 < 100, (small, large)


def test_names_alike_are_still_told_apart(tmp_path):
    from optvol.interchange.iso_import import _Siblings

    siblings = _Siblings()
    assert all(siblings.add(f"name {i}") is None for i in range(5_000))  # (the table grows several times)
    assert siblings.add("NAME 17") is False  # another name of one key
    assert siblings.add("name 4999") is True  # the very name
    assert siblings.add("name 5000") is None


def test_names_chosen_for_one_slot_do_not_pile_up(tmp_path):
    """rev27k F1: the digests were BLAKE2b's without a key, so names could be chosen (offline,
    once, for every run) whose digests share their low bits: each then probed past all the
    others, and a directory of them made the survey quadratic. Keyed per process, as str
    hashing is, no name can be chosen so."""
    import hashlib

    from optvol.interchange.iso_import import _Siblings

    count, table = 300, 1024  # (the table's size once it holds 300 names)
    chosen, index = [], 0
    while len(chosen) < count:  # names whose unkeyed digests of their keys all fall on slot 1
        name = f"F{index:07d}"
        unkeyed = int.from_bytes(hashlib.blake2b(model.name_key(name).encode(), digest_size=8).digest(), "little")
        if (unkeyed | 1) & (table - 1) == 1:
            chosen.append(name)
        index += 1
    siblings = _Siblings()
    assert all(siblings.add(name) is None for name in chosen)
    assert len(siblings._keys) == table
    mask = table - 1
    longest = max((slot - key) & mask for slot, key in enumerate(siblings._keys) if key)
    assert longest < 40, longest  # (chosen names at one slot: 299)
    assert siblings.add(chosen[7].lower()) is False and siblings.add(chosen[7]) is True
