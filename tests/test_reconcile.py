"""`etl reconcile`, the journal lock, and secrets from files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from etl.ledger.entries import canonical_json, normalise_url, payload_hash
from etl.ledger.identity import Identities, cell_digest, identity_text
from etl.ledger.journal import Journal
from etl.ledger.life import Event, Ledger, Sending
from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, journal_of, write

RESOURCE = "coworkerbookingcreditusehistories"


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        yield box


def left_pending(tmp_path, url, *rows, journal_path=None):
    """A journal as a crash leaves it: rows marked pending, their answers never recorded."""
    journal = Journal(journal_path or str(tmp_path / "journal.sqlite3"), normalise_url(url))
    ledger = Ledger(journal)
    seen = Identities(RESOURCE, ())
    _, scheme = seen.columns("export.csv", ["CoworkerBookingCreditId", "CreditUsed", "Description"])
    for number, (credit, used, text) in enumerate(rows, start=2):
        body = canonical_json({"CoworkerBookingCreditId": credit, "CreditUsed": Decimal(used),
                               "Description": text})
        identity, base, occurrence, _ = seen.of(  # as an import identifies the row
            scheme, [cell_digest(identity_text(c)) for c in (credit, Decimal(used), text)], "")
        ledger.apply(identity, Event.SEND, "sent", sending=Sending(
            identity, scheme, body, payload_hash(RESOURCE, body), str(tmp_path / "export.csv"), number,
            RESOURCE, 30.0, None, base, occurrence))
    journal.db.execute("UPDATE rows SET first_sent = first_sent - 120, last_sent = last_sent - 120")
    journal.close()


def made(sandbox, credit, used, text):
    """A record made while left_pending's requests were under way (they left 120 s ago, with a
    30 s time-out: settled 55 s ago)."""
    return sandbox.store.create({"CoworkerBookingCreditId": credit, "CreditUsed": used, "Description": text},
                                created_on=(datetime.now(UTC) - timedelta(seconds=100)).isoformat())


def reconcile(etl, sandbox, *extra):
    return etl("reconcile", "--api-url", sandbox.url, "--token", TOKEN, "--journal", "journal.sqlite3",
               *extra, env=NO_ENV)


def test_reconcile_finds_created_records_and_frees_the_rest(etl, sandbox, tmp_path):
    left_pending(tmp_path, sandbox.url, (101, "1.5", "made it"), (102, "2", "never arrived"))
    created = made(sandbox, 101, "1.5", "made it")
    made(sandbox, 101, "1.25", "another use of the same credit")
    run = reconcile(etl, sandbox)
    assert run.code == 0, run.err
    assert run.out.strip().splitlines()[-1] == (
        "2 rows in doubt: 1 were created, 1 were not (a rerun sends them), 0 still in doubt.")
    assert f"export.csv row 2: created (Id {created})" in run.out
    with Journal(str(tmp_path / "journal.sqlite3"), normalise_url(sandbox.url)) as journal:
        states = {e.row: (e.state, e.record_id) for e in journal.entries()}
    assert states == {2: ("created", created), 3: ("failed", None)}
    assert sandbox.stats.posts == 0

    path = write(tmp_path, "export.csv", "101,1.5,made it", "102,2,never arrived")
    run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
              "--journal", "journal.sqlite3", env=NO_ENV)
    assert [r["outcome"] for r in run.report()] == ["skipped", "created"]
    assert sandbox.stats.posts == 1


def test_a_record_older_than_the_request_is_not_taken_for_it(etl, sandbox, tmp_path):
    sandbox.store.create({"CoworkerBookingCreditId": 101, "CreditUsed": "1.5", "Description": "x"})
    sandbox.store.db.execute("UPDATE credit_uses SET CreatedOn = '2020-01-01T00:00:00+00:00'")
    left_pending(tmp_path, sandbox.url, (101, "1.5", "x"))
    run = reconcile(etl, sandbox)
    assert "0 were created, 1 were not" in run.out


def test_identical_rows_in_doubt_take_the_matching_records_in_order(etl, sandbox, tmp_path):
    left_pending(tmp_path, sandbox.url, (101, "1", "same"), (101, "1", "same"), (101, "1", "same"))
    ids = [made(sandbox, 101, "1", "same") for _ in range(2)]
    run = reconcile(etl, sandbox)
    assert run.code == 0, run.out
    assert f"export.csv row 2: created (Id {ids[0]})" in run.out
    assert f"export.csv row 3: created (Id {ids[1]})" in run.out
    assert "export.csv row 4: failed" in run.out
    assert run.out.strip().endswith("2 were created, 1 were not (a rerun sends them), 0 still in doubt.")


def test_reconcile_with_nothing_in_doubt(etl, sandbox, tmp_path):
    Journal(str(tmp_path / "journal.sqlite3"), normalise_url(sandbox.url)).close()
    run = reconcile(etl, sandbox)
    assert run.code == 0
    assert run.out.strip() == (
        "0 rows in doubt: 0 were created, 0 were not (a rerun sends them), 0 still in doubt.")


def test_secrets_can_come_from_files(etl, sandbox, tmp_path):
    (tmp_path / "token.txt").write_text(TOKEN + "\n")
    path = write(tmp_path, "a.csv", "101,1,a")
    run = etl("import", path, "--api-url", sandbox.url, "--token-file", "token.txt", "--rate", "1000",
              "--journal", "journal.sqlite3", env=NO_ENV)
    assert run.code == 0, run.err
    run = etl("import", path, "--api-url", sandbox.url, "--token-file", "missing.txt", env=NO_ENV)
    assert run.code == 2
    assert "can't read the token file missing.txt" in run.err


def test_help_shows_no_secret_from_the_environment(etl):
    run = etl("import", "--help", env={"NEXUDUS_TOKEN": "env-secret-token-123",
                                       "NEXUDUS_PASSWORD": "env-secret-password"})
    assert "env-secret" not in run.out


def test_a_journal_held_by_a_killed_run_is_free_again(tmp_path):
    path = str(tmp_path / "journal.sqlite3")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom etl.ledger.journal import Journal\n"
         f"j = Journal({path!r}, 'x')\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        from etl.errors import RunAborted

        with pytest.raises(RunAborted, match=f"pid {holder.pid}, started 20"):
            Journal(path, "x")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        time.sleep(0.05)
        Journal(path, "x").close()  # no stale lock
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout:
            holder.stdout.close()


def test_an_amount_the_server_rounds_matches_only_through_the_rule_learnt(etl, sandbox, tmp_path):
    left_pending(tmp_path, sandbox.url, (101, "1.333", "a third"))
    r133 = made(sandbox, 101, "1.33", "a third")
    r134 = made(sandbox, 101, "1.34", "a third")
    run = reconcile(etl, sandbox)
    # nothing known of how the target stores amounts: either could be a rounding of 1.333
    assert run.code == 1 and "0 were created, 0 were not" in run.out, run.out
    assert f"Ids {r133}, {r134}" in run.out
    # a row whose own 200 named its record shows the target rounding to cents, half up (from
    # the import's own journal: the rule is kept with the target, for any journal of it)
    sandbox.faults.amount_round = 2
    learn = etl("import", write(tmp_path, "learn.csv", "100,1.251,learn"), "--api-url", sandbox.url,
                "--token", TOKEN, "--rate", "1000", env=NO_ENV)
    assert learn.code == 0, learn.err
    run = reconcile(etl, sandbox)
    assert "1 were created" in run.out, run.out
    with Journal(str(tmp_path / "journal.sqlite3"), normalise_url(sandbox.url)) as journal:
        assert [e.record_id for e in journal.entries()] == [r133]


def test_reconcile_from_python_is_what_the_command_says(sandbox, tmp_path, monkeypatch):
    """The library does the whole of `etl reconcile`: the command only prints what it returns."""
    from etl.run.connecting import Connection
    from etl.run.resolving import ReconcileSettings, reconcile

    monkeypatch.chdir(tmp_path)
    left_pending(tmp_path, sandbox.url, (101, "1.5", "made it"), (102, "2", "never arrived"))
    created = made(sandbox, 101, "1.5", "made it")
    found = reconcile(ReconcileSettings(Connection(api_url=sandbox.url, token=TOKEN,
                                                   journal=str(tmp_path / "journal.sqlite3"))))
    assert found.summary() == (
        "2 rows in doubt: 1 were created, 1 were not (a rerun sends them), 0 still in doubt.")
    assert found.lines()[0].endswith(f"export.csv row 2: created (Id {created}): " + found.verdicts[0].reason)
    assert found.exit_status == 0 and found.as_dict()["counts"] == {"created": 1, "failed": 1, "in_doubt": 0}
    assert sandbox.stats.posts == 0


@pytest.mark.parametrize("command", [("reconcile", "--json"), ("resolve", "export.csv:2", "--not-created")])
def test_a_journal_that_is_not_there_is_refused_not_started(etl, sandbox, tmp_path, command):
    """A mistyped --journal (or a relative one given from another folder) is not a new, empty
    journal of which `etl reconcile` would say "0 rows in doubt"."""
    left_pending(tmp_path, sandbox.url, (101, "1", "in doubt"))
    run = etl(*command, "--api-url", sandbox.url, "--token", TOKEN, "--journal", "jounral.sqlite3",
              env=NO_ENV)
    assert run.code == 2, run.out
    message = f"no journal at {tmp_path / 'jounral.sqlite3'}: nothing has been imported into this target yet"
    assert run.err.startswith(f"etl: error: {message}")
    assert json.loads(run.out)["error"].startswith(message) if "--json" in command else run.out == ""
    assert not (tmp_path / "jounral.sqlite3").exists()


def test_reconcile_and_resolve_from_another_folder(etl, sandbox, tmp_path, monkeypatch):
    """The target's own journal is found from any folder, and a row is named by its file's name."""
    from etl.ledger.entries import default_journal_path

    target = normalise_url(sandbox.url)
    left_pending(tmp_path, sandbox.url, (101, "1", "first"), (102, "2", "second"),
                 journal_path=default_journal_path(target))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    api = ("--api-url", sandbox.url.upper().replace("HTTP://", "http://") + "/", "--token", TOKEN)
    done = etl("resolve", "export.csv:2", "--not-created", "--note", "looked in the UI", *api, env=NO_ENV)
    assert done.code == 0, done.err
    assert done.out.startswith(
        f"{tmp_path / 'export.csv'} row 2: not created; the next import of it sends it")
    run = etl("reconcile", *api, env=NO_ENV)
    assert run.code == 0, run.err
    assert run.out.strip().splitlines()[-1] == (
        "1 rows in doubt: 0 were created, 1 were not (a rerun sends them), 0 still in doubt.")
    with Journal(default_journal_path(target), target) as journal:
        assert {e.row: e.state for e in journal.entries()} == {2: "failed", 3: "failed"}
    assert not (elsewhere / "journal.sqlite3").exists() and sandbox.stats.posts == 0


def test_reconcile_takes_its_target_journal_and_json_from_a_config_file(etl, sandbox, tmp_path):
    """One nightly.toml serves the import and its reconcile: the import's own keys are skipped."""
    left_pending(tmp_path, sandbox.url, (101, "1", "in doubt"))
    config = tmp_path / "nightly.toml"
    config.write_text(f'api-url = "{sandbox.url}"\njournal = "journal.sqlite3"\njson = true\n'
                      "daily-limit = 10\nrate = 1\n[import]\nquiet = true\n")
    run = etl("reconcile", "--config", config, env={**NO_ENV, "NEXUDUS_TOKEN": TOKEN})
    assert run.code == 0, run.err
    found = json.loads(run.out)
    assert (found["command"], found["rows"], found["counts"]["failed"]) == ("reconcile", 1, 1)
    assert "export.csv row 2: failed" in run.err
    config.write_text(config.read_text().replace("json = true", f'token = "{TOKEN}"'))
    config.chmod(0o644)
    refused = etl("reconcile", "--config", config, env=NO_ENV)
    assert refused.code == 2 and "others can read the file" in refused.err and TOKEN not in refused.err


