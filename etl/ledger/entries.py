"""What the journal is made of, besides the Journal itself: its tables and a row's Entry, its
errors and clock, where a target's journal lives and the registry that notices a lost one, and
the canonical form and hash of a sent body."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import posixpath
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from etl.errors import EtlError, RunAborted, UsageProblem, no_room
from etl.ledger import journal_backends as backends

VERSION = "2"
APP = "nexudus-etl"
#: where the journal lived before it moved to the user's state folder
OLD_DEFAULT = os.path.join("logs", "journal.sqlite3")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS rows (
    identity TEXT PRIMARY KEY,  -- the row: every cell as read (or its --key), and its occurrence
    scheme TEXT NOT NULL,       -- how the identity was made: which columns, or which --key
    base TEXT,                  -- the content identical rows share (their identities differ)
    occurrence INTEGER,         -- which of the identical rows it is
    state TEXT NOT NULL,        -- pending | created | rejected | failed | in_doubt | not_attempted
    record_id INTEGER UNIQUE,   -- a record Id belongs to one row, ever
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    payload TEXT NOT NULL,      -- the body as sent
    payload_hash TEXT NOT NULL, -- the body without any tag: finds the same credit use from elsewhere
    source TEXT,                -- absolute path of the file the row came from
    row INTEGER,                -- its spreadsheet row number there
    resource TEXT,
    run_id TEXT,
    system_id TEXT,             -- the key sent as SystemId, when one was sent
    timeout REAL,               -- seconds the last request was given: how long it may be under way
    first_sent REAL,            -- our clock, epoch seconds
    last_sent REAL,
    server_offset REAL,         -- the server's clock minus ours, from its Date header, when known
    settle_until REAL,          -- before this, "no record found" proves nothing
    created_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_state ON rows (state);
CREATE INDEX IF NOT EXISTS rows_payload ON rows (payload_hash);
CREATE INDEX IF NOT EXISTS rows_source ON rows (source, row);
-- `etl status` counts rows per file and state from this index alone (a million rows in a
-- fraction of a second, without reading the rows' payloads)
CREATE INDEX IF NOT EXISTS rows_source_state ON rows (source, state);
CREATE INDEX IF NOT EXISTS rows_base ON rows (base);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, identity TEXT NOT NULL, at TEXT NOT NULL, run_id TEXT,
    source TEXT, row INTEGER, from_state TEXT, to_state TEXT NOT NULL, event TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS events_identity ON events (identity);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, rows INTEGER, valid INTEGER, scheme TEXT, last_run TEXT,
    updated_at TEXT
);
-- a file's lines by outcome as its last import reported them, with the journal's rows of it not
-- created, by state, then (JSON): `etl status` tells of the file as it is, not of every row the
-- journal ever had of it (a table of its own: a journal an earlier release also writes to keeps
-- its tables as that release made them)
CREATE TABLE IF NOT EXISTS source_lines (source TEXT PRIMARY KEY, counts TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, command TEXT, started_at TEXT, finished_at TEXT, exit_code INTEGER,
    counts TEXT, files TEXT
);
CREATE TABLE IF NOT EXISTS quota (day TEXT PRIMARY KEY, posts INTEGER NOT NULL);
-- a row's cells, a digest of each by column name (JSON): what it takes to identify the row again
-- under another choice of columns (a later --key or --ignore-column)
CREATE TABLE IF NOT EXISTS cells (identity TEXT PRIMARY KEY, cells TEXT NOT NULL);
-- a row's content and payload as keys (etl.ledger.rowkeys): a night finds the rows it knows by them,
-- in bulk, without hashing every row of a history file the way its identity is made
CREATE TABLE IF NOT EXISTS keys (identity TEXT PRIMARY KEY, content TEXT, payload TEXT);
CREATE INDEX IF NOT EXISTS keys_content ON keys (content);
"""

#: the rows created from each line of a file, with their contents, Ids and times, in one index
#: (a night's chunk of a file it has been importing for weeks is one range of it: Lookups.created_at_lines)
CREATED_LINES = ("CREATE INDEX IF NOT EXISTS rows_created_lines ON rows "
                 "(source, row, content, record_id, created_at, updated_at, identity, state) "
                 "WHERE state = 'created'")  # every column a night reads: the index alone is read
#: rows.content: the row's content key (32 hex digits, as `keys` keeps it) and the first 16 hex
#: digits of the identity it is the content of. A release before rows kept their contents changes
#: a row's identity without a word of its content: its content is then no one's (OWN_CONTENT)
CONTENT_OF = "substr(identity, 1, 16)"
OWN_CONTENT = f"substr(content, 33) = {CONTENT_OF}"

