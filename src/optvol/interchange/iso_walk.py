"""Walking the directory tree of an ISO 9660 image as it lies on disk (import side).

Entries come out one at a time, parents first, read with ``pread`` straight from the
image: memory holds the directories on the way down from the root and never the whole
tree, so an image of a million files imports in the same memory as one of ten. A parser
that builds every record as an object first (pycdlib) needed about 3 KiB per file.

The references, as ``iso9660.py`` (the export side) gives them: ECMA-119 §8.4 and §8.5
(primary and supplementary volume descriptors; Joliet is the supplementary one whose
escape sequence is ``%/@``, ``%/C`` or ``%/E``), §9.1 (directory records; a record never
crosses a sector, a zero length byte means "next sector"), §9.1.5 (the seven-byte date),
§8.4.26.1 (the seventeen-byte one); SUSP 1.12 (SP, CE, ER), RRIP 1.09 (NM, TF, CL, RE, PX, SL) and zisofs' ZF (``zisofs.py``).

The image is untrusted: a record, an extent or a continuation area that does not fit,
a loop, a name that cannot be decoded all end in an exception the caller turns into
OPV0701 (``iso_read.py``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from optvol.interchange.iso9660 import FLAG_DIRECTORY, FLAG_HIDDEN, FLAG_MULTI_EXTENT, TF_LONG_FORM
from optvol.model import wall_micros

DESCRIPTORS_START = 16  # sector of the first volume descriptor
MAX_DESCRIPTORS = 64
MAX_CONTINUATIONS = 32  # CE areas followed for one record
MAX_CONTINUATION_BYTES = 64 << 10  # real ones fit in a sector; a hostile length must not allocate gigabytes
# Continuation bytes one walk may read, as a multiple of the image's size (plus a floor): an
# honest image's CE areas are each one record's, read a few times a walk; a hostile one points
# thousands of records at one chain of 31 areas of 64 KiB (hunt27d F2: a 2 MB image took hours).
CONTINUATION_BUDGET = 8
CONTINUATION_FLOOR = 1 << 20
DIRECTORY_CHUNK = 1 << 20  # bytes of a directory extent read at a time
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
TF_CREATION, TF_MODIFY, TF_ATTRIBUTES = 0x01, 0x02, 0x08
S_IFMT = 0o170000  # the file type bits of a POSIX mode, and the types that are no file or directory
SPECIAL_TYPES = {0o120000: "symbolic link", 0o020000: "character device", 0o060000: "block device",
                 0o010000: "FIFO", 0o140000: "socket"}

_LE32 = struct.Struct("<I")


@dataclass(frozen=True)
class Record:
    """One directory record, with what its SUSP / Rock Ridge entries say."""

    extent: int  # logical block
    size: int
    flags: int
    date: bytes  # the seven-byte recording date
    identifier: bytes
    rr_name: bytes | None = None
    tf: dict[int, bytes] | None = None  # TF flag bit -> timestamp bytes
    child_link: int | None = None  # CL: the block of a relocated directory
    relocated: bool = False  # RE: this is a relocated directory's own record
    zf: bytes | None = None  # ZF: the file is stored compressed (zisofs.py)
    mode: int | None = None  # PX: the POSIX mode, file type bits included
    symlink: bytes | None = None  # SL: the component records of a symbolic link's target

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & FLAG_DIRECTORY)

    @property
    def is_hidden(self) -> bool:
        return bool(self.flags & FLAG_HIDDEN)

    @property
    def continues(self) -> bool:
        """Not the last record of a multi-extent file."""
        return bool(self.flags & FLAG_MULTI_EXTENT)


NameOf = Callable[[Record], str]  # a record's name in one namespace


@dataclass(frozen=True)
class Zones:
    """What an image tells of its dates' offsets from UTC (``quarters``).

    genisoimage keeps a date's year in a signed byte: for a local year from 2028 on it
    writes its zone's offset less 96 quarter hours (a day), less 192 with the byte wrapping
    where the local date is a day ahead of UTC's, and right where it is a day behind. Its
    primary descriptor names it (the application identifier, unless ``-A`` replaced it), and
    the offset of the image's own creation date, which it writes right in any year, is its
    zone (the hint), as every maker's is. cdrtools' mkisofs writes right offsets: it is not
    named here (and its right offsets lie nearest its zone)."""

    maker_bug: bool = False  # made by genisoimage
    hint: int | None = None  # the offset of the image's creation date

    def quarters(self, written: int, year: int) -> int:
        """The offset, in quarter hours east of UTC, of a date of local ``year`` whose offset
        byte reads ``written``. Before 2028: -48..+56 as it is (ECMA-119 stops at +52, but
        zones reach +14:00, Kiritimati, and +13:45, Chatham's summer), anything else UTC.
        From 2028 on, of the readings that are zones (the byte itself, or genisoimage's: it
        less 96 back, wrapped or not, or less 192 wrapped), the one nearest the image's own
        zone (a maker writes every date in one zone, and the byte itself wins a tie); without
        that zone, the byte itself if it is one, except in genisoimage's images (then its
        same-day reading first), and else genisoimage's (``-A`` may have replaced its name)."""
        if year < 2028:
            return written if -48 <= written <= 56 else 0
        theirs = [q for q in (written + 96, written - 160, written - 64) if -48 <= q <= 56]
        readings = ([written] if -48 <= written <= 56 else []) + theirs
        if not readings:
            return 0
        if self.hint is not None:
            return min(readings, key=lambda q: abs(q - self.hint))
        return theirs[0] if self.maker_bug and theirs else readings[0]


