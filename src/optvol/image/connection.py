"""The SQLite connection to a volume's index: every failure reported as optvol's error
(a damaged index as damaged data, exit 7; a full disk as OPV0203), never a traceback."""

from __future__ import annotations

import collections
import contextlib
import contextvars
import os
import sqlite3
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

from optvol import errors
from optvol.image import descriptors
from optvol.image.signals import signals_held

BUSY_TIMEOUT_MS = 60_000


def _index_error(exc: Exception, where: str) -> Exception:
    """What an SQLite failure on a volume's index means to optvol.

    A damaged index file surfaces in the middle of any query ("database disk image is
    malformed", undecodable text); it must be the damaged-data error (exit 7), never a
    traceback. Lock contention stays SQLite's own error, which the callers turn into
    "in use"; a constraint or programming error is a bug and stays as it is."""
    if isinstance(exc, sqlite3.ProgrammingError) and "closed database" in str(exc):
        # closed by another thread while this one waited for it: a closed volume's ValueError (hunt28g F2)
        return ValueError(f"I/O operation on closed volume {where}")
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return exc
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return exc
    # SQLite reports a full disk as SQLITE_FULL, or as SQLITE_IOERR_SHMSIZE when it cannot
    # grow the shared-memory file of WAL mode.
    if "full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_IOERR_SHMSIZE":
        return errors.error("OPV0203", volume=where, reason="the host file system is full")
    if "within a transaction" in text:  # another thread's transaction on this connection (a shared Volume)
        return errors.error("OPV0004", volume=where)
    if "readonly database" in text:  # an index file this user may read but not write
        return errors.error("OPV0011", volume=where, operation="writing its index")
    if "disk I/O error" in text:
        return errors.error("OPV0204", volume=where, reason=text)
    return errors.unreadable_index(where, text)


class _Cursor(sqlite3.Cursor):
    """A cursor that reports a damaged index as optvol's error (see ``_index_error``), each
    step under its connection's ``owner`` lock (``IndexConnection``).

    A statement a thread began outside a transaction holds SQLite's read snapshot of the
    shared connection until its last row is read, and a thread gives ``owner`` back between
    steps: another thread's statement would run inside that old snapshot (not seeing what
    another process committed since) and its BEGIN IMMEDIATE would fail at once if another
    process had written (SQLITE_BUSY_SNAPSHOT: OPV0004 within milliseconds). So a statement
    first reads the rest of every other thread's unfinished statement into that cursor's
    buffer (``_drain``), and a BEGIN this thread's own too: each reads on from its buffer,
    the rows of the moment it began."""

    _buffer: collections.deque | None = None  # the rest of its rows, read by another statement (``_drain``)
    _failure: Exception | None = None  # what reading the rest met, raised after the buffered rows
    _thread: int | None = None  # the thread that began its statement

    def _unguarded(self, method: Callable, *args):
        """``method`` as a step of this cursor's statement, the caller holding ``owner``."""
        view = self.connection.view
        try:
            found = method(*args)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            if view is not None and view.changed() or self.connection.watched and "readonly" in str(exc):
                raise self._changed() from None  # torn by a change, not damaged; a log another path is at
            raise _index_error(exc, self.connection.where) from None
        if view is not None and view.changed():
            raise self._changed()
        return found

    def _changed(self) -> errors.OptvolError:
        """OPV0004 for a read of an index changed under it (``FrozenView``); the statement is
        ended, so that an error a program keeps does not keep the closed volume's files open."""
        with contextlib.suppress(sqlite3.Error):
            self.close()
        return errors.error("OPV0004", volume=self.connection.where)

    def _drain(self) -> None:
        """Read the rest of this cursor's statement into its buffer, which ends the statement
        (its caller holds ``owner``); a failure is kept for the reader of the buffer, and the
        reader reads on from the statement where an interrupt stopped this."""
        rows = self._buffer = collections.deque() if self._buffer is None else self._buffer
        try:
            # Ctrl-C held back: its KeyboardInterrupt, raised as a step returns, lost that row
            # of another thread's statement (review 24a F1).
            with signals_held():
                while (row := self._unguarded(super().fetchone)) is not None:
                    rows.append(row)
        except sqlite3.ProgrammingError:  # closed: its reader finds it so
            pass
        except Exception as exc:  # (an OPV error; damaged, or changed under it)
            self._failure = exc

    def _buffered(self, count: int | None) -> list:
        """Up to ``count`` (None: all) rows of the buffer (``_drain``), the caller holding ``owner``."""
        rows = self._buffer
        if rows is None:
            return []
        taken = [rows.popleft() for _ in range(min(count, len(rows)))] if count is not None else list(rows)
        if count is None or not rows:
            self._buffer = None
        return taken

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def execute(self, *args):
        statement = args[0] if args else None
        connection = self.connection
        if statement == "BEGIN IMMEDIATE":
            _refuse_waiting_for_oneself(connection)
        with connection.owner:
            self._buffer = self._failure = None
            connection.pending.pop(id(self), None)
            if connection.pending:
                _drain_others(connection, self, beginning=statement in ("BEGIN IMMEDIATE", "BEGIN"))
            found = self._unguarded(super().execute, *args)
            if self.description is not None:  # a statement with rows: it may hold a snapshot until read
                self._thread = threading.get_ident()
                connection.pending[id(self)] = weakref.ref(self)
        if statement in ("BEGIN IMMEDIATE", "BEGIN", "COMMIT", "ROLLBACK"):
            connection.writer = threading.get_ident() if statement == "BEGIN IMMEDIATE" else None
        return found

    def executemany(self, *args):
        with self.connection.owner:
            self._buffer = self._failure = None
            self.connection.pending.pop(id(self), None)  # (its earlier statement, if any, ends here)
            if self.connection.pending:
                _drain_others(self.connection, self, beginning=False)
            return self._unguarded(super().executemany, *args)

    # A drained statement's rows come from its buffer, then (all read, or an interrupt
    # stopped the drain) from the statement itself.

    def fetchone(self):
        with self.connection.owner:
            found = self._buffered(1)
            if found:
                return found[0]
            self._raise_failure()
            return self._unguarded(super().fetchone)

    def fetchall(self):
        with self.connection.owner:
            found = self._buffered(None)
            self._raise_failure()
            return found + self._unguarded(super().fetchall)

    def fetchmany(self, size: int | None = None):
        size = self.arraysize if size is None else size
        with self.connection.owner:
            found = self._buffered(size)
            if len(found) < size and not (found and self._failure is not None):
                self._raise_failure()
                found += self._unguarded(super().fetchmany, size - len(found))
            return found

    def __next__(self):
        with self.connection.owner:
            found = self._buffered(1)
            if found:
                return found[0]
            self._raise_failure()
            return self._unguarded(super().__next__)


