"""A migration night's report lines after tonight's quota, and those of chunks created on the
nights before (written by the first pass): the report, errors.csv and the counts are the same as
if every line had been written in turn, and a posting pass that finds the quota not spent where
the first pass counted on it carries on itself."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

from tests.test_import import NO_ENV, TOKEN, journal_of
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture
from tests.test_seen_keys import SmallChunks

ROWS = 1_050  # about twenty chunks


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of some dozens of rows: the chunk boundaries are the reader's, whatever their size
    (files of 75,000 and 105,000 rows in chunks of ~34,000 passed the same, in 9 s of CPU)."""
    from etl.read import reading

    monkeypatch.setattr(reading, "ReadOptions", SmallChunks)


def history(path: Path, bad: set[int]) -> None:
    """ROWS credit uses; the rows (from 0) in BAD have an amount that is no number."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows([str(11 + i % 5), "abc" if i in bad else f"{1 + i % 40}.25", f"Desk #{i}"]
                    for i in range(ROWS))


def night(etl, sandbox, path: Path, limit: int, *more: str):  # noqa: F811
    return etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
               "--daily-limit", str(limit), "--no-check-credits", *more, env=NO_ENV)


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "logs").rglob("*") if p.suffix in (".ahead", ".tmp"))


def test_the_lines_after_the_quota_are_every_line_in_turn(etl, sandbox, tmp_path):  # noqa: F811
    path = tmp_path / "history.csv"
    bad = set(range(3, ROWS, 97))
    history(path, bad)
    for limit, done_before in ((10, 0), (25, 10)):
        run = night(etl, sandbox, path, limit)
        assert run.code == 4, run.output
        report = run.report()
        assert [int(r["row"]) for r in report] == list(range(2, ROWS + 2))  # every line, in order
        valid = [r for i, r in enumerate(report) if i not in bad]
        assert all(report[i]["outcome"] == "invalid" for i in bad)
        expected = ["skipped"] * done_before + ["created"] * (limit - done_before)
        assert [r["outcome"] for r in valid[:limit]] == expected
        assert valid[limit]["outcome"] == "not_attempted"
        assert f"--daily-limit {limit} reached" in valid[limit]["errors"]
        assert {(r["outcome"], r["errors"]) for r in valid[limit + 1:]} == {("not_attempted", "")}
        with open(run.report_path().parent / "errors.csv", newline="", encoding="utf-8") as f:
            errors = list(csv.DictReader(f))
        assert [e["Description"] for e in errors] == [f"Desk #{i}" for i in sorted(bad)]
        assert all("CreditUsed" in e["errors"] for e in errors)
        counts = run.summary()["counts"]
        assert counts["invalid"] == len(bad)
        assert counts["created"] == limit - done_before and counts["skipped"] == done_before
        assert counts["not_attempted"] == ROWS - len(bad) - limit
        assert run.summary()["needs_action"] == len(bad)
        assert leftovers(tmp_path) == []
    assert len(sandbox.store.records()) == 25
    # a run stopped after its first pass (another journal has these rows) leaves nothing behind
    other = night(etl, sandbox, path, 50, "--journal", str(tmp_path / "other.sqlite3"))
    assert other.code == 2, other.output
    assert leftovers(tmp_path) == []
    assert len(sandbox.store.records()) == 25


def test_a_quota_the_first_pass_counted_on_but_not_spent_is_spent_further_on(etl, sandbox, tmp_path):  # noqa: F811
    """The first pass counts rows 1 to 20 as to send (the journal's keys of rows 1 to 10 are
    wrong), so it counts on the quota being spent in the first chunk; the posting pass finds
    rows 1 to 10 created before (looked up before sending), sends 11 to 20, and, its quota not
    spent at the first chunk's end, goes on to the next chunk itself."""
    path = tmp_path / "history.csv"
    bad = set(range(20, 600))  # the first chunk: 20 valid rows, then invalid ones
    history(path, bad)
    first = night(etl, sandbox, path, 10)
    assert first.code == 4
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        db.execute("UPDATE keys SET content = '0000000000000000000000000000000' || substr(identity, 1, 1), "
                   "payload = '0000000000000001'")
    second = night(etl, sandbox, path, 20)
    assert second.code == 4, second.output
    report = second.report()
    assert len(report) == ROWS
    assert [r["outcome"] for r in report[:20]] == ["skipped"] * 10 + ["created"] * 10
    assert {r["outcome"] for r in report[20:600]} == {"invalid"}
    assert report[600]["outcome"] == "not_attempted"
    assert "--daily-limit 20 reached" in report[600]["errors"]
    assert {r["outcome"] for r in report[601:]} == {"not_attempted"}
    assert len(sandbox.store.records()) == 20
    assert leftovers(tmp_path) == []


