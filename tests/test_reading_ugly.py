"""Real exports made the way Excel, LibreOffice, Google Sheets and other systems make them
(see tests/data/make_ugly.py): each reads right or stops with one clear line, exit 2."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA


def one_line_error(run, text: str) -> None:
    assert run.code == 2, run.out + run.err
    assert run.err.count("\n") == 1 and "Traceback" not in run.err, run.err
    assert text in run.err, run.err


@pytest.mark.parametrize("name, encoding, descriptions", [
    ("cp1251.csv", "cp1251", ["Встреча в офисе", "Переговорная комната"]),
    ("shift_jis.csv", "cp932", ["会議室の予約", "東京オフィス"]),
    ("mac_roman.csv", "mac_roman", ["Réunion à Genève", "Café crème"]),
    ("cp850.csv", "cp850", ["Réunion à Genève", "Größe Übung"]),
])
def test_legacy_code_pages_are_read_in_their_own_and_named(etl, name, encoding, descriptions):
    run = etl("validate", DATA / name)
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == descriptions
    assert f"reads as {encoding}" in run.err and f'e.g. "{descriptions[0].split()[0]}"' in run.err
    assert run.summary()["read"][0]["encoding"] == encoding
    assert f"({encoding}, \",\"; 2 rows)" in run.out


def test_one_bad_byte_in_utf8_is_a_file_problem_naming_row_and_byte(etl):
    run = etl("validate", DATA / "utf8_one_bad_byte.csv")
    one_line_error(run, "utf8_one_bad_byte.csv: row 4: byte 0xE9 at offset 85 is not valid UTF-8, "
                        "though the rest of the file is")
    assert not list(run.cwd.glob("logs/*/results.csv"))


def test_a_late_bad_byte_under_a_forced_encoding_stops_before_any_report(etl):
    run = etl("validate", DATA / "late_bad_byte.csv", "--encoding", "utf-8")
    one_line_error(run, "late_bad_byte.csv: row 40: byte 0xE9 at offset 542 is not valid utf-8; "
                        "leave out --encoding (it reads as cp1252)")
    assert not list(run.cwd.glob("logs/*/results.csv"))


@pytest.mark.parametrize("args", [(), ("--encoding", "utf-8"), ("--encoding", "utf-8-sig")])
def test_excel_csv_utf8_bom_never_leaks_into_the_header(etl, args):
    run = etl("validate", DATA / "excel_utf8_bom.csv", *args)
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == ["Café", "Naïve"]
    assert run.summary()["read"][0]["encoding"] == "UTF-8 with BOM"


def test_a_bom_contradicting_the_encoding_given_is_refused(etl):
    one_line_error(etl("validate", DATA / "excel_utf8_bom.csv", "--encoding", "cp1252"),
                   "starts with a UTF-8 byte-order mark, so it is not cp1252")


def test_utf16_without_bom(etl):
    run = etl("validate", DATA / "utf16le_no_bom.csv")
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == ["Café", "Naïve"]


def test_unterminated_quote_names_the_row_where_it_opened(etl):
    one_line_error(etl("validate", DATA / "unterminated_quote.csv"),
                   "unterminated_quote.csv: row 3: a quote opened in this row is never closed")


def test_line_break_in_a_quoted_header_keeps_row_numbers(etl):
    run = etl("validate", DATA / "header_line_break.csv")
    rows = run.report()
    assert [(r["row"], r["outcome"]) for r in rows] == [("2", "valid"), ("3", "invalid"), ("4", "valid")]
    assert rows[1]["errors"] == 'CreditUsed: "abc" is not a number'


@pytest.mark.parametrize("name, delimiter", [
    ("tsv_commas_in_header.csv", "\t"), ("semicolon_break_first_cell.csv", ";"), ("sep_line.csv", ";"),
])
def test_sniffer_ignores_quoted_text_and_honours_sep(etl, name, delimiter):
    run = etl("validate", DATA / name, "--decimal", ",")
    assert run.code == 0, run.err
    rows = run.report()
    assert [(r["row"], list(r.values())[7]) for r in rows] == [("2", "101"), ("3", "102")]
    assert run.summary()["read"][0]["delimiter"] == delimiter


def test_header_only_without_final_newline_is_zero_rows(etl):
    run = etl("validate", DATA / "header_only_no_newline.csv")
    assert run.code == 0, run.err
    assert run.report() == [] and run.summary()["rows"] == 0


def test_thousands_separator_is_named(etl):
    rows = etl("validate", DATA / "thousands.csv", "--decimal", ",").report()
    assert rows[0]["errors"] == 'CreditUsed: "1.234,50" has a thousands separator ("."); write it as 1234,50'
    assert rows[1]["outcome"] == "valid"


def test_invisible_characters_are_named(etl):
    rows = etl("validate", DATA / "nbsp.csv").report()
    assert rows[0]["errors"] == 'CreditUsed: "2.5<NBSP>" is not a number'


def test_report_columns_cannot_be_shadowed(etl):
    run = etl("validate", DATA / "report_names.csv")
    header = run.report_path().read_text().splitlines()[0]
    assert header == ("source,row,outcome,id,http_status,attempts,errors,id (input),CoworkerBookingCreditId,"
                      "CreditUsed,errors (input),Outcome (input),\"'=HYPERLINK(\"\"x\"\")\"")
    row = run.report()[0]
    assert (row["id"], row["id (input)"], row["errors"], row["errors (input)"]) == ("", "7", "", "none")
    assert 'input column "id" is "id (input)" in the report' in run.err


@pytest.mark.parametrize("name, what", [
    ("workbook_named.csv", "is an Excel workbook, not CSV; rename it to .xlsx"),
    ("ods_named.csv", "is an OpenDocument spreadsheet (.ods), not CSV"),
    ("gzip_named.csv", "is gzip-compressed, not CSV"),
])
def test_binary_files_are_named_by_their_content(etl, name, what):
    run = etl("validate", DATA / name)
    one_line_error(run, f"{name}: {what}")
    assert len(run.err) < 200


def test_xlsx_dimension_that_understates_the_sheet_loses_no_row(etl):
    run = etl("validate", DATA / "dimension_a1.xlsx")
    assert run.code == 0, run.err
    assert [r["row"] for r in run.report()] == [str(n) for n in range(2, 12)]


def test_xlsx_hidden_first_sheet_is_not_read_unless_named(etl):
    run = etl("validate", DATA / "hidden_first_sheet.xlsx")
    assert [r["CoworkerBookingCreditId"] for r in run.report()] == ["101", "102"]
    assert run.summary()["read"][0]["sheet"] == "Uses"
    assert '(sheet "Uses"; 2 rows)' in run.out
    run = etl("validate", DATA / "hidden_first_sheet.xlsx", "--sheet", "Old copy")
    assert [r["CoworkerBookingCreditId"] for r in run.report()] == ["999"]
    assert "worksheet 'Old copy' is hidden; read as asked" in run.err


@pytest.mark.parametrize("name, args, text", [
    ("chart_sheet.xlsx", ("--sheet", "Chart"),
     "sheet 'Chart' is a chart sheet, not a worksheet of rows; "
     "its sheets are: \"Uses\", \"Chart\" (chart sheet)"),
    ("truncated_sheet.xlsx", (), 'worksheet "Sheet" is damaged and can\'t be read'),
    ("text_in_number_cell.xlsx", (), 'worksheet "Sheet" is damaged and can\'t be read'),
    ("empty_active_sheet.xlsx", (),
     'worksheet "Notes" is empty: no header row; the other sheets are: "Uses" (pass --sheet NAME)'),
    ("damaged_sheet_stream.xlsx", (),
     'worksheet "Sheet" is damaged and can\'t be read (its XML does not decompress: Error -3'),
    ("row_number_text.xlsx", (), 'worksheet "Sheet" is damaged and can\'t be read'),
])
def test_xlsx_problems_are_one_line(etl, name, args, text):
    one_line_error(etl("validate", DATA / name, *args), f"{name}: {text}")


def test_xlsx_numbers_are_numbers_whatever_the_decimal_mark(etl):
    rows = etl("validate", DATA / "formula_noise.xlsx").report()
    assert [r["CreditUsed"] for r in rows] == ["0.3", "2.25", "1,5"]
    assert [r["outcome"] for r in rows] == ["valid", "valid", "invalid"]
    run = etl("validate", DATA / "formula_noise.xlsx", "--decimal", ",")
    assert run.code == 0, run.err
    assert [r["CreditUsed"] for r in run.report()] == ["0.3", "2.25", "1,5"]


def test_options_that_do_not_apply_are_named(etl):
    run = etl("validate", DATA / "chart_sheet.xlsx", "--delimiter", ";", "--encoding", "cp1252")
    assert run.code == 0
    assert "--delimiter applies to CSV files only; ignored for this workbook" in run.err
    assert "--encoding applies to CSV files only" in run.err
    run = etl("validate", DATA / "tab.csv", "--sheet", "Uses")
    assert "--sheet applies to workbooks only; ignored for this CSV file" in run.err


def test_summary_names_what_was_read(etl):
    run = etl("validate", DATA / "cp1252.csv", DATA / "hidden_first_sheet.xlsx")
    read = run.summary()["read"]
    assert read == [
        {"path": str(DATA / "cp1252.csv"), "format": "csv", "encoding": "cp1252", "delimiter": ",",
         "rows": 2, "notes": [
             'not UTF-8 (byte 0xE9 on line 2); its accented text reads as cp1252 (Windows Western '
             'European), e.g. "Naïve"; cp1250 would read "Naďve"; pass --encoding if that is wrong']},
        {"path": str(DATA / "hidden_first_sheet.xlsx"), "format": "xlsx", "sheet": "Uses", "rows": 2,
         "notes": ['other sheets hold data and were not read: "Old copy" (hidden) '
                   "(pass --sheet NAME to read one)"]},
    ]


def _straddling(tmp_path, tail: bytes):
    """A UTF-8 export of over a mebibyte (the encoding check reads it in blocks of one) whose
    row 2 holds TAIL starting one byte before the block's end, so a character is cut in two."""
    head = b"CoworkerBookingCreditId,CreditUsed,Description\n"
    first = b"1,1.5,"
    pad = (1 << 20) - 1 - len(head) - len(first)
    body = head + first + b"x" * pad + tail + b"\n" + b"".join(b"2,2.5,row %d\n" % i for i in range(3, 40))
    path = tmp_path / "big.csv"
    path.write_bytes(body)
    return path, len(head) + len(first) + pad


