"""Where a journal is kept: a SQLite file (the default) or a PostgreSQL database.

etl.ledger.journal speaks one SQL dialect, SQLite's, to a DB-API connection. For PostgreSQL this
module hands it a connection that translates each statement (`?` marks, `INSERT OR REPLACE`,
`INSERT OR IGNORE`, `BEGIN IMMEDIATE`, PRAGMAs, column types) and raises the errors below
instead of psycopg's, so no sqlite3 type leaves the SQLite side and no psycopg type leaves the
PostgreSQL side.

One run at a time, across machines: a PostgreSQL journal's run lock is a session advisory lock
keyed by the target, held on a connection of its own (TCP keepalives set, so a crashed host's
lock goes within minutes). Every write transaction first checks, inside the transaction, that
this run's lock session still holds it: a run whose lock was taken away (its session ended by
the server, an idle timeout, a failover) stops before it marks another row pending, so before
its next POST.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from etl.errors import RunAborted, UsageProblem

# --- errors: what the journal catches, whichever backend raised them ------------------------------


class PgError(Exception):
    """A PostgreSQL journal's statement failed."""


class PgDatabaseError(PgError):
    pass


class PgOperationalError(PgDatabaseError):
    """The server or the connection failed (gone, terminated, out of room)."""


class PgIntegrityError(PgDatabaseError):
    """A constraint refused the write (a record Id already claimed by another row)."""


Error = (sqlite3.Error, PgError)
DatabaseError = (sqlite3.DatabaseError, PgDatabaseError)
OperationalError = (sqlite3.OperationalError, PgOperationalError)
IntegrityError = (sqlite3.IntegrityError, PgIntegrityError)


# --- which backend ----------------------------------------------------------------------------------


def is_url(path: str) -> bool:
    """A PostgreSQL journal is named by its URL (postgresql://user@host/db)."""
    return path.split("://", 1)[0].lower() in ("postgresql", "postgres") and "://" in path


#: a URL's parameters that are secrets: the password, and the passphrase of the client's key
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
#: one of them, written out, wherever it is in a text
_SECRET_VALUE = re.compile(r"(?i)(\b(?:ssl)?password=)[^&#\s]*")


def shown(url: str) -> str:
    """URL as it may be shown (status, reports, logs, messages): the password masked. A URL
    whose user name or password holds a '/', '?' or '#' as it is (not %2F, %3F, %23) ends its
    host part there for Python's parser: all that comes before its last '@' is masked then."""
    head, sep, tail = url.partition("://")
    if sep and reads_two_ways(url):
        # what follows its last '@' is shown where it reads as a host and a database (a '/'
        # in it), its password parameters masked; else it may be the rest of a password
        rest = tail.rsplit("@", 1)[1]
        return _SECRET_VALUE.sub(r"\1***", shown(f"{head}://***@{rest}")) if "/" in rest else f"{head}://***"
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        who, host = netloc.rsplit("@", 1)
        if ":" in who:
            who = who.split(":", 1)[0] + ":***"
        netloc = f"{who}@{host}"
    query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMETERS else v)
                       for k, v in parse_qsl(parts.query)], safe="/*:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def reads_two_ways(url: str) -> bool:
    """Whether URL has a '@' past the end of its host part as Python's parser finds it (the
    first '/', '?' or '#'): its user name or password holds one of those as is, and libpq may
    take the URL otherwise. libpq reads a user name and password wherever a '@' comes before
    the first '/', whatever '?', '=' or '#' come before it; a query's '@' after a '/'
    (db/j?application_name=a@b) is a query's for both."""
    tail = url.partition("://")[2]
    ends = [at for at in (tail.find(c) for c in "/?#") if at >= 0]
    rest = tail[min(ends):] if ends else ""
    path, _, fragment = rest.partition("#")
    path, _, query = path.partition("?")
    if "@" in path or "@" in fragment:
        return True
    # the '@' libpq ends a user name and password at: its first, if no '/' comes before it
    at, slash = tail.find("@"), tail.find("/")
    return bool(ends) and at > min(ends) and (slash < 0 or at < slash)


