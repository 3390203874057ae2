"""The journal on both backends: a SQLite file (the default) and a PostgreSQL database that
several machines share. Import, rerun, status, reconcile, resolve and the run lock behave alike;
a PostgreSQL journal's password is never shown; a run whose lock is taken away stops."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from etl.ledger.entries import canonical_json, normalise_url, payload_hash
from etl.ledger.identity import Identities
from etl.ledger.journal import Journal
from etl.ledger.life import Event, Ledger, Sending
from etl.sandbox import Faults, Sandbox
from tests.conftest import PG_SECRET, SAMPLES
from tests.test_import import NO_ENV, TOKEN, write

RESOURCE = "coworkerbookingcreditusehistories"


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        yield box


def everything_shown(run, tmp_path: Path) -> str:
    """What a run showed anywhere: its output, and every file it wrote (reports, logs)."""
    texts = [run.out, run.err]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*")
              if p.is_file() and p.suffix in (".csv", ".json", ".html", ".log", ".jsonl", ".txt")]
    return "\n".join(texts)


def states(journal: str, url: str) -> dict[int | None, tuple[str, int | None]]:
    with Journal(journal, normalise_url(url)) as j:
        return {e.row: (e.state, e.record_id) for e in j.entries()}


def test_import_rerun_and_status_on_each_backend(etl, sandbox, journal, tmp_path):
    api = ["--api-url", sandbox.url, "--token", TOKEN, "--journal", journal]
    run = etl("import", SAMPLES / "credit_uses.csv", *api, "--rate", "1000", "--json", env=NO_ENV)
    assert run.code == 0, run.err
    ids = sorted(r["Id"] for r in sandbox.store.records())
    assert len(ids) == 24 and sandbox.stats.posts == 24
    again = etl("import", SAMPLES / "credit_uses.csv", *api, "--rate", "1000", env=NO_ENV)
    assert again.code == 0, again.err
    assert again.out.startswith("24 rows: 24 skipped.")
    assert sandbox.stats.posts == 24
    assert sorted(int(r["id"]) for r in again.report()) == ids

    status = etl("status", "--journal", journal, "--json", env=NO_ENV)
    assert status.code == 0, status.err
    found = json.loads(status.out)
    assert [(s["done"], s["left"]) for s in found["sources"]] == [(24, 0)]
    assert found["posts_today"] == 24
    assert [(r["command"], r["exit_code"], r["running"]) for r in found["runs"]] == [
        ("import", 0, False), ("import", 0, False)]
    summed = etl("report", again.report_path().parent, "--html", "page.html", "--json", env=NO_ENV)
    assert summed.code == 0, summed.err
    assert json.loads(summed.out)["counts"]["skipped"] == 24
    shown = everything_shown(run, tmp_path) + everything_shown(status, tmp_path) + summed.out
    assert PG_SECRET not in shown
    if journal.startswith("postgresql://"):
        masked = journal.replace(PG_SECRET, "***")
        assert found["journal"] == masked
        assert again.summary()["journal"] == masked


def left_pending(journal: str, url: str, tmp_path: Path, *rows: tuple[int, str, str]) -> None:
    """A journal as a crash leaves it: rows marked pending, their answers never recorded."""
    j = Journal(journal, normalise_url(url))
    ledger = Ledger(j)
    seen = Identities(RESOURCE, ())
    _, scheme = seen.columns("export.csv", ["CoworkerBookingCreditId", "CreditUsed", "Description"])
    for number, (credit, used, text) in enumerate(rows, start=2):
        body = canonical_json({"CoworkerBookingCreditId": credit, "CreditUsed": Decimal(used),
                               "Description": text})
        identity, base, occurrence, _ = seen.of(scheme, [str(credit), used, text], "")
        ledger.apply(identity, Event.SEND, "sent", sending=Sending(
            identity, scheme, body, payload_hash(RESOURCE, body), str(tmp_path / "export.csv"), number,
            RESOURCE, 30.0, None, base, occurrence))
    with j.transaction() as db:
        db.execute("UPDATE rows SET first_sent = first_sent - 120, last_sent = last_sent - 120")
    j.close()


def ago(seconds: float) -> str:
    """A CreatedOn this many seconds ago (UTC)."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def test_reconcile_and_resolve_on_each_backend(etl, sandbox, journal, tmp_path):
    left_pending(journal, sandbox.url, tmp_path, (101, "1.5", "made it"), (102, "2", "never arrived"),
                 (103, "3", "looked up by hand"))
    # made while the crashed run's request was under way (it left 120 s ago, settled 55 s ago)
    made = sandbox.store.create({"CoworkerBookingCreditId": 101, "CreditUsed": "1.5",
                                 "Description": "made it"}, created_on=ago(100))
    api = ["--api-url", sandbox.url, "--token", TOKEN, "--journal", journal]
    run = etl("reconcile", *api, env=NO_ENV)
    assert run.code == 0, run.err
    assert f"export.csv row 2: created (Id {made})" in run.out
    assert states(journal, sandbox.url) == {2: ("created", made), 3: ("failed", None), 4: ("failed", None)}

    refused = etl("resolve", "export.csv:2", "--created", str(made), *api, env=NO_ENV)
    assert refused.code == 2 and "it is created" in refused.err, refused.err
    assert sandbox.stats.posts == 0
    assert PG_SECRET not in everything_shown(run, tmp_path) + refused.err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1"])
