"""ISO 9660 structures as bytes: directory records, Rock Ridge entries, path tables and
volume descriptors (export side).

Pure functions, no I/O. The references:
- ECMA-119 (ISO 9660): §8.4 primary volume descriptor, §9.1 directory record, §9.3 order
  of records, §9.4 path table record; every number is "both-endian" (little then big) or
  one of the two as the field says;
- Joliet: a supplementary volume descriptor with escape sequence ``%/E`` (UCS-2 level 3)
  whose tree names files in UCS-2 big-endian;
- SUSP 1.12 and RRIP 1.09 (Rock Ridge): entries in the system use field of each record
  (SP, RR, CE, PX, TF, NM, ER); what does not fit in a record goes to a continuation area.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache

from optvol import model

SECTOR = 2048
MAX_EXTENT = 0xFFFFF800  # bytes in one extent of a multi-extent file (4 GiB less one sector)
MAX_RECORD = 255
# File flags of a directory record (§9.1.6): bit 0 "existence" (set: the file need not be
# made known to the user, a hidden file to Windows and 7-Zip), bit 1 directory, bit 7 not
# the final record of a multi-extent file.
FLAG_HIDDEN = 0x01
FLAG_DIRECTORY = 0x02
FLAG_ASSOCIATED = 0x04  # an associated file (§9.1.6): HFS hybrids' resource forks
FLAG_MULTI_EXTENT = 0x80
DOT, DOTDOT = b"\x00", b"\x01"

RRIP_ID = b"RRIP_1991A"
RRIP_DESCRIPTION = b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
RRIP_SOURCE = (b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN "
               b"PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.")
RR_PX, RR_NM, RR_CL, RR_PL, RR_RE, RR_TF = 0x01, 0x08, 0x10, 0x20, 0x40, 0x80  # the RRIP 1.09 "RR" entry's flags
TF_TIMES = 0x0F  # TF flags: creation, modify, access, attributes (RRIP 1.09 §4.1.6)
TF_LONG_FORM = 0x80  # TF flag: seventeen-byte dates
NM_CONTINUE = 0x01
NM_MAX = MAX_RECORD - 5  # name bytes in one NM entry

_EPOCH_DAY = date(1970, 1, 1)
# The times a seven-byte date holds (years 1900-2155), in microseconds since the epoch.
SHORT_DATE_FROM = (date(1900, 1, 1) - _EPOCH_DAY).days * 86_400_000_000
SHORT_DATE_UNTIL = (date(2156, 1, 1) - _EPOCH_DAY).days * 86_400_000_000
_LE32, _BE32 = struct.Struct("<I"), struct.Struct(">I")
_VOLUME_SEQUENCE = b"\x01\x00\x00\x01"  # volume sequence number 1, both-endian


def both16(value: int) -> bytes:
    return value.to_bytes(2, "little") + value.to_bytes(2, "big")


def both32(value: int) -> bytes:
    return _LE32.pack(value) + _BE32.pack(value)


@lru_cache(maxsize=4096)
def _civil(day: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number counted from 1970-01-01."""
    moment = _EPOCH_DAY + timedelta(days=day)
    return moment.year, moment.month, moment.day


