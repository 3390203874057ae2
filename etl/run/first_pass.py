"""The import's first pass (etl.run.importing): every file read once, its rows identified and
looked up in the journal, before anything is sent; a changed identity, a re-export, another
journal's rows stop the run here."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as arrow

from etl.errors import RunAborted, UsageProblem
from etl.heap import give_back_memory
from etl.ledger.entries import LEGACY_SCHEME, Entry, JournalProblem, canonical_json, payload_hash
from etl.ledger.identity import (
    VALUES,
    Identities,
    cell_digest,
    describe_scheme,
    digest,
    id_like_columns,
    identity_text,
)
from etl.ledger.life import plan
from etl.ledger.storage import Match
from etl.outcomes import Outcome
from etl.post.answers import ReadFailed
from etl.post.verdicts import differences
from etl.read.reading import RawChunk
from etl.report.cells import guarded, restore, restore_cell
from etl.run.checks import posts_left
from etl.run.import_base import ImporterBase
from etl.run.import_rows import Row, _Fresh, _identified_otherwise, _Sample, _ToSend, system_id_of, tagged
from etl.run.pipeline import read_ahead
from etl.validate.resources import header_key


def _digests(payloads: list[dict[str, Any]], names: list[str], sent: list[str | None],
             cells: list[list[Any]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Each row's cells (of the columns NAMES: the field each is SENT as, else None; CELLS, a
    list a column) as digests and as texts, by name: a sent cell is its value as sent, any
    other its text, normalised; a cell without a text adds nothing."""
    made, texts = [], []
    for k, payload in enumerate(payloads):
        digests, spelt_out = {}, {}
        for name, f, column in zip(names, sent, cells, strict=True):
            text = identity_text(payload.get(f) if f else column[k])
            if text:
                digests[name], spelt_out[name] = cell_digest(text), text
        made.append(digests)
        texts.append(spelt_out)
    return made, texts


#: the run's first chunks kept from the first pass for the posting pass (a chunk: a few MB)
KEPT_CHUNKS = 1


