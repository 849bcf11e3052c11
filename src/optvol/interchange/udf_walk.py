"""Walking the file system of a UDF image as it lies on disk (import side).

The UDF counterpart of ``iso_walk.py``, for images whose richest names are UDF's: one
directory at a time, read with ``pread``, in memory that does not grow with the image.

The references: ECMA-167 3rd edition (part 3 the volume: the anchor at sector 256, the
volume descriptor sequence with its partition and logical volume descriptors; part 4 the
file system: file set descriptor, file entries and extended file entries, file
identifier descriptors, short and long allocation descriptors, data embedded in a file
entry) and OSTA UDF 2.01 (names in CS0: a compression ID, 8 for one byte a character
and 16 for UTF-16BE, then the characters). One partition map, of type 1, or a sparable
one whose sparing tables move no packet; metadata and virtual partitions (UDF 2.50, UDF
1.50 VAT) and moved packets are refused as not supported. Logical blocks
of 2048 bytes (optical media) or 512, 1024 or 4096 (a disk's UDF, mkudffs's default on a
file). The tree of a bridge image (``export-iso --udf``, ``genisoimage -udf``) and of an
image of UDF alone (``recognized``) are read alike.

The image is untrusted: anything that does not fit raises an exception the caller turns
into OPV0701 (``iso_read.py``).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from optvol.interchange.iso_walk import UNTOLD, Image, Zones
from optvol.interchange.udf import (
    ANCHOR,
    CHAR_DELETED,
    CHAR_HIDDEN,
    CHAR_PARENT,
    FILE_TYPE_DIRECTORY,
    FILE_TYPE_SYMLINK,
    SPECIAL_FILE_TYPES,
    TAG_ANCHOR,
    TAG_EXTENDED_FILE_ENTRY,
    TAG_FILE_ENTRY,
    TAG_FILE_IDENTIFIER,
    TAG_FILE_SET,
    TAG_LOGICAL_VOLUME,
    TAG_PARTITION,
    TAG_TERMINATING,
)
from optvol.model import wall_micros

MAX_SEQUENCE = 64  # descriptors read from the volume descriptor sequence
BLOCK_SIZES = (2048, 512, 1024, 4096)  # logical block sizes tried for the anchor, optical media's first
AD_SHORT, AD_LONG, AD_EMBEDDED = 0, 1, 3
MAX_DIRECTORY_BYTES = 1 << 30  # a directory's identifiers, read a chunk at a time
DIRECTORY_CHUNK = 1 << 20
MAX_SYMLINK_BYTES = 4096  # a symbolic link's path components read to name its target

_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")


@dataclass(frozen=True)
class Volume:
    """Where the partition starts and how long it is (blocks), the root's file entry (block),
    the logical block size, and the logical volume's identifier (its label)."""

    partition_start: int
    partition_length: int
    root: int
    block: int = 2048
    identifier: str = ""


@dataclass(frozen=True)
class Node:
    """A file entry: what kind, its times, its size, and where its data lies (bytes in the image)."""

    is_dir: bool
    modified: bytes
    attr_changed: bytes
    size: int
    extents: tuple[tuple[int, int], ...]
    file_type: int = 5  # the ICB file type (ECMA-167 4/14.6.6)
    created: bytes | None = None  # an extended file entry's creation time (a file entry has none)

    @property
    def special(self) -> str | None:
        """"symbolic link", "FIFO", a device or "socket" for an entry that is neither file nor directory."""
        return SPECIAL_FILE_TYPES.get(self.file_type)


def _tag(data: bytes, expected: int, what: str) -> None:
    """ECMA-167 3/7.2: the identifier, and the checksum of the tag's other 15 bytes."""
    if len(data) < 16 or _U16.unpack_from(data, 0)[0] != expected:
        raise ValueError(f"{what} is not where the image says")
    if sum(data[:4]) + sum(data[5:16]) & 0xFF != data[4]:
        raise ValueError(f"{what} has a bad tag checksum")


def recognized(image: Image) -> bool:
    """Whether the image is UDF alone: its volume recognition sequence (ECMA-167 2/8.3), from
    byte 32768 in descriptors of 2048 bytes (each at the start of a block of its own where
    blocks are larger: 4096), holds BEA01, then NSR02 or NSR03, before TEA01, and no ISO 9660
    descriptor (CD001) at its start (mkudffs, newfs_udf, DVD-RAM)."""
    return any(_recognized(image, step) for step in (2048, 4096))


def _recognized(image: Image, step: int) -> bool:
    for index in range(MAX_SEQUENCE):
        at = 32768 + index * step
        if at + 2048 > image.size:
            return False
        magic = image.read(at + 1, 5, "a volume recognition descriptor")
        if magic in (b"NSR02", b"NSR03"):
            return True
        if magic != b"BEA01" and (magic != b"BOOT2" or index == 0):
            return False
    return False


