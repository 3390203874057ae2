"""The import run: check every row, decide each against the journal, post, reconcile, report.

Before anything is sent, a first pass reads every file: file problems, a changed way of
identifying rows, a repeated `--key` all stop the run (exit 2) with nothing posted. Then rows are
posted by `concurrency` workers, paced by one Pacer, and their results taken back in input order,
so the report is written in input order and made durable every `batch_size` rows. What becomes
of a row is decided by `etl.ledger` alone; this module only proposes events to it.

A run stops cleanly at the daily limit or under endless throttling (exit 4), on refused
credentials or after `max_errors` rows in a row that end rejected, failed or in doubt (exit 3),
and on Ctrl-C (130) or SIGTERM (143): requests under way are finished, every row not reached is
`not_attempted`, the report and summary are complete, and a rerun carries on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from etl import logs
from etl.checks import READ_RATE, AccountChecks, for_client, posts_left
from etl.errors import EtlError, RunAborted, UsageProblem, no_room
from etl.fencing import Fences
from etl.identity import (
    VALUES,
    Identities,
    cell_digest,
    describe_scheme,
    id_like_columns,
    identity_text,
    scheme_columns,
)
from etl.journal import (
    LEGACY_SCHEME,
    Entry,
    Journal,
    JournalProblem,
    canonical_json,
    clock,
    payload_hash,
)
from etl.ledger import (
    ABSENT_REASON,
    CRASH_REASON,
    Event,
    Ledger,
    RecordTaken,
    Sending,
    plan,
    report_outcome,
)
from etl.outcomes import ExitStatus, Outcome, exit_status
from etl.pipeline import Inputs, RunRecord
from etl.posting import DailyLimitReached, Kind, Poster, ReadFailed, Result, Stopped
from etl.reading import RawChunk
from etl.reconciling import Reconciler, created_range, differences, parse_body, settle_time
from etl.reporting import ReportWriter, patch_report
from etl.resources import header_key
from etl.storage import Match, Storage
from etl.validating import Validator

#: how many times, at the end of a run, rows proved not created are sent again
FINAL_ROUNDS = 3
#: records read back in one run to learn how the target stores fields (reads count against the
#: API's 120-a-minute limit of all methods)
LEARN_READS = 10


@dataclass(frozen=True)
class Settings:
    batch_size: int = 50
    concurrency: int = 1
    max_errors: int = 50
    key: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    tag_description: bool = False
    system_id: bool = True
    allow_new_identity: bool = False
    timeout: float = 30.0
    gateway_settle: float = 600.0  # a 502/503/504/408's request is not taken as settled before this
    retry_rejected: bool = False  # send rows the API refused in an earlier run again
    settle_wait: bool = True  # at the end, wait for this run's rows in doubt to settle and check them
    account_checks: bool = True  # look the records rows refer to up before posting (etl.checks)
    read_rate: float = READ_RATE  # those look-ups a second


class Interrupted(RunAborted):
    """Ctrl-C or SIGTERM: no new request; those under way finish; the report is completed."""

    def __init__(self, signum: int) -> None:
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        super().__init__(f"interrupted ({name}): no new request is sent, those under way are "
                         "finished and the report completed; rerun to continue (again: stop at once)")
        self.exit_status = ExitStatus.TERMINATED if signum == signal.SIGTERM else ExitStatus.INTERRUPTED


class Stopper:
    """Why the run stops, set once, by a worker, the importer or a signal handler."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: BaseException | None = None
        self._lock = threading.Lock()

    def stop(self, reason: BaseException) -> None:
        with self._lock:
            if self.reason is None and not isinstance(reason, Stopped):
                self.reason = reason
                # an abort (exit 3) shows even with -q; the daily limit (exit 4) is a normal night
                say = logs.get("etl.importing").error if isinstance(reason, RunAborted) \
                    else logs.get("etl.importing").warning
                say(f"stopping: {reason}")
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass
class Row:
    position: int
    identity: str
    scheme: str
    body: dict[str, object]  # the payload, tagged if asked, without SystemId
    payload_hash: str
    source: str  # as the operator named it
    number: int
    legacy: str | None = None
    base: str | None = None
    occurrence: int | None = None
    before: str | None = None  # its identity as the release before values made it
    filled: frozenset[str] = frozenset()  # the identity's columns that have a value in it
    cells: dict[str, str] = field(default_factory=dict)  # every column's cell digest, by name


@dataclass(slots=True)
class _Fresh:
    """What the first pass keeps of a row the journal does not know."""

    payload_hash: str
    scheme: str
    source: str
    number: int
    filled: frozenset[str]


class _Sample:
    """The rows of a file a new journal looks up before it posts: its first HEAD rows to send
    (a run of another journal, killed or stopped by the quota, created a prefix of them: rows are
    sent in file order), rows spread evenly over the rest, whatever its length, and its last."""

    SIZE = 3
    HEAD = 12

    def __init__(self) -> None:
        self.head: list[Row] = []
        self.kept: list[tuple[int, Row]] = []
        self.stride = 1
        self.seen = 0
        self.last: Row | None = None

    def extend(self, rows: list[Row]) -> None:
        for row in rows:
            if len(self.head) < self.HEAD:
                self.head.append(row)
            elif self.seen % self.stride == 0:
                self.kept.append((self.seen, row))
                if len(self.kept) > 2 * self.SIZE:
                    self.stride *= 2
                    self.kept = [(k, r) for k, r in self.kept if k % self.stride == 0]
            self.seen += 1
            self.last = row

    def rows(self) -> list[Row]:
        rows = self.head + [r for _, r in self.kept]
        if self.last is not None and (not rows or rows[-1] is not self.last):
            rows.append(self.last)
        return rows


