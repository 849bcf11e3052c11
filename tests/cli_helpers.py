"""Helpers for running the shell front door in a subprocess and checking what it left on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ERROR_LINE = re.compile(r"^optvol: (CPF1F..|OPT\d{4}|OPV\d{4}): ")
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}:\d{2}$")
# A fixed local zone two hours east of UTC (POSIX TZ syntax, no tzdata needed), so that
# "local time with offset" is visible in the output of the subprocesses.
TZ = "OPV-02"
TZ_OFFSET = "+02:00"

VOLATR_FIELDS = {
    "volume", "type", "media_type", "media_format", "sector_size", "capacity", "used", "available",
    "threshold", "text", "created", "last_referenced", "primary_volume", "backup",
}
BACKUP_FIELDS = {"range_start", "range_end", "last_changed"}
DIRATR_FIELDS = {"path", "created", "backup"}
FILATR_FIELDS = {"path", "size", "created", "modified", "attr_changed", "read_only", "hidden", "sha256"}


@dataclass
class Result:
    rc: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()

    def json(self):
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess: no OPTVOL_LIBRARY or XDG_DATA_HOME, HOME in tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPTVOL_LIBRARY", "XDG_DATA_HOME")}
    env.update(HOME=str(home), TZ=TZ, PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run(*args: str | Path, library: Path | None, env: dict[str, str], cwd: Path | None = None,
        json_output: bool = False) -> Result:
    """``python -m optvol [--json] [--library LIB] ARGS...`` in a subprocess."""
    argv = [sys.executable, "-m", "optvol"]
    if json_output:
        argv.append("--json")
    if library is not None:
        argv += ["--library", str(library)]
    argv += [str(a) for a in args]
    done = subprocess.run(argv, capture_output=True, env=env, cwd=cwd, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr.decode())


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def index_contents(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of an index, read through SQLite (the bytes may differ)."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def snapshot(root: Path) -> dict[str, object]:
    """Every file under ``root``: size and SHA-256; indexes by content; SQLite side files ignored."""
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            state[rel] = "dir"
        elif re.search(r"\.sqlite-(wal|shm|journal)$", rel):
            continue
        elif path.name == "index.sqlite":
            state[rel] = index_contents(path)
        else:
            state[rel] = (path.stat().st_size, sha256_file(path))
    return state


def is_iso(value: object) -> bool:
    return isinstance(value, str) and bool(ISO_WITH_OFFSET.match(value)) and datetime.fromisoformat(value).tzinfo is not None


def micros(value: str) -> int:
    """Microseconds since the epoch of an ISO timestamp of the JSON output."""
    moment = datetime.fromisoformat(value)
    delta = moment - datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