def utc_fields(micros: int) -> tuple[int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second) in UTC of microseconds since the epoch
    (``model.clamp_micros``'d: an older import stored moments past 9999); the UDF bridge's
    timestamps use it too."""
    day, second = divmod(model.clamp_micros(micros) // 1_000_000, 86_400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return (*_civil(day), hour, minute, second)


def record_date(micros: int) -> bytes:
    """The 7-byte date of a directory record (§9.1.5) in UTC; years outside 1900-2155 are clamped."""
    year, month, day_of_month, hour, minute, second = utc_fields(micros)
    if not 1900 <= year <= 2155:
        return bytes((0, 1, 1, 0, 0, 0, 0)) if year < 1900 else bytes((255, 12, 31, 23, 59, 59, 0))
    return bytes((year - 1900, month, day_of_month, hour, minute, second, 0))


def descriptor_date(moment: datetime | None) -> bytes:
    """The 17-byte date of a volume descriptor (§8.4.26.1) in UTC; None means "not specified"."""
    return b"0" * 16 + b"\x00" if moment is None else long_date(model.to_micros(moment))


def directory_record(identifier: bytes, *, extent: int, size: int, date: bytes, flags: int,
                     system_use: bytes = b"") -> bytes:
    """One directory record (§9.1); its length is even and at most 255 bytes."""
    pad = b"" if len(identifier) % 2 else b"\x00"
    if len(system_use) % 2:
        system_use += b"\x00"
    length = 33 + len(identifier) + len(pad) + len(system_use)
    if length > MAX_RECORD:
        raise ValueError(f"directory record of {length} bytes")
    return b"".join((bytes((length, 0)), both32(extent), both32(size), date, bytes((flags, 0, 0)),
                     _VOLUME_SEQUENCE, bytes((len(identifier),)), identifier, pad, system_use))


def record_length(identifier_length: int, system_use_length: int) -> int:
    """The length ``directory_record`` gives a record with these field lengths."""
    return 33 + identifier_length + (1 - identifier_length % 2) + system_use_length + system_use_length % 2


# ------------------------------------------------------------------ Rock Ridge (SUSP, RRIP)

def sp_entry() -> bytes:
    """SUSP "SP": first entry of the root's "." record; says SUSP is in use."""
    return b"SP\x07\x01\xbe\xef\x00"


def rr_entry(flags: int) -> bytes:
    """RRIP 1.09 "RR": which Rock Ridge entries this record has."""
    return b"RR\x05\x01" + bytes((flags,))


def ce_entry(block: int, offset: int, length: int) -> bytes:
    """SUSP "CE": where this record's system use continues."""
    return b"CE\x1c\x01" + both32(block) + both32(offset) + both32(length)


def cl_entry(block: int) -> bytes:
    """RRIP 1.12 "CL": where the directory relocated from this record's place lies."""
    return b"CL\x0c\x01" + both32(block)


def pl_entry(block: int) -> bytes:
    """RRIP 1.12 "PL" (in a relocated directory's ".."): where its parent lies."""
    return b"PL\x0c\x01" + both32(block)


def re_entry() -> bytes:
    """RRIP 1.12 "RE": this record is a relocated directory's, in the relocation directory."""
    return b"RE\x04\x01"


def er_entry() -> bytes:
    """SUSP "ER": the Rock Ridge extension reference (in the root's continuation area)."""
    head = bytes((len(RRIP_ID), len(RRIP_DESCRIPTION), len(RRIP_SOURCE), 1))
    body = head + RRIP_ID + RRIP_DESCRIPTION + RRIP_SOURCE
    return b"ER" + bytes((4 + len(body), 1)) + body


def px_entry(mode: int, links: int) -> bytes:
    """RRIP 1.09 "PX": POSIX mode and link count (owner and group 0)."""
    return b"PX\x24\x01" + both32(mode) + both32(links) + both32(0) + both32(0)


def tf_entry(*, created: int, modified: int, attr_changed: int) -> bytes:
    """RRIP "TF": creation, modification, access (= modification) and attribute-change times,
    as seven-byte dates, or as seventeen-byte ones (flag 0x80, §4.1.6) when a time lies
    outside the years 1900-2155 that seven bytes hold."""
    stamps = (created, modified, modified, attr_changed)
    if _short_dates(stamps):
        return b"TF" + bytes((5 + 4 * 7, 1, TF_TIMES)) + b"".join(record_date(stamp) for stamp in stamps)
    return b"TF" + bytes((5 + 4 * 17, 1, TF_TIMES | TF_LONG_FORM)) + b"".join(long_date(stamp) for stamp in stamps)


def tf_length(*, created: int, modified: int, attr_changed: int) -> int:
    """The length of ``tf_entry`` of these times, without building it."""
    return 5 + 4 * (7 if _short_dates((created, modified, attr_changed)) else 17)


def _short_dates(stamps: tuple[int, ...]) -> bool:
    """Whether seven-byte dates hold all these times."""
    return all(SHORT_DATE_FROM <= stamp < SHORT_DATE_UNTIL for stamp in stamps)


def long_date(micros: int) -> bytes:
    """The 17-byte date (§8.4.26.1) in UTC of any time of the years 1-9999."""
    micros = model.clamp_micros(micros)
    year, month, day_of_month, hour, minute, second = utc_fields(micros)
    return b"%04d%02d%02d%02d%02d%02d%02d\x00" % (year, month, day_of_month, hour, minute, second,
                                                  micros % 1_000_000 // 10_000)


def nm_entries(name: bytes) -> list[bytes]:
    """RRIP "NM": the real name, in as many entries as it takes (all but the last continue)."""
    pieces = [name[start:start + NM_MAX] for start in range(0, len(name), NM_MAX)] or [b""]
    return [b"NM" + bytes((5 + len(piece), 1, NM_CONTINUE if index < len(pieces) - 1 else 0)) + piece
            for index, piece in enumerate(pieces)]


# ------------------------------------------------------------------ ordering and tables

def iso_order(identifier: bytes) -> tuple[bytes, bytes]:
    """§9.3: records sort by name, then extension (both padded with spaces), version ignored (all 1)."""
    name, _, extension = identifier.partition(b";")[0].partition(b".")
    return name, extension


def path_table(entries: Iterable[tuple[bytes, int, int]], *, big_endian: bool) -> bytearray:
    """A path table (§9.4) from (identifier, extent, parent number) in table order."""
    number = _BE32 if big_endian else _LE32
    parent_order = ">H" if big_endian else "<H"
    out = bytearray()  # (one buffer: a table of 65,535 directories takes up to 9 MB)
    for identifier, extent, parent in entries:
        out += bytes((len(identifier), 0)) + number.pack(extent) + struct.pack(parent_order, parent) + identifier
        if len(identifier) % 2:
            out += b"\x00"
    return out


def _text(value: str, length: int, *, joliet: bool) -> bytes:
    encoded = value.encode("utf-16-be") if joliet else value.encode("ascii", "replace")
    padding = b"\x00 " if joliet else b" "
    return (encoded + padding * length)[:length]


def volume_descriptor(*, joliet: bool, volume_id: str, sectors: int, path_table_size: int,
                      l_table: int, m_table: int, root: bytes, created: datetime) -> bytes:
    """The primary (§8.4) or the Joliet supplementary volume descriptor, one sector."""
    body = b"".join((
        bytes((2 if joliet else 1,)), b"CD001\x01\x00",
        _text("OPTVOL", 32, joliet=joliet), _text(volume_id, 32, joliet=joliet), b"\x00" * 8,
        both32(sectors), (b"%/E" + b"\x00" * 29) if joliet else b"\x00" * 32,
        both16(1), both16(1), both16(SECTOR), both32(path_table_size),
        _LE32.pack(l_table), b"\x00" * 4, _BE32.pack(m_table), b"\x00" * 4, root,
        _text("", 128, joliet=joliet), _text("", 128, joliet=joliet), _text("", 128, joliet=joliet),
        _text("OPTVOL", 128, joliet=joliet),
        _text("", 37, joliet=joliet), _text("", 37, joliet=joliet), _text("", 37, joliet=joliet),
        descriptor_date(created), descriptor_date(created), descriptor_date(None), descriptor_date(created),
        b"\x01\x00",
    ))
    return body + b"\x00" * (SECTOR - len(body))


def terminator() -> bytes:
    """The volume descriptor set terminator (§8.3)."""
    return (b"\xffCD001\x01").ljust(SECTOR, b"\x00")