@dataclass
class Done:
    """A row after its sending: the state the ledger gave it and the last answer."""

    row: Row
    state: str
    result: Result


def tagged(payload: dict[str, object], identity: str) -> dict[str, object]:
    """The payload with a short import key stamped into Description, so that identical rows
    become distinguishable records (at the cost of a visible tag on each credit use)."""
    text = str(payload.get("Description") or "")
    return {**payload, "Description": (text + " " if text else "") + f"[etl:{identity[:12]}]"}


def system_id_of(identity: str) -> str:
    return f"etl-{identity[:32]}"


def _when(entry: Entry) -> str:
    return (entry.created_at or entry.updated_at or "")[:16].replace("T", " ")


def _ordered(pool: ThreadPoolExecutor, send: Callable[[Row], Done], rows: list[Row], window: int,
             stop: Stopper) -> Iterator[Done | None]:
    """Results of `send` over ROWS in order, at most WINDOW in flight; None for rows not started."""
    ahead: deque[Future[Done]] = deque()
    it = iter(rows)
    while True:
        while len(ahead) < window and not stop.is_set():
            row = next(it, None)
            if row is None:
                break
            ahead.append(pool.submit(send, row))
        if not ahead:
            break
        yield ahead.popleft().result()
    for _ in it:
        yield None


@dataclass
class Plan:
    """One chunk's rows, decided against the journal."""

    errors: list[str]
    outcome: np.ndarray
    ids: list[int | None]
    statuses: list[int | None]
    attempts: list[int | None]
    to_send: list[Row] = field(default_factory=list)


_TAG = re.compile(r" ?\[etl:[0-9a-f]{12}\]$")


def changed_cells(sent: str, body: dict[str, object]) -> list[str]:
    """The fields whose value in BODY differs from the payload SENT (JSON), as "Field was X, now
    Y"; compared as values, without the import tag in Description."""
    then = json.loads(sent, parse_float=Decimal)
    then.pop("SystemId", None)  # etl's import key, not a cell
    out = []
    for name in sorted(set(then) | set(body)):
        was, now = then.get(name), body.get(name)
        if name == "Description":
            was, now = (_TAG.sub("", str(v)) if v is not None else None for v in (was, now))
        if identity_text(was) != identity_text(now):
            out.append(f"{name} was {_shown(was)}, now {_shown(now)}")
    return out


def _shown(value: object) -> str:
    if value is None or value == "":
        return "blank"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else identity_text(value)


def _identified_otherwise(row: _Fresh, scheme: str) -> bool:
    """Would ROW have been identified otherwise under SCHEME (an earlier row's)? Between two
    schemes of cells, only if the row has a value in a column SCHEME lacks, or SCHEME has a column
    the row's file lacks: a column empty on every row (tonight, or on the night of SCHEME) leaves
    a row's identity as it was. Between other schemes (a --key), whenever they differ."""
    if scheme == row.scheme:
        return False
    then, now = scheme_columns(scheme), scheme_columns(row.scheme)
    if then is None or now is None:
        return True
    return not (row.filled <= then and then <= now)