def test_a_character_cut_by_the_encoding_checks_block_is_read_whole(etl, tmp_path):
    path, at = _straddling(tmp_path, "é€😀 done".encode())
    run = etl("validate", path)
    assert run.code == 0, run.err
    rows = run.report()
    assert rows[0]["Description"].endswith("xé€😀 done") and len(rows) == 38


def test_a_bad_byte_just_past_the_encoding_checks_block_is_found_where_it_is(etl, tmp_path):
    path, at = _straddling(tmp_path, b"\xc3\xa9\xe9 bad")
    run = etl("validate", path)
    one_line_error(run, f"big.csv: row 2: byte 0xE9 at offset {at + 2} is not valid UTF-8, "
                        "though the rest of the file is")


def test_a_file_that_ends_inside_a_character_is_not_valid_utf8(etl, tmp_path):
    path = tmp_path / "cut.csv"
    path.write_bytes(b"CoworkerBookingCreditId,CreditUsed,Description\n1,1.5,Caf" + b"\xc3")
    run = etl("validate", path)
    one_line_error(run, "cut.csv: row 2: byte 0xC3 at offset 56 is not valid UTF-8")


def test_an_unterminated_quote_is_found_whatever_the_number_of_quotes(etl):
    run = etl("validate", DATA / "quote_swallows_even.csv")
    one_line_error(run, "quote_swallows_even.csv: row 3: a quote opened in this row is never closed")