UNTOLD = Zones()  # an image that names no maker and gives no creation date


def zones_of(primary: bytes) -> Zones:
    """The ``Zones`` a primary volume descriptor tells (its application identifier, §8.4.32,
    and the offset of its creation date, §8.4.26)."""
    created, offset = primary[813:829], struct.unpack_from("b", primary, 813 + 16)[0]
    hint = offset if created.isdigit() and created != b"0" * 16 and -48 <= offset <= 56 else None  # (zeros: none)
    return Zones(maker_bug=primary[574:702].lstrip(b" ").upper().startswith(b"GENISOIMAGE"), hint=hint)


@dataclass(frozen=True)
class Volume:
    """The descriptors' part that the walk needs."""

    identifier: str
    block: int
    root: Record
    joliet_root: Record | None
    enhanced_root: Record | None  # the ISO 9660:1999 tree's, named by an enhanced volume descriptor
    susp_skip: int | None  # None: no SUSP on this image; else the SP entry's skip length
    rock_ridge: bool
    udf: bool
    zones: Zones = UNTOLD


class Image:
    """An open image file: bounded reads by byte offset."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.continuation_left = 0
        self.new_walk()

    def new_walk(self) -> None:
        """Give a walk of the tree its budget of Rock Ridge continuation bytes."""
        self.continuation_left = CONTINUATION_BUDGET * self.size + CONTINUATION_FLOOR

    def continuation(self, offset: int, length: int) -> bytes:
        """A Rock Ridge continuation area, within the walk's budget."""
        self.continuation_left -= length
        if self.continuation_left < 0:
            raise ValueError(f"its Rock Ridge continuation areas add up to more than {CONTINUATION_BUDGET} times the"
                             " image's size (records that share them, read again and again)")
        return self.read(offset, length, "a Rock Ridge continuation area")

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"{what} lies beyond the end of the image")
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise ValueError(f"{what} lies beyond the end of the image")
        return data


# --------------------------------------------------------------------- descriptors


