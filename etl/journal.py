"""The SQLite journal of what was posted: the memory that makes reruns and crashes safe.

A row's identity is decided before it is sent. Its journal entry is committed as `pending`
*before* the request leaves, and gets its outcome after the answer. So after a crash a row is
either untouched (never sent), final, or `pending`, which a rerun treats as `in_doubt` and
never resends blindly. Entries are scoped by API URL so rehearsals and production never mix.
POSTs are counted per UTC day across runs for `--daily-limit`.

One run at a time: an exclusive `flock` on `<journal>.lock`, which the OS drops when the
process dies, however it dies.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from etl.errors import RunAborted
from etl.fields import canonical_number

PENDING = "pending"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    scope TEXT NOT NULL,
    identity TEXT NOT NULL,
    state TEXT NOT NULL,
    record_id INTEGER,
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    errors TEXT,
    payload TEXT NOT NULL,
    source TEXT,
    row INTEGER,
    run_id TEXT,
    resource TEXT,
    first_sent REAL,            -- epoch seconds of the first send: older records aren't this row's
    settle_until REAL,          -- before this, "no record found" proves nothing (it may be coming)
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scope, identity)
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (scope, state);
CREATE TABLE IF NOT EXISTS daily_posts (
    scope TEXT NOT NULL, day TEXT NOT NULL, posts INTEGER NOT NULL,
    PRIMARY KEY (scope, day)
);
"""


@dataclass(frozen=True)
class Entry:
    identity: str
    state: str
    record_id: int | None
    http_status: int | None
    attempts: int
    errors: str | None
    payload: str
    source: str | None = None
    row: int | None = None
    resource: str | None = None
    first_sent: float | None = None
    settle_until: float | None = None


_COLUMNS = ("identity, state, record_id, http_status, attempts, errors, payload, source, row, "
            "resource, first_sent, settle_until")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def utc_day() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


