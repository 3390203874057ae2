"""`etl validate` on real, ugly files: what a user sees in the report, on screen and in the exit code."""

from __future__ import annotations

import pytest

from tests.conftest import DATA, SAMPLES


def test_clean_sample_is_all_valid(etl):
    run = etl("validate", SAMPLES / "credit_uses.csv")
    assert run.code == 0
    rows = run.report()
    assert len(rows) == 24
    assert {r["outcome"] for r in rows} == {"valid"}
    assert run.out.strip().startswith(f'24 rows: 24 valid. Read {SAMPLES / "credit_uses.csv"} '
                                      '(UTF-8, ","; 24 rows). Report: logs/')


def test_sample_with_errors_names_every_bad_row(etl):
    run = etl("validate", SAMPLES / "credit_uses_with_errors.csv")
    assert run.code == 1
    bad = {int(r["row"]): r["errors"] for r in run.report() if r["outcome"] == "invalid"}
    assert bad == {
        3: 'CreditUsed: "abc" is not a number',
        5: "CoworkerBookingCreditId: is required",
        6: 'CoworkerBookingCreditId: "12.5" is not a whole number',
        8: 'CreditUsed: "-2" must be greater than 0',
        9: 'BookingId: "0" must be greater than 0',
        11: 'CreditUsed: is required | EventAttendeeId: "x17" is not a whole number',
    }
    assert "6 valid, 6 invalid" in run.out


def test_report_columns_and_summary(etl):
    run = etl("validate", DATA / "unknown_columns.csv")
    assert run.code == 0
    header = run.report_path().read_text().splitlines()[0]
    assert header == (
        "source,row,outcome,id,http_status,attempts,errors,Credit Id,credit_used,Member Name,Notes"
    )
    summary = run.summary()
    assert summary["counts"]["valid"] == 2 and summary["counts"]["invalid"] == 0
    assert summary["exit_code"] == 0
    assert summary["files"] == [str(DATA / "unknown_columns.csv")]
    assert summary["run_id"] in str(run.report_path())
    assert summary["started_at"] <= summary["finished_at"]


def test_unknown_columns_are_kept_and_named_once(etl):
    run = etl("validate", DATA / "unknown_columns.csv")
    assert 'never sent: "Member Name", "Notes"' in run.err
    assert run.err.count("never sent") == 1
    assert run.report()[0]["Member Name"] == "Ada"


@pytest.mark.parametrize(
    "name, descriptions",
    [
        ("utf8_bom.csv", ["Café crème", "Naïve"]),
        ("utf16.csv", ["Café crème", "Naïve"]),
        ("cp1252.csv", ["Café €5", "Naïve"]),
        ("latin1.csv", ["Café", "ctrl\x81x"]),
        ("tab.csv", ["Room A", "Room B"]),
        ("pipe.csv", ["Room A", "Room B"]),
    ],
)
def test_encodings_and_delimiters_are_detected(etl, name, descriptions):
    run = etl("validate", DATA / name)
    assert run.code == 0, run.err
    rows = run.report()
    assert [r["Description"] for r in rows] == descriptions
    assert [r["CoworkerBookingCreditId"] for r in rows] == ["101", "102"]


def test_semicolons_with_decimal_comma(etl):
    run = etl("validate", DATA / "semicolon_decimal_comma.csv", "--decimal", ",")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["valid", "valid", "invalid"]
    assert rows[1]["Description"] == "Room B; east"
    assert rows[2]["errors"] == 'CreditUsed: "1.5" is not a number (the decimal mark is ",")'
    assert run.code == 1


def test_decimal_comma_without_the_option_is_reported_not_guessed(etl):
    run = etl("validate", DATA / "semicolon_decimal_comma.csv")
    rows = run.report()
    assert rows[0]["errors"] == 'CreditUsed: "2,5" is not a number (a decimal comma? say --decimal ,)'
    assert rows[2]["outcome"] == "valid"


