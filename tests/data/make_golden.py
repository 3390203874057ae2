"""Makes the golden dry-run inputs and reports (run it from anywhere: `python tests/data/make_golden.py`).

The inputs are ~20k-row exports with assorted bad cells of every kind the validator judges; the
reports are what `etl validate` wrote for them when they were made, kept so that a faster
validator is held to the same answers, cell for cell (tests/test_golden.py). Regenerate the
reports only on purpose (`--reports-only` keeps the inputs), when an answer is meant to change.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
import random
import sys
import tempfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent
HEADER = ["CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId",
          "CoworkerInvoiceLineId", "EventAttendeeId", "Notes"]

#: cells that some check or message treats specially
ODD_IDS = ["abc", "-3", "0", "12.5", "", " ", "+7", "007", "12.0", "12.", "1e3", "2147483647",
           "2147483648", "99999999999", "0x1F", " 42 ", "4\u00a02", "\ufeff5", "１２", "=1+2", "-0",
           "00000000001", "1,000", "\t9", "NaN", "None", "null", "٣"]
ODD_AMOUNTS = ["abc", "-2", "0", "0.0", "", "1.234,50", "1,234.50", "1 234", "1\u00a0234,5", "2,5",
               "1e-400", "1e400", "inf", "NaN", "+.5", ".5", "5.", "1E+2", "--1", "1_000", "0x10",
               " 3.25 ", "=SUM(A1)", "@x", "1'234", "3.5\u00a0", "12.345.678", "1\u202f234"]
ODD_TEXT = ["=HYPERLINK(\"x\")", "+44 20 7946 0000", "-minus", "@handle", "\ttab", "Zoë \"quoted\"",
            "line\nbreak", "semi;colon", "", "   ", "\u200bzero width", "é" * 80]


def csv_rows(n: int, rnd: random.Random) -> list[list[str]]:
    out = []
    for i in range(n):
        row = [str(rnd.randint(1, 99_999)), f"{rnd.randint(1, 800) / 4}",
               f"Meeting room, {rnd.choice(['Ada', 'Grace', 'Linus', 'Zoë'])} #{i}",
               str(rnd.randint(1, 10**6)) if i % 3 == 0 else "",
               str(rnd.randint(1, 10**6)) if i % 3 == 1 else "",
               str(rnd.randint(1, 10**6)) if i % 3 == 2 else "",
               rnd.choice(["", "", "note"])]
        if i % 7 == 0:
            row[rnd.choice([0, 3, 4, 5])] = rnd.choice(ODD_IDS)
        if i % 11 == 0:
            row[1] = rnd.choice(ODD_AMOUNTS)
        if i % 13 == 0:
            row[rnd.choice([2, 6])] = rnd.choice(ODD_TEXT)
        if i % 997 == 0:
            row = row[:rnd.randint(1, 5)]  # too few values
        if i % 1499 == 0:
            row = row + ["extra", "more"]  # too many
        if i % 1201 == 0:
            row = [""] * len(HEADER)  # a blank row
        out.append(row)
    return out


def write_csv(path: Path, n: int) -> None:
    rnd = random.Random(12)
    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\r\n")
    w.writerow(HEADER)
    w.writerows(csv_rows(n, rnd))
    path.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8"), mtime=0))


def write_xlsx(path: Path, n: int) -> None:
    """Typed cells as Excel keeps them: whole and fractional numbers, dates, booleans, text."""
    rnd = random.Random(13)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for i in range(n):
        row: list[object] = [rnd.randint(1, 99_999), rnd.randint(1, 800) / 4,
                             f"Room #{i}", rnd.randint(1, 10**6) if i % 3 == 0 else None,
                             None, None, None]
        if i % 5 == 0:
            row[rnd.choice([0, 3, 4, 5])] = rnd.choice(
                [0, -3, 12.5, 2**31, 2**31 - 1, 1e15, 7.0, True, "12", " 8 ", "abc", None,
                 dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4)])
        if i % 6 == 0:
            row[1] = rnd.choice([0.1 + 0.2, 1e-7, 2.5, -1.0, 0, 1e20, "2,5", "1.234,5", "abc", True,
                                 dt.datetime(2024, 5, 6), dt.time(12, 30), 123456789.123456789])
        if i % 9 == 0:
            row[6] = rnd.choice(["=formula text", 3.14159, -2, "note", None])
        if i % 1000 == 500:
            row = [None] * len(HEADER)  # a blank row
        sheet.append(row)
    book.save(path)


def report(args: list[str]) -> tuple[bytes, bytes]:
    """The results.csv and errors.csv `etl validate ARGS` writes."""
    from click.testing import CliRunner

    from etl.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.csv")
        result = CliRunner().invoke(main, ["validate", *args, "-q", "--report", out])
        assert result.exit_code in (0, 1), result.output
        with open(out, "rb") as f, open(os.path.join(tmp, "errors.csv"), "rb") as g:
            return f.read(), g.read()


def main() -> None:
    if "--reports-only" not in sys.argv:
        write_csv(HERE / "golden.csv.gz", 20_000)
        write_xlsx(HERE / "golden.xlsx", 6_000)
    os.chdir(HERE)
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "golden.csv")
        with open(plain, "wb") as f:
            f.write(gzip.decompress((HERE / "golden.csv.gz").read_bytes()))
        cases = {"golden.csv.report.gz": [plain],
                 "golden.xlsx.report.gz": ["golden.xlsx"],
                 "golden.xlsx.comma.report.gz": ["golden.xlsx", "--decimal", ","]}
        for name, args in cases.items():
            results, errors = report(args)
            results = results.replace(plain.encode(), b"golden.csv")
            (HERE / name).write_bytes(gzip.compress(results, mtime=0))
            (HERE / name.replace(".report.", ".errors.")).write_bytes(gzip.compress(errors, mtime=0))
            print(name, results.count(b"\n"), "lines", file=sys.stderr)


if __name__ == "__main__":
    main()
