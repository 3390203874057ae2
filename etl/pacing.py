"""Pacing POSTs: evenly spaced starts at `rate` a second, shared by every worker.

A token bucket that holds one token: a send may start at most every 1/rate seconds, and time
not used is not saved up for a burst later. When the server throttles (409/429), everyone
waits out its Retry-After before the next send. `clock` and `sleep` come in as parameters so
tests drive a fake clock and run in microseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0")
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next = clock()
        self._lock = threading.Lock()
        self.throttled = 0

    def acquire(self) -> float:
        """Wait for this caller's send slot; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            start = max(self._next, now)
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """The server said 'slow down': no send starts for SECONDS from now, for anyone."""
        with self._lock:
            self.throttled += 1
            self._next = max(self._next, self.clock() + seconds)
