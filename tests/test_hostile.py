"""Hostile names and paths (DESIGN §6): `..`, NUL, control characters, over-long names,
names differing only by case, volume IDs with path characters. Through the API, the shell
commands and ``optvol cl``: a clear error, exit 2 (4 for the case-only duplicate), and
nothing written anywhere outside the library (nor inside it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import make_volume
from integrity_helpers import run_cli, tmpfs, tree_snapshot
from optvol import errors, transfer
from optvol.checking import chkoptvol
from optvol.initialize import inzopt
from optvol.model import VolumeType

BAD_PATHS = [
    "/../ESCAPE",
    "/D/../../ESCAPE",
    "/D/..",
    "/./X",
    "/A\x00B",
    "/A\nB",
    "/A\x1bB",
    "/A\x7fB",
    "/A\tB",
    "/" + "N" * 256,
    "/" + "/".join(["D" * 50] * 6) + "/F",  # over 256 characters of directory names
    "/" + "/".join(["D" * 40] * 5) + "/" + "F" * 100,  # over 294 with /QOPT/PVOL1
    "//X",
    "relative",
    "/A*B",
    "/A?B",
    "/A\\B",
]
BAD_IDS = ["../X", "A/B", ".hidden", "X" * 33, "", " ", "A B", "/ABS", "A\x00B", "..", "-LEAD", "ÄBC"]


@pytest.fixture
def lib(library, tmp_path):
    make_volume(library, "PVOL1")
    with library.open("PVOL1") as volume:
        volume.mkdir("/D")
        volume.write_bytes("/D/Keep", b"keep")
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "src.txt").write_bytes(b"host file")
    return library


def _unchanged(tmp_path, before):
    assert tree_snapshot(tmp_path) == before


def _snap(tmp_path, library):
    """Everything in tmp_path (library included, but for SQLite side files and the lock)."""
    state = tree_snapshot(tmp_path)
    return {k: v for k, v in state.items() if not k.endswith(("-wal", "-shm", "lock")) and "index.sqlite" not in k}


def test_api_refuses_bad_paths(lib, tmp_path):
    before = _snap(tmp_path, lib)
    with lib.open("PVOL1") as volume:
        for path in BAD_PATHS:
            for action in (
                lambda path=path: volume.write_bytes(path, b"x"),
                lambda path=path: volume.mkdir(path),
                lambda path=path: volume.mkdir(path, parents=True),
                lambda path=path: volume.open(path, "wb").close(),
                lambda path=path: volume.read_bytes(path),
                lambda path=path: volume.listdir(path),
                lambda path=path: volume.rename("/D/Keep", path),
                lambda path=path: volume.remove(path),
            ):
                with pytest.raises(errors.OptvolError) as caught:
                    action()
                assert caught.value.exit_code == 2, (path, caught.value)
        assert volume.listdir("/") == ["D"] and volume.listdir("/D") == ["Keep"]
    assert _snap(tmp_path, lib) == before


def test_api_refuses_case_only_duplicates(lib, tmp_path):
    with lib.open("PVOL1") as volume:
        with pytest.raises(errors.ExistsError):
            volume.write_bytes("/D/KEEP", b"other", replace=False)
        with pytest.raises(errors.ExistsError):
            volume.mkdir("/d")
        volume.mkdir("/Sub")
        with pytest.raises(errors.ExistsError):
            volume.mkdir("/SUB")
        with pytest.raises(errors.NotAllowedError):  # OPV0108: a directory has that name
            volume.write_bytes("/sub", b"a file over a directory's name")
        volume.write_bytes("/D/Other", b"o")
        with pytest.raises(errors.ExistsError):
            volume.rename("/D/Other", "/D/KEEP")
        # A write with replace makes a new version of the one file, never a second file.
        volume.write_bytes("/D/KEEP", b"replaced")
        assert [n.upper() for n in volume.listdir("/D")] == ["KEEP", "OTHER"]
        assert volume.read_bytes("/d/keep") == b"replaced"


def test_api_refuses_bad_volume_ids(lib, tmp_path):
    before = _snap(tmp_path, lib)
    for vol in BAD_IDS:
        for action in (
            lambda vol=vol: inzopt(lib, vol=vol, now=lib._clock()),
            lambda vol=vol: inzopt(lib, vol="PVOL1", newvol=vol or " ", check=False, now=lib._clock()),
            lambda vol=vol: lib.open(vol),
            lambda vol=vol: lib.rename("PVOL1", vol),
        ):
            with pytest.raises(errors.OptvolError) as caught:
                action()
            assert caught.value.exit_code == 2, (vol, caught.value)
    assert lib.volume_ids() == ["PVOL1"]
    assert _snap(tmp_path, lib) == before


def _shell_cases(tmp_path) -> list[tuple[tuple[str, ...], int]]:
    host = str(tmp_path / "host" / "src.txt")
    cases = []
    for path in BAD_PATHS:
        if not path.startswith("/"):
            continue
        qopt = "/QOPT/PVOL1" + path
        cases += [
            (("cp", host, qopt), 2), (("mkdir", qopt), 2), (("mkdir", "-p", qopt), 2), (("cat", qopt), 2),
            (("ls", qopt), 2), (("rm", qopt), 2), (("mv", "/QOPT/PVOL1/D/Keep", qopt), 2),
            (("chattr", qopt, "--readonly", "yes"), 2),
            (("dspopt", "PVOL1", "--data", "*FILATR", "--path", path), 2),
        ]
    for vol in BAD_IDS:
        cases += [
            (("inzopt", vol), 2), (("inzopt", "PVOL1", "--newvol", vol, "--check", "*NO"), 2),
            (("dspopt", vol), 2), (("chkoptvol", vol), 2), (("dupopt", "PVOL1", vol), 2),
        ]
        if "/" not in vol and vol.strip():
            cases.append((("cp", host, f"/QOPT/{vol}/X"), 2))
    cases += [
        (("cp", host, "/QOPT/PVOL1/D/KEEP", "--replace", "*NO"), 4),
        (("mkdir", "/QOPT/PVOL1/d"), 4),
        (("cp", host, "/QOPT/../X"), 2),
        (("cp", host, "/QOPT/PVOL1/D/" + "x" * 300), 2),
    ]
    return cases


def test_shell_commands(lib, tmp_path):
    before = _snap(tmp_path, lib)
    for args, code in _shell_cases(tmp_path):
        result = run_cli(lib.root, *args)
        assert result.rc == code, (args, result.rc, result.err)
        assert result.err.startswith("optvol: ") and result.err.count("\n") == 1, (args, result.err)
        assert result.out == b"", args
    assert _snap(tmp_path, lib) == before


def _cl_cases() -> list[tuple[str, int]]:
    cases = []
    for path in BAD_PATHS:
        if not path.startswith("/") or "\x00" in path or "'" in path:
            continue
        quoted = "'/QOPT/PVOL1" + path + "'"
        cases += [(f"CRTDIR DIR({quoted})", 2), (f"RMVLNK OBJLNK({quoted})", 2),
                  (f"CPY OBJ('/QOPT/PVOL1/D/Keep') TOOBJ({quoted})", 2),
                  (f"MOV OBJ('/QOPT/PVOL1/D/Keep') TOOBJ({quoted})", 2)]
    for name in ("..", ".", "../X", "a\x01b", "x" * 300, "A*B"):
        cases.append((f"RNM OBJ('/QOPT/PVOL1/D/Keep') NEWOBJ('{name}')", 2))
    for vol in BAD_IDS:
        if "\x00" in vol or "'" in vol:
            continue
        cases += [(f"INZOPT VOL('{vol}')", 2), (f"INZOPT VOL(PVOL1) NEWVOL('{vol}') CHECK(*NO)", 2),
                  (f"CHKOPTVOL VOL('{vol}')", 2), (f"DUPOPT FROMVOL(PVOL1) TOVOL('{vol}')", 2),
                  (f"CVTOPTBKU BKUVOL(PVOL1) PRIVOL('{vol}')", 2)]
    cases += [("INZOPT VOL(../X)", 2), ("INZOPT VOL(A/B)", 2), ("CRTDIR DIR('/QOPT/PVOL1/d')", 4),
              ("CRTDIR DIR('/QOPT/PVOL1/\x00')", 2), ("CRTDIR DIR('/QOPT/PVOL1/a\x01b')", 2)]
    return cases


def test_host_targets_inside_the_library_are_refused(lib, tmp_path):
    """cp, mv, CPY and export-iso never write a host path inside the library: a copy over a
    volume's data partition (a backup's, say) would bypass every rule. Through a symbolic
    link to the library too."""
    make_volume(lib, "BVOL1", type=VolumeType.BACKUP)
    (tmp_path / "link").symlink_to(lib.root)
    targets = [lib.root / "BVOL1.optvol" / "data.opv", lib.root / "PVOL1.optvol" / "index.sqlite",
               lib.root / "NEW.optvol", lib.root, tmp_path / "link" / "x"]
    before = tree_snapshot(lib.root)
    for target in targets:
        for args in (("cp", "/QOPT/PVOL1/D/Keep", target), ("cp", "-r", "/QOPT/PVOL1/D", target),
                     ("export-iso", "PVOL1", target), ("cl", f"CPY OBJ('/QOPT/PVOL1/D/Keep') TOOBJ('{target}')")):
            result = run_cli(lib.root, *args)
            assert result.rc == 2, (args, result.err)
            assert "OPV0302" in result.err and "inside the library" in result.err, (args, result.err)
    assert tree_snapshot(lib.root) == before
    outside = tmp_path / "host" / "Keep"
    assert run_cli(lib.root, "cp", "/QOPT/PVOL1/D/Keep", outside).rc == 0 and outside.read_bytes() == b"keep"


def test_a_host_target_through_a_bind_mount_of_the_library_is_refused(lib, tmp_path):
    """A hunt of session 19: the library reached by another name than its own (a bind mount
    here; another case of its name on a case-insensitive file system is the same) passed the
    check by name, and a cp over a volume's data partition destroyed the volume. The check
    knows a library's directory by its marker file (on exFAT through FUSE each spelling of
    a name has an inode number of its own: checked by hand in session 19)."""
    make_volume(lib, "BVOL1", type=VolumeType.BACKUP)
    alias = tmp_path / "alias"
    alias.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(lib.root), str(alias)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount --bind is not allowed here: {mounted.stderr.decode().strip()}")
    try:
        before = tree_snapshot(lib.root)
        for target in (alias / "BVOL1.optvol" / "data.opv", alias / "NEW" / "x"):
            for args in (("cp", "--replace", "*YES", "/QOPT/PVOL1/D/Keep", target), ("cp", "-r", "/QOPT/PVOL1/D", target),
                         ("export-iso", "PVOL1", target)):
                result = run_cli(lib.root, *args)
                assert result.rc == 2 and "OPV0302" in result.err and "inside the library" in result.err, (args, result.err)
        assert tree_snapshot(lib.root) == before
    finally:
        subprocess.run(["umount", str(alias)], check=True)
    # One image directory mounted alone (review 2 of session 19): no library marker above it.
    subprocess.run(["mount", "--bind", str(lib.root / "BVOL1.optvol"), str(alias)], check=True)
    try:
        result = run_cli(lib.root, "cp", "--replace", "*YES", "/QOPT/PVOL1/D/Keep", alias / "data.opv")
        assert result.rc == 2 and "inside the library" in result.err, result.err
        assert tree_snapshot(lib.root) == before
    finally:
        subprocess.run(["umount", str(alias)], check=True)


def test_a_copy_to_the_host_never_replaces_a_file_it_wrote_itself(lib, tmp_path):
    """A hunt of session 19: cp -r to a host that folds names the volume keeps apart (σ and
    ς on exFAT) wrote both to one host file, said both were copied, exit 0: one was lost.
    A copy never replaces a file it made itself: two sources of one name are refused
    before anything is copied (a folding host: test_a_copy_onto_a_host_that_folds_names)."""
    with lib.open("PVOL1") as volume:
        volume.mkdir("/E")
        volume.write_bytes("/E/Keep", b"the other keep")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(lib.root, "cp", "/QOPT/PVOL1/D/Keep", "/QOPT/PVOL1/E/Keep", out)
    assert result.rc == 2 and "OPV0302" in result.err and "two sources have this name" in result.err, result.err
    assert not (out / "Keep").exists()  # refused before anything is copied
    (out / "Keep").write_bytes(b"the user's own")  # a file the command did not write is replaced, as before
    assert run_cli(lib.root, "cp", "/QOPT/PVOL1/E/Keep", out).rc == 0 and (out / "Keep").read_bytes() == b"the other keep"


def test_a_volume_tree_whose_paths_would_not_fit_the_target_is_refused_before_copying(lib):
    """A hunt of session 19: cp -r and mv from one volume to another stopped at the first path
    too long for the target (CPF1F48), with hundreds of files already copied there. A tree
    from a volume is measured first, as one from the host is; nothing reaches the target."""
    make_volume(lib, "PVOL2")
    deep = "/T/B/" + "z/" * 121
    with lib.open("PVOL1") as volume:
        volume.mkdir(deep.rstrip("/"), parents=True)
        volume.write_bytes(deep + "f", b"deep")
        volume.mkdir("/T/A")
        with volume.batch():  # more than one batch of the copy (transfer.BATCH_FILES) comes before the deep path
            for n in range(transfer.BATCH_FILES + 100):
                volume.write_bytes(f"/T/A/a{n}", b"a")
    with lib.open("PVOL2") as target:
        target.mkdir("/LONGPREFIX")
    for command in ("cp", "mv"):
        result = run_cli(lib.root, command, *(["-r"] if command == "cp" else []), "/QOPT/PVOL1/T", "/QOPT/PVOL2/LONGPREFIX/")
        assert result.rc == 2 and "CPF1F48" in result.err, (command, result.err)
        with lib.open("PVOL2") as target:
            assert target.listdir("/LONGPREFIX") == []
    with lib.open("PVOL1") as volume:
        assert volume.read_bytes(deep + "f") == b"deep" and len(volume.listdir("/T/A")) == transfer.BATCH_FILES + 100
    assert run_cli(lib.root, "cp", "-r", "/QOPT/PVOL1/T", "/QOPT/PVOL2/").rc == 0  # it fits there


def test_a_volume_tree_with_a_name_the_target_format_refuses_is_refused_before_copying(lib):
    """Review 3 of session 19: a UDF tree holding 'z-name' (HPOFS refuses '-') copied onto an
    HPOFS volume failed with CPF1F21 when it got there, with every batch before it already
    on the target. Between media formats every name is measured first."""
    from optvol.model import MediaFormat, MediaType

    make_volume(lib, "UVOL", medtype=MediaType.ERASE, medfmt=MediaFormat.UDF)
    with lib.open("UVOL") as volume:
        volume.mkdir("/T/A", parents=True)
        with volume.batch():
            for n in range(transfer.BATCH_FILES + 100):
                volume.write_bytes(f"/T/A/a{n}", b"a")
        volume.mkdir("/T/B")
        volume.write_bytes("/T/B/z-name", b"z")
    result = run_cli(lib.root, "cp", "-r", "/QOPT/UVOL/T", "/QOPT/PVOL1/")
    assert result.rc == 2 and "CPF1F21" in result.err, result.err
    with lib.open("PVOL1") as target:
        assert not target.exists("/T")


def test_a_volume_tree_with_a_name_the_host_cannot_hold_is_refused_before_copying(lib, tmp_path):
    """A hunt of session 19: 200 characters of é are a valid name on a volume but 400 bytes,
    past the host's 255: cp -r and mv to the host stopped there, with part of the tree
    copied and the rest neither copied nor named. The names are measured first."""
    with lib.open("PVOL1") as volume:
        volume.mkdir("/T")
        for n in range(5):
            volume.write_bytes(f"/T/a{n}", b"a")
        volume.write_bytes("/T/" + "é" * 200, b"a long name")
    for command in ("cp", "mv"):
        out = tmp_path / f"out-{command}"
        out.mkdir()
        result = run_cli(lib.root, command, *(["-r"] if command == "cp" else []), "/QOPT/PVOL1/T", out)
        assert result.rc == 2 and "OPV0302" in result.err and "too long for the host (400 bytes" in result.err, result.err
        assert list(out.iterdir()) == []
    with lib.open("PVOL1") as volume:
        assert len(volume.listdir("/T")) == 6


def test_two_sources_of_one_name_onto_a_volume_are_refused_before_copying(lib):
    """Review 4 of session 19: cp a/x b/x /QOPT/V/d/ said both were copied, and the second
    replaced the first (x and X too: one name on a volume). Refused before copying."""
    with lib.open("PVOL1") as volume:
        volume.mkdir("/E")
        volume.mkdir("/T")
        volume.write_bytes("/E/KEEP", b"the other keep")
        volume.mkdir("/E/D")
        volume.write_bytes("/E/D/Keep", b"the other tree's keep")
    for args in (("/QOPT/PVOL1/D/Keep", "/QOPT/PVOL1/E/KEEP"), ("-r", "/QOPT/PVOL1/D", "/QOPT/PVOL1/E/D")):
        result = run_cli(lib.root, "cp", *args, "/QOPT/PVOL1/T/")  # trees too (review 6: a merge copied Keep twice)
        assert result.rc == 2 and "OPV0008" in result.err and "two sources have the name" in result.err, result.err
        with lib.open("PVOL1") as volume:
            assert volume.listdir("/T") == []


def test_two_sources_of_one_name_for_the_host_are_refused_and_others_copied(lib, tmp_path):
    """Review 5 of session 19: the check compared names by identity (``is``), and Python keeps
    one object per one-character string: two sources named x (files or trees) passed, and
    the second replaced the first. Names near 255 characters that the host keeps apart
    (b and B on ext4) were refused: the probe file of a long name did not fit. One host file
    named twice (relative and absolute) onto a volume is copied once."""
    with lib.open("PVOL1") as volume:
        for d in ("P", "Q"):
            volume.mkdir(f"/{d}/d", parents=True)
            volume.write_bytes(f"/{d}/x", d.encode())
            volume.write_bytes(f"/{d}/d/f", d.encode())
        volume.write_bytes("/P/" + "b" * 250, b"lower")
        volume.write_bytes("/Q/" + "B" * 250, b"upper")
    for args in (("cp", "/QOPT/PVOL1/P/x", "/QOPT/PVOL1/Q/x"), ("cp", "-r", "/QOPT/PVOL1/P/d", "/QOPT/PVOL1/Q/d")):
        out = tmp_path / f"out-{len(args)}"
        out.mkdir()
        result = run_cli(lib.root, *args, out)
        assert result.rc == 2 and "two sources have this name" in result.err, (args, result.err)
        assert list(out.iterdir()) == []
    out = tmp_path / "long"
    out.mkdir()
    result = run_cli(lib.root, "cp", "/QOPT/PVOL1/P/" + "b" * 250, "/QOPT/PVOL1/Q/" + "B" * 250, out)
    assert result.rc == 0, result.err
    assert sorted(p.read_bytes() for p in out.iterdir()) == [b"lower", b"upper"]
    source = tmp_path / "host" / "src.txt"
    result = run_cli(lib.root, "cp", os.path.relpath(source), source, "/QOPT/PVOL1/D/")
    assert result.rc == 0, result.err
    (tmp_path / "host" / "link.txt").symlink_to(source)  # another name of it: copied too (review 6)
    run_cli(lib.root, "mkdir", "/QOPT/PVOL1/E")
    result = run_cli(lib.root, "cp", source, tmp_path / "host" / "link.txt", "/QOPT/PVOL1/E/")
    assert result.rc == 0, result.err
    with lib.open("PVOL1") as volume:
        assert volume.read_bytes("/D/src.txt") == b"host file"
        assert sorted(volume.listdir("/E")) == ["link.txt", "src.txt"]
    # Review 7: lnk/../x is the x beside lnk's target, another file of that name (refused,
    # not dropped as a second naming of ./x); and names that differ where one has "." and
    # the other a fullwidth "．" are two names on ext4 (copied, not refused).
    (tmp_path / "other" / "dir").mkdir(parents=True)
    (tmp_path / "other" / "x").write_bytes(b"the other x")
    (tmp_path / "host" / "lnk").symlink_to(tmp_path / "other" / "dir")
    (tmp_path / "host" / "x").write_bytes(b"this x")
    result = run_cli(lib.root, "cp", tmp_path / "host" / "x", f"{tmp_path / 'host' / 'lnk'}/../x", "/QOPT/PVOL1/E/")
    assert result.rc == 2 and "two sources have the name" in result.err, result.err
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/P/report.txt", b"dot")
        volume.write_bytes("/Q/report．txt", b"fullwidth")
    out = tmp_path / "dots"
    out.mkdir()
    result = run_cli(lib.root, "cp", "/QOPT/PVOL1/P/report.txt", "/QOPT/PVOL1/Q/report．txt", out)
    assert result.rc == 0 and sorted(p.name for p in out.iterdir()) == ["report.txt", "report．txt"], result.err


def test_a_link_below_a_host_target_into_the_library_is_refused(lib, tmp_path):
    """The target directory is outside the library, but a directory of the tree copied is a
    symbolic link into a backup volume: cp -r and CPY SUBTREE(*ALL) refuse it before they
    write there, and the backup's data partition stays as it was."""
    make_volume(lib, "BVOL1", type=VolumeType.BACKUP)
    with lib.open("PVOL1") as volume:
        volume.mkdir("/T/SUB", parents=True)
        volume.write_bytes("/T/SUB/data.opv", b"a user's file named like a data partition")
        volume.write_bytes("/T/SUB/index.sqlite", b"and one named like an index")
        volume.mkdir("/T/SUB/DEEPER/NEW.optvol", parents=True)
    backup = lib.root / "BVOL1.optvol"
    for args in (("cp", "-r", "/QOPT/PVOL1/T", "{out}"),
                 ("cl", "CPY OBJ('/QOPT/PVOL1/T') TOOBJ('{out}') SUBTREE(*ALL)")):
        out = tmp_path / f"out-{args[0]}"
        (out / "T").mkdir(parents=True)
        (out / "T" / "SUB").symlink_to(backup)  # the file level: SUB/data.opv is the backup's
        before = tree_snapshot(lib.root)
        result = run_cli(lib.root, *(a.format(out=out) for a in args))
        # (any link below the target is refused since hunt28d F2, before the library is asked)
        assert result.rc == 2 and "OPV0302" in result.err and "symbolic link" in result.err, (args, result.err)
        assert tree_snapshot(lib.root) == before
        (out / "T" / "SUB").unlink()
        (out / "T" / "SUB").mkdir()
        (out / "T" / "SUB" / "DEEPER").symlink_to(lib.root)  # the directory level: a tree made inside
        result = run_cli(lib.root, *(a.format(out=out) for a in args))
        assert result.rc == 2 and "OPV0302" in result.err, (args, result.err)
        assert not (lib.root / "NEW.optvol").exists() and tree_snapshot(lib.root) == before
    assert [r.damaged for r in chkoptvol(lib, vol="BVOL1")] == [[]]


