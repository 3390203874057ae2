"""The emulator's state and lifecycle: tokens, clocks, fault dice, rate limits, records, credits."""

from __future__ import annotations

import datetime as dt
import random
import secrets
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any, cast

from etl.sandbox import rules
from etl.sandbox.faults import (
    FAULT_NAMES,
    LIST_FAULT_NAMES,
    Bucket,
    Dice,
    Faults,
    Stats,
    list_rates,
    post_rates,
)
from etl.sandbox.handler import handler
from etl.sandbox.store import CreditRefused, Store


class _Server(ThreadingHTTPServer):
    """The emulator's HTTP server. A client that goes away mid-answer (time-outs, Ctrl-C,
    dropped connections and broken TLS sessions are the emulator's daily bread) is not an error
    worth a trace; any other error in a handler goes to the process's own stderr, never to
    whatever stream a caller has put in `sys.stderr` at that moment (a handler thread outlives
    the run that started it)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        if sys.__stderr__ is not None:
            traceback.print_exc(file=sys.__stderr__)


class Sandbox:
    """The emulator: `start()` serves it on 127.0.0.1 in a thread; `url` is its base URL."""

    def __init__(
        self,
        *,
        port: int = 0,
        faults: Faults | None = None,
        db: str = ":memory:",
        username: str = "sandbox@example.com",
        password: str = "sandbox-password",
        tokens: tuple[str, ...] = (),
        credits: Iterable[Mapping[str, Any]] = (),
        tls: tuple[str, str] | None = None,
    ) -> None:
        """TLS: (certificate file, key file), PEM: serve https with them (a self-signed pair
        made for a rehearsal or a test; the client is told to trust it with REQUESTS_CA_BUNDLE)."""
        self.faults = faults or Faults()
        self.store = Store(db)
        for credit in credits:
            self.store.add_credit(credit, replace=False)
        self.username = username
        self.password = password
        self.stats = Stats()
        self._tokens: dict[str, float] = {t: float("inf") for t in tokens}
        self._refresh: set[str] = set()
        self._lock = threading.Lock()
        self._posts = Dice(FAULT_NAMES, self.faults.seed)
        self._lists = Dice(LIST_FAULT_NAMES, f"lists/{self.faults.seed}")
        self._post_rate, self._read_rate = Bucket(), Bucket()
        self._ids = random.Random(f"ids/{self.faults.seed}")
        self._timers: list[threading.Timer] = []
        self.server = _Server(("127.0.0.1", port), handler(self))
        self.server.daemon_threads = True
        self.tls = tls is not None
        if tls is not None:
            try:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*tls)
                self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            except BaseException:  # a pair it can't use: the port is let go, not left to the GC
                self.server.server_close()
                raise
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = cast("tuple[str, int]", self.server.server_address[:2])
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def start(self) -> Sandbox:
        # a short poll, so stop() returns at once rather than after up to half a second
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; records still due from a late gateway time-out are never created."""
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults ---------------------------------------------------------------------------

    def script(self, *answers: str) -> None:
        """The next POSTs meet these faults, in order ("ok" for none), before any random ones."""
        self._posts.script(answers)

    def script_list(self, *answers: str) -> None:
        """The next list GETs meet these faults, in order ("ok" for none), before any random ones."""
        self._lists.script(answers)

    def next_fault(self) -> str:
        return self._posts.roll(post_rates(self.faults))

    def next_list_fault(self) -> str:
        return self._lists.roll(list_rates(self.faults))

    def over_rate(self) -> bool:
        """More than `rate_limit` POSTs a second get 409."""
        return self._post_rate.over(self.faults.rate_limit)

    def over_read_rate(self) -> bool:
        """More than `read_rate_limit` GETs a second get 409."""
        return self._read_rate.over(self.faults.read_rate_limit)

    # --- tokens ---------------------------------------------------------------------------

    def issue_token(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        ttl = self.faults.token_ttl
        with self._lock:
            self._tokens[access] = time.monotonic() + ttl if ttl else float("inf")
            self._refresh.add(refresh)
        return {"access_token": access, "token_type": "bearer",
                "expires_in": int(ttl) if ttl else 604799, "refresh_token": refresh}

    def refreshable(self, token: str | None) -> bool:
        with self._lock:
            return token in self._refresh

    def expire_tokens(self) -> None:
        """Every access token stops working now (refresh tokens still do)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        with self._lock:
            return self._tokens.get(header[7:], 0.0) > time.monotonic()

    # --- clocks ---------------------------------------------------------------------------

    def clock(self) -> float:
        """The server's clock (Unix seconds): this machine's plus `clock_skew`."""
        return time.time() + self.faults.clock_skew

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def stamps(self) -> tuple[str, str]:
        """CreatedOn and UpdatedOn for a record made now.

        CreatedOn is UTC with its offset, or with `created_on_offset` the account's local time
        without one, as some accounts answer; UpdatedOn is always UTC.
        """
        now = self.now()
        offset = self.faults.created_on_offset
        if offset is None:
            return now.isoformat(), now.isoformat()
        local = (now + dt.timedelta(hours=offset)).replace(tzinfo=None)
        return local.isoformat(timespec="milliseconds"), now.isoformat()

    # --- records and credits --------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> int:
        """Create a valid credit use as the server would; raises `CreditRefused`."""
        created_on, updated_on = self.stamps()
        chosen = self.store.free_id(self._ids) if self.faults.ids_random else None
        record_id = self.store.create(rules.stored(body, self.faults), created_on=created_on,
                                      updated_on=updated_on, enforce=True, record_id=chosen)
        self.stats.add("created")
        return record_id

    def create_later(self, body: dict[str, Any]) -> None:
        """Create the record `late_delay` seconds from now (a request a gateway gave up on)."""

        def create() -> None:
            try:
                self.create(body)
            except CreditRefused:
                self.stats.count("late_refused")

        timer = threading.Timer(self.faults.late_delay, create)
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def add_credit(self, credit_id: int, total: float | str, remaining: float | str | None = None,
                   valid_from: str | dt.date | None = None, expires: str | dt.date | None = None,
                   coworker: int | None = None) -> None:
        """Declare a booking credit (replacing one with that id); from now on only declared
        credits exist, and a use that would take one below zero is refused."""
        self.store.add_credit({"Id": credit_id, "TotalCredit": total, "RemainingCredit": remaining,
                               "ValidFrom": valid_from, "ExpireDate": expires, "CoworkerId": coworker})