def has_password(url: str) -> bool:
    return is_url(url) and shown(url) != url


def _hide(url: str, text: str) -> str:
    """TEXT (a server's or libpq's message) with any password of URL taken out, on one line
    (libpq's own runs over two: `...failed\n\tIs the server running on that host...`)."""
    parts = urlsplit(url)
    secrets = [parts.password or ""] + [v for k, v in parse_qsl(parts.query)
                                        if k.lower() in _SECRET_PARAMETERS]
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return " ".join(text.split())


def sqlite_connect(path: str, **kw: Any) -> sqlite3.Connection:
    return sqlite3.connect(path, **kw)


# --- SQLite statements as PostgreSQL's -------------------------------------------------------------


_TYPES = [(r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
          (r"\bINTEGER\b", "BIGINT"), (r"\bREAL\b", "DOUBLE PRECISION")]


class Dialect:
    """Translates the statements of etl.ledger.journal and etl.report.status; learns the tables from
    the schema."""

    def __init__(self) -> None:
        self.columns: dict[str, list[str]] = {}
        self.keys: dict[str, str] = {}
        self._cache: dict[str, str] = {}

    def schema(self, script: str) -> list[str]:
        out = []
        for statement in (s.strip() for s in script.split(";")):
            if not statement:
                continue
            body = "\n".join(line.split("--", 1)[0] for line in statement.splitlines())
            table = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)\s*$", body.strip(), re.S)
            if table:
                name, cols = table.group(1), [c.strip() for c in table.group(2).split(",")]
                self.columns[name] = [c.split()[0] for c in cols if c]
                self.keys[name] = next((c.split()[0] for c in cols if "PRIMARY KEY" in c), "")
                for pattern, pg in _TYPES:
                    body = re.sub(pattern, pg, body)
                if not any("INTEGER PRIMARY KEY" in c for c in cols):
                    # SQLite's implicit rowid: the order rows were first written in
                    body = body.rstrip()[:-1] + ", rowid BIGINT GENERATED BY DEFAULT AS IDENTITY)"
                    if name == "rows":  # SQLite finds a row by its rowid at once: so must
                        # PostgreSQL (the rows written since a mark, its highest rowid, are few)
                        out.append(body)
                        body = "CREATE INDEX IF NOT EXISTS rows_rowid ON rows (rowid)"
            out.append(body)
        return out

    def __call__(self, sql: str) -> str:
        done = self._cache.get(sql)
        if done is None:
            done = self._cache[sql] = self._translate(sql)
        return done

    def _translate(self, sql: str) -> str:
        text = sql.replace("%", "%%").replace("?", "%s")
        text = re.sub(r"\bMAX\(([^(),]+),([^(),]+)\)", r"GREATEST(\1,\2)", text)
        text = re.sub(r"\bgroup_concat\(", "string_agg(", text)
        alter = re.match(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+) (.*)$", text, re.S)
        if alter:  # a migration adds a column: the same types as the schema's
            table, column, kind = alter.groups()
            for pattern, pg in _TYPES[1:]:
                kind = re.sub(pattern, pg, kind)
            self.columns.setdefault(table, []).append(column)
            return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}"
        if "sqlite_master" in text:
            return "SELECT 1 WHERE false"  # no earlier version's journal lives in PostgreSQL
        verb = re.match(r"\s*INSERT OR (REPLACE|IGNORE) INTO (\w+)", text)
        if verb:
            how, table = verb.groups()
            text = re.sub(r"INSERT OR (REPLACE|IGNORE) INTO", "INSERT INTO", text, count=1)
            if how == "IGNORE":
                return text + " ON CONFLICT DO NOTHING"
            key = self.keys[table]
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns[table] if c != key)
            return f"{text} ON CONFLICT ({key}) DO UPDATE SET {sets}"
        upsert = re.match(r"\s*INSERT INTO (\w+)(.*DO UPDATE SET )(.*)$", text, re.S)
        if upsert:  # SQLite reads a bare column there as the row's; PostgreSQL wants it named
            table, head, sets = upsert.groups()
            columns = set(self.columns.get(table, ()))

            def qualified(assignment: str) -> str:
                name, _, expr = assignment.partition("=")
                expr = re.sub(r"(?<![.\w])(\w+)(?![.\w(])",
                              lambda m: f"{table}.{m[1]}" if m[1] in columns else m[1], expr)
                return f"{name}={expr}"

            return text[:upsert.start(3)] + ", ".join(qualified(a) for a in sets.split(", "))
        return text


