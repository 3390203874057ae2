"""Makes the ugly exports in this folder the way the programs that write them do (run it from
anywhere: `python tests/data/make_ugly.py`). The files are checked in; this says how each was made.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent
HEAD = "CoworkerBookingCreditId,CreditUsed,Description"


def write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)


def rows(*descriptions: str, sep: str = ",", newline: str = "\n") -> str:
    lines = [HEAD.replace(",", sep)]
    lines += [f"{101 + i}{sep}1{sep}{d}" for i, d in enumerate(descriptions)]
    return newline.join(lines) + newline


def patched(book: openpyxl.Workbook, name: str, fix: dict[str, callable],
            extra: dict[str, bytes] | None = None) -> None:
    """Save BOOK, then rewrite some of its parts (and add EXTRA ones) as other generators do."""
    buffer = io.BytesIO()
    book.save(buffer)
    source = zipfile.ZipFile(buffer)
    with zipfile.ZipFile(HERE / name, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.namelist():
            data = source.read(item)
            if item in fix:
                data = fix[item](data)
            out.writestr(item, data)
        for item, data in (extra or {}).items():
            out.writestr(item, data)


#: the parts that declare a workbook's shared strings (openpyxl writes inline strings only)
SHARED_STRINGS = {
    "[Content_Types].xml": lambda d: d.replace(
        b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                     b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'),
    "xl/_rels/workbook.xml.rels": lambda d: d.replace(
        b"</Relationships>", b'<Relationship Id="rIdSS" Type="http://schemas.openxmlformats.org/'
                             b'officeDocument/2006/relationships/sharedStrings" '
                             b'Target="sharedStrings.xml"/></Relationships>'),
}


def uses_sheet(sheet, n: int = 2) -> None:
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description"])
    for i in range(n):
        sheet.append([101 + i, 1.5, f"use {i + 1}"])


def main() -> None:
    # a UTF-8 export with one byte of cp1252 pasted into row 4
    write("utf8_one_bad_byte.csv",
          rows("Réunion", "Genève", "Caf\udce9 noir").encode("utf-8", "surrogateescape"))
    # legacy code pages, as old Windows, Japanese, Mac and DOS programs save them
    write("cp1251.csv", rows("Встреча в офисе", "Переговорная комната").encode("cp1251"))
    write("shift_jis.csv", rows("会議室の予約", "東京オフィス").encode("shift_jis"))
    write("mac_roman.csv", rows("Réunion à Genève", "Café crème").encode("mac_roman"))
    write("cp850.csv", rows("Réunion à Genève", "Größe Übung").encode("cp850"))
    # Excel's "CSV UTF-8": a BOM and CRLF
    write("excel_utf8_bom.csv", b"\xef\xbb\xbf" + rows("Café", "Naïve", newline="\r\n").encode())
    # UTF-16 without a BOM (some database exports)
    write("utf16le_no_bom.csv", rows("Café", "Naïve").encode("utf-16-le"))
    # a quote opened in row 3 and never closed
    write("unterminated_quote.csv",
          (HEAD + '\n101,1,fine\n102,1,"oops\n103,1,swallowed\n104,1,too\n').encode())
    # a line break inside a quoted header cell (Excel: Alt+Enter in a header)
    write("header_line_break.csv",
          b'CoworkerBookingCreditId,"Credit\nUsed",Description\n101,1,a\n102,abc,b\n103,1,c\n')
    # a TSV whose header text has commas (Google Sheets' TSV does not quote them)
    write("tsv_commas_in_header.csv",
          b"CoworkerBookingCreditId\tCreditUsed\tNotes (room, floor, desk)\n"
          b"101\t1\tA, 1, 2\n102\t2\tB, 3, 4\n")
    # a ; file whose first cell has a quoted line break (LibreOffice)
    write("semicolon_break_first_cell.csv",
          b'"Coworker Booking\nCredit Id";CreditUsed;Description\n101;1,5;a, b\n102;2;c, d\n')
    # Excel's sep= first line
    write("sep_line.csv", b"sep=;\r\n" + rows("a, b", "c", sep=";", newline="\r\n").encode())
    # a header and nothing else, not even a final line break
    write("header_only_no_newline.csv", HEAD.encode())
    # European numbers with a thousands separator
    write("thousands.csv", b"CoworkerBookingCreditId;CreditUsed\n101;1.234,50\n102;2,5\n")
    # a number with a no-break space (pasted from a web page)
    write("nbsp.csv", "CoworkerBookingCreditId,CreditUsed\n101,2.5\u00a0\n102,3\n".encode())
    # input columns named like the report's own, and a formula as a header
    write("report_names.csv", b"id,CoworkerBookingCreditId,CreditUsed,errors,Outcome,=HYPERLINK(\"x\")\n"
                              b"7,101,1,none,fine,y\n")
    # a workbook, an .ods, a gzip file, all named .csv
    buffer = io.BytesIO()
    book = openpyxl.Workbook()
    uses_sheet(book.active)
    book.save(buffer)
    write("workbook_named.csv", buffer.getvalue())
    ods = io.BytesIO()
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", "<office:document-content/>")
    write("ods_named.csv", ods.getvalue())
    write("gzip_named.csv", gzip.compress(rows("a", "b").encode(), mtime=0))
    # a late bad byte, found under a forced encoding
    late = [HEAD] + [f"{100 + i},1,row {i + 2}" for i in range(40)]
    late[39] = "139,1,Caf\udce9"
    write("late_bad_byte.csv", ("\n".join(late) + "\n").encode("utf-8", "surrogateescape"))

    # .xlsx whose <dimension> says A1 (some generators write it) over 10 data rows
    book = openpyxl.Workbook()
    uses_sheet(book.active, 10)
    patched(book, "dimension_a1.xlsx", {"xl/worksheets/sheet1.xml": lambda d: re.sub(
        rb'<dimension ref="[^"]*" ?/>', b'<dimension ref="A1"/>', d)})
    # a hidden first sheet (an old copy) before the visible, active one
    book = openpyxl.Workbook()
    old = book.active
    old.title = "Old copy"
    old.append(["CoworkerBookingCreditId", "CreditUsed"])
    old.append([999, 9])
    old.sheet_state = "hidden"
    uses_sheet(book.create_sheet("Uses"))
    book.active = 1
    book.save(HERE / "hidden_first_sheet.xlsx")
    # a chart sheet beside the data
    book = openpyxl.Workbook()
    book.active.title = "Uses"
    uses_sheet(book.active)
    book.create_chartsheet("Chart")
    book.save(HERE / "chart_sheet.xlsx")
    # a damaged workbook: the sheet's XML cut off
    book = openpyxl.Workbook()
    uses_sheet(book.active, 5)
    patched(book, "truncated_sheet.xlsx", {"xl/worksheets/sheet1.xml": lambda d: d[: len(d) * 2 // 3]})
    # text in a numeric cell
    book = openpyxl.Workbook()
    uses_sheet(book.active)
    patched(book, "text_in_number_cell.xlsx", {"xl/worksheets/sheet1.xml": lambda d: d.replace(
        b'<c r="B2" t="n"><v>1.5</v>', b'<c r="B2" t="n"><v>abc</v>')})
    # the active sheet is empty, the data is on another
    book = openpyxl.Workbook()
    book.active.title = "Notes"
    uses_sheet(book.create_sheet("Uses"))
    book.save(HERE / "empty_active_sheet.xlsx")
    # a cached formula value with binary noise, and plain numbers (for --decimal ,)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description"])
    sheet.append([101, "=0.1+0.2", "formula"])
    sheet.append([102, 2.25, "number"])
    sheet.append([103, "1,5", "text"])
    patched(book, "formula_noise.xlsx", {"xl/worksheets/sheet1.xml": lambda d: re.sub(
        rb"<f>0.1\+0.2</f><v ?/>", b"<f>0.1+0.2</f><v>0.30000000000000004</v>", d)})
    second_round()


def second_round() -> None:
    """Exports that read wrong with exit 0 before (run alone: `python -c "import make_ugly as m;
    m.second_round()"` from this folder, so the files above keep their bytes)."""
    # a system that writes cells unquoted: a `27"` in one row, and a cell typed as `"Meeting
    # room` (a quote opened, never closed) in the next; two quotes in all, an even number
    write("quote_swallows_even.csv",
          (HEAD + '\r\n101,1,27" monitor\r\n102,1,"Meeting room\r\n103,1,swallowed\r\n'
                  '104,1,too\r\n').encode())
    # Excel error cells: a VLOOKUP that found nothing (Excel saves the formula and its cached
    # error), typed errors, and a row of errors only; Excel writes no fullCalcOnLoad
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Uses"
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId", "Notes"])
    sheet.append([101, 1.5, "Room", "#N/A"])
    sheet.append([102, "#DIV/0!", "Desk", 5])
    sheet.append(["#REF!", "#VALUE!", "#NAME?", "#NUM!"])
    sheet.append([104, 2, "#NULL!", 7])
    sheet.append([105, 1, "fine", 9, "#N/A"])  # a column never sent
    patched(book, "excel_errors.xlsx", {
        "xl/worksheets/sheet1.xml": lambda d: d.replace(
            b'<c r="D2" t="e"><v>#N/A</v></c>',
            b'<c r="D2" t="e"><f>VLOOKUP(A2,Bookings!A:B,2,FALSE)</f><v>#N/A</v></c>'),
        "xl/workbook.xml": lambda d: d.replace(b' fullCalcOnLoad="1"', b""),
    })
    # formulas saved without their value: openpyxl writes <v/>; XlsxWriter writes <v>0</v> and
    # asks for the workbook to be calculated when opened (fullCalcOnLoad)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description"])
    sheet.append([101, "=0.5*3", "computed when opened"])
    sheet.append([102, 2.5, "typed"])
    book.save(HERE / "formula_without_value.xlsx")
    patched(book, "formula_xlsxwriter.xlsx", {"xl/worksheets/sheet1.xml": lambda d: d.replace(
        b"<f>0.5*3</f><v />", b"<f>0.5*3</f><v>0</v>")})
    # code pages etl must not take for one it reads: each a short export as the systems of
    # those countries save it (Excel's "CSV" on a Chinese, Taiwanese, Korean, Greek, Hebrew, Thai
    # or Polish Windows, a Russian Unix system's KOI8-R)
    for name, encoding, descriptions in [
        ("gbk.csv", "gbk", ("会议室预约", "北京办公室")),
        ("big5.csv", "big5", ("會議室預約", "台北辦公室")),
        ("euc_kr.csv", "euc_kr", ("회의실 예약", "서울 사무실")),
        ("koi8_r.csv", "koi8_r", ("Встреча в офисе", "Переговорная комната")),
        ("greek_cp1253.csv", "cp1253", ("Αίθουσα συσκέψεων", "Γραφείο Αθήνας")),
        ("hebrew_cp1255.csv", "cp1255", ("חדר ישיבות", "משרד תל אביב")),
        ("thai_cp874.csv", "cp874", ("ห้องประชุม", "สำนักงานกรุงเทพ")),
        ("iso8859_2.csv", "iso8859_2", ("Biuro w Łodzi", "Sala na Śląsku")),
    ]:
        write(name, rows(*descriptions).encode(encoding))
    # a workbook as an office keeps one: a filter hiding a row, a hidden row, a note merged
    # down two rows, the amount headed "Amount", and a sheet of totals beside it
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Uses"
    sheet.append(["CoworkerBookingCreditId", "Amount", "Description"])
    for i in range(6):
        sheet.append([101 + i, 1.5, f"use {i + 1}"])
    sheet.merge_cells("C3:C4")
    sheet.auto_filter.ref = "A1:C7"
    sheet.auto_filter.add_filter_column(0, ["101", "102", "103", "104", "106"])
    sheet.row_dimensions[6].hidden = True  # filtered out (105)
    sheet.row_dimensions[7].hidden = True
    totals = book.create_sheet("Totals")
    totals.append(["Total", 9])
    book.save(HERE / "filtered_merged.xlsx")
    # UTF-32 with a BOM (some .NET exports), and UTF-16 without one holding Cyrillic text
    write("utf32.csv", rows("Встреча в офисе", "Café").encode("utf-32"))
    write("utf16le_cyrillic_no_bom.csv",
          rows(*(f"Переговорная комната {i}" for i in range(40)), newline="\r\n").encode("utf-16-le"))
    # files named as workbooks that are not one: an .xlsx named .xls, a web app's HTML "Excel"
    # export, CSV named .xlsx; and an Excel binary workbook
    buffer = io.BytesIO()
    book = openpyxl.Workbook()
    uses_sheet(book.active)
    book.save(buffer)
    write("xlsx_named.xls", buffer.getvalue())
    write("html_named.xls", b'<html xmlns:x="urn:schemas-microsoft-com:office:excel"><body><table>'
                            b"<tr><td>CoworkerBookingCreditId</td><td>CreditUsed</td></tr>"
                            b"<tr><td>101</td><td>1</td></tr></table></body></html>\r\n")
    write("csv_named.xlsx", rows("a", "b").encode())
    xlsb = io.BytesIO()
    with zipfile.ZipFile(xlsb, "w") as z:
        z.writestr("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/'
                                          '2006/content-types"/>')
        z.writestr("xl/workbook.bin", b"\x83\x01\x00")
    write("binary.xlsb", xlsb.getvalue())
    # rich text whose runs carry spaces at their edges without xml:space="preserve" (as some
    # generators write shared strings): "Meeting" + " room " (bold) + "B"
    book = openpyxl.Workbook()
    uses_sheet(book.active, 1)
    patched(book, "rich_text_spaces.xlsx", {
        "xl/worksheets/sheet1.xml": lambda d: re.sub(
            rb'<c r="C2" t="inlineStr"><is><t>[^<]*</t></is></c>', b'<c r="C2" t="s"><v>0</v></c>', d),
        **SHARED_STRINGS,
    }, extra={"xl/sharedStrings.xml": b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                                      b'2006/main" count="1" uniqueCount="1"><si><r><t>Meeting</t></r>'
                                      b"<r><rPr><b/></rPr><t> room </t></r><r><t>B</t></r></si></sst>"})
    # GBK whose bytes happen to be valid UTF-8 (预约 is UTF-8's ԤԼ)
    write("gbk_valid_utf8.csv", rows("预约").encode("gbk"))
    # one word in a code page etl reads, as short exports often are
    write("cp1250_one_word.csv", rows("Gdańsk").encode("cp1250"))
    write("cp850_one_word.csv", rows("Café").encode("cp850"))
    # two exports pasted together: one saved as UTF-8, the other as Windows' cp1252
    write("utf8_and_cp1252.csv", rows("Réunion", "Café").encode("utf-8")
          + "103,1,Crème\n104,1,Genève\n105,1,Thé\n".encode("cp1252"))
    third_round()


def _string_at(cell: re.Match[bytes]) -> int:
    """The shared string of padded_entities.xlsx's cell CELL (A1..C1 the header; C2..C4 the texts)."""
    row = int(cell.group(2))
    return b"ABC".index(cell.group(1)) if row == 1 else row + 1


