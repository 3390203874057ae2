"""Random tables written the way exports are (several encodings, delimiters and line endings,
quotes and line breaks in cells) come back cell for cell, with their row numbers, in the report."""

from __future__ import annotations

import contextlib
import csv
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.cli import main
from etl.report.cells import neutralise_cell

HEADER = ["CoworkerBookingCreditId", "CreditUsed", "Description", "Notes"]
WORDS = st.sampled_from(["Café", "crème", "Genève", "naïve", "Zoë", "room", "A", "1,5", "2.5", ""])
PIECES = st.sampled_from(['"', '""', "\n", "\r\n", " ", ",", ";", "\t", "|", "'"])
CELL = st.lists(st.one_of(WORDS, PIECES), max_size=5).map("".join)
ROW = st.tuples(st.integers(1, 10**6).map(str), CELL, CELL, CELL).map(list)


def line(cells: list[str], delimiter: str, newline: str) -> str:
    """A row as Excel writes it: a cell is quoted when it holds the delimiter, a quote or a line
    break (Python's csv module leaves a LF unquoted when rows end in CR alone)."""
    def quoted(cell: str) -> str:
        if any(c in cell for c in (delimiter, '"', "\r", "\n")):
            return '"' + cell.replace('"', '""') + '"'
        return cell
    return delimiter.join(quoted(c) for c in cells) + newline


@settings(max_examples=15, deadline=None)
@given(
    rows=st.lists(ROW, min_size=1, max_size=8),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_report_echoes_every_cell_and_row_number(rows, encoding, delimiter, newline):
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        with open("export.csv", "w", newline="", encoding=encoding) as f:
            f.write("".join(line(r, delimiter, newline) for r in [HEADER, *rows]))
        result = CliRunner().invoke(main, ["validate", "export.csv", "-q", "--report", "out.csv"],
                                    catch_exceptions=False)
        assert result.exit_code in (0, 1), result.stderr
        with open(Path("out.csv"), newline="", encoding="utf-8") as f:
            report = list(csv.DictReader(f))
    assert [r["row"] for r in report] == [str(n) for n in range(2, len(rows) + 2)]
    assert [[r[h] for h in HEADER] for r in report] == [[neutralise_cell(c) for c in row] for row in rows]
