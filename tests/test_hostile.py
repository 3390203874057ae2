"""Hostile input: whatever bytes arrive, `etl validate` answers with exit 0, 1 or 2, never a
traceback, and its report has exactly one line per data row of the file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etl.cli import main
from etl.read.csvfiles import detect_encoding, sniff_delimiter

HEADERS = st.sampled_from([
    "CoworkerBookingCreditId", "CreditUsed", "credit_used", "Credit Used", "Description",
    "BookingId", "booking-id", "EventAttendeeId", "", " ", "Notes", "=cmd|' /C calc'!A0", "row",
    "source", "\x00", "x" * 300,
])
CELLS = st.one_of(
    st.sampled_from(["1", "2.5", "0", "-3", "1e400", "NaN", "inf", "-inf", "0x1F", "1_000", "1,5",
                     "١٢٣", "", " ", "12.0", "99999999999999999999", "=1+2", "@SUM(A1)", "\x00",
                     '"', '""', "a\nb", "a\r\nb", ";", "\t", "|", "\ufeff1"]),
    st.text(max_size=20),
    st.text(alphabet="0123456789.,-+eE", max_size=400),
)
#: both required columns (under some spelling), other headers around them, in any order
TABLE_HEADERS = st.builds(
    lambda pair, extra: [*pair, *extra],
    st.tuples(st.sampled_from(["CoworkerBookingCreditId", "credit id", "COWORKER_BOOKING_CREDIT_ID"]),
              st.sampled_from(["CreditUsed", "credit_used", "Credit Used", "amount"])),
    st.lists(HEADERS, max_size=6),
).flatmap(st.permutations)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"])
DELIMITERS = st.sampled_from([",", ";", "\t", "|"])

SUMMARY = re.compile(r"^(\d+) rows?[:.]")


def validate(data: bytes, name: str = "input.csv") -> tuple[int, str, str, list | None]:
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        Path(name).write_bytes(data)
        result = CliRunner().invoke(main, ["validate", name, "-q", "--report", "out.csv"],
                                    catch_exceptions=False)
        lines = None
        if result.exit_code != 2:
            with open("out.csv", newline="", encoding="utf-8") as f:
                lines = list(csv.DictReader(f))
        return result.exit_code, result.stdout, result.stderr, lines


def data_rows(data: bytes, name: str) -> int:
    """Non-blank records after the header, counted with the csv module on its own."""
    path = Path(name)
    path.write_bytes(data)
    encoding = detect_encoding(str(path))
    text = data.decode(encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text[:65536]))
    records = [r for r in reader if any(r)]
    return max(0, len(records) - 1)


def check(data: bytes, tmp: Path) -> None:
    code, out, err, lines = validate(data)
    assert code in (0, 1, 2), (code, out, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("etl: error: input.csv: ") and err.count("\n") <= 2, err
        return
    assert lines is not None
    assert len(lines) == data_rows(data, str(tmp / "copy.csv"))
    assert int(SUMMARY.match(out).group(1)) == len(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_random_bytes(tmp_path, data):
    check(data, tmp_path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.one_of(TABLE_HEADERS, st.lists(HEADERS, min_size=1, max_size=8)),
    rows=st.lists(st.lists(CELLS, max_size=9), max_size=15),
    encoding=ENCODINGS,
    delimiter=DELIMITERS,
)
@example(header=["CoworkerBookingCreditId", "CreditUsed"], rows=[["", "", "1"]], encoding="utf-8",
         delimiter=",")
def test_random_tables(tmp_path, header, rows, encoding, delimiter):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding, errors="replace")
    check(data, tmp_path)


def test_a_huge_field(tmp_path):
    data = b"CoworkerBookingCreditId,CreditUsed,Description\n1,1," + b"x" * 5_000_000 + b"\n2,2,ok\n"
    code, _, _, lines = validate(data)
    assert code == 0 and len(lines) == 2
    assert len(lines[0]["Description"]) == 5_000_000


def test_a_file_name_that_is_not_text_is_one_line(etl, tmp_path):
    """A name of bytes that are not UTF-8 (a file copied from an old system): refused in one line
    naming it with its bytes escaped (before: a traceback writing the report)."""
    name = os.fsdecode(b"bad\xff.csv")
    (tmp_path / name).write_text("CoworkerBookingCreditId,CreditUsed\n1,1\n")
    run = etl("validate", tmp_path / name)
    assert run.code == 2 and "Traceback" not in run.err
    assert "bad\\xff.csv: the file's name is not text in this system's encoding" in run.err


def test_the_emulator_in_a_folder_it_cannot_write_is_one_line(etl, tmp_path):
    """--sandbox keeps its records beside the journal: a journal where nothing can be written
    (/proc) is refused in one line (before: a traceback from SQLite)."""
    (tmp_path / "a.csv").write_text("CoworkerBookingCreditId,CreditUsed\n1,1\n")
    run = etl("import", tmp_path / "a.csv", "--sandbox", "--journal", "/proc/etl-journal.sqlite3", "--json")
    assert run.code == 2 and "Traceback" not in run.err
    assert "the emulator can't keep its records in /proc/sandbox-records.sqlite3" in run.err
    assert json.loads(run.out)["exit_code"] == 2