def third_round() -> None:
    """Exports read wrong with exit 0, or with a traceback, before (run alone: `python -c "import
    make_ugly as m; m.third_round()"` from this folder, so the files above keep their bytes)."""
    # shared strings as a hand-rolled exporter writes them: HTML-escaped (&#x27; &quot;), padded
    # (a CHAR column) and without xml:space="preserve"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description"])
    for i in range(3):
        sheet.append([101 + i, 1, f"text {i}"])
    strings = [b"CoworkerBookingCreditId", b"CreditUsed", b"Description",
               b"O&#x27;Brien booking   ", b" Room &quot;A&quot; ", b"Tea &amp; coffee &#39;n&apos; cake "]
    table = b"".join(b"<si><t>" + t + b"</t></si>" for t in strings)
    patched(book, "padded_entities.xlsx", {
        "xl/worksheets/sheet1.xml": lambda d: re.sub(
            rb'<c r="([A-C])([1-4])" t="inlineStr"><is><t>[^<]*</t></is></c>',
            lambda m: b'<c r="%s%s" t="s"><v>%d</v></c>' % (m.group(1), m.group(2), _string_at(m)), d),
        **SHARED_STRINGS,
    }, extra={"xl/sharedStrings.xml": b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                                      b'2006/main">' + table + b"</sst>"})
    # a sheet whose attributes are in single quotes (valid XML; some hand-rolled writers do it):
    # an Excel error and a formula saved without its value in BookingId
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId"])
    sheet.append([101, 1, "fine", 7])
    sheet.append([102, 1, "lookup failed", "#N/A"])
    sheet.append([103, 1, "not calculated", "=VLOOKUP(A4,Bookings!A:B,2,0)"])
    patched(book, "single_quoted.xlsx", {"xl/worksheets/sheet1.xml": lambda d: d[:d.find(b"<sheetData")]
             + re.sub(rb'(\w+)="([^"]*)"', rb"\1='\2'", d[d.find(b"<sheetData"):])})
    # a formula whose value is "" (Excel saves =IF(D2="","",D2) typed text, with an empty value)
    book = openpyxl.Workbook()
    uses_sheet(book.active, 2)
    patched(book, "formula_empty_text.xlsx", {"xl/worksheets/sheet1.xml": lambda d: re.sub(
        rb'<c r="C2" t="inlineStr"><is><t>[^<]*</t></is></c>',
        b'<c r="C2" t="str"><f>IF(D2="","",D2)</f><v></v></c>', d)})
    # a row numbered with letters in it, and a sheet whose compressed XML is damaged (a download
    # cut and patched)
    book = openpyxl.Workbook()
    uses_sheet(book.active, 2)
    patched(book, "row_number_text.xlsx", {"xl/worksheets/sheet1.xml": lambda d: d.replace(
        b'<row r="2"', b'<row r="2x"')})
    book = openpyxl.Workbook()
    uses_sheet(book.active, 40)
    buffer = io.BytesIO()
    book.save(buffer)
    data = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for k in range(start + 20, start + 40):
        data[k] ^= 0x55
    write("damaged_sheet_stream.xlsx", bytes(data))
    # Windows' cp1252 whose bytes happen to be valid UTF-8 (É® is UTF-8's ɮ, É– is ɖ: Latin letters)
    write("cp1252_valid_utf8.csv", rows("NESCAFÉ® capsules", "CAFÉ–BAR catering").encode("cp1252"))
    # ids of round thousands as a European spreadsheet shows them ("5.000": five thousand)
    write("decimal_comma_ids.csv", "CoworkerBookingCreditId;CreditUsed;Description;BookingId\r\n"
                                   "5.000;1,5;Raum A;12.000\r\n5;1,5;Raum B;12\r\n7004,0;2;Raum C;\r\n"
                                   .encode("cp1252"))
    fourth_round()


