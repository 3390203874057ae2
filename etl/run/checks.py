"""Account checks before posting: does the record a row refers to exist, is enough of it left?

The binding limit of an import is the API's daily POST quota, and a row the server refuses
wastes one POST of it. Some refusals can be seen beforehand by reading the account: a resource
declares them (`Resource.references`, in `schemas/`): which column names a record of the
account, where that record is read, and for a credit, which field of the row draws it down and
which fields of the record say what is left and when it expires.

Before the first POST, each distinct record referred to by the rows the run can send tonight is
read once (`GET endpoint/{id}`, paced under the API's read limits) and kept for the run. Then,
in input order:

- a record the account does not have (404): the row is `invalid`;
- the first row that would take a record below zero, and every later row drawing on it (a
  credit's uses are posted in order): `invalid`, saying what was left and what the row needs.
  Only rows still to send draw it down: the rows the journal knows as created are already in
  what the server says is left;
- a record whose expiry has passed: a note on the row and a warning, nothing more (historic uses
  of since-expired credits are what a migration posts);
- a read that proves nothing (a time-out, a 5xx, throttled past patience): the row is sent
  unchecked, with a note and a warning; never `invalid`.

Amounts are Decimals from the text of the answer, never floats.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from etl import logs
from etl.errors import FileProblem, RunAborted
from etl.ledger.entries import utc_day
from etl.ledger.journal import Journal
from etl.outcomes import ExitStatus, Facts, Outcome, decide
from etl.post.answers import Credentials, ReadFailed
from etl.post.pacing import Pacer
from etl.post.posting import Client
from etl.read.reading import RawChunk
from etl.run.pipeline import Inputs, Progress, RunRecord, validate
from etl.validate.resources import Reference, Resource
from etl.validate.validating import ColumnMap, Validator

#: look-ups a second: Nexudus allows 5,000 requests an hour (1.39 a second) and 120 a minute, all
#: methods together; 1.25 leaves room for the run's other requests
READ_RATE = 1.25
#: the sandbox has no read limit unless told to have one
SANDBOX_READ_RATE = 50.0
#: look-ups that may go at once before the pace applies: 40 plus a minute at READ_RATE is 115,
#: under the 120 a minute; a file of a few dozen credits is checked without waiting
READ_BURST = 40
#: look-ups expected to take longer than this (seconds) are announced, with how long
LONG_CHECK = 10.0
#: after this many look-ups in a row that prove nothing, the rest are not tried (a 403 for a user
#: without the role to read credits, an API that is down): their rows are sent unchecked
GIVE_UP_AFTER = 3
#: how many ids a warning names before "and N more"
NAMED = 5

#: the ids a row refers to and the amounts it draws, one (id, amount) per reference
Draws = tuple[tuple[int | None, Decimal | None], ...]


@dataclass(frozen=True)
class Found:
    """What the account said of one record: it exists (True), not (False), or unknown (None)."""

    exists: bool | None
    left: Decimal | None = None  # what is left, when the record says
    expired: str = ""  # its expiry, when passed
    why: str = ""  # why it is unknown


@dataclass
class Verdict:
    """The checks' word on one row: a problem makes it `invalid`; notes go on the row."""

    problem: str = ""
    notes: list[str] = field(default_factory=list)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def amount(value: Any) -> Decimal | None:
    """A number of a JSON answer or a payload as a Decimal (a float by its shortest text)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value)) if isinstance(value, float | int | str) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


def shown(value: Decimal) -> str:
    """An amount as people write it: 4, 2.5, 0.125 (no exponent, no trailing zeros)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def passed(value: Any, now: dt.datetime) -> str:
    """The date of an expiry that has passed ("2025-06-30"), else "" (none, unreadable, future).
    A time without an offset is read as UTC."""
    if not isinstance(value, str) or not value.strip():
        return ""
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.date().isoformat() if when < now else ""


