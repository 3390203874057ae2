"""A Nexudus emulator over real HTTP on localhost: rehearsals for operators, the server for tests.

It speaks the parts of the Spaces API the importer uses (the token endpoint, the credit-use POST
and list) with the documented bodies, and can misbehave on purpose: latency, a rate limit
answered with 409 + Retry-After, a daily quota, 503s, 500 or a dropped connection *after*
creating the record, a hang past the client's time-out, `WasSuccessful: false`, expiring tokens.
Records live in SQLite: in memory, or in a file for a rehearsal that spans runs.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import socket
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CREDIT_USES = "/api/billing/coworkerbookingcreditusehistories"
FILTERS = {
    "CoworkerBookingCreditUseHistory_CoworkerBookingCredit": "CoworkerBookingCreditId",
    "CoworkerBookingCreditUseHistory_Booking": "BookingId",
    "CoworkerBookingCreditUseHistory_CoworkerInvoiceLine": "CoworkerInvoiceLineId",
    "CoworkerBookingCreditUseHistory_EventAttendee": "EventAttendeeId",
    "CoworkerBookingCreditUseHistory_Description": "Description",
}
#: Faults that a POST can be made to meet, by name (see `Faults` and `Sandbox.script`).
FAULT_NAMES = ("throttle", "unavailable", "error_after_create", "drop_after_create",
               "hang_after_create", "unsuccessful", "unauthorized", "reject", "error", "drop")


@dataclass
class Faults:
    """How the emulator misbehaves. Rates are probabilities per POST (seeded, so repeatable)."""

    latency: float = 0.0  # seconds added to every request
    rate_limit: float = 0.0  # POSTs per second the server accepts (0: no limit); more get 409
    daily_limit: int = 0  # POSTs per UTC day (0: no limit); more get 409 with a long Retry-After
    unavailable: float = 0.0  # 503 before doing anything
    error_after_create: float = 0.0  # create the record, then answer 500
    error: float = 0.0  # answer 500 without creating anything (the other half of "ambiguous")
    drop: float = 0.0  # close the connection unanswered without creating anything
    drop_after_create: float = 0.0  # create the record, then close the connection unanswered
    hang_after_create: float = 0.0  # create the record, then answer only after `hang` seconds
    hang: float = 60.0
    unsuccessful: float = 0.0  # 200 with WasSuccessful: false, nothing created
    reject: float = 0.0  # 400 with Errors, nothing created
    retry_after: int = 1  # seconds a 409 asks the client to wait
    token_ttl: float = 0.0  # seconds an access token lives (0: for ever)
    seed: int = 0


@dataclass
class Stats:
    posts: int = 0
    created: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.faults[name] = self.faults.get(name, 0) + 1


class Store:
    """The emulator's records, in SQLite (':memory:' or a file)."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.lock = threading.Lock()
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS credit_uses (Id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "CoworkerBookingCreditId INTEGER, CreditUsed TEXT, Description TEXT, BookingId INTEGER, "
            "CoworkerInvoiceLineId INTEGER, EventAttendeeId INTEGER, CreatedOn TEXT)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS posts (day TEXT PRIMARY KEY, n INTEGER)")
        if not self.db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'credit_uses'").fetchone():
            # ids start at 87654321, as in the docs, so they never look like row numbers
            self.db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('credit_uses', 87654320)")

    def create(self, body: dict[str, Any]) -> int:
        with self.lock:
            cur = self.db.execute(
                "INSERT INTO credit_uses (CoworkerBookingCreditId, CreditUsed, Description, BookingId,"
                " CoworkerInvoiceLineId, EventAttendeeId, CreatedOn) VALUES (?,?,?,?,?,?,?)",
                (body["CoworkerBookingCreditId"], str(body["CreditUsed"]), body.get("Description"),
                 body.get("BookingId"), body.get("CoworkerInvoiceLineId"), body.get("EventAttendeeId"),
                 dt.datetime.now(dt.UTC).isoformat()),
            )
            return int(cur.lastrowid or 0)

    def records(self, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM credit_uses", []
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
            args = [str(v) if k == "CreditUsed" else v for k, v in where.items()]
        with self.lock:
            cur = self.db.execute(sql + " ORDER BY Id", args)
            names = [c[0] for c in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            r["CreditUsed"] = float(Decimal(r["CreditUsed"]))
            r["UniqueId"] = f"00000000-0000-0000-0000-{r['Id']:012d}"
        return rows

    def count_post(self, day: str) -> int:
        with self.lock:
            self.db.execute(
                "INSERT INTO posts VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET n = n + 1", (day,)
            )
            return int(self.db.execute("SELECT n FROM posts WHERE day = ?", (day,)).fetchone()[0])


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
    ) -> None:
        self.faults = faults or Faults()
        self.store = Store(db)
        self.username = username
        self.password = password
        self.stats = Stats()
        self._tokens: dict[str, float] = {t: float("inf") for t in tokens}
        self._refresh: set[str] = set()
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._allowance = (0.0, time.monotonic())  # rate limiter: (tokens, at)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Sandbox:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *answers: str) -> None:
        """The next POSTs meet these faults, in order ("ok" for none), before any random ones."""
        unknown = set(answers) - {"ok", *FAULT_NAMES}
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        with self._lock:
            self._script.extend(answers)

    def issue_token(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        ttl = self.faults.token_ttl
        with self._lock:
            self._tokens[access] = time.monotonic() + ttl if ttl else float("inf")
            self._refresh.add(refresh)
        return {"access_token": access, "token_type": "bearer",
                "expires_in": int(ttl) if ttl else 604799, "refresh_token": refresh}

    def expire_tokens(self) -> None:
        """Every access token stops working now (refresh tokens still do)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        with self._lock:
            return self._tokens.get(header[7:], 0.0) > time.monotonic()

    def next_fault(self) -> str:
        with self._lock:
            if self._script:
                return self._script.popleft()
            f, draw = self.faults, self._random.random()
            for name, rate in (("unavailable", f.unavailable), ("error", f.error), ("drop", f.drop),
                               ("error_after_create", f.error_after_create),
                               ("drop_after_create", f.drop_after_create),
                               ("hang_after_create", f.hang_after_create),
                               ("unsuccessful", f.unsuccessful),
                               ("reject", f.reject)):
                if draw < rate:
                    return name
                draw -= rate
            return "ok"

    def over_rate(self) -> bool:
        """A token bucket of one second's worth: more than `rate_limit` a second gets 409."""
        rate = self.faults.rate_limit
        if not rate:
            return False
        with self._lock:
            tokens, at = self._allowance
            now = time.monotonic()
            tokens = min(max(rate, 1.0), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._allowance = (tokens, now)
                return True
            self._allowance = (tokens - 1.0, now)
            return False


def validate_body(body: Any) -> list[dict[str, Any]]:
    """The server's own checks of a credit use, as 400 `Errors` items."""
    if not isinstance(body, dict):
        return [{"AttemptedValue": None, "Message": "the body must be a JSON object", "PropertyName": ""}]
    errors = []

    def error(name: str, message: str) -> None:
        errors.append({"AttemptedValue": body.get(name), "Message": message, "PropertyName": name})

    for name in ("CoworkerBookingCreditId", "CreditUsed"):
        if body.get(name) is None:
            error(name, "is a required field")
    for name in ("CoworkerBookingCreditId", "BookingId", "CoworkerInvoiceLineId", "EventAttendeeId"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            error(name, "must be a positive whole number")
    used = body.get("CreditUsed")
    if used is not None:
        try:
            ok = not isinstance(used, bool) and Decimal(str(used)) > 0
        except InvalidOperation:
            ok = False
        if not ok:
            error("CreditUsed", "must be a number greater than 0")
    return errors


def _handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "NexudusSandbox/1"
        disable_nagle_algorithm = True  # headers and body go out as they are written: no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _drop(self, fault: str) -> None:
            """Close the connection without an answer."""
            sandbox.stats.count(fault)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _oops(self, fault: str) -> None:
            sandbox.stats.count(fault)
            self._send(500, {"Message": "Ooops! There was a problem while running this action..."})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if sandbox.faults.latency:
                time.sleep(sandbox.faults.latency)
            path = urlsplit(self.path).path
            raw = self._body()  # always read, so the kept-alive connection stays in step
            if path == "/api/token":
                return self._token(raw)
            if path.rstrip("/") == CREDIT_USES:
                return self._create(raw)
            self._send(404, {"Message": "No HTTP resource was found that matches the request URI."})

        def do_GET(self) -> None:  # noqa: N802
            if sandbox.faults.latency:
                time.sleep(sandbox.faults.latency)
            parts = urlsplit(self.path)
            if parts.path == "/_sandbox/stats":  # for rehearsals and benchmarks, not in Nexudus
                return self._send(200, {"posts": sandbox.stats.posts, "created": sandbox.stats.created,
                                        "faults": sandbox.stats.faults})
            if parts.path.rstrip("/") != CREDIT_USES:
                return self._send(404, {"Message": "Not found"})
            if not sandbox.authorized(self.headers.get("Authorization")):
                return self._send(401, {"Message": "Authorization has been denied for this request."})
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            where = {col: query[name] for name, col in FILTERS.items() if name in query}
            records = sandbox.store.records(where)
            page = max(1, int(query.get("page", 1)))
            size = max(1, min(1000, int(query.get("size", 25))))
            pages = max(1, -(-len(records) // size))
            self._send(200, {
                "Records": records[(page - 1) * size: page * size], "CurrentPage": page,
                "CurrentPageSize": size, "TotalItems": len(records), "TotalPages": pages,
                "HasNextPage": page < pages, "HasPreviousPage": page > 1,
            })

        def _token(self, raw: bytes) -> None:
            if "json" in (self.headers.get("Content-Type") or ""):
                return self._send(400, {"error": "unsupported_grant_type"})
            form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            grant = form.get("grant_type")
            if grant == "password":
                if form.get("username") == sandbox.username and form.get("password") == sandbox.password:
                    return self._send(200, sandbox.issue_token())
            elif grant == "refresh_token":
                if form.get("refresh_token") in sandbox._refresh:
                    return self._send(200, sandbox.issue_token())
            else:
                return self._send(400, {"error": "unsupported_grant_type"})
            self._send(400, {"error": "invalid_grant",
                             "error_description": "The user name or password is incorrect."})

        def _create(self, raw: bytes) -> None:
            if not sandbox.authorized(self.headers.get("Authorization")):
                return self._send(401, {"Message": "Authorization has been denied for this request."})
            if sandbox.over_rate():
                sandbox.stats.count("throttle")
                return self._send(409, None, {"Retry-After": str(sandbox.faults.retry_after)})
            fault = sandbox.next_fault()
            if fault == "throttle":
                sandbox.stats.count("throttle")
                return self._send(409, None, {"Retry-After": str(sandbox.faults.retry_after)})
            if fault == "unauthorized":
                sandbox.stats.count(fault)
                return self._send(401, {"Message": "Authorization has been denied for this request."})
            day = dt.datetime.now(dt.UTC).date().isoformat()
            if sandbox.faults.daily_limit and sandbox.store.count_post(day) > sandbox.faults.daily_limit:
                sandbox.stats.count("daily_limit")
                return self._send(409, None, {"Retry-After": str(_seconds_to_midnight())})
            sandbox.stats.posts += 1
            if fault == "unavailable":
                sandbox.stats.count(fault)
                return self._send(503, None)
            if fault == "drop":
                return self._drop(fault)
            if fault == "error":
                return self._oops(fault)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            errors = validate_body(body)
            if fault == "reject" and not errors:
                sandbox.stats.count(fault)
                errors = [{"AttemptedValue": body.get("CreditUsed"), "PropertyName": "CreditUsed",
                           "Message": "total use would exceed the credit's TotalCredit"}]
            if errors:
                message = "\n".join(f"{e['PropertyName']}: {e['Message']}" for e in errors)
                return self._send(400, {"Message": message, "Value": None, "Errors": errors,
                                        "WasSuccessful": False})
            if fault == "unsuccessful":
                sandbox.stats.count(fault)
                return self._send(200, {"Status": 200, "Message": "Credit could not be used.",
                                        "Value": None, "WasSuccessful": False, "Errors": [
                                            {"AttemptedValue": body.get("CreditUsed"),
                                             "Message": "exceeds the remaining credit",
                                             "PropertyName": "CreditUsed"}]})
            record_id = sandbox.store.create(body)
            sandbox.stats.created += 1
            if fault == "error_after_create":
                return self._oops(fault)
            if fault == "drop_after_create":
                return self._drop(fault)
            if fault == "hang_after_create":
                sandbox.stats.count(fault)
                time.sleep(sandbox.faults.hang)
            self._send(200, {
                "Status": 200, "Message": "CoworkerBookingCreditUseHistory was successfully created.",
                "Value": {"Id": record_id}, "OpenInDialog": False, "OpenInWindow": False,
                "RedirectURL": None, "JavaScript": None,
                "UpdatedOn": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "UpdatedBy": sandbox.username, "Errors": None, "WasSuccessful": True,
            })
            return None

    return Handler


def _seconds_to_midnight() -> int:
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    return int((midnight - now).total_seconds()) + 1
