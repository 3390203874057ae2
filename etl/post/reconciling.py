"""Resolving rows in doubt: did the ambiguous request create the record after all?

A row is in doubt when its POST may have created a record (500, 502, 503, 504, 408, a time-out,
a dropped connection, a crash mid-request). Reconciliation proves before anything is sent again:

- **By SystemId, where the account keeps it**: the row's import key was sent as `SystemId`; one
  exact look-up finds its record, or proves there is none. The returned records' `SystemId` is
  compared here, since a server ignores filters it does not know.
- **Otherwise by its fields**: records are listed with the resource's look-up filter, every page,
  and compared as values (etl.ledger.storage): exact amounts and integer ids, texts through the storage
  rules the target was seen to apply to a row whose record is known, never guessed from the
  record being compared. A record that may be the row's but can't be compared exactly (a
  rounding or a cut never seen) keeps the row in doubt, named; it is never "proved absent" on
  it. Only records made while the row's request was under way (after it left, before it
  settled: by the *server's* clock, read from its `Date` header, or by record Ids between a
  fresh lower fence and an Id seen soon after it settled, see etl.ledger.fencing) and claimed by no
  other journal row can be this row's; a record whose creation time can't be placed (a local
  time in an unknown zone, a stale fence) or that was made after the request settled keeps the
  row in doubt, named; a record that a row in flight or another row in doubt may own is no
  row's proof; more such records than rows means one is someone else's: in doubt too.
- **Rows the server stores alike are interchangeable** (identical rows, or rows whose stored
  form the learnt rules say exactly is the same): n such rows in doubt and m unclaimed records
  equal to them: min(n, m) are created (Ids in order), the rest are not created once settled.
- **"Not created" needs the request to be settled**: no record may mean "not yet", until twice the
  time-out the request was sent with (from the journal), plus a grace period, has passed.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from etl import logs
from etl.ledger.entries import Entry
from etl.ledger.fencing import Fences
from etl.ledger.journal import Journal
from etl.ledger.life import ABSENT_REASON as ABSENT
from etl.ledger.life import Event, Ledger, RecordTaken
from etl.ledger.storage import Match, Storage, decimal, places
from etl.outcomes import Outcome
from etl.post.answers import ReadFailed
from etl.post.posting import Client
from etl.post.verdicts import (
    FENCE_FRESH,
    MARGIN,
    MAX_PAGES,
    PAGE_SIZE,
    UNKNOWN_SKEW,
    Place,
    Verdict,
    _Contenders,
    _Grouping,
    body_of,
    created_range,
    differences,
    settles_at,
)
from etl.validate.resources import Resource

#: what was read of each group of rows in doubt (by its index): the records of each row's
#: SystemId (by identity), and the listing of the credit of the others
_Read = dict[int, tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]]


def _groups(entries: list[Entry], doubt: list[Entry], key: _Grouping) -> list[list[Entry]]:
    """The rows in doubt (DOUBT) grouped as the target stores them alike, the groups of ENTRIES
    alone, each in the order its rows were first sent."""
    keys = {key(e) for e in entries}
    by_payload: dict[str, list[Entry]] = defaultdict(list)
    for e in doubt:
        if key(e) in keys:
            by_payload[key(e)].append(e)
    return [sorted(g, key=lambda e: (e.first_sent or 0.0, e.identity)) for g in by_payload.values()]


def _rule_learnt(resource: Resource, taught: Storage, name: str, body: dict[str, Any],
                 record: dict[str, Any]) -> str:
    """The rule of text field NAME that TAUGHT learns from one row's BODY and a RECORD."""
    trial = Storage.loads(taught.dumps())
    trial.learn(resource, {name: body.get(name)}, {name: record.get(name)})
    rule = trial.texts.get(name)
    return json.dumps([rule.shapes, rule.keeps, rule.broken, rule.drops]) if rule else ""