def _drain_others(connection: IndexConnection, cursor: _Cursor, *, beginning: bool) -> None:
    """Before ``cursor``'s statement: end every other thread's unfinished statement on
    ``connection`` (``_Cursor``), and this thread's own before a BEGIN."""
    me = threading.get_ident()
    for key, ref in list(connection.pending.items()):
        other = ref()
        if other is None:  # collected: its statement ended with it
            if connection.pending.get(key) is ref:
                del connection.pending[key]
        elif other is not cursor and (beginning or other._thread != me):
            other._drain()
            connection.pending.pop(key, None)  # (after: one an interrupt cut short stays pending)


class _Body:
    """The ``with`` block of a batch or snapshot a user program runs (``Owner.body``): the
    thread that holds it, and the frames that run it (a generator's, resumed elsewhere)."""

    def __init__(self, thread: int, frames: list):
        self.thread, self.frames = thread, frames


# The bodies of every batch or snapshot this context runs in, innermost last: a batch of one
# volume inside a hold of another keeps the outer one's mark (rev24c F1).
_INSIDE: contextvars.ContextVar[tuple[_Body, ...]] = contextvars.ContextVar("optvol_body", default=())


class Owner:
    """``IndexConnection.owner``: a re-entrant lock held for each step of a statement, and by
    a thread for the whole of its write transaction or read snapshot. A thread that would
    wait for it while it runs code in a copy of the context of the user's batch or snapshot
    that holds it (``asyncio.to_thread`` inside a task's batch: code the holder most likely
    waits for) is refused at once (OPV0018): it waited for ever (hunt-stress F3 of session
    23). A generator that holds one, resumed in another thread, still waits: refused there,
    the batch's undo could not run either (it needs the lock) and left the holder's
    transaction open."""

    def __init__(self, where: str = "?"):
        # Re-entered by its holder without a second acquire of the C lock (``_depth``): a
        # Ctrl-C that Python raises as the C lock's acquire returns, before the ``with`` has
        # begun, is undone by ``acquire`` only when it can tell the lock was taken by that call
        # (hunt28g F3: the main thread kept it after a KeyboardInterrupt, every other thread
        # waited for ever).
        self._lock = threading.RLock()  # (for ``_is_owned``: taken once, by its holder)
        self._holder: int | None = None
        self._depth = 0  # the holder's holds; changed only by the holder
        self.where = where
        self.body: _Body | None = None  # the user's batch or snapshot block that holds it

    def acquire(self, blocking: bool = True) -> bool:
        me = threading.get_ident()
        if self._holder == me:
            self._depth += 1
            return True
        try:
            if not self._lock.acquire(False):
                if not blocking:
                    return False
                body = self.body
                if (body is not None and body.thread != me and any(mine is body for mine in _INSIDE.get())
                        and not _runs(body)):
                    raise errors.error("OPV0018", volume=self.where)
                self._lock.acquire()
            self._holder, self._depth = me, 1
        except BaseException:
            if self._holder != me and self._lock._is_owned():
                self._lock.release()  # taken by this call, then interrupted as the acquire returned
            raise
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._holder = None
            self._lock.release()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @contextlib.contextmanager
    def body_of(self, frames: list) -> Iterator[None]:
        """Mark the user's block that ``frames`` run (the frame of its ``with`` and those it was
        called from), and the code it runs in the copies of its context (``asyncio.to_thread``),
        as the body of this thread's hold; the caller holds it."""
        outer = self.body
        if outer is not None:  # a batch or snapshot inside one of this thread's own
            outer.frames.extend(frames)
            try:
                yield
            finally:
                _drop(outer.frames, frames)  # (by identity: holds of generators may end in any order)
            return
        body = self.body = _Body(threading.get_ident(), list(frames))
        previous = _INSIDE.get()
        _INSIDE.set((*previous, body))
        try:
            yield
        finally:
            self.body = None
            body.frames.clear()  # (a stale mark a context keeps holds no frame, nor the locals it keeps)
            _INSIDE.set(previous)  # (the context it ends in: a stale mark names no hold)


