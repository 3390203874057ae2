"""A night of a migration reads the rows the journal created from their very lines a chunk at a
time (one range of the journal by file and row): each line says what `etl.outcomes.decide` says
of that row with its journal entry, the record it was created as and when, exactly as when
every row was looked up by its content. Rows that are not the one row of their content in the
journal (identical rows, a row created from another file, a file sorted anew) are still looked
up by their content, and say where they were created from."""

from __future__ import annotations

import csv
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.ledger.entries import Entry
from etl.ledger.rowkeys import among
from etl.outcomes import Facts, decide
from etl.run.night import created_here
from tests.test_import import NO_ENV, TOKEN, journal_of
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture

_WHEN = st.datetimes().map(lambda d: d.isoformat(timespec="seconds") + "Z")


@given(st.lists(st.tuples(st.integers(1, 10**7), st.integers(1, 2**53), _WHEN), min_size=1, max_size=30),
       st.sampled_from(["/data/history.csv", "/données/été 2026.csv", "/a,b/\"q\".csv"]))
def test_the_lines_made_as_columns_are_decides(lines, source):
    rows = np.array([r for r, _, _ in lines], np.int64)
    ids = np.array([i for _, i, _ in lines], np.int64)
    made = created_here(source, rows, ids, [w for _, _, w in lines]).to_pylist()
    for (row, record_id, when), errors in zip(lines, made, strict=True):
        entry = Entry("i", "cells:x", None, 1, "created", record_id, 201, 1, None, "{}", "h", source, row,
                      "r", "run", None, None, None, None, None, None, when, "2000-01-01T00:00:00Z")
        said = decide(Facts(entry=entry))
        assert said.outcome.value == "skipped" and said.record_id == record_id and said.counted is None
        assert errors == said.errors


@given(st.integers(0, 3000), st.integers(0, 9000), st.integers(0, 2**32))
def test_a_chunks_keys_are_found_among_the_journals_as_isin_finds_them(n, m, seed):
    """`among`, which looks many keys up in order, says what np.isin says, at every size."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2**64 - 1, max(1, (n + m) // 2), dtype=np.uint64, endpoint=True)
    keys, known = rng.choice(pool, n), np.unique(rng.choice(pool, m))
    assert (among(keys, known) == np.isin(keys, known)).all()


def test_sets_looked_in_chunk_after_chunk_answer_for_themselves_not_for_the_last_set_seen():
    """`among` keeps a table of each set it looks in (a night looks in the same few sets once a
    chunk): sets of one size looked in by turns, and a set made again from the same keys, each
    answer as np.isin does; a set whose table is kept cannot be changed in place behind it."""
    rng = np.random.default_rng(7)
    pool = rng.integers(0, 2**64 - 1, 40_000, dtype=np.uint64, endpoint=True)
    sets = [np.unique(rng.choice(pool, 20_000)) for _ in range(6)]  # more sets than tables kept
    for _ in range(3):
        for known in [*sets, np.unique(sets[0].copy())]:
            keys = rng.choice(pool, 5_000)
            assert (among(keys, known) == np.isin(keys, known)).all()
    with pytest.raises(ValueError):
        sets[-1][0] = 1


def write(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows(rows)


def history() -> list[list[str]]:
    """60 credit uses: rows 50 to 54 repeat row 10 (identical rows), row 57 is no number."""
    rows = [[str(11 + i % 3), f"{1 + i % 7}.5", f"Desk #{i}"] for i in range(50)]
    rows += [list(rows[10]) for _ in range(5)]
    rows += [["12", "2.5", "Room A"], ["13", "3", "Room B"], ["11", "abc", "broken"], ["12", "1.50", "x"],
             ["12", "1.5", "y"]]
    return rows


def night(etl, url: str, path: Path, limit: int, *more: str):
    run = etl("import", path, "--api-url", url, "--token", TOKEN, "--rate", "1000",
              "--daily-limit", str(limit), "--no-check-credits", *more, env=NO_ENV)
    return run


def created_lines(reports: list[list[dict[str, str]]]) -> dict[tuple[str, int], str]:
    return {(r["source"], int(r["row"])): r["id"] for report in reports for r in report
            if r["outcome"] == "created"}


def check_skipped(report: list[dict[str, str]], created: dict[tuple[str, int], str],
                  where: dict[int, tuple[str, int]]) -> None:
    """Every line of REPORT is skipped (the invalid row aside), naming the line its record was
    created from (WHERE: a row number of this file -> the file and row, as the journal keeps
    them; else the same line) and that record's Id."""
    note = re.compile(r"note: already created from (.+) row (\d+) on (\d{4}-\d\d-\d\d \d\d:\d\d) "
                      r"\(Id (\d+)\): the same values in every cell")
    for r in report:
        if r["errors"].startswith("CreditUsed"):
            assert r["outcome"] == "invalid"
            continue
        assert r["outcome"] == "skipped", r
        m = note.fullmatch(r["errors"])
        assert m, r["errors"]
        source, row = where.get(int(r["row"]), (os.path.realpath(r["source"]), int(r["row"])))
        assert (m[1], int(m[2])) == (source, row)
        assert m[4] == r["id"] == created[(source, row)], r


