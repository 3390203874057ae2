"""What the journal (etl.ledger.journal) knows of rows: look-ups by identity, payload, content
key and content, the keys and cells kept to find rows again, and a row given today's identity."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.ledger.entries import _SELECT, CONTENT_OF, OWN_CONTENT, ROW_COLUMNS, Entry, rows_in
from etl.ledger.rowkeys import hex_pairs

#: the journal's note that every row has its payload keys (`Lookups.key_columns`)
_EVERY_ROW_KEYED = "every_row_keyed"
#: the meta key of a file named through a link: LINK + its path as named + tab + its real path
LINK = "link:"
#: what separates the cells of a look-up's column read as one text
_UNIT = "\x1f"


class CreatedLines(NamedTuple):
    """Rows the journal created from lines of a file (`Lookups.created_at_lines`), as columns."""

    rows: np.ndarray  # the line's row number, int64
    k1: np.ndarray  # the row's content key, its two lanes (uint64)
    k2: np.ndarray
    record_ids: np.ndarray  # int64, -1 where the journal has none
    created: arrow.Array  # when created, as the journal keeps it ('' for no time)

    @classmethod
    def none(cls) -> CreatedLines:
        empty = np.zeros(0, np.int64)
        return cls(empty, empty.astype(np.uint64), empty.astype(np.uint64), empty,
                   arrow.array([], arrow.string()))


def _split(text: str, separator: str) -> arrow.Array:
    """TEXT's parts between SEPARATORs, as an Arrow string array."""
    return pc.split_pattern(arrow.array([text], arrow.string()), separator).flatten()


def _whole(texts: arrow.Array, missing: int | None = None) -> np.ndarray:
    """Whole numbers spelt as TEXTS (nulls: MISSING), as int64; ValueError where one is not
    spelt as the journal writes them (Arrow's cast would read '0x1f' as 31, ' 7' as 7)."""
    if pc.all(pc.match_substring_regex(texts, r"^-?[0-9]{1,19}$")).as_py() is False:
        raise ValueError("not a whole number as the journal writes them")
    try:
        numbers = pc.cast(texts, arrow.int64())
    except (arrow.ArrowInvalid, arrow.ArrowNotImplementedError) as exc:
        raise ValueError(str(exc)) from None
    if missing is not None:
        numbers = numbers.fill_null(missing)
    elif numbers.null_count:
        raise ValueError("a number is missing")
    return np.asarray(numbers.to_numpy(zero_copy_only=False), np.int64)


class StateOf(NamedTuple):
    """Of a journal's row, what a night's first pass needs (`Lookups.states_by_content`)."""

    identity: str
    scheme: str
    state: str
    occurrence: int | None
    payload_hash: str
    base: str | None


