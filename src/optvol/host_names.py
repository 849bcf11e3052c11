"""Names on the host: what a copy from a volume to the host may write there (layer 5,
beside ``transfer.py``, its main user; ``export-iso`` checks its target's directory here too).

A volume keeps apart names that a host file system may take for one (σ and ς on exFAT, a
case-insensitive directory), and holds names the host cannot hold or encode. A copy to the
host asks the host itself (probe files), refuses before anything is copied what it can
tell beforehand, and never replaces a file or directory it made itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import sys
import tempfile
import unicodedata
from collections.abc import Iterator

from optvol import errors
from optvol.image.signals import signals_held


def new_file_beside(target: str | os.PathLike, mode: int | None) -> tuple[int, str | None]:
    """A new file, open for writing, in ``target``'s directory, to be put in its place once
    written (``put_in_place``): a file with no name where the host makes one (O_TMPFILE:
    a copy killed on the way leaves nothing behind, hunt25f F2), else under a hidden name
    of its own (returned; None for the first). With ``mode`` (that of the file it will
    replace), or (None) made as any new file is, 0o666 less the umask or as the
    directory's default ACL says (``tempfile.mkstemp`` left 0o600: every file a copy wrote
    could be read by its owner alone). One that replaces a file is made 0o600 and given
    that file's mode before anything is written: made wider, another user could open it in
    between and read what replaces a private file. A file system that keeps no modes
    (chmod refused or not implemented: FAT through FUSE) keeps its own. Raises OSError."""
    directory = os.path.dirname(os.path.abspath(target))
    fd, temporary = _unnamed_file(directory, 0o666 if mode is None else 0o600), None
    if fd is None:
        fd, temporary = _named_file(directory, 0o666 if mode is None else 0o600)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
    except BaseException:
        discard(fd, temporary)
        raise
    return fd, temporary


def _unnamed_file(directory: str, mode: int) -> int | None:
    """A file with no name in ``directory``, or None where the host makes none (no
    O_TMPFILE in the kernel or the file system, or no /proc to name it through later)."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir(_FD_LINKS):
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode)
    except OSError:  # a refusal that is not about O_TMPFILE comes again from the named file
        return None


def _named_file(directory: str, mode: int) -> tuple[int, str]:
    for _ in range(100):
        temporary = os.path.join(directory, f".optvol-{secrets.token_hex(6)}.part")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no name beside it was free for a temporary file")


_FD_LINKS = "/proc/self/fd"


