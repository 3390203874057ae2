"""Talking to the Nexudus API, and the retry policy of a POST that is not idempotent.

Every answer is sorted into what it proves about the record:
- CREATED / REJECTED: final, the server said so;
- NOT_SENT, UNAVAILABLE (503), THROTTLED (409/429), UNAUTHORIZED (401): the server did not
  process the request, so sending it again cannot create a second credit use;
- AMBIGUOUS (500/502/504, a time-out or a connection dropped after sending, an unreadable 2xx):
  the record may exist. Never resent; the row is `in_doubt` until reconciled.
- REFUSED (404, 405, a redirect, other 4xx): nothing created, and resending won't help.

Only this module imports requests.
"""

from __future__ import annotations

import email.utils
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from etl import __version__, logs
from etl.errors import RunAborted, UsageProblem
from etl.journal import Journal, utc_day
from etl.outcomes import Outcome
from etl.pacing import Pacer

#: A Retry-After longer than this is the daily quota talking, not a throttle: stop for today.
QUOTA_RETRY_AFTER = 300.0


class Kind(enum.Enum):
    CREATED = "created"
    REJECTED = "rejected"
    THROTTLED = "throttled"
    NOT_SENT = "not sent"
    UNAVAILABLE = "unavailable"
    UNAUTHORIZED = "unauthorized"
    AMBIGUOUS = "ambiguous"
    REFUSED = "refused"


#: Answers that prove the server did not process the request.
NOT_PROCESSED = frozenset({Kind.THROTTLED, Kind.NOT_SENT, Kind.UNAVAILABLE, Kind.UNAUTHORIZED})


@dataclass(frozen=True)
class Answer:
    kind: Kind
    status: int | None = None
    record_id: int | None = None
    errors: str = ""
    retry_after: float = 1.0


class DailyLimitReached(Exception):
    """No POST may be sent today: --daily-limit counted from the journal, or the server said so."""


class AuthenticationRefused(RunAborted):
    pass


class Stopped(Exception):
    """The run is stopping (another row hit a limit or an abort); this row was not sent."""


@dataclass
class Credentials:
    token: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never show a secret, even in a debugger or a traceback
        return f"Credentials(token={'***' if self.token else None}, username={self.username!r})"

    def check(self) -> None:
        if not self.token and not (self.username and self.password):
            raise UsageProblem(
                "no credentials: set NEXUDUS_TOKEN (or --token), or NEXUDUS_USERNAME and "
                "NEXUDUS_PASSWORD (or --username/--password); or rehearse with --sandbox"
            )

    @property
    def which(self) -> str:
        return "the token (NEXUDUS_TOKEN / --token)" if self.token and not self.username else (
            "the username and password (NEXUDUS_USERNAME / NEXUDUS_PASSWORD)")


