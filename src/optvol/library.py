"""The library: the set of volume images in one directory (DESIGN §2 layer 4).

Layout (docs/format.md §1)::

    <library>/.optvol-library   marker: this directory is an optvol library
    <library>/.lock             flock taken by create, rename, remove, re-initialize
    <library>/.journal.json     an operation in progress (rolled forward when found)
    <library>/.tmp/             images being built and images being removed
    <library>/autl.json         authorization lists (kept by the library, not the volume)
    <library>/<VOLID>.optvol/   one volume image per volume

Volume IDs are folded to upper case and checked before they become names, so an ID can
never name anything outside the library. A rename or re-initialization first writes a
journal, then acts; a process that dies half-way leaves a journal that the next user of
the library completes, so the operation either happened or did not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from optvol import errors, media, model
from optvol.image.connection import host_failure
from optvol.image.datapart import fsync_dir
from optvol.image.image import DATA_FILE, INDEX_FILE, VolumeImage
from optvol.image.locks import lock_exclusive, read_only_error
from optvol.image.signals import signals_held
from optvol.model import VolumeType
from optvol.volume import Clock, Volume
from optvol.volume_rows import check_paths_fit

MARKER = ".optvol-library"
LOCK = ".lock"
JOURNAL = ".journal.json"
_NEVER_RENAMED = (errno.EXDEV, errno.EBUSY)  # a directory of a lower overlayfs layer, a mount point
TMP = ".tmp"
AUTL = "autl.json"
SUFFIX = ".optvol"
LOCK_WAIT_SECONDS = 60.0
JOURNAL_WAIT_SECONDS = 2.0  # an open meeting a journal that renames its volume waits for it to be completed
_HOST_WRITE_ERRORS = ("OPV0203", "OPV0204")  # a full host disk, a host I/O error while writing


def resolve_root(explicit: str | None, environ: Mapping[str, str], home: Path) -> Path:
    """``--library DIR``, else ``$OPTVOL_LIBRARY``, else ``~/.local/share/optvol``. An empty
    ``--library`` (a script's unset variable) names nothing, and is refused rather than taken
    for the default library; an empty ``$OPTVOL_LIBRARY`` is unset, as XDG has it."""
    if explicit is not None:
        if not explicit:
            raise errors.error("OPV0006", library=explicit, reason="an empty path names no directory")
        return Path(explicit).expanduser().absolute()
    if environ.get("OPTVOL_LIBRARY"):
        return Path(environ["OPTVOL_LIBRARY"]).expanduser().absolute()
    data_home = environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(data_home) / "optvol"


class Library:
    """A directory of volume images; created on first use."""

    def __init__(self, root: Path | str, *, clock: Clock):
        self.root = _as_stored(Path(root).absolute())
        self._clock = clock
        self.created = False
        # Images whose exclusive lock this process holds (holding): the fd, and the thread that
        # holds it, which alone opens them without the open lock (hunt28g F4: another thread's
        # writes went into the image about to be replaced, acknowledged, then gone).
        self._held: dict[Path, tuple[int, int]] = {}
        self._depth = threading.local()  # locked() sections each thread is in (rev29j F2)
        self.opened: set[Path] = set()  # the volume directories opened through it (an index to look at after a bug)
        try:
            marked = (self.root / MARKER).is_file()
        except OSError as exc:  # a name too long, say
            raise errors.error("OPV0006", library=self.root, reason=exc.strerror or str(exc)) from None
        if not marked:
            self._create()
        if (self.root / JOURNAL).exists():
            try:
                with self.locked():
                    pass  # locked() rolls the journal forward
            except errors.NotAllowedError as exc:  # a library only read (OPV0010, OPV0012): it is read as it
                if exc.message_id not in ("OPV0010", "OPV0012"):  # stands; the next writer completes it
                    raise

    @property
    def _lock_depth(self) -> int:
        """The locked() sections this thread is in: another thread of the program sharing this
        object waits for the lock as another process would (rev29j F2)."""
        return getattr(self._depth, "sections", 0)

    @property
    def clock(self):
        """The clock volumes of this library stamp their writes with."""
        return self._clock

    def _create(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise errors.error("OPV0006", library=self.root, reason="it is not a directory")
        if self.root.is_dir() and any(p.name != LOCK for p in self.root.iterdir()):
            raise errors.error("OPV0006", library=self.root, reason="it is a non-empty directory that is not an optvol library")
        try:
            made = [p for p in (self.root, *self.root.parents) if not p.exists()]
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / TMP).mkdir(exist_ok=True)
            with open(self.root / MARKER, "w") as handle:
                handle.write("optvol library 1\n")
                handle.flush()
                os.fsync(handle.fileno())
            for directory in [self.root, *(p.parent for p in made)]:  # its name on the disk (hunt29e F4)
                try:
                    fsync_dir(directory)
                except PermissionError:  # a parent this user may not read (mode 0o711): every write
                    os.sync()
        except OSError as exc:
            raise errors.error("OPV0006", library=self.root, reason=exc.strerror or str(exc)) from None
        self.created = True

    # ----------------------------------------------------------------- locking and journal

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the library lock (waits up to a minute), after completing any journal."""
        try:
            fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise read_only_error(self.root, "changing the library's volumes") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise errors.error("OPV0012", library=self.root, operation="changing the library's volumes") from None
            raise errors.error("OPV0006", library=self.root, reason=f"{LOCK}: {exc.strerror or exc}") from None
        try:
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise errors.error("OPV0007", library=self.root) from None
                    time.sleep(0.02)
                except OSError as exc:  # ENOLCK: a network file system without locks
                    raise errors.error("OPV0006", library=self.root,
                                       reason=f"{LOCK} cannot be locked ({exc.strerror or exc})") from None
            self._roll_forward()
            self._depth.sections = self._lock_depth + 1
            try:
                yield
            finally:
                self._depth.sections -= 1
        finally:
            os.close(fd)

    def _write_journal(self, journal: dict, *, volume: str) -> None:
        """Write the journal of an operation on ``volume`` (a full disk: OPV0203, nothing done)."""
        path = self.root / JOURNAL
        temporary = self.root / TMP / f"journal-{_token()}"
        try:
            self._tmp()  # (a library copied by a tool that drops empty directories: hunt30h F4)
            with open(temporary, "w") as handle:
                json.dump(journal, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException as exc:  # a Ctrl-C too: it left the temporary file (hunt31k F3)
            with contextlib.suppress(OSError):  # (.tmp not a directory: OPV0006 stays the error)
                temporary.unlink(missing_ok=True)
            if not isinstance(exc, OSError):
                raise
            if isinstance(exc, PermissionError):  # a library directory this user may not write
                raise errors.error("OPV0012", library=self.root, operation="changing the library's volumes") from None
            raise errors.host_write_error(exc, model.volume_id(volume)) from None
        try:
            fsync_dir(self.root)
        except OSError as exc:  # the journal may not be on the disk: take it back, nothing has begun
            with contextlib.suppress(OSError):
                self._drop_journal()
            raise errors.host_write_error(exc, model.volume_id(volume)) from None

    def _drop_journal(self) -> None:
        """Remove the journal of an operation refused before it began, or done in this process."""
        (self.root / JOURNAL).unlink()
        fsync_dir(self.root)

    def _roll_forward(self, *, held: Path | None = None) -> None:
        """Complete the operation a journal describes (idempotent), then drop the journal.

        ``held``: the image whose exclusive lock this process already holds (``relabel``)."""
        try:
            self._complete_journal(held)
        except OSError as exc:  # the host failed a rename or an fsync: the journal stays for the next command
            raise errors.error("OPV0006", library=self.root, reason=f"{JOURNAL}: the operation it records could not"
                               f" be completed ({exc.strerror or exc}); the next command tries again") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, or not optvol's (rev29i F5)
            raise errors.error("OPV0006", library=self.root, reason=f"{JOURNAL} is damaged ({type(exc).__name__}:"
                               f" {exc}): no operation can be completed from it; mend it by its renames (docs/format.md"
                               f" §1.1): moved away, the next command empties {TMP}/, where the volumes it moves may lie"
                               ) from None
        self._clean_tmp()

    def _complete_journal(self, held: Path | None) -> None:
        path = self.root / JOURNAL
        if path.exists():
            journal = json.loads(path.read_text())
            if any(str(name).startswith(f"{TMP}/") for pair in journal.get("renames", []) for name in pair):
                self._tmp()  # made again if gone; a link or a file: OPV0006, nothing moved through it (rev30k F1)
            relabel = journal.get("relabel")
            if relabel:
                directory = self.root / relabel["dir"]
                if not directory.exists():
                    directory = self.root / relabel["after"]
                # An opener's brief hold is waited for, as for a rename (hunt29k F1: exit 8 at once).
                waited = directory != held and directory.is_dir() and not self._holds(directory)
                lock = ExitStack()  # (released after the image is closed)
                if waited:
                    lock.callback(os.close, self._lock_for_journal(directory))
                try:
                    image = VolumeImage(directory, exclusive=True, lock=directory != held and not waited)
                except errors.OptvolError:  # (a full disk, no inode for SQLite's files)
                    lock.close()
                    if directory == held:  # this process wrote the journal holding the volume: nothing
                        self._drop_journal()  # is changed yet; the operation is refused, not left for
                    raise  # the next command to finish after this one reported the failure
                with lock, image:
                    label = image.label()
                    if any(label[k] != v for k, v in relabel["fields"].items()):
                        try:
                            with image.transaction() as tx:
                                tx.write_label({**label, **relabel["fields"]})
                        except errors.OptvolError:  # refused (a full volume): if the label is still
                            if image.label() == label:  # as it was, nothing is renamed: the operation
                                self._drop_journal()  # is undone, not left to fail every later command
                            raise
            try:
                with ExitStack() as locks:  # a volume a program has open is not renamed away under it: its
                    for source, _ in journal.get("renames", []):  # writes would vanish with it (hunt29d F1)
                        moved = self.root / source
                        if moved.parent == self.root and moved.name.endswith(SUFFIX) and moved.is_dir() \
                                and moved != held and not self._holds(moved):
                            locks.callback(os.close, self._lock_for_journal(moved))
                    for source, target in journal.get("renames", []):
                        if (self.root / source).exists() and not (self.root / target).exists():
                            os.rename(self.root / source, self.root / target)
            except OSError as exc:  # never to be done here (overlayfs, a mount point): undone, if it can be
                if exc.errno not in _NEVER_RENAMED or not self._undo(journal, held):
                    raise
                raise errors.error("OPV0006", library=self.root, reason=f"the host refuses to rename {source} to"
                                   f" {target} ({exc.strerror}); the operation was undone: nothing changed") from None
            if journal.get("autl") and self._label_has(journal.get("autl_if")):
                self._apply_autl(journal["autl"])
            fsync_dir(self.root)
            path.unlink()
            fsync_dir(self.root)  # gone on the disk before .tmp/old-* goes: else a power loss could keep
            # the journal and lose old-*, and its replay would move the new volume there (hunt29e F3)

    def _lock_for_journal(self, moved: Path) -> int:
        """The exclusive open lock of a volume a journal renames; an open that holds it for the
        moment it takes to see the journal and close again (``open``) is waited for (rev29i F2), also
        one of another thread of this program (OPV0020: hunt29k F2)."""
        deadline = time.monotonic() + JOURNAL_WAIT_SECONDS
        while True:
            try:
                return lock_exclusive(moved, volume=moved.name.removesuffix(SUFFIX))
            except errors.LockedError as exc:
                if exc.message_id not in ("OPV0004", "OPV0020") or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _label_has(self, condition: dict | None) -> bool:
        """Whether a journal's ``autl_if`` holds: the image at ``dir`` has the label values of
        ``label`` (CHGOPTVOL committed its THRESHOLD and TEXT); no condition: True."""
        if condition is None:
            return True
        directory = self.root / condition["dir"]
        if not directory.is_dir():
            return False
        with VolumeImage(directory) as image:
            return _has(image.label(), condition["label"])

    def _undo(self, journal: dict, held: Path | None) -> bool:
        """Take back what a journal's operation did (its renames done, then a relabel's label
        fields), and drop the journal; False (the journal stays) when that cannot be done."""
        try:
            for source, target in reversed(journal.get("renames", [])):
                if (self.root / target).exists() and not (self.root / source).exists():
                    os.rename(self.root / target, self.root / source)
            relabel = journal.get("relabel")
            if relabel:
                directory = self.root / relabel["dir"]
                # A journal of an optvol before "before": a rename had the ID of its directory,
                # a CVTOPTBKU (the one relabel that changes the type) a backup's type.
                before = relabel.get("before") or {"volume": relabel["dir"].removesuffix(SUFFIX)}
                if "type" in relabel["fields"] and "before" not in relabel:
                    before["type"] = str(VolumeType.BACKUP)
                with VolumeImage(directory, exclusive=True, lock=directory != held) as image:
                    label = image.label()
                    if any(label[k] != v for k, v in before.items()):
                        with image.transaction() as tx:
                            tx.write_label({**label, **before})
            fsync_dir(self.root)
        except (OSError, KeyError, errors.OptvolError):
            return False
        self._drop_journal()
        self._clean_tmp()  # an image built aside goes
        return True

    def _tmp(self) -> Path:
        """The library's .tmp/, made again if it is gone; a file or a symbolic link in its place is
        OPV0006: nothing is written through it, nor emptied (a link led out of the library, rev30i F1)."""
        tmp = self.root / TMP
        with contextlib.suppress(FileExistsError):
            tmp.mkdir()
        if tmp.is_symlink() or not tmp.is_dir():
            raise errors.error("OPV0006", library=self.root, reason=f"{TMP} is not a directory (a file or a symbolic link)")
        return tmp

    def _clean_tmp(self) -> None:
        tmp = self.root / TMP
        if tmp.is_dir() and not tmp.is_symlink():  # (never what a link leads to: rev30i F1)
            for leftover in tmp.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)

    # ----------------------------------------------------------------- volumes

    def _dir(self, volume: str) -> Path:
        directory = self.root / (model.volume_id(volume) + SUFFIX)
        if directory.parent != self.root:  # unreachable by the ID rules; kept as a guard
            raise errors.error("OPV0001", volume=volume, reason="it names a path")
        return directory

    def volume_ids(self, pattern: str | None = None) -> list[str]:
        """Volume IDs in the library, sorted; ``pattern`` is *ALL, a generic ``ABC*`` or an ID."""
        return [i for i in sorted(self._listing()[0]) if pattern is None or model.matches_generic(i, pattern)]

    def strays(self, pattern: str | None = None) -> list[str]:
        """The names of directories ``*.optvol`` (the suffix in any case) that no volume ID
        names (``pvol1.optvol`` or ``PVOL1.OPTVOL`` renamed by hand on a file system that tells
        case apart, ``my vol.optvol``), sorted: commands cannot reach them, and a listing that
        left them out would hide a volume (``stray_error``)."""
        return [entry for entry in sorted(self._listing()[1])
                if pattern is None or model.matches_generic(entry[:-len(SUFFIX)], pattern)]

    def stray_error(self, entry: str) -> errors.OptvolError:
        """What a listing says of a directory ``entry`` that no volume ID names."""
        folded = _folded(entry[:-len(SUFFIX)])
        advice = (f" ({folded}{SUFFIX}, if that is its ID)" if folded and not self._dir(folded).exists() else
                  " (the ID its label holds, which INZOPT or DUPOPT can give a copy)")
        return errors.error("OPV0201", volume=entry, reason=(  # (its name: PVOL1.OPTVOL beside PVOL1.optvol)
            f"its directory {entry} is not named by a volume ID (A-Z 0-9 - _ . in upper case, then {SUFFIX}),"
            f" so no command can reach it: rename it to its volume's ID{advice}"))

    def _listing(self) -> tuple[set[str], list[str]]:
        """(the volume IDs, the names of directories ``*.optvol`` that name none). On a file
        system blind to case ``pvol1.optvol`` is PVOL1's directory: the name PVOL1.optvol
        reaches it, and no entry has that name itself (FUSE may give each spelling an inode
        of its own, so names, not inodes, tell)."""
        entries = {path.name for path in self.root.iterdir() if path.name.lower().endswith(SUFFIX) and path.is_dir()}
        ids, strays = set(), []
        for entry in entries:
            folded = _folded(entry[:-len(SUFFIX)])
            if folded is not None and (entry == folded + SUFFIX
                                       or folded + SUFFIX not in entries and self._dir(folded).is_dir()):
                ids.add(folded)
            else:
                strays.append(entry)
        return ids, strays

    def check_host_target(self, path: str | os.PathLike) -> None:
        """Refuse a host path to be written that lies in the library (OPV0302): its files are
        written by optvol alone, through the rules (a copy over a backup's data partition
        would bypass them all)."""
        root, target = os.path.realpath(self.root), os.path.realpath(path)
        if target == root or target.startswith(root.rstrip("/") + "/") or _below(target):
            raise errors.error("OPV0302", path=path,
                               reason=f"it is inside the library {str(self.root)!r}, whose files only optvol writes")

    def exists(self, volume: str) -> bool:
        return self._dir(volume).is_dir()

    def open(self, volume: str, *, exclusive: bool = False, any_label: bool = False) -> Volume:
        """Open a volume (a shared lock; ``exclusive`` fails with exit 8 if it is in use; none
        while this process is ``holding`` it). A directory whose image has another volume's ID
        (``cp -a PVOL1.optvol PCOPY.optvol``) is refused, OPV0201: it would be written and
        backed up as that volume; only INZOPT, which replaces it, and a rename, which gives it
        the new ID, open it (``any_label``). A rename another process left half done (its
        label written, its directory not yet renamed) is completed first, as a new command would."""
        directory, volume_id = self._dir(volume), model.volume_id(volume)
        if not directory.is_dir() and not (self._completed_first(directory, volume_id, targets=True)
                                           and directory.is_dir()):
            raise errors.error("OPV0002", volume=volume_id, library=self.root)
        self.opened.add(directory)
        try:
            image = VolumeImage(directory, exclusive=exclusive, lock=not self._holds(directory))
        except errors.OptvolError as exc:  # a file of it gone (SQLite: an I/O error): the volume removed or renamed
            if exc.message_id in ("OPV0006", "OPV0201", "OPV0204") and not directory.is_dir():  # as it was opened
                raise errors.error("OPV0004", volume=volume_id) from None
            raise
        if not self._lock_depth and self._journal_moves(directory):
            if self._may_roll_forward():
                image.close()  # an INZOPT, DUPOPT, CVTOPTBKU or rename another process left half done would swap
                self._completed_first(directory, volume_id)  # this image out (hunt29d F1) or need it alone
                return self.open(volume, exclusive=exclusive, any_label=any_label)
            if image.read_only:  # read as it stands, without the lock the roll-forward needs alone: it would refuse
                image.release_lock()  # every command of the owner, of any volume, with exit 8 (rev29j F3)
        if image.volume == volume_id or any_label:
            return Volume(image, clock=self._clock)
        image.close()
        if self._rolled_forward():
            return self.open(volume, exclusive=exclusive)
        original = self._dir(image.volume).is_dir()
        refusal = errors.error("OPV0201", volume=volume_id, reason=(
            f"its directory {directory.name} holds volume {image.volume}, copied or renamed by the host's tools;"
            f" it is refused, so as not to be written or backed up as {image.volume}: "
            + (f"a copy under another ID is made by DUPOPT (remove this copy, then dupopt {image.volume} {volume_id})"
               if original else f"rename the directory back to {image.volume}{SUFFIX}")))
        refusal.item = "(volume)"  # what CHKOPTVOL names: the volume's directory, not its index
        raise refusal

    def _completed_first(self, directory: Path, volume_id: str, *, targets: bool = False) -> bool:
        """Complete, as a new command would, a journal that renames or relabels ``directory``
        (or, ``targets``, renames a directory to it); whether one was found. Another opener's
        brief hold, or another process completing it, is waited for (rev29i F2: OPV0004)."""
        deadline = time.monotonic() + JOURNAL_WAIT_SECONDS
        if self._lock_depth or not self._journal_moves(directory, targets=targets) or not self._may_roll_forward():
            return self._rolled_forward()
        while not self._rolled_forward(say_why=True) and self._journal_moves(directory, targets=targets):
            if time.monotonic() > deadline:
                raise errors.error("OPV0004", volume=volume_id)
            time.sleep(0.02)
        return True

    def _journal_moves(self, directory: Path, *, targets: bool = False) -> bool:
        """Whether a journal on disk renames (``targets``: renames to) or relabels ``directory``
        (an operation left half done): its roll-forward needs the image alone (a CVTOPTBKU that
        keeps its ID renames nothing; one killed past its rename relabels the image at
        ``after``: rev29i F3, F4). A journal that cannot be read as optvol's may name it too: its
        roll-forward refuses it (OPV0006), where a program took it for none and wrote into an image
        the journal, once mended, swapped out (hunt29k F3)."""
        try:
            journal = json.loads((self.root / JOURNAL).read_text())
            relabel = journal.get("relabel") or {}
            touched = [pair[targets] for pair in journal.get("renames", [])]
            touched += [relabel.get("dir"), relabel.get("after")]
            return any(name and self.root / name == directory for name in touched)
        except OSError:  # none (or none this user may read)
            return False
        except (ValueError, TypeError, AttributeError, IndexError, KeyError):
            return True

    def _may_roll_forward(self) -> bool:
        """Whether this process could complete a journal: not in a library it may only read (a
        read-only file system, another user's), which is read as it stands (review s22c F2)."""
        try:
            os.close(os.open(self.root / LOCK, os.O_RDWR | os.O_CLOEXEC))
        except OSError:
            return False
        return True

    def _rolled_forward(self, *, say_why: bool = False) -> bool:
        """Complete an operation a journal records, left by a process that died in it; whether
        one was. Not while this process holds the library lock (it completes its own), nor
        while another does (it is at work on its own: no wait). ``say_why``: a journal that
        cannot be completed (OPV0006: damaged, the host failing) raises that, not False."""
        if self._lock_depth or not (self.root / JOURNAL).exists():
            return False
        try:
            fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # a library this user may only read: the next writer completes it
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._roll_forward()
            return True
        except (OSError, errors.OptvolError) as exc:
            if say_why and getattr(exc, "message_id", None) == "OPV0006":
                raise
            return False
        finally:
            os.close(fd)

    @contextmanager
    def holding(self, volume: str) -> Iterator[None]:
        """Hold an existing volume's exclusive lock (exit 8 while another process has it open)
        from the check of the rules for replacing it to its replacement (INZOPT, DUPOPT): a
        process that opened it in between could make the check stale (write a WORM volume
        that was empty) or write into an image about to go."""
        directory = self._dir(volume)
        if not directory.is_dir() or self._holds(directory):
            yield
            return
        self._held[directory] = (lock_exclusive(directory, volume=model.volume_id(volume)), threading.get_ident())
        try:
            yield
        finally:
            os.close(self._held.pop(directory)[0])

    def _holds(self, directory: Path) -> bool:
        """Whether this thread holds ``directory``'s exclusive lock (``holding``)."""
        held = self._held.get(directory)
        return held is not None and held[1] == threading.get_ident()

    def install(
        self, volume: str, *, replace: bool, label: dict | None = None, previous: str | None = None,
        build: Callable[[Path], None] | None = None, fill: Callable[[Volume], None] | None = None,
    ) -> None:
        """Create a volume image, replacing volume ``previous`` (the same ID by default).

        The caller holds ``locked()`` and has checked the command's rules. The new image
        is built aside, as an empty volume with ``label`` (INZOPT) or by ``build(directory)``
        (DUPOPT), then ``fill`` may write it while it is still aside (import-iso); if any of
        that fails, nothing is installed. The image is swapped in through the journal, so a
        crash leaves either the old volume or the new one.
        """
        target = self._dir(volume)
        old = self._dir(previous or volume)
        if old.exists() and not replace:
            raise errors.error("OPV0003", volume=model.volume_id(volume), library=self.root)
        if old != target and target.exists():
            raise errors.error("OPV0003", volume=model.volume_id(volume), library=self.root)
        renames = []
        with ExitStack() as held:
            if old.exists():
                # Refuses (exit 8) while another process has it open, and keeps every process
                # out of it until it is swapped out: a write into it would vanish with it.
                held.enter_context(self.holding(previous or volume))  # (known to _complete_journal)
                renames.append([old.name, f"{TMP}/old-{_token()}"])
            # The authorization list goes with the journal: a renamed volume keeps its list, and a new
            # volume takes none that a volume gone before it under its ID left behind (hunt25c F2).
            old_id, new_id = old.name.removesuffix(SUFFIX), target.name.removesuffix(SUFFIX)
            lists = self.autl_table()  # (damaged: refused before anything is done)
            autl = ({new_id: None} if not old.exists() else
                    {old_id: None, new_id: lists.get(old_id)} if old != target else {})
            self._install(volume, target, renames, label=label, build=build, fill=fill, autl=autl)

    def _install(self, volume: str, target: Path, renames: list, *, label: dict | None,
                 build: Callable[[Path], None] | None, fill: Callable[[Volume], None] | None, autl: dict) -> None:
        """Build the new image aside, then swap it in through the journal (``install``)."""
        try:
            self._tmp()  # re-made if someone removed it
        except OSError as exc:
            raise errors.error("OPV0006", library=self.root, reason=f"{TMP}: {exc.strerror or exc}") from None
        staging = self.root / TMP / f"new-{_token()}"
        try:
            build(staging) if build else VolumeImage.create(staging, label=label)
            if fill is not None:
                with Volume(VolumeImage(staging), clock=self._clock) as built:
                    fill(built)
        except BaseException as exc:
            with signals_held():  # a second Ctrl-C waits for the removal: it left the image in .tmp (hunt31k F1)
                failure = self._build_failure(exc, volume)  # while what filled the disk is still there
                shutil.rmtree(staging, ignore_errors=True)
            if failure is not None:
                raise failure from None
            raise
        renames.append([f"{TMP}/{staging.name}", target.name])
        try:
            self._write_journal({"renames": renames, "autl": autl}, volume=volume)
        except BaseException:  # no journal: nothing will install the image built aside
            if not (self.root / JOURNAL).exists():  # (one that could not be taken back will)
                shutil.rmtree(staging, ignore_errors=True)
            raise
        self._roll_forward()

    def _build_failure(self, exc: BaseException, volume: str) -> errors.OptvolError | None:
        """What a failure ``exc`` to build a new image aside means: the host's (a full disk or
        no inode, an I/O error, a ``.tmp`` this user may not write), named for the volume it
        was to be, not for the image aside; None: ``exc`` as it is (a rule, the source)."""
        volume_id = model.volume_id(volume)
        if isinstance(exc, PermissionError):
            return errors.error("OPV0012", library=self.root, operation=f"making volume {volume_id}")
        if isinstance(exc, errors.OptvolError) and exc.message_id in _HOST_WRITE_ERRORS:
            return errors.error(exc.message_id, volume=volume_id, reason=errors.cause(exc))
        return host_failure(exc, self.root / TMP, volume_id)

    def relabel(self, volume: str, *, fields: dict) -> None:
        """Change label fields and, if ``fields['volume']`` differs, rename: all or nothing.

        The caller holds ``locked()``. Used by CVTOPTBKU and by renames, and it makes only
        their changes: a new ID, and a *BACKUP made a *PRIMARY. A program that called it could
        make a backup a primary and back, or change its fixed threshold (hunt-api F6)."""
        if not set(fields) <= {"volume", "type"} or fields.get("type", str(VolumeType.PRIMARY)) != str(VolumeType.PRIMARY):
            raise errors.error("OPV0005", value=", ".join(f"{k}={v}" for k, v in fields.items()), keyword="fields",
                               reason="relabel gives a volume a new ID, or makes a *BACKUP a *PRIMARY (CVTOPTBKU)")
        if "volume" in fields:  # the ID as the directory is named: one given as typed bricked the volume (hunt31b F1)
            fields = {**fields, "volume": model.volume_id(fields["volume"])}
        source = self._dir(volume)
        new_id = fields.get("volume", model.volume_id(volume))
        target = self._dir(new_id)
        if target != source and target.exists():
            raise errors.error("OPV0003", volume=new_id, library=self.root)
        renames = [[source.name, target.name]] if target != source else []
        # Held from the check to the rename: a process that opened the volume in between
        # would make the journal's roll-forward fail after CVTOPTBKU had reported exit 8.
        lock = lock_exclusive(source, volume=model.volume_id(volume))
        try:
            with VolumeImage(source, exclusive=True, lock=False) as image:  # what an undo writes back
                before = {key: image.label()[key] for key in fields}
            if "type" in fields and before["type"] != str(VolumeType.BACKUP):
                raise errors.error("OPV0005", value=f"type={fields['type']}", keyword="fields",
                                   reason=f"volume {model.volume_id(volume)} is a {before['type']}: only a *BACKUP is made a *PRIMARY")
            autl = {} if target == source else {model.volume_id(volume): None, new_id: self.autl(volume)}
            self._write_journal({"relabel": {"dir": source.name, "after": target.name, "fields": fields,
                                             "before": before}, "renames": renames, "autl": autl}, volume=volume)
            self._roll_forward(held=source)
        finally:
            os.close(lock)

    def rename(self, volume: str, new: str) -> None:
        """Rename a volume, keeping everything on it (WRKOPTVOL option 7)."""
        with self.locked():
            with self.open(volume, any_label=True) as found:  # (a directory copied under another name: mended)
                media.check_volume_id(model.volume_id(new), found.label()["media_format"])
                check_paths_fit(found.image.conn, model.volume_id(new))
            self.relabel(volume, fields={"volume": model.volume_id(new)})

    def discard(self, volume: str) -> None:
        """Remove a volume and everything on it from the library (WRKOPTVOL option 4)."""
        with self.locked():
            self.remove(volume)

    def remove(self, volume: str) -> None:
        """Remove a volume from the library (the caller holds ``locked()``)."""
        source = self._dir(volume)
        if not source.is_dir():
            raise errors.error("OPV0002", volume=model.volume_id(volume), library=self.root)
        self.autl_table()  # (damaged: refused before anything is done)
        lock = lock_exclusive(source, volume=model.volume_id(volume))  # exit 8 while open; held to the end
        try:
            self._write_journal({"renames": [[source.name, f"{TMP}/old-{_token()}"]],
                                 "autl": {model.volume_id(volume): None}}, volume=volume)
            self._roll_forward(held=source)  # (its lock is this process's)
        finally:
            os.close(lock)

    # ----------------------------------------------------------------- authorization lists

    def autl_table(self) -> dict[str, str]:
        """The authorization lists by volume ID; a damaged ``autl.json``: OPV0006, not a traceback."""
        path = self.root / AUTL
        try:
            table = json.loads(path.read_text()) if path.exists() else {}
        except (ValueError, UnicodeError) as exc:
            table = exc
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise errors.error("OPV0006", library=self.root, reason=f"{AUTL} is damaged ({table}): mend it, or remove"
                               " it (every volume then has authorization list *NONE)")
        return table

    def autl(self, volume: str) -> str | None:
        return self.autl_table().get(model.volume_id(volume))

    def set_autl(self, volume: str, name: str | None) -> None:
        """Record the authorization list of a volume (CHGOPTVOL AUTL, its rules: OPV0005); None removes it."""
        name = None if name is None else model.autl_name(name)
        self._apply_autl({model.volume_id(volume): name})

    def set_autl_with_label(self, volume: str, name: str | None, *, fields: dict,
                            change: Callable[[], None], label: Callable[[], dict]) -> None:
        """Set a volume's authorization list (None removes it) together with the label ``fields``
        that ``change()`` commits (CHGOPTVOL THRESHOLD or TEXT with AUTL): all or nothing. The
        caller holds ``locked()``. The label's commit decides: the journal, written first, records
        the list to be set once the image's label has ``fields``, so a kill before that commit
        leaves the old state (the next command finds the old label and drops the journal), one
        after it the new state (the next command sets the list). ``label()`` reads the label as
        committed, to tell which after ``change`` failed (a label that had ``fields`` before
        tells nothing: the command is refused, nothing changed)."""
        directory, volume_id = self._dir(volume), model.volume_id(volume)
        name = None if name is None else model.autl_name(name)
        self.autl_table()  # (damaged: refused before anything is done)
        unchanged = _has(label(), fields)
        self._write_journal({"renames": [], "autl": {volume_id: name},
                             "autl_if": {"dir": directory.name, "label": fields}}, volume=volume)
        try:
            change()
        except BaseException as exc:
            try:
                committed = not unchanged and _has(label(), fields)
            except Exception:  # unknown: the journal stays; the next command reads the label
                committed = None
            if committed is False:  # refused: nothing changed
                with contextlib.suppress(OSError):  # (else the next command drops it)
                    self._drop_journal()
            elif committed:  # the label changed after all: so does the list
                self._finish_autl_of_label(volume_id, name)
                if isinstance(exc, errors.VolumeFullError):  # not "nothing was changed" (rev28h)
                    raise errors.error("OPV0209", volume=volume_id, reason=errors.cause(exc),
                                       done="its label changed after all, and so did its authorization list") from None
            raise
        self._finish_autl_of_label(volume_id, name)

    def _finish_autl_of_label(self, volume_id: str, name: str | None) -> None:
        """``_finish_autl`` once the label changed: a full disk then says so (hunt28a F7: it said
        OPV0203 "nothing was changed"), and the journal keeps the list for the next command."""
        try:
            self._finish_autl({volume_id: name})
        except errors.VolumeFullError as exc:
            raise errors.error("OPV0209", volume=volume_id, reason=errors.cause(exc), done=(
                "its label changed, and the next command sets its authorization list from the library's journal")) from None

    def _finish_autl(self, changes: dict[str, str | None]) -> None:
        """Set the list of a journal whose label this process has committed, then drop it."""
        self._apply_autl(changes)
        self._drop_journal()

    def _apply_autl(self, changes: dict[str, str | None]) -> None:
        """Set (or, for None, remove) the entries ``changes`` of the table; idempotent."""
        table = self.autl_table()
        wanted = {k: v for k, v in {**table, **changes}.items() if v is not None}
        if wanted != table:
            self._write_autl(wanted, volume=next(iter(changes)))

    def _write_autl(self, table: dict[str, str], *, volume: str) -> None:
        """Replace autl.json whole: a temporary file, fsynced, renamed over it, the directory fsynced."""
        temporary = self.root / TMP / f"autl-{_token()}"
        try:
            self._tmp()  # (hunt30h F4)
            with open(temporary, "w") as handle:
                handle.write(json.dumps(table, indent=1, sort_keys=True))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.root / AUTL)
            fsync_dir(self.root)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise errors.host_write_error(exc, model.volume_id(volume)) from None