class Importer:
    def __init__(self, inputs: Inputs, validator: Validator, record: RunRecord, journal: Journal,
                 poster: Poster, reconciler: Reconciler, settings: Settings,
                 stopper: Stopper | None = None) -> None:
        self.inputs = inputs
        self.validator = validator
        self.resource = validator.resource
        self.record = record
        self.journal = journal
        self.ledger = reconciler.ledger
        self.poster = poster
        self.reconciler = reconciler
        self.settings = settings
        self.stopper = stopper or Stopper()
        poster.stop = self.stopper.event
        poster.client.stop = self.stopper.event
        self.log = logs.get("etl.importing")
        self.sources = {os.path.realpath(t.path) for t in inputs.tables}
        inputs.keep_contents()  # a file touched, not changed, must not stop the run
        # identity -> the (source, row) report lines that said "in doubt" (identical rows of two
        # files of the run can share one)
        self.doubtful: dict[str, list[tuple[str, int]]] = {}
        self.streak: list[str] = []  # identities of the rows in a row that ended in an error
        self.notes: Counter[str] = Counter()
        self.legacy = journal.meta("legacy") == "1"
        self.valid_rows: dict[str, int] = {}
        self.zone_checked = False  # learnt again each run: daylight saving time moves it
        self._storage_lock = threading.Lock()
        self.learn_reads = 0
        #: the first pass's evidence of a re-export: column -> earlier file -> created row -> the
        #: row of this run that has its payload and differs from it in that column only
        self.evidence: dict[str, dict[str, dict[str, tuple[Row, Entry]]]] | None = None
        self.column_names: dict[str, str] = {}  # a column's name in an identity -> its header
        self.samples: dict[int, _Sample] = {}  # per file, rows to send to look up before sending
        self.known_files: set[int] = set()  # files of which the journal knows rows
        self.account: AccountChecks | None = for_client(
            self.resource, poster.client, read_rate=settings.read_rate,
            patience=poster.throttle_patience, stop=self.stopper.event) if settings.account_checks else None

    def _stop_if_moved(self) -> None:
        """While sending: an input that changed stops the run before its next POST (exit 3)."""
        moved = self.inputs.moved()
        if moved is not None:
            self.stopper.stop(RunAborted(
                f"{moved} changed while it was being imported (is the export still being written?); "
                "nothing more is sent. Run again once it is complete: what was created is skipped"))

    # --- identities ------------------------------------------------------------------------------

    def _identify(self, identities: Identities, index: int, chunk: RawChunk, valid: np.ndarray
                  ) -> tuple[list[Row], list[tuple[int, str]]]:
        table, columns = self.inputs.tables[index], self.inputs.columns[index]
        identities.start(table.path, table.header)
        at, scheme = identities.columns(table.path, table.header,
                                        {header_key(f.name) for f in self.resource.fields})
        previous = identities.previous
        if previous is not None:
            previous.start(table.path, table.header)
            previous.columns(table.path, table.header)
        field_at = {p: name for name, p in columns.positions.items()}
        kept_at, kept_names = identities.kept(table.header)
        self.column_names.update((n, table.header[i]) for n, i in zip(kept_names, kept_at, strict=True))
        sent = [field_at.get(i) for i in kept_at]  # the field a column is sent as, if it is
        names = identities.names[scheme]
        positions = [int(p) for p in np.flatnonzero(valid)]
        payloads = self.validator.payloads(chunk, columns, positions)
        cells = [chunk.columns[i].to_pylist() for i in kept_at]
        spelt_at = [kept_at.index(i) for i in at]  # the identity's columns among them
        rows, problems = [], []
        for pos, payload in zip(positions, payloads, strict=True):
            number = int(chunk.rows[pos])
            # a sent cell is its value as sent; any other cell its text, normalised
            digests = {}
            for name, f, column in zip(kept_names, sent, cells, strict=True):
                text = identity_text(payload.get(f) if f else column[pos])
                if text:
                    digests[name] = cell_digest(text)
            spelt = [cells[k][pos] or "" for k in spelt_at]
            where = f"{table.path} row {number}"
            identity, base, occurrence, problem = identities.of(
                scheme, [digests.get(n, "") for n in names], where, spelt)
            if problem:
                problems.append((pos, problem))
                continue
            before = previous.of(scheme, spelt, where)[0] if previous is not None else None
            plain = canonical_json(payload)
            legacy = None
            if self.legacy:
                key_text = "\x1f".join(v.strip() for v in spelt) if identities.key else None
                legacy = identities.legacy_of(plain, key_text)
            body = tagged(payload, identity) if self.settings.tag_description else payload
            rows.append(Row(pos, identity, scheme, body, payload_hash(self.resource.name, plain),
                            table.path, number, legacy, base, occurrence, before or None,
                            frozenset(n for n in names if n in digests), digests))
        return rows, problems

    def _known(self, identities: Identities, rows: list[Row]) -> dict[str, Entry]:
        known = self.journal.lookup(r.identity for r in rows)
        if self.legacy:
            missing = [r for r in rows if r.identity not in known and r.legacy]
            old = self.journal.lookup(r.legacy for r in missing if r.legacy)
            for r in missing:
                entry = old.get(r.legacy or "")
                if entry is not None and entry.scheme == LEGACY_SCHEME:
                    self.journal.rekey(entry.identity, r.identity, r.scheme)
                    known[r.identity] = self.journal.lookup([r.identity])[r.identity]
        # a row the release before identities were made of values entered: given today's
        # identity, so that nothing is posted again because etl changed
        missing = [r for r in rows if r.identity not in known and r.before]
        if missing:
            old = self.journal.lookup(r.before for r in missing if r.before)
            for r in missing:
                entry = old.get(r.before or "")
                if entry is not None and entry.scheme != LEGACY_SCHEME:
                    self.journal.reidentify(entry.identity, r.identity, r.scheme, r.base, r.occurrence,
                                            r.cells)
                    known[r.identity] = self.journal.lookup([r.identity])[r.identity]
        self._reidentify(identities, [r for r in rows if r.identity not in known], known)
        return known

    def _reidentify(self, identities: Identities, rows: list[Row], known: dict[str, Entry]) -> None:
        """Rows created under another choice of columns (no --key then, --key now; a column
        --ignore-column now leaves out) are these rows if their cells, as the journal kept them,
        make the same content under today's: they take today's identity instead of being
        posted again. A column that had a value then and is no part of today's identity must
        be one --ignore-column names (a column the export dropped is no reason)."""
        if not rows or not self.journal.total():
            return
        earlier = self.journal.created_with_payload((r.payload_hash for r in rows), maybe=True)
        candidates = [e for r in rows for e in earlier.get(r.payload_hash, [])
                      if e.scheme != r.scheme or self.evidence is not None]
        if not candidates:
            return
        kept = self.journal.cells_of(e.identity for e in candidates)
        ignored = {header_key(c) for c in self.settings.ignore}
        taken: set[str] = set()
        for r in rows:
            for e in earlier.get(r.payload_hash, []):
                cells = kept.get(e.identity)
                if e.scheme == r.scheme or e.identity in taken or cells is None:
                    continue
                names = set(identities.names[r.scheme])
                if not self.settings.key and any(n.split("#")[0] not in ignored
                                                 for n in cells if n not in names):
                    continue
                if identities.base_of(r.scheme, cells) == r.base:
                    taken.add(e.identity)
                    self.journal.reidentify(e.identity, r.identity, r.scheme, r.base, r.occurrence,
                                            r.cells)
                    known[r.identity] = self.journal.lookup([r.identity])[r.identity]
                    self.notes["reidentified"] += 1
                    break
            else:
                self._look_for_a_re_export(identities, r, earlier.get(r.payload_hash, []), kept)

    def _look_for_a_re_export(self, identities: Identities, r: Row, earlier: list[Entry],
                              kept: dict[str, dict[str, str]]) -> None:
        """The first pass's evidence of a re-export: a row with a created row's payload whose
        cells differ from that row's in one column only (not one of --key)."""
        if self.evidence is None:
            return
        key = set(identities.names[r.scheme]) if self.settings.key else set()
        for e in earlier:
            cells = kept.get(e.identity)
            if e.state != Outcome.CREATED.value or cells is None or not e.source:
                continue
            differ = [n for n in cells.keys() | r.cells.keys() if cells.get(n) != r.cells.get(n)]
            if len(differ) == 1 and differ[0] not in key:
                found = self.evidence.setdefault(differ[0], {}).setdefault(e.source, {})
                found.setdefault(e.identity, (r, e))
                return

    def _stop_a_re_export(self) -> None:
        """Many rows that are the rows created from an earlier file but for one column: most of
        that file's rows came back (not the regular uses of a nightly file alone), with a column
        that changes on every export. Stop before the first POST, naming the option."""
        for name, by_source in (self.evidence or {}).items():
            for source, found in by_source.items():
                total = self.journal.created_from(source)
                if len(found) >= 3 and len(found) >= 0.9 * total:
                    r, e = next(iter(found.values()))
                    column = self.column_names.get(name, name)
                    raise UsageProblem(
                        f"this run re-exports credit uses already created: {len(found)} of the {total} "
                        f"rows created from {source} come back with the same payload, differing "
                        f'only in column "{column}" ({r.source} row {r.number} is {e.where}, Id '
                        f"{e.record_id}). Nothing was posted. If that column changes on every export "
                        f"(an export timestamp), rerun with --ignore-column {column}; only if these "
                        "are new credit uses, --allow-new-identity")

    # --- the first pass: nothing is sent before every row was read -------------------------------

    def check(self) -> None:
        """Read every file once: file problems, a changed identity, a repeated --key stop the run
        here (exit 2), before anything is sent."""
        identities = self._identities()
        self.evidence = {} if not self.settings.allow_new_identity else None
        changed: list[tuple[_Fresh, Entry]] = []
        # rows the journal does not know, kept small (a bulk migration's file has millions)
        fresh: list[tuple[int, _Fresh]] = []
        for index, chunk in self.inputs.chunks():
            table = self.inputs.tables[index]
            _, valid = self.validator.errors(chunk, self.inputs.columns[index])
            rows, problems = self._identify(identities, index, chunk, valid)
            known = self._known(identities, rows)
            sending = [r for r in rows
                       if plan(known.get(r.identity), retry_rejected=self.settings.retry_rejected) == "send"]
            if self.account is not None:  # the rows this run may send, for the account checks
                self.account.collect(r.body for r in sending)
            self.samples.setdefault(index, _Sample()).extend(sending)
            if known:  # this journal has been importing this file: the file is its own
                self.known_files.add(index)
            fresh.extend((index, _Fresh(r.payload_hash, r.scheme, r.source, r.number, r.filled))
                         for r in rows if r.identity not in known)
            self._look_for_an_id_column(index, chunk)
            count = self.record.extra.setdefault("rows_read", {})
            count[table.path] = count.get(table.path, 0) + len(chunk)
            good = self.valid_rows
            good[table.path] = good.get(table.path, 0) + len(rows)
        earlier = self.journal.created_with_payload((r.payload_hash for _, r in fresh), maybe=True)
        used: Counter[str] = Counter()
        for _, r in fresh:
            others = [e for e in earlier.get(r.payload_hash, []) if _identified_otherwise(r, e.scheme)]
            if used[r.payload_hash] < len(others):
                changed.append((r, others[used[r.payload_hash]]))
                used[r.payload_hash] += 1
        self.inputs.unchanged("nothing was posted")
        self._stop_a_re_export()
        self.evidence = None
        if changed and not self.settings.allow_new_identity:
            row, entry = changed[0]
            raise UsageProblem(
                f"{len(changed)} rows match credit uses already created under another way of "
                f"identifying rows: {row.source} row {row.number} is identified by "
                f"{describe_scheme(row.scheme)}, but the same payload was created from "
                f"{entry.where} (Id {entry.record_id}) when rows were identified by "
                f"{describe_scheme(entry.scheme)}. Nothing was posted. If these are the same credit "
                "uses, rerun the way they were identified then (the same --key, or --ignore-column "
                "for a column the export added); if they are new credit uses, rerun with "
                "--allow-new-identity")

    def guard_new_journal(self) -> None:
        """A journal that knows no row of a file looks before it posts: a sample of the
        rows about to be sent (its first, its last, and rows spread between) is looked up on the
        server. A record of one, created before this run and not this journal's, means another
        journal has these rows (another --journal, another state folder or user, another
        machine, the URL spelt with another host name): stop. Where the account keeps SystemId
        a record is a row's by its import key; a record with another import key is another
        row's (last night's regular use). Where it does not, by its values: a record with the
        row's exact values that this journal did not make, or one that may be the row's (a field
        the target may store otherwise, a cut or a rounding not learnt yet: another journal's
        record of the row looks just like that). A look that fails stops the run too: "no
        record" was not seen, so nothing is posted."""
        if self.settings.allow_new_identity:
            return
        claimed: set[int] | None = None
        for index, sample in self.samples.items():
            if index in self.known_files:
                continue
            claimed = self.journal.claimed_ids() if claimed is None else claimed
            for row in sample.rows():
                try:
                    hit = self._created_elsewhere(row, claimed)
                except ReadFailed as exc:
                    raise RunAborted(
                        f"could not look for {row.source} row {row.number} on {self.journal.target} "
                        f"before posting with a journal that knows none of its rows ({exc}); nothing "
                        "was posted. A rerun looks again") from None
                if hit is not None:
                    record, why, sure = hit
                    raise JournalProblem(
                        f"{row.source} row {row.number} "
                        f"{'was already' if sure else 'may already have been'} posted to "
                        f"{self.journal.target} (record {record.get('Id')} {why}), but the journal "
                        f"{self.journal.path} knows nothing of it: another journal "
                        f"{'has' if sure else 'may have'} these rows (another --journal, another "
                        "state folder or user, another machine, or the API URL spelt with another host "
                        "name). Nothing was posted; run with that journal (if that record is another "
                        "credit use " + ("with the same values, " if sure else "")
                        + "made otherwise, --allow-new-identity)")

    def _created_elsewhere(self, row: Row, claimed: set[int]) -> tuple[dict[str, Any], str, bool] | None:
        """A record of ROW made before this run, not by this journal: one look-up, by the row's
        values (the records found carry their SystemId), or by SystemId where the resource has
        no look-up by values. (record, why, whether it is surely the row's)."""
        sid = system_id_of(row.identity)
        body = {k: v for k, v in row.body.items() if k != "SystemId"}
        params = {name: str(body[f]) for name, f in self.resource.lookup.items() if f in body}
        if not params:
            if not (self.settings.system_id and self.resource.system_id_filter):
                return None
            params = {self.resource.system_id_filter: sid}
        for record in self.reconciler.records(params):
            theirs = str(record.get("SystemId") or "")
            if record.get("Id") in claimed:
                continue  # this journal's own
            if theirs == sid:
                return record, "carries its import key", True
            # a record another import made with the row's exact values (its own key: another
            # journal's, or one the release before this made from the row's old identity) is
            # stopped on like any other: only this journal's records are known to be other rows'
            compared = differences(self.resource, record, body, self.storage())
            if compared.match is Match.SAME:
                return record, "has its exact values and was not made by this journal", True
            # one that may be the row's (its description cut, its amount rounded, as the target
            # may store them: not learnt yet by this journal) is what another journal's record
            # of the row looks like: "maybe" is never "no"
            if compared.match is Match.UNSURE:
                unsure = ", ".join(compared.unsure)
                return record, (f"has its values as far as they can be compared ({unsure} may be stored "
                                "otherwise by the API) and was not made by this journal"), False
        return None

    def check_account(self) -> None:
        """Before the first POST: the records the rows tonight's quota can send refer to are
        looked up, once each (see etl.checks)."""
        if self.account is not None:
            self.account.look_up(posts_left(self.journal, self.poster.daily_limit))
            self.record.extra["account_checks"] = self.account.summary()

    def _identities(self) -> Identities:
        identities = Identities(self.resource.name, self.settings.key, self.settings.ignore,
                                known=self.journal.of_base)
        if self.journal.meta("identity") != VALUES and self.journal.total():
            identities.previous = Identities(self.resource.name, self.settings.key,
                                             self.settings.ignore, known=self.journal.of_base)
        return identities

    def _look_for_an_id_column(self, index: int, chunk: RawChunk) -> None:
        if self.settings.key or index in getattr(self, "_id_checked", set()):
            return
        self._id_checked = getattr(self, "_id_checked", set()) | {index}
        table = self.inputs.tables[index]
        sent = {header_key(f.name) for f in self.resource.fields}
        for i in id_like_columns(table.header, sent):
            values = chunk.columns[i]
            if len(values) > 1 and values.null_count == 0 and len(values.unique()) == len(values):
                self.log.warning(
                    f'{table.path}: column "{table.header[i]}" looks like the export\'s own record '
                    f"id (unique on every row); --key '{table.header[i]}' would identify rows by it "
                    "exactly, whatever else changes in a re-export")
                return

    # --- the posting pass ----------------------------------------------------------------------

    def run(self, writer: ReportWriter, progress: Callable[[int, Counter[str]], None] | None = None
            ) -> ExitStatus:
        workers = max(1, self.settings.concurrency)
        identities = self._identities()
        # the account checks can take minutes: nothing is sent from a file that moved meanwhile
        self.inputs.unchanged("nothing was posted")
        with ThreadPoolExecutor(workers, thread_name_prefix="post") as pool:
            for index, chunk in self.inputs.chunks():
                self._chunk(pool, workers, identities, index, chunk, writer, progress)
        writer.close()
        self._final_pass()
        self._patch_report()
        for what, n in self.notes.items():
            self.record.extra.setdefault("notes", {})[what] = n
        counts = self.record.counts
        reason = self.stopper.reason
        if reason is not None:
            self.record.stopped = str(reason)
        if isinstance(reason, DailyLimitReached):
            return exit_status(counts, daily_limit=True)
        if isinstance(reason, EtlError):
            return reason.exit_status
        return exit_status(counts)

    def recover(self) -> None:
        """Rows an earlier run left pending are in doubt; rows in doubt from any file are checked."""
        pending = self.journal.entries("pending")
        for e in pending:
            self.ledger.apply(e.identity, Event.CRASHED, CRASH_REASON,
                              settle_until=(e.last_sent or e.first_sent or 0.0) + settle_time(e.timeout))
        if pending:
            self.log.warning(f"{len(pending)} rows were left pending by an earlier run that stopped "
                             "mid-request; they are in doubt and will not be resent blindly")
        doubt = [e for e in self.journal.entries(Outcome.IN_DOUBT.value)
                 if e.resource in (None, "", self.resource.name)]
        if not doubt:
            return
        verdicts = self.reconciler.reconcile(doubt)
        others = [v for v in verdicts if os.path.realpath(v.entry.source or "") not in self.sources]
        for v in others:
            self.log.warning(f"{v.entry.where} (not in this run): {v.reason}"
                             + (f" (Id {v.record_id})" if v.record_id else ""))
        if others:
            tally = Counter(v.outcome.value for v in others)
            self.record.extra["other_files"] = {
                "checked": len(others), "created": tally.get("created", 0),
                "not_created": tally.get("failed", 0), "in_doubt": tally.get("in_doubt", 0)}

    def _plan(self, identities: Identities, index: int, chunk: RawChunk) -> Plan:
        n = len(chunk)
        errors, valid = self.validator.errors(chunk, self.inputs.columns[index])
        p = Plan(errors, np.where(valid, "", Outcome.INVALID.value).astype(object),
                 [None] * n, [None] * n, [None] * n)
        rows, problems = self._identify(identities, index, chunk, valid)
        for pos, problem in problems:
            p.outcome[pos], p.errors[pos] = Outcome.INVALID.value, problem
        known = self._known(identities, rows)
        for r in rows:
            entry = known.get(r.identity)
            what = plan(entry, retry_rejected=self.settings.retry_rejected)
            if what == "skip" and entry is not None:
                p.outcome[r.position], p.ids[r.position] = Outcome.SKIPPED.value, entry.record_id
                p.errors[r.position] = self._skipped(r, entry)
            elif what == "rejected" and entry is not None:
                p.outcome[r.position], p.statuses[r.position] = Outcome.REJECTED.value, entry.http_status
                p.errors[r.position] = (f"{entry.reason} (refused on {_when(entry)}; not sent again: "
                                        "fix the row, or --retry-rejected once the account is fixed)")
            elif what == "doubt" and entry is not None:
                p.outcome[r.position] = Outcome.IN_DOUBT.value
                p.errors[r.position] = entry.reason or "an earlier request may have created it"
                self.doubtful.setdefault(r.identity, []).append((r.source, r.number))
            elif self.stopper.is_set():
                p.outcome[r.position] = Outcome.NOT_ATTEMPTED.value
            else:
                p.to_send.append(r)
        earlier = self.journal.created_with_payload(r.payload_hash for r in p.to_send)
        for r in p.to_send:
            same = [e for e in earlier.get(r.payload_hash, []) if e.base != r.base]
            if same:
                e = same[0]
                p.errors[r.position] = (f"note: same payload as {e.where} (Id {e.record_id}, created "
                                        f"{_when(e)}), but its other cells differ: posted as a new "
                                        "credit use")
                self.notes["posted_with_the_payload_of_an_earlier_row"] += 1
        if self.account is not None:
            p.to_send = [r for r in p.to_send if self._account_allows(p, r)]
        return p

    def _skipped(self, r: Row, entry: Entry) -> str:
        """Why a row is skipped, truthfully: the values sent then and its values now compared."""
        note = f"note: already created from {entry.where} on {_when(entry)} (Id {entry.record_id})"
        other_file = os.path.realpath(r.source) != (entry.source or "")
        if not self.settings.key:  # the same identity: the same values, however spelt
            if other_file:
                self.notes["skipped_identical_from_other_files"] += 1
            return note + ": the same values in every cell"
        if r.payload_hash == entry.payload_hash:
            if other_file:
                self.notes["skipped_same_key_from_other_files"] += 1
            return note
        # --key says it is that row: a corrected row is never sent again, nor silently
        differ = changed_cells(entry.payload, r.body)
        self.notes["skipped_changed_under_key"] += 1
        return (f"changed under the same --key: {'; '.join(differ)} (not sent: a row of that key "
                f"was created from {entry.where} on {_when(entry)}, Id {entry.record_id}; correct "
                "that record in Nexudus if the change is right)")

    def _account_allows(self, p: Plan, r: Row) -> bool:
        """The account checks' verdict, in input order: a row they refuse is `invalid` and never
        sent (nor entered in the journal); their notes go on the row."""
        assert self.account is not None
        verdict = self.account.verdict(r.body, f"{r.source} row {r.number}")
        if verdict.problem:
            p.outcome[r.position], p.errors[r.position] = Outcome.INVALID.value, verdict.problem
            return False
        notes = [p.errors[r.position], *(f"note: {n}" for n in verdict.notes)]
        p.errors[r.position] = " | ".join(n for n in notes if n)
        return True

    def _chunk(self, pool: ThreadPoolExecutor, workers: int, identities: Identities, index: int,
               chunk: RawChunk, writer: ReportWriter,
               progress: Callable[[int, Counter[str]], None] | None) -> None:
        table = self.inputs.tables[index]
        p = self._plan(identities, index, chunk)
        self.journal.keep_cells({r.identity: r.cells for r in p.to_send})
        n = len(chunk)
        to_send = p.to_send
        first: Done | None = None
        if to_send and self._needs_probe():
            first = self._probe(to_send[0])
            to_send = to_send[1:]
        results = _ordered(pool, self._send, to_send, workers, self.stopper)
        by_position = {r.position: r for r in p.to_send}
        batch = max(1, self.settings.batch_size)
        start = 0
        while start < n:
            end = min(n, start + batch)
            for pos in range(start, end):
                if pos not in by_position:
                    continue
                done = first if first is not None and first.row.position == pos else next(results)
                self._take(p, pos, done)
                if progress is not None:
                    progress(1, self.record.counts)
            self._batch_reconcile(p, range(start, end), by_position)
            segment = slice(start, end)
            self.record.counts.update(p.outcome[segment].tolist())
            writer.write(
                table.path, chunk.rows[segment], p.outcome[segment].tolist(), p.errors[segment],
                [None if c is None else c[start:end] for c in self.inputs.own_cells(index, chunk)],
                ids=p.ids[segment], statuses=p.statuses[segment], attempts=p.attempts[segment],
            )
            writer.flush()
            if progress is not None:
                progress(sum(1 for q in range(start, end) if q not in by_position), self.record.counts)
            start = end

    def _take(self, p: Plan, pos: int, done: Done | None) -> None:
        """One sent row's answer into the report, and into the count of errors in a row."""
        if done is None:
            p.outcome[pos] = Outcome.NOT_ATTEMPTED.value
            return
        r, result = done.row, done.result
        outcome = Outcome.NOT_ATTEMPTED if done.state == "new" else Outcome(done.state)
        note = p.errors[pos] if p.errors[pos].startswith("note:") else ""
        entry = self.journal.lookup([r.identity]).get(r.identity)
        reason = (entry.reason if entry is not None and done.state != "new" else result.errors) or ""
        p.outcome[pos], p.ids[pos] = outcome.value, result.record_id
        p.statuses[pos], p.attempts[pos] = result.http_status, result.attempts or None
        p.errors[pos] = " | ".join(x for x in (reason, note) if x)
        if outcome is Outcome.IN_DOUBT:
            self.doubtful.setdefault(r.identity, []).append((r.source, r.number))
        if outcome in (Outcome.REJECTED, Outcome.FAILED, Outcome.IN_DOUBT):
            self.streak.append(r.identity)
            if len(self.streak) >= self.settings.max_errors:
                self._errors_in_a_row()
        elif outcome is Outcome.CREATED:
            self.streak.clear()

    def _errors_in_a_row(self) -> None:
        """--max-errors reached: reconciliation has its say on the rows in doubt first; a row of
        the streak found created ends it (the journal says; the report is mended at the end)."""
        entries = self.journal.lookup(self.streak)
        doubt = [e for e in entries.values() if e.state == Outcome.IN_DOUBT.value]
        if doubt:
            self.reconciler.reconcile(doubt)
            entries = self.journal.lookup(self.streak)
        created = [k for k, i in enumerate(self.streak)
                   if i in entries and entries[i].state == Outcome.CREATED.value]
        if created:
            self.streak = self.streak[created[-1] + 1:]
        if len(self.streak) >= self.settings.max_errors:
            self.stopper.stop(RunAborted(
                f"--max-errors {self.settings.max_errors} reached: that many rows in a row were "
                "rejected, failed or left in doubt; check the report, --api-url and the data"))

    def _batch_reconcile(self, p: Plan, positions: range, by_position: dict[int, Row]) -> None:
        """Rows of this batch that went in doubt are looked up at once: a record found is theirs."""
        doubt = [by_position[q] for q in positions
                 if q in by_position and p.outcome[q] == Outcome.IN_DOUBT.value]
        if not doubt:
            return
        entries = self.journal.lookup(r.identity for r in doubt)
        verdicts = {v.identity: v for v in self.reconciler.reconcile(list(entries.values()))}
        for r in doubt:
            v = verdicts.get(r.identity)
            if v is None:
                continue
            p.errors[r.position] = v.reason
            if v.outcome is Outcome.CREATED:
                p.outcome[r.position], p.ids[r.position] = Outcome.CREATED.value, v.record_id
                p.errors[r.position] = ""
                if r.identity in self.streak:
                    self.streak = self.streak[self.streak.index(r.identity) + 1:]
            elif v.outcome is Outcome.FAILED:
                p.outcome[r.position] = Outcome.FAILED.value

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
        import json

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

    # --- the end: rows in doubt settle, are checked, and those proved absent are sent again ------

    def _final_pass(self) -> None:
        """This run's rows in doubt settle (those that will within this run's time-out), are
        checked, and those proved absent (then, or by a check during the run) are sent again."""
        for _ in range(FINAL_ROUNDS):
            if self.stopper.is_set() or not self.doubtful:
                return
            now = list(self.journal.lookup(self.doubtful).values())
            absent = [e for e in now if e.state == Outcome.FAILED.value and e.reason == ABSENT_REASON]
            doubt = [e for e in now if e.state == Outcome.IN_DOUBT.value]
            if doubt:
                # wait no longer than this run's own requests take to settle: a request of a
                # killed run sent with a longer time-out, or a gateway's, may be proved created
                # meanwhile (its record shows up), else a later run decides it
                longest = clock() + settle_time(self.settings.timeout)
                until = max(min(e.settle_until or 0.0, longest) for e in doubt)
                wait = until - clock()
                if wait > 0 and self.settings.settle_wait:
                    self.log.warning(f"waiting {wait:.0f} s for requests in doubt to settle before "
                                     "checking them (Ctrl-C stops; a rerun checks them)")
                    while clock() < until and not self.stopper.is_set():
                        time.sleep(min(0.2, max(0.0, until - clock())))
                    if self.stopper.is_set():
                        return
                verdicts = self.reconciler.reconcile(doubt, final=True)
                absent += [v.entry for v in verdicts if v.outcome is Outcome.FAILED
                           and v.identity in self.doubtful]
            if not absent:
                return  # nothing proved absent: another round would find the same
            for e in absent:
                self._stop_if_moved()
                if self.stopper.is_set():
                    return
                self._resend(e)

    def _resend(self, entry: Entry) -> None:
        """A row proved not created is sent again, its body built under the target's current
        SystemId setting (the account may have been found to refuse or drop it since the row
        was first sent). Safe: reconciliation found no record that could be this row after its
        request had settled (the ledger only moves a row to `failed` on that proof), so this
        cannot make a second credit use."""
        body = parse_body(entry.payload)
        body.pop("SystemId", None)
        row = Row(0, entry.identity, entry.scheme, body, entry.payload_hash, entry.source or "",
                  entry.row or 0, base=entry.base, occurrence=entry.occurrence)
        self._send(row, reason="sent again: checked, it had not been created")

    def _patch_report(self) -> None:
        """Rows reported in doubt whose fate was decided later in the run: the report is mended."""
        if not self.doubtful:
            return
        now = self.journal.lookup(self.doubtful)
        changes = {}
        for identity, lines in self.doubtful.items():
            e = now.get(identity)
            outcome = report_outcome(e, this_run=True)
            if e is None or outcome is Outcome.IN_DOUBT:
                continue
            for k, (source, number) in enumerate(lines):
                # the same row in a second file of the run is that one credit use, which this run
                # sent from the first line: the others did not send it
                said = report_outcome(e, this_run=k == 0)
                changes[(source, number)] = (said.value, e.record_id, e.reason or "", e.http_status,
                                             e.attempts)
        if changes:
            self.record.counts.update(patch_report(self.record.report, changes))
            for gone in [o for o, n in self.record.counts.items() if n <= 0]:
                del self.record.counts[gone]


