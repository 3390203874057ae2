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
import datetime as dt
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as arrow

from etl import logs
from etl.errors import EtlError, RunAborted, UsageProblem, no_room
from etl.ledger.entries import (
    LEGACY_SCHEME,
    Entry,
    JournalProblem,
    canonical_json,
    clock,
    payload_hash,
    state_home,
)
from etl.ledger.fencing import Fences
from etl.ledger.identity import (
    VALUES,
    Identities,
    cell_digest,
    describe_scheme,
    digest,
    id_like_columns,
    identity_text,
)
from etl.ledger.journal import Journal
from etl.ledger.life import (
    ABSENT_REASON,
    Event,
    Ledger,
    RecordTaken,
    Sending,
    plan,
)
from etl.ledger.rowkeys import (
    KeyCache,
    among,
    column_keys,
    content_key_of,
    content_keys,
    hex_pairs,
    key_hex,
    payload_key_of,
    payload_keys,
    stored_payload_keys,
)
from etl.ledger.storage import Match, Storage
from etl.outcomes import NEEDS_ACTION, STATE_OUTCOME, ExitStatus, Facts, Outcome, Said, exit_status
from etl.post.answers import DailyLimitReached, Kind, ReadFailed
from etl.post.poster import Poster, Result
from etl.post.reconciling import Reconciler
from etl.post.verdicts import created_range, differences, parse_body, settle_time
from etl.read.reading import RawChunk
from etl.report.reporting import ReportWriter
from etl.run import resolving
from etl.run.checks import AccountChecks, for_client, posts_left
from etl.run.import_rows import (
    _ORDER,
    _TAG,
    Done,
    Plan,
    Row,
    Settings,
    Stopper,
    _FileKeys,
    _Fresh,
    _identified_otherwise,
    _Keyed,
    _ordered,
    _Sample,
    _ToSend,
    changed_cells,
    system_id_of,
    tagged,
)
from etl.run.night import Night
from etl.run.pipeline import Inputs, RunRecord
from etl.validate.resources import header_key
from etl.validate.validating import Validator