# --- the connection ---------------------------------------------------------------------------------


_APP_KEY = 0x4E58  # the first half of every etl advisory lock key
_LET_GO = 2.0  # seconds a run waits for the run lock a run that just ended lets go of
_GATE = _APP_KEY + 1  # held by each write transaction: a new holder waits for the last one


def lock_key(target: str) -> int:
    """The run lock's key of TARGET, however its host is spelt (`localhost`, `127.0.0.1`: one
    server, one journal, one lock)."""
    from etl.ledger.entries import one_target

    one = one_target(target).encode()
    return int.from_bytes(hashlib.blake2b(one, digest_size=4).digest(), "big") & 0x7FFFFFFF


def _connect(url: str, app: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise UsageProblem(f"the journal {shown(url)} is a PostgreSQL database: install etl with its "
                           "postgresql extra (pip install 'nexudus-etl[postgresql]')") from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, application_name=app,
                               keepalives=1, keepalives_idle=30, keepalives_interval=10,
                               keepalives_count=3)
    except psycopg.Error as exc:
        raise UsageProblem(f"can't open the journal {shown(url)}: {_hide(url, str(exc)).strip()}") from None


def _mapped(url: str, exc: Exception) -> PgError:
    import psycopg

    text = _hide(url, str(exc)).strip()
    if isinstance(exc, psycopg.errors.IntegrityError):
        return PgIntegrityError(text)
    if isinstance(exc, psycopg.errors.DiskFull | psycopg.errors.InsufficientResources):
        mapped = PgOperationalError(f"database or disk is full: {text}")
        mapped.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
        return mapped
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown | psycopg.InterfaceError):
        return PgOperationalError(text)
    return PgDatabaseError(text)


class Cursor:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:  # a row, or None (as DB-API cursors type it)
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


def _plain(value: Any) -> Any:
    """numpy's numbers as Python's (SQLite takes them through their index protocol)."""
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else value


