"""`etl status` reads a target's journal: per file done / in doubt / failed / left, today's POSTs
against the daily limit, the nights to go, the last runs."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLES

# This mirrors the schema of the journal (etl/ledger/journal.py, version 2): one SQLite file per target.
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE rows (identity TEXT PRIMARY KEY, state TEXT NOT NULL, record_id INTEGER UNIQUE,
    source TEXT, row INTEGER, resource TEXT, run_id TEXT, reason TEXT, first_sent REAL,
    updated_at TEXT);
CREATE TABLE sources (source TEXT PRIMARY KEY, rows INTEGER, valid INTEGER, last_run TEXT,
    updated_at TEXT);
CREATE TABLE runs (run_id TEXT PRIMARY KEY, command TEXT, started_at TEXT, finished_at TEXT,
    exit_code INTEGER, counts TEXT, files TEXT);
CREATE TABLE quota (day TEXT PRIMARY KEY, posts INTEGER);
"""
HISTORY, NIGHTLY = "/data/history-2019-2025.csv", "/data/export-2026-11-24.csv"
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
NO_ENV = {"ETL_CONFIG": None, "ETL_JOURNAL": None, "ETL_DAILY_LIMIT": None, "NEXUDUS_API_URL": None}


def journal(path: Path) -> Path:
    """A migration half way: 12,000 valid rows of history, 4,000 created, 2 in doubt, 3 failed or
    rejected; a nightly file that is done; 4,000 POSTs today; two runs."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # as the journal runs
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO meta VALUES (?, ?)",
                   [("target", "https://spaces.nexudus.com"), ("version", "2")])
    states = ["created"] * 4000 + ["in_doubt", "pending", "failed", "rejected", "rejected"] \
        + ["not_attempted"] * 10
    db.executemany(
        "INSERT INTO rows (identity, state, record_id, source, row, resource, run_id) VALUES (?,?,?,?,?,?,?)",
        [(f"h{i}", s, i if s == "created" else None, HISTORY, i + 2, "r", "run2")
         for i, s in enumerate(states)]
        + [(f"n{i}", "created", 100_000 + i, NIGHTLY, i + 2, "r", "run1") for i in range(24)],
    )
    db.executemany("INSERT INTO sources VALUES (?,?,?,?,?)",
                   [(HISTORY, 12_050, 12_000, "run2", TODAY), (NIGHTLY, 24, 24, "run1", TODAY)])
    db.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?)", [
        ("run1", "import", "2026-11-24T01:00:00+00:00", "2026-11-24T01:00:30+00:00", 0,
         json.dumps({"created": 24}), json.dumps([NIGHTLY])),
        ("run2", "import", f"{TODAY}T01:00:00+00:00", f"{TODAY}T02:10:00+00:00", 4,
         json.dumps({"created": 4000, "failed": 1, "rejected": 2, "in_doubt": 2, "not_attempted": 8045}),
         json.dumps([HISTORY])),
    ])
    db.executemany("INSERT INTO quota VALUES (?, ?)", [("2026-11-24", 24), (TODAY, 4000)])
    db.commit()
    db.close()
    return path


def test_status_per_file_today_and_nights_to_go(etl, tmp_path):
    path = journal(tmp_path / "journal.sqlite3")
    run = etl("status", "--journal", path, env=NO_ENV)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == f"Journal {path} (target https://spaces.nexudus.com)"
    assert lines[1].split() == ["file", "rows", "valid", "done", "in", "doubt", "failed", "rejected", "left"]
    assert lines[2].split() == [NIGHTLY, "24", "24", "24", "0", "0", "0", "0"]
    assert lines[3].split() == [HISTORY, "12050", "12000", "4000", "2", "1", "2", "7998"]
    assert lines[4] == f"POSTs today ({TODAY} UTC): 4000 of 5000 (--daily-limit)."
    assert lines[5] == "7996 rows to post: 2 nights at 5000 a night."
    assert lines[6] == "2 rows in doubt: `etl reconcile` checks them against the API."
    assert lines[7] == "Last runs:"
    assert lines[8].startswith("  run2  import  ") and "exit 4" in lines[8] and "4000 created" in lines[8]
    assert lines[9].startswith("  run1  import  2026-11-24T01:00:00+00:00 .. ") and "exit 0" in lines[9]


def test_status_as_json_with_the_limit_and_journal_from_config_and_environment(etl, tmp_path):
    path = journal(tmp_path / "journal.sqlite3")
    (tmp_path / "nightly.toml").write_text('journal = "elsewhere.sqlite3"\ndaily-limit = 1000\nrate = 1\n')
    run = etl("status", "--config", "nightly.toml", "--json", env={**NO_ENV, "ETL_JOURNAL": str(path)})
    assert run.code == 0, run.err
    status = json.loads(run.out)
    assert (status["journal"], status["daily_limit"], status["posts_today"]) == (str(path), 1000, 4000)
    assert (status["to_post"], status["nights"]) == (7996, 8)
    history = status["sources"][1]
    assert (history["source"], history["done"], history["in_doubt"], history["failed"], history["rejected"],
            history["left"]) == (HISTORY, 4000, 2, 1, 2, 7998)
    assert [r["exit_code"] for r in status["runs"]] == [4, 0]


def test_status_takes_the_import_tables_limit_and_journal_from_the_config(etl, tmp_path):
    """The nightly config keeps the import's settings in its [import] table: status describes that
    import, so it reads them too (its own [status] table still wins)."""
    path = journal(tmp_path / "journal.sqlite3")
    (tmp_path / "nightly.toml").write_text(
        f'[import]\njournal = "{path}"\ndaily-limit = 2000\nrate = 1\njson = true\n'
        '[validate]\ndecimal = ","\n')
    run = etl("status", "--config", "nightly.toml", env=NO_ENV)
    assert run.code == 0, run.err
    assert "(--daily-limit)" in run.out, "the import's json = true made status print JSON"
    assert "7996 rows to post: 4 nights at 2000 a night." in run.out
    status = json.loads(etl("status", "--config", "nightly.toml", "--json", env=NO_ENV).out)
    assert (status["journal"], status["daily_limit"], status["nights"]) == (str(path), 2000, 4)
    (tmp_path / "nightly.toml").write_text(
        f'[import]\njournal = "{path}"\ndaily-limit = 2000\n[status]\ndaily-limit = 4000\n')
    run = etl("status", "--config", "nightly.toml", "--json", env=NO_ENV)
    assert json.loads(run.out)["daily_limit"] == 4000


def test_a_run_that_never_finished_is_told_from_one_still_running(etl, tmp_path):
    """A run killed mid-way (or out of room) leaves no end in the journal: it is shown as never
    finished unless the process that holds the journal's lock now is that run, alive (the same
    process, not a later one given its pid; not a reconcile that holds the journal since)."""
    from etl.ledger.entries import process_start

    path = journal(tmp_path / "journal.sqlite3")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO runs VALUES ('run3', 'import', ?, NULL, NULL, '{}', '[]')",
                   (f"{TODAY}T03:00:00+00:00",))
    holder = Path(str(path) + ".holder")

    def held_by(pid: int, run: str, start: int | None) -> list[tuple[str, bool]]:
        holder.write_text(f"pid {pid}, started {TODAY}T03:00:00+00:00\n"
                          + json.dumps({"pid": pid, "run": run, "process_start": start}) + "\n")
        done = etl("status", "--journal", path, "--json", env=NO_ENV)
        assert done.code == 0, done.err
        return [(r["run_id"], r["running"]) for r in json.loads(done.out)["runs"]]

    run = etl("status", "--journal", path, env=NO_ENV)
    assert "  run3  import  " in run.out and "never finished (killed, crashed or out of room)" in run.out
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    assert held_by(dead, "run3", None)[0] == ("run3", False)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start(alive.pid)
        assert held_by(alive.pid, "run3", start) == [("run3", True), ("run2", False), ("run1", False)]
        assert held_by(alive.pid, "reconcile-run", start)[0] == ("run3", False)
        if start is not None:  # where a process's start can be read, a reused pid is told apart
            assert held_by(alive.pid, "run3", start + 1)[0] == ("run3", False)
    finally:
        alive.kill()
        alive.wait()
    assert held_by(os.getpid(), "run3", process_start(os.getpid()))[0] == ("run3", False)


def test_status_of_a_target_without_a_journal(etl, tmp_path):
    run = etl("status", "--journal", tmp_path / "none.sqlite3", env=NO_ENV)
    assert run.code == 2
    assert "no journal at" in run.err and "nothing has been imported" in run.err


def test_status_opens_the_journal_read_only_and_imports_nothing_heavy(tmp_path):
    path = journal(tmp_path / "journal.sqlite3")
    path.chmod(0o444)
    before = path.read_bytes()
    probe = ("import sys\nfrom etl.cli import main\ntry:\n    main(['status', '--journal', sys.argv[1]])\n"
             "except SystemExit as e:\n    print('exit', e.code)\n"
             "print(sorted(m for m in ('pandas', 'pyarrow', 'pandera') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe, str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "ETL_CONFIG": ""})
    assert done.stdout.splitlines()[-2:] == ["exit 0", "[]"], done.stderr
    assert "7998" in done.stdout
    assert path.read_bytes() == before
    wal = Path(str(path) + "-wal")  # SQLite may make an empty one to read a WAL database
    assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.parametrize(("url", "same"), [
    ("https://Spaces.Nexudus.com/", "https://spaces.nexudus.com"),
    ("https://spaces.nexudus.com:443", "https://spaces.nexudus.com"),
    ("http://127.0.0.1:8765/", "http://127.0.0.1:8765"),
])
def test_one_journal_however_the_url_is_spelt(etl, tmp_path, url, same):
    env = {**NO_ENV, "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    a = etl("status", "--api-url", url, env=env)
    b = etl("status", "--api-url", same, env=env)
    assert a.code == b.code == 2
    assert a.err == b.err and str(tmp_path / "state") in a.err


def test_a_runs_start_and_end_are_shown_alike(etl):
    assert etl("import", SAMPLES / "credit_uses.csv", "--sandbox", "-q", "--rate", "1000").code == 0
    run = etl("status", "--sandbox")
    [line] = [line for line in run.out.splitlines() if " import " in line]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
    assert re.search(rf"  import  {stamp} \.\. {stamp}  exit 0", line), line
    found = json.loads(etl("status", "--sandbox", "--json").out)["runs"][0]
    assert re.fullmatch(stamp, found["started_at"]) and re.fullmatch(stamp, found["finished_at"])


def test_a_migration_whose_rows_left_are_all_refused_has_nothing_left_to_post(etl, tmp_path):
    """Rows the API refused are not sent again on their own: once every other row is created,
    status says there is nothing left, not the refused rows 'to post' night after night."""
    from etl.sandbox import Faults, Sandbox

    with Sandbox(faults=Faults(retry_after=0, reject=0.3, seed="status"), tokens=("t0k3n",)) as box:
        args = ("import", SAMPLES / "credit_uses.csv", "--api-url", box.url, "--token", "t0k3n", "-q",
                "--rate", "1000", "--no-check-credits")
        first = etl(*args)
        assert first.code == 1, first.err
        rejected = sum(r["outcome"] == "rejected" for r in first.report())
        assert rejected, "the sandbox refused no row: the test proves nothing"
        assert etl(*args).code == 1  # the rerun sends none of them again
    status = json.loads(etl("status", "--api-url", box.url, "--json").out)
    (source,) = status["sources"]
    assert (source["rejected"], source["left"], status["to_post"]) == (rejected, 0, 0)
    assert "Nothing left to post." in etl("status", "--api-url", box.url).out


def test_rows_in_doubt_are_never_called_nothing_left_to_post(etl, tmp_path):
    """Every row answered 500 (nothing created) and still in doubt: status does not say "Nothing
    left to post", which an operator reads as done (before: it did, over the line counting the
    rows in doubt, and after `etl reconcile` found them absent they were all to post)."""
    from etl.sandbox import Faults, Sandbox

    with Sandbox(faults=Faults(retry_after=0, error=1.0), tokens=("t0k3n",)) as box:
        run = etl("import", SAMPLES / "credit_uses.csv", "--api-url", box.url, "--token", "t0k3n", "-q",
                  "--rate", "1000", "--no-check-credits", "--max-retries", "0", "--settle-wait", "0")
        doubt = sum(r["outcome"] == "in_doubt" for r in run.report())
        assert doubt and not box.store.records(), run.err
    out = etl("status", "--api-url", box.url, env=NO_ENV).out
    assert "Nothing left to post" not in out
    assert f"{doubt} rows in doubt: `etl reconcile` checks them against the API" in out


@pytest.fixture
def refusing_sandbox():
    """`etl sandbox --reject 0.3` in a process of its own, as an operator rehearses with it."""
    box = subprocess.Popen([sys.executable, "-m", "etl", "sandbox", "--port", "0", "--reject", "0.3",
                            "--seed", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "ETL_CONFIG": ""})
    try:
        assert box.stdout is not None
        line = box.stdout.readline()
        assert " at http://" in line, box.stderr.read() if box.stderr else line
        yield line.split(" at ")[1].split()[0]
    finally:
        box.terminate()
        box.communicate(timeout=30)


def test_nothing_left_to_post_when_the_rows_not_created_are_refused_or_invalid(etl, refusing_sandbox):
    """A migration imported twice into `etl sandbox --reject`: its rows not created are refused
    by the API or invalid, neither of which a rerun sends: status says nothing is left to post."""
    args = ("import", SAMPLES / "credit_uses_with_errors.csv", "--api-url", refusing_sandbox,
            "--username", "sandbox@example.com", "--password", "sandbox-password", "-q", "--rate", "1000",
            "--no-check-credits")
    env = {**NO_ENV, "NEXUDUS_TOKEN": None, "NEXUDUS_USERNAME": None, "NEXUDUS_PASSWORD": None}
    first, second = etl(*args, env=env), etl(*args, env=env)
    counts = [collections.Counter(r["outcome"] for r in run.report()) for run in (first, second)]
    assert first.code == second.code == 1, first.err + second.err
    assert counts[0]["rejected"] and counts[0]["invalid"] and counts[0]["created"], counts
    again = {**counts[0], "skipped": counts[0]["created"]}
    del again["created"]
    assert counts[1] == again  # the rerun sent none of them again
    found = json.loads(etl("status", "--api-url", refusing_sandbox, "--json", env=env).out)
    (source,) = found["sources"]
    assert (source["valid"], source["done"], source["rejected"]) == (
        counts[0]["created"] + counts[0]["rejected"], counts[0]["created"], counts[0]["rejected"])
    assert (source["left"], found["to_post"], found["nights"]) == (0, 0, 0)
    assert "Nothing left to post." in etl("status", "--api-url", refusing_sandbox, env=env).out.splitlines()


def test_rows_the_account_checks_refuse_are_not_left_to_post(etl, tmp_path):
    (tmp_path / "credits.csv").write_text("Id,TotalCredit,RemainingCredit\n1281,100,100\n1203,100,100\n")
    args = ("import", SAMPLES / "credit_uses.csv", "--sandbox", "--credits", "credits.csv", "-q",
            "--rate", "1000")
    first, second = etl(*args), etl(*args)
    assert first.code == second.code == 1
    assert {r["outcome"] for r in second.report()} == {"invalid", "skipped"}  # nothing to send
    assert json.loads(etl("status", "--sandbox", "--json").out)["to_post"] == 0


def test_a_file_whose_rows_were_created_from_another_file_has_nothing_left(etl, tmp_path):
    for name in ("monday.csv", "monday-again.csv"):
        (tmp_path / name).write_bytes((SAMPLES / "credit_uses.csv").read_bytes())
    assert etl("import", "monday.csv", "--sandbox", "-q", "--rate", "1000").code == 0
    again = etl("import", "monday-again.csv", "--sandbox", "-q", "--rate", "1000")
    assert again.code == 0 and {r["outcome"] for r in again.report()} == {"skipped"}
    found = json.loads(etl("status", "--sandbox", "--json").out)
    assert found["to_post"] == 0, [(s["source"], s["left"]) for s in found["sources"]]


def test_a_row_deleted_from_the_export_is_not_counted_done_in_place_of_one_never_sent(etl, tmp_path):
    """The morning check: a re-export without a row created before (deleted, or edited into
    another row) and with a new row the quota did not reach. Status counted the deleted row
    done, so the file had nothing left to post while the new row was never sent."""
    header = "CoworkerBookingCreditId,CreditUsed,Description\n"
    export = tmp_path / "export.csv"
    export.write_text(header + "".join(f"{1200 + i},1,use {i}\n" for i in range(1, 6)))
    assert etl("import", export, "--sandbox", "-q", "--rate", "1000", "--no-check-credits").code == 0
    export.write_text(header + "".join(f"{1200 + i},1,use {i}\n" for i in (1, 2, 3, 4, 6)))
    night = etl("import", export, "--sandbox", "-q", "--rate", "1000", "--no-check-credits",
                "--daily-limit", "5")
    assert night.code == 4, night.err
    assert [r["outcome"] for r in night.report()] == ["skipped"] * 4 + ["not_attempted"]
    found = json.loads(etl("status", "--sandbox", "--json", "--daily-limit", "5").out)
    (source,) = found["sources"]
    assert (source["rows"], source["valid"], source["done"], source["left"]) == (5, 5, 4, 1)
    assert (found["to_post"], found["nights"]) == (1, 1)
    assert "1 rows to post" in etl("status", "--sandbox", "--daily-limit", "5").out


def second_in_doubt(box) -> None:
    """The emulator creates the second row sent, answers 500, and can't list its record tonight:
    the row is left in doubt."""
    box.script("ok", "error_after_create")
    box.script_list("ok", "ok", *["list_no_records"] * 40)


def reads_right_again(box) -> None:
    """The emulator lists records right again."""
    box.script_list()
    while box.next_list_fault() != "ok":
        pass


def test_rows_reconcile_settles_after_the_import_move_from_in_doubt_to_done(etl, tmp_path):
    """What the journal decides of a file's rows after its import (etl reconcile settling a row
    in doubt) moves status's columns on from what the import reported."""
    from etl.sandbox import Faults, Sandbox

    export = tmp_path / "export.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed,Description\n1201,1,a\n1202,2,b\n")
    with Sandbox(faults=Faults(retry_after=0), tokens=("t0k3n",)) as box:
        second_in_doubt(box)
        args = ("--api-url", box.url)
        run = etl("import", export, *args, "--token", "t0k3n", "-q", "--rate", "1000",
                  "--no-check-credits", "--no-system-id", "--timeout", "0.2")
        assert [r["outcome"] for r in run.report()] == ["created", "in_doubt"], run.err
        shown = etl("status", *args, "--json")
        assert "sources" in json.loads(shown.out), shown.out + shown.err
        before = json.loads(shown.out)["sources"][0]
        assert (before["done"], before["in_doubt"], before["left"]) == (1, 1, 1)
        reads_right_again(box)
        assert etl("reconcile", *args, "--token", "t0k3n").code == 0
        after = json.loads(etl("status", *args, "--json").out)
    (source,) = after["sources"]
    assert (source["done"], source["in_doubt"], source["left"], after["to_post"]) == (2, 0, 0, 0)


