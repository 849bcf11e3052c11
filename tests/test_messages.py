"""docs/messages.md and errors.MESSAGES agree, and src/ uses only listed message IDs (DESIGN §1, §4)."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from optvol import errors
from optvol.errors import MESSAGES

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "messages.md"
SRC = ROOT / "src" / "optvol"
ID = r"(?:CPF1F[0-9A-F]{2}|OPT\d{4}|OPV\d{4})"
ID_IN_TEXT = re.compile(rf"(?<![A-Za-z0-9]){ID}(?![A-Za-z0-9])")
DESIGN_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 70}


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[\s\-|:]+\|", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def documented_messages() -> dict[str, list[str]]:
    """ID -> row cells of the message table in docs/messages.md."""
    rows = [r for r in _table_rows(DOC.read_text(encoding="utf-8")) if re.fullmatch(ID, r[0])]
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "an ID is listed twice"
    return {r[0]: r for r in rows}


def test_doc_lists_exactly_the_ids_of_messages():
    assert set(documented_messages()) == set(MESSAGES)


@pytest.mark.parametrize("message_id", sorted(MESSAGES))
def test_doc_row_gives_exit_code_family_and_text(message_id):
    row = documented_messages()[message_id]
    message = MESSAGES[message_id]
    assert int(row[1]) == message.family.exit_code
    assert row[2] == message.family.__name__
    assert row[3] == message.template
    assert len(row) == 5 and row[4], "the 'when' column is empty"


def test_doc_has_the_exit_code_table_of_design():
    codes = {int(r[0]) for r in _table_rows(DOC.read_text(encoding="utf-8")) if re.fullmatch(r"\d+", r[0])}
    assert codes == DESIGN_EXIT_CODES


def test_every_family_has_a_design_exit_code():
    families = {m.family for m in MESSAGES.values()}
    assert {f.exit_code for f in families} <= DESIGN_EXIT_CODES - {0, 70}
    assert all(issubclass(f, errors.OptvolError) for f in families)


def _string_constants() -> list[tuple[Path, int, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((path, node.lineno, node.value))
    return found


def test_every_message_id_in_src_is_listed():
    used = {(p.relative_to(SRC).as_posix(), line, m) for p, line, text in _string_constants() for m in ID_IN_TEXT.findall(text)}
    assert used, "no message IDs found: the scan is broken"
    assert sorted(u for u in used if u[2] not in MESSAGES) == []


def test_id_pattern_ignores_placeholders():
    assert ID_IN_TEXT.findall("IBM's IDs (CPF1Fxx, OPT1542, OPT0125) and OPV0001.") == ["OPT1542", "OPT0125", "OPV0001"]


def _error_calls():
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if name == "error" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield path.relative_to(SRC).as_posix(), node.lineno, first.value, node.keywords


def test_every_error_call_fills_exactly_its_template_fields():
    """A missing field would turn a clean error into a KeyError (exit 70)."""
    problems = []
    calls = list(_error_calls())
    assert len(calls) > 20
    for where, line, message_id, keywords in calls:
        if message_id not in MESSAGES:
            problems.append((where, line, message_id, "unknown ID"))
            continue
        if any(k.arg is None for k in keywords):
            continue  # **fields: checked at run time
        wanted = {f.split("!")[0].split(":")[0] for _, f, _, _ in string.Formatter().parse(MESSAGES[message_id].template) if f}
        given = {k.arg for k in keywords}
        if wanted != given:
            problems.append((where, line, message_id, sorted(wanted ^ given)))
    assert problems == []


def test_message_ids_are_well_formed_and_texts_format():
    for message_id, message in MESSAGES.items():
        assert re.fullmatch(ID, message_id)
        fields = {f.split("!")[0] for _, f, _, _ in string.Formatter().parse(message.template) if f}
        error = errors.error(message_id, **{f: "x" for f in fields})
        assert isinstance(error, message.family)
        assert error.message_id == message_id and "{" not in error.text


PATH_FIELDS = {"path", "library", "topath", "frompath", "name"}  # host and volume paths, names as typed


@pytest.mark.parametrize("message_id", sorted(MESSAGES))
def test_no_path_can_break_the_one_line_of_an_error(message_id):
    """DESIGN §4: an error is one line on stderr. A path comes from the user or the host and
    may hold a newline: every template quotes it (``{path!r}``), a host path given as a Path too."""
    fields = {f.split("!")[0] for _, f, _, _ in string.Formatter().parse(MESSAGES[message_id].template) if f}
    for value in ("/a\nb/c", Path("/host\ndir/lib")):
        error = errors.error(message_id, **{f: value if f in PATH_FIELDS else "x" for f in fields})
        assert "\n" not in error.text and "PosixPath" not in error.text, error.text