def test_a_quoted_line_break_at_the_end_of_the_file_still_reads(etl, tmp_path):
    path = tmp_path / "ends_in_a_note.csv"
    path.write_bytes(b'CoworkerBookingCreditId,CreditUsed,Description\r\n101,1,27" monitor\r\n'
                     b'102,1,"two\r\nlines"\r\n')
    run = etl("validate", path)
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == ['27" monitor', "two\r\nlines"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("shift", [-1, 0, 1])
def test_a_crlf_in_a_quoted_cell_reads_whole_wherever_the_read_blocks_fall(etl, tmp_path, shift, encoding):
    """Text typed into a web form (CR LF inside quotes) in an export of over a mebibyte, the CR
    falling on the last character of the reader's first block (shift 0) or beside it."""
    head = "CoworkerBookingCreditId,CreditUsed,Description\r\n"
    first, cell = "101,1,", '102,1,"two\r\nlines"\r\n'
    fill = (1 << 20) - 1 + shift - len(first) - 2 - len('102,1,"two')
    body = first + "x" * fill + "\r\n" + cell + "".join(f"{i},1,row\r\n" for i in range(103, 120))
    assert body.index("two\r") + 3 == (1 << 20) - 1 + shift
    path = tmp_path / "web_form.csv"
    path.write_bytes((head + body).encode(encoding))
    run = etl("validate", path)
    assert run.code == 0, run.err
    rows = run.report()
    assert rows[1]["Description"] == "two\r\nlines" and len(rows) == 19


def test_excel_error_cells_are_invalid_cells_named_as_such(etl):
    run = etl("validate", DATA / "excel_errors.xlsx")
    assert run.code == 1, run.err
    rows = run.report()
    assert [(r["row"], r["outcome"], r["errors"]) for r in rows] == [
        ("2", "invalid", "BookingId: the cell holds Excel's #N/A"),
        ("3", "invalid", "CreditUsed: the cell holds Excel's #DIV/0!"),
        ("4", "invalid", "CoworkerBookingCreditId: the cell holds Excel's #REF! | CreditUsed: the cell "
                         "holds Excel's #VALUE! | Description: the cell holds Excel's #NAME? | "
                         "BookingId: the cell holds Excel's #NUM!"),
        ("5", "invalid", "Description: the cell holds Excel's #NULL!"),
        ("6", "valid", ""),
    ]
    assert [r["BookingId"] for r in rows] == ["#N/A", "5", "#NUM!", "7", "9"]
    assert rows[4]["Notes"] == "#N/A"  # shown as it is, but Notes is never sent


@pytest.mark.parametrize("name", ["formula_without_value.xlsx", "formula_xlsxwriter.xlsx"])
def test_a_formula_saved_without_its_value_is_never_read_as_blank_or_0(etl, name):
    run = etl("validate", DATA / name)
    assert run.code == 1, run.err
    rows = run.report()
    assert [(r["outcome"], r["errors"]) for r in rows] == [
        ("invalid", "CreditUsed: the cell holds a formula (=0.5*3) saved without its value; open the "
                    "workbook in Excel or LibreOffice and save it again, so that the value is saved too"),
        ("valid", ""),
    ]


def test_a_formula_with_its_computed_value_reads_as_the_value(etl):
    rows = etl("validate", DATA / "formula_noise.xlsx").report()
    assert rows[0]["CreditUsed"] == "0.3" and rows[0]["outcome"] == "valid"


@pytest.mark.parametrize("name, named", [
    ("gbk.csv", 'gb18030 reads "会议室预约"'),
    ("big5.csv", "reads as big5 (Big5, Chinese)"),
    ("euc_kr.csv", 'euc_kr reads "회의실"'),
    ("koi8_r.csv", "reads as koi8-r (KOI8-R, Russian)"),
    ("greek_cp1253.csv", "reads as cp1253 (Windows Greek)"),
    ("hebrew_cp1255.csv", 'cp1255/iso8859-8 reads "חדר"'),
    ("thai_cp874.csv", "reads as cp874 (Thai)"),
    ("iso8859_2.csv", 'reads as iso8859-2 (ISO 8859-2, Central European), e.g. "Łodzi"'),
])
def test_a_code_page_etl_does_not_read_is_refused_with_the_way_on(etl, name, named):
    """These read as mac_roman, cp1252, cp850 or cp1251 with a warning and exit 0 before."""
    run = etl("validate", DATA / name)
    one_line_error(run, named)
    assert "--encoding" in run.err
    assert not list(run.cwd.glob("logs/*/results.csv"))


def test_a_refused_code_page_reads_when_named(etl):
    run = etl("validate", DATA / "koi8_r.csv", "--encoding", "koi8-r")
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == ["Встреча в офисе", "Переговорная комната"]


@pytest.mark.parametrize("name, encoding, description", [
    ("cp1250_one_word.csv", "cp1250", "Gdańsk"),  # read as cp1252 "Gdañsk" before
    ("cp850_one_word.csv", "cp850", "Café"),  # read as cp1252 "Caf‚" before
])
def test_one_word_in_a_code_page_is_read_in_it(etl, name, encoding, description):
    run = etl("validate", DATA / name)
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == [description]
    assert run.summary()["read"][0]["encoding"] == encoding


def test_a_file_mixing_utf8_and_cp1252_lines_is_refused(etl):
    run = etl("validate", DATA / "utf8_and_cp1252.csv")
    one_line_error(run, 'mixes two encodings: line 2 is UTF-8 ("Réunion"), line 4 is cp1252 ("Crème")')


def test_the_whole_file_decides_its_code_page(etl, tmp_path):
    """Accented text only after the first 4 MB (a DOS export whose first rows are plain)."""
    plain = "".join(f"{i},1,Meeting room {i}\n" for i in range(1, 250_000))
    assert len(plain) > 4 << 20
    path = tmp_path / "late_accents.csv"
    path.write_bytes(("CoworkerBookingCreditId,CreditUsed,Description\n" + plain
                      + "250000,1,Größe Übung\n").encode("cp850"))
    run = etl("validate", path)
    assert run.code == 0, run.err
    assert run.summary()["read"][0]["encoding"] == "cp850"
    assert "reads as cp850" in run.err and "line 250001" in run.err


def test_text_both_western_and_central_european_reads_as_cp1252_and_says_so(etl):
    run = etl("validate", DATA / "cp1252.csv")
    assert run.code == 0, run.err
    assert 'reads as cp1252 (Windows Western European), e.g. "Naïve"; cp1250 would read "Naďve"' in run.err


def test_a_short_export_valid_as_utf8_by_chance_is_not_read_as_utf8(etl):
    """GBK's 预约 is valid UTF-8 (ԤԼ): it was read as UTF-8 with exit 0."""
    one_line_error(etl("validate", DATA / "gbk_valid_utf8.csv"),
                   'is valid UTF-8, but its text reads unnaturally so ("ԤԼ"), and naturally in another '
                   'encoding (gb18030 reads "预约"')


def test_what_a_workbook_shows_otherwise_is_said_on_the_terminal_in_summary_and_json(etl):
    """Rows hidden by a filter, merged cells, another sheet with data and a column taken by one
    of its other names were read with no word before."""
    notes = ["rows 6, 7 are hidden in the workbook (the sheet has a filter) and were read all the "
             "same: check them in the report",
             "merged cells C3:C4: only the first cell of each holds the value; the others read as blank",
             'other sheets hold data and were not read: "Totals" (pass --sheet NAME to read one)',
             'column "Amount" is read as CreditUsed (one of its names)']
    run = etl("validate", DATA / "filtered_merged.xlsx")
    assert run.code == 0, run.err
    for note in notes[:3]:
        assert f"filtered_merged.xlsx: {note}" in run.err
    assert notes[3] not in run.err  # a column's other name is by design: said, not warned of
    assert run.summary()["read"][0]["notes"] == notes
    run = etl("validate", DATA / "filtered_merged.xlsx", "--json")
    assert json.loads(run.out)["read"][0]["notes"] == notes


@pytest.mark.parametrize("name, descriptions", [
    ("utf32.csv", ["Встреча в офисе", "Café"]),
    ("utf16le_cyrillic_no_bom.csv", [f"Переговорная комната {i}" for i in range(40)]),
])
def test_utf32_and_utf16_without_bom_in_another_script_are_read(etl, name, descriptions):
    """Both were refused as "not a text file"."""
    run = etl("validate", DATA / name)
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == descriptions


@pytest.mark.parametrize("name, text", [
    ("xlsx_named.xls", "xlsx_named.xls: is an .xlsx workbook named .xls: rename it to .xlsx"),
    ("html_named.xls", "html_named.xls: is not a readable .xls workbook: it is a web page"),
    ("csv_named.xlsx", "csv_named.xlsx: is not a readable .xlsx workbook: it is a text file (CSV?); "
                       "if it is CSV, rename it to .csv"),
    ("binary.xlsb", "binary.xlsb: is an Excel binary workbook (.xlsb), which etl does not read: save it "
                    "as .xlsx or CSV"),
])
def test_a_file_named_as_a_workbook_is_refused_for_what_it_is(etl, name, text):
    """They were called "old .xls", "invalid Zip archive: Could not find EOCD", or told to be
    renamed to .xlsx."""
    run = etl("validate", DATA / name)
    one_line_error(run, text)
    assert "EOCD" not in run.err


def test_a_workbook_of_many_sheets_is_refused_in_a_short_line(etl, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    for i in range(300):
        book.create_sheet(f"Month {i:03d} of the old bookings")
    path = tmp_path / "many.xlsx"
    book.save(path)
    run = etl("validate", path, "--sheet", "Uses")
    one_line_error(run, "has no worksheet 'Uses'; it has: \"Sheet\", \"Month 000 of the old bookings\"")
    assert ", and 291 more" in run.err and len(run.err) < 700


def test_spaces_at_the_edges_of_rich_text_runs_are_kept(etl):
    """calamine drops them where the workbook lacks xml:space="preserve": "MeetingroomB"."""
    run = etl("validate", DATA / "rich_text_spaces.xlsx")
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == ["Meeting room B"]


def test_padded_strings_with_escapes_read_as_excel_shows_them(etl):
    """Shared strings padded with spaces (no xml:space="preserve") and HTML-escaped, as hand-rolled
    exporters write them: read with their spaces, and with `&#x27;` `&quot;` `&#39;` `&apos;` as
    the characters they stand for (before, the spaces were kept and the escapes sent as typed)."""
    run = etl("validate", DATA / "padded_entities.xlsx")
    assert run.code == 0, run.err
    assert [r["Description"] for r in run.report()] == [
        "O'Brien booking   ", ' Room "A" ', "Tea & coffee 'n' cake "]


def test_attributes_in_single_quotes_hide_no_error_cell(etl):
    """`t='e'` is `t="e"`: the #N/A and the formula saved without its value are invalid cells, not
    a row without a booking (before: both rows valid, BookingId blank)."""
    run = etl("validate", DATA / "single_quoted.xlsx")
    assert run.code == 1, run.err
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["valid", "invalid", "invalid"]
    assert rows[1]["errors"] == "BookingId: the cell holds Excel's #N/A"
    assert rows[2]["errors"].startswith("BookingId: the cell holds a formula (=VLOOKUP(A4,Bookings!A:B,2,0)) "
                                        "saved without its value")


def test_a_formula_whose_value_is_empty_text_is_an_empty_cell(etl):
    """Excel saves `=IF(D2="","",D2)` typed text with an empty value: known, and empty (before:
    "saved without its value; save it again", which no saving mends)."""
    run = etl("validate", DATA / "formula_empty_text.xlsx")
    assert run.code == 0, run.err
    assert [(r["outcome"], r["Description"]) for r in run.report()] == [("valid", ""), ("valid", "use 2")]


def test_an_error_cell_of_a_large_sheet_without_row_numbers_stays_on_its_row(etl, tmp_path):
    """A sheet of rows without `r` (streaming writers), larger than one block of the scan, whose
    cells say "row ": each #N/A is on its own row (before: the rows after the first block were
    not counted, and the errors landed on other rows)."""
    import zipfile

    import openpyxl
    book = openpyxl.Workbook()
    book.active.append(["CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId"])
    path = tmp_path / "streamed.xlsx"
    book.save(path)
    rows = ['<row><c t="inlineStr"><is><t>CoworkerBookingCreditId</t></is></c><c t="inlineStr"><is><t>'
            'CreditUsed</t></is></c><c t="inlineStr"><is><t>Description</t></is></c><c t="inlineStr">'
            '<is><t>BookingId</t></is></c></row>']
    errors = {70_001, 70_500, 79_999}
    for n in range(2, 80_001):
        booking = '<c t="e"><v>#N/A</v></c>' if n in errors else f"<c><v>{n}</v></c>"
        rows.append(f'<row><c><v>5</v></c><c><v>1</v></c><c t="inlineStr"><is><t>Back row desk</t></is></c>'
                    f"{booking}</row>")
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    head = sheet[: sheet.index(b"<sheetData")]
    body = "<sheetData>" + "".join(rows) + "</sheetData></worksheet>"
    parts["xl/worksheets/sheet1.xml"] = head + body.encode()
    assert len(parts["xl/worksheets/sheet1.xml"]) > 2 * (4 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)
    run = etl("validate", path, "-q")
    assert run.code == 1, run.err
    invalid = [(int(r["row"]), r["errors"]) for r in run.report() if r["outcome"] != "valid"]
    assert invalid == [(n, "BookingId: the cell holds Excel's #N/A") for n in sorted(errors)]


def test_ids_of_round_thousands_with_a_decimal_comma_are_never_read_as_units(etl):
    """Where the decimal mark is ",", "5.000" is five thousand written with a thousands separator:
    refused and named, as amounts are, never read as 5 (before: credit 5 and booking 12 were sent);
    "7004,0" is 7004, as Excel's "7004.0" is where the mark is "."."""
    run = etl("validate", DATA / "decimal_comma_ids.csv", "--decimal", ",")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["invalid", "valid", "valid"]
    assert rows[0]["errors"] == ('CoworkerBookingCreditId: "5.000" has a thousands separator ("."); write it '
                                 'as 5000 | BookingId: "12.000" has a thousands separator ("."); write it as '
                                 '12000')


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "idna", "punycode", "unicode_escape"])
def test_an_encoding_that_is_no_character_set_is_one_line(etl, codec):
    """Python's codecs that turn bytes into bytes (rot13, base64) or read escapes and domain names:
    refused in one line, exit 2 (before: a traceback, or a file read as something else)."""
    one_line_error(etl("validate", DATA / "crlf.csv", "--encoding", codec),
                   f"crlf.csv: unknown encoding '{codec}': pass a character set such as utf-8")


