"""Reading exports: CSV in any common encoding and delimiter, or `.xlsx`, in chunks.

Each data row keeps its spreadsheet row number (the header is row 1; blank rows are skipped
but counted), and a row with too many or too few values is passed on with a message rather
than stopping the read. Memory stays flat: only one chunk of rows is held at a time.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv

from etl.errors import FileProblem

DELIMITERS = ",;\t|"
CHUNK_ROWS = 50_000
_SNIFF_BYTES = 64 * 1024
_BLOCK = 1 << 20
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

    def __len__(self) -> int:
        return len(self.rows)


class Table:
    """One input file: its header now, its rows chunk by chunk later (several times if asked)."""

    path: str
    header: list[str]
    size: int

    def chunks(self) -> Iterator[RawChunk]:
        raise NotImplementedError


def open_table(path: str, options: ReadOptions) -> Table:
    """Open FILE as a table, with a FileProblem (never a traceback) when it can't be read."""
    if not os.path.exists(path):
        raise FileProblem(path, "no such file")
    if os.path.isdir(path):
        raise FileProblem(path, "is a directory, not a file")
    if path.lower().endswith((".xlsx", ".xlsm")):
        return XlsxTable(path, options)
    if path.lower().endswith(".xls"):
        raise FileProblem(path, "old .xls workbooks are not read; save it as .xlsx or CSV")
    return CsvTable(path, options)


# --- CSV -------------------------------------------------------------------------------------


