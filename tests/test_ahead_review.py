"""Review of the lines after tonight's quota (tests/test_ahead.py): cases where a line the first
pass could have written is not what the posting pass writes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.test_ahead import leftovers, night
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture

HEADER = ["CoworkerBookingCreditId", "CreditUsed", "Description"]


def uses(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.mark.parametrize("extra", [False, True], ids=["same-columns", "extra-empty-column"])
def test_a_later_files_rows_sent_tonight_from_an_earlier_file_are_skipped(etl, sandbox, tmp_path, extra):  # noqa: F811
    """b.csv repeats a.csv's first five rows. Tonight's quota (10) ends in a.csv, so b.csv's
    lines come after it; but a.csv's rows are created tonight, before the posting pass keys
    b.csv against the journal: b.csv's rows are skipped (already created from a.csv), not left
    to post, as the posting pass says when it writes them itself."""
    rows = [[str(11 + i % 5), f"{1 + i}.25", f"Desk #{i}"] for i in range(12)]
    uses(tmp_path / "a.csv", rows)
    if extra:  # another export of them: a column more, empty (another way of identifying rows)
        uses(tmp_path / "b.csv", [r + [""] for r in rows[:5]], HEADER + ["ExportedBy"])
    else:
        uses(tmp_path / "b.csv", rows[:5])
    run = night(etl, sandbox, tmp_path / "a.csv", 10, str(tmp_path / "b.csv"))
    assert run.code == 4, run.err
    report = run.report()
    assert [r["outcome"] for r in report[:12]] == ["created"] * 10 + ["not_attempted"] * 2
    theirs = report[12:]
    assert [r["outcome"] for r in theirs] == ["skipped"] * 5
    assert all("already created from" in r["errors"] for r in theirs)
    counts = run.summary()["counts"]
    assert (counts["created"], counts["skipped"], counts["not_attempted"]) == (10, 5, 2)
    status = etl("status", "--api-url", sandbox.url)
    assert "2 rows to post" in status.out, status.out
    assert len(sandbox.store.records()) == 10
    assert leftovers(tmp_path) == []


def test_a_run_stopped_at_once_leaves_no_lines_written_ahead(sandbox, tmp_path):  # noqa: F811
    """Ctrl-C twice stops a run at once (os._exit), here while it paces its first POSTs: lines
    written before the report's own (etl.run.ahead) are in files without a name, and nothing of
    them, nor any other file of lines written ahead, is left in the run's folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.test_import import TOKEN

    a = [[str(11 + i % 5), f"{1 + i}.25", f"Desk #{i}"] for i in range(30)]
    uses(tmp_path / "a.csv", a)
    uses(tmp_path / "b.csv", [[r[0], r[1], r[2] + " (b)"] for r in a])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUDUS_")}
    child = subprocess.Popen(
        [sys.executable, "-m", "etl", "import", "a.csv", "b.csv", "--api-url", sandbox.url, "--token",
         TOKEN, "--rate", "2", "--daily-limit", "20", "--no-check-credits"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while sandbox.stats.posts < 1 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)  # the first pass is done; the posting pass paces its POSTs
    child.send_signal(signal.SIGINT)
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=30)
    assert child.returncode == 130
    assert [p.name for p in tmp_path.rglob("*") if ".ahead" in p.name] == []
