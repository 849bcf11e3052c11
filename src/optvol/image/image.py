"""One volume image on disk and its commit protocol (DESIGN §3, docs/format.md §4).

A volume image is a directory holding the index partition (``index.sqlite``, SQLite in
WAL mode) and the data partition (``data.opv``). A write transaction:

1. takes SQLite's write lock (``BEGIN IMMEDIATE``), which serializes writers of all
   processes, and cuts any torn tail beyond the committed end;
2. appends records to the data partition after the committed end (a writer thread writes
   them out, past the page cache where it can, while the next ones are laid out);
3. waits for those writes and fsyncs the data partition;
4. records them in the index and moves the committed end in one SQLite transaction.

A crash before step 4 leaves a tail the next writer cuts; after it, the records are done.
Every open image holds a shared ``flock`` on ``lock`` so that re-initialize, rename and
remove (which need it exclusively) never pull a volume from under a reader. An image on a
read-only file system, or on a full one where SQLite cannot make its shared-memory file
while no other process has the image open, is opened for reading only (``read_only``):
every write is OPV0010 (OPV0203 when full), and on a read-only file system there is no
lock, since nothing can change the image through it (a read-only view of files written
through another path is watched: ``FrozenView``). So is an image this user may read but not write
(OPV0011): its lock is opened for reading (a shared ``flock`` needs no more), and since
SQLite reads a WAL index only through a shared-memory file it can write, it reads a
private copy of the index (``_snapshot``); the data partition's committed records never
change, so they are read in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from optvol import errors
from optvol.image import descriptors, locks, records, schema, wal
from optvol.image.connection import BUSY_TIMEOUT_MS, Closed, Owner, connect_index, log_size, unopened_because
from optvol.image.datapart import DataPartition, fsync_dir
from optvol.image.locks import lock_exclusive, open_lock, read_only_error
from optvol.image.records import Kind
from optvol.image.signals import signals_held
from optvol.image.transaction import Place, Transaction  # noqa: F401 (Place: what callers import from here)

INDEX_FILE = "index.sqlite"
DATA_FILE = "data.opv"
OWN_FILES = (DATA_FILE, INDEX_FILE, INDEX_FILE + "-wal", INDEX_FILE + "-shm")  # written in place: never linked
RECOVERED_INDEX = "index.recovered.sqlite"  # the index ``recover`` rebuilds, beside the old one
SNAPSHOT_TRIES = 20  # copies of the index a user who may only read it takes before it gives up (OPV0004)

LABEL_FIELDS = schema.LABEL_FIELDS


def _file_state(path: Path) -> tuple[int, int, int, int]:
    """What changes when a file is written or replaced."""
    found = os.stat(path)
    return found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def _log_without_shared_memory(path: Path, *, wait: float = 0.0) -> bool:
    """Index ``path`` has commits in its WAL file but no shared-memory file to read them by,
    and still has after ``wait`` seconds (a writer through another path to a read-only view
    of the library removes both as it closes the index)."""
    end = time.monotonic() + wait
    while log_size(path) and not path.with_name(path.name + "-shm").exists():
        if time.monotonic() >= end:
            return True
        time.sleep(0.02)
    return False


def _live_log(path: Path) -> bool:
    """Index ``path`` has commits in its log and the shared-memory file that indexes them: a
    writer through another path has it open. A view on a read-only file system reads a private
    copy then: SQLite shares one -shm mapping among a process's connections to a file, and one
    opened through the read-only path is read-only, so a writer of the same process through
    the library's own path was refused (OPV0011) while the view was open (hunt30f F1)."""
    return bool(log_size(path)) and path.with_name(path.name + "-shm").exists()


def _unwritable(directory: Path, index: Path) -> str | None:
    """"access" where this user may write the lock but not the index or the data partition
    (their modes made 0444): read as "access" is, through a private copy of the index, since
    SQLite would leave its -wal and -shm, this user's, in a directory it may write, and the
    owner could then no longer write the volume (OPV0011)."""
    for path in (index, directory / DATA_FILE):
        if path.exists() and not os.access(path, os.W_OK):
            return "access"
    return None


def index_root(conn: sqlite3.Connection, *, created: int, sector: int) -> None:
    """The root directory's row, for the DIRECTORY record of "/" at ``sector``."""
    conn.execute(
        "INSERT INTO dirs (id, parent, name, path, path_key, created, sector, live) VALUES (1, NULL, '', '/', '/', ?, ?, 1)",
        (created, sector),
    )


