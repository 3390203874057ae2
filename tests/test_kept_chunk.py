"""The posting pass starts from the first chunk as the first pass read it (kept, not read again)
and reads the rest of the file afresh: whatever chunk the night's quota ends in, every line of
the report is there once, in file order, and every row is created once over the nights."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass

from etl.read.reading import ReadOptions
from tests.test_import import NO_ENV, TOKEN, journal_of
from tests.test_night_keys import history, sandbox  # noqa: F401 - the fixture


@dataclass(frozen=True)
class _Small(ReadOptions):
    """Chunks of about 40 rows."""

    chunk_rows: int = 40
    block_bytes: int = 1024


def test_nights_whose_quota_ends_past_the_first_chunk_report_every_line_once(etl, sandbox, tmp_path,  # noqa: F811
                                                                            monkeypatch):
    from etl.read import reading

    monkeypatch.setattr(reading, "ReadOptions", _Small)
    path = tmp_path / "history.csv"
    history(path, 200)  # identical rows among them: each is its own line, its own credit use

    def night(limit: int | None):
        more = ("--daily-limit", str(limit)) if limit else ()
        return etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                   "--no-check-credits", *more, env=NO_ENV)

    for limit, created, skipped in ((60, 60, 0), (130, 70, 60), (None, 70, 130)):
        run = night(limit)
        assert run.code == (4 if limit else 0), run.output
        report = run.report()
        assert [int(r["row"]) for r in report] == list(range(2, 202))  # each line once, in order
        outcomes = Counter(r["outcome"] for r in report)
        assert outcomes == +Counter({"created": created, "skipped": skipped,
                                     "not_attempted": 200 - created - skipped})
        assert [r["outcome"] for r in report[:skipped]] == ["skipped"] * skipped
        assert [r["outcome"] for r in report[skipped:skipped + created]] == ["created"] * created
    records = sandbox.store.records()
    assert len(records) == 200
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        ids = [r for (r,) in db.execute("SELECT record_id FROM rows WHERE state = 'created'")]
    assert sorted(ids) == sorted(r["Id"] for r in records)
