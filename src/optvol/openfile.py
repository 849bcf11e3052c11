"""File objects that ``Volume.open`` gives user programs (layer 3, beside ``volume.py``).

A reader checks the SHA-256 of the whole version before it returns its first byte, so a
damaged file fails (CPF1F28, exit 7) and never hands out wrong bytes. A writer collects
the data in a spool file and writes it to the volume as one new version when it is
closed; until then nobody sees it, and an exception inside ``with`` discards it. A refused
write spoils the writer (``VolumeWriter.check_usable``): nothing of it is ever written.
"""

from __future__ import annotations

import atexit
import codecs
import errno
import io
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator

from optvol import chunk_check, errors, model
from optvol.image.image import Transaction
from optvol.image.locks import read_only_error
from optvol.image.signals import signals_held
from optvol.volume_rows import READ_ONLY

SPOOL_IN_MEMORY = 8 << 20
WRITE_BUFFER = 1 << 20  # a writer's buffer: each write that reaches the spool checks the space (_refuse_unless_room)
_WRITE_MODES = {"w": True, "x": False, "a": True}
# The handles of this process that opened a file version (``_hold``); a closed one holds none.
_HANDLES: weakref.WeakSet = weakref.WeakSet()
_HANDLES_LOCK = threading.Lock()  # adding to it, or copying it, while another thread adds
# The writer handles programs were given (``_spoil_in_child``, ``_close_at_exit``).
_GIVEN: weakref.WeakSet = weakref.WeakSet()
# The reader handles (binary, under their text wrapper if any): closed with their volume (``close_readers``).
_READERS: weakref.WeakSet = weakref.WeakSet()


def open_file(volume, path: str, mode: str, *, encoding: str | None):
    """Open ``path`` on ``volume`` in ``mode`` (``r``, ``w``, ``x`` or ``a``, with or without ``b``).
    Every argument is checked before anything is made: a writer made and then dropped by a
    refusal was written by the collector (an unknown encoding replaced the file with an
    empty one: hunt-api F1)."""
    kind, binary = (mode.replace("b", ""), "b" in mode) if isinstance(mode, str) else (None, False)
    if kind not in ("r", *_WRITE_MODES) or mode.count("b") > 1 or (binary and encoding):
        raise errors.error("OPV0005", value=mode, keyword="mode", reason="use r, w, x or a, optionally with b")
    if not binary:
        encoding = _text_encoding(encoding)
    if kind == "r":
        volume.check_user_access("opening a file")
        raw = VolumeReader(volume, path)
        buffered = io.BufferedReader(raw)
        with _HANDLES_LOCK:
            _READERS.add(buffered)
        given = buffered if binary else io.TextIOWrapper(buffered, encoding=encoding)
    else:
        volume.check_user_write("opening a file for writing")
        if volume.image.read_only:  # before the spool is made in the volume's directory
            raise volume.image.write_refusal("opening a file for writing")
        raw = VolumeWriter(volume, path, kind)
        try:
            buffered = _AbortingWriter(raw, buffer_size=WRITE_BUFFER)
            buffered.volume_writer, raw.wrapped = raw, True
            if not binary:
                bom, encoding = _byte_order_mark(encoding)
                text = _AbortingText(buffered, encoding=encoding)
                text.byte_order_mark = b"" if raw.size_written else bom  # at the start only
                text.volume_writer, buffered.wrapped = raw, True
        except BaseException:
            raw.discard()  # what the collector finalizes now writes nothing
            raise
        given = buffered if binary else text
        with _HANDLES_LOCK:
            _GIVEN.add(given)
    if not binary:
        given.mode = mode  # (as open() gives a text file its mode; a binary one's is its raw file's)
    return given


def close_readers(volume) -> None:
    """Close the reader handles of ``volume`` as it closes: a handle outlives its volume only as
    a closed file does, also for the bytes its buffer holds, which it handed out after the
    volume's close (hunt27b F2). Writers say what they do themselves (``check_usable``)."""
    with _HANDLES_LOCK:  # (a buffer detached from its raw reader has none: not this volume's any more)
        readers = [handle for handle in _READERS if getattr(_raw_of(handle), "_volume", None) is volume]
    for handle in readers:
        handle.close()


