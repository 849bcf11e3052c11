"""UDF structures as bytes: the bridge that ``export-iso --udf`` lays beside ISO 9660.

Pure functions, no I/O; the numbers of the standard here serve ``udf_walk.py`` (import)
too. We record OSTA UDF 1.02 (the revision every UDF reader takes, and the one
genisoimage writes) on a read-only partition of 2048-byte blocks. The references:
- ECMA-167 3rd edition: part 1 the basic types (1/7.2.1 charspec, 1/7.2.12 dstring,
  1/7.3 timestamp, 1/7.4 entity identifier); part 2 the volume recognition sequence
  (2/9.2 BEA01, 2/9.3 TEA01); part 3 the volume (3/7.1 extent_ad, 3/7.2 descriptor tag,
  3/9.1 NSR02, 3/10.1-3/10.10 the volume descriptors and the integrity descriptor);
  part 4 the file system (4/14.1 file set descriptor, 4/14.4 file identifier descriptor,
  4/14.6 ICB tag, 4/14.9 file entry, 4/14.14 short and long allocation descriptors);
- OSTA UDF 1.02: 2.1.1 OSTA CS0 (compression ID 8, one byte a character, or 16,
  UTF-16BE), 2.1.2 the OSTA charspec, 2.1.5 entity identifier suffixes, 2.2 the
  descriptors' fixed values, 2.3.4 file identifiers of at most 255 bytes.

Every descriptor starts with a tag whose CRC is CRC-ITU-T (polynomial 0x1021, initial 0)
over the bytes after the tag, which is ``binascii.crc_hqx``.
"""

from __future__ import annotations

import binascii
import struct

from optvol import model
from optvol.interchange.iso9660 import SECTOR, utc_fields

REVISION = 0x0102
TAG_VERSION = 2  # descriptors of an NSR02 volume
TAG_PRIMARY, TAG_ANCHOR, TAG_IMPLEMENTATION_USE, TAG_PARTITION = 1, 2, 4, 5
TAG_LOGICAL_VOLUME, TAG_UNALLOCATED, TAG_TERMINATING, TAG_INTEGRITY = 6, 7, 8, 9
TAG_FILE_SET, TAG_FILE_IDENTIFIER, TAG_FILE_ENTRY, TAG_EXTENDED_FILE_ENTRY = 256, 257, 261, 266
FILE_TYPE_DIRECTORY, FILE_TYPE_REGULAR = 4, 5
# The ICB file types (4/14.6.6) that are neither directory nor file: what import skips.
FILE_TYPE_SYMLINK = 12
SPECIAL_FILE_TYPES = {6: "block device", 7: "character device", 9: "FIFO", 10: "socket",
                      FILE_TYPE_SYMLINK: "symbolic link"}
# File characteristics of a file identifier (4/14.4.3): bit 0 "existence" (set: hidden from
# the user), then directory, deleted, parent.
CHAR_HIDDEN, CHAR_DIRECTORY, CHAR_DELETED, CHAR_PARENT = 0x01, 0x02, 0x04, 0x08
MAX_AD_LENGTH = 0x3FFFF800  # bytes in one allocation descriptor: 30 bits, whole blocks (4/14.14.1.1)
FILE_ENTRY_FIXED = 176  # a file entry's bytes before its allocation descriptors (4/14.9)
MAX_FILE_BYTES = (SECTOR - FILE_ENTRY_FIXED) // 8 * MAX_AD_LENGTH  # what the short ADs of a one-block entry hold
UNSPECIFIED_ID = 0xFFFFFFFF  # uid and gid "not specified" (4/14.9.3, 4/14.9.4)
RECOGNITION_SEQUENCE = 19  # BEA01, NSR02, TEA01 after ISO 9660's descriptors at 16-18 (2/8.3)
MAIN_SEQUENCE, RESERVE_SEQUENCE, INTEGRITY_SEQUENCE = 32, 48, 64  # sectors, as genisoimage lays them
SEQUENCE_SECTORS = 16
ANCHOR = 256

_TAG = struct.Struct("<HHBBHHHI")
_TIMESTAMP = struct.Struct("<Hh8B")
_FILE_ENTRY = struct.Struct("<IHHHBBIHH IIIHBBIQQ 12s12s12sI16s32sQII")  # ICB tag, then 4/14.9 from the uid on
_OSTA_CHARSPEC = b"\x00" + b"OSTA Compressed Unicode".ljust(63, b"\x00")
_DOMAIN = b"*OSTA UDF Compliant"
_DOMAIN_SUFFIX = REVISION.to_bytes(2, "little") + b"\x03"  # hard and soft write-protected (UDF 2.1.5.3)
_UDF_SUFFIX = REVISION.to_bytes(2, "little")