#: how many times, at the end of a run, rows proved not created are sent again
FINAL_ROUNDS = 3
#: records read back in one run to learn how the target stores fields (reads count against the
#: API's 120-a-minute limit of all methods)
LEARN_READS = 10


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
        #: the first pass's verdicts, by (file, chunk): the invalid rows' texts, a bit a row
        self._checked: dict[tuple[int, int], tuple[dict[int, str], np.ndarray, int]] = {}
        #: the first pass's keys, by (file, chunk), where no KeyCache keeps them
        self._keys: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        #: the first pass's rows whose payload the journal may have created, by (file, chunk)
        self._candidates: dict[tuple[int, int], np.ndarray] = {}
        self._caches: dict[int, KeyCache] = {}
        self._repeated: dict[int, np.ndarray] = {}  # per file, the contents it has more than once
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

    def _identify(self, identities: Identities, index: int, chunk: RawChunk, valid: np.ndarray,
                  assigned: dict[int, tuple[int, str | None]] | None = None
                  ) -> tuple[list[Row], list[tuple[int, str]]]:
        """The rows of CHUNK that VALID marks, their identities given by the rules row by row
        (identities.of, the journal's rows of each content looked up at once), or where
        ASSIGNED gives a position's occurrence (found a chunk at a time: `_keyed`): the first
        of its content, or the file's next."""
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
        take = arrow.array(positions, type=arrow.int64())
        cells = [chunk.columns[i].take(take).to_pylist() for i in kept_at]
        spelt_at = [kept_at.index(i) for i in at]  # the identity's columns among them
        made, texts = [], []
        for k, payload in enumerate(payloads):
            # a sent cell is its value as sent; any other cell its text, normalised
            digests, spelt_out = {}, {}
            for name, f, column in zip(kept_names, sent, cells, strict=True):
                text = identity_text(payload.get(f) if f else column[k])
                if text:
                    digests[name], spelt_out[name] = cell_digest(text), text
            made.append(digests)
            texts.append(spelt_out)
        known = identities.known
        if assigned is None and known is not None and made and scheme.startswith("cells:"):
            # the journal's rows of these contents, in one look-up instead of one a content
            found = self.journal.of_bases({identities.base_of(scheme, d) for d in made})
            identities.known = lambda base: found.pop(base, None) or []
        rows, problems = [], []
        try:
            for k, (pos, payload, digests) in enumerate(zip(positions, payloads, made, strict=True)):
                number = int(chunk.rows[pos])
                spelt = [cells[j][k] or "" for j in spelt_at]
                where = f"{table.path} row {number}"
                if assigned is not None:
                    occurrence, given = assigned[pos]
                    base = identities.base_of(scheme, digests)
                    identity, problem = given or digest(f"{base}\n{occurrence}"), None
                else:
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
                                frozenset(n for n in names if n in digests), digests,
                                {n: texts[k][n] for n in names if n in texts[k]}))
        finally:
            identities.known = known
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

    # --- identities a chunk at a time (etl.ledger.rowkeys) ----------------------------------------------

    def _file_keys(self, index: int) -> _FileKeys:
        """What this pass keys file INDEX's rows against, read from the journal at its start."""
        state = self._files.get(index)
        if state is None:
            contents: list[str] = []
            lacking: list[int] = []
            maybe: list[int] = []
            for row_state, content, payload in self.journal.key_facts(stored_payload_keys):
                keys = [int(k, 16) for k in (payload or "").split(",") if k]
                if content:
                    contents.append(content)
                else:
                    lacking += keys
                if row_state in ("created", "in_doubt", "pending"):
                    maybe += keys
            state = self._files[index] = _FileKeys(
                np.unique(hex_pairs(contents)[0]), np.unique(np.array(lacking, np.uint64)),
                np.unique(np.array(maybe, np.uint64)), self._repeated.get(index, np.zeros(0, np.uint64)))
        return state

    def _keyed(self, identities: Identities, index: int, chunk: RawChunk, valid: np.ndarray,
               kept: tuple[np.ndarray, ...] | None = None, candidates: np.ndarray | None = None
               ) -> _Keyed | None:
        """CHUNK's valid rows keyed from its columns, or by KEPT (their keys, from a night before
        or the first pass), CANDIDATES: the first pass's rows with a payload the journal may have
        created. None where only the rules row by row apply (a --key, a journal of an earlier
        release, the account checks, which see every row's payload)."""
        if self.legacy or identities.previous is not None or self.account is not None:
            return None
        table, columns = self.inputs.tables[index], self.inputs.columns[index]
        identities.start(table.path, table.header)
        _, scheme = identities.columns(table.path, table.header,
                                       {header_key(f.name) for f in self.resource.fields})
        if not scheme.startswith("cells:"):
            return None
        state = self._file_keys(index)
        positions = np.flatnonzero(valid)
        n = len(positions)
        if kept is None or len(kept[0]) != n:
            take = arrow.array(positions, type=arrow.int64())
            field_at = {p: name for name, p in columns.positions.items()}
            kept_at, kept_names = identities.kept(table.header)
            by_name, sent = {}, {}
            for at, name in zip(kept_at, kept_names, strict=True):
                f = field_at.get(at)
                cells = (self.validator.cells(chunk, at) if f else chunk.columns[at]).take(take)
                h1, h2, present = column_keys(cells, self.resource.field(f).kind if f else None,
                                              self.validator.decimal)
                by_name[name] = (h1, h2, present)
                if f:
                    sent[f] = (h1, present)
            k1, k2 = content_keys(self.resource.name, identities.names[scheme], by_name, n)
            kept = (k1, k2, payload_keys(sent, n))
        if len(kept) < 4:  # which of the file's identical rows each is, when not kept
            kept = (*kept[:3], state.seen.occurrences(kept[0], kept[1]).astype(np.uint64))
        k1, k2, payloads = kept[:3]
        occurrence = kept[3].astype(np.int64)
        exact = among(payloads, state.lacking) | (among(k1, state.contents) & among(k1, state.repeated))
        known = among(k1, state.contents) & ~exact
        again = ~exact & (occurrence > 1)
        if again.any():
            state.again.append(k1[again])
        if candidates is not None:
            candidate = np.isin(positions, candidates) & ~exact & ~known
        else:
            candidate = ~exact & ~known & among(payloads, state.maybe)
        return _Keyed(positions, k1, k2, payloads, exact, known, candidate, occurrence, kept[3])

    def _keyed_rows(self, identities: Identities, index: int, chunk: RawChunk, keyed: _Keyed
                    ) -> tuple[list[Row], dict[str, Entry]]:
        """The rows of a keyed chunk that need more than their content, in file order, with what
        the journal knows of them: those of contents the journal has (found by their content
        key: the journal's rows of it in the order identical rows take them; rows that are sent
        are made whole), those it knows the payload of only (identified row by row, and their
        content key kept for the next night), and those whose payload it may have created
        (checked as every row is)."""
        table = self.inputs.tables[index]
        rows: list[Row] = []
        known: dict[str, Entry] = {}
        whole: dict[int, tuple[int, str | None]] = {}  # known contents' rows to make whole
        if keyed.known.any():
            which = np.flatnonzero(keyed.known)
            found = self.journal.by_content(key_hex(keyed.k1, keyed.k2, k) for k in which.tolist())
            rank = dict(_ORDER, rejected=1 if identities.needing_action else 3)
            for k in which.tolist():
                pos, occurrence = int(keyed.positions[k]), int(keyed.occurrence[k])
                theirs = sorted(found.get(key_hex(keyed.k1, keyed.k2, k), []),
                                key=lambda e: (rank.get(e.state, 2), e.occurrence or 0))
                if not theirs:  # another content with the same first lane: a new one after all
                    whole[pos] = (occurrence, None)
                elif occurrence <= len(theirs):
                    e = theirs[occurrence - 1]
                    if plan(e, retry_rejected=self.settings.retry_rejected) == "send":
                        whole[pos] = (e.occurrence or 0, e.identity)
                    else:
                        rows.append(Row(pos, e.identity, e.scheme, {}, e.payload_hash, table.path,
                                        int(chunk.rows[pos]), base=e.base, occurrence=e.occurrence))
                        known[e.identity] = e
                else:  # more of it than the journal has: the next occurrences
                    last = max(e.occurrence or 0 for e in theirs)
                    whole[pos] = (last + occurrence - len(theirs), None)
        if keyed.exact.any():
            exact = np.zeros(len(chunk), bool)
            exact[keyed.positions[keyed.exact]] = True
            made = self._identify(identities, index, chunk, exact)[0]
            rows += made
        if keyed.candidate.any():
            whole.update(keyed.assigned(keyed.candidate))
        if whole:
            mask = np.zeros(len(chunk), bool)
            mask[list(whole)] = True
            rows += self._identify(identities, index, chunk, mask, whole)[0]
        rows.sort(key=lambda r: r.position)
        fresh = [r for r in rows if r.identity not in known]
        known.update(self._known(identities, fresh))
        if keyed.exact.any():  # the journal's rows found row by row: their content keys, kept
            found_keys = {r.identity: self._keys_of(r) for r in rows
                          if r.identity in known and r.texts and r.scheme.startswith("cells:")}
            self.journal.keep_keys(found_keys)
        return rows, known

    def _keys_of(self, row: Row) -> tuple[str, str]:
        """A row's content and payload keys, as the journal keeps them."""
        if row.keys is None:
            names = sorted(row.texts) if row.scheme.startswith("cells:") else []
            plain = {k: v for k, v in row.body.items() if k != "SystemId"}
            if self.settings.tag_description and isinstance(plain.get("Description"), str):
                plain["Description"] = _TAG.sub("", str(plain["Description"]))
                if not plain["Description"]:
                    del plain["Description"]
            row.keys = (content_key_of(self.resource.name, names, row.texts),
                        f"{payload_key_of(plain):016x}")
        return row.keys

    def _plain_rows(self, identities: Identities, index: int, chunk: RawChunk, keyed: _Keyed,
                    keep: bool = False, plan: Plan | None = None) -> Callable[[list[int]], list[Row]]:
        """What makes the rows of a keyed chunk the journal knows nothing of, when they are
        needed (to send, to sample); KEEP: their cells and keys go into the journal first (to
        send)."""
        def build(positions: list[int]) -> list[Row]:
            if not positions:
                return []
            mask = np.zeros(len(chunk), bool)
            mask[positions] = True
            picked = np.zeros(len(keyed.positions), bool)
            at = np.searchsorted(keyed.positions, positions)
            picked[at] = True
            rows = self._identify(identities, index, chunk, mask, keyed.assigned(picked))[0]
            for r, k in zip(rows, at.tolist(), strict=True):
                r.keys = keyed.hex(k)
            if plan is not None:
                # the journal has the last word: a row it knows (its keys not kept, or a run of
                # another machine meanwhile) is decided by what it knows, never sent blindly
                known = self.journal.lookup(r.identity for r in rows)
                rows = [r for r in rows
                        if r.identity not in known or self._decide(plan, r, known[r.identity])]
            if keep:
                self._keep(rows)
            if plan is not None:
                self._same_payload(plan, rows)
            return rows

        return build

    def _keep(self, rows: list[Row]) -> None:
        """Before rows are sent: their cells' digests and their keys, into the journal."""
        self.journal.keep_cells({r.identity: r.cells for r in rows})
        self.journal.keep_keys({r.identity: self._keys_of(r) for r in rows if r.scheme.startswith("cells:")})

    def _key_cache(self, index: int) -> KeyCache | None:
        """The keys kept of this file's rows from a night before (or a new place to keep them)."""
        table, columns = self.inputs.tables[index], self.inputs.columns[index]
        contents = self.inputs.digests.get(table.path)
        if contents is None or self.legacy or self.account is not None:
            return None
        token = KeyCache.token(
            contents, table.header, sorted(columns.positions.items()), self.resource.name,
            [(f.name, f.kind.value) for f in self.resource.fields], self.validator.decimal,
            list(self.settings.key), sorted(header_key(c) for c in self.settings.ignore),
            os.path.realpath(table.path) if self.inputs.errors_files[index] else "")
        cache = self._caches[index] = KeyCache(os.path.join(state_home(), "keys"), token)
        return cache

    def _verdicts(self, index: int, number: int, chunk: RawChunk) -> tuple[dict[int, str], np.ndarray]:
        """The schema's verdicts on a chunk: the first pass's, kept small (the few invalid rows'
        texts, a bit a row), or made now."""
        kept = self._checked.pop((index, number), None)
        if kept is not None and kept[2] == len(chunk):
            texts, bits, n = kept
            return texts, np.unpackbits(bits, count=n).astype(bool)
        return self.validator.verdicts(chunk, self.inputs.columns[index])

    # --- the first pass: nothing is sent before every row was read -------------------------------

    def check(self) -> None:
        """Read every file once: file problems, a changed identity, a repeated --key stop the run
        here (exit 2), before anything is sent."""
        try:
            self._check()
        finally:
            for cache in self._caches.values():
                cache.abandon()  # kept only when every chunk of its file was read

    def _check(self) -> None:
        identities = self._identities()
        self.evidence = {} if not self.settings.allow_new_identity else None
        changed: list[tuple[_Fresh, Entry]] = []
        # rows the journal does not know, kept small (a bulk migration's file has millions)
        fresh: list[tuple[int, _Fresh]] = []
        self._files = {}
        numbers: Counter[int] = Counter()
        for index, chunk in self.inputs.chunks():
            table = self.inputs.tables[index]
            texts, valid = self.validator.verdicts(chunk, self.inputs.columns[index])
            # kept for the posting pass, which would otherwise check every row again
            self._checked[(index, numbers[index])] = (texts, np.packbits(valid), len(chunk))
            numbers[index] += 1
            cache = self._key_cache(index) if numbers[index] == 1 else self._caches.get(index)
            kept = cache.next(valid) if cache is not None and cache.found else None
            keyed = self._keyed(identities, index, chunk, valid, kept)
            if keyed is not None:  # the posting pass keys the rows by these again
                self._candidates[(index, numbers[index] - 1)] = keyed.positions[keyed.candidate]
                kept_keys = (keyed.k1, keyed.k2, keyed.payloads, keyed.occurrences)
                if cache is None:
                    self._keys[(index, numbers[index] - 1)] = kept_keys
                elif not cache.found:
                    cache.add(valid, *kept_keys)
            if keyed is None:
                rows, problems = self._identify(identities, index, chunk, valid)
                known, identified = self._known(identities, rows), len(rows)
            else:
                rows, known = self._keyed_rows(identities, index, chunk, keyed)
                identified = len(keyed.positions)
            sending = [r for r in rows
                       if plan(known.get(r.identity), retry_rejected=self.settings.retry_rejected) == "send"]
            if self.account is not None:  # the rows this run may send, for the account checks
                self.account.collect(r.body for r in sending)
            if keyed is None:
                self.samples.setdefault(index, _Sample()).extend(sending)
            else:
                to_send = _ToSend(sending, keyed.plain(), self._plain_rows(identities, index, chunk, keyed))
                self.samples.setdefault(index, _Sample()).take(to_send.positions, to_send.rows_at)
            if known:  # this journal has been importing this file: the file is its own
                self.known_files.add(index)
            fresh.extend((index, _Fresh(r.payload_hash, r.scheme, r.source, r.number, r.filled))
                         for r in rows if r.identity not in known)
            self._look_for_an_id_column(index, chunk)
            count = self.record.extra.setdefault("rows_read", {})
            count[table.path] = count.get(table.path, 0) + len(chunk)
            good = self.valid_rows
            good[table.path] = good.get(table.path, 0) + identified
        for cache in self._caches.values():
            cache.finish()
        for index, state in self._files.items():  # contents the file has more than once
            self._repeated[index] = np.unique(np.concatenate(state.again)) if state.again else \
                np.zeros(0, np.uint64)
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
        looked up, once each (see etl.run.checks)."""
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
        self._files = {}
        numbers: Counter[int] = Counter()
        with ThreadPoolExecutor(workers, thread_name_prefix="post") as pool:
            for index, chunk in self.inputs.chunks():
                self._chunk(pool, workers, identities, index, numbers[index], chunk, writer, progress)
                numbers[index] += 1
        writer.flush()  # every line written is on disk before the run waits for rows to settle
        self._final_pass()
        self._report_whole(writer)
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
        texts, valid = self._verdicts(index, number, chunk)
        p = Plan([Facts(problem=texts[q]) if q in texts else _UNDECIDED for q in range(len(chunk))])
        kept = self._keys.pop((index, number), None)
        cache = self._caches.get(index)
        if kept is None and cache is not None:
            if number == 0:  # the keys the first pass kept, read back
                cache = self._caches[index] = KeyCache(os.path.dirname(cache.path),
                                                       os.path.basename(cache.path))
            kept = cache.next(valid) if cache.found else None
        keyed = self._keyed(identities, index, chunk, valid, kept,
                            candidates=self._candidates.pop((index, number), None))
        if keyed is None:
            rows, problems = self._identify(identities, index, chunk, valid)
            for pos, problem in problems:
                p.facts[pos] = Facts(problem=problem)
            known = self._known(identities, rows)
        else:
            rows, known = self._keyed_rows(identities, index, chunk, keyed)
            plain = keyed.plain()
            for q in plain.tolist():
                p.facts[q] = _NEW
            if not self.stopper.is_set():
                p.plain = plain
                p.build = self._plain_rows(identities, index, chunk, keyed, keep=True, plan=p)
        for r in rows:
            if self._decide(p, r, known.get(r.identity)):
                p.to_send.append(r)
        self._same_payload(p, p.to_send)
        if self.account is not None:
            p.to_send = [r for r in p.to_send if self._account_allows(p, r)]
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
        real = self._real.get(r.source)
        if real is None:
            real = self._real[r.source] = os.path.realpath(r.source)
        changed: tuple[str, ...] = ()
        if self.settings.key and entry.state == Outcome.CREATED.value \
                and r.payload_hash != entry.payload_hash:
            changed = tuple(changed_cells(entry.payload, r.body))
        if real != (entry.source or ""):
            self.accounted[r.source] += 1  # the journal counts it with the file it came from
        return Facts(entry=entry, key=bool(self.settings.key), other_file=real != (entry.source or ""),
                     changed=changed)

    def _account_allows(self, p: Plan, r: Row) -> bool:
        """The account checks' verdict, in input order: a row they refuse is never sent (nor
        entered in the journal); their notes go on the row."""
        assert self.account is not None
        verdict = self.account.verdict(r.body, f"{r.source} row {r.number}")
        if verdict.problem:
            p.facts[r.position] = Facts(refused=verdict.problem)
            self.accounted[r.source] += 1  # invalid: never to post
            return False
        if verdict.notes:
            p.facts[r.position] = dataclasses.replace(p.facts[r.position], notes=tuple(verdict.notes))
        return True

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
        pending: Done | None = None  # an answer not yet taken: its row is in a later batch
        if len(to_send) and self._needs_probe():
            row = next(rows, None)
            if row is not None:
                pending = self._probe(row)
        results = _ordered(pool, self._send, rows, workers, self.stopper)
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

    def _errors_in_a_row(self) -> None:
        """--max-errors reached: reconciliation has its say on the rows in doubt first; a row of
        the streak found created ends it (the journal says; the report says what it says)."""
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

    def _batch_reconcile(self, p: Plan, sent: list[Row]) -> None:
        """Rows of this batch that went in doubt are looked up at once: a record found is theirs.
        Then every row sent takes its journal entry as it stands into its facts."""
        if not sent:
            return
        entries = self.journal.lookup(r.identity for r in sent)
        doubt = [e for e in entries.values() if e.state == Outcome.IN_DOUBT.value]
        if doubt:
            for v in self.reconciler.reconcile(doubt):
                if v.outcome is Outcome.CREATED and v.identity in self.streak:
                    self.streak = self.streak[self.streak.index(v.identity) + 1:]
            entries = self.journal.lookup(r.identity for r in sent)
        for r in sent:
            p.facts[r.position] = dataclasses.replace(p.facts[r.position], entry=entries.get(r.identity))

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
        self.night.sent_again(entry.identity, (entry.source or "", entry.row or 0), entry.attempts)
        self._send(row, reason="sent again: checked, it had not been created")

    def _report_whole(self, writer: ReportWriter) -> None:
        """The end: the lines whose rows this run sent or found in doubt are decided again from
        the journal as it now stands, and the report and errors.csv are made again whole with
        them; the counts and notes are the report's."""
        changed = self.night.decide_again(self.journal.lookup(self.night.open))
        self.record.attention = writer.finish({i: _cells(s) for i, s in changed.items()})
        self.record.counts = self.night.counts()
        for what, n in (self.notes + self.night.notes()).items():
            self.record.extra.setdefault("notes", {})[what] = n


