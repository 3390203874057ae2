"""The import's rows identified a chunk at a time (etl.ledger.rowkeys): their keys made from the
columns, kept from a night to the next, and the rows that need more than their content made."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.ledger.entries import Entry, state_home
from etl.ledger.identity import Identities, copy_rank
from etl.ledger.life import plan
from etl.ledger.rowkeys import (
    KeyCache,
    SeenKeys,
    among,
    column_keys,
    content_key_of,
    content_keys,
    content_part,
    hex_keys,
    hex_keys_of,
    hex_pairs,
    payload_key_of,
    payload_part,
    stored_payload_keys,
)
from etl.read.reading import RawChunk
from etl.run.created_ahead import CreatedAhead
from etl.run.import_base import ImporterBase
from etl.run.import_rows import _TAG, Here, Plan, Row, _FileKeys, _Keyed
from etl.run.night import created_here
from etl.validate.resources import header_key

_POOL: list[ThreadPoolExecutor] = []
_Lanes = tuple[np.ndarray, np.ndarray, np.ndarray]  # a column's cells hashed: two lanes, and present


def _pool() -> ThreadPoolExecutor:
    """The threads that key a chunk's columns, one a core (made once, for the process)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max(1, min(2, os.cpu_count() or 1)), thread_name_prefix="keys"))
    return _POOL[0]


