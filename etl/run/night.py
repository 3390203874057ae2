"""The night's plan: what the report says of every line of an import, kept small, and the lines
whose fate the rest of the run may still decide.

Every line's outcome is `etl.outcomes.decide` of its facts, when the line is written. Most lines
can't change after that (invalid, skipped, refused before, not attempted): the plan keeps one
byte of each, its outcome's code, for the counts. The lines of rows this run sent, and of rows in
doubt, can change: reconciliation decides a row in doubt later in the run, a row proved absent is
sent again. They are kept, a few dozen bytes each (`_Open`: a night may send a million rows), and
at the end each is decided again, from the journal as it then stands; the report is then made
again whole, in file order, and replaces the one written as the run went.
"""

from __future__ import annotations

import functools
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.ledger.entries import Entry
from etl.outcomes import CODE, OUTCOMES, Facts, Outcome, Said, decide


class _Open:
    """The lines whose fate the rest of the run may still decide (tonight's POSTs, rows in
    doubt), a few dozen bytes each: a night that sends a million rows keeps a million of them.
    Each line keeps its place, its file and row, its facts without the journal's entry (most of
    them share one Facts object), and what it said, cell by cell; the entry is read again from
    the journal at the end (`Night.decide_again`), a batch at a time."""

    def __init__(self) -> None:
        self.identities: list[str] = []
        self.index, self.row, self.record_id = array("q"), array("q"), array("q")
        self.source, self.facts, self.errors = array("i"), array("i"), array("i")
        self.http_status, self.attempts, self.counted = array("i"), array("i"), array("i")
        self.outcome = array("B")
        self._tables: dict[str, tuple[list[Any], dict[Any, int]]] = {}
        self._of: dict[str, list[int]] | None = None  # identity -> its lines, once asked

    def __len__(self) -> int:
        return len(self.identities)

    def _code(self, table: str, value: Any) -> int:
        values, codes = self._tables.setdefault(table, ([], {}))
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(values)
            values.append(value)
        return code

    def _value(self, table: str, code: int) -> Any:
        return self._tables[table][0][code]

    def add(self, index: int, where: tuple[str, int], identity: str, facts: Facts, said: Said) -> None:
        self.identities.append(identity)
        self.index.append(index)
        self.source.append(self._code("source", where[0]))
        self.row.append(where[1])
        self.facts.append(self._code("facts", replace(facts, entry=None)))
        self.set_said(len(self.identities) - 1, said)
        if self._of is not None:
            self._of.setdefault(identity, []).append(len(self.identities) - 1)

    def set_said(self, k: int, said: Said) -> None:
        values = (CODE[said.outcome], _none_as(said.record_id, _NO_ID), _none_as(said.http_status),
                  _none_as(said.attempts), self._code("errors", said.errors),
                  self._code("counted", said.counted))
        columns = (self.outcome, self.record_id, self.http_status, self.attempts, self.errors, self.counted)
        for column, value in zip(columns, values, strict=True):
            if k < len(column):
                column[k] = value
            else:
                column.append(value)

    def said(self, k: int) -> Said:
        return Said(OUTCOMES[self.outcome[k]], _as_none(self.record_id[k], _NO_ID),
                    _as_none(self.http_status[k]), _as_none(self.attempts[k]),
                    self._value("errors", self.errors[k]), self._value("counted", self.counted[k]))

    def facts_of(self, k: int) -> Facts:
        facts: Facts = self._value("facts", self.facts[k])
        return facts

    def set_facts(self, k: int, facts: Facts) -> None:
        self.facts[k] = self._code("facts", replace(facts, entry=None))

    def where(self, k: int) -> tuple[str, int]:
        return self._value("source", self.source[k]), self.row[k]

    def lines_of(self, identity: str) -> list[int]:
        if self._of is None:  # asked only when a row is sent again: made then, once
            self._of = {}
            for k, name in enumerate(self.identities):
                self._of.setdefault(name, []).append(k)
        return self._of.get(identity, [])


