"""The CL parser (layer 6): IBM CL syntax turned into a command and its typed values."""

from __future__ import annotations

from datetime import date, time

import pytest

from optvol import errors
from optvol.cl import parser, table


def values(text: str) -> tuple[str, dict]:
    """The command name and typed values of one CL command."""
    command, given = parser.parse(text)
    return command.name, command.parse_values(given)


def fails(text: str) -> errors.OptvolError:
    """The error a CL command raises; always exit code 2."""
    with pytest.raises(errors.InvalidError) as caught:
        values(text)
    assert caught.value.exit_code == 2
    return caught.value


# --------------------------------------------------------------------- keywords and positions


def test_keyword_form():
    name, got = values("CHGOPTVOL VOL(VOL01) THRESHOLD(99)")
    assert name == "CHGOPTVOL"
    assert got["VOL"] == "VOL01" and got["THRESHOLD"] == 99 and got["TEXT"] == "*SAME"


def test_positional_values_follow_the_table_positions():
    assert values("CHGOPTVOL VOL01 99 *NONE")[1] == {"VOL": "VOL01", "THRESHOLD": 99, "AUTL": "*NONE", "TEXT": "*SAME"}


def test_positional_then_keyword():
    assert values("DSPOPT PVOL1 DATA(*FILATR) PATH('/Dir1')")[1]["PATH"] == "/Dir1"


def test_keywords_in_any_order_and_case():
    got = values("chgoptvol threshold(80) vol(vol01)")[1]
    assert got["VOL"] == "VOL01" and got["THRESHOLD"] == 80


def test_parse_gives_texts_for_the_table_to_type():
    command, given = parser.parse("CHGOPTVOL VOL(vol01) THRESHOLD(99)")
    assert command is table.command("CHGOPTVOL")
    assert given == {"VOL": "VOL01", "THRESHOLD": "99"}


def test_no_blank_needed_after_a_closing_parenthesis():
    assert values("CHGOPTVOL VOL(VOL01)THRESHOLD(99)")[1]["THRESHOLD"] == 99


def test_library_qualified_command_name():
    assert values("QSYS/CHGOPTVOL VOL01 99")[0] == "CHGOPTVOL"


def test_ibm_aliases_name_the_same_command():
    assert parser.parse("DEL '/QOPT/V/F'")[0] is parser.parse("RMVLNK '/QOPT/V/F'")[0]
    assert parser.parse("MKDIR '/QOPT/V/D'")[0].name == "CRTDIR"
    assert parser.parse("RMDIR '/QOPT/V/D'")[0].name == "RMVDIR"


# --------------------------------------------------------------------- values


def test_unquoted_values_are_folded_to_upper_case():
    assert values("INZOPT VOL(pvol1) TEXT(hello)")[1]["TEXT"] == "HELLO"
    assert values("DSPOPT PVOL1 DATA(*FILATR) PATH(/dir1/file.txt)")[1]["PATH"] == "/DIR1/FILE.TXT"


def test_quoted_strings_keep_case_and_blanks():
    assert values("INZOPT VOL(PVOL1) TEXT('Quarterly  reports')")[1]["TEXT"] == "Quarterly  reports"


def test_two_quotes_in_a_quoted_string_are_one_quote():
    assert values("INZOPT VOL(PVOL1) TEXT('It''s mine ''''')")[1]["TEXT"] == "It's mine ''"


def test_empty_quoted_string():
    assert values("CHGOPTVOL VOL01 TEXT('')")[1]["TEXT"] == ""


def test_quoted_parentheses_are_text():
    assert values("INZOPT VOL(PVOL1) TEXT('a (b) c')")[1]["TEXT"] == "a (b) c"


def test_special_values_in_any_case():
    got = values("INZOPT VOL(PVOL1) THRESHOLD(*calc) TYPE(*backup) CHECK(*No)")[1]
    assert (got["THRESHOLD"], got["TYPE"], got["CHECK"]) == ("*CALC", "*BACKUP", "*NO")