class Lookups:
    """The journal's look-ups of rows and the identities it keeps (a part of Journal)."""

    db: Any
    _mutex: threading.Lock

    if TYPE_CHECKING:  # Journal's own (the type checker's view only)
        def transaction(self) -> AbstractContextManager[Any]: ...

        def _meta(self, key: str) -> str | None: ...

    # rows: reading

    def _rows_in(self, sql: str, values: Iterable[Any]) -> Iterator[Any]:
        """`rows_in` of the journal, its look-ups one at a time."""
        with self._mutex:
            yield from rows_in(self.db, sql, values)

    def lookup(self, identities: Iterable[str]) -> dict[str, Entry]:
        return {r[0]: Entry(*r) for r in self._rows_in(_SELECT + " WHERE identity IN ({marks})", identities)}

    def created_with_payload(self, hashes: Iterable[str], *, maybe: bool = False
                             ) -> dict[str, list[Entry]]:
        """Created rows by their payload's hash: the same credit use, from wherever it came;
        with MAYBE, rows that may have been created too (in doubt, pending)."""
        found: dict[str, list[Entry]] = {}
        states = "('created', 'in_doubt', 'pending')" if maybe else "('created')"
        for r in self._rows_in(  # found by their payload's index, never by their state's: a
                # journal's created rows are most of it (`state || ''` keeps SQLite off that index)
                f"{_SELECT} WHERE state || '' IN {states} AND payload_hash IN ({{marks}}) "
                # rows not created yet first, as SQLite orders NULLs and PostgreSQL must too
                "ORDER BY created_at IS NOT NULL, created_at, rowid", hashes):
            entry = Entry(*r)
            found.setdefault(entry.payload_hash, []).append(entry)
        return found

    def entries(self, state: str | None = None) -> list[Entry]:
        sql, args = _SELECT, tuple[str, ...]()
        if state:
            sql, args = sql + " WHERE state = ?", (state,)
        with self._mutex:
            return [Entry(*r) for r in self.db.execute(sql + " ORDER BY rowid", args)]

    def at(self, source: str, row: int) -> list[Entry]:
        """The journal's rows that came from SOURCE (an absolute path, or a file name) row ROW."""
        with self._mutex:  # a file is kept by its real path (by its path as named, before)
            found = [Entry(*r) for r in self.db.execute(
                f"{_SELECT} WHERE source IN (?, ?) AND row = ?",
                (os.path.realpath(source), os.path.abspath(source), row))]
            if not found and os.sep not in source:
                # a file named through a link (nightly/latest.csv) is kept by its real path: the
                # files the journal knows were named so (Journal's LINK notes)
                linked = {k[len(LINK):].partition("\t")[2] for (k,) in self.db.execute(
                    "SELECT key FROM meta WHERE key LIKE ?", (LINK + "%",))
                    if os.path.basename(k[len(LINK):].partition("\t")[0]) == source}
                found = [e for e in (Entry(*r) for r in self.db.execute(f"{_SELECT} WHERE row = ?", (row,)))
                         if e.source and (os.path.basename(e.source) == source or e.source in linked)]
        return found

    def key_columns(self, payload_keys: Callable[[list[str]], list[list[int]]] | None
                    ) -> tuple[str, str, str, str]:
        """What a night keys a file's rows against, each one text of keys as the journal keeps
        them: every content key (32 hex digits each, run together), and payload keys (16 hex
        digits each, joined by commas) of rows without a content key, of every row, and of rows
        that were not created and may not have been (refused, failed, never sent). Read from the
        keys the journal keeps alone, as one text each (a journal of a migration keeps millions):
        a key kept for a row that was never sent only adds a row to look at more closely. Rows
        without payload keys (written before a row's were kept with it, or given another
        identity since) get them first, made by PAYLOAD_KEYS from their payloads (None: they
        were given them just before, `fill_payload_keys`: the keys are only read)."""
        if payload_keys is not None:
            self.fill_payload_keys(payload_keys)
        with self._mutex:
            contents = self.db.execute("SELECT group_concat(content, '') FROM keys "
                                       "WHERE length(content) = 32").fetchone()[0]
            lacking = self.db.execute("SELECT group_concat(payload, ',') FROM keys "
                                      "WHERE content IS NULL AND payload IS NOT NULL").fetchone()[0]
            every = self.db.execute("SELECT group_concat(payload, ',') FROM keys "
                                    "WHERE payload IS NOT NULL").fetchone()[0]
            settled = self.db.execute(
                "SELECT group_concat(k.payload, ',') FROM rows r JOIN keys k ON k.identity = r.identity "
                "WHERE r.state IN ('rejected', 'failed', 'not_attempted') AND k.payload IS NOT NULL"
            ).fetchone()[0]
        return contents or "", lacking or "", every or "", settled or ""

    def fill_payload_keys(self, payload_keys: Callable[[list[str]], list[list[int]]]) -> None:
        """Every row's payload keys, where the journal lacks them; then the journal notes up to
        which row (rowid) every row has them, in the same transaction (a change of identities
        meanwhile, on another machine, waits). A row is written with its keys from then on
        (`Journal.write_row`), but a release before that one, writing to the same journal (a
        shared journal mid-upgrade, a rollback), knows nothing of the note: the rows written
        since it are looked at each time, never the whole journal again."""
        with self._mutex:
            note = self._meta(_EVERY_ROW_KEYED)
            top = self.db.execute("SELECT MAX(rowid) FROM rows").fetchone()[0] or 0
        mark = int(note) if note is not None and note.isdigit() else -1
        if mark >= top:
            return
        with self.transaction() as db:
            missing = db.execute(
                "SELECT r.identity, r.payload FROM rows r LEFT JOIN keys k ON k.identity = r.identity "
                "WHERE r.rowid > ? AND k.payload IS NULL AND r.payload IS NOT NULL", (mark,)).fetchall()
            if missing:
                made = payload_keys([m[1] for m in missing])
                db.executemany("INSERT OR IGNORE INTO keys (identity, content, payload) "
                               "VALUES (?, NULL, NULL)", [(m[0],) for m in missing])
                db.executemany("UPDATE keys SET payload = ? WHERE identity = ?",
                               [(",".join(f"{k:016x}" for k in keys), m[0])
                                for m, keys in zip(missing, made, strict=True)])
            top = db.execute("SELECT MAX(rowid) FROM rows").fetchone()[0] or 0
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_EVERY_ROW_KEYED, str(top)))

    def by_content(self, contents: Iterable[str], payloads: bool = True) -> dict[str, list[Entry]]:
        """The rows of each content key, as the journal keeps them; without PAYLOADS, their
        payloads left out (a night's rows of contents the journal has: hundreds of thousands,
        whose report lines never show what was sent)."""
        columns = ", ".join(f"r.{c}" if payloads or c != "payload" else "'' AS payload" for c in ROW_COLUMNS)
        return self._of_contents(contents, columns, Entry)

    def states_by_content(self, contents: Iterable[str]) -> dict[str, list[Any]]:
        """`by_content`, each row with only what says whether and which to send of it (identity,
        scheme, state, occurrence, payload_hash, base): a night's first pass, over rows of
        which the journal knows hundreds of thousands."""
        return self._of_contents(
            contents, "r.identity, r.scheme, r.state, r.occurrence, r.payload_hash, r.base", StateOf)

    def created_span(self, source: str) -> tuple[int, int] | None:
        """The first and last rows of SOURCE (a real path) the journal created rows from (one
        end of its rows_created_lines index each); None for none, or for row numbers that are
        not whole numbers."""
        with self._mutex:  # each end alone: an end of the index, not a scan of it
            first, last = self.db.execute(
                "SELECT (SELECT MIN(row) FROM rows WHERE source = ? AND state = 'created'), "
                "(SELECT MAX(row) FROM rows WHERE source = ? AND state = 'created')",
                (source, source)).fetchone()
        if not isinstance(first, int) or not isinstance(last, int):
            return None  # none, or a row number not as etl writes them (edited by hand)
        return first, last

    def created_at_lines(self, source: str, first: int, last: int) -> CreatedLines | None:
        """The rows created from SOURCE (a real path, as the journal keeps it) rows FIRST to LAST,
        as columns (CreatedLines): row, content key, record Id (-1 for none), when created (else
        last changed, as `etl.outcomes.when` reads them: an empty created_at is no time). One
        range of the journal's rows_created_lines index, each column read as one text (a row at
        a time, a thread reading the journal would wait for the others' turns at each row) and
        split by Arrow's kernels; None where a cell is not as etl writes it (a separator in a
        time, a content key that is not 32 hex digits: the rows are looked up otherwise)."""
        with self._mutex:
            n, rows, contents, ids, times = self.db.execute(
                "SELECT COUNT(*), group_concat(CAST(row AS TEXT), ','), "
                "group_concat(substr(content, 1, 32), ''), "
                "group_concat(COALESCE(CAST(record_id AS TEXT), ''), ','), "
                "group_concat(COALESCE(NULLIF(created_at, ''), updated_at, ''), ?) "
                "FROM rows WHERE source = ? AND row BETWEEN ? AND ? AND state = 'created' "
                f"AND {OWN_CONTENT}", (_UNIT, source, first, last)).fetchone()
        if not n:
            return CreatedLines.none()
        if times.count(_UNIT) != n - 1:
            return None
        numbers = _split(rows, ",")
        record_ids = _split(ids, ",")
        if len(numbers) != n or len(record_ids) != n:
            return None
        record_ids = pc.if_else(pc.equal(record_ids, ""), arrow.scalar(None, arrow.string()), record_ids)
        try:
            k1, k2 = hex_pairs([contents], count=n)
            return CreatedLines(_whole(numbers), k1, k2, _whole(record_ids, missing=-1), _split(times, _UNIT))
        except ValueError:
            return None

    def _of_contents(self, contents: Iterable[str], columns: str, make: Callable[..., Any]
                     ) -> dict[str, list[Any]]:
        """The rows of each content key, their COLUMNS made into MAKE, 500 keys a query."""
        found: dict[str, list[Any]] = {}
        for row in self._rows_in(f"SELECT k.content, {columns} FROM rows r JOIN keys k "
                                 "ON k.identity = r.identity WHERE k.content IN ({marks})", contents):
            found.setdefault(row[0], []).append(make(*row[1:]))
        return found

    def keep_keys(self, keys: Mapping[str, tuple[str | None, str]]) -> None:
        """Rows' content and payload keys, by identity (a content key found for a row kept
        before its content key was)."""
        if keys:
            with self.transaction() as db:
                db.executemany("INSERT OR IGNORE INTO keys (identity, content, payload) "
                               "VALUES (?, NULL, NULL)", [(k,) for k in keys])
                db.executemany("UPDATE keys SET content = COALESCE(?, content), "
                               "payload = COALESCE(?, payload) WHERE identity = ?",
                               [(c, p, k) for k, (c, p) in keys.items()])
                db.executemany(f"UPDATE rows SET content = COALESCE(? || {CONTENT_OF}, content) "
                               "WHERE identity = ?",
                               [(c, k) for k, (c, _) in keys.items() if c is not None])

    def of_bases(self, bases: Iterable[str]) -> dict[str, list[tuple[str, str, int]]]:
        """`of_base` of many contents at once."""
        found: dict[str, list[tuple[str, str, int]]] = {}
        for base, identity, state, occurrence in self._rows_in(
                "SELECT base, identity, state, occurrence FROM rows WHERE base IN ({marks})", bases):
            found.setdefault(base, []).append((identity, state, int(occurrence or 0)))
        return found

    def of_base(self, base: str) -> list[tuple[str, str, int]]:
        """The rows of one content: (identity, state, occurrence), for identical rows."""
        with self._mutex:
            return [(r[0], r[1], int(r[2] or 0)) for r in self.db.execute(
                "SELECT identity, state, occurrence FROM rows WHERE base = ?", (base,))]

    def snapshot(self) -> tuple[set[int], list[Entry]]:
        """(record Ids claimed, rows with a request under way or its answer not yet applied),
        read together."""
        with self._mutex:
            self.db.execute("BEGIN")
            try:
                claimed = {r[0] for r in self.db.execute(
                    "SELECT record_id FROM rows WHERE record_id IS NOT NULL")}
                busy = [Entry(*r) for r in self.db.execute(f"{_SELECT} WHERE state = 'pending'")]
            finally:
                self.db.execute("COMMIT")
        return claimed, busy

    def holder(self, db: Any, record_id: int) -> tuple[str, str, str] | None:
        """Inside a transaction: the row holding RECORD_ID, as (identity, state, the event that
        gave it the record: 'created' for its own 200, else a claim), or None."""
        row = db.execute("SELECT identity, state FROM rows WHERE record_id = ?", (record_id,)).fetchone()
        if row is None:
            return None
        how = db.execute("SELECT event FROM events WHERE identity = ? AND to_state = 'created' "
                         "ORDER BY seq DESC LIMIT 1", (row[0],)).fetchone()
        return str(row[0]), str(row[1]), str(how[0]) if how else "created"

    # rows: identities and their cells, kept and changed

    def rekey(self, old: str, new: str, scheme: str) -> None:
        """A row adopted from an earlier version's journal gets today's identity."""
        with self.transaction() as db:
            db.execute("UPDATE rows SET identity = ?, scheme = ?, content = NULL WHERE identity = ?",
                       (new, scheme, old))
            db.execute("UPDATE events SET identity = ? WHERE identity = ?", (new, old))
            db.execute("DELETE FROM keys WHERE identity = ?", (old,))
            db.execute("DELETE FROM meta WHERE key = ?", (_EVERY_ROW_KEYED,))  # its payload's: again

    def reidentify(self, old: str, new: str, scheme: str, base: str | None, occurrence: int | None,
                   cells: dict[str, str]) -> None:
        """A row identified another way before (by the release before identities were made of
        values, or under another choice of columns) gets today's identity."""
        with self.transaction() as db:
            db.execute("UPDATE rows SET identity = ?, scheme = ?, base = ?, occurrence = ?, content = NULL "
                       "WHERE identity = ?", (new, scheme, base, occurrence, old))
            db.execute("UPDATE events SET identity = ? WHERE identity = ?", (new, old))
            db.execute("DELETE FROM keys WHERE identity = ?", (old,))  # its content: found again
            db.execute("DELETE FROM meta WHERE key = ?", (_EVERY_ROW_KEYED,))  # its payload's: made again
            db.execute("DELETE FROM cells WHERE identity = ?", (old,))
            db.execute("INSERT OR REPLACE INTO cells VALUES (?, ?)", (new, json.dumps(cells)))

    def keep_cells(self, cells: dict[str, dict[str, str]]) -> None:
        """The cells' digests of rows about to be sent, by identity (see `reidentify`)."""
        if cells:
            with self.transaction() as db:
                db.executemany("INSERT OR IGNORE INTO cells VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in cells.items()])

    def cells_of(self, identities: Iterable[str]) -> dict[str, dict[str, str]]:
        return {identity: json.loads(cells) for identity, cells in self._rows_in(
            "SELECT identity, cells FROM cells WHERE identity IN ({marks})", identities)}
