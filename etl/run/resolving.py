"""Rows in doubt, decided: after a crash (`recover`), against the API (`reconcile`), by hand
(`resolve`). Nothing here posts.

A row is in doubt when its request may have created a record: a 500, a time-out, a dropped
connection, or a run that died while the request was under way (the journal still says
`pending`). `recover` is what every run that reaches the API does first, `etl import` before
its first POST and `etl reconcile` as all it does: rows left pending are in doubt, then each row
in doubt is looked up. `resolve` is a person's decision, refused when the evidence on the
server says otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from etl import logs
from etl.config import DEFAULT_RESOURCE
from etl.errors import UsageProblem
from etl.ledger.entries import Entry, now_iso
from etl.ledger.journal import Journal
from etl.ledger.life import CRASH_REASON, Event, Ledger
from etl.ledger.storage import Match, Storage
from etl.outcomes import ExitStatus, Outcome
from etl.post.answers import ReadFailed
from etl.post.pacing import Pacer
from etl.post.posting import Client
from etl.post.reconciling import Reconciler
from etl.post.verdicts import Verdict, body_of, differences, settle_time, settles_at
from etl.run.connecting import Api, Connection, connect, open_journal
from etl.run.pipeline import new_run_id
from etl.validate.resources import Resource, load

#: look-ups a second of `etl reconcile` (under Nexudus' 120 requests a minute)
RECONCILE_RATE = 5.0


# --- after a crash ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    pending: int  # rows an earlier run left pending: in doubt now
    verdicts: list[Verdict]  # the rows in doubt, looked up


def recover(journal: Journal, ledger: Ledger, reconciler: Reconciler, resource: Resource, *,
            final: bool = False, tell: Callable[[str], Any] | None = None) -> Recovery:
    """Rows an earlier run left pending (it died while their request was under way) are in
    doubt; then every row in doubt of RESOURCE, from any file, is looked up (FINAL: this is the
    last look before a person decides). TELL hears how many were left pending."""
    pending = journal.entries("pending")
    for e in pending:
        ledger.apply(e.identity, Event.CRASHED, CRASH_REASON,
                     settle_until=(e.last_sent or e.first_sent or 0.0) + settle_time(e.timeout))
    if pending and tell is not None:
        tell(f"{len(pending)} rows were left pending by an earlier run that stopped mid-request; "
             "they are in doubt and will not be resent blindly")
    doubt = [e for e in journal.entries(Outcome.IN_DOUBT.value) if e.resource in (None, "", resource.name)]
    return Recovery(len(pending), reconciler.reconcile(doubt, final=final) if doubt else [])


# --- etl reconcile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileSettings:
    connection: Connection = field(default_factory=Connection)
    resource: str = DEFAULT_RESOURCE
    quiet: bool = False  # no warnings on stderr (they stay in the log)


@dataclass(frozen=True)
class Reconciled:
    run_id: str
    verdicts: list[Verdict]

    @property
    def left(self) -> list[Verdict]:
        """The rows still in doubt, for a person to decide (`etl resolve`)."""
        return [v for v in self.verdicts if v.outcome is Outcome.IN_DOUBT]

    @property
    def counts(self) -> dict[str, int]:
        return {o: sum(v.outcome.value == o for v in self.verdicts)
                for o in ("created", "failed", "in_doubt")}

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.ROWS_NEED_ATTENTION if self.left else ExitStatus.OK

    def lines(self) -> list[str]:
        """One line per row looked up: its verdict and why."""
        return [f"{v.entry.where}: {v.outcome.value}" + (f" (Id {v.record_id})" if v.record_id else "")
                + f": {v.reason}" for v in self.verdicts]

    def summary(self) -> str:
        counts = self.counts
        return (f"{len(self.verdicts)} rows in doubt: {counts['created']} were created, {counts['failed']} "
                f"were not (a rerun sends them), {counts['in_doubt']} still in doubt.")

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "command": "reconcile", "rows": len(self.verdicts), "counts": self.counts,
            "exit_code": int(self.exit_status),
            "in_doubt": [{"source": v.entry.source, "row": v.entry.row, "reason": v.reason}
                         for v in self.left],
        }


def reconcile(settings: ReconcileSettings) -> Reconciled:
    """Settle the journal's rows in doubt against the API, posting nothing: a row whose record is
    found is created, one proved absent once its request has settled is sent by the next run,
    the rest stay in doubt, each with the reason."""
    res = load(settings.resource)
    run_id = new_run_id()
    logs.configure(run_id, os.path.join("logs", run_id), quiet=settings.quiet)
    try:
        api = connect(settings.connection)
        try:
            journal = open_journal(api, settings.connection, run_id, "reconcile", existing=True)
            try:
                ledger = Ledger(journal)
                with Client(api.url, api.credentials, timeout=settings.connection.timeout) as client:
                    client.login()
                    reconciler = Reconciler(client, journal, ledger, res,
                                            before_request=Pacer(RECONCILE_RATE).acquire)
                    found = recover(journal, ledger, reconciler, res, final=True)
            finally:
                journal.close()
        finally:
            api.close()
    finally:
        logs.close()
    return Reconciled(run_id, found.verdicts)


# --- etl resolve -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveSettings:
    where: str  # SOURCE:ROW, as the report names the row
    created: int | None = None  # the record that is the row's credit use
    not_created: bool = False  # the row's credit use does not exist: a rerun sends it
    note: str = ""  # why, kept in the journal with the decision
    resource: str = DEFAULT_RESOURCE
    connection: Connection = field(default_factory=Connection)


@dataclass(frozen=True)
class Resolved:
    where: str  # the row, as the journal names it
    record_id: int | None  # None: not created
    text: str  # the note kept in the journal

    def line(self) -> str:
        if self.record_id is not None:
            return f"{self.where}: created, record {self.record_id} ({self.text})"
        return f"{self.where}: not created; the next import of it sends it ({self.text})"


def resolve(settings: ResolveSettings) -> Resolved:
    """Decide a row in doubt by hand, recorded in the journal with a note; nothing is sent.
    Refused (UsageProblem) when the server's evidence says otherwise: `created` names a record
    that is not the row's credit use, or `not_created` while the row's request may still create
    one or a record that may be its own exists."""
    where = settings.where
    source, sep, row = where.rpartition(":")
    if not sep or not row.isdigit() or not source:
        raise UsageProblem(f"{where!r} is not SOURCE:ROW (e.g. export.csv:17)")
    record_id = settings.created
    if (record_id is None) == (not settings.not_created):
        raise UsageProblem("say either --created ID or --not-created")
    res = load(settings.resource)
    run_id = new_run_id()
    logs.configure(run_id, None)
    try:
        api = connect(settings.connection)
        try:
            journal = open_journal(api, settings.connection, run_id, "resolve", existing=True)
            try:
                return _decide(api, settings, res, journal, _in_doubt(journal, where, source, int(row),
                                                                      res.name))
            finally:
                journal.close()
        finally:
            api.close()
    finally:
        logs.close()


def _in_doubt(journal: Journal, where: str, source: str, row: int, resource: str) -> Entry:
    """The journal's row in doubt that SOURCE:ROW names."""
    found = [e for e in journal.at(source, row) if e.resource in (None, "", resource)]
    doubt = [e for e in found if e.state in ("in_doubt", "pending")]
    if not doubt and found and found[0].base:
        # identical rows are interchangeable: the report may name another of them
        doubt = [e for e in journal.entries("in_doubt")
                 if e.base == found[0].base and e.source == found[0].source][:1]
    if not doubt:
        what = f"it is {found[0].state}" if found else "the journal has no such row"
        raise UsageProblem(f"{where}: not in doubt ({what}); only rows in doubt are resolved")
    if len(doubt) > 1:
        raise UsageProblem(f"{where}: {len(doubt)} rows in doubt have that name and row "
                           f"({', '.join(e.source or '' for e in doubt)}); give the full path")
    return doubt[0]