def _lookups() -> openpyxl.Workbook:
    """A sheet of uses whose BookingId is a VLOOKUP that found nothing in row 2 (Excel saves the
    formula and its cached #N/A), and whose row 3 is hidden."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Uses"
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId"])
    sheet.append([101, 1.5, "lookup failed", "#N/A"])
    sheet.append([102, 2, "hidden row", 7])
    sheet.row_dimensions[3].hidden = True
    return book


_LOOKUP = (b'<c r="D2" t="e"><v>#N/A</v></c>',
           b'<c r="D2" t="e"><f>VLOOKUP(A2,Bookings!A:B,2,FALSE)</f><v>#N/A</v></c>')


def _strict(data: bytes) -> bytes:
    """A part as Excel's "Strict Open XML Spreadsheet" writes it: the same XML in the Strict
    namespaces (http://purl.oclc.org/ooxml/...), relationship types included."""
    for transitional, strict in [
        (b"http://schemas.openxmlformats.org/spreadsheetml/2006/main",
         b"http://purl.oclc.org/ooxml/spreadsheetml/main"),
        (b"http://schemas.openxmlformats.org/officeDocument/2006/relationships",
         b"http://purl.oclc.org/ooxml/officeDocument/relationships"),
    ]:
        data = data.replace(transitional, strict)
    return data.replace(b"<workbookPr", b'<workbookPr conformance="strict"', 1)


def fourth_round() -> None:
    """Workbooks whose error cells and hidden rows etl's own read of the sheet missed, so that an
    #N/A was read as a blank BookingId, and hidden columns read without a word (run alone:
    `python -c "import make_ugly as m; m.fourth_round()"` from this folder)."""
    # Excel's "Strict Open XML Spreadsheet" (Save As), the same sheet in the Strict namespaces
    book = _lookups()
    parts = ["[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels",
             "xl/worksheets/sheet1.xml", "xl/styles.xml", "xl/theme/theme1.xml"]
    fix = {part: _strict for part in parts}
    fix["xl/worksheets/sheet1.xml"] = lambda d: _strict(d.replace(*_LOOKUP))
    patched(book, "strict_ooxml.xlsx", fix)
    # the sheet's part stored as xl/worksheets/Sheet1.xml where the relationship says sheet1.xml
    # (part names compare without regard to case)
    buffer = io.BytesIO()
    _lookups().save(buffer)
    source = zipfile.ZipFile(buffer)
    with zipfile.ZipFile(HERE / "part_name_case.xlsx", "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.namelist():
            data = source.read(item)
            if item == "xl/worksheets/sheet1.xml":
                item, data = "xl/worksheets/Sheet1.xml", data.replace(*_LOOKUP)
            out.writestr(item, data)
    # cell names in lower case (r="d2"), Notes left empty in row 2: the #N/A is BookingId's
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Uses"
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Notes", "BookingId"])
    sheet.append([101, 1, None, "#N/A"])
    sheet.append([102, 1, "fine", 8])
    patched(book, "lowercase_refs.xlsx", {"xl/worksheets/sheet1.xml": lambda d: re.sub(
        rb' r="([A-Z]+[0-9]+)"', lambda m: b' r="%s"' % m.group(1).lower(), d)})
    # hidden columns: BookingId hidden (Excel's Hide), Notes at no width, and the columns past
    # the table hidden (as offices tidy a sheet)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Uses"
    sheet.append(["CoworkerBookingCreditId", "CreditUsed", "BookingId", "Description", "Notes"])
    sheet.append([101, 1.5, 880001, "Room A", "old"])
    sheet.append([102, 2, 880002, "Room B", ""])
    sheet.column_dimensions["C"].hidden = True
    sheet.column_dimensions["E"].width = 30
    sheet.column_dimensions.group("F", "Z", hidden=True)
    patched(book, "hidden_columns.xlsx", {"xl/worksheets/sheet1.xml": lambda d: d.replace(
        b'width="30"', b'width="0"')})
    # a workbook whose sheet list uses r:id without declaring the prefix (a hand-rolled writer's
    # slip): calamine reads its values, etl's own read of the sheet can't find it
    book = _lookups()
    patched(book, "undeclared_prefix.xlsx", {
        "xl/workbook.xml": lambda d: d.replace(
            b' xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"', b""),
        "xl/worksheets/sheet1.xml": lambda d: d.replace(*_LOOKUP),
    })


if __name__ == "__main__":
    main()
