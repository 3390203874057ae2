"""Resolving rows in doubt: did the ambiguous request create the record after all?

A row is in doubt when its POST may have created a record (500, 502, 504, a time-out, a dropped
connection, a crash mid-request). Reconciliation proves before anything is sent again:

- **By SystemId, where the account keeps it**: the row's import key was sent as `SystemId`; one
  exact look-up finds its record, or proves there is none. The returned records' `SystemId` is
  compared here, since a server ignores filters it does not know.
- **Otherwise by its fields**: records are listed with the resource's look-up filter, every page,
  and compared on what the server cannot have changed (the ids, the amount within rounding);
  `Description` breaks ties, tolerating shortening, trimming, whitespace, Unicode forms and HTML
  entities. Only records created after the row's first send (by the *server's* clock, read from
  its `Date` header) and claimed by no other journal row can be this row's; a record whose
  creation time can't be placed (a local time in an unknown zone) keeps the row in doubt.
- **Identical rows are interchangeable**: n identical rows in doubt and m unclaimed records that
  match them: min(n, m) are created (Ids in order), the rest are not created once settled.
- **"Not created" needs the request to be settled**: no record may mean "not yet", until twice the
  time-out the request was sent with (from the journal), plus a grace period, has passed.
"""

from __future__ import annotations

import html
import json
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from typing import Any

from etl import logs
from etl.journal import Entry, Journal
from etl.journal_backends import IntegrityError
from etl.ledger import ABSENT_REASON as ABSENT
from etl.ledger import Event, Ledger
from etl.outcomes import Outcome
from etl.posting import Client, ReadFailed
from etl.resources import Resource

#: records created this long before our send (by the server's clock) are someone else's
MARGIN = 5.0
#: when the server sent no Date header, its clock may be this far from ours
UNKNOWN_SKEW = 900.0
#: a time without an offset may be in any zone from UTC-12 to UTC+14
ZONES = (-12 * 3600.0, 14 * 3600.0)
#: an ambiguous request may still be processed until 2 x its time-out plus this (or its
#: time-out, when shorter)
SETTLE_GRACE = 5.0
#: a gateway's 502/504 says nothing of how long the application behind it goes on: its
#: request is not taken as settled before this
GATEWAY_SETTLE = 600.0
PAGE_SIZE = 500
MAX_PAGES = 400
AMOUNT_TOLERANCE = Decimal("0.005")


def settle_time(timeout: float | None, status: int | None = None,
                gateway: float = GATEWAY_SETTLE) -> float:
    """How long after an ambiguous request "no record" still proves nothing; GATEWAY is the
    least for a gateway's 502/504."""
    timeout = timeout or 30.0
    settle = 2 * timeout + min(SETTLE_GRACE, timeout)
    return max(settle, gateway) if status in (502, 504) else settle


@dataclass(frozen=True)
class Verdict:
    entry: Entry
    outcome: Outcome  # CREATED, FAILED (not created: send again) or IN_DOUBT
    record_id: int | None
    reason: str

    @property
    def identity(self) -> str:
        return self.entry.identity


def normal_text(value: Any) -> str:
    text = html.unescape(str(value or ""))
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"\s+", " ", text).strip().casefold()


def same_text(theirs: Any, ours: Any) -> bool:
    """The server's Description may be ours shortened, trimmed, re-spaced or HTML-encoded."""
    a, b = normal_text(theirs), normal_text(ours)
    if a == b:
        return True
    a = a.rstrip(".…").rstrip()
    # however short the server cut it: a record left out as "not ours" would let its row be
    # proved absent and sent again (a second credit use); one that could be ours keeps its row
    # created or, if it could be another row's too, in doubt
    return bool(a) and b.startswith(a)


def _same(value: Any, expected: Any) -> bool:
    if expected is None or expected == "":
        return value is None or value == "" or value == 0
    if isinstance(expected, Decimal):
        return value is not None and same_amount(value, expected)
    if isinstance(expected, bool) or isinstance(value, bool):
        return value == expected
    if isinstance(expected, int):
        try:
            return int(value) == expected
        except (TypeError, ValueError):
            return False
    return bool(value == expected)


def _as_sent(entry: Entry) -> str:
    """What tells identical rows apart on the server: the body as sent, less its SystemId."""
    body = json.loads(entry.payload)
    body.pop("SystemId", None)
    return json.dumps(body, sort_keys=True)


