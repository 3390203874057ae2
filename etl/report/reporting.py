"""The per-row results CSV and summary.json that the contract fixes, written as the run goes,
and errors.csv beside them once the run is over.

Lines are written chunk by chunk with Arrow's CSV writer (the Python csv module would take
most of a dry run's time on a large file), in input order; `flush()` makes them durable.
errors.csv is cut from the finished results.csv, so it holds exactly what the report says.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv

from etl.outcomes import NEEDS_ACTION
from etl.report.cells import neutralise, neutralise_cell, restore_cell
from etl.texts import numbered

FIXED = ["source", "row", "outcome", "id", "http_status", "attempts", "errors"]

_WRITE = arrow_csv.WriteOptions(include_header=False, quoting_style="needed")


def _input_base(name: str) -> str:
    while name.endswith(" (input)"):
        name = name[: -len(" (input)")]
    return name


def report_names(own_columns: list[str]) -> dict[tuple[str, int], str]:
    """Input columns that get another name in the report: one named like a report column
    (`id`, `errors`, any case) becomes `id (input)`, so a reader going by name gets the report's
    own; a formula-looking name is neutralised like a cell. Both are undone exactly by
    `input_name` (a name that already ends in ` (input)` after a report column's name gets one
    more). Keyed by (name, namesakes before)."""
    fixed = {f.casefold() for f in FIXED}
    taken = {n.casefold() for n in own_columns} | fixed
    renamed = {}
    for key in numbered(own_columns):
        name = key[0]
        new = neutralise_cell(name)
        if _input_base(new).strip().casefold() in fixed:
            new = f"{new} (input)"
            taken.add(new.casefold())
        if new != name:
            renamed[key] = new
    return renamed


def input_name(name: str) -> str:
    """The input's own name of a report column renamed so as not to shadow a fixed one, or made
    safe from Excel: errors.csv is loaded again, and a row's identity goes by its header names."""
    fixed = {f.casefold() for f in FIXED}
    if name.endswith(" (input)") and _input_base(name).strip().casefold() in fixed:
        name = name[: -len(" (input)")]
    return restore_cell(name)


def sparse_text(n: int, texts: dict[int, str]) -> arrow.Array:
    """A text column of N cells, empty but at the positions TEXTS names, built from its
    buffers: no Python list of N strings to convert (most rows of a dry run have no problem)."""
    order = sorted(texts)
    encoded = [texts[i].encode("utf-8") for i in order]
    lengths = np.zeros(n + 1, dtype=np.int64)
    lengths[np.asarray(order, dtype=np.int64) + 1] = [len(e) for e in encoded]
    offsets = np.cumsum(lengths)
    if offsets[-1] >= 2**31:  # beyond Arrow's text offsets
        return arrow.array([texts.get(i, "") for i in range(n)], type=arrow.large_string())
    return arrow.StringArray.from_buffers(
        n, arrow.py_buffer(offsets.astype(np.int32)), arrow.py_buffer(b"".join(encoded)))


def _column(values: Sequence[Any] | None, n: int, type_: arrow.DataType) -> arrow.Array:
    if values is None:  # as text: empty cells either way, and Arrow writes text nulls faster
        return arrow.nulls(n, arrow.string())
    if isinstance(values, arrow.Array):
        return values
    return arrow.array(values, type=type_)


#: The report's own cells of one line, as `etl.outcomes.decide` says them: outcome, id,
#: http_status, attempts, errors.
Cells = tuple[str, int | None, int | None, int | None, str]


