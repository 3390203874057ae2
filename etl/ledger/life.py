"""A row's life, in one place: its states, the events that move it, and the only writer of them.

    (state, event)              -> next state
    new / failed / rejected /
      not_attempted, SEND       -> pending        the request is about to leave
    pending, CREATED            -> created        the server gave the new record's Id
    pending, REJECTED           -> rejected       400, or 200 with WasSuccessful: false
    pending, NOT_CREATED        -> failed         gave up on answers that prove nothing was created
    pending, AMBIGUOUS          -> in_doubt       500, 502, 503, 504, 408, a time-out, a dropped
                                                  connection
    pending, WITHDRAWN          -> not_attempted  the request never got processed and the run stops
    pending, CRASHED            -> in_doubt       a run died while the request was under way
    in_doubt, FOUND             -> created        reconciliation found its record
    in_doubt, ABSENT            -> failed         reconciliation proved there is none (settled)
    in_doubt, UNDECIDED         -> in_doubt       not yet provable either way
    in_doubt, RESOLVED_CREATED  -> created        decided by a person (`etl resolve`)
    in_doubt, RESOLVED_ABSENT   -> failed         decided by a person
    created, DISPUTED           -> in_doubt       the record it was matched to is another row's:
                                                  that row's own 200 named it

A record Id belongs to one row. A claim on a record another row holds (FOUND, RESOLVED_CREATED)
is refused with `RecordTaken`; a 200 naming a record another row was matched to (a claim, never
proof) wins, and the claimant goes back in doubt, in the same transaction.

Everything else (posting, reconciling, the importer) only proposes events; `Ledger.apply`
checks the transition against this table, writes the row and an event record in one
transaction, and logs one structured event (`row`, `from`, `to`, `reason`). So the report, the
journal and the log say the same thing in the same words, and "why is row 17 in doubt?" is
`grep '"row": 17' log.jsonl` (the journal's `events` table keeps the same, across runs).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

from etl import logs
from etl.ledger.entries import Entry, clock, now_iso
from etl.ledger.journal import Journal
from etl.outcomes import Outcome

NEW = "new"
PENDING = "pending"


class Event(enum.StrEnum):
    SEND = "send"
    CREATED = "created"
    REJECTED = "rejected"
    NOT_CREATED = "not_created"
    AMBIGUOUS = "ambiguous"
    WITHDRAWN = "withdrawn"
    CRASHED = "crashed"
    FOUND = "found"
    ABSENT = "absent"
    UNDECIDED = "undecided"
    RESOLVED_CREATED = "resolved_created"
    RESOLVED_ABSENT = "resolved_absent"
    DISPUTED = "disputed"


_C, _R, _F, _D, _N = (Outcome.CREATED.value, Outcome.REJECTED.value, Outcome.FAILED.value,
                      Outcome.IN_DOUBT.value, Outcome.NOT_ATTEMPTED.value)

TRANSITIONS: dict[tuple[str, Event], str] = {
    **{(s, Event.SEND): PENDING for s in (NEW, _F, _R, _N)},
    (PENDING, Event.CREATED): _C,
    (PENDING, Event.REJECTED): _R,
    (PENDING, Event.NOT_CREATED): _F,
    (PENDING, Event.AMBIGUOUS): _D,
    (PENDING, Event.WITHDRAWN): _N,
    (PENDING, Event.CRASHED): _D,
    (_D, Event.FOUND): _C,
    (_D, Event.ABSENT): _F,
    (_D, Event.UNDECIDED): _D,
    (_D, Event.RESOLVED_CREATED): _C,
    (_D, Event.RESOLVED_ABSENT): _F,
    (_C, Event.DISPUTED): _D,
}

#: The words of each decision, shared by report, journal and log.
CRASH_REASON = "a run stopped while this row was being sent; it may have been created"
ABSENT_REASON = "checked: no record was created; the next import of it sends it again"


class TransitionRefused(Exception):
    """A transition that is not in the table: a defect, never a row's fault."""


class RecordTaken(Exception):
    """A claim on a record another row holds: that record is not this row's proof."""

    def __init__(self, record_id: int, holder: str) -> None:
        super().__init__(f"record {record_id} belongs to another row of the journal")
        self.record_id = record_id
        self.holder = holder