def test_a_wrong_special_value_lists_the_allowed_ones():
    error = fails("CPYOPT FROMVOL(PVOL1) FROMPATH('/') TOVOL(PVOL2) SLTFILE(*BOGUS)")
    assert error.message_id == "OPV0005"
    assert "SLTFILE" in error.text and "expected one of *CHANGED, *NEW, *ALL" in error.text
    assert "special values" not in error.text


def test_generic_names():
    assert values("DSPOPT VOL(ARCH*)")[1]["VOL"] == "ARCH*"
    assert values("WRKOPTVOL arch*")[1]["VOL"] == "ARCH*"
    assert values("WRKOPTF PVOL1 '/Dir1' FILE(REP*)")[1]["FILE"] == "REP*"


def test_element_lists():
    name, got = values("CPYOPT FROMVOL(PVOL1 *PRIMARY) FROMPATH('/') TOVOL(BVOL1 *BACKUP)")
    assert got["FROMVOL"] == ("PVOL1", "*PRIMARY") and got["TOVOL"] == ("BVOL1", "*BACKUP")


def test_omitted_trailing_elements_take_their_defaults():
    assert values("CPYOPT FROMVOL(PVOL1) FROMPATH('/') TOVOL(BVOL1)")[1]["TOVOL"] == ("BVOL1", "*PRIMARY")


def test_a_single_value_without_parentheses_is_the_first_element():
    assert values("CPYOPT PVOL1 '/' BVOL1")[1]["FROMVOL"] == ("PVOL1", "*PRIMARY")


def test_positional_element_list_in_parentheses():
    assert values("CPYOPT (PVOL1 *BACKUP) '/' (NEWPRI *PRIMARY)")[1]["FROMVOL"] == ("PVOL1", "*BACKUP")


def test_star_n_takes_the_element_default():
    assert values("CPYOPT PVOL1 '/' BVOL1 FROMTIME(*N '12:30:00')")[1]["FROMTIME"] == ("*BEGIN", time(12, 30))


def test_star_n_omits_a_positional_value():
    got = values("CHGOPTVOL VOL01 *N *NONE")[1]
    assert got["THRESHOLD"] == "*SAME" and got["AUTL"] == "*NONE"


@pytest.mark.parametrize("text, expected", [
    ("'04/01/99' '00:00:00'", (date(1999, 4, 1), time(0, 0))),
    ("'04/01/1999' '235959'", (date(1999, 4, 1), time(23, 59, 59))),
    ("040199 000000", (date(1999, 4, 1), time(0, 0))),
    ("'2026-03-31' '12:00:00'", (date(2026, 3, 31), time(12, 0))),
    ("*BEGIN *AVAIL", ("*BEGIN", "*AVAIL")),
])
def test_dates_and_times(text, expected):
    assert values(f"CPYOPT PVOL1 '/' BVOL1 FROMTIME({text})")[1]["FROMTIME"] == expected


# --------------------------------------------------------------------- statements: continuation, comments


def test_plus_continues_at_the_next_lines_first_non_blank():
    command, given = parser.parse("INZOPT VOL(PVOL1) +\n        TEXT('abc+\n      def')")
    assert given["TEXT"] == "abcdef"


def test_minus_continues_with_the_next_lines_leading_blanks():
    command, given = parser.parse("INZOPT VOL(PVOL1) TEXT('abc-\n   def')")
    assert given["TEXT"] == "abc   def"


def test_blanks_before_the_continuation_character_are_kept():
    assert parser.parse("INZOPT VOL(PVOL1) TEXT('abc +  \n def')")[1]["TEXT"] == "abc def"


def test_comments_are_blanks_anywhere_outside_quotes():
    command, given = parser.parse("/* start */ CHGOPTVOL/* a */VOL(VOL01) /* b */ +\n THRESHOLD(99) /* end */")
    assert given == {"VOL": "VOL01", "THRESHOLD": "99"}


def test_a_comment_inside_a_quoted_string_is_text():
    assert parser.parse("INZOPT VOL(PVOL1) TEXT('/* not a comment */')")[1]["TEXT"] == "/* not a comment */"


