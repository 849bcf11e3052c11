"""recover (and every reader apart of the index) takes an index whose schema text is no
UTF-8 for an unreadable one, as it does one SQLite cannot read: a flipped byte in the schema
text of index.sqlite made `optvol recover` end in a UnicodeDecodeError traceback (exit 70),
SQLite's "malformed database schema" message quoting the bytes (hunt27n F2)."""
from __future__ import annotations

import io
import json

from optvol import cli


def _run(lib, *args):
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.StringIO()
    rc = cli.main(["--json", "--library", str(lib), *args], out=out, err=err)
    return rc, out.buffer.getvalue(), err.getvalue()


def test_recover_rebuilds_an_index_whose_schema_text_is_not_utf8(tmp_path):
    lib = tmp_path / "lib"
    host = tmp_path / "one"
    host.write_bytes(b"1" * 3000)
    assert _run(lib, "inzopt", "PVOL1", "--capacity", "16M")[0] == 0
    assert _run(lib, "cp", str(host), "/QOPT/PVOL1/one")[0] == 0
    index = lib / "PVOL1.optvol" / "index.sqlite"
    raw = bytearray(index.read_bytes())
    at = raw.find(b"CREATE TABLE files")
    raw[at + 7] = 0xF9  # a flipped byte in the schema's text: SQLite's "malformed schema" message is no UTF-8
    index.write_bytes(bytes(raw))
    rc, out, err = _run(lib, "recover", "PVOL1")
    assert rc == 0, err
    assert json.loads(out)["files"] == 1
    rc, out, err = _run(lib, "chkoptvol", "PVOL1")
    assert rc == 0, err
    rc, out, err = _run(lib, "cat", "/QOPT/PVOL1/one")
    assert rc == 0 and out == b"1" * 3000
