"""What a row's line says is one decision (etl.outcomes.decide), and every place that shows it
agrees: results.csv, errors.csv, summary.json, --json, the terminal, even for rows whose fate is
decided after their line was written, rows that are one credit use in two files of a run, and a
run stopped by Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from etl.outcomes import NEEDS_ACTION, STATE_OUTCOME
from etl.report.reporting import ReportWriter
from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, write
from tests.test_row_identity import journal_rows


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        yield box


@pytest.fixture
def post(etl, sandbox):
    def run(*args):
        return etl("import", *args, "--api-url", sandbox.url, "--rate", "1000", "--token", TOKEN, env=NO_ENV)
    return run


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def row_events(log: Path, row: int) -> list[str]:
    """The states a row went through, as the run's log says."""
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return [e["to"] for e in events if e.get("event") == "row" and e.get("row") == row]


def test_a_row_in_doubt_during_the_run_found_created_at_the_end_is_created_everywhere(post, sandbox,
                                                                                   tmp_path):
    sandbox.faults.late_delay = 0.8  # the 504 comes at once, its record a moment later
    sandbox.script("ok", "gateway_timeout_late")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--timeout", "0.5", "--json")
    assert run.code == 0, run.err
    summary = json.loads(run.out)
    folder = tmp_path / Path(summary["report"]).parent
    states = row_events(folder / "log.jsonl", 3)
    assert states[:2] == ["pending", "in_doubt"] and states[-1] == "created", states
    record = sandbox.store.records()[-1]["Id"]
    rows = read_csv(folder / "results.csv")
    assert [(r["row"], r["outcome"]) for r in rows] == [("2", "created"), ("3", "created")]
    assert (rows[1]["id"], rows[1]["http_status"], rows[1]["attempts"]) == (str(record), "504", "1")
    assert rows[1]["errors"] == "checked by its SystemId: it was created"  # the journal's words
    assert read_csv(folder / "errors.csv") == []
    assert summary["counts"]["created"] == 2 and summary["counts"]["in_doubt"] == 0
    assert summary["needs_action"] == 0 and summary["exit_code"] == 0
    assert json.loads((folder / "summary.json").read_text())["counts"] == summary["counts"]
    assert "2 rows: 2 created." in run.err
    assert "row 3: in_doubt" not in run.err and "errors.csv" not in run.err
    assert sandbox.stats.posts == 2 and len(sandbox.store.records()) == 2


def test_a_row_proved_absent_at_the_end_and_sent_again_counts_both_requests(post, sandbox, tmp_path):
    sandbox.script("ok", "gateway_timeout")  # 504 at once, nothing created
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--timeout", "0.5",
               "--gateway-settle", "0")
    assert run.code == 0, run.err
    rows = run.report()
    record = sandbox.store.records()[-1]["Id"]
    assert [(r["outcome"], r["id"], r["http_status"], r["attempts"]) for r in rows[1:]] == [
        ("created", str(record), "200", "2")]
    assert run.out.startswith("2 rows: 2 created.")
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 2


def test_one_credit_use_in_two_files_is_created_from_the_first_and_skipped_in_the_second(post, sandbox,
                                                                                      tmp_path):
    sandbox.faults.late_delay = 0.8
    sandbox.script("ok", "gateway_timeout_late")  # in doubt when the second file's line is written
    first = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    second = write(tmp_path, "b.csv", "102,2,b")
    run = post(first, second, "--timeout", "0.5")
    assert run.code == 0, run.err
    record = sandbox.store.records()[-1]["Id"]
    rows = run.report()
    assert [(r["source"], r["row"], r["outcome"], r["id"]) for r in rows][1:] == [
        (str(first), "3", "created", str(record)), (str(second), "2", "skipped", str(record))]
    assert rows[2]["errors"].startswith(f"note: already created from {first} row 3 on ")
    assert rows[2]["errors"].endswith(f"(Id {record}): the same values in every cell")
    summary = run.summary()
    assert (summary["counts"]["created"], summary["counts"]["skipped"]) == (2, 1)
    assert summary["notes"] == {"skipped_identical_from_other_files": 1}
    assert "1 rows were skipped: the same values in every cell as rows created earlier from other" in run.err
    assert run.out.startswith("3 rows: 2 created, 1 skipped.")
    assert read_csv(run.report_path().parent / "errors.csv") == []
    assert sandbox.stats.posts == 2