class Journal:
    def __init__(self, path: str, scope: str, *, run_id: str = "") -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.scope = scope
        self.run_id = run_id
        self._lock_file = self._take_lock(path + ".lock")
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a pending mark must survive a power cut
        self.db.executescript(_SCHEMA)
        have = {r[1] for r in self.db.execute("PRAGMA table_info(entries)")}
        for column, kind in (("resource", "TEXT"), ("first_sent", "REAL"), ("settle_until", "REAL")):
            if column not in have:  # a journal written by an earlier version
                self.db.execute(f"ALTER TABLE entries ADD COLUMN {column} {kind}")
        self._mutex = threading.Lock()

    def _take_lock(self, lock_path: str) -> Any:
        f = open(lock_path, "a+")  # noqa: SIM115 - held for the journal's lifetime
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunAborted(
                f"another run holds the journal {self.path} ({holder}); "
                "wait for it to finish, or use another --journal"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {_now()}")
        f.flush()
        return f

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._mutex:
            self.db.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    def _write(self, sql: str, args: Iterable[Any]) -> None:
        with self._mutex:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(sql, tuple(args))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # --- rows ---------------------------------------------------------------------------------

    def recover(self, settle: float) -> int:
        """Rows a crash left `pending` may have been created: they become `in_doubt`.

        Their request may still be on its way: "no record found" proves nothing until SETTLE
        seconds after it was sent.
        """
        with self._mutex:
            cur = self.db.execute(
                "UPDATE entries SET state = 'in_doubt', updated_at = ?, errors = "
                "'a run stopped while this row was being sent; it may have been created', "
                "settle_until = COALESCE(first_sent, 0) + ? WHERE scope = ? AND state = ?",
                (_now(), settle, self.scope, PENDING),
            )
            return cur.rowcount

    def lookup(self, identities: list[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        with self._mutex:
            for start in range(0, len(identities), 500):
                part = identities[start: start + 500]
                marks = ",".join("?" * len(part))
                for r in self.db.execute(
                    f"SELECT {_COLUMNS} FROM entries WHERE scope = ? AND identity IN ({marks})",
                    (self.scope, *part),
                ):
                    found[r[0]] = Entry(*r)
        return found

    def mark_pending(self, identity: str, payload: str, source: str, row: int, resource: str = "") -> None:
        """Committed before the request is sent: from now on a crash means 'in doubt'."""
        self._write(
            "INSERT INTO entries (scope, identity, state, payload, source, row, run_id, resource, "
            "first_sent, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (scope, identity) "
            "DO UPDATE SET state = excluded.state, run_id = excluded.run_id, payload = excluded.payload, "
            "updated_at = excluded.updated_at, source = excluded.source, row = excluded.row, "
            "first_sent = excluded.first_sent",
            (self.scope, identity, PENDING, payload, source, row, self.run_id, resource, time.time(),
             _now()),
        )

    def record(
        self, identity: str, state: str, *, record_id: int | None, http_status: int | None,
        attempts: int, errors: str | None, settle: float = 0.0,
    ) -> None:
        self._write(
            "UPDATE entries SET state = ?, record_id = ?, http_status = ?, "
            "attempts = attempts + ?, errors = ?, settle_until = ?, updated_at = ? "
            "WHERE scope = ? AND identity = ?",
            (state, record_id, http_status, attempts, errors, time.time() + settle, _now(),
             self.scope, identity),
        )

    def entries(self, state: str | None = None) -> list[Entry]:
        sql = f"SELECT {_COLUMNS} FROM entries WHERE scope = ?"
        args: tuple[Any, ...] = (self.scope,)
        if state:
            sql += " AND state = ?"
            args += (state,)
        with self._mutex:
            return [Entry(*r) for r in self.db.execute(sql + " ORDER BY rowid", args)]

    def in_doubt(self, resource: str) -> list[Entry]:
        """Rows of RESOURCE (or of a journal too old to say) whose request may have created a record."""
        return [e for e in self.entries("in_doubt") if e.resource in (None, "", resource)]

    def claimed_ids(self) -> set[int]:
        with self._mutex:
            return {r[0] for r in self.db.execute(
                "SELECT record_id FROM entries WHERE scope = ? AND record_id IS NOT NULL", (self.scope,)
            )}

    # --- the daily quota ----------------------------------------------------------------------

    def posts_on(self, day: str) -> int:
        with self._mutex:
            row = self.db.execute(
                "SELECT posts FROM daily_posts WHERE scope = ? AND day = ?", (self.scope, day)
            ).fetchone()
        return int(row[0]) if row else 0

    def reserve_post(self, limit: int, day: str | None = None) -> bool:
        """Count one POST today, unless that would pass LIMIT (then False, nothing counted)."""
        day = day or utc_day()
        with self._mutex:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute(
                    "SELECT posts FROM daily_posts WHERE scope = ? AND day = ?", (self.scope, day)
                ).fetchone()
                used = int(row[0]) if row else 0
                if used >= limit:
                    self.db.execute("COMMIT")
                    return False
                self.db.execute(
                    "INSERT INTO daily_posts VALUES (?, ?, 1) ON CONFLICT (scope, day) "
                    "DO UPDATE SET posts = posts + 1",
                    (self.scope, day),
                )
                self.db.execute("COMMIT")
                return True
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def release_post(self, day: str) -> None:
        """A counted POST that the server did not process (throttled, never sent) is given back."""
        self._write(
            "UPDATE daily_posts SET posts = MAX(posts - 1, 0) WHERE scope = ? AND day = ?",
            (self.scope, day),
        )


def canonical_json(body: dict[str, Any]) -> str:
    """The payload as sent and as remembered: sorted keys, exact decimals, no spaces."""
    parts = []
    for key in sorted(body):
        value = body[key]
        if isinstance(value, Decimal):
            text = canonical_number(value)
        else:
            text = json.dumps(value, ensure_ascii=False)
        parts.append(f"{json.dumps(key)}:{text}")
    return "{" + ",".join(parts) + "}"
