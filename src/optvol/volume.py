"""The file-system view of one volume and every volume rule (DESIGN §2 layer 3).

Rules enforced here (reference §4, §11, DESIGN §1): a *BACKUP volume refuses every write,
delete, rename, mkdir, attribute change and every open by user programs; *CD-ROM /
*DVD-ROM (ISO 9660) volumes refuse writes; HPOFS keeps every version and never frees
space, UDF frees replaced and deleted data; the threshold is checked before anything is
written; read-only files cannot be written, renamed or deleted. Names keep their case and
are looked up case-insensitively. Not for user programs (README, "Python API"):
``backup_writer`` (only CPYOPT writes a backup), ``copy_writer``, ``mastering_writer``,
``leave_out``, ``file_row``, ``read_verified``, ``verified_chunks``, ``copy_payload``: the
entry points of optvol's own commands, which check the rules these leave to them.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import threading
from array import array
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from datetime import datetime

from optvol import errors, media, model, openfile, volume_transaction
from optvol.image import image as image_mod
from optvol.image import records
from optvol.image.records import Kind
from optvol.model import DirInfo, FileInfo, MediaFormat, MediaType, VolumeInfo, VolumeType
from optvol.privileged import NewVersion, PrivilegedWriter
from optvol.volume_rows import (
    DIR_COLUMNS,
    FILE_COLUMNS,
    HIDDEN,
    READ_ONLY,
    DirRow,
    FileRow,
    count_live,
    insert_files,
    live_files_named,
    live_row,
    longest_below,
    request_log,
    scan_sql,
    scanned,
    space_limit,
    version_chain,
    volume_info,
)

Clock = Callable[[], datetime]
FILE_PAGE = 1000  # rows read by one query of a page (Volume._pages)
_NAME_KEY, _PATH_KEY = FileRow._fields.index("name_key"), DirRow._fields.index("path_key")
READ_ONLY_MEDIA = (MediaType.CD_ROM, MediaType.DVD_ROM)


class Volume:
    """One open volume. Get it from ``Library.open``; close it (or use ``with``)."""

    def __init__(self, image: image_mod.VolumeImage, *, clock: Clock):
        self.image = image
        self._clock = clock
        self._tx: image_mod.Transaction | None = None
        self._tx_label: dict | None = None

    # ----------------------------------------------------------------- life cycle

    def close(self) -> None:
        try:
            openfile.close_readers(self)
        finally:
            self.image.close()

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def id(self) -> str:
        return self.label()["volume"]

    def label(self) -> dict:  # a write's own label; another thread's read waits for that write (hunt28g F5)
        tx, label = self._tx, self._tx_label
        return label if label is not None and tx is not None and tx.thread in (None, threading.get_ident()) else self.image.label()

    def info(self) -> VolumeInfo:
        """DSPOPT DATA(*VOLATR): the label, space and backup range (DESIGN §4)."""
        with self.image.conn.owner, self.image.snapshot() as conn:  # (not a read inside another thread's write)
            label = self.image.label()
            files, directories = conn.execute(
                "SELECT coalesce(sum(live_files), 0), count(*) FROM dirs NOT INDEXED WHERE live = 1").fetchone()
            tx = self._tx if self._tx is not None and self._tx.thread == threading.get_ident() else None
            used = tx.used if tx is not None else self.image.meta("used_sectors")  # (this thread's batch: its files too)
            return volume_info(label, used=used * label["sector_size"], files=files, directories=directories)

    def version_count(self) -> int:
        """File versions ever recorded, live or not (a WORM volume with any holds data)."""
        return self.image.conn.execute("SELECT count(*) FROM files").fetchone()[0]

    def change_label(self, *, threshold: int | None = None, text: str | None = None) -> None:
        """CHGOPTVOL THRESHOLD and TEXT, under its rules (``media.check_label_change``); a LABEL record records it."""
        text = None if text is None else model.text_value(text)  # TEXT's rules (OPV0005), as CHGOPTVOL's
        fields = {k: v for k, v in (("threshold", threshold), ("text", text)) if v is not None}
        media.check_label_change(self.image.label(), volume=self.id, threshold=threshold)  # before any lock
        with self._transaction() as tx:
            media.check_label_change(self.image.label(), volume=self.id, threshold=threshold)
            if fields.items() <= self.image.label().items():
                return  # nothing changes: no LABEL record, charged for good on HPOFS, refused when full (hunt30e F2)
            tx.write_label({**self.image.label(), **fields})
            self._tx_label = label = self.image.label()  # the rest of its batch writes under it, a lower one too (hunt-api F9)
            tx.limit = label["capacity"] * label["threshold"] // 100 // label["sector_size"]

    def space(self) -> tuple[int, int]:
        """(bytes allowed under the threshold, bytes used) as last committed."""
        label = self.label()
        return space_limit(label), self.image.meta("used_sectors") * label["sector_size"]

    # ----------------------------------------------------------------- lookups

    def _parts(self, path: str, *, is_dir: bool = False) -> tuple[str, ...]:
        label = self.label()
        parts = model.split_path(path, volume=label["volume"], media_format=MediaFormat(label["media_format"]),
                                 is_dir=is_dir)
        if parts and not is_dir and model.names_dir(path):  # no file has such a path
            raise errors.error("CPF1F22", path=path, volume=label["volume"])
        return parts

    def _dir(self, parts: tuple[str, ...]) -> DirRow | None:
        path = model.join(parts)
        row = live_row(self.image.conn, "dirs", DIR_COLUMNS, (model.name_key(path),), path)
        return DirRow(*row) if row else None

    def _file(self, dir_id: int, name: str) -> FileRow | None:
        row = live_row(self.image.conn, "files", FILE_COLUMNS, (dir_id, model.name_key(name)), name)
        return FileRow(*row) if row else None

    def _need_dir(self, parts: tuple[str, ...]) -> DirRow:
        found = self._dir(parts)
        if found is None:
            if parts and self._lookup(parts) is not None:
                raise errors.error("OPV0109", path=model.join(parts), volume=self.id, operation="this")
            raise errors.error("CPF1F02", path=model.join(parts), volume=self.id)
        return found

    def _need_file(self, parts: tuple[str, ...]) -> tuple[DirRow, FileRow]:
        if not parts:
            raise errors.error("OPV0108", path="/", volume=self.id, operation="this")
        parent = self._need_dir(parts[:-1])
        found = self._file(parent.id, parts[-1])
        if found is None:
            if self._dir(parts) is not None:
                raise errors.error("OPV0108", path=model.join(parts), volume=self.id, operation="this")
            raise errors.error("CPF1F22", path=model.join(parts), volume=self.id)
        return parent, found

    def _lookup(self, parts: tuple[str, ...]) -> DirRow | FileRow | None:
        """The directory or live file at ``parts``, or None."""
        found = self._dir(parts)
        if found is not None or not parts:
            return found
        parent = self._dir(parts[:-1])
        return self._file(parent.id, parts[-1]) if parent else None

    def exists(self, path: str) -> bool:
        """A file or directory is at ``path`` (only a directory, if it ends in '/')."""
        parts = self._parts(path, is_dir=model.names_dir(path))
        return (self._dir(parts) if model.names_dir(path) else self._lookup(parts)) is not None

    def stat(self, path: str) -> FileInfo | DirInfo:
        """The attributes of the file or directory at ``path`` (a directory, if it ends in '/')."""
        if model.names_dir(path):
            return self._need_dir(self._parts(path, is_dir=True)).info()
        parts = self._parts(path)
        found = self._lookup(parts)
        if found is None:
            raise errors.error("CPF1F22", path=model.join(parts), volume=self.id)
        if isinstance(found, DirRow):
            return found.info()
        return found.info(self._dir(parts[:-1]).path)

    def is_dir(self, path: str) -> bool:
        try:
            parts = self._parts(path, is_dir=True)
        except errors.InvalidError:
            return False  # no directory can have this path; the caller's own check names the fault
        return self._dir(parts) is not None

    def listdir(self, path: str = "/") -> list[str]:
        """Names in a directory, directories first, each group sorted case-insensitively."""
        return [entry.path.rsplit("/", 1)[-1] for entry in self.scandir(path)]

    def scandir(self, path: str = "/") -> list[FileInfo | DirInfo]:
        return list(self.iter_dir(path))

    def iter_dir(self, path: str = "/") -> Iterator[FileInfo | DirInfo]:
        """The entries of a directory as scandir orders them: its subdirectories, read at once,
        then its files a page at a time (a directory of a million files is never held whole).
        No statement stays open between two entries, so the caller may write meanwhile."""
        directory = self._need_dir(self._parts(path, is_dir=True))
        return itertools.chain([row.info() for row in self._subdirs(directory.id)],
                               (row.info(directory.path) for row in self._file_rows_in(directory)))

    def _subdirs(self, dir_id: int) -> list[DirRow]:
        """The live subdirectories of a directory, by name, read at once."""
        sql = scan_sql("dirs", DIR_COLUMNS, "WHERE f.parent = ? AND f.live = 1 ORDER BY f.path_key")
        return [DirRow(*row) for row in scanned(self.image.conn, "dirs", self.image.conn.execute(sql, (dir_id,)).fetchall())]

    def _file_rows_in(self, directory: DirRow) -> Iterator[FileRow]:
        """Pages of FILE_PAGE rows by name (the files_live index), each query done first: no
        statement stays open between two rows (an unfinished one held a read transaction that
        refused this Volume's writes once another process had committed)."""
        yield from (FileRow(*row) for row in self._pages(scan_sql(
            "files", FILE_COLUMNS, "WHERE f.dir = ? AND f.live = 1 AND f.name_key > ? ORDER BY f.name_key LIMIT ?"),
            (directory.id,), _NAME_KEY, table="files"))

    def _pages(self, query: str, arguments: tuple, key: int, *, table: str, after: str = "") -> Iterator[tuple]:
        """The rows of ``query`` (a ``scan_sql`` of ``table``; its last two parameters the key to
        start after and the page size), FILE_PAGE at a time, ordered by column ``key``."""
        while True:
            rows = scanned(self.image.conn, table, self.image.conn.execute(query, (*arguments, after, FILE_PAGE)).fetchall())
            yield from rows
            if len(rows) < FILE_PAGE:
                return
            after = rows[-1][key]
            del rows  # one page at a time: not this one and the next

    def dir_row(self, path: str) -> DirRow:
        """The index row of a directory (for layer-5 commands such as CPYOPT)."""
        return self._need_dir(self._parts(path, is_dir=True))

    def dir_rows(self, path: str, *, recursive: bool) -> list[DirRow]:
        """The directory rows at and (recursively) below ``path``, parents first."""
        return list(self._dir_rows(path, recursive=recursive))

    def write_barrier(self) -> None:
        """Wait until no write transaction is in flight on this volume (see copying.py)."""
        self.image.barrier()

    def requests(self) -> list[dict]:
        """The CPYOPT requests logged on this (backup) volume, oldest first (DSPOPT *BKUHST)."""
        return request_log(self.image.conn, self.id)

    def iter_dirs(self, path: str = "/", *, recursive: bool = True) -> Iterator[DirInfo]:
        """The directory at ``path`` and (recursively) its subdirectories, in path order."""
        for row in self._dir_rows(path, recursive=recursive):
            yield row.info()

    def _dir_rows(self, path: str, *, recursive: bool) -> Iterator[DirRow]:
        top = self._need_dir(self._parts(path, is_dir=True))
        yield top
        if not recursive:
            return
        # Every path below ``prefix`` sorts between ``prefix`` and ``prefix`` with its '/' made '0'.
        prefix = "/" if top.path == "/" else top.path_key + "/"
        yield from (DirRow(*row) for row in self._pages(scan_sql(
            "dirs", DIR_COLUMNS, "WHERE f.live = 1 AND f.path_key < ? AND f.path_key > ? ORDER BY f.path_key LIMIT ?"),
            (prefix[:-1] + "0",), _PATH_KEY, table="dirs", after=prefix))

    def iter_files(self, path: str = "/", *, recursive: bool = False, pattern: str | None = None) -> Iterator[FileInfo]:
        """Files of a directory (and its subdirectories), streamed in path order.

        ``pattern`` is a generic name (``ABC*``) or a name matched case-insensitively.
        Directories are read a page at a time too (``_dir_rows``): a volume of a million
        directories is never held whole.
        """
        for directory in self._dir_rows(path, recursive=recursive):
            for info in (row.info(directory.path) for row in self._file_rows_in(directory)):
                if pattern is None or model.matches_generic(info.path.rsplit("/", 1)[-1], pattern):
                    yield info

    def iter_file_rows(self, path: str = "/", *, recursive: bool = False) -> Iterator[tuple[str, FileRow]]:
        """(directory path, live file row) of every file below ``path`` in path order (layer-5 readers)."""
        for directory in list(self._dir_rows(path, recursive=recursive)):
            for row in self._file_rows_in(directory):  # (no statement stays open between two rows)
                yield directory.path, row

    def walk(self, path: str = "/") -> Iterator[tuple[str, list[str], list[str]]]:
        """Like ``os.walk``: (directory path, directory names, file names), top down."""
        pending = [self._need_dir(self._parts(path, is_dir=True))]  # a stack: the next directory last
        while pending:
            directory = pending.pop()
            children = self._subdirs(directory.id)
            names = [r[1] for r in scanned(self.image.conn, "files", self.image.conn.execute(scan_sql(
                "files", "id, name", "WHERE f.dir = ? AND f.live = 1 ORDER BY f.name_key"), (directory.id,)).fetchall())]
            yield directory.path, [c.name for c in children], names
            pending.extend(reversed(children))

    def versions(self, path: str) -> list[FileInfo]:
        """Every version of a file still recorded, newest first (HPOFS keeps them all)."""
        parent, row = self._need_file(self._parts(path))
        return [version.info(parent.path) for version in version_chain(self.image.conn, row)]

    # ----------------------------------------------------------------- rules

    def check_user_access(self, operation: str) -> None:
        """Refuse user programs on a *BACKUP volume (reference §4.2)."""
        if self.label()["type"] == VolumeType.BACKUP:
            raise errors.error("OPV0101", volume=self.id, operation=operation)

    def check_user_write(self, operation: str) -> None:
        """Refuse writes by user programs: backup volumes and read-only media."""
        self.check_user_access(operation)
        label = self.label()
        if label["media_type"] in READ_ONLY_MEDIA or label["media_format"] == MediaFormat.ISO9660:
            raise errors.error("CPF1F63", volume=self.id, media_type=label["media_type"])

    @property
    def _udf(self) -> bool:
        return self.label()["media_format"] == MediaFormat.UDF

    def _now(self) -> int:
        return model.to_micros(self._clock())

    # ----------------------------------------------------------------- transactions

    def _transaction(self, *, batch: bool = False) -> ContextManager[image_mod.Transaction]:
        return volume_transaction.joined(self, batch=batch)

    @contextmanager
    def batch(self) -> Iterator[Volume]:
        """Group many writes into one transaction: one fsync, one commit, all or nothing."""
        with self._transaction(batch=True):
            yield self

    # ----------------------------------------------------------------- user writes

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> DirInfo:
        """Create a directory (QHFCRTDR: its parent must exist unless ``parents``)."""
        self.check_user_write("creating a directory")
        parts = self._parts(path, is_dir=True)
        with self._transaction() as tx:
            return self._make_dir(tx, parts, parents=parents, exist_ok=exist_ok, created=self._now())

    def _make_dir(
        self, tx: image_mod.Transaction, parts: tuple[str, ...], *, parents: bool, exist_ok: bool, created: int
    ) -> DirInfo:
        existing = self._dir(parts)
        if existing is not None:
            if exist_ok:
                return existing.info()
            raise errors.error("CPF1F04", path=model.join(parts), volume=self.id)
        if not parts:
            raise errors.error("CPF1F04", path="/", volume=self.id)
        parent = self._dir(parts[:-1])
        if parent is None:
            if not parents:
                self._need_dir(parts[:-1])  # raises: CPF1F02, or OPV0109 where the parent is a file
            self._make_dir(tx, parts[:-1], parents=True, exist_ok=True, created=created)
            parent = self._dir(parts[:-1])
        if self._file(parent.id, parts[-1]) is not None:
            raise errors.error("CPF1F24", path=model.join(parts), volume=self.id)
        path = parent.path.rstrip("/") + "/" + parts[-1]  # the parent as stored, not as typed
        tx.memo.clear()
        place = tx.append(Kind.DIRECTORY, {"path": path, "created": created})
        self.image.conn.execute(
            "INSERT INTO dirs (parent, name, path, path_key, created, sector, live) VALUES (?, ?, ?, ?, ?, ?, 1)",
            (parent.id, parts[-1], path, model.name_key(path), created, place.sector),
        )
        return self._dir(parts).info()

    def rmdir(self, path: str) -> None:
        """Remove an empty directory (QHFDLTDR)."""
        self.check_user_write("removing a directory")
        parts = self._parts(path, is_dir=True)
        with self._transaction() as tx:
            self._remove_dir(tx, parts)

    def _remove_dir(self, tx: image_mod.Transaction, parts: tuple[str, ...]) -> None:
        tx.memo.clear()
        directory = self._need_dir(parts)
        if not parts:
            raise errors.error("CPF1F0A", path="/", volume=self.id, reason="it is the root directory")
        conn = self.image.conn
        if conn.execute("SELECT 1 FROM dirs WHERE parent = ? AND live = 1 LIMIT 1", (directory.id,)).fetchone() or \
           conn.execute("SELECT 1 FROM files WHERE dir = ? AND live = 1 LIMIT 1", (directory.id,)).fetchone():
            raise errors.error("CPF1F0A", path=directory.path, volume=self.id, reason="it is not empty")
        tx.append(Kind.REMOVE_DIRECTORY, {"path": directory.path, "time": self._now()}, charged=not self._udf)
        if self._udf:  # UDF frees the directory's own record (a long path may take more than a sector)
            self._landed(directory.sector)
            tx.free(records.header_sectors_of(self.image.data.read(directory.sector, self.image.sector_size)))
        conn.execute("UPDATE dirs SET live = 0 WHERE id = ?", (directory.id,))

    def remove(self, path: str) -> None:
        """Delete a file (QHFDLTSF), not while it is open. On HPOFS its versions stay and keep their space."""
        self.check_user_write("deleting a file")
        parts = self._parts(path)
        with self._transaction() as tx:
            openfile.refuse_if_open(self, parts)
            self._delete(tx, parts)

    def _delete(self, tx: image_mod.Transaction, parts: tuple[str, ...], *, honour_read_only: bool = True) -> None:
        parent, row = self._need_file(parts)
        if row.flags & READ_ONLY and honour_read_only:
            raise errors.error("CPF1F37", path=model.join(parts), volume=self.id)
        tx.append(Kind.DELETE, {"path": model.join(parts), "time": self._now()}, charged=not self._udf)
        if self._udf:
            tx.free(row.sectors(self.image.sector_size))
        self.image.conn.execute("UPDATE files SET live = 0 WHERE id = ?", (row.id,))
        count_live(self.image.conn, row.dir, -1)

    def rename(self, source: str, target: str) -> None:
        """Rename or move a file or directory within the volume (QHFRNMSF)."""
        self.check_user_write("renaming")
        as_dir = model.names_dir(source) or model.names_dir(target)
        src, dst = self._parts(source, is_dir=as_dir), self._parts(target, is_dir=as_dir)
        with self._transaction() as tx:
            if as_dir:
                self._need_dir(src)  # a path ending in '/' names a directory, never a file
            self._rename(tx, src, dst)

    def _rename(self, tx: image_mod.Transaction, src: tuple[str, ...], dst: tuple[str, ...]) -> None:
        found = self._lookup(src)
        if found is None:
            raise errors.error("CPF1F22", path=model.join(src), volume=self.id)
        if not src:
            raise errors.error("CPF1F0A", path="/", volume=self.id, reason="it is the root directory")
        if src == dst:
            raise errors.error("CPF1F23", path=model.join(dst))
        new_parent = self._need_dir(dst[:-1])
        same_entry = [model.name_key(p) for p in src] == [model.name_key(p) for p in dst]
        if not same_entry and self._lookup(dst) is not None:
            raise errors.error("CPF1F24", path=model.join(dst), volume=self.id)
        if not isinstance(found, DirRow) and found.flags & READ_ONLY:
            raise errors.error("CPF1F37", path=model.join(src), volume=self.id)
        if isinstance(found, DirRow):
            self._check_move(found, new_parent, dst)
        now = self._now()
        stamp = tx.stamp(now)
        tx.append(Kind.RENAME, _timed({"from": model.join(src), "to": model.join(dst)}, now, stamp),
                  charged=not self._udf)
        tx.carry(stamp)
        if isinstance(found, DirRow):
            tx.memo.clear()
            self._move_dir(found, new_parent, dst, stamp)
        else:
            self.image.conn.execute(
                "UPDATE files SET dir = ?, name = ?, name_key = ?, attr_changed = ?, changed = ? WHERE id = ?",
                (new_parent.id, dst[-1], model.name_key(dst[-1]), now, stamp, found.id),
            )
            if new_parent.id != found.dir:
                count_live(self.image.conn, found.dir, -1)
                count_live(self.image.conn, new_parent.id, 1)

    def _check_move(self, directory: DirRow, new_parent: DirRow, dst: tuple[str, ...]) -> None:
        """Refuse, before its RENAME record, a move of a directory into itself (OPV0110) or past
        reference §3.1's limits for a path below it (CPF1F48: no path would reach its files)."""
        if (new_parent.path_key + "/").startswith(directory.path_key + "/"):
            raise errors.error("OPV0110", operation="move", path=directory.path)
        grows = len(new_parent.path.rstrip("/")) + 1 + len(dst[-1]) - len(directory.path)
        if grows > 0:  # a path no longer than before keeps within the limits it kept
            longest_dir, longest_file = longest_below(self.image.conn, directory)
            model.check_lengths(model.join(dst), volume=self.id, directories=longest_dir + grows,
                                total=max(longest_dir, longest_file) + grows, below=True)

    def _move_dir(self, directory: DirRow, new_parent: DirRow, dst: tuple[str, ...], stamp: int) -> None:
        old_key, old_path = directory.path_key, directory.path
        new_path = new_parent.path.rstrip("/") + "/" + dst[-1]
        conn = self.image.conn
        below = (old_key + "/", old_key + "0")  # the paths below sort between (the dirs_path index: _dir_rows)
        subtree = [directory.id] + [r[0] for r in scanned(conn, "dirs", conn.execute(scan_sql(
            "dirs", "id", "WHERE f.live = 1 AND f.path_key > ? AND f.path_key < ?"), below).fetchall())]
        conn.executemany(  # by id, the rows checked above: through the index an entry could name another
            "UPDATE dirs SET path = ? || substr(path, ?), path_key = ? || substr(path_key, ?) WHERE id = ?",
            # Each column cut by its own prefix (since schema 4 a key is as long as its path).
            [(new_path, len(old_path) + 1, model.name_key(new_path), len(old_key) + 1, d) for d in subtree[1:]],
        )
        conn.execute(
            "UPDATE dirs SET parent = ?, name = ?, path = ?, path_key = ? WHERE id = ?",
            (new_parent.id, dst[-1], new_path, model.name_key(new_path), directory.id),
        )
        # Files below a moved directory live at new paths: CPYOPT must see them as changed (by id, the rows checked).
        for d in subtree:  # a directory's ids at a time (8 bytes each); a failed check rolls the whole rename back
            moved = array("q")
            for row in conn.execute(scan_sql("files", "id", "WHERE f.dir = ? AND f.live = 1"), (d,)):
                moved.append(row[0] if row[1] else scanned(conn, "files", [row]))  # (scanned raises)
            conn.executemany("UPDATE files SET changed = ? WHERE id = ?", ((stamp, f) for f in moved))

    def set_attributes(self, path: str, *, read_only: bool | None = None, hidden: bool | None = None) -> FileInfo:
        """Change the read-only and hidden flags of a file (QHFCHGAT, CHGATR); None keeps a flag.
        A call that changes no flag writes nothing and keeps the file's attr_changed."""
        self.check_user_write("changing attributes")
        parts = self._parts(path)
        with self._transaction() as tx:
            parent, row = self._need_file(parts)
            flags = row.flags
            if read_only is not None:
                flags = flags | READ_ONLY if read_only else flags & ~READ_ONLY
            if hidden is not None:
                flags = flags | HIDDEN if hidden else flags & ~HIDDEN
            if flags != row.flags:  # else no record: its attr_changed would send the file to the next *CHANGED backup
                self._set_flags(tx, parts, flags)
            return self._file(parent.id, parts[-1]).info(parent.path)

    def _set_flags(self, tx: image_mod.Transaction, parts: tuple[str, ...], flags: int) -> None:
        _, row = self._need_file(parts)
        now = self._now()
        stamp = tx.stamp(now)
        tx.append(Kind.ATTRIBUTES, _timed({"path": model.join(parts), "flags": flags}, now, stamp), charged=not self._udf)
        tx.carry(stamp)
        self.image.conn.execute(
            "UPDATE files SET flags = ?, attr_changed = ?, changed = ? WHERE id = ?", (flags, now, stamp, row.id)
        )

    def write_bytes(self, path: str, data: bytes, *, replace: bool = True) -> FileInfo:
        """Write a whole file from memory (create, or replace its data)."""
        self.check_user_write("writing a file")
        parts = self._parts(path)
        payload = model.as_bytes(data, path=path)  # (array('i'): its bytes, not len() of its items: hunt-api F2)
        with self._transaction() as tx:
            return self._store(tx, parts, size=len(payload), payload=payload, replace=replace).info()

    def write_chunks(self, path: str, chunks: Iterator[bytes], *, size: int, replace: bool = True) -> FileInfo:
        """Write a whole file of ``size`` bytes from an iterator of chunks.

        If the chunks fail (a damaged source raises) or come to another size (OPV0005), nothing
        is written.
        """
        self.check_user_write("writing a file")
        parts = self._parts(path)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise errors.error("OPV0005", value=size, keyword="size", reason="expected a number of bytes")

        def write(data, sector: int) -> bytes:
            return data.write_stream(sector, model.sized_chunks(chunks, size=size, path=path), limit=size)[1]

        with self._transaction() as tx:
            return self._store(tx, parts, size=size, payload=write, replace=replace).info()

    def _store(
        self, tx: image_mod.Transaction, parts: tuple[str, ...], *, size: int,
        payload: bytes | Callable, replace: bool, times: tuple[int, int, int] | None = None, flags: int | None = None,
        honour_read_only: bool = True, sha256: bytes | None = None,
    ) -> NewVersion:
        """Write one file version: with ``PrivilegedWriter.write_files`` (many small files of one
        directory through the same steps) the only way file data enters a volume.

        Every check comes before anything is written. ``sha256`` may give the SHA-256 of a
        ``bytes`` payload when the caller already has it.
        """
        if not parts:
            raise errors.error("OPV0108", path="/", volume=self.id, operation="writing")
        parent = self._parent_dir(tx, parts[:-1])
        old = self._file(parent.id, parts[-1])
        now = self._now()
        stamp = tx.stamp(now)
        if isinstance(payload, bytes):
            sha256 = sha256 or hashlib.sha256(payload).digest()
        key = model.name_key(parts[-1])
        outcome = self._new_versions(tx, parent, parts[:-1], [(parts[-1], key, size, sha256, times, flags)],
                                     {key: old} if old else {}, replace=replace, honour_read_only=honour_read_only,
                                     now=now, stamp=stamp, charge=False)[0]
        if isinstance(outcome, errors.OptvolError):
            raise outcome
        new, body, freed, _ = outcome
        try:
            if isinstance(payload, bytes):
                place = tx.append(Kind.FILE, body, payload, sha256=sha256)
            else:
                place, sha = tx.append_stream(Kind.FILE, body, size=size, write=payload)
                new = new._replace(sha256=sha)
        except BaseException:
            tx.charge(freed)
            raise
        tx.carry(stamp)
        self._index_versions(parent.id, [(parts[-1], key, new, old, place)], changed=stamp)
        return new

    def _new_versions(
        self, tx: image_mod.Transaction, parent: DirRow, typed: tuple[str, ...], files: list[tuple],
        olds: dict[str, FileRow], *, replace: bool, honour_read_only: bool, now: int, stamp: int, charge: bool,
    ) -> list[tuple[NewVersion, bytes, int, FileRow | None] | errors.OptvolError]:
        """The rules of writing file versions into directory ``parent`` (``typed``: its path as
        given, for messages), one file after the other. ``files`` holds (name, name key, size,
        SHA-256, times or None, flags or None); ``olds`` the live versions they replace, by name
        key. Times not given are ``now``; the FILE record's ``time`` is ``stamp`` (``Transaction.stamp``).
        Each file gets its new version, its FILE record body, the sectors freed by the version
        it replaces (on UDF) and that version; or the error that refuses it (CPF1F24, CPF1F37,
        OPV0108, CPF1F61), and then nothing of it is reserved. The room of each accepted one is
        reserved in ``tx`` (and charged if told, else by its append). It runs for every file CPYOPT writes."""
        subdirs = self._subdir_keys(tx, parent, [f[1] for f in files])
        sector_size, fixed, udf = self.image.sector_size, records.FIXED_SIZE, None
        prefix = parent.path.rstrip("/") + "/"  # the parent as stored, not as typed
        encode, volume, outcomes, new_tuple = records.encode_file_body, tx.volume, [], tuple.__new__
        for name, key, size, sha256, times, flags in files:
            old = olds.get(key)
            refused = "OPV0108" if key in subdirs else None  # a directory has that name
            if old is not None and refused is None:
                refused = "CPF1F24" if not replace else "CPF1F37" if old.flags & READ_ONLY and honour_read_only else None
            if refused:
                outcomes.append(errors.error(refused, path=model.join((*typed, name)), volume=self.id, operation="writing"))
                continue
            freed = 0
            if old is not None:
                udf = self._udf if udf is None else udf
                freed = old.sectors(sector_size) if udf else 0
            created, modified, attr_changed = times or ((old.created if old else now), now,
                                                        (old.attr_changed if old else now))
            if flags is None:
                flags = old.flags if old else 0
            version = (old.version + 1) if old else 1
            path = prefix + name
            body = encode(volume=volume, path=path, version=version, created=created, modified=modified,
                          attr_changed=attr_changed, flags=flags, time=stamp)
            # records.header_sectors_for and sectors_for, written out: this runs once per file.
            needed = -(-(fixed + len(body)) // sector_size) + -(-size // sector_size)
            tx.free(freed)
            try:
                tx.reserve(needed)
            except errors.OptvolError as exc:
                tx.charge(freed)
                outcomes.append(exc)
                continue
            if charge:
                tx.charge(needed)
            # tuple.__new__ is what NewVersion(...) calls, without its Python frame.
            new = new_tuple(NewVersion, (path, size, created, modified, attr_changed, flags, sha256, version))
            outcomes.append((new, body, freed, old))
        return outcomes

    def _index_versions(self, dir_id: int,
                        versions: list[tuple[str, str, NewVersion, FileRow | None, image_mod.Place]], *,
                        changed: int | list[int]) -> None:
        """Index new versions, (name, name key, version, version replaced, place) each, changed
        at ``changed`` (or each at its own: recover's runs); the replaced stop being live."""
        conn = self.image.conn
        replaced = [(v[3].id,) for v in versions if v[3]]
        conn.executemany("UPDATE files SET live = 0 WHERE id = ?", replaced)
        count_live(conn, dir_id, len(versions) - len(replaced))
        stamps = changed if isinstance(changed, list) else [changed] * len(versions)
        values = [value for (name, key, new, old, place), stamp in zip(versions, stamps, strict=True)
                  for value in (dir_id, name, key, new.version, old.id if old else None, place.sector,
                                place.header_sectors, new.size, new.sha256, new.created, new.modified,
                                new.attr_changed, stamp, new.flags)]
        insert_files(conn, values)

    def _files_named(self, dir_id: int, keys: list[str]) -> dict[str, FileRow]:
        """The live files of a directory with these name keys, by name key (one query)."""
        return {row[3]: FileRow(*row) for row in live_files_named(self.image.conn, FILE_COLUMNS, dir_id, keys)}

    def _subdir_keys(self, tx: image_mod.Transaction, parent: DirRow, keys: list[str]) -> set[str]:
        """Which of ``keys`` name subdirectories of ``parent``: a few looked up by path (a batch that
        makes directories forgets what is remembered), many among all, remembered like ``_parent_dir``."""
        if len(keys) <= 8:
            base, find = parent.path_key.rstrip("/") + "/", self.image.conn.execute
            return {k for k in keys if find("SELECT 1 FROM dirs WHERE path_key = ? AND live = 1", (base + k,)).fetchone()}
        cached = tx.memo.get(("subdirs", parent.id))
        if cached is None:
            cached = tx.memo[("subdirs", parent.id)] = {model.name_key(r.name) for r in self._subdirs(parent.id)}
        return cached

    def _parent_dir(self, tx: image_mod.Transaction, parts: tuple[str, ...]) -> DirRow:
        """The directory at ``parts`` (a file's parent), remembered for the rest of the transaction.

        Many files of one directory in one batch look it up once. Every directory change
        (make, remove, move) forgets what was remembered.
        """
        key = tuple(map(model.name_key, parts))
        cached = tx.memo.get(key)
        if cached is None:
            cached = tx.memo[key] = self._need_dir(parts)
        return cached

    def leave_out(self, file_ids: list[int], *, control_sectors: int) -> None:
        """DUPOPT ALWMEDERR(*FILE) on a fresh duplicate: ``PrivilegedWriter.leave_out``."""
        with self._transaction() as tx:
            PrivilegedWriter(self, tx, honour_read_only=False).leave_out(file_ids, control_sectors=control_sectors)

    def _drop_version(self, row: FileRow) -> None:
        """A file version leaves the index (``leave_out``, and its replay by recover)."""
        if self.image.conn.execute("SELECT live FROM files WHERE id = ?", (row.id,)).fetchone()[0]:
            count_live(self.image.conn, row.dir, -1)
        self.image.conn.execute("DELETE FROM files WHERE id = ?", (row.id,))

    # ----------------------------------------------------------------- privileged writers

    @contextmanager
    def backup_writer(self) -> Iterator[PrivilegedWriter]:
        """The one entry point that writes a *BACKUP volume: only CPYOPT and CVTOPTBKU call it."""
        if self.label()["type"] != VolumeType.BACKUP:
            raise errors.error("OPV0107", volume=self.id, media_format=self.label()["type"], operation="backup writing")
        with self._transaction(batch=True) as tx:  # (a batch: the caller enters it again per group of writes)
            yield PrivilegedWriter(self, tx, honour_read_only=False)

    @contextmanager
    def copy_writer(self) -> Iterator[PrivilegedWriter]:
        """CPYOPT onto a *PRIMARY volume: the user-write rules hold, given dates may be kept."""
        self.check_user_write("CPYOPT to this volume")
        with self._transaction(batch=True) as tx:  # (a batch: the caller enters it again per group of writes)
            yield PrivilegedWriter(self, tx, honour_read_only=True)

    @contextmanager
    def mastering_writer(self) -> Iterator[PrivilegedWriter]:
        """The one entry point that fills a read-only (*CD-ROM, *DVD-ROM) volume: ISO import."""
        if self.label()["media_type"] not in READ_ONLY_MEDIA:
            raise errors.error("OPV0107", volume=self.id, media_format=self.label()["media_format"], operation="mastering")
        with self._transaction(batch=True) as tx:  # (a batch: the caller enters it again per group of writes)
            yield PrivilegedWriter(self, tx, honour_read_only=False)

    # ----------------------------------------------------------------- reading data

    def open(self, path: str, mode: str = "rb", *, encoding: str | None = None):
        """Open a file for a user program: ``rb``/``r`` to read, ``wb``/``w``/``xb``/``x``/``ab``/``a`` to write."""
        return openfile.open_file(self, path, mode, encoding=encoding)

    def read_bytes(self, path: str) -> bytes:
        with self.open(path, "rb") as handle:
            return handle.read()

    def file_row(self, path: str) -> tuple[DirRow, FileRow]:
        """The directory and live-file rows of ``path`` (for readers in this package and layer 5)."""
        return self._need_file(self._parts(path))

    def verified_chunks(self, row: FileRow, path: str) -> Iterator[bytes]:
        """The payload of a file version; raises CPF1F28 at the end if its SHA-256 is wrong.

        Callers that must never hand out wrong bytes verify first (``verify``) or keep
        what they received until this generator has finished.
        """
        digest = hashlib.sha256()
        self._landed(row.sector)
        self.check_record(row, path)
        try:
            for chunk in self.image.payload_chunks(sector=row.sector, header_sectors=row.header_sectors, size=row.size):
                digest.update(chunk)
                yield chunk
        except errors.DamagedError as exc:
            raise self._damaged(path, errors.cause(exc)) from None
        if digest.digest() != row.sha256:
            raise self._damaged(path, "SHA-256 of the data does not match")

    def read_verified(self, row: FileRow, path: str | None = None, *, directory: str | None = None) -> bytes:
        """A small file version's bytes, only once its SHA-256 matches (CPF1F28 otherwise).

        For the message, ``path`` is the version's path, or ``directory`` its directory's
        (the path is then built only for a message: this runs for every small file CPYOPT reads).
        """
        self._landed(row.sector)
        start = row.header_sectors * self.image.sector_size  # the header and the payload in one read
        try:
            whole = self.image.data.read(row.sector, start + row.size)
            _check_header(*records.header_payload(memoryview(whole)[:start]), row)
        except errors.DamagedError as exc:  # sectors the host cannot read, a partition cut short, a bad header
            raise self._damaged(path or row.path(directory or ""), errors.cause(exc)) from None
        data = whole[start:]
        if hashlib.sha256(data).digest() != row.sha256:
            raise self._damaged(path or row.path(directory or ""), "SHA-256 of the data does not match")
        return data

    def check_record(self, row: FileRow, path: str) -> None:
        """CPF1F28 unless the FILE record of version ``row`` has a sound header that agrees with
        the index (docs/format.md §3.4): every route that reads a file checks it, not only ``cat``."""
        try:
            header = self.image.read_header(row.sector)
            _check_header(header.kind, header.payload_size, header.payload_sha256, row)
        except errors.DamagedError as exc:
            raise self._damaged(path, errors.cause(exc)) from None

    def copy_payload(self, row: FileRow, path: str, *, fd: int, offset: int) -> None:
        """Write a file version's payload to byte ``offset`` of host file ``fd``: the bytes hashed
        are those written (one read: never a kernel copy that reads them again). CPF1F28 when
        damaged, raised after the bytes were written (the caller discards what it wrote)."""
        for chunk in self.verified_chunks(row, path):  # OSError writing ``fd`` propagates
            view = memoryview(chunk)
            while view:
                done = os.pwrite(fd, view, offset)
                view, offset = view[done:], offset + done

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every index query inside it sees one committed state."""
        with self.image.conn.owner, self.image.snapshot(), volume_transaction.marked(self):  # others wait for it
            yield

    def _landed(self, sector: int) -> None:
        """Before reading the record at ``sector``: a batch's own records may still be in memory."""
        tx = self._tx
        if tx is not None and sector >= tx.committed_end and tx.thread == threading.get_ident():  # its own only
            tx.land()

    def _damaged(self, path: str, reason: str) -> errors.OptvolError:
        """CPF1F28: a version of file ``path`` cannot be read whole and intact."""
        return errors.error("CPF1F28", path=path, volume=self.id, reason=reason)

    def verify(self, row: FileRow, path: str) -> None:
        """Read a whole file version and check its SHA-256 (CPF1F28 when damaged)."""
        for _ in self.verified_chunks(row, path):
            pass


def _check_header(kind: int, size: int, sha256: bytes, row: FileRow) -> None:
    """OPV0201 unless a header of ``kind``, ``size`` and ``sha256`` is the FILE record of version ``row``."""
    if kind != Kind.FILE or size != row.size or sha256 != row.sha256:
        raise errors.error("OPV0201", volume="?", reason="record header does not match the index")


def _timed(body: dict, now: int, stamp: int) -> dict:
    """A RENAME or ATTRIBUTES body with its clock ``time`` and, if it differs, its ``changed`` (stamp)."""
    return {**body, "time": now} if stamp == now else {**body, "time": now, "changed": stamp}