class KeyedRows(ImporterBase):
    """Rows identified a chunk at a time, from their columns' keys."""

    # --- identities a chunk at a time (etl.ledger.rowkeys) ----------------------------------------------

    def _file_keys(self, index: int) -> _FileKeys:
        """What this pass keys file INDEX's rows against, read from the journal at its start."""
        state = self._files.get(index)
        if state is None:
            self._files_done(keep=index)  # the files are read one after another: those before are done
            self._start_ahead(index)
            seen = SeenKeys(os.path.join(state_home(), "keys"))  # its temporary files where keys are kept
            read = self._read_keys.get(index)
            if read is not None and read.writes == self.journal.writes:
                # the first pass's read of the journal, which has not been written to since (a
                # migration's journal keeps millions of keys: read once a night, not twice)
                state = dataclasses.replace(read, repeated=self._repeated.get(index, read.repeated),
                                            seen=seen, again=[])
            else:
                (contents, lacking, every, settled), writes = self._journal_keys()
                # the first pass alone writes nothing meanwhile (no row is sent): its read is the
                # journal as it stands until the journal's next write
                writes = writes if self._first else -1
                lanes, counts = np.unique(hex_pairs([contents])[0], return_counts=True)
                del contents
                kept, times = np.unique(hex_keys_of([every]), return_counts=True)
                done, done_times = np.unique(hex_keys_of([settled]), return_counts=True)
                times[np.searchsorted(kept, done)] -= done_times  # a key kept of every row not settled
                state = _FileKeys(lanes, lanes[counts == 1], np.unique(hex_keys_of([lacking])),
                                  kept[times > 0], self._repeated.get(index, np.zeros(0, np.uint64)),
                                  seen, writes=writes)
            self._files[index] = self._read_keys[index] = state
        return state

    def _read_keys_soon(self, identities: Identities) -> None:
        """The first pass: the journal's keys (`_file_keys`), read by a thread of their own while
        the first chunk is read and checked, where its rows will be keyed by their columns."""
        if self._first and not self.settings.key and not self.legacy and identities.previous is None:
            self.journal.fill_payload_keys(stored_payload_keys)  # the one write, here
            journal = self.journal

            def read() -> tuple[tuple[str, str, str, str], int]:
                before = journal.writes
                keys = journal.key_columns(None)
                return keys, (journal.writes if journal.writes == before else -1)

            self._keys_soon = _pool().submit(read)

    def _journal_keys(self) -> tuple[tuple[str, str, str, str], int]:
        """`Lookups.key_columns`, and the journal's writes when they were read: as read soon
        (`_read_keys_soon`) where the journal was not written to from before that read began
        until now."""
        soon, self._keys_soon = self._keys_soon, None
        if soon is not None:
            read, writes = soon.result()
            if writes >= 0 and writes == self.journal.writes:
                return read, writes
        read = self.journal.key_columns(stored_payload_keys)
        return read, self.journal.writes

    def _start_ahead(self, index: int) -> None:
        """The first pass: the rows the journal created from file INDEX's lines, read ahead by a
        thread of their own (etl.run.created_ahead), where `_find_created_here` will ask for them."""
        if not self._first or self.settings.key or self.legacy or index in self._ahead \
                or index >= len(self.inputs.tables):
            return
        source = os.path.realpath(self.inputs.tables[index].path)
        span = self.journal.created_span(source)
        if span is not None:
            self._ahead[index] = CreatedAhead(
                lambda first, last: self.journal.created_at_lines(source, first, last), *span, source=source)

    def _keyed(self, identities: Identities, index: int, chunk: RawChunk, valid: np.ndarray,
               kept: tuple[np.ndarray, ...] | None = None, candidates: np.ndarray | None = None
               ) -> _Keyed | None:
        """CHUNK's valid rows keyed from its columns, or by KEPT (their keys, from a night before
        or the first pass), CANDIDATES: the first pass's rows with a payload the journal may have
        created. None where only the rules row by row apply (a --key, a journal of an earlier
        release, the account checks, which see every row's payload)."""
        if self.legacy or identities.previous is not None:
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
            by_name: dict[str, _Lanes] = {}
            parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            payloads = np.zeros(n, np.uint64)
            fields = [field_at.get(at) for at in kept_at]

            def keys(at: int, f: str | None, name: str) -> tuple[_Lanes, tuple[np.ndarray, np.ndarray],
                                                                np.ndarray | None]:
                cells = (self.validator.cells(chunk, at) if f else chunk.columns[at]).take(take)
                made = column_keys(cells, self.resource.field(f).kind if f else None, self.validator.decimal)
                return (made, content_part(name, made[0], made[1]),
                        payload_part(f, made[0], made[2]) if f else None)

            # a column at a time on every core: Arrow's kernels and NumPy let go of the GIL
            for name, (made, part, sent) in zip(kept_names, _pool().map(keys, kept_at, fields, kept_names),
                                                strict=True):
                by_name[name], parts[name] = made, part
                if sent is not None:
                    payloads ^= sent
            k1, k2 = content_keys(self.resource.name, identities.names[scheme], by_name, n, parts)
            kept = (k1, k2, payloads)
        if len(kept) < 4:  # which of the file's identical rows each is, when not kept
            kept = (*kept[:3], state.seen.occurrences(kept[0], kept[1]).astype(np.uint64))
        k1, k2, payloads = kept[:3]
        occurrence = kept[3].astype(np.int64)
        has = among(k1, state.contents)
        exact = among(payloads, state.lacking)
        if has.any() and len(state.repeated):
            exact[has] |= among(k1[has], state.repeated)
        known = has & ~exact
        again = ~exact & (occurrence > 1)
        if again.any():
            state.again.append(k1[again])
        if candidates is not None:
            candidate = np.isin(positions, candidates) & ~exact & ~known
        else:
            candidate = ~exact & ~known
            candidate[candidate] = among(payloads[candidate], state.maybe)
        return _Keyed(positions, k1, k2, payloads, exact, known, candidate, occurrence, kept[3])

    def _keyed_rows(self, identities: Identities, index: int, chunk: RawChunk, keyed: _Keyed,
                    light: bool = False) -> tuple[list[Row], dict[str, Entry]]:
        """The rows of a keyed chunk that need more than their content, in file order, with what
        the journal knows of them: those of contents the journal has (found by their content
        key: the journal's rows of it in the order identical rows take them; rows that are sent
        are made whole), those it knows the payload of only (identified row by row, and their
        content key kept for the next night), and those whose payload it may have created
        (checked as every row is). LIGHT (the first pass): the rows of known contents that are
        not to be sent are not made, and what the journal knows of them is only their state
        (the posting pass, or the lines written ahead, say what they are)."""
        table = self.inputs.tables[index]
        rows: list[Row] = []
        known: dict[str, Entry] = {}
        whole: dict[int, tuple[int, str | None]] = {}  # known contents' rows to make whole
        which = np.flatnonzero(keyed.known)
        if len(which):
            which = self._created_here(index, chunk, keyed, which)
        if len(which):
            contents = hex_keys(keyed.k1[which], keyed.k2[which])
            if light:
                found = self.journal.states_by_content(contents)
            else:  # under --key, a row's line says what changed since its payload was sent
                found = self.journal.by_content(contents, payloads=bool(self.settings.key))
            for k, content in zip(which.tolist(), contents, strict=True):
                pos, occurrence = int(keyed.positions[k]), int(keyed.occurrence[k])
                theirs = sorted(found.get(content, []), key=lambda e: copy_rank(
                    e.state, e.occurrence, identities.needing_action))
                if not theirs:  # another content with the same first lane: a new one after all
                    whole[pos] = (occurrence, None)
                elif occurrence <= len(theirs):
                    e = theirs[occurrence - 1]
                    if plan(e, retry_rejected=self.settings.retry_rejected) == "send":
                        whole[pos] = (e.occurrence or 0, e.identity)
                    elif light:
                        known[e.identity] = e
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

    def _created_here(self, index: int, chunk: RawChunk, keyed: _Keyed, which: np.ndarray) -> np.ndarray:
        """`_find_created_here`; for a chunk the posting pass plans again (some of its rows are
        created here, not all: it holds rows to send), as the first pass found it, when the
        journal was not written to since (a range of a migration's journal: read once a night)."""
        key = (index, int(chunk.rows[0]) if len(chunk) else -1, len(chunk))
        kept = self._here_kept.pop(key, None)
        if kept is not None and kept[0] == self.journal.writes and np.array_equal(kept[1], which):
            keyed.here = kept[2]
            return kept[3]
        rest = self._find_created_here(index, chunk, keyed, which)
        here = keyed.here
        if self._first and here is not None and len(here.positions) < len(keyed.positions) \
                and len(self._here_kept) < 2:  # a chunk or two: memory stays flat
            self._here_kept[key] = (self.journal.writes, which, here, rest)
        return rest

    def _find_created_here(self, index: int, chunk: RawChunk, keyed: _Keyed, which: np.ndarray
                           ) -> np.ndarray:
        """Of the rows WHICH (of contents the journal has), those it created from their very
        line of this file, the one row of their content it has, found a chunk at a time (one
        range of the journal's rows by file and row, `keyed.here`, with their lines' cells);
        the rest, to be looked up by their contents. Each is the row `_keyed_rows` would
        find: the first of its content in the file, of a content the journal has one row of (by
        its first lane: no other content shares it), and that row has its whole content key."""
        if self.settings.key:
            return which
        state = self._files[index]
        first = which[(keyed.occurrence[which] == 1) & among(keyed.k1[which], state.once)]
        if not len(first):
            return which
        numbers = np.asarray(chunk.rows)[keyed.positions[first]].astype(np.int64)
        source = os.path.realpath(self.inputs.tables[index].path)
        first_line, last_line = int(numbers.min()), int(numbers.max())
        ahead = self._ahead.get(index) if self._first else None
        # the lines of the file the name led to when the pass began: not another one it leads
        # to now (a link moved to a copy meanwhile), whose lines the journal may not have
        found = ahead.lines(first_line, last_line) if ahead is not None and ahead.source == source else None
        if found is None:
            found = self.journal.created_at_lines(source, first_line, last_line)
        if found is None or not len(found.rows):  # none, or not as etl writes them
            return which
        rows, j1, j2, ids = found.rows, found.k1, found.k2, found.record_ids
        order = np.argsort(rows, kind="stable")
        lo = np.searchsorted(rows[order], numbers, "left")
        hi = np.searchsorted(rows[order], numbers, "right")
        match = np.full(len(first), -1, np.int64)
        one = np.flatnonzero((hi - lo) == 1)
        j = order[lo[one]]
        same = (j1[j] == keyed.k1[first[one]]) & (j2[j] == keyed.k2[first[one]])
        match[one[same]] = j[same]
        for k in np.flatnonzero(hi - lo > 1).tolist():  # a line the journal has several rows of
            for j_ in order[lo[k]:hi[k]].tolist():
                if j1[j_] == keyed.k1[first[k]] and j2[j_] == keyed.k2[first[k]]:
                    match[k] = j_
        # a created row without its Id or time is read whole, row by row
        dated = pc.not_equal(found.created, "").to_numpy(zero_copy_only=False)
        unusable = match >= 0
        unusable[unusable] = ~((ids >= 0) & dated)[match[unusable]]
        match[unusable] = -1
        hit = match >= 0
        if not hit.any():
            return which
        at = match[hit]
        keyed.here = Here(keyed.positions[first[hit]], ids[at],
                          created_here(source, numbers[hit], ids[at], found.created.take(arrow.array(at))))
        return np.setdiff1d(which, first[hit], assume_unique=True)

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
            if keep and not (plan is not None and plan.checked_late):  # else kept once allowed
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
        if contents is None or self.legacy:
            return None
        # how the file was read (its encoding, delimiter or sheet, and the reader's options:
        # the same bytes read otherwise are other cells, in other chunks) and how its rows are
        # identified
        read = {k: v for k, v in table.describe().items() if k != "path"}
        options = repr(getattr(table, "options", None))
        token = KeyCache.token(
            contents, read, options, table.header, sorted(columns.positions.items()), self.resource.name,
            [(f.name, f.kind.value) for f in self.resource.fields], self.validator.decimal,
            list(self.settings.key), sorted(header_key(c) for c in self.settings.ignore),
            os.path.realpath(table.path) if self.inputs.errors_files[index] else "",
            # which rows are valid there: said only where it is so, so that every other file
            # keeps the keys kept of it before
            *(["dots ambiguous"] if columns.dots_ambiguous else []))
        cache = self._caches[index] = KeyCache(os.path.join(state_home(), "keys"), token)
        return cache

    def _verdicts(self, identities: Identities, index: int, number: int, chunk: RawChunk
                  ) -> tuple[dict[int, str], np.ndarray]:
        """The schema's verdicts on a chunk: the first pass's, kept small (the few invalid rows'
        texts, a bit a row), or made now."""
        kept = self._checked.pop((index, number))
        if kept is not None and kept[2] == len(chunk):
            texts, bits, n = kept
            return texts, np.unpackbits(bits, count=n).astype(bool)
        return self._checked_verdicts(identities, index, chunk)
