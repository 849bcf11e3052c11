"""CPYOPT: copy files between volumes, and the backup model of a *BACKUP target.

Reference §5-§6 and §8, DESIGN §1. The request is validated in the order of reference
§5.9, each refusal with its own message ID, before anything is written. Selection is a
query over the two indexes (``copy_select.py``); on a *BACKUP target the complete backup
range of each directory lets the query skip every file the backup already holds, so a
no-change re-run costs what changed, not the size of the volume.

A tree is read by a child process ahead of the writes (``copy_readahead.py``): it runs
the selection, SLTFILE and the verified reads of small files (``copy_select.py``) on
the second core. (A process that runs other threads must not fork: there the same reads
run here, between the writes.) This process does every write: small files a piece at a
time through ``write_files``, large ones each alone in the kernel while two threads hash
the next ones. A group of BATCH_FILES files or BATCH_BYTES is one transaction, and its
files count as copied once it has committed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime

from optvol import backup, errors, model
from optvol.copy_readahead import ReadAhead
from optvol.copy_select import Candidate, Choice, Pick, Piece, Selection, join, read_directory, read_pieces
from optvol.gc_pause import no_cyclic_gc
from optvol.image.signals import HeldPool
from optvol.library import Library
from optvol.model import MediaFormat, MediaType, Progress, VolumeType
from optvol.privileged import NewVersion, SourceRange, same_version
from optvol.volume import Volume
from optvol.volume_rows import RANGE_COLUMNS, DirRow, optional_meta

# A group of files is one target transaction (one fsync, one commit), which also carries
# the directories made and the control records written since the last commit: a no-change
# run over many directories commits once per BATCH_FILES directories, not three times each.
# Copying stops while a group commits (its fsync waits for the disk), so large files go in
# groups of up to BATCH_BYTES: 256 MiB copied 1 GiB in 0.89 s against 1.01 s with 64 MiB.
BATCH_FILES = 10_000
BATCH_BYTES = 256 << 20
# Large files are hashed ahead of their kernel copy, each on its own thread: SHA-256 on
# one core is slower than the copy, so two files hash at once while the copy goes on.
HASH_THREADS = 2


@dataclass(frozen=True)
class CopyRequest:
    """The parameters of one CPYOPT (reference §5.2); None for TOPATH is *FROMPATH."""

    fromvol: str
    frompath: str
    tovol: str
    fromtype: VolumeType = VolumeType.PRIMARY
    totype: VolumeType = VolumeType.PRIMARY
    topath: str | None = None
    sltfile: str = "*CHANGED"
    cpysubdir: bool = False
    crtdir: bool = False
    alwcpyopp: bool = False
    copytype: str = "*SYSTEM"
    fromtime: datetime | None = None  # None is FROMTIME(*BEGIN *AVAIL)

    def parameters(self) -> dict:
        """The request as CL writes it, for the request log on a backup volume."""
        yes = {True: "*YES", False: "*NO"}
        return {
            "FROMVOL": [self.fromvol, str(self.fromtype)], "FROMPATH": self.frompath,
            "TOVOL": [self.tovol, str(self.totype)], "TOPATH": self.topath or "*FROMPATH",
            "SLTFILE": self.sltfile, "CPYSUBDIR": yes[self.cpysubdir], "CRTDIR": yes[self.crtdir],
            "ALWCPYOPP": yes[self.alwcpyopp], "COPYTYPE": self.copytype,
            "FROMTIME": "*BEGIN" if self.fromtime is None else model.iso(self.fromtime),
        }


@dataclass(frozen=True)
class CopyFailure:
    path: str
    message_id: str
    message: str


@dataclass
class CopyResult:
    """What CPYOPT did (DESIGN §4 JSON: copied, not_selected, failed, directories, failures)."""

    copied: int = 0
    not_selected: int = 0
    bytes_copied: int = 0
    directories: int = 0
    failures: list[CopyFailure] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def as_json(self) -> dict:
        return {
            "copied": self.copied, "not_selected": self.not_selected, "failed": self.failed,
            "directories": self.directories,
            "failures": [{"path": f.path, "message_id": f.message_id, "message": f.message} for f in self.failures],
        }


def cpyopt(library: Library, request: CopyRequest, *, now: datetime, progress: Progress | None = None,
           totals: Progress | None = None) -> CopyResult:
    """Run one CPYOPT request; per-file failures are in the result (the CLI exits 1).

    ``progress`` is called with the files and bytes written so far, as they are written;
    ``totals``, if given, once before the first write (of a tree, or of the one file FROMPATH
    names), with the files and bytes the request will write if none fails (counted by SQLite before the copy starts: about
    a twentieth of a copy's time over a fresh backup, next to nothing when little changed).
    """
    for path in (request.frompath, request.topath):  # reference §5.9 step 1, before any volume
        if path is not None:
            model.check_path_form(path)
    for keyword, value, allowed in (("SLTFILE", request.sltfile, ("*CHANGED", "*NEW", "*ALL")),
                                    ("COPYTYPE", request.copytype, ("*IOP", "*SYSTEM"))):
        if value not in allowed:  # (a program's request: the request log records only what CL could run)
            raise errors.error("OPV0005", value=value, keyword=keyword, reason=", ".join(allowed[:-1]) + " or " + allowed[-1])
    source = library.open(request.fromvol)
    try:
        _check_type(source, request.fromtype)  # step 3 comes before TOVOL is looked up
        same = request.tovol.upper() == "*FROMVOL" or model.volume_id(request.tovol) == source.id
        target = source if same else library.open(request.tovol)
        try:
            plan = _validate(request, source, target)
            with no_cyclic_gc():  # several tuples a file, no cycles (gc_pause.py)
                return _Copier(request, plan, source, target, model.to_micros(now), progress, totals).run()
        finally:
            if target is not source:
                target.close()
    finally:
        source.close()


# ------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Plan:
    source_root: str  # a directory or a file on the source
    target_root: str
    is_file: bool
    to_backup: bool
    restore: bool  # source is *BACKUP: keep its dates on the primary target


def _validate(request: CopyRequest, source: Volume, target: Volume) -> _Plan:
    """Reference §5.9 from step 4 on, in order (``cpyopt`` checked step 3 before it looked
    TOVOL up); each refusal has its own message ID."""
    src_label, dst_label = source.label(), target.label()
    _check_type(target, request.totype)
    if dst_label["media_type"] in (MediaType.CD_ROM, MediaType.DVD_ROM) or dst_label["media_format"] == MediaFormat.ISO9660:
        raise errors.error("CPF1F63", volume=target.id, media_type=dst_label["media_type"])
    if target.image.read_only:
        raise target.image.write_refusal(f"copying onto volume {target.id}")
    to_backup = dst_label["type"] == VolumeType.BACKUP
    if to_backup and src_label["type"] != VolumeType.PRIMARY:
        raise errors.error("OPV0402", target=target.id, source=source.id, type=src_label["type"])
    frompath = _normal(request.frompath, source)
    topath = frompath if request.topath is None else _normal(request.topath, target)
    backup_involved = to_backup or src_label["type"] == VolumeType.BACKUP
    if backup_involved and model.name_key(topath) != model.name_key(frompath):
        raise errors.error("OPV0404", frompath=frompath, topath=topath)
    if to_backup and dst_label["primary_volume"] not in (None, source.id):
        raise errors.error("OPV0403", target=target.id, owner=dst_label["primary_volume"], source=source.id)
    found = source.stat(frompath) if source.exists(frompath) else None
    if found is None or (not found.is_dir and model.names_dir(request.frompath)):  # '/f.txt/' names a directory
        shown = request.frompath if found is not None else frompath  # (the '/' is why the file is not found)
        raise errors.error("CPF1F22", path=shown, volume=source.id)
    # Lookups ignore case, names keep it: the copy carries the source's own spelling, also
    # where FROMPATH (or a TOPATH that may only repeat it) was typed in another case.
    if request.topath is None or backup_involved:
        topath = found.path
    frompath = found.path
    is_file = not found.is_dir
    if is_file and request.topath is not None and model.names_dir(request.topath):
        raise errors.error("CPF1F48", path=request.topath, reason="it names a directory (it ends in '/'), where "
                                                                  "FROMPATH names a file: give the new file's path")
    if not is_file:  # a directory's names all count among the 256 characters of directory names
        _normal(frompath, source, is_dir=True)
        _normal(topath, target, is_dir=True)
    target_dir = topath.rsplit("/", 1)[0] or "/" if is_file else topath
    # A backup mirrors the primary's hierarchy, so its directories are always made [D].
    if not target.is_dir(target_dir) and not request.crtdir and not to_backup:
        raise errors.error("CPF1F02", path=target_dir, volume=target.id)
    if source is target and (model.name_key(topath) + "/").startswith(model.name_key(frompath).rstrip("/") + "/"):
        raise errors.error("OPV0110", operation="copy", path=frompath)
    return _Plan(frompath, topath, is_file, to_backup, src_label["type"] == VolumeType.BACKUP)


def _check_type(volume: Volume, given: VolumeType) -> None:
    """Reference §5.9 steps 3 and 4: the type element must name the volume's actual type."""
    actual = volume.label()["type"]
    if actual != given:
        raise errors.error("OPV0401", volume=volume.id, actual=actual, given=given)


def _history_of(volume: Volume) -> int | None:
    """A number naming a volume's history: from its creation time and its first record (the
    LABEL it was initialized with), and the mark ``recover`` leaves where it met damage. An
    image that takes over a name has its own: DUPOPT's copy a new creation time, a converted
    backup another first record, a volume recovered with damage another mark (its index may
    hold an older state than its backups saw: hunt27o F2). None if that record cannot be
    read (then no backup trusts its ranges against this volume)."""
    try:
        first = volume.image.read_header(0).body
    except errors.DamagedError:
        return None
    named = [volume.label()["created"], first]
    if (mark := optional_meta(volume.image.conn, "recovered_mark")) is not None:
        named.append(mark)  # recover met damage: the index may hold an older state than a backup saw
    identity = json.dumps(named, sort_keys=True).encode()
    return int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest(), "big") >> 1  # an SQLite INTEGER