def detect_encoding(path: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else cp1252, else latin-1.

    The whole file is tried as UTF-8 (block by block, so memory stays flat): spreadsheet
    exports are either UTF-8 or the Windows code page, and a late accented name must not
    turn into a decoding error after half the rows were read.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        if _decodes(path, encoding):
            return encoding
    return "latin-1"


def _decodes(path: str, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            while block := f.read(_BLOCK):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def sniff_delimiter(sample: str) -> str:
    """The candidate that occurs most often in the header line; `,` when none does."""
    header = next((line for line in sample.splitlines() if line.strip()), "")
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read, so progress is known without counting rows."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw = raw
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.done += n or 0
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class CsvTable(Table):
    def __init__(self, path: str, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        self.size = os.path.getsize(path)
        try:
            self.encoding = options.encoding or detect_encoding(path)
            codecs.lookup(self.encoding)
        except LookupError as exc:
            raise FileProblem(path, f"unknown encoding {options.encoding!r}") from exc
        except OSError as exc:
            raise FileProblem(path, f"can't be read ({exc.strerror})") from exc
        with self._open() as (text, _):
            try:
                sample = text.read(_SNIFF_BYTES)
            except UnicodeDecodeError as exc:
                raise self._decode_problem(exc) from exc
        self.delimiter = options.delimiter or sniff_delimiter(sample)
        if len(self.delimiter) != 1:
            raise FileProblem(path, f"the delimiter must be one character, not {self.delimiter!r}")
        with self._open() as (text, _):
            records = self._records(text)
            first = next(records, None)
        if first is None:
            raise FileProblem(path, "the file is empty: no header row (row 1 names the columns)")
        self.header_row, header = first
        self.header = [h.strip() for h in header]

    @contextmanager
    def _open(self) -> Iterator[tuple[io.TextIOWrapper, _CountingReader]]:
        try:
            counter = _CountingReader(open(self.path, "rb"))  # noqa: SIM115 - closed below
        except OSError as exc:
            raise FileProblem(self.path, f"can't be read ({exc.strerror})") from exc
        text = io.TextIOWrapper(io.BufferedReader(counter, _BLOCK), self.encoding, newline="")
        try:
            yield text, counter
        finally:
            text.close()

    def _decode_problem(self, exc: UnicodeDecodeError) -> FileProblem:
        return FileProblem(
            self.path,
            f"is not valid {self.encoding} ({exc.reason} at byte {exc.start}); "
            "pass --encoding, e.g. --encoding cp1252",
        )

    def _reader(self, text: io.TextIOWrapper) -> Iterator[list[str]]:
        return csv.reader(text, delimiter=self.delimiter, quotechar='"', strict=False)

    def _records(self, text: io.TextIOWrapper) -> Iterator[tuple[int, list[str]]]:
        """Non-blank records with their spreadsheet row numbers (blank rows are counted)."""
        reader = self._reader(text)
        with self._problems(reader):
            for number, record in enumerate(reader, start=1):
                if any(record):
                    yield number, record

    @contextmanager
    def _problems(self, reader: Any) -> Iterator[None]:
        try:
            yield
        except csv.Error as exc:
            raise FileProblem(self.path, f"line {reader.line_num}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise self._decode_problem(exc) from exc

    def chunks(self) -> Iterator[RawChunk]:
        """The data rows in chunks of about `chunk_rows` (Arrow's reader needs about 20 times a
        block in memory, so blocks stay small and are put together here)."""
        block, done = self.options.block_bytes, 0
        while True:
            try:
                for chunk in _gather(self._blocks(block), self.options.chunk_rows):
                    chunk = _after(chunk, done)  # after a restart, rows already given are skipped
                    if len(chunk):
                        done = int(chunk.rows[-1])
                        yield chunk
                return
            except _RowTooLong:
                if block >= _MAX_BLOCK:
                    raise FileProblem(self.path, f"row {done + 1} or the next is larger than "
                                                 f"{_MAX_BLOCK >> 20} MB") from None
                block *= 8  # a row longer than a block: read again with bigger blocks

    def _blocks(self, block: int) -> Iterator[RawChunk]:
        """The data rows, parsed by Arrow's CSV reader one block at a time (several times faster
        than the csv module). Blank lines are kept as rows so every row's record number is its
        spreadsheet row; a row with too many or too few values is handed to `on_ragged`, which
        puts it back in place with a message."""
        width = len(self.header)
        names = [f"c{i}" for i in range(width)]
        ragged: list[tuple[int, str]] = []

        def on_ragged(row: Any) -> str:
            ragged.append((row.number, row.text))
            return "skip"

        encoding = self.encoding.lower().replace("_", "-")
        with open(self.path, "rb") as raw:
            counter = _CountingReader(raw)
            try:
                reader = arrow_csv.open_csv(
                    counter,
                    read_options=arrow_csv.ReadOptions(
                        use_threads=False,  # row numbers of ragged rows are known only then
                        block_size=block,
                        column_names=names,
                        skip_rows=self.header_row,
                        encoding="utf8" if encoding in ("utf-8", "utf-8-sig", "utf8") else self.encoding,
                    ),
                    parse_options=arrow_csv.ParseOptions(
                        delimiter=self.delimiter, quote_char='"', double_quote=True,
                        newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_ragged,
                    ),
                    convert_options=arrow_csv.ConvertOptions(
                        column_types=dict.fromkeys(names, arrow.string()),
                        strings_can_be_null=False, quoted_strings_can_be_null=False,
                    ),
                )
            except arrow.ArrowInvalid as exc:
                if "Empty CSV file" in str(exc):
                    return
                raise self._arrow_problem(exc) from exc
            following = self.header_row + 1  # the record number of the next row
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except arrow.ArrowInvalid as exc:
                    raise self._arrow_problem(exc) from exc
                n = batch.num_rows
                candidates = np.arange(following, following + n + len(ragged), dtype=np.int64)
                numbers = candidates[~np.isin(candidates, [r for r, _ in ragged])][:n]
                last = int(numbers[-1]) if n else following - 1
                here = [(r, t) for r, t in ragged if r <= last]
                ragged[:] = [(r, t) for r, t in ragged if r > last]
                following = last + 1
                chunk = self._merge(numbers, batch.columns, here, width)
                chunk.read_to = counter.done
                if len(chunk):
                    yield chunk
            if ragged:
                chunk = self._merge(np.empty(0, dtype=np.int64),
                                    [arrow.array([], arrow.string())] * width, ragged, width)
                if len(chunk):
                    yield chunk

    def _merge(self, numbers: np.ndarray, columns: list[Any], ragged: list[tuple[int, str]],
               width: int) -> RawChunk:
        """A batch's rows with its ragged rows put back in place, as one chunk."""
        columns = [c.combine_chunks() if isinstance(c, arrow.ChunkedArray) else c for c in columns]
        errors: dict[int, str] = {}
        if ragged:
            records = [self._fields(text) for _, text in ragged]
            extra = _chunk(np.asarray([r for r, _ in ragged], dtype=np.int64), records, width,
                           drop_blank=False)
            numbers = np.concatenate([numbers, extra.rows])
            order = np.argsort(numbers, kind="stable")
            numbers = numbers[order]
            take = arrow.array(order)
            columns = [arrow.concat_arrays([a, b]).take(take) for a, b in zip(columns, extra.columns,
                                                                              strict=True)]
            where = {int(old): new for new, old in enumerate(order)}
            base = len(order) - len(extra)
            errors = {where[base + i]: e for i, e in extra.shape_errors.items()}
        return _drop_blank(RawChunk(numbers, columns, errors))

    def _fields(self, text: str) -> list[str]:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter), [])

    def _arrow_problem(self, exc: Exception) -> Exception:
        message = str(exc)
        if "straddl" in message:
            return _RowTooLong()
        if "UTF8" in message or "decode" in message.lower():
            return FileProblem(self.path, f"is not valid {self.encoding}; "
                                          "pass --encoding, e.g. --encoding cp1252")
        return FileProblem(self.path, f"can't be read as CSV ({message.splitlines()[0]})")


def _chunk(rows: np.ndarray, records: list[list[str]], width: int, drop_blank: bool = True) -> RawChunk:
    """Columns of the records, blank ones dropped; ragged ones are padded or cut, and say so."""
    errors: dict[int, str] = {}
    if set(map(len, records)) != {width}:
        keep: list[int] = []
        fixed: list[list[str]] = []
        for i, r in enumerate(records):
            if len(r) != width:
                if not any(r):
                    continue
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
                    chunk.read_to)


def _gather(chunks: Iterator[RawChunk], rows: int) -> Iterator[RawChunk]:
    """Consecutive chunks put together until each holds at least ROWS rows."""
    held: list[RawChunk] = []
    count = 0
    for chunk in chunks:
        held.append(chunk)
        count += len(chunk)
        if count >= rows:
            yield _concat(held)
            held, count = [], 0
    if held:
        yield _concat(held)


def _concat(chunks: list[RawChunk]) -> RawChunk:
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
    for column in chunk.columns:
        filled |= pc.not_equal(column, "").to_numpy(zero_copy_only=False)
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


# --- Excel -----------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A worksheet value as the text a CSV export of it would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


class XlsxTable(Table):
    def __init__(self, path: str, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        self.size = os.path.getsize(path)
        rows = self._rows()
        first = next(rows, None)
        if first is None:
            raise FileProblem(path, "the worksheet is empty: no header row")
        self.header_row, header = first
        while header and header[-1] == "":
            header.pop()
        self.header = [h.strip() for h in header]

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        from openpyxl import load_workbook  # only .xlsx runs pay for it

        try:
            book = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise FileProblem(self.path, f"is not a readable .xlsx workbook ({exc})") from exc
        try:
            if self.options.sheet is None:
                sheet = book.worksheets[0]
            elif self.options.sheet in book.sheetnames:
                sheet = book[self.options.sheet]
            else:
                raise FileProblem(
                    self.path,
                    f"has no worksheet {self.options.sheet!r}; it has: {', '.join(book.sheetnames)}",
                )
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                record = [cell_text(v) for v in values]
                if any(record):
                    yield number, record
        finally:
            book.close()

    def chunks(self) -> Iterator[RawChunk]:
        width = len(self.header)
        records = self._rows()
        next(records)  # the header
        while batch := list(islice(records, self.options.chunk_rows)):
            # trailing empty cells are formatting, not data
            cut = [(n, r[:width] if not any(r[width:]) else r) for n, r in batch]
            yield _chunk(np.asarray([n for n, _ in cut], dtype=np.int64), [r for _, r in cut], width)