def _decide(api: Api, settings: ResolveSettings, res: Resource, journal: Journal, entry: Entry) -> Resolved:
    record_id = settings.created
    timeout = settings.connection.timeout
    if record_id is not None and record_id in journal.claimed_ids():
        raise UsageProblem(f"record {record_id} already belongs to another row of the journal")
    if record_id is not None:
        _check_record(api, timeout, res, entry, record_id, Storage.loads(journal.target_fact("storage")),
                      keys_kept=journal.meta("system_id") == "on")
    else:
        _check_absent(api, timeout, res, entry, journal)
    ledger = Ledger(journal)
    if entry.state == "pending":
        ledger.apply(entry.identity, Event.CRASHED, "a run stopped while this row was being sent")
    text = f"decided by hand on {now_iso()}" + (f": {settings.note}" if settings.note else "")
    if record_id is not None:
        ledger.apply(entry.identity, Event.RESOLVED_CREATED, text, record_id=record_id)
    else:
        ledger.apply(entry.identity, Event.RESOLVED_ABSENT, text)
    return Resolved(entry.where, record_id, text)


def _check_absent(api: Api, timeout: float, res: Resource, entry: Entry, journal: Journal) -> None:
    """`--not-created` only once the row's request can't create a record any more, and while no
    record that may be its own exists: either would let the rerun post a second credit use."""
    with Client(api.url, api.credentials, timeout=timeout) as client:
        try:
            client.login()
            ids = Reconciler(client, journal, Ledger(journal), res).may_be_its_records(entry)
        except ReadFailed as exc:
            raise UsageProblem(f"could not look for the row's record: {exc}") from None
    # after a read: the server's clock against ours (its Date header) moves a deadline another
    # machine kept onto this one's clock
    left = settles_at(entry, client.server_offset) - time.time()
    if left > 0:
        raise UsageProblem(f"{entry.where}: its request may still be under way for {left:.0f} s more "
                           "(a record may yet appear); decide it after that")
    if ids:
        shown = ", ".join(str(i) for i in ids[:10])
        raise UsageProblem(f"{entry.where}: a record that may be this row's exists (Id {shown}); if "
                           "it is, say --created ID, else check it in Nexudus first")


