"""Errors of optvol: one root, families with an exit code, one table of message IDs.

Layer 0. Every condition optvol reports has a message ID listed once in ``MESSAGES``
(and in ``docs/messages.md``). IBM's confirmed IDs (CPF1Fxx, OPT1542, OPT0125) are used
where the meaning matches; every other condition has an ``OPVnnnn`` ID.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


class OptvolError(Exception):
    """Root of every error optvol raises on purpose."""

    exit_code = 70
    reason: str | None = None  # the {reason} field of the text, if its message has one

    def __init__(self, message_id: str, text: str):
        super().__init__(f"{message_id}: {text}")
        self.message_id = message_id
        self.text = text

    def __reduce__(self) -> tuple:
        """Pickle as the same class, ID, text and reason (CPYOPT's read-ahead process sends errors)."""
        return type(self), (self.message_id, self.text), {"reason": self.reason}


class CompletedWithErrors(OptvolError):
    """The command finished but some items failed; its result says which."""

    exit_code = 1


class InvalidError(OptvolError):
    """Invalid command, parameter or value."""

    exit_code = 2


class NotFoundError(OptvolError):
    """Volume, directory or file not found."""

    exit_code = 3


class ExistsError(OptvolError):
    """Volume, directory or file already exists."""

    exit_code = 4


class NotAllowedError(OptvolError):
    """Refused by the volume rules (backup volume, read-only media, WORM, read-only file)."""

    exit_code = 5


class VolumeFullError(OptvolError):
    """The write would pass the volume's threshold."""

    exit_code = 6


class DamagedError(OptvolError):
    """Damaged image or data: a checksum mismatch or a corrupt index."""

    exit_code = 7


class LockedError(OptvolError):
    """The volume, file or library is in use by another process."""

    exit_code = 8


@dataclass(frozen=True)
class Message:
    """One message ID: its family and its text template (``str.format`` fields)."""

    message_id: str
    family: type[OptvolError]
    template: str


_MESSAGE_LIST = [
    # IBM HFS messages (reference §12.2) where the meaning matches.
    Message("CPF1F01", InvalidError, "Directory name {name!r} not valid: {reason}."),
    Message("CPF1F02", NotFoundError, "Directory {path!r} not found on volume {volume}."),
    Message("CPF1F04", ExistsError, "Directory {path!r} already exists on volume {volume}."),
    Message("CPF1F0A", NotAllowedError, "Directory {path!r} on volume {volume} cannot be deleted: {reason}."),
    Message("CPF1F21", InvalidError, "File name {name!r} not valid: {reason}."),
    Message("CPF1F22", NotFoundError, "File {path!r} not found on volume {volume}."),
    Message("CPF1F23", InvalidError, "New name {path!r} is the same as the old name."),
    Message("CPF1F24", ExistsError, "{path!r} already exists on volume {volume}."),
    Message("CPF1F26", LockedError, "File {path!r} on volume {volume} is in use: {reason}."),
    Message("CPF1F28", DamagedError, "File {path!r} on volume {volume} is damaged: {reason}."),
    Message("CPF1F37", NotAllowedError, "File {path!r} on volume {volume} is read-only."),
    Message("CPF1F48", InvalidError, "Path name {path!r} not valid: {reason}."),
    Message("CPF1F61", VolumeFullError, "No free space on volume {volume}: {needed} bytes needed, {available} available under threshold {threshold}%."),
    Message("CPF1F63", NotAllowedError, "Volume {volume} is {media_type} media, which is write protected."),
    # Confirmed OPT messages.
    Message("OPT0125", CompletedWithErrors, "Command {command} completed with errors: {failed} item(s) failed."),
    Message("OPT1542", NotAllowedError, "Operation not supported for the media format of volume {volume}; reason code {reason_code}: {reason}."),
    # optvol's own messages.
    Message("OPV0001", InvalidError, "Volume identifier {volume!r} not valid: {reason}."),
    Message("OPV0002", NotFoundError, "Volume {volume} not found in library {library!r}."),
    Message("OPV0003", ExistsError, "Volume {volume} already exists in library {library!r}."),
    Message("OPV0004", LockedError, "Volume {volume} is in use by another process."),
    Message("OPV0005", InvalidError, "Value {value!r} not valid for {keyword}: {reason}."),
    Message("OPV0006", InvalidError, "Library {library!r} cannot be used: {reason}."),
    Message("OPV0007", LockedError, "Library {library!r} is locked by another process."),
    Message("OPV0008", InvalidError, "Command not valid: {reason}."),
    Message("OPV0009", InvalidError, "CL command not valid: {where}: {reason}."),
    Message("OPV0010", NotAllowedError, "Library {library!r} is on a read-only file system: {operation} is not possible."),
    Message("OPV0011", NotAllowedError, "Volume {volume} can only be read by this user: {operation} is not possible."),
    Message("OPV0012", NotAllowedError, "Library {library!r} can only be read by this user: {operation} is not possible."),
    Message("OPV0013", InvalidError, "Volume {volume} was opened by another process: a process forked from it opens the volume again."),
    Message("OPV0014", InvalidError, "Volume {volume} is being written by this thread through another open Volume: a write through this one would wait for it for ever."),
    Message("OPV0015", InvalidError, "Volume {volume} is being read in a snapshot by this thread: a write inside it is not possible."),
    Message("OPV0017", InvalidError, "Volume {volume} is being written by this thread: a write begun in the middle of that write is not possible."),
    Message("OPV0018", InvalidError, "Volume {volume} is held by a batch or snapshot of another thread, in whose context this code runs: it is refused rather than wait for that hold, which may wait for it."),
    Message("OPV0019", InvalidError, "Volume {volume} is being written by this thread: a check inside that write would read a state not committed yet."),
    Message("OPV0020", LockedError, "Volume {volume} is open in this program: close it (its Volume and every file handle of it) first."),
    Message("OPV0016", NotAllowedError, "Volume {volume} shares its files with a copy made by hard links: {operation} would change that copy too, and is not possible; remove the copy, or make it without links."),
    Message("OPV0101", NotAllowedError, "Volume {volume} is a *BACKUP volume: {operation} is not allowed; only CPYOPT writes a backup volume and user programs cannot open its files."),
    Message("OPV0102", NotAllowedError, "The threshold of volume {volume} cannot be changed: it was initialized as a *BACKUP volume."),
    Message("OPV0103", NotAllowedError, "TYPE(*BACKUP) needs HPOFS media; {media_type} with {media_format} cannot be a backup volume."),
    Message("OPV0104", NotAllowedError, "Volume {volume} is *WORM media that holds data; it cannot be initialized again."),
    Message("OPV0105", NotAllowedError, "Volume {volume} holds {files} file(s); CHECK(*YES) refuses to initialize it."),
    Message("OPV0106", NotAllowedError, "Volume {volume} is read-only {media_type} media; it cannot be initialized."),
    Message("OPV0107", NotAllowedError, "Volume {volume} has media format {media_format}, which does not allow {operation}."),
    Message("OPV0108", NotAllowedError, "{path!r} on volume {volume} is a directory; {operation} needs a file."),
    Message("OPV0109", NotAllowedError, "{path!r} on volume {volume} is a file; {operation} needs a directory."),
    Message("OPV0110", NotAllowedError, "Cannot {operation} {path!r} into itself."),
    Message("OPV0111", NotAllowedError, "File {path!r} on volume {volume} cannot be written through this handle: a write to it was refused ({reason}); nothing written to it is kept."),
    Message("OPV0401", NotAllowedError, "Volume {volume} is a {actual} volume, not {given}."),
    Message("OPV0402", NotAllowedError, "*BACKUP volume {target} takes data only from a *PRIMARY volume; {source} is {type}."),
    Message("OPV0403", NotAllowedError, "*BACKUP volume {target} belongs to primary volume {owner}; it cannot take data from {source}."),
    Message("OPV0404", NotAllowedError, "TOPATH {topath!r} differs from FROMPATH {frompath!r}; names cannot change when a *BACKUP volume is involved."),
    Message("OPV0405", NotAllowedError, "Backup volume {volume} records no primary volume; name the new one with PRIVOL."),
    Message("OPV0406", NotAllowedError, "Volume {target} cannot take a duplicate of {source}: {reason}."),
    Message("OPV0407", NotAllowedError, "Volume {volume} holds {files} file(s); DUPOPT overwrites it only with CLEAR(*YES)."),
    Message("OPV0201", DamagedError, "Volume {volume} is damaged: {reason}."),
    Message("OPV0202", DamagedError, "Volume image {path!r} has index schema {found}, written by a newer optvol; this optvol reads up to {supported}."),
    Message("OPV0203", VolumeFullError, "Volume {volume} cannot be written: {reason}; nothing was changed."),
    Message("OPV0209", VolumeFullError, "Volume {volume} cannot be written: {reason}; {done}."),
    Message("OPV0204", DamagedError, "Input/output error on volume {volume}: {reason}."),
    Message("OPV0206", DamagedError, "Volume {volume} has {count} damaged item(s): {reason}."),
    Message("OPV0207", CompletedWithErrors, "Volume {volume} recovered; {count} damaged region(s) of its data partition were skipped."),
    Message("OPV0208", CompletedWithErrors, "Volume {volume} was duplicated without {count} damaged file version(s); the result lists them."),
    Message("OPV0301", NotFoundError, "Host path {path!r} not found."),
    Message("OPV0302", InvalidError, "Host path {path!r} cannot be used: {reason}."),
    Message("OPV0303", ExistsError, "Host path {path!r} already exists."),
    # ISO 9660 / UDF interchange (export-iso, import-iso).
    Message("OPV0701", DamagedError, "Image {path!r} is damaged or not an ISO 9660 image: {reason}."),
    Message("OPV0702", InvalidError, "Image {path!r} has volume identifier {found!r}, which is not a valid volume ID ({reason}); name the volume with --vol."),
    Message("OPV0703", DamagedError, "Image {path!r} cannot be imported: {reason}."),
    Message("OPV0704", NotAllowedError, "Volume {volume} cannot be exported as an ISO 9660 image: {reason}."),
    Message("OPV0705", CompletedWithErrors, "Image {path!r} was imported without {count} entry(ies) a volume cannot hold (symbolic links, devices, FIFOs, sockets, resource forks); the result lists them."),
]

MESSAGES: dict[str, Message] = {m.message_id: m for m in _MESSAGE_LIST}


def visible(text: str) -> str:
    """``text`` with each character that does not print (a control, a line separator, a bidi
    mark, a zero-width one: what ``str.isprintable`` refuses) as its Python escape, as
    displays quote names (``render.shown``): an error is one line, and shows what was typed."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def error(message_id: str, **fields: object) -> OptvolError:
    """Build the error for ``message_id`` with its family class and formatted text."""
    message = MESSAGES[message_id]
    # A host path may come as a Path: quoted as the string it is, as every path is quoted
    # ({path!r}), so that no character of it (a newline) can break the one line of an error.
    fields = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in fields.items()}
    # What is not quoted (a command line argparse cites, a CL keyword) is made one visible line too.
    built = message.family(message_id, visible(message.template.format(**fields)))
    if isinstance(fields.get("reason"), str):
        built.reason = fields["reason"]
    return built


def unreadable_index(volume: str, why: object) -> OptvolError:
    """OPV0201 for an index SQLite cannot read: damage, or the log (``-wal``) of another
    index beside it (a restore that replaced the index and left the log)."""
    return error("OPV0201", volume=volume, reason=f"index unreadable ({why}); optvol recover rebuilds it from the"
                 " data partition")


def cause(exc: OptvolError) -> str:
    """What went wrong, to quote inside another message: the error's reason if its message
    has one (``Volume X is damaged: <reason>.``), else its text without the final period."""
    return exc.reason or exc.text.rstrip(".")


def host_write_error(exc: OSError, volume: str) -> OptvolError:
    """What a host error while writing volume ``volume``'s files means: OPV0203 when the host
    file system is full or holds no file that large, OPV0204 for any other I/O error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return error("OPV0203", volume=volume, reason="the host file system is full")
    if exc.errno == errno.EFBIG:  # FAT's 4 GiB, a file size limit (ulimit -f): a limit, not damage
        return error("OPV0203", volume=volume, reason="the host file system (or a limit set for this process) allows"
                                                      " no file that large")
    return error("OPV0204", volume=volume, reason=exc.strerror or str(exc))
