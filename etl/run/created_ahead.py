"""The journal's rows created from a file's lines (`Lookups.created_at_lines`), read by a thread of
its own a window of lines at a time, ahead of the first pass that asks for them a chunk at a
time (`KeyedRows._find_created_here`): a night of a migration weeks in reads the rows of the
lines it has carried while it checks the chunk before, on the core the check leaves idle.

What it reads is never more than what asking at the chunk would read, a little earlier: a row
created meanwhile (by another machine sharing the journal) is not in it, and is found by its
content as any row the journal has. Anything it cannot answer (lines asked for again, a read
that failed or found cells not as etl writes them) is None: the caller asks the journal itself."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np
import pyarrow as arrow

from etl.ledger.lookups import CreatedLines

#: lines a read: a window holds about 2 MB of the journal's rows (a row, two lanes, an Id and a
#: time each), and at most two are read ahead of the one asked for
WINDOW = 1 << 15

_Window = tuple[int, int, CreatedLines | None]  # its first and last line, what was read


class CreatedAhead:
    """The rows created from lines FIRST to LAST of a file (the journal's first and last of
    them when the pass began), READ(first, last) WINDOW lines at a time by a thread of its own."""

    def __init__(self, read: Callable[[int, int], CreatedLines | None], first: int, last: int,
                 window: int = WINDOW, source: str = "") -> None:
        self._read, self._last, self._window = read, last, window
        self.source = source  # the file (its real path) whose lines these are
        self._ready: queue.Queue[_Window | None] = queue.Queue(maxsize=2)  # None: no more
        self._stop = threading.Event()
        self._held: list[_Window] = []  # read, and not yet behind the lines asked for
        self._asked = -(1 << 62)  # the first line of the last lines asked for
        self._done = False  # every window read was taken
        self._thread = threading.Thread(target=self._work, args=(first,), name="created-lines", daemon=True)
        self._thread.start()

    def _work(self, line: int) -> None:
        while line <= self._last and not self._stop.is_set():
            end = min(line + self._window - 1, self._last)
            try:
                found = self._read(line, end)
            except Exception:  # noqa: BLE001 - asked again at the chunk, where it is raised
                found = None
            if not self._put((line, end, found)):
                return
            line = end + 1
        self._put(None)

    def _put(self, item: _Window | None) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def lines(self, first: int, last: int) -> CreatedLines | None:
        """The rows created from lines FIRST to LAST (and maybe from lines around them), as
        `Lookups.created_at_lines` reads them; None where it cannot say (lines before those
        asked for last, a window not read)."""
        if first < self._asked or first > last:
            return None
        self._asked = first
        self._held = [w for w in self._held if w[1] >= first]
        while not self._done and (not self._held or self._held[-1][1] < last):
            window = self._ready.get()
            if window is None:
                self._done = True
            elif window[1] >= first:
                self._held.append(window)
        return _joined([w[2] for w in self._held if w[0] <= last])

    def close(self) -> None:
        """The thread stopped (before the journal is closed), what it read let go."""
        self._stop.set()
        self._thread.join()
        self._held = []


def _joined(parts: list[CreatedLines | None]) -> CreatedLines | None:
    """Windows' rows as one (None if a window was not read)."""
    found = []
    for part in parts:
        if part is None:
            return None
        if len(part.rows):
            found.append(part)
    if len(found) < 2:
        return found[0] if found else CreatedLines.none()
    rows, k1, k2, ids = (np.concatenate([getattr(p, f) for p in found])
                         for f in ("rows", "k1", "k2", "record_ids"))
    return CreatedLines(rows, k1, k2, ids, arrow.concat_arrays([p.created for p in found]))
