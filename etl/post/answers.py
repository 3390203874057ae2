"""What posting deals in: the kinds of answer and the answer, the stops a send raises, the
credentials, and the API's URL checked."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from etl.errors import RunAborted, UsageProblem
from etl.ledger.entries import on_this_machine

#: A Retry-After longer than this is the daily quota talking, not a throttle: stop for today.
QUOTA_RETRY_AFTER = 300.0


class Kind(enum.Enum):
    CREATED = "created"
    REJECTED = "rejected"
    THROTTLED = "throttled"
    NOT_SENT = "not sent"
    UNAUTHORIZED = "unauthorized"
    AMBIGUOUS = "ambiguous"
    REFUSED = "refused"
    TLS = "tls"
    UNREACHABLE = "unreachable"


#: Answers that prove the server did not process the request.
NOT_PROCESSED = frozenset({Kind.THROTTLED, Kind.NOT_SENT, Kind.UNAUTHORIZED, Kind.UNREACHABLE})


@dataclass(frozen=True)
class Answer:
    kind: Kind
    status: int | None = None
    record_id: int | None = None
    errors: str = ""
    retry_after: float = 1.0
    server_time: float | None = None  # the server's clock (its Date header), epoch seconds
    local_time: float | None = None  # ours, when that answer came


class DailyLimitReached(Exception):
    """No POST may be sent today: --daily-limit counted from the journal, or the server said so."""


class ThrottledTooLong(DailyLimitReached):
    """The server throttled without a break for longer than --throttle-patience: stop like the
    daily limit (exit 4); a rerun carries on."""


class ReadFailed(Exception):
    """A read (list, look-up) that proves nothing: the rows it was for stay as they are."""


class AuthenticationRefused(RunAborted):
    pass


class Unreachable(RunAborted):
    """The API's host can't be reached at all (connection refused, no such host, no route): one
    fact about the target, not about a row, so the run stops at once (exit 3), nothing sent."""


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
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port out of range raises here, as a request would later
    except ValueError as exc:  # a port out of range, a bracket left open
        raise UsageProblem(f"--api-url {url!r} is not a URL ({exc})") from None
    if parts.username is not None or parts.password is not None:
        # never echoed: the password would be in the terminal, summary.json and the log
        bare = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
        raise UsageProblem(f"--api-url {bare!r} is given with a user name or password in it: pass them as "
                           "NEXUDUS_USERNAME and NEXUDUS_PASSWORD (or a token as NEXUDUS_TOKEN)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageProblem(f"--api-url {url!r} is not an http(s) URL")
    loopback = on_this_machine(parts.hostname)
    if parts.scheme == "http" and not loopback and not allow_insecure_http:
        raise UsageProblem(
            f"--api-url {url!r} is plain http to another machine: credentials would cross the "
            "network unencrypted; use https (or --allow-insecure-http if you must)"
        )
    return url.rstrip("/")