def _drop(marked: list, frames: list) -> None:
    """Take ``frames``, added as one run, out of ``marked``: the last run of them, by identity."""
    for at in range(len(marked) - len(frames), -1, -1):
        if all(marked[at + n] is frame for n, frame in enumerate(frames)):
            del marked[at : at + len(frames)]
            return


def _runs(body: _Body) -> bool:
    """Whether this thread's stack runs a frame of ``body`` (a generator resumed here)."""
    frame = sys._getframe(2)
    while frame is not None:
        if any(frame is mine for mine in body.frames):
            return True
        frame = frame.f_back
    return False


class PrivateCursor(sqlite3.Cursor):
    """A cursor of an index no other thread or process reads (CHKOPTVOL's scratch index): its
    failures mean what ``_Cursor``'s do, without the bookkeeping that lets threads share a
    connection (a quarter of a replay's time)."""

    def execute(self, *args):
        try:
            return super().execute(*args)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise _index_error(exc, self.connection.where) from None

    def executemany(self, *args):
        try:
            return super().executemany(*args)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise _index_error(exc, self.connection.where) from None


class IndexConnection(sqlite3.Connection):
    """A connection to an index (``sqlite3.connect(..., factory=IndexConnection)``): every
    statement runs on a ``_Cursor``; ``where`` names the volume in its errors. ``owner``: a
    lock held for each step of a statement, and by a thread for the whole of its write
    transaction or read snapshot (``VolumeImage``): the threads of a program that share a
    volume never see, join or end each other's transactions (one connection has one)."""

    writer: int | None = None  # the thread whose BEGIN IMMEDIATE holds SQLite's write lock
    view: FrozenView | None = None  # an index SQLite reads as immutable, that others may change
    watched = False  # a read-only view of an index others may write through another path (``connect_index``)

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self.database = database
        self.owner = Owner()
        # Statements that may be unfinished, by the id of their cursor: weak references without
        # a callback, so that a cursor's end runs no Python code, in which a signal handler's
        # exception (Ctrl-C) was only printed, and lost (a WeakSet's; review 24a F2).
        self.pending: dict[int, weakref.ref[_Cursor]] = {}
        _CONNECTIONS.add(self)

    @property
    def where(self) -> str:
        return self.owner.where

    @where.setter
    def where(self, value: str) -> None:
        self.owner.where = value

    cursor_class: type[sqlite3.Cursor] = _Cursor  # PrivateCursor for an index this thread alone reads

    def cursor(self, factory=None):
        try:
            return super().cursor(factory or self.cursor_class)
        except sqlite3.ProgrammingError as exc:  # closed (by another thread, say): ValueError
            raise _index_error(exc, self.where) from None

    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def close(self):
        super().close()
        if self.view is not None:
            self.view.close()
        else:  # optvol's own descriptors of its files kept while this connection held their locks
            descriptors.close_unheld()

    def check_unchanged(self) -> None:
        """OPV0004 if the index this connection reads as immutable changed since it was
        opened (``FrozenView``): for what reads it other than through statements (SQLite's
        backup API)."""
        if self.view is not None and self.view.changed():
            raise errors.error("OPV0004", volume=self.where)