def test_ctrl_c_mid_run_leaves_a_report_that_agrees_with_the_journal_line_by_line(sandbox, tmp_path):
    path = write(tmp_path, "export.csv", *[f"{100 + i},1,row {i}" for i in range(30)])
    sandbox.faults.latency = 0.2
    sandbox.faults.late_delay = 30.0  # this 504's record comes long after the run
    sandbox.script("ok", "ok", "gateway_timeout_late", "ok", "reject", "ok")
    env = {**os.environ, "NEXUDUS_TOKEN": TOKEN}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "etl", "import", str(path), "--api-url", sandbox.url, "--rate", "1000",
           "--batch-size", "1", "--timeout", "0.5", "--report", str(out / "results.csv"), "-q",
           "--no-check-credits"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while sandbox.stats.posts < 7 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    rows = read_csv(out / "results.csv")
    assert len(rows) == 30
    journal = {row: (state, record_id) for row, state, record_id in journal_rows(sandbox.url)}
    for r in rows:  # every row was sent by its own line, or not at all
        state, record_id = journal.get(int(r["row"]), ("new", None))
        assert (r["outcome"], r["id"]) == (STATE_OUTCOME[state].value, str(record_id or "")), r
    said = Counter(r["outcome"] for r in rows)
    assert said["in_doubt"] == 1 and said["rejected"] == 1 and said["not_attempted"] >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert {k: v for k, v in summary["counts"].items() if v} == dict(said)
    assert summary["exit_code"] == 130
    errors = read_csv(out / "errors.csv")
    assert [e["errors"] for e in errors] == [r["errors"] for r in rows if r["outcome"] in NEEDS_ACTION]
    assert stdout.startswith(f"30 rows: {said['created']} created, 1 rejected, 1 in_doubt, "
                             f"{said['not_attempted']} not_attempted; stopped: interrupted")


def test_a_report_made_again_whole_is_byte_for_byte_the_same_but_for_the_lines_said_anew(tmp_path):
    """The end of an import reads blocks of the report back and writes them again: every cell
    comes back as it was written (quotes, line breaks, formulas made text, empty against missing)."""
    import numpy as np
    import pyarrow as arrow

    own = ["Description", "Notes", "Amount"]
    path = str(tmp_path / "results.csv")

    def report(lines: dict[int, tuple]) -> tuple[bytes, bytes]:
        writer = ReportWriter(path, own, errors=str(tmp_path / "errors.csv"))
        cells = [arrow.array(['say "hi"', "two\nlines", "=1+2", "", "plain"]),
                 arrow.array(["", None, "x", "'=A1", "é"]), None]
        writer.write("a.csv", np.arange(2, 7), ["created", "in_doubt", "invalid", "skipped", "created"],
                     ["created", "HTTP 504 | maybe", "Amount: is required", "", ""], cells,
                     ids=[7, None, None, 3, 8], statuses=[200, 504, None, None, 200],
                     attempts=[1, 1, None, None, 2])
        writer.write("b.csv", np.arange(2, 4), ["not_attempted", "failed"], ["", "HTTP 503"],
                     [arrow.array(["b,1", "b2"]), None, arrow.array(["1", "2"])])
        writer.finish(lines)
        return Path(path).read_bytes(), (tmp_path / "errors.csv").read_bytes()

    written, errors = report({})
    assert report({1: ("in_doubt", None, 504, 1, "HTTP 504 | maybe"), 6: ("failed", None, None, None,
                                                                            "HTTP 503")}) == (written, errors)
    again, errors_again = report({1: ("created", 9, 504, 1, "found: record 9")})
    assert again.splitlines(keepends=True)[3:] == written.splitlines(keepends=True)[3:]
    assert again.splitlines()[2] == b'"a.csv",3,"created",9,504,1,"found: record 9","two'
    assert b"HTTP 504" not in errors_again and b"HTTP 503" in errors_again


def test_sigterm_stops_a_dry_run_as_ctrl_c_does_with_exit_143(tmp_path):
    """The dry run has no handler of its own: SIGTERM (a cron timeout, `kill`) killed it with no
    --json document, no summary.json and an errors.csv.tmp left behind. Now it stops as Ctrl-C
    does: exit 143, one JSON document of the rows read, and the summary beside the report."""
    path = tmp_path / "big.csv"
    with open(path, "wb") as f:
        f.write(b"CoworkerBookingCreditId,CreditUsed,Description\n")
        f.write(b"101,1.5,Desk\n102,-1,Bad\n" * 1_000_000)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "etl", "validate", str(path), "--report",
                             str(out / "results.csv"), "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ((out / "results.csv").exists() and (out / "results.csv").stat().st_size > 0) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    document = json.loads(stdout)
    assert document["exit_code"] == 143 and 0 < document["rows"] < 2_000_000
    assert json.loads((out / "summary.json").read_text())["exit_code"] == 143
    assert not list(out.glob("*.tmp"))


def test_a_second_ctrl_c_still_leaves_one_json_document_and_a_summary(sandbox, tmp_path):
    """The first Ctrl-C stops the run cleanly; a second, while it settles, stops it at once
    (exit 130). --json still prints its one document, and summary.json is kept, as far as
    they are known (before: an empty document, the README's cron line mailed an empty file)."""
    path = write(tmp_path, "export.csv", *[f"{100 + i},1,row {i}" for i in range(30)])
    env = {**os.environ, "NEXUDUS_TOKEN": TOKEN}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "etl", "import", str(path), "--api-url", sandbox.url, "--rate", "20",
           "--batch-size", "1", "--concurrency", "4", "--no-check-credits", "--report",
           str(out / "results.csv"), "--json"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while sandbox.stats.posts < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    sandbox.faults.latency = 1.5  # the requests under way when the first Ctrl-C comes take long
    time.sleep(0.4)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted again: stopped at once" in stderr
    document = json.loads(stdout)
    assert document["exit_code"] == 130 and document["error"].startswith("interrupted again")
    assert document["counts"] is None  # the lines said so far are not what was sent: none, not wrong
    assert json.loads((out / "summary.json").read_text()) == document
