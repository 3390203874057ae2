"""Reconciliation proves before it resends, against servers that behave as real ones do: skewed
clocks, local times, shortened descriptions, late gateways, broken list answers, someone else's
record, endless throttling, odd Retry-After, trickling answers, SystemId refused or forgotten."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
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
def post(etl, sandbox):
    def run(*args):
        return etl("import", *args, "--api-url", sandbox.url, "--rate", "1000", "--token", TOKEN, env=NO_ENV)
    return run


def outcomes(run) -> list[str]:
    return [r["outcome"] for r in run.report()]


def meta(url: str, key: str) -> str | None:
    with sqlite3.connect(journal_of(url)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def each_once(run, sandbox) -> None:
    """Every row has one record of its own: no duplicate, none lost."""
    ids = sorted(int(r["id"]) for r in run.report())
    assert ids == [r["Id"] for r in sandbox.store.records()], run.report()


ROWS = ("101,1,first", "102,2,second", "103,3,third")


@pytest.mark.parametrize("system_id", ["--no-system-id", "--tag-description"])
def test_a_server_clock_20_minutes_behind_ours(post, sandbox, tmp_path, system_id):
    sandbox.faults.clock_skew = -1200
    sandbox.script("ok", "error_after_create", "drop_after_create")
    run = post(write(tmp_path, "a.csv", *ROWS), system_id, "--timeout", "0.3")
    assert outcomes(run) == ["created"] * 3, run.report()
    each_once(run, sandbox)


def test_created_on_in_local_time_west_of_utc_learnt_from_the_first_record(post, sandbox, tmp_path):
    sandbox.faults.created_on_offset = -8
    sandbox.script("ok", "error_after_create", "drop_after_create")
    run = post(write(tmp_path, "a.csv", *ROWS), "--no-system-id", "--timeout", "0.3")
    assert outcomes(run) == ["created"] * 3, run.report()
    each_once(run, sandbox)
    assert meta(sandbox.url, "created_on_zone") == "-28800"


def test_a_local_created_on_in_an_unknown_zone_keeps_the_row_in_doubt_never_resent(
    post, etl, sandbox, tmp_path
):
    sandbox.faults.created_on_offset = -8
    sandbox.script("error_after_create")
    path = write(tmp_path, "a.csv", "101,1,first")
    run = post(path, "--no-system-id", "--timeout", "0.3")  # the first record: nothing to learn from
    row = run.report()[0]
    assert row["outcome"] == "in_doubt"
    assert "it can't be told to be this row's" in row["errors"] and "etl resolve" in row["errors"]
    assert run.code == 1
    assert len(sandbox.store.records()) == 1 and sandbox.stats.posts == 1
    record = sandbox.store.records()[0]["Id"]
    assert etl("reconcile", "--api-url", sandbox.url, "--token", TOKEN, env=NO_ENV).code == 1
    other = sandbox.store.create({"CoworkerBookingCreditId": 999, "CreditUsed": "1", "Description": "x"})
    for wrong, why in ((other, "is not this row's credit use: CoworkerBookingCreditId 999"),
                       (12345, "there is no record 12345")):
        refused = etl("resolve", f"{path}:2", "--created", str(wrong), "--api-url", sandbox.url,
                      "--token", TOKEN, env=NO_ENV)
        assert refused.code == 2 and why in refused.err, refused.err
    done = etl("resolve", f"{path}:2", "--created", str(record), "--note", "seen in the UI",
               "--api-url", sandbox.url, "--token", TOKEN, env=NO_ENV)
    assert done.code == 0, done.err
    assert f"created, record {record}" in done.out
    again = post(path, "--no-system-id")
    assert outcomes(again) == ["skipped"] and again.report()[0]["id"] == str(record)


@pytest.mark.parametrize("knob", ["description_max", "description_trim", "description_html"])
def test_a_server_that_shortens_trims_or_encodes_descriptions(post, sandbox, tmp_path, knob):
    setattr(sandbox.faults, knob, 12 if knob == "description_max" else True)
    sandbox.faults.amount_round = 1
    sandbox.script("ok", "error_after_create", "drop_after_create")
    path = write(tmp_path, "a.csv", '101,1.25,"  first  <use> of the  day & more "',
                 '102,2.25,"Réunion <b>room</b>   & café, long text"', "103,3.25,plain")
    run = post(path, "--no-system-id", "--timeout", "0.3")
    assert outcomes(run) == ["created"] * 3, run.report()
    each_once(run, sandbox)


@pytest.mark.parametrize("system_id", [[], ["--no-system-id"]])
def test_a_504_whose_record_appears_seconds_later_is_not_sent_again(post, sandbox, tmp_path, system_id):
    sandbox.faults.late_delay = 0.8
    sandbox.script("ok", "gateway_timeout_late", "bad_gateway")
    run = post(write(tmp_path, "a.csv", *ROWS), "--timeout", "0.5", "--settle-wait", "2", *system_id)
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created", "in_doubt"], rows
    # the 502 created nothing, but a gateway's answer settles only after 10 minutes: not resent
    assert re.search(r"may still be under way for (59\d|600) s more", rows[2]["errors"])
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 2


def test_a_list_answer_without_records_proves_nothing(post, sandbox, tmp_path):
    sandbox.script("ok", "error_after_create")
    # the new journal's looks for rows posted before under another journal (one a row) are
    # answered; the lists after them are not
    sandbox.script_list("ok", "ok", *["list_no_records"] * 40)
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--no-system-id", "--timeout", "0.2")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "in_doubt"]
    assert "could not check: the list of coworkerbookingcreditusehistories came back without Records" \
        in rows[1]["errors"]
    assert run.code == 1 and "Traceback" not in run.err
    assert len(sandbox.store.records()) == 2 and sandbox.stats.posts == 2
    sandbox.script_list()  # the server reads right again: the next run finds the record
    while sandbox.next_list_fault() != "ok":
        pass
    again = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--no-system-id")
    assert outcomes(again) == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_throttled_and_dropped_list_reads_are_waited_out_and_tried_again(post, sandbox, tmp_path):
    sandbox.script("ok", "error_after_create")
    sandbox.script_list("list_throttle", "list_drop", "list_error")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--no-system-id", "--timeout", "0.5")
    assert outcomes(run) == ["created", "created"], run.report()
    each_once(run, sandbox)


def _other_uses(sandbox, n: int = 620) -> None:
    for i in range(n):  # more than one page of other uses of the same credit
        sandbox.store.create({"CoworkerBookingCreditId": 101, "CreditUsed": "9", "Description": f"old {i}"})


def test_a_list_that_shifts_under_an_insert_is_read_to_its_end(post, sandbox, tmp_path):
    _other_uses(sandbox)
    sandbox.faults.list_shift = 1.0
    sandbox.script("ok", "error_after_create", "error")
    run = post(write(tmp_path, "a.csv", "101,1,a", "101,2,b", "101,3,c"), "--no-system-id",
               "--timeout", "0.3")
    assert outcomes(run) == ["created"] * 3, run.report()
    assert len(sandbox.store.records()) == 623


def test_a_list_that_ignores_page_proves_nothing(post, sandbox, tmp_path):
    _other_uses(sandbox)
    sandbox.faults.list_ignore_page = 1.0
    # the new journal's looks are read right: the first page of every record (more than a page:
    # no proof), then two pages a row
    sandbox.script_list(*["ok"] * 5)
    sandbox.script("ok", "error")
    run = post(write(tmp_path, "a.csv", "101,1,a", "101,2,b"), "--no-system-id", "--timeout", "0.2")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "in_doubt"]
    assert "could not be read to its end" in rows[1]["errors"]
    assert sandbox.stats.posts == 2 and len(sandbox.store.records()) == 621


def test_a_record_that_may_be_either_of_two_rows_is_taken_by_neither(post, sandbox, tmp_path):
    sandbox.faults.description_max = 10
    sandbox.script("ok", "error", "error_after_create")
    path = write(tmp_path, "a.csv", "101,1,first use", "101,1.5,Meeting room Ada",
                 "101,1.5,Meeting room Turing")
    run = post(path, "--no-system-id", "--timeout", "0.2")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "in_doubt", "in_doubt"], rows
    assert "it can't be told to be this row's" in rows[1]["errors"]
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 2


def test_a_description_cut_very_short_still_counts_as_ours_and_is_never_resent(post, sandbox, tmp_path):
    """A server that keeps 6 characters: the record of a 500 after creating reads "Meetin", which
    is not proof the row is absent (it was resent, a second credit use, when short cuts were
    not taken for ours)."""
    sandbox.faults.description_max = 6
    sandbox.script("error_after_create", "ok")
    path = write(tmp_path, "a.csv", "101,1,Meeting room Ada", "102,2,Hot desk")
    run = post(path, "--no-system-id", "--timeout", "0.2")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"], rows
    assert sandbox.stats.posts == 2 and len(sandbox.store.records()) == 2
    assert [r["outcome"] for r in post(path, "--no-system-id").report()] == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_a_504_whose_record_comes_after_our_settle_period_is_never_resent(post, sandbox, tmp_path):
    sandbox.faults.late_delay = 4.0  # far longer than 2 x --timeout and a grace period
    sandbox.script("ok", "gateway_timeout_late")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = post(path, "--no-system-id", "--timeout", "0.3", "--settle-wait", "1")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "in_doubt"], rows
    assert sandbox.stats.posts == 2
    deadline = time.monotonic() + 15
    while len(sandbox.store.records()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    again = post(path, "--no-system-id", "--timeout", "0.3")
    assert [r["outcome"] for r in again.report()] == ["skipped", "skipped"]
    assert sandbox.stats.posts == 2 and len(sandbox.store.records()) == 2


def test_a_zone_that_moved_since_it_was_learnt_never_leads_to_a_resend(post, sandbox, tmp_path):
    sandbox.faults.created_on_offset = -7
    post(write(tmp_path, "first.csv", "100,1,learn the zone"), "--no-system-id")
    sandbox.faults.created_on_offset = -8  # daylight saving time ended
    sandbox.faults.error_after_create = 1.0
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--no-system-id", "--timeout", "0.2")
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 3
    assert set(outcomes(run)) <= {"created", "in_doubt"}


def test_a_re_export_with_an_added_column_of_a_row_in_doubt_stops_the_run(post, sandbox, tmp_path):
    sandbox.script("error_after_create")
    sandbox.script_list("ok", *["list_error"] * 40)  # the new journal's look is answered
    path = tmp_path / "export.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,a\n")
    assert outcomes(post(path, "--no-system-id", "--timeout", "0.2")) == ["in_doubt"]
    while sandbox.next_list_fault() != "ok":
        pass
    path.write_text("Site,CoworkerBookingCreditId,CreditUsed,Description\nLondon,101,1,a\n")
    run = post(path, "--no-system-id")
    assert run.code == 2 and "another way of identifying rows" in run.err
    assert sandbox.stats.posts == 1


def test_someone_elses_identical_record_made_before_our_request_is_not_claimed(post, sandbox, tmp_path):
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)).isoformat()
    theirs = sandbox.store.create({"CoworkerBookingCreditId": 102, "CreditUsed": "2", "Description": "b"},
                                  created_on=before)
    sandbox.script("ok", "error")  # our request for row 3 created nothing
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    first = post(path, "--no-system-id", "--timeout", "0.3")  # without SystemId: by its values
    assert first.code == 2 and "has its exact values and was not made by this journal" in first.err
    assert len(sandbox.store.records()) == 1
    # the operator knows theirs is another credit use with the same values
    run = post(path, "--no-system-id", "--timeout", "0.3", "--allow-new-identity")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"]
    assert int(rows[1]["id"]) != theirs
    assert len(sandbox.store.records()) == 3


def test_rows_in_doubt_from_another_file_are_checked_and_named_not_reported_as_sent(
    post, sandbox, tmp_path
):
    sandbox.script("ok", "error_after_create")
    sandbox.script_list("ok", "ok", *["list_error"] * 40)  # the new journal's looks are answered
    night1 = write(tmp_path, "night1.csv", "101,1,a", "102,2,b")
    first = post(night1, "--no-system-id", "--timeout", "0.2")
    assert outcomes(first) == ["created", "in_doubt"]
    while sandbox.next_list_fault() != "ok":
        pass
    second = post(write(tmp_path, "night2.csv", "103,3,c"), "--no-system-id")
    assert outcomes(second) == ["created"]
    assert f"{night1} row 3 (not in this run): checked: it was created" in second.err
    assert second.summary()["other_files"] == {"checked": 1, "created": 1, "not_created": 0,
                                               "in_doubt": 0}
    assert outcomes(post(night1, "--no-system-id")) == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 3


def test_a_server_that_throttles_every_post_stops_the_run_like_the_daily_limit(post, sandbox, tmp_path):
    sandbox.faults.throttle_all = True
    sandbox.faults.retry_after = "1"
    started = time.monotonic()
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--throttle-patience", "1.5")
    assert run.code == 4
    assert "--throttle-patience" in run.err
    assert outcomes(run) == ["not_attempted", "not_attempted"]
    assert time.monotonic() - started < 15
    assert sandbox.store.records() == []


@pytest.mark.parametrize("value", ["soon", "120s", "later", "-5", "when" * 30])
def test_any_retry_after_is_read_without_a_traceback(post, sandbox, tmp_path, value):
    sandbox.faults.retry_after = value
    sandbox.script("throttle")
    run = post(write(tmp_path, "a.csv", "101,1,a"), "--throttle-patience", "30")
    assert "Traceback" not in run.err
    if value == "120s":  # two minutes is longer than the patience: a stop, not a hang
        assert run.code == 4 and outcomes(run) == ["not_attempted"]
    else:
        assert run.code == 0 and outcomes(run) == ["created"]


def test_a_retry_after_given_as_an_http_date(post, sandbox, tmp_path):
    sandbox.faults.retry_after = email.utils.formatdate(time.time() + 1, usegmt=True)
    sandbox.script("throttle")
    run = post(write(tmp_path, "a.csv", "101,1,a"))
    assert run.code == 0 and outcomes(run) == ["created"]


def test_an_answer_trickling_a_byte_at_a_time_is_cut_off_at_the_timeout(post, sandbox, tmp_path):
    sandbox.faults.trickle = 0.2
    started = time.monotonic()
    run = post(write(tmp_path, "a.csv", "101,1,a"), "--timeout", "1", "--no-system-id")
    assert time.monotonic() - started < 20
    sandbox.faults.trickle = 0.0
    assert outcomes(run) == ["created"], run.report()  # in doubt at first, then found
    each_once(run, sandbox)


def test_a_tls_failure_is_nothing_sent_with_a_plain_message(etl, sandbox, tmp_path):
    url = sandbox.url.replace("http://", "https://")
    run = etl("import", write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--api-url", url,
              "--token", TOKEN, env=NO_ENV)
    assert run.code == 3
    # at the new journal's first look, before any POST: the run stops, as an API it can't reach does
    assert run.err.startswith("etl: error: could not open a secure connection")
    assert "nothing was sent" in run.err
    assert "Traceback" not in run.err
    assert sandbox.stats.posts == 0


def test_systemid_refused_is_turned_off_for_the_target_and_the_row_sent_without_it(
    post, sandbox, tmp_path
):
    sandbox.faults.system_id = "refuse"
    sandbox.script("ok", "ok", "error_after_create")
    run = post(write(tmp_path, "a.csv", *ROWS), "--timeout", "0.3")
    assert outcomes(run) == ["created"] * 3, run.report()
    each_once(run, sandbox)
    assert "SystemId off" in run.err and meta(sandbox.url, "system_id") == "off"
    assert all(r["SystemId"] is None for r in sandbox.store.records())


def test_systemid_dropped_silently_is_found_out_by_reading_the_first_record_back(post, sandbox, tmp_path):
    sandbox.faults.system_id = "drop"
    sandbox.script("ok", "error_after_create")
    run = post(write(tmp_path, "a.csv", *ROWS[:2]), "--timeout", "0.3")
    assert outcomes(run) == ["created"] * 2
    each_once(run, sandbox)
    assert meta(sandbox.url, "system_id") == "off"


@pytest.mark.parametrize("ignore_filter", [False, True])
def test_with_systemid_kept_identical_rows_are_told_apart_exactly(post, sandbox, tmp_path, ignore_filter):
    sandbox.faults.ignore_system_id_filter = ignore_filter
    sandbox.script("ok", "error_after_create", "drop_after_create", "error", "ok")
    run = post(write(tmp_path, "a.csv", *["101,1,same"] * 5), "--timeout", "0.3")
    assert outcomes(run) == ["created"] * 5, run.report()
    each_once(run, sandbox)
    assert meta(sandbox.url, "system_id") == "on"
    by_id = {r["Id"]: r["SystemId"] for r in sandbox.store.records()}
    assert len(set(by_id.values())) == 5


def test_a_row_sent_again_at_the_end_goes_without_the_systemid_the_account_refused(post, sandbox, tmp_path):
    """Row 2's first POST (with SystemId) answered 500 before anything was made; row 3's was
    refused for SystemId, so the target is 'SystemId off'. Row 2, proved absent at the end, is
    sent again without the field (its stored body still had it: a 400, taken as a rejection)."""
    sandbox.faults.system_id = "refuse"
    sandbox.script("error")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--timeout", "0.3")
    assert outcomes(run) == ["created", "created"], run.report()
    each_once(run, sandbox)
    assert meta(sandbox.url, "system_id") == "off"
    assert run.code == 0


@pytest.mark.parametrize("others", [0, 620])
def test_a_new_journal_finds_another_journals_record_among_few_records_or_many(
        post, sandbox, tmp_path, monkeypatch, others):
    """A new journal reads a target of few records in one page, and one of more a row at a time:
    either way the record another journal made of a row stops it before any POST."""
    _other_uses(sandbox, others)
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    assert outcomes(post(path, "--no-system-id")) == ["created", "created"]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-machine"))
    run = post(path, "--no-system-id")
    assert run.code == 2 and "another journal has these rows" in run.err, run.err
    assert len(sandbox.store.records()) == others + 2 and sandbox.stats.posts == 2


def test_a_first_row_that_is_not_created_leaves_the_systemid_check_to_the_next_row(post, sandbox, tmp_path):
    """The first row of a chunk is sent alone and its record read back, to learn whether the
    account keeps SystemId. When that row meets a fault (a 503 here), the next row sent is
    read back instead: the rows in doubt of the night are checked by SystemId, exactly, not
    by their fields for want of one record read back."""
    sandbox.script("unavailable", "ok", "unavailable")
    path = write(tmp_path, "a.csv", *ROWS)
    run = post(path, "--timeout", "0.2", "--settle-wait", "0")
    assert outcomes(run) == ["in_doubt", "created", "in_doubt"], run.report()
    assert meta(sandbox.url, "system_id") == "on"
    doubt = [r["errors"] for r in run.report() if r["outcome"] == "in_doubt"]
    assert all("no record carries its SystemId" in why for why in doubt), doubt
    assert sandbox.stats.posts == 3 and sandbox.stats.reads == 1
