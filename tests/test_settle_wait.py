"""The end of a run waits for its rows in doubt to settle, a gateway's answers included, checks
each once its request has settled (never before), and sends again those proved not created, so
that a run leaves in doubt only what it could not wait for (--settle-wait)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.test_import import TOKEN, journal_states, post, sandbox, write  # noqa: F401 - the fixtures


def _arrivals(sandbox):  # noqa: F811 - the fixture
    """The times (monotonic) at which the sandbox's credit-use POSTs arrive."""
    times: list[float] = []
    sandbox.faults.on_post = lambda n: times.append(time.monotonic())
    return times


def test_a_503_is_checked_once_the_gateways_window_has_passed_and_sent_again_in_the_same_run(
        post, sandbox, tmp_path):  # noqa: F811 - the fixtures
    """A 503 that made nothing: the run's own requests settle after 0.6 s, the gateway's after
    1.5 s; the run waits for the latter (not the former), finds no record, and sends the row again
    before it ends: nothing is left in doubt, nothing is posted twice."""
    posts = _arrivals(sandbox)
    sandbox.script("ok", "unavailable")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = post(path, "--timeout", "0.2", "--gateway-settle", "1.5")
    rows = run.report()
    assert [(r["outcome"], r["attempts"]) for r in rows] == [("created", "1"), ("created", "2")], rows
    assert run.code == 0 and "waiting" in run.err and "to settle" in run.err, run.err
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 2
    assert posts[2] - posts[1] >= 1.5  # sent again only once the gateway's window had passed
    log = (run.report_path().parent / "log.jsonl").read_text()
    events = [json.loads(line) for line in log.splitlines() if '"event": "row"' in line]
    assert [(e["from"], e["to"]) for e in events if e["row"] == 3][-3:] == [
        ("in_doubt", "failed"), ("failed", "pending"), ("pending", "created")]


def test_a_record_made_late_inside_the_gateways_window_is_found_never_sent_again(
        post, sandbox, tmp_path):  # noqa: F811 - the fixtures
    """A 504 at once whose record the server makes 1 s later: after the run's own window
    (0.6 s) there is no record yet; the run waits out the gateway's (2.2 s) and finds it."""
    sandbox.faults.late_delay = 1.0
    sandbox.script("ok", "gateway_timeout_late")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = post(path, "--no-system-id", "--timeout", "0.2", "--gateway-settle", "2.2")
    rows = run.report()
    assert [(r["outcome"], r["attempts"]) for r in rows] == [("created", "1")] * 2, rows
    assert sandbox.stats.posts == 2 and len(sandbox.store.records()) == 2
    assert sorted(int(r["id"]) for r in rows) == [r["Id"] for r in sandbox.store.records()]


def test_an_immediate_rerun_waits_out_the_window_an_earlier_run_left_and_sends_the_row(
        post, sandbox, tmp_path):  # noqa: F811 - the fixtures
    """Identical rows, one answered 503: a run told not to wait leaves it in doubt; a rerun at
    once waits out the window the first run's answer set (kept in the journal) and sends it."""
    posts = _arrivals(sandbox)
    sandbox.script("ok", "unavailable")
    path = write(tmp_path, "a.csv", "101,1,same", "101,1,same")
    first = post(path, "--timeout", "0.2", "--gateway-settle", "1.2", "--settle-wait", "0")
    assert [r["outcome"] for r in first.report()] == ["created", "in_doubt"]
    assert "may still be under way" in first.report()[1]["errors"]
    rerun = post(path, "--timeout", "0.2")
    # (identical rows are interchangeable: either line may take the record made now)
    assert sorted(r["outcome"] for r in rerun.report()) == ["created", "skipped"], rerun.report()
    assert rerun.code == 0
    assert sandbox.stats.posts == 3 and posts[2] - posts[1] >= 1.2
    records = sandbox.store.records()
    assert len(records) == 2 and {(r["CoworkerBookingCreditId"], r["Description"]) for r in records} == {
        (101, "same")}
    assert sorted(state for state, _ in journal_states(sandbox.url)) == ["created", "created"]


def test_a_machine_whose_clock_runs_ahead_does_not_take_anothers_row_as_settled(sandbox, tmp_path):  # noqa: F811
    """Two machines, one journal: A's POST is answered 504 (its record to come later), so A
    keeps the row in doubt until the gateway's window has passed, by A's clock. B's clock runs
    five minutes ahead: by B's clock that window has passed already. The journal's deadline is
    moved onto B's clock (each machine's offset from the server's Date header is kept), so B
    keeps the row in doubt and does not send it again (before: proved absent and sent: two
    records once the late one landed)."""
    journal = tmp_path / "shared.sqlite3"
    sandbox.faults.late_delay = 120.0  # the record comes long after both runs
    sandbox.script("gateway_timeout_late")
    env = {**os.environ, "NEXUDUS_TOKEN": TOKEN}
    args = ["--api-url", sandbox.url, "--rate", "1000", "--timeout", "0.5", "--settle-wait", "0",
            "--gateway-settle", "60", "--no-check-credits", "--journal", str(journal), "-q"]
    (tmp_path / "a").mkdir()
    a = write(tmp_path / "a", "monday.csv", "7,2.5,Desk")
    first = subprocess.run([sys.executable, "-m", "etl", "import", str(a), *args], cwd=tmp_path / "a",
                           env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 1, first.stderr  # the row in doubt
    ahead = tmp_path / "ahead"
    ahead.mkdir()
    (ahead / "sitecustomize.py").write_text(
        "import time\n_t, _tn = time.time, time.time_ns\n"
        "time.time = lambda: _t() + 300\ntime.time_ns = lambda: _tn() + 300 * 10**9\n")
    (tmp_path / "b").mkdir()
    b = write(tmp_path / "b", "mon-tue.csv", "7,2.5,Desk", "4,1,Pod")
    root = str(Path(__file__).resolve().parent.parent)
    second = subprocess.run([sys.executable, "-m", "etl", "import", str(b), *args, "--allow-new-identity"],
                            cwd=tmp_path / "b", env={**env, "PYTHONPATH": f"{ahead}{os.pathsep}{root}"},
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in second.stderr, second.stderr
    assert sandbox.stats.posts == 2, second.stderr  # A's row once, B's new row once
    assert "may still be under way" in next((tmp_path / "b").glob("logs/*/results.csv")).read_text()