def test_a_host_name_that_is_not_utf8_is_refused_as_a_volume_name(lib, tmp_path):
    """A host file named in Latin-1 (café as bytes): Python hands its name over with an
    escape that is no character, which no volume name may hold. cp refuses it (CPF1F48;
    in a tree OPV0302 naming the host file, before anything is copied; exit 2) where it
    gave a traceback, and writes nothing of it."""
    tree = tmp_path / "tree"
    tree.mkdir()
    os.makedirs(os.fsencode(tree) + b"/sub", exist_ok=True)
    with open(os.fsencode(tree) + b"/sub/caf\xe9.txt", "wb") as handle:
        handle.write(b"latin-1 name")
    for args in (("cp", "-r", tree, "/QOPT/PVOL1/"), ("cp", os.fsdecode(os.fsencode(tree) + b"/sub/caf\xe9.txt"),
                                                     "/QOPT/PVOL1/")):
        result = run_cli(lib.root, *args)
        assert result.rc == 2 and ("CPF1F48" if len(args) == 3 else "OPV0302") in result.err, (args, result.err)
        assert "not valid text" in result.err
        assert "Traceback" not in result.err
    with lib.open("PVOL1") as volume:
        assert not any("caf" in f.path for f in volume.iter_files("/", recursive=True))


