"""README: a date is written MM/DD/YYYY, MM/DD/YY, MMDDYYYY, MMDDYY or YYYY-MM-DD; the help and
the error for a bad date name every one of those forms (hunt25d F5: they named three)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from optvol import errors
from optvol.cl import values

FORMS = ("MM/DD/YYYY", "MM/DD/YY", "MMDDYYYY", "MMDDYY", "YYYY-MM-DD")


@pytest.mark.parametrize("text", ["01/31/2026", "01/31/26", "01312026", "013126", "2026-01-31"])
def test_every_form_the_readme_names_is_read(text):
    assert str(values.parse_date(text, lambda reason: errors.error("OPV0005", value=text, keyword="DATE",
                                                                    reason=reason))) == "2026-01-31"


def test_the_error_for_a_bad_date_names_every_form():
    with pytest.raises(errors.OptvolError) as caught:
        values.parse_date("2026/01/31", lambda reason: errors.error("OPV0005", value="x", keyword="DATE",
                                                                    reason=reason))
    assert all(form in caught.value.text for form in FORMS)


@pytest.mark.parametrize("command", ["cpyopt", "wrkoptf"])
def test_the_help_names_every_form(command):
    out = subprocess.run([sys.executable, "-m", "optvol", command, "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "1000"}).stdout
    flat = " ".join(out.split())
    assert all(form in flat for form in FORMS), flat
