"""Workbooks: an .xlsx or .xlsm file's active sheet read as a table of text cells, like a CSV."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from etl.errors import FileProblem
from etl.read import sheetcells
from etl.read.reading import RawChunk, ReadOptions, Table, _chunk, _drop_blank

# --- Excel -----------------------------------------------------------------------------------


def cell_text(value: Any, decimal: str = ".") -> str:
    """A worksheet value as the text a CSV export of it would hold. A number shows at most the
    15 significant digits Excel shows, so a cached `=0.1+0.2` is "0.3", not binary noise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15g")
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


_SHEET_KINDS = {"WorkSheet": "worksheet", "ChartSheet": "chart sheet", "DialogSheet": "dialog sheet",
                "MacroSheet": "macro sheet", "Vba": "VBA module"}


@dataclass(frozen=True)
class _Sheet:
    name: str
    kind: str  # worksheet, chart sheet, ...
    hidden: bool

    def __str__(self) -> str:
        extra = [self.kind] if self.kind != "worksheet" else []
        extra += ["hidden"] if self.hidden else []
        return f'"{self.name}"' + (f" ({', '.join(extra)})" if extra else "")


def _active_tab(path: str) -> int:
    """The sheet the workbook opens on (`activeTab` of its first view; 0 when it names none)."""
    from xml.etree import ElementTree

    data = sheetcells.workbook_xml(path)
    try:
        root = ElementTree.fromstring(data) if data is not None else None
    except ElementTree.ParseError:
        root = None
    if root is None:
        return 0
    for element in root.iter():
        if element.tag.endswith("}workbookView") or element.tag == "workbookView":
            try:
                return int(element.get("activeTab", "0"))
            except ValueError:
                return 0
    return 0


