"""Records without Rock Ridge entries in a Rock Ridge image take their Joliet names (hunt30b F2)."""

from __future__ import annotations

import struct
import subprocess

from optvol.cli import main

SECTOR = 2048


def _strip(data: bytearray, extent: int, prefix: bytes) -> int:
    """Cut short each record of the directory at ``extent`` (all in its first sector) whose ISO
    9660 name starts with ``prefix``: no System Use area, as a tool without Rock Ridge writes
    it; returns the extent of the last such record."""
    position, found, records = extent * SECTOR, None, bytearray()
    while data[position]:
        length, name_length = data[position], data[position + 32]
        record = bytearray(data[position:position + length])
        if bytes(record[33:33 + name_length]).startswith(prefix):
            record = record[:33 + name_length + (1 - name_length % 2)]
            record[0] = len(record)
            found = struct.unpack_from("<I", record, 2)[0]
        records += record
        position += length
    data[extent * SECTOR:(extent + 1) * SECTOR] = records.ljust(SECTOR, b"\0")
    return found


def _image(tmp_path, *joliet: str) -> bytes:
    tree = tmp_path / "tree"
    (tree / "Sub Dir").mkdir(parents=True)
    (tree / "First File.txt").write_bytes(b"first\n")
    (tree / "Second File.txt").write_bytes(b"second\n")
    (tree / "Sub Dir" / "Inner File.txt").write_bytes(b"inner\n")
    image = tmp_path / "g.iso"
    subprocess.run(["genisoimage", "-quiet", "-R", *joliet, "-V", "RRM", "-o", str(image), str(tree)], check=True,
                   capture_output=True)
    data = bytearray(image.read_bytes())
    root = struct.unpack_from("<I", data, 16 * SECTOR + 156 + 2)[0]
    _strip(data, root, b"SECOND")
    sub = _strip(data, root, b"SUB")
    _strip(data, sub, b"INNER")
    return bytes(data)


def _listing(library, capsys, path: str) -> list[str]:
    capsys.readouterr()
    assert main(["--library", str(library), "ls", path]) == 0
    return capsys.readouterr().out.split()


def test_records_without_rock_ridge_take_their_joliet_names(tmp_path, capsys):
    image = tmp_path / "m.iso"
    image.write_bytes(_image(tmp_path, "-J"))
    library = tmp_path / "lib"
    assert main(["--library", str(library), "import-iso", str(image), "--vol", "RRM"]) == 0
    root = " ".join(_listing(library, capsys, "/QOPT/RRM"))
    assert "First File.txt" in root and "Second File.txt" in root and "Sub Dir" in root, root
    assert "SECOND_F.TXT" not in root
    assert " ".join(_listing(library, capsys, "/QOPT/RRM/Sub Dir")) == "Inner File.txt"


def test_without_joliet_the_iso_9660_name_stays(tmp_path, capsys):
    image = tmp_path / "m.iso"
    image.write_bytes(_image(tmp_path))
    library = tmp_path / "lib"
    assert main(["--library", str(library), "import-iso", str(image), "--vol", "RRM"]) == 0
    root = _listing(library, capsys, "/QOPT/RRM")
    assert "SECOND_F.TXT" in root and "SUB_DIR/" in root, root
