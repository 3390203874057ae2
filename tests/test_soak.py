"""Zero duplicates, zero lost rows: the importer killed at random moments under every fault."""

from __future__ import annotations

import pytest

from tests.soak import run_soak  # noqa: I001


@pytest.mark.parametrize("system_id, check_credits", [("store", True), ("drop", True), ("drop", False)])
def test_kill_and_fault_soak_leaves_no_duplicate_and_no_lost_row(tmp_path, system_id, check_credits):
    result = run_soak(str(tmp_path), rows=80, kills=2, seed=7, system_id=system_id,
                      check_credits=check_credits)
    print(result.line())
    assert result.exit_codes[:2] == [-9, -9]
    assert result.exit_codes[-1] == 0, result.line()
    assert sum(result.faults.values()) > 5, result.line()  # the faults really happened
    assert (result.duplicates, result.lost, result.in_doubt, result.wrong_ids) == (0, 0, 0, 0), result.line()
    assert result.records == 80
