"""check_volume from inside this thread's own batch of the volume (hunt25i F3): the batch's
rows are not committed and its records may still be in memory, so the check named a sound
volume damaged. It is refused (OPV0019); the batch goes on and commits."""

from __future__ import annotations

import pytest

from optvol import errors
from optvol.checking import check_volume


def test_a_check_inside_a_batch_is_refused_and_the_batch_goes_on(primary):
    primary.write_bytes("/BEFORE.TXT", b"b" * 100)
    with primary.batch():
        primary.write_bytes("/INBATCH.TXT", b"z" * 5000)
        with pytest.raises(errors.InvalidError) as caught:
            check_volume(primary)
        assert caught.value.message_id == "OPV0019"
    assert primary.read_bytes("/INBATCH.TXT") == b"z" * 5000
    result = check_volume(primary)
    assert result.damaged == [] and result.files_checked == 2


def test_a_check_inside_a_snapshot_still_runs(primary):
    primary.write_bytes("/F.TXT", b"f")
    with primary.snapshot():
        assert check_volume(primary).damaged == []
