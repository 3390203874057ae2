"""Pacing POSTs: evenly spaced starts at up to `rate` a second, shared by every worker.

A token bucket that holds one token: a send may start at most every 1/rate seconds, and time
not used is not saved up for a burst later. When the server throttles (409/429), everyone
waits out its Retry-After before the next send, and the pace drops (multiplicative decrease);
each answered request then wins a little of it back (additive increase), never above `rate`.
So a server whose real limit is below `--rate` settles the pace just under it instead of
throttling every other request. With `burst` above 1 (reads, whose limits are per minute and
per hour), up to `burst` starts may follow each other at once after a quiet spell: a few
look-ups cost no waiting, and a long run of them still keeps to `rate`. `clock` and `sleep`
come in as parameters so tests drive a fake clock and run in microseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: after a throttle the pace is multiplied by this
BACK_OFF = 0.9
#: each answered request brings the pace back up by this share of the ceiling
RECOVER = 0.002
#: the pace never drops below one request a minute
FLOOR = 1 / 60


class Pacer:
    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0")
        self.ceiling = rate
        self.rate = rate
        #: starts that may follow each other at once after a quiet spell (1: none)
        self.burst = max(1, burst)
        self.clock = clock
        self.sleep = sleep
        self._next = clock()
        self._lock = threading.Lock()
        self.throttled = 0

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def acquire(self) -> float:
        """Wait for this caller's send slot; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            due = max(self._next, now)
            start = max(now, due - (self.burst - 1) * self.interval)
            self._next = due + self.interval
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """The server said 'slow down': no send starts for SECONDS from now, for anyone, and the
        pace drops."""
        with self._lock:
            self.throttled += 1
            self.rate = max(min(FLOOR, self.ceiling), self.rate * BACK_OFF)
            # and no burst after it: the starts that follow are evenly spaced again
            self._next = max(self._next, self.clock() + seconds + (self.burst - 1) * self.interval)

    def answered(self) -> None:
        """A request got through: win back a little of the pace."""
        with self._lock:
            self.rate = min(self.ceiling, self.rate + RECOVER * self.ceiling)
