"""A record a row of this run may still own (its request in flight, or its answer not yet
applied) is never another row's; a lost race is settled by the journal, never a traceback."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from etl.ledger.entries import canonical_json, payload_hash
from etl.ledger.identity import Identities
from etl.ledger.journal import Journal
from etl.ledger.life import Event, Ledger, RecordTaken, Sending
from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, write

RESOURCE = "coworkerbookingcreditusehistories"


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        yield box


def test_concurrent_rows_stored_alike_never_take_each_others_records(etl, sandbox, tmp_path):
    """Distinct rows of one credit whose descriptions the server cuts to 4 characters, sent 4 at
    a time, some answered 500 before or after creating: no traceback, the summary is written,
    every record belongs to one row, and a rerun completes the file with one record per row."""
    sandbox.faults.description_max = 4
    sandbox.faults.latency = 0.05
    sandbox.script("ok", "error_after_create", "error", "ok", "drop_after_create", "ok", "error",
                   "error_after_create", "ok", "ok", "error", "error_after_create", "ok", "ok",
                   "error_after_create", "ok")
    lines = [f"11,1,Desk {c}" for c in "ABCDEFGHIJKLMNOP"]
    path = write(tmp_path, "a.csv", *lines)

    def run():
        return etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                   "--concurrency", "4", "--batch-size", "2", "--timeout", "0.5", "--no-system-id",
                   env=NO_ENV)

    first = run()
    assert "Traceback" not in first.err and first.code in (0, 1), first.err
    assert first.summary()["exit_code"] == first.code
    rows = first.report()
    assert {r["outcome"] for r in rows} <= {"created", "in_doubt"}, rows
    ids = [int(r["id"]) for r in rows if r["outcome"] == "created"]
    records = {r["Id"] for r in sandbox.store.records()}
    assert len(ids) == len(set(ids)) and set(ids) <= records
    assert len(records) <= len(lines)
    time.sleep(2)  # every request has settled
    again = run()
    assert "Traceback" not in again.err and again.code == 0, again.report()
    assert {r["outcome"] for r in again.report()} <= {"created", "skipped"}
    assert len(sandbox.store.records()) == len(lines)
    assert len({r["id"] for r in again.report()}) == len(lines)


def _sent(ledger: Ledger, seen: Identities, scheme: str, tmp_path, number: int, text: str) -> str:
    body = canonical_json({"CoworkerBookingCreditId": 11, "CreditUsed": Decimal(1), "Description": text})
    identity, base, occurrence, _ = seen.of(scheme, ["11", "1", text], "")
    ledger.apply(identity, Event.SEND, "sent", sending=Sending(
        identity, scheme, body, payload_hash(RESOURCE, body), str(tmp_path / "a.csv"), number,
        RESOURCE, 30.0, None, base, occurrence))
    return identity


def test_a_lost_race_is_settled_by_the_journal(tmp_path):
    journal = Journal(str(tmp_path / "journal.sqlite3"), "http://127.0.0.1:1")
    ledger = Ledger(journal)
    seen = Identities(RESOURCE, ())
    _, scheme = seen.columns("a.csv", ["CoworkerBookingCreditId", "CreditUsed", "Description"])
    a = _sent(ledger, seen, scheme, tmp_path, 2, "Desk A")
    b = _sent(ledger, seen, scheme, tmp_path, 3, "Desk B")
    c = _sent(ledger, seen, scheme, tmp_path, 4, "Desk C")
    ledger.apply(b, Event.AMBIGUOUS, "HTTP 500")
    ledger.apply(c, Event.AMBIGUOUS, "HTTP 500")
    ledger.apply(b, Event.FOUND, "checked: it was created", record_id=501)
    # a claim on a record another row holds is refused, by the ledger's own exception
    with pytest.raises(RecordTaken):
        ledger.apply(c, Event.FOUND, "checked: it was created", record_id=501)
    # the row in flight's own 200 names the record B was matched to: the 200 wins, B is in doubt
    assert ledger.apply(a, Event.CREATED, "created", record_id=501) == "created"
    states = {e.identity: (e.state, e.record_id) for e in journal.entries()}
    assert states[a] == ("created", 501) and states[b] == ("in_doubt", None)
    assert states[c] == ("in_doubt", None)
    assert [ev[3] for ev in journal.events(b)][-1] == "disputed"
    journal.close()