def test_cl_front_door(lib, tmp_path):
    before = _snap(tmp_path, lib)
    for text, code in _cl_cases():
        result = run_cli(lib.root, "cl", text)
        assert result.rc == code, (text, result.rc, result.err)
        assert "Traceback" not in result.err
    assert _snap(tmp_path, lib) == before


def test_real_processes_never_trace_back(lib, tmp_path):
    """A few cases through ``python -m optvol`` itself (argv cannot carry NUL)."""
    before = _snap(tmp_path, lib)
    for args in (["inzopt", "../X"], ["mkdir", "/QOPT/PVOL1/../../ESCAPE"], ["cl", "INZOPT VOL('A/B')"],
                 ["cp", str(tmp_path / "host" / "src.txt"), "/QOPT/PVOL1/A\x1bB"]):
        done = subprocess.run([sys.executable, "-m", "optvol", "--library", str(lib.root), *args],
                              capture_output=True, timeout=60, cwd=tmp_path / "host")
        assert done.returncode == 2, (args, done.stderr)
        assert b"Traceback" not in done.stderr
    assert _snap(tmp_path, lib) == before


def test_a_copy_onto_a_host_that_folds_names_never_replaces_its_own(lib, exfat):
    """Reviews of session 19: directories σ and ς (a volume keeps them apart; exFAT takes
    them for one) copied into a directory that was there: the second's f replaced the
    first's, both reported copied, exit 0. The copy knows what it made by name, by fold,
    where the host folds names (asked once, with a probe file); it refuses the second."""
    with lib.open("PVOL1") as volume:
        for name, data in (("σ", b"one"), ("ς", b"two")):
            volume.mkdir(f"/X/{name}", parents=True)
            volume.write_bytes(f"/X/{name}/f", data)
        volume.write_bytes("/X/fσ", b"file one")
        volume.write_bytes("/X/fς", b"file two")
    cases = [("cp", "-r", "/QOPT/PVOL1/X/σ", "/QOPT/PVOL1/X/ς", "{out}"), ("cp", "-r", "/QOPT/PVOL1/X/", "{out}"),
             ("cp", "/QOPT/PVOL1/X/fσ", "/QOPT/PVOL1/X/fς", "{out}")]
    for n, args in enumerate(cases):
        out = exfat / f"out{n}"
        out.mkdir()  # there before the copy
        for _ in range(2):  # and again, over what the first copy left (review 4 of session 19)
            result = run_cli(lib.root, *(a.format(out=out) for a in args))
            assert result.rc == 2 and "OPV0302" in result.err and " for one" in result.err, (args, result.err)
            kept = sorted(p.read_bytes() for p in out.rglob("*") if p.is_file())
            assert kept in ([], [b"one"], [b"file one"], [b"file one", b"one"]), (args, kept)
    with lib.open("PVOL1") as volume:
        assert volume.read_bytes("/X/ς/f") == b"two"