def check_url(url: str, allow_insecure_http: bool = False) -> str:
    """The base URL without a trailing slash; plain http only to this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageProblem(f"--api-url {url!r} is not an http(s) URL")
    loopback = parts.hostname in ("localhost", "::1") or parts.hostname.startswith("127.")
    if parts.scheme == "http" and not loopback and not allow_insecure_http:
        raise UsageProblem(
            f"--api-url {url!r} is plain http to another machine: credentials would cross the "
            "network unencrypted; use https (or --allow-insecure-http if you must)"
        )
    return url.rstrip("/")


class Client:
    """One API account: authenticates, renews its token once on a 401, and classifies answers."""

    def __init__(self, api_url: str, credentials: Credentials, *, timeout: float = 30.0,
                 pool: int = 4) -> None:
        self.api_url = api_url
        self.credentials = credentials
        self.timeout = timeout
        self.session = requests.Session()
        # no retries inside urllib3: every resend is decided by the policy below, nowhere else
        adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=max(pool, 1))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"nexudus-etl/{__version__}"
        self.session.verify = True
        self.token: str | None = credentials.token
        self._refresh: str | None = None
        self._lock = threading.Lock()
        logs.add_secret(credentials.token)
        logs.add_secret(credentials.password)

    def login(self) -> None:
        """Get a token by the password grant, unless one was given."""
        if self.token:
            return
        self._grant({"grant_type": "password", "username": self.credentials.username or "",
                     "password": self.credentials.password or ""})

    def _grant(self, form: dict[str, str]) -> None:
        try:
            r = self.session.post(f"{self.api_url}/api/token", data=form, timeout=self.timeout,
                                  allow_redirects=False)
        except requests.RequestException as exc:
            raise RunAborted(f"could not reach {self.api_url}/api/token: {type(exc).__name__}") from None
        body = _json(r)
        if r.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            self.token = str(body["access_token"])
            self._refresh = body.get("refresh_token")
            logs.add_secret(self.token)
            logs.add_secret(self._refresh)
            return
        reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
        raise AuthenticationRefused(
            f"authentication refused by {self.api_url} (HTTP {r.status_code}"
            + (f": {reason}" if reason else "") + f"); check {self.credentials.which}"
        )

    def renew(self, stale: str | None) -> None:
        """After a 401: a new token once (refresh token, else log in again), shared by all workers."""
        with self._lock:
            if self.token != stale:
                return  # another worker renewed it already
            if self._refresh:
                try:
                    self._grant({"grant_type": "refresh_token", "refresh_token": self._refresh})
                    return
                except AuthenticationRefused:
                    self._refresh = None
            if self.credentials.username and self.credentials.password:
                self.token = None
                self.login()
                return
            raise AuthenticationRefused(
                f"the API refused the token (HTTP 401) and there is no way to renew it; "
                f"check {self.credentials.which} and that its user has the Create role"
            )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def post(self, path: str, body: str) -> Answer:
        try:
            r = self.session.post(
                self.api_url + path, data=body.encode("utf-8"), timeout=self.timeout,
                headers={**self.headers(), "Content-Type": "application/json"}, allow_redirects=False,
            )
        except requests.ConnectTimeout:
            return Answer(Kind.NOT_SENT, errors="could not connect in time")
        except requests.ReadTimeout:
            return Answer(Kind.AMBIGUOUS, errors=f"no answer within {self.timeout:g} s")
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                return Answer(Kind.NOT_SENT, errors="could not connect")
            return Answer(Kind.AMBIGUOUS, errors="the connection was dropped before an answer")
        except requests.RequestException as exc:
            return Answer(Kind.AMBIGUOUS, errors=f"request failed: {type(exc).__name__}")
        return classify(r)

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """A read (for reconciliation); returns the parsed JSON or raises RunAborted."""
        for renewed in (False, True):
            stale = self.token
            r = self.session.get(self.api_url + path, params=params, timeout=self.timeout,
                                 headers=self.headers(), allow_redirects=False)
            if r.status_code == 401 and not renewed:
                self.renew(stale)
                continue
            body = _json(r)
            if r.status_code == 200 and body is not None:
                return body
            raise RunAborted(f"GET {path} answered HTTP {r.status_code}")
        raise AssertionError("unreachable")


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before any byte of the request left."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _json(r: requests.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _retry_after(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else 1.0


def api_errors(body: Any) -> str:
    """The API's `Errors` as `Field: message` items joined with ` | ` (else its Message)."""
    if not isinstance(body, dict):
        return ""
    items = body.get("Errors") or []
    if isinstance(items, list) and items:
        out = []
        for e in items:
            if isinstance(e, dict):
                name, message = e.get("PropertyName"), e.get("Message") or ""
                out.append(f"{name}: {message}" if name else str(message))
        if out:
            return " | ".join(out)
    message = body.get("Message")
    return str(message).replace("\n", " | ") if message else ""


def classify(r: requests.Response) -> Answer:
    status = r.status_code
    if status in (409, 429):  # throttling "for legacy reasons": never a duplicate record
        return Answer(Kind.THROTTLED, status, retry_after=_retry_after(r.headers.get("Retry-After")))
    body = _json(r)
    if 200 <= status < 300:
        if not isinstance(body, dict):
            return Answer(Kind.AMBIGUOUS, status, errors=f"HTTP {status} with an unreadable body")
        if body.get("WasSuccessful") is False:
            return Answer(Kind.REJECTED, status, errors=api_errors(body) or "WasSuccessful: false")
        value = body.get("Value")
        record_id = value.get("Id") if isinstance(value, dict) else None
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            return Answer(Kind.CREATED, status, record_id=record_id)
        return Answer(Kind.AMBIGUOUS, status, errors=f"HTTP {status} without the new record's Id")
    if status == 400:
        return Answer(Kind.REJECTED, status, errors=api_errors(body) or "HTTP 400 Bad Request")
    if status == 401:
        return Answer(Kind.UNAUTHORIZED, status, errors="HTTP 401 Unauthorized")
    if status in (503, 408):
        return Answer(Kind.UNAVAILABLE, status, errors=f"HTTP {status} {r.reason or ''}".strip())
    if status >= 500:
        return Answer(Kind.AMBIGUOUS, status,
                      errors=f"HTTP {status}" + (f": {api_errors(body)}" if api_errors(body) else ""))
    if 300 <= status < 400:
        return Answer(Kind.REFUSED, status,
                      errors=f"HTTP {status} redirect to {r.headers.get('Location', '?')}; check --api-url")
    return Answer(Kind.REFUSED, status, errors=f"HTTP {status} {r.reason or ''}".strip())


@dataclass
class Result:
    """What became of one row."""

    outcome: Outcome
    record_id: int | None = None
    http_status: int | None = None
    attempts: int = 0
    errors: str = ""