class Reconciler:
    def __init__(self, client: Client, journal: Journal, ledger: Ledger, resource: Resource, *,
                 before_request: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.time, patience: float = 600.0,
                 fences: Fences | None = None) -> None:
        self.fences = fences or Fences(journal)
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
            if answer is None:
                raise ReadFailed(f"GET {self.resource.endpoint} answered 404 (not found): check --api-url")
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
                self.fences.saw_listing(params, seen)
                return sorted(seen.values(), key=lambda r: (str(type(r["Id"])), r["Id"]))
            page += 1
        # a server that ignores `page` (or a list longer than the cap): what was read is not all
        # there is, and "no record" could not be trusted
        raise ReadFailed(f"the list of {self.resource.name} could not be read to its end (page {page} "
                         f"brought nothing new, {len(seen)} records read)")

    def few_records(self) -> list[dict[str, Any]] | None:
        """Every record of the resource, where one page holds them all (a new account, the
        sandbox); None where there are more (or the answer does not say there are not)."""
        answer = self._get(self.resource.endpoint, {"page": 1, "size": PAGE_SIZE, "orderBy": "Id", "dir": 1})
        if answer is None:
            raise ReadFailed(f"GET {self.resource.endpoint} answered 404 (not found): check --api-url")
        if not isinstance(answer, dict) or not isinstance(answer.get("Records"), list):
            raise ReadFailed(f"the list of {self.resource.name} came back without Records")
        records = [r for r in answer["Records"] if isinstance(r, dict) and r.get("Id") is not None]
        total = answer.get("TotalItems")
        if answer.get("HasNextPage") is not False or not isinstance(total, int) \
                or total != len(records) or len(records) >= PAGE_SIZE:
            return None
        # (not taken as a fence: the rows' own look-ups never were, when they found nothing)
        return records

    def read_fence(self) -> None:
        """After an ambiguous answer: the newest record Id of the resource, so that the rows sent
        from now on have a lower fence. Both ends of a list sorted by Id are read (one record
        each), whichever way the server reads `dir`; any Id read is a valid fence. Where the last
        page can't be read (a server that answers page 1 whatever page is asked for), the other
        end is the first page sorted the other way (`dir` -1, else 0): taken only where the two
        sorts differ (the server heeds `dir`), so one of them was the newest."""
        params: dict[str, Any] = {"orderBy": "Id", "dir": 1, "size": 1, "page": 1}
        if self.before_request:
            self.before_request()
        since = self.clock()  # a record made before the read arrived is at or below what it shows
        first = self.client.get(self.resource.endpoint, params, patience=self.patience)
        if not isinstance(first, dict) or not isinstance(first.get("Records"), list):
            raise ReadFailed(f"the list of {self.resource.name} came back without Records")
        if not first["Records"]:
            if first.get("TotalItems") == 0:
                self.fences.saw_empty(since)
            return
        ids = _ids(first)
        pages = first.get("TotalPages")
        if isinstance(pages, int) and pages > 1:
            other = self._other_end(params, pages, ids)
            if other is None:  # the newest Id was not read: what was read is a fence, not a fresh one
                self.fences.saw(i for i in ids if isinstance(i, int))
                return
            ids += other
        self.fences.saw_newest((i for i in ids if isinstance(i, int)), since)

    def _other_end(self, params: dict[str, Any], pages: int, ids: list[Any]) -> list[Any] | None:
        """The Ids at the other end of the list whose first page showed IDS: its last page, or
        where that is page 1 again (a server that ignores the page asked for), the first page
        sorted the other way, where the two sorts differ; None where neither was read."""
        last = self._get(self.resource.endpoint, {**params, "page": pages})
        if isinstance(last, dict) and isinstance(last.get("Records"), list) \
                and last.get("HasNextPage") is not True:
            return _ids(last)
        for other in (-1, 0):  # descending for one convention, ascending for the other
            try:
                answer = self._get(self.resource.endpoint, {**params, "dir": other})
            except ReadFailed:  # a server that refuses that value of dir: the other one
                continue
            theirs = _ids(answer) if isinstance(answer, dict) else []
            if theirs and set(theirs) != set(ids):
                return theirs
        return None

    # deciding

    def reconcile(self, entries: list[Entry], *, final: bool = False) -> list[Verdict]:
        """Decide each entry in doubt (and every identical row in doubt with it), record each
        verdict through the ledger, and return the verdicts (ENTRIES' first).

        The server is read first and the journal after, in one snapshot: a record a row in
        flight may have just created is then either claimed by it already, or that row is still
        pending and no other row may take the record. Never the other way round."""
        if not entries:
            return []
        return self._reconcile(entries, {}, learn=True)

    def _reconcile(self, entries: list[Entry], cache: dict[Any, list[dict[str, Any]]], *,
                   learn: bool) -> list[Verdict]:
        wanted = {e.identity for e in entries}
        storage = Storage.loads(self.journal.target_fact("storage"))
        key = _Grouping(self.resource, storage)
        doubt = [e for e in self.journal.entries(Outcome.IN_DOUBT.value)
                 if e.resource in (None, "", self.resource.name)]
        groups = _groups(entries, doubt, key)
        verdicts: dict[str, Verdict] = {}
        read = self._read(groups, cache, verdicts)
        claimed, busy = self.journal.snapshot()
        # every row that may own a record: rows in flight (or whose answer is not applied yet)
        # and rows in doubt; a record one of them may own is no other row's proof
        contenders = _Contenders(self.resource, storage,
                                 lambda r, e: self._place(r, e) is not Place.NOT, key, busy + doubt)
        if learn and not verdicts and (
                self._learn_alone(groups, read, claimed, contenders, storage)
                or self._learn_together(busy + doubt, cache, claimed, storage)):
            # the rules changed how rows compare and group: decided again, on what was read
            return self._reconcile(entries, cache, learn=False)
        self._by_system_ids(groups, read, {key(e) for e in busy}, key, claimed, contenders, verdicts)
        self._by_fields(groups, read, key, claimed, storage, contenders, verdicts)
        return sorted(verdicts.values(), key=lambda v: v.identity not in wanted)

    def _read(self, groups: list[list[Entry]], cache: dict[Any, list[dict[str, Any]]],
              verdicts: dict[str, Verdict]) -> _Read:
        """The records of each group (by its index): those of each row's SystemId, where the
        account keeps it, and the listing of the rest's credit. A group whose records could not
        be read is undecided (VERDICTS)."""
        exact = self.journal.meta("system_id") == "on"
        read: _Read = {}
        for gi, group in enumerate(groups):
            try:
                keyed = {e.identity: self.records({self.resource.system_id_filter: str(e.system_id)})
                         for e in group if exact and e.system_id}
                rest = [e for e in group if e.identity not in keyed]
                read[gi] = (keyed, self._listed(rest[0], cache) if rest else [])
            except ReadFailed as exc:
                for e in group:
                    verdicts[e.identity] = self._undecided(e, f"could not check: {exc}")
        return read

    def _by_system_ids(self, groups: list[list[Entry]], read: _Read, busy: set[str],
                       key: _Grouping, claimed: set[int], contenders: _Contenders,
                       verdicts: dict[str, Verdict]) -> None:
        """The rows checked by their SystemId decided; a group an identical row of which is being
        sent (BUSY: their keys) waits for its answer."""
        for gi, (keyed, _) in read.items():
            group = groups[gi]
            if key(group[0]) in busy:
                for e in group:
                    verdicts[e.identity] = self._undecided(
                        e, "an identical row is being sent right now; checked once it is answered")
                continue
            for e in group:
                if e.identity in keyed:
                    verdicts[e.identity] = self._by_system_id(e, keyed[e.identity], claimed)
                    if verdicts[e.identity].outcome is Outcome.CREATED:
                        contenders.done(e.identity)

    def _by_fields(self, groups: list[list[Entry]], read: _Read, key: _Grouping,
                   claimed: set[int], storage: Storage, contenders: _Contenders,
                   verdicts: dict[str, Verdict]) -> None:
        """The other rows decided by their fields, group by group: a group decided frees the
        records it could have owned for the others (a few rounds, while one creates)."""
        waiting: dict[int, list[tuple[Entry, str]]] = {}
        for _ in range(4):
            progress = False
            waiting = {}
            for gi, (keyed, listed) in read.items():
                left = [e for e in groups[gi] if e.identity not in keyed and e.identity not in verdicts]
                if not left:
                    continue
                mine = {e.identity for e in groups[gi]}
                ours, maybe = self._candidates(left, listed, claimed, storage)
                shared = [r for r in ours if contenders.others(r, key(left[0]), mine)]
                ours = [r for r in ours if r not in shared]
                undecided, decided = self._decide(left, ours, maybe, shared, claimed)
                for v in decided:
                    verdicts[v.identity] = v
                    contenders.done(v.identity)
                    progress = progress or v.outcome is Outcome.CREATED
                if undecided:
                    waiting.setdefault(gi, []).extend(undecided)
            if not progress:
                break
        for undecided in waiting.values():
            for e, reason in undecided:
                verdicts[e.identity] = self._undecided(e, reason)

    def _learn_alone(self, groups: list[list[Entry]], read: dict[int, Any], claimed: set[int],
                     contenders: _Contenders, storage: Storage) -> bool:
        """Learning without a 200: a row alone in its group, whose request has settled inside a
        lower fence, with exactly one unclaimed record of its look-up (its credit) inside that
        fence whose ids and amount equal the row's, and that no other row may own: that record
        is the row's, and shows how the target stores the fields (a cut, an encoding). True when
        the rules changed."""
        if not self.fences.usable:
            return False
        for gi, (keyed, listed) in read.items():
            group = groups[gi]
            if len(group) != 1 or keyed:
                continue
            e = group[0]
            body = body_of(e)
            if e.fence_low is None or settles_at(e, self.client.server_offset) > self.clock() or \
                    storage.settled_for(self.resource, body):
                continue
            inside = []
            for record in listed:
                rid = record.get("Id")
                if rid in claimed or not isinstance(rid, int) or self._place(record, e) is Place.NOT:
                    continue
                compared = differences(self.resource, record, body, storage)
                if compared.match is not Match.DIFFERENT:
                    inside.append((record, compared))
            # the only record that may be the row's, and one placed inside its window (a fence
            # fresh when the request left, a higher fence seen soon after it settled, or the
            # server's clock): a record of the credit that someone else made is never learnt from
            if len(inside) != 1 or self._place(inside[0][0], e) is not Place.INSIDE:
                continue
            record, compared = inside[0]
            texts = {f.name for f in self.resource.fields if f.type_name == "text"}
            if not set(compared.unsure) <= texts or contenders.others(record, "", {e.identity}):
                continue
            if storage.learn(self.resource, body, record) and not any(
                    t.broken for t in storage.texts.values()):
                self.journal.set_target_fact("storage", storage.dumps())
                self.log.info(f"learnt how {self.journal.target} stores fields from record "
                              f"{record['Id']}: the only new record of its credit inside the settled "
                              f"fence of {e.where}")
                return True
        return False

    def _learn_together(self, rows: list[Entry], cache: dict[Any, list[dict[str, Any]]],
                        claimed: set[int], storage: Storage) -> bool:
        """Learning without a 200, where no row was alone: every row of a credit has settled,
        and every pairing of those rows with the unclaimed records of the credit that may have
        been made after them (above their fences; by the clock where they have none; ids and
        amount equal, the text not ruled out) teaches the same text rules. Whichever record is
        whose, the rules are then the same; rules learnt from a row's true record are never
        wrong, so these are not either. An amount equal to a
        row's shows the places it is kept with, when no row of the credit has more."""
        if not self.fences.usable:
            return False
        by_key: dict[tuple[tuple[str, str], ...], list[Entry]] = defaultdict(list)
        for e in rows:
            body = body_of(e)
            params = {n: str(body[f]) for n, f in self.resource.lookup.items() if f in body}
            by_key[tuple(sorted(params.items()))].append(e)
        now = self.clock()
        taught = Storage.loads(storage.dumps())
        credits = 0
        for key, group in by_key.items():
            listed = cache.get(key)
            if listed is None or any(e.state != Outcome.IN_DOUBT.value
                                     or settles_at(e, self.client.server_offset) > now
                                     for e in group):
                continue
            learnt = self._taught_by(group, listed, claimed, taught)
            if learnt is not None and learnt.rules() != taught.rules():
                taught = learnt
                credits += 1
        if taught.rules() == storage.rules():
            return False
        self.journal.set_target_fact("storage", taught.dumps())
        self.log.info(f"learnt how {self.journal.target} stores fields from the records of settled "
                      f"rows of {credits} credits, which teach the same whichever is whose")
        return True

    def _taught_by(self, group: list[Entry], listed: list[dict[str, Any]], claimed: set[int],
                   taught: Storage) -> Storage | None:
        """The rules (TAUGHT, and what the settled rows of one credit, GROUP, teach with the
        unclaimed records LISTED of it), or None where the pairings of rows and records do not
        all teach the same."""
        texts = [f.name for f in self.resource.fields if f.type_name == "text"]
        pairs, inside = self._pairs(group, listed, claimed, taught, texts)
        # whichever record is whose, one of them must be some row's: one placed inside a
        # row's window, not only a record that may have been made after it
        if not pairs or not inside:
            return None
        learnt = Storage.loads(taught.dumps())
        for name in texts:
            if len({_rule_learnt(self.resource, taught, name, body, r) for body, r in pairs}) != 1:
                return None
            learnt.learn(self.resource, {name: pairs[0][0].get(name)}, {name: pairs[0][1].get(name)})
        if any(t.broken for t in learnt.texts.values()):
            return None
        amounts = [f.name for f in self.resource.fields if f.type_name not in ("text", "positive integer")]
        for name in amounts:
            most = max((places(d) for e in group if (d := decimal(body_of(e).get(name))) is not None),
                       default=None)
            for body, record in pairs:
                d = decimal(body.get(name))
                # only a record whose amount is the row's, to the digit: one equal through a
                # rounding learnt before (1.3 for 1.25) shows that rounding, not two places kept
                if d is not None and most is not None and places(d) == most \
                        and decimal(record.get(name)) == d:
                    learnt.learn(self.resource, {name: d}, {name: d})
        return learnt

    def _pairs(self, group: list[Entry], listed: list[dict[str, Any]], claimed: set[int], taught: Storage,
               texts: list[str]) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], bool]:
        """Every pairing of a row of GROUP (its body) with an unclaimed record LISTED that may be
        its (made while its request could make it; equal but for texts TAUGHT can't compare);
        and whether one record is placed inside a row's window."""
        records = [r for r in listed if r.get("Id") not in claimed and isinstance(r.get("Id"), int)]
        pairs = []
        inside = False
        for e in group:
            body = body_of(e)
            for r in records:
                where = self._place(r, e)
                if where is Place.NOT:
                    continue
                compared = differences(self.resource, r, body, taught)
                if compared.match is not Match.DIFFERENT and set(compared.unsure) <= set(texts):
                    pairs.append((body, r))
                    inside = inside or where is Place.INSIDE
        return pairs, inside

    def may_be_its_records(self, entry: Entry) -> list[int]:
        """The Ids of unclaimed records that are, or may be, ENTRY's (equal to it, or not
        comparable exactly), created after its first send: for a person deciding it by hand."""
        storage = Storage.loads(self.journal.target_fact("storage"))
        if self.journal.meta("system_id") == "on" and entry.system_id:
            found = self.records({self.resource.system_id_filter: str(entry.system_id)})
            keyed = [int(r["Id"]) for r in found if r.get("SystemId") == entry.system_id]
            if keyed:
                return keyed
        listed = self._listed(entry, {})
        ours, maybe = self._candidates([entry], listed, self.journal.claimed_ids(), storage)
        return sorted(int(r["Id"]) for r in ours + maybe)

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
        body = body_of(entry)
        params = {name: str(body[field]) for name, field in self.resource.lookup.items() if field in body}
        key = tuple(sorted(params.items()))
        if key not in cache:
            cache[key] = self.records(params)
        return cache[key]

    def _candidates(self, group: list[Entry], listed: list[dict[str, Any]], claimed: set[int],
                    storage: Storage) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(ours, maybe): records equal to the group's rows (as the target stores them) that were
        made inside a row's window (see `_place`); and those that may be theirs but can't be
        told (a field that can't be compared exactly, a creation time that can't be placed)."""
        body = body_of(group[0])
        ours, maybe = [], []
        for record in listed:
            if record.get("Id") in claimed:
                continue
            compared = differences(self.resource, record, body, storage)
            if compared.match is Match.DIFFERENT:
                continue
            places = {self._place(record, e) for e in group}
            if places == {Place.NOT}:
                continue  # not made while any of these requests could make it
            if compared.match is Match.UNSURE or Place.INSIDE not in places:
                maybe.append(record)
            else:
                ours.append(record)
        return ours, maybe

    def _zone(self) -> float | None:
        zone_text = self.journal.meta("created_on_zone")
        return float(zone_text) if zone_text not in (None, "") else None

    def _start(self, e: Entry) -> float:
        """The earliest a record of E can have been created, by the server's clock."""
        sent = e.first_sent or 0.0
        known = e.server_offset if e.server_offset is not None else self.client.server_offset
        return sent + (known or 0.0) - (MARGIN if known is not None else UNKNOWN_SKEW)

    def _surely_sent(self, e: Entry) -> float:
        """By the server's clock, a time by which E's request had surely left (a record made after
        it was made after the request left)."""
        sent = e.last_sent or e.first_sent or 0.0
        known = e.server_offset if e.server_offset is not None else self.client.server_offset
        return sent + (known or 0.0) + (MARGIN if known is not None else UNKNOWN_SKEW)

    def _end(self, e: Entry) -> float:
        """The latest a record of E can have been created, by the server's clock: when its
        request settled."""
        known = e.server_offset if e.server_offset is not None else self.client.server_offset
        return settles_at(e) + (known or 0.0) + (MARGIN if known is not None else UNKNOWN_SKEW)

    def _place(self, record: dict[str, Any], e: Entry) -> Place:
        """Whether RECORD was made while E's request could make it.

        NOT: it can't be E's: at or below E's lower fence (where Ids rise), or made before E's
        request left, in any time zone.
        INSIDE: made between the request leaving and its settling: by the server's clock (a time
        that can be placed), or by Ids: above a lower fence that was fresh when the request
        left, and at or below an Id seen soon after the request settled. A lower fence alone
        never admits a record: it may be days old, and a record made since by someone else is
        above it too.
        MAYBE: neither (a local time in a zone not learnt, fences not fresh, or made after the
        request was taken as settled: someone else's, or a server far slower than assumed; so
        neither claimed nor taken as proof that the row was not created)."""
        rid = record.get("Id")
        fenced = self.fences.usable and e.fence_low is not None
        below = fenced and (not isinstance(rid, int) or isinstance(rid, bool) or rid <= (e.fence_low or 0))
        zone = self._zone()
        when = created_range(record, zone)
        start, end = self._start(e), self._end(e)
        if when is not None and when[1] < start:
            return Place.NOT
        if when is not None:
            # a time with an offset is one point; a local one is placed by the zone learnt, else
            # only if it falls inside in every zone
            early, late = (when[2], when[2]) if zone is not None or when[0] == when[1] else when[:2]
            if start <= early and late <= end:
                if below and early > self._surely_sent(e):
                    # made after the request had surely left (by the server's clock), yet at or
                    # below the fence of Ids seen before it left: Ids or clock are wrong
                    self.fences.contradicted(
                        f"record {rid} was made after {e.where}'s request left (by the server's "
                        f"clock), yet its Id is not above that request's fence {e.fence_low}")
                    return Place.MAYBE  # which of the two is wrong is not known: neither decides
                if not below:
                    return Place.INSIDE
        if below:
            return Place.NOT
        if fenced and e.fence_at is not None and isinstance(rid, int) and \
                (e.last_sent or e.first_sent or 0.0) - e.fence_at <= FENCE_FRESH:
            ceiling = self._ceiling(e)
            if ceiling is not None and rid <= ceiling:
                return Place.INSIDE
        return Place.MAYBE

    def _ceiling(self, e: Entry) -> int | None:
        """E's higher fence: the largest Id seen by soon after its request settled (by this run,
        or kept in the journal by an earlier one)."""
        # the row's deadline on this machine's clock, never later than kept: a later one would let
        # in Ids seen after the row settled (a machine whose clock runs behind the sender's)
        kept = settles_at(e)
        here = self.client.server_offset
        if here is not None and e.server_offset is not None:
            kept = min(kept, kept + e.server_offset - here)
        seen = self.fences.ceiling(kept + FENCE_FRESH)
        if e.fence_high is None or e.fence_low is None:
            return seen
        return e.fence_high if seen is None else max(seen, e.fence_high)

    def _decide(self, group: list[Entry], ours: list[dict[str, Any]], maybe: list[dict[str, Any]],
                shared: list[dict[str, Any]], claimed: set[int]
                ) -> tuple[list[tuple[Entry, str]], list[Verdict]]:
        """n rows in doubt that the server stores alike, against the m records that can only
        be theirs: (rows left in doubt with the reason, verdicts recorded). Records equal to
        theirs are taken in Id order; a row left over is proved absent only where no record
        may be its own (one that can't be compared exactly, or that another row may own)."""
        verdicts: list[Verdict] = []
        if len(ours) > len(group):
            # more records equal to these rows were made inside their windows than rows were
            # sent: one is someone else's (Nexudus, an admin), and nothing tells which
            ids = ", ".join(str(r["Id"]) for r in ours[:10])
            reason = (f"{len(ours)} records equal to {'these rows' if len(group) > 1 else 'this row'} "
                      f"were made while its request was under way (Ids {ids}), more than rows were "
                      "sent: one is someone else's, and nothing tells which; not sent again: decide "
                      "with etl resolve")
            return [(e, reason) for e in group], verdicts
        for e, record in zip(group, ours, strict=False):
            how = "checked: it was created"
            if len(group) > 1:
                how += (f" (one of {len(group)} rows the server stores alike; records are "
                        "interchangeable)")
            verdicts.append(self._found(e, int(record["Id"]), how, claimed))
        rest = group[len(ours):]
        if rest and (maybe or shared):
            ids = ", ".join(str(r["Id"]) for r in (maybe + shared)[:10])
            why = ("its creation time, or a field the server may have stored differently"
                   if maybe else "another row in doubt or in flight may own it")
            reason = (f"a record that may be this row exists (Ids {ids}), but it can't be told to be "
                      f"this row's ({why}); not sent again: decide with etl resolve")
            return [(e, reason) for e in rest], verdicts
        for e in rest:
            verdicts.append(self._absent_or_wait(e, "no matching record"))
        return [], verdicts

    # verdicts, through the ledger

    def _found(self, entry: Entry, record_id: int, reason: str, claimed: set[int]) -> Verdict:
        try:
            self.ledger.apply(entry.identity, Event.FOUND, reason, record_id=record_id)
        except RecordTaken:  # another row took it meanwhile: it is not this row's proof
            return self._undecided(entry, f"record {record_id} was taken by another row meanwhile")
        claimed.add(record_id)
        return Verdict(entry, Outcome.CREATED, record_id, reason)

    def _absent_or_wait(self, entry: Entry, what: str) -> Verdict:
        until = settles_at(entry, self.client.server_offset)
        if until > self.clock():
            left = until - self.clock()
            return self._undecided(entry, f"{what} yet, but the request may still be under way for "
                                          f"{left:.0f} s more; not sent again before that")
        self.ledger.apply(entry.identity, Event.ABSENT, ABSENT)
        return Verdict(entry, Outcome.FAILED, None, ABSENT)

    def _undecided(self, entry: Entry, reason: str) -> Verdict:
        reason = f"in doubt: {reason}"
        facts: dict[str, Any] = {}
        high = self._ceiling(entry)
        if high is not None and high != entry.fence_high:
            facts["fence_high"] = high  # for a later run, whose own reads come too late for it
        self.ledger.apply(entry.identity, Event.UNDECIDED, reason, **facts)
        return Verdict(entry, Outcome.IN_DOUBT, None, reason)


def _ids(answer: dict[str, Any]) -> list[Any]:
    """The Ids of a list answer's records."""
    records = answer.get("Records")
    return [r.get("Id") for r in records if isinstance(r, dict)] if isinstance(records, list) else []