def swap_in_recovered_index(directory: Path) -> None:
    """Put the index ``recover`` rebuilt (complete, in one file) in place of the old one: the
    old index goes first, then its log and shared memory. A crash leaves the old index whole,
    or no index beside the rebuilt one, which the next open finishes (``_finish_recovery``);
    never the old index without its log, whose commits the data partition's tail may hold."""
    for old in ("", "-wal", "-shm"):
        (directory / (INDEX_FILE + old)).unlink(missing_ok=True)
    os.replace(directory / RECOVERED_INDEX, directory / INDEX_FILE)
    fsync_dir(directory)


def _finish_recovery(directory: Path, *, volume: str) -> None:
    """A ``recover`` was killed after removing the old index: finish its swap (exit 8 while
    it still runs)."""
    fd = lock_exclusive(directory, volume=volume)
    try:
        if not (directory / INDEX_FILE).is_file() and (directory / RECOVERED_INDEX).is_file():
            swap_in_recovered_index(directory)
    finally:
        os.close(fd)


def _lost_logs_tail(directory: Path, index: Path) -> bool:
    """Whether ``index``, found without its log, ends before a sound record of its volume, the
    one it would number next, in the data partition: a copy that left out a log holding
    commits (``_keep_commits``). Read apart, before this open's SQLite connects: a connection
    makes a new, empty log, which another open at that moment took for this index's own and
    cut the tail, every commit of the lost log (rev32a F6). False where it cannot be read so
    (the open then judges as before)."""
    found = schema.read_all_apart(index, lambda conn: {
        "meta": dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('committed_end', 'next_sequence')")),
        "label": conn.execute("SELECT volume, sector_size FROM label").fetchone()})
    meta, label = found.get("meta", {}), found.get("label")
    committed, sequence = meta.get("committed_end"), meta.get("next_sequence")
    if label is None or not all(isinstance(v, int) for v in (committed, sequence, label[1])) or label[1] < 512:
        return False
    volume, sector_size = label

    def read(sector: int, length: int) -> bytes:
        found = os.pread(data.fileno(), length, sector * sector_size)
        if len(found) != length:
            raise errors.error("OPV0201", volume=volume, reason=f"data partition ends inside sector {sector}")
        return found

    try:
        with open(directory / DATA_FILE, "rb") as data:  # (optvol locks no data partition: a close drops nothing)
            header = _header_at(read, committed, sector_size)
    except (OSError, errors.OptvolError):
        return False
    return header.sequence == sequence and header.body.get("volume") == volume


def _header_at(read: Callable[[int, int], bytes], sector: int, sector_size: int) -> records.Header:
    """The record header at ``sector``, read (``read(sector, length)``) as its first sector says."""
    first = read(sector, sector_size)
    count = records.header_sectors_of(first)
    return records.read_header(first if count == 1 else read(sector, count * sector_size))


