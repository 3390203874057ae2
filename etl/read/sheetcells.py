"""What calamine leaves out of a worksheet's cells, read from the sheet's own XML: error cells,
formulas without a value, hidden rows and hidden columns. The sheet is found as calamine finds it
(by the package's relationships, part names in any case, Strict or transitional namespaces); one
that can't be found or read here is refused (SheetUnchecked), never read with its errors blank.

calamine gives an Excel error (`#N/A`, `#DIV/0!`, `#REF!`, ...) and a formula saved without its
computed value as an empty cell, so a row with `BookingId` `#N/A` would read as a row without a
booking, and a row of errors only would vanish as a blank row. These cells are found here and
named, so the reader makes them invalid cells instead of blanks.

A formula has no value when the file has none for it (`<v/>`, as openpyxl saves formulas), or
when the workbook asks to be calculated when opened (`fullCalcOnLoad`, as openpyxl and XlsxWriter
write it) and the value saved is XlsxWriter's stand-in `0`.

The sheet is read once, decompressed a block at a time; only blocks that hold an error or a
formula are parsed cell by cell, so a plain sheet costs one pass of `bytes.find`.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO
from xml.etree import ElementTree

_BLOCK = 4 << 20


class SheetDamaged(ValueError):
    """The worksheet's XML can't be read as a worksheet (a member that does not decompress, a
    row number that is not a number): its cells can't be told apart, so the file is refused."""


class SheetUnchecked(ValueError):
    """The worksheet calamine read can't be found or read here: its error cells, formulas without
    a value and hidden rows can't be told, so the file is refused rather than read with its
    errors as blanks."""