#: None, in an array of 32-bit numbers (an HTTP status, a count of attempts) and of 64-bit ones
_NONE, _NO_ID = -(1 << 31), -(1 << 63)


def _none_as(value: int | None, none: int = _NONE) -> int:
    return none if value is None else value


def _as_none(value: int, none: int = _NONE) -> int | None:
    return None if value == none else value


class Night:
    """What the report says of each line of the run, in file order."""

    def __init__(self) -> None:
        self._codes = bytearray()  # each line's outcome, as its code
        self.open = _Open()  # the lines that may still change
        self._noted: Counter[str] = Counter()  # the run notes of the lines that can't

    def write(self, source: str, rows: np.ndarray, facts: Sequence[Facts],
              open_: Mapping[int, str], kinds: np.ndarray | None = None) -> list[tuple[Said, int]]:
        """The lines of a block, said: FACTS in file order (ROWS their row numbers in SOURCE, an
        absolute path); OPEN names (position in the block -> identity) those that may change;
        KINDS, where known, which lines share one Facts object (equal numbers: the same object).
        Returns what is said as runs (a line's words, how many lines in a row say them): lines
        that share their facts (every row not reached, say) are decided once, and said at once."""
        n = len(facts)
        if not n:
            return []
        ids = kinds if kinds is not None else np.fromiter(map(id, facts), dtype=np.int64, count=n)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        lengths = np.diff(np.r_[starts, n])
        decided: dict[int, Said] = {}  # by kind: rows of one kind share one Facts, one line

        def said(k: int) -> Said:
            kind = int(ids[k])
            if kind < 0:  # facts of its own (RowFacts)
                return decide(facts[k])
            if kind not in decided:
                decided[kind] = decide(facts[k])
            return decided[kind]

        runs = [(said(k), int(m)) for k, m in zip(starts.tolist(), lengths.tolist(), strict=True)]
        codes = np.array([CODE[s.outcome] for s, _ in runs], dtype=np.uint8)
        first = len(self._codes)
        self._codes.extend(np.repeat(codes, lengths).tobytes())
        opened: Counter[int] = Counter()  # per run, its lines that may change
        for pos, identity in open_.items():
            k = int(np.searchsorted(starts, pos, "right")) - 1
            opened[k] += 1
            self.open.add(first + pos, (source, int(rows[pos])), identity, facts[pos], runs[k][0])
        for k, (s, m) in enumerate(runs):
            if s.counted and m > opened[k]:
                self._noted[s.counted] += m - opened[k]
        return runs

    def append(self, other: Night) -> None:
        """The lines OTHER said (of a later part of the run, written ahead), after these."""
        first = len(self._codes)
        self._codes.extend(other._codes)
        theirs = other.open
        for k, identity in enumerate(theirs.identities):
            self.open.add(theirs.index[k] + first, theirs.where(k), identity, theirs.facts_of(k),
                          theirs.said(k))
        self._noted.update(other._noted)

    def sent_again(self, identity: str, where: tuple[str, int], attempts_before: int) -> None:
        """IDENTITY is sent again (proved not created) from WHERE: that line sent it."""
        lines = self.open.lines_of(identity)
        k = next((k for k in lines if self.open.where(k) == where), lines[0] if lines else None)
        if k is not None and not (facts := self.open.facts_of(k)).sent:
            self.open.set_facts(k, replace(facts, sent=True, attempts_before=attempts_before))

    def decide_again(self, lookup: Callable[[Iterable[str]], Mapping[str, Entry]],
                     batch: int = 2000) -> dict[int, Said]:
        """Every line that may have changed, decided again with its row's journal entry as it
        stands (LOOKUP: the journal's entries of some identities), BATCH lines at a time (their
        entries, read whole, are let go after): the lines whose report now differs, by index.
        A line whose row the journal no longer has (never, as etl writes it) stays as said."""
        changed = {}
        lines = self.open
        for start in range(0, len(lines), batch):
            entries = lookup(set(lines.identities[start: start + batch]))
            for k in range(start, min(start + batch, len(lines))):
                entry = entries.get(lines.identities[k])
                if entry is None:
                    continue
                said = decide(replace(lines.facts_of(k), entry=entry))
                if said != lines.said(k):
                    lines.set_said(k, said)
                    changed[lines.index[k]] = said
                    self._codes[lines.index[k]] = CODE[said.outcome]
        return changed

    def counts(self, start: int = 0, end: int | None = None) -> Counter[str]:
        """Lines per outcome (of the lines START to END), as the report says: each code counted
        in the codes' bytes (numpy's bincount would first widen them to 8 bytes a line: 40 MB at
        5M lines)."""
        codes = self._codes if start == 0 and end is None else self._codes[start:end]
        return Counter({o.value: n for i, o in enumerate(OUTCOMES) if (n := codes.count(i))})

    def unsettled(self, start: int, end: int) -> dict[str, str]:
        """The lines START to END the journal may yet decide otherwise (in doubt, or failed: a
        later run sends them again), by their rows' identities, with what each says."""
        lines, out = self.open, {}
        wanted = {CODE[Outcome.IN_DOUBT], CODE[Outcome.FAILED]}
        for k in range(len(lines)):
            if start <= lines.index[k] < end and lines.outcome[k] in wanted:
                out[lines.identities[k]] = OUTCOMES[lines.outcome[k]].value
        return out

    def notes(self) -> Counter[str]:
        """The run notes (summary.json's "notes") of the lines, as the report says."""
        noted = Counter(self._noted)
        lines = self.open
        noted.update(c for k in range(len(lines)) if (c := lines._value("counted", lines.counted[k])))
        return noted