@pytest.mark.parametrize("started_deaf", [False, True])
def test_ctrl_c_mid_reconcile_leaves_every_row_in_doubt_and_the_next_one_settles_them(
        etl, tmp_path, started_deaf):
    """Ctrl-C while rows are being looked up: exit 130 with one JSON document, every row still in
    doubt (none lost, none pending), the journal free, and the next reconcile decides them. Also
    when it started with SIGINT ignored, as a background job of a script does (before: it ran to
    its end and exited 1, where `etl import` stopped)."""
    with Sandbox(faults=Faults(retry_after=0, latency=0.5), tokens=(TOKEN,)) as box:
        left_pending(tmp_path, box.url, *[(100 + i, "1", f"row {i}") for i in range(8)])
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUDUS_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "etl", "reconcile", "--api-url", box.url, "--token", TOKEN,
             "--journal", "journal.sqlite3", "--json"], cwd=tmp_path, env={**env, "ETL_CONFIG": ""},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if started_deaf else None)
        deadline = time.monotonic() + 60
        while box.stats.lists == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.splitlines()[-1] == "etl: interrupted"
        assert json.loads(out) == {"command": "reconcile", "exit_code": 130, "error": "interrupted"}
        with Journal(str(tmp_path / "journal.sqlite3"), normalise_url(box.url)) as journal:
            assert [e.state for e in journal.entries()] == ["in_doubt"] * 8
        box.faults.latency = 0
        run = reconcile(etl, box)
        assert run.code == 0, run.err
        assert run.out.strip().splitlines()[-1] == (
            "8 rows in doubt: 0 were created, 8 were not (a rerun sends them), 0 still in doubt.")
        assert box.stats.posts == 0