_CONNECTIONS: weakref.WeakSet[IndexConnection] = weakref.WeakSet()


def _registered() -> list[IndexConnection]:
    """The process's open connections: a WeakSet another thread adds to (an open) while it is
    walked raises RuntimeError, which a write's BEGIN raised (hunt28g F6): walked again."""
    while True:
        try:
            return list(_CONNECTIONS)
        except RuntimeError:  # ("Set changed size during iteration")
            continue


def _refuse_waiting_for_oneself(connection: IndexConnection) -> None:
    """OPV0014 when this thread already holds the write lock of the same index through
    another connection (a program that opened the volume twice and writes through one
    inside the other's batch): SQLite would let it wait for itself, 60 s, then OPV0004. A
    BEGIN IMMEDIATE that does not wait (opening a volume looks for an idle writer) goes on."""
    me = threading.get_ident()
    for other in _registered():
        if other is connection or other.writer != me:
            continue
        try:
            holding = other.in_transaction and os.path.samefile(other.database, connection.database)
        except (sqlite3.ProgrammingError, OSError, TypeError, ValueError):  # closed, or not a plain path
            holding = False
        if holding and connection.execute("PRAGMA busy_timeout").fetchone()[0] > 0:  # (0: a look, no wait)
            raise errors.error("OPV0014", volume=connection.where)


class _Forked:
    """The ``owner`` of a connection in a process forked while it was open: every statement
    is refused (OPV0013), reads too. SQLite's connection is the parent's: a child that read
    through it saw a parent thread's uncommitted batch, or waited for ever on a lock a thread
    of the parent held at the fork. Taking it without blocking fails (a handle the collector
    closes in the child writes nothing)."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self) -> None:
        raise errors.error("OPV0013", volume=self.where)

    def __exit__(self, *exc: object) -> None:
        pass

    def acquire(self, blocking: bool = True) -> bool:
        if blocking:
            raise errors.error("OPV0013", volume=self.where)
        return False

    def release(self) -> None:
        pass


def _unlocked_in_child() -> None:
    """A forked child's connections refuse every statement (``_Forked``)."""
    for connection in _registered():
        connection.owner, connection.writer = _Forked(connection.where), None


def adopt_in_child() -> None:
    """The parent's connections serve a child again: only for CPYOPT's read-ahead child
    (``copy_readahead``), forked while its parent runs no other thread and holds no
    transaction, which reads committed state and leaves with ``os._exit``."""
    for connection in _registered():
        connection.owner = Owner(connection.where)


os.register_at_fork(after_in_child=_unlocked_in_child)


class FrozenView:
    """An index read as immutable on a read-only file system (``reading_uri``) while the
    same files may be written through another, writable path to them (a read-only bind
    mount, a read-only export): SQLite would go on reading pages a writer's checkpoint has
    changed (files listed and then not found, or a torn query). Every step of a statement
    checks (``_Cursor``) that the index file is as it was before the index was opened (its
    size, modification and change times, through a descriptor of its own): the first read after a
    checkpoint is OPV0004 (in use), and an image opened again reads the new state. Commits
    not yet checkpointed stay unseen: the volume as it was, whole. (The data partition's
    committed records never change, and this reader's descriptor keeps a replaced file.)"""

    def __init__(self, index: Path, state: tuple[int, int, int] | None = None):
        self.index, self.fd = index, descriptors.open_kept(index)
        self.state = self._now() if state is None else state

    def again(self) -> FrozenView:
        """A view for another connection to the same index, as this one found it."""
        return FrozenView(self.index, self.state)

    def _now(self) -> tuple[int, int, int]:
        found = os.fstat(self.fd)
        return found.st_size, found.st_mtime_ns, found.st_ctime_ns

    def changed(self) -> bool:
        return self._now() != self.state

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            descriptors.close_kept(fd)  # (kept while SQLite holds the file: rev29g F2)