def test_a_second_run_on_a_held_journal_stops_with_exit_3(etl, sandbox, journal, tmp_path, host):
    """However the second run spells the server (one server: one journal, one lock; before, a
    PostgreSQL journal's lock went by the spelling, both runs went on, and a row was posted
    twice)."""
    path = write(tmp_path, "export.csv", "101,1,first")
    url = sandbox.url.replace("127.0.0.1", host)
    with Journal(journal, normalise_url(sandbox.url), run_id="first-run") as held:
        held.start_run("import", [], "2026-12-03T02:15:00+00:00")
        run = etl("import", path, "--api-url", url, "--token", TOKEN, "--journal", journal,
                  env=NO_ENV)
        assert run.code == 3, run.err
        assert "another run holds the journal" in run.err
        assert sandbox.stats.posts == 0
        if journal.startswith("postgresql://"):  # told by the lock, from any machine
            assert "(etl run first-run)" in run.err
            status = etl("status", "--journal", journal, "--json", env=NO_ENV)
            assert [(r["run_id"], r["running"]) for r in json.loads(status.out)["runs"]] == [
                ("first-run", True)]
    run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--journal", journal, env=NO_ENV)
    assert run.code == 0, run.err
    assert sandbox.stats.posts == 1
    assert PG_SECRET not in run.err + run.out


def test_a_run_whose_lock_is_taken_away_stops_before_its_next_post(etl, pg_url, tmp_path):
    """The server ends the lock's session while the third POST is under way (an idle timeout, a
    failover, an operator): that run sends nothing more; a rerun creates every row exactly once."""
    import psycopg

    def end_the_lock_session(n: int) -> None:
        if n == 3:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                # and waits until it has ended (the lock is gone) before answering that POST
                ended = conn.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                                     "WHERE application_name LIKE 'etl run %'").fetchall()
            assert ended == [(True,)]

    path = write(tmp_path, "export.csv", *(f"{100 + i},1,row {i}" for i in range(10)))
    with Sandbox(faults=Faults(retry_after=0, on_post=end_the_lock_session), tokens=(TOKEN,)) as box:
        api = ["--api-url", box.url, "--token", TOKEN, "--journal", pg_url]
        run = etl("import", path, *api, "--rate", "1000", env=NO_ENV)
        assert run.code == 3, (run.out, run.err)
        assert "lost the lock of the journal" in run.err
        assert box.stats.posts == 3
        assert PG_SECRET not in run.out + run.err
        box.faults.on_post = None
        again = etl("import", path, *api, "--rate", "1000", env=NO_ENV)
        assert again.code == 0, again.err
        records = box.store.records()
        assert sorted(r["CoworkerBookingCreditId"] for r in records) == list(range(100, 110))
        assert box.stats.posts == 10