def _raw_of(handle):
    """The raw reader under a buffered one, or None once ``detach()`` took it."""
    try:
        return handle.raw
    except ValueError:  # (some Python versions raise for a detached buffer)
        return None


def _byte_order_mark(encoding: str) -> tuple[bytes, str]:
    """The mark an encoding puts at the start of a file and the encoding that writes the rest.
    Python's text file writes the mark only where it can tell it stands at the start, by
    seeking, which a writer cannot: a UTF-16 or UTF-32 file got none (it read back as an
    error), and an append in UTF-8-SIG got a second mid-file (hunt-api F4). So the writer
    puts the mark itself, and writes on without one, in this machine's byte order as
    Python's file does."""
    order = "le" if sys.byteorder == "little" else "be"
    name = codecs.lookup(encoding).name
    return {"utf-16": (codecs.BOM_UTF16, f"utf-16-{order}"), "utf-32": (codecs.BOM_UTF32, f"utf-32-{order}"),
            "utf-8-sig": (codecs.BOM_UTF8, "utf-8")}.get(name, (b"", encoding))


def _text_encoding(encoding) -> str:
    """``encoding`` (UTF-8 when None) if Python's text files take it; else OPV0005."""
    if encoding is None:
        return "utf-8"
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    except (LookupError, TypeError, ValueError) as exc:
        raise errors.error("OPV0005", value=encoding, keyword="encoding", reason=str(exc)) from None
    return encoding


class _Aborting:
    """What a writer handle (binary or text) adds to io: its ``with`` block discards the new
    version on an exception, and a write or ``close`` reports at once what keeps the version
    from being written (``VolumeWriter.check_usable``), not when a buffer next reaches the
    volume writer. If the flush of ``close`` fails, ``close`` raises that and writes nothing."""

    volume_writer: VolumeWriter  # set by open_file
    wrapped = False  # another handle holds this one (``_finalize``)

    def write(self, data):
        writer = self.volume_writer
        if writer.refused is not None or writer._volume.image.closed:  # cheap: this runs for every write
            writer.check_usable()
        return super().write(data)

    def close(self) -> None:
        if self.closed:
            return
        if self.volume_writer.forked:  # OPV0013, as a write says; its flush would wait for ever on a lock that
            raise errors.error("OPV0013", volume=self.volume_writer._volume.image.volume)  # a parent thread held
        try:
            self.flush()
        except BaseException:
            self.volume_writer.discard()
            super().close()
            raise
        super().close()

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.volume_writer.discard()
            if self.volume_writer.forked:  # a child's own error goes on, not its close's OPV0013 (review 23c F7)
                return False
        return super().__exit__(kind, value, traceback)

    def __del__(self) -> None:
        if not self.wrapped and hasattr(self, "volume_writer"):  # (not one whose making failed)
            _finalize(self.volume_writer, super().__del__)


class _AbortingWriter(_Aborting, io.BufferedWriter):
    """The binary writer handle."""


class _AbortingText(_Aborting, io.TextIOWrapper):
    """The text writer handle, over an ``_AbortingWriter``."""

    byte_order_mark = b""  # written before the first text, as Python's file does (``_byte_order_mark``)

    def write(self, text):
        if self.byte_order_mark and text:  # (none in a file left empty: review 23c F5)
            mark, self.byte_order_mark = self.byte_order_mark, b""
            self.buffer.write(mark)
        return super().write(text)

    def tell(self) -> int:
        """The position in bytes, as a host file's text writer tells it (hunt30c F2: it raised,
        the handle being unseekable): its text is written through first."""
        self.flush()
        return self.buffer.tell()


