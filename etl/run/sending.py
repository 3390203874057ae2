"""Sending one row of the import (etl.run.importing): its POST, its answer as an event for the
ledger, and what the first records created teach: SystemId, the CreatedOn zone, how the target
stores fields."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from etl.ledger.entries import canonical_json, clock
from etl.ledger.life import Event, RecordTaken, Sending
from etl.ledger.storage import Storage
from etl.outcomes import Outcome
from etl.post.answers import Kind, ReadFailed
from etl.post.poster import Result
from etl.post.verdicts import created_range, parse_body, settle_time
from etl.run.import_base import ImporterBase
from etl.run.import_rows import Done, Row, system_id_of

#: records read back in one run to learn how the target stores fields (reads count against the
#: API's 120-a-minute limit of all methods)
LEARN_READS = 10


class Sender(ImporterBase):
    """One row sent, its answer taken, and what the target teaches by it."""

    # --- sending one row -------------------------------------------------------------------------

    def _needs_probe(self) -> bool:
        """The first record created for a target is read back once: does the account keep
        SystemId, and in which zone are its CreatedOn times (they may carry no offset)?"""
        return (self.settings.system_id and self.journal.meta("system_id") in (None, "unknown")) \
            or not self.zone_checked

    def _body(self, row: Row) -> tuple[str, str | None]:
        if self.settings.system_id and self.journal.meta("system_id") != "off":
            sid = system_id_of(row.identity)
            return canonical_json({**row.body, "SystemId": sid}), sid
        return canonical_json(row.body), None

    def _send(self, row: Row, learn: bool = True, reason: str = "sent") -> Done:
        body, sid = self._body(row)
        fences = self.reconciler.fences
        fence: list[int | None] = [None]
        marked_at: list[float | None] = [None]

        def mark() -> None:
            # durable with the pending mark, before the request leaves
            fence[0], since = fences.fence()
            marked_at[0] = clock()
            self.ledger.apply(row.identity, Event.SEND, reason, sending=Sending(
                row.identity, row.scheme, body, row.payload_hash, row.source, row.number,
                self.resource.name, self.settings.timeout, sid, row.base, row.occurrence,
                fence[0], since))

        self._stop_if_moved()
        if self.stopper.is_set():
            return Done(row, "new", Result(Kind.NOT_SENT))
        result = self.poster.send(body, mark)
        if result.system_id_refused and sid is not None:
            # a 400 proves nothing was created: the row is sent again, without the field. Until
            # then it is not attempted (never `rejected`, which a rerun would not send): a run
            # stopped before the second send leaves it for the next run
            self.ledger.apply(row.identity, Event.WITHDRAWN,
                              f"not created: the API refused the SystemId field ({result.errors})",
                              http_status=result.http_status, attempts=result.attempts)
            self._system_id("off", f"the API refused the SystemId field ({result.errors})")
            return self._send(row, learn, reason)
        done = Done(row, self._answer(row, result), result)
        if result.kind is Kind.CREATED and result.record_id is not None:
            fences.saw_created(result.record_id, fence[0], marked_at[0])
        if learn and done.state == Outcome.CREATED.value and result.record_id is not None:
            self._learn_storage(body, result.record_id)
        if done.state == Outcome.IN_DOUBT.value and fences.due():
            # a read made only for a fence, only after an ambiguous answer: the rows sent from
            # now on get a lower fence
            try:
                self.reconciler.read_fence()
            except ReadFailed as exc:
                self.log.warning(f"could not read the newest record Id for a fence ({exc})")
        return done

    # --- how the target stores fields: learnt from records whose row is known -----------------

    def storage(self) -> Storage:
        return Storage.loads(self.journal.target_fact("storage"))

    def _learn_storage(self, body: str, record_id: int, record: dict[str, Any] | None = None) -> None:
        """A row's own record (its 200 named it) teaches how the target stores fields; it is
        read back only while the rules learnt so far can't compare this row's fields exactly,
        a few times a run."""

        sent = parse_body(body)
        with self._storage_lock:
            storage = self.storage()
            if storage.settled_for(self.resource, sent):
                return
            if record is None:
                if self.learn_reads >= LEARN_READS:
                    return
                self.learn_reads += 1
        if record is None:
            try:
                got = self.reconciler._get(f"{self.resource.endpoint}/{record_id}")
            except ReadFailed as exc:
                self.log.warning(f"could not read record {record_id} back to learn how the target "
                                 f"stores fields ({exc})")
                return
            if not isinstance(got, dict) or got.get("Id") not in (record_id, str(record_id)):
                return
            record = got
        with self._storage_lock:
            storage = self.storage()
            if storage.learn(self.resource, sent, record):
                self.journal.set_target_fact("storage", storage.dumps())
                self.log.info(f"learnt how {self.journal.target} stores fields from record {record_id}",
                              storage=json.loads(storage.rules()))

    def _answer(self, row: Row, result: Result) -> str:
        """The answer, as an event for the ledger; returns the row's new state."""
        if result.stop is not None:
            self.stopper.stop(result.stop)
            if not result.marked:
                return "new"
            why = f"not sent: {result.errors}" if result.errors else "not sent: the run stopped"
            return self.ledger.apply(row.identity, Event.WITHDRAWN, why, attempts=result.attempts)
        facts: dict[str, Any] = {"http_status": result.http_status, "attempts": result.attempts,
                 "server_offset": self.poster.client.server_offset}
        if result.kind is Kind.CREATED:
            try:
                return self.ledger.apply(row.identity, Event.CREATED, "created",
                                         record_id=result.record_id, **facts)
            except RecordTaken:  # a server that gave one Id twice: this 200 proves nothing
                return self.ledger.apply(
                    row.identity, Event.AMBIGUOUS,
                    f"the server answered 200 with record {result.record_id}, which another row's "
                    "own 200 named: it may have been created; not sent again until checked",
                    settle_until=clock() + settle_time(self.settings.timeout), **facts)
        if result.kind is Kind.REJECTED:
            return self.ledger.apply(row.identity, Event.REJECTED, result.errors, **facts)
        if result.kind is Kind.AMBIGUOUS:
            return self.ledger.apply(
                row.identity, Event.AMBIGUOUS,
                f"{result.errors}; it may have been created: not sent again until checked",
                settle_until=clock() + settle_time(self.settings.timeout, result.http_status,
                                                   self.settings.gateway_settle), **facts)
        return self.ledger.apply(row.identity, Event.NOT_CREATED, result.errors, **facts)

    # --- SystemId: verified on the account, remembered in the journal ----------------------------

    def _probe(self, row: Row) -> Done:
        """The first row sent to a target carries SystemId, alone; its record is read back."""
        done = self._send(row, learn=False)
        if done.state != Outcome.CREATED.value:
            return done
        if not self._needs_probe():
            if done.result.record_id is not None:
                self._learn_storage(self._body(row)[0], done.result.record_id)
            return done
        sent_at = clock() + (self.poster.client.server_offset or 0.0)
        try:
            record = self.reconciler._get(f"{self.resource.endpoint}/{done.result.record_id}")
        except ReadFailed as exc:
            self.log.warning(f"could not read record {done.result.record_id} back to check SystemId "
                             f"({exc}); checked again next run")
            return done
        self.zone_checked = True
        if not isinstance(record, dict):  # no way to read a record back: nothing to verify by
            if self.settings.system_id:
                self._system_id("off", "its records can't be read back by Id to verify SystemId")
            return done
        self._learn_zone(record, sent_at)
        if done.result.record_id is not None:
            self._learn_storage(self._body(row)[0], done.result.record_id, record)
        if not self.settings.system_id:
            return done
        if record.get("SystemId") == system_id_of(row.identity):
            self._system_id("on", "the account keeps SystemId: rows in doubt are checked by it exactly")
        else:
            self._system_id("off", "the account does not keep SystemId; rows in doubt are checked by "
                                   "their fields")
        return done

    def _learn_zone(self, record: dict[str, object], server_now: float) -> None:
        """A CreatedOn without an offset is the account's local time: its zone, from a record
        created just now, to the quarter hour."""
        text = record.get("CreatedOn")
        when = created_range({"CreatedOn": text}, 0.0)
        if not isinstance(text, str) or when is None:
            return
        try:
            aware = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None
        except ValueError:
            return
        zone = 0.0 if aware else round((when[2] - server_now) / 900.0) * 900.0
        self.journal.set_meta("created_on_zone", "" if aware else f"{zone:g}")

    def _system_id(self, value: str, why: str) -> None:
        if self.journal.meta("system_id") != value:
            self.journal.set_meta("system_id", value)
            # good news goes to the log; a target that can't keep the key is worth a warning
            say = self.log.info if value == "on" else self.log.warning
            say(f"SystemId {value} for {self.journal.target}: {why}")