def descriptor(identifier: int, location: int, body: bytes) -> bytes:
    """A descriptor: its tag (3/7.2), then ``body``; ``location`` is the block the tag lies in."""
    head = _TAG.pack(identifier, TAG_VERSION, 0, 0, 0, binascii.crc_hqx(body, 0), len(body), location)
    return head[:4] + bytes((sum(head) & 0xFF,)) + head[5:] + body  # the checksum byte is 0 in the sum


def volume_structure(identifier: bytes) -> bytes:
    """A volume structure descriptor of the recognition sequence (2/9.1): BEA01, NSR02, TEA01."""
    return (b"\x00" + identifier + b"\x01").ljust(SECTOR, b"\x00")


def timestamp(micros: int) -> bytes:
    """A timestamp (1/7.3) in UTC: type 1 (local time) with offset 0."""
    micros = model.clamp_micros(micros)
    centis, rest = divmod(micros % 1_000_000, 10_000)
    hundreds, micro = divmod(rest, 100)
    return _TIMESTAMP.pack(0x1000, *utc_fields(micros), centis, hundreds, micro)


def entity(identifier: bytes, suffix: bytes = b"", *, flags: int = 0) -> bytes:
    """An entity identifier (1/7.4): flags, 23 bytes of identifier, 8 of suffix."""
    return bytes((flags,)) + identifier.ljust(23, b"\x00") + suffix.ljust(8, b"\x00")


_IMPLEMENTATION_ID = entity(b"*OPTVOL")  # who recorded the descriptors (UDF 2.1.5.2)


def cs0(text: str) -> bytes:
    """OSTA CS0 (UDF 2.1.1): compression ID 8 when every character fits a byte, else 16."""
    try:
        return b"\x08" + text.encode("latin-1")
    except UnicodeEncodeError:
        return b"\x10" + text.encode("utf-16-be")


def dstring(text: str, size: int) -> bytes:
    """A fixed-size field (1/7.2.12): CS0 bytes, zeros, and their length in the last byte."""
    data = cs0(text)[:size - 1] if text else b""
    return data.ljust(size - 1, b"\x00") + bytes((len(data),))


def extent_ad(length: int, location: int) -> bytes:
    return struct.pack("<II", length, location)


def long_ad(length: int, block: int, unique: int = 0) -> bytes:
    """A long allocation descriptor (4/14.14.2) in partition 0; its implementation use holds
    the target's unique ID (UDF 2.3.4.3, read by UDF 2.00 and later)."""
    return struct.pack("<IIHHI", length, block, 0, 0, unique & 0xFFFFFFFF)


def short_ads(block: int, size: int) -> bytes:
    """Short allocation descriptors (4/14.14.1) of ``size`` bytes recorded from ``block`` on."""
    ads = bytearray()
    while size > 0:
        length = min(size, MAX_AD_LENGTH)
        ads += struct.pack("<II", length, block)
        block, size = block + length // SECTOR, size - length
    return bytes(ads)


def anchor(location: int) -> bytes:
    """The anchor volume descriptor pointer (3/10.2), at sector 256 and at the last sector:
    where the main and the reserve volume descriptor sequences lie."""
    body = (extent_ad(SEQUENCE_SECTORS * SECTOR, MAIN_SEQUENCE)
            + extent_ad(SEQUENCE_SECTORS * SECTOR, RESERVE_SEQUENCE))
    return descriptor(TAG_ANCHOR, location, body.ljust(496, b"\x00"))


def volume_sequence(start: int, *, volume_id: str, recorded: int, partition: tuple[int, int]) -> list[bytes]:
    """The volume descriptor sequence from sector ``start`` (3/8.4.2): primary, implementation
    use, partition, logical volume, unallocated space and terminating descriptors.

    ``recorded`` (microseconds) stamps the primary descriptor and, in hexadecimal seconds,
    starts the volume set identifier, whose first 16 characters should be unique (UDF 2.2.2.5).
    """
    volume_set = f"{recorded // 1_000_000 & 0xFFFFFFFF:08X}{binascii.crc32(volume_id.encode()):08X}{volume_id}"
    primary = (struct.pack("<II", 0, 0) + dstring(volume_id, 32) + struct.pack("<HHHHII", 1, 1, 2, 2, 1, 1)
               + dstring(volume_set, 128) + _OSTA_CHARSPEC + _OSTA_CHARSPEC + extent_ad(0, 0) + extent_ad(0, 0)
               + entity(b"") + timestamp(recorded) + _IMPLEMENTATION_ID).ljust(496, b"\x00")
    lv_info = (_OSTA_CHARSPEC + dstring(volume_id, 128) + bytes(36 * 3) + _IMPLEMENTATION_ID).ljust(460, b"\x00")
    implementation_use = struct.pack("<I", 1) + entity(b"*UDF LV Info", _UDF_SUFFIX) + lv_info
    start_sector, length = partition
    partition_body = (struct.pack("<IHH", 2, 1, 0) + entity(b"+NSR02", flags=2) + bytes(128)
                      + struct.pack("<III", 1, start_sector, length) + _IMPLEMENTATION_ID).ljust(496, b"\x00")
    logical = (struct.pack("<I", 3) + _OSTA_CHARSPEC + dstring(volume_id, 128) + struct.pack("<I", SECTOR)
               + entity(_DOMAIN, _DOMAIN_SUFFIX) + long_ad(2 * SECTOR, 0) + struct.pack("<II", 6, 1)
               + _IMPLEMENTATION_ID + bytes(128) + extent_ad(2 * SECTOR, INTEGRITY_SEQUENCE)
               + struct.pack("<BBHH", 1, 6, 1, 0))  # one type 1 partition map (3/10.7.2)
    bodies = [(TAG_PRIMARY, primary), (TAG_IMPLEMENTATION_USE, implementation_use.ljust(496, b"\x00")),
              (TAG_PARTITION, partition_body), (TAG_LOGICAL_VOLUME, logical),
              (TAG_UNALLOCATED, struct.pack("<II", 4, 0))]
    return [descriptor(kind, start + index, body) for index, (kind, body) in enumerate(bodies)] + [
        terminating(start + len(bodies))]


