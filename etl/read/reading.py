"""Reading exports: CSV in any common encoding and delimiter, or `.xlsx`, in chunks.

Each data row keeps its spreadsheet row number (the header is row 1; blank rows are skipped
but counted), and a row with too many or too few values is passed on with a message rather
than stopping the read. Memory stays flat: only one chunk of rows is held at a time.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as arrow

from etl.errors import FileProblem
from etl.fields import nonempty

DELIMITERS = ",;\t|"
#: rows of a night's chunk (about: a CSV's are whole blocks of Arrow's reader); with jemalloc
#: keeping a chunk or two freed (etl.heap), 50,000 took a 5M-row first night to 315 MB
CHUNK_ROWS = 32_768
_SNIFF_BYTES = 64 * 1024
csv.field_size_limit(64 * 1024 * 1024)


@dataclass(frozen=True)
class ReadOptions:
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    chunk_rows: int = CHUNK_ROWS  # rows of a worksheet at a time
    block_bytes: int = 1 << 20  # bytes of CSV parsed at a time; also the largest row that can be read


@dataclass
class RawChunk:
    """Consecutive data rows of one file, as text, one Arrow string column per header."""

    rows: np.ndarray  # spreadsheet row numbers, int64
    columns: list[arrow.Array]
    shape_errors: dict[int, str] = field(default_factory=dict)  # position -> message
    read_to: int | None = None  # bytes of the file read once this chunk was made, when known
    numeric: list[np.ndarray] | None = None  # per column, which cells a workbook held as numbers
    # position -> (column, "Name: problem") of cells read as something they are not (a workbook's
    # error cells, formulas without a value); a problem of the row where the column is used
    cell_errors: dict[int, list[tuple[int, str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)


class Table:
    """One input file: its header now, its rows chunk by chunk later (several times if asked)."""

    path: str
    header: list[str]
    size: int
    notes: list[str]  # what the operator should know about how it was read (warnings)
    rows_read: int | None = None  # data rows, once they were all read

    def chunks(self, rows: int | None = None) -> Iterator[RawChunk]:
        """The data rows, about ROWS at a time (default: the read options' `chunk_rows`)."""
        raise NotImplementedError

    def stamp(self) -> tuple[int, int] | None:
        """The size and modification time of what `chunks` reads now (None: gone)."""
        return stamp(self.path)

    def digest(self) -> str | None:
        """A digest of what `chunks` reads now, as `digest` makes it."""
        return digest(self.path)

    def describe(self) -> dict[str, Any]:
        """What was read, for summary.json and the summary line."""
        raise NotImplementedError


def stamp(path: str) -> tuple[int, int] | None:
    """A file's size and modification time (None once it is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def digest(path: str) -> str | None:
    """A digest of a file's bytes (None once it is gone): XXH3's 128 bits, made at the speed the
    bytes are read (SHA-256 took three times as long on a 258 MB file, which a night waits for
    before it can use the keys kept of it)."""
    import xxhash

    h = xxhash.xxh3_128()
    block = bytearray(1 << 22)
    view = memoryview(block)
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(block):
                h.update(view[:n])
    except OSError:
        return None
    return h.hexdigest()


def _not_text(path: str, sample: str) -> None:
    """Text has few control characters; a file full of them is binary, whatever its name."""
    head = sample[:4096]
    controls = sum(1 for c in head if c < " " and c not in "\t\r\n")
    if head and controls > max(8, len(head) // 10):
        raise FileProblem(path, f"is not a text file ({controls} control characters in its first "
                                f"{len(head)}); pass a CSV export or an .xlsx workbook")


def open_table(path: str, options: ReadOptions) -> Table:
    """Open FILE as a table, with a FileProblem (never a traceback) when it can't be read."""
    if not os.path.exists(path):
        raise FileProblem(path, "no such file")
    if os.path.isdir(path):
        raise FileProblem(path, "is a directory, not a file")
    if not os.path.isfile(path):
        raise FileProblem(path, "is a pipe or a device, not a file: a file is read more than once "
                                "(checked, then read), so save it to a file first")
    name = path.lower()
    if name.endswith((".xlsx", ".xlsm", ".xls", ".xlsb")):
        kind = _workbook_kind(path)
        if kind == "xlsx" and name.endswith((".xlsx", ".xlsm")):
            from etl.read.workbooks import XlsxTable  # here: workbooks builds on this module's Table

            return XlsxTable(path, options)
        extension = "." + name.rpartition(".")[2]
        raise FileProblem(path, _MISNAMED[kind].format(extension=extension))
    from etl.read.csvfiles import CsvTable  # here: csvfiles builds on this module's Table

    return CsvTable(path, options)


_MISNAMED = {
    "xlsx": "is an .xlsx workbook named {extension}: rename it to .xlsx",
    "xlsb": "is an Excel binary workbook (.xlsb), which etl does not read: save it as .xlsx or CSV",
    "xls": "is an old Excel workbook (.xls, Excel 97-2003), which etl does not read: save it as .xlsx "
           "or CSV",
    "ods": "is an OpenDocument spreadsheet (.ods) named {extension}: save it as .xlsx or CSV",
    "zip": "is a zip archive, not a workbook: unzip it and pass the file inside",
    "html": "is not a readable {extension} workbook: it is a web page (an HTML table saved under a "
            "workbook's name, as web apps export \"Excel\" files); open it in Excel and save it as "
            ".xlsx or CSV",
    "text": "is not a readable {extension} workbook: it is a text file (CSV?); if it is CSV, rename "
            "it to .csv",
    "empty": "is not a readable {extension} workbook: it is empty (0 bytes)",
    "other": "is not a readable {extension} workbook, nor text: pass an .xlsx workbook or a CSV export",
}


def _workbook_kind(path: str) -> str:
    """What a file named as a workbook is, by its content: xlsx, xlsb, xls, ods, zip, html,
    text, empty or other."""
    import zipfile

    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise FileProblem(path, f"can't be read ({exc.strerror})") from exc
    if not head:
        return "empty"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as book:
                names = set(book.namelist())
        except (OSError, zipfile.BadZipFile):
            return "xlsx"  # a damaged workbook: calamine says what is wrong with it
        if "xl/workbook.bin" in names:
            return "xlsb"
        if "xl/workbook.xml" in names or "[Content_Types].xml" in names:
            return "xlsx"
        return "ods" if b"opendocument.spreadsheet" in head else "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "xls"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<html", b"<!doctype html", b"<table", b"<?xml")) or b"<html" in text[:512]:
        return "html"
    if b"\x00" not in head and sum(b < 9 or 13 < b < 32 for b in head) < max(8, len(head) // 100):
        return "text"
    return "other"


def _chunk(rows: np.ndarray, records: list[list[str]], width: int, drop_blank: bool = True,
           unnamed: int = 0, rule: int | None = None) -> RawChunk:
    """Columns of the records, blank ones dropped; ragged ones are padded or cut, and say so,
    unless nothing is lost or shifted: empty cells past the header's last column (a trailing
    delimiter), or a row that stops before the header's last UNNAMED columns (a header with one),
    where the row has as many values as the file's rows have as a rule (RULE, when known: a row
    one value short or long among rows that all end with a delimiter lost or gained a value
    somewhere, and its cells are shifted)."""
    errors: dict[int, str] = {}
    if set(map(len, records)) != {width}:
        keep: list[int] = []
        fixed: list[list[str]] = []
        for i, r in enumerate(records):
            if len(r) != width:
                if not any(r):
                    continue
                harmless = (rule is None or len(r) == rule) and (
                    (len(r) > width and not any(r[width:])) or width - unnamed <= len(r) < width)
                if not harmless:
                    errors[len(fixed)] = _shape_error(r, width)
                r = (r + [""] * width)[:width]
            keep.append(i)
            fixed.append(r)
        rows, records = rows[keep], fixed
    cells = np.empty((len(records), width), dtype=object)
    if records:
        cells[:] = records
    columns = [arrow.array(cells[:, j], type=arrow.string()) for j in range(width)]
    chunk = RawChunk(rows, columns, errors)
    return _drop_blank(chunk) if drop_blank else chunk


class _RowTooLong(Exception):
    pass


_MAX_BLOCK = 1 << 30


def _after(chunk: RawChunk, row: int) -> RawChunk:
    """The part of CHUNK after spreadsheet row ROW."""
    if not row or not len(chunk) or chunk.rows[0] > row:
        return chunk
    return _take(chunk, np.flatnonzero(chunk.rows > row))


def _take(chunk: RawChunk, where: np.ndarray) -> RawChunk:
    """The rows of CHUNK at positions WHERE (sorted), messages following their rows."""
    position = {int(old): new for new, old in enumerate(where)}
    return RawChunk(chunk.rows[where], [c.take(arrow.array(where)) for c in chunk.columns],
                    {position[i]: e for i, e in chunk.shape_errors.items() if i in position},
                    chunk.read_to,
                    None if chunk.numeric is None else [n[where] for n in chunk.numeric],
                    {position[i]: e for i, e in chunk.cell_errors.items() if i in position})


def _gather(chunks: Iterator[RawChunk], rows: int) -> Iterator[RawChunk]:
    """Consecutive chunks put together until each holds at least ROWS rows."""
    held: list[RawChunk] = []
    count = 0
    for chunk in chunks:
        held.append(chunk)
        count += len(chunk)
        if count >= rows:
            yield concat_chunks(held)
            held, count = [], 0
    if held:
        yield concat_chunks(held)


def concat_chunks(chunks: list[RawChunk]) -> RawChunk:
    """Consecutive chunks of one file as one (their `numeric` flags are not kept)."""
    if len(chunks) == 1:
        return chunks[0]
    errors: dict[int, str] = {}
    offset = 0
    for c in chunks:
        errors.update({offset + i: e for i, e in c.shape_errors.items()})
        offset += len(c)
    columns = [arrow.concat_arrays([c.columns[j] for c in chunks]) for j in range(len(chunks[0].columns))]
    return RawChunk(np.concatenate([c.rows for c in chunks]), columns, errors, chunks[-1].read_to)


def _drop_blank(chunk: RawChunk) -> RawChunk:
    """Rows of empty cells (",,,," as spreadsheets export them) are blank rows too."""
    filled = np.zeros(len(chunk.rows), dtype=bool)
    filled[list(chunk.shape_errors)] = True  # a ragged row is data, even when its first cells are empty
    filled[list(chunk.cell_errors)] = True
    for column in chunk.columns:
        filled |= nonempty(column)
    if filled.all():
        return chunk
    return _take(chunk, np.flatnonzero(filled))


def _shape_error(record: list[str], width: int) -> str:
    n = len(record)
    if n > width:
        extra = ", ".join(f'"{v}"' for v in record[width:] if v)[:200]
        return f"row: has {n} values but the header has {width} columns" + (
            f" (extra: {extra})" if extra else ""
        )
    return f"row: has {n} values but the header has {width} columns"