def test_cp1252_that_happens_to_be_valid_utf8_is_not_read_as_utf8(etl):
    """"NESCAFÉ®" saved by Windows is NESCAFɮ read as UTF-8: Latin letters, but no language's.
    Refused, naming the code page that reads it naturally (before: sent as NESCAFɮ, no word);
    read right once named."""
    run = etl("validate", DATA / "cp1252_valid_utf8.csv")
    one_line_error(run, 'is valid UTF-8, but its text reads unnaturally so ("NESCAFɮ"), and naturally in '
                        'another encoding (cp1252 reads "NESCAFÉ®")')
    named = etl("validate", DATA / "cp1252_valid_utf8.csv", "--encoding", "cp1252")
    assert [r["Description"] for r in named.report()] == ["NESCAFÉ® capsules", "CAFÉ–BAR catering"]


def test_xlsx_escapes_of_an_emoji_and_spaced_attributes(etl, tmp_path):
    """Excel writes a character beyond the BMP in a padded string as two escapes (_xD83D__xDE00_):
    one character, and half of one alone is no character (before: a traceback); `t = "e"`, spaced
    as XML allows, is an error cell like `t="e"` (before: read as a blank BookingId)."""
    import zipfile

    import openpyxl
    book = openpyxl.Workbook()
    book.active.append(["CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId"])
    book.active.append([101, 1, "x", 7])
    book.active.append([102, 1, "y", 8])
    path = tmp_path / "escapes.xlsx"
    book.save(path)
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    sheet = sheet.replace(b"<is><t>x</t></is>", b"<is><t> smile _xD83D__xDE00_ and _xD83D_ </t></is>")
    sheet = sheet.replace(b'<c r="D3" t="n"><v>8</v></c>', b'<c r="D3" t = "e"><v>#N/A</v></c>')
    parts["xl/worksheets/sheet1.xml"] = sheet
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)
    run = etl("validate", path)
    assert "Traceback" not in run.err
    rows = run.report()
    assert rows[0]["Description"] == " smile \U0001f600 and \ufffd "
    assert (rows[1]["outcome"], rows[1]["errors"]) == ("invalid", "BookingId: the cell holds Excel's #N/A")