_ENTITY = re.compile(r"&(?:#[xX]([0-9A-Fa-f]{1,6})|#([0-9]{1,7})|(amp|lt|gt|quot|apos));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _entity(match: re.Match[str]) -> str:
    hexadecimal, decimal, name = match.groups()
    if name is not None:
        return _NAMED[name]
    code = int(hexadecimal, 16) if hexadecimal is not None else int(decimal)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code < 0xE000 else match.group(0)


def xml_text(raw: bytes) -> str:
    """The text of an element as the XML means it: its entities (`&amp;`, `&quot;`, `&#x27;`,
    `&#39;`) and Excel's own escapes of characters XML can't hold (`_x000D_`; `_x005F_` is `_`)
    read, as calamine reads them."""
    text = raw.decode("utf-8", "replace")
    if "&" in text:
        text = _ENTITY.sub(_entity, text)
    if "_x" in text:
        text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        # an emoji is two escapes (_xD83D__xDE00_): joined; a half of one alone is no character
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


@dataclass(frozen=True)
class OddCell:
    """A cell calamine reads as empty: the text a CSV export shows for it, and what is wrong."""

    text: str
    problem: str


@dataclass
class SheetFacts:
    """What calamine does not say about a worksheet."""

    odd: dict[tuple[int, int], OddCell] = field(default_factory=dict)  # by (row, column from 0)
    hidden: list[int] = field(default_factory=list)  # rows hidden (by hand, or by a filter)
    filtered: bool = False  # the sheet has a filter (its hidden rows are the ones it hides)
    hidden_columns: list[tuple[int, int]] = field(default_factory=list)  # (first, last), from 0


def sheet_facts(path: str, sheet: str) -> SheetFacts:
    """The error cells, formulas without a value, hidden rows and hidden columns of worksheet
    SHEET, found where calamine finds it. Never nothing for want of reading it: a sheet that
    can't be found or opened here is SheetUnchecked, a cell that can't be placed SheetDamaged."""
    try:
        with zipfile.ZipFile(path) as book:
            package = _Package(book)
            part, recalc, folder = _sheet_part(package, sheet)
            spaced = _spaced_strings(package, folder)
            with book.open(part) as xml:
                return _scan(xml, recalc, spaced)
    except zlib.error as exc:
        raise SheetDamaged(f"its XML does not decompress: {exc}") from exc
    except (SheetDamaged, SheetUnchecked):
        raise
    except Exception as exc:  # a zip member that won't open or read, a CRC that fails, ...
        raise SheetUnchecked(_first_line(exc)) from exc


def workbook_xml(path: str) -> bytes | None:
    """The workbook part of the file at PATH (its list of sheets and views), found as calamine
    finds it; None when it can't be."""
    try:
        with zipfile.ZipFile(path) as book:
            package = _Package(book)
            return package.read(_workbook_folder(package) + "workbook.xml")
    except Exception:  # noqa: BLE001 - calamine, which read the workbook, says what is wrong
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class _Package:
    """A workbook's zip members by the part names of the package. Part names compare without
    regard to case (Open Packaging Conventions), and some writers store `\\` for `/`: members
    are looked up as calamine looks them up, so this reads the parts calamine read."""

    def __init__(self, book: zipfile.ZipFile) -> None:
        self.book = book
        self.members = {name.replace("\\", "/").lower(): name for name in book.namelist()}

    def member(self, part: str) -> str | None:
        return self.members.get(part.lower())

    def read(self, part: str) -> bytes:
        member = self.member(part)
        if member is None:
            raise SheetUnchecked(f"it has no part {part}")
        return self.book.read(member)

    def xml(self, part: str) -> ElementTree.Element:
        try:
            return ElementTree.fromstring(self.read(part))
        except ElementTree.ParseError as exc:
            raise SheetUnchecked(f"its part {part} is not XML that can be read: {exc}") from exc


_EDGE_SPACES = (b"t> ", b" </")
_EDGE_SPACE = re.compile(rb"<(?:\w+:)?t> | </(?:\w+:)?t>")


def _edge_spaces(data: bytes) -> bool:
    """Whether DATA may hold a text run with a space at an edge (`<t> room </t>`): a few
    `bytes.find`s first (a plain sheet has none of them), the exact pattern only then."""
    return any(p in data for p in _EDGE_SPACES) and bool(_EDGE_SPACE.search(data))


def _last_row_end(data: bytes, start: int) -> int:
    """Where the last `</row>` (or `</x:row>`) of DATA after START ends; -1 if none does."""
    at = data.rfind(b"</row>", start)
    if at >= 0:
        return at + 6
    ends = [m.end() for m in _ROW_END.finditer(data, start)]
    return ends[-1] if ends else -1
_SI = re.compile(rb"<(?:\w+:)?si\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?si>)", re.S)
_PHONETIC = re.compile(rb"<(?:\w+:)?rPh\b.*?</(?:\w+:)?rPh>", re.S)
_T = re.compile(rb"<(?:\w+:)?t\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?t>)", re.S)


def _runs_text(inner: bytes) -> str | None:
    """The text of a string's runs as written (`Meeting`, ` room `, `B`), when a run without
    xml:space="preserve" has spaces at an edge (calamine drops those: `MeetingroomB`)."""
    runs = list(_T.finditer(_PHONETIC.sub(b"", inner)))
    spaced = [m for m in runs if b"preserve" not in m.group(1) and m.group(2)
              and (m.group(2)[:1].isspace() or m.group(2)[-1:].isspace())]
    if not spaced:
        return None
    return xml_text(b"".join(m.group(2) or b"" for m in runs))


def _spaced_strings(package: _Package, folder: str) -> dict[int, str]:
    """The shared strings whose runs have spaces at their edges, by index, as written."""
    part = package.member(folder + "sharedStrings.xml")  # where calamine reads them
    if part is None:
        return {}
    data = package.book.read(part)
    if not _edge_spaces(data):
        return {}
    found = {}
    for index, match in enumerate(_SI.finditer(data)):
        text = _runs_text(match.group(1) or b"")
        if text is not None:
            found[index] = text
    return found


def sheets_with_data(path: str, sheets: list[str]) -> list[str]:
    """Which of the worksheets SHEETS hold cells (judged from the start of each one's XML)."""
    found = []
    try:
        with zipfile.ZipFile(path) as book:
            package = _Package(book)
            for sheet in sheets:
                try:
                    part, _, _ = _sheet_part(package, sheet)
                except SheetUnchecked:
                    continue
                with book.open(part) as xml:
                    head = xml.read(1 << 16)
                data = head[head.find(b"<sheetData"):] if b"<sheetData" in head else head
                if re.search(rb"<(?:\w+:)?c\b", data):
                    found.append(sheet)
    except Exception:  # noqa: BLE001 - a note on other sheets is not worth a failure
        pass
    return found


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


_OFFICE_DOCUMENT = "/relationships/officeDocument"  # the end of its type, Strict or transitional


def _relationships(package: _Package, part: str) -> list[ElementTree.Element]:
    return [e for e in package.xml(part).iter() if _local(e.tag) == "Relationship"]


def _workbook_folder(package: _Package) -> str:
    """The folder of the workbook part (`xl/`), as the package's relationships name it."""
    target = None
    for element in _relationships(package, "_rels/.rels"):
        if element.get("Type", "").endswith(_OFFICE_DOCUMENT):
            target = element.get("Target", "")
    if target is None:
        raise SheetUnchecked("no relationship names its workbook part")
    return target[: target.rfind("/") + 1].removeprefix("/")


def _sheet_part(package: _Package, sheet: str) -> tuple[str, bool, str]:
    """(the zip member holding worksheet SHEET, whether the workbook asks to be recalculated,
    the workbook's folder). The sheet's relationship is its attribute `id` in whatever namespace
    (`r:id`: transitional, or Strict's http://purl.oclc.org/ooxml/...), as calamine takes it."""
    folder = _workbook_folder(package)
    workbook = package.xml(folder + "workbook.xml")
    rid, recalc, listed = None, False, False
    for element in workbook.iter():
        name = _local(element.tag)
        if name == "sheet" and element.get("name") == sheet and not listed:
            listed = True
            rid = next((v for k, v in element.attrib.items() if k == "id" or k.endswith("}id")), None)
        elif name == "calcPr":
            recalc = element.get("fullCalcOnLoad") in ("1", "true")
    if not listed:
        raise SheetUnchecked(f"its workbook part lists no sheet {sheet!r}")
    if rid is None:
        raise SheetUnchecked("the workbook does not say which part holds the sheet")
    for element in _relationships(package, folder + "_rels/workbook.xml.rels"):
        if element.get("Id") == rid:
            target = element.get("Target", "")
            part = target[1:] if target.startswith("/") else folder + target
            member = package.member(part) or package.member(posixpath.normpath(part))
            if member is None:
                raise SheetUnchecked(f"it has no part {part}")
            return member, recalc, folder
    raise SheetUnchecked(f"the workbook's relationships have no {rid!r}")


_TOKEN = re.compile(rb"<(?:\w+:)?row\b([^>]*)>|<(?:\w+:)?c\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)", re.S)
_ROW_TAG = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_ROW_END = re.compile(rb"</(?:\w+:)?row>")
_ATTR = re.compile(rb"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")  # XML quotes either way
_FORMULA = re.compile(rb"<(?:\w+:)?f\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?f>)", re.S)
_VALUE = re.compile(rb"<(?:\w+:)?v\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?v>)", re.S)
_REF = re.compile(rb"([A-Za-z]+)([0-9]+)")  # any case, as calamine reads it
_COL = re.compile(rb"<(?:\w+:)?col\b([^>]*)>")


#: a cell typed as an error, or (where shared strings need their spaces) a shared string, its
#: attribute quoted either way and spaced as XML allows
_TYPED_ERROR = re.compile(rb"""\bt\s*=\s*["']e["']""")
_TYPED_ANY = re.compile(rb"""\bt\s*=\s*["'][es]["']""")


def _attrs(tag: bytes) -> dict[bytes, bytes]:
    """A tag's attributes, quoted either way (`r="D3"`, `t='e'`)."""
    return {name: double or single for name, double, single in _ATTR.findall(tag)}


def _row_number(text: bytes) -> int:
    if not text.isdigit():
        raise SheetDamaged(f"a row is numbered {text.decode('utf-8', 'replace')!r}, not a number")
    return int(text)


def _last_row_tag(data: bytes) -> re.Match[bytes] | None:
    """The last row tag of DATA (`<row ...>`, `<x:row ...>`): a cell's text never holds a `<`,
    so the text "row " of a cell is never taken for one."""
    end = len(data)
    while end > 0:
        at = max(data.rfind(b"<row", 0, end), data.rfind(b":row", 0, end))
        if at < 0:
            return None
        start = at if data[at:at + 1] == b"<" else data.rfind(b"<", 0, at)
        found = _ROW_TAG.match(data, start) if start >= 0 else None
        if found is not None:
            return found
        end = at
    return None


def _column(letters: bytes) -> int:
    n = 0
    for c in letters:
        n = n * 26 + (c & 0xDF) - 64  # a is A
    return n - 1


def _hidden_columns(head: bytes) -> list[tuple[int, int]]:
    """The spans of columns (first, last, from 0) that HEAD's `<cols>` hides: `hidden="1"`, or
    a width of 0."""
    spans = []
    for match in _COL.finditer(head):
        attrs = _attrs(match.group(1))
        if attrs.get(b"hidden") not in (b"1", b"true") and not _nought(attrs.get(b"width")):
            continue
        first, last = attrs.get(b"min", b""), attrs.get(b"max", b"")
        if not (first.isdigit() and last.isdigit()):
            raise SheetDamaged("a hidden column is numbered "
                               f"{(first + b':' + last).decode('utf-8', 'replace')!r}, not by numbers")
        spans.append((int(first) - 1, int(last) - 1))
    return spans


def _nought(width: bytes | None) -> bool:
    try:
        return width is not None and float(width) == 0
    except ValueError:
        return False


def _scan(xml: IO[bytes], recalc: bool, spaced: dict[int, str] | None = None) -> SheetFacts:
    facts = SheetFacts()
    state = [0, -1]  # the current row (from 1) and the last cell's column
    carry, first = b"", True
    typed = _TYPED_ANY if spaced else _TYPED_ERROR  # what makes a block worth reading cell by cell
    while True:
        block = xml.read(_BLOCK)
        data = carry + block
        if block:  # up to the last row's end: no cell is cut in two
            end = _last_row_end(data, max(0, len(carry) - 16))
            if end < 0:
                carry = data
                continue
            data, carry = data[:end], data[end:]
        if first:  # the sheet's head, before its rows: which columns are hidden
            start = data.find(b"sheetData")
            facts.hidden_columns = _hidden_columns(data[:start] if start >= 0 else data)
            first = False
        facts.filtered = facts.filtered or b"autoFilter" in data or b"autoFilter" in carry
        if (typed.search(data) or b"f>" in data or b"<f " in data or b":f " in data
                or b"hidden=" in data or _edge_spaces(data)):
            _cells(data, recalc, state, facts, spaced or {})
        else:  # nothing odd here: only follow the row number (from the last row's r)
            last = _last_row_tag(data)
            number = _attrs(last.group(1)).get(b"r") if last else None
            if number:
                state[0], state[1] = _row_number(number), -1
            elif last:  # rows without numbers: count them
                state[0], state[1] = state[0] + len(_ROW_TAG.findall(data)), -1
        if not block:
            return facts


def _cells(data: bytes, recalc: bool, state: list[int], facts: SheetFacts, spaced: dict[int, str]
           ) -> None:
    found = facts.odd
    for match in _TOKEN.finditer(data):
        if match.group(1) is not None:  # a row
            row = _attrs(match.group(1) or b"")
            number = row.get(b"r")
            state[0] = _row_number(number) if number else state[0] + 1
            state[1] = -1
            if row.get(b"hidden") in (b"1", b"true"):
                facts.hidden.append(state[0])
            continue
        attrs = _attrs(match.group(2))
        ref = attrs.get(b"r")
        if ref is None:  # a cell without a name follows the last one, as calamine places it
            line, state[1] = state[0], state[1] + 1
        elif named := _REF.fullmatch(ref):  # else it is where its name says, whatever its row's
            line, state[1] = int(named.group(2)), _column(named.group(1))  # number (calamine's way)
        else:
            raise SheetDamaged(f"a cell is named {ref.decode('utf-8', 'replace')!r}, not like A1")
        at = (line, state[1])
        inner = match.group(3) or b""
        value = _VALUE.search(inner)
        text = xml_text(value.group(1) or b"") if value else ""
        kind = attrs.get(b"t")
        if kind == b"e":
            found[at] = OddCell(text, f"the cell holds Excel's {text}")
            continue
        if kind == b"s" and text.isdigit() and int(text) in spaced:
            found[at] = OddCell(spaced[int(text)], "")  # read right, no problem
            continue
        if kind == b"inlineStr":
            runs = _runs_text(inner)
            if runs is not None:
                found[at] = OddCell(runs, "")
            continue
        formula = _FORMULA.search(inner)
        if formula is None:
            continue
        # a formula typed text whose value is empty (`t="str"`, `<v></v>`) gave "": Excel saves
        # `=IF(E2="","",E2)` so; one without a value at all says nothing of its type
        if (text == "" and not (kind == b"str" and value is not None and value.group(1) is not None)) \
                or (recalc and text == "0" and attrs.get(b"t", b"n") == b"n"):
            shown = xml_text(formula.group(1) or b"")
            found[at] = OddCell(
                "",  # its value is not known
                (f"the cell holds a formula (={shown})" if shown else "the cell holds a formula")
                + " saved without its value; open the workbook in Excel or LibreOffice and save it "
                  "again, so that the value is saved too",
            )
