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


def test_a_directory_whose_udf_name_export_changed_takes_no_other_directory_s_whole_name(library, tmp_path, clock):
    """rev26g F1: a directory with a character beyond U+FFFF (UDF name changed, 253 bytes: not
    a long name) whose cut export numbered (中*84_1) matched the whole name of one other
    directory (中*84ЖЖ), which took it too: the image was refused (OPV0703, "in its directory
    twice"), and with an empty file that cut alike (632a28c tried it against the directories
    only) it was refused where it came in before. Both directories now keep their cuts, named."""
    from datetime import datetime, timezone

    from optvol.interchange import export_iso

    one, other = "中" * 84 + "\U0001F600", "中" * 84 + "ЖЖ"
    make_volume(library, "SRC")
    with library.open("SRC") as volume:
        volume.mkdir("/P")
        volume.write_bytes("/P/" + "中" * 84, b"own name")
        for name in (one, other):
            volume.mkdir(f"/P/{name}")
            volume.write_bytes(f"/P/{name}/f.txt", name.encode())
        volume.write_bytes("/P/" + "中" * 85 + "x", b"")
    export_iso(library, vol="SRC", file=tmp_path / "x.iso", now=datetime(2026, 6, 1, tzinfo=timezone.utc), udf=True)
    result = import_iso(library, file=tmp_path / "x.iso", now=clock(), vol="BACK")
    cuts = ["中" * 84 + "_1", "中" * 84 + "Ж"]
    assert sorted(result.cut_entries) == sorted(f"/P/{cut}" for cut in cuts)
    with library.open("BACK") as volume:
        assert sorted(volume.read_bytes(f"/P/{cut}/f.txt") for cut in cuts) == sorted([one.encode(), other.encode()])
        assert volume.read_bytes("/P/" + "中" * 84) == b"own name"