def test_split_statements_one_per_line_skipping_blank_and_comment_lines():
    source = (
        "/* backup job */\n"
        "\n"
        "INZOPT VOL(PVOL1)\n"
        "CPYOPT FROMVOL(PVOL1) FROMPATH('/') +\n"
        "       TOVOL(BVOL1 *BACKUP)   /* nightly */\n"
        "   \n"
        "/* a comment over\n"
        "   two lines */\n"
        "DSPOPT PVOL1\r\n"
    )
    statements = parser.split_statements(source)
    assert [(s.line, s.text) for s in statements] == [
        (3, "INZOPT VOL(PVOL1)"),
        (4, "CPYOPT FROMVOL(PVOL1) FROMPATH('/') TOVOL(BVOL1 *BACKUP)"),
        (9, "DSPOPT PVOL1"),
    ]


def test_split_statements_of_nothing():
    assert parser.split_statements("") == []
    assert parser.split_statements("  \n/* only a comment */\n\n") == []


def test_a_newline_ends_an_unclosed_quote():
    statements = parser.split_statements("INZOPT VOL(PVOL1) TEXT('abc\nDSPOPT PVOL1")
    assert [s.text for s in statements] == ["INZOPT VOL(PVOL1) TEXT('abc", "DSPOPT PVOL1"]


# --------------------------------------------------------------------- errors name the keyword or position


@pytest.mark.parametrize("text, named", [
    ("CHGOPTVOL VOL(VOL01) THRESHOLD(101)", "THRESHOLD"),
    ("CHGOPTVOL VOL(VOL01) THRESHOLD(abc)", "THRESHOLD"),
    ("CHGOPTVOL VOL(VOL01) NOSUCH(1)", "NOSUCH"),
    ("CHGOPTVOL VOL(VOL01) VOL(VOL02)", "VOL"),
    ("CHGOPTVOL VOL(VOL01) THRESHOLD(1 2)", "THRESHOLD"),
    ("CHGOPTVOL VOL(VOL01) THRESHOLD()", "THRESHOLD"),
    ("CHGOPTVOL VOL(VOL01) THRESHOLD(99", "THRESHOLD"),
    ("CHGOPTVOL VOL(VOL01) TEXT('abc", "TEXT"),
    ("CHGOPTVOL VOL(VOL01) TEXT('abc'def)", "TEXT"),
    ("CHGOPTVOL VOL(VOL01) TEXT(abc'def')", "TEXT"),
    ("CHGOPTVOL VOL(VOL01) TEXT((a b))", "TEXT"),
    ("CHGOPTVOL VOL(VOL01) TEXT(A(B))", "TEXT"),
    ("CPYOPT FROMVOL(PVOL1 *PRIMARY EXTRA) FROMPATH('/') TOVOL(B)", "FROMVOL"),
    ("CPYOPT FROMVOL(PVOL1 *SIDEWAYS) FROMPATH('/') TOVOL(B)", "FROMVOL"),
    ("CPYOPT FROMVOL(*N *BACKUP) FROMPATH('/') TOVOL(B)", "FROMVOL"),
    ("CPYOPT PVOL1 '/' BVOL1 FROMTIME('13/01/99')", "FROMTIME"),
    ("CPYOPT PVOL1 '/' BVOL1 FROMTIME(*BEGIN '25:00:00')", "FROMTIME"),
    ("CPYOPT FROMVOL(PVOL1) TOVOL(BVOL1)", "FROMPATH"),
    ("INZOPT VOL('bad volume!')", "VOL"),
])
def test_errors_name_the_keyword(text, named):
    assert named in fails(text).text


@pytest.mark.parametrize("text, named", [
    ("CHGOPTVOL VOL01 99 *NONE EXTRA", "position 4"),
    ("CHGOPTVOL VOL(VOL01) 99", "position 1"),
    ("CHGOPTVOL VOL01 ) 99", "position 2"),
    ("CHGOPTVOL VOL01 'abc", "position 2"),
])
def test_errors_name_the_position(text, named):
    assert named in fails(text).text