@pytest.mark.parametrize("journal", ["sqlite", "postgresql"])
def test_the_nights_after_say_each_row_as_the_journal_has_it(etl, sandbox, tmp_path, journal,  # noqa: F811
                                                            request):
    more: tuple[str, ...] = ()
    if journal == "postgresql":
        more = ("--journal", request.getfixturevalue("pg_url"))
    other, path = tmp_path / "other.csv", tmp_path / "history.csv"
    rows = history()
    write(other, [rows[20], ["99", "9.5", "only there"]])
    write(path, rows)
    reports = []
    first = night(etl, sandbox.url, other, 10, *more)
    assert first.code == 0, first.output
    reports.append(first.report())
    for limit in (20, 1000):
        run = night(etl, sandbox.url, path, limit, *more)
        assert run.code in (1, 4), run.output
        reports.append(run.report())
    created = created_lines(reports)
    # each created line is a record of the server's, and each record was created once
    assert len(sandbox.store.records()) == len(created) == 2 + 60 - 1 - 1  # row 20 came from other.csv
    real = os.path.realpath(path)
    from_other = {22: (os.path.realpath(other), 2)}  # history row 22 is other.csv's row 2
    for _ in range(2):  # the night after, and the one after it
        again = night(etl, sandbox.url, path, 1000, *more)
        assert again.code == 1, again.output  # the broken row
        report = again.report()
        check_skipped(report, created, from_other)
        assert {k: n for k, n in again.summary()["counts"].items() if n} == {"skipped": 59, "invalid": 1}
        assert again.summary()["notes"]["skipped_identical_from_other_files"] == 1
    assert len(sandbox.store.records()) == len(created)

    # the file sorted anew, from another folder: the same credit uses, at other lines
    moved = tmp_path / "elsewhere" / "history.csv"
    moved.parent.mkdir()
    order = list(range(len(rows)))[::-1]
    write(moved, [rows[i] for i in order])
    run = night(etl, sandbox.url, moved, 1000, *more)
    assert run.code == 1, run.output
    report = run.report()
    # the identical rows (10, 50..54) take the journal's rows of them in file order, whatever the order
    where = {}
    for line, i in enumerate(order, 2):
        if rows[i] == rows[10]:
            continue
        where[line] = from_other[22] if i == 20 else (real, i + 2)
    identical = [r for r in report if r["Description"] == rows[10][2]]
    assert len(identical) == 6 and {r["outcome"] for r in identical} == {"skipped"}
    assert {r["id"] for r in identical} == {created[(real, n)] for n in (12, 52, 53, 54, 55, 56)}
    check_skipped([r for r in report if r["Description"] != rows[10][2]], created, where)
    assert len(sandbox.store.records()) == len(created)
    if journal == "sqlite":  # the journal kept every line it created once
        with sqlite3.connect(journal_of(sandbox.url)) as db:
            kept = db.execute("SELECT COUNT(*) FROM rows WHERE state = 'created'").fetchone()[0]
        assert kept == len(created)


