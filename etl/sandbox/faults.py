"""What the sandbox can be told to do wrong, and the seeded dice that decide when it does."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Faults a credit-use POST can be made to meet, by name (see `Faults` and `Sandbox.script`).
FAULT_NAMES = ("throttle", "unavailable", "error_after_create", "drop_after_create",
               "hang_after_create", "unsuccessful", "unauthorized", "reject", "error", "drop",
               "bad_gateway", "gateway_timeout", "gateway_timeout_late", "tls_after_create",
               "unavailable_after_create", "request_timeout_after_create", "blocked")
#: Faults a list (GET) answer can be made to meet (see `Faults` and `Sandbox.script_list`).
LIST_FAULT_NAMES = ("list_no_records", "list_throttle", "list_drop", "list_error", "list_ignore_page",
                    "list_shift")
#: The POST faults drawn at random, in the order the dice try them (new ones last, so an old
#: seed still draws the same faults as before).
_POST_DRAWS = ("unavailable", "error", "drop", "error_after_create", "drop_after_create",
               "hang_after_create", "unsuccessful", "reject", "bad_gateway", "gateway_timeout",
               "gateway_timeout_late", "tls_after_create", "unavailable_after_create",
               "request_timeout_after_create", "blocked")
SYSTEM_ID_MODES = ("store", "refuse", "drop")
DIR_ONE_MEANINGS = ("asc", "desc")


@dataclass
class Faults:
    """How the emulator misbehaves. Rates are probabilities per request (seeded, so repeatable)."""

    latency: float = 0.0  # seconds added to every request
    rate_limit: float = 0.0  # POSTs per second the server accepts (0: no limit); more get 409
    daily_limit: int = 0  # POSTs per UTC day (0: no limit); more get 409 with a long Retry-After
    unavailable: float = 0.0  # 503 before doing anything
    # 503 from a gateway that gave up on the request after the server had created the record
    unavailable_after_create: float = 0.0
    # create the record, then answer 408 Request Timeout (a server or proxy that gave up part-way)
    request_timeout_after_create: float = 0.0
    blocked: float = 0.0  # 403 from a firewall in front of the server, nothing created
    error_after_create: float = 0.0  # create the record, then answer 500
    error: float = 0.0  # answer 500 without creating anything (the other half of "ambiguous")
    drop: float = 0.0  # close the connection unanswered without creating anything
    drop_after_create: float = 0.0  # create the record, then close the connection unanswered
    hang_after_create: float = 0.0  # create the record, then answer only after `hang` seconds
    hang: float = 60.0
    # create the record, then break the TLS session (a record that fails its integrity check)
    # instead of answering: only with TLS (`Sandbox(tls=...)`)
    tls_after_create: float = 0.0
    unsuccessful: float = 0.0  # 200 with WasSuccessful: false, nothing created
    reject: float = 0.0  # 400 with Errors, nothing created
    retry_after: str | int = "1"  # a 409's Retry-After, sent verbatim: "1", "soon", an HTTP date
    token_ttl: float = 0.0  # seconds an access token lives (0: for ever)
    seed: int = 0
    # SystemId: "store" it, "refuse" a POST that has one (400), or "drop" it silently
    system_id: str = "store"
    ignore_system_id_filter: bool = False  # the list ignores CoworkerBookingCreditUseHistory_SystemId
    # clocks
    clock_skew: float = 0.0  # seconds added to the server's clock (CreatedOn, UpdatedOn, Date header)
    created_on_offset: float | None = None  # hours: CreatedOn in that local time, without an offset
    # what the server does to the fields it stores
    description_max: int = 0  # Description shortened to this many characters (0: no limit)
    description_trim: bool = False  # Description stripped, runs of spaces made one
    description_html: bool = False  # Description HTML-encoded (& < > " ')
    amount_round: int | None = None  # decimal places CreditUsed is stored with (None: exact)
    # record Ids: from one rising sequence (as Nexudus hands them out), or drawn at random
    ids_random: bool = False
    # gateways in front of the server (POSTs)
    bad_gateway: float = 0.0  # 502 from a proxy, nothing created
    gateway_timeout: float = 0.0  # 504 from a proxy at once, nothing created
    gateway_timeout_late: float = 0.0  # 504 at once; the record is created `late_delay` s later
    late_delay: float = 2.0
    # list answers (GETs of the list endpoint)
    list_no_records: float = 0.0  # 200 with the paging fields but no Records key
    list_throttle: float = 0.0  # 409 + Retry-After
    list_drop: float = 0.0  # connection closed unanswered
    list_error: float = 0.0  # 500
    list_ignore_page: float = 0.0  # page 1 whatever page was asked for, HasNextPage always true
    list_shift: float = 0.0  # pages after the first start one record earlier (an insert at the front)
    newest_first: bool = False  # a list without orderBy/dir sorts by Id descending, as the UI does
    dir_one: str = "asc"  # what dir=1 means: "asc" (the 1/-1 convention) or "desc" (the 0/1 one)
    # throttling and slow answers
    throttle_all: bool = False  # every credit-use POST answered 409
    read_rate_limit: float = 0.0  # GETs per second (lists, reads, credit lookups); more get 409
    trickle: float = 0.0  # seconds between the bytes of a credit-use POST's answer body
    # something that happens elsewhere as the Nth credit-use POST arrives (called with N, before
    # the POST is handled): a journal's lock taken away mid-run. A hook for tests in the same
    # process, not a knob: no option of `etl sandbox` can hold a function
    on_post: Any = field(default=None, metadata={"hook": True})

    def __post_init__(self) -> None:
        if self.system_id not in SYSTEM_ID_MODES:
            raise ValueError(f"system_id must be one of {SYSTEM_ID_MODES}, not {self.system_id!r}")
        if self.dir_one not in DIR_ONE_MEANINGS:
            raise ValueError(f"dir_one must be one of {DIR_ONE_MEANINGS}, not {self.dir_one!r}")


@dataclass
class Stats:
    """What the sandbox has seen: requests by kind, records created, faults by name."""

    posts: int = 0
    created: int = 0
    lists: int = 0
    reads: int = 0
    credit_lookups: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str) -> None:
        """One more fault called `name`."""
        with self._lock:
            self.faults[name] = self.faults.get(name, 0) + 1

    def add(self, counter: str) -> None:
        """One more of `counter` ("posts", "created", "lists", "reads", "credit_lookups")."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"posts": self.posts, "created": self.created, "lists": self.lists,
                    "reads": self.reads, "credit_lookups": self.credit_lookups,
                    "faults": dict(self.faults)}


