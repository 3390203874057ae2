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
is kept with it (`ids_rise`: "yes", "no"): a 200 whose Id is not above its row's fence, or a
listing whose new records are not all above the Ids the same listing showed before, says "no",
for good; a 200 above its fence, or new records above the old ones, says "yes". Until "yes",
and after "no", fences are not used and reconciliation places records by the server's clock.

Fences are evidence, not proof: Nexudus writes credit uses itself at any moment, so a record
inside a row's fence may be someone else's (see etl.reconciling for how that is weighed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from etl import logs
from etl.journal import Journal

#: the least time between two reads made only for a fence
FENCE_READ_EVERY = 2.0


class Fences:
    def __init__(self, journal: Journal, clock: Callable[[], float] = time.monotonic) -> None:
        self.journal = journal
        self.clock = clock
        self._lock = threading.Lock()
        # the largest Id received so far (0: the target had none): the journal's own records
        # were received in earlier runs, so a record made from now on is above them too
        self._max: int | None = journal.max_record_id()
        self._listed: dict[tuple[tuple[str, str], ...], set[int]] = {}
        self._last_read: float | None = None
        self._rise: str | None = journal.target_fact("ids_rise")
        self.log = logs.get("etl.fencing")

    # what the run has seen

    @property
    def low(self) -> int | None:
        """The lower fence of a request leaving now: the largest Id received so far."""
        with self._lock:
            return self._max

    def saw(self, ids: Iterable[int]) -> None:
        with self._lock:
            for i in ids:
                if isinstance(i, int) and not isinstance(i, bool) and (self._max is None or i > self._max):
                    self._max = i

    def saw_empty(self) -> None:
        """A read of the whole resource found no record at all: any record is newer."""
        with self._lock:
            if self._max is None:
                self._max = 0

    def saw_created(self, record_id: int, fence_low: int | None) -> None:
        """A 200 named RECORD_ID for a request whose lower fence was FENCE_LOW."""
        self.saw([record_id])
        if fence_low is not None and fence_low > 0:
            self._verdict("yes" if record_id > fence_low else "no",
                          f"record {record_id} was created after Id {fence_low} was seen")

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
            self._verdict("no" if below else "yes",
                          f"records new since the last listing ({', '.join(map(str, sorted(new)[:5]))}) "
                          + (f"include Ids below {top}" if below else f"are all above {top}"))

    def _verdict(self, value: str, why: str) -> None:
        with self._lock:
            if self._rise == "no" or self._rise == value:
                return
            self._rise = value
        self.journal.set_target_fact("ids_rise", value)
        say = self.log.info if value == "yes" else self.log.warning
        say(f"record Ids {'rise' if value == 'yes' else 'do not rise'} on {self.journal.target}: {why}"
            + ("" if value == "yes" else "; records are placed by the server's clock instead"))

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