@pytest.mark.parametrize("text, reason", [
    ("", "no command"),
    ("   /* nothing */  ", "no command"),
    ("NOSUCHCMD VOL(X)", "NOSUCHCMD"),
    ("CP '/QOPT/V/A' '/tmp/b'", "not a CL command"),
    ("LS '/QOPT/V'", "not a CL command"),
    ("MYLIB/CHGOPTVOL VOL01", "command name"),
    ("CHGOPTVOL(VOL01)", "blank must follow"),
    ("'CHGOPTVOL' VOL01", "command name"),
    ("INZOPT VOL(PVOL1)\nDSPOPT PVOL1", "2 commands"),
    ("INZOPT VOL(PVOL1) +", "continuation"),
    ("INZOPT VOL(PVOL1) /* open", "comment"),
])
def test_errors_of_the_statement(text, reason):
    assert reason in fails(text).text


def test_cl_errors_use_their_own_message_id():
    assert fails("CHGOPTVOL VOL01 99 *NONE EXTRA").message_id == "OPV0009"


# --------------------------------------------------------------------- IFS commands


def test_ifs_commands_parse():
    assert values("CPY OBJ('/QOPT/PVOL1/a.txt') TODIR('/QOPT/BVOL1/Dir')")[1] == {
        "OBJ": "/QOPT/PVOL1/a.txt", "TOOBJ": None, "TODIR": "/QOPT/BVOL1/Dir", "SUBTREE": "*NONE", "REPLACE": "*NO"}
    assert values("MOV '/QOPT/V/a' '/QOPT/V/b'")[1]["TOOBJ"] == "/QOPT/V/b"
    assert values("RNM OBJ('/QOPT/V/a') NEWOBJ('b.txt')")[1]["NEWOBJ"] == "b.txt"
    assert values("RMVLNK OBJLNK('/QOPT/V/a')")[1] == {"OBJLNK": "/QOPT/V/a"}
    assert values("CRTDIR DIR('/QOPT/V/Dir')")[1] == {"DIR": "/QOPT/V/Dir"}
    assert values("RMVDIR DIR('/QOPT/V/Dir') SUBTREE(*ALL)")[1]["SUBTREE"] == "*ALL"
    assert values("CHGATR OBJ('/QOPT/V/a') ATR(*READONLY) VALUE(*YES)")[1] == {
        "OBJ": "/QOPT/V/a", "ATR": "*READONLY", "VALUE": "*YES"}


def test_chgatr_refuses_other_attributes():
    assert "ATR" in fails("CHGATR '/QOPT/V/a' *ALWCKPWRT *YES").text


# --------------------------------------------------------------------- the reference's examples (§10)


def test_reference_chgoptvol_example():
    assert values("CHGOPTVOL VOL(VOL01) THRESHOLD(99)")[1]["THRESHOLD"] == 99



@pytest.mark.parametrize("text, quoted, keyword", [
    ("INZOPT NEWVOL(V1) TEXT(*BLNK)", "INZOPT NEWVOL(V1) TEXT('*BLNK')", "TEXT"),
    ("WRKOPTF VOL01 *ALL FILE(*SEL)", "WRKOPTF VOL01 *ALL FILE('*SEL')", "FILE"),
    ("CPY OBJ(*FOO) TODIR('/QOPT/V')", "CPY OBJ('*FOO') TODIR('/QOPT/V')", "OBJ"),
    ("WRKOPTF VOL01 *ALL *SELECT SLTFILE(*AL)", "WRKOPTF VOL01 *ALL *SELECT SLTFILE('*AL')", "FROM"),
])
def test_an_unquoted_star_value_is_a_special_value_or_refused(text, quoted, keyword):
    """hunt-cl F8: TEXT(*BLNK), a misspelled *BLANK, became the description "*BLNK". In CL an
    unquoted value that begins with * is a special value (IBM's reserved values), so one the
    parameter does not have is refused; quoted, it is the text it says."""
    def cl_values(text: str) -> dict:
        command, given = parser.parse(text)
        return command.parse_values(given, cl=True)

    with pytest.raises(errors.InvalidError) as caught:
        cl_values(text)
    assert caught.value.message_id == "OPV0005" and keyword in caught.value.text and "quotes" in caught.value.text
    written = "*" + text.split("(*")[-1].split(")")[0]
    assert written in repr(cl_values(quoted))
    assert cl_values("CHGOPTVOL VOL01 TEXT(*blank)")["TEXT"] == "*BLANK"  # a special value in any case
