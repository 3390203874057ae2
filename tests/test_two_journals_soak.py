"""Two state folders' journals, one file, one target, one run at a time, SIGKILLed and rerun:
every row created exactly once; the journal that knows no row stops (exit 2) or posts nothing twice."""

from __future__ import annotations

import pytest

from bench.two_journals_soak import run_two_journals


@pytest.mark.parametrize("system_id", ["store", "drop"])
def test_two_journals_one_at_a_time_killed_and_rerun_create_every_row_once(tmp_path, system_id):
    out = run_two_journals(str(tmp_path), rows=40, rounds=3, kills=1, seed=3, system_id=system_id,
                           kill_window=(1.0, 2.5))
    result = out.result
    assert -9 in result.exit_codes, out.log  # a run was killed mid-way
    assert out.finished, out.log
    assert set(result.exit_codes) <= {-9, 0, 1, 2}, out.log
    assert result.exit_codes.count(2) == out.guard_stops, out.log  # every exit 2 is the guard's stop
    assert (result.duplicates, result.lost, result.in_doubt, result.wrong_ids) == (0, 0, 0, 0), (
        result.line(), out.log, out.explained)
    assert result.records == 40