def _check_record(api: Api, timeout: float, res: Resource, entry: Entry, record_id: int,
                  storage: Storage | None = None, *, keys_kept: bool = False) -> None:
    """The record a person names must exist and be this row's credit use, compared as values
    (ids, the exact amount, through the target's storage rules as learnt), and, where the
    account keeps SystemId (KEYS_KEPT) and the row was sent with one, carry that key: another
    row's key, or none (a record made otherwise), is another credit use. (Not its time or its
    Id against the row's fence: those are of the row's last request, and a row sent again
    after it was wrongly proved absent has its first request's record.)"""
    with Client(api.url, api.credentials, timeout=timeout) as client:
        try:
            client.login()
            record = client.get(f"{res.endpoint}/{record_id}")
        except ReadFailed as exc:
            raise UsageProblem(f"could not read record {record_id} to check it: {exc}") from None
    if not isinstance(record, dict):
        raise UsageProblem(f"there is no record {record_id} in {api.target}")
    body = body_of(entry)
    compared = differences(res, record, body, storage)
    # a text the server may have rewritten (cut, encoded) is for the person to judge; an id or
    # an amount that is not the row's, or not provably so, is not
    texts = {f.name for f in res.fields if f.type_name == "text"}
    differ = list(compared.different) + [n for n in compared.unsure if n not in texts]
    if compared.match is not Match.SAME and differ:
        shown = ", ".join(f"{n} {_shown(record.get(n))} (the row: {_shown(body.get(n))})" for n in differ)
        raise UsageProblem(f"record {record_id} is not this row's credit use: {shown}")
    theirs = record.get("SystemId")
    if keys_kept and entry.system_id and theirs != entry.system_id:
        whose = f"{theirs!r}, another row's" if theirs else \
            "empty (it was made otherwise, not by this row's POST)"
        raise UsageProblem(f"record {record_id} is not this row's: the account keeps SystemId, and the "
                           f"record's is {whose}, where this row's is {entry.system_id!r}")


def _shown(value: object) -> str:
    """A value as a message shows it: an amount as written (1.25, not Decimal('1.25')), a text quoted."""
    return str(value) if isinstance(value, Decimal) else repr(value)