ROW_COLUMNS = (
    "identity", "scheme", "base", "occurrence", "state", "record_id", "http_status", "attempts",
    "reason", "payload", "payload_hash", "source", "row", "resource", "run_id", "system_id",
    "timeout", "first_sent", "last_sent", "server_offset", "settle_until", "created_at", "updated_at",
    "fence_low", "fence_at", "fence_high",
)
_SELECT = f"SELECT {', '.join(ROW_COLUMNS)} FROM rows"


@dataclass(frozen=True, slots=True)
class Entry:
    """One row as the journal knows it."""

    identity: str
    scheme: str
    base: str | None
    occurrence: int | None
    state: str
    record_id: int | None
    http_status: int | None
    attempts: int
    reason: str | None
    payload: str
    payload_hash: str
    source: str | None
    row: int | None
    resource: str | None
    run_id: str | None
    system_id: str | None
    timeout: float | None
    first_sent: float | None
    last_sent: float | None
    server_offset: float | None
    settle_until: float | None
    created_at: str | None
    updated_at: str
    fence_low: int | None = None
    #: our clock (epoch seconds) since when any record above fence_low is new: a record Id above
    #: fence_low was committed after this time (None: since when is not known, an old fence)
    fence_at: float | None = None
    #: an Id seen by the time the request settled (and a little after): a record at or below it
    #: had been made by then (kept for later runs; None: none known)
    fence_high: int | None = None

    @property
    def where(self) -> str:
        return f"{self.source} row {self.row}"

    def lean(self) -> Entry:
        """The entry as a report line reads it (`etl.outcomes.decide`: its state, Id, answer,
        attempts, reason, place and times), without what was sent: kept for each row a chunk
        sends until the chunk's lines are written (tens of thousands of them)."""
        return replace(self, scheme="", base=None, payload="", payload_hash="", resource=None,
                       run_id=None, system_id=None)


class JournalProblem(EtlError):
    """The journal can't be used as it is (damaged, missing, for another target): exit 2."""


class DiskFull(RunAborted):
    """The journal could not be written: nothing more may be sent (exit 3)."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def utc_day() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


# --- where the journal lives ---------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """One spelling per API target: scheme and host in lower case, no default port, no dot
    segments, no trailing or doubled slashes, no query. `HTTP://Host:80//api/./` is `http://host/api`."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    path = re.sub(r"/{2,}", "/", parts.path or "/")
    path = posixpath.normpath(path) if path not in ("", "/") else ""
    path = "" if path in (".", "/") else path.rstrip("/")
    return urlunsplit((scheme, host, path, "", ""))


def rows_in(db: Any, sql: str, values: Iterable[Any]) -> Iterator[Any]:
    """The rows SQL selects from DB, its `{marks}` standing for VALUES (each once), 500 a query:
    the look-ups of many rows at once, whatever the number of values."""
    wanted = list(dict.fromkeys(values))
    for start in range(0, len(wanted), 500):
        part = wanted[start: start + 500]
        yield from db.execute(sql.format(marks=",".join("?" * len(part))), part).fetchall()


#: a target on this machine's loopback, by any of its names (the host, in group 2)
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _one_host(host: str) -> str:
    """HOST as one spelling of its address: an IPv4 address however the system's resolver reads
    it (`127.1`, `0x7f.0.0.1`, `2130706433` are 127.0.0.1), an IPv6 one compressed (an IPv4 one
    mapped into it as that one), and `localhost` and `::1` as 127.0.0.1 (one server on one port,
    as etl has always taken them). A name is itself."""
    bare = host.strip("[]").lower().rstrip(".")
    if bare == "localhost":
        return "127.0.0.1"
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(bare)
    except ValueError:
        try:  # the forms inet_aton reads and connections are made to
            address = ipaddress.IPv4Address(socket.inet_aton(bare))
        except (OSError, ValueError):
            return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address == ipaddress.IPv6Address("::1"):
            return "127.0.0.1"
        else:
            return f"[{address.compressed}]"
    return str(address)


def on_this_machine(host: str) -> bool:
    """Whether HOST is an address of this machine's loopback (127.0.0.0/8, ::1, `localhost`),
    however spelt: never a name that merely starts like one (`127.example.com`)."""
    one = _one_host(host).strip("[]")
    try:
        return ipaddress.ip_address(one).is_loopback
    except ValueError:
        return False


def one_target(target: str) -> str:
    """TARGET with its host spelt one way (`_one_host`): `localhost`, `127.0.0.1`, `127.1` and
    `::1` with one port are one server, the same target for a journal, its lock, and telling
    whether another journal knows it."""
    parts = urlsplit(target)
    if not parts.scheme or not parts.hostname:
        return target  # "sandbox"
    host = _one_host(parts.hostname)
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def state_home() -> str:
    """The user's state folder for etl (XDG_STATE_HOME on Linux, the platform's own elsewhere)."""
    import platformdirs

    return platformdirs.user_state_dir(APP, appauthor=False)


