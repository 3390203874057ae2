"""The account checks on the keyed path (etl.run.importing): the rows within tonight's reach
given their verdicts with the plan, the rows after them as the sending reaches them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from etl.errors import EtlError
from etl.outcomes import Facts
from etl.run.checks import posts_left
from etl.run.import_base import ImporterBase
from etl.run.import_rows import Plan, Row, _ToSend


class CheckingRows(ImporterBase):
    """The account checks' verdicts on a keyed chunk's rows (see the module's docstring)."""

    def _check_within_reach(self, p: Plan) -> None:
        """A keyed chunk's rows to send within tonight's reach (twice the quota, as collected):
        made now and given the account checks' verdicts in input order, as every row of a chunk
        identified row by row is (a row they refuse is said invalid even where the run stops
        before it). Rows after them get theirs as the sending reaches them."""
        assert self.account is not None
        p.checked_late = True  # rows made from now on are kept in the journal once allowed
        room = max(0, 2 * self._reach - self._verdicts_given)
        taken: list[Row] = []
        unread: list[Row] = []
        if room:
            for r in _ToSend(p.to_send, p.plain, p.build):
                if self.account.lazy and not self.account.known(r.body):
                    # its records were not looked up before posting (the rows before it leave
                    # tonight's quota spent, unless the checks refuse many): it, and every row
                    # after it, is looked up if the sending reaches it, never for nothing now
                    unread.append(r)
                    self._verdicts_given = 2 * self._reach
                    break
                taken.append(r)
                if len(taken) >= room:
                    break
        self._verdicts_given += len(taken)
        last = taken[-1].position if taken else -1
        allowed = [r for r in taken if self._account_allows(p, r)]
        after = [r for r in p.to_send if r.position > last and not (unread and r is unread[0])]
        p.to_send = allowed + unread + after
        if p.plain is not None:
            p.plain = p.plain[p.plain > last]
        p.checked_to = last

    def _account_allows(self, p: Plan, r: Row) -> bool:
        """The account checks' verdict, in input order: a row they refuse is never sent (nor
        entered in the journal); their notes go on the row."""
        assert self.account is not None
        verdict = self.account.verdict(r.body, f"{r.source} row {r.number}")
        if verdict.problem:
            p.facts[r.position] = Facts(refused=verdict.problem)
            self.accounted[r.source] += 1  # invalid: never to post
            return False
        if verdict.notes:
            p.facts[r.position] = dataclasses.replace(p.facts[r.position], notes=tuple(verdict.notes))
        return True

    def _late_checked(self, p: Plan, rows: Iterator[Row]) -> Iterator[Row]:
        """ROWS, the account checks' verdicts given as the sending reaches them (after
        p.checked_to): a row whose records were looked up is given its verdict a few rows ahead
        (a slice's rows are kept in the journal together), one whose records were not when the
        sending reaches it. A row they refuse is never sent, nor kept."""
        assert self.account is not None
        ready: list[Row] = []
        for r in rows:
            if r.position <= p.checked_to:
                ready.append(r)  # given its verdict with the plan, and kept with it
            elif self.account.known(r.body):
                if self._account_allows(p, r):
                    ready.append(r)
            else:
                yield from self._kept(p, ready)
                ready = []
                if self._late_allows(p, r):
                    yield from self._kept(p, [r])
            if len(ready) >= _ToSend.SLICE:
                yield from self._kept(p, ready)
                ready = []
        yield from self._kept(p, ready)

    def _kept(self, p: Plan, rows: list[Row]) -> list[Row]:
        """Rows allowed after p.checked_to, into the journal before they are sent."""
        self._keep([r for r in rows if r.position > p.checked_to])
        return rows

    def _late_allows(self, p: Plan, r: Row) -> bool:
        """The account checks' verdict on a row the sending reaches (its records may be looked
        up now; none once tonight's quota is spent): a look-up the run can't go on after (the
        token refused, the API gone) stops the run as a POST meeting it does, the row not sent."""
        assert self.account is not None
        if not self.account.known(r.body) and not posts_left(self.journal, self.poster.daily_limit):
            return True  # not sent tonight (the quota is spent, its sending says so): no look-up
        try:
            return self._account_allows(p, r)
        except EtlError as exc:
            self.stopper.stop(exc)
            p.facts[r.position] = dataclasses.replace(p.facts[r.position], why=f"not sent: {exc}")
            return False
