"""Chunks the first pass writes (rows created before from their very lines) read past by the
posting pass: what it sends and says is what it would have processing them itself."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.test_ahead import leftovers, night, small_chunks  # noqa: F401 - the fixture: chunks of dozens of rows
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture

ROWS = 750  # chunks of some dozens of rows (tests.test_ahead.small_chunks)


def write(path: Path, rows: dict[int, tuple[str, str, str]]) -> None:
    """ROWS lines; those in ROWS (from 0) valid with the cells given, the rest invalid."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows(rows.get(i, ("11", "abc", f"Desk #{i}")) for i in range(ROWS))


def test_a_row_repeated_after_a_chunk_read_past_is_the_next_of_its_content(etl, sandbox, tmp_path):  # noqa: F811
    """Row 0 was created on the night before; row 700, added to the file since, is
    identical to it: the second of its content. The first chunk is written by the first pass:
    the row after it is still the content's second, and is sent."""
    path = tmp_path / "history.csv"
    cells = {i: ("11", "1.25", f"Desk #{i}") for i in range(20)}
    write(path, cells)
    first = night(etl, sandbox, path, 20)
    assert first.code == 1, first.output
    assert len(sandbox.store.records()) == 20
    cells[700] = cells[0]  # a credit use like row 0's, exported since
    write(path, cells)
    second = night(etl, sandbox, path, 40)
    report = second.report()
    assert [r["outcome"] for r in report[:20]] == ["skipped"] * 20
    assert report[700]["outcome"] == "created", report[700]
    assert len(sandbox.store.records()) == 21
    assert second.code == 1, second.output
    assert leftovers(tmp_path) == []