class Dice:
    """Which fault the next request meets: scripted answers first, then a seeded draw."""

    def __init__(self, names: tuple[str, ...], seed: int | str) -> None:
        self.names = names
        self._script: deque[str] = deque()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def script(self, answers: tuple[str, ...]) -> None:
        unknown = set(answers) - {"ok", *self.names}
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        with self._lock:
            self._script.extend(answers)

    def roll(self, rates: list[tuple[str, float]]) -> str:
        """The next scripted answer, else one of `rates` (name, probability) or "ok"."""
        with self._lock:
            if self._script:
                return self._script.popleft()
            draw = self._random.random()
            for name, rate in rates:
                if draw < rate:
                    return name
                draw -= rate
            return "ok"


def post_rates(faults: Faults) -> list[tuple[str, float]]:
    return [(name, getattr(faults, name)) for name in _POST_DRAWS]


def list_rates(faults: Faults) -> list[tuple[str, float]]:
    return [(name, getattr(faults, name)) for name in LIST_FAULT_NAMES]


class Bucket:
    """A token bucket of one second's worth: more than `rate` requests a second are refused."""

    def __init__(self) -> None:
        self._tokens, self._at = 0.0, time.monotonic()
        self._lock = threading.Lock()

    def over(self, rate: float) -> bool:
        if not rate:
            return False
        with self._lock:
            now = time.monotonic()
            tokens = min(max(rate, 1.0), self._tokens + (now - self._at) * rate)
            self._at = now
            if tokens < 1.0:
                self._tokens = tokens
                return True
            self._tokens = tokens - 1.0
            return False
