"""Booking credits checked before posting, against the sandbox over loopback: a credit that does
not exist, credit left drawn down in input order, expiry, look-ups that prove nothing, the daily
quota, reruns, `--no-check-credits` and `etl validate --online`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, journal_states, write

PAST, FUTURE = dt.date(2020, 1, 31), dt.date(2999, 1, 1)


@pytest.fixture
def box():
    """A sandbox that holds credits 7 (10 left), 8 (5 left of 20) and 9 (expired, 3 left)."""
    credits = [{"Id": 7, "TotalCredit": 10}, {"Id": 8, "TotalCredit": 20, "RemainingCredit": 5},
               {"Id": 9, "TotalCredit": 3, "ExpireDate": PAST.isoformat()}]
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), credits=credits) as sandbox:
        yield sandbox


@pytest.fixture
def post(etl, box):
    def run(path: Path, *extra: str):
        return etl("import", path, "--api-url", box.url, "--token", TOKEN, "--rate", "1000",
                   "--read-rate", "1000", *extra, env=NO_ENV)

    return run


def outcomes(run) -> list[tuple[str, str]]:
    """(outcome, errors) per row; a created row's errors are its notes only."""
    rows = [(r["outcome"], r["errors"]) for r in run.report()]
    return [(o, e.removeprefix("created").removeprefix(" | ") if o == "created" else e) for o, e in rows]


def test_rows_of_a_credit_the_account_does_not_have_are_invalid_and_never_sent(post, box, tmp_path):
    run = post(write(tmp_path, "a.csv", "7,2,a", "5000,1,b", "8,1,c", "5000,2,d"))
    assert run.code == 1
    missing = "CoworkerBookingCreditId: credit 5000 does not exist in this account"
    assert outcomes(run) == [("created", ""), ("invalid", missing), ("created", ""), ("invalid", missing)]
    assert box.stats.posts == 2 and box.stats.credit_lookups == 3  # each credit once
    assert len(journal_states(box.url)) == 2  # the journal holds only rows that were sent
    assert run.summary()["account_checks"]["missing"] == 1
    assert "a.csv row 3: invalid: CoworkerBookingCreditId: credit 5000 does not exist" in run.err


def test_credit_left_is_drawn_down_in_input_order_exactly(post, box, tmp_path):
    # credit 8 has 5 left: 2.2 then 2.8 fit only counted together in order (and exactly, not as
    # floats: 2.2 + 2.8 is 5.000000000000001 as doubles); the 0.1 after them does not fit, and the
    # 0.05 after that would, but comes after a row that could not be covered
    path = write(tmp_path, "a.csv", "8,2.2,a", "7,9.5,b", "8,2.8,c", "8,0.1,d", "7,0.5,e", "8,0.05,f")
    run = post(path)
    assert run.code == 1
    assert outcomes(run) == [
        ("created", ""), ("created", ""), ("created", ""),
        ("invalid", "CreditUsed: credit 8 has 0 left after earlier rows of this run (5 in the "
                    "account), this row needs 0.1"),
        ("created", ""),
        ("invalid", f"CreditUsed: credit 8 has 0 left and this row needs 0.05, but {path} row 5 could "
                    "not be covered first (a credit's uses are posted in order)"),
    ]
    # the server agrees: every row sent was accepted, and both credits are spent to the cent
    assert box.stats.posts == 4 and len(box.store.records()) == 4
    assert (box.store.credit(7)["RemainingCredit"], box.store.credit(8)["RemainingCredit"]) == (0, 0)


def test_the_first_row_over_is_named_with_what_was_left_and_what_it_needs(post, box, tmp_path):
    run = post(write(tmp_path, "a.csv", "8,6,a", "8,1,b"))
    assert outcomes(run)[0] == ("invalid", "CreditUsed: credit 8 has 5 left, this row needs 6")
    assert outcomes(run)[1][0] == "invalid" and box.stats.posts == 0


