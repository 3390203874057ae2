"""`etl status`: what a target's journal knows, read-only, without the network.

Per input file: rows done (created), in doubt, failed (sent again by the next run), rejected
(the API refused them: never sent again on their own) and left (valid rows still to be created:
neither done nor rejected); the POSTs of today (UTC) against the daily limit; how many nights
the rows still to post take at that limit; the last runs and their exit codes. It opens the
journal read-only, so it can run while an import holds the journal, and imports nothing heavy,
so it answers at once.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from etl.config import DEFAULT_API_URL
from etl.errors import UsageProblem
from etl.ledger import journal_backends as backends
from etl.ledger.entries import default_journal_path, normalise_url, rows_in
from etl.outcomes import STATE_OUTCOME, Outcome
from etl.texts import aligned


@dataclass
class Source:
    source: str
    rows: int | None = None  # as last read; None when the journal never recorded the file's size
    valid: int | None = None
    done: int = 0
    in_doubt: int = 0
    failed: int = 0  # the next run sends them again
    rejected: int = 0  # refused by the API: sent again only after a fix (or --retry-rejected)
    not_attempted: int = 0
    last_run: str | None = None
    # the last run that read the file never finished (killed, or running now): what is left of
    # the file can't be told until it is read again
    unfinished: bool = False

    @property
    def left(self) -> int:
        """Valid rows still to be created: neither created nor refused by the API (the rows in
        doubt among them are not resent blindly)."""
        known = self.done + self.in_doubt + self.failed + self.rejected + self.not_attempted
        return max(0, (self.valid if self.valid is not None else known) - self.done - self.rejected)

    @property
    def to_post(self) -> int:
        return max(0, self.left - self.in_doubt)


@dataclass
class Status:
    journal: str
    target: str | None
    day: str
    daily_limit: int
    posts_today: int = 0
    sources: list[Source] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def to_post(self) -> int:
        return sum(s.to_post for s in self.sources)

    @property
    def nights(self) -> int:
        """Nights of --daily-limit POSTs still needed for the rows left to post."""
        return math.ceil(self.to_post / self.daily_limit) if self.daily_limit else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "journal": self.journal, "target": self.target, "day": self.day,
            "posts_today": self.posts_today, "daily_limit": self.daily_limit,
            "to_post": self.to_post, "nights": self.nights,
            # a file whose last run never finished: to_post is a floor, not the whole
            "unfinished": [s.source for s in self.sources if s.unfinished],
            "sources": [{**asdict(s), "left": s.left} for s in self.sources],
            "runs": self.runs,
        }


@dataclass(frozen=True)
class StatusSettings:
    journal: str | None = None  # a SQLite file or a postgresql:// URL; None: the target's own
    api_url: str = DEFAULT_API_URL  # the target whose journal to read
    sandbox: bool = False  # the journal of the in-process emulator's rehearsals
    daily_limit: int = 5000  # POSTs a night, to count the nights still needed
    runs: int = 5  # how many of the last runs to list


def status(settings: StatusSettings) -> Status:
    """`etl status`: what the journal of a target knows."""
    return read(journal_for(settings.journal, settings.api_url, settings.sandbox),
                daily_limit=settings.daily_limit, runs=settings.runs)


def journal_for(journal: str | None, api_url: str, sandbox: bool) -> str:
    if journal:
        return journal
    return default_journal_path("sandbox" if sandbox else normalise_url(api_url))


def read(path: str, *, daily_limit: int, runs: int = 5, today: str | None = None) -> Status:
    """The journal at PATH (or a PostgreSQL journal's URL), opened read-only."""
    if backends.is_url(path):
        return _read_pg(path, daily_limit, runs, today)
    if not os.path.exists(path):
        raise UsageProblem(f"no journal at {path}: nothing has been imported into this target yet "
                           "(or name it with --journal)")
    day = today or dt.datetime.now(dt.UTC).date().isoformat()
    try:
        db = backends.sqlite_connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except backends.Error as exc:
        raise UsageProblem(f"can't open the journal {path}: {exc}") from None
    try:
        status = _read(db, path, daily_limit, runs, day)
    except backends.DatabaseError as exc:
        raise UsageProblem(f"{path} is not an etl journal this version can read ({exc})") from None
    finally:
        db.close()
    holder = _holder(path) if any(r["finished_at"] is None for r in status.runs) else None
    for run in status.runs:  # runs hold the journal's lock one at a time: only its holder runs
        run["running"] = run["finished_at"] is None and holder == run["run_id"]
    return status


def _read_pg(url: str, daily_limit: int, runs: int, today: str | None) -> Status:
    day = today or dt.datetime.now(dt.UTC).date().isoformat()
    shown = backends.shown(url)
    db = backends.PgConnection(url, read_only=True)
    try:
        if db.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
            raise UsageProblem(f"no journal in {shown}: nothing has been imported through it yet "
                               "(or name another with --journal)")
        status = _read(db, shown, daily_limit, runs, day)
    except backends.DatabaseError as exc:
        raise UsageProblem(f"{shown} is not an etl journal this version can read ({exc})") from None
    finally:
        db.close()
    holder = backends.running_run(url, status.target) \
        if any(r["finished_at"] is None for r in status.runs) else None
    for run in status.runs:
        run["running"] = run["finished_at"] is None and holder == run["run_id"]
    return status


def _holder(path: str) -> str | None:
    """The run id of the run that holds the journal now: the one that last took its lock, if
    that process is still alive and is the same process (a pid is reused, and a container's
    first process is pid 1 in every container). The lock itself is not tried: a run starting
    that instant would find it taken."""
    from etl.ledger.entries import process_start

    try:
        with open(os.path.realpath(path) + ".holder", encoding="utf-8") as f:
            f.readline()
            facts = json.loads(f.readline() or "{}")
        pid, run = int(facts["pid"]), facts.get("run")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid <= 0 or pid == os.getpid() or not run:
        return None
    if os.name == "posix":
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    started = facts.get("process_start")
    if started is not None and process_start(pid) != started:
        return None  # another process now has that pid
    return str(run)


def _read(db: Any, path: str, daily_limit: int, runs: int, day: str) -> Status:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    status = Status(path, meta.get("target"), day, daily_limit)
    row = db.execute("SELECT posts FROM quota WHERE day = ?", (day,)).fetchone()
    status.posts_today = int(row[0]) if row else 0
    sources: dict[str, Source] = {}
    for name, rows, valid, last_run in db.execute(
        "SELECT source, rows, valid, last_run FROM sources ORDER BY source"
    ):
        sources[name] = Source(name, rows, valid, last_run=last_run)
    said: dict[str, Any] = {}  # a file's lines as its last import reported them (`Journal.note_source`)
    if list(db.execute("PRAGMA table_info(source_lines)")):  # not in a journal of an earlier release
        said = {name: _json(counts, None)
                for name, counts in db.execute("SELECT source, counts FROM source_lines")}
    states: dict[str, Counter[str]] = {}
    for name, state, n in db.execute(
        "SELECT source, state, COUNT(*) FROM rows GROUP BY source, state ORDER BY source"
    ):
        key = name or "(unknown)"
        sources.setdefault(key, Source(key))
        states.setdefault(key, Counter())[state] += n
    told = {key: lines for key, s in sources.items()
            if (lines := _lines(db, s, said.get(key))) is not None}
    now = _states_of(db, [i for lines in told.values() for i in lines["unsettled"]])
    for key, s in sources.items():
        _count(s, states.get(key, Counter()), told.get(key), now)
    status.sources = sorted(sources.values(), key=lambda s: s.source)
    for run_id, command, started, finished, exit_code, counts, files in db.execute(
        "SELECT run_id, command, started_at, finished_at, exit_code, counts, files FROM runs "
        "ORDER BY started_at DESC LIMIT ?", (runs,)
    ):
        status.runs.append({
            "run_id": run_id, "command": command, "started_at": _seconds(started),
            "finished_at": _seconds(finished),
            "exit_code": exit_code, "counts": _json(counts, {}), "files": _json(files, []),
        })
    return status


def _lines(db: Any, s: Source, said: Any) -> dict[str, Any] | None:
    """S's lines as the run that last read it reported them (SAID, `Journal.note_source`).
    None, S marked unfinished, where that run has not finished (killed, or running) or stopped
    before it told them (a file problem, the file changed while read): the lines the file has
    now are not known. None where no run of this release told them (the journal's rows of the
    file are counted then, as an earlier release did)."""
    if s.last_run is not None:
        row = db.execute("SELECT finished_at FROM runs WHERE run_id = ?", (s.last_run,)).fetchone()
        if row is None or row[0] is None:
            s.unfinished = True
            return None
    if said is None:
        return None
    if not isinstance(said, dict) or not isinstance(said.get("lines"), dict) \
            or not isinstance(said.get("unsettled"), dict) or said.get("run") != s.last_run:
        s.unfinished = True
        return None
    return said


def _states_of(db: Any, identities: list[str]) -> dict[str, str]:
    """The journal's state of each of IDENTITIES."""
    return dict(rows_in(db, "SELECT identity, state FROM rows WHERE identity IN ({marks})", identities))


def _count(s: Source, states: Counter[str], said: dict[str, Any] | None, now: Mapping[str, str]) -> None:
    """S's columns: its lines as its last import reported them (SAID), those it left in doubt
    or failed moved on by what the journal has decided of their rows since (NOW: the state of
    each): a row `etl reconcile` settles moves from in doubt to done. A row the journal has of
    the file that is no longer in it (deleted, or edited into another row) is not one of its
    lines. Without SAID (a journal of an earlier release, a file an earlier release read
    last), the journal's rows of the file (STATES: by state)."""
    buckets: Counter[str] = Counter()
    if said is not None:
        lines = Counter({k: v for k, v in said["lines"].items() if isinstance(v, int)})
        buckets.update(done=lines["created"] + lines["skipped"], in_doubt=lines["in_doubt"],
                       failed=lines["failed"], rejected=lines["rejected"],
                       not_attempted=lines["not_attempted"])
        if s.rows is not None:
            s.valid = max(0, s.rows - lines["invalid"])
        for identity, was in said["unsettled"].items():
            before = _BUCKET.get(Outcome(was)) if was in _OUTCOME_VALUES else None
            after = _bucket(now[identity]) if identity in now else None
            if before is not None and after is not None and before != after:
                buckets[before] -= 1
                buckets[after] += 1
    else:
        for state, n in states.items():
            bucket = _bucket(state)
            if bucket is not None:
                buckets[bucket] += n
    for bucket in _BUCKET.values():
        setattr(s, bucket, max(0, buckets[bucket]))


def _bucket(state: str) -> str | None:
    outcome = STATE_OUTCOME.get(state)  # the state as a report shows it
    return _BUCKET.get(outcome) if outcome is not None else None


_OUTCOME_VALUES = {o.value for o in Outcome}
#: Which column of `etl status` a journal row counts in, by its outcome (etl.outcomes.STATE_OUTCOME)
_BUCKET = {Outcome.CREATED: "done", Outcome.IN_DOUBT: "in_doubt", Outcome.FAILED: "failed",
           Outcome.REJECTED: "rejected", Outcome.NOT_ATTEMPTED: "not_attempted"}


def _seconds(when: str | None) -> str | None:
    """A journal time to the second, as the start of a run is: the end is written to the
    millisecond, and one line showed both."""
    if not when:
        return when
    try:
        return dt.datetime.fromisoformat(when).isoformat(timespec="seconds")
    except ValueError:
        return when


def _json(text: str | None, empty: Any) -> Any:
    try:
        return json.loads(text) if text else empty
    except ValueError:
        return empty


def text(status: Status) -> str:
    lines = [f"Journal {status.journal}" + (f" (target {status.target})" if status.target else "")]
    head = ("file", "rows", "valid", "done", "in doubt", "failed", "rejected", "left")
    table = [head] + [
        (s.source, _n(s.rows), _n(s.valid), str(s.done), str(s.in_doubt), str(s.failed), str(s.rejected),
         str(s.left))
        for s in status.sources
    ]
    if status.sources:
        lines.extend(aligned(table, right=range(1, len(head))))
    else:
        lines.append("No rows recorded yet.")
    lines.append(f"POSTs today ({status.day} UTC): {status.posts_today} of {status.daily_limit} "
                 "(--daily-limit).")
    unfinished = [s.source for s in status.sources if s.unfinished]
    doubt = sum(s.in_doubt for s in status.sources)
    if status.to_post:
        nights = f"{status.nights} night" + ("s" if status.nights != 1 else "")
        lines.append(f"{status.to_post} rows to post" + (" at least" if unfinished else "")
                     + f": {nights} at {status.daily_limit} a night.")
    elif not unfinished and not doubt:  # rows in doubt may yet be posted: never "nothing left"
        lines.append("Nothing left to post.")
    for source in unfinished:
        lines.append(f"The last run that read {source} did not finish it (killed, running, or "
                     "stopped part way): what is left of it is known once a run reads it to the end.")
    if doubt:
        lines.append(f"{doubt} rows in doubt: `etl reconcile` checks them against the API.")
    if status.runs:
        lines.append("Last runs:")
        for run in status.runs:
            counts = ", ".join(f"{n} {o}" for o, n in run["counts"].items() if n)
            code = run["exit_code"] if run["exit_code"] is not None else "-"
            end = run["finished_at"] or ("running" if run.get("running") else
                                         "never finished (killed, crashed or out of room)")
            lines.append(f"  {run['run_id']}  {run['command']}  {run['started_at']} .. "
                         f"{end}  exit {code}"
                         + (f"  ({counts})" if counts else ""))
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)
