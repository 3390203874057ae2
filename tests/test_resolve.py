"""`etl resolve` decides a row in doubt by hand, but never against the evidence: --not-created is
refused while the row's request may still settle or a record that may be its own exists;
--created ID is refused for a record whose values are not the row's."""

from __future__ import annotations

import time

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, write


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
