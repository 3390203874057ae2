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

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

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
              open_: Mapping[int, str]) -> list[Said]:
        """The lines of a block, said: FACTS in file order (ROWS their row numbers in SOURCE, an
        absolute path); OPEN names (position in the block -> identity) those that may change."""
        said, codes = [], bytearray(len(facts))
        last: Facts | None = None
        s, code = Said(OUTCOMES[0]), 0
        for pos, f in enumerate(facts):
            if f is not last:  # rows that share their facts (not reached, say) are said once
                last, s = f, decide(f)
                code = CODE[s.outcome]
            said.append(s)
            codes[pos] = code
        first = len(self._codes)
        self._codes.extend(codes)
        for pos, s in enumerate(said):
            identity = open_.get(pos)
            if identity is not None:
                self.open.setdefault(identity, []).append(
                    Line(first + pos, (source, int(rows[pos])), facts[pos], s))
            elif s.counted:
                self._noted[s.counted] += 1
        return said

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
        """Lines per outcome, as the report says."""
        tally = np.bincount(np.frombuffer(self._codes, dtype=np.uint8), minlength=len(OUTCOMES))
        return Counter({OUTCOMES[i].value: int(n) for i, n in enumerate(tally) if n})

    def notes(self) -> Counter[str]:
        """The run notes (summary.json's "notes") of the lines, as the report says."""
        noted = Counter(self._noted)
        noted.update(line.said.counted for line in self._open_lines() if line.said.counted)
        return noted

    def _open_lines(self) -> Iterator[Line]:
        for lines in self.open.values():
            yield from lines
