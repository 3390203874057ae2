"""Talking to the Nexudus API, and the retry policy of a POST that is not idempotent.

Every answer is sorted into what it proves about the record:
- CREATED / REJECTED: final, the server said so;
- NOT_SENT, THROTTLED (409/429), UNAUTHORIZED (401): the server did not process the request,
  so sending it again cannot create a second credit use;
- AMBIGUOUS (500/502/503/504, 408, a time-out or a connection dropped after sending, an
  unreadable 2xx): the record may exist. Never resent; the row is `in_doubt` until reconciled.
  The API's own "not processed, try again" is its 409 (or 429), documented; it documents no 503,
  and a 503 or a 408 may come from a gateway that gave up on a request the application behind it
  went on with (a 408 may also be a server that stopped reading part-way), so neither proves
  that nothing was created.
- REFUSED (404, 405, a redirect, other 4xx): nothing created, and resending won't help;
- TLS (the handshake failed, before any byte of the request left): nothing sent, and the run
  stops, since every request would fail the same way. A TLS failure once the request has
  started to leave (a bad record while the answer is read) is AMBIGUOUS like any other.

Only this module imports requests.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from etl import __version__, logs
from etl.errors import RunAborted
from etl.post.answers import Answer, AuthenticationRefused, Credentials, Kind, ReadFailed, Unreachable

#: per thread, how far the request under way got: None (no connection of ours was touched:
#: nothing is known), CONNECTING (a connection was being made: to the server, or to a proxy and
#: through its tunnel, and its TLS handshake) or SENT (the request started to leave): a failure
#: after that may come after the server acted on it
_progress = threading.local()
CONNECTING, SENT = "connecting", "sent"


class _Watch:
    """Mixed into a urllib3 connection class (direct, through an HTTP(S) proxy's tunnel, or a
    SOCKS proxy): says when the connection is being made and when the request starts to leave."""

    sock: Any

    def connect(self) -> None:
        if getattr(_progress, "state", None) is None:
            _progress.state = CONNECTING
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kw: Any) -> None:
        if self.sock is None:
            self.connect()  # the connection and handshake: a failure here means nothing was sent
        _progress.state = SENT
        super().request(*args, **kw)  # type: ignore[misc]


_WATCHED: dict[type, type] = {}
_WATCHED_LOCK = threading.Lock()


def _watched(pool_cls: type) -> type:
    """POOL_CLS whose connections are watched (see _Watch)."""
    if issubclass(pool_cls.ConnectionCls, _Watch):  # type: ignore[attr-defined]
        return pool_cls
    with _WATCHED_LOCK:
        if pool_cls not in _WATCHED:
            conn = pool_cls.ConnectionCls  # type: ignore[attr-defined]
            _WATCHED[pool_cls] = type(pool_cls.__name__, (pool_cls,), {
                "ConnectionCls": type(conn.__name__, (_Watch, conn), {})})
        return _WATCHED[pool_cls]


def _watch(manager: Any) -> Any:
    """MANAGER (a urllib3 pool or proxy manager) making only watched connections."""
    manager.pool_classes_by_scheme = {scheme: _watched(cls)
                                      for scheme, cls in manager.pool_classes_by_scheme.items()}
    return manager


class _Adapter(HTTPAdapter):
    """Every connection watched, direct or through a proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
    a SOCKS proxy): requests keeps a pool manager per proxy, made apart from the direct one."""

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        super().init_poolmanager(*args, **kw)
        _watch(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _watch(super().proxy_manager_for(proxy, **proxy_kwargs))


class Client:
    """One API account: authenticates, renews its token once on a 401, and classifies answers."""

    def __init__(self, api_url: str, credentials: Credentials, *, timeout: float = 30.0,
                 pool: int = 4, clock: Callable[[], float] = time.time) -> None:
        self.api_url = api_url
        self.credentials = credentials
        self.timeout = timeout
        self.clock = clock
        self.session = requests.Session()
        # no retries inside urllib3: every resend is decided by the policy below, nowhere else
        adapter = _Adapter(max_retries=0, pool_connections=1, pool_maxsize=max(pool, 1))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"nexudus-etl/{__version__}"
        self.session.verify = True
        self.token: str | None = credentials.token
        self._refresh: str | None = None
        self._lock = threading.Lock()
        #: the server's clock minus ours, from the Date header of its latest answer
        self.server_offset: float | None = None
        #: set when the run stops: reads waiting out a throttle or a back-off give up
        self.stop: threading.Event | None = None
        logs.add_secret(credentials.token)
        logs.add_secret(credentials.password)

    def close(self) -> None:
        """Close the connections kept open (left to the garbage collector, each would be closed
        whenever it runs, with a ResourceWarning)."""
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        except requests.exceptions.SSLError as exc:
            raise RunAborted(_tls_message(self.api_url, exc)) from None
        except requests.ConnectionError as exc:
            raise _unreachable(self.api_url, exc) or RunAborted(
                f"could not reach {self.api_url}/api/token: {type(exc).__name__}") from None
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

    def _request(self, method: str, path: str, **kw: Any) -> tuple[requests.Response, bytes]:
        """One request whose whole answer must arrive within --timeout (a body trickling in a
        byte at a time is cut off at the deadline, not read for ever)."""
        deadline = self.clock() + self.timeout
        _progress.state = None
        r = self.session.request(method, self.api_url + path, timeout=self.timeout, stream=True,
                                 headers=self.headers() | kw.pop("headers", {}),
                                 allow_redirects=False, **kw)
        try:
            chunks = []
            # read1 returns what has arrived, so a body trickling in meets the deadline too
            while chunk := r.raw.read1(8192):
                chunks.append(chunk)
                if self.clock() > deadline:
                    raise requests.ReadTimeout(f"the answer took longer than {self.timeout:g} s")
            content = b"".join(chunks)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError, OSError) as exc:
            raise requests.ConnectionError(exc) from None
        finally:
            r.close()
        r._content = content  # noqa: SLF001 - so .json() reads what was already read
        self._note_clock(r)
        return r, content

    def _note_clock(self, r: requests.Response) -> None:
        when = r.headers.get("Date")
        try:
            server = email.utils.parsedate_to_datetime(when).timestamp() if when else None
        except (TypeError, ValueError):
            server = None
        if server is not None:
            self.server_offset = server - self.clock()

    def post(self, path: str, body: str) -> Answer:
        try:
            r, _ = self._request("POST", path, data=body.encode("utf-8"),
                                 headers={"Content-Type": "application/json"})
        except requests.exceptions.SSLError as exc:
            if getattr(_progress, "state", None) != CONNECTING:
                # the handshake was done and the request had started to leave (or how far it
                # got is not known): the server may have acted on it before the connection broke
                return Answer(Kind.AMBIGUOUS, errors=f"a TLS error while the answer was awaited "
                                                     f"({_tls_reason(exc)})")
            # the TLS handshake comes before any byte of the request: nothing was sent
            return Answer(Kind.TLS, errors=_tls_message(self.api_url, exc))
        except requests.ConnectTimeout:
            return Answer(Kind.NOT_SENT, errors="could not connect in time")
        except requests.ReadTimeout:
            return Answer(Kind.AMBIGUOUS, errors=f"no complete answer within {self.timeout:g} s")
        except requests.ConnectionError as exc:
            gone = _unreachable(self.api_url, exc)
            if gone is not None:
                return Answer(Kind.UNREACHABLE, errors=str(gone))
            if _never_sent(exc) or getattr(_progress, "state", None) == CONNECTING:
                # no connection (to the server, or to a proxy and through its tunnel) was made:
                # the request never started to leave
                return Answer(Kind.NOT_SENT, errors="could not connect" + (
                    " (through the proxy)" if isinstance(exc, requests.exceptions.ProxyError) else ""))
            return Answer(Kind.AMBIGUOUS, errors="the connection was dropped before an answer")
        except requests.RequestException as exc:
            return Answer(Kind.AMBIGUOUS, errors=f"request failed: {type(exc).__name__}")
        return classify(r)

    def get(self, path: str, params: dict[str, Any] | None = None, *,
            patience: float = 600.0, sleep: Callable[[float], None] | None = None) -> Any:
        """A read: its parsed JSON, None for a 404, or ReadFailed. Reads are safe to repeat, so a
        dropped or timed-out read is tried again a few times and a throttled one waits."""
        sleep = sleep or self._wait
        renewed = False
        failures = unconnected = 0
        throttled_since: float | None = None
        while True:
            stale = self.token
            try:
                r, _ = self._request("GET", path, params=params or {})
            except requests.exceptions.SSLError as exc:
                if getattr(_progress, "state", None) == CONNECTING:
                    # the handshake failed: every request would, as a POST's does (the run stops)
                    raise RunAborted(_tls_message(self.api_url, exc)) from None
                raise ReadFailed(_tls_message(self.api_url, exc)) from None
            except requests.RequestException as exc:
                gone = _unreachable(self.api_url, exc) if isinstance(exc, requests.ConnectionError) else None
                if gone is not None:
                    raise gone from None
                failures += 1
                unconnected += isinstance(exc, requests.ConnectTimeout) or (
                    isinstance(exc, requests.ConnectionError)
                    and (_never_sent(exc) or getattr(_progress, "state", None) == CONNECTING))
                if failures > READ_RETRIES:
                    if unconnected == failures:  # not one connection made: the target, not this read
                        raise no_connection(self.api_url, self.timeout, failures,
                                            isinstance(exc, requests.exceptions.ProxyError)) from None
                    raise ReadFailed(f"GET {path} failed {failures} times ({type(exc).__name__})") from None
                sleep(min(8.0, 0.2 * 2 ** (failures - 1)))
                continue
            if r.status_code == 401 and not renewed:
                self.renew(stale)
                renewed = True
                continue
            if r.status_code in (409, 429):
                now = self.clock()
                throttled_since = throttled_since or now
                wait = parse_retry_after(r.headers.get("Retry-After"), now)
                if now + wait - throttled_since > patience:
                    raise ReadFailed(f"GET {path} was throttled for longer than {patience:g} s")
                sleep(wait)
                continue
            if r.status_code in (408, 500, 502, 503, 504):
                failures += 1
                if failures > READ_RETRIES:
                    raise ReadFailed(f"GET {path} answered HTTP {r.status_code} {failures} times")
                sleep(min(8.0, 0.2 * 2 ** (failures - 1)))
                continue
            if r.status_code == 404:
                return None
            body = _json(r)
            if r.status_code == 200 and body is not None:
                return body
            raise ReadFailed(f"GET {path} answered HTTP {r.status_code}"
                             + ("" if body is not None else " without a readable body"))


    def _wait(self, seconds: float) -> None:
        if self.stop is None:
            time.sleep(seconds)
        elif self.stop.wait(seconds):
            raise ReadFailed("the run is stopping")


#: a read is tried this many more times after a dropped connection, a time-out or a 5xx
READ_RETRIES = 3


def _tls_message(url: str, exc: Exception) -> str:
    text = str(exc)
    what = "its certificate could not be verified" if "CERTIFICATE" in text.upper() else "TLS failed"
    return (f"could not open a secure connection to {url}: {what}; nothing was sent. Check "
            "--api-url, the machine's clock and its CA certificates (REQUESTS_CA_BUNDLE)")


def _unreachable(url: str, exc: requests.ConnectionError) -> Unreachable | None:
    """The target itself can't be reached (no connection could be made at all, for a reason
    that holds for every request), else None."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if not isinstance(reason, NewConnectionError):
        return None
    text = str(reason).lower()
    if "refused" in text:
        why = "connection refused"
    elif isinstance(reason, getattr(urllib3.exceptions, "NameResolutionError", ())) or any(
            w in text for w in ("resolve", "resolution", "name or service", "nodename", "getaddrinfo")):
        why = "no such host"
    elif "unreachable" in text or "no route" in text:
        why = "no route to it"
    else:
        return None
    host = urlsplit(url).netloc
    return Unreachable(f"can't reach the API at {host} ({why}); nothing more is sent. Check --api-url and "
                       "the network, then run again")