def test_a_rerun_counts_rows_created_earlier_once_through_what_the_server_says(post, box, tmp_path):
    path = write(tmp_path, "a.csv", "7,3,a", "7,3,b", "7,3,c", "7,3,d")
    first = post(path, "--daily-limit", "2")
    assert first.code == 4
    assert [o for o, _ in outcomes(first)] == ["created", "created", "not_attempted", "invalid"]
    assert box.store.credit(7)["RemainingCredit"] == 4
    again = post(path)
    assert again.code == 1
    # the two created rows are in the server's 4 left, not drawn again: row 4 fits, row 5 does not
    assert outcomes(again)[:3] == [("skipped", outcomes(again)[0][1]), ("skipped", outcomes(again)[1][1]),
                                   ("created", "")]
    assert outcomes(again)[3] == ("invalid", "CreditUsed: credit 7 has 1 left after earlier rows of "
                                             "this run (4 in the account), this row needs 3")
    assert box.stats.posts == 3 and box.store.credit(7)["RemainingCredit"] == 1


def test_an_expired_credit_is_noted_on_the_row_and_the_terminal_and_still_posted(post, box, tmp_path):
    run = post(write(tmp_path, "a.csv", "9,1,historic", "9,1,historic too"))
    assert run.code == 0
    note = (f"note: CoworkerBookingCreditId: credit 9 expired on {PAST.isoformat()}; posted as a "
            "historic use")
    assert outcomes(run) == [("created", note), ("created", note)]
    assert f"1 credit expired (9 on {PAST.isoformat()})" in run.err
    assert run.summary()["account_checks"]["expired"] == 1


def test_only_the_rows_tonight_can_send_are_looked_up(post, box, tmp_path):
    # two POSTs left today: 5000 is invalid (no POST), so 7 and 8 are the two sent; 9 waits
    run = post(write(tmp_path, "a.csv", "5000,1,a", "7,1,b", "8,1,c", "9,1,d"), "--daily-limit", "2")
    assert run.code == 4
    assert [o for o, _ in outcomes(run)] == ["invalid", "created", "created", "not_attempted"]
    assert box.stats.credit_lookups == 3 and run.summary()["account_checks"]["lookups"] == 3


def test_no_check_credits_posts_what_the_server_then_refuses(post, box, tmp_path):
    run = post(write(tmp_path, "a.csv", "5000,1,a", "8,6,b"), "--no-check-credits")
    assert box.stats.credit_lookups == 0 and box.stats.posts == 2
    assert [(r["outcome"], r["http_status"]) for r in run.report()] == [("rejected", "400")] * 2
    assert "account_checks" not in run.summary()


def test_look_ups_that_prove_nothing_leave_rows_unchecked_never_invalid(etl, tmp_path):
    # every read is throttled, and --throttle-patience 0 gives up at once; after three such
    # look-ups in a row the rest are not tried (--allow-new-identity: these are new credit uses,
    # so the new journal does not look for them first, a look that would be throttled too)
    credits = [{"Id": c, "TotalCredit": 1} for c in (1, 2, 3, 4)]
    with Sandbox(faults=Faults(read_rate_limit=0.001, retry_after="1"), tokens=(TOKEN,),
                 credits=credits) as sandbox:
        run = etl("import", write(tmp_path, "a.csv", "1,5,a", "2,1,b", "3,1,c", "4,1,d"),
                  "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000", "--read-rate", "1000",
                  "--throttle-patience", "0", "--allow-new-identity", env=NO_ENV)
        assert sandbox.stats.posts == 4
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["rejected", "created", "created", "created"]
    assert rows[0]["errors"].startswith("CreditUsed: total use would exceed the credit")
    assert ("note: CoworkerBookingCreditId: credit 1 could not be checked (GET "
            "/api/billing/coworkerbookingcredits/1 was throttled for longer than 0 s); sent unchecked"
            ) in rows[0]["errors"]
    assert "could not be checked (3 look-ups in a row failed" in rows[3]["errors"]
    assert "4 credits could not be looked up" in run.err
    assert run.summary()["account_checks"] == {"lookups": 3, "seconds": pytest.approx(0, abs=5),
                                               "missing": 0, "expired": 0, "unchecked": 4}