def test_a_name_a_host_holds_in_characters_is_copied_to_it(lib, exfat):
    """Review 3 of session 19: exFAT allows 255 characters, and says NAME_MAX 255, which the
    measure before cp -r took for bytes: 200 characters of é (400 bytes) were refused there
    although the host makes them. A name past NAME_MAX in bytes is tried on the host."""
    long_name = "é" * 200
    with lib.open("PVOL1") as volume:
        volume.mkdir("/T")
        volume.write_bytes(f"/T/{long_name}", b"a long name")
    result = run_cli(lib.root, "cp", "-r", "/QOPT/PVOL1/T", exfat / "out")
    assert result.rc == 0, result.err
    assert (exfat / "out" / long_name).read_bytes() == b"a long name"
    assert sorted(p.name for p in exfat.iterdir()) == ["out"]  # no probe left behind


def test_a_name_with_a_character_the_host_cannot_hold_is_refused_before_anything_is_copied(lib, exfat):
    """A volume (HPOFS) allows ":" and "|" in names, exFAT does not: cp -r to exFAT copied
    a.txt, then stopped at b:c with exit 2 and "No such file or directory" (exfat-fuse's
    answer), z.txt neither copied nor named. A character outside letters, digits and
    "._- " is tried on the host once (a probe file), before anything is copied or moved."""
    with lib.open("PVOL1") as volume:
        volume.mkdir("/T")
        for name in ("a.txt", "b:c", "x|y", "z.txt", "é"):
            volume.write_bytes(f"/T/{name}", name.encode())
    for args in (("cp", "-r", "/QOPT/PVOL1/T", "{out}"), ("cp", "/QOPT/PVOL1/T/a.txt", "/QOPT/PVOL1/T/b:c", "{out}"),
                 ("mv", "/QOPT/PVOL1/T/a.txt", "/QOPT/PVOL1/T/x|y", "{out}")):
        out = exfat / "out"
        out.mkdir()
        result = run_cli(lib.root, *(a.format(out=out) for a in args))
        assert result.rc == 2 and "OPV0302" in result.err and "cannot hold the character" in result.err, (args, result.err)
        assert "nothing was copied" in result.err and list(out.iterdir()) == [], (args, result.err)
        out.rmdir()
    assert sorted(p.name for p in exfat.iterdir()) == []  # no probe left behind
    with lib.open("PVOL1") as volume:
        assert sorted(volume.listdir("/T")) == sorted(["a.txt", "b:c", "x|y", "z.txt", "é"])
        volume.remove("/T/b:c")
        volume.remove("/T/x|y")
    result = run_cli(lib.root, "cp", "-r", "/QOPT/PVOL1/T", exfat / "out")
    assert result.rc == 0 and sorted(p.name for p in (exfat / "out").iterdir()) == ["a.txt", "z.txt", "é"]