def test_a_header_with_an_invisible_character_is_named_so_in_the_warning(etl, tmp_path):
    """"BookingId" with a zero-width space inside is not the schema's BookingId: the warning that
    its column is not sent names the character, never prints it raw (it read "BookingId is not
    in the schema", and the operator could not see why)."""
    path = tmp_path / "export.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Booking\u200bId\n1,1,5\n", encoding="utf-8")
    run = etl("validate", path)
    assert run.code == 0
    assert 'never sent: "Booking<ZWSP>Id"' in run.err and "\u200b" not in run.err


def test_a_trailing_delimiter_loses_nothing_and_refuses_nothing(etl):
    """Exports that end rows (or only the header) with a delimiter: the empty cells past the
    header, or the header's unnamed last column a row stops before, hold nothing, and the rows
    are read (before: every such row refused, "has 4 values but the header has 3 columns"). A
    cell with something in it past the header still refuses its row: a shifted row is never
    guessed."""
    rows = etl("validate", DATA / "trailing_delimiter_rows.csv").report()
    assert [r["outcome"] for r in rows] == ["valid", "valid", "valid", "invalid", "invalid"]
    assert rows[1]["Description"] == "Room B, east"
    assert rows[3]["errors"] == 'row: has 4 values but the header has 3 columns (extra: "q")'
    # a value more than the file's rows have as a rule: one was added somewhere, cells shifted
    assert rows[4]["errors"].startswith("row: has 5 values but the header has 3 columns")
    run = etl("validate", DATA / "trailing_delimiter_header.csv")
    rows = run.report()
    # a value in the header's unnamed column, where no other row has one: a value more somewhere
    assert [r["outcome"] for r in rows] == ["valid", "valid", "invalid", "valid"]
    assert rows[2]["errors"].startswith("row: has 4 values where the file's rows have 3 (a value more")
    assert "never sent: one without a name" in run.err