def _finalize(writer: VolumeWriter, close: Callable[[], None], *, at_exit: bool = False) -> None:
    """A writer collected unclosed is closed, and writes its version, as a file is, when no
    transaction is under way on its volume; else it writes nothing. The collector runs
    finalizers in whatever thread allocates: perhaps one that a batch of another thread waits
    for (waiting here deadlocked the program), or the batch's own thread halfway into its
    transaction (a commit there ended the batch's transaction under it).

    Only the handle the program was given does this (the layers below it are ``wrapped``),
    and only while its spool is open: the collector finalizes the parts of a reference cycle
    in any order, and the raw writer, or the spool, closed before the handle above it wrote
    a version without what that handle still held (an empty file, silently).

    A Ctrl-C (SIGTERM, SIGHUP) that comes while it writes the version waits for it and is
    then delivered once the outermost finalizer this close runs in has returned (a program's
    ``__del__`` that dropped the writer, rev24c F4), where CPython no longer drops what its
    handler raises; ``at_exit`` (the interpreter ends: nothing would run after): at once."""
    if writer.forked:  # a child's copy: the parent's to write, and its buffer's lock may be held for good
        return
    image = writer._volume.image
    try:
        owner = image.conn.owner
    except ValueError:  # the volume is closed: close() says so and writes nothing
        owner = None
    spool = writer._spool
    if spool is None or spool.closed or writer.refused is not None or owner is None or not owner.acquire(blocking=False):
        writer.discard()
        close()
        return
    try:
        if image._write_begun or image.conn.in_transaction or writer._volume._tx is not None:
            writer.discard()
        with signals_held(inside=None if at_exit else _outermost_finalizer(sys._getframe())):
            close()
    finally:
        owner.release()


def _outermost_finalizer(frame):
    """The outermost finalizer's frame from ``frame`` out (``frame`` itself if there is none):
    a ``__del__``, or a ``weakref.finalize`` calling its callback (rev24j F2), whose raised
    exceptions CPython drops."""
    found, outer = frame, frame
    while found is not None:
        code = found.f_code
        if code.co_name == "__del__" or code.co_filename == weakref.__file__ and code.co_name == "__call__":
            outer = found
        found = found.f_back
    return outer


def _spoil_in_child() -> None:
    """A child forked while writers were open leaves them to its parent (hunt-api F3, F3b): its
    use of one is OPV0013, and the spool file it shares with the parent (one open file, one
    offset) now reads and writes /dev/null in the child, so that neither its close (a seek,
    a flush of what its copy of the buffer held) nor its exit moves or adds to the parent's
    bytes: the parent's close had recorded a file of other bytes, or failed, said done."""
    for writer in [handle.volume_writer for handle in list(_GIVEN)]:  # (a writer dropped unclosed is closed)
        spool = writer._spool
        writer.refused = errors.error("OPV0013", volume=writer._volume.image.volume)
        if spool is not None and not spool.closed and getattr(spool, "_rolled", True):
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, spool.fileno())
            finally:
                os.close(null)


os.register_at_fork(after_in_child=_spoil_in_child)


def _close_at_exit() -> None:
    """The writers a program left open as it ends, closed as the collector closes them
    (``_finalize``), before the interpreter takes its objects apart: it took a spooled
    writer's spool file apart first, and that version was dropped where a small one was
    written (hunt-api F7). An error of one is raised after the others are closed. Not while
    a thread (a daemon) still runs: it may hold a handle's buffer while it waits for the
    volume, which this would hold while it waits for the buffer (review 23c F1: a hang at
    exit); the collector's rules then hold as before. A writer whose volume the program
    closed writes nothing, as a closed file's does, and says nothing (F6)."""
    if any(thread is not threading.current_thread() and not getattr(thread, "optvol_signals", False)
           for thread in threading.enumerate()):  # (a thread handing on a signal holds no handle: rev24c F6)
        return
    with _HANDLES_LOCK:
        handles = [handle for handle in _GIVEN if not handle.closed and not handle.volume_writer._volume.image.closed]
    failures = []
    for handle in handles:
        try:
            _finalize(handle.volume_writer, handle.close, at_exit=True)
        except Exception as exc:  # (atexit prints it)
            failures.append(exc)
    if failures:
        raise failures[0]


atexit.register(_close_at_exit)


def _check_volume_open(volume, path: str) -> None:
    """A handle outlives its volume only as a closed file does: using it after
    ``Volume.close`` is the program's error (ValueError, as io gives), not damage."""
    if volume.image.closed:
        raise ValueError(f"I/O operation on {path}: volume {volume.image.volume} is closed")