def test_dots_that_may_group_thousands_in_a_semicolon_file_are_not_guessed(etl, tmp_path):
    """A ";"-separated export (LibreOffice's, a German Excel's: cp1252, CRLF) is written where the
    comma is the decimal mark, and there 1.500 is fifteen hundred. Without --decimal it is
    refused, not read as 1.5 beside the row with 1,5 that is refused (before: posted as 1.5, and
    the booking id 5.000 as booking 5); 0.250 and 1.5 cannot be grouped thousands and are read.
    Said either way, the option decides, and errors.csv is to be loaded again with it."""
    path = DATA / "semicolon_dots_grouped.csv"
    run = etl("validate", path)
    rows = {r["row"]: r for r in run.report()}
    assert {n: r["outcome"] for n, r in rows.items()} == {
        "2": "invalid", "3": "valid", "4": "invalid", "5": "valid", "6": "invalid", "7": "valid"}
    assert rows["2"]["errors"] == 'CreditUsed: "1,5" is not a number (a decimal comma? say --decimal ,)'
    assert rows["4"]["errors"] == ('CreditUsed: "1.500" could be 1500 (dots grouping thousands, as an '
                                   'export not separated by commas may write them) or 1.5: say which with '
                                   '--decimal , or --decimal .')
    assert rows["6"]["errors"].startswith('CreditUsed: "12.345" could be 12345 ') and \
        ' | BookingId: "5.000" could be 5000 ' in rows["6"]["errors"]
    dots = etl("validate", path, "--decimal", ".")
    assert [r["outcome"] for r in dots.report()] == ["invalid", "valid", "valid", "valid", "valid", "valid"]
    assert "Load it again with the same options: --decimal ." in dots.err
    commas = etl("validate", path, "--decimal", ",")
    assert [r["outcome"] for r in commas.report()] == ["valid", "valid", "invalid", "invalid", "invalid",
                                                       "invalid"]
    (tmp_path / "dots.csv").write_text("CoworkerBookingCreditId,CreditUsed\n103,1.500\n")  # "," separates:
    assert [r["outcome"] for r in etl("validate", tmp_path / "dots.csv").report()] == ["valid"]  # a dot's


def test_dots_that_may_group_thousands_in_excels_unicode_text_are_not_guessed(etl):
    """Excel's "Unicode Text" (UTF-16, tab-separated) from a European locale writes 1.500 for
    fifteen hundred, as its ";"-separated CSV does: without --decimal it is refused, and so is the
    id 5.000 (before: read as 1.5 and as credit 5, and posted, beside the row with 1,5 that was
    refused). A file whose delimiter is the comma can't have a decimal comma: its 1.500 is 1.5."""
    path = DATA / "excel_unicode_text_dots_grouped.txt"
    run = etl("validate", path)
    rows = {r["row"]: r for r in run.report()}
    assert {n: r["outcome"] for n, r in rows.items()} == {"2": "invalid", "3": "invalid", "4": "invalid",
                                                          "5": "valid"}
    assert rows["2"]["errors"].startswith('CreditUsed: "1.500" could be 1500 (dots grouping thousands')
    assert rows["4"]["errors"].startswith('CoworkerBookingCreditId: "5.000" could be 5000 ')
    commas = etl("validate", path, "--decimal", ",")  # there a dot groups thousands: refused
    assert [r["outcome"] for r in commas.report()] == ["invalid", "valid", "invalid", "invalid"]
    assert "has a thousands separator" in commas.report()[0]["errors"]
    dots = etl("validate", path, "--decimal", ".")
    assert [r["outcome"] for r in dots.report()] == ["valid", "invalid", "valid", "valid"]


def test_encoding_and_delimiter_can_be_forced(etl):
    run = etl("validate", DATA / "tab.csv", "--delimiter", "tab", "--encoding", "ascii")
    assert run.code == 0
    run = etl("validate", DATA / "cp1252.csv", "--encoding", "utf-8")
    assert run.code == 2
    assert run.err.strip().endswith(
        "cp1252.csv: row 2: byte 0xE9 at offset 58 is not valid utf-8; leave out --encoding "
        "(it reads as cp1252)")
    assert "Traceback" not in run.err


def test_blank_lines_are_skipped_but_counted_like_a_spreadsheet(etl):
    run = etl("validate", DATA / "blank_lines.csv")
    assert run.code == 0
    assert [(r["row"], r["Description"]) for r in run.report()] == [
        ("2", "first"),
        ("4", "after one blank"),
        ("7", "after two blanks"),
        ("9", "after an empty row"),
    ]


def test_crlf_and_blank_crlf_lines(etl):
    run = etl("validate", DATA / "crlf.csv")
    assert [(r["row"], r["Description"]) for r in run.report()] == [("2", "a"), ("4", "b")]


def test_quoted_fields_with_newlines_keep_row_numbers(etl):
    run = etl("validate", DATA / "quoted_newlines.csv")
    rows = run.report()
    assert [r["row"] for r in rows] == ["2", "3", "4", "5"]
    assert rows[0]["Description"] == "line one\nline two"
    assert rows[1]["Description"] == 'say "hi", then, leave'
    assert rows[2]["errors"] == 'CreditUsed: "abc" is not a number'
    assert rows[3]["Description"] == "last"