def no_connection(url: str, timeout: float, tries: int, proxy: bool = False) -> Unreachable:
    """Every try to connect failed (a firewall that drops packets answers nothing at all; a
    proxy that is down or refuses the tunnel). The proxy's URL is never shown: it may hold a
    password."""
    if proxy:
        return Unreachable(f"can't reach the API at {urlsplit(url).netloc} through the proxy (HTTPS_PROXY "
                           f"/ HTTP_PROXY; {tries} tries); nothing more is sent. Check the proxy "
                           "setting and the network, then run again")
    return Unreachable(f"can't reach the API at {urlsplit(url).netloc} (no connection within {timeout:g} s, "
                       f"{tries} tries); nothing more is sent. Check --api-url and the network, then "
                       "run again")


def _tls_reason(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"\[SSL: ([A-Z_]+)\]|(bad record mac|decryption failed|EOF occurred[^'\")]*)",
                      text, re.IGNORECASE)
    return (found.group(1) or found.group(2)).replace("_", " ").lower() if found else "TLS failure"


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


def parse_retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait: a number of seconds ("120", "120s"), an HTTP date, or anything else read
    as the default of 1 s. Never negative, never a traceback."""
    if not value or not value.strip():
        return 1.0
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)?\s*", value, re.IGNORECASE)
    if match:
        return float(match.group(1))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return 1.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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
        return Answer(Kind.THROTTLED, status, retry_after=parse_retry_after(r.headers.get("Retry-After")))
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
    if status == 408:  # a server (or a gateway) that gave up on the request part-way
        return Answer(Kind.AMBIGUOUS, status, errors=f"HTTP {status} {r.reason or 'Request Timeout'}".strip())
    if status >= 500:  # 503 included: not the API's throttling (409), maybe a gateway's give-up
        return Answer(Kind.AMBIGUOUS, status,
                      errors=f"HTTP {status}" + (f": {api_errors(body)}" if api_errors(body) else ""))
    if 300 <= status < 400:
        return Answer(Kind.REFUSED, status,
                      errors=f"HTTP {status} redirect to {r.headers.get('Location', '?')}; check --api-url")
    return Answer(Kind.REFUSED, status, errors=f"HTTP {status} {r.reason or ''}".strip())