class XlsxTable(Table):
    """A worksheet read with calamine, which reads every row there is: it does not trust the
    `<dimension>` element (openpyxl's read-only mode does, and loses rows when it understates
    the sheet) and is several times faster. The sheet is checked and parsed when it is opened,
    so a damaged one stops the run before any report is written."""

    kind = "xlsx"

    def __init__(self, path: str, options: ReadOptions) -> None:
        from python_calamine import CalamineWorkbook  # only .xlsx runs pay for it

        self.path = path
        self.options = options
        self.size = os.path.getsize(path)
        self.notes: list[str] = []
        for option, value in (("--encoding", options.encoding), ("--delimiter", options.delimiter)):
            if value is not None:
                self.notes.append(f"{path}: {option} applies to CSV files only; ignored for this workbook")
        try:
            book = CalamineWorkbook.from_path(path)
            sheets = [_Sheet(m.name, _SHEET_KINDS.get(str(m.typ).rpartition(".")[2], str(m.typ)),
                             str(m.visible).rpartition(".")[2] != "Visible") for m in book.sheets_metadata]
        except Exception as exc:  # calamine raises several kinds for a damaged file
            raise FileProblem(path, f"is not a readable .xlsx workbook ({_first_line(exc)})") from exc
        self.sheets = sheets
        chosen = self._choose(sheets)
        self.sheet = chosen.name
        unchecked: sheetcells.SheetUnchecked | None = None
        try:
            facts = sheetcells.sheet_facts(path, chosen.name)
        except sheetcells.SheetDamaged as exc:
            raise FileProblem(path, f"worksheet {chosen} is damaged and can't be read ({exc}); "
                                    "open it in Excel and save it again") from exc
        except sheetcells.SheetUnchecked as exc:  # refused below, where calamine reads the sheet
            facts, unchecked = sheetcells.SheetFacts(), exc
        self._odd: dict[int, list[tuple[int, sheetcells.OddCell]]] = {}
        for (row, column), cell in sorted(facts.odd.items()):
            self._odd.setdefault(row, []).append((column, cell))
        try:
            self._data = book.get_sheet_by_name(chosen.name)
            if unchecked is not None:  # never read with its error cells as blanks
                raise FileProblem(path, f"worksheet {chosen} could not be checked for error cells (#N/A, "
                                        f"...) and hidden rows ({unchecked}), so it is not read: open the "
                                        "workbook in Excel and save it as an Excel Workbook (.xlsx), or "
                                        "export it to CSV")
            self._first_column = (self._data.start or (0, 0))[1]  # rows are given from row 1, cells from here
            rows = self._records()
            first = next(rows, None)
        except FileProblem:
            raise
        except Exception as exc:
            raise FileProblem(path, f"worksheet {chosen} is damaged and can't be read ({_first_line(exc)}); "
                                    "open it in Excel and save it again") from exc
        if first is None:
            others = _listed([s for s in sheets if s != chosen])
            raise FileProblem(path, f"worksheet {chosen} is empty: no header row"
                                    + (f"; the other sheets are: {others} (pass --sheet NAME)"
                                       if others else ""))
        self.header_row, header, _, _ = first
        while header and header[-1] == "":
            header.pop()
        self.header = [h.strip() for h in header]
        self._say_what_was_left_out(sheets, chosen, facts)

    def _say_what_was_left_out(self, sheets: list[_Sheet], chosen: _Sheet, facts: sheetcells.SheetFacts
                               ) -> None:
        """Notes on what a spreadsheet shows otherwise than this read: rows hidden (by hand or
        by a filter) and columns of the table hidden that were read all the same, merged cells
        that read as blank below or beside their first cell, and other sheets with data that
        were not read."""
        hidden = [n for n in facts.hidden if n > self.header_row]
        if hidden:
            why = " (the sheet has a filter)" if facts.filtered else ""
            self.notes.append(f"{self.path}: {_rows(hidden)} {'is' if len(hidden) == 1 else 'are'} "
                              f"hidden in the workbook{why} and {'was' if len(hidden) == 1 else 'were'} "
                              "read all the same: check them in the report")
        columns = [j for j in range(len(self.header))
                   if any(a <= self._first_column + j <= b for a, b in facts.hidden_columns)]
        if columns:
            one = len(columns) == 1
            shown = ", ".join(f'{_letters(self._first_column + j)} ("{self.header[j]}")' if self.header[j]
                              else _letters(self._first_column + j) for j in columns[:10])
            more = f" and {len(columns) - 10} more" if len(columns) > 10 else ""
            self.notes.append(f"{self.path}: column{'' if one else 's'} {shown}{more} "
                              f"{'is' if one else 'are'} hidden in the workbook and "
                              f"{'was' if one else 'were'} read all the same: check "
                              f"{'it' if one else 'them'} in the report")
        try:
            merged = self._data.merged_cell_ranges or []
        except Exception:  # noqa: BLE001 - a note is not worth a failure
            merged = []
        spans = [(a, b) for a, b in merged if b[0] >= self.header_row and (b[0] > a[0] or b[1] > a[1])]
        if spans:
            shown = ", ".join(f"{_ref(*a)}:{_ref(*b)}" for a, b in spans[:5])
            more = f" and {len(spans) - 5} more" if len(spans) > 5 else ""
            self.notes.append(f"{self.path}: merged cells {shown}{more}: only the first cell of each "
                              "holds the value; the others read as blank")
        others = [s for s in sheets if s != chosen and s.kind == "worksheet"]
        with_data = sheetcells.sheets_with_data(self.path, [s.name for s in others])
        if with_data:
            named = [str(s) for s in others if s.name in with_data]
            more = f" and {len(named) - 5} more" if len(named) > 5 else ""
            self.notes.append(f"{self.path}: other sheets hold data and were not read: "
                              f"{', '.join(named[:5])}{more} (pass --sheet NAME to read one)")

    def _choose(self, sheets: list[_Sheet]) -> _Sheet:
        """The sheet named by --sheet (any kind of name match, hidden or not), else the sheet the
        workbook opens on, else the first visible worksheet; never a hidden one unasked."""
        listed = _listed(sheets)
        worksheets = [s for s in sheets if s.kind == "worksheet"]
        wanted = self.options.sheet
        if wanted is not None:
            found = next((s for s in sheets if s.name == wanted), None) or next(
                (s for s in sheets if s.name.strip().casefold() == wanted.strip().casefold()), None)
            if found is None:
                raise FileProblem(self.path, f"has no worksheet {wanted!r}; it has: {listed}")
            if found.kind != "worksheet":
                raise FileProblem(self.path, f"sheet {wanted!r} is a {found.kind}, not a worksheet "
                                             f"of rows; its sheets are: {listed}")
            if found.hidden:
                self.notes.append(f"{self.path}: worksheet {found.name!r} is hidden; read as asked")
            return found
        active = _active_tab(self.path)
        if 0 <= active < len(sheets) and sheets[active].kind == "worksheet" and not sheets[active].hidden:
            return sheets[active]
        visible = [s for s in worksheets if not s.hidden]
        if not visible:
            raise FileProblem(self.path, f"has no visible worksheet; its sheets are: {listed} "
                                         "(pass --sheet NAME to read a hidden one)")
        return visible[0]

    def _records(self, start: int = 0) -> Iterator[tuple[int, list[str], list[bool], list[tuple[int, str]]]]:
        """(spreadsheet row, cell texts, which cells are numbers, (cell, problem) of the cells
        calamine reads as empty that are not: Excel errors, formulas without a value) of the
        non-blank rows."""
        decimal = "."
        number = 0
        try:
            for number, values in enumerate(self._data.iter_rows(), start=1):  # noqa: B007
                if number <= start:
                    continue
                record = [cell_text(v, decimal) for v in values]
                problems: list[tuple[int, str]] = []
                for column, cell in self._odd.get(number, ()):
                    j = column - self._first_column
                    if j >= 0:
                        record.extend([""] * (j + 1 - len(record)))
                        record[j] = cell.text
                        if cell.problem:  # else a text calamine reads wrong, put right
                            problems.append((j, cell.problem))
                if any(record) or problems:  # a row of formulas without values is no blank row
                    yield number, record, [isinstance(v, float) for v in values], problems
        except Exception as exc:
            raise FileProblem(self.path, f"worksheet {self.sheet!r}, row {number + 1}: can't be read "
                                         f"({_first_line(exc)})") from exc

    def chunks(self, rows: int | None = None) -> Iterator[RawChunk]:
        """Chunks of `chunk_rows` whatever ROWS asks: a worksheet's cells are Python objects
        until a chunk is made of them, so its chunks stay small."""
        width = len(self.header)
        records = self._records(self.header_row)
        while batch := list(islice(records, self.options.chunk_rows)):
            # trailing empty cells are formatting, not data
            cut = [(n, r[:width] if not any(r[width:]) else r, f) for n, r, f, _ in batch]
            chunk = _chunk(np.asarray([n for n, _, _ in cut], dtype=np.int64), [r for _, r, _ in cut], width,
                           drop_blank=False)
            chunk.cell_errors = {i: [(j, f"{self._column_name(j)}: {problem}") for j, problem in odd]
                                 for i, (_, _, _, odd) in enumerate(batch) if odd}
            numeric = np.zeros((len(cut), width), dtype=bool)
            for i, (_, _, flags) in enumerate(cut):
                flags = flags[:width]
                numeric[i, : len(flags)] = flags
            chunk.numeric = [numeric[:, j] for j in range(width)] if numeric.any() else None
            yield _drop_blank(chunk)

    def _column_name(self, j: int) -> str:
        if j < len(self.header) and self.header[j]:
            return self.header[j]
        return f"column {_letters(self._first_column + j)}"

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "format": "xlsx", "sheet": self.sheet}


def _listed(sheets: list[_Sheet], most: int = 10) -> str:
    """The sheets' names, the first MOST of them (a workbook may have a thousand)."""
    shown = ", ".join(str(s) for s in sheets[:most])
    return shown + (f", and {len(sheets) - most} more" if len(sheets) > most else "")


def _ref(row: int, column: int) -> str:
    """A cell's A1 name from its row and column, both from 0."""
    return f"{_letters(column)}{row + 1}"


def _letters(column: int) -> str:
    """A column's letters (A, B, ..., AA) from its number from 0."""
    n, letters = column + 1, ""
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return letters


def _rows(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return f"row {shown}" if len(numbers) == 1 else (
        f"rows {shown}" + (f" ({len(numbers)} in all)" if len(numbers) > 10 else ""))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
