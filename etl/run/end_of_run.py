"""The import's rows in doubt (etl.run.importing): checked batch by batch and after errors in a
row, and at the end settled, checked, and those proved absent sent again; the report made
whole."""

from __future__ import annotations

import dataclasses
import time

from etl.errors import RunAborted
from etl.ledger.entries import Entry, clock
from etl.ledger.life import ABSENT_REASON
from etl.outcomes import Outcome, Said
from etl.post.verdicts import parse_body, settle_time
from etl.report.reporting import ReportWriter
from etl.run.import_base import ImporterBase
from etl.run.import_rows import Plan, Row

#: how many times, at the end of a run, rows proved not created are sent again
FINAL_ROUNDS = 3


class EndOfRun(ImporterBase):
    """Rows in doubt checked during the run and at its end; the report made whole."""

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


def _cells(said: Said) -> tuple[str, int | None, int | None, int | None, str]:
    return said.outcome.value, said.record_id, said.http_status, said.attempts, said.errors