def test_a_row_a_value_short_among_rows_that_end_with_a_delimiter_is_never_read_shifted(etl, tmp_path):
    """Every line of the export ends with a delimiter, header included; one row lost an empty
    cell in a hand edit: its invoice line 51001 would be read as BookingId. It is refused, as
    any ragged row is (before: read shifted and posted as a use of booking 51001)."""
    run = etl("validate", DATA / "trailing_delimiter_one_row_short.csv")
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["valid", "invalid", "valid"]
    assert rows[1]["errors"].startswith("row: has 5 values but the header has 6 columns")
    assert rows[2]["CoworkerInvoiceLineId"] == "7302" and rows[0]["BookingId"] == "880000"
    # the rows end with a delimiter, the header does not: the row with the header's count of
    # values is the one a value short (before: read shifted, the two others refused)
    rows = etl("validate", DATA / "trailing_delimiter_rows_one_short_to_header.csv").report()
    assert [r["outcome"] for r in rows] == ["valid", "invalid", "valid"]
    assert rows[1]["errors"].startswith("row: has 6 values where the file's rows have 7 (a value missing")
    # a blank line among such rows is no row (before this was right, a rule made it one)
    (tmp_path / "blank.csv").write_bytes(b"CoworkerBookingCreditId,CreditUsed\r\n\r\n1,1,\r\n2,1,\r\n")
    assert [r["outcome"] for r in etl("validate", tmp_path / "blank.csv").report()] == ["valid", "valid"]