def read_volume(image: Image) -> Volume:
    """The primary descriptor (and Joliet's supplementary one), whether SUSP, Rock Ridge
    and a UDF recognition sequence are there.

    ECMA-119 §6.7: the descriptors run from sector 16 to a terminator (type 255). ECMA-167
    2/8.3: a UDF bridge follows it with an extended area, BEA01, then NSR02 or NSR03, then
    TEA01. Nothing after that is looked at, so the data of a file can never pass for a
    descriptor (an ISO image stored on the disc, say).
    """
    primary = joliet = enhanced = None
    index = DESCRIPTORS_START
    while True:
        if index >= DESCRIPTORS_START + MAX_DESCRIPTORS:
            raise ValueError("the volume descriptors have no terminator")
        sector = image.read(index * 2048, 2048, "a volume descriptor")
        if sector[1:6] != b"CD001":
            raise ValueError("the image has no ISO 9660 volume descriptors" if index == DESCRIPTORS_START
                             else "the volume descriptors have no terminator")
        index += 1
        kind = sector[0]
        if kind == 255:
            break
        if kind == 1 and primary is None:
            primary = sector
        elif kind == 2 and sector[88:91] in JOLIET_ESCAPES and joliet is None:
            joliet = sector
        elif kind == 2 and sector[6] == 2 and enhanced is None:  # ISO 9660:1999 §8.5: version 2
            enhanced = sector
    if primary is None:
        raise ValueError("the image has no ISO 9660 primary volume descriptor")
    udf = False
    for following in range(index, index + MAX_DESCRIPTORS):
        if (following + 1) * 2048 > image.size:
            break
        magic = image.read(following * 2048 + 1, 5, "a volume recognition descriptor")
        if magic in (b"NSR02", b"NSR03"):
            udf = True
        elif magic == b"TEA01" or magic not in (b"BEA01", b"BOOT2", b"CD001"):
            break
    block = struct.unpack_from("<H", primary, 128)[0]
    if block not in (512, 1024, 2048):
        raise ValueError(f"logical block size {block} is not 512, 1024 or 2048")
    root = _record(primary[156:156 + 34], susp_skip=None, image=image, block=block)
    joliet_root = _record(joliet[156:156 + 34], susp_skip=None, image=image, block=block) if joliet else None
    enhanced_root = _record(enhanced[156:156 + 34], susp_skip=None, image=image, block=block) if enhanced else None
    susp_skip, rock_ridge = _root_susp(image, root, block)
    identifier = primary[40:72].decode("ascii", "replace").strip(" \x00")
    return Volume(identifier, block, root, joliet_root, enhanced_root, susp_skip, rock_ridge, udf, zones_of(primary))


def _root_susp(image: Image, root: Record, block: int) -> tuple[int | None, bool]:
    """SUSP 1.12 §5.3: the root's "." record starts its system use field with SP, whose last
    byte is the number of bytes to skip in every other system use field. Rock Ridge is in
    use when that field (or its continuation) names it in an ER entry or holds RR entries."""
    data = image.read(root.extent * block, min(root.size, 2048), "the root directory")
    length = data[0]
    if length < 34:
        raise ValueError("the root directory lacks its '.' record")
    record = data[:length]
    system_use = record[33 + record[32] + (1 - record[32] % 2):]
    if system_use[:2] != b"SP" or len(system_use) < 7 or system_use[4:6] != b"\xbe\xef":
        return None, False
    skip = system_use[6]
    signatures = {signature for signature, _ in _susp_entries(image, system_use, block)}
    return skip, bool(signatures & {b"ER", b"RR", b"NM", b"PX", b"TF"})


# --------------------------------------------------------------------- records


def _record(raw: bytes, *, susp_skip: int | None, image: Image, block: int) -> Record:
    length = raw[0]
    if length < 34 or length > len(raw):
        raise ValueError("a directory record is cut short")
    extent, size = _LE32.unpack_from(raw, 2)[0], _LE32.unpack_from(raw, 10)[0]
    name_length = raw[32]
    if 33 + name_length > length:
        raise ValueError("a directory record's name runs past its end")
    record = Record(extent, size, raw[25], bytes(raw[18:25]), bytes(raw[33:33 + name_length]))
    if susp_skip is None:
        return record
    system_use = raw[33 + name_length + (1 - name_length % 2) + susp_skip:length]
    return _with_rock_ridge(record, system_use, image, block)


def _with_rock_ridge(record: Record, system_use: bytes, image: Image, block: int) -> Record:
    name, tf, child_link, relocated, zf, mode, symlink = None, None, None, False, None, None, None
    for signature, entry in _susp_entries(image, system_use, block):
        if signature == b"NM" and len(entry) >= 5:
            if entry[4] & 0x06:  # CURRENT or PARENT: the record's own "." / ".."
                continue
            name = (name or b"") + entry[5:]
        elif signature == b"TF" and len(entry) >= 5:
            tf = _tf(entry)
        elif signature == b"CL" and len(entry) >= 12:
            child_link = _LE32.unpack_from(entry, 4)[0]
        elif signature == b"RE":
            relocated = True
        elif signature in (b"ZF", b"Z2"):  # Z2: zisofs version 2's own mark, refused as ZF's version 2 is
            zf = bytes(entry)
        elif signature == b"PX" and len(entry) >= 12:
            mode = _LE32.unpack_from(entry, 4)[0]
        elif signature == b"SL" and len(entry) >= 5:
            symlink = (symlink or b"") + entry[5:]
    if (name, tf, child_link, zf, mode, symlink) == (None,) * 6 and not relocated:
        return record
    return Record(record.extent, record.size, record.flags, record.date, record.identifier, name, tf, child_link,
                  relocated, zf, mode, symlink)