#: a valid row's facts until `_plan` knows them (every valid row is identified, or has a problem)
_UNDECIDED = Facts()
#: the facts of a row the journal does not know, to send (one object: most rows of a night)
_NEW = Facts(to_send=True)


def _cells(said: Said) -> tuple[str, int | None, int | None, int | None, str]:
    return said.outcome.value, said.record_id, said.http_status, said.attempts, said.errors


class _Lines:
    """A chunk's report lines, said batch by batch (so the counts follow the run) and written in
    blocks: a batch that sent rows, or whose lines may yet change, alone (made durable when it
    sent rows: their fate is in the journal), and the batches between such batches together."""

    def __init__(self, importer: Importer, writer: ReportWriter, index: int, chunk: RawChunk,
                 p: Plan) -> None:
        self.night, self.counts = importer.night, importer.record.counts
        self.writer, self.chunk, self.p = writer, chunk, p
        self.path = importer.inputs.tables[index].path
        self.where = os.path.abspath(self.path)
        self.own = importer.inputs.own_cells(index, chunk)
        self.pending: list[tuple[int, int, list[tuple[Said, int]]]] = []  # said, not yet written

    def said(self, start: int, end: int, sent: bool) -> None:
        """Lines START to END (a batch) have their facts: said and counted now."""
        p = self.p
        open_ = {q - start: identity for q, identity in p.open.items() if start <= q < end}
        said = self.night.write(self.where, self.chunk.rows[start:end], p.facts[start:end], open_)
        for s, m in said:
            self.counts[s.outcome.value] += m
        self.pending.append((start, end, said))
        if sent or open_:
            self.pending.pop()
            self.write()
            self._write(start, end, said)
            self.writer.flush(sync=sent)

    def write(self) -> None:
        """The batches said and not yet written, as one block."""
        if self.pending:
            start, end = self.pending[0][0], self.pending[-1][1]
            said = [s for _, _, part in self.pending for s in part]
            self.pending = []
            self._write(start, end, said)

    def _write(self, start: int, end: int, said: list[tuple[Said, int]]) -> None:
        """The lines START to END, said as runs: each column made by repeating the runs' cells."""
        which = arrow.array(np.repeat(np.arange(len(said)), [m for _, m in said]), type=arrow.int64())

        def column(values: list[Any], type_: arrow.DataType) -> arrow.Array:
            return arrow.array(values, type=type_).take(which)

        words = [s for s, _ in said]
        self.writer.write(
            self.path, self.chunk.rows[start:end], column([s.outcome.value for s in words], arrow.string()),
            column([s.errors for s in words], arrow.string()),
            [None if c is None else c[start:end] for c in self.own],
            ids=column([s.record_id for s in words], arrow.int64()),
            statuses=column([s.http_status for s in words], arrow.int64()),
            attempts=column([s.attempts for s in words], arrow.int64()))


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
    # errors.csv is cut as the report is written, and made again with it at the end
    writer = ReportWriter(record.report, inputs.own_columns, errors=record.errors_path,
                          errors_dialect=inputs.errors_dialect())
    try:
        status = importer.run(writer, progress(total) if progress else None)
    finally:
        writer.close()
    for path, rows in record.extra.get("rows_read", {}).items():  # what `etl status` counts as left
        valid = importer.valid_rows.get(path, 0) - importer.accounted.get(path, 0)
        journal.note_source(os.path.realpath(path), rows, max(0, valid), "")
    journal.finish_run(int(status), {k: v for k, v in record.counts.items() if v})
    record.extra["journal"] = journal.path
    record.finish(status)
    logs.get().info("imported", counts=dict(record.counts), report=record.report,
                    stopped=record.stopped, journal=journal.path)
    return status