def test_names_a_host_keeps_apart_are_copied_to_it(lib, exfat):
    """Review 4 of session 19: the copy compared names by Python's fold (NFKC, casefold),
    wider than exFAT's: ß and ẞ, s and ſ, which exFAT keeps apart, were refused. Whether the
    host takes two names for one is asked of the host."""
    pairs = [("ß", "ẞ"), ("s", "ſ")]
    with lib.open("PVOL1") as volume:
        volume.mkdir("/K")
        for first, second in pairs:
            volume.write_bytes(f"/K/{first}", first.encode())
            volume.write_bytes(f"/K/{second}", second.encode())
    (exfat / "out").mkdir()
    for _ in range(2):  # and again, over the first copy
        result = run_cli(lib.root, "cp", "-r", "/QOPT/PVOL1/K", exfat / "out")
        assert result.rc == 0, result.err
        assert sorted(p.read_text() for p in (exfat / "out" / "K").iterdir()) == sorted(n for pair in pairs for n in pair)


def test_a_move_of_two_names_a_host_takes_for_one_is_refused_before_anything_moves(lib, exfat):
    """Review 5 of session 19: mv of σ and ς onto exFAT moved σ (deleting it from the volume),
    then refused ς. Refused before anything moves, as cp is."""
    with lib.open("PVOL1") as volume:
        for name in ("σ", "ς"):
            volume.write_bytes(f"/D/{name}", name.encode())
    result = run_cli(lib.root, "mv", "/QOPT/PVOL1/D/σ", "/QOPT/PVOL1/D/ς", exfat)
    assert result.rc == 2 and "OPV0302" in result.err, result.err
    assert list(exfat.iterdir()) == []
    with lib.open("PVOL1") as volume:
        assert volume.read_bytes("/D/σ") == "σ".encode() and volume.read_bytes("/D/ς") == "ς".encode()


