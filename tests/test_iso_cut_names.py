"""ISO 9660 names a tool cut inside a UTF-8 character are read as the tools read them (hunt24m)."""

from __future__ import annotations

import subprocess

from conftest import make_volume  # noqa: F401  (the fixtures' module)
from optvol.interchange.iso_import import import_iso


def test_an_iso9660_1999_name_cut_inside_a_utf8_character_is_read_as_utf8(library, tmp_path, clock):
    """Hunt 24m F1: genisoimage -iso-level 4 cuts names at 207 bytes, here inside an 'é';
    import read the whole name as Latin-1 ('ÃƒÂ©...'), 7-Zip reads it as the UTF-8 it is."""
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / ("é" * 120)).write_bytes(b"x")
    (tree / "café.txt").write_bytes(b"y")
    image = tmp_path / "v.iso"
    subprocess.run(["genisoimage", "-quiet", "-iso-level", "4", "-o", str(image), str(tree)], check=True)
    result = import_iso(library, file=image, now=clock(), vol="V1999")
    assert result.namespace == "ISO 9660:1999"
    with library.open("V1999") as volume:
        assert sorted(volume.listdir("/")) == sorted(["café.txt", "é" * 103])
        assert volume.read_bytes("/" + "é" * 103) == b"x"