class ReportWriter:
    """Appends result lines in input order, a block at a time; `flush()` makes what was written
    durable (unless DURABLE is false: a dry run's report is made again by running it again).

    Given ERRORS (a path), it also cuts errors.csv as it goes: the same file `write_errors` would
    cut from the finished report, without reading the report again. `finish_errors()` publishes
    it as written (a dry run's outcomes are final when written). `finish(lines)` first makes both
    files again, whole and in file order, with LINES said anew (an import's rows whose fate was
    decided later in the run): the blocks that hold them are read back and written again, the
    others copied as they are, and each file replaces its old self at once.
    """

    def __init__(self, path: str, own_columns: list[str], errors: str | None = None,
                 durable: bool = True, errors_dialect: Dialect | None = None,
                 headed: bool = True, anonymous: bool = False, reasons: Collection[int] = ()) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.own_columns = own_columns
        self.anonymous = anonymous  # files without a name (beside PATH): gone with the process
        self._file = _anonymous(path) if anonymous else open(path, "wb")  # noqa: SIM115 - closed in close()
        header = io.StringIO()
        names = report_names(own_columns)
        own = [names.get(key, name) for key, name in zip(numbered(own_columns), own_columns, strict=True)]
        csv.writer(header, lineterminator="\n").writerow(FIXED + own)
        if headed:
            self._file.write(header.getvalue().encode("utf-8"))
        self.width = len(FIXED) + len(own)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="report")
        self._writing: Future[None] | None = None
        self._errors = _ErrorsFile(errors, FIXED + own, durable=durable, dialect=errors_dialect,
                                   headed=headed, anonymous=anonymous,
                                   reasons=reasons) if errors is not None else None
        self.durable = durable
        self.attention: Attention | None = None
        # where each block written ends in either file, how many lines it has and how many of
        # them need action: what `finish` copies as it is
        self._head = (self._file.tell(), self._errors.tell() if self._errors is not None else 0)
        self._blocks: list[tuple[int, int, int, int]] = []

    def write(
        self,
        source: str,
        rows: np.ndarray,
        outcomes: Sequence[str],
        errors: Sequence[str] | arrow.Array,
        own: Sequence[arrow.Array | None],
        ids: Sequence[Any] | None = None,
        statuses: Sequence[Any] | None = None,
        attempts: Sequence[Any] | None = None,
    ) -> None:
        """One line per row; `own` is one column per own column (None: the file lacks it)."""
        n = len(rows)
        if not n:
            return
        fixed = [  # taken now: a caller may reuse its arrays once this returns
            arrow.repeat(arrow.scalar(source, arrow.string()), n),
            arrow.array(rows, type=arrow.int64()),
            _column(outcomes, n, arrow.string()),
            _column(ids, n, arrow.int64()),
            _column(statuses, n, arrow.int64()),
            _column(attempts, n, arrow.int64()),
        ]
        self._wait()
        # the rest is built and written by the writer's thread (Arrow lets go of the GIL): the
        # next chunk is checked meanwhile
        errors = errors if isinstance(errors, arrow.Array) else list(errors)
        self._writing = self._pool.submit(self._write, fixed, errors, list(own))

    def _write(self, fixed: list[arrow.Array], errors: list[str] | arrow.Array,
               own: list[arrow.Array | None]) -> None:
        n = len(fixed[0])
        columns = [
            *fixed,
            errors if isinstance(errors, arrow.Array) else arrow.array(errors, type=arrow.string()),
            *(
                arrow.nulls(n, arrow.string()) if c is None else neutralise(c)
                for c in own
            ),
        ]
        table = arrow.Table.from_arrays(columns, names=[str(i) for i in range(len(columns))])
        try:
            arrow_csv.write_csv(table, self._file, _WRITE)
        except OSError as exc:  # Arrow's write errors name no file: the operator needs to know which
            if exc.filename is None:
                exc.filename = self.path
            raise
        needs = self._errors.add(table) if self._errors is not None else 0
        self._blocks.append((self._file.tell(), self._errors.tell() if self._errors is not None else 0,
                             n, needs))

    def _wait(self) -> None:
        if self._writing is not None:
            self._writing.result()
            self._writing = None

    def flush(self, sync: bool = True) -> None:
        """What was written, handed to the system; with SYNC (and a durable report), on disk."""
        self._wait()
        self._file.flush()
        if sync and self.durable:
            os.fsync(self._file.fileno())

    @classmethod
    def ahead(cls, path: str, own_columns: list[str], errors: str | None = None,
              reasons: Collection[int] = ()) -> ReportWriter:
        """A writer of the lines that come after all the report's writer (of PATH, ERRORS) will
        write before its `append`: into files of their own beside them, without a header or a
        name (a run stopped at once leaves nothing of them)."""
        return cls(path, own_columns, errors=errors, durable=False, headed=False, anonymous=True,
                   reasons=reasons)

    def append(self, other: ReportWriter) -> None:
        """The lines OTHER (made by `ahead`) wrote, after the lines written so far; OTHER's
        files are then removed."""
        other.flush(sync=False)
        self.flush(sync=False)
        at, at_e = self._file.tell(), self._errors.tell() if self._errors is not None else 0
        _Copy(other._file, _Raw(self._file)).to(None)
        self._file.seek(0, os.SEEK_END)
        if self._errors is not None and other._errors is not None:
            other._errors.out.flush()
            _Copy(other._errors.out, _Raw(self._errors.out)).to(None)
            self._errors.out.seek(0, os.SEEK_END)
            mine, theirs = self._errors.attention, other._errors.attention
            mine.total += theirs.total
            mine.first.extend(theirs.first[: max(0, self._errors.limit - len(mine.first))])
        self._blocks.extend((end + at, end_e + at_e, n, needs) for end, end_e, n, needs in other._blocks)
        other.discard()

    def discard(self) -> None:
        """Close and remove this writer's files (lines written ahead, not wanted after all)."""
        try:
            self.close()
        finally:
            if not self.anonymous:
                with contextlib.suppress(OSError):
                    os.remove(self.path)

    def close(self, sync: bool = True) -> None:
        """Close the report (an errors.csv not published by `finish_errors` is dropped); SYNC:
        made durable first (a durable report)."""
        if not self._file.closed:
            try:
                self.flush(sync)
            finally:
                self._pool.shutdown()
                self._file.close()
                if self._errors is not None and self.attention is None:
                    self._errors.discard()

    def finish_errors(self, sync: bool = True) -> Attention | None:
        """Close the report (SYNC: made durable first), then publish errors.csv: the rows that
        need action, as written."""
        if self._file.closed:
            return self.attention
        try:
            self._wait()
        finally:
            self._pool.shutdown()
        if self._errors is not None:
            self.attention = self._errors.publish()
        self.close(sync)
        return self.attention

    def finish(self, lines: dict[int, Cells], sync: bool = True) -> Attention | None:
        """Both files made again whole, with LINES (by index, 0 the first after the header) said
        as given; then errors.csv is published (see the class). Not SYNC: the report as written
        is not made durable at the end (lines made again always are, in a durable report)."""
        if self._file.closed or not lines:
            return self.finish_errors(sync)
        try:
            self.flush(sync=False)
        finally:
            self._pool.shutdown()
        self._file.close()
        try:
            self._remake(lines)
        except BaseException:  # the report stays as written during the run; no errors.csv
            leftovers = [self.path + ".tmp"]
            if self._errors is not None:
                self._errors.close()
                leftovers += [self._errors.tmp, self._errors.tmp + ".was"]
            for leftover in leftovers:
                with contextlib.suppress(OSError):
                    os.remove(leftover)
            raise
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by finish_errors
        return self.finish_errors()

    def _remake(self, lines: dict[int, Cells]) -> None:
        ends = np.cumsum([b[2] for b in self._blocks])
        touched: dict[int, dict[int, Cells]] = {}
        for index, cells in lines.items():
            block = int(np.searchsorted(ends, index, side="right"))
            touched.setdefault(block, {})[index - int(ends[block] - self._blocks[block][2])] = cells
        errors = self._errors
        old_errors = None
        if errors is not None:
            errors.close()
            old_errors = errors.tmp + ".was"
            os.replace(errors.tmp, old_errors)
            errors.reopen()
        tmp = self.path + ".tmp"
        made: dict[int, arrow.Table] = {}
        with open(self.path, "rb", buffering=0) as old, open(tmp, "wb", buffering=0) as new, \
                open(old_errors or os.devnull, "rb", buffering=0) as old_e:
            report, cut = _Copy(old, new), _Copy(old_e, errors.out if errors is not None else None)
            for block in sorted(touched):
                (start, start_e) = self._head if block == 0 else self._blocks[block - 1][:2]
                end, end_e, n, _ = self._blocks[block]
                report.to(start)
                cut.to(start_e)
                table = _said(_read_block(old, start, end, self.width), touched[block])
                arrow_csv.write_csv(table, new, _WRITE)
                report.skip(end)
                cut.skip(end_e)
                needs = errors.add(table) if errors is not None else 0
                self._blocks[block] = (end, end_e, n, needs)
                made[block] = table
            report.to(None)
            cut.to(None)
            if self.durable:
                os.fsync(new.fileno())
            if errors is not None:
                errors.attention = Attention(errors.attention.path,
                                             sum(b[3] for b in self._blocks))
                self._first_needing_action(old, made, errors.attention, errors.limit)
        os.replace(tmp, self.path)
        if old_errors is not None:
            os.remove(old_errors)

    def _first_needing_action(self, old: Any, made: dict[int, arrow.Table], attention: Attention,
                              limit: int) -> None:
        """The first lines that need action, for the terminal: from the blocks made again, or
        read back from the report as written."""
        for block, (end, _, _, needs) in enumerate(self._blocks):
            if len(attention.first) >= limit:
                return
            if not needs:
                continue
            table = made.get(block)
            if table is None:
                start = self._head[0] if block == 0 else self._blocks[block - 1][0]
                table = _read_block(old, start, end, self.width)
            attention.first.extend(_needing_action(table, limit - len(attention.first)))