def test_localhost_and_127_0_0_1_are_one_target_with_one_journal(etl, tmp_path):
    """A cron job spelling the local API one way and a rerun by hand the other (or an SSH
    tunnel) share the journal: the rerun skips what the first run created (it was refused,
    exit 2, its journal file another), and status finds it either way."""
    from etl.sandbox import Faults, Sandbox

    with Sandbox(faults=Faults(retry_after=0), tokens=("t0k3n",)) as box:
        first = etl("import", SAMPLES / "credit_uses.csv", "--api-url", box.url, "--token", "t0k3n", "-q",
                    "--rate", "1000", "--no-check-credits")
        assert first.code == 0, first.err
        other = box.url.replace("127.0.0.1", "localhost")
        again = etl("import", SAMPLES / "credit_uses.csv", "--api-url", other + "/", "--token", "t0k3n", "-q",
                    "--rate", "1000", "--no-check-credits")
        assert again.code == 0, again.err
        assert {r["outcome"] for r in again.report()} == {"skipped"}
        assert len(box.store.records()) == 24
    mine, theirs = (json.loads(etl("status", "--api-url", url, "--json").out) for url in (box.url, other))
    assert mine["journal"] == theirs["journal"] and mine["sources"][0]["done"] == 24


def test_a_row_dropped_from_the_export_and_settled_later_is_not_counted_for_the_file(etl, tmp_path):
    """A row left in doubt, then dropped from the next export, whose one new row the quota did
    not reach; `etl reconcile` then settles the dropped row as created. It is no line of the
    file: status still has the new row left to post (it said nothing was left)."""
    from etl.sandbox import Faults, Sandbox

    header = "CoworkerBookingCreditId,CreditUsed,Description\n"
    export = tmp_path / "export.csv"
    export.write_text(header + "1201,1,z\n1202,2,a\n")
    with Sandbox(faults=Faults(retry_after=0), tokens=("t0k3n",)) as box:
        args = ("--api-url", box.url)
        sending = (*args, "--token", "t0k3n", "-q", "--rate", "1000", "--no-check-credits", "--no-system-id",
                   "--timeout", "0.2")
        second_in_doubt(box)  # a
        first = etl("import", export, *sending)
        assert [r["outcome"] for r in first.report()] == ["created", "in_doubt"], first.err
        export.write_text(header + "1201,1,z\n1203,3,b\n")  # a dropped, b new
        night = etl("import", export, *sending, "--daily-limit", "2")
        assert [r["outcome"] for r in night.report()] == ["skipped", "not_attempted"], night.err
        reads_right_again(box)
        assert etl("reconcile", *args, "--token", "t0k3n").code == 0
        found = json.loads(etl("status", *args, "--json").out)
    (source,) = found["sources"]
    assert (source["done"], source["in_doubt"], source["left"], found["to_post"]) == (1, 0, 1, 1)