def test_ragged_rows_are_invalid_rows_not_a_crash(etl):
    run = etl("validate", DATA / "ragged.csv")
    assert run.code == 1
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["valid", "invalid", "invalid", "valid"]
    assert rows[1]["errors"] == "row: has 2 values but the header has 3 columns"
    assert rows[2]["errors"] == 'row: has 4 values but the header has 3 columns (extra: "many")'
    assert rows[2]["Description"] == "too"


def test_excel_floats(etl):
    rows = etl("validate", DATA / "excel_floats.csv").report()
    assert [r["outcome"] for r in rows] == ["valid", "invalid", "valid"]
    assert rows[1]["errors"] == 'BookingId: "12.5" is not a whole number'


def test_headers_match_ignoring_case_spaces_underscores_and_dashes(etl):
    run = etl("validate", DATA / "headers_any_case.csv")
    assert run.code == 0
    assert "never sent" not in run.err


def test_map_renames_a_column(etl):
    run = etl("validate", DATA / "missing_column.csv", "--map", "amount spent=CreditUsed")
    assert run.code == 0, run.err
    assert run.report()[0]["Amount Spent"] == "1"


def test_map_to_an_unknown_column_is_a_usage_error(etl):
    run = etl("validate", DATA / "missing_column.csv", "--map", "Amount Spent=Credits Spent")
    assert run.code == 2
    assert "--map target 'Credits Spent' is not a column" in run.err


def test_missing_required_column_is_a_file_error_with_no_report(etl):
    run = etl("validate", DATA / "missing_column.csv")
    assert run.code == 2
    assert run.err.count("\n") == 1
    assert "missing_column.csv: required column missing: CreditUsed" in run.err
    assert '(found "CoworkerBookingCreditId", "Amount Spent", "Description")' in run.err
    assert "--map SOURCE=CreditUsed" in run.err
    assert not list(run.cwd.glob("logs/*/results.csv"))


def test_two_columns_for_one_field_is_a_file_error(etl):
    run = etl("validate", DATA / "duplicate_columns.csv")
    assert run.code == 2
    assert 'columns "CreditUsed" and "credit used" both name CreditUsed' in run.err


def test_empty_file(etl):
    run = etl("validate", DATA / "empty.csv")
    assert run.code == 2
    assert "empty.csv: the file is empty: no header row" in run.err
    assert "Traceback" not in run.err


def test_header_only_file_has_zero_rows(etl):
    run = etl("validate", DATA / "header_only.csv")
    assert run.code == 0
    assert run.report() == []
    assert run.out.startswith("0 rows. Read ") and "(UTF-8, \",\"; 0 rows). Report:" in run.out


def test_missing_file_and_directory(etl, tmp_path):
    assert "nope.csv: no such file" in etl("validate", "nope.csv").err
    assert etl("validate", "nope.csv").code == 2
    run = etl("validate", tmp_path)
    assert run.code == 2


def test_nul_bytes_are_just_characters(etl):
    rows = etl("validate", DATA / "nul_byte.csv").report()
    assert [r["outcome"] for r in rows] == ["valid", "valid"]


def test_formulas_are_neutralised_in_the_report(etl):
    rows = etl("validate", DATA / "formulas.csv").report()
    assert [r["Description"] for r in rows] == [
        "'=HYPERLINK(\"http://evil\")",
        "'+1+2",
        "-5",
        "'@SUM(A1)",
        "plain",
    ]


def test_xlsx_sheet_and_row_numbers(etl):
    run = etl("validate", DATA / "workbook.xlsx", "--sheet", "Uses")
    assert run.code == 1
    rows = run.report()
    assert [(r["row"], r["outcome"]) for r in rows] == [("2", "valid"), ("3", "valid"), ("5", "invalid")]
    assert rows[1]["Coworker Booking Credit Id"] == "102"
    assert rows[1]["Credit Used"] == "0.1"
    assert rows[2]["errors"] == 'CreditUsed: "abc" is not a number'


def test_xlsx_first_sheet_by_default_and_unknown_sheet(etl):
    run = etl("validate", DATA / "workbook.xlsx")
    assert run.code == 2
    assert "required columns missing" in run.err
    run = etl("validate", DATA / "workbook.xlsx", "--sheet", "March")
    assert run.code == 2
    assert """has no worksheet 'March'; it has: "Summary", "Uses"\n""" in run.err