_OUTCOME = {Kind.CREATED: Outcome.CREATED, Kind.REJECTED: Outcome.REJECTED,
            Kind.AMBIGUOUS: Outcome.IN_DOUBT, Kind.REFUSED: Outcome.FAILED,
            Kind.NOT_SENT: Outcome.FAILED, Kind.UNAVAILABLE: Outcome.FAILED,
            Kind.THROTTLED: Outcome.FAILED, Kind.UNAUTHORIZED: Outcome.FAILED}


class Poster:
    """Sends one row until the answer is final, under the policy written for a non-idempotent POST."""

    def __init__(
        self, client: Client, pacer: Pacer, journal: Journal, endpoint: str, *,
        max_retries: int = 5, daily_limit: int = 5000, max_throttles: int = 1000,
        sleep: Callable[[float], None] = time.sleep, resource: str = "",
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.journal = journal
        self.endpoint = endpoint
        self.max_retries = max_retries
        self.daily_limit = daily_limit
        self.max_throttles = max_throttles
        self.sleep = sleep
        self.log = logs.get("etl.posting")
        self.stop: threading.Event | None = None
        self.resource = resource

    def send(self, identity: str, body: str, source: str, row: int) -> Result:
        tries = _Tries()
        retrying = tenacity.Retrying(
            # Resending is safe here, and only here: these answers prove the server did not
            # process the request (no connection was made, or it answered 503 before doing
            # any work), so a resend cannot create a second credit use. An ambiguous answer
            # (500, time-out, dropped connection) is never retried: the row goes in doubt.
            retry=tenacity.retry_if_result(lambda a: a.kind in (Kind.NOT_SENT, Kind.UNAVAILABLE)),
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_exponential(multiplier=0.5, max=30.0) + tenacity.wait_random(0, 0.5),
            sleep=self.sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            answer: Answer = retrying(self._attempt, identity, body, source, row, tries)
        except (DailyLimitReached, AuthenticationRefused, Stopped):
            if tries.sent:  # every earlier answer proved nothing was created
                self.journal.record(identity, Outcome.NOT_ATTEMPTED.value, record_id=None,
                                    http_status=None, attempts=tries.sent, errors=None)
            raise
        outcome = _OUTCOME[answer.kind]
        errors = answer.errors
        if outcome is Outcome.FAILED and tries.sent > 1:
            errors = f"{errors} (after {tries.sent} attempts)"
        if outcome is Outcome.IN_DOUBT:
            errors = f"{errors}; it may have been created: not resent (etl reconcile checks)"
        # no answer at all (time-out, dropped): the request may still be under way on the server
        unanswered = outcome is Outcome.IN_DOUBT and answer.status is None
        settle = 2 * self.client.timeout if unanswered else 0.0
        self.journal.record(identity, outcome.value, record_id=answer.record_id,
                            http_status=answer.status, attempts=tries.sent, errors=errors or None,
                            settle=settle)
        self.log.debug("row posted", source=source, row=row, outcome=outcome.value,
                       http_status=answer.status, attempts=tries.sent)
        return Result(outcome, answer.record_id, answer.status, tries.sent, errors)

    def _attempt(self, identity: str, body: str, source: str, row: int, tries: _Tries) -> Answer:
        """One attempt: throttling and one token renewal are waited out here, not counted as retries."""
        renewed = False
        for _ in range(self.max_throttles):
            self.pacer.acquire()
            if self.stop is not None and self.stop.is_set():
                raise Stopped()
            day = utc_day()
            if not self.journal.reserve_post(self.daily_limit, day):
                raise DailyLimitReached(f"--daily-limit {self.daily_limit} reached for {day} (UTC)")
            if not tries.pending:
                # durable before the request leaves: a crash from here on means 'in doubt'
                self.journal.mark_pending(identity, body, source, row, self.resource)
                tries.pending = True
            stale = self.client.token
            answer = self.client.post(self.endpoint, body)
            tries.sent += 1
            if answer.kind in NOT_PROCESSED:
                self.journal.release_post(day)
            if answer.kind is Kind.THROTTLED:
                if answer.retry_after > QUOTA_RETRY_AFTER:
                    raise DailyLimitReached(
                        f"the API's daily quota is spent (Retry-After {answer.retry_after:.0f} s)")
                # throttled: not processed, so sent again after the wait (not a retry)
                self.pacer.pause(answer.retry_after)
                continue
            if answer.kind is Kind.UNAUTHORIZED:
                if renewed:
                    raise AuthenticationRefused(
                        f"the API refused the credentials twice (HTTP 401); check "
                        f"{self.client.credentials.which} and that its user has the "
                        "CoworkerBookingCreditUseHistory-Create role")
                self.client.renew(stale)  # 401: not processed, so sent again with the new token
                renewed = True
                continue
            self.pacer.answered()
            return answer
        return Answer(Kind.THROTTLED, 409, errors=f"throttled {self.max_throttles} times in a row")


@dataclass
class _Tries:
    sent: int = 0
    pending: bool = False