class VolumeImage:
    """An open volume image: the index connection, the data partition and the open lock."""

    def __init__(self, directory: Path, *, exclusive: bool = False, index_file: str = INDEX_FILE,
                 lock: bool = True, cut_tail: bool = True, data_read_only: bool = False):
        """Open the image; an older index is brought forward first, with the volume to this process
        alone. The open starts again, with no lock held between tries, while another process has
        the volume open and its index is older, or has it alone (``locks.Reopen``; then OPV0004).
        ``data_read_only``: its data partition is only read (a replay of its records, elsewhere)."""
        started, limit, name = time.monotonic(), 0.0, Path(directory).name.removesuffix(".optvol")
        carried = None  # whether the index came without its log, as this process's own upgrade found it
        while True:
            try:
                return self._open(Path(directory), exclusive=exclusive, index_file=index_file, lock=lock,
                                  cut_tail=cut_tail, log_lost=carried, data_read_only=data_read_only)
            except locks.Reopen as again:
                # An upgrade closed this try's connection, which removed the log: the next try keeps
                # what this one found. Another process's upgrade: the next try looks again.
                carried = self._log_lost if again.wait is None else None
                if again.wait is not None:  # an open that met an older index waits for its upgrade to the end
                    limit = max(limit, again.wait)
                    if time.monotonic() - started > limit:
                        raise errors.error("OPV0004", volume=name) from None
                    time.sleep(random.uniform(0.02, 0.1))
            except PermissionError as exc:  # a volume directory this user may not even search
                raise errors.error("OPV0006", library=Path(directory).parent,
                                   reason=f"{Path(directory).name}: {exc.strerror or exc}") from None
            if not Path(directory).is_dir():  # removed or renamed while this open held nothing
                raise errors.error("OPV0004", volume=name)

    def _open(self, directory: Path, *, exclusive: bool, index_file: str, lock: bool, cut_tail: bool,
              log_lost: bool | None, data_read_only: bool = False) -> None:
        self.pid = os.getpid()  # the process that opened it: a forked one must open it again to write
        self._write_begun, self._live_snapshots = False, 0  # BEGIN IMMEDIATE not yet ended; snapshots open
        self._in_write: int | None = None  # the thread inside ``transaction``, from its start to its commit or undo
        self._cuts_tails = cut_tail  # (not recover's image of the index it builds: it cuts the tail itself)
        self.directory = directory
        self.name = self.directory.name.removesuffix(".optvol")
        index_path = self.directory / index_file
        if index_file == INDEX_FILE and not index_path.is_file() and (self.directory / RECOVERED_INDEX).is_file():
            try:
                _finish_recovery(self.directory, volume=self.name)
            except errors.LockedError:  # another open is finishing it
                raise locks.Reopen(wait=locks.BUSY_WAIT) from None
        if not index_path.is_file() or not (self.directory / DATA_FILE).is_file():
            raise errors.error("OPV0201", volume=self.name, reason="index or data partition missing")
        try:
            lock_fd, because = open_lock(self.directory, exclusive=exclusive, volume=self.name) if lock else (-1, None)
        except errors.LockedError:  # another process has it alone: it may be bringing its index forward
            if exclusive:
                raise
            older = (schema.stored_version(index_path) or schema.SCHEMA_VERSION) < schema.SCHEMA_VERSION
            raise locks.Reopen(wait=locks.UPGRADE_WAIT if older else locks.BUSY_WAIT) from None
        # An image is only read (no migration, no tail cut; every write refused) on a read-only file
        # system ("fs": no lock then), by a user who may not write it ("access"), and on a full one
        # without room for SQLite's shared-memory file ("full", see _open_index).
        self._read_only_because = because = because or locks.linked(self.directory, OWN_FILES) or (
            _unwritable(self.directory, index_path) if lock else None)
        self._lock_fd = -1 if lock_fd is None else lock_fd
        self._snapshot_dir: Path | None = None
        if because in ("access", "links") or because == "fs" and _live_log(index_path):
            try:
                index_path = self._snapshot(index_path)
            except BaseException:
                self._release()
                raise
        elif self.read_only and _log_without_shared_memory(index_path, wait=locks.BUSY_WAIT if because == "fs" else 0):
            raise read_only_error(self.directory.parent, f"reading volume {self.name}, whose index has commits in its"
                                  f" log ({index_file}-wal) and no {index_file}-shm beside it,")
        self.index_path = index_path  # the index SQLite reads: the image's own, or a private copy
        log = self.directory / f"{INDEX_FILE}-wal"
        held = wal.hold(log) if index_file == INDEX_FILE else None
        if log_lost is None:  # (looked at under the open lock, before SQLite makes a log)
            log_lost = index_file == INDEX_FILE and not os.path.exists(log)
        self._log_lost = log_lost
        before = None if self._snapshot_dir or self.read_only or not cut_tail else wal.look(
            index_path.with_name(index_path.name + "-wal"))  # (before SQLite rebuilds a dead writer's -shm)
        try:
            try:
                if log_lost and cut_tail and not self.read_only and index_file == INDEX_FILE and _lost_logs_tail(
                        self.directory, index_path):
                    raise self._lost_log_error()  # before SQLite makes a log, which another open would take for it
                found = self._open_index(index_path, exclusive=exclusive)
            finally:  # the log removed since (another process's last connection closed: rev32a F1) is lost
                gone = held is not None and wal.replaced(held, log)  # to this open as if it had found none
            log_lost = self._log_lost = log_lost or gone
            if found < schema.SCHEMA_VERSION and self.read_only and self._snapshot_dir is None:
                self.conn.close()  # an older index this process cannot write: it reads a private copy brought forward
                self.index_path = index_path = self._snapshot(index_path)
                found = self._open_index(index_path, exclusive=exclusive)
            if found < schema.SCHEMA_VERSION and self._snapshot_dir is not None:
                self.conn.execute("BEGIN")  # a private copy: brought forward for this reader alone
                schema.migrate(self.conn, found)
                self.conn.execute("COMMIT")
            elif found < schema.SCHEMA_VERSION:  # its commit may go over a damaged log's frames, and its closed
                # connection removes the log: what SQLite dropped is lost to this open and the next (rev32a F5)
                log_lost = self._log_lost = log_lost or cut_tail and wal.damage(
                    index_path.with_name(index_path.name + "-wal"), before=before) is not None
                self._upgrade(alone=exclusive)
            if problems := schema.structure_problems(self.conn):  # (a changed byte of the schema's own text)
                raise errors.error("OPV0201", volume=self.name, reason=f"its index's schema is not optvol's"
                                   f" ({'; '.join(problems[:3])}); optvol recover rebuilds it from the data partition")
            row = self.conn.execute("SELECT volume, sector_size FROM label").fetchone()
            if row is None:
                raise errors.error("OPV0201", volume=self.name, reason="index has no volume label")
            if not isinstance(row[1], int) or row[1] < 512 or row[1] & (row[1] - 1):  # (a hand's, or a flipped bit)
                raise errors.error("OPV0201", volume=self.name, reason=f"its index keeps {row[1]!r} as label.sector_size,"
                                   " not a power of two of 512 or more; optvol recover rebuilds it from the data partition")
            self.volume, self.sector_size = row
            self.data = self._open_data(read_only=data_read_only)
            self.spare_pieces: list[mmap.mmap] = []  # record buffers of finished transactions (Transaction)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise errors.unreadable_index(self.name, exc) from None
        except BaseException:
            self._release()
            raise
        if cut_tail and not self.read_only:
            try:
                self._cut_tail_if_idle(log_lost=log_lost, before=before)  # (that look is this cut's alone: rev32a F4)
            except BaseException:
                self._release()
                raise

    @property
    def writing(self) -> bool:
        """Whether a thread is inside a write transaction of this image (begun, not yet committed or undone)."""
        return self._in_write is not None

    @property
    def read_only(self) -> bool:
        return self._read_only_because is not None

    def _open_data(self, *, read_only: bool = False) -> DataPartition:
        """The data partition; one this user may read but not write (its mode changed) is
        read, and every write refused (OPV0011); one it may not read is OPV0006."""
        path = str(self.directory / DATA_FILE)
        try:
            try:
                return DataPartition(path, sector_size=self.sector_size, volume=self.volume,
                                     read_only=self.read_only or read_only,
                                     index=self.index_path.name)
            except PermissionError:
                if self.read_only:
                    raise
                self._read_only_because = "access"
                return DataPartition(path, sector_size=self.sector_size, volume=self.volume, read_only=True)
        except OSError as exc:
            raise errors.error("OPV0006", library=self.directory.parent,
                               reason=f"{self.directory.name}/{DATA_FILE}: {exc.strerror or exc}") from None

    def _snapshot(self, index: Path) -> Path:
        """A private copy of the index and its log, for a user who may read the image but not
        write it. A writer may be at work: the copy counts only if no checkpoint touched the
        index while it was taken (a log copied as a commit is appended ends, for SQLite, at
        its last whole commit)."""
        try:
            self._snapshot_dir = Path(tempfile.mkdtemp(prefix=f"optvol-{self.name}-"))
        except OSError as exc:
            raise errors.error("OPV0006", library=self.directory.parent, reason=f"volume {self.name} can only be read"
                               f" through a copy of its index, and none can be made ({exc.strerror or exc})") from None
        copy, log = self._snapshot_dir / index.name, index.with_name(index.name + "-wal")
        for attempt in range(SNAPSHOT_TRIES):
            try:
                before = _file_state(index)
                descriptors.copy_file(index, copy)  # (not shutil's: its close would drop this process's SQLite locks, rev29g F1)
                try:
                    shutil.copyfile(log, copy.with_name(log.name))
                except FileNotFoundError:
                    copy.with_name(log.name).unlink(missing_ok=True)
                if _file_state(index) == before:
                    return copy
            except OSError as exc:  # the index cannot be read, or the copy not written (a full disk)
                raise errors.error("OPV0006", library=self.directory.parent,
                                   reason=f"{self.directory.name}/{index.name} cannot be copied to read it into"
                                          f" {self._snapshot_dir.parent} ($TMPDIR) ({exc.strerror or exc})") from None
            time.sleep(0.01 * (attempt + 1))
        raise errors.error("OPV0004", volume=self.name)

    def _open_index(self, path: Path, *, exclusive: bool) -> int:
        """Connect ``self.conn`` to the index; its schema version.

        On a full disk (no free block or inode) SQLite cannot make the shared-memory file of
        a WAL index, nor in a volume directory this user may not write. If no other process
        has the image open and no commits wait in the log, the index is read as it stands
        (immutable to SQLite) and every write is OPV0203 (OPV0011): a full disk must not keep
        anyone from reading, and copying out, what the volume holds. The image stays this
        process's alone meanwhile (its lock exclusive): SQLite would not see another's commits."""
        try:
            # A private copy is read through a connection of its own kind (SQLite makes its -shm).
            self.conn = connect_index(path, read_only=self.read_only and self._snapshot_dir is None,
                                      watch=self._read_only_because == "fs")
            return schema.version_of(self.conn, where=self.name)
        except (errors.OptvolError, sqlite3.OperationalError) as exc:
            because = unopened_because(path, exc)
            if because is None:
                raise
            if self._read_only_because == "fs":  # a writer through another path to this read-only view came
                raise locks.Reopen(wait=locks.BUSY_WAIT) from None  # or went between the look at its log and the open
            if self.read_only or exclusive or log_size(path) or not self._keep_alone():
                raise self.write_refusal(f"opening volume {self.name}", because=because) from None
        self._read_only_because = because
        self.conn = connect_index(path, read_only=True)
        return schema.version_of(self.conn, where=self.name)

    def _upgrade(self, *, alone: bool) -> None:
        """Bring an older index forward to the current schema, with the volume to this process
        alone: an older optvol that has it open would go on writing by its own rules (name
        keys, counts) into the new schema. An image open exclusively stays so; else its lock
        is made exclusive for the upgrade, and the open starts again (``__init__``). flock
        makes a lock exclusive by dropping it first, so a refused try leaves none."""
        if self._lock_fd >= 0 and not alone:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise locks.Reopen(wait=locks.UPGRADE_WAIT) from None
        with self._write_lock(f"upgrading the index of volume {self.name} to schema {schema.SCHEMA_VERSION}"):
            schema.migrate(self.conn, schema.version_of(self.conn, where=self.name))
        if self._lock_fd >= 0 and not alone:
            raise locks.Reopen(wait=None)  # opened anew at once, shared, on what it is now

    def _keep_alone(self) -> bool:
        """No other process has this image open: its shared lock becomes exclusive, and stays
        so until it is closed."""
        if self._lock_fd < 0:
            return False
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # (flock may have dropped the shared lock: the open is refused and closed)
        return True

    def write_refusal(self, operation: str, *, because: str | None = None) -> errors.OptvolError:
        """The error for ``operation`` on an image opened only to be read (``because``: why it must be)."""
        because = because or self._read_only_because
        if because == "full":
            return errors.error("OPV0203", volume=self.name, reason="the host file system is full")
        if because in ("access", "links"):
            return errors.error("OPV0011" if because == "access" else "OPV0016", volume=self.name, operation=operation)
        return read_only_error(self.directory.parent, operation)

    # ----------------------------------------------------------------- life cycle

    @classmethod
    def create(cls, directory: Path, *, label: dict) -> None:
        """Create a new image in the empty directory ``directory`` with one LABEL record."""
        directory.mkdir(parents=True, exist_ok=False)
        (directory / DATA_FILE).touch()
        conn = connect_index(directory / INDEX_FILE)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        schema.create(conn)
        conn.execute(
            f"INSERT INTO label (id, {', '.join(LABEL_FIELDS)}) VALUES (1, {', '.join('?' * len(LABEL_FIELDS))})",
            [label.get(f) for f in LABEL_FIELDS],
        )
        conn.execute("COMMIT")
        conn.close()
        image = cls(directory)
        try:
            with image.transaction() as tx:
                tx.write_label(label, once=True)
                place = tx.append(Kind.DIRECTORY, {"path": "/", "created": label["created"]}, charged=False)
                tx.charge(place.sectors)  # as the label, a new image's root is never refused
                index_root(image.conn, created=label["created"], sector=place.sector)
        finally:
            image.close()
        fsync_dir(directory)

    def close(self, *, wait: bool = True) -> None:
        """Close the image; another thread's write or snapshot under way on its connection
        ends first, as a file's close waits for a write in progress (hunt28g F1: closed under
        a batch, the batch's appended records outlived the index's log, and the next open
        found the volume damaged, and recover brought half the failed batch back). ``wait``
        False (the collector's close): if another thread holds it, close at once."""
        conn = getattr(self, "conn", None)  # (a Closed one raises for any attribute)
        owner = conn.owner if isinstance(conn, sqlite3.Connection) else None
        if not isinstance(owner, Owner) or os.getpid() != getattr(self, "pid", os.getpid()):
            self._close()
            return
        held = owner.acquire(blocking=wait)
        try:
            self._close()
        finally:
            if held:
                owner.release()

    def _close(self) -> None:
        if isinstance(getattr(self, "data", None), DataPartition):
            if self._cuts_tails and not self.read_only and os.getpid() == self.pid and not self._write_begun:
                with contextlib.suppress(Exception):  # a tail a refused rollback could not cut: cut now, not left
                    self._cut_tail_if_idle()  # to a later open, which would take it for a lost log's commits
            self.data.close()
            self.data = Closed(getattr(self, "name", "?"))
        self._release()

    closed = property(lambda self: not isinstance(getattr(self, "data", None), DataPartition))

    def __del__(self) -> None:  # a volume dropped unclosed keeps no descriptor (and no lock) for long
        with contextlib.suppress(Exception):
            self.close(wait=False)

    def release_lock(self) -> None:
        """Drop the open lock of an image only read (as on a read-only file system, which takes
        none): a journal's roll-forward by a process that may write the library needs it alone."""
        if self.read_only and self._lock_fd >= 0:
            locks.release(self._lock_fd)
            self._lock_fd = -1

    def _release(self) -> None:
        forked = os.getpid() != getattr(self, "pid", os.getpid())  # the parent's to close, not a child's
        if isinstance(getattr(self, "conn", None), sqlite3.Connection):
            if not forked:
                self.conn.close()
            self.conn = Closed(getattr(self, "name", "?"))
        if getattr(self, "_lock_fd", -1) >= 0:
            locks.release(self._lock_fd)
            self._lock_fd = -1
        if not forked:
            self._release_snapshot()

    def _release_snapshot(self) -> None:
        """Remove the private copy of the index, if there is one."""
        if self._snapshot_dir is not None:
            shutil.rmtree(self._snapshot_dir, ignore_errors=True)
            self._snapshot_dir = None

    def __enter__(self) -> VolumeImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reading

    def meta(self, key: str) -> int:
        return schema.number(self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone(), key, self.name)

    def label(self) -> dict:
        row = self.conn.execute(f"SELECT {', '.join(LABEL_FIELDS)} FROM label").fetchone()
        return dict(zip(LABEL_FIELDS, row, strict=True))

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query sees one committed state; inside this thread's own
        write or snapshot (its caller holds ``owner``), that one's (a failed BEGIN ends nothing)."""
        if self.conn.in_transaction and not (self._write_begun or self._live_snapshots):
            self.conn.execute("COMMIT")  # a read transaction an interrupt left open (below): ended
        was, self._live_snapshots = self.conn.in_transaction, self._live_snapshots + 1
        try:
            if not (was and (self._write_begun or self._live_snapshots > 1)):  # not inside its own
                self.conn.execute("BEGIN")
            yield self.conn
        finally:
            with signals_held():  # an interrupt here would leave the read transaction open
                self._live_snapshots -= 1
                if not was and self.conn.in_transaction:  # (begun, perhaps just as an interrupt came)
                    self.conn.execute("COMMIT")

    def read_header(self, sector: int) -> records.Header:
        return _header_at(self.data.read, sector, self.sector_size)

    def holds_file_records(self) -> bool:
        """Whether the data partition holds a FILE or DELETE record, or a record it cannot read,
        before the committed end: what a *WORM volume keeps for good even where its index lists
        no file version (DUPOPT ALWMEDERR(*FILE) left it out, recover could not read it)."""
        sector, end = 0, self.meta("committed_end")
        while sector < end:
            try:
                header = self.read_header(sector)
            except errors.OptvolError:
                return True
            if header.kind in (records.Kind.FILE, records.Kind.DELETE):
                return True
            sector += header.total_sectors(self.sector_size)
        return False

    def payload_chunks(self, *, sector: int, header_sectors: int, size: int) -> Iterator[bytes]:
        """The unverified bytes of the payload of the record at ``sector``."""
        return self.data.chunks(sector + header_sectors, size)

    def payload_sha256(self, *, sector: int, header_sectors: int, size: int) -> bytes:
        digest = hashlib.sha256()
        for chunk in self.payload_chunks(sector=sector, header_sectors=header_sectors, size=size):
            digest.update(chunk)
        return digest.digest()

    # ----------------------------------------------------------------- writing

    @contextmanager
    def _write_lock(self, operation: str) -> Iterator[None]:
        if self.read_only:
            raise self.write_refusal(operation)
        with self.conn.owner:  # (another thread's statements wait: IndexConnection)
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise errors.error("OPV0004", volume=self.volume if hasattr(self, "volume") else self.name) from exc
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def transaction(self, *, now: int | None = None) -> Iterator[Transaction]:
        """A write transaction (module docstring); ``now`` becomes last_referenced."""
        if self.read_only:
            raise self.write_refusal(f"writing volume {self.volume}")
        if self._in_write == threading.get_ident():  # a signal's handler in the middle of it, say (review 23 F5b)
            raise errors.error("OPV0017", volume=self.volume)
        try:
            self._in_write = threading.get_ident()  # (inside: an interrupt before it must not leave it set)
            yield from self._transaction_body(now)
        finally:
            self._in_write = None

    def _transaction_body(self, now: int | None) -> Iterator[Transaction]:
        """``transaction``'s work, which no write of the same thread enters."""
        if self.conn.in_transaction and (self._write_begun or not self._live_snapshots):  # an interrupt came
            self.conn.execute("ROLLBACK")  # between an earlier BEGIN and its cleanup (a live snapshot's stays)
        elif self.conn.in_transaction:  # this thread's own snapshot (another thread's waits for ``owner``)
            raise errors.error("OPV0015", volume=self.volume)
        self._write_begun = True
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:  # (the cursor has mapped most of SQLite's errors already)
            self._write_begun = False
            if isinstance(exc, sqlite3.OperationalError):
                raise errors.error("OPV0004", volume=self.volume) from exc
            if not isinstance(exc, Exception) and self.conn.in_transaction and not self._live_snapshots:
                self.conn.execute("ROLLBACK")  # an interrupt as BEGIN returned: the write lock it took goes back
            raise
        tx = None
        try:
            schema.version_of(self.conn, where=self.name)  # a newer optvol may have brought the index forward
            committed = self.meta("committed_end")
            self.data.check_writable_at(committed)
            if self.data.size_sectors() > committed:
                self._keep_commits(committed)  # (OPV0201 where SQLite dropped a damaged log's commits)
                self._cut_tail(committed)  # a torn tail from a writer that died
            tx = Transaction(self)
            yield tx
            tx.finish(now)
        except BaseException:
            if os.getpid() != self.pid:  # a forked child leaving the parent's transaction (sys.exit):
                raise  # the parent's connection, writer and data partition are not its own to undo
            with signals_held():  # a second Ctrl-C must not cut the undoing short (a writer left running)
                try:
                    if tx is not None:  # cut while the write lock is held: after it, another writer may append there
                        tx.stop_writeback()
                        with contextlib.suppress(OSError):  # a disk gone read-only after an error: the first error
                            self.data.truncate(tx.committed_end)  # is the one to report; the close or the next cuts
                finally:
                    self.conn.execute("ROLLBACK")
                    self._write_begun = False
                    self._in_write = None  # over: a handler this block deferred may write (review 23a F5)
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException as exc:  # a full disk or an I/O error at the commit: SQLite may have rolled back
            if self.conn.in_transaction:  # or not; a connection a program keeps must not stay inside it
                with contextlib.suppress(errors.OptvolError, sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            own = tx.committed_end if isinstance(exc, errors.VolumeFullError) else None  # a log frame the full
            with contextlib.suppress(Exception):  # disk tore is this commit's, not a damaged log's lost commits
                self._cut_tail_if_idle(own=own)  # what was appended lies past the committed end, wherever that
            raise  # is: cut under the write lock (a full disk gets it back), or by the next writer
        finally:
            self._write_begun = self.conn.in_transaction
        self.volume = tx.volume  # a LABEL it committed may have renamed the volume (DUPOPT's copy)

    def barrier(self) -> None:
        """Take and release the write lock: every transaction begun before has committed."""
        if self.read_only:
            return  # the index is immutable to this connection: no later commit would show
        with self._write_lock("waiting for its writers"):
            pass

    def _cut_tail_if_idle(self, *, log_lost: bool = False, own: int | None = None,
                          before: wal.Before | None = None) -> None:
        """Cut a torn tail now if no writer is active (a writer's tail is its own). Not a tail
        that may hold commits (``log_lost``: the index had no log, ``-wal``, before this open,
        as in a copy that left it out, where a writer that died leaves one, and the tail begins
        with this volume's next record): OPV0201, recover brings them back. ``own``: the
        committed end of this process's transaction whose COMMIT the full disk refused; while
        the index still ends there, the tail (and a log frame torn with it) is that
        transaction's, cut without that check (it was reported as nothing changed). ``before``:
        what the open found of the log before its SQLite connected (``wal.look``), for the
        open's own cut alone."""
        if self.data.size_sectors() <= self.meta("committed_end"):
            return
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            committed = self.meta("committed_end")
            # The files are still this open's (rev29g F1: an index whose -wal and -shm another process
            # removed while this one had lost its SQLite locks; its stale committed end cut that one's files).
            self.data.check_writable_at(min(committed, self.data.size_sectors()))
            if committed != own:
                self._keep_commits(committed, log_lost=log_lost, before=before)
            self._cut_tail(committed)
        finally:
            self.conn.execute("COMMIT")

    def _cut_tail(self, committed: int) -> None:
        """Cut the data partition back to ``committed`` (its caller holds the write lock), and
        the log's frames past its -shm index with it: SQLite may have written them whole,
        never to come back in force over the cut records, for a refused COMMIT (rev28h F2) or
        a writer killed between its log's sync and its -shm update while another process kept
        the -shm (hunt29a F1: the commit came back once that process was killed too)."""
        wal.drop_unindexed(self.index_path.with_name(self.index_path.name + "-wal"))
        self.data.truncate(committed)

    def _keep_commits(self, committed: int, *, log_lost: bool = False, before: wal.Before | None = None) -> None:
        """OPV0201 where the tail past ``committed`` may hold commits, and so must not be cut
        (its caller holds the write lock): it begins with this volume's next record, and the
        index came without its log (``log_lost``), or its log holds a frame SQLite dropped as
        damaged (``wal.damage``: a flipped bit, a frame cut short), with every commit after it;
        not a frame the open found (``before``, of ``wal.look``) past every commit reported done
        (a writer killed as it wrote it): that holds only at the open's own cut, as the commits
        an image kept open makes later lie past it too (rev32a F4)."""
        if not self._cuts_tails or not self._next_record_at(committed):
            return
        if log_lost:
            raise self._lost_log_error()
        damaged = wal.damage(self.index_path.with_name(self.index_path.name + "-wal"), before=before)
        if damaged:
            raise errors.error("OPV0201", volume=self.name, reason=(
                f"its data partition holds records past the end its index records, and its index's log"
                f" ({self.index_path.name}-wal) was damaged ({damaged}), which SQLite drops with every commit after"
                f" it: they may be those commits, and are kept; optvol recover brings them back"))

    def _lost_log_error(self) -> errors.OptvolError:
        return errors.error("OPV0201", volume=self.name, reason=(
            f"its data partition holds records past the end its index records, and its index came without its"
            f" log ({INDEX_FILE}-wal), as a copy that left it out does (or as an open that found the log damaged"
            f" leaves it): they may be commits of that log, and are kept; optvol recover brings them back"))

    def _next_record_at(self, sector: int) -> bool:
        """Whether a sound record of this volume, the one its index would number next, starts at ``sector``."""
        try:
            header = self.read_header(sector)
        except (errors.OptvolError, OSError):
            return False
        return header.sequence == self.meta("next_sequence") and header.body.get("volume") == self.volume