_UNKNOWN_PLACE = (-1, 0)  # a source whose last records cannot be read: the next run compares every file


def _place_in_history(volume: Volume, known: int | None = None) -> tuple[int, int]:
    """How far a volume's history has gone: the first sector of its last committed record,
    and a number naming that record (``_mark``). A backup keeps its primary's, as
    each run began (docs/format.md §4.2, "How far it went"). Found from the newest file
    version's record, or the record ``known`` to start one (the place the backup's last run
    found, still there), if later, reading the headers of any records after it: a run reads
    those of what changed since, not of every delete since the last file written."""
    image = volume.image
    with image.conn.owner, image.snapshot() as conn:
        end = image.meta("committed_end")
        newest = conn.execute("SELECT sector FROM files ORDER BY id DESC LIMIT 1").fetchone()
    at, last = max(newest[0] if newest else 0, known or 0), None
    try:
        while at < end:
            header = image.read_header(at)
            last, at = at, at + header.total_sectors(image.sector_size)
    except errors.OptvolError:  # damaged records: unknown
        return _UNKNOWN_PLACE
    return _UNKNOWN_PLACE if last is None or at != end else (last, _mark(last, header))


def _mark(sector: int, header) -> int:
    """A number naming the record at ``sector`` with this header (an SQLite INTEGER)."""
    named = json.dumps([sector, int(header.kind), header.sequence, header.payload_size, header.payload_sha256.hex(),
                        header.body], sort_keys=True).encode()
    return int.from_bytes(hashlib.blake2b(named, digest_size=8).digest(), "big") >> 1