class PgConnection:
    """A journal's connection to PostgreSQL, spoken to in SQLite's dialect."""

    def __init__(self, url: str, *, lock: PgLock | None = None, read_only: bool = False) -> None:
        self.url = url
        self.lock = lock
        self.dialect = Dialect()
        self.conn = _connect(url, "etl journal")
        if read_only:
            self._run("SET default_transaction_read_only = on")

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        import psycopg

        try:
            cur = self.conn.execute(sql, None if params is None else [_plain(p) for p in params])
            return Cursor(cur.fetchall() if cur.description else [])
        except psycopg.Error as exc:
            raise _mapped(self.url, exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many rows (pipelined by psycopg: one round trip, not one a row)."""
        import psycopg

        try:
            with self.conn.cursor() as cur:
                cur.executemany(self.dialect(sql), [[_plain(p) for p in row] for row in rows])
        except psycopg.Error as exc:
            raise _mapped(self.url, exc) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        word = sql.strip().upper()
        info = re.fullmatch(r"\s*PRAGMA\s+table_info\((\w+)\)\s*", sql, re.I)
        if info:  # SQLite's (cid, name, type, notnull, default, pk), as far as migrations read it
            found = self._run("SELECT ordinal_position - 1, column_name, data_type, is_nullable = 'NO', "
                              "column_default, false FROM information_schema.columns "
                              "WHERE table_schema = current_schema() AND table_name = %s "
                              "ORDER BY ordinal_position", [info.group(1).lower()])
            return found
        if word.startswith("PRAGMA"):
            return Cursor([])
        if word == "BEGIN IMMEDIATE":
            self._run("BEGIN")
            self._check_lock()
            return Cursor([])
        if word == "BEGIN":  # reads that must see one moment of the journal
            return self._run("BEGIN ISOLATION LEVEL REPEATABLE READ")
        return self._run(self.dialect(sql), params)

    def executescript(self, script: str) -> None:
        with self.conn.transaction():
            for statement in self.dialect.schema(script):
                self._run(statement)

    def _check_lock(self) -> None:
        """Inside the write transaction just begun: this run's lock session still holds the lock.
        The gate makes a run that has just taken the lock wait for this transaction to end."""
        if self.lock is None:
            return
        self._run("SELECT pg_advisory_xact_lock(%s, %s)", (_GATE, self.lock.key))
        held = self._run(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s "
            "AND classid = %s AND objid = %s AND objsubid = 2", (self.lock.pid, _APP_KEY, self.lock.key))
        if held.fetchone() is None:
            self._run("ROLLBACK")
            raise RunAborted(f"this run lost the lock of the journal {shown(self.url)} (its session "
                             "was ended by the server); nothing more is sent. Rerun: rows under way "
                             "are in doubt and are checked, never sent blindly")

    def close(self) -> None:
        self.conn.close()


class PgLock:
    """The run lock of a PostgreSQL journal: a session advisory lock keyed by the target."""

    def __init__(self, url: str, target: str, run_id: str) -> None:
        self.url = url
        self.key = lock_key(target)
        import psycopg

        self.conn = _connect(url, f"etl run {run_id}"[:63])
        try:
            # a run that just ended (its session ending on the server, a moment after the process)
            # is given a moment to let go
            deadline = time.monotonic() + _LET_GO
            while True:
                got = self.conn.execute("SELECT pg_try_advisory_lock(%s, %s), pg_backend_pid()",
                                        (_APP_KEY, self.key)).fetchone()
                if got[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if not got[0]:
                holder = holder_of(self.conn, target) or "unknown"
                raise RunAborted(
                    f"another run holds the journal {shown(url)} ({holder}); wait for it to finish "
                    "(never point this run at another journal: rows would be posted twice)")
            self.pid = int(got[1])
            # the last holder's write transaction, if its session ended mid-way, ends first
            self.conn.execute("SET lock_timeout = '60s'")
            self.conn.execute("SELECT pg_advisory_lock(%s, %s)", (_GATE, self.key))
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_GATE, self.key))
        except psycopg.Error as exc:
            self.conn.close()
            raise RunAborted(f"can't take the lock of the journal {shown(url)} "
                             f"({_hide(url, str(exc)).strip()}); nothing was sent") from None
        except BaseException:
            self.conn.close()
            raise

    def release(self) -> None:
        """The lock let go of now, not when the server ends the session (a run started right
        after this one ends finds it free); in any case it goes with its session."""
        import psycopg

        try:
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_APP_KEY, self.key))
        except psycopg.Error:
            pass
        finally:
            self.conn.close()


def holder_of(conn: Any, target: str) -> str | None:
    """Who holds TARGET's run lock: its `etl run <id>` application name, or None."""
    import psycopg

    try:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
            "AND l.objsubid = 2", (_APP_KEY, lock_key(target))).fetchone()
    except psycopg.Error:
        return None
    return None if row is None else str(row[0])


def running_run(url: str, target: str | None) -> str | None:
    """The run id of the run holding the PostgreSQL journal at URL now, if any."""
    if not target:
        return None
    conn = _connect(url, "etl status")
    try:
        name = holder_of(conn, target)
    finally:
        conn.close()
    return name[len("etl run "):] if name and name.startswith("etl run ") else None