def _susp_entries(image: Image, area: bytes, block: int) -> Iterator[tuple[bytes, bytes]]:
    """The (signature, whole entry) pairs of a system use area and its CE continuations."""
    for _ in range(MAX_CONTINUATIONS):
        continuation = None
        position = 0
        while position + 4 <= len(area):
            signature, length = bytes(area[position:position + 2]), area[position + 2]
            if length < 4 or position + length > len(area):
                break  # padding, or the end of the area
            entry = area[position:position + length]
            if signature == b"ST":
                break
            if signature == b"CE" and length >= 28:
                continuation = tuple(_LE32.unpack_from(entry, at)[0] for at in (4, 12, 20))
            else:
                yield signature, entry
            position += length
        if continuation is None:
            return
        where, offset, length = continuation
        if length > MAX_CONTINUATION_BYTES:
            raise ValueError(f"a Rock Ridge continuation area of {length} bytes")
        area = image.continuation(where * block + offset, length)
    raise ValueError("Rock Ridge continuation areas chain without end")


def _tf(entry: bytes) -> dict[int, bytes]:
    """RRIP 1.09 §4.1.6: the flags say which timestamps follow, in bit order, each of 7 or 17 bytes."""
    flags = entry[4]
    width = 17 if flags & TF_LONG_FORM else 7
    stamps, position = {}, 5
    for bit in range(7):
        if flags & (1 << bit):
            stamps[1 << bit] = bytes(entry[position:position + width])
            position += width
    return stamps