def _went_back(source: Volume, target: Volume) -> tuple[bool, int | None]:
    """Whether the source no longer holds the record its backup's last run found last (the
    image was put back from an older copy of itself: a VM snapshot, a restore of its files;
    a change made since may carry a change time the backup's ranges claim, from a clock that
    went back with it), and that record's sector when it does. Nothing recorded (a backup
    older than this): no."""
    conn = target.image.conn
    sector, mark = optional_meta(conn, "primary_place_sector"), optional_meta(conn, "primary_place_mark")
    if sector is None or mark is None:
        return False, None
    if sector < 0 or sector >= source.image.meta("committed_end"):
        return True, None
    try:
        went = _mark(sector, source.image.read_header(sector)) != mark
    except errors.OptvolError:  # no record there any more (or a damaged one)
        return True, None
    return went, None if went else sector


def _payload_offset(volume: Volume, c: Candidate) -> int:
    """Where a candidate's bytes start in its volume's data partition."""
    return (c.row.sector + c.row.header_sectors) * volume.image.sector_size


def _normal(path: str, volume: Volume, *, is_dir: bool | None = None) -> str:
    """A checked volume path without a trailing slash (``/`` stays ``/``); ``is_dir``: its last
    element is a directory's (reference §3.1: its name counts among the 256 characters of
    directory names), or a file's; None: not known yet, valid as either (a directory's error first)."""
    media_format = MediaFormat(volume.label()["media_format"])
    try:
        return model.join(model.split_path(path, volume=volume.id, media_format=media_format, is_dir=is_dir is not False))
    except errors.InvalidError:
        if is_dir is not None:
            raise
        try:
            return model.join(model.split_path(path, volume=volume.id, media_format=media_format, is_dir=False))
        except errors.InvalidError:
            pass
        raise


# ------------------------------------------------------------------------- execution


class _Prehash:
    """SHA-256 of the coming large source files, HASH_THREADS at a time, ahead of their copy.

    ``plan`` queues candidates in the order they will be copied; ``take`` gives one's
    digest (a future) and starts the next ones. Each digest covers exactly its file's
    bytes, so the order only decides how much is hashed ahead, never what is checked.
    """

    def __init__(self, source: Volume):
        self.source = source
        self.pool: HeldPool | None = None
        self.queue: deque[Candidate] = deque()
        self.started: dict[int, Future] = {}  # by source sector

    def plan(self, candidates: list[Candidate]) -> None:
        """Queue large files (a Piece's ``large``) to be hashed ahead."""
        self.queue.extend(candidates)
        self._top_up()

    def take(self, c: Candidate) -> Future:
        digest = self.started.pop(c.row.sector, None) or self._start(c)
        self._top_up()
        return digest

    def drop(self, c: Candidate) -> None:
        """A planned file not written after all: its hash is not begun, or not waited for."""
        if self.started.pop(c.row.sector, None) is None and c in self.queue:
            self.queue.remove(c)
        self._top_up()

    def _top_up(self) -> None:
        while self.queue and len(self.started) < HASH_THREADS:
            c = self.queue.popleft()
            self.started[c.row.sector] = self._start(c)

    def _start(self, c: Candidate) -> Future:
        if self.pool is None:
            self.pool = HeldPool(max_workers=HASH_THREADS)  # (Ctrl-C held back in submit: hunt31a F1)
        return self.pool.submit(self.source.image.data.hash_range, _payload_offset(self.source, c), c.size,
                                stop=self.pool.stopping)

    def close(self) -> None:  # (the hashes under way end at their next chunk: rev31g F1)
        self.queue, self.started = deque(), {}
        if self.pool is not None:
            self.pool.stop()
            self.pool = None


