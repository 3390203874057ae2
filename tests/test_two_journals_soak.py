"""Two state folders' journals, one file, one target, one run at a time, SIGKILLed and rerun:
every row created exactly once; the journal that knows no row stops (exit 2) or posts nothing twice."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "two_journals_soak.py"


def _bench():
    """The bench's module, read from its file: bench/ is a folder of scripts, not a package on
    the path (pytest run without the project's settings, `-c` or another rootdir, collects this
    module all the same)."""
    module = sys.modules.get("two_journals_soak")
    if module is None:
        spec = importlib.util.spec_from_file_location("two_journals_soak", BENCH)
        assert spec is not None and spec.loader is not None
        module = sys.modules["two_journals_soak"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


run_two_journals = _bench().run_two_journals


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
