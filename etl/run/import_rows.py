"""What an import works with while it runs, apart from the run itself (etl.run.importing): its
settings and the stop it obeys, a row about to be sent and what came of it, the rows of a chunk
in the order they go out, the keys of keyed rows, and a chunk's plan.
"""


from __future__ import annotations

import json
import re
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from etl import logs
from etl.errors import RunAborted
from etl.ledger.identity import (
    identity_text,
    scheme_columns,
)
from etl.ledger.rowkeys import (
    SeenKeys,
    key_hex,
)
from etl.outcomes import ExitStatus, Facts
from etl.post.answers import Stopped
from etl.post.poster import Result
from etl.run.checks import READ_RATE


@dataclass(frozen=True)
class Settings:
    batch_size: int = 50
    concurrency: int = 1
    max_errors: int = 50
    key: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    tag_description: bool = False
    system_id: bool = True
    allow_new_identity: bool = False
    timeout: float = 30.0
    gateway_settle: float = 600.0  # a 502/503/504/408's request is not taken as settled before this
    retry_rejected: bool = False  # send rows the API refused in an earlier run again
    # at the end, the longest the run waits in all for its rows in doubt to settle (each is
    # checked once it has, and sent again when proved absent)
    settle_wait: float = 1800.0
    account_checks: bool = True  # look the records rows refer to up before posting (etl.run.checks)
    read_rate: float = READ_RATE  # those look-ups a second


class Interrupted(RunAborted):
    """Ctrl-C or SIGTERM: no new request; those under way finish; the report is completed."""

    def __init__(self, signum: int) -> None:
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        super().__init__(f"interrupted ({name}): no new request is sent, those under way are "
                         "finished and the report completed; rerun to continue (again: stop at once)")
        self.exit_status = ExitStatus.TERMINATED if signum == signal.SIGTERM else ExitStatus.INTERRUPTED


