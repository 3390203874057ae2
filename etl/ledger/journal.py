"""The SQLite journal of what was posted: the memory that makes reruns and crashes safe.

One journal per API target, in the user's state folder (never the current folder), so a run
started from any folder, with the URL spelt any way, finds the same journal. A row is entered
`pending` *before* its request leaves and gets its outcome after the answer, so after a crash
a row is untouched, final, or `pending` (which a rerun treats as in doubt, never resends
blindly). The row states themselves are changed by `etl.ledger.life` only; this module stores them.

One run at a time: an exclusive lock on `<journal>.lock` (`filelock`, the same on every
platform), which the OS drops when the process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from etl.errors import EtlError, RunAborted, UsageProblem
from etl.ledger import journal_backends as backends
from etl.ledger.entries import (
    _SCHEMA,
    CONTENT_OF,
    CREATED_LINES,
    LEGACY_SCHEME,
    VERSION,
    DiskFull,
    JournalProblem,
    _created_in,
    _old_scope,
    _register,
    _registry,
    _target_facts,
    _target_path,
    journal_folder_problem,
    now_iso,
    one_target,
    payload_hash,
    process_start,
    utc_day,
)
from etl.ledger.lookups import _EVERY_ROW_KEYED, Lookups
from etl.outcomes import STATES, ExitStatus

#: the note that every row's content key is in rows.content as in keys.content (set once, when a
#: journal of a release before that is first opened)
_ROWS_CONTENT = "rows_content"
# --- the journal -----------------------------------------------------------------------------------


#: the rows' columns of numbers (etl.ledger.entries._SCHEMA), which a row not created is read by
_NUMBERS = ("occurrence", "http_status", "attempts", "timeout", "first_sent", "last_sent",
            "server_offset", "settle_until", "fence_low", "fence_at", "fence_high")


def _one_name(path: str) -> None:
    """A SQLite journal has one name: a hard link to it would take a lock of its own (two runs at
    once on one journal), and SQLite keeps its log beside each name (a run through one would
    not see what a run killed through another wrote)."""
    try:
        names = os.stat(path).st_nlink
    except OSError:
        return  # not made yet: a name of its own
    if names > 1:
        raise JournalProblem(
            f"the journal {path} has {names} names (hard links): a run through one would not see "
            "what a run through another wrote, nor wait for it. Keep one name (remove the others; "
            "copy the file to back it up, never link it), then run again. Nothing was posted")


class Journal(Lookups):
    def __init__(self, path: str, target: str, *, run_id: str = "", command: str = "",
                 fresh: bool = False) -> None:
        """FRESH (`--new-journal`): knowingly start afresh, whatever other journals know."""
        self.url = path if backends.is_url(path) else None
        self.path = backends.shown(path) if self.url else os.path.abspath(path)
        self.target = target
        self.run_id = run_id
        self.fresh = fresh
        #: transactions this process committed: what it read of the journal before is as the
        #: journal stands while this number is the same (no other run writes to it meanwhile:
        #: the run lock)
        self.writes = 0
        if self.url:  # a PostgreSQL journal: its lock is the server's
            self._lock = backends.PgLock(self.url, target, run_id)
        else:
            _one_name(self.path)
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self._lock = self._take_lock()
            except OSError as exc:
                raise journal_folder_problem(os.path.dirname(self.path), exc) from None
        try:
            self._open(command)
        except BaseException:
            if getattr(self, "db", None) is not None:
                self.db.close()  # a PostgreSQL connection left open is a session the server keeps
            self._lock.release()
            raise
        self._mutex = threading.Lock()
        self._checkpointing: threading.Thread | None = None

    # opening

    def _take_lock(self) -> Any:
        from filelock import FileLock, Timeout

        # beside the file itself: a link to it, or a name through a linked folder, is the same
        # journal and takes the same lock (before: a lock of its own, and two runs went on at once)
        real = os.path.realpath(self.path)
        lock = FileLock(real + ".lock", timeout=0)
        holder_path = real + ".holder"
        try:
            lock.acquire()
        except Timeout:
            try:
                with open(holder_path, encoding="utf-8") as f:
                    holder = f.readline().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise RunAborted(
                f"another run holds the journal {self.path} ({holder}); wait for it to finish "
                "(never point this run at another journal: rows would be posted twice)"
            ) from None
        with open(holder_path, "w", encoding="utf-8") as f:  # a line for people, one for `etl status`
            f.write(f"pid {os.getpid()}, started {now_iso()}\n")
            f.write(json.dumps({"pid": os.getpid(), "run": self.run_id,
                                "process_start": process_start(os.getpid())}) + "\n")
        return lock

    def _open(self, command: str) -> None:
        existed = bool(self.url) or os.path.exists(self.path) and os.path.getsize(self.path) > 0
        try:
            self.db: Any = backends.PgConnection(self.url, lock=self._lock) if self.url else \
                backends.sqlite_connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a pending mark must survive a power cut
            self.db.executescript(_SCHEMA)
            have = {r[1] for r in self.db.execute("PRAGMA table_info(rows)")}
            if "fence_low" not in have:
                # the largest record Id seen before the row's latest request left: its record,
                # if any, has a larger one (where the target's Ids rise)
                self.db.execute("ALTER TABLE rows ADD COLUMN fence_low INTEGER")
            if "fence_at" not in have:
                # since when a record above fence_low is new (a fence read then, or a 200 for a
                # request sent then): how fresh the fence was when the request left
                self.db.execute("ALTER TABLE rows ADD COLUMN fence_at REAL")
            if "fence_high" not in have:
                # an Id seen by the time the row's request settled: a higher fence a later run
                # can use (its own reads come too late to be one)
                self.db.execute("ALTER TABLE rows ADD COLUMN fence_high INTEGER")
            if "content" not in have:
                # the row's content key, as `keys` keeps it, and whose (entries.CONTENT_OF): a
                # night reads the rows it created from a file's lines, with their contents, from
                # one index (rows_created_lines)
                self.db.execute("ALTER TABLE rows ADD COLUMN content TEXT")
            target = self._meta("target")
            legacy = self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='entries'").fetchone()
        except backends.DatabaseError as exc:
            if _cannot_write(exc):
                raise _write_problem(self.path, exc) from None
            raise _damaged(self.path, str(exc)) from None
        if target is None:
            with self.transaction() as db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('target', ?), ('version', ?)",
                           (self.target, VERSION))
        elif one_target(target) != one_target(self.target):  # localhost is 127.0.0.1
            raise UsageProblem(
                f"the journal {self.path} is the journal of {target}, not of {self.target}; "
                "leave out --journal to use the target's own journal"
            )
        if legacy:
            self.adopt_legacy(self.path)
        if self._meta(_ROWS_CONTENT) is None:
            with self.transaction() as db:  # a journal of a release before rows kept their contents
                db.execute(f"UPDATE rows SET content = (SELECT k.content FROM keys k "
                           f"WHERE k.identity = rows.identity) || {CONTENT_OF} WHERE content IS NULL "
                           "AND identity IN (SELECT identity FROM keys WHERE content IS NOT NULL)")
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (_ROWS_CONTENT,))
        # made after the contents are filled in (each row filled would be added to it: 3x slower)
        self.db.execute(CREATED_LINES)
        self._whole_record_ids()
        self._known_states()
        self._readable_rows_not_created()
        empty = self.db.execute("SELECT 1 FROM rows LIMIT 1").fetchone() is None
        if self._meta("identity") is None and empty:
            with self.transaction() as db:  # its rows' identities are made of values
                db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', 'values')")
        created = self.count("created")
        registry = _registry()
        others = [(p, k) for p, k in registry.items() if p != self.path
                  and one_target(str(k.get("target"))) == one_target(self.target) and os.path.exists(p)]
        if others and created == 0 and not self.count("in_doubt") and command == "import" \
                and not self.fresh:
            # a journal is registered when first used: one whose run was killed before it
            # closed has its created rows counted from the file itself
            counted = [(p, max(int(k.get("created") or 0), _created_in(p))) for p, k in others]
            counted = [(p, n) for p, n in counted if n > 0]
        else:
            counted = []
        if counted:
            path, n = counted[0]
            raise JournalProblem(
                f"the journal {path} records {n} credit uses created on {self.target}, but "
                f"this run would use {self.path}, which knows none of them: posting would send them "
                f"again. Use that journal (leave out --journal, or --journal {path}); only if this "
                "journal is meant to start afresh, --new-journal"
            )
        known = registry.get(self.path)
        if known and int(known.get("created") or 0) > 0 and created == 0 and command == "import":
            what = "was emptied" if existed else "is missing"
            raise JournalProblem(
                f"the journal {self.path} of {self.target} {what}, but it had recorded "
                f"{known['created']} created credit uses (last {known.get('updated_at')}): posting "
                "now would send them again. Restore it from a backup; only if you are sure the "
                "target has none of those rows, start afresh with --new-journal"
            )
        if command == "import" and self.path not in registry:
            try:  # registered when first used: a run killed before it closes leaves its trace
                _register(self.path, self.target, created)
            except OSError:
                pass  # the state folder is read-only: the look-up before posting still guards

    def adopt_legacy(self, path: str) -> int:
        """Take over the rows of an earlier version's journal (one table for every URL) that
        belong to this target; their identities are re-keyed when the rows are next read."""
        src = self.db if os.path.abspath(path) == self.path else backends.sqlite_connect(path)
        done = self._meta(f"adopted:{os.path.abspath(path)}")
        if done:
            return 0
        try:
            rows = src.execute(
                "SELECT scope, identity, state, record_id, http_status, attempts, errors, payload, "
                "source, row, resource, first_sent, settle_until, updated_at FROM entries").fetchall()
        except backends.DatabaseError:
            rows = []
        finally:
            if src is not self.db:
                src.close()
        taken = 0
        with self.transaction():
            for (scope, identity, state, record_id, status, attempts, errors, payload, source, row,
                 resource, first_sent, settle_until, updated_at) in rows:
                if _old_scope(scope) != self.target:
                    continue
                self.db.execute(
                    "INSERT OR IGNORE INTO rows (identity, scheme, state, record_id, http_status, "
                    "attempts, reason, payload, payload_hash, source, row, resource, first_sent, "
                    "last_sent, settle_until, timeout, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (identity, LEGACY_SCHEME, "in_doubt" if state == "pending" else state, record_id,
                     status, attempts or 0, errors, payload, payload_hash(resource or "", payload),
                     os.path.abspath(source) if source else None, row, resource, first_sent,
                     first_sent, settle_until, None, updated_at or now_iso()))
                taken += 1
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            (f"adopted:{os.path.abspath(path)}", now_iso()))
            if taken:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('legacy', '1')")
                self.db.execute("DELETE FROM meta WHERE key = ?", (_EVERY_ROW_KEYED,))  # not theirs
        return taken

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def checkpoint_soon(self) -> None:
        """The journal's write-ahead log copied into the journal by a thread of its own (SQLite),
        while the run does what is left without it (the report's lines written): the journal's
        closing, which would do it, is then quick. A night of a journal of 100,000 rows writes
        some 300 pages there for ten rows posted (a page of each of their indexes)."""
        if self.url or self._checkpointing is not None:
            return

        def work() -> None:  # a connection of its own: the run's look-ups do not wait for it
            with contextlib.suppress(*backends.Error):
                # never made anew: a journal moved away meanwhile leaves no empty one in its place
                own = backends.sqlite_connect(f"file:{quote(self.path)}?mode=rw", uri=True,
                                              isolation_level=None, timeout=30)
                try:
                    own.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    own.close()

        self._checkpointing = threading.Thread(target=work, name="checkpoint", daemon=True)
        self._checkpointing.start()

    def close(self) -> None:
        if self._checkpointing is not None:
            self._checkpointing.join()
        try:
            with self._mutex:
                created = self.count("created")
                self.db.close()
            if created:
                _register(self.path, self.target, created)
        except (*backends.Error, OSError):
            pass
        finally:
            self._lock.release()

    # low level

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta(self, key: str) -> str | None:
        with self._mutex:
            return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @contextmanager
    def transaction(self, rows: bool = True) -> Iterator[Any]:
        """One atomic write. A failure to write (disk full) is reported as what it is. Not ROWS:
        it writes nothing of the rows, their keys or the notes about them (`writes` stays)."""
        lock = getattr(self, "_mutex", None)
        if lock is not None:
            lock.acquire()
        try:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except backends.OperationalError as exc:
                raise _write_problem(self.path, exc) from None
            try:
                yield self.db
                self.writes += rows  # before COMMIT: a commit that fails may have been made
                self.db.execute("COMMIT")
            except BaseException as exc:
                try:
                    self.db.execute("ROLLBACK")
                except backends.Error:
                    pass  # the first error is the one to report
                if isinstance(exc, backends.DatabaseError) and not isinstance(exc, backends.IntegrityError):
                    raise _write_problem(self.path, exc) from None
                raise
        finally:
            if lock is not None:
                lock.release()

    def total(self) -> int:
        with self._mutex:
            return int(self.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def created_from(self, source: str) -> int:
        """How many rows created from SOURCE (an absolute path) the journal knows."""
        with self._mutex:
            return int(self.db.execute("SELECT COUNT(*) FROM rows WHERE state = 'created' AND "
                                       "source = ?", (source,)).fetchone()[0])

    def count(self, state: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM rows WHERE state = ?", (state,)).fetchone()[0])

    # facts about the target itself (how it stores fields), shared by every journal of it

    def target_fact(self, key: str) -> str | None:
        """A fact learnt about the target: from this journal, else from the target's own file in
        the state folder (written by any journal of the same target)."""
        value = self.meta(f"target:{key}")
        if value is None:
            value = _target_facts(self.target).get(key)
        return value

    def set_target_fact(self, key: str, value: str) -> None:
        self.set_meta(f"target:{key}", value)
        try:
            facts = _target_facts(self.target)
            facts[key] = value
            path = _target_path(self.target)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"target": self.target, "facts": facts}, f, indent=1)
            os.replace(tmp, path)
        except OSError:
            pass  # the journal has it; other journals learn it again

    def _whole_record_ids(self) -> None:
        """A record Id that is not a whole number (a journal edited by hand: '12x', 12.5) stops
        the command here, in so many words, not with a traceback wherever the Id is first used
        as a number. Texts sort after every number, so the largest Id by its index shows one;
        a fraction is seen where it is the largest or the smallest. PostgreSQL keeps numbers."""
        if self.url:
            return
        for which in ("MAX", "MIN"):
            (odd,) = self.db.execute(f"SELECT {which}(record_id) FROM rows").fetchone()
            if odd is None or isinstance(odd, int):
                continue
            raise self._bad_row("record_id = ?", odd,
                                f"has the record Id {odd!r}, which is not a whole number")

    def _known_states(self) -> None:
        """A state etl never writes (a journal edited by hand: 'Created', 'done') stops the command
        here, in so many words, not with a traceback where the row's life meets it. The states
        are read one after another through their index (a handful of look-ups, no scan)."""
        (state,) = self.db.execute("SELECT MIN(state) FROM rows").fetchone()
        while state is not None:
            if not isinstance(state, str) or state not in STATES or state == "new":
                raise self._bad_row("state = ?", state, f"is in the state {state!r}, which etl never writes")
            (state,) = self.db.execute("SELECT MIN(state) FROM rows WHERE state > ?", (state,)).fetchone()

    def _readable_rows_not_created(self) -> None:
        """The rows not created (sent again, reconciled: every field of theirs is read) with a
        number that is no number or a body that is no JSON object (a journal edited by hand)
        stop the command here, in so many words, not with a traceback where the field is used.
        They are found through the index of states: a migration's journal has few of them.
        PostgreSQL's columns keep their types; its bodies are left to the rows' own reading."""
        if self.url:
            return
        checks = [(f"typeof({c}) NOT IN ('integer', 'real', 'null')", c, "is not a number")
                  for c in _NUMBERS]
        checks.append(("CASE WHEN json_valid(payload) THEN json_type(payload) ELSE '' END != 'object'",
                       "payload", "is not the JSON object of a body"))
        which = " ".join(f"WHEN {test} THEN {k}" for k, (test, _, _) in enumerate(checks))
        states = ", ".join(f"'{s}'" for s in STATES if s not in ("new", "created"))
        try:
            found = self.db.execute(
                f"SELECT rowid, CASE {which} END FROM rows WHERE state IN ({states}) AND "
                f"({' OR '.join(test for test, _, _ in checks)}) LIMIT 1").fetchone()
        except backends.DatabaseError:
            return  # an SQLite without its JSON functions: the rows are read as they come
        if found is not None:
            rowid, k = found
            _, column, why = checks[k]
            (value,) = self.db.execute(f"SELECT {column} FROM rows WHERE rowid = ?", (rowid,)).fetchone()
            shown = value if len(str(value)) <= 40 else f"{str(value)[:40]}..."
            raise self._bad_row("rowid = ?", rowid, f"has the {column} {shown!r}, which {why}")

    def _bad_row(self, where: str, value: object, what: str) -> JournalProblem:
        """The journal is damaged: the first row WHERE (VALUE its parameter) is WHAT."""
        source, row = self.db.execute(f"SELECT source, row FROM rows WHERE {where} LIMIT 1",
                                      (value,)).fetchone()
        return _damaged(self.path, f"its row of {source} row {row} {what}")

    def max_record_id(self) -> int | None:
        """The largest record Id the journal holds (received by some run), or None."""
        with self._mutex:
            row = self.db.execute("SELECT MAX(record_id) FROM rows").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def claimed_ids(self) -> set[int]:
        with self._mutex:
            return {r[0] for r in self.db.execute(
                "SELECT record_id FROM rows WHERE record_id IS NOT NULL")}

    def events(self, identity: str) -> list[tuple[str, str | None, str, str, str | None]]:
        with self._mutex:
            return list(self.db.execute(
                "SELECT at, from_state, to_state, event, reason FROM events WHERE identity = ? "
                "ORDER BY seq", (identity,)))

    # rows: the ledger's writes (etl.ledger.life is the only caller)

    def write_row(self, db: Any, identity: str, fields: dict[str, Any],
                  insert: bool) -> None:
        fields = {**fields, "updated_at": now_iso()}
        if insert:
            names = ["identity", *fields]
            db.execute(f"INSERT INTO rows ({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
                       (identity, *fields.values()))
            # its content key, where it was kept before the row was written (Lookups.keep_keys)
            db.execute("UPDATE rows SET content = (SELECT k.content FROM keys k WHERE k.identity = ?) "
                       f"|| {CONTENT_OF} WHERE identity = ?", (identity, identity))
        else:
            sets = ", ".join(f"{k} = ?" for k in fields)
            db.execute(f"UPDATE rows SET {sets} WHERE identity = ?", (*fields.values(), identity))
        if fields.get("payload"):  # a row is never without its payload keys (Lookups.key_columns)
            from etl.ledger.rowkeys import stored_payload_keys

            keys = ",".join(f"{k:016x}" for k in stored_payload_keys([str(fields["payload"])])[0])
            db.execute("INSERT OR IGNORE INTO keys (identity, content, payload) VALUES (?, NULL, ?)",
                       (identity, keys))
            db.execute("UPDATE keys SET payload = ? WHERE identity = ? AND payload IS NULL", (keys, identity))
            if insert:  # the note that every row up to this one has its keys, moved on to it
                # when it stood right below it (a row a release before wrote without keys stops
                # it there: Lookups.fill_payload_keys looks at the rows after it, once a night)
                db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                           "WHERE key = ? AND CAST(value AS INTEGER) = (SELECT MAX(rowid) FROM rows) - 1",
                           (_EVERY_ROW_KEYED,))

    def write_event(self, db: Any, identity: str, source: str | None, row: int | None,
                    from_state: str | None, to_state: str, event: str, reason: str | None) -> None:
        db.execute(
            "INSERT INTO events (identity, at, run_id, source, row, from_state, to_state, event, "
            "reason) VALUES (?,?,?,?,?,?,?,?,?)",
            (identity, now_iso(), self.run_id, source, row, from_state, to_state, event, reason))

    # files and runs

    def note_source(self, source: str, rows: int, valid: int, scheme: str,
                    lines: Mapping[str, int] | None = None, unsettled: Mapping[str, str] | None = None
                    ) -> None:
        """What a run read of SOURCE; LINES: its report's lines of it by outcome, once the run
        is over, with UNSETTLED: the identities of its lines the journal may yet decide
        otherwise (in doubt, failed), and what each said (what `etl status` tells of the file:
        its lines as reported, those moved on that the journal decided since)."""
        # without LINES (read, not yet told, or a run cut short): what is left is not known
        counts = json.dumps({"run": self.run_id, "lines": dict(lines) if lines is not None else None,
                             "unsettled": dict(unsettled or {})}, sort_keys=True)
        with self.transaction(rows=False) as db:  # the sources table alone
            db.execute(  # by name: a journal may have more columns (one made by a later release)
                "INSERT INTO sources (source, rows, valid, scheme, last_run, updated_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (source) DO UPDATE SET "
                "rows = excluded.rows, valid = excluded.valid, scheme = excluded.scheme, "
                "last_run = excluded.last_run, updated_at = excluded.updated_at",
                (os.path.abspath(source), rows, valid, scheme, self.run_id, now_iso()))
            db.execute("INSERT INTO source_lines VALUES (?,?) ON CONFLICT (source) DO UPDATE SET "
                       "counts = excluded.counts", (os.path.abspath(source), counts))

    def note_reading(self, source: str) -> None:
        """This run reads SOURCE: until it tells the lines it reported (`note_source`), what is
        left of the file is not known (`etl status`): a run that stops part way (a file problem,
        a file changed while read) leaves it so, never the lines of a run before."""
        with self.transaction(rows=False) as db:
            db.execute("UPDATE sources SET last_run = ?, updated_at = ? WHERE source = ?",
                       (self.run_id, now_iso(), os.path.abspath(source)))

    def start_run(self, command: str, files: list[str], started_at: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO runs (run_id, command, started_at, files) VALUES (?,?,?,?)",
                       (self.run_id, command, started_at, json.dumps(files)))

    def finish_run(self, exit_code: int, counts: dict[str, int]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished_at = ?, exit_code = ?, counts = ? WHERE run_id = ?",
                       (now_iso(), exit_code, json.dumps(counts), self.run_id))

    # the daily quota

    def posts_on(self, day: str) -> int:
        with self._mutex:
            row = self.db.execute("SELECT posts FROM quota WHERE day = ?", (day,)).fetchone()
        return int(row[0]) if row else 0

    def reserve_post(self, limit: int, day: str | None = None) -> bool:
        """Count one POST today, unless that would pass LIMIT (then False, nothing counted)."""
        day = day or utc_day()
        with self.transaction() as db:
            row = db.execute("SELECT posts FROM quota WHERE day = ?", (day,)).fetchone()
            if (int(row[0]) if row else 0) >= limit:
                return False
            db.execute("INSERT INTO quota VALUES (?, 1) ON CONFLICT (day) DO UPDATE SET posts = posts + 1",
                       (day,))
            return True

    def release_post(self, day: str) -> None:
        """A counted POST that the server did not process (throttled, never sent) is given back."""
        with self.transaction() as db:
            db.execute("UPDATE quota SET posts = MAX(posts - 1, 0) WHERE day = ?", (day,))


def _cannot_write(exc: Exception) -> bool:
    """A failure to write (a full disk, a file size limit, a device error), not damage."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name:
        return name.startswith(("SQLITE_FULL", "SQLITE_IOERR"))
    text = str(exc)
    return "is full" in text or "I/O error" in text


def _damaged(path: str, why: str) -> JournalProblem:
    """The journal at PATH can't be used as it is (WHY: what is wrong with it)."""
    return JournalProblem(f"the journal {path} is damaged ({why}); restore it from a backup. Do not "
                          "delete it: it is what stops rows being posted twice")


def _write_problem(path: str, exc: Exception) -> EtlError:
    text = str(exc)
    if _cannot_write(exc):
        return DiskFull(f"the journal {path} could not be written ({text}); nothing more is sent. "
                        "Free some space and rerun: the journal is consistent")
    if "locked" in text:
        return RunAborted(f"the journal {path} is locked by another program ({text})")
    if (getattr(exc, "sqlite_errorname", "") or "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return _damaged(path, text)
    problem = JournalProblem(f"the journal {path} could not be written ({text})")
    problem.exit_status = ExitStatus.ABORTED
    return problem