class VolumeReader(io.RawIOBase):
    """Read-only access to the live version of a file, verified before the first byte."""

    def __init__(self, volume, path: str):
        super().__init__()
        self._volume = volume
        self._path = path
        self._held = None
        # Here too, not only in ``open_file``: a program may make the class itself (hunt29c F1).
        volume.check_user_access("opening a file")
        self._dir, self._row = volume.file_row(path)
        self._marks = chunk_check.marks(volume, self._row, path, prefix=False)  # verified whole here
        self._cached: tuple[int, bytes] = (-1, b"")  # the last chunk read and checked again
        _hold(self, volume, self._row.id)
        # A version the open batch wrote is not committed yet: until it is, its sectors may be
        # undone and written again by another commit (``_still_there``).
        tx = volume._tx
        self._pending = tx if tx is not None and self._row.sector >= tx.committed_end else None
        self._data = volume.image.data
        self._pos = 0
        self.name = path

    mode = "rb"  # (what io.BufferedReader and stdlib code such as gzip read)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._row.size - self._pos)
        if count <= 0:
            return 0
        _check_volume_open(self._volume, self._path)
        if self._pending is not None and self._volume._tx is not self._pending:
            self._still_there()
        done = 0
        while done < count:  # every byte from a chunk checked against its mark (``chunk_check``)
            index, within = divmod(self._pos + done, chunk_check.HANDLE_CHUNK)
            if self._cached[0] != index:
                self._cached = (index, chunk_check.checked_chunk(self._volume, self._row, self._path, self._marks, index))
            part = memoryview(self._cached[1])[within: within + count - done]
            buffer[done: done + len(part)] = part
            done += len(part)
        self._pos += count
        return count

    def _still_there(self) -> None:
        """The batch that wrote this version has ended: it committed, and the version is in
        the index as it was opened, or it was undone, and its sectors may hold another file's
        bytes now (CPF1F28, never those bytes)."""
        row = self._row
        if self._volume.image.conn.execute("SELECT 1 FROM files WHERE id = ? AND sector = ? AND sha256 = ?",
                                           (row.id, row.sector, row.sha256)).fetchone() is None:
            raise errors.error("CPF1F28", path=self._path, volume=self._data.volume,
                               reason="the batch that wrote this version was undone")
        self._pending = None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """As ``io`` seeks: ValueError for a whence other than 0, 1 or 2 and for a position
        before the start (io.BytesIO's error; a host file, io.FileIO, gives OSError EINVAL)."""
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        position = (0, self._pos, self._row.size)[whence] + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._pos = position
        return position

    def tell(self) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return self._pos

    def close(self) -> None:
        self._held = None
        super().close()


