"""The import run: check every row, decide each against the journal, post, reconcile, report.

Before anything is sent, a first pass reads every file: file problems, a changed way of
identifying rows, a repeated `--key` all stop the run (exit 2) with nothing posted. Then rows are
posted by `concurrency` workers, paced by one Pacer, and their results taken back in input order,
so the report is written in input order and made durable every `batch_size` rows. What becomes
of a row is decided by `etl.ledger.life` alone; this module only proposes events to it.

A run stops cleanly at the daily limit or under endless throttling (exit 4), on refused
credentials or after `max_errors` rows in a row that end rejected, failed or in doubt (exit 3),
and on Ctrl-C (130) or SIGTERM (143): requests under way are finished, every row not reached is
`not_attempted`, the report and summary are complete, and a rerun carries on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as arrow

from etl import logs
from etl.errors import EtlError, FileProblem, RunAborted, no_room
from etl.heap import arrow_pool, give_back_memory
from etl.ledger.entries import Entry, state_home
from etl.ledger.fencing import Fences
from etl.ledger.identity import Identities
from etl.ledger.journal import Journal
from etl.ledger.life import Ledger, plan
from etl.ledger.lookups import LINK
from etl.ledger.rowkeys import KeyCache
from etl.outcomes import NEEDS_ACTION, STATE_OUTCOME, ExitStatus, Facts, Outcome, exit_status
from etl.post.answers import DailyLimitReached
from etl.post.poster import Poster
from etl.post.reconciling import Reconciler
from etl.read.reading import RawChunk
from etl.report.reporting import ReportWriter
from etl.run import resolving
from etl.run.ahead import WritingAhead
from etl.run.checking_rows import CheckingRows
from etl.run.checks import AccountChecks, for_client
from etl.run.created_ahead import CreatedAhead
from etl.run.end_of_run import EndOfRun
from etl.run.first_pass import FirstPass
from etl.run.import_rows import (
    Done,
    Here,
    Plan,
    Row,
    RowFacts,
    Settings,
    Stopper,
    _FileKeys,
    _Keyed,
    _ordered,
    _Sample,
    _ToSend,
    changed_cells,
)
from etl.run.kept_verdicts import KeptVerdicts
from etl.run.keyed_rows import KeyedRows
from etl.run.lines import _Ahead, _Lines
from etl.run.night import CREATED_HERE, Night
from etl.run.pipeline import Inputs, RunRecord
from etl.run.sending import Sender
from etl.validate.validating import Validator


class Importer(FirstPass, KeyedRows, Sender, EndOfRun, WritingAhead, CheckingRows):
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
        self.doubtful: set[str] = set()  # identities of this run's rows in doubt
        self.night = Night()  # what the report says of each line
        self._real: dict[str, str] = {}  # a file as named -> its real path
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
        #: per file, valid rows that are not left to post from it: refused by the account checks,
        #: or in the journal from another file (counted there)
        self.accounted: Counter[str] = Counter()
        self._files: dict[int, _FileKeys] = {}  # per file, what this pass keys its rows against
        #: per file, the journal's keys as the first pass read them (reused while unwritten)
        self._read_keys: dict[int, _FileKeys] = {}
        self._first = False  # the first pass is under way
        #: chunks the first pass found rows created here in, that the posting pass plans again:
        #: (journal's writes, rows asked of, Here, rows left), by (file, first row, rows)
        #: the run's first chunks, as the first pass read them, for the posting pass (first_pass)
        self._kept_chunks: list[tuple[int, RawChunk]] = []
        self._here_kept: dict[tuple[int, int, int], tuple[int, np.ndarray, Here, np.ndarray]] = {}
        #: per file, the rows created from its lines, read ahead of the first pass (created_ahead)
        self._ahead: dict[int, CreatedAhead] = {}
        #: the journal's keys, read while the first chunk is checked (keyed_rows)
        self._keys_soon: Future[tuple[tuple[str, str, str, str], int]] | None = None
        #: the first pass's verdicts, by (file, chunk): the invalid rows' texts, a bit a row
        #: (many texts on disk: etl.run.kept_verdicts)
        self._checked = KeptVerdicts(os.path.join(state_home(), "keys"))
        #: the first pass's keys, by (file, chunk), where no KeyCache keeps them
        self._keys: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        #: the first pass's rows whose payload the journal may have created, by (file, chunk)
        self._candidates: dict[tuple[int, int], np.ndarray] = {}
        #: the first pass's chunks whose valid rows the journal knew nothing of (Importer._untouched)
        self._untouched_chunks: set[tuple[int, int]] = set()
        self._sent_from: set[int] = set()  # files the posting pass sent rows from
        self._caches: dict[int, KeyCache] = {}
        self._repeated: dict[int, np.ndarray] = {}  # per file, the contents it has more than once
        #: chunks (by their ordinal in the run) whose lines the first pass wrote, as segments of
        #: chunks in a row (etl.run.ahead.WritingAhead._written_first)
        self._segments: dict[int, _Ahead] = {}
        self._chunks_read = 0
        self.cut_short = False  # a file changed while it was posted from: the run ended there
        self._reach = self._collected = self._verdicts_given = 0
        self.account: AccountChecks | None = for_client(
            self.resource, poster.client, read_rate=settings.read_rate,
            patience=poster.throttle_patience, stop=self.stopper.event) if settings.account_checks else None

    # --- the posting pass ----------------------------------------------------------------------

    def run(self, writer: ReportWriter, progress: Callable[[int, Counter[str]], None] | None = None
            ) -> ExitStatus:
        workers = max(1, self.settings.concurrency)
        identities = self._identities()
        # the account checks can take minutes: nothing is sent from a file that moved meanwhile
        self.inputs.unchanged("nothing was posted")
        self._files = {}
        numbers: Counter[int] = Counter()
        chunks: Iterator[tuple[int, RawChunk]] = self.inputs.chunks()
        kept, self._kept_chunks = self._kept_chunks, []
        checkpointed = False
        if kept:  # the first chunks as the first pass read them; the rest read again
            chunks = itertools.chain(kept, itertools.islice(chunks, len(kept), None))
        cut: RunAborted | None = None  # a file no longer as read: the report ends before it
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="post") as pool:
                for ordinal, (index, chunk) in enumerate(_read_again(chunks, len(kept), self.inputs), 1):
                    if chunk is None:
                        cut = self._cut(index)
                        break
                    give_back_memory()
                    segment = self._segments.get(ordinal)
                    if segment is None:
                        self._chunk(pool, workers, identities, index, numbers[index], chunk, writer, progress)
                    else:  # its lines were written by the first pass
                        self._pass_over(identities, index, numbers[index], chunk)
                        if ordinal == segment.start:
                            self._segment_join(segment, writer, progress)
                    numbers[index] += 1
                    if not checkpointed and self.stopper.is_set():
                        checkpointed = True  # nothing more is sent: the journal's log, meanwhile
                        self.journal.checkpoint_soon()
        finally:
            self._files_done()
            self._checked.close()
        if cut is not None:
            self._written_drop()  # segments after the cut: not in the report
        if self.account is not None and self.account.lazy:  # and those looked up while sending
            self.account.finish()
            self.record.extra["account_checks"] = self.account.summary()
        # every line written is on disk before the run waits for rows to settle (a wait of
        # minutes); else the lines of batches that sent rows are already (_Lines.said)
        writer.flush(sync=self._will_settle())
        self._final_pass()
        self._report_whole(writer)
        counts = self.record.counts
        reason = cut or self.stopper.reason
        if reason is not None:
            self.record.stopped = str(reason)
        if isinstance(reason, DailyLimitReached):
            return exit_status(counts, daily_limit=True)
        if isinstance(reason, EtlError):
            return reason.exit_status
        return exit_status(counts)

    def _cut(self, index: int) -> RunAborted:
        """The posting pass found file INDEX no longer as it was read: nothing more is sent, and
        the report ends with the lines written (those after can't be read as they were)."""
        path = self.inputs.tables[index].path
        self.cut_short = True  # what is left of the file, as it now is, is not known
        written = sum(self.record.counts.values())
        reason = RunAborted(
            f"{path} changed while it was being imported (is the export still being written?): "
            f"nothing more is sent, and the report ends after its first {written} lines (the rows "
            "after them could not be read again as they were). Run again once it is complete: "
            "what was created is skipped")
        self.stopper.stop(reason)
        return reason

    def recover(self) -> None:
        """Rows an earlier run left pending are in doubt; rows in doubt from any file are checked
        (etl.run.resolving.recover, as `etl reconcile` does); those of other files are noted."""
        verdicts = resolving.recover(self.journal, self.ledger, self.reconciler, self.resource,
                                     tell=self.log.warning).verdicts
        others = [v for v in verdicts if os.path.realpath(v.entry.source or "") not in self.sources]
        for v in others:
            self.log.warning(f"{v.entry.where} (not in this run): {v.reason}"
                             + (f" (Id {v.record_id})" if v.record_id else ""))
        if others:
            tally = Counter(v.outcome.value for v in others)
            self.record.extra["other_files"] = {
                "checked": len(others), "created": tally.get("created", 0),
                "not_created": tally.get("failed", 0), "in_doubt": tally.get("in_doubt", 0)}

    def _plan(self, identities: Identities, index: int, number: int, chunk: RawChunk) -> Plan:
        if self._untouched(index, number, chunk.rows):  # reached stopped: nothing to look up
            texts, valid = self._verdicts(identities, index, number, chunk)
            return self._plan_of(identities, index, chunk, texts, None, [], [], {}, send=False,
                                 plain=np.flatnonzero(valid))
        texts, valid = self._verdicts(identities, index, number, chunk)
        kept = self._kept_keys(index, number, valid, chunk.rows)
        keyed = self._keyed(identities, index, chunk, valid, kept,
                            candidates=self._candidates.pop((index, number), None))
        problems: list[tuple[int, str]] = []
        if keyed is None:
            rows, problems = self._identify(identities, index, chunk, valid)
            known = self._known(identities, rows)
        else:
            rows, known = self._keyed_rows(identities, index, chunk, keyed)
        return self._plan_of(identities, index, chunk, texts, keyed, rows, problems, known)

    def _kept_keys(self, index: int, number: int, valid: np.ndarray, rows: np.ndarray
                   ) -> tuple[np.ndarray, ...] | None:
        """The keys the first pass made of a chunk's valid rows, kept in memory or read back."""
        kept = self._keys.pop((index, number), None)
        cache = self._cache_read(index, number)
        if kept is None and cache is not None:
            kept = cache.next(valid, rows) if cache.found else None
        return kept

    def _cache_read(self, index: int, number: int) -> KeyCache | None:
        """File INDEX's kept keys, read from its chunk NUMBER on: the posting pass reads back,
        from its first chunk, the keys the first pass kept."""
        cache = self._caches.get(index)
        if cache is not None and number == 0:
            cache = self._caches[index] = KeyCache(os.path.dirname(cache.path), os.path.basename(cache.path),
                                                   keeps=False)
        return cache

    def _keys_passed(self, index: int, number: int, rows: np.ndarray) -> bool:
        """The keys the first pass made of a chunk of these ROWS, passed over (the next chunk's
        are read next); False where they were not kept (the chunk is to be keyed)."""
        if self._keys.pop((index, number), None) is not None:
            return True
        cache = self._cache_read(index, number)
        return cache is not None and cache.skip(rows)

    def _untouched(self, index: int, number: int, rows: np.ndarray) -> bool:
        """Whether the posting pass, stopped, can plan a chunk from its verdicts alone: the
        first pass found that the journal knows nothing of its valid rows (no content, no
        payload, no row created from its lines: `_Keyed.plain`), the journal has not changed
        for this file since (no row was sent tonight from another file: its rows may be this
        one's), and the keys of the chunk were passed over (else it is keyed, so the file's
        identical rows are numbered with the rest)."""
        if not self.stopper.is_set() or (index, number) not in self._untouched_chunks:
            return False
        if self._sent_from - {index}:
            return False
        self._untouched_chunks.discard((index, number))
        if not self._keys_passed(index, number, rows):
            return False
        self._candidates.pop((index, number), None)
        return True

    def _pass_over(self, identities: Identities, index: int, number: int, chunk: RawChunk) -> None:
        """A chunk whose lines the first pass wrote: the keys it kept of it, read past. Where
        they were not kept, the chunk is keyed all the same: the file's identical rows are
        numbered in file order, this chunk's with the rest. Where the file has contents more
        than once, its rows of them are identified too: row by row, each takes the next of the
        journal's rows of its content (Identities.of); the first pass, not knowing them yet,
        wrote them as created here. They take theirs now, as if the chunk were read, or a later
        row of their content would take it (and be skipped, never sent)."""
        self._candidates.pop((index, number), None)
        repeated = self._repeated.get(index)
        if (repeated is None or not len(repeated)) and self._keys_passed(index, number, chunk.rows):
            self._checked.discard((index, number))
            return
        _, valid = self._verdicts(identities, index, number, chunk)
        kept = self._kept_keys(index, number, valid, chunk.rows)
        keyed = self._keyed(identities, index, chunk, valid, kept)
        if keyed is not None and keyed.exact.any():  # as _keyed_rows identifies them
            exact = np.zeros(len(chunk), bool)
            exact[keyed.positions[keyed.exact]] = True
            self._identify(identities, index, chunk, exact)

    def _plan_of(self, identities: Identities, index: int, chunk: RawChunk, texts: dict[int, str],
                 keyed: _Keyed | None, rows: list[Row], problems: list[tuple[int, str]],
                 known: dict[str, Entry], send: bool = True, plain: np.ndarray | None = None) -> Plan:
        """A chunk's plan from its verdicts (TEXTS: the invalid rows'), its rows and what the
        journal knows of them. Not SEND: the plan of a chunk the run reaches stopped (nothing
        of it is sent). PLAIN: without KEYED, the positions of the rows the journal knows
        nothing of."""
        here = keyed.here if keyed is not None else None
        if keyed is not None:
            plain = keyed.plain()
        p = Plan(_facts(len(chunk), plain, here, texts, problems), here=here)
        if keyed is not None and send and not self.stopper.is_set():
            p.plain = plain
            p.build = self._plain_rows(identities, index, chunk, keyed, keep=True, plan=p)
        for r in rows:
            if self._decide(p, r, known.get(r.identity)) and send:
                p.to_send.append(r)
        self._same_payload(p, p.to_send)
        if self.account is not None:
            if keyed is None:
                p.to_send = [r for r in p.to_send if self._account_allows(p, r)]
            elif send and not self.stopper.is_set():
                self._check_within_reach(p)
        return p

    def _decide(self, p: Plan, r: Row, entry: Entry | None) -> bool:
        """A row's facts from what the journal knows of it; True: it is to be sent now."""
        what = plan(entry, retry_rejected=self.settings.retry_rejected)
        if what == "send":
            p.facts[r.position] = _NEW if entry is None else Facts(
                to_send=True, entry=entry, attempts_before=entry.attempts)
            return not self.stopper.is_set()
        assert entry is not None
        p.facts[r.position] = self._known_facts(r, entry)
        if what == "doubt":  # this run may yet decide it
            p.open[r.position] = r.identity
            self.doubtful.add(r.identity)
        return False

    def _same_payload(self, p: Plan, rows: list[Row]) -> None:
        """A row to send with the payload of a row created before, but other cells."""
        earlier = self.journal.created_with_payload(r.payload_hash for r in rows)
        for r in rows:
            same = [e for e in earlier.get(r.payload_hash, []) if e.base != r.base]
            if same:
                p.facts[r.position] = dataclasses.replace(p.facts[r.position], twin=same[0])

    def _known_facts(self, r: Row, entry: Entry) -> Facts:
        """The facts of a row the journal decided before: where it was created from and, under
        --key, how its values differ from what was sent then."""
        real = self._real_path(r.source)
        changed: tuple[str, ...] = ()
        if self.settings.key and entry.state == Outcome.CREATED.value \
                and r.payload_hash != entry.payload_hash:
            changed = tuple(changed_cells(entry.payload, r.body))
        if real != (entry.source or ""):
            self.accounted[r.source] += 1  # the journal counts it with the file it came from
        # a journal written before rows were kept by their real path keeps a file named through
        # a link by the link's name: the same name tonight is this file
        other = (entry.source or "") != real and (entry.source or "") != os.path.abspath(r.source)
        return Facts(entry=entry, key=bool(self.settings.key), other_file=other, changed=changed)

    def _chunk(self, pool: ThreadPoolExecutor, workers: int, identities: Identities, index: int,
               number: int, chunk: RawChunk, writer: ReportWriter,
               progress: Callable[[int, Counter[str]], None] | None) -> None:
        """Post the chunk's rows to send and write its report lines, in input order: a batch
        that sent rows, or whose lines may yet change, is a block of its own, made durable when it
        sent rows; the batches between are written together."""
        p = self._plan(identities, index, number, chunk)
        self._keep(p.to_send)
        n = len(chunk)
        to_send = _ToSend(p.to_send, p.plain, p.build)
        positions = to_send.positions
        rows = iter(to_send)
        if p.checked_late:
            rows = self._late_checked(p, rows)
        pending: Done | None = None  # an answer not yet taken: its row is in a later batch
        # rows sent alone, one after the other, until one is created and read back (a first
        # row that meets a fault teaches nothing of SystemId or of the account's zone); never
        # more than --max-errors of them, which are all sent before the first is taken
        probes: list[Done] = []
        most = min(PROBES, self.settings.max_errors)
        while len(to_send) and len(probes) < most and self._needs_probe() and not self.stopper.is_set():
            row = next(rows, None)
            if row is None:
                break
            probes.append(self._probe(row))
        results = itertools.chain(probes, _ordered(pool, self._send, rows, workers, self.stopper))
        lines = _Lines(self, writer, index, chunk, p)
        batch = max(1, self.settings.batch_size)
        start, ended = 0, False
        while start < n:
            lo = int(np.searchsorted(positions, start))
            if ended or lo == len(positions):
                end = n  # nothing more is sent from this chunk
            else:  # the batches before the next row to send, then that row's batch
                end = min(n, start + max(1, (int(positions[lo]) - start) // batch) * batch)
            sent, taken = [], 0
            while not ended:
                if pending is None:
                    pending = next(results, None)
                    if pending is None:  # all sent, or the run stopped: no row after it is
                        ended = True
                        break
                if pending.row.position >= end:
                    break
                done, pending = pending, None
                taken += 1
                if self._take(p, done.row.position, done):
                    sent.append(done.row)
                if progress is not None:
                    progress(1, self.record.counts)
            if sent:
                self._sent_from.add(index)
            self._batch_reconcile(p, sent)
            lines.said(start, end, bool(sent))
            if progress is not None:
                progress(end - start - taken, self.record.counts)
            start = end
        lines.write()

    def _take(self, p: Plan, pos: int, done: Done | None) -> bool:
        """One row's sending into its facts, and into the count of errors in a row; whether a
        request for it may have left (the journal has its fate)."""
        if done is None:
            return False  # the run stopped before it: not attempted
        r = done.row
        if done.state == "new":  # stopped before a request left: the stop says why
            p.facts[pos] = dataclasses.replace(p.facts[pos], why=done.result.errors)
            return False
        p.facts[pos] = dataclasses.replace(p.facts[pos], sent=True)
        p.open[pos] = r.identity
        outcome = STATE_OUTCOME[done.state]
        if outcome is Outcome.IN_DOUBT:
            self.doubtful.add(r.identity)
        if outcome.value in NEEDS_ACTION:
            self.streak.append(r.identity)
            if len(self.streak) >= self.settings.max_errors:
                self._errors_in_a_row()
        elif outcome is Outcome.CREATED:
            self.streak.clear()
        return True


def _read_again(chunks: Iterator[tuple[int, RawChunk]], kept: int, inputs: Inputs
                ) -> Iterator[tuple[int, RawChunk | None]]:
    """The posting pass's chunks: the first KEPT as the first pass read them, the others read
    again, each checked to read as the file did when it was opened (Inputs.as_read); where one
    does not (or can no longer be read), (its file, None), and no more."""
    ordinal = 0
    while True:
        try:
            index, chunk = next(chunks)
        except StopIteration:
            return
        except FileProblem as exc:  # written again while read: the file it names
            yield next((i for i, t in enumerate(inputs.tables) if t.path == exc.path), 0), None
            return
        ordinal += 1
        if ordinal > kept and not inputs.as_read(index):
            yield index, None
            return
        yield index, chunk


def _facts(n: int, plain: np.ndarray | None, here: Here | None, texts: dict[int, str],
           problems: list[tuple[int, str]]) -> RowFacts:
    """The facts of a chunk's N rows known before the journal is asked of any: the rows it
    knows nothing of (PLAIN) to send, those created from their very line (HERE), the invalid
    ones (TEXTS) and those with a problem of their own; the rest undecided."""
    facts = np.full(n, _UNDECIDED, dtype=object)
    kinds = np.zeros(n, np.int64)  # which rows share their facts (RowFacts)
    if plain is not None:
        facts[plain] = _NEW
        kinds[plain] = 1
    if here is not None:
        facts[here.positions] = CREATED_HERE
        kinds[here.positions] = 2
    for q, text in texts.items():
        facts[q] = Facts(problem=text)
    for pos, problem in problems:
        facts[pos] = Facts(problem=problem)
    own = np.fromiter(itertools.chain(texts, (pos for pos, _ in problems)), np.int64)
    kinds[own] = -1 - own
    return RowFacts(facts.tolist(), kinds)


#: rows of a chunk sent alone, at most, to learn from the first one created (etl.run.sending)
PROBES = 5
#: a valid row's facts until `_plan` knows them (every valid row is identified, or has a problem)
_UNDECIDED = Facts()
#: the facts of a row the journal does not know, to send (one object: most rows of a night)
_NEW = Facts(to_send=True)


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
    for named in {os.path.abspath(p) for p in record.files} - {os.path.realpath(p) for p in record.files}:
        # a file named through a link is kept by its real path: the link's name is kept too, as
        # the report names the row (`etl resolve latest.csv:ROW`, Lookups.at)
        journal.set_meta(f"{LINK}{named}\t{os.path.realpath(named)}", record.started_at)
    # Arrow's buffers in jemalloc (etl.heap.arrow_pool): a chunk reuses the memory the one before
    # freed; Arrow's default (mimalloc) keeps ~20% more
    previous = arrow.default_memory_pool()
    arrow.set_memory_pool(arrow_pool())
    try:
        return _import(inputs, record, journal, poster, importer, progress)
    except BaseException as exc:
        importer._written_drop()  # the journal says how the run ended, where it can be written
        code = _exit_code(exc)
        if code is not None:
            with contextlib.suppress(Exception):
                journal.finish_run(code, {k: v for k, v in record.counts.items() if v})
        raise
    finally:
        arrow.set_memory_pool(previous)


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
    for table in inputs.tables:  # read by this run: `etl status` waits for what it reports
        journal.note_reading(os.path.realpath(table.path))
    poster.client.login()
    importer.recover()  # rows an earlier run left in doubt are settled first: the check sees them
    importer.check()
    importer.guard_new_journal()
    for path, rows in record.extra.get("rows_read", {}).items():
        journal.note_source(os.path.realpath(path), rows, importer.valid_rows.get(path, 0), "")
    total = sum(record.extra.get("rows_read", {}).values())
    importer.check_account()
    # errors.csv is cut as the report is written, and made again with it at the end
    writer = ReportWriter(record.report, inputs.own_columns, errors=record.errors_path,
                          errors_dialect=inputs.errors_dialect(), reasons=inputs.reasons)
    try:
        status = importer.run(writer, progress(total) if progress else None)
    finally:
        writer.close()
    start = 0  # each file's lines, in the order read: what `etl status` tells of it
    for path, rows in record.extra.get("rows_read", {}).items():
        valid = importer.valid_rows.get(path, 0) - importer.accounted.get(path, 0)
        lines = importer.night.counts(start, start + rows)
        # else the report ends before the file does, or the file changed while it was read
        whole = sum(lines.values()) == rows and not importer.cut_short
        journal.note_source(os.path.realpath(path), rows, max(0, valid), "", lines=lines if whole else None,
                            unsettled=importer.night.unsettled(start, start + rows) if whole else None)
        start += rows
    journal.finish_run(int(status), {k: v for k, v in record.counts.items() if v})
    record.extra["journal"] = journal.path
    record.finish(status)
    logs.get().info("imported", counts=dict(record.counts), report=record.report,
                    stopped=record.stopped, journal=journal.path)
    return status