def test_a_column_taken_by_another_name_is_said_when_columns_beside_it_are_not_sent(etl, tmp_path):
    """`Amount` is one of CreditUsed's names; beside a `Credits` column that is not sent, which
    of the two was taken is said on the terminal with the warning (before: only "Credits is not
    sent", and 30.00 of money was posted as 30 credits without a word of Amount)."""
    path = tmp_path / "export.csv"
    path.write_text("CoworkerBookingCreditId,Credits,Amount,Description\n101,2,30.00,x\n", encoding="utf-8")
    run = etl("validate", path)
    assert 'export.csv: column "Amount" is read as CreditUsed (one of its names)' in run.err
    assert 'never sent: "Credits"' in run.err


@pytest.fixture
def sandbox():
    from etl.sandbox import Faults, Sandbox

    with Sandbox(faults=Faults(retry_after=0), tokens=("test-token-not-a-real-one-0002",)) as box:
        yield box


def _import(etl, sandbox, path):
    return etl("import", path, "--api-url", sandbox.url, "--rate", "1000",
               "--token", "test-token-not-a-real-one-0002", "--no-check-credits",
               env={"NEXUDUS_TOKEN": None, "NEXUDUS_USERNAME": None, "NEXUDUS_PASSWORD": None,
                    "NEXUDUS_API_URL": None})


