"""Resolving rows in doubt: did the ambiguous request create the record after all?

A row is in doubt when its POST may have created a record (500, time-out, dropped connection,
a crash mid-request). It is looked up with the resource's list endpoint, every page, and the
records are compared field by field (the API ignores filters it does not know, so only what is
compared is trusted). Only records created after the row was first sent, and claimed by no
other journal row, count:
- exactly one: the row was created, with that Id;
- none, once the request can no longer be under way: it was not created; a run sends it again;
- several that can't be told apart (identical rows): it stays in doubt and says why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from etl import logs
from etl.journal import Entry, Journal
from etl.outcomes import Outcome
from etl.posting import Client
from etl.resources import Resource

#: Server clocks drift: a record may carry a CreatedOn a little before our first send.
CLOCK_SKEW = 600.0
PAGE_SIZE = 100
AMOUNT_TOLERANCE = Decimal("0.005")
NOT_CREATED = "checked: the request did not create it; it is sent again"


@dataclass(frozen=True)
class Verdict:
    identity: str
    outcome: Outcome  # CREATED, FAILED (not created: send again) or IN_DOUBT
    record_id: int | None
    reason: str


def _same(value: Any, expected: Any) -> bool:
    if expected is None or expected == "":
        return value is None or value == ""
    if isinstance(expected, Decimal):
        # an amount may come back rounded (to cents, or through a float): within half a cent
        # it is the same amount; "no match" would mean sending it again, a worse mistake
        try:
            return value is not None and abs(Decimal(str(value)) - expected) <= AMOUNT_TOLERANCE
        except InvalidOperation:
            return False
    if isinstance(value, str) and isinstance(expected, str):
        return value.strip() == expected.strip()
    return bool(value == expected)


def _created_on(record: dict[str, Any]) -> float | None:
    text = record.get("CreatedOn")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class Reconciler:
    def __init__(self, client: Client, journal: Journal, resource: Resource, *,
                 before_request: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.journal = journal
        self.resource = resource
        self.before_request = before_request
        self.clock = clock
        self.log = logs.get("etl.reconciling")

    def _records(self, body: dict[str, Any], cache: dict[Any, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        params = {name: str(body[field]) for name, field in self.resource.lookup.items() if field in body}
        key = tuple(sorted(params.items()))
        if key in cache:
            return cache[key]
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            if self.before_request:
                self.before_request()
            answer = self.client.get(self.resource.endpoint,
                                     {**params, "page": page, "size": PAGE_SIZE})
            batch = answer.get("Records") or [] if isinstance(answer, dict) else []
            records.extend(r for r in batch if isinstance(r, dict))
            if not (isinstance(answer, dict) and answer.get("HasNextPage")) or not batch:
                break
            page += 1
        cache[key] = records
        return records

    def reconcile(self, entries: list[Entry]) -> list[Verdict]:
        """Decide each in-doubt entry, record the decision in the journal, and return them."""
        claimed = self.journal.claimed_ids()
        cache: dict[Any, list[dict[str, Any]]] = {}
        verdicts = []
        for entry in entries:
            body = json.loads(entry.payload, parse_float=Decimal, parse_int=int)
            fields = [f.name for f in self.resource.fields]
            since = (entry.first_sent or 0.0) - CLOCK_SKEW
            matches = []
            for record in self._records(body, cache):
                if record.get("Id") in claimed:
                    continue
                created = _created_on(record)
                if created is not None and created < since:
                    continue
                if all(_same(record.get(f), body.get(f)) for f in fields):
                    matches.append(record)
            verdicts.append(self._decide(entry, matches, claimed))
        return verdicts

    def _decide(self, entry: Entry, matches: list[dict[str, Any]], claimed: set[int]) -> Verdict:
        if len(matches) == 1:
            record_id = int(matches[0]["Id"])
            claimed.add(record_id)
            reason = "checked: the request did create it"
            self.journal.record(entry.identity, Outcome.CREATED.value, record_id=record_id,
                                http_status=entry.http_status, attempts=0, errors=reason)
            return Verdict(entry.identity, Outcome.CREATED, record_id, reason)
        if not matches:
            if (entry.settle_until or 0.0) > self.clock():
                return Verdict(entry.identity, Outcome.IN_DOUBT, None,
                               (entry.errors or "in doubt") + "; no record yet, but the request may "
                               "still be under way: checked again by the next run or etl reconcile")
            self.journal.record(entry.identity, Outcome.FAILED.value, record_id=None,
                                http_status=entry.http_status, attempts=0, errors=NOT_CREATED)
            return Verdict(entry.identity, Outcome.FAILED, None, NOT_CREATED)
        ids = ", ".join(str(m["Id"]) for m in matches[:10])
        reason = (f"{len(matches)} records match this row and can't be told apart (Ids {ids}): decide "
                  "by hand; --tag-description makes identical rows distinguishable")
        self.journal.record(entry.identity, Outcome.IN_DOUBT.value, record_id=None,
                            http_status=entry.http_status, attempts=0, errors=reason,
                            settle=(entry.settle_until or 0.0) - self.clock())
        return Verdict(entry.identity, Outcome.IN_DOUBT, None, reason)
