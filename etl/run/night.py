"""The night's plan: what the report says of every line of an import, kept small, and the lines
whose fate the rest of the run may still decide.

Every line's outcome is `etl.outcomes.decide` of its facts, when the line is written. Most lines
can't change after that (invalid, skipped, refused before, not attempted): the plan keeps one
byte of each, its outcome's code, for the counts. The lines of rows this run sent, and of rows in
doubt, can change: reconciliation decides a row in doubt later in the run, a row proved absent is
sent again. Their facts are kept (a dict by identity, as big as tonight's POSTs and doubts), and
at the end each is decided again, from the journal as it then stands; the report is then made
again whole, in file order, and replaces the one written as the run went.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.ledger.entries import Entry
from etl.outcomes import CODE, OUTCOMES, Facts, Said, decide


@dataclass
class Line:
    """A line whose facts may change before the run ends."""

    index: int  # its place in the report: 0 is the line after the header
    where: tuple[str, int]  # its file (absolute path) and row number, as the journal names them
    facts: Facts
    said: Said  # as last written


class Night:
    """What the report says of each line of the run, in file order."""

    def __init__(self) -> None:
        self._codes = bytearray()  # each line's outcome, as its code
        self.open: dict[str, list[Line]] = {}  # identity -> its lines that may still change
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
            self.open.setdefault(identity, []).append(
                Line(first + pos, (source, int(rows[pos])), facts[pos], runs[k][0]))
        for k, (s, m) in enumerate(runs):
            if s.counted and m > opened[k]:
                self._noted[s.counted] += m - opened[k]
        return runs

    def append(self, other: Night) -> None:
        """The lines OTHER said (of a later part of the run, written ahead), after these."""
        first = len(self._codes)
        self._codes.extend(other._codes)
        for identity, lines in other.open.items():
            self.open.setdefault(identity, []).extend(replace(x, index=x.index + first) for x in lines)
        self._noted.update(other._noted)

    def sent_again(self, identity: str, where: tuple[str, int], attempts_before: int) -> None:
        """IDENTITY is sent again (proved not created) from WHERE: that line sent it."""
        lines = self.open.get(identity) or []
        line = next((x for x in lines if x.where == where), lines[0] if lines else None)
        if line is not None and not line.facts.sent:
            line.facts = replace(line.facts, sent=True, attempts_before=attempts_before)

    def decide_again(self, entries: Mapping[str, Entry]) -> dict[int, Said]:
        """Every line that may have changed, decided again with its row's journal entry as it
        stands (ENTRIES, by identity): the lines whose report now differs, by index."""
        changed = {}
        for identity, lines in self.open.items():
            entry = entries.get(identity)
            for line in lines:
                if entry is not None and entry != line.facts.entry:
                    line.facts = replace(line.facts, entry=entry)
                said = decide(line.facts)
                if said != line.said:
                    changed[line.index] = line.said = said
                    self._codes[line.index] = CODE[said.outcome]
        return changed

    def counts(self) -> Counter[str]:
        """Lines per outcome, as the report says: each code counted in the codes' bytes (numpy's
        bincount would first widen them to 8 bytes a line: 40 MB at 5M lines)."""
        codes = self._codes
        return Counter({o.value: n for i, o in enumerate(OUTCOMES) if (n := codes.count(i))})

    def notes(self) -> Counter[str]:
        """The run notes (summary.json's "notes") of the lines, as the report says."""
        noted = Counter(self._noted)
        noted.update(line.said.counted for line in self._open_lines() if line.said.counted)
        return noted

    def _open_lines(self) -> Iterator[Line]:
        for lines in self.open.values():
            yield from lines


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
