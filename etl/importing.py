"""The import run: validate, decide each valid row against the journal, post, report.

Rows are posted by `concurrency` workers, paced by one Pacer, and their results are taken back
in input order, so the report is written in input order and made durable every `batch_size`
rows. A run stops cleanly at the daily limit (exit 4), on refused credentials or after
`max_errors` rejected or failed rows in a row (exit 3); every row it did not reach is
`not_attempted`, and a rerun carries on from there.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from etl import logs
from etl.errors import RunAborted, UsageProblem
from etl.journal import Journal, canonical_json
from etl.outcomes import ExitStatus, Outcome, exit_status
from etl.pipeline import Inputs, RunRecord
from etl.posting import DailyLimitReached, Poster, Result, Stopped
from etl.reading import RawChunk
from etl.reconciling import Reconciler
from etl.reporting import ReportWriter
from etl.resources import header_key
from etl.validating import Validator


@dataclass(frozen=True)
class Settings:
    batch_size: int = 50
    concurrency: int = 1
    max_errors: int = 50
    key: tuple[str, ...] = ()
    tag_description: bool = False


@dataclass
class Row:
    position: int
    identity: str
    body: str
    source: str
    number: int


class Identities:
    """A row's identity: the resource, its canonical payload and its occurrence in the input
    (the second identical row is another row), or with --key the export's own key columns."""

    def __init__(self, resource: str, key: tuple[str, ...]) -> None:
        self.resource = resource
        self.key = key
        self.seen: dict[bytes, int] = {}
        self.first_row: dict[bytes, str] = {}

    def key_positions(self, path: str, header: list[str]) -> list[int]:
        wanted = {header_key(k): k for k in self.key}
        found = {header_key(h): i for i, h in enumerate(header)}
        missing = [k for hk, k in wanted.items() if hk not in found]
        if missing:
            raise UsageProblem(f"{path}: --key column {', '.join(missing)} is not in the file")
        return [found[header_key(k)] for k in self.key]

    def of(self, body: str, key_values: list[str] | None, where: str) -> tuple[str, str | None]:
        """(identity, problem): a repeated --key value is a problem, a repeated payload is not."""
        if key_values is not None:
            text = "\x1f".join(v.strip() for v in key_values)
            digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
            if digest in self.first_row:
                return "", f"key: {', '.join(key_values)} repeats {self.first_row[digest]}"
            self.first_row[digest] = where
            return hashlib.sha256(f"{self.resource}\nkey\n{text}".encode()).hexdigest()[:40], None
        digest = hashlib.blake2b(body.encode(), digest_size=16).digest()
        occurrence = self.seen.get(digest, 0) + 1
        self.seen[digest] = occurrence
        return hashlib.sha256(f"{self.resource}\n{body}\n{occurrence}".encode()).hexdigest()[:40], None


def tagged(payload: dict[str, object], identity: str) -> dict[str, object]:
    """The payload with a short import key stamped into Description, so that identical rows
    become distinguishable records (at the cost of a visible tag on each credit use)."""
    text = str(payload.get("Description") or "")
    return {**payload, "Description": (text + " " if text else "") + f"[etl:{identity[:12]}]"}


def _ordered(
    pool: ThreadPoolExecutor, send: Callable[[Row], Result], rows: list[Row], window: int,
    stop: threading.Event,
) -> Iterator[Result | BaseException]:
    """Results of `send` over ROWS in order, at most WINDOW in flight; none started after STOP."""
    ahead: deque[Future[Result]] = deque()
    it = iter(rows)
    while True:
        while len(ahead) < window and not stop.is_set():
            row = next(it, None)
            if row is None:
                break
            ahead.append(pool.submit(send, row))
        if not ahead:
            break
        future = ahead.popleft()
        try:
            yield future.result()
        except (DailyLimitReached, RunAborted, Stopped) as exc:
            yield exc
    for _ in it:
        yield Stopped()


