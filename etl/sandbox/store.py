"""The sandbox's records and booking credits, in SQLite (':memory:' or a file that spans runs)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

USE_COLUMNS = ("CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId", "CoworkerInvoiceLineId",
               "EventAttendeeId", "SystemId", "CreatedOn", "UpdatedOn")
CREDIT_FIELDS = ("Id", "TotalCredit", "RemainingCredit", "ValidFrom", "ExpireDate", "CoworkerId")
#: A credit nobody declared, in a sandbox where nobody declared any: any id exists, with this much.
OPEN_CREDIT = Decimal(1_000_000)
#: ValidFrom of a credit declared without one (fixed, so answers are repeatable).
DEFAULT_VALID_FROM = "2020-01-01T00:00:00Z"


class CreditRefused(Exception):
    """A credit use the server refuses because of its credit: one 400 `Errors` item."""

    def __init__(self, name: str, message: str, attempted: Any) -> None:
        super().__init__(f"{name}: {message}")
        self.error = {"AttemptedValue": attempted, "Message": message, "PropertyName": name}


class Store:
    """Credit uses, booking credits and the per-day POST count.

    While no credit was ever declared the store is permissive, as Nexudus looks to a test
    that does not care: every credit id exists, with `OPEN_CREDIT`, made on first reference.
    Once one is declared, only declared credits exist.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS credit_uses (Id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "CoworkerBookingCreditId INTEGER, CreditUsed TEXT, Description TEXT, BookingId INTEGER, "
            "CoworkerInvoiceLineId INTEGER, EventAttendeeId INTEGER, CreatedOn TEXT)"
        )
        have = {row[1] for row in self.db.execute("PRAGMA table_info(credit_uses)")}
        for column in ("SystemId", "UpdatedOn"):  # a file from an older sandbox lacks these
            if column not in have:
                self.db.execute(f"ALTER TABLE credit_uses ADD COLUMN {column} TEXT")
        self.db.execute("CREATE TABLE IF NOT EXISTS posts (day TEXT PRIMARY KEY, n INTEGER)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS credits (Id INTEGER PRIMARY KEY, TotalCredit TEXT, "
            "RemainingCredit TEXT, ValidFrom TEXT, ExpireDate TEXT, CoworkerId INTEGER, "
            "Declared INTEGER)"
        )
        if not self.db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'credit_uses'").fetchone():
            # ids start at 87654321, as in the docs, so they never look like row numbers
            self.db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('credit_uses', 87654320)")

    # --- credit uses ----------------------------------------------------------------------

    def create(self, body: Mapping[str, Any], *, created_on: str | None = None,
               updated_on: str | None = None, enforce: bool = False,
               record_id: int | None = None) -> int:
        """Store a credit use and draw its credit down; returns the new Id.

        With `enforce` (the server's own POST), a declared sandbox raises `CreditRefused` for an
        unknown credit or one the use would take below zero, and creates nothing.
        """
        now = dt.datetime.now(dt.UTC).isoformat()
        credit_id, used = body["CoworkerBookingCreditId"], str(body["CreditUsed"])
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self._draw(credit_id, used, enforce)
                cur = self.db.execute(
                    f"INSERT INTO credit_uses (Id, {', '.join(USE_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (record_id, credit_id, used, body.get("Description"), body.get("BookingId"),
                     body.get("CoworkerInvoiceLineId"), body.get("EventAttendeeId"), body.get("SystemId"),
                     created_on or now, updated_on or now),
                )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return int(cur.lastrowid or 0)

    def free_id(self, draw: Any) -> int:
        """An unused Id drawn with DRAW (a random.Random), for a server whose Ids don't rise."""
        with self.lock:
            while True:
                candidate = draw.randrange(10_000_000, 99_999_999)
                if not self.db.execute("SELECT 1 FROM credit_uses WHERE Id = ?", (candidate,)).fetchone():
                    return int(candidate)

    def records(self, where: dict[str, Any] | None = None, *, order: str = "Id",
                descending: bool = False) -> list[dict[str, Any]]:
        """Credit uses matching `where` (column: value), sorted by `order` then Id."""
        if order not in ("Id", *USE_COLUMNS):
            raise ValueError(f"no column {order!r}")
        sql, args = "SELECT * FROM credit_uses", []
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
            args = [str(v) if k == "CreditUsed" else v for k, v in where.items()]
        key = "CAST(CreditUsed AS REAL)" if order == "CreditUsed" else order
        way = "DESC" if descending else "ASC"
        with self.lock:
            cur = self.db.execute(f"{sql} ORDER BY {key} {way}, Id {way}", args)
            names = [c[0] for c in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return [_record(r) for r in rows]

    def record(self, record_id: int) -> dict[str, Any] | None:
        with self.lock:
            cur = self.db.execute("SELECT * FROM credit_uses WHERE Id = ?", (record_id,))
            names = [c[0] for c in cur.description]
            row = cur.fetchone()
        return _record(dict(zip(names, row, strict=True))) if row else None

    def count_post(self, day: str) -> int:
        with self.lock:
            self.db.execute(
                "INSERT INTO posts VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET n = n + 1", (day,)
            )
            return int(self.db.execute("SELECT n FROM posts WHERE day = ?", (day,)).fetchone()[0])

    # --- booking credits ------------------------------------------------------------------

    @property
    def declared(self) -> bool:
        """Whether any credit was ever declared (then only declared credits exist)."""
        with self.lock:
            return self.db.execute("SELECT 1 FROM credits WHERE Declared = 1 LIMIT 1").fetchone() is not None

    def add_credit(self, credit: Mapping[str, Any], *, replace: bool = True) -> None:
        """Declare a credit (fields as `CREDIT_FIELDS`); without `replace`, one already held stays
        as it is, so a file that spans runs keeps what its credits were drawn down to."""
        row = _credit_row(credit)
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self.lock:
            if not self.declared:
                self.db.execute("DELETE FROM credits")  # the open credits of a permissive sandbox
            self.db.execute(f"{verb} INTO credits VALUES (?,?,?,?,?,?,1)", row)

    def credit(self, credit_id: int) -> dict[str, Any] | None:
        """The credit as the API shows it, or None when the account has no such credit."""
        with self.lock:
            row = self._credit(credit_id)
        if row is None:
            return None
        out = dict(zip(CREDIT_FIELDS, row, strict=True))
        out["TotalCredit"] = float(Decimal(out["TotalCredit"]))
        out["RemainingCredit"] = float(Decimal(out["RemainingCredit"]))
        return out

    def _credit(self, credit_id: int) -> tuple[Any, ...] | None:
        """The credit's row (made on first reference while nothing is declared); holds the lock."""
        query = f"SELECT {', '.join(CREDIT_FIELDS)} FROM credits WHERE Id = ?"
        row = self.db.execute(query, (credit_id,)).fetchone()
        if row is None and not self.declared:
            self.db.execute("INSERT INTO credits VALUES (?,?,?,?,NULL,NULL,0)",
                            (credit_id, str(OPEN_CREDIT), str(OPEN_CREDIT), DEFAULT_VALID_FROM))
            row = self.db.execute(query, (credit_id,)).fetchone()
        return tuple(row) if row else None

    def _draw(self, credit_id: int, used: str, enforce: bool) -> None:
        row = self._credit(credit_id)
        if row is None:
            if enforce:
                raise CreditRefused("CoworkerBookingCreditId", f"credit {credit_id} does not exist",
                                    credit_id)
            return
        total, remaining = Decimal(row[1]), Decimal(row[2])
        left = remaining - Decimal(used)
        if enforce and left < 0 and self.declared:
            raise CreditRefused(
                "CreditUsed", f"total use would exceed the credit: TotalCredit {total}, "
                f"RemainingCredit {remaining}, CreditUsed {used}", _number(used))
        self.db.execute("UPDATE credits SET RemainingCredit = ? WHERE Id = ?", (str(left), credit_id))


def _record(row: dict[str, Any]) -> dict[str, Any]:
    row["CreditUsed"] = float(Decimal(row["CreditUsed"]))
    row["UniqueId"] = f"00000000-0000-0000-0000-{row['Id']:012d}"
    return row


def _number(text: str) -> float:
    return float(Decimal(text))


def _credit_row(credit: Mapping[str, Any]) -> tuple[Any, ...]:
    """A credit's fields (any case of the names) as a `credits` row, checked."""
    given = {str(k).strip().lower(): v for k, v in credit.items()}
    unknown = set(given) - {f.lower() for f in CREDIT_FIELDS}
    if unknown:
        raise ValueError(f"unknown credit fields: {sorted(unknown)}; expected {', '.join(CREDIT_FIELDS)}")

    def get(name: str) -> Any:
        value = given.get(name.lower())
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    try:
        credit_id, total = int(get("Id")), Decimal(str(get("TotalCredit")))
        remaining = total if get("RemainingCredit") is None else Decimal(str(get("RemainingCredit")))
        coworker = None if get("CoworkerId") is None else int(get("CoworkerId"))
    except (TypeError, ValueError, InvalidOperation) as e:
        raise ValueError(f"bad credit {dict(credit)}: Id and TotalCredit must be numbers ({e})") from e
    return (credit_id, str(total), str(remaining), _date(get("ValidFrom")) or DEFAULT_VALID_FROM,
            _date(get("ExpireDate")), coworker)


def _date(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T00:00:00Z"
    return None if value is None else str(value)


def load_credits(path: str | Path) -> list[dict[str, Any]]:
    """Credits from a file: a JSON list of objects, or a CSV with `CREDIT_FIELDS` headers."""
    text = Path(path).read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        items = json.loads(text)
        if not all(isinstance(i, dict) for i in items):
            raise ValueError(f"{path}: expected a JSON list of objects")
        credits: Iterable[dict[str, Any]] = items
    else:
        credits = csv.DictReader(io.StringIO(text))
    out = [dict(c) for c in credits]
    for c in out:
        _credit_row(c)  # fail on the whole file at start, not on first use
    return out