def _token() -> str:
    """32 random hex digits: the unique part of a temporary name under ``.tmp/`` (os.urandom,
    not uuid, which costs every command's start 3 ms to import)."""
    return os.urandom(16).hex()


def _has(label: dict, fields: dict) -> bool:
    """Whether ``label`` has every value of ``fields``."""
    return all(label.get(key) == value for key, value in fields.items())


def _folded(name: str) -> str | None:
    """The volume ID ``name`` folds to, or None when it folds to none."""
    try:
        return model.volume_id(name)
    except errors.OptvolError:
        return None


def _as_stored(path: Path) -> Path:
    """``path`` with each directory of it spelled as the directory above stores its name.
    A file system blind to case opens ``/mnt/LIB`` for ``/mnt/lib``, and exFAT through FUSE
    then gives each spelling inodes of their own, so that the flock and SQLite locks taken
    through one spelling do not meet those taken through the other: two processes could
    each hold a volume alone. A directory is listed only where the name in the other case
    opens too (a directory of 300,000 entries listed for every command cost 0.15 s: review
    23b F3); a name not listed as given that one entry matches in another case takes that
    entry's spelling. A name that is not there (a library still to create) stays as given."""
    current = Path(path.anchor)
    parts = path.parts[1:]
    for index, part in enumerate(parts):
        try:
            other = "".join(c.swapcase() if len(c.swapcase()) == 1 else c for c in part)  # (ß: STRAßE, not STRASSE)
            if other != part and os.path.lexists(current / other):
                names = os.listdir(current)
                if part not in names:
                    matches = [name for name in names if name.casefold() == part.casefold()]
                    part = matches[0] if len(matches) == 1 else part
        except (OSError, UnicodeError):
            return current.joinpath(*parts[index:])
        current /= part
    return current


def _below(target: str) -> bool:
    """Whether host path ``target``, or a directory above it, is an optvol library (it holds
    the library's marker) or a volume image (its index and data partition): found by what
    the directory holds, not by its name, so another spelling of this library (another case
    of its name on a case-insensitive file system, where FUSE file systems may give each
    spelling an inode of its own; a bind mount of it, or of one of its images) or another
    library is found too."""
    probe = target
    while True:
        if os.path.isfile(os.path.join(probe, MARKER)) or (
                os.path.isfile(os.path.join(probe, INDEX_FILE)) and os.path.isfile(os.path.join(probe, DATA_FILE))):
            return True
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent
