"""Time without clocks: record Ids as fences around a row's request.

Nexudus hands record Ids out from one increasing sequence, in the order its database commits
them. So a record created for a row's request has an Id above every Id this program had
received before that request left (an Id received was committed before; the row's record is
committed after the request arrives): that is the row's *lower fence*, kept in the journal
(`fence_low`). Fences come from Ids the run sees anyway (the Ids of 200 answers and listings,
the records the journal holds from earlier runs), and from one read of the newest Id after an
ambiguous answer (never more often than `FENCE_READ_EVERY`, and paced with the POSTs, so reads
stay within the API's 120 a minute).

Nothing promises rising Ids, so they are checked at run time, on this target, and the verdict
is kept with it (`ids_rise`: "yes", "no"): a 200 whose Id is not above its row's fence, a
listing whose new records are not all above the Ids the same listing showed before, or a record
the server's clock places after a request left whose Id is at or below that request's fence,
says "no", for good; enough records seen to rise (200s above their fences, new records of a
listing all above its old ones) that random Ids would look so less than once in 500 say "yes"
(`RISE_EVIDENCE`). Until "yes", and after "no", fences are not used and reconciliation places
records by the server's clock.

A lower fence only *excludes* records (an Id at or below it is not the row's record). To
*admit* a record as a row's, reconciliation needs both ends of the row's window in time:
- the fence must be fresh: it was known since `fence_at` (our clock) that any record above
  it is new, from a read of the newest Id, or a 200 for a request sent then (an Id merely
  received, such as the journal's own records of earlier runs, tells nothing of when later
  ones were made); a fence is fresh when the request left soon after `fence_at`;
- a *higher fence*: an Id seen (in any answer) by a time soon after the row's request
  settled; every record at or below it had been made by then (`ceiling`).

Fences are evidence, not proof: Nexudus writes credit uses itself at any moment, so a record
inside a row's fence may be someone else's (see etl.post.reconciling for how that is weighed).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from etl import logs
from etl.ledger.journal import Journal

#: the least time between two reads made only for a fence
FENCE_READ_EVERY = 2.0
#: how sure, in bits, that Ids rise before they are used as fences: the odds that Ids drawn at
#: random would have looked as they did are below 1 in 500. The k-th 200 in a row above its
#: fence is log2(k + 1) bits (random Ids rise k times in a row once in (k + 1)!: five 200s are
#: 1 in 720), a listing whose k new records are all above its m old ones log2(C(m + k, k)); each
#: record counts once. One that does not rise is enough to say they do not
RISE_EVIDENCE = math.log2(500)


class Fences:
    def __init__(self, journal: Journal, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.clock = clock
        self.now = now  # the journal's clock (epoch seconds): fence_at, ceilings
        self._lock = threading.Lock()
        # the largest Id received so far (0: the target had none): the journal's own records
        # were received in earlier runs, so a record made from now on is above them too
        self._max: int | None = journal.max_record_id()
        # since when a record above _max is known to be new (None: not known, an old fence)
        self._since: float | None = None
        # the largest Id seen by each time (epoch seconds, rising): a higher fence for rows
        # whose request settled by then
        self._seen: list[tuple[float, int]] = []
        if self._max is not None:
            self._seen.append((now(), self._max))
        self._listed: dict[tuple[tuple[str, str], ...], set[int]] = {}
        self._last_read: float | None = None
        self._rise: str | None = journal.target_fact("ids_rise")
        # how many times Ids were seen to rise (a journal of a release that took one as enough
        # has "yes" and no count: it counts again from one)
        self._bits = _float(journal.target_fact("ids_rise_seen"))
        self._rising = 0  # 200s above their fences, one after another
        self._counted: set[int] = set()  # records already counted as rising
        if self._rise == "yes" and self._bits < RISE_EVIDENCE:
            self._rise = None  # said by a release that took one rise as enough: counted again
        self.log = logs.get("etl.fencing")

    # what the run has seen

    def fence(self) -> tuple[int | None, float | None]:
        """The lower fence of a request leaving now, and since when a record above it is known
        to be new (None: not known)."""
        with self._lock:
            return self._max, (self._since if self._max is not None else None)

    def ceiling(self, by: float) -> int | None:
        """The largest Id seen by time BY (epoch seconds): every record at or below it had been
        made by then. None when no Id was seen by then."""
        with self._lock:
            at = bisect.bisect_right(self._seen, (by, float("inf"))) - 1
            return self._seen[at][1] if at >= 0 else None

    def saw(self, ids: Iterable[int]) -> None:
        with self._lock:
            top = self._max
            for i in ids:
                if isinstance(i, int) and not isinstance(i, bool) and (top is None or i > top):
                    top = i
            self._raise(top)

    def _raise(self, top: int | None) -> None:
        """(Holding the lock) TOP was seen now."""
        if top is None or (self._max is not None and top <= self._max):
            return
        self._max = top
        # a record above the new fence is above the old one too: what was known of it holds
        when = self.now()
        if self._seen and self._seen[-1][0] >= when:
            when = self._seen[-1][0]
        self._seen.append((when, top))

    def saw_newest(self, ids: Iterable[int], since: float) -> None:
        """A read of the newest Ids of the whole resource, sent at SINCE (epoch seconds): any
        record made before it arrived is at or below the largest of IDS (or below every Id,
        when IDS is empty and the resource held no record)."""
        ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
        with self._lock:
            if self._max is None and not ids:
                self._max = 0
            top = max(ids, default=None)
            if self._max and (top is None or top < self._max):
                # it showed nothing as new as a record already seen: not the newest records (a
                # server that ignores the page asked for answers the oldest), so what it showed
                # is a fence, and not a fresh one
                self.log.warning(f"a read of the newest record showed Id {top}, below Id {self._max} "
                                 "seen before: not taken as the newest")
                return
            self._raise(top)
            self._since = since if self._since is None else max(self._since, since)

    def saw_empty(self, since: float | None = None) -> None:
        """A read of the whole resource found no record at all: any record is newer."""
        if since is not None:
            self.saw_newest([], since)
            return
        with self._lock:
            if self._max is None:
                self._max = 0

    def saw_created(self, record_id: int, fence_low: int | None, sent_at: float | None = None) -> None:
        """A 200 named RECORD_ID for a request whose lower fence was FENCE_LOW, sent no earlier
        than SENT_AT (epoch seconds): a record above RECORD_ID was made after it, so after then."""
        self.saw([record_id])
        if sent_at is not None:
            with self._lock:
                self._since = sent_at if self._since is None else max(self._since, sent_at)
        if fence_low is not None and fence_low > 0:
            rose = record_id > fence_low
            with self._lock:
                fresh = rose and record_id not in self._counted
                if fresh:
                    self._counted.add(record_id)
                    self._rising += 1
                bits = math.log2(self._rising + 1) if fresh else 0.0
            self._verdict("yes" if rose else "no",
                          f"record {record_id} was created after Id {fence_low} was seen", bits)

    def saw_listing(self, params: dict[str, Any], ids: Iterable[int]) -> None:
        """A complete listing of PARAMS: new Ids since the same listing was last read must all be
        above the Ids it showed then."""
        now = {i for i in ids if isinstance(i, int) and not isinstance(i, bool)}
        self.saw(now)
        key = tuple(sorted((str(k), str(v)) for k, v in params.items() if k not in ("page", "size")))
        with self._lock:
            before = self._listed.get(key)
            self._listed[key] = now
        if not before:
            return
        new = now - before
        if new:
            top = max(before)
            below = sorted(i for i in new if i < top)
            with self._lock:
                fresh = [i for i in new if i not in self._counted]
                self._counted.update(fresh)
            bits = math.log2(math.comb(len(before) + len(fresh), len(fresh))) if fresh and not below else 0.0
            self._verdict("no" if below else "yes",
                          f"records new since the last listing ({', '.join(map(str, sorted(new)[:5]))}) "
                          + (f"include Ids below {top}" if below else f"are all above {top}"), bits)

    def _verdict(self, value: str, why: str, bits: float = 0.0) -> None:
        """VALUE "no" is for good at once; "yes" adds BITS of evidence, and says so once they
        reach RISE_EVIDENCE (Ids drawn at random rise now and then: one 200 above its fence is a
        coin toss, and fences that exclude records wrongly send rows again)."""
        with self._lock:
            if self._rise == "no" or self._rise == value:
                return
            if value == "yes":
                if not bits:
                    return
                self._bits += bits
                total = self._bits
            if value == "yes" and total < RISE_EVIDENCE:
                self.journal.set_target_fact("ids_rise_seen", f"{total:.3f}")
                return
            self._rise = value
        if value == "yes":
            self.journal.set_target_fact("ids_rise_seen", f"{total:.3f}")
        self.journal.set_target_fact("ids_rise", value)
        say = self.log.info if value == "yes" else self.log.warning
        say(f"record Ids {'rise' if value == 'yes' else 'do not rise'} on {self.journal.target}: {why}"
            + ("" if value == "yes" else "; records are placed by the server's clock instead"))

    def contradicted(self, why: str) -> None:
        """A record the server's clock places after a request left, at or below that request's
        fence: Ids and clock disagree, so Ids are not trusted as fences any more."""
        self._verdict("no", why)

    @property
    def usable(self) -> bool:
        """Whether Ids may be used as fences on this target (they were seen to rise)."""
        with self._lock:
            return self._rise == "yes"

    # a read made only for a fence

    def due(self) -> bool:
        """Whether a read made only for a fence may be made now (after an ambiguous answer)."""
        with self._lock:
            now = self.clock()
            if self._last_read is not None and now - self._last_read < FENCE_READ_EVERY:
                return False
            self._last_read = now
            return True


def _float(text: str | None) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0
