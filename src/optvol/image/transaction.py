"""A write transaction of a volume image: records laid out, written and committed as one
(docs/format.md §5; the commit protocol's steps are in ``image``'s docstring).

``Transaction`` lays records out in pieces a writer thread writes (past the page cache where
it can) while the next ones are laid out, charges their space against the threshold, and
on ``finish`` fsyncs the data partition, checks that its files are still the volume's, and
moves the committed end in the index, inside the SQLite transaction ``VolumeImage.transaction``
began.
"""

from __future__ import annotations

import hashlib
import mmap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from optvol import errors
from optvol.image import records, schema
from optvol.image.datapart import DataPartition
from optvol.image.records import Kind
from optvol.image.signals import held as _held

if TYPE_CHECKING:
    from optvol.image.image import VolumeImage

FLUSH_BYTES = 2 << 20  # the buffer of records goes to a writer thread in pieces this big
MAX_PENDING = 4  # pieces handed to the writer thread and not yet written (memory held)
EARLY_WRITEBACK = 4 << 20  # payloads this big start the disk writing before the commit's fsync
# What a NamedTuple's own __new__ calls, without its Python frame: for one built per record written.
_new_tuple = tuple.__new__
LABEL_FIELDS = schema.LABEL_FIELDS


class Place(NamedTuple):
    """Where a record landed: its first sector and its header and payload sizes in sectors."""

    sector: int
    header_sectors: int
    payload_sectors: int

    @property
    def sectors(self) -> int:
        return self.header_sectors + self.payload_sectors