def reading_uri(path: Path, *, read_only: bool) -> str:
    """The SQLite URI that opens index ``path`` for reading only (``Path.as_uri`` escapes a
    library path's "?", "#" and "%"). For an image opened only to be read (a read-only or a
    full file system, ``VolumeImage.read_only``) SQLite cannot make a WAL index's
    shared-memory file: the index is immutable to SQLite then, unless a log of commits is
    still beside it."""
    if read_only and not log_size(path):
        return path.as_uri() + "?mode=ro&immutable=1"
    return path.as_uri() + "?mode=ro"


def log_size(path: Path) -> int:
    """The size of index ``path``'s log (``-wal``): 0 when there is none (a writer through
    another path may remove it at any moment)."""
    try:
        return os.stat(path.with_name(path.name + "-wal")).st_size
    except FileNotFoundError:
        return 0


def side_files_refused(directory: Path) -> str | None:
    """Why SQLite could not make an index's side files (``-wal``, ``-shm``) in ``directory``
    ("unable to open database file"), if the host says: "full" (no free block or inode
    for this user) or "access" (not writable by it); None if neither (a damaged index)."""
    try:
        found = os.statvfs(directory)
    except OSError:
        return None
    root = os.geteuid() == 0
    if (found.f_ffree if root else found.f_favail) == 0 or (found.f_bfree if root else found.f_bavail) == 0:
        return "full"
    return None if os.access(directory, os.W_OK) else "access"


def unopened_because(index: Path, exc: Exception) -> str | None:
    """Why SQLite could not open ``index`` for writing (``exc``) when it may still be read as
    it stands: "full" (a full disk; or no inode for the side files, "unable to open database
    file"), "access" (a file or directory this user may not write: "readonly", or "unable to
    open"); None for any other failure (a damaged index stays damaged). An index this user
    may not read is OPV0006."""
    if isinstance(exc, errors.VolumeFullError):
        return "full"
    if getattr(exc, "message_id", None) == "OPV0011":
        return "access"
    if not isinstance(exc, (errors.DamagedError, sqlite3.OperationalError)) or (
            "unable to open database file" not in str(exc)):
        return None
    if not os.access(index, os.R_OK):
        raise errors.error("OPV0006", library=index.parent.parent,
                           reason=f"{index.parent.name}/{index.name}: permission denied") from None
    return side_files_refused(index.parent)


def host_failure(exc: BaseException, directory: Path, volume: str) -> errors.OptvolError | None:
    """What ``exc``, met while the host and SQLite wrote a new index or image in
    ``directory``, means for volume ``volume``: the host's failure, OPV0203 on a full disk
    or one without a free inode (SQLite then "cannot open" the index), else OPV0204; None
    when it is no host failure."""
    if isinstance(exc, OSError):
        return errors.host_write_error(exc, volume)
    if isinstance(exc, (sqlite3.Error, errors.DamagedError)) and (
            isinstance(exc, sqlite3.Error) and "full" in str(exc) or side_files_refused(directory) == "full"):
        return errors.error("OPV0203", volume=volume, reason="the host file system is full")
    if isinstance(exc, sqlite3.Error):
        return errors.error("OPV0204", volume=volume, reason=str(exc))
    return None


class Closed:
    """What a closed image holds in place of its connection and data partition: any use
    is a ValueError, as a closed file's is, not an AttributeError of None."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        raise ValueError(f"I/O operation on closed volume {self._name}")


def connect_index(path: Path, *, read_only: bool = False, watch: bool = False) -> sqlite3.Connection:
    """A connection to an index; ``read_only`` for an image opened only to be read; ``watch``:
    others may write it through another path (a read-only file system: ``FrozenView``)."""
    try:
        view = FrozenView(path) if watch else None  # before the log is looked at
    except OSError:  # SQLite says what is wrong with the index
        view = None
    target = reading_uri(path, read_only=True) if read_only else path
    try:
        conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False, factory=IndexConnection, uri=read_only)
    except BaseException:
        if view is not None:
            view.close()
        raise
    conn.watched = watch
    if str(target).endswith("immutable=1"):
        conn.view = view
    elif view is not None:  # its log is read through the -shm the writer keeps: SQLite sees every commit
        view.close()
    conn.where = path.parent.name.removesuffix(".optvol")
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = FULL")  # the first statement on a WAL index: it maps the -shm
        conn.execute("PRAGMA cache_size = -16000")
    except BaseException:
        conn.close()
        raise
    return conn