@dataclass(frozen=True)
class Sending:
    """What is known of a row when its request is about to leave."""

    identity: str
    scheme: str
    payload: str
    payload_hash: str
    source: str
    row: int
    resource: str
    timeout: float
    system_id: str | None = None
    base: str | None = None
    occurrence: int | None = None
    fence_low: int | None = None  # the largest record Id seen before the request leaves
    fence_at: float | None = None  # since when a record above fence_low is new (None: unknown)


class Ledger:
    """The only writer of a row's state."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.log = logs.get("etl.ledger")

    def state(self, entry: Entry | None) -> str:
        return NEW if entry is None else entry.state

    def apply(self, identity: str, event: Event, reason: str | None = None, *,
              sending: Sending | None = None, **facts: Any) -> str:
        """Move IDENTITY's row by EVENT; FACTS are journal columns that go with it (record_id,
        http_status, attempts, settle_until, server_offset...). Returns the new state."""
        journal = self.journal
        with journal.transaction() as db:
            row = db.execute("SELECT state, source, row, attempts, first_sent FROM rows WHERE identity = ?",
                             (identity,)).fetchone()
            before = NEW if row is None else row[0]
            after = TRANSITIONS.get((before, event))
            if after is None:
                raise TransitionRefused(f"{before} -> {event.value} is not a transition of a row")
            fields: dict[str, Any] = dict(facts)
            disputed = self._take_record(db, identity, event, fields)
            if "attempts" in fields:
                fields["attempts"] = (row[3] if row else 0) + int(fields["attempts"] or 0)
            fields.update(state=after, reason=reason, run_id=journal.run_id)
            if event is Event.SEND:
                assert sending is not None
                now = clock()
                fields.update(scheme=sending.scheme, payload=sending.payload,
                              payload_hash=sending.payload_hash, source=os.path.realpath(sending.source),
                              row=sending.row, resource=sending.resource, timeout=sending.timeout,
                              system_id=sending.system_id, last_sent=now, settle_until=None,
                              base=sending.base, occurrence=sending.occurrence,
                              fence_low=sending.fence_low, fence_at=sending.fence_at, fence_high=None,
                              first_sent=now if row is None or row[4] is None else row[4])
                if before in (_F, _N, _R):
                    fields["first_sent"] = now  # a new request: older records are not its own
            if after == _C:
                fields["created_at"] = now_iso()
            journal.write_row(db, identity, fields, insert=row is None)
            source = fields.get("source") or (row[1] if row else None)
            number = fields.get("row") or (row[2] if row else None)
            journal.write_event(db, identity, source, number, None if before == NEW else before, after,
                                event.value, reason)
        self.log.info("row", source=source, row=number, identity=identity[:12],
                      **{"from": before, "to": after}, on=event.value, reason=reason,
                      record_id=facts.get("record_id"))
        if disputed:
            self.log.warning(f"record {facts.get('record_id')} was matched to another row, but this "
                             f"row's 200 named it: that row is in doubt again ({disputed[:12]})")
        return after

    def _take_record(self, db: Any, identity: str, event: Event, fields: dict[str, Any]) -> str | None:
        """Inside the transaction: make way for FIELDS' record_id. Returns the identity of a row
        whose claim on it gave way to this row's own 200 (it is in doubt again), else None."""
        record_id = fields.get("record_id")
        if record_id is None:
            return None
        held = self.journal.holder(db, record_id)
        if held is None or held[0] == identity:
            return None
        other, state, how = held
        if event is not Event.CREATED or how == Event.CREATED.value:
            raise RecordTaken(record_id, other)
        reason = (f"in doubt: record {record_id}, matched to this row, was named by another row's own "
                  "answer (200); checked again")
        self.journal.write_row(db, other, {"state": _D, "record_id": None, "reason": reason,
                                           "run_id": self.journal.run_id}, insert=False)
        self.journal.write_event(db, other, None, None, state, _D, Event.DISPUTED.value, reason)
        return other


def plan(entry: Entry | None, *, retry_rejected: bool = False) -> str:
    """What a run does with a row: "send", "skip" (created earlier), "doubt" (may exist) or
    "rejected" (the API refused it: sending the same row again won't help, and if a corrected
    copy was loaded meanwhile, a server that accepts it now would make a second credit use)."""
    state = NEW if entry is None else entry.state
    if state == _C:
        return "skip"
    if state in (_D, PENDING):
        return "doubt"
    if state == _R and not retry_rejected:
        return "rejected"
    return "send"