def _anonymous(beside: str) -> Any:
    """A file without a name in the folder of BESIDE (read and written): removed by the system
    when it is closed, or when the process ends, however it ends."""
    return tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(beside)))


class _Raw:
    """A buffered file's raw file, flushed first: what `_Copy` writes into."""

    def __init__(self, f: Any) -> None:
        f.flush()
        self.f = f

    def fileno(self) -> int:
        return int(self.f.fileno())

    def write(self, data: bytes) -> int:
        return int(self.f.write(data))


class _Copy:
    """Bytes of SRC copied to DST (both unbuffered) up to a place, or passed over: by the kernel
    where it can (no bytes through Python), else read and written."""

    def __init__(self, src: Any, dst: Any) -> None:
        self.src, self.dst, self.at = src, dst, 0
        self.kernel = hasattr(os, "copy_file_range")

    def to(self, end: int | None) -> None:
        """Up to END (None: the end of SRC)."""
        if self.dst is None:
            return
        if end is None:
            end = os.fstat(self.src.fileno()).st_size
        while self.at < end and self.kernel:
            try:
                done = os.copy_file_range(self.src.fileno(), self.dst.fileno(), end - self.at, self.at)
            except OSError:  # a file system or kernel that can't: the bytes go through Python
                self.kernel = False
                break
            if not done:
                return
            self.at += done
        self.src.seek(self.at)
        while self.at < end and (data := self.src.read(min(end - self.at, 1 << 22))):
            self.dst.write(data)
            self.at += len(data)

    def skip(self, end: int) -> None:
        self.at = end