def test_a_file_reached_through_a_link_is_the_file_it_links_to(etl, sandbox, tmp_path):  # noqa: F811
    """A nightly job imports `latest.csv`, a link to the day's export: the rows created from it
    are kept as the export's (its real path), so the next night's rerun of the same export says
    they were created from this very file, not from other files; tomorrow's export, linked
    anew, is another file."""
    exports = tmp_path / "exports"
    exports.mkdir()
    rows = history()
    write(exports / "2026-12-03.csv", rows)
    latest = tmp_path / "latest.csv"
    latest.symlink_to(exports / "2026-12-03.csv")
    first = night(etl, sandbox.url, latest, 1000)
    assert first.code == 1, first.output  # the broken row
    created = {(os.path.realpath(exports / "2026-12-03.csv"), int(r["row"])): r["id"]
               for r in first.report() if r["outcome"] == "created"}
    assert len(created) == 59
    again = night(etl, sandbox.url, latest, 1000)
    assert again.code == 1, again.output
    check_skipped(again.report(), created, {})
    assert "other files" not in again.err
    assert "skipped_identical_from_other_files" not in again.summary().get("notes", {})
    status = etl("status", "--api-url", sandbox.url)
    assert "Nothing left to post" in status.out, status.out
    write(exports / "2026-12-04.csv", [*rows, ["12", "4.5", "new on the 4th"]])
    latest.unlink()
    latest.symlink_to(exports / "2026-12-04.csv")
    tomorrow = night(etl, sandbox.url, latest, 1000)
    assert tomorrow.code == 1, tomorrow.output
    outcomes = [r["outcome"] for r in tomorrow.report()]
    assert outcomes.count("created") == 1 and outcomes.count("skipped") == 59
    assert tomorrow.summary()["notes"]["skipped_identical_from_other_files"] == 59
    assert len(sandbox.store.records()) == 60


def test_a_line_edited_in_place_never_takes_the_record_of_the_line_it_was(etl, sandbox, tmp_path):  # noqa: F811
    """Lines 12 and 13 swapped in place, line 14 replaced by a new credit use: the journal's row
    at each of those lines has another content, so none of them is read as created from its
    line; each takes the record of the line its content was created from, and the new one is
    sent."""
    path = tmp_path / "history.csv"
    rows = history()[:50]
    write(path, rows)
    first = night(etl, sandbox.url, path, 1000)
    assert first.code == 0, first.output
    created = created_lines([first.report()])
    rows[10], rows[11] = rows[11], rows[10]
    rows[12] = ["13", "9.75", "a new use at line 14"]
    write(path, rows)
    again = night(etl, sandbox.url, path, 1000)
    assert again.code == 0, again.output
    report = again.report()
    assert report[12]["outcome"] == "created"
    real = os.path.realpath(path)
    check_skipped(report[:12] + report[13:], created, {12: (real, 13), 13: (real, 12)})
    assert len(sandbox.store.records()) == 51


