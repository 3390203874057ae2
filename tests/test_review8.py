"""Review of the journal's rows keeping their content key (rows.content, 2f9ed3b, 633290e): a
night reads the rows created from a chunk's lines from rows_created_lines alone, so what it
reads there must be what the journal knows of each row, whoever wrote the journal last."""

from __future__ import annotations

import csv
import os
import sqlite3
from pathlib import Path

import pytest

from tests.test_created_here import night
from tests.test_import import journal_of
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture


def _export(path: Path, exported_at: str, n: int = 5) -> None:
    """N credit uses, as an export made at EXPORTED_AT writes them (a column never sent)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description", "ExportedAt"])
        w.writerows([str(11 + i % 3), f"{1 + i}.5", f"Desk #{i}", exported_at] for i in range(n))


class _Db:
    """The journal, as another program (the release before) writes it."""

    def __init__(self, url: str, pg: str | None) -> None:
        if pg:
            import psycopg

            self.db = psycopg.connect(pg, autocommit=True)
            self.mark = "%s"
        else:
            self.db = sqlite3.connect(journal_of(url), isolation_level=None)
            self.mark = "?"

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return list(self.db.execute(sql.replace("?", self.mark), args).fetchall())

    def run(self, sql: str, args: tuple = ()) -> None:
        self.db.execute(sql.replace("?", self.mark), args)

    def close(self) -> None:
        self.db.close()


@pytest.mark.parametrize("journal", ["sqlite", "postgresql"])
def test_a_row_the_release_before_gave_another_identity_is_not_its_lines_old_content(
        etl, sandbox, tmp_path, journal, request):  # noqa: F811 - the fixture
    """A journal shared with the release before (a machine not yet upgraded): that release
    re-identifies rows (`--ignore-column ExportedAt`, for a re-export) with an UPDATE of their
    identity that knows nothing of rows.content, so each row keeps the content key of the
    identity it no longer has (checked against 96c6e76 itself: its journal is left so). The
    first export, loaded again and said to be new uses (`--allow-new-identity`), is refused by
    the server; the next night, with --retry-rejected, its rows must be sent again, as the
    journal's rows of those lines (refused) say and as the release before does. Read from
    rows_created_lines alone, each line instead matches the re-identified row's stale content
    at its own line and is said 'already created' under that row's record: five charges never
    made."""
    more: tuple[str, ...] = ()
    pg = None
    if journal == "postgresql":
        pg = request.getfixturevalue("pg_url")
        more = ("--journal", pg)
    path = tmp_path / "history.csv"
    _export(path, "2026-12-01 02:00")
    first = night(etl, sandbox.url, path, 1000, *more)
    assert first.code == 0, first.output
    db = _Db(sandbox.url, pg)
    try:
        kept = db.rows("SELECT rowid, content FROM rows")
        assert len(kept) == 5 and all(c for _, c in kept)
        _export(path, "2026-12-02 02:00")  # a re-export: only ExportedAt changed
        second = night(etl, sandbox.url, path, 1000, "--ignore-column", "ExportedAt", *more)
        assert second.code == 0, second.output
        assert [r["outcome"] for r in second.report()] == ["skipped"] * 5
        # what the release before leaves of each row it re-identifies: the content it had
        for rowid, content in kept:
            db.run("UPDATE rows SET content = ? WHERE rowid = ?", (content, rowid))
    finally:
        db.close()
    _export(path, "2026-12-01 02:00")  # the first export again: new credit uses, says the user
    sandbox.faults.reject = 1.0
    third = night(etl, sandbox.url, path, 1000, "--allow-new-identity", *more)
    assert [r["outcome"] for r in third.report()] == ["rejected"] * 5, third.output
    sandbox.faults.reject = 0.0
    records = len(sandbox.store.records())
    fourth = night(etl, sandbox.url, path, 1000, "--retry-rejected", *more)
    assert fourth.code == 0, fourth.output
    assert [r["outcome"] for r in fourth.report()] == ["created"] * 5, [
        (r["outcome"], r["errors"]) for r in fourth.report()]
    assert len(sandbox.store.records()) == records + 5
    assert os.path.exists(path)
