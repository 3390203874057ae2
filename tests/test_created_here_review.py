"""Review of the night's rows created from their very lines (etl.run.keyed_rows._created_here):
each line says what `etl.outcomes.decide` says of the row with its journal entry as it stands,
whatever the journal holds of when the row was created."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from etl.outcomes import when
from tests.test_created_here import night, write
from tests.test_import import journal_of
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture


@pytest.mark.parametrize("journal", ["sqlite", "postgresql"])
def test_a_created_row_with_an_empty_creation_time_is_said_as_decide_says(etl, sandbox, tmp_path: Path,  # noqa: F811
                                                                          journal, request):
    """`decide` dates a created row by created_at, else (None or empty) updated_at: an empty
    created_at (a journal edited or filled by another tool) is dated by updated_at on the fast
    path too, not left blank."""
    path = tmp_path / "history.csv"
    write(path, [[str(11 + i % 3), f"{1 + i}.5", f"Desk #{i}"] for i in range(5)])
    more: tuple[str, ...] = ()
    if journal == "postgresql":
        more = ("--journal", request.getfixturevalue("pg_url"))
    first = night(etl, sandbox.url, path, 1000, *more)
    assert first.code == 0, first.output
    if more:
        import psycopg

        db = psycopg.connect(more[1], autocommit=True)
    else:
        db = sqlite3.connect(journal_of(sandbox.url), isolation_level=None)
    try:
        db.execute("UPDATE rows SET created_at = '' WHERE row = 3")
        updated = db.execute("SELECT updated_at, record_id FROM rows WHERE row = 3").fetchone()
    finally:
        db.close()
    again = night(etl, sandbox.url, path, 1000, *more)
    assert again.code == 0, again.output
    line = next(r for r in again.report() if r["row"] == "3")
    stamp = when(type("E", (), {"created_at": "", "updated_at": updated[0]})())  # decide's dating
    assert stamp.strip()
    assert line["outcome"] == "skipped" and line["id"] == str(updated[1])
    assert line["errors"] == (f"note: already created from {os.path.realpath(path)} row 3 on {stamp} "
                              f"(Id {updated[1]}): the same values in every cell")


def test_a_creation_time_holding_the_look_ups_separators_is_said_as_decide_says(etl, sandbox,  # noqa: F811
                                                                                tmp_path: Path):
    """The rows created from a chunk's lines are read as one text, cells and rows separated by
    control characters: a journal whose cell holds them (edited by hand: here, row 3's time
    reads as a row 2 more, of row 2's content, created as record 99) is read row by row, each
    line as `decide` says it, not cut at the wrong place."""
    path = tmp_path / "history.csv"
    write(path, [[str(11 + i % 3), f"{1 + i}.5", f"Desk #{i}"] for i in range(5)])
    first = night(etl, sandbox.url, path, 1000)
    assert first.code == 0, first.output
    with sqlite3.connect(journal_of(sandbox.url), isolation_level=None) as db:
        content = db.execute("SELECT content FROM rows WHERE row = 2").fetchone()[0]
        # row 3's time as if it were a row 2 more, of row 2's content, created as record 99
        odd = f"2026-12-01T09:30\x1e2\x1f{content}\x1f99\x1f2026-12-01T09:30"
        db.execute("UPDATE rows SET created_at = ? WHERE row = 3", (odd,))
        ids = dict(db.execute("SELECT row, record_id FROM rows"))
    again = night(etl, sandbox.url, path, 1000)
    assert again.code == 0, again.output
    lines = {r["row"]: r for r in again.report()}
    real = os.path.realpath(path)
    for row, stamp in ((3, "2026-12-01 09:30"),):
        line = lines[str(row)]
        assert line["outcome"] == "skipped" and line["id"] == str(ids[row])
        assert line["errors"] == (f"note: already created from {real} row {row} on {stamp} "
                                  f"(Id {ids[row]}): the same values in every cell")
    assert {r["outcome"] for r in lines.values()} == {"skipped"}
    assert [r["id"] for r in again.report()] == [str(ids[row]) for row in range(2, 7)]