def terminating(location: int) -> bytes:
    """A terminating descriptor (3/10.9): it ends a descriptor sequence."""
    return descriptor(TAG_TERMINATING, location, bytes(496))


def integrity(*, recorded: int, next_unique: int, partition_length: int, files: int, directories: int) -> bytes:
    """The logical volume integrity descriptor (3/10.10), closed, at INTEGRITY_SEQUENCE."""
    use = _IMPLEMENTATION_ID + struct.pack("<IIHHH", files, directories, REVISION, REVISION, REVISION)
    body = (timestamp(recorded) + struct.pack("<I", 1) + extent_ad(0, 0) + struct.pack("<Q", next_unique) + bytes(24)
            + struct.pack("<IIII", 1, len(use), 0, partition_length) + use)
    return descriptor(TAG_INTEGRITY, INTEGRITY_SEQUENCE, body)


def file_set(*, recorded: int, volume_id: str, root: int) -> bytes:
    """The file set descriptor (4/14.1) at block 0 of the partition; ``root`` is the root's file entry."""
    body = (timestamp(recorded) + struct.pack("<HHIIII", 3, 3, 1, 1, 0, 0) + _OSTA_CHARSPEC + dstring(volume_id, 128)
            + _OSTA_CHARSPEC + dstring(volume_id, 32) + bytes(64) + long_ad(SECTOR, root)
            + entity(_DOMAIN, _DOMAIN_SUFFIX))
    return descriptor(TAG_FILE_SET, 0, body.ljust(496, b"\x00"))


def permissions(mode: int) -> int:
    """The permissions field (4/14.9.5) of a POSIX mode: read, write, execute of other, group, owner."""
    return (mode & 0o7) | (mode >> 3 & 0o7) << 5 | (mode >> 6 & 0o7) << 10


def file_entry(block: int, *, directory: bool, mode: int, links: int, size: int, ads: bytes, modified: int,
               attr_changed: int, unique: int) -> bytes:
    """A file entry (4/14.9) at ``block``, its data described by the short ADs ``ads``.

    Access and modification times are the modified time; the attribute time is the
    attribute-changed time. No extended attributes.
    """
    icb = (0, 4, 0, 1, 0, FILE_TYPE_DIRECTORY if directory else FILE_TYPE_REGULAR, 0, 0, 0)  # strategy 4 (4/14.6)
    stamp = timestamp(modified)
    body = _FILE_ENTRY.pack(*icb, UNSPECIFIED_ID, UNSPECIFIED_ID, permissions(mode), links, 0, 0, 0,
                            size, -(-size // SECTOR), stamp, stamp, timestamp(attr_changed), 1, bytes(16),
                            _IMPLEMENTATION_ID, unique, 0, len(ads)) + ads
    return descriptor(TAG_FILE_ENTRY, block, body)


def identifier_length(name: bytes) -> int:
    """The bytes a file identifier descriptor of CS0 ``name`` takes, padded to four (4/14.4)."""
    return (38 + len(name) + 3) & ~3


def file_identifier(block: int, *, name: bytes, characteristics: int, entry: int, unique: int) -> bytes:
    """A file identifier descriptor (4/14.4) whose tag lies in ``block``, naming file entry ``entry``.

    The parent's (characteristics CHAR_PARENT | CHAR_DIRECTORY) has no name.
    """
    body = (struct.pack("<HBB", 1, characteristics, len(name)) + long_ad(SECTOR, entry, unique)
            + struct.pack("<H", 0) + name)
    return descriptor(TAG_FILE_IDENTIFIER, block, body.ljust(identifier_length(name) - 16, b"\x00"))