@pytest.mark.parametrize("name", ["strict_ooxml.xlsx", "part_name_case.xlsx"])
def test_a_strict_workbook_or_one_whose_sheet_is_named_in_another_case_has_its_errors_found(etl, name):
    """Excel's "Strict Open XML Spreadsheet", and a sheet stored as Sheet1.xml where its
    relationship says sheet1.xml: calamine reads both, etl's own read of the sheet found
    nothing in them, so the #N/A read as a blank BookingId and the hidden row went unsaid
    (before: exit 0, both rows valid, no note)."""
    run = etl("validate", DATA / name)
    assert run.code == 1, run.err
    assert [(r["outcome"], r["errors"], r["BookingId"]) for r in run.report()] == [
        ("invalid", "BookingId: the cell holds Excel's #N/A", "#N/A"), ("valid", "", "7")]
    assert f"{name}: row 3 is hidden in the workbook and was read all the same" in run.err


def test_a_strict_workbook_never_posts_an_error_cell_as_a_blank(etl, sandbox):
    """(before: both rows created, the first without its BookingId)"""
    run = _import(etl, sandbox, DATA / "strict_ooxml.xlsx")
    assert run.code == 1, run.err
    assert [r["outcome"] for r in run.report()] == ["invalid", "created"]
    assert [(r["CoworkerBookingCreditId"], r["BookingId"]) for r in sandbox.store.records()] == [(102, 7)]


def test_cell_names_in_lower_case_put_an_error_cell_in_its_own_column(etl):
    """`r="d2"` is D2, as calamine reads it (before: the #N/A landed in the empty Notes column,
    never sent, and BookingId read blank: a valid row)."""
    run = etl("validate", DATA / "lowercase_refs.xlsx")
    assert run.code == 1, run.err
    rows = run.report()
    assert [(r["outcome"], r["errors"]) for r in rows] == [
        ("invalid", "BookingId: the cell holds Excel's #N/A"), ("valid", "")]
    assert (rows[0]["Notes"], rows[0]["BookingId"]) == ("", "#N/A")


def test_a_workbook_whose_sheet_etl_cannot_check_is_refused_and_nothing_is_sent(etl, sandbox):
    """A sheet list whose `r:id` prefix is never declared: calamine reads the values, etl's own
    read of the sheet can't find the sheet, so its #N/A can't be told from a blank. Refused in
    one line, with the way on (before: exit 0, the #N/A row created without its BookingId)."""
    text = ('undeclared_prefix.xlsx: worksheet "Uses" could not be checked for error cells (#N/A, ...) '
            "and hidden rows (its part xl/workbook.xml is not XML that can be read: unbound prefix")
    way_on = ("so it is not read: open the workbook in Excel and save it as an Excel Workbook (.xlsx), "
              "or export it to CSV")
    run = etl("validate", DATA / "undeclared_prefix.xlsx")
    one_line_error(run, text)
    assert way_on in run.err
    run = _import(etl, sandbox, DATA / "undeclared_prefix.xlsx")
    one_line_error(run, text)
    assert sandbox.store.records() == [] and sandbox.stats.posts == 0


def test_hidden_columns_of_the_table_are_said_on_the_terminal_in_summary_and_json(etl):
    """BookingId hidden, Notes at no width: read and sent all the same, now said as hidden rows
    are; the columns hidden past the table are not read, so not named (before: no word)."""
    note = ('columns C ("BookingId"), E ("Notes") are hidden in the workbook and were read all the '
            "same: check them in the report")
    run = etl("validate", DATA / "hidden_columns.xlsx")
    assert run.code == 0, run.err
    assert f"hidden_columns.xlsx: {note}" in run.err
    assert [r["BookingId"] for r in run.report()] == ["880001", "880002"]
    assert run.summary()["read"][0]["notes"] == [note]
    run = etl("validate", DATA / "hidden_columns.xlsx", "--json")
    assert json.loads(run.out)["read"][0]["notes"] == [note]
