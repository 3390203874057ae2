"""The poster: sends one row until the answer is final, under the policy written for a non-idempotent POST."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from etl.errors import RunAborted
from etl.ledger.entries import utc_day
from etl.ledger.journal import Journal
from etl.post.answers import (
    NOT_PROCESSED,
    QUOTA_RETRY_AFTER,
    Answer,
    AuthenticationRefused,
    DailyLimitReached,
    Kind,
    Stopped,
    ThrottledTooLong,
    Unreachable,
)
from etl.post.pacing import Pacer
from etl.post.posting import Client, no_connection


@dataclass
class Result:
    """What one row's sending came to: the last answer, and how many requests were sent."""

    kind: Kind
    record_id: int | None = None
    http_status: int | None = None
    attempts: int = 0
    errors: str = ""
    marked: bool = False  # the row was entered `pending` (a request may have left)
    stop: BaseException | None = None  # the run must stop (daily limit, credentials, Ctrl-C)
    system_id_refused: bool = False  # the server refused the SystemId field (400 naming it)


#: A Retry-After is waited out in steps this long, so a stopping run is not held up by it.
_WAIT_STEP = 0.5


class Poster:
    """Sends one row until the answer is final, under the policy written for a non-idempotent POST.

    It decides nothing about the row: it reports the answer, and calls `mark` (which enters the
    row `pending` in the journal) right before the first request leaves.
    """

    def __init__(
        self, client: Client, pacer: Pacer, journal: Journal, endpoint: str, *,
        max_retries: int = 5, daily_limit: int = 5000, throttle_patience: float = 600.0,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.journal = journal
        self.endpoint = endpoint
        self.max_retries = max_retries
        self.daily_limit = daily_limit
        self.throttle_patience = throttle_patience
        self.sleep = sleep
        self.clock = clock
        self.stop: threading.Event | None = None
        self._throttled_since: float | None = None  # shared: throttling "without a break"
        self._throttle_lock = threading.Lock()

    def send(self, body: str, mark: Callable[[], None]) -> Result:
        tries = _Tries()
        retrying = tenacity.Retrying(
            # Resending is safe here, and only here: no connection was made, so nothing was
            # sent and a resend cannot create a second credit use. An ambiguous answer (500,
            # 502, 503, 504, 408, a time-out, a dropped connection) is never retried: the row
            # goes in doubt and only reconciliation may decide to send it again.
            retry=tenacity.retry_if_result(lambda a: a.kind is Kind.NOT_SENT),
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_exponential(multiplier=0.5, max=30.0) + tenacity.wait_random(0, 0.5),
            sleep=self._sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            answer: Answer = retrying(self._attempt, body, mark, tries)
        except (DailyLimitReached, AuthenticationRefused, Stopped) as exc:
            # every answer so far proved nothing was created (or no request left at all)
            return Result(Kind.NOT_SENT, attempts=tries.sent, marked=tries.marked, stop=exc,
                          errors=str(exc) if not isinstance(exc, Stopped) else "")
        errors = answer.errors
        if answer.kind in NOT_PROCESSED and tries.sent > 1:
            errors = f"{errors} (after {tries.sent} attempts)"
        if answer.kind is Kind.NOT_SENT:  # every retry failed to connect: the target, not the row
            answer = Answer(Kind.UNREACHABLE, errors=str(
                no_connection(self.client.api_url, self.client.timeout, tries.sent,
                              "through the proxy" in answer.errors)))
        if answer.kind is Kind.UNREACHABLE:
            return Result(Kind.NOT_SENT, attempts=tries.sent, marked=tries.marked,
                          stop=Unreachable(answer.errors), errors=answer.errors)
        if answer.kind is Kind.TLS:
            return Result(answer.kind, None, None, tries.sent, errors, tries.marked,
                          stop=RunAborted(errors))
        return Result(answer.kind, answer.record_id, answer.status, tries.sent, errors, tries.marked,
                      system_id_refused=_names_system_id(answer))

    def _sleep(self, seconds: float) -> None:
        end = self.clock() + seconds
        while (left := end - self.clock()) > 0:
            if self.stop is not None and self.stop.is_set():
                raise Stopped()
            self.sleep(min(left, _WAIT_STEP))

    def _attempt(self, body: str, mark: Callable[[], None], tries: _Tries) -> Answer:
        """One attempt: throttling and one token renewal are waited out here, not counted as retries."""
        renewed = False
        while True:
            self.pacer.acquire()
            if self.stop is not None and self.stop.is_set():
                raise Stopped()
            day = utc_day()
            if not self.journal.reserve_post(self.daily_limit, day):
                raise DailyLimitReached(f"--daily-limit {self.daily_limit} reached for {day} (UTC)")
            if not tries.marked:
                mark()  # durable before the request leaves: a crash from here on means 'in doubt'
                tries.marked = True
            stale = self.client.token
            answer = self.client.post(self.endpoint, body)
            tries.sent += 1
            if answer.kind in NOT_PROCESSED or answer.kind is Kind.TLS:
                self.journal.release_post(day)
            if answer.kind is Kind.THROTTLED:
                if answer.retry_after > QUOTA_RETRY_AFTER:
                    raise DailyLimitReached(
                        f"the API's daily quota is spent (Retry-After {answer.retry_after:.0f} s)")
                self._throttled(answer.retry_after)
                # throttled: not processed, so sent again after the wait (not a retry)
                self.pacer.pause(answer.retry_after)
                continue
            with self._throttle_lock:
                self._throttled_since = None
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

    def _throttled(self, wait: float) -> None:
        now = self.clock()
        with self._throttle_lock:
            if self._throttled_since is None:
                self._throttled_since = now
            since = self._throttled_since
        if now + wait - since > self.throttle_patience:
            raise ThrottledTooLong(
                f"the API kept throttling (HTTP 409/429) for more than --throttle-patience "
                f"{self.throttle_patience:g} s; rerun later to continue")


def _names_system_id(answer: Answer) -> bool:
    return answer.kind is Kind.REJECTED and "systemid" in answer.errors.replace(" ", "").lower()


@dataclass
class _Tries:
    sent: int = 0
    marked: bool = False
