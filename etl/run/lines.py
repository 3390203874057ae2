"""A chunk's report lines as the import writes them (etl.run.importing): said batch by batch,
written in blocks; and the lines the first pass writes ahead (etl.run.ahead)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as arrow

from etl.outcomes import Said
from etl.read.reading import RawChunk
from etl.report.reporting import ReportWriter, sparse_text
from etl.run.import_base import ImporterBase
from etl.run.import_rows import Plan
from etl.run.night import Night


@dataclasses.dataclass
class _Ahead:
    """Lines the first pass wrote ahead of the posting pass (a segment of chunks in a row, from
    the START-th chunk of the run on)."""

    start: int
    writer: ReportWriter
    night: Night = dataclasses.field(default_factory=Night)
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    accounted: Counter[str] = dataclasses.field(default_factory=Counter)
    lines: int = 0


class _Lines:
    """A chunk's report lines, said batch by batch (so the counts follow the run) and written in
    blocks: a batch that sent rows, or whose lines may yet change, alone (made durable when it
    sent rows: their fate is in the journal), and the batches between such batches together."""

    def __init__(self, importer: ImporterBase, writer: ReportWriter, index: int, chunk: RawChunk,
                 p: Plan) -> None:
        self.night, self.counts = importer.night, importer.record.counts
        self.writer, self.chunk, self.p = writer, chunk, p
        self.path = importer.inputs.tables[index].path
        self.where = importer._real_path(self.path)  # as the journal keeps its rows' files
        self.own = importer.inputs.own_cells(index, chunk)
        self.pending: list[tuple[int, int, list[tuple[Said, int]]]] = []  # said, not yet written

    def said(self, start: int, end: int, sent: bool) -> None:
        """Lines START to END (a batch) have their facts: said and counted now."""
        p = self.p
        open_ = {q - start: identity for q, identity in p.open.items() if start <= q < end}
        said = self.night.write(self.where, self.chunk.rows[start:end], p.facts[start:end], open_,
                                p.facts.kinds[start:end])
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
        lengths = np.fromiter((m for _, m in said), np.int64, len(said))
        which = arrow.array(np.repeat(np.arange(len(said)), lengths), type=arrow.int64())

        def column(values: list[Any], type_: arrow.DataType) -> arrow.Array | None:
            if all(v is None for v in values):  # empty cells: the writer's nulls
                return None
            return arrow.array(values, type=type_).take(which)

        words = [s for s, _ in said]
        errors = _texts([s.errors for s in words], lengths, which)
        ids = column([s.record_id for s in words], arrow.int64())
        here = self.p.here
        if here is not None:  # the lines of rows created before, made
            lo, hi = np.searchsorted(here.positions, [start, end])  # as columns: their own cells
            if hi > lo:
                at = np.arange(end - start)
                at[here.positions[lo:hi] - start] = end - start + np.arange(hi - lo)
                take = arrow.array(at, type=arrow.int64())
                errors = arrow.concat_arrays([errors, here.errors[lo:hi]]).take(take)
                made = arrow.array(here.record_ids[lo:hi], arrow.int64())
                if ids is None:
                    ids = arrow.nulls(end - start, arrow.int64())
                ids = arrow.concat_arrays([ids, made]).take(take)
        outcomes = arrow.array([s.outcome.value for s in words], arrow.string()).take(which)
        self.writer.write(
            self.path, self.chunk.rows[start:end], outcomes,
            errors,
            [None if c is None else c[start:end] for c in self.own],
            ids=ids,
            statuses=column([s.http_status for s in words], arrow.int64()),
            attempts=column([s.attempts for s in words], arrow.int64()))


def _texts(texts: list[str], lengths: np.ndarray, which: arrow.Array) -> arrow.Array:
    """The errors cells of runs of lines (TEXTS: a run's, LENGTHS: its lines, WHICH: each line's
    run): from the positions of the few lines that say anything, as the dry run makes them
    (most lines of a night say nothing), else each run's text repeated."""
    worded = [k for k, t in enumerate(texts) if t]
    n = int(lengths.sum())
    if int(lengths[worded].sum()) * 8 >= n:
        return arrow.array(texts, arrow.string()).take(which)
    firsts = np.cumsum(lengths) - lengths
    return sparse_text(n, {int(firsts[k]) + j: texts[k] for k in worded for j in range(int(lengths[k]))})
