"""What a newcomer meets first: stdin as an input, the sandbox's account checks, and the README's
quick start on a Python that refuses system-wide installs (PEP 668)."""

from __future__ import annotations

import csv
import re
import subprocess
import sys

from tests.conftest import SAMPLES


def test_validate_dash_reads_stdin(tmp_path):
    with open(SAMPLES / "credit_uses_with_errors.csv", "rb") as f:
        done = subprocess.run([sys.executable, "-m", "etl", "validate", "-", "-q"], stdin=f, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("12 rows: 6 valid, 6 invalid.")
    report = done.stdout.strip().rsplit("Report: ", 1)[1]
    kept = tmp_path / report.replace("results.csv", "stdin.csv")
    assert kept.read_bytes() == (SAMPLES / "credit_uses_with_errors.csv").read_bytes()
    with open(tmp_path / report, newline="", encoding="utf-8") as f:
        assert {r["source"] for r in csv.DictReader(f)} == {str(kept)}


def test_stdin_of_a_workbook_and_on_a_terminal_and_for_an_import(tmp_path, etl):
    with open(SAMPLES / "credit_uses.xlsx", "rb") as f:
        done = subprocess.run([sys.executable, "-m", "etl", "validate", "-", "-q"], stdin=f, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("10 rows: 10 valid."), done.stderr
    assert "stdin.xlsx (sheet " in done.stdout
    run = etl("import", "-", "--sandbox")
    assert run.code == 2 and "save it to a file first" in run.err
    run = etl("validate", "-", "-")
    assert run.code == 2 and "can be named once" in run.err


def test_online_sandbox_says_it_proves_nothing_without_credits(etl, tmp_path):
    run = etl("validate", SAMPLES / "credit_uses.csv", "--online", "--sandbox")
    assert run.code == 0
    assert "without --credits FILE checks an emulator in which every booking credit exists" in run.err
    (tmp_path / "credits.csv").write_text("Id,TotalCredit,RemainingCredit\n1281,10,10\n1203,10,1\n")
    run = etl("validate", SAMPLES / "credit_uses.csv", "--online", "--sandbox", "--credits", "credits.csv")
    assert run.code == 1 and "proves nothing" not in run.err
    reasons = " ".join(r["errors"] for r in run.report())
    assert "credit 1231 does not exist in this account" in reasons
    assert "credit 1203 has 1 left" in reasons
    run = etl("validate", SAMPLES / "credit_uses.csv", "--credits", "credits.csv")
    assert run.code == 2 and "--online --sandbox" in run.err


def test_the_credit_look_up_estimate_counts_the_round_trips(tmp_path):
    """12 credits on an account that answers in 1 s take about 12 s, not '0 s at --read-rate':
    the estimate is said after one timed look-up (the run is stopped there)."""
    import os
    import signal

    from etl.sandbox import Faults, Sandbox

    (tmp_path / "a.csv").write_text("CoworkerBookingCreditId,CreditUsed\n"
                                    + "".join(f"{500 + i},1\n" for i in range(12)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUDUS_", "ETL_"))}
    with Sandbox(faults=Faults(latency=1.0), tokens=("made-up-token-0022",)) as box:
        proc = subprocess.Popen(
            [sys.executable, "-m", "etl", "validate", "a.csv", "--online", "--api-url", box.url,
             "--token", "made-up-token-0022"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    found = re.search(r"looking up at least 12 credits before posting, about (\d+) s \(one look-up "
                      r"took (\d+\.\d) s; .*\); --no-check-credits skips this", line)
    assert found, line
    about, trip = int(found.group(1)), float(found.group(2))
    assert trip >= 1.0 and abs(about - 11 * trip) <= 11 * 0.05 + 1  # the 11 others, one at a time