def test_reconcile_with_the_server_spelt_otherwise_uses_its_journal(etl, sandbox, tmp_path, state_home):
    """The import went to 127.0.0.1, `etl reconcile` is given localhost: one server, so one
    journal (before: "nothing has been imported", then a message naming the other spelling)."""
    os.makedirs(os.path.dirname(journal_of(sandbox.url)), exist_ok=True)
    left_pending(tmp_path, sandbox.url, (101, "1", "in doubt"), journal_path=journal_of(sandbox.url))
    made(sandbox, 101, "1", "in doubt")
    other = sandbox.url.replace("127.0.0.1", "localhost")
    run = etl("reconcile", "--api-url", other, "--token", TOKEN, env=NO_ENV)
    assert run.code == 0, run.err
    assert run.out.strip().splitlines()[-1] == (
        "1 rows in doubt: 1 were created, 0 were not (a rerun sends them), 0 still in doubt.")


def test_reconcile_keeps_its_exit_status_when_its_reader_went_away(sandbox, tmp_path):
    """A row still in doubt is exit 1, also when what read stdout has gone (a pipe with no
    reader: the lines can't be written); before, such a run exited 0."""
    left_pending(tmp_path, sandbox.url, (101, "1.5", "unknown"))
    sandbox.faults.list_error = 1.0  # can't be checked: it stays in doubt
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NEXUDUS_")}, "ETL_CONFIG": ""}
    read, write_end = os.pipe()
    os.close(read)
    try:
        command = [sys.executable, "-m", "etl", "reconcile", "--api-url", sandbox.url, "--token", TOKEN,
                   "--journal", "journal.sqlite3"]
        done = subprocess.run(command, cwd=tmp_path, env=env, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