class Importer:
    def __init__(self, inputs: Inputs, validator: Validator, record: RunRecord, journal: Journal,
                 poster: Poster, settings: Settings, reconciler: Reconciler | None = None) -> None:
        self.inputs = inputs
        self.validator = validator
        self.record = record
        self.journal = journal
        self.poster = poster
        self.settings = settings
        self.reconciler = reconciler
        self.identities = Identities(validator.resource.name, settings.key)
        self.stop = threading.Event()
        self.stop_reason: BaseException | None = None
        self._stop_lock = threading.Lock()
        self.errors_in_a_row = 0
        self.log = logs.get("etl.importing")
        poster.stop = self.stop

    def _send(self, row: Row) -> Result:
        if self.stop.is_set():
            raise Stopped()
        try:
            return self.poster.send(row.identity, row.body, row.source, row.number)
        except (DailyLimitReached, RunAborted) as exc:
            self._stopping(exc)  # at once, so no queued row starts after it
            raise

    def run(
        self, writer: ReportWriter, progress: Callable[[int, Counter[str]], None] | None = None
    ) -> ExitStatus:
        recovered = self.journal.recover(settle=2 * self.poster.client.timeout)
        if recovered:
            self.log.warning(f"{recovered} rows were left pending by an earlier run that stopped "
                             "mid-request; they are in doubt and will not be resent blindly")
        if self.reconciler is not None:
            doubt = self.journal.in_doubt(self.validator.resource.name)
            if doubt:
                verdicts = Counter(v.outcome.value for v in self.reconciler.reconcile(doubt))
                self.log.warning(
                    f"checked {len(doubt)} rows in doubt from earlier runs: "
                    f"{verdicts.get('created', 0)} were created, {verdicts.get('failed', 0)} were not "
                    f"(sent again now), {verdicts.get('in_doubt', 0)} still in doubt")
        workers = max(1, self.settings.concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="post") as pool:
            for index, chunk in self.inputs.chunks():
                self._chunk(pool, workers, index, chunk, writer, progress)
        counts = self.record.counts
        if isinstance(self.stop_reason, DailyLimitReached):
            self.record.stopped = str(self.stop_reason)
            return exit_status(counts, daily_limit=True)
        if isinstance(self.stop_reason, RunAborted):
            self.record.stopped = str(self.stop_reason)
            return ExitStatus.ABORTED
        return exit_status(counts)

    def _chunk(self, pool: ThreadPoolExecutor, workers: int, index: int, chunk: RawChunk,
               writer: ReportWriter, progress: Callable[[int, Counter[str]], None] | None) -> None:
        table, columns = self.inputs.tables[index], self.inputs.columns[index]
        n = len(chunk)
        errors, valid = self.validator.errors(chunk, columns)
        outcome = np.where(valid, "", Outcome.INVALID.value).astype(object)
        ids: list[int | None] = [None] * n
        statuses: list[int | None] = [None] * n
        attempts: list[int | None] = [None] * n
        positions = [int(p) for p in np.flatnonzero(valid)]
        payloads = self.validator.payloads(chunk, columns, positions)
        bodies = [canonical_json(b) for b in payloads]
        key_cells = None
        if self.settings.key:
            key_at = self.identities.key_positions(table.path, table.header)
            key_cells = [chunk.columns[k].to_pylist() for k in key_at]
        rows: list[Row] = []
        for pos, payload, body in zip(positions, payloads, bodies, strict=True):
            number = int(chunk.rows[pos])
            values = [c[pos] or "" for c in key_cells] if key_cells is not None else None
            identity, problem = self.identities.of(body, values, f"{table.path} row {number}")
            if problem:
                outcome[pos], errors[pos] = Outcome.INVALID.value, problem
                continue
            if self.settings.tag_description:
                body = canonical_json(tagged(payload, identity))
            rows.append(Row(pos, identity, body, table.path, number))
        known = self.journal.lookup([r.identity for r in rows])
        to_send = []
        for r in rows:
            entry = known.get(r.identity)
            if entry is not None and entry.state == Outcome.CREATED.value:
                outcome[r.position], ids[r.position] = Outcome.SKIPPED.value, entry.record_id
            elif entry is not None and entry.state in (Outcome.IN_DOUBT.value, "pending"):
                outcome[r.position] = Outcome.IN_DOUBT.value
                errors[r.position] = entry.errors or "an earlier request may have created it"
            elif self.stop.is_set():
                outcome[r.position] = Outcome.NOT_ATTEMPTED.value
            else:
                to_send.append(r)
        results = _ordered(pool, self._send, to_send, workers, self.stop)
        by_position = {r.position: r for r in to_send}
        start = 0
        batch = max(1, self.settings.batch_size)
        while start < n:
            end = min(n, start + batch)
            for pos in range(start, end):
                if pos not in by_position:
                    continue
                result = next(results)
                if isinstance(result, BaseException):
                    self._stopping(result)
                    outcome[pos] = Outcome.NOT_ATTEMPTED.value
                    continue
                outcome[pos], ids[pos] = result.outcome.value, result.record_id
                statuses[pos], attempts[pos], errors[pos] = result.http_status, result.attempts, result.errors
                self._count_error(result.outcome)
            self._reconcile(range(start, end), by_position, outcome, ids, errors)
            segment = slice(start, end)
            self.record.counts.update(outcome[segment].tolist())
            writer.write(
                table.path, chunk.rows[segment], outcome[segment].tolist(), errors[segment],
                [None if c is None else c[start:end] for c in self.inputs.own_cells(index, chunk)],
                ids=ids[segment], statuses=statuses[segment], attempts=attempts[segment],
            )
            writer.flush()
            if progress is not None:
                progress(end - start, self.record.counts)
            start = end

    def _reconcile(self, positions: range, by_position: dict[int, Row], outcome: np.ndarray,
                   ids: list[int | None], errors: list[str]) -> None:
        """Rows of this batch that went in doubt are looked up at once."""
        doubt = [by_position[p] for p in positions
                 if p in by_position and outcome[p] == Outcome.IN_DOUBT.value]
        if not doubt or self.reconciler is None:
            return
        entries = self.journal.lookup([r.identity for r in doubt])
        verdicts = self.reconciler.reconcile([entries[r.identity] for r in doubt])
        for row, verdict in zip(doubt, verdicts, strict=True):
            if verdict.outcome is Outcome.CREATED:
                outcome[row.position], ids[row.position] = Outcome.CREATED.value, verdict.record_id
                errors[row.position] = ""
            elif verdict.outcome is Outcome.FAILED:
                outcome[row.position] = Outcome.FAILED.value
                errors[row.position] = "no record was created (checked); a rerun sends it again"
            else:
                errors[row.position] = verdict.reason

    def _count_error(self, outcome: Outcome) -> None:
        if outcome in (Outcome.REJECTED, Outcome.FAILED):
            self.errors_in_a_row += 1
            if self.errors_in_a_row >= self.settings.max_errors and not self.stop.is_set():
                self._stopping(RunAborted(
                    f"--max-errors {self.settings.max_errors} reached: that many rows in a row were "
                    "rejected or failed; check the report, --api-url and the data"))
        else:
            self.errors_in_a_row = 0

    def _stopping(self, reason: BaseException) -> None:
        with self._stop_lock:
            if self.stop_reason is None and not isinstance(reason, Stopped):
                self.stop_reason = reason
                self.log.warning(f"stopping: {reason}")
            self.stop.set()


def import_files(
    inputs: Inputs, validator: Validator, record: RunRecord, journal_path: str, scope: str,
    poster_for: Callable[[Journal], Poster], settings: Settings,
    progress: Callable[[int], Callable[[int, Counter[str]], None]] | None = None,
) -> ExitStatus:
    """The whole import: a validation pass (file problems stop it before anything is sent),
    the journal taken, the credentials checked, then the posting pass."""
    total_rows = 0
    for index, chunk in inputs.chunks():
        total_rows += len(chunk)
        validator.errors(chunk, inputs.columns[index])
    journal = Journal(journal_path, scope, run_id=record.run_id)
    try:
        poster = poster_for(journal)
        poster.client.login()
        reconciler = Reconciler(poster.client, journal, validator.resource,
                                before_request=poster.pacer.acquire)
        importer = Importer(inputs, validator, record, journal, poster, settings, reconciler)
        writer = ReportWriter(record.report, inputs.own_columns)
        try:
            status = importer.run(writer, progress(total_rows) if progress else None)
        finally:
            writer.close()
    finally:
        journal.close()
    record.finish(status)
    logs.get().info("imported", counts=dict(record.counts), report=record.report,
                    stopped=record.stopped)
    return status