class _ClaimedByAnother(Exception):
    """Another primary's CPYOPT claimed the fresh backup first (carries its OPV0403)."""

    def __init__(self, error: errors.OptvolError):
        super().__init__(error.text)
        self.error = error


class _Copier:
    """Carries out a validated request, directory by directory; commits in groups."""

    def __init__(self, request: CopyRequest, plan: _Plan, source: Volume, target: Volume, now: int,
                 progress: Progress | None, totals: Progress | None = None):
        self.request, self.plan, self.source, self.target, self.now = request, plan, source, target, now
        self.progress, self.totals = progress, totals
        self.result = CopyResult()
        self.start = None if request.fromtime is None else model.to_micros(request.fromtime)
        self.request_id = 0  # onto a backup: reserved by the run's first write transaction (writer)
        self._id_committed, self._entry_id = False, 0  # a group that reserved it has committed; the ID of its entry
        target_format = MediaFormat(target.label()["media_format"])
        reformat = source.label()["media_format"] != target_format
        # A backup's ranges describe the history of the primary it recorded: another volume
        # under that name (DUPOPT of an older snapshot, CVTOPTBKU of an older backup) has its
        # own, and its files' change times prove nothing against them.
        # None recorded: a backup written before this was kept, which trusts its ranges.
        self.primary_history = _history_of(source) if plan.to_backup else None
        recorded = optional_meta(target.image.conn, "primary_history") if plan.to_backup else None
        self.other_history = recorded is not None and recorded != self.primary_history
        self.choice = Choice(request.sltfile, plan.to_backup, plan.to_backup or plan.restore, now, self.start, target.id,
                             target_format if reformat else None, trust_ranges=not self.other_history)
        self._group: ExitStack | None = None  # the open group transaction, if any
        self._group_dirs = 0  # directories done in it
        self._uncommitted = self._uncommitted_bytes = 0  # files written in it, and their bytes
        self._committed = False  # a group of this run committed (its files, its claim, its ranges)
        self._written = 0  # files written by this request, committed or not
        self._dirs_open, self._dirs_done, self._dirs_unrecorded, self._dirs_changed = set(), set(), set(), set()  # _log_ended
        self._prehash = _Prehash(source)
        self.seen = 0  # the source's changed_high as the request begins (backup.Range.seen)
        self.place: tuple[int, int] = _UNKNOWN_PLACE  # how far the source's history went then (_place_in_history)
        self._volume_read: backup.Range | None = None  # the volume's range whose gap the read-ahead looks for

    def writer(self):
        """A writer in the open group transaction (see BATCH_FILES), opening one if needed."""
        if self._group is None:
            stack = ExitStack()
            first = stack.enter_context(self.target.backup_writer() if self.plan.to_backup else self.target.copy_writer())
            if self.plan.to_backup and not self.request_id:
                try:
                    request_id = first.reserve_request_id()
                    if self.other_history:  # in the same transaction: undone with it, done again with the next
                        first.forget_ranges(request=request_id, sectors=backup.CONTROL_SECTORS,
                                            primary_history=self.primary_history, primary_place=self.place,
                                            place_forward_only=False)
                except BaseException as exc:  # a full backup, say: nothing of it stays
                    stack.__exit__(type(exc), exc, exc.__traceback__)
                    raise
                self.request_id = request_id
            self._group, self._group_dirs = stack, 0
        return self.target.backup_writer() if self.plan.to_backup else self.target.copy_writer()

    def _commit(self) -> None:
        """Commit the group transaction, if one is open; its files now count as copied."""
        if self._group is not None:
            group, self._group = self._group, None
            group.close()
            self._id_committed, self._committed = self.request_id != 0, True
            self._dirs_unrecorded = (self._dirs_unrecorded | self._dirs_open) - self._dirs_done
            self._dirs_changed |= self._dirs_open  # (made, re-dated or written into: hunt30h F3)
        self.result.copied += self._uncommitted
        self.result.bytes_copied += self._uncommitted_bytes
        self._uncommitted, self._uncommitted_bytes, self._dirs_open, self._dirs_done = 0, 0, set(), set()

    def _commit_if_full(self) -> None:
        if self._uncommitted >= BATCH_FILES or self._uncommitted_bytes >= BATCH_BYTES:
            self._commit()

    def _abandon(self, exc: BaseException) -> None:
        """Roll the group transaction back (an exception leaves the request)."""
        self._uncommitted, self._uncommitted_bytes, self._dirs_open, self._dirs_done = 0, 0, set(), set()
        if not self._id_committed:
            self.request_id = 0  # its reservation goes with the group: the next writer reserves again
        if self._group is not None:
            group, self._group = self._group, None
            group.__exit__(type(exc), exc, exc.__traceback__)

    def run(self) -> CopyResult:
        # Every write stamps its change time under the volume's write lock, so once this
        # barrier has passed, every file changed before the request time is visible.
        self.source.write_barrier()
        # Before any file is read: each one changed after this is stamped above it.
        self.seen = self.source.image.meta("changed_high")
        if self.plan.to_backup:  # after ``seen``: the place covers every change it counts
            went_back, known = _went_back(self.source, self.target)
            self.place = _place_in_history(self.source, known)
            if went_back and not self.other_history:
                self.other_history = True  # an image put back from an older copy: compare every file
                self.choice = self.choice._replace(trust_ranges=False)
        try:
            try:
                with ExitStack() as reading:
                    # A tree is read ahead by a child process, forked before this process writes
                    # anything: no writer thread may run when it forks.
                    tree = None if self.plan.is_file else self._read_ahead(reading)
                    if self.plan.to_backup and self.target.label()["primary_volume"] != self.source.id:
                        self._claim_backup()
                    if tree is None:
                        self._copy_single()
                    else:
                        self._copy_tree(*tree)
                if self.plan.to_backup:
                    self._log_request()
            finally:
                # Inside the try: a Ctrl-C as it waits for the hashing threads undoes the open
                # group too (it left the target with records past its committed end: hunt27o F1).
                self._prehash.close()
            self._commit()  # inside too: a full disk at the last group's commit is OPV0209 (rev28h F1)
        except _ClaimedByAnother as claimed:
            self._abandon(claimed.error)
            raise claimed.error from None  # nothing was written: nothing to log on another's backup
        except BaseException as exc:
            self._abandon(exc)
            if self.plan.to_backup:
                self._log_ended(exc)
            if isinstance(exc, errors.VolumeFullError) and self._committed:  # not "nothing was changed" (hunt28a F6)
                raise errors.error("OPV0209", volume=self.target.id, reason=errors.cause(exc), done=(
                    f"CPYOPT ended, and what the groups it committed before wrote stays ({self.result.copied} file(s)"
                    " copied)")) from exc
            raise
        return self.result

    def _claim_backup(self) -> None:
        """Record the source as the backup's primary (reference §5.9 step 7), checked again
        under the write lock: another CPYOPT from another primary may have claimed the fresh
        backup since ``_validate`` read its label (OPV0403 then, before anything is written)."""
        with self.writer() as writer:
            owner = self.target.label()["primary_volume"]  # the label as of this transaction
            if owner is None:
                writer.set_label(primary_volume=self.source.id)
            elif owner != self.source.id:
                raise _ClaimedByAnother(errors.error("OPV0403", target=self.target.id, owner=owner, source=self.source.id))

    # -- a tree -------------------------------------------------------------

    def _read_ahead(self, stack: ExitStack) -> tuple[list[tuple[DirRow, str]], Iterator[Piece | Pick]]:
        """The tree's directories (source row, target path) and the stream of their reads from
        a child process (``copy_readahead.py``): each one's Pieces, then its Pick. In a
        process with other threads they are read in this one instead."""
        dirs = []
        for source_dir in self.source.dir_rows(self.plan.source_root, recursive=self.request.cpysubdir):
            relative = source_dir.path[len(self.plan.source_root.rstrip("/")):].rstrip("/")  # the root's: "", not "/"
            dirs.append((source_dir, (self.plan.target_root.rstrip("/") + relative) or "/"))

        if self.totals:  # counted before the fork, on a connection of its own, closed again
            with Selection(self.source, self.target) as selection:
                counted = [selection.totals(source_dir, target_path, self.choice) for source_dir, target_path in dirs]
            self.totals(sum(files for files, _ in counted), sum(size for _, size in counted))

        if self._volume_control:  # read here: _gap_now need not look again for the gap the reads look for
            label = self.target.label()
            self._volume_read = backup.Range.from_row(*(label[c] for c in RANGE_COLUMNS))
        volume_gap = backup.gap(self.choice.recorded(self._volume_read), self.start) if self._volume_read else None

        def reads() -> Iterator[Piece | Pick]:
            with Selection(self.source, self.target) as selection:
                for source_dir, target_path in dirs:
                    yield from read_directory(selection, self.source, self.choice, source_dir, target_path, volume_gap)

        if threading.active_count() > 1:
            # A fork copies only the calling thread: a lock another thread holds (in SQLite,
            # say) would stay locked in the child for ever. Read here, between the writes.
            stream = reads()
            stack.callback(stream.close)
            return dirs, stream
        return dirs, iter(stack.enter_context(ReadAhead(reads)))

    def _copy_tree(self, dirs: list[tuple[DirRow, str]], stream: Iterator[Piece | Pick]) -> None:
        """Write every directory of the tree as its reads arrive."""
        wrote_any, failed_any, gap_any = False, False, False
        for source_dir, target_path in dirs:
            wrote, failed, gap_found = self._copy_directory(stream, source_dir, target_path)
            wrote_any, failed_any, gap_any = wrote_any or wrote, failed_any or failed, gap_any or gap_found
        if self._volume_control:
            self._control(None, wrote=wrote_any, failed=failed_any, gap_found=gap_any)

    @property
    def _volume_control(self) -> bool:
        """A whole-volume request onto a backup: it updates the volume's range too."""
        return self.plan.to_backup and self.plan.source_root == "/" and self.request.cpysubdir

    def _copy_directory(self, stream: Iterator[Piece | Pick], source_dir: DirRow, target_path: str,
                        ) -> tuple[bool, bool, bool]:
        """Copy the selected files of one directory; returns (wrote something, an eligible file
        failed, a file lies in the volume range's ``backup.gap``)."""
        self.result.directories += 1
        try:
            created = self._ensure_dir(target_path, source_dir.created)
        except errors.OptvolError as exc:
            if isinstance(exc, errors.LockedError) or exc.message_id == "OPV0201":  # (the target's damage ends it)
                raise
            self._fail_directory(stream, target_path, exc)
            return False, True, False
        written_before, failed_before = self._written, self.result.failed
        while not isinstance(piece := next(stream), Pick):
            self._write_piece(piece, target_path)
        pick = piece
        self.result.not_selected += pick.not_selected
        wrote = created or self._written > written_before
        if created:  # a change to it (made, or re-dated) as a file written into it is (hunt30h F3)
            self._dirs_open.add(target_path)
        failed = self.result.failed > failed_before or pick.stale
        if self.plan.to_backup:
            self._control(target_path, wrote=wrote, failed=failed, gap_found=pick.gap_found, source_dir=source_dir.id)
        self._group_dirs += 1
        if self._group_dirs >= BATCH_FILES:
            self._commit()
        return wrote, failed, pick.volume_gap_found

    def _fail_directory(self, stream: Iterator[Piece | Pick], target_path: str, exc: errors.OptvolError) -> None:
        """The target directory cannot be made (a file of that name is on the target, say a
        backup's copy of a file the primary replaced by a directory): it fails, and every file
        chosen in it with it; it gets no control record, and the request goes on."""
        self._failed(target_path, exc)
        while not isinstance(piece := next(stream), Pick):
            for path, error in piece.failures:
                self._failed(path, error)
            for name in [f[0] for f in piece.small] + [c.name for c in piece.large]:
                self._failed(join(target_path, name), exc)
        self.result.not_selected += piece.not_selected

    def _ensure_dir(self, path: str, source_created: int) -> bool:
        """Make a missing target directory (and its missing parents); True if it was made
        (or, on a backup, given the primary's spelling after a rename that changed only its case,
        ``PrivilegedWriter.match_case``, or its creation time after the primary's was made again,
        ``redate_dir``: hunt27a F1). On a backup its ancestors get the primary's spelling too, but
        that is no change to the directory at ``path``. A backup target or a restore gives each the
        creation time of the source directory of the same path; otherwise the time of the request."""
        if self.target.is_dir(path):
            row = self.target.dir_row(path) if self.plan.to_backup else None
            if row is None or row.path == path and (path == "/" or row.created == source_created):
                return False  # (the backup's root keeps its own creation time)
            with self.writer() as writer, writer.savepoint():
                return writer.match_case(path) | (path != "/" and writer.redate_dir(path, source_created))
        parts = [p for p in path.split("/") if p]
        with self.writer() as writer, writer.savepoint():  # made whole or not at all
            have = len(parts) - 1  # the deepest ancestor the target has: parts[:have]
            while have and not self.target.is_dir("/" + "/".join(parts[:have])):
                have -= 1
            if have and self.plan.to_backup:
                writer.match_case("/" + "/".join(parts[:have]))  # an ancestor's rename: not counted
            for depth in range(have + 1, len(parts) + 1):
                ancestor = "/" + "/".join(parts[:depth])
                created = self.now
                if self.choice.keep_dates:
                    created = source_created if depth == len(parts) else self._source_created(ancestor)
                writer.make_dir(ancestor, created=created)
        return True

    def _source_created(self, path: str) -> int:
        return self.source.dir_row(path).created if self.source.is_dir(path) else self.now

    # -- files --------------------------------------------------------------

    def _write_piece(self, piece: Piece, target_dir: str) -> None:
        """Write a piece: its small files at once, then its large ones alone; commit at BATCH_FILES or BATCH_BYTES."""
        for path, exc in piece.failures:
            self._failed(path, exc)
        # A file another run onto this target wrote since this one chose it is not written again.
        skip_same = self.choice.sltfile != "*ALL"
        if piece.small:
            with self.writer() as writer:
                current = self._still_current(piece.states)
                small = [f for f, now in zip(piece.small, current, strict=True) if now]
                self.result.not_selected += len(piece.small) - len(small)
                outcomes = writer.write_files(target_dir, small, skip_same=skip_same) if small else []
            written = [outcome for outcome in outcomes if isinstance(outcome, NewVersion)]
            if len(written) < len(outcomes):
                for f, outcome in zip(small, outcomes, strict=True):
                    if isinstance(outcome, errors.OptvolError):
                        self._failed(join(target_dir, f[0]), outcome)
                    elif outcome is None:
                        self.result.not_selected += 1
            self._wrote(target_dir, [new.path for new in written], sum(new.size for new in written))
            self._commit_if_full()
        self._prehash.plan(piece.large)
        for c in piece.large:
            with self.writer() as writer:
                if not self._still_current([c.state])[0] or skip_same and self._already_there(c, target_dir):
                    self.result.not_selected += 1
                    self._prehash.drop(c)
                elif self._write_large(writer, c, target_dir):
                    self._wrote(target_dir, [join(target_dir, c.name)], c.size)
            self._commit_if_full()

    def _still_current(self, states: list[tuple[int, int]]) -> list[bool]:
        """Onto a backup, asked inside its write transaction: whether each chosen source
        version (``Candidate.state``) is still the source's live state. One the source changed
        since (written, renamed, its attributes changed, deleted) is left alone: its change
        is newer than this run's ``seen``, outside every range the run records, and the next
        run takes it. Written, it could land over the newer state another run copied
        meanwhile, which that run's range claims: the backup would keep the older one for
        good. Onto a primary every file is written (its next *CHANGED run compares them).
        Nothing stamped on the source since the run began (its ``changed_high`` still
        ``seen``): all are, without a look at each (a delete stamps nothing: the file's
        last state is written, as a run a moment earlier would have written it)."""
        if not self.plan.to_backup or not states or self.source.image.meta("changed_high") == self.seen:
            return [True] * len(states)
        live = set(self.source.image.conn.execute(
            f"SELECT id, changed FROM files WHERE live = 1 AND id IN ({','.join('?' * len(states))})",
            [row_id for row_id, _ in states]).fetchall())
        return [state in live for state in states]

    def _already_there(self, c: Candidate, target_dir: str) -> bool:
        """A large file whose live version on the target (inside the open write transaction)
        already has its bytes, times and flags: another run wrote it since this one chose it."""
        try:
            _, old = self.target.file_row(join(target_dir, c.name))
        except errors.OptvolError:
            return False
        return same_version(old, c.size, c.row.sha256, self.choice.times(c.row), c.flags)

    def _wrote(self, target_dir: str, paths: list[str], size: int) -> None:
        """Files written into the open group in ``target_dir``: their paths and their bytes in
        all. The progress bar counts them now (a group of large files may take a while to commit)."""
        self._written += len(paths)
        if paths:
            self._dirs_open.add(target_dir)
        self._uncommitted += len(paths)
        self._uncommitted_bytes += size
        if self.progress:
            self.progress(self.result.copied + self._uncommitted, self.result.bytes_copied + self._uncommitted_bytes)

    def _write_large(self, writer, c: Candidate, target_dir: str) -> bool:
        """Copy one large file in the kernel, hashed on the side; if it fails, nothing of it stays."""
        path = join(target_dir, c.name)
        parts = tuple(p for p in target_dir.split("/") if p) + (c.name,)
        created, modified, attr_changed = self.choice.times(c.row)
        source = SourceRange(self.source.image.data.fd, _payload_offset(self.source, c), self.source.id, c.path,
                             self._prehash.take(c))
        try:
            self.source.check_record(c.row, c.path)  # the record, not only its payload (as every reader checks it)
            with writer.savepoint():
                writer.write_file(path, copy_from=source,
                                  size=c.size, created=created, modified=modified, attr_changed=attr_changed,
                                  flags=c.flags, verified_sha256=c.row.sha256, parts=parts)
        except errors.OptvolError as exc:
            self._failed(path, exc)
            return False
        return True

    def _failed(self, path: str, exc: errors.OptvolError) -> None:
        """One file failed: note it and go on, unless the volume is locked (that ends the request)."""
        if isinstance(exc, errors.LockedError):
            raise exc
        self.result.failures.append(CopyFailure(path, exc.message_id, exc.text))

    def _copy_single(self) -> None:
        """FROMPATH names a file: copy it alone; its directory's range does not move."""
        parent, name = self.plan.source_root.rsplit("/", 1)
        source_dir = self.source.dir_row(parent or "/")
        target_parent, target_name = self.plan.target_root.rsplit("/", 1)
        target_parent = target_parent or "/"
        self.choice.check_name(target_parent, target_name)  # before any directory is made
        try:
            created, collision = self._ensure_dir(target_parent, source_dir.created), None
        except errors.OptvolError as exc:  # a file where a directory is needed: the file fails, as in a tree (hunt28c F2)
            if exc.message_id != "CPF1F24":
                raise
            created, collision = False, exc
        with Selection(self.source, self.target) as selection:  # (no target directory: no target file to match)
            found = selection.single(source_dir, name, None if collision else self.target.dir_row(target_parent).id,
                                     target_name, from_time=self.start, to_backup=self.plan.to_backup)
        chosen = [c for c in found if self.choice.selected(c)]
        self.result.not_selected += 1 - len(chosen)
        if collision:  # the directory fails, and the file with it only if chosen (rev31j F1)
            return self.result.failures.extend(CopyFailure(path, collision.message_id, collision.text)
                                               for path in [target_parent] + [self.plan.target_root] * len(chosen))
        if self.totals:
            self.totals(len(chosen), sum(c.size for c in chosen))
        written_before = self._written
        for piece in read_pieces(self.source, self.choice, chosen, target_parent):
            self._write_piece(piece, target_parent)
        if self.plan.to_backup:
            wrote = created or self._written > written_before
            self._control(target_parent, wrote=wrote, failed=True)  # a file request never completes a range

    # -- backup control data --------------------------------------------------

    def _control(self, path: str | None, *, wrote: bool, failed: bool, gap_found: bool = False,
                 source_dir: int | None = None) -> None:
        """Update and write the control record of a backup directory (or of the volume)."""
        details = {"wrote": wrote, "eligible_failed": failed, "request_time": self.now}
        try:
            with self.writer() as writer, writer.savepoint():
                # Read under the write lock: the range another run recorded since this one read
                # the directory is the one joined, so its gap is looked for again (hunt25i F1).
                label = self.target.label()
                row = tuple(label[c] for c in RANGE_COLUMNS) if path is None else self.target.dir_row(path).range_row()
                node = backup.Range.from_row(*row)
                gap_found = gap_found or self._gap_now(node, source_dir, whole=path is None)
                new = backup.update(node, request_time=self.now, request_start=self.start, seen=self.seen,
                                    wrote=wrote, eligible_failed=failed, gap_found=gap_found)
                writer.record_control(path, new.as_row(), request=self.request_id, details=details,
                                      sectors=backup.CONTROL_SECTORS, primary_history=self.primary_history,
                                      primary_place=self.place,
                                      place_forward_only=not self.other_history and self.place != _UNKNOWN_PLACE)
            self._dirs_done.add(path)
        except errors.VolumeFullError as exc:  # (the volume's record says so: its path is the root's too)
            what = f"the control record of directory {path}" if path is not None else "the volume's control record"
            self.result.failures.append(CopyFailure(path or "/", exc.message_id, f"{what}: {exc.text}"))

    def _gap_now(self, node: backup.Range, source_dir: int | None, *, whole: bool) -> bool:
        """Whether a live source file (of ``source_dir``, or of the volume) lies now in
        ``backup.gap`` of the range ``node`` (as the run takes it)."""
        times = backup.gap(self.choice.recorded(node), self.start)
        if times is None or (source_dir is None and not whole) or (whole and node == self._volume_read):
            return False  # (the range the read-ahead read: it looked in every directory, by the index)
        after, before = times
        sql = "SELECT 1 FROM files WHERE live = 1 AND changed < ?" + ("" if after is None else f" AND changed > {int(after)}")
        values: tuple = (before,) if whole else (before, source_dir)
        with self.source.image.conn.owner, self.source.image.snapshot() as conn:
            return conn.execute(sql + ("" if whole else " AND dir = ?") + " LIMIT 1", values).fetchone() is not None

    def _log_request(self, outcome: str | None = None) -> None:
        """Log the request on the backup, in the transaction that commits its last files. A backup too full
        for the entry still keeps the files that fitted: the entry alone is undone and counted as one more
        failure (exit 1), as a control record is."""
        try:
            with self.writer() as writer, writer.savepoint():  # the writer reserves the run's ID first
                writer.log_request({
                    "time": self.now, "command": "CPYOPT", "parameters": self.request.parameters(),
                    "copied": self.result.copied + self._uncommitted, "not_selected": self.result.not_selected,
                    "failed": self.result.failed, "directories": self.result.directories,
                    "outcome": outcome or ("*COMPLETE" if not self.result.failures else "*ERRORS"),
                    "id": self.request_id,
                })
                self._entry_id = self.request_id  # (an end once it committed logs nothing more: hunt30j F1, F2)
        except errors.VolumeFullError as exc:
            if outcome is not None:  # an ended request's entry: best effort (_log_ended)
                raise
            self.result.failures.append(CopyFailure("/", exc.message_id, f"the request log entry: {exc.text}"))

    def _log_ended(self, exc: BaseException) -> None:
        """A request that ended early (interrupted, or an error that ends it all) may have committed groups: log it as
        *ENDED with what they wrote, once (the history holds every run that changed the volume). Best effort."""
        try:  # (a damaged index read here must not take the place of what ended the request)
            if isinstance(exc, errors.LockedError) or self.target.label()["primary_volume"] != self.source.id or (
                    self._entry_id and any(r["id"] == self._entry_id for r in self.target.requests())):
                return  # a held lock not waited for; another primary's backup, or nobody's yet; its entry committed
            for path in [*sorted(self._dirs_unrecorded), *([None] if self._volume_control and self._dirs_changed else [])]:
                self._control(path, wrote=True, failed=True)  # where committed groups wrote: last changed (§6.4)
            self._log_request("*ENDED")
            self._commit()
        except Exception:  # noqa: BLE001 - the volume may be full or failing: that is already being reported
            self._abandon(exc)