class FirstPass(ImporterBase):
    """The first pass over every file, and the rows' identities (see the module's docstring)."""

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
        made, texts = _digests(payloads, kept_names, sent, cells)
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
                rows.append(self._row(identities, pos, identity, scheme, payload, table.path, number, spelt,
                                      base, occurrence, before, digests, texts[k], names))
        finally:
            identities.known = known
        return rows, problems

    def _checked_verdicts(self, identities: Identities, index: int, chunk: RawChunk
                          ) -> tuple[dict[int, str], np.ndarray]:
        """The schema's verdicts on a chunk of file INDEX, and `_guarded_twins`."""
        texts, valid = self.validator.verdicts(chunk, self.inputs.columns[index])
        if not self.inputs.errors_files[index]:
            self._guarded_twins(identities, index, chunk, texts, valid)
        return texts, valid

    def _guarded_twins(self, identities: Identities, index: int, chunk: RawChunk, texts: dict[int, str],
                       valid: np.ndarray) -> None:
        """Valid rows with a cell that starts with the ' errors.csv puts before a cell a
        spreadsheet could take for a formula (`'-10% off`, `'+44 20...`), in a file not read as an
        errors.csv (its errors column taken out): where the row without it (its content, any
        column's cells restored) is one the journal has, the row is refused, never sent as
        another credit use (a second charge, or a text with a stray '). A file whose own cells
        start so, of rows the journal never had without the ', is read as it is."""
        table, columns = self.inputs.tables[index], self.inputs.columns[index]
        identities.start(table.path, table.header)
        _, scheme = identities.columns(table.path, table.header,
                                       {header_key(f.name) for f in self.resource.fields})
        if not scheme.startswith("cells:"):
            return  # a --key: the key's own cells, read as they are
        kept_at, kept_names = identities.kept(table.header)
        marked = np.zeros(len(chunk), dtype=bool)
        for at in kept_at:
            marked |= guarded(chunk.columns[at])
        at_rows = np.flatnonzero(marked & valid).tolist()
        if not at_rows:
            return
        field_at = {p: name for name, p in columns.positions.items()}
        sent = [field_at.get(i) for i in kept_at]
        take = arrow.array(at_rows, arrow.int64())
        cells = [restore(chunk.columns[i].take(take)).to_pylist() for i in kept_at]
        bare = [{k: restore_cell(v) if isinstance(v, str) else v for k, v in body.items()}
                for body in self.validator.payloads(chunk, columns, at_rows)]
        made, _ = _digests(bare, kept_names, sent, cells)
        twins = {pos: identities.base_of(scheme, d) for pos, d in zip(at_rows, made, strict=True)}
        found = self.journal.of_bases(set(twins.values()))
        theirs = {pos: found[base][0] for pos, base in twins.items() if found.get(base)}
        entries = self.journal.lookup(identity for identity, _, _ in theirs.values())
        for pos, (identity, state, _) in theirs.items():
            entry = entries.get(identity)
            where = f"{entry.where}'s" if entry is not None else "a"
            valid[pos] = False
            texts[pos] = (f"a cell starts with the ' an errors.csv puts before a cell a spreadsheet "
                          f"could take for a formula, and without it the row is {where} credit use "
                          f"({state.replace('_', ' ')} in the journal): load the errors.csv again with "
                          "its errors column (the ' is taken away then), or take the ' out")

    def _row(self, identities: Identities, pos: int, identity: str, scheme: str, payload: dict[str, Any],
             source: str, number: int, spelt: list[str], base: str | None, occurrence: int | None,
             before: str | None, digests: dict[str, str], texts: dict[str, str], names: list[str]) -> Row:
        """A row identified (`_identify`): what is sent, its payload's hash, and, for a journal of
        an earlier release, its identity then."""
        plain = canonical_json(payload)
        legacy = None
        if self.legacy:
            key_text = "\x1f".join(v.strip() for v in spelt) if identities.key else None
            legacy = identities.legacy_of(plain, key_text)
        body = tagged(payload, identity) if self.settings.tag_description else payload
        return Row(pos, identity, scheme, body, payload_hash(self.resource.name, plain), source, number,
                   legacy, base, occurrence, before or None, frozenset(n for n in names if n in digests),
                   digests, {n: texts[n] for n in names if n in texts})

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
        cells differ from that row's in one column only (not one of --key). Identical rows each
        take a created row of their own: four copies of a credit use that come back are four
        rows of the earlier file, not one."""
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
                if e.identity in found:  # an identical row before this one came back as it
                    continue
                found[e.identity] = (r, e)
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
        self._first = True
        try:
            self._check()
        finally:
            self._first = False
            self._files_done()
            soon, self._keys_soon = self._keys_soon, None
            if soon is not None:  # not asked for (the pass ended before): done before the journal closes
                with contextlib.suppress(Exception):
                    soon.result()
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
        quota = posts_left(self.journal, self.poster.daily_limit)
        self._reach = quota + 50
        self._collected = 0
        self._chunks_read = 0
        # the next chunk is read (Arrow lets go of the GIL) while this one is checked, as the dry
        # run does
        self._start_ahead(0)  # read while the first chunk is checked
        self._read_keys_soon(identities)
        for index, chunk in read_ahead(self.inputs.chunks()):
            fresh.extend(self._first_chunk(identities, index, numbers[index], chunk))
            numbers[index] += 1
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
            named = {}  # the fields the row's file names by its columns (aliases, --map)
            for table, columns in zip(self.inputs.tables, self.inputs.columns, strict=True):
                if table.path == row.source:
                    named = {header_key(table.header[at]): field for field, at in columns.positions.items()}
            respelt = _respelt(self.resource, row.scheme, entry.scheme, named)
            if respelt:
                raise UsageProblem(
                    f"{len(changed)} rows match credit uses already created: {row.source} spells "
                    f"its columns otherwise than the file they were created from ({entry.where}, Id "
                    f"{entry.record_id}): {respelt}. A row is known by its columns' names as the "
                    "export spells them: rename the header back to how it was spelt then, and run "
                    "again. Nothing was posted (--allow-new-identity would post them all again)")
            raise UsageProblem(
                f"{len(changed)} rows match credit uses already created under another way of "
                f"identifying rows: {row.source} row {row.number} is identified by "
                f"{describe_scheme(row.scheme)}, but the same payload was created from "
                f"{entry.where} (Id {entry.record_id}) when rows were identified by "
                f"{describe_scheme(entry.scheme)}. Nothing was posted. If these are the same credit "
                "uses, rerun the way they were identified then (the same --key, or --ignore-column "
                "for a column the export added); if they are new credit uses, rerun with "
                "--allow-new-identity")

    def _first_chunk(self, identities: Identities, index: int, number: int, chunk: RawChunk
                     ) -> list[tuple[int, _Fresh]]:
        """One chunk of the first pass: checked, keyed (its keys kept for the night after),
        looked up in the journal, its rows to send sampled, its lines written if they are final
        (etl.run.ahead); the rows the journal does not know, for the checks at the end."""
        table = self.inputs.tables[index]
        give_back_memory()  # what the chunk before freed: the next one is not piled on top
        texts, valid = self._checked_verdicts(identities, index, chunk)
        # kept for the posting pass, which would otherwise check every row again
        self._checked.put((index, number), texts, valid)
        cache = self._key_cache(index) if number == 0 else self._caches.get(index)
        kept = cache.next(valid, chunk.rows) if cache is not None and cache.found else None
        keyed = self._keyed(identities, index, chunk, valid, kept)
        if keyed is not None:  # the posting pass keys the rows by these again
            self._candidates[(index, number)] = keyed.positions[keyed.candidate]
            if keyed.here is None and not (keyed.exact.any() or keyed.known.any() or keyed.candidate.any()):
                self._untouched_chunks.add((index, number))
            kept_keys = (keyed.k1, keyed.k2, keyed.payloads, keyed.occurrences)
            if cache is None:
                self._keys[(index, number)] = kept_keys
            elif not cache.found:
                cache.add(valid, chunk.rows, *kept_keys)
        if keyed is None:
            rows, problems = self._identify(identities, index, chunk, valid)
            known, identified = self._known(identities, rows), len(rows)
        else:
            rows, known = self._keyed_rows(identities, index, chunk, keyed, light=True)
            identified = len(keyed.positions)
        sending = [r for r in rows
                   if plan(known.get(r.identity), retry_rejected=self.settings.retry_rejected) == "send"]
        if keyed is None:
            if self.account is not None:  # the rows this run may send, for the account checks
                self.account.collect(r.body for r in sending)
            self.samples.setdefault(index, _Sample()).extend(sending)
        else:
            to_send = _ToSend(sending, keyed.plain(), self._plain_rows(identities, index, chunk, keyed))
            if self.account is not None:
                self._collect(to_send)
            self.samples.setdefault(index, _Sample()).take(to_send.positions, to_send.rows_at)
        self._chunks_read += 1
        if self._written_first(identities, index, chunk, texts, keyed):
            # its keys are read past, and its verdicts kept (a bit a row) for a file that turns
            # out to have identical rows: its rows of them are identified then (_pass_over)
            self._candidates.pop((index, number), None)
        elif self._chunks_read == len(self._kept_chunks) + 1 and len(self._kept_chunks) < KEPT_CHUNKS:
            # the run's first chunk, which the posting pass plans again (it holds rows to send):
            # kept, so it is not read again (the chunks after are read again)
            self._kept_chunks.append((index, chunk))
        if known or (keyed is not None and keyed.here is not None):  # this journal has been
            # importing this file: the file is its own
            self.known_files.add(index)
        self._look_for_an_id_column(index, chunk)
        count = self.record.extra.setdefault("rows_read", {})
        count[table.path] = count.get(table.path, 0) + len(chunk)
        good = self.valid_rows
        good[table.path] = good.get(table.path, 0) + identified
        return [(index, _Fresh(r.payload_hash, r.scheme, r.source, r.number, r.filled))
                for r in rows if r.identity not in known]

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
        everything: list[dict[str, Any]] | None = None  # the target's records, where they are few
        for index, sample in self.samples.items():
            if index in self.known_files:
                continue
            if claimed is None:
                claimed = self.journal.claimed_ids()
                try:
                    everything = self.reconciler.few_records()
                except ReadFailed as exc:
                    raise RunAborted(
                        f"could not read the records of {self.journal.target} before posting with a "
                        f"journal that knows none of the rows of {self.inputs.tables[index].path} "
                        f"({exc}); nothing was posted. A rerun looks again") from None
            for row in sample.rows():
                try:
                    hit = self._created_elsewhere(row, claimed, everything)
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

    def _created_elsewhere(self, row: Row, claimed: set[int], everything: list[dict[str, Any]] | None
                           ) -> tuple[dict[str, Any], str, bool] | None:
        """A record of ROW made before this run, not by this journal: among EVERYTHING (every
        record of the target, where they are few), or one look-up, by the row's values (the
        records found carry their SystemId), or by SystemId where the resource has no look-up by
        values. (record, why, whether it is surely the row's)."""
        sid = system_id_of(row.identity)
        body = {k: v for k, v in row.body.items() if k != "SystemId"}
        params = {name: str(body[f]) for name, f in self.resource.lookup.items() if f in body}
        if everything is None and not params:
            if not (self.settings.system_id and self.resource.system_id_filter):
                return None
            params = {self.resource.system_id_filter: sid}
        for record in everything if everything is not None else self.reconciler.records(params):
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

    def _collect(self, to_send: _ToSend) -> None:
        """For the account checks, the first rows to send of a keyed chunk, made: as many as
        tonight's quota may reach, twice over (rows the checks refuse take no POST). Rows after
        them are looked up when the posting pass reaches them, if it does."""
        assert self.account is not None
        room = max(0, 2 * self._reach - self._collected)
        if len(to_send) > room:
            self.account.lazy = True  # what was not collected is looked up when it is reached
        if room:
            positions = [int(q) for q in to_send.positions[:room]]
            self.account.collect(r.body for r in to_send.rows_at(positions))
            self._collected += len(positions)

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


def _respelt(resource: Any, now: str, then: str, named: dict[str, str]) -> str:
    """Where two ways of identifying rows by every cell differ only in how the columns are
    spelt (a field's alias for its name, a column --map names: NAMED, the fields of the file's
    columns now), the columns spelt otherwise ("creditid, once coworkerbookingcreditid");
    else ""."""
    kind_now, _, cols_now = now.partition(":")
    kind_then, _, cols_then = then.partition(":")
    if kind_now != "cells" or kind_then != "cells":
        return ""
    a, b = cols_now.split(","), cols_then.split(",")
    only_now, only_then = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if not only_now or len(only_now) != len(only_then):
        return ""
    def field_now(c: str) -> str | None:
        return named.get(c) or resource.match(c)

    fields_now = {field_now(c) or f"?{c}" for c in a}
    fields_then = {resource.match(c) or f"?{c}" for c in b}
    if fields_now != fields_then:
        return ""
    pairs = []
    for c in only_now:
        field = field_now(c)
        was = next((d for d in only_then if resource.match(d) == field), None)
        if was is None:
            return ""
        pairs.append(f"{c}, once {was}")
    return "; ".join(pairs)
