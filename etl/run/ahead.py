"""The import's lines written ahead of the posting pass (etl.run.importing): the first pass
writes the report lines of the chunks whose every valid row the journal created from its very
line (a migration's nights after the first: the rows of the nights before), as segments of
chunks in a row; the posting pass appends each segment when it reaches it, without reading its
chunks' lines again.

The lines of the chunks after tonight's quota are not written ahead: the posting pass writes
them in turn, into the report itself. Written ahead, they were written twice (into a file of
their own, then copied into the report: a 5M-row night's 663 MB twice), which cost a migration
night more than reading its chunks again does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from etl.ledger.identity import Identities
from etl.read.reading import RawChunk
from etl.report.reporting import ReportWriter
from etl.run.import_base import ImporterBase
from etl.run.import_rows import _Keyed
from etl.run.lines import _Ahead, _Lines


class WritingAhead(ImporterBase):
    """Lines written ahead by the first pass (see the module's docstring)."""

    def _written_first(self, identities: Identities, index: int, chunk: RawChunk, texts: dict[int, str],
                       keyed: _Keyed | None) -> bool:
        """The first pass's chunk written now if its lines can't change
        tonight: every valid row of it is one the journal created from its very line
        (`_final`). A migration's nights after the first read the chunks of the rows created on
        the nights before once: the posting pass appends their lines (`_segment_join`), the
        chunks after one another in a segment of their own."""
        if keyed is None or not _final(keyed):
            return False
        ordinal = self._chunks_read
        segment = self._segments.get(ordinal - 1)
        if segment is None:
            segment = _Ahead(ordinal, ReportWriter.ahead(
                self.record.report, self.inputs.own_columns, self.record.errors_path, self.inputs.reasons))
        self._segments[ordinal] = segment
        self._lines_into(segment, identities, index, chunk, texts, keyed)
        return True

    def _lines_into(self, ahead: _Ahead, identities: Identities, index: int, chunk: RawChunk,
                    texts: dict[int, str], keyed: _Keyed) -> None:
        """A chunk's lines written by the first pass, into AHEAD (a segment: nothing of it is
        sent)."""
        accounted, self.accounted = self.accounted, ahead.accounted
        try:
            p = self._plan_of(identities, index, chunk, texts, keyed, [], [], {}, send=False)
        finally:
            self.accounted = accounted
        lines = _Lines(self, ahead.writer, index, chunk, p)
        lines.night, lines.counts = ahead.night, ahead.counts
        lines.said(0, len(chunk), False)
        lines.write()
        ahead.lines += len(chunk)

    def _segment_join(self, segment: _Ahead, writer: ReportWriter,
                      progress: Callable[[int, Counter[str]], None] | None) -> None:
        """The posting pass reached lines the first pass wrote (a segment): appended, and
        counted."""
        writer.append(segment.writer)
        self.night.append(segment.night)
        self.record.counts.update(segment.counts)
        self.accounted.update(segment.accounted)
        if progress is not None:
            progress(segment.lines, self.record.counts)

    def _written_drop(self) -> None:
        """Every line the first pass wrote, dropped (the run ends before the report is made)."""
        for segment in {id(s): s for s in self._segments.values()}.values():
            segment.writer.discard()  # those joined are closed already
        self._segments = {}


def _final(keyed: _Keyed) -> bool:
    """Whether every valid row of a keyed chunk is one the journal created from its very line
    (`KeyedRows._created_here`): its lines are the same whatever tonight
    sends."""
    here = keyed.here
    return here is not None and len(here.positions) == len(keyed.positions)
