"""`etl import` against the sandbox over loopback: outcomes, reruns, faults, limits, secrets."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.conftest import SAMPLES

TOKEN = "test-token-not-a-real-one-0001"
USER, PASSWORD = "ops@example.com", "made-up-password-for-tests"
NO_ENV = {"NEXUDUS_TOKEN": None, "NEXUDUS_USERNAME": None, "NEXUDUS_PASSWORD": None,
          "NEXUDUS_API_URL": None}


@pytest.fixture
def sandbox():
    box = Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), username=USER, password=PASSWORD)
    with box:
        yield box


@pytest.fixture
def post(etl, sandbox):
    """`etl import FILE` into the sandbox with the test token, fast pacing, a local journal."""

    def run(path, *extra, token: bool = True):
        args = ["import", path, "--api-url", sandbox.url, "--rate", "1000", *extra]
        if token:
            args += ["--token", TOKEN]
        return etl(*args, env=NO_ENV)

    return run


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("CoworkerBookingCreditId,CreditUsed,Description\n" + "\n".join(lines) + "\n")
    return path


def journal_of(url: str) -> str:
    from etl.ledger.entries import default_journal_path, normalise_url

    return default_journal_path(normalise_url(url))


def journal_states(url: str) -> list[tuple[str, int | None]]:
    with sqlite3.connect(journal_of(url)) as db:
        return db.execute("SELECT state, record_id FROM rows ORDER BY row").fetchall()


def test_created_ids_land_in_report_and_journal_and_a_rerun_posts_nothing(post, sandbox):
    run = post(SAMPLES / "credit_uses.csv")
    assert run.code == 0, run.err
    rows = run.report()
    assert {r["outcome"] for r in rows} == {"created"}
    ids = [int(r["id"]) for r in rows]
    assert sorted(ids) == [r["Id"] for r in sandbox.store.records()]
    assert rows[0]["http_status"] == "200" and rows[0]["attempts"] == "1"
    assert [i for _, i in journal_states(sandbox.url)] == ids
    first = sandbox.store.records()[0]
    assert (first["CoworkerBookingCreditId"], first["CreditUsed"], first["BookingId"]) == (1281, 1.5, 880000)

    posts = sandbox.stats.posts
    again = post(SAMPLES / "credit_uses.csv")
    assert again.code == 0
    assert sandbox.stats.posts == posts
    assert [(r["outcome"], int(r["id"])) for r in again.report()] == [("skipped", i) for i in ids]
    assert again.out.startswith("24 rows: 24 skipped.")


def test_invalid_rows_are_not_sent(post, sandbox):
    run = post(SAMPLES / "credit_uses_with_errors.csv")
    assert run.code == 1
    outcomes = [r["outcome"] for r in run.report()]
    assert outcomes.count("created") == 6 and outcomes.count("invalid") == 6
    assert len(sandbox.store.records()) == 6


def test_two_identical_rows_are_two_credit_uses_each_created_once(post, sandbox, tmp_path):
    path = write(tmp_path, "twins.csv", "101,1.5,coffee", "101,1.5,coffee", "101,1.50,coffee")
    assert post(path).code == 0
    assert len(sandbox.store.records()) == 3
    again = post(path)
    assert [r["outcome"] for r in again.report()] == ["skipped"] * 3
    assert len(sandbox.store.records()) == 3


def test_throttled_request_waits_and_is_sent_again(post, sandbox, tmp_path):
    sandbox.script("throttle", "throttle")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"))
    assert run.code == 0
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"]
    assert rows[0]["attempts"] == "3"
    assert len(sandbox.store.records()) == 2


def test_expired_token_is_refreshed_once_and_the_row_resent(post, sandbox, tmp_path):
    sandbox.script("unauthorized")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--username", USER,
               "--password", PASSWORD, token=False)
    assert run.code == 0, run.err
    assert [r["attempts"] for r in run.report()] == ["2", "1"]
    assert len(sandbox.store.records()) == 2


def test_token_refused_twice_aborts(post, sandbox, tmp_path):
    sandbox.script("unauthorized", "unauthorized")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--username", USER,
               "--password", PASSWORD, token=False)
    assert run.code == 3
    assert "refused the credentials twice (HTTP 401)" in run.out + run.err
    assert "NEXUDUS_USERNAME / NEXUDUS_PASSWORD" in run.out + run.err
    assert [r["outcome"] for r in run.report()] == ["not_attempted", "not_attempted"]
    assert sandbox.store.records() == []


def test_wrong_password_aborts_before_anything_is_sent(post, sandbox, tmp_path):
    run = post(write(tmp_path, "a.csv", "101,1,a"), "--username", USER, "--password", "wrong-pass",
               token=False)
    assert run.code == 3
    assert "authentication refused" in run.err and "The user name or password is incorrect" in run.err
    assert "wrong-pass" not in run.err
    assert sandbox.stats.posts == 0


def test_no_credentials_is_a_usage_error(etl, tmp_path):
    run = etl("import", write(tmp_path, "a.csv", "101,1,a"), env=NO_ENV)
    assert run.code == 2
    assert "no credentials: set NEXUDUS_TOKEN" in run.err


def test_400_with_errors_is_rejected_with_the_api_message(post, sandbox, tmp_path):
    sandbox.script("reject")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"))
    assert run.code == 1
    rows = run.report()
    assert (rows[0]["outcome"], rows[0]["http_status"]) == ("rejected", "400")
    assert rows[0]["errors"] == "CreditUsed: total use would exceed the credit's TotalCredit"
    assert rows[1]["outcome"] == "created"


def test_200_with_was_successful_false_is_a_rejection(post, sandbox, tmp_path):
    sandbox.script("unsuccessful")
    rows = post(write(tmp_path, "a.csv", "101,1,a")).report()
    assert (rows[0]["outcome"], rows[0]["http_status"]) == ("rejected", "200")
    assert rows[0]["errors"] == "CreditUsed: exceeds the remaining credit"
    assert sandbox.store.records() == []


def test_500_after_create_is_looked_up_and_found_created(post, sandbox, tmp_path):
    sandbox.script("error_after_create")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"))
    assert run.code == 0
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"]
    records = sandbox.store.records()
    assert len(records) == 2
    assert int(rows[0]["id"]) == records[0]["Id"] and rows[0]["http_status"] == "500"


def test_500_that_created_nothing_settles_is_checked_and_sent_again_in_the_same_run(
    post, sandbox, tmp_path
):
    sandbox.script("error")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = post(path, "--timeout", "0.3")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"], rows
    assert run.code == 0
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 2
    again = post(path)
    assert [r["outcome"] for r in again.report()] == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


@pytest.mark.parametrize("fault", ["drop_after_create", "hang_after_create"])
def test_unanswered_request_that_created_the_record_is_found(post, sandbox, tmp_path, fault):
    sandbox.faults.hang = 1.0
    sandbox.script(fault)
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b"), "--timeout", "0.4")
    assert run.code == 0
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"]
    assert rows[0]["http_status"] == ""
    assert sorted(int(r["id"]) for r in rows) == [r["Id"] for r in sandbox.store.records()]


def test_unanswered_request_with_no_record_is_sent_again_only_once_settled(post, sandbox, tmp_path):
    sandbox.script("drop")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = post(path, "--timeout", "0.4")
    assert run.code == 0, run.err
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"]
    assert len(sandbox.store.records()) == 2
    log = (run.report_path().parent / "log.jsonl").read_text()
    events = [json.loads(line) for line in log.splitlines() if '"event": "row"' in line]
    first = [(e["from"], e["to"]) for e in events if e["row"] == 2]
    # sent, in doubt, not yet provable (still under way), then proved absent, sent again
    assert first == [("new", "pending"), ("pending", "in_doubt"), ("in_doubt", "in_doubt"),
                     ("in_doubt", "failed"), ("failed", "pending"), ("pending", "created")], first


def test_identical_rows_in_doubt_are_interchangeable(post, sandbox, tmp_path):
    sandbox.script("error_after_create", "error_after_create")
    path = write(tmp_path, "a.csv", "101,1,same", "101,1,same")
    run = post(path, "--no-system-id", "--timeout", "0.3")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"]
    ids = [r["Id"] for r in sandbox.store.records()]
    assert sorted(int(r["id"]) for r in rows) == ids
    assert [r["outcome"] for r in post(path).report()] == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_tag_description_makes_identical_rows_reconcilable(post, sandbox, tmp_path):
    sandbox.script("error_after_create", "error_after_create")
    run = post(write(tmp_path, "a.csv", "101,1,same", "101,1,same"), "--tag-description")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "created"]
    records = sandbox.store.records()
    assert sorted(int(r["id"]) for r in rows) == [r["Id"] for r in records]
    assert all(r["Description"].startswith("same [etl:") for r in records)
    assert records[0]["Description"] != records[1]["Description"]


@pytest.mark.parametrize("fault", ["unavailable_after_create", "request_timeout_after_create"])
@pytest.mark.parametrize("system_id", [[], ["--no-system-id"]])
def test_a_503_or_408_may_come_after_the_record_was_made_so_the_row_is_checked_never_resent(
    post, sandbox, tmp_path, fault, system_id
):
    """The API's own "not processed" is its 409; a 503 (a gateway giving up) or a 408 may come
    after the server created the record: the row is in doubt and found, never sent again."""
    sandbox.script("ok", fault, "ok")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b", "103,3,c")
    run = post(path, "--timeout", "0.3", *system_id)
    rows = run.report()
    assert [(r["outcome"], r["attempts"]) for r in rows] == [("created", "1")] * 3, rows
    assert sandbox.stats.faults[fault] == 1
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 3
    assert sorted(int(r["id"]) for r in rows) == [r["Id"] for r in sandbox.store.records()]
    assert run.code == 0


def test_a_503_that_made_nothing_is_sent_again_only_once_settled_and_checked(post, sandbox, tmp_path):
    sandbox.script("ok", "unavailable")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = post(path, "--timeout", "0.3", "--gateway-settle", "0.6")
    rows = run.report()
    assert [(r["outcome"], r["attempts"]) for r in rows] == [("created", "1"), ("created", "2")], rows
    assert run.code == 0
    log = (run.report_path().parent / "log.jsonl").read_text()
    assert "HTTP 503; it may have been created: not sent again until checked" in log
    assert sandbox.stats.posts == 3 and len(sandbox.store.records()) == 2
    again = post(path)
    assert [r["outcome"] for r in again.report()] == ["skipped", "skipped"]
    assert sandbox.stats.posts == 3


def test_daily_limit_stops_at_exactly_n_and_a_later_run_goes_on(post, sandbox):
    run = post(SAMPLES / "credit_uses.csv", "--daily-limit", "5")
    assert run.code == 4
    outcomes = [r["outcome"] for r in run.report()]
    assert outcomes == ["created"] * 5 + ["not_attempted"] * 19
    assert len(sandbox.store.records()) == 5
    assert "daily-limit 5 reached" in run.out
    assert run.summary()["exit_code"] == 4

    same_day = post(SAMPLES / "credit_uses.csv", "--daily-limit", "5")
    assert same_day.code == 4 and len(sandbox.store.records()) == 5

    # the next day's quota, as a larger limit today
    later = post(SAMPLES / "credit_uses.csv", "--daily-limit", "12")
    expected = ["skipped"] * 5 + ["created"] * 7 + ["not_attempted"] * 12
    assert [r["outcome"] for r in later.report()] == expected
    final = post(SAMPLES / "credit_uses.csv", "--daily-limit", "1000")
    assert final.code == 0
    assert len(sandbox.store.records()) == 24
    assert len({(r["Id"]) for r in sandbox.store.records()}) == 24


def test_server_daily_quota_stops_the_run_cleanly(post, sandbox, tmp_path):
    sandbox.faults.daily_limit = 1
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b", "103,3,c"))
    assert run.code == 4
    assert [r["outcome"] for r in run.report()] == ["created", "not_attempted", "not_attempted"]
    assert "daily quota is spent" in run.out


def test_max_errors_aborts_a_run_whose_posts_all_fail(etl, sandbox, tmp_path):
    sandbox.faults.blocked = 1.0  # a firewall refuses every POST (403)
    path = write(tmp_path, "a.csv", *[f"{100 + i},1,x" for i in range(10)])
    run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
              "--max-errors", "3", "--journal", "j.sqlite3", "--no-check-credits", env=NO_ENV)
    assert run.code == 3
    outcomes = [r["outcome"] for r in run.report()]
    assert outcomes[:3] == ["failed"] * 3 and set(outcomes[3:]) == {"not_attempted"}
    assert "--max-errors 3 reached" in run.out


def test_concurrent_posting_keeps_input_order_and_creates_each_row_once(post, sandbox):
    sandbox.faults.latency = 0.01
    run = post(SAMPLES / "credit_uses.csv", "--concurrency", "4", "--batch-size", "5")
    assert run.code == 0
    rows = run.report()
    assert [int(r["row"]) for r in rows] == list(range(2, 26))
    by_id = {r["Id"]: r for r in sandbox.store.records()}
    for r in rows:
        record = by_id[int(r["id"])]
        assert record["CoworkerBookingCreditId"] == int(r["CoworkerBookingCreditId"])
        assert record["Description"] == r["Description"]
    assert len(by_id) == 24


def test_a_row_left_pending_by_a_killed_run_is_judged_by_the_timeout_it_was_sent_with(
    post, sandbox, tmp_path
):
    """A run killed mid-request (sent with the default 30 s time-out) is rerun at once with
    --timeout 0.3: its request may still be under way, so the row is in doubt, never resent."""
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    sandbox.faults.latency = 6.0
    proc = subprocess.Popen([sys.executable, "-m", "etl", "import", str(path), "--api-url", sandbox.url,
                             "--token", TOKEN, "-q", "--no-check-credits"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NEXUDUS_TOKEN": ""})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the row is entered pending just before its request leaves
        time.sleep(0.05)
        try:
            with sqlite3.connect(journal_of(sandbox.url)) as db:
                if db.execute("SELECT 1 FROM rows WHERE state = 'pending'").fetchone():
                    break
        except sqlite3.Error:
            pass
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    sandbox.faults.latency = 0.0
    run = post(path, "--timeout", "0.3", "--settle-wait", "1")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["in_doubt", "created"], rows
    assert "may still be under way" in rows[0]["errors"]
    assert run.code == 1
    while len(sandbox.store.records()) < 2 and time.monotonic() < deadline + 10:
        time.sleep(0.1)  # the killed run's request is still being processed: then its record exists
    later = post(path, "--timeout", "0.3")
    assert [r["outcome"] for r in later.report()] == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_key_columns_identify_rows(post, sandbox, tmp_path):
    path = tmp_path / "keyed.csv"
    path.write_text("ExternalId,CoworkerBookingCreditId,CreditUsed\nA1,101,1\nA2,102,2\nA1,103,3\n")
    run = post(path, "--key", "ExternalId")
    assert [r["outcome"] for r in run.report()] == ["created", "created", "invalid"]
    assert "key: A1 repeats" in run.report()[2]["errors"]
    path.write_text("ExternalId,CoworkerBookingCreditId,CreditUsed\nA1,101,1.0\nA2,102,2\n")
    assert [r["outcome"] for r in post(path, "--key", "ExternalId").report()] == ["skipped", "skipped"]


def test_journal_is_per_target_and_spelling_of_the_url_does_not_matter(post, etl, sandbox, tmp_path):
    path = write(tmp_path, "a.csv", "101,1,a")
    assert post(path).code == 0
    port = sandbox.url.rsplit(":", 1)[1]
    for spelling in (f"HTTP://127.0.0.1:{port}/", f"http://127.0.0.1:{port}//.", f"{sandbox.url}/x/..//",
                     f"http://localhost:{port}", f"http://127.1:{port}", f"http://2130706433:{port}",
                     f"http://0x7f.0.0.1:{port}"):  # the same address, as the resolver reads it
        run = etl("import", path, "--api-url", spelling, "--token", TOKEN, "--rate", "1000", env=NO_ENV)
        assert run.report()[0]["outcome"] == "skipped", (spelling, run.err)
    assert len(sandbox.store.records()) == 1
    # a bigger export holding it, through yet another spelling, with no journal of its own: the
    # one journal of that server (before: a new journal, whose look-up of a few rows of the file
    # missed it, and it was posted again)
    big = write(tmp_path, "big.csv", *[f"{200 + i % 2},1,b{i}" for i in range(40)], "101,1,a",
                *[f"{300 + i % 2},1,c{i}" for i in range(40)])  # few credits: few look-ups
    run = etl("import", big, "--api-url", f"http://127.1:{port}", "--token", TOKEN, "--rate", "1000",
              env=NO_ENV)
    assert [r["outcome"] for r in run.report()].count("skipped") == 1, run.err
    assert len(sandbox.store.records()) == 81
    with Sandbox(tokens=(TOKEN,)) as other:
        run = etl("import", path, "--api-url", other.url, "--token", TOKEN, "--rate", "1000", env=NO_ENV)
        assert run.report()[0]["outcome"] == "created"
        assert len(other.store.records()) == 1
        mixed = etl("import", path, "--api-url", other.url, "--token", TOKEN,
                    "--journal", journal_of(sandbox.url), env=NO_ENV)
        assert mixed.code == 2 and "is the journal of http://127.0.0.1" in mixed.err


def test_a_second_run_on_a_journal_in_use_exits_3(post, sandbox, tmp_path):
    import os

    from etl.ledger.journal import Journal

    held = Journal(journal_of(sandbox.url), sandbox.url)
    try:
        run = post(write(tmp_path, "a.csv", "101,1,a"))
    finally:
        held.close()
    assert run.code == 3
    held_by = f"another run holds the journal {journal_of(sandbox.url)} (pid {os.getpid()}, started 20"
    assert held_by in run.err
    assert "another --journal" not in run.err


def test_a_journal_named_through_a_link_is_held_by_the_same_lock(etl, sandbox, tmp_path):
    """Cron names the journal file, an operator a link to it (or a linked folder): one journal,
    one lock (before: a lock for each name, two runs at once on one journal, and both ended in a
    traceback when the row state machine refused what the other had done)."""
    from etl.ledger.journal import Journal

    (tmp_path / "srv").mkdir()
    real = tmp_path / "srv" / "journal.sqlite3"
    assert etl("import", write(tmp_path, "a.csv", "101,1,a"), "--api-url", sandbox.url, "--token", TOKEN,
               "--journal", real, env=NO_ENV).code == 0
    (tmp_path / "mine.sqlite3").symlink_to(real)
    (tmp_path / "linked").symlink_to(tmp_path / "srv")
    held = Journal(str(real), sandbox.url)
    try:
        for name in (tmp_path / "mine.sqlite3", tmp_path / "linked" / "journal.sqlite3"):
            run = etl("import", write(tmp_path, "b.csv", "102,1,b"), "--api-url", sandbox.url,
                      "--token", TOKEN, "--journal", name, env=NO_ENV)
            assert run.code == 3 and "another run holds the journal" in run.err, (name, run.err)
    finally:
        held.close()
    assert len(sandbox.store.records()) == 1


def test_a_journal_with_a_second_name_by_a_hard_link_is_refused(etl, sandbox, tmp_path):
    """A hard link is another name for the same file that no path resolves to the first: each
    name would take a lock of its own, and SQLite keeps its log beside each name (before: two
    runs at once through the two names both posted every row)."""
    import os

    real = tmp_path / "journal.sqlite3"
    api = ["--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000"]
    assert etl("import", write(tmp_path, "a.csv", "101,1,a"), *api, "--journal", real, env=NO_ENV).code == 0
    os.link(real, tmp_path / "mine.sqlite3")
    for name in (real, tmp_path / "mine.sqlite3"):
        run = etl("import", write(tmp_path, "b.csv", "102,1,b"), *api, "--journal", name, env=NO_ENV)
        assert run.code == 2 and "has 2 names (hard links)" in run.err, run.err
    assert len(sandbox.store.records()) == 1


def test_plain_http_to_another_machine_is_refused(etl, tmp_path):
    run = etl("import", write(tmp_path, "a.csv", "101,1,a"), "--api-url", "http://nexudus.example.com",
              "--token", TOKEN, env=NO_ENV)
    assert run.code == 2
    assert "plain http to another machine" in run.err


@pytest.mark.parametrize("url, why", [("http://127.0.0.1:187110", "Port out of range"),
                                      ("http://[::1", "Invalid IPv6 URL")])
def test_an_api_url_that_is_no_url_is_one_line_and_json_says_so(etl, tmp_path, url, why):
    """A port out of range or a bracket left open: one line, exit 2, and --json's one document
    (before: a traceback, exit 1, nothing on stdout)."""
    run = etl("import", write(tmp_path, "a.csv", "101,1,a"), "--api-url", url, "--token", TOKEN, "--json",
              env=NO_ENV)
    assert run.code == 2 and "Traceback" not in run.err
    assert f"--api-url '{url}' is not a URL ({why}" in run.err
    assert json.loads(run.out)["exit_code"] == 2


@pytest.mark.parametrize("args", [
    ["import", "--api-url", "http://admin:made-up-url-secret@10.255.255.1"],
    ["import", "--api-url", "ftp://admin:made-up-url-secret@x"],
    ["import", "--sandbox", "--journal", "postgresql://etl:pw@made-up-url-secret@127.0.0.1:1/x"],
    ["status", "--journal", "postgresql://etl:pw@made-up-url-secret@127.0.0.1:1/x"],
    ["status", "--journal", "host=127.0.0.1 password=made-up-url-secret dbname=x"],
    ["status", "--journal", "host=db password='made-up-url-secret and more' dbname=x"],
])
def test_a_password_in_a_url_is_never_echoed(etl, tmp_path, args):
    """A user and password in --api-url, a '@' in a journal URL's password (libpq splits at the
    first '@', and named the rest as the host it could not find), a libpq keyword string: each
    refused in one line (exit 2) that never shows the password, nor does --json or any file."""
    command, *rest = args
    files = [write(tmp_path, "a.csv", "101,1,a")] if command == "import" else []
    run = etl(command, *files, *rest, "--json", env={**NO_ENV, "NEXUDUS_TOKEN": TOKEN})
    assert run.code == 2 and "Traceback" not in run.err, run.err
    assert json.loads(run.out)["exit_code"] == 2
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert "made-up-url-secret" not in run.out + run.err + written
    assert "and more" not in run.out + run.err + written


def test_no_secret_in_anything_a_run_writes(post, sandbox, tmp_path, state_home):
    sandbox.script("unauthorized", "error_after_create", "reject")
    run = post(SAMPLES / "credit_uses.csv", "--username", USER, "--password", PASSWORD, token=False)
    written = [p for p in [*run.cwd.rglob("*"), *state_home.rglob("*")] if p.is_file()]
    assert any(str(p) == journal_of(sandbox.url) for p in written)
    issued = list(sandbox._tokens)
    for p in written:
        data = p.read_bytes()
        for secret in [PASSWORD, *issued]:
            assert secret.encode() not in data, f"{secret[:4]}… found in {p.name}"
    for secret in [PASSWORD, *issued]:
        assert secret not in run.out + run.err


def test_sandbox_flag_runs_the_whole_flow(etl):
    run = etl("import", SAMPLES / "credit_uses.csv", "--sandbox", "--rate", "500", env=NO_ENV)
    assert run.code == 0, run.err
    assert run.out.startswith("24 rows: 24 created.")
    again = etl("import", SAMPLES / "credit_uses.csv", "--sandbox", "--rate", "500", env=NO_ENV)
    assert again.out.startswith("24 rows: 24 skipped.")


def test_dry_run_is_validate(post, sandbox):
    run = post(SAMPLES / "credit_uses_with_errors.csv", "--dry-run")
    assert run.code == 1
    assert {r["outcome"] for r in run.report()} == {"valid", "invalid"}
    assert sandbox.stats.posts == 0


@pytest.mark.parametrize("option", ["--rate", "--timeout", "--settle-wait", "--gateway-settle",
                                    "--throttle-patience", "--read-rate"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_seconds_and_rates_are_finite_numbers(etl, tmp_path, option, value):
    """click's float ranges let nan and inf through: --rate nan paced nothing, --timeout nan failed
    in the socket with a traceback. Refused as any other bad value (exit 2)."""
    run = etl("import", write(tmp_path, "a.csv", "101,1,a"), "--sandbox", option, value, "--json")
    assert run.code == 2 and "is not a finite number" in run.err, run.err
    assert json.loads(run.out)["exit_code"] == 2


def test_plain_http_goes_only_to_this_machine_however_it_is_spelt(etl, tmp_path):
    """127.0.0.0/8 and ::1 in any spelling are this machine; a name that merely starts like one
    (`127.example.com`) is another machine, and plain http to it is refused before credentials
    cross the network (before: taken for this machine)."""
    path = write(tmp_path, "a.csv", "101,1,a")
    run = etl("import", path, "--api-url", "http://127.example.com:8080", "--token", TOKEN, env=NO_ENV)
    assert run.code == 2 and "plain http to another machine" in run.err


def test_a_first_run_through_any_spelling_starts_the_one_journal_of_the_server(
        etl, sandbox, tmp_path, state_home):
    """No journal yet: a run through 127.1 starts the journal every spelling of the server uses
    (so two runs through two spellings at once share one journal and its lock; before, each
    started its own, and both posted every row)."""
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    port = sandbox.url.rsplit(":", 1)[1]
    first = etl("import", path, "--api-url", f"http://127.1:{port}", "--token", TOKEN, "--rate", "1000",
                env=NO_ENV)
    assert [r["outcome"] for r in first.report()] == ["created", "created"], first.err
    for spelling in (f"http://localhost:{port}", sandbox.url):
        run = etl("import", path, "--api-url", spelling, "--token", TOKEN, "--rate", "1000", env=NO_ENV)
        assert [r["outcome"] for r in run.report()] == ["skipped", "skipped"], run.err
    journals = sorted(p.name for p in (state_home / "nexudus-etl" / "journals").glob("*.sqlite3"))
    assert journals == [f"127.0.0.1-{port}.sqlite3"]
    assert len(sandbox.store.records()) == 2
