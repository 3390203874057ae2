"""The posting pass starts from the first chunk as the first pass read it (kept, not read again)
and reads the rest of the file afresh: whatever chunk the night's quota ends in, every line of
the report is there once, in file order, and every row is created once over the nights."""

from __future__ import annotations

import sqlite3
from collections import Counter

from tests.test_import import NO_ENV, TOKEN, journal_of
from tests.test_night_keys import history, sandbox  # noqa: F401 - the fixture
from tests.test_seen_keys import SmallChunks


def test_nights_whose_quota_ends_past_the_first_chunk_report_every_line_once(etl, sandbox, tmp_path,  # noqa: F811
                                                                            monkeypatch):
    from etl.read import reading

    monkeypatch.setattr(reading, "ReadOptions", SmallChunks)
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


def test_a_journal_written_between_the_passes_is_read_again_not_taken_from_the_first_pass(
        etl, sandbox, tmp_path, monkeypatch):  # noqa: F811
    """The posting pass takes the first pass's read of the journal (its keys, the rows created
    from a chunk's lines) only while the journal is unwritten. Written between the passes (here:
    two rows' record Ids swapped, as a `resolve` might correct them), the chunk that sends is
    read again: each created row's line names the Id the journal now gives it, not the one the
    first pass saw."""
    from etl.read import reading
    from etl.run.importing import Importer

    monkeypatch.setattr(reading, "ReadOptions", SmallChunks)
    path = tmp_path / "history.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Description\n"  # 100 distinct rows: each
                    + "".join(f"{11 + i % 3},{i + 1}.25,Desk {i}\n" for i in range(100)))  # created
    # row is found by its very line

    def night(limit: int):
        return etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                   "--no-check-credits", "--daily-limit", str(limit), env=NO_ENV)

    assert night(50).code == 4  # rows 2-51: the first chunk half created
    guard = Importer.guard_new_journal
    swapped: dict[int, int] = {}

    def between(self: Importer) -> None:  # after the first pass, before the posting pass
        guard(self)
        with self.journal.transaction() as db:
            (a,), (b,) = (db.execute("SELECT record_id FROM rows WHERE row = ?", (r,)).fetchone()
                          for r in (45, 46))
            db.execute("UPDATE rows SET record_id = NULL WHERE row = 45")
            db.execute("UPDATE rows SET record_id = ? WHERE row = 46", (a,))
            db.execute("UPDATE rows SET record_id = ? WHERE row = 45", (b,))
        swapped.update({45: b, 46: a})

    monkeypatch.setattr(Importer, "guard_new_journal", between)
    run = night(60)
    assert run.code == 4, run.output
    lines = {int(r["row"]): r for r in run.report()}
    assert [lines[n]["outcome"] for n in range(2, 62)] == ["skipped"] * 50 + ["created"] * 10
    assert {n: int(lines[n]["id"]) for n in (45, 46)} == swapped
    assert f"(Id {swapped[45]})" in lines[45]["errors"]


def test_keys_kept_of_other_chunks_are_made_again_not_misread(etl, sandbox, tmp_path, monkeypatch):  # noqa: F811
    """The keys a night keeps are of its chunks: a release that reads the file in chunks of
    another size (this one's are smaller than the one's before) finds them not to fit, keys the
    file again, and posts nothing twice; every line is there once, in file order."""
    from dataclasses import dataclass

    from etl.read import reading

    @dataclass(frozen=True)
    class OtherChunks(SmallChunks):
        chunk_rows: int = 64
        block_bytes: int = 2048

    path = tmp_path / "history.csv"
    history(path, 200)  # identical rows among them

    def night(limit: int | None, options: type) -> tuple[int, list[dict[str, str]]]:
        monkeypatch.setattr(reading, "ReadOptions", options)
        more = ("--daily-limit", str(limit)) if limit else ()
        run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                  "--no-check-credits", *more, env=NO_ENV)
        return run.code, run.report()

    for limit, options, created, skipped in ((60, SmallChunks, 60, 0), (130, OtherChunks, 70, 60),
                                             (None, SmallChunks, 70, 130)):
        code, report = night(limit, options)
        assert code == (4 if limit else 0)
        assert [int(r["row"]) for r in report] == list(range(2, 202))
        assert Counter(r["outcome"] for r in report) == +Counter(
            {"created": created, "skipped": skipped, "not_attempted": 200 - created - skipped})
    records = sandbox.store.records()
    assert len(records) == 200
    assert len({r["Id"] for r in records}) == 200