def test_chunks_of_rows_created_before_are_written_by_the_first_pass(etl, sandbox, tmp_path):  # noqa: F811
    """A migration's nights after the first: each chunk whose valid rows were all created on
    the nights before (from their very lines) is written by the first pass and appended by the
    posting pass; the report, errors.csv and the counts are every line in turn, whether such a
    chunk comes before a chunk that sends or every chunk is one."""
    rows = 750
    path = tmp_path / "history.csv"
    valid = [*range(0, 20), *range(700, 720)]  # 20 in the first chunk, 20 in a late one
    bad = set(range(rows)) - set(valid)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows([str(11 + i % 5), "abc" if i in bad else f"{1 + i % 40}.25", f"Desk #{i}"]
                    for i in range(rows))
    ids: dict[int, str] = {}
    for limit in (20, 40, 40):
        run = night(etl, sandbox, path, limit)
        report = run.report()
        assert [int(r["row"]) for r in report] == list(range(2, rows + 2))  # every line, in order
        assert all(report[i]["outcome"] == "invalid" and "CreditUsed" in report[i]["errors"] for i in bad)
        for k, i in enumerate(valid):
            line = report[i]
            if i in ids:  # created on a night before: that record, from this very line
                assert line["outcome"] == "skipped" and line["id"] == ids[i], line
                assert line["errors"].startswith(f"note: already created from {path} row {i + 2} on ")
            elif k < limit:
                assert line["outcome"] == "created", line
                ids[i] = line["id"]
            else:
                assert line["outcome"] == "not_attempted", line
        with open(run.report_path().parent / "errors.csv", newline="", encoding="utf-8") as f:
            errors = list(csv.DictReader(f))
        assert [e["Description"] for e in errors] == [f"Desk #{i}" for i in sorted(bad)]
        counts = {k: n for k, n in run.summary()["counts"].items() if n}
        assert counts.get("invalid") == len(bad) and sum(counts.values()) == rows
        assert counts.get("created", 0) + counts.get("skipped", 0) == min(limit, len(valid))
        assert len(sandbox.store.records()) == len(ids) == min(limit, len(valid))
        assert leftovers(tmp_path) == []
    assert run.code == 1  # the invalid rows
    assert counts == {"invalid": len(bad), "skipped": len(valid)}


def test_rows_after_the_quota_the_journal_knows_from_another_file_say_so(etl, sandbox, tmp_path):  # noqa: F811
    """The posting pass, stopped at the quota, plans the chunks after it from their verdicts
    alone only where the journal knows nothing of their rows: rows after the quota created
    before from another file are still reported skipped, with that file's row, never
    not_attempted (which would send them again on a later night)."""
    a = tmp_path / "a.csv"
    with a.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows([str(11 + i % 5), f"{1 + i}.25", f"Room #{i}"] for i in range(20))
    first = night(etl, sandbox, a, 10)
    assert first.code == 4, first.output
    b = tmp_path / "b.csv"
    filler = 700  # the quota ends in the first chunk; A's rows come in the last
    with b.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows([str(11 + i % 5), f"{1 + i % 40}.25", f"Desk #{i}"] for i in range(filler))
        w.writerows([str(11 + i % 5), f"{1 + i}.25", f"Room #{i}"] for i in range(12))
    second = night(etl, sandbox, b, 20)
    assert second.code == 4, second.output
    report = second.report()
    assert [r["outcome"] for r in report[:10]] == ["created"] * 10
    assert {r["outcome"] for r in report[10:filler]} == {"not_attempted"}
    tail = report[filler:]
    assert [r["outcome"] for r in tail] == ["skipped"] * 10 + ["not_attempted"] * 2, tail
    for i, line in enumerate(tail[:10]):
        assert line["errors"].startswith(f"note: already created from {a} row {i + 2} on "), line
    assert len(sandbox.store.records()) == 20


def test_a_link_moved_to_a_copy_while_a_night_reads_names_the_file_the_rows_came_from(
        etl, sandbox, tmp_path, monkeypatch):  # noqa: F811
    """The link a night imports is moved to a copy of the same bytes just as the night begins
    to read the journal's rows of the file it led to (a `cp -p` and `ln -sfn` at the wrong
    moment): each line still names the file its row was created from, never the copy, which
    the journal has no row of."""
    import os
    import re
    import shutil

    from etl.ledger.lookups import Lookups

    a, b, link = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "latest.csv"
    history(a, set())
    link.symlink_to(a)
    first = night(etl, sandbox, link, ROWS, "--concurrency", "16")
    assert first.code == 0, first.output
    ids = {r["row"]: r["id"] for r in first.report()}
    shutil.copy2(a, b)
    span = Lookups.created_span

    def moved(self, source):
        found = span(self, source)
        link.unlink()
        link.symlink_to(b)
        return found

    monkeypatch.setattr(Lookups, "created_span", moved)
    again = night(etl, sandbox, link, ROWS)
    assert again.code == 0, again.output
    note = re.compile(r"note: already created from (.+) row (\d+) on .+ \(Id (\d+)\): "
                      r"the same values in every cell")
    for r in again.report():
        m = note.fullmatch(r["errors"])
        assert r["outcome"] == "skipped" and m, r
        assert (m[1], m[2], m[3]) == (os.path.realpath(a), r["row"], ids[r["row"]]), r
    assert len(sandbox.store.records()) == ROWS