def test_a_file_whose_last_run_never_finished_is_not_said_to_have_nothing_left(etl, tmp_path):
    """The last run that read a file was killed (or runs now): the lines the file has are not
    known (its rows created before may no longer be in it), so status never says nothing is
    left of it; it says so, and --json names the file (it said nothing was left while a row of
    the re-export was never sent)."""
    assert etl("import", SAMPLES / "credit_uses.csv", "--sandbox", "-q", "--rate", "1000").code == 0
    before = json.loads(etl("status", "--sandbox", "--json").out)
    (found,) = before["sources"]
    with sqlite3.connect(before["journal"]) as db:  # a run that read the file, then was killed
        db.execute("INSERT INTO runs (run_id, command, started_at, files) "
                   "VALUES ('killed', 'import', ?, '[]')", (dt.datetime.now(dt.UTC).isoformat(),))
        db.execute("UPDATE sources SET last_run = 'killed'")
    shown = etl("status", "--sandbox")
    assert "Nothing left to post." not in shown.out
    assert "did not finish it (killed, running, or stopped part way)" in shown.out
    assert json.loads(etl("status", "--sandbox", "--json").out)["unfinished"] == [found["source"]]


def test_a_file_whose_last_run_stopped_before_posting_is_not_said_to_have_nothing_left(etl, tmp_path):
    """A re-export that stops the run before anything is posted (exit 2: its columns spelt by
    their aliases), with a row more: status said nothing was left, from the night before."""
    export = tmp_path / "export.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed,Description\n1281,1,a\n1203,2,b\n")
    assert etl("import", export, "--sandbox", "-q", "--rate", "1000").code == 0
    export.write_text("CreditId,Amount,Description\n1281,1,a\n1203,2,b\n1231,3,c\n")
    assert etl("import", export, "--sandbox", "-q", "--rate", "1000").code == 2
    shown = etl("status", "--sandbox")
    assert "Nothing left to post." not in shown.out, shown.out
    assert json.loads(etl("status", "--sandbox", "--json").out)["unfinished"] == [str(export.resolve())]


def test_another_port_of_the_loopback_is_another_target(etl, tmp_path):
    """localhost and 127.0.0.1 are one server only at one port: an emulator on another port is
    another target, with a journal of its own, and its rows are posted to it, not skipped as
    the first one's."""
    from etl.sandbox import Faults, Sandbox

    with Sandbox(faults=Faults(retry_after=0), tokens=("t0k3n",)) as one, \
            Sandbox(faults=Faults(retry_after=0), tokens=("t0k3n",)) as other:
        sending = ("--token", "t0k3n", "-q", "--rate", "1000", "--no-check-credits")
        assert etl("import", SAMPLES / "credit_uses.csv", "--api-url", one.url, *sending).code == 0
        url = other.url.replace("127.0.0.1", "localhost")
        second = etl("import", SAMPLES / "credit_uses.csv", "--api-url", url, *sending)
        assert second.code == 0, second.err
        assert {r["outcome"] for r in second.report()} == {"created"}
        assert len(one.store.records()) == len(other.store.records()) == 24