def test_a_journal_url_that_cannot_be_opened_shows_no_password(etl, pg_url):
    wrong = pg_url.replace("@/", "@/no_such_database_", 1)
    run = etl("status", "--journal", wrong, env=NO_ENV)
    assert run.code == 2
    assert "can't open the journal postgresql://postgres:***@/no_such_database_" in run.err
    assert PG_SECRET not in run.out + run.err


def test_a_journal_server_that_is_down_is_said_in_one_line(etl):
    """libpq's message runs over two lines (`... Connection refused\n\tIs the server running
    ...`): the error is one line, as every error of etl is."""
    run = etl("status", "--journal", f"postgresql://etl:{PG_SECRET}@127.0.0.1:1/etl_db", env=NO_ENV)
    assert run.code == 2
    assert run.err.startswith("etl: error: can't open the journal postgresql://etl:***@127.0.0.1:1/etl_db: ")
    assert run.err.count("\n") == 1 and "\t" not in run.err and PG_SECRET not in run.err


def test_a_journal_password_is_read_only_from_a_config_its_owner_alone_reads(etl, pg_url, tmp_path):
    with Journal(pg_url, "sandbox", run_id="r1") as j:
        j.start_run("import", [], "2026-12-03T10:00:00+00:00")
    config = tmp_path / "shared.toml"
    config.write_text(f'[import]\njournal = "{pg_url}"\nsandbox = true\n')
    config.chmod(0o644)
    refused = etl("status", "--config", config, env=NO_ENV)
    assert refused.code == 2
    assert "holds the journal's database password but others can read" in refused.err
    config.chmod(0o600)
    run = etl("status", "--config", config, "--json", env=NO_ENV)
    assert run.code == 0, run.err
    assert json.loads(run.out)["journal"] == pg_url.replace(PG_SECRET, "***")
    assert PG_SECRET not in refused.err + run.out + run.err


@pytest.mark.parametrize("url, shown", [
    ("postgresql://etl:s3cr:et@db.internal:5433/etl_spaces", "postgresql://etl:***@db.internal:5433/etl_spaces"),
    ("postgres://etl@db/j?password=s3cr:et&sslmode=require", "postgres://etl@db/j?password=***&sslmode=require"),
    ("postgresql://etl@db/j", "postgresql://etl@db/j"),
    ("postgresql://etl:s3cr@t/Pa55@db/j", "postgresql://***@db/j"),  # a '/' after a '@' in it
    ("postgresql://etl@db/j?application_name=a@b", "postgresql://etl@db/j?application_name=a%40b"),
    # a '?' then a '=' in the password: libpq reads user and password up to the '@' (no '/'
    # before it), Python a query (before: shown whole)
    ("postgresql://etl:Xy?z=9q@db:5432/j", "postgresql://***@db:5432/j"),
    ("postgresql://etl:Xy#z=9q@db/j", "postgresql://***@db/j"),
    ("postgresql://etl@db/j?sslkey=k.pem&sslpassword=S3cr3t", "postgresql://etl@db/j?sslkey=k.pem&sslpassword=***"),
    # a '@' in a query before any '/' (a user name "etl@dbsrv", a password "Xy@9q..."): what
    # follows it may be a password's rest (before: shown, the password with it)
    ("postgresql://?host=db&user=etl@dbsrv&password=S3cr3t", "postgresql://***"),
    ("postgresql://db?user=etl&password=Xy@9qS3cr3t", "postgresql://***"),
    ("postgresql://db?user=etl@dbsrv/j?password=S3cr3t", "postgresql://***@dbsrv/j?password=***"),
])
def test_a_journal_url_is_shown_without_its_password(url, shown):
    from etl.ledger.journal_backends import shown as masked

    assert masked(url) == shown