_NUMBERS = ("1", "3", "4", "5")  # row, id, http_status, attempts


def _read_block(f: Any, start: int, end: int, width: int) -> arrow.Table:
    """Lines of a report as written (bytes START to END of F), each cell as it was: a number a
    number, an empty text (quoted) empty, a missing cell (not quoted) null; so that writing them
    again gives the same bytes."""
    f.seek(start)
    data = f.read(end - start)
    names = [str(i) for i in range(width)]
    return arrow_csv.read_csv(
        io.BytesIO(data),
        read_options=arrow_csv.ReadOptions(column_names=names, block_size=max(1 << 20, len(data) + 1),
                                           use_threads=False),
        parse_options=arrow_csv.ParseOptions(newlines_in_values=True),
        convert_options=arrow_csv.ConvertOptions(
            column_types={n: arrow.int64() if n in _NUMBERS else arrow.string() for n in names},
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False),
    )


def _said(table: arrow.Table, lines: dict[int, Cells]) -> arrow.Table:
    """TABLE (a block of the report) with the lines at the positions LINES names said anew."""
    said = [table.column(i).to_pylist() for i in range(2, 7)]
    for pos, cells in lines.items():
        for column, value in zip(said, cells, strict=True):
            column[pos] = value
    types = (arrow.string(), arrow.int64(), arrow.int64(), arrow.int64(), arrow.string())
    columns = [table.column(i) for i in range(table.num_columns)]
    columns[2:7] = [arrow.array(c, type=t) for c, t in zip(said, types, strict=True)]
    return arrow.Table.from_arrays(columns, names=table.column_names)