def records(image: Image, directory: Record, *, block: int, susp_skip: int | None) -> Iterator[Record]:
    """The records of a directory's extent, "." and ".." first (checked, not returned)."""
    start, end = directory.extent * block, directory.extent * block + directory.size
    if start > image.size or end > image.size:
        raise ValueError("a directory's extent lies beyond the end of the image")
    seen, here = 0, start
    while here < end:
        chunk_end = min(end, here // 2048 * 2048 + DIRECTORY_CHUNK)  # a sector boundary, or the end
        chunk = image.read(here, chunk_end - here, "a directory")
        position = 0
        while position < len(chunk):
            absolute = here + position
            length = chunk[position]
            if length == 0:  # the rest of this sector is padding
                position = (absolute // 2048 + 1) * 2048 - here
                continue
            if position + length > len(chunk) or absolute % 2048 + length > 2048:
                raise ValueError("a directory record crosses a sector boundary")
            raw = chunk[position:position + length]
            position += length
            if seen < 2:
                if length < 34 or raw[32] != 1 or raw[33] != seen:
                    raise ValueError("a directory lacks its '.' and '..' records")
                seen += 1
                continue
            record = _record(raw, susp_skip=susp_skip, image=image, block=block)
            if record.identifier in (b"\x00", b"\x01"):
                continue
            yield record
        here = chunk_end
    if seen < 2:
        raise ValueError("a directory lacks its '.' and '..' records")


def directory_of(image: Image, extent: int, *, block: int, susp_skip: int | None) -> Record:
    """The directory whose extent starts at ``extent`` (a Rock Ridge CL target), from its "." record."""
    head = image.read(extent * block, 2048, "a relocated directory")
    return _record(head[:head[0] or 34], susp_skip=susp_skip, image=image, block=block)


# --------------------------------------------------------------------- names and times


def special_kind(record: Record) -> str | None:
    """What a file record is if Rock Ridge says it is no regular file (RRIP 1.09 §4.1.1 PX
    file mode, §4.1.3 SL): "symbolic link", "FIFO", a device or "socket"; else None."""
    if record.symlink is not None:
        return "symbolic link"
    return SPECIAL_TYPES.get(record.mode & S_IFMT) if record.mode is not None else None


def symlink_target(record: Record) -> str:
    """The target of a Rock Ridge symbolic link (RRIP 1.09 §4.1.3.1: component records of
    flags, length and content; flag 1 continues the component, 2 is ".", 4 "..", 8 the root)."""
    area, parts, continued, position = record.symlink or b"", [], False, 0
    while position + 2 <= len(area):
        flags, length = area[position], area[position + 1]
        text = "." if flags & 0x02 else ".." if flags & 0x04 else "" if flags & 0x08 else \
            area[position + 2:position + 2 + length].decode("utf-8", "replace")
        if continued:
            parts[-1] += text
        else:
            parts.append(text)
        continued, position = bool(flags & 0x01), position + 2 + length
    return ("/".join(parts) or "/") if parts else ""


def iso_name(record: Record) -> str:
    """ECMA-119 §7.5: ``NAME.EXT;1``. The version (";" and digits) goes, and then the dot of
    a name without extension (``NAME.;1``); a dot or ";" that is no such part of the name stays.
    d-characters are ASCII, but tools write other bytes too: UTF-8, else Latin-1."""
    name = _lenient(record.identifier)
    if not record.is_dir:
        stem, versioned = _without_version(name)
        name = stem[:-1] if versioned and stem.endswith(".") else stem
    return name


def iso1999_name(record: Record) -> str:
    """ISO 9660:1999 §9.5 (genisoimage -iso-level 4): names as they are, without version."""
    return _lenient(record.identifier)


def joliet_name(record: Record) -> str:
    name = record.identifier.decode("utf-16_be")
    return name if record.is_dir else _without_version(name)[0]


def _without_version(name: str) -> tuple[str, bool]:
    """The name without its version (";1"), and whether it had one."""
    stem, semicolon, version = name.rpartition(";")
    return (stem, True) if semicolon and version.isdigit() and version.isascii() else (name, False)


def _lenient(identifier: bytes) -> str:
    """UTF-8, else Latin-1; a UTF-8 name cut inside its last character (genisoimage cuts an
    ISO 9660:1999 name at 207 bytes) is read without that part, as 7-Zip reads it (hunt24m F1)."""
    try:
        return identifier.decode("utf-8")
    except UnicodeDecodeError as exc:
        whole = identifier[:exc.start]
        if exc.reason == "unexpected end of data" and not whole.isascii():
            return whole.decode("utf-8")
        return identifier.decode("latin-1")


def rock_ridge_name(record: Record) -> str:
    return record.rr_name.decode("utf-8") if record.rr_name else iso_name(record)


def date_micros(stamp: bytes, zones: Zones = UNTOLD) -> int | None:
    """Microseconds of an ECMA-119 date (§9.1.5 seven bytes or §8.4.26.1 seventeen), or None."""
    try:
        if len(stamp) == 7:
            moment = datetime(1900 + stamp[0], stamp[1], stamp[2], stamp[3], stamp[4], stamp[5])
            offset = struct.unpack_from("b", stamp, 6)[0]
        elif len(stamp) == 17:
            digits = stamp[:16].decode("ascii")
            moment = datetime(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]),
                              int(digits[10:12]), int(digits[12:14]), int(digits[14:16]) * 10_000)
            offset = struct.unpack_from("b", stamp, 16)[0]
        else:
            return None
    except (ValueError, UnicodeDecodeError, OverflowError):
        return None
    return wall_micros(moment, 15 * zones.quarters(offset, moment.year))


def record_time(record: Record, zones: Zones = UNTOLD) -> int:
    """The modified time: Rock Ridge's MODIFY stamp, else the recording date."""
    found = date_micros(record.tf[TF_MODIFY], zones) if record.tf and TF_MODIFY in record.tf else None
    if found is None:
        found = date_micros(record.date, zones)
    return 0 if found is None else found


def file_times(record: Record, zones: Zones = UNTOLD) -> tuple[int, int, int]:
    """(modified, created, attribute changed) of a file's last record."""
    modified = record_time(record, zones)
    tf = record.tf or {}
    created = date_micros(tf[TF_CREATION], zones) if TF_CREATION in tf else None  # (0 is the epoch, not "none")
    attr_changed = date_micros(tf[TF_ATTRIBUTES], zones) if TF_ATTRIBUTES in tf else None
    created, attr_changed = (modified if t is None else t for t in (created, attr_changed))
    return modified, created, attr_changed