def differences(resource: Resource, record: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """The fields in which RECORD can't be the credit use BODY was sent as: the ids and the
    amount must agree (the amount as the server keeps it rounded); the Description may come
    back shortened, trimmed, re-spaced or HTML-encoded. [] when it can be."""
    differ = [f.name for f in resource.fields if f.name != "Description"
              and not _same(record.get(f.name), body.get(f.name))]
    if ("Description" in body or record.get("Description")) and \
            not same_text(record.get("Description"), body.get("Description")):
        differ.append("Description")
    return differ


def same_amount(theirs: Any, ours: Decimal) -> bool:
    """The server may keep an amount rounded (to cents, to its own precision, through a float):
    within half a cent, or ours rounded to the places the server's has, is the same amount."""
    try:
        value = Decimal(str(theirs))
    except (InvalidOperation, ValueError):
        return False
    if abs(value - ours) <= AMOUNT_TOLERANCE:
        return True
    places = max(0, -int(value.normalize().as_tuple().exponent))
    step = Decimal(1).scaleb(-places)
    return any(ours.quantize(step, rounding=mode) == value
               for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN, ROUND_UP))


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


class Reconciler:
    def __init__(self, client: Client, journal: Journal, ledger: Ledger, resource: Resource, *,
                 before_request: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.time, patience: float = 600.0) -> None:
        self.client = client
        self.journal = journal
        self.ledger = ledger
        self.resource = resource
        self.before_request = before_request
        self.clock = clock
        self.patience = patience
        self.log = logs.get("etl.reconciling")

    # reading the server

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        if self.before_request:
            self.before_request()
        return self.client.get(path, params, patience=self.patience)

    def records(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every record the list endpoint gives for PARAMS, each once, in Id order. A page that
        brings nothing new, TotalPages or a hard cap ends the paging (servers that ignore
        `page` would otherwise be read for ever)."""
        seen: dict[Any, dict[str, Any]] = {}
        page = 1
        while page <= MAX_PAGES:
            answer = self._get(self.resource.endpoint, {**params, "page": page, "size": PAGE_SIZE,
                                                        "orderBy": "Id", "dir": 1})
            if not isinstance(answer, dict) or not isinstance(answer.get("Records"), list):
                raise ReadFailed(f"the list of {self.resource.name} came back without Records")
            new = 0
            for record in answer["Records"]:
                if isinstance(record, dict) and record.get("Id") is not None and record["Id"] not in seen:
                    seen[record["Id"]] = record
                    new += 1
            pages = answer.get("TotalPages")
            if page > 1 and answer["Records"] and not new:
                break  # a page that repeats what was read: the server does not page
            if not answer["Records"] or not answer.get("HasNextPage", True) or (
                    isinstance(pages, int) and page >= pages):
                return sorted(seen.values(), key=lambda r: (str(type(r["Id"])), r["Id"]))
            page += 1
        # a server that ignores `page` (or a list longer than the cap): what was read is not all
        # there is, and "no record" could not be trusted
        raise ReadFailed(f"the list of {self.resource.name} could not be read to its end (page {page} "
                         f"brought nothing new, {len(seen)} records read)")

    # deciding

    def reconcile(self, entries: list[Entry], *, final: bool = False) -> list[Verdict]:
        """Decide each entry in doubt (and every identical row in doubt with it), record each
        verdict through the ledger, and return the verdicts (ENTRIES' first).

        The server is read first and the journal after, in one snapshot: a record an identical
        row in flight has just created is then either claimed by it already, or its row is
        still pending and the group waits. Never the other way round."""
        if not entries:
            return []
        wanted = {e.identity for e in entries}
        by_payload: dict[str, list[Entry]] = defaultdict(list)
        hashes = {e.payload_hash for e in entries}
        for e in self.journal.entries(Outcome.IN_DOUBT.value):
            if e.payload_hash in hashes and e.resource in (None, "", self.resource.name):
                by_payload[_as_sent(e)].append(e)
        exact = self.journal.meta("system_id") == "on"
        groups = [sorted(g, key=lambda e: (e.first_sent or 0.0, e.identity)) for g in by_payload.values()]
        cache: dict[Any, list[dict[str, Any]]] = {}
        read: dict[int, tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]] = {}
        verdicts: dict[str, Verdict] = {}
        for gi, group in enumerate(groups):
            try:
                keyed = {e.identity: self.records({self.resource.system_id_filter: str(e.system_id)})
                         for e in group if exact and e.system_id}
                rest = [e for e in group if e.identity not in keyed]
                read[gi] = (keyed, self._listed(rest[0], cache) if rest else [])
            except ReadFailed as exc:
                for e in group:
                    verdicts[e.identity] = self._undecided(e, f"could not check: {exc}")
        claimed, busy = self.journal.snapshot()
        # candidates by fields, group by group; a record that may be the row of two different
        # groups (a shortened Description) is taken by neither
        found: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for gi, (keyed, listed) in read.items():
            rest = [e for e in groups[gi] if e.identity not in keyed]
            if rest:
                found[gi] = self._candidates(rest, listed, claimed)
        times = Counter(r["Id"] for ours, maybe in found.values() for r in ours + maybe)
        for gi, (keyed, _) in read.items():
            group = groups[gi]
            if group[0].payload_hash in busy:
                for e in group:
                    verdicts[e.identity] = self._undecided(
                        e, "an identical row is being sent right now; checked once it is answered")
                continue
            for e in group:
                if e.identity in keyed:
                    verdicts[e.identity] = self._by_system_id(e, keyed[e.identity], claimed)
            if gi in found:
                ours, maybe = found[gi]
                maybe = maybe + [r for r in ours if times[r["Id"]] > 1]
                ours = [r for r in ours if times[r["Id"]] == 1]
                rest = [e for e in group if e.identity not in keyed]
                for v in self._decide(rest, ours, maybe, claimed):
                    verdicts[v.identity] = v
        return sorted(verdicts.values(), key=lambda v: v.identity not in wanted)

    def _by_system_id(self, entry: Entry, records: list[dict[str, Any]], claimed: set[int]) -> Verdict:
        sid = entry.system_id
        found = [r for r in records if r.get("SystemId") == sid and r.get("Id") not in claimed]
        if found:
            record_id = int(found[0]["Id"])
            extra = (f" (also Ids {', '.join(str(r['Id']) for r in found[1:6])} carry its key: "
                     "check them)") if len(found) > 1 else ""
            return self._found(entry, record_id, f"checked by its SystemId: it was created{extra}", claimed)
        return self._absent_or_wait(entry, "no record carries its SystemId")

    def _listed(self, entry: Entry, cache: dict[Any, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        body = json.loads(entry.payload, parse_float=Decimal, parse_int=int)
        params = {name: str(body[field]) for name, field in self.resource.lookup.items() if field in body}
        key = tuple(sorted(params.items()))
        if key not in cache:
            cache[key] = self.records(params)
        return cache[key]

    def _candidates(self, group: list[Entry], listed: list[dict[str, Any]], claimed: set[int]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(ours, maybe): records that match the group's rows and were created after their first
        send by the server's clock, and those whose creation time can't be placed."""
        body = json.loads(group[0].payload, parse_float=Decimal, parse_int=int)
        zone_text = self.journal.meta("created_on_zone")
        zone = float(zone_text) if zone_text not in (None, "") else None
        offset = self.client.server_offset
        # the earliest a record of this group can have been created, by the server's clock
        starts = []
        for e in group:
            sent = e.first_sent or 0.0
            known = e.server_offset if e.server_offset is not None else offset
            starts.append(sent + (known or 0.0) - (MARGIN if known is not None else UNKNOWN_SKEW))
        start = min(starts)
        ours, maybe = [], []
        for record in listed:
            if record.get("Id") in claimed:
                continue
            if differences(self.resource, record, body):
                continue
            when = created_range(record, zone)
            if when is None:
                maybe.append(record)
            elif when[1] < start:
                continue  # created before any of these requests left, in any time zone
            elif when[2] >= start:
                ours.append(record)
            else:
                maybe.append(record)
        return ours, maybe

    def _decide(self, group: list[Entry], ours: list[dict[str, Any]], maybe: list[dict[str, Any]],
                claimed: set[int]) -> list[Verdict]:
        """n identical rows in doubt against the m records that can only be theirs."""
        if maybe:
            ids = ", ".join(str(r["Id"]) for r in (ours + maybe)[:10])
            reason = (f"a record that may be this row exists (Ids {ids}), but it can't be told to be "
                      "this row's (its creation time, or another row it may belong to); not sent "
                      "again: decide with etl resolve")
            return [self._undecided(e, reason) for e in group]
        verdicts = []
        for e, record in zip(group, ours, strict=False):
            how = "checked: it was created"
            if len(group) > 1:
                how += f" (one of {len(group)} identical rows; records are interchangeable)"
            verdicts.append(self._found(e, int(record["Id"]), how, claimed))
        for e in group[len(ours):]:
            verdicts.append(self._absent_or_wait(e, "no matching record"))
        return verdicts

    # verdicts, through the ledger

    def _found(self, entry: Entry, record_id: int, reason: str, claimed: set[int]) -> Verdict:
        try:
            self.ledger.apply(entry.identity, Event.FOUND, reason, record_id=record_id)
        except IntegrityError:  # another row took it meanwhile: it is not this row's proof
            return self._undecided(entry, f"record {record_id} was taken by another row meanwhile")
        claimed.add(record_id)
        return Verdict(entry, Outcome.CREATED, record_id, reason)

    def _absent_or_wait(self, entry: Entry, what: str) -> Verdict:
        until = entry.settle_until or ((entry.last_sent or entry.first_sent or 0.0)
                                       + settle_time(entry.timeout, entry.http_status))
        if until > self.clock():
            left = until - self.clock()
            return self._undecided(entry, f"{what} yet, but the request may still be under way for "
                                          f"{left:.0f} s more; not sent again before that")
        self.ledger.apply(entry.identity, Event.ABSENT, ABSENT)
        return Verdict(entry, Outcome.FAILED, None, ABSENT)

    def _undecided(self, entry: Entry, reason: str) -> Verdict:
        reason = f"in doubt: {reason}"
        self.ledger.apply(entry.identity, Event.UNDECIDED, reason)
        return Verdict(entry, Outcome.IN_DOUBT, None, reason)