def _needing_action(table: arrow.Table | arrow.RecordBatch, limit: int) -> list[tuple[str, int, str, str]]:
    """(source, row, outcome, errors) of the first LIMIT lines of TABLE that need action."""
    picked = table.filter(pc.is_in(table.column(2), value_set=_NEEDS_ACTION)).slice(0, limit)
    return list(zip(picked.column(0).to_pylist(), (int(r) for r in picked.column(1).to_pylist()),
                    picked.column(2).to_pylist(), picked.column(6).to_pylist(), strict=True))


def write_summary(path: str, summary: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


@dataclass
class Attention:
    """The rows that need action: how many, where errors.csv is, and the first few of them."""

    path: str
    total: int = 0
    first: list[tuple[str, int, str, str]] = field(default_factory=list)  # source, row, outcome, errors


@dataclass(frozen=True)
class Dialect:
    """How errors.csv is written: the input's own encoding (BOM included) and delimiter, so the
    spreadsheet that made the export opens it the same way (accents and all)."""

    codec: str = "utf-8"
    bom: bytes = b""
    delimiter: str = ","


#: errors.csv of a workbook, or of inputs that differ: what Excel opens right anywhere
EXCEL = Dialect("utf-8", codecs.BOM_UTF8, ",")
PLAIN = Dialect()


class _ErrorsFile:
    """errors.csv being cut from a results CSV, batch by batch: the rows that need action, in
    the input's own columns with `errors` last (an `errors` column of the input, from an earlier
    errors.csv, is the old reasons and is dropped). Written to a temporary file until published,
    then in the input's dialect. Cells stay as the report has them, formulas made text (a
    leading `'`), which etl undoes exactly when it reads an errors.csv back (`restore`)."""

    def __init__(self, path: str, header: list[str], limit: int = 10, durable: bool = True,
                 dialect: Dialect | None = None, headed: bool = True, anonymous: bool = False,
                 reasons: Collection[int] = ()) -> None:
        self.dialect = dialect or PLAIN
        # REASONS: the own columns that are an earlier errors.csv's reasons (the report calls
        # them `errors (input)`), replaced by the new reasons; any other column is the file's own
        self.own = [i for i in range(len(FIXED), len(header)) if i - len(FIXED) not in reasons]
        self.attention = Attention(path)
        self.limit = limit
        self.durable = durable
        self.tmp = path + ".tmp"
        self.anonymous = anonymous
        self._out: Any = _anonymous(path) if anonymous else open(self.tmp, "wb")  # noqa: SIM115
        head = io.StringIO()
        csv.writer(head, lineterminator="\n").writerow([input_name(header[i]) for i in self.own]
                                                       + ["errors"])
        if headed:
            self._out.write(head.getvalue().encode("utf-8"))

    def add(self, batch: arrow.Table | arrow.RecordBatch) -> int:
        """The lines of BATCH (all the report's columns, by position) that need action; how many."""
        picked = batch.filter(pc.is_in(batch.column(2), value_set=_NEEDS_ACTION))
        if not picked.num_rows:
            return 0
        attention = self.attention
        attention.total += picked.num_rows
        if len(attention.first) < self.limit:
            attention.first.extend(_needing_action(picked, self.limit - len(attention.first)))
        # a cell the report leaves empty is an empty cell here, whatever it was in memory; a
        # formula stays text, as in the report (undone when etl reads the file back)
        table = arrow.Table.from_arrays(
            [pc.fill_null(picked.column(i), "") for i in self.own] + [picked.column(6)],
            names=[str(i) for i in range(len(self.own) + 1)])
        arrow_csv.write_csv(table, self._out, _WRITE)
        return int(picked.num_rows)

    @property
    def out(self) -> Any:
        return self._out

    def tell(self) -> int:
        return int(self._out.tell())

    def close(self) -> None:
        self._out.close()

    def reopen(self) -> None:
        """A new, empty file in place of the one written so far (moved away by the caller), not
        buffered: bytes are copied into it by the kernel too."""
        self._out = open(self.tmp, "wb", buffering=0)  # noqa: SIM115 - closed in publish() or discard()

    def publish(self) -> Attention:
        if self.dialect != PLAIN:
            self._out.close()
            self._out = self._recoded()
        self._out.flush()
        if self.durable:
            os.fsync(self._out.fileno())
        self._out.close()
        os.replace(self.tmp, self.attention.path)
        return self.attention

    def _recoded(self) -> Any:
        """The UTF-8, comma-separated file written so far, again in the input's dialect; what
        the encoding can't hold (only in the reasons: the cells came from a file in it) becomes
        `?`."""
        os.replace(self.tmp, self.tmp + "0")
        out = open(self.tmp, "wb")  # noqa: SIM115 - closed in publish()
        out.write(self.dialect.bom)
        with open(self.tmp + "0", newline="", encoding="utf-8") as src:
            text = io.TextIOWrapper(out, self.dialect.codec, errors="replace", newline="",
                                    write_through=True)
            writer = csv.writer(text, delimiter=self.dialect.delimiter, lineterminator="\n")
            for line in csv.reader(src):
                writer.writerow(line)
            text.flush()
            text.detach()
        os.remove(self.tmp + "0")
        return out

    def discard(self) -> None:
        self._out.close()
        if not self.anonymous:
            with contextlib.suppress(OSError):
                os.remove(self.tmp)


_NEEDS_ACTION = arrow.array(NEEDS_ACTION)


def write_errors(report: str, path: str, *, limit: int = 10, expected: int | None = None,
                 dialect: Dialect | None = None, reasons: Collection[int] = ()) -> Attention:
    """errors.csv at PATH: the report's rows that need action, in the input's own columns with
    `errors` last, ready to fix and import again (REASONS: the own columns that are an earlier
    errors.csv's reasons, replaced). Cells are as in the report, formulas made
    text; the file is in DIALECT (the input's encoding and delimiter).

    EXPECTED, when the run's counts say no row needs action, spares reading the report again.
    """
    with open(report, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), FIXED)
    errors = _ErrorsFile(path, header, limit, dialect=dialect, reasons=reasons)
    if expected != 0:
        for batch in results_batches(report, len(header)):
            errors.add(batch)
    return errors.publish()


def results_batches(report: str, width: int | None = None) -> Iterator[arrow.RecordBatch]:
    """The lines of a results CSV as Arrow record batches of text, columns named by position
    (an input may repeat a column name), a batch at a time so memory stays flat."""
    if width is None:
        with open(report, newline="", encoding="utf-8") as f:
            width = len(next(csv.reader(f), FIXED))
    names = [str(i) for i in range(width)]
    reader = arrow_csv.open_csv(
        report,
        # half a megabyte a block, read in this thread: a migration night's report has a line
        # for each of millions of rows, and larger blocks read ahead cost 160 MB for nothing
        read_options=arrow_csv.ReadOptions(skip_rows_after_names=1, column_names=names,
                                           block_size=1 << 19, use_threads=False),
        parse_options=arrow_csv.ParseOptions(newlines_in_values=True),
        convert_options=arrow_csv.ConvertOptions(
            column_types={n: arrow.string() for n in names}, strings_can_be_null=False),
    )
    yield from reader