class Transaction:
    """Records appended and index rows changed as one commit (see the module docstring)."""

    def __init__(self, image: VolumeImage):
        self.image, self.conn, self.volume, self.sector_size = image, image.conn, image.volume, image.sector_size
        self.committed_end = self.end = image.meta("committed_end")
        self.sequence = image.meta("next_sequence")
        self.used = image.meta("used_sectors")
        # Change times (``stamp``) of this commit lie above every one committed before it.
        self.changed_high = image.meta("changed_high")
        self._floor = self.changed_high + 1
        capacity, threshold = self.conn.execute("SELECT capacity, threshold FROM label").fetchone()
        self.limit = capacity * threshold // 100 // self.sector_size
        # Records are laid out in pieces of FLUSH_BYTES that the writer thread writes; written
        # pieces are used again (kept by the image), so no fresh memory is touched per record.
        # A piece is an anonymous mmap: page-aligned, as O_DIRECT wants (DataPartition.write_direct).
        self._spare: list[mmap.mmap] = image.spare_pieces
        self._piece: mmap.mmap | bytearray = bytearray()  # none yet: taken when a record needs room
        self._filled = 0  # bytes of the piece laid out, the records from ``_buffer_start`` on
        self._buffer_start = self.end
        self.memo: dict = {}  # what the volume layer remembers during this transaction
        self._flusher: ThreadPoolExecutor | None = None  # the writer thread: buffer pieces, early writeback
        self._writes: list[tuple[Future, mmap.mmap]] = []  # pieces it has not written yet, oldest first
        self._writeback: Future | None = None
        self.thread: int | None = None  # the thread whose transaction it is (``Volume._transaction``)
        self.busy = True  # a write is under way in it (``Volume._transaction``): no other joins it then
        self.task: object | None = None  # the asyncio task whose transaction it is (``Volume._transaction``)
        self._writing, self._gate = True, threading.Lock()  # (see _gated)

    def stamp(self, now: int) -> int:
        """The change time (``files.changed``) a change made at clock time ``now`` gets: ``now``,
        or, if the clock reads no later than a change already committed (set back, or the
        same microsecond), one microsecond after the latest. So every change committed after a
        CPYOPT read the source's ``changed_high`` lies above it (docs/format.md §4.1); it counts
        there once a record carries it (``carry``: a time given to a write then refused would
        leave ``changed_high`` above every record, and ``recover`` would lower it again)."""
        return now if now >= self._floor else self._floor

    def carry(self, stamp: int) -> None:
        self.changed_high = max(self.changed_high, stamp)

    # ----------------------------------------------------------------- space

    def available_sectors(self) -> int:
        return max(0, self.limit - self.used)

    def reserve(self, sectors: int) -> None:
        """Fail before anything is written when ``sectors`` more would pass the threshold."""
        if sectors > self.limit - self.used:
            threshold = self.conn.execute("SELECT threshold FROM label").fetchone()[0]
            raise errors.error("CPF1F61", volume=self.volume, needed=sectors * self.sector_size,
                               available=self.available_sectors() * self.sector_size, threshold=threshold)

    def charge(self, sectors: int) -> None:
        self.used += sectors

    def free(self, sectors: int) -> None:
        self.used -= sectors

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo just this block's records and rows if it raises (one file of a batch)."""
        state = (self.end, self.sequence, self.used, self.changed_high, self._filled, self._buffer_start)
        self.conn.execute("SAVEPOINT one_item")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO one_item")
            self.conn.execute("RELEASE one_item")
            self.memo.clear()
            self.end, self.sequence, self.used, self.changed_high, length, start = state
            if start == self._buffer_start:
                self._filled = length
            else:  # the block flushed: what precedes ``end`` is on disk and stays, the rest goes
                self._settle()  # nothing of the writer thread's may land after the cut
                self._buffer_start, self._filled = self.end, 0
                self.image.data.truncate(self.end)
            raise
        self.conn.execute("RELEASE one_item")

    # ----------------------------------------------------------------- records

    def _encode(self, body: dict | bytes) -> tuple[bytes, int]:
        """A body as bytes (a dict gets ``volume`` first; bytes are a whole encoded body) and its header sectors."""
        encoded = body if isinstance(body, bytes) else records.encode_body({"volume": self.volume, **body})
        return encoded, records.header_sectors_for(encoded, self.sector_size)

    def _header(self, kind: Kind, body: bytes, size: int, sha: bytes) -> bytes:
        header = records.write_header(
            kind=kind, sequence=self.sequence, body=body, payload_size=size,
            payload_sha256=sha, sector_size=self.sector_size,
        )
        self.sequence += 1
        return header

    def append(self, kind: Kind, body: dict | bytes, payload: bytes = b"", *, charged: bool = True,
               sha256: bytes | None = None) -> Place:
        """Append a record with an in-memory payload (``sha256``: its hash, if known); charge it unless told not to.

        ``body`` is a dict (``volume`` is put first) or the whole body already encoded
        (``records.encode_file_body`` with this transaction's ``volume``)."""
        encoded, header_sectors = self._encode(body)
        if charged:
            self.reserve(header_sectors + records.sectors_for(len(payload), self.sector_size))
        place = self.append_many(kind, [(encoded, payload, sha256 or hashlib.sha256(payload).digest())])[0]
        if charged:
            self.charge(place.sectors)
        return place

    def append_many(self, kind: Kind, items: list[tuple[bytes, bytes, bytes]]) -> list[Place]:
        """Append records of (encoded body, payload, SHA-256 of the payload) without charging them.

        They are laid out in place in the current piece (``records.lay_out``), zero padded
        (docs/format.md §3.1); a full piece goes to the writer thread."""
        sector_size, places, done = self.sector_size, [], 0
        while True:
            shapes = records.lay_out(self._piece, self._filled, kind, self.sequence, items, done, sector_size)
            first = self.end
            for header_sectors, payload_sectors in shapes:
                places.append(_new_tuple(Place, (first, header_sectors, payload_sectors)))
                first += header_sectors + payload_sectors
            self._filled += (first - self.end) * sector_size
            self.sequence += len(shapes)
            self.end = first
            done += len(shapes)
            if done == len(items):
                return places
            encoded, payload, _ = items[done]
            self._flush(room=(records.header_sectors_for(encoded, sector_size)
                              + records.sectors_for(len(payload), sector_size)) * sector_size)

    def append_stream(
        self, kind: Kind, body: dict, *, size: int, write: Callable[[DataPartition, int], bytes]
    ) -> tuple[Place, bytes]:
        """Append a record whose payload ``write(data, sector)`` puts in place and hashes.

        The threshold is checked for ``size`` before anything is written; ``write`` must
        write exactly ``size`` bytes and return their SHA-256."""
        encoded, header_len = self._encode(body)
        payload_sectors = records.sectors_for(size, self.sector_size)
        self.reserve(header_len + payload_sectors)
        self.land()  # the writer thread's direct writes land before these buffered ones
        sha = write(self.image.data, self.end + header_len)
        header = self._header(kind, encoded, size, sha)
        place = Place(self.end, len(header) // self.sector_size, payload_sectors)
        self.image.data.write(self.end, header)
        tail = -size % self.sector_size
        if tail:
            self.image.data.write_at((self.end + place.header_sectors) * self.sector_size + size, bytes(tail))
        self.end += place.sectors
        self._buffer_start = self.end
        self.charge(place.sectors)
        if size >= EARLY_WRITEBACK:
            self._start_writeback()
        return place, sha

    def write_behind(self) -> None:
        """Have the writer thread write what is buffered and start the disk on it, while the
        caller goes on (indexing what it appended, say); ``finish`` still fsyncs before the commit."""
        self._flush()
        self._start_writeback()

    def _start_writeback(self) -> None:
        """Let the disk start on what was written while the next records are prepared.

        Only an early start: ``finish`` still fsyncs everything before the commit. The error
        of an earlier start is raised here or by ``finish``, never dropped: the fsync would
        not see it again (the kernel reports a writeback error once)."""
        if self._writeback is not None:
            if not _held(self._writeback.done):
                return
            _held(self._writeback.result)
        self._writeback = self._submit(self.image.data.datasync)

    def _submit(self, work: Callable, *args) -> Future:
        """Hand ``work`` to the writer thread, to run only while the transaction lasts (an interrupt
        in Thread.start left a thread unknown to ``shutdown``, which wrote over the next transaction).
        Done here, now, where no thread can be started any more: the interpreter is ending (a
        writer a program left open, closed at its exit)."""
        try:
            return _held(self._writer().submit, self._gated, work, *args)
        except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
            done: Future = Future()
            try:
                done.set_result(self._gated(work, *args))
            except Exception as exc:
                done.set_exception(exc)
            return done

    def _gated(self, work: Callable, *args) -> object:  # _writing: False once the transaction is over
        with self._gate:  # held while a write is under way: stop_writeback waits for it
            return work(*args) if self._writing else None

    def _writer(self) -> ThreadPoolExecutor:
        if self._flusher is None:
            self._flusher = ThreadPoolExecutor(max_workers=1)
        return self._flusher

    def write_label(self, label: dict, *, once: bool = False) -> None:
        """Update the label row and append a LABEL record of all of it, charged: past the threshold, which
        guards the files, up to the capacity (CHGOPTVOL, a rename), or with ``once`` (a new image, DUPOPT) past it."""
        assignments = ", ".join(f"{f} = ?" for f in LABEL_FIELDS)
        volume, self.volume, body = self.volume, label["volume"], {"label": {f: label.get(f) for f in LABEL_FIELDS}}
        previous = self.limit
        limit = max(self.limit, label["capacity"] * label["threshold"] // 100 // self.sector_size)  # a raised threshold
        self.limit = max(limit, label["capacity"] // self.sector_size)
        try:
            if once:  # charged, never refused
                self.charge(self.append(Kind.LABEL, body, charged=False).sectors)
            else:  # refused under the label in force: CPF1F61 names its threshold, not the one refused (hunt24h F4)
                self.append(Kind.LABEL, body)
        except BaseException:  # (refused: the label in force, and its limit, stay; a batch that goes on writes under them)
            self.volume, self.limit = volume, previous
            raise
        self.limit = limit
        self.conn.execute(f"UPDATE label SET {assignments}", [label.get(f) for f in LABEL_FIELDS])

    def stop_writeback(self) -> None:
        """Wait for the writer thread (its errors are ``_settle``'s, or lost in a rollback); nothing queued writes now."""
        self._writing = False
        with self._gate:
            pass  # a write under way ends first
        if self._flusher is not None:
            self._flusher.shutdown(wait=True)
            self._flusher = self._writeback = None
            self._writes = []

    def _flush(self, *, room: int = 0) -> None:
        """Hand the laid-out records to the writer thread and start a piece with ``room`` bytes free;
        hold at most MAX_PENDING pieces in memory."""
        if self._filled:
            view = memoryview(self._piece)[: self._filled]
            self._writes.append((self._submit(self.image.data.write_direct, self._buffer_start, view), self._piece))
            while len(self._writes) > MAX_PENDING:
                self._recycle(*self._writes.pop(0))
            self._piece, self._filled = bytearray(), 0
        if room > len(self._piece):  # a record bigger than a piece gets one of its own
            self._piece = self._spare.pop() if self._spare and room <= FLUSH_BYTES else mmap.mmap(-1, max(room, FLUSH_BYTES))
        self._buffer_start = self.end

    def land(self) -> None:
        """Write every record appended so far to the data partition and wait for the writer
        thread: reads inside this transaction (a batch reading its own files) then find them."""
        self._flush()
        self._settle()

    def _recycle(self, write: Future, piece: mmap.mmap) -> None:
        """Wait for a piece to be written (raising its error) and keep it for reuse."""
        _held(write.result)
        if len(piece) == FLUSH_BYTES and len(self._spare) <= MAX_PENDING:
            self._spare.append(piece)

    def _settle(self) -> None:
        """Wait until the writer thread has written every piece; raise the first write's error."""
        writes, self._writes = self._writes, []
        for write, piece in writes:
            self._recycle(write, piece)

    def finish(self, now: int | None) -> None:
        """Flush, fsync the data partition, then record the new committed end."""
        self.land()
        writeback = self._writeback
        self.stop_writeback()
        if writeback is not None:
            _held(writeback.result)  # a failed early writeback fails the commit (``_start_writeback``)
        if self.end != self.committed_end:
            self.image.data.sync()
        self.image.data.check_writable_at(self.committed_end)  # a restore while it ran: rolled back, not lost
        self.conn.executemany(
            "UPDATE meta SET value = ? WHERE key = ?",
            [(self.end, "committed_end"), (self.sequence, "next_sequence"), (self.used, "used_sectors"),
             (self.changed_high, "changed_high")],
        )
        if now is not None:
            self.conn.execute("UPDATE label SET last_referenced = ?", (now,))
