"""Review of the keyed night with the account checks on (d3527e7), a new journal's guard over a
target of few records (4553fe3) and the first pass's threads (2900e3b): against the sandbox over
loopback, files of more than one chunk (the reader's 50,000 rows)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN

ROWS = 105_000  # three chunks
PAST = "2020-01-31"


def history(path: Path, use: Callable[[int], list[object]], rows: int = ROWS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows(use(i) for i in range(rows))
    return path


def night(etl, box: Sandbox, path: Path, *extra: str):
    return etl("import", path, "--api-url", box.url, "--token", TOKEN, "--rate", "1000",
               "--read-rate", "1000", *extra, env=NO_ENV)


@pytest.fixture
def many():
    """A sandbox with credits 1 to 1000, plenty left on each."""
    credits = [{"Id": i, "TotalCredit": 1000} for i in range(1, 1001)]
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), credits=credits) as sandbox:
        yield sandbox


def test_a_migration_night_looks_up_only_the_credits_of_the_rows_it_can_send(etl, many, tmp_path):
    """Ten POSTs left, every row of its own credit: ten look-ups, as the row-by-row path made
    (not one for each of the 2 x (quota + 50) rows given their verdicts at once: at the API's
    1.25 reads a second, a quota of 1,000 would spend 15 minutes and 1,100 of the hour's 5,000
    requests on rows that are not sent tonight)."""
    path = history(tmp_path / "history.csv", lambda i: [i % 1000 + 1, "0.01", f"use #{i}"])
    run = night(etl, many, path, "--daily-limit", "10")
    assert run.code == 4, run.output
    assert many.stats.posts == 10
    assert many.stats.credit_lookups == 10
    assert run.summary()["account_checks"]["lookups"] == 10


@pytest.fixture
def box():
    credits = [{"Id": 7, "TotalCredit": 10}, {"Id": 8, "TotalCredit": 20, "RemainingCredit": 5},
               {"Id": 9, "TotalCredit": 3, "ExpireDate": PAST}]
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), credits=credits) as sandbox:
        yield sandbox


def test_a_credit_looked_up_as_the_sending_reaches_it_is_in_the_summary_and_warned_of(etl, box, tmp_path):
    """The first 200 rows are of a credit the account does not have: the rows collected before
    posting are all of it. Credit 9 (expired) is looked up as the sending reaches its rows: the
    terminal says so, as it does of a credit looked up before posting, and summary.json counts
    it (and its look-up)."""
    def use(i: int) -> list[object]:
        return [5000 if i < 200 else 9 if i < 300 else 7, "0.01", f"use #{i}"]

    run = night(etl, box, history(tmp_path / "history.csv", use), "--daily-limit", "10")
    assert run.code == 4, run.output
    rows = run.report()
    assert [r["outcome"] for r in rows[199:211]] == ["invalid"] + ["created"] * 10 + ["not_attempted"]
    assert "credit 9 expired on 2020-01-31" in rows[200]["errors"]
    assert f"1 credit expired (9 on {PAST})" in run.err
    checks = run.summary()["account_checks"]
    assert (checks["missing"], checks["expired"]) == (1, 1)
    assert box.stats.credit_lookups == 2 and checks["lookups"] >= 2


def test_a_token_refused_at_a_look_up_made_while_sending_stops_the_run_cleanly(etl, tmp_path):
    """The token stops working after the fifth POST; the next request is the look-up of the
    sixth row's credit (the rows collected before posting were all of a missing credit). The
    run stops as it does when a POST meets the 401: exit 3, the five rows created in the report
    and the summary, every other line there."""
    credits = [{"Id": i, "TotalCredit": 1000} for i in range(1, 1001)]

    def revoke(n: int) -> None:
        if n == 5:
            sandbox.expire_tokens()

    sandbox = Sandbox(faults=Faults(retry_after=0, on_post=revoke), tokens=(TOKEN,), credits=credits)
    path = history(tmp_path / "history.csv",
                   lambda i: [5000 if i < 200 else i % 1000 + 1, "0.01", f"use #{i}"])
    with sandbox:
        run = night(etl, sandbox, path, "--daily-limit", "50", "--concurrency", "1")
    assert run.code == 3, run.output
    assert sandbox.stats.posts == 5
    rows = run.report()
    assert len(rows) == ROWS
    assert [r["outcome"] for r in rows[199:206]] == ["invalid"] + ["created"] * 5 + ["not_attempted"]
    assert "the API refused the token (HTTP 401)" in rows[205]["errors"]
    assert run.summary()["counts"]["created"] == 5
    assert "the API refused the token (HTTP 401)" in run.summary()["stopped"]


def test_rows_the_checks_refuse_while_sending_are_not_kept_in_the_journal(etl, box, tmp_path):
    """Credit 8 has 5 left and every row draws 1 of it: five are created, the others refused as
    the sending reaches them. The rows refused are never sent: the journal keeps the cells and
    keys of the five rows created only (as the row-by-row path did), not of the thousands
    refused (a file whose credits ran out walked whole every night, its journal swelling and
    the night slower by the writes)."""
    import sqlite3

    from tests.test_import import journal_of

    run = night(etl, box, history(tmp_path / "uses.csv", lambda i: [8, "1", f"use #{i}"], 5_000),
                "--daily-limit", "10")
    assert run.code == 1, run.output
    assert [r["outcome"] for r in run.report()[:7]] == ["created"] * 5 + ["invalid"] * 2
    assert run.summary()["counts"]["invalid"] == 4_995
    with sqlite3.connect(journal_of(box.url)) as db:
        kept = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("rows", "keys", "cells")]
    assert kept == [5, 5, 5]