def test_long_names_a_host_takes_for_one_are_refused(lib, exfat):
    """Review 6 of session 19: the probe file of two names that differ over 240 characters
    did not fit, and "could not ask" was taken for "different": a*240 and A*240 (one name
    on exFAT) were both copied, the second over the first. The probe is made alone in a
    directory of its own, under the part of the names that differs."""
    with lib.open("PVOL1") as volume:
        volume.write_bytes("/D/" + "a" * 240, b"first")
        volume.mkdir("/E")
        volume.write_bytes("/E/" + "A" * 240, b"second")
    result = run_cli(lib.root, "cp", "/QOPT/PVOL1/D/" + "a" * 240, "/QOPT/PVOL1/E/" + "A" * 240, exfat)
    assert result.rc == 2 and "two sources have this name" in result.err, result.err
    assert list(exfat.iterdir()) == []


@pytest.mark.parametrize("unnamed", [True, False])
def test_ctrl_c_just_after_a_host_file_is_put_in_place_is_an_interrupt(lib, tmp_path, monkeypatch, unnamed):
    """Review s20b: Ctrl-C landing just after the rename that puts a copied file in place
    made the cleanup unlink the temporary file, gone by then: FileNotFoundError, exit 70
    with a traceback. The interrupt ends the copy, and the file is whole in its place
    (a file made without a name and linked there, or one renamed from a hidden name)."""
    from optvol import host_names, transfer

    with lib.open("PVOL1") as volume:
        volume.write_bytes("/F", b"whole")
    real = host_names.put_in_place

    def put_then_interrupted(fd, temporary, target):
        assert (temporary is None) == unnamed
        real(fd, temporary, target)
        raise KeyboardInterrupt

    monkeypatch.setattr(host_names, "put_in_place", put_then_interrupted)
    if not unnamed:
        monkeypatch.setattr(host_names, "_unnamed_file", lambda directory, mode: None)
    with tmpfs(tmp_path / "out", "1M") as out:  # (a file system that makes files without a name)
        with pytest.raises(KeyboardInterrupt):
            list(transfer.copy(lib, ["/QOPT/PVOL1/F"], str(out / "F")))
        assert (out / "F").read_bytes() == b"whole" and sorted(p.name for p in out.iterdir()) == ["F"]


def test_names_with_any_character_a_host_holds_are_copied_there_without_a_trace(lib, tmp_path):
    """The characters tried on the host before a copy (``HostCharacters``) refuse only what
    the host refuses: on this file system ':' and '|', punctuation and names of
    any script are copied, and no probe stays in the target."""
    names = ["b:c", "x|y", "日本", "é.txt", "σς", "a+b=c,d;e"]
    with lib.open("PVOL1") as volume:
        volume.mkdir("/T")
        for name in names:
            volume.write_bytes(f"/T/{name}", name.encode())
    target = tmp_path / "target"
    target.mkdir()
    result = run_cli(lib.root, "cp", "-r", "/QOPT/PVOL1/T", target)
    assert result.rc == 0, result.err
    assert sorted(p.name for p in (target / "T").iterdir()) == sorted(names)  # nothing else: no probe stays
    assert all((target / "T" / name).read_bytes() == name.encode() for name in names)
    assert [p.name for p in target.iterdir()] == ["T"]
