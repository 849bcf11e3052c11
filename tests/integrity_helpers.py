"""Helpers of the integrity and recovery tests: the CLI in-process, byte flips, trees.

``run_cli`` runs ``optvol.cli.main`` in this process (much faster than a subprocess) and
gives back the exit code, stdout as bytes and stderr as text; exit 70 (a traceback) is a
bug everywhere these tests use it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from optvol import cli


@dataclass
class Out:
    rc: int
    out: bytes
    err: str

    def json(self):
        return json.loads(self.out)


def run_cli(library: Path | str, *args: str, json_output: bool = False) -> Out:
    """``optvol [--json] --library LIB ARGS...`` in-process."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.StringIO()
    argv = (["--json"] if json_output else []) + ["--library", str(library), *map(str, args)]
    rc = cli.main(argv, out=out, err=err)
    out.flush()
    return Out(rc, out.buffer.getvalue(), err.getvalue())


def content(path: str, size: int, salt: str = "") -> bytes:
    """Deterministic bytes for a path (and an optional salt for later versions)."""
    seed = hashlib.sha256((salt + path).encode()).digest()
    block = hashlib.sha256(seed + b"block").digest() * 32  # 1 KiB
    whole = (block * (size // len(block) + 1))[:size]
    return (seed[:8] + whole[8:])[:size] if size >= 8 else seed[:size]


def volume_dir(library_root: Path | str, vol: str) -> Path:
    return Path(library_root) / f"{vol}.optvol"


def index_rows(library_root: Path | str, vol: str) -> list[dict]:
    """Every file version in a volume's index: path, version, live, sector, header_sectors, size."""
    conn = sqlite3.connect(f"file:{volume_dir(library_root, vol) / 'index.sqlite'}?mode=ro", uri=True)
    try:
        sector_size = conn.execute("SELECT sector_size FROM label").fetchone()[0]
        rows = conn.execute(
            "SELECT d.path, f.name, f.version, f.live, f.sector, f.header_sectors, f.size, f.id"
            " FROM files f JOIN dirs d ON d.id = f.dir ORDER BY d.path_key, f.name_key, f.version"
        ).fetchall()
    finally:
        conn.close()
    return [
        {"path": d.rstrip("/") + "/" + n, "version": v, "live": bool(live), "sector": s, "header_sectors": h,
         "size": size, "id": i, "sector_size": sector_size}
        for d, n, v, live, s, h, size, i in rows
    ]


# The index as recover must rebuild it: every table, but the label's last-referenced time
# (a replay's is its last record's).
INDEX_TABLES = {
    "label": "volume, type, media_type, media_format, sector_size, capacity, threshold, text, created,"
             " primary_volume, backup_start, backup_end, backup_last_changed, backup_seen",
    "dirs": "*",
    "files": "*",
    "requests": "*",
    "controls": "*",
    "meta": "*",
}


def index_dump(index: Path | str) -> dict[str, list[tuple]]:
    """The rows of INDEX_TABLES of the index file ``index``, each table in its first column's order."""
    conn = sqlite3.connect(index)
    try:
        return {table: conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1").fetchall()
                for table, columns in INDEX_TABLES.items()}
    finally:
        conn.close()


def payload_offset(row: dict, at: int = 0) -> int:
    """Byte offset in data.opv of byte ``at`` of a version's payload (via the index)."""
    return (row["sector"] + row["header_sectors"]) * row["sector_size"] + at


def flip(path: Path | str, offset: int, mask: int = 0x01) -> None:
    """XOR one byte of a file in place."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        assert len(byte) == 1, (path, offset)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ mask]))


def damage_header(library_root: Path | str, vol: str, sector: int, sector_size: int) -> None:
    """Invert 4 bytes of the record header at ``sector`` of a volume's data partition (its
    CRC then fails: a record the replay cannot read)."""
    with open(volume_dir(library_root, vol) / "data.opv", "r+b") as data:
        data.seek(sector * sector_size + 20)
        found = data.read(4)
        data.seek(sector * sector_size + 20)
        data.write(bytes(b ^ 0xFF for b in found))


def flip_payload(library_root: Path | str, vol: str, row: dict, at: int = 0) -> None:
    flip(volume_dir(library_root, vol) / "data.opv", payload_offset(row, at))


def tree_snapshot(root: Path, *, skip: Path | None = None) -> dict[str, tuple]:
    """Every entry below ``root`` (except below ``skip``): kind, size and content hash."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames:
            state[str((here / name).relative_to(root))] = ("dir",)
        for name in filenames:
            path = here / name
            state[str(path.relative_to(root))] = ("file", path.stat().st_size,
                                                  hashlib.sha256(path.read_bytes()).hexdigest())
    return state


@contextmanager
def tmpfs(point: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``point`` for the block, unmounted after it. It
    needs the right to mount (root, as on the project's CI machines); without it the test
    is skipped: what it checks cannot be made otherwise."""
    point.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
    assert not os.path.ismount(point)


@contextmanager
def read_only_bind(source: Path, view: Path) -> Iterator[Path]:
    """``view``: a read-only bind mount of ``source`` for the block (a read-only view of files
    others write through their own path), unmounted lazily after it (a failing read's
    traceback may still hold a file open). Skipped where mounting is not permitted (not root)."""
    view.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount --bind is not allowed here: {mounted.stderr.decode().strip()}")
    try:
        remount(view, read_only=True, bind=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=True)


def remount(point: Path, *, read_only: bool, bind: bool = False) -> None:
    """Make the file system mounted at ``point`` (a bind mount: that mount alone) read-only,
    or writable again."""
    subprocess.run(["mount", "-o", f"remount,{'bind,' if bind else ''}{'ro' if read_only else 'rw'}", str(point)],
                   check=True, capture_output=True)


def downgrade_to_schema_3(index: Path | str) -> None:
    """Make a volume's index what optvol wrote before index schema 4: keys by str.upper's
    full case mapping (straße under STRASSE), schema_version 3. Its -wal is folded in first."""
    conn = sqlite3.connect(index)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.create_function("full_upper", 1, str.upper)
    conn.execute("UPDATE files SET name_key = full_upper(name)")
    conn.execute("UPDATE dirs SET path_key = full_upper(path)")
    conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
    conn.execute("DROP INDEX IF EXISTS controls_request")  # schema 5
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