def put_in_place(fd: int, temporary: str | None, target: str | os.PathLike) -> None:
    """Give the file of ``new_file_beside`` the name ``target``, replacing what is there
    (one rename: a reader sees the old file or the new one, whole). A file with no name is
    linked straight to a name that is free, else under a hidden name first, for the
    rename. Raises OSError; the file is then still to be discarded (``discard``)."""
    if temporary is not None:
        os.replace(temporary, target)
        return
    directory, name = os.path.split(os.path.abspath(target))
    # linkat with AT_SYMLINK_FOLLOW, which Python's os.link uses only with a directory descriptor;
    # O_PATH: a directory that may be written but not listed (0o333, a drop box) takes a copy, as
    # it took the hidden name's rename (O_RDONLY needs read permission: hunt26c F1)
    where = os.open(directory, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.link(f"{_FD_LINKS}/{fd}", name, dst_dir_fd=where, follow_symlinks=True)
            return
        except FileExistsError:
            pass
        # Held: a Ctrl-C just after the hidden name's link left that name for good (rev26a F1);
        # one that comes meanwhile is delivered once the file is in place, whole.
        with signals_held():
            while True:
                hidden = f".optvol-{secrets.token_hex(6)}.part"
                try:
                    os.link(f"{_FD_LINKS}/{fd}", hidden, dst_dir_fd=where, follow_symlinks=True)
                    break
                except FileExistsError:
                    continue
            try:
                os.replace(hidden, name, src_dir_fd=where, dst_dir_fd=where)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(hidden, dir_fd=where)
                raise
    finally:
        os.close(where)


def discard(fd: int | None, temporary: str | None) -> None:
    """Drop a file of ``new_file_beside`` that is not to be put in place (its name, if it
    has one; a file with no name goes with its last descriptor). Closes ``fd`` unless None."""
    if fd is not None:
        os.close(fd)
    if temporary is not None:
        with contextlib.suppress(FileNotFoundError):  # Ctrl-C just after the rename: the file is whole, in place
            os.unlink(temporary)


def mode_to_keep(path: str | os.PathLike) -> int | None:
    """The permission bits of the regular file at ``path`` that a copy will replace (None: none there)."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    return stat.S_IMODE(found.st_mode) & 0o777 if stat.S_ISREG(found.st_mode) else None


def refuse_second_of_a_name(destinations: dict[str, dict[str, list[str]]], path: str) -> None:
    """OPV0302 when two sources of a copy have one name in the host directory they go to:
    the same name, or two the host takes for one (asked of the host)."""
    directory, name = os.path.split(path)
    names = destinations.setdefault(directory, {}).setdefault(_fold(name), [])
    probe = directory
    while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if name in names or any(_host_folds(probe, other, name) for other in names):
        raise errors.error("OPV0302", path=path, reason="two sources have this name in the target (or names the"
                           " host file system takes for one); nothing was copied")
    names.append(name)


def refuse_folded_pair(folds: dict[str, dict[str, str]], path: str, probe: str) -> None:
    """OPV0302 if the host takes ``path``'s name for another name of its directory in this
    tree (asked of the host with probe files: its fold is not quite any of Python's). Keeps
    the names of the directories on the current path only."""
    directory, name = os.path.split(path)
    if directory not in folds:
        _keep_above(folds, directory)
        folds[directory] = {}
    names, key = folds[directory], _fold(name)
    other = names.setdefault(key, name)
    if other != name and _host_folds(probe, other, name):
        raise errors.error("OPV0302", path=path, reason=f"the host file system takes it and {other!r} of the same"
                           " directory for one name, which the volume keeps apart; nothing was copied")


def _host_folds(directory: str, first: str, second: str) -> bool:
    """Whether the host takes two names for one: a probe file of the first, alone in a
    directory of its own, looked for under the second. Only the part where they differ is
    tried (a host folds names a character at a time), so that names near NAME_MAX fit. A
    probe directory the host refuses (read-only) or a name it cannot encode says no (the
    copy itself then says why); a part it cannot name says yes (refused, not risked)."""
    start = len(os.path.commonprefix([first, second]))
    end = len(os.path.commonprefix([first[start:][::-1], second[start:][::-1]]))
    first, second = first[start : len(first) - end], second[start : len(second) - end]
    if not first or not second:  # one is the other with more: no host takes them for one
        return False
    with _probe_room(directory, "fold") as room:  # (after a letter: a part "." or ".." is a name there)
        if room is None:  # a directory the host will not let the copy write: the copy says why
            return False
        try:
            _make(room, "p" + first)
            return os.path.lexists(os.path.join(room, "p" + second))
        except UnicodeEncodeError:  # a name the host's encoding cannot write: the copy says so
            return False
        except OSError:  # a part the host cannot name: taken for one, refused rather than risked
            return True


@contextlib.contextmanager
def _probe_room(directory: str, kind: str) -> Iterator[str | None]:
    """A directory of its own in ``directory`` for probe files, removed after (None where
    the host will not make one, or not under a name it can encode); Ctrl-C is held back
    meanwhile: it would leave the probe in the user's directory."""
    with signals_held():
        try:
            room = tempfile.mkdtemp(dir=directory, prefix=f".optvol-{kind}-")
        except (UnicodeEncodeError, OSError):
            room = None
        try:
            yield room
        finally:
            if room is not None:
                shutil.rmtree(room, ignore_errors=True)


def _make(room: str, name: str) -> None:
    os.close(os.open(os.path.join(room, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))


def host_takes(directory: str, name: str) -> bool:
    """Whether the host makes a file of a name longer than its NAME_MAX in bytes (a probe
    file of that name, removed at once): some file systems count it in characters."""
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return True
    except OSError as exc:
        return exc.errno != errno.ENAMETOOLONG
    os.close(fd)
    os.unlink(path)
    return True


class HostWrites:
    """What a copy to the host made there, which it never replaces with another of its own
    files: where the host folds names the volume keeps apart (σ and ς on exFAT, a
    case-insensitive directory), the copy of one replaced the other's, silently. Inode
    numbers cannot tell (exfat-fuse gives each spelling its own), names can. Whether a file
    system folds names is asked once (``folds_names``); where it does not, nothing is kept.
    Where it does, the names of each directory on the way down, by fold (what was there,
    and what this copy made): memory follows the directories of the current path."""

    def __init__(self):
        self._folding: dict[int, bool] = {}  # by device
        self._dirs: dict[str, dict[str, tuple[str, bool]]] = {}  # directory -> fold -> (name, made by this copy)
        self._plain: str | None = None  # the last directory found on a file system that does not fold

    def make_dir(self, host_path: str) -> None:
        """Make a directory of the copy, unless it is there (OPV0302 for one another of its
        names took, ``check``)."""
        path = os.path.abspath(host_path)
        self.check(path, "directory")
        if not os.path.isdir(path):
            os.makedirs(path)
            self.made(path)

    def check(self, host_path: str, what: str = "file") -> None:
        """OPV0302 if the host takes ``host_path`` for another name this copy made there."""
        directory, name = os.path.split(os.path.abspath(host_path))
        names = self._names(directory)
        found = names.get(_fold(name)) if names is not None else None
        if found is not None and found[1] and found[0] != name and _host_folds(directory, found[0], name):
            raise errors.error("OPV0302", path=host_path, reason=f"this copy made the {what} {found[0]!r} there,"
                               " and the host file system takes the two names for one")

    def made(self, host_path: str) -> None:
        directory, name = os.path.split(os.path.abspath(host_path))
        names = self._names(directory)
        if names is not None:
            names[_fold(name)] = (name, True)

    def _names(self, directory: str) -> dict[str, tuple[str, bool]] | None:
        """The names in ``directory`` by fold, if its file system folds names (else None)."""
        names = self._dirs.get(directory)
        if names is not None or directory == self._plain:  # (a file after a file: no stat each time)
            return names
        try:
            device = os.stat(directory).st_dev
        except OSError:  # not there yet: what the copy makes
            return None
        if device not in self._folding:
            self._folding[device] = folds_names(directory)
        if not self._folding[device]:
            self._plain = directory
            return None
        _keep_above(self._dirs, directory)  # the directories the copy has left go
        with os.scandir(directory) as entries:
            names = {_fold(entry.name): (entry.name, False) for entry in entries}
        self._dirs[directory] = names
        return names


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._- ")  # never tried


class HostCharacters:
    """Characters of a volume's names that the host cannot hold in a file name (exFAT and
    FAT: ``:`` and ``|``, which HPOFS names may hold, and control characters): a copy stopped
    at the first such name, the files before it copied, those after it neither copied nor
    named. Every other ASCII character than ``_PLAIN`` is tried once per file system, with a
    probe file in a directory of its own where the copy goes (what file systems refuse is
    ASCII; a name of 3,000 distinct CJK characters cost 3,000 probes, 1.4 s on ext4)."""

    def __init__(self):
        self._takes: dict[tuple[int, str], bool] = {}  # (device, character) -> the host names files with it
        self._last: tuple[str, str, int] | None = None  # the last directory: where it is tried, and its device

    def refuse(self, path: str) -> None:
        """OPV0302 if the host cannot hold a character of ``path``'s name (its directory, or
        the nearest one above that is there, is where the character is tried)."""
        directory, name = os.path.split(path)
        odd = {character for character in set(name) - _PLAIN if character < "\x80"}
        if not odd:
            return
        if self._last is None or self._last[0] != directory:
            there = directory
            while not os.path.isdir(there) and os.path.dirname(there) != there:
                there = os.path.dirname(there)
            try:
                self._last = (directory, there, os.stat(there).st_dev)
            except OSError:  # the copy itself says why
                return
        _, there, device = self._last
        for character in sorted(odd):
            if (device, character) not in self._takes:
                self._takes[device, character] = _takes_character(there, character)
            if not self._takes[device, character]:
                raise errors.error("OPV0302", path=path, reason=f"the host file system cannot hold the character"
                                   f" {character!r} in a name; nothing was copied")


def _takes_character(directory: str, character: str) -> bool:
    """Whether the host makes a file whose name holds ``character``; a host that cannot be
    asked (a directory it will not let the copy write, an encoding it lacks) says yes: the
    copy itself then says why."""
    with _probe_room(directory, "char") as room:
        if room is None:
            return True
        try:
            _make(room, f"p{character}p")
            return True
        except UnicodeEncodeError:
            return True
        except OSError as exc:  # exfat-fuse says ENOENT, the kernel's FAT and exFAT EINVAL
            return exc.errno not in (errno.EINVAL, errno.ENOENT, errno.EILSEQ)


def _keep_above(by_directory: dict, directory: str) -> None:
    """Drop the entries of directories that are not ``directory`` or above it."""
    for other in [d for d in by_directory if not (directory + "/").startswith(d.rstrip("/") + "/")]:
        del by_directory[other]


def folds_names(directory: str) -> bool:
    """Whether the file system of ``directory`` takes names that differ in case, or a final
    ς for σ, for one: a probe file is made, and looked for under those spellings."""
    with signals_held():  # Ctrl-C in the middle would leave the probe in the user's directory
        try:
            fd, probe = tempfile.mkstemp(dir=directory, prefix=".optvol-fold-σa-")
        except (OSError, UnicodeEncodeError):  # a directory this user may not write, a legacy encoding: the copy says so
            return False
        try:
            os.close(fd)
            head, tail = os.path.split(probe)
            return any(os.path.lexists(os.path.join(head, other)) for other in (tail.replace("σ", "ς"), tail.upper()))
        finally:
            os.unlink(probe)


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def check_target_directory(directory) -> None:
    """The directory a host target goes into: OPV0301 where nothing is there (a link to
    nothing too, as export-iso, which follows links, finds it), OPV0302 where something is
    that is no directory (a file: hunt-contract F9), alike for ``cp`` and ``export-iso``
    (review 23c F4)."""
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise errors.error("OPV0302", path=directory, reason="it is not a directory")
        raise errors.error("OPV0301", path=directory)


def refuse_a_link(host_path: str, *, before: bool = False) -> None:
    """OPV0302 for a directory of a tree copy that is a symbolic link where the copy goes: the
    copy wrote through it, into the directory it names, outside the target, replacing the
    files of the tree's names there (hunt28d F2); GNU cp refuses it too. ``before``: checked
    before anything was copied."""
    if os.path.islink(host_path):
        raise errors.error("OPV0302", path=host_path, reason="it is a symbolic link, and a tree copy writes into no"
                           " directory through one" + ("; nothing was copied" if before else ""))


def refuse_no_file(host_path: str) -> None:
    """OPV0302 before anything is copied for an entry of a host tree that a volume cannot take
    as a file (what the copy reads through a link): a link to a directory or to nothing, a
    device, a FIFO, a socket. The copy stopped there, the batches before it kept."""
    try:
        found = os.stat(host_path)
    except FileNotFoundError:  # a link to nothing: not found, as when the copy reached it
        raise errors.error("OPV0301", path=host_path) from None
    except OSError as exc:
        raise errors.error("OPV0302", path=host_path, reason=f"{exc.strerror or exc}; nothing was copied") from None
    if not stat.S_ISREG(found.st_mode):
        raise errors.error("OPV0302", path=host_path, reason="it is not a regular file (a link to a directory, a"
                           " device, a FIFO or a socket), which a volume cannot hold; nothing was copied")


def check_host_name(host_path: str) -> None:
    """OPV0302 for a path (a volume's names below a host directory) that the host's file
    name encoding cannot write: a legacy locale's, or ASCII where Python's UTF-8 mode is off."""
    try:
        os.fsencode(host_path)
    except UnicodeEncodeError:
        raise errors.error("OPV0302", path=host_path, reason="the host's file name encoding"
                           f" ({sys.getfilesystemencoding()}) cannot write this name") from None