def default_journal_path(target: str) -> str:
    """The journal of TARGET (a normalised URL, or "sandbox") in the user's state folder: where
    none is, that of the same server spelt otherwise (`localhost`, `127.0.0.1`, `::1` with one
    port), if there is one."""
    path = _journal_file(target)
    if not os.path.exists(path):
        for other in loopback_spellings(target):
            if os.path.exists(_journal_file(other)):
                return _journal_file(other)
        # none yet: the one spelling's, so that two runs through two spellings at once share
        # it, and its lock
        return _journal_file(one_target(target))
    return path


def _journal_file(target: str) -> str:
    slug = re.sub(r"[^a-z0-9.]+", "-", target.lower().split("://", 1)[-1]).strip("-") or "target"
    return os.path.join(state_home(), "journals", f"{slug}.sqlite3")


def loopback_spellings(target: str) -> list[str]:
    """TARGET's server spelt the other ways its journal may be named by (`127.0.0.1`,
    `localhost`, `[::1]`, or the one spelling of its address), where it is spelt otherwise."""
    one = one_target(target)
    parts = urlsplit(one)
    if parts.hostname is None:
        return []
    spellings = [one]
    if _one_host(parts.hostname) == "127.0.0.1":
        port = f":{parts.port}" if parts.port is not None else ""
        spellings = [urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", "")) for host in _LOOPBACK]
    return [s for s in dict.fromkeys(spellings) if s != target]


# --- a registry of journals, so that a lost one is noticed -----------------------------------------


def _registry_path() -> str:
    return os.path.join(state_home(), "journals.json")


def _registry() -> dict[str, Any]:
    try:
        with open(_registry_path(), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _register(path: str, target: str, created: int) -> None:
    data = _registry()
    known = data.get(path) or {}
    data[path] = {"target": target, "created": max(created, int(known.get("created") or 0)),
                  "updated_at": now_iso()}
    os.makedirs(os.path.dirname(_registry_path()), exist_ok=True)
    tmp = _registry_path() + f".{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, _registry_path())


def _created_in(path: str) -> int:
    """How many created rows another journal's file holds (0 if it can't be read)."""
    try:
        db = backends.sqlite_connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM rows WHERE state = 'created'").fetchone()[0])
        finally:
            db.close()
    except backends.Error:
        return 0


def forget(path: str) -> None:
    """`--new-journal`: the journal at PATH is knowingly started afresh."""
    data = _registry()
    if data.pop(backends.shown(path) if backends.is_url(path) else os.path.abspath(path), None) is not None:
        os.makedirs(os.path.dirname(_registry_path()), exist_ok=True)
        with open(_registry_path(), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)


def process_start(pid: int) -> int | None:
    """When process PID started, in clock ticks since boot (Linux), to tell it from a later
    process given the same pid; None where that can't be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of the line, counted after the command's name
    except (OSError, ValueError, IndexError):
        return None


def journal_folder_problem(folder: str, exc: OSError) -> EtlError:
    """The journal's folder can't be made or written: nothing has been sent yet."""
    why = exc.strerror or str(exc)
    if no_room(exc):
        return DiskFull(f"the journal's folder {folder} has no room ({why}); nothing is sent. "
                        "Free some space and rerun")
    return UsageProblem(f"can't write the journal's folder {folder} ({why}); set XDG_STATE_HOME to "
                        "a folder this user can write, or give --journal")


def _target_path(target: str) -> str:
    slug = re.sub(r"[^a-z0-9.]+", "-", target.lower().split("://", 1)[-1]).strip("-") or "target"
    return os.path.join(state_home(), "targets", f"{slug}.json")


def _target_facts(target: str) -> dict[str, str]:
    try:
        with open(_target_path(target), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("target") != target or not isinstance(data.get("facts"), dict):
        return {}
    return {str(k): str(v) for k, v in data["facts"].items()}


LEGACY_SCHEME = "v1"


def _old_scope(scope: str) -> str:
    return scope if scope == "sandbox" else normalise_url(scope)


def payload_hash(resource: str, body: str) -> str:
    import hashlib

    return hashlib.blake2b(f"{resource}\n{body}".encode(), digest_size=16).hexdigest()


def canonical_json(body: dict[str, Any]) -> str:
    """The payload as sent and as remembered: sorted keys, exact decimals, no spaces."""
    from etl.fields import canonical_number

    parts = []
    for key in sorted(body):
        value = body[key]
        if isinstance(value, Decimal):
            text = canonical_number(value)
        else:
            text = json.dumps(value, ensure_ascii=False)
        parts.append(f"{json.dumps(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def clock() -> float:
    return time.time()