class VolumeWriter(io.RawIOBase):
    """A new version of a file, written to the volume when closed (see module docstring)."""

    wrapped = False  # a buffered handle holds this one (``_finalize``)

    def __init__(self, volume, path: str, kind: str):
        super().__init__()
        # Until the writer is set up, closing it (even by the garbage collector) commits nothing.
        self._ready = self._discarded = False
        self._pid = os.getpid()  # (``forked``)
        self.refused: errors.OptvolError | None = None  # what refused a write: the handle is spoilt
        self._spool = self._held = None
        self._volume = volume
        # Here too, not only in ``open_file``: made by a program itself, it wrote a *BACKUP (hunt29c F1).
        volume.check_user_write("opening a file for writing")
        self._parts = volume._parts(path)
        self._replace = _WRITE_MODES[kind]
        self.name, self.mode = path, kind + "b"  # (gzip.GzipFile(fileobj=...) writes only to a "w" mode)
        self._opened = self._check_target(kind)  # the live version it replaces, if any
        if self._opened is not None:
            _hold(self, volume, self._opened)
        import tempfile  # here: it costs every command's start 6 ms, and only writers use it

        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=volume.image.directory)
        self._size = 0
        self._appending, self._based_on = kind == "a", None  # the version an append starts from
        if kind == "a" and volume.exists(path):
            _, row = volume.file_row(path)
            self._based_on = row.id
            # The old bytes are taken unchecked: the room a version needs is checked by the
            # first write of the handle's own (for the whole), and an append that writes
            # nothing writes no version (hunt29h F1).
            for chunk in volume.verified_chunks(row, path):
                self._spool_write(chunk)
        self._base_size = self._size
        self._ready = True

    def _check_target(self, kind: str) -> int | None:
        """The checks of opening ``parts`` to write; the ID of the live version there, if any."""
        volume, parts = self._volume, self._parts
        if not parts:
            raise errors.error("OPV0108", path="/", volume=volume.id, operation="writing")
        volume._need_dir(parts[:-1])
        found = volume._lookup(parts)
        if found is None:
            return None
        if not hasattr(found, "flags"):
            raise errors.error("OPV0108", path=model.join(parts), volume=volume.id, operation="writing")
        if kind == "x":
            raise errors.error("CPF1F24", path=model.join(parts), volume=volume.id)
        if found.flags & READ_ONLY:
            raise errors.error("CPF1F37", path=model.join(parts), volume=volume.id)
        return found.id

    def writable(self) -> bool:
        return True

    @property
    def forked(self) -> bool:
        """Whether this is a forked child's copy of the writer (its use is OPV0013)."""
        return os.getpid() != self._pid

    @property
    def size_written(self) -> int:
        """The bytes the new version holds so far (an append's: the old ones too)."""
        return self._size

    def tell(self) -> int:
        """Where the next byte goes, as a file written from its start tells (``tarfile`` asks;
        hunt-api F12). A writer cannot seek."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return self._size

    def check_usable(self) -> None:
        """Raise what the next write would raise for the state of the handle: a closed volume,
        or OPV0111 once a write was refused. A refused write is not simply skipped: the io
        layers above may have taken earlier writes into a buffer that then never reached the
        spool (TextIOWrapper drops them), so what the handle holds is no longer what it was given."""
        _check_volume_open(self._volume, self.name)
        if self.refused is not None:
            raise errors.error("OPV0111", path=self.name, volume=self._volume.id,
                               reason=errors.cause(self.refused)) from self.refused

    def write(self, data) -> int:
        if self._discarded:  # the with block is leaving on an exception: what its close flushes goes nowhere
            return len(data)
        self.check_usable()
        size = memoryview(data).nbytes  # (what the spool takes: len() of an array counts its items)
        try:
            _refuse_unless_room(self._volume, self._parts, self._size + size, replace=self._replace)
        except errors.OptvolError as exc:
            self.refused = exc
            raise
        return self._spool_write(data, size)

    def _spool_write(self, data, size: int | None = None) -> int:
        size = memoryview(data).nbytes if size is None else size
        try:
            self._spool.write(data)
        except OSError as exc:  # the spool's, past SPOOL_IN_MEMORY: a file in the volume's directory
            self.refused = _host_error(exc, self._volume)
            raise self.refused from None
        self._size += size
        return size

    def discard(self) -> None:
        """Drop what was written: closing will leave the volume as it was."""
        self._discarded = True

    def __del__(self) -> None:
        if not self.wrapped:
            _finalize(self, super().__del__)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._ready and not self._discarded:
                self.check_usable()
                if not (self._based_on is not None and self._size == self._base_size):  # an append of nothing: no version
                    self._commit()
        finally:
            self._held = None
            if self._spool is not None:
                self._spool.close()
            super().close()

    def _commit(self) -> None:
        volume, size, spool = self._volume, self._size, self._spool
        try:
            spool.flush()  # a full disk may show only now
            spool.seek(0)
        except OSError as exc:
            raise _host_error(exc, volume) from None

        def chunks() -> Iterator[bytes]:
            while True:
                try:
                    chunk = spool.read(1 << 20)
                except OSError as exc:
                    raise _host_error(exc, volume) from None
                if not chunk:
                    return
                yield chunk

        def write(data, sector: int) -> bytes:
            written, sha = data.write_stream(sector, chunks(), limit=size)
            if written != size:  # (the record would promise bytes it does not hold: hunt-api F3)
                raise errors.error("OPV0302", path=str(volume.image.directory), reason=f"the spool of {self.name} held"
                                   f" {written:,} of the {size:,} bytes written to it; nothing was written")
            return sha

        with volume._transaction() as tx:
            # Another process may have deleted (or moved away) the file this handle opened:
            # writing it now would bring it back unasked, or write over another file made at
            # its path meanwhile (hunt27b F1): only a later version of the opened file is replaced.
            found = volume._lookup(self._parts)
            if self._opened is not None and not _descends(volume, found, self._opened):
                raise errors.error("CPF1F22", path=self.name, volume=volume.id)
            # An append holds the version it started from and its own bytes: over a version
            # another program wrote meanwhile it would drop that program's write.
            if self._appending and getattr(found, "id", None) != self._based_on:
                raise errors.error("CPF1F26", path=self.name, volume=volume.id, reason="another program wrote it after"
                                   " this handle opened it to append; nothing of the handle was written")
            volume._store(tx, self._parts, size=size, payload=write, replace=self._replace)


def _descends(volume, found, version: int) -> bool:
    """Whether ``found`` (the row at a writer's path now) is file version ``version`` or a later
    version of the same file (``prev`` links; a version's ID is larger than its predecessors')."""
    row_id = getattr(found, "id", None) if hasattr(found, "flags") else None
    while row_id is not None and row_id > version:
        linked = volume.image.conn.execute("SELECT prev FROM files WHERE id = ?", (row_id,)).fetchone()
        row_id = linked[0] if linked else None
    return row_id == version


def _hold(handle: VolumeReader | VolumeWriter, volume, version: int) -> None:
    """Record that ``handle`` has file version ``version`` of ``volume`` open (``refuse_if_open``);
    closing it sets its ``_held`` to None (no lock: a handle may be closed by the garbage
    collector at any allocation, also while this thread holds the lock)."""
    found = os.fstat(volume.image.data.fd)  # the volume, however this Volume object was opened
    handle._held = (found.st_dev, found.st_ino, version)
    with _HANDLES_LOCK:
        _HANDLES.add(handle)


def refuse_if_open(volume, parts: tuple[str, ...]) -> None:
    """CPF1F26 if a handle of this process has the live version of file ``parts`` open: a
    file cannot be deleted while it is open (reference §3.5, QHFDLTSF). A handle whose
    volume was closed no longer counts. Other processes' handles are not seen; a writer's
    close refuses to bring back a file deleted meanwhile (CPF1F22)."""
    _, row = volume._need_file(parts)
    found = os.fstat(volume.image.data.fd)
    key = (found.st_dev, found.st_ino, row.id)
    with _HANDLES_LOCK:
        handles = list(_HANDLES)
    if any(h._held == key and not h._volume.image.closed for h in handles):
        raise errors.error("CPF1F26", path=model.join(parts), volume=volume.id, reason="a program has it open")


def _host_error(exc: OSError, volume) -> errors.OptvolError:
    """What a host error on a writer's spool means, as for the volume's own files: a
    read-only file system (OPV0010), a user who may not write there (OPV0011), a full disk
    (OPV0203), any other I/O error (OPV0204)."""
    if exc.errno == errno.EROFS:
        return read_only_error(volume.image.directory.parent, "writing a file")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return errors.error("OPV0011", volume=volume.id, operation="writing a file")
    return errors.host_write_error(exc, volume.id)


def _refuse_unless_room(volume, parts: tuple[str, ...], size: int, *, replace: bool) -> None:
    """CPF1F61 if ``Volume._store`` would now refuse, for space, a version of ``size`` bytes at
    ``parts``: its own rules (``_new_versions``: the record's header sectors, the sectors a UDF
    replacement frees; ``Transaction.reserve``) on a space ledger that is never begun and so
    writes nothing. A handle thus refuses exactly the writes ``write_bytes`` refuses."""
    ledger = Transaction(volume.image)  # the committed space...
    if volume._tx is not None:  # ...or, inside a batch, the batch's
        ledger.used, ledger.limit = volume._tx.used, volume._tx.limit
    parent = volume._need_dir(parts[:-1])
    old = volume._file(parent.id, parts[-1])
    key, now = model.name_key(parts[-1]), volume._now()
    found = volume._new_versions(ledger, parent, parts[:-1], [(parts[-1], key, size, None, None, None)],
                                 {key: old} if old else {}, replace=replace, honour_read_only=False, now=now,
                                 stamp=ledger.stamp(now), charge=False)[0]
    if isinstance(found, errors.VolumeFullError):
        raise found
