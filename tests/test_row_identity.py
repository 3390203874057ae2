"""One row, one credit use: the journal's home, a row's identity, interrupts, and the ways an
operator really starts a run (another folder, the same file twice, a changed --key...)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, PASSWORD, TOKEN, USER, journal_of, write

HEADER = "CoworkerBookingCreditId,CreditUsed,Description"


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), username=USER, password=PASSWORD) as box:
        yield box


@pytest.fixture
def post(etl, sandbox):
    def run(*args, token: bool = True):
        return etl("import", *args, "--api-url", sandbox.url, "--rate", "1000",
                   *(["--token", TOKEN] if token else []), env=NO_ENV)
    return run


def outcomes(run) -> list[str]:
    return [r["outcome"] for r in run.report()]


def journal_rows(url: str) -> list[tuple[int, str, int | None]]:
    with sqlite3.connect(journal_of(url)) as db:
        return db.execute("SELECT row, state, record_id FROM rows ORDER BY row").fetchall()


def test_a_run_from_another_folder_finds_the_same_journal(post, sandbox, tmp_path, monkeypatch):
    path = write(tmp_path, "export.csv", "101,1,a", "102,2,b")
    assert outcomes(post(path)) == ["created", "created"]
    elsewhere = tmp_path / "cron-home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = post(path)
    again.cwd = elsewhere
    assert again.code == 0
    assert outcomes(again) == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2
    assert again.summary()["journal"] == journal_of(sandbox.url)


def test_the_same_payload_in_the_next_nights_export_is_a_new_credit_use(post, sandbox, tmp_path):
    night1 = tmp_path / "export-24.csv"
    night1.write_text("Date," + HEADER + "\n2026-11-24,101,1,coffee\n")
    night2 = tmp_path / "export-25.csv"
    night2.write_text("Date," + HEADER + "\n2026-11-25,101,1,coffee\n")
    assert outcomes(post(night1)) == ["created"]
    run = post(night2)
    assert run.code == 0
    row = run.report()[0]
    assert row["outcome"] == "created"
    first = sandbox.store.records()[0]["Id"]
    assert f"same payload as {night1} row 2 (Id {first}, created " in row["errors"]
    assert "1 rows were posted although rows with the same payload" in run.err
    assert len(sandbox.store.records()) == 2


def test_a_row_identical_in_every_cell_from_another_file_is_skipped_naming_it(post, sandbox, tmp_path):
    first = write(tmp_path, "first.csv", "101,1,coffee")
    second = write(tmp_path, "second.csv", "101,1,coffee", "102,2,tea")
    post(first)
    run = post(second)
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["skipped", "created"]
    assert f"already created from {first} row 2 on " in rows[0]["errors"]
    assert "1 rows were skipped: the same values in every cell as rows created earlier from other files" \
        in run.err
    assert len(sandbox.store.records()) == 2


def test_the_errors_csv_of_identical_rows_sends_the_failed_one(post, sandbox, tmp_path):
    path = write(tmp_path, "export.csv", "101,1,same", "101,1,same", "101,1,same")
    sandbox.script("ok", "blocked", "ok")
    run = post(path, "--max-retries", "0")
    assert outcomes(run) == ["created", "failed", "created"]
    errors = run.report_path().parent / "errors.csv"
    assert errors.read_text().count("same") == 1
    again = post(errors)  # nothing to fix (a firewall refused it once): loaded again
    assert outcomes(again) == ["created"], again.report()
    assert len(sandbox.store.records()) == 3
    assert outcomes(post(path)) == ["skipped", "skipped", "skipped"]


@pytest.mark.parametrize("how", ["twice", "dot", "symlink"])
def test_the_same_input_twice_is_a_usage_error(post, sandbox, tmp_path, how):
    path = write(tmp_path, "export.csv", "101,1,a")
    other = {"twice": path, "dot": Path("./export.csv"), "symlink": tmp_path / "link.csv"}[how]
    if how == "symlink":
        other.symlink_to(path)
    run = post(path, other)
    assert run.code == 2
    assert "are the same file; name each input once" in run.err
    assert sandbox.stats.posts == 0


@pytest.mark.parametrize("command", ["validate", "import"])
@pytest.mark.parametrize("how", ["same", "hard link"])
def test_a_report_that_is_an_input_is_refused_and_the_input_kept(etl, sandbox, tmp_path, command, how):
    """The input named again, or under another name of the same file (a hard link: before, the
    report wiped the input, then blamed it for changing while read)."""
    path = write(tmp_path, "export.csv", "101,1,a")
    report = "export.csv"
    if how == "hard link":
        os.link(path, tmp_path / "export-link.csv")
        report = "export-link.csv"
    before = path.read_text()
    extra = ["--api-url", sandbox.url, "--token", TOKEN] if command == "import" else []
    run = etl(command, path, "--report", report, *extra, env=NO_ENV)
    assert run.code == 2
    assert "would overwrite the input" in run.err
    assert path.read_text() == before
    assert sandbox.stats.posts == 0


def test_an_input_named_twice_through_a_hard_link_is_refused(etl, tmp_path):
    path = write(tmp_path, "export.csv", "101,1,a")
    os.link(path, tmp_path / "again.csv")
    run = etl("validate", path, tmp_path / "again.csv")
    assert run.code == 2 and "are the same file; name each input once" in run.err


@pytest.mark.parametrize("system_id", [True, False])
def test_identical_rows_in_flight_together_each_get_their_own_record(post, sandbox, tmp_path, system_id):
    lines = ["101,1,same"] * 12 + ["102,2,other"] * 4
    path = write(tmp_path, "export.csv", *lines)
    sandbox.faults.error_after_create = 0.4
    sandbox.faults.drop_after_create = 0.2
    sandbox.faults.latency = 0.02
    run = post(path, "--concurrency", "4", "--timeout", "0.5", "--batch-size", "4",
               *([] if system_id else ["--no-system-id"]))
    rows = run.report()
    assert run.code == 0, (run.err, [r["errors"] for r in rows])
    ids = [int(r["id"]) for r in rows]
    records = sandbox.store.records()
    assert len(records) == 16
    assert sorted(ids) == [r["Id"] for r in records]  # one record each, none claimed twice
    assert outcomes(post(path)) == ["skipped"] * 16


def test_changing_the_key_never_posts_again(post, sandbox, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Ref," + HEADER + "\nA1,101,1,a\nA2,102,2,b\n")
    assert outcomes(post(path)) == ["created", "created"]
    for extra in (["--key", "Ref"], ["--key", "Description"]):  # the journal kept every cell's digest
        run = post(path, *extra)
        assert run.code == 0, (extra, run.err)
        assert outcomes(run) == ["skipped", "skipped"]
    assert "2 rows created earlier under another choice of columns are the same credit uses" in run.err
    assert sandbox.stats.posts == 2
    keyed = write(tmp_path, "keyed.csv", "101,3,c")
    assert outcomes(post(keyed, "--key", "CoworkerBookingCreditId,Description")) == ["created"]
    assert outcomes(post(keyed)) == ["skipped"]  # the key removed again: the same cells
    other = write(tmp_path, "other.csv", "101,3,c", "101,3,c")  # a second identical use is new
    assert outcomes(post(other)) == ["skipped", "created"]
    assert sandbox.stats.posts == 4


def test_a_key_that_says_rows_differ_is_not_taken_for_an_earlier_row(post, sandbox, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Ref," + HEADER + "\nA1,101,1,a\n")
    post(path)
    other = tmp_path / "export-2.csv"
    other.write_text("Ref," + HEADER + "\nB7,101,1,a\n")  # the same payload, another record of theirs
    run = post(other, "--key", "Ref")
    assert run.code == 2 and "another way of identifying rows" in run.err
    assert sandbox.stats.posts == 1


def test_a_column_added_to_the_export_stops_the_run_until_it_is_ignored(post, sandbox, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "\n101,1,a\n102,2,b\n")
    post(path)
    path.write_text("ExportedAt," + HEADER + "\n2026-11-25T01:00,101,1,a\n2026-11-25T01:00,102,2,b\n")
    run = post(path)
    assert run.code == 2
    assert "--ignore-column" in run.err
    again = post(path, "--ignore-column", "ExportedAt")
    assert outcomes(again) == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2
    new = post(path, "--allow-new-identity")  # the operator says these are new credit uses
    assert outcomes(new) == ["created", "created"]


def test_an_id_like_column_is_pointed_out(post, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("UseId," + HEADER + "\nU1,101,1,a\nU2,102,2,b\n")
    run = post(path)
    assert 'column "UseId" looks like the export\'s own record id' in run.err
    assert "--key 'UseId'" in run.err


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_lost_journal_stops_the_run_instead_of_posting_everything_again(post, sandbox, tmp_path, how):
    path = write(tmp_path, "export.csv", "101,1,a")
    post(path)
    journal = Path(journal_of(sandbox.url))
    if how == "deleted":
        journal.unlink()
    else:
        with sqlite3.connect(journal) as db:
            db.execute("DELETE FROM rows")
        db.close()
    run = post(path)
    assert run.code == 2
    assert "had recorded 1 created credit uses" in run.err and "--new-journal" in run.err
    assert sandbox.stats.posts == 1
    fresh = post(path, "--new-journal")  # the operator's explicit choice; but the target has it
    assert fresh.code == 2 and "was already posted to" in fresh.err
    with sandbox.store.lock:
        sandbox.store.db.execute("DELETE FROM credit_uses")  # a target that really has none of them
    assert outcomes(post(path, "--new-journal")) == ["created"]


def test_a_damaged_journal_stops_the_run_saying_what_to_do(post, sandbox, tmp_path):
    path = write(tmp_path, "export.csv", "101,1,a")
    post(path)
    journal = Path(journal_of(sandbox.url))
    journal.write_bytes(b"this is not a database" * 100)
    for extra in ("-wal", "-shm"):
        Path(str(journal) + extra).unlink(missing_ok=True)
    run = post(path)
    assert run.code == 2
    assert "is damaged" in run.err and "restore it from a backup" in run.err
    assert "Traceback" not in run.err
    assert sandbox.stats.posts == 1


@pytest.mark.parametrize(("edit", "said"), [
    ({"record_id": "12x"}, "has the record Id '12x', which is not a whole number"),
    ({"record_id": 0.5}, "has the record Id 0.5, which is not a whole number"),
    ({"record_id": 1e30}, "has the record Id 1e+30, which is not a whole number"),
    ({"state": "Created"}, "is in the state 'Created', which etl never writes"),
    ({"state": 3}, "is in the state '3', which etl never writes"),  # a TEXT column: kept as '3'
    ({"state": "in_doubt", "first_sent": "x"}, "has the first_sent 'x', which is not a number"),
    ({"state": "in_doubt", "settle_until": "soon"}, "has the settle_until 'soon', which is not a number"),
    ({"state": "failed", "record_id": None, "attempts": "two"},
     "has the attempts 'two', which is not a number"),
    ({"state": "in_doubt", "record_id": None, "payload": "{not json"},
     "has the payload '{not json', which is not the JSON object of a body"),
], ids=lambda v: "-".join(map(str, v)) if isinstance(v, dict) else "")
def test_a_journal_row_edited_by_hand_into_what_etl_never_writes_stops_every_command_in_one_line(
        etl, post, sandbox, tmp_path, edit, said):
    """Someone "fixed" a row of the journal with a spreadsheet tool: its record Id made a text
    or a fraction, its state spelt otherwise, a time or a count of a row in doubt or failed
    made a word, its body cut. The import and the reconciliation stop with exit 2, naming the
    journal, the row and the value, before anything is sent: never a traceback where the value
    is first used, never the Id read as another (0.5 as 0)."""
    path = write(tmp_path, "export.csv", "101,1,a", "102,2,b", "103,3,c")
    post(path)
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        db.execute(f"UPDATE rows SET {', '.join(f'{c} = ?' for c in edit)} WHERE row = 3",
                   list(edit.values()))
    db.close()
    (tmp_path / "more.csv").write_text(HEADER + "\n104,4,d\n", encoding="utf-8")
    for run in (post(path), post(tmp_path / "more.csv"),
                etl("reconcile", "--api-url", sandbox.url, "--token", TOKEN, env=NO_ENV)):
        assert run.code == 2, run.out + run.err
        assert "Traceback" not in run.out + run.err
        assert f"is damaged (its row of {path} row 3 {said}); restore it from a backup" in run.err, run.err
    assert sandbox.stats.posts == 3


def test_a_journal_left_by_an_earlier_version_in_this_folder_is_taken_over(post, sandbox, tmp_path):
    """An earlier version kept logs/journal.sqlite3 in the current folder, one table for every URL."""
    path = write(tmp_path, "export.csv", "101,1,a")
    body = '{"CoworkerBookingCreditId":101,"CreditUsed":1,"Description":"a"}'
    import hashlib

    identity = hashlib.sha256(f"coworkerbookingcreditusehistories\n{body}\n1".encode()).hexdigest()[:40]
    (tmp_path / "logs").mkdir()
    with sqlite3.connect(tmp_path / "logs" / "journal.sqlite3") as db:
        db.execute("CREATE TABLE entries (scope TEXT, identity TEXT, state TEXT, record_id INTEGER, "
                   "http_status INTEGER, attempts INTEGER, errors TEXT, payload TEXT, source TEXT, "
                   "row INTEGER, run_id TEXT, resource TEXT, first_sent REAL, settle_until REAL, "
                   "updated_at TEXT)")
        db.execute("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (sandbox.url + "/", identity, "created", 87650000, 200, 1, None, body, "export.csv", 2,
                    "old", "coworkerbookingcreditusehistories", 0.0, 0.0, "2026-11-01"))
    db.close()
    run = post(path)
    assert "took over 1 rows" in run.err
    assert outcomes(run) == ["skipped"]
    assert sandbox.stats.posts == 0


def test_refused_renewal_mid_row_leaves_report_and_journal_agreeing(post, sandbox, tmp_path):
    sandbox.script("ok", "unauthorized", "unauthorized")
    run = post(write(tmp_path, "a.csv", "101,1,a", "102,2,b", "103,3,c"), "--username", USER,
               "--password", PASSWORD, token=False)
    assert run.code == 3
    assert outcomes(run) == ["created", "not_attempted", "not_attempted"]
    assert [(n, s) for n, s, _ in journal_rows(sandbox.url)] == [(2, "created"), (3, "not_attempted")]


def test_max_errors_trips_when_every_post_answers_500(post, sandbox, tmp_path):
    sandbox.faults.error = 1.0
    run = post(write(tmp_path, "a.csv", *[f"{100 + i},1,x" for i in range(20)]), "--max-errors", "3",
               "--timeout", "0.2")
    assert run.code == 3
    assert "--max-errors 3 reached" in run.err
    assert sandbox.stats.posts == 3
    rows = outcomes(run)
    assert rows[3:] == ["not_attempted"] * 17
    assert set(rows[:3]) <= {"in_doubt", "failed"}


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_finishes_the_requests_under_way_and_completes_the_report(
    post, sandbox, tmp_path, sig, code
):
    path = write(tmp_path, "export.csv", *[f"{100 + i},1,row {i}" for i in range(12)])
    sandbox.faults.latency = 0.3
    env = {**os.environ, "NEXUDUS_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "etl", "import", str(path), "--api-url", sandbox.url, "--rate", "1000",
           "--concurrency", "2", "--report", str(tmp_path / "out" / "results.csv"), "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while len(sandbox.store.records()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "interrupted" in out + err and "Traceback" not in err
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["exit_code"] == code
    created = [r for r in rows if r["outcome"] == "created"]
    assert len(created) == len(sandbox.store.records()) < 12
    assert {r["outcome"] for r in rows} == {"created", "not_attempted"}
    assert all(state != "pending" for _, state, _ in journal_rows(sandbox.url))
    sandbox.faults.latency = 0.0
    done = post(path)
    assert done.code == 0, done.err
    assert outcomes(done).count("skipped") == len(created)
    assert len(sandbox.store.records()) == 12


def test_another_journal_of_the_same_target_that_knows_its_rows_is_not_bypassed(post, sandbox, tmp_path):
    path = write(tmp_path, "export.csv", "101,1,a")
    assert outcomes(post(path)) == ["created"]
    other = post(path, "--journal", str(tmp_path / "other.sqlite3"))
    assert other.code == 2
    assert f"the journal {journal_of(sandbox.url)} records 1 credit uses created on" in other.err
    assert sandbox.stats.posts == 1


def test_identical_rows_four_at_a_time_under_ambiguous_faults_end_once_each(post, sandbox, tmp_path):
    sandbox.faults.system_id = "drop"
    sandbox.faults.error = 0.2
    sandbox.faults.error_after_create = 0.2
    sandbox.faults.seed = 7
    path = write(tmp_path, "export.csv", *["101,1,same"] * 30)
    for _ in range(3):
        run = post(path, "--concurrency", "4", "--batch-size", "1", "--timeout", "0.2")
        assert "Traceback" not in run.err
        created = [int(r["id"]) for r in run.report() if r["id"]]
        assert len(created) == len(set(created)) <= len(sandbox.store.records())
        if run.code == 0:
            break
    assert run.code == 0, run.report()
    assert len(sandbox.store.records()) == 30


def test_a_new_journal_for_rows_the_target_already_has_stops_before_posting(etl, sandbox, tmp_path,
                                                                           monkeypatch, state_home):
    path = write(tmp_path, "export.csv", "101,1,a", "102,2,b")
    first = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000", env=NO_ENV)
    assert outcomes(first) == ["created", "created"]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-state"))  # cron with another HOME
    other_host = sandbox.url.replace("127.0.0.1", "localhost")
    run = etl("import", path, "--api-url", other_host, "--token", TOKEN, "--rate", "1000", env=NO_ENV)
    assert run.code == 2
    assert "was already posted to" in run.err and "Nothing was posted" in run.err
    assert sandbox.stats.posts == 2


def test_overlapping_exports_in_one_run_post_their_shared_rows_once(post, sandbox, tmp_path):
    mon = write(tmp_path, "mon.csv", "101,1,a", "102,2,b")
    tue = write(tmp_path, "tue.csv", "101,1,a", "102,2,b", "103,3,c")
    run = post(mon, tue)
    assert outcomes(run) == ["created", "created", "skipped", "skipped", "created"]
    assert len(sandbox.store.records()) == 3
    assert outcomes(post(mon, tue)) == ["skipped"] * 5
    assert len(sandbox.store.records()) == 3


def test_an_input_column_named_like_a_report_column_survives_the_errors_csv_round_trip(
    post, sandbox, tmp_path
):
    path = tmp_path / "withid.csv"
    path.write_text("id," + HEADER + "\nE1,101,1,a\nE2,102,2,b\n")
    sandbox.script("blocked", "blocked")
    run = post(path, "--max-retries", "0")
    assert outcomes(run) == ["failed", "failed"]
    errors = run.report_path().parent / "errors.csv"
    assert errors.read_text().splitlines()[0] == "id," + HEADER + ",errors"
    assert outcomes(post(errors)) == ["created", "created"]
    assert outcomes(post(path)) == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_a_column_empty_on_every_row_does_not_change_a_rows_identity(post, sandbox, tmp_path):
    path = write(tmp_path, "a.csv", "101,1,a")
    post(path)
    wider = tmp_path / "b.csv"
    wider.write_text(HEADER + ",BookingId,Site\n101,1,a,,\n")
    assert outcomes(post(wider)) == ["skipped"]
    assert len(sandbox.store.records()) == 1


def test_a_sent_column_can_not_be_left_out_of_the_identity(post, sandbox, tmp_path):
    run = post(write(tmp_path, "a.csv", "101,1,a"), "--ignore-column", "CreditUsed")
    assert run.code == 2 and "a column the API is sent is always part of a row's identity" in run.err
    assert sandbox.stats.posts == 0


def test_an_empty_key_is_an_invalid_row(post, sandbox, tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("Ref," + HEADER + "\nR1,101,1,a\n,102,2,b\n")
    run = post(path, "--key", "Ref")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["created", "invalid"]
    assert "the key cell is empty" in rows[1]["errors"]


def test_a_rejected_row_is_not_sent_again_unless_asked(post, sandbox, tmp_path):
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    sandbox.script("reject")
    assert outcomes(post(path)) == ["rejected", "created"]
    again = post(path)
    rows = again.report()
    assert [r["outcome"] for r in rows] == ["rejected", "skipped"]
    assert "not sent again" in rows[0]["errors"] and "--retry-rejected" in rows[0]["errors"]
    assert sandbox.stats.posts == 2
    assert outcomes(post(path, "--retry-rejected")) == ["created", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_an_errors_csv_gives_back_cells_the_report_guards_against_formulas(post, sandbox, tmp_path):
    path = write(tmp_path, "a.csv", '101,1,"- Hot desk"', '102,2,"=not a formula"', "103,3,plain")
    sandbox.script("blocked", "blocked", "ok")
    run = post(path, "--max-retries", "0")
    assert outcomes(run) == ["failed", "failed", "created"]
    assert run.report()[0]["Description"] == "'- Hot desk"  # the report is safe to open in Excel
    errors = run.report_path().parent / "errors.csv"
    assert "'- Hot desk" in errors.read_text()  # safe to open in Excel too; etl reads it back exactly
    assert outcomes(post(errors)) == ["created", "created"]
    assert outcomes(post(path)) == ["skipped"] * 3
    assert sorted(r["Description"] for r in sandbox.store.records()) == ["- Hot desk", "=not a formula",
                                                                         "plain"]


def test_of_identical_rows_the_created_one_is_never_reported_refused(post, sandbox, tmp_path):
    path = write(tmp_path, "a.csv", "101,3,day pass", "101,3,day pass")
    sandbox.script("reject", "ok")
    assert outcomes(post(path)) == ["rejected", "created"]
    fixed = write(tmp_path, "b.csv", "101,2,day pass", "101,3,day pass")  # the refused one fixed
    assert outcomes(post(fixed)) == ["created", "skipped"]
    assert outcomes(post(fixed, "--retry-rejected")) == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_a_column_the_export_added_but_left_empty_does_not_stop_the_nightly_run(post, sandbox, tmp_path):
    d1 = tmp_path / "d1.csv"
    d1.write_text("Ref," + HEADER + "\nA1,101,1.5,Room\n")
    post(d1)
    d2 = tmp_path / "d2.csv"
    d2.write_text("Ref," + HEADER + ",Tags\nA2,101,1.5,Room,\n")  # the same use again, a new day
    run = post(d2)
    assert run.code == 0, run.err
    assert outcomes(run) == ["created"]
    assert len(sandbox.store.records()) == 2


def test_a_row_in_doubt_shared_by_two_files_of_a_run_is_mended_in_both(post, sandbox, tmp_path):
    sandbox.faults.late_delay = 0.5
    sandbox.script("gateway_timeout_late")
    a = write(tmp_path, "a.csv", "101,1,same")
    b = write(tmp_path, "b.csv", "101,1,same")
    run = post(a, b, "--timeout", "0.5")
    assert outcomes(run) == ["created", "skipped"], run.report()
    assert run.code == 0
    assert len(sandbox.store.records()) == 1


def test_a_header_that_already_ends_in_input_comes_back_as_it_was(post, sandbox, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + ",ID (input),id\n101,1,a,x1,y1\n102,2,b,x2,y2\n")
    sandbox.script("blocked", "blocked")
    run = post(path, "--max-retries", "0")
    assert outcomes(run) == ["failed", "failed"]
    errors = run.report_path().parent / "errors.csv"
    assert errors.read_text().splitlines()[0] == HEADER + ",ID (input),id,errors"
    assert outcomes(post(errors)) == ["created", "created"]
    assert outcomes(post(path)) == ["skipped", "skipped"]
    assert len(sandbox.store.records()) == 2


def test_the_refused_copy_of_identical_rows_in_an_errors_csv_is_that_refused_row(post, sandbox, tmp_path):
    post(write(tmp_path, "c1.csv", "101,1,day pass"))
    sandbox.script("reject")
    run = post(write(tmp_path, "c.csv", "101,1,day pass", "101,1,day pass"))
    assert outcomes(run) == ["skipped", "rejected"]
    errors = run.report_path().parent / "errors.csv"
    again = post(errors)
    assert outcomes(again) == ["rejected"] and "not sent again" in again.report()[0]["errors"]
    topped_up = post(errors, "--retry-rejected")  # the credit was topped up meanwhile
    assert outcomes(topped_up) == ["created"]
    assert "other cells differ" not in topped_up.report()[0]["errors"]
    assert len(sandbox.store.records()) == 2