class Stopper:
    """Why the run stops, set once, by a worker, the importer or a signal handler."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: BaseException | None = None
        self._lock = threading.Lock()

    def stop(self, reason: BaseException) -> None:
        with self._lock:
            if self.reason is None and not isinstance(reason, Stopped):
                self.reason = reason
                # an abort (exit 3) shows even with -q; the daily limit (exit 4) is a normal night
                say = logs.get("etl.importing").error if isinstance(reason, RunAborted) \
                    else logs.get("etl.importing").warning
                say(f"stopping: {reason}")
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass(slots=True)
class Row:
    position: int
    identity: str
    scheme: str
    body: dict[str, object]  # the payload, tagged if asked, without SystemId
    payload_hash: str
    source: str  # as the operator named it
    number: int
    legacy: str | None = None
    base: str | None = None
    occurrence: int | None = None
    before: str | None = None  # its identity as the release before values made it
    filled: frozenset[str] = frozenset()  # the identity's columns that have a value in it
    cells: dict[str, str] = field(default_factory=dict)  # every column's cell digest, by name
    texts: dict[str, str] = field(default_factory=dict)  # the identity's cells as it reads them
    keys: tuple[str, str] | None = None  # its content and payload keys (etl.ledger.rowkeys), when known


@dataclass(slots=True)
class _Fresh:
    """What the first pass keeps of a row the journal does not know."""

    payload_hash: str
    scheme: str
    source: str
    number: int
    filled: frozenset[str]


class _Sample:
    """The rows of a file a new journal looks up before it posts: its first HEAD rows to send
    (a run of another journal, killed or stopped by the quota, created a prefix of them: rows are
    sent in file order), rows spread evenly over the rest, whatever its length, and its last."""

    SIZE = 3
    HEAD = 12

    def __init__(self) -> None:
        self.head: list[Row] = []
        self.kept: list[tuple[int, Row]] = []
        self.stride = 1
        self.seen = 0
        self.last: Row | None = None

    def extend(self, rows: list[Row]) -> None:
        for row in rows:
            if len(self.head) < self.HEAD:
                self.head.append(row)
            elif self.seen % self.stride == 0:
                self.kept.append((self.seen, row))
                if len(self.kept) > 2 * self.SIZE:
                    self.stride *= 2
                    self.kept = [(k, r) for k, r in self.kept if k % self.stride == 0]
            self.seen += 1
            self.last = row

    def take(self, positions: np.ndarray, build: Callable[[list[int]], list[Row]]) -> None:
        """As `extend`, for the rows at POSITIONS (in file order) of a chunk, made by BUILD only
        where the sample keeps them."""
        if not len(positions):
            return
        head = [int(q) for q in positions[: max(0, self.HEAD - len(self.head))]]
        kept: list[tuple[int, int]] = []
        at = self.seen + len(head)
        end = self.seen + len(positions)
        while True:
            at = -(-at // self.stride) * self.stride  # the next row the sample keeps
            if at >= end:
                break
            kept.append((at, int(positions[at - self.seen])))
            if len(self.kept) + len(kept) > 2 * self.SIZE:
                self.stride *= 2
                self.kept = [(k, r) for k, r in self.kept if k % self.stride == 0]
                kept = [(k, q) for k, q in kept if k % self.stride == 0]
            at += 1
        last = int(positions[-1])
        made = {r.position: r for r in build(sorted({*head, *(q for _, q in kept), last}))}
        self.head.extend(made[q] for q in head)
        self.kept.extend((k, made[q]) for k, q in kept)
        self.last = made[last]
        self.seen = end

    def rows(self) -> list[Row]:
        rows = self.head + [r for _, r in self.kept]
        if self.last is not None and (not rows or rows[-1] is not self.last):
            rows.append(self.last)
        return rows


@dataclass
class Done:
    """A row after its sending: the state the ledger gave it and the last answer."""

    row: Row
    state: str
    result: Result


def tagged(payload: dict[str, object], identity: str) -> dict[str, object]:
    """The payload with a short import key stamped into Description, so that identical rows
    become distinguishable records (at the cost of a visible tag on each credit use)."""
    text = str(payload.get("Description") or "")
    return {**payload, "Description": (text + " " if text else "") + f"[etl:{identity[:12]}]"}


def system_id_of(identity: str) -> str:
    return f"etl-{identity[:32]}"


def _ordered(pool: ThreadPoolExecutor, send: Callable[[Row], Done], rows: Iterable[Row], window: int,
             stop: Stopper) -> Iterator[Done]:
    """Results of `send` over ROWS in order, at most WINDOW in flight; it ends at the first row
    not started (the run stopped), and takes no row from ROWS after that."""
    ahead: deque[Future[Done]] = deque()
    it = iter(rows)
    while True:
        while len(ahead) < window and not stop.is_set():
            row = next(it, None)
            if row is None:
                break
            ahead.append(pool.submit(send, row))
        if not ahead:
            break
        yield ahead.popleft().result()


class _ToSend:
    """A chunk's rows to send, in file order: the rows already made (those the journal knows
    something of) and, between them, rows made only when the sending reaches them, a few at a
    time (a night sends a few thousand rows of a file of millions)."""

    SLICE = 64

    def __init__(self, built: list[Row], plain: np.ndarray | None = None,
                 build: Callable[[list[int]], list[Row]] | None = None) -> None:
        self.built = {r.position: r for r in built}
        made = np.array(sorted(self.built), dtype=np.int64)
        if plain is None or not len(plain):
            self.positions = made
        else:  # PLAIN is sorted, without repeats (np.flatnonzero's)
            self.positions = plain if not len(made) else np.union1d(made, plain)
        self.build = build

    def __len__(self) -> int:
        return len(self.positions)

    def rows_at(self, positions: list[int]) -> list[Row]:
        need = [q for q in positions if q not in self.built]
        made = {r.position: r for r in self.build(need)} if need and self.build else {}
        return [self.built.get(q) or made[q] for q in positions]

    def __iter__(self) -> Iterator[Row]:
        """The rows, made a slice at a time; a row its maker finds it must not send (the journal
        knows it) is left out."""
        for start in range(0, len(self.positions), self.SLICE):
            part = [int(q) for q in self.positions[start: start + self.SLICE]]
            need = [q for q in part if q not in self.built]
            made = {r.position: r for r in self.build(need)} if need and self.build else {}
            for q in part:
                row = self.built.get(q) or made.get(q)
                if row is not None:
                    yield row


@dataclass
class _Keyed:
    """A chunk's valid rows keyed a chunk at a time (etl.ledger.rowkeys)."""

    positions: np.ndarray  # the valid rows' positions in the chunk
    k1: np.ndarray  # their contents' keys, two lanes
    k2: np.ndarray
    payloads: np.ndarray  # their payloads' keys
    exact: np.ndarray  # identified by the rules row by row (the journal knows the payload only)
    known: np.ndarray  # the journal has rows of that content (by its key)
    candidate: np.ndarray  # new content, with a payload the journal may have created
    occurrence: np.ndarray  # which of the file's identical rows each is
    occurrences: np.ndarray  # the same, as kept
    #: the rows the journal created from their very line, the one row of their content it has
    here: Here | None = None

    def assigned(self, which: np.ndarray) -> dict[int, tuple[int, str | None]]:
        return {q: (o, None) for q, o in zip(self.positions[which].tolist(),
                                              self.occurrence[which].tolist(), strict=True)}

    def plain(self) -> np.ndarray:
        return self.positions[~(self.exact | self.known | self.candidate)]

    def hex(self, k: int) -> tuple[str, str]:
        return key_hex(self.k1, self.k2, k), f"{int(self.payloads[k]):016x}"


