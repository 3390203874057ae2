"""`etl resolve` decides a row in doubt by hand, but never against the evidence: --not-created is
refused while the row's request may still settle or a record that may be its own exists;
--created ID is refused for a record whose values are not the row's."""

from __future__ import annotations

import sqlite3
import time

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, journal_of, write


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        yield box


@pytest.fixture
def api(sandbox):
    return ("--api-url", sandbox.url, "--token", TOKEN)


def test_not_created_is_refused_while_the_request_may_still_settle(etl, sandbox, api, tmp_path):
    sandbox.script("gateway_timeout")
    path = write(tmp_path, "a.csv", "101,1,a")
    # --settle-wait 0: the run does not wait the gateway's 10 minutes out before it ends
    run = etl("import", path, *api, "--no-system-id", "--timeout", "0.3", "--settle-wait", "0", env=NO_ENV)
    assert [r["outcome"] for r in run.report()] == ["in_doubt"]
    refused = etl("resolve", f"{path}:2", "--not-created", *api, env=NO_ENV)
    assert refused.code == 2 and "may still be under way for" in refused.err, refused.err
    rerun = etl("import", path, *api, "--no-system-id", "--timeout", "0.3", "--settle-wait", "0", env=NO_ENV)
    assert [r["outcome"] for r in rerun.report()] == ["in_doubt"] and sandbox.stats.posts == 1


def test_not_created_is_refused_while_a_record_that_may_be_the_rows_exists(etl, sandbox, api, tmp_path):
    sandbox.faults.created_on_offset = -8  # a local time in a zone never learnt: in doubt
    sandbox.script("error_after_create")
    path = write(tmp_path, "a.csv", "101,1.25,first")
    run = etl("import", path, *api, "--no-system-id", "--timeout", "0.2", env=NO_ENV)
    assert [r["outcome"] for r in run.report()] == ["in_doubt"]
    record = sandbox.store.records()[0]["Id"]
    time.sleep(0.7)  # settled
    refused = etl("resolve", f"{path}:2", "--not-created", *api, env=NO_ENV)
    assert refused.code == 2 and f"a record that may be this row's exists (Id {record})" in refused.err
    # a record of another amount is not the row's, whatever a person says
    other = sandbox.store.create({"CoworkerBookingCreditId": 101, "CreditUsed": "1.99",
                                  "Description": "first"})
    wrong = etl("resolve", f"{path}:2", "--created", str(other), *api, env=NO_ENV)
    # the row's amount as written, not Decimal('1.25')
    assert wrong.code == 2 and "CreditUsed 1.99 (the row: 1.25)" in wrong.err, wrong.err
    right = etl("resolve", f"{path}:2", "--created", str(record), *api, env=NO_ENV)
    assert right.code == 0 and f"created, record {record}" in right.out
    rerun = etl("import", path, *api, "--no-system-id", "--timeout", "0.3", env=NO_ENV)
    assert [r["outcome"] for r in rerun.report()] == ["skipped"] and sandbox.stats.posts == 1


def test_not_created_once_settled_and_no_record_is_sent_by_the_rerun(etl, sandbox, api, tmp_path):
    sandbox.script("error")
    sandbox.script_list("ok", *["list_error"] * 40)  # the new journal's look is answered
    path = write(tmp_path, "a.csv", "101,1,a")
    run = etl("import", path, *api, "--no-system-id", "--timeout", "0.2", env=NO_ENV)
    assert [r["outcome"] for r in run.report()] == ["in_doubt"]
    while sandbox.next_list_fault() != "ok":
        pass
    time.sleep(0.7)
    done = etl("resolve", f"{path}:2", "--not-created", "--note", "checked", *api, env=NO_ENV)
    assert done.code == 0, done.err
    rerun = etl("import", path, *api, "--no-system-id", "--timeout", "0.3", env=NO_ENV)
    assert [r["outcome"] for r in rerun.report()] == ["created"]
    assert sandbox.stats.posts == 2 and len(sandbox.store.records()) == 1


def test_created_is_refused_for_a_record_the_server_says_is_another_rows(etl, sandbox, api, tmp_path):
    """Two identical rows in doubt (each POST answered 504); their records, each with its row's
    SystemId, and an admin's record of the same values without one. --created naming the other
    row's record, or the admin's, is refused: the account keeps SystemId, and neither carries
    this row's (before: accepted; the other row was then sent again, a duplicate, or this row
    was never sent, a charge never made)."""
    first = etl("import", write(tmp_path, "warm.csv", "100,1,warm"), *api, "--timeout", "0.5", env=NO_ENV)
    assert first.code == 0  # the account is seen to keep SystemId
    sandbox.script("gateway_timeout", "gateway_timeout")
    path = write(tmp_path, "f.csv", "7,2.5,Desk", "7,2.5,Desk")
    run = etl("import", path, *api, "--timeout", "0.5", "--settle-wait", "0", env=NO_ENV)
    assert [r["outcome"] for r in run.report()] == ["in_doubt", "in_doubt"]
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        keys = dict(db.execute("SELECT row, system_id FROM rows WHERE source LIKE '%f.csv'").fetchall())
    db.close()
    values = {"CoworkerBookingCreditId": 7, "CreditUsed": 2.5, "Description": "Desk"}
    admin = sandbox.store.create(values)
    row2 = sandbox.store.create({**values, "SystemId": keys[2]})
    row3 = sandbox.store.create({**values, "SystemId": keys[3]})
    wrong = etl("resolve", f"{path}:3", "--created", str(row2), *api, env=NO_ENV)
    assert wrong.code == 2 and "another row's" in wrong.err, wrong.err
    theirs = etl("resolve", f"{path}:3", "--created", str(admin), *api, env=NO_ENV)
    assert theirs.code == 2 and "it was made otherwise" in theirs.err, theirs.err
    right = etl("resolve", f"{path}:3", "--created", str(row3), *api, env=NO_ENV)
    assert right.code == 0, right.err
