"""The import's lines written ahead (etl.run.importing): the first pass writes the report lines
of the chunks after the one where tonight's quota ends, so the posting pass need not read them
again; the posting pass appends them when it reaches them stopped, else drops them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from etl.ledger.entries import Entry
from etl.ledger.identity import Identities
from etl.ledger.rowkeys import among
from etl.read.reading import RawChunk
from etl.report.reporting import ReportWriter
from etl.run.import_base import ImporterBase
from etl.run.import_rows import Row, _Keyed
from etl.run.lines import _Ahead, _Lines


class WritingAhead(ImporterBase):
    """Lines written ahead by the first pass (see the module's docstring)."""


    def _ahead_from(self, quota: int) -> None:
        """The first pass writes the report lines of the chunks after the one that holds the
        row after tonight's QUOTA (`_ahead_chunk`): no row of theirs is sent tonight, so the
        posting pass need not read them again. Only on the keyed path without the account
        checks (which look rows up in the posting pass)."""
        self.ahead = None
        self._ahead_quota = quota if self.account is None and not self.legacy else None
        self._ahead_seen = 0  # rows to send, so far
        self._ahead_sent = []

    def _ahead_chunk(self, identities: Identities, index: int, chunk: RawChunk, texts: dict[int, str],
                     keyed: _Keyed | None, rows: list[Row], known: dict[str, Entry],
                     sending: np.ndarray) -> bool:
        """The first pass's chunk (SENDING: the positions of its rows to send), written ahead if
        it comes after the quota's last row; whether it was. A chunk the journal knows rows of
        ends writing ahead: the posting pass, which knows every file's repeated contents, decides
        it (and every chunk after it); so does a chunk of a later file that may repeat a row sent
        tonight (the posting pass keys a file against the journal as it stands when it reaches
        the file: such a row is found created tonight, from the earlier file)."""
        ahead, quota = self.ahead, self._ahead_quota
        if quota is None:
            return False
        if ahead is None:
            self._ahead_seen += len(sending)
            if len(sending) and self._ahead_sent is not None:
                if keyed is None:
                    self._ahead_sent = None  # rows identified one by one: their keys not made
                else:
                    at = np.searchsorted(keyed.positions, sending)
                    self._ahead_sent.append((keyed.k1[at], keyed.payloads[at]))
            if self._ahead_seen > quota:  # from the next chunk on
                self.ahead = _Ahead(self._chunks_read, ReportWriter.ahead(
                    self.record.report, self.inputs.own_columns, self.record.errors_path))
                self._ahead_file = index
                if self._ahead_sent:  # looked up sorted, once
                    self._ahead_sent = [(np.unique(np.concatenate([k for k, _ in self._ahead_sent])),
                                         np.unique(np.concatenate([p for _, p in self._ahead_sent])))]
            return False
        if keyed is None or (keyed.known.any() and not _final(keyed)) \
                or (index != self._ahead_file and self._sent_tonight(keyed)):
            self._ahead_drop()
            self._ahead_quota = None
            return False
        self._lines_into(ahead, identities, index, chunk, texts, keyed, rows, known)
        return True

    def _written_first(self, identities: Identities, index: int, chunk: RawChunk, texts: dict[int, str],
                       keyed: _Keyed | None) -> bool:
        """The first pass's chunk (not written ahead) written now if its lines can't change
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
                self.record.report, self.inputs.own_columns, self.record.errors_path))
        self._segments[ordinal] = segment
        self._lines_into(segment, identities, index, chunk, texts, keyed, [], {})
        return True

    def _lines_into(self, ahead: _Ahead, identities: Identities, index: int, chunk: RawChunk,
                    texts: dict[int, str], keyed: _Keyed, rows: list[Row], known: dict[str, Entry]) -> None:
        """A chunk's lines written by the first pass, into AHEAD (nothing of it is sent)."""
        accounted, self.accounted = self.accounted, ahead.accounted
        try:
            p = self._plan_of(identities, index, chunk, texts, keyed, rows, [], known, send=False)
        finally:
            self.accounted = accounted
        lines = _Lines(self, ahead.writer, index, chunk, p)
        lines.night, lines.counts = ahead.night, ahead.counts
        lines.said(0, len(chunk), False)
        lines.write()
        ahead.lines += len(chunk)

    def _segment_join(self, segment: _Ahead, writer: ReportWriter,
                      progress: Callable[[int, Counter[str]], None] | None) -> None:
        """The posting pass reached lines the first pass wrote (a segment, or those written
        ahead): appended, and counted."""
        writer.append(segment.writer)
        self.night.append(segment.night)
        self.record.counts.update(segment.counts)
        self.accounted.update(segment.accounted)
        if progress is not None:
            progress(segment.lines, self.record.counts)

    def _sent_tonight(self, keyed: _Keyed) -> bool:
        """Whether a keyed chunk has rows with the content or payload of a row to send tonight."""
        if self._ahead_sent is None:
            return True
        return any(among(keyed.k1, k1).any() or among(keyed.payloads, payloads).any()
                   for k1, payloads in self._ahead_sent)

    def _ahead_join(self, writer: ReportWriter, progress: Callable[[int, Counter[str]], None] | None
                    ) -> None:
        """The posting pass reached the lines written ahead, stopped: they are what it would
        write, and are appended to the report."""
        ahead = self.ahead
        assert ahead is not None
        self.ahead = None
        self._segment_join(ahead, writer, progress)

    def _ahead_drop(self) -> None:
        if self.ahead is not None:
            self.ahead.writer.discard()
            self.ahead = None

    def _written_drop(self) -> None:
        """Every line the first pass wrote, dropped (the run ends before the report is made)."""
        self._ahead_drop()
        for segment in {id(s): s for s in self._segments.values()}.values():
            segment.writer.discard()  # those joined are closed already
        self._segments = {}


def _final(keyed: _Keyed) -> bool:
    """Whether every valid row of a keyed chunk is one the journal created from its very line
    (`KeyedRows._created_here`): its lines are the same whatever tonight
    sends."""
    here = keyed.here
    return here is not None and len(here.positions) == len(keyed.positions)