@dataclass
class Here:
    """Rows of a chunk the journal created from their very line of the file, the one row of its
    content it has (`KeyedRows._created_here`): their lines, made a chunk at a time."""

    positions: np.ndarray  # in the chunk, sorted
    record_ids: np.ndarray  # the records created
    errors: Any  # their lines' notes (an Arrow array)


@dataclass
class _FileKeys:
    """What a pass over one file keys its rows against: the journal's contents and payloads
    when the file's first chunk was read, and the file's rows seen so far."""

    contents: np.ndarray  # the journal's content keys (first lane), sorted
    once: np.ndarray  # those of them the journal has one row of, sorted
    lacking: np.ndarray  # payload keys of its rows whose content key is not known
    maybe: np.ndarray  # payload keys of its rows created or maybe created
    repeated: np.ndarray  # contents (first lane) the file has more than once, when known
    seen: SeenKeys = field(default_factory=SeenKeys)
    again: list[np.ndarray] = field(default_factory=list)  # rows seen again, this pass
    writes: int = -1  # the journal's writes (Journal.writes) when it was read



class RowFacts(list[Facts]):
    """A chunk's facts, a row's each, and which rows share one Facts object (KINDS: a number a
    row, equal for rows of the same object): the report says runs of such rows at once
    (`etl.run.night.Night.write`) without looking at every row. A row given facts of its own
    gets a kind of its own."""

    def __init__(self, facts: list[Facts], kinds: np.ndarray) -> None:
        super().__init__(facts)
        self.kinds = kinds

    def __setitem__(self, pos: Any, facts: Any) -> None:
        super().__setitem__(pos, facts)
        self.kinds[pos] = -1 - pos  # a kind of its own (POS: one row's position)


@dataclass
class Plan:
    """One chunk's rows, decided against the journal: each row's facts (its report line is what
    `etl.outcomes.decide` makes of them), the rows to send, and the rows whose line may change
    before the run ends (position -> identity: rows in doubt, rows sent)."""

    facts: RowFacts
    to_send: list[Row] = field(default_factory=list)
    open: dict[int, str] = field(default_factory=dict)
    #: rows to send the journal knows nothing of, made when the sending reaches them
    plain: np.ndarray | None = None
    build: Callable[[list[int]], list[Row]] | None = None
    checked_late: bool = False  # the account checks' verdicts are given as rows are sent
    checked_to: int = -1  # ... after this position (those before were given theirs at once)
    here: Here | None = None  # rows created before from their very line: their lines' cells


_TAG = re.compile(r" ?\[etl:[0-9a-f]{12}\]$")


def changed_cells(sent: str, body: dict[str, object]) -> list[str]:
    """The fields whose value in BODY differs from the payload SENT (JSON), as "Field was X, now
    Y"; compared as values, without the import tag in Description."""
    then = json.loads(sent, parse_float=Decimal)
    then.pop("SystemId", None)  # etl's import key, not a cell
    out = []
    for name in sorted(set(then) | set(body)):
        was, now = then.get(name), body.get(name)
        if name == "Description":
            was, now = (_TAG.sub("", str(v)) if v is not None else None for v in (was, now))
        if identity_text(was) != identity_text(now):
            out.append(f"{name} was {_shown(was)}, now {_shown(now)}")
    return out


def _shown(value: object) -> str:
    if value is None or value == "":
        return "blank"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else identity_text(value)


def _identified_otherwise(row: _Fresh, scheme: str) -> bool:
    """Would ROW have been identified otherwise under SCHEME (an earlier row's)? Between two
    schemes of cells, only if the row has a value in a column SCHEME lacks, or SCHEME has a column
    the row's file lacks: a column empty on every row (tonight, or on the night of SCHEME) leaves
    a row's identity as it was. Between other schemes (a --key), whenever they differ."""
    if scheme == row.scheme:
        return False
    then, now = scheme_columns(scheme), scheme_columns(row.scheme)
    if then is None or now is None:
        return True
    return not (row.filled <= then and then <= now)