def test_bundled_xlsx_sample(etl):
    run = etl("validate", SAMPLES / "credit_uses.xlsx")
    assert run.code == 0
    assert len(run.report()) == 10


def test_damaged_xlsx_is_a_file_error(etl):
    run = etl("validate", DATA / "not_a_workbook.xlsx")
    assert run.code == 2
    assert "not_a_workbook.xlsx: is not a readable .xlsx workbook" in run.err


def test_several_files_make_one_report(etl):
    run = etl("validate", DATA / "tab.csv", DATA / "unknown_columns.csv", "--report", "out/all.csv")
    assert run.code == 0
    import csv

    with open(run.cwd / "out" / "all.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["source"].rsplit("/", 1)[-1] for r in rows] == ["tab.csv"] * 2 + ["unknown_columns.csv"] * 2
    assert rows[0]["Description"] == "Room A" and rows[0]["Member Name"] == ""
    assert rows[2]["Member Name"] == "Ada" and rows[2]["Description"] == ""
    assert (run.cwd / "out" / "summary.json").exists()


def test_structured_log_has_run_id_on_every_event(etl):
    import json

    run = etl("validate", DATA / "unknown_columns.csv")
    log = run.report_path().parent / "log.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    run_id = run.summary()["run_id"]
    assert events and all(e["run_id"] == run_id for e in events)
    assert any(e["level"] == "warning" and "Member Name" in e["event"] for e in events)


@pytest.mark.parametrize("block", [64, 97, 1 << 20])
def test_block_boundaries_do_not_change_rows_or_numbers(tmp_path, block):
    """Read in tiny blocks, with blank, ragged and multi-line rows across the boundaries, a file
    gives the same rows, numbers and messages as the csv module reading it in one go."""
    import csv

    from etl.read.reading import ReadOptions, open_table

    lines = ["CoworkerBookingCreditId,CreditUsed,Description"]
    for i in range(1, 60):
        if i % 7 == 0:
            lines.append("")
        elif i % 11 == 0:
            lines.append(f"{i},{i}")  # too few
        elif i % 13 == 0:
            lines.append(f"{i},{i},x,extra")  # too many
        elif i % 5 == 0:
            lines.append(f'{i},{i}.5,"two\nlines"')
        else:
            lines.append(f"{i},{i}.5,row {i}")
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    with open(path, newline="") as f:
        expected = [
            (n, (r + [""] * 3)[:3], len(r) != 3)
            for n, r in enumerate(csv.reader(f), start=1)
            if n > 1 and any(r)
        ]
    got = []
    for chunk in open_table(str(path), ReadOptions(block_bytes=block)).chunks():
        cells = [c.to_pylist() for c in chunk.columns]
        for i, n in enumerate(chunk.rows):
            got.append((int(n), [col[i] for col in cells], i in chunk.shape_errors))
    assert got == expected


def test_repeated_unknown_headers_are_all_kept(etl):
    run = etl("validate", DATA / "repeated_headers.csv")
    lines = run.report_path().read_text().splitlines()
    assert lines[0].endswith("CoworkerBookingCreditId,CreditUsed,Notes,Notes")
    assert lines[1].endswith('"first","second"')


def test_an_ambiguous_number_stays_refused_when_errors_csv_of_mixed_files_is_loaded_again(etl, tmp_path):
    """A ";" export and a "," one in one run: errors.csv, which can be in one dialect only, is
    ";"-separated, so 1.500 loaded again from it is still refused until --decimal says which
    (comma-separated, it was read as 1.5 without a word)."""
    (tmp_path / "eu.csv").write_text("CoworkerBookingCreditId;CreditUsed;Description\n1281;1.500;eu\n")
    (tmp_path / "us.csv").write_text("CoworkerBookingCreditId,CreditUsed,Description\n1203,x,us\n")
    run = etl("validate", tmp_path / "eu.csv", tmp_path / "us.csv")
    errors_csv = run.report_path().parent / "errors.csv"
    assert errors_csv.read_bytes().startswith(
        b"\xef\xbb\xbfCoworkerBookingCreditId;CreditUsed;Description;errors")
    again = etl("validate", errors_csv)
    assert [(r["CreditUsed"], r["outcome"]) for r in again.report()] == [
        ("1.500", "invalid"), ("x", "invalid")]
    assert "could be 1500" in again.report()[0]["errors"]