@pytest.mark.parametrize(("secret", "command"), [
    ("Sl4sh/S3cr3t", ["status"]),
    ("H4sh#S3cr3t", ["reconcile", "--sandbox"]),
    ("Q?S3cr3t", ["import", str(SAMPLES / "credit_uses.csv"), "--sandbox", "--json"]),
    ("Xy?S3cr3t=9q", ["import", str(SAMPLES / "credit_uses.csv"), "--sandbox", "--json"]),
    ("Xy?z=9q&S3cr3t", ["status"]),
    ("s3cr@t/S3cr3t", ["import", str(SAMPLES / "credit_uses.csv"), "--sandbox", "--json"]),
])
def test_a_journal_password_with_a_slash_hash_or_question_mark_as_is_is_never_shown(etl, secret, command):
    """A '/', '#' or '?' in a URL's password, not percent-encoded, ends its host part for
    Python's parser (libpq reads it otherwise): the URL is refused, and shown with all before its
    last '@' masked (before: the password, or its first part, in the message, --json,
    summary.json and the log)."""
    url = f"postgresql://etl:{secret}@127.0.0.1:1/etl_db"
    run = etl(*command, "--journal", url, env=NO_ENV)
    assert run.code == 2
    assert "--journal postgresql://***@127.0.0.1:1/etl_db: write a '/', '?' or '#'" in run.err
    shown = run.out + run.err + "".join(p.read_text() for p in run.cwd.rglob("*") if p.is_file())
    assert "S3cr3t" not in shown and all(part not in shown for part in ("Sl4sh", "H4sh", "s3cr@t"))


def test_an_emptied_postgresql_journal_stops_the_import_until_new_journal(etl, sandbox, pg_url, tmp_path):
    import psycopg

    path = write(tmp_path, "export.csv", "101,1,first")
    api = ["--api-url", sandbox.url, "--token", TOKEN, "--journal", pg_url]
    assert etl("import", path, *api, env=NO_ENV).code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:  # restored from the wrong backup
        conn.execute("DROP TABLE rows, meta, events, sources, runs, quota")
    run = etl("import", path, *api, env=NO_ENV)
    assert run.code == 2 and "was emptied, but it had recorded 1 created credit uses" in run.err
    assert sandbox.stats.posts == 1
    # --new-journal gets past the emptied journal; the record's import key still stops the row
    afresh = etl("import", path, *api, "--new-journal", env=NO_ENV)
    assert afresh.code == 2 and "carries its import key" in afresh.err, afresh.err
    assert "was emptied" not in afresh.err
    assert sandbox.stats.posts == 1
    assert PG_SECRET not in run.err + afresh.err + afresh.out


@pytest.mark.parametrize("command", [("status",), ("reconcile", "--token", TOKEN),
                                     ("resolve", "export.csv:2", "--not-created", "--token", TOKEN)])
def test_a_database_that_holds_no_journal_yet_is_said_so_and_left_alone(etl, sandbox, pg_url, command):
    run = etl(*command, "--api-url", sandbox.url, "--journal", pg_url, env=NO_ENV)
    assert run.code == 2
    assert "no journal in postgresql://postgres:***@/" in run.err and "nothing has been imported" in run.err
    assert PG_SECRET not in run.err
    import psycopg

    with psycopg.connect(pg_url.replace(f":{PG_SECRET}", "")) as db:  # nothing was made in it
        assert db.execute("SELECT to_regclass('meta'), to_regclass('rows')").fetchone() == (None, None)