def import_files(
    inputs: Inputs, validator: Validator, record: RunRecord, journal: Journal,
    poster: Poster, settings: Settings, stopper: Stopper | None = None,
    progress: Callable[[int], Callable[[int, Counter[str]], None]] | None = None,
) -> ExitStatus:
    """The whole import: a first pass over every row (problems stop it before anything is
    sent), the credentials checked, then the posting pass."""
    record.inputs = inputs
    ledger = Ledger(journal)
    reconciler = Reconciler(poster.client, journal, ledger, validator.resource,
                            before_request=poster.pacer.acquire, patience=poster.throttle_patience,
                            fences=Fences(journal))
    importer = Importer(inputs, validator, record, journal, poster, reconciler, settings, stopper)
    journal.start_run(record.command, [os.path.realpath(p) for p in record.files], record.started_at)
    try:
        return _import(inputs, record, journal, poster, importer, progress)
    except BaseException as exc:  # the journal says how the run ended, where it can be written
        code = _exit_code(exc)
        if code is not None:
            with contextlib.suppress(Exception):
                journal.finish_run(code, {k: v for k, v in record.counts.items() if v})
        raise


def _exit_code(exc: BaseException) -> int | None:
    """The exit code the CLI gives for EXC; None for a defect (the run is left unfinished)."""
    if isinstance(exc, EtlError):
        return int(exc.exit_status)
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitStatus.INTERRUPTED)
    if no_room(exc):
        return int(ExitStatus.ABORTED)
    return None


def _import(inputs: Inputs, record: RunRecord, journal: Journal, poster: Poster, importer: Importer,
            progress: Callable[[int], Callable[[int, Counter[str]], None]] | None) -> ExitStatus:
    poster.client.login()
    importer.recover()  # rows an earlier run left in doubt are settled first: the check sees them
    importer.check()
    importer.guard_new_journal()
    for path, rows in record.extra.get("rows_read", {}).items():
        journal.note_source(os.path.realpath(path), rows, importer.valid_rows.get(path, 0), "")
    total = sum(record.extra.get("rows_read", {}).values())
    importer.check_account()
    writer = ReportWriter(record.report, inputs.own_columns)
    try:
        status = importer.run(writer, progress(total) if progress else None)
    finally:
        writer.close()
    journal.finish_run(int(status), {k: v for k, v in record.counts.items() if v})
    record.extra["journal"] = journal.path
    record.finish(status)
    logs.get().info("imported", counts=dict(record.counts), report=record.report,
                    stopped=record.stopped, journal=journal.path)
    return status
