"""The import's rows in doubt (etl.run.importing): checked batch by batch and after errors in a
row, and at the end settled, checked, and those proved absent sent again; the report made
whole."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

from etl.errors import RunAborted
from etl.ledger.entries import Entry, clock
from etl.ledger.life import ABSENT_REASON
from etl.outcomes import Outcome, Said
from etl.post.verdicts import parse_body, settle_time, settles_at
from etl.report.reporting import ReportWriter
from etl.run.import_base import ImporterBase
from etl.run.import_rows import Plan, Row

#: how many times, at the end of a run, one row proved not created is sent again
FINAL_ROUNDS = 3
#: rows in doubt that settle this close after the first to settle are checked with it
CHECK_TOGETHER = 2.0
#: a wait is announced again when rows sent again make it this much longer
ANNOUNCE_AGAIN = 60.0


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
            entry = entries.get(r.identity)
            p.facts[r.position] = dataclasses.replace(p.facts[r.position],
                                                      entry=entry.lean() if entry is not None else None)

    # --- the end: rows in doubt settle, are checked, and those proved absent are sent again ------

    def _will_settle(self) -> bool:
        """Whether `_final_pass` has rows to wait for."""
        return not self.stopper.is_set() and bool(self.doubtful)

    def _final_pass(self) -> None:
        """This run's rows in doubt are checked once their requests have settled, and those
        proved absent (then, or by a check during the run) are sent again, until none is left
        that can settle within --settle-wait.

        Time is the only proof of "not created" there is: a request answered by a gateway
        (502, 503, 504, 408) may still be carried out by the application behind it until
        --gateway-settle has passed, and nothing the server shows before then says it will not
        be (no record yet proves nothing; Ids handed to later records only say those were made
        later). So each row is checked again once its own request has settled, never before."""
        if not self._will_settle():
            return
        deadline = clock() + self.settings.settle_wait
        resent: Counter[str] = Counter()
        looked: dict[str, float | None] = {}  # rows checked once settled: their last send then
        first, told = True, 0.0  # told: the end of the wait last announced
        while not self.stopper.is_set():
            now = list(self.journal.lookup(self.doubtful).values())
            absent = [e for e in now if e.state == Outcome.FAILED.value and e.reason == ABSENT_REASON
                      and resent[e.identity] < FINAL_ROUNDS]
            if absent:
                for e in absent:
                    self._stop_if_moved()
                    if self.stopper.is_set():
                        return
                    resent[e.identity] += 1
                    # proved absent by reconciliation after its request's whole window (the
                    # ledger's FAILED / ABSENT_REASON): no record of it exists or can still
                    # appear, so this send cannot make a second credit use (see _resend)
                    self._resend(e)
                continue  # their answers: checked as any row in doubt
            doubt = [e for e in now if e.state == Outcome.IN_DOUBT.value]
            if first:
                # one look at every row once this run's own requests have settled: the request
                # of a gateway's answer, or of a killed run sent with a longer time-out, may be
                # proved created meanwhile (its record shows up)
                first = False
                if not doubt:
                    return
                longest = clock() + settle_time(self.settings.timeout)
                until = min(deadline, max(min(settles_at(e), longest) for e in doubt))
                due: list[Entry] | None = doubt
                say = (f"waiting {until - clock():.0f} s for requests in doubt to settle before "
                       f"checking them ({len(doubt)} rows; Ctrl-C stops; a rerun checks them)")
            else:
                # then each row once its own request has settled (a gateway's, later), if that
                # is within --settle-wait
                left = [e for e in doubt if looked.get(e.identity, -1.0) != e.last_sent
                        and settles_at(e) <= deadline]
                if not left:
                    return
                # the first to settle, with those that settle soon after it: one check for them
                first_due = min(settles_at(e) for e in left)
                until = max(t for e in left if (t := settles_at(e)) <= first_due + CHECK_TOGETHER)
                due = None
                last = max(settles_at(e) for e in left)
                say = "" if last < told + ANNOUNCE_AGAIN else (
                    f"waiting up to {last - clock():.0f} s for {len(left)} rows in doubt whose requests "
                    "settle later (a gateway's answer: --gateway-settle; --settle-wait bounds the "
                    "wait), each checked once settled and sent again if not created (Ctrl-C stops; "
                    "a rerun checks them)")
                told = max(told, last)
            if until > clock() and say:
                self.log.warning(say)
            if not self._wait_until(until):
                return
            at = clock()
            if due is None:
                due = [e for e in left if settles_at(e) <= at]
            for e in due:
                if settles_at(e) <= at:
                    looked[e.identity] = e.last_sent
            self.reconciler.reconcile(due, final=True)

    def _wait_until(self, until: float) -> bool:
        """Wait until UNTIL (our clock) unless the run stops meanwhile (False)."""
        while clock() < until and not self.stopper.is_set():
            time.sleep(min(0.2, max(0.0, until - clock())))
        return not self.stopper.is_set()

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
        changed = self.night.decide_again(self.journal.lookup)
        # the lines of batches that sent rows were made durable as each was written (the
        # contract's --batch-size); those of rows that sent nothing (not attempted, skipped,
        # invalid: most of a migration's night) are handed to the system without waiting for
        # the disk: an fsync of them would write the whole report again (1M rows: ~0.08 s)
        self.record.attention = writer.finish({i: _cells(s) for i, s in changed.items()}, sync=False)
        self.record.counts = self.night.counts()
        for what, n in (self.notes + self.night.notes()).items():
            self.record.extra.setdefault("notes", {})[what] = n


def _cells(said: Said) -> tuple[str, int | None, int | None, int | None, str]:
    return said.outcome.value, said.record_id, said.http_status, said.attempts, said.errors