def test_a_run_taking_a_lost_lock_waits_for_the_last_holders_write_in_flight(pg_url):
    """The old run's lock session ends while its write (a row marked pending) is in flight: the
    run that takes the lock next waits for that write to end and sees it; the old run writes
    nothing more."""
    import threading
    import time

    import psycopg

    from etl.errors import RunAborted

    old = Journal(pg_url, "sandbox", run_id="old")
    writing = old.transaction()
    db = writing.__enter__()
    db.execute("INSERT INTO meta VALUES ('in-flight', 'pending mark')")
    admin = psycopg.connect(pg_url, autocommit=True)
    ended = False
    try:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'etl run old'")
        opened: list[Journal] = []
        taker = threading.Thread(target=lambda: opened.append(Journal(pg_url, "sandbox", run_id="new")),
                                 daemon=True)
        taker.start()
        for _ in range(400):  # until the new run queues behind the write in flight
            waiting = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND NOT granted").fetchone()
            if waiting[0]:
                break
            time.sleep(0.025)
        assert waiting[0] == 1 and not opened
        ended = True
        writing.__exit__(None, None, None)
        taker.join()
        [new] = opened
        assert new.meta("in-flight") == "pending mark"
        with pytest.raises(RunAborted, match="lost the lock of the journal"):
            old.set_meta("after", "lost")
        assert new.meta("after") is None
        new.close()
        old.close()
    finally:
        if not ended:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name IN ('etl journal', 'etl run new')")
        admin.close()


def test_a_run_started_as_another_ends_waits_for_its_lock(etl, pg_url, tmp_path):
    """A run's lock of a PostgreSQL journal is let go of when the run ends (not when the server
    ends its session, a moment later), and a run that finds it held waits a moment for it: the
    next line of a cron job, started as the run before it ends, posts its rows."""
    import threading
    import time

    from etl.ledger.journal_backends import _connect, holder_of

    path = write(tmp_path, "day.csv", "201,1,the next day")
    with Sandbox(tokens=(TOKEN,)) as box:
        target = normalise_url(box.url)
        ending = Journal(pg_url, target, run_id="ending")
        ending.start_run("import", [], "2026-12-03T02:15:00+00:00")
        def end_once_the_next_run_tries() -> None:
            watcher = _connect(pg_url, "etl test")
            try:
                for _ in range(600):  # the next run's lock session is there: it tries the lock
                    if watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                       "LIKE 'etl run %' AND application_name <> 'etl run ending'"
                                       ).fetchone()[0]:
                        break
                    time.sleep(0.05)
                time.sleep(0.3)
            finally:
                watcher.close()
                ending.close()

        ends = threading.Thread(target=end_once_the_next_run_tries)
        ends.start()
        try:
            run = etl("import", path, "--api-url", box.url, "--token", TOKEN, "--journal", pg_url,
                      env=NO_ENV)
        finally:
            ends.join()
        assert run.code == 0, run.err
        assert box.stats.posts == 1
        watcher = _connect(pg_url, "etl test")
        try:
            assert holder_of(watcher, target) is None  # let go of as that run ended
        finally:
            watcher.close()


def test_status_tells_a_file_by_its_lines_on_each_backend(etl, sandbox, journal, tmp_path):
    """A re-export without a row created before and with a new row the quota did not reach:
    status, on either backend, has the new row left (the lines the import told, kept in the
    journal), not the dropped row counted done."""
    api = ["--api-url", sandbox.url, "--token", TOKEN, "--journal", journal, "--rate", "1000",
           "--no-check-credits"]
    header = "CoworkerBookingCreditId,CreditUsed,Description\n"
    export = tmp_path / "export.csv"
    export.write_text(header + "".join(f"{1200 + i},1,use {i}\n" for i in range(1, 6)))
    assert etl("import", export, *api, env=NO_ENV).code == 0
    export.write_text(header + "".join(f"{1200 + i},1,use {i}\n" for i in (1, 2, 3, 4, 6)))
    assert etl("import", export, *api, "--daily-limit", "5", env=NO_ENV).code == 4
    found = json.loads(etl("status", "--journal", journal, "--json", "--daily-limit", "5", env=NO_ENV).out)
    (source,) = found["sources"]
    assert (source["done"], source["left"], found["to_post"], found["unfinished"]) == (4, 1, 1, [])
