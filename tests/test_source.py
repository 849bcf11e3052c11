"""Architecture rules of DESIGN §2 checked on the source (the idea of dulwich's tests/test_source.py).

Every module under ``src/optvol`` is parsed with ``ast`` (nothing is imported) and its
imports are checked against the layers:

    0 errors
    1 model, media
    2 image/*
    3 volume, volume_rows, volume_transaction, openfile, privileged, chunk_check
    4 library
    5 every other top-level module (initialize, change_volume, display, transfer, and
      later backup, copying, conversion, interchange, checking, duplicate, recovery, ...)
    6 cl/*
    7 cli/*, optvol/__init__.py, optvol/__main__.py

A module may import from its own layer or any layer below it; imports within one layer
are allowed (volume imports openfile, initialize could import display). Imports inside
functions count too. Further rules: no module imports pycdlib; only layer 7
reads the clock, the environment or argv; only copying.py and conversion.py call
``backup_writer``; only interchange.py calls ``mastering_writer`` (a module named
``copying``, ``conversion`` or ``interchange`` may also be a package of that name); no module is over 800
lines; only cli/ prints.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "optvol"
MAX_LINES = 800

FIXED_LAYERS = {
    "optvol.errors": 0,
    "optvol.model": 1,
    "optvol.case_fold": 1,
    "optvol.media": 1,
    "optvol.volume": 3,
    "optvol.volume_rows": 3,
    "optvol.openfile": 3,
    "optvol.privileged": 3,
    "optvol.chunk_check": 3,
    "optvol.volume_transaction": 3,
    "optvol.library": 4,
    "optvol": 7,
    "optvol.__main__": 7,
}
SUBPACKAGE_LAYERS = {"image": 2, "cl": 6, "cli": 7}


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. optvol.image.records
    path: Path
    tree: ast.Module
    lines: int

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    def is_part_of(self, *stems: str) -> bool:
        """Whether this is ``optvol/<stem>.py`` or a module of the package ``optvol/<stem>/``."""
        return any(self.name == f"optvol.{s}" or self.name.startswith(f"optvol.{s}.") for s in stems)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = module_name(path)
        modules[name] = Module(name, path, ast.parse(text, filename=str(path)), len(text.splitlines()))
    return modules


MODULES = load_modules()


def layer_of(name: str) -> int:
    """The layer of an optvol module (DESIGN §2); any other top-level module is layer 5."""
    if name in FIXED_LAYERS:
        return FIXED_LAYERS[name]
    parts = name.split(".")
    assert parts[0] == "optvol", name
    if parts[1] in SUBPACKAGE_LAYERS:
        return SUBPACKAGE_LAYERS[parts[1]]
    return 5


def _resolve(importer: Module, node: ast.ImportFrom) -> str:
    """The absolute module named by a ``from X import ...`` statement."""
    if node.level == 0:
        return node.module or ""
    package = importer.name.split(".")
    if not importer.is_package:
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imported_modules(module: Module, known: set[str]) -> set[str]:
    """The optvol modules ``module`` imports (``from optvol import x`` names module x if it exists)."""
    found: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "optvol" or alias.name.startswith("optvol."):
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            if base != "optvol" and not base.startswith("optvol."):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return found


def layer_violations(modules: dict[str, Module]) -> list[str]:
    known = set(modules)
    problems = []
    for module in modules.values():
        own = layer_of(module.name)
        for target in sorted(imported_modules(module, known)):
            if layer_of(target) > own:
                problems.append(f"{module.name} (layer {own}) imports {target} (layer {layer_of(target)})")
    return problems


def _calls(tree: ast.AST, name: str) -> list[int]:
    """Lines where ``name(...)`` or ``something.name(...)`` is called."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == name) or (isinstance(func, ast.Attribute) and func.attr == name):
                lines.append(node.lineno)
    return sorted(lines)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


# Wall clock, environment and argv: only layer 7 may touch them (DESIGN §2).
FORBIDDEN_ATTRIBUTES = {
    "datetime.now", "datetime.utcnow", "datetime.today", "date.today",
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
    "time.time", "time.time_ns", "time.localtime", "time.gmtime", "time.ctime",
    "os.environ", "os.environb", "os.getenv", "os.putenv", "sys.argv",
}
FORBIDDEN_FROM_IMPORTS = {("time", "time"), ("time", "time_ns"), ("os", "environ"), ("os", "getenv"), ("sys", "argv")}


def clock_and_environment_uses(tree: ast.AST) -> list[str]:
    # ``import time as clock`` must not hide ``clock.time()``: resolve the aliases first.
    aliases = {a.asname: a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.asname}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            dotted = None
        else:
            root, _, rest = _dotted(node).partition(".")
            dotted = f"{aliases.get(root, root)}.{rest}" if rest else aliases.get(root, root)
        if dotted in FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno}: {dotted}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_FROM_IMPORTS:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    return found


