"""CSV files: the encoding and delimiter found, and the rows read in chunks of text cells."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import re
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv

from etl.errors import FileProblem
from etl.fields import bools
from etl.read import encodings
from etl.read.reading import (
    _MAX_BLOCK,
    _SNIFF_BYTES,
    DELIMITERS,
    RawChunk,
    ReadOptions,
    Table,
    _after,
    _chunk,
    _drop_blank,
    _gather,
    _not_text,
    _RowTooLong,
    digest,
)

# --- CSV -------------------------------------------------------------------------------------


def detect_encoding(path: str) -> str:
    """The Python codec that decodes the whole file (BOM included), decided from its bytes; a
    FileProblem when no encoding fits it honestly (see `etl.read.encodings`)."""
    verdict = encodings.choose(path, None)
    if isinstance(verdict, encodings.Encoding):
        return verdict.python_name
    raise FileProblem(path, "has no single encoding")


def sniff_delimiter(sample: str) -> str:
    """The candidate that splits the header into most columns and the rows below into as many;
    quoted text is read as the csv module reads it, so delimiters inside quotes don't count.
    `,` when none splits the header."""
    best, best_score = ",", (0, 0, 0)
    for delimiter in DELIMITERS:
        records = []
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
        try:
            for record in reader:
                if any(record):
                    records.append(record)
                if len(records) > 50:
                    break
        except csv.Error:
            continue
        if len(records) > 2 and not sample.endswith(("\n", "\r")):
            records.pop()  # the sample may end mid-row
        width = len(records[0]) if records else 0
        if width < 2:
            continue
        padded = sum(f[:1].isspace() for f in records[0])  # ", " splits text, not columns
        score = (sum(len(r) == width for r in records[1:]), width - padded, -padded)
        if score > best_score:
            best, best_score = delimiter, score
    return best


_SEP_LINE = re.compile(r"\A\"?sep=(.)\"?[ \t]*(\r\n|\r|\n|\Z)", re.IGNORECASE)


def sep_line(text: str) -> str | None:
    """The delimiter a `sep=;` first line names (Excel writes one and hides it)."""
    match = _SEP_LINE.match(text)
    return match.group(1) if match else None


class _CountingReader(io.RawIOBase):
    """The file as UTF-8 for Arrow's CSV reader (decoded here when it is in another encoding),
    counting the file's bytes read, so progress is known without counting rows.

    A read never ends with a carriage return (it is given with the next read instead): Arrow's
    reader drops the LF of a CR LF inside a quoted cell when the CR is the last byte of its block
    (apache/arrow#51368), so `two\r\nlines` would read `two\rlines` in one file and right in
    another whose blocks fall elsewhere. Arrow's own transcoding fills whole blocks, so a file in
    another encoding is decoded here, where the blocks' ends are ours to choose."""

    def __init__(self, raw: io.BufferedReader, codec: str = "utf-8") -> None:
        self.raw = raw
        self.done = 0
        self.decoder = None if codec == "utf-8" else codecs.getincrementaldecoder(codec)()
        self.pending = b""  # decoded text not given yet, as UTF-8
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if self.decoder is None:
            n = self.raw.readinto(buffer) or 0
            if n > 1 and buffer[n - 1] == 0x0D:
                self.raw.seek(-1, io.SEEK_CUR)
                n -= 1
            self.done += n
            return n
        while len(self.pending) <= want and not self.ended:
            block = self.raw.read(want)
            self.done += len(block)
            self.ended = not block
            self.pending += self.decoder.decode(block, final=self.ended).encode("utf-8")
        n = min(want, len(self.pending))
        if 1 < n < len(self.pending) and self.pending[n - 1] == 0x0D:
            n -= 1
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def _lines(text: io.TextIOBase, consumed: list[str]) -> Iterator[str]:
    """The lines of TEXT, each kept in CONSUMED as the csv reader takes it."""
    while line := text.readline():
        consumed.append(line)
        yield line


#: where the system names each open file of the process (Linux), else None
_PROC_FD = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else None


def _off_the_rule(columns: list[Any], n: int, width: int, rule: int | None) -> dict[int, str]:
    """Of N rows with the header's WIDTH of values (COLUMNS), those off the file's RULE: where
    its rows have more values (a trailing delimiter on every row but a header without), every
    one of them (a value went missing somewhere); where they have fewer (a header with a
    trailing delimiter, rows without), those with a value past the rule's. Their cells may be
    shifted: refused, never guessed."""
    if rule is None or rule == width or not n:
        return {}

    def filled(part: list[Any]) -> np.ndarray:
        found = np.zeros(n, bool)
        for column in part:
            found |= bools(pc.not_equal(pc.fill_null(column, ""), ""))
        return found

    # a blank line is no row (dropped as ever); a row with the header's count of values where
    # the rows have more lacks one, where they have fewer has one more if it fills the last
    off = filled(columns) if rule > width else filled(columns[rule:width])
    said = (f"row: has {width} values where the file's rows have {rule} (a value "
            f"{'missing' if rule > width else 'more'}: its cells may be shifted)")
    return {int(i): said for i in np.flatnonzero(off)}


class CsvTable(Table):
    kind = "csv"

    def __init__(self, path: str, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        self.notes: list[str] = []
        try:
            # the file as opened, held: read again later (a night's posting pass), it is what was
            # read first even once its name is another file's (an export written anew and moved
            # into place) or no file's (moved into an archive)
            self._held = open(path, "rb")  # noqa: SIM115 - closed with the table (or the process)
            weakref.finalize(self, self._held.close)
            self.size = os.fstat(self._held.fileno()).st_size
            head = self._held.read(4096)  # every read after seeks where it starts
            what = encodings.binary_kind(head)
            if what is not None:
                raise FileProblem(path, f"is {what}")
            verdict = encodings.choose(path, options.encoding)
        except LookupError as exc:
            raise FileProblem(path, f"unknown encoding {options.encoding!r}: pass a character set "
                                    "such as utf-8, cp1252 or latin-1") from exc
        except OSError as exc:
            raise FileProblem(path, f"can't be read ({exc.strerror})") from exc
        if isinstance(verdict, encodings.Refused):
            raise FileProblem(path, verdict.reason)
        damaged = verdict if isinstance(verdict, encodings.Damaged) else None
        self.encoding = verdict.encoding if isinstance(verdict, encodings.Damaged) else verdict
        errors = "replace" if damaged else "strict"
        with self._text(errors) as text:
            sample = text.read(_SNIFF_BYTES)
        _not_text(path, sample)
        named = sep_line(sample)
        self.lead = 1 if named else 0  # a sep= line is no spreadsheet row
        if named and options.delimiter and named != options.delimiter:
            self.notes.append(f"{path}: its first line says sep={named}, but --delimiter "
                              f"{options.delimiter!r} was given; --delimiter wins")
        body = sample.split("\n", 1)[1] if named and "\n" in sample else sample
        self.delimiter = options.delimiter or named or sniff_delimiter(body)
        if len(self.delimiter) != 1:
            raise FileProblem(path, f"the delimiter must be one character, not {self.delimiter!r}")
        if damaged is not None:
            raise self._damage(damaged)
        self.header_row, header, self.data_start = self._header()
        self.header = [h.strip() for h in header]
        if self.encoding.quotes % 2:
            self._check_quotes()
        if self.encoding.note:
            self.notes.append(f"{path}: {self.encoding.note}; pass --encoding if that is wrong")
        if options.sheet is not None:
            self.notes.append(f"{path}: --sheet applies to workbooks only; ignored for this CSV file")

    def _open(self) -> io.BufferedReader:
        """The file as opened (`_held`), to read (closed by the caller). Where the system names
        an open file (Linux's /proc/self/fd), opened again: a place in it of its own; elsewhere
        the held file's descriptor, copied (its place shared: read by one reader at a time)."""
        fd = self._held.fileno()
        if _PROC_FD:
            return open(f"{_PROC_FD}/{fd}", "rb")  # noqa: SIM115 - closed by the caller
        return open(os.dup(fd), "rb")  # noqa: SIM115 - closed by the caller

    def stamp(self) -> tuple[int, int] | None:
        st = os.fstat(self._held.fileno())
        return st.st_size, st.st_mtime_ns

    def digest(self) -> str | None:
        return digest(f"{_PROC_FD}/{self._held.fileno()}") if _PROC_FD else digest(self.path)

    @contextmanager
    def _text(self, errors: str = "strict", start: int | None = None) -> Iterator[io.TextIOWrapper]:
        """The file as text from START (default: after the BOM)."""
        try:
            raw = self._open()
        except OSError as exc:
            raise FileProblem(self.path, f"can't be read ({exc.strerror})") from exc
        raw.seek(self.encoding.bom if start is None else start)
        text = io.TextIOWrapper(raw, self.encoding.codec, errors=errors, newline="")
        try:
            yield text
        finally:
            text.close()

    def _reader(self, lines: Iterator[str]) -> Iterator[list[str]]:
        return csv.reader(lines, delimiter=self.delimiter, quotechar='"', strict=False)

    def _header(self) -> tuple[int, list[str], int]:
        """(spreadsheet row, names, byte offset where the data rows start) of the header: the
        first non-blank record, a quoted line break in it being part of it (one row)."""
        consumed: list[str] = []
        with self._text() as text:
            try:
                for number, record in enumerate(self._reader(_lines(text, consumed)), start=1 - self.lead):
                    if number >= 1 and any(record):
                        taken = "".join(consumed).encode(self.encoding.codec)
                        return number, record, self.encoding.bom + len(taken)
            except csv.Error as exc:
                raise FileProblem(self.path, f"can't be read as CSV ({exc})") from exc
        raise FileProblem(self.path, "the file is empty: no header row (row 1 names the columns)")

    def _row_at(self, offset: int) -> int:
        """The spreadsheet row holding the byte at OFFSET (quoted line breaks stay in one row)."""
        with self._open() as f:
            f.seek(self.encoding.bom)
            prefix = f.read(max(0, offset - self.encoding.bom) + 1)
        text = prefix.decode(self.encoding.codec, "replace")
        rows = sum(1 for _ in csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))
        return max(1, rows - self.lead)

    def _damage(self, damage: encodings.Damaged) -> FileProblem:
        row = self._row_at(damage.offset)
        where = f"row {row}: byte 0x{damage.byte:02X} at offset {damage.offset}"
        if damage.forced:
            found = encodings.choose(self.path, None)
            hint = (f"leave out --encoding (it reads as {found.name})"
                    if isinstance(found, encodings.Encoding) else "pass the file's real --encoding")
            return FileProblem(self.path, f"{where} is not valid {damage.encoding.name}; {hint}")
        return FileProblem(
            self.path,
            f"{where} is not valid {damage.encoding.name}, though the rest of the file is; fix that "
            "cell (the export was damaged or mixed), or pass --encoding if the file is not UTF-8",
        )

    def _check_quotes(self) -> None:
        """A quote left open at the end of the file would make the rest of it one cell: a file
        problem naming the row where it opened (an odd number of quotes is the hint)."""
        end = "\x00etl-end\x00"
        with self._text() as text:
            lines = itertools.chain(iter(text.readline, ""), ["\n", end])
            last, number = None, 0
            for number, record in enumerate(self._reader(lines), start=1 - self.lead):  # noqa: B007
                last = record
        if last != [end]:
            raise FileProblem(
                self.path,
                f"row {number}: a quote opened in this row is never closed, so the rest of the "
                "file would be one cell; close it (or double a quote meant as text: \"\")",
            )

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "format": "csv", "encoding": self.encoding.name,
                "delimiter": self.delimiter}

    def chunks(self, rows: int | None = None) -> Iterator[RawChunk]:
        """The data rows in chunks of about ROWS (Arrow's reader needs about 20 times a block in
        memory, so blocks stay small and are put together here)."""
        block, done = self.options.block_bytes, 0
        while True:
            try:
                for chunk in _gather(self._blocks(block), rows or self.options.chunk_rows):
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
            ragged.append((self.header_row + row.number, row.text))  # numbered from the data start
            return "skip"

        if self.data_start >= self.size:
            return  # a header and nothing else (maybe not even a final line break)
        codec = self.encoding.codec
        with self._open() as raw:
            raw.seek(self.data_start)
            counter = _CountingReader(raw, codec)
            counter.done = self.data_start
            try:
                reader = arrow_csv.open_csv(
                    counter,
                    read_options=arrow_csv.ReadOptions(
                        use_threads=False,  # row numbers of ragged rows are known only then
                        block_size=block,
                        column_names=names,
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
            except (arrow.ArrowInvalid, UnicodeDecodeError) as exc:
                if "Empty CSV file" in str(exc):
                    return
                raise self._arrow_problem(exc) from exc
            following = self.header_row + 1  # the record number of the next row
            held: RawChunk | None = None
            rule: int | None = None  # the number of values the file's rows have as a rule
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (arrow.ArrowInvalid, UnicodeDecodeError) as exc:
                    raise self._arrow_problem(exc) from exc
                n = batch.num_rows
                candidates = np.arange(following, following + n + len(ragged), dtype=np.int64)
                numbers = candidates[~np.isin(candidates, [r for r, _ in ragged])][:n]
                last = int(numbers[-1]) if n else following - 1
                if rule is None:  # the rows read so far: the ragged ones past this batch too
                    rule = self._rule(n, ragged, width)
                here = [(r, t) for r, t in ragged if r <= last]
                ragged[:] = [(r, t) for r, t in ragged if r > last]
                following = last + 1
                chunk = self._merge(numbers, batch.columns, here, width, rule)
                chunk.read_to = counter.done
                if len(chunk):
                    if held is not None:
                        yield held
                    held = chunk  # the last one is checked before it is given
            if ragged:
                chunk = self._merge(np.empty(0, dtype=np.int64),
                                    [arrow.array([], arrow.string())] * width, ragged, width,
                                    rule if rule is not None else self._rule(0, ragged, width))
                if len(chunk):
                    if held is not None:
                        yield held
                    held = chunk
            if held is not None:
                self._check_last_row(held)
                yield held

    def _check_last_row(self, chunk: RawChunk) -> None:
        """A quote left open swallows every row after it into one cell of the file's last row
        (whatever the number of quotes in the file: a `27"` elsewhere makes it even), so a line
        break in a cell of the last row has the whole file checked as the csv module reads it."""
        for column in chunk.columns:
            last = column[len(column) - 1].as_py() or ""
            if "\n" in last or "\r" in last:
                self._check_quotes()
                return

    def _rule(self, n: int, ragged: list[tuple[int, str]], width: int) -> int | None:
        """The number of values most rows read so far have: N rows of the header's WIDTH, and
        the RAGGED ones (None: no row yet)."""
        lengths = Counter({width: n}) if n else Counter()
        for _, text in ragged:
            fields = self._fields(text)
            if any(fields):
                lengths[len(fields)] += 1
        return lengths.most_common(1)[0][0] if lengths else None

    def _merge(self, numbers: np.ndarray, columns: list[Any], ragged: list[tuple[int, str]],
               width: int, rule: int | None = None) -> RawChunk:
        """A batch's rows with its ragged rows put back in place, as one chunk."""
        columns = [c.combine_chunks() if isinstance(c, arrow.ChunkedArray) else c for c in columns]
        errors = _off_the_rule(columns, len(numbers), width, rule)
        if ragged:
            records = [self._fields(text) for _, text in ragged]
            unnamed = 0  # the header's last columns without a name (a trailing delimiter)
            while unnamed < width and not self.header[width - 1 - unnamed].strip():
                unnamed += 1
            extra = _chunk(np.asarray([r for r, _ in ragged], dtype=np.int64), records, width,
                           drop_blank=False, unnamed=unnamed, rule=rule)
            numbers = np.concatenate([numbers, extra.rows])
            order = np.argsort(numbers, kind="stable")
            numbers = numbers[order]
            take = arrow.array(order)
            columns = [arrow.concat_arrays([a, b]).take(take) for a, b in zip(columns, extra.columns,
                                                                              strict=True)]
            where = {int(old): new for new, old in enumerate(order)}
            base = len(order) - len(extra)
            errors = {where[i]: e for i, e in errors.items()}
            errors.update({where[base + i]: e for i, e in extra.shape_errors.items()})
        return _drop_blank(RawChunk(numbers, columns, errors))

    def _fields(self, text: str) -> list[str]:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter), [])

    def _arrow_problem(self, exc: Exception) -> Exception:
        message = str(exc)
        if "straddl" in message:
            return _RowTooLong()
        if "UTF8" in message or "decode" in message.lower():  # the file changed since it was checked
            return FileProblem(self.path, f"is no longer valid {self.encoding.name}")
        return FileProblem(self.path, f"can't be read as CSV ({message.splitlines()[0][:200]})")