def test_a_journal_of_the_release_before_says_each_row_as_before(etl, sandbox, tmp_path):  # noqa: F811
    """A journal written before rows kept their content key (in `keys` alone) is read the same:
    opened, each row gets its content key from `keys`, once; the rows a release before writes
    after that (their content in `keys` alone) are still found, by their content."""
    path = tmp_path / "history.csv"
    write(path, history())
    first = night(etl, sandbox.url, path, 1000)
    assert first.code == 1, first.output  # the broken row
    created = created_lines([first.report()])
    assert len(created) == 59
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        # each row created is kept with its content key, as `keys` has it
        assert db.execute("SELECT COUNT(*) FROM rows r JOIN keys k ON k.identity = r.identity "
                          "WHERE substr(r.content, 1, 32) = k.content AND r.state = 'created' "
                          "AND substr(r.content, 33) = substr(r.identity, 1, 16)").fetchone()[0] == 59
        # as the release before left it
        db.execute("DROP INDEX rows_created_lines")
        db.execute("ALTER TABLE rows DROP COLUMN content")
        db.execute("DELETE FROM meta WHERE key = 'rows_content'")
    again = night(etl, sandbox.url, path, 1000)
    assert again.code == 1, again.output
    check_skipped(again.report(), created, {})
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        kept = db.execute("SELECT COUNT(*) FROM rows r JOIN keys k ON k.identity = r.identity "
                          "WHERE substr(r.content, 1, 32) = k.content AND r.state = 'created'").fetchone()[0]
        assert kept == 59
        # rows a release before wrote since: their content in `keys` alone
        db.execute("UPDATE rows SET content = NULL WHERE row % 2 = 0")
    third = night(etl, sandbox.url, path, 1000)
    assert third.code == 1, third.output
    check_skipped(third.report(), created, {})
    assert third.report() == again.report()
    assert len(sandbox.store.records()) == 59


@given(st.lists(st.integers(1, 400), min_size=0, max_size=60, unique=True).map(sorted),
       st.lists(st.integers(1, 80), min_size=1, max_size=12), st.integers(1, 50), st.integers(0, 3),
       st.integers(0, 2))
def test_rows_read_ahead_a_window_at_a_time_are_those_the_journal_has_of_each_chunk(
        created, chunks, window, failing, behind):
    """The first pass reads the rows created from a file's lines ahead of its chunks, a window
    of lines at a time (etl.run.created_ahead): each chunk is given every row the journal has of
    its lines, with its key, Id and time, whatever the windows and chunks; a window whose read
    failed, or lines asked for again, are said unknown (None: the chunk asks the journal itself)."""
    from etl.ledger.lookups import CreatedLines
    from etl.run.created_ahead import CreatedAhead

    rows = np.array(created, np.int64)
    bad = set(created[:failing])  # reads of windows holding these lines fail

    def read(first: int, last: int) -> CreatedLines | None:
        at = (rows >= first) & (rows <= last)
        if bad & set(rows[at].tolist()):
            raise RuntimeError("the journal could not be read")
        r = rows[at]
        return CreatedLines(r, r.astype(np.uint64) * 3, r.astype(np.uint64) * 5, r * 7,
                            pa.array([f"2026-12-0{1 + int(x) % 9}T10:00" for x in r], pa.string()))

    if not created:
        return  # no span: nothing is read ahead (Lookups.created_span)
    def same(got: CreatedLines, first: int, last: int) -> None:
        inside = (got.rows >= first) & (got.rows <= last)
        assert got.rows[inside].tolist() == rows[(rows >= first) & (rows <= last)].tolist()
        assert (got.k1 == got.rows.astype(np.uint64) * 3).all() and (got.record_ids == got.rows * 7).all()
        assert got.created.to_pylist() == [f"2026-12-0{1 + int(x) % 9}T10:00" for x in got.rows]

    ahead = CreatedAhead(read, created[0], created[-1], window=window)
    try:
        start, asked = 1, 1
        for k, size in enumerate(chunks):
            first, last = start, start + size - 1
            if behind and k == behind and start > 1:  # lines asked for again, from before
                lo, hi = max(1, first - 2), max(1, first - 1)
                again = ahead.lines(lo, hi)
                if again is None:
                    assert lo < asked or bad & set(range(lo - window, hi + window + 1))
                else:
                    same(again, lo, hi)
            got = ahead.lines(first, last)
            if got is None:
                assert bad & set(range(first - window, last + window + 1)), (first, last)
            else:
                same(got, first, last)
            start, asked = last + 1, first
    finally:
        ahead.close()