class AccountChecks:
    """The account checks a resource declares, for one run: collect the rows that may be sent,
    look their records up once, then give each row its verdict in input order."""

    def __init__(self, resource: Resource, get: Callable[[str, dict[str, Any] | None], Any], *,
                 pace: Callable[[], object] | None = None, rate: float | None = None,
                 stop: threading.Event | None = None,
                 now: Callable[[], dt.datetime] = _utc_now,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.references: tuple[Reference, ...] = resource.references
        self.listing = resource.endpoint
        self.get = get
        self.pace = pace
        self.rate = rate  # the pace of `pace`, to say how long the look-ups take
        self.stop = stop
        self.now = now
        self.clock = clock
        self.found: dict[tuple[int, int], Found] = {}
        self.lookups = 0
        self.seconds = 0.0
        self._queue: list[Draws] = []
        self._interned: dict[Any, Any] = {}
        self._failures = 0
        self._gave_up = ""
        #: a record not looked up before posting is looked up when a row reaches its verdict
        #: (the rows collected were cut short: a migration's file has millions)
        self.lazy = False
        self._late: list[tuple[int, int]] = []  # records looked up that way, not yet warned of
        self._reset()
        self.log = logs.get("etl.checks")

    # --- what a row refers to ----------------------------------------------------------------

    def draws(self, body: Mapping[str, Any]) -> Draws:
        out = []
        for ref in self.references:
            ident = body.get(ref.column)
            try:
                number = None if ident is None or ident == "" else int(ident)
            except (TypeError, ValueError):
                number = None
            out.append((number, amount(body.get(ref.draws)) if ref.draws else None))
        return tuple(out)

    def collect(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Rows the run may send, in input order (kept small: equal values are stored once)."""
        keep = self._interned.setdefault
        for body in bodies:
            draws = self.draws(body)
            self._queue.append(keep(draws, draws))

    # --- the look-ups --------------------------------------------------------------------------

    def look_up(self, budget: int | None = None) -> int:
        """Read each record the collected rows refer to, once, in input order, until BUDGET rows
        would be sent (rows the checks refuse take no POST, so the rows after them are checked
        too); None: every row. Returns the number of look-ups made."""
        start, made = self.clock(), self.lookups
        queue, self._queue, self._interned = self._queue, [], {}
        wanted = self._wanted(queue, budget)
        if len(wanted) > 1:
            self._estimate(queue, len(wanted))
        left = budget
        for draws in queue:
            if left is not None and left <= 0 or self.stop is not None and self.stop.is_set():
                break
            for key in self._keys(draws):
                if key not in self.found:
                    self.found[key] = self._read(key)
            if not self._decide(draws, "").problem:
                left = None if left is None else left - 1
        self._confirm_missing()
        self._reset()
        self.seconds += self.clock() - start
        self._warn()
        return self.lookups - made

    def _estimate(self, queue: list[Draws], wanted: int) -> None:
        """Say how long the look-ups will take when it is long: the first is made and timed, since
        they go one at a time and a slow account's round trip, not --read-rate, sets the pace."""
        first = next((k for draws in queue for k in self._keys(draws) if k not in self.found), None)
        if first is None:
            return
        began = self.clock()
        self.found[first] = self._read(first)
        trip = self.clock() - began
        paced = 1 / self.rate if self.rate else 0.0
        seconds = (min(wanted, READ_BURST) - 1) * trip + max(0, wanted - READ_BURST) * max(trip, paced)
        if seconds < LONG_CHECK:
            return
        names = {r.name for r in self.references}
        what = f"{names.pop()}s" if len(names) == 1 else "records"
        took = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
        pace = f"; at most {self.rate:g} a second after the first {READ_BURST}" if self.rate else ""
        self.log.warning(f"looking up at least {wanted} {what} before posting, about {took} (one "
                         f"look-up took {trip:.1f} s{pace}); --no-check-credits skips this")

    def _wanted(self, queue: list[Draws], budget: int | None) -> set[tuple[int, int]]:
        """The records the first BUDGET rows refer to: at least this many look-ups."""
        return {k for draws in (queue if budget is None else queue[:budget]) for k in self._keys(draws)
                if k not in self.found}

    def known(self, body: Mapping[str, Any]) -> bool:
        """Whether every record the row refers to was looked up (its verdict reads nothing)."""
        return all(key in self.found for key in self._keys(self.draws(body)))

    def finish(self) -> None:
        """After the sending: the records looked up as it reached them are warned of as those
        looked up before posting are (their time is in `seconds`)."""
        late, self._late = self._late, []
        if late:
            self._warn(late)

    def _keys(self, draws: Draws) -> list[tuple[int, int]]:
        return [(i, ident) for i, (ident, _) in enumerate(draws) if ident is not None]

    def _read(self, key: tuple[int, int]) -> Found:
        index, ident = key
        ref = self.references[index]
        if self._gave_up:
            return Found(None, why=self._gave_up)
        if self.pace is not None:
            self.pace()
        self.lookups += 1
        try:
            record = self.get(ref.endpoint.format(id=ident), None)
        except ReadFailed as exc:
            self._failures += 1
            if self._failures >= GIVE_UP_AFTER:
                self._gave_up = f"{GIVE_UP_AFTER} look-ups in a row failed, the last: {exc}"
            return Found(None, why=str(exc))
        self._failures = 0
        if record is None:
            return Found(False)
        if not isinstance(record, dict):
            return Found(None, why=f"GET {ref.endpoint.format(id=ident)} answered something else "
                                   "than a record")
        left = amount(record.get(ref.remaining)) if ref.remaining else None
        return Found(True, left, passed(record.get(ref.expires), self.now()) if ref.expires else "")

    def _confirm_missing(self) -> None:
        """A 404 for every record looked up is also what a wrong --api-url answers: one read of
        the resource's own list tells them apart. Found there, the records are missing; not
        found, the run stops with nothing posted; unreadable, their rows are left unchecked."""
        if not self.found or any(f.exists for f in self.found.values()) or \
                not any(f.exists is False for f in self.found.values()):
            return
        if self.pace is not None:
            self.pace()
        self.lookups += 1
        try:
            answer = self.get(self.listing, {"page": 1, "size": 1})
        except ReadFailed as exc:
            why = f"every look-up answered 404, and {exc}, so a wrong --api-url can't be ruled out"
            self.found = {k: Found(None, why=why) if f.exists is False else f for k, f in self.found.items()}
            return
        if answer is None:
            raise RunAborted(
                f"GET {self.listing} answered 404 (not found), as did every one of the "
                f"{len(self.found)} records looked up: check --api-url; nothing was posted")

    def _warn(self, keys: list[tuple[int, int]] | None = None) -> None:
        """One line on the terminal per kind of finding that is not a row's fault alone (of
        KEYS' records: None, every record looked up)."""
        expired: dict[str, list[str]] = {}
        unknown: dict[str, list[str]] = {}
        for (index, ident), found in (self.found.items() if keys is None
                                      else [(k, self.found[k]) for k in keys]):
            name = self.references[index].name
            if found.expired:
                expired.setdefault(name, []).append(f"{ident} on {found.expired}")
            elif found.exists is None:
                items = unknown.setdefault(name, [])
                items.append(str(ident) if items else f"{ident}: {found.why}")
        for name, items in expired.items():
            self.log.warning(f"{_counted(items, name)} expired ({_some(items)}): their rows are posted "
                             "as historic uses, each with a note")
        for name, items in unknown.items():
            self.log.warning(f"{_counted(items, name)} could not be looked up ({_some(items)}): their "
                             "rows are sent unchecked, each with a note")

    # --- verdicts ------------------------------------------------------------------------------

    def verdict(self, body: Mapping[str, Any], where: str) -> Verdict:
        """The row's verdict; a row that passes draws its amounts down (so call it in input order,
        once per row that will be sent)."""
        return self._decide(self.draws(body), where)

    def _reset(self) -> None:
        self._left: dict[tuple[int, int], Decimal] = {}
        self._closed: dict[tuple[int, int], tuple[str, Decimal]] = {}  # first row not covered

    def _decide(self, draws: Draws, where: str) -> Verdict:
        verdict = Verdict()
        taken: list[tuple[tuple[int, int], Decimal]] = []
        for index, (ident, used) in enumerate(draws):
            if ident is None:
                continue
            ref, key = self.references[index], (index, ident)
            found = self.found.get(key)
            if found is None and self.lazy and where:  # reached, not looked up before: now
                began = self.clock()
                found = self.found[key] = self._read(key)
                self.seconds += self.clock() - began
                self._late.append(key)
            if found is None:  # not looked up: a row beyond what tonight can send
                continue
            if found.exists is None:
                verdict.notes.append(f"{ref.column}: {ref.name} {ident} could not be checked "
                                     f"({found.why}); sent unchecked")
                continue
            if not found.exists:
                verdict.problem = f"{ref.column}: {ref.name} {ident} does not exist in this account"
                return verdict
            if found.expired:
                verdict.notes.append(f"{ref.column}: {ref.name} {ident} expired on {found.expired}; "
                                     "posted as a historic use")
            if used is None or found.left is None:
                continue
            left = self._left.get(key, found.left)
            closed = self._closed.get(key)
            if closed is not None:
                first, had = closed
                verdict.problem = (f"{ref.draws}: {ref.name} {ident} has {shown(had)} left and this row "
                                   f"needs {shown(used)}, but {first or 'an earlier row'} could not be "
                                   f"covered first (a {ref.name}'s uses are posted in order)")
                return verdict
            if used > left:
                self._closed[key] = (where, left)
                earlier = "" if left == found.left else (
                    f" after earlier rows of this run ({shown(found.left)} in the account)")
                verdict.problem = (f"{ref.draws}: {ref.name} {ident} has {shown(left)} left{earlier}, "
                                   f"this row needs {shown(used)}")
                return verdict
            taken.append((key, left - used))
        for key, left in taken:
            self._left[key] = left
        return verdict

    def summary(self) -> dict[str, int | float]:
        """For summary.json: look-ups made, time taken, and what they found."""
        return {"lookups": self.lookups, "seconds": round(self.seconds, 1),
                "missing": sum(f.exists is False for f in self.found.values()),
                "expired": sum(bool(f.expired) for f in self.found.values()),
                "unchecked": sum(f.exists is None for f in self.found.values())}


def _some(items: list[str]) -> str:
    more = len(items) - NAMED
    return ", ".join(items[:NAMED]) + (f" and {more} more" if more > 0 else "")


def _counted(items: list[str], name: str) -> str:
    return f"{len(items)} {name}{'s' if len(items) != 1 else ''}"


def for_client(resource: Resource, client: Client, *, read_rate: float = READ_RATE,
               patience: float = 600.0, stop: threading.Event | None = None) -> AccountChecks | None:
    """The resource's account checks, reading through CLIENT at READ_RATE (None: it declares none)."""
    if not resource.references:
        return None
    pacer = Pacer(read_rate, burst=READ_BURST)
    return AccountChecks(resource, lambda path, params: client.get(path, params, patience=patience),
                         pace=pacer.acquire, rate=read_rate, stop=stop)


def posts_left(journal: Journal, daily_limit: int) -> int:
    """POSTs --daily-limit leaves today (UTC), as the journal counts them."""
    return max(0, daily_limit - journal.posts_on(utc_day()))


class CheckedValidator(Validator):
    """The validator of `etl validate --online`: the schema's checks, then the account checks on
    the rows that pass them, in input order."""

    def __init__(self, validator: Validator, account: AccountChecks, inputs: Inputs) -> None:
        super().__init__(validator.resource, validator.decimal)
        self.account = account
        self.inputs = inputs

    def verdicts(self, chunk: RawChunk, columns: ColumnMap) -> tuple[dict[int, str], np.ndarray]:
        texts, valid = super().verdicts(chunk, columns)
        source = next(t.path for t, c in zip(self.inputs.tables, self.inputs.columns, strict=True)
                      if c is columns)
        positions = [int(p) for p in np.flatnonzero(valid)]
        for pos, body in zip(positions, self.payloads(chunk, columns, positions), strict=True):
            verdict = self.account.verdict(body, f"{source} row {int(chunk.rows[pos])}")
            said = decide(Facts(refused=verdict.problem, dry_run=True, notes=tuple(verdict.notes)))
            if said.outcome is not Outcome.VALID:
                texts[pos], valid[pos] = said.errors, False
            elif said.errors:
                texts[pos] = said.errors
        return texts, valid


def validate_online(inputs: Inputs, validator: Validator, record: RunRecord, api_url: str,
                    credentials: Credentials, *, timeout: float = 30.0, read_rate: float = READ_RATE,
                    progress: Progress | None = None) -> ExitStatus:
    """`etl validate --online`: the dry run plus the account checks over every valid row; reads
    the account, never posts. It has no journal: every valid row draws its credit down, so after
    part of a file was imported, `etl import` (which counts what was created) is the exact check."""
    with Client(api_url, credentials, timeout=timeout) as client:
        return _validate_online(inputs, validator, record, client, read_rate, progress)


def _validate_online(inputs: Inputs, validator: Validator, record: RunRecord, client: Client,
                     read_rate: float, progress: Progress | None) -> ExitStatus:
    account = for_client(validator.resource, client, read_rate=read_rate)
    if account is None:
        return validate(inputs, validator, record, progress)
    try:
        for index, chunk in inputs.chunks():
            columns = inputs.columns[index]
            _, valid = validator.errors(chunk, columns)
            account.collect(validator.payloads(chunk, columns, [int(p) for p in np.flatnonzero(valid)]))
    except FileProblem:  # the dry run meets it again, and reports it as it always does
        return validate(inputs, validator, record, progress)
    client.login()
    account.look_up()
    record.extra["account_checks"] = account.summary()
    return validate(inputs, CheckedValidator(validator, account, inputs), record, progress)
