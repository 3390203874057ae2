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


# --- review of a9eceb2 (created_at_lines a column at a time): a journal edited by hand --------------

#: hand edits of row 3 (and its neighbours) of a journal: each night after them says of every line
#: what the row-by-row look-up says (`created_at_lines` answering None), never another Id or time.
#: (An Id kept as text or beyond int64 is not here: the row-by-row look-up itself stops at it.)
_EDITS = {
    "record id null": ["UPDATE rows SET record_id = NULL WHERE row = 3"],
    "record id negative": ["UPDATE rows SET record_id = -7 WHERE row = 3"],
    "record id huge": ["UPDATE rows SET record_id = 9223372036854775807 WHERE row = 3"],
    "record id spaced": ["UPDATE rows SET record_id = ' ' || record_id WHERE row = 3"],
    "record id signed": ["UPDATE rows SET record_id = '+' || record_id WHERE row = 3"],
    "record id real": ["UPDATE rows SET record_id = record_id + 0.5 WHERE row = 3"],
    "row real": ["UPDATE rows SET row = 3.5 WHERE row = 3"],
    "row text": ["UPDATE rows SET row = '3,4' WHERE row = 3"],
    "content upper case": ["UPDATE rows SET content = upper(substr(content, 1, 32)) || substr(content, 33) "
                           "WHERE row = 3"],
    "content not hex": ["UPDATE rows SET content = 'zz' || substr(content, 3) WHERE row = 3"],
    "content of spaces": ["UPDATE rows SET content = printf('%32s', '') || substr(content, 33) "
                          "WHERE row = 3"],
    "content of spaces twice": ["UPDATE rows SET content = printf('%32s', '') || substr(content, 33) "
                                "WHERE row IN (3, 5)"],
    "content spaced": ["UPDATE rows SET content = substr(content, 1, 16) || printf('%16s', '') "
                       "|| substr(content, 33) WHERE row IN (3, 4)"],
    "content short": ["UPDATE rows SET content = substr(content, 1, 30) || substr(content, 33) "
                      "WHERE row = 3"],
    "time with a comma": ["UPDATE rows SET created_at = '2026-12-01T09:30,5' WHERE row = 3"],
    "time with a unit separator": ["UPDATE rows SET created_at = '2026-12-01T09:30\x1f' WHERE row = 3"],
    "time with a record separator": ["UPDATE rows SET created_at = '2026-12-01T09:30\x1e' WHERE row = 3"],
    "no time at all": ["UPDATE rows SET created_at = NULL, updated_at = '' WHERE row = 3"],
    "time a number": ["UPDATE rows SET created_at = 20261201 WHERE row = 3"],
    # the keys a night reads the journal's contents and payloads by (Lookups.key_columns)
    "kept content of spaces": ["UPDATE keys SET content = printf('%32s', '') "
                               "WHERE identity = (SELECT identity FROM rows WHERE row = 3)"],
    "kept content not hex": ["UPDATE keys SET content = 'zz' || substr(content, 3) "
                             "WHERE identity = (SELECT identity FROM rows WHERE row = 3)"],
    "kept payload of spaces": ["UPDATE keys SET payload = printf('%16s', '') "
                               "WHERE identity = (SELECT identity FROM rows WHERE row = 3)"],
    "kept payloads spaced": ["UPDATE keys SET payload = printf('%16s', '') || ',' || payload "
                             "WHERE identity = (SELECT identity FROM rows WHERE row = 4)"],
}