def _block_size(image: Image) -> int:
    """The logical block size: the one at which an anchor (ECMA-167 3/10.2) lies at block 256,
    naming that block as its own place; 2048 on optical media, 512 on a disk's UDF."""
    for block in BLOCK_SIZES:
        if (ANCHOR + 1) * block > image.size:
            continue
        anchor = image.read(ANCHOR * block, block, "the UDF anchor")
        if _U16.unpack_from(anchor, 0)[0] == TAG_ANCHOR and _U32.unpack_from(anchor, 12)[0] == ANCHOR:
            return block
    return 2048  # none: the anchor's own check below says what is wrong


def read_volume(image: Image) -> Volume:
    block = _block_size(image)
    anchor = image.read(ANCHOR * block, block, "the UDF anchor")
    _tag(anchor, TAG_ANCHOR, "the UDF anchor")
    length, location = _U32.unpack_from(anchor, 16)[0], _U32.unpack_from(anchor, 20)[0]
    partitions: dict[int, tuple[int, int]] = {}
    logical = None
    for index in range(min(length // block, MAX_SEQUENCE)):
        descriptor = image.read((location + index) * block, block, "a UDF volume descriptor")
        kind = _U16.unpack_from(descriptor, 0)[0]
        if kind == TAG_PARTITION:
            partitions[_U16.unpack_from(descriptor, 22)[0]] = (_U32.unpack_from(descriptor, 188)[0],
                                                              _U32.unpack_from(descriptor, 192)[0])
        elif kind == TAG_LOGICAL_VOLUME and logical is None:
            logical = descriptor
        elif kind == TAG_TERMINATING:
            break
    if logical is None or not partitions:
        raise ValueError("the UDF volume has no logical volume or partition descriptor")
    if _U32.unpack_from(logical, 212)[0] != block:
        raise ValueError(f"the UDF logical block size {_U32.unpack_from(logical, 212)[0]} is not the anchor's {block}")
    maps = _U32.unpack_from(logical, 268)[0]
    if maps == 1 and logical[440] == 1:
        number = _U16.unpack_from(logical, 444)[0]
    elif maps == 1 and logical[440] == 2 and bytes(logical[445:468]) == SPARABLE:
        number = _U16.unpack_from(logical, 478)[0]
        _check_nothing_spared(image, logical[440:504], block)
    else:
        raise ValueError(f"UDF {_unsupported_maps(logical, maps)} are not supported")
    if number not in partitions:
        raise ValueError("the UDF partition map names no partition")
    start, size = partitions[number]
    # Only the blocks the image holds can be read: a partition that claims more (hostile, or
    # an image cut short) must not size what the walk allocates (iso_read.Visited: a bit a block).
    size = max(0, min(size, image.size // block - start))
    fsd_block = _U32.unpack_from(logical, 252)[0]
    fsd = image.read((start + fsd_block) * block, block, "the UDF file set descriptor")
    _tag(fsd, TAG_FILE_SET, "the UDF file set descriptor")
    root = _U32.unpack_from(fsd, 404)[0]
    return Volume(start, size, root, block, _dstring(logical[84:212]))


SPARABLE = b"*UDF Sparable Partition"
# OSTA UDF 1.50: the hidden root file that lists a sparable partition's unusable blocks, not a user's file.
NON_ALLOCATABLE = b"\x08Non-Allocatable Space"
_MAP_KINDS = {  # OSTA UDF 2.01 §2.2.8-2.2.10, 2.50 §2.2.10: type 2 partition maps by their identifier
    SPARABLE: "sparable partitions (CD-RW, DVD-RW) beside other partition maps",
    b"*UDF Virtual Partition": "virtual partitions (a VAT: CD-R, DVD-R written in sessions)",
    b"*UDF Metadata Partition": "metadata partitions (UDF 2.50 and later: Blu-ray)",
}


def _check_nothing_spared(image: Image, sparable: bytes, block: int) -> None:
    """A sparable partition (OSTA UDF 2.01 §2.2.9: CD-RW, DVD-RW) reads as a plain one while
    its sparing tables (§2.2.12) move no packet: each entry's original location is then
    0xFFFFFFF0 or more (free, or a spare gone bad). One that moves packets is refused (its
    files would read the old places); so is one whose tables cannot be read. A table counts
    as read only whole: its entries within the size the map gives it, and within the image."""
    count, size = sparable[42], _U32.unpack_from(sparable, 44)[0]
    read = 0
    for index in range(min(count, 4)):
        at = _U32.unpack_from(sparable, 48 + 4 * index)[0] * block
        if size < 56 or at + 56 > image.size:
            continue
        head = image.read(at, 56, "a UDF sparing table")
        entries = _U16.unpack_from(head, 48)[0]
        if head[17:35] != b"*UDF Sparing Table" or 56 + 8 * entries > size or at + 56 + 8 * entries > image.size:
            continue  # not a table, or one cut short: another copy may be whole
        table = image.read(at + 56, 8 * entries, "a UDF sparing table")
        if any(original < 0xFFFFFFF0 for original, _ in struct.iter_unpack("<II", table)):
            raise ValueError("UDF sparable partitions whose packets were moved (a CD-RW or DVD-RW with bad spots)"
                             " are not supported")
        read += 1
    if not read:
        raise ValueError("the sparing tables of the UDF sparable partition cannot be read")


def _unsupported_maps(logical: bytes, maps: int) -> str:
    """What the partition maps of a logical volume descriptor hold that the reader does not follow."""
    kinds, at = [], 440
    for _ in range(min(maps, 8)):
        if at + 2 > len(logical) or logical[at + 1] < 2:
            break
        if logical[at] == 2:
            kinds.append(_MAP_KINDS.get(bytes(logical[at + 5:at + 28]).rstrip(b"\0 "), "metadata or virtual partitions"))
        at += logical[at + 1]
    return " and ".join(dict.fromkeys(kinds)) or "several partition maps"


def _dstring(field: bytes) -> str:
    """OSTA UDF 2.01 §2.1.3: a name in CS0 whose used length is the field's last byte ("" if unreadable)."""
    used = field[-1]
    try:
        return name(field[:used]) if 0 < used < len(field) else ""
    except (ValueError, UnicodeDecodeError):
        return ""


def node(image: Image, volume: Volume, block: int) -> Node:
    """The file entry at logical ``block`` of the partition."""
    if block >= volume.partition_length:
        raise ValueError("a UDF file entry lies outside its partition")
    sector = volume.partition_start + block
    entry = image.read(sector * volume.block, volume.block, "a UDF file entry")
    kind = _U16.unpack_from(entry, 0)[0]
    if kind == TAG_FILE_ENTRY:
        modified, attr_changed, created, ea_at = entry[84:96], entry[96:108], None, 168
    elif kind == TAG_EXTENDED_FILE_ENTRY:  # ECMA-167 4/14.17: a creation time between the two
        modified, attr_changed, created, ea_at = entry[92:104], entry[116:128], bytes(entry[104:116]), 208
    else:
        raise ValueError("a UDF file entry is not where its directory says")
    _tag(entry, kind, "a UDF file entry")
    size = _U64.unpack_from(entry, 56)[0]
    ea_length, ad_length = _U32.unpack_from(entry, ea_at)[0], _U32.unpack_from(entry, ea_at + 4)[0]
    ads_at = ea_at + 8 + ea_length
    if ads_at + ad_length > volume.block:
        raise ValueError("a UDF file entry's descriptors run past its block")
    ad_type = _U16.unpack_from(entry, 34)[0] & 0x07  # ICB tag flags (ECMA-167 4/14.6.8)
    is_dir = entry[27] == FILE_TYPE_DIRECTORY
    if ad_type == AD_EMBEDDED:
        extents = ((sector * volume.block + ads_at, size),) if size else ()
        if size > ad_length:
            raise ValueError("a UDF file entry embeds less data than its size")
    elif ad_type in (AD_SHORT, AD_LONG):
        extents = _extents(entry[ads_at:ads_at + ad_length], volume, long=ad_type == AD_LONG, size=size)
    else:
        raise ValueError(f"UDF allocation descriptors of type {ad_type} are not supported")
    return Node(is_dir, bytes(modified), bytes(attr_changed), size, extents, entry[27], created)


def _extents(ads: bytes, volume: Volume, *, long: bool, size: int) -> tuple[tuple[int, int], ...]:
    """Byte extents of a file's short or long allocation descriptors, cut at its size."""
    width = 16 if long else 8
    extents, left = [], size
    for at in range(0, len(ads) - width + 1, width):
        length_and_type, position = _U32.unpack_from(ads, at)[0], _U32.unpack_from(ads, at + 4)[0]
        length, kind = length_and_type & 0x3FFFFFFF, length_and_type >> 30
        if length == 0 or left == 0:
            break
        if kind != 0:  # 0: recorded and allocated; 1 and 2 read as zeros, 3 continues elsewhere
            raise ValueError("UDF allocation descriptors that continue elsewhere are not supported" if kind == 3
                             else "a UDF file has unrecorded extents")
        if position + -(-length // volume.block) > volume.partition_length:
            raise ValueError("a UDF file's data lies outside its partition")
        take = min(length, left)
        extents.append(((volume.partition_start + position) * volume.block, take))
        left -= take
    if left:
        raise ValueError("a UDF file's extents do not add up to its size")
    return tuple(extents)


def children(image: Image, volume: Volume, directory: Node) -> Iterator[tuple[bytes, int, bool]]:
    """(name in CS0, file entry block, hidden) of each file identifier of a directory but its
    parent and deleted ones."""
    if directory.size > MAX_DIRECTORY_BYTES:
        raise ValueError("a UDF directory is too large")
    pending, first = b"", True
    for offset, length in directory.extents:
        done = 0
        while done < length:
            take = min(DIRECTORY_CHUNK, length - done)
            pending += image.read(offset + done, take, "a UDF directory")
            done += take
            position = 0
            while len(pending) - position >= 38:
                identifier_length, use_length = pending[position + 19], _U16.unpack_from(pending, position + 36)[0]
                total = (38 + use_length + identifier_length + 3) & ~3
                if len(pending) - position < total:
                    break
                record = pending[position:position + total]
                _tag(record, TAG_FILE_IDENTIFIER, "a UDF file identifier")
                characteristics = record[18]
                if characteristics & CHAR_PARENT and not first and not characteristics & CHAR_DELETED:
                    # ECMA-167 4/8.6: only a directory's first identifier names its parent; another
                    # one so marked would leave its file out without a word (hunt27d F5)
                    raise ValueError("a UDF file identifier other than its directory's first is marked as the parent")
                first = False
                if not characteristics & (CHAR_PARENT | CHAR_DELETED):
                    yield (record[38 + use_length:38 + use_length + identifier_length], _U32.unpack_from(record, 24)[0],
                           bool(characteristics & CHAR_HIDDEN))
                position += total
            pending = pending[position:]
    if pending.strip(b"\x00"):
        raise ValueError("a UDF directory ends inside a file identifier")


def symlink_target(image: Image, link: Node) -> str | None:
    """The target of a symbolic link (ECMA-167 4/14.16: path components of type, identifier
    length, version and CS0 identifier; 1 and 2 the root, 3 "..", 4 ".", 5 a name), or None
    if its data is not such components."""
    if link.file_type != FILE_TYPE_SYMLINK or link.size > MAX_SYMLINK_BYTES:
        return None
    data = b"".join(image.read(offset, length, "a UDF symbolic link") for offset, length in link.extents)
    parts, position = [], 0
    try:
        while position + 4 <= len(data):
            kind, length = data[position], data[position + 1]
            identifier = data[position + 4:position + 4 + length]
            parts.append(name(identifier) if kind == 5 else {1: "", 2: "", 3: "..", 4: "."}.get(kind, ""))
            position += 4 + length
    except (ValueError, UnicodeDecodeError):
        return None
    return ("/".join(parts) or "/") if parts else None


def name(cs0: bytes) -> str:
    """OSTA UDF 2.01 §2.1.1: compression ID 8 (one byte a character) or 16 (UTF-16BE)."""
    if not cs0:
        raise ValueError("a UDF file identifier has no name")
    if cs0[0] == 8:  # Latin-1; but UTF-8 bytes stored as 8-bit characters (udfclient) are read as UTF-8
        latin1 = cs0[1:].decode("latin-1")  # where Latin-1 would give C1 controls, which no name holds
        if any("\x80" <= c <= "\x9f" for c in latin1):
            with contextlib.suppress(UnicodeDecodeError):
                return cs0[1:].decode("utf-8")
        return latin1
    if cs0[0] == 16:
        return cs0[1:].decode("utf-16-be")
    raise ValueError(f"UDF name compression {cs0[0]} is not 8 or 16")


def timestamp_micros(stamp: bytes, zones: Zones = UNTOLD) -> int | None:
    """Microseconds of an ECMA-167 1/7.3 timestamp (None when it is not a valid date).

    ECMA-167 allows offsets of -1440..+1440 minutes, but zones run from -12:00 to +14:00.
    genisoimage writes its ISO 9660 offset times 15, a day off from 2028 on (``Zones``):
    -1440 for UTC, which read as 1970-01-01 for every date (Python's timezone() refuses 24
    hours, and the failure read as "no date"). An offset of whole quarter hours is read as
    ``Zones.quarters`` reads ISO 9660's; another one past the zones is no zone: UTC."""
    try:
        kind_and_zone, year = _U16.unpack_from(stamp, 0)[0], _U16.unpack_from(stamp, 2)[0]
        month, day, hour, minute, second, centi, hundreds, micro = stamp[4:12]
        moment = datetime(year, month, day, hour, minute, second, centi * 10_000 + hundreds * 100 + micro)
    except (ValueError, OverflowError, struct.error):
        return None
    offset = kind_and_zone & 0x0FFF
    if offset & 0x800:
        offset -= 0x1000
    if offset % 15 == 0:
        return wall_micros(moment, 15 * zones.quarters(offset // 15, year))
    return wall_micros(moment, offset if -720 <= offset <= 840 else 0)