# --------------------------------------------------------------------- the checker works


def test_every_module_is_parsed_and_placed():
    assert {"optvol", "optvol.errors", "optvol.volume", "optvol.library", "optvol.cli", "optvol.cl.table"} <= set(MODULES)
    assert layer_of("optvol.errors") == 0
    assert layer_of("optvol.image.records") == 2
    assert layer_of("optvol.image") == 2
    assert layer_of("optvol.openfile") == 3
    assert layer_of("optvol.initialize") == 5
    assert layer_of("optvol.copying") == 5  # a future module
    assert layer_of("optvol.cl.values") == 6
    assert layer_of("optvol.cli.context") == 7
    assert layer_of("optvol.__main__") == 7


def test_checker_finds_an_upward_import():
    fake = Module("optvol.model", PACKAGE / "model.py", ast.parse("from optvol import library\nimport optvol.cli.context\n"), 2)
    known = set(MODULES)
    assert imported_modules(fake, known) == {"optvol.library", "optvol.cli.context"}
    assert len(layer_violations({"optvol.model": fake})) == 2


def test_checker_resolves_relative_imports():
    fake = Module("optvol.image.image", PACKAGE / "image" / "image.py", ast.parse("from . import records\nfrom ..volume import Volume\n"), 2)
    assert imported_modules(fake, set(MODULES)) == {"optvol.image.records", "optvol.volume"}


def test_checker_finds_clock_and_environment():
    source = "import os, time\nfrom datetime import datetime\nx = datetime.now()\ny = time.time()\nz = os.environ['A']\n"
    assert len(clock_and_environment_uses(ast.parse(source))) == 3
    assert len(clock_and_environment_uses(ast.parse("from time import time\nfrom os import environ\n"))) == 2
    assert len(clock_and_environment_uses(ast.parse("import time as clock\nx = clock.time()\n"))) == 1


def test_checker_tells_allowed_modules():
    assert MODULES["optvol.volume"].is_part_of("volume")
    assert not MODULES["optvol.volume"].is_part_of("copying", "conversion")
    fake = Module("optvol.interchange.iso_export", PACKAGE / "interchange" / "iso_export.py", ast.parse(""), 0)
    assert fake.is_part_of("interchange") and not fake.is_part_of("inter")


def test_checker_finds_calls():
    tree = ast.parse("with volume.backup_writer() as w:\n    pass\nbackup_writer()\n")
    assert _calls(tree, "backup_writer") == [1, 3]


# --------------------------------------------------------------------- the rules


def test_imports_respect_the_layers():
    assert layer_violations(MODULES) == []


def test_no_module_imports_pycdlib():
    """Every image is read and written by our own code (notes/pycdlib.md); pycdlib is a
    test dependency, a second reader of our images."""
    importers = set()
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n == "pycdlib" or n.startswith("pycdlib.") for n in names):
                importers.add(module.name)
    assert importers == set()


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer_of(n) < 7))
def test_only_layer_7_reads_clock_environment_or_argv(name):
    assert clock_and_environment_uses(MODULES[name].tree) == []


def test_backup_writer_is_called_only_by_copying_and_conversion():
    callers = {m.name: _calls(m.tree, "backup_writer") for m in MODULES.values()}
    callers = {name: lines for name, lines in callers.items() if lines}
    assert all(MODULES[name].is_part_of("copying", "conversion") for name in callers), callers


def test_mastering_writer_is_called_only_by_interchange():
    callers = {m.name: _calls(m.tree, "mastering_writer") for m in MODULES.values()}
    callers = {name: lines for name, lines in callers.items() if lines}
    assert all(MODULES[name].is_part_of("interchange") for name in callers), callers


def test_the_privileged_entry_points_exist():
    """The rules above would be empty promises if the entry points were renamed."""
    volume = MODULES["optvol.volume"].tree
    defined = {n.name for n in ast.walk(volume) if isinstance(n, ast.FunctionDef)}
    assert {"backup_writer", "mastering_writer"} <= defined


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_under_800_lines(name):
    assert MODULES[name].lines <= MAX_LINES


def test_only_cli_prints():
    """Layer 7 alone, and its launcher (``optvol.__main__``: a Ctrl-C before layer 7 is loaded)."""
    printers = {m.name: _calls(m.tree, "print") for m in MODULES.values()
                if not m.name.startswith("optvol.cli") and m.name != "optvol.__main__"}
    assert {name: lines for name, lines in printers.items() if lines} == {}
