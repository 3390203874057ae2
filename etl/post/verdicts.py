"""What reconciliation decides with: when a request has settled, where a row stands (Place,
Verdict), a sent body compared with a record, and the rows contending for one record."""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from etl.ledger.entries import Entry
from etl.ledger.storage import Comparison, Match, Storage
from etl.outcomes import Outcome
from etl.validate.resources import Resource

MARGIN = 5.0
#: a lower fence is fresh when the request left at most this long after it was known to be the
#: newest Id; a higher fence counts when it was seen at most this long after the request settled
FENCE_FRESH = 5.0
#: when the server sent no Date header, its clock may be this far from ours
UNKNOWN_SKEW = 900.0
#: a time without an offset may be in any zone from UTC-12 to UTC+14
ZONES = (-12 * 3600.0, 14 * 3600.0)
#: an ambiguous request may still be processed until 2 x its time-out plus this (or its
#: time-out, when shorter)
SETTLE_GRACE = 5.0
#: a gateway's 502/504 (or a 503 or 408, which a gateway may send too) says nothing of how long
#: the application behind it goes on: its request is not taken as settled before this
GATEWAY_SETTLE = 600.0
GATEWAY_STATUSES = (408, 502, 503, 504)
PAGE_SIZE = 500
MAX_PAGES = 400


def settle_time(timeout: float | None, status: int | None = None,
                gateway: float = GATEWAY_SETTLE) -> float:
    """How long after an ambiguous request "no record" still proves nothing; GATEWAY is the
    least for an answer a gateway may have given (502, 503, 504, 408)."""
    timeout = timeout or 30.0
    settle = 2 * timeout + min(SETTLE_GRACE, timeout)
    return max(settle, gateway) if status in GATEWAY_STATUSES else settle


def settles_at(entry: Entry, here: float | None = None) -> float:
    """When ENTRY's last request can no longer create a record (our clock, epoch seconds). The
    journal keeps it by the clock of the machine that sent the request; HERE (the server's clock
    minus ours, from its Date header) moves it onto ours where that machine's own offset was kept
    too (a journal several machines share: one whose clock runs ahead would otherwise take
    another's rows as settled too soon). It is never made earlier than the journal says."""
    kept = entry.settle_until or ((entry.last_sent or entry.first_sent or 0.0)
                                  + settle_time(entry.timeout, entry.http_status))
    if here is not None and entry.server_offset is not None:
        # two readings of the server's Date header (whole seconds) differ by a second or two on one
        # machine: only a difference beyond that is two clocks
        skew = entry.server_offset - here
        if skew > MARGIN:
            return kept + skew
    return kept


class Place(enum.Enum):
    """Where a record lies against a row's request (see Reconciler._place)."""

    NOT = "not"
    INSIDE = "inside"
    MAYBE = "maybe"


@dataclass(frozen=True)
class Verdict:
    entry: Entry
    outcome: Outcome  # CREATED, FAILED (not created: send again) or IN_DOUBT
    record_id: int | None
    reason: str

    @property
    def identity(self) -> str:
        return self.entry.identity


def _as_sent(entry: Entry) -> str:
    """What tells identical rows apart on the server: the body as sent, less its SystemId."""
    body = json.loads(entry.payload)
    body.pop("SystemId", None)
    return json.dumps(body, sort_keys=True)


def parse_body(text: str) -> dict[str, Any]:
    """A body as sent, with exact numbers (Decimal amounts, int ids)."""
    body: dict[str, Any] = json.loads(text, parse_float=Decimal, parse_int=int)
    return body


def body_of(entry: Entry) -> dict[str, Any]:
    """The body a row was sent as."""
    return parse_body(entry.payload)


def differences(resource: Resource, record: dict[str, Any], body: dict[str, Any],
                storage: Storage | None = None) -> Comparison:
    """RECORD against the credit use BODY was sent as, field by field, as values, through the
    target's storage rules as learnt (see etl.ledger.storage)."""
    return (storage or Storage()).compare(resource, record, body)


def created_range(record: dict[str, Any], zone: float | None
                  ) -> tuple[float, float, float] | None:
    """When RECORD was created, in UTC epoch seconds: (earliest, latest, best guess). A time
    with an offset is one point; one without is anywhere from UTC-12 to UTC+14, the best guess
    being the account's zone as learnt (zones change: daylight saving time), else the earliest.
    None when unreadable."""
    text = record.get("CreatedOn")
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is not None:
        t = when.timestamp()
        return t, t, t
    naive = when.replace(tzinfo=UTC).timestamp()
    earliest, latest = naive - ZONES[1], naive - ZONES[0]
    return earliest, latest, (naive - zone if zone is not None else earliest)


class _Contenders:
    """The rows that may own a record (in flight, in doubt), by the values a record of theirs
    is looked up with, so each record is compared with the few that share them."""

    def __init__(self, resource: Resource, storage: Storage,
                 after: Callable[[dict[str, Any], Entry], bool], key: Callable[[Entry], str],
                 entries: list[Entry]) -> None:
        self.resource = resource
        self.storage = storage
        self.after = after
        self.fields = list(resource.lookup.values())
        self.by_key: dict[tuple[str, ...], list[tuple[Entry, str, dict[str, Any]]]] = defaultdict(list)
        self.gone: set[str] = set()
        for e in entries:
            body = body_of(e)
            self.by_key[self._key(body)].append((e, key(e), body))

    def _key(self, values: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(values.get(f)) for f in self.fields)

    def done(self, identity: str) -> None:
        self.gone.add(identity)

    def others(self, record: dict[str, Any], sent_as: str, mine: set[str]) -> bool:
        """Whether a row other than those sent as SENT_AS may own RECORD."""
        for e, key, body in self.by_key.get(self._key(record), []):
            if key == sent_as or e.identity in mine or e.identity in self.gone \
                    or not self.after(record, e):
                continue
            if differences(self.resource, record, body, self.storage).match is not Match.DIFFERENT:
                return True
        return False


class _Grouping:
    """Which rows are one group: the same body as sent (less SystemId), or, where the storage
    rules learnt say exactly how the target keeps both, the same body as stored (records of
    such rows can't be told apart, and need not be: they are interchangeable)."""

    def __init__(self, resource: Resource, storage: Storage) -> None:
        self.resource = resource
        self.storage = storage
        self.known: dict[str, str] = {}

    def __call__(self, e: Entry) -> str:
        if e.identity not in self.known:
            form = self.storage.stored_form(self.resource, body_of(e))
            self.known[e.identity] = f"stored:{form}" if form is not None else f"sent:{_as_sent(e)}"
        return self.known[e.identity]