def test_a_wrong_api_url_stops_the_run_before_anything_is_posted(etl, box, tmp_path):
    run = etl("import", write(tmp_path, "a.csv", "7,1,a", "8,1,b"), "--api-url", box.url + "/wrong",
              "--token", TOKEN, "--rate", "1000", "--read-rate", "1000", env=NO_ENV)
    assert run.code == 3
    # the new journal's first look (for rows posted before under another journal) finds no API
    assert "GET /api/billing/coworkerbookingcreditusehistories answered 404 (not found): check --api-url" \
        in run.err and "nothing was posted" in run.err
    assert box.stats.posts == 0


def test_validate_online_checks_the_account_and_posts_nothing(etl, box, tmp_path):
    path = write(tmp_path, "a.csv", "5000,1,a", "8,4,b", "8,2,c", "9,1,d", "x,1,e")
    offline = etl("validate", path, "--api-url", box.url, "--token", TOKEN, env=NO_ENV)
    assert offline.code == 1 and box.stats.credit_lookups == 0  # no --online: no network
    assert [o for o, _ in outcomes(offline)] == ["valid"] * 4 + ["invalid"]
    run = etl("validate", path, "--online", "--api-url", box.url, "--token", TOKEN, env=NO_ENV)
    assert run.code == 1
    assert outcomes(run) == [
        ("invalid", "CoworkerBookingCreditId: credit 5000 does not exist in this account"),
        ("valid", ""),
        ("invalid", "CreditUsed: credit 8 has 1 left after earlier rows of this run (5 in the account), "
                    "this row needs 2"),
        ("valid", f"note: CoworkerBookingCreditId: credit 9 expired on {PAST.isoformat()}; posted as a "
                  "historic use"),
        ("invalid", 'CoworkerBookingCreditId: "x" is not a whole number'),
    ]
    assert box.stats.posts == 0 and box.stats.credit_lookups == 3
    assert run.summary()["counts"]["valid"] == 2


def test_validate_online_needs_credentials_or_the_sandbox(etl, tmp_path):
    path = write(tmp_path, "a.csv", "7,1,a")
    run = etl("validate", path, "--online", env=NO_ENV)
    assert run.code == 2 and "no credentials: set NEXUDUS_TOKEN" in run.err
    rehearsal = etl("validate", path, "--online", "--sandbox", env=NO_ENV)
    assert rehearsal.code == 0 and rehearsal.summary()["account_checks"]["lookups"] == 1


def test_a_migration_night_with_the_checks_looks_up_the_rows_it_reaches(post, box, tmp_path):
    """A history of 105,000 rows (three chunks), checks on: the rows tonight's quota may reach
    are collected and looked up before posting. The first 200 refer to a credit the account does
    not have and are invalid, so the sending goes on past what was collected; the credits of the
    rows it then reaches are looked up when it reaches them, and drawn down in input order."""
    import csv

    path = tmp_path / "history.csv"

    def use(i: int) -> list[object]:
        if i < 200:
            return [5000, "0.01", f"use #{i}"]
        return [8, "1", f"use #{i}"] if i < 300 else [7, "0.01", f"use #{i}"]

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows(use(i) for i in range(105_000))
    run = post(path, "--daily-limit", "10")
    assert run.code == 4, run.output
    rows = run.report()
    assert len(rows) == 105_000
    missing = "CoworkerBookingCreditId: credit 5000 does not exist in this account"
    assert {(r["outcome"], r["errors"]) for r in rows[:200]} == {("invalid", missing)}
    # credit 8 has 5 left: five of its rows, then none; then credit 7's, up to the quota
    assert [r["outcome"] for r in rows[200:206]] == ["created"] * 5 + ["invalid"]
    assert rows[205]["errors"] == "CreditUsed: credit 8 has 0 left after earlier rows of this run (5 in " \
                                  "the account), this row needs 1"
    assert {r["outcome"] for r in rows[206:300]} == {"invalid"}
    assert [r["outcome"] for r in rows[300:306]] == ["created"] * 5 + ["not_attempted"]
    assert "--daily-limit 10 reached" in rows[305]["errors"]
    assert {r["outcome"] for r in rows[306:]} == {"not_attempted"}
    assert box.stats.posts == 10
    assert (box.store.credit(8)["RemainingCredit"], box.store.credit(7)["RemainingCredit"]) == (0, 9.95)