#: The facts of every row the journal created from its very line of the file being read, the
#: one row of its content it has (etl.run.keyed_rows): skipped, the same values in every cell.
#: `decide` says what their lines are; `created_here` gives each its own Id and note, a chunk at
#: a time, in `decide`'s words.
CREATED_HERE = Facts(entry=Entry("", "", None, None, "created", None, None, 0, None, "", "", None,
                                 None, None, None, None, None, None, None, None, None, None, ""))

# stand-ins for a row's own cells in `decide`'s line of such a row (`_worded`)
_SOURCE, _ROW, _ID, _WHEN = "\x01source\x01", 2_000_000_001, 2_000_000_003, "\x02" * 16


@functools.cache
def _worded() -> tuple[str, ...]:
    """`decide`'s note on a row created before from its very line, cut around its own cells:
    (text, cell, text, cell, ...), each cell one of "source", "row", "id", "when"."""
    assert CREATED_HERE.entry is not None
    entry = replace(CREATED_HERE.entry, record_id=_ID, source=_SOURCE, row=_ROW, created_at=_WHEN)
    note = decide(Facts(entry=entry)).errors
    marks = {_SOURCE: "source", str(_ROW): "row", str(_ID): "id", _WHEN: "when"}
    parts = re.split("(" + "|".join(map(re.escape, marks)) + ")", note)
    return tuple(marks.get(p, p) if k % 2 else p for k, p in enumerate(parts))


def created_here(source: str, rows: np.ndarray, record_ids: np.ndarray, created: arrow.Array
                 ) -> arrow.Array:
    """The errors cells `decide` gives the lines of rows created before from SOURCE's ROWS
    (CREATED: when, as the journal keeps it), with RECORD_IDS, each from its own line: made as
    columns, for a chunk of a night that has been importing the file for weeks."""
    cells = {
        "source": source,
        "row": arrow.array(rows, arrow.int64()).cast(arrow.string()),
        "id": arrow.array(record_ids, arrow.int64()).cast(arrow.string()),
        # etl.outcomes.when: to the minute, a space for the T
        "when": pc.replace_substring(pc.utf8_slice_codeunits(created, 0, 16),
                                     "T", " "),
    }
    worded = _worded()
    pieces = [cells[p] if k % 2 else p for k, p in enumerate(worded)]
    return pc.binary_join_element_wise(*pieces, "")