def _said(report: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    return [(r["row"], r["outcome"], r["id"], r["errors"]) for r in report]


@pytest.mark.parametrize("edit", list(_EDITS))
def test_a_hand_edited_journal_says_what_the_row_by_row_look_up_says(etl, sandbox, tmp_path: Path,  # noqa: F811
                                                                     monkeypatch, edit):
    """A night after a journal's rows were edited by hand reads the rows created from its
    lines a chunk at a time: each line says what the row-by-row look-up says of it (the
    same outcome, Id and time), the night does not stop, and no row is sent again."""
    import shutil

    from etl.ledger.lookups import Lookups

    path = tmp_path / "history.csv"
    write(path, [[str(11 + i % 3), f"{1 + i}.5", f"Desk #{i}"] for i in range(8)])
    first = night(etl, sandbox.url, path, 1000)
    assert first.code == 0, first.output
    journal = journal_of(sandbox.url)
    with sqlite3.connect(journal, isolation_level=None) as db:
        for sql in _EDITS[edit]:
            db.execute(sql)
    kept = tmp_path / "kept"
    kept.mkdir()
    for end in ("", "-wal", "-shm"):
        if os.path.exists(journal + end):
            shutil.copyfile(journal + end, kept / f"journal{end}")
    posts = len(sandbox.store.records())
    fast = night(etl, sandbox.url, path, 1000)
    assert fast.code == 0, fast.output
    sent = len(sandbox.store.records()) - posts
    for end in ("", "-wal", "-shm"):
        if os.path.exists(journal + end):
            os.remove(journal + end)
        if (kept / f"journal{end}").exists():
            shutil.copyfile(kept / f"journal{end}", journal + end)
    monkeypatch.setattr(Lookups, "created_at_lines", lambda self, source, first, last: None)
    slow = night(etl, sandbox.url, path, 1000)
    assert slow.code == 0, slow.output
    assert _said(fast.report()) == _said(slow.report())
    assert len(sandbox.store.records()) - posts == 2 * sent  # the fast night sent what the slow one did
    assert sent == 0  # every row was created the night before: none is sent again


def test_a_postgresql_journal_read_by_parallel_workers_gives_each_line_its_own_id_and_time(
        etl, sandbox, tmp_path: Path, pg_url, monkeypatch):  # noqa: F811
    """PostgreSQL reads the created rows of a chunk a column at a time (one string_agg each):
    with a parallel plan forced (workers each aggregating their blocks, combined at the
    Gather), every column still lists the rows in the same order: each line says its own
    row's Id and time."""
    import psycopg

    from etl.ledger.lookups import _UNIT

    path = tmp_path / "history.csv"
    write(path, [[str(11 + i % 3), f"{1 + i}.5", f"Desk #{i} " + "x" * (i % 50)] for i in range(600)])
    first = night(etl, sandbox.url, path, 100000, "--journal", pg_url, "--concurrency", "16")
    assert first.code == 0, first.output
    with psycopg.connect(pg_url, autocommit=True) as db:
        name = db.execute("SELECT current_database()").fetchone()[0]
        for setting in ("parallel_setup_cost = 0", "parallel_tuple_cost = 0",
                        "min_parallel_table_scan_size = 0", "min_parallel_index_scan_size = 0",
                        "max_parallel_workers_per_gather = 4",
                        "enable_indexonlyscan = off", "enable_indexscan = off", "enable_bitmapscan = off"):
            db.execute(f"ALTER DATABASE {name} SET {setting}")
        # times told apart row by row (etl writes one a run: all would be alike)
        db.execute("UPDATE rows SET created_at = '2026-' || lpad((1 + row % 12)::text, 2, '0') || '-01T'"
                   " || lpad((row % 24)::text, 2, '0') || ':' || lpad((row % 60)::text, 2, '0')")
        db.execute("ANALYZE rows")
        known = {r: (i, c) for r, i, c in db.execute("SELECT row, record_id, created_at FROM rows")}
    with psycopg.connect(pg_url, autocommit=True) as db:  # the settings hold for new sessions
        plan = "\n".join(r[0] for r in db.execute(
            "EXPLAIN SELECT COUNT(*), string_agg(CAST(row AS TEXT), ','), "
            "string_agg(substr(content, 1, 32), ''), "
            "string_agg(COALESCE(CAST(record_id AS TEXT), ''), ','), "
            "string_agg(COALESCE(NULLIF(created_at, ''), updated_at, ''), %s) FROM rows "
            "WHERE source = %s AND row BETWEEN 1 AND 5000 AND state = 'created'",
            (_UNIT, os.path.realpath(path))))
    assert "Partial Aggregate" in plan, plan
    from etl.ledger.lookups import Lookups

    read, found = Lookups.created_at_lines, []
    monkeypatch.setattr(Lookups, "created_at_lines",
                        lambda self, *a: found.append(read(self, *a)) or found[-1])
    again = night(etl, sandbox.url, path, 100000, "--journal", pg_url)
    assert again.code == 0, again.output
    real = os.path.realpath(path)
    report = again.report()
    assert len(report) == 600
    assert found and all(f is not None for f in found) and sum(len(f.rows) for f in found) == 600
    for line in report:
        record_id, created = known[int(line["row"])]
        stamp = created[:16].replace("T", " ")
        assert line["outcome"] == "skipped" and line["id"] == str(record_id), line
        assert line["errors"] == (f"note: already created from {real} row {line['row']} on {stamp} "
                                  f"(Id {record_id}): the same values in every cell"), line
