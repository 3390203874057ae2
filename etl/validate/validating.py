"""Matching a file's headers to a resource, and checking every row against its pandera schema.

pandera decides. Each cell is first read as its column's kind of value (`etl.validate.values`: a cell
that is not a number is invalid with a plain message, a blank one is null); then every row is
held to `SCHEMA`: a blank in a column that is not nullable, and every check of a column or of
the whole frame, make it invalid. The built-in checks etl can run as Arrow kernels
(`etl.validate.kernels`) are run first, over whole columns, and pass most rows outright; pandera checks
the rest, and runs every other check on every row. Every failing cell of every row is turned
into a plain-words message (`CreditUsed: "150" is larger than 100`), never a pandera check name.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.errors import FileProblem
from etl.fields import shown
from etl.read.reading import CHUNK_ROWS, RawChunk
from etl.validate.kernels import Kernel, compile_check
from etl.validate.lazy import pandera
from etl.validate.resources import Field, Resource, SchemaProblem, header_key, reasons_at
from etl.validate.rules import _builtin, failure, label, rule
from etl.validate.values import Kind, Parsed, value

if TYPE_CHECKING:
    import pandas as pd

SEPARATOR = " | "


@dataclass(frozen=True)
class ColumnMap:
    """Where each of the resource's fields sits in one file's header."""

    header: list[str]
    positions: dict[str, int]  # field name -> column position
    unknown: list[str]  # headers that are no field: kept in the report, never sent
    path: str = ""  # the file's
    #: numbers grouped with dots (1.500) are ambiguous here: a ";"-separated file, read with
    #: the decimal mark not said
    dots_ambiguous: bool = False


def match_columns(
    path: str, header: list[str], resource: Resource, renames: dict[str, str] | None = None
) -> ColumnMap:
    """Match headers ignoring case, spaces, `_` and `-`; `renames` (from --map) come first."""
    renamed = {header_key(src): dst for src, dst in (renames or {}).items()}
    positions: dict[str, int] = {}
    unknown: list[str] = []
    reasons = reasons_at(header)
    for pos, name in enumerate(header):
        target = renamed.get(header_key(name)) or resource.match(name)
        if target is None:
            if pos != reasons:  # an errors.csv's reasons: etl's own, nothing to say
                unknown.append(name)
            continue
        if target in positions:
            first = header[positions[target]]
            raise FileProblem(
                path,
                f"columns {shown(first)} and {shown(name)} both name {target}; "
                "remove one, or give the other a new name with --map SOURCE=TARGET",
            )
        positions[target] = pos
    missing = [f for f in resource.required if f not in positions]
    if missing:
        found = ", ".join(shown(h, 40) for h in header[:20]) or "none"
        if len(header) > 20:
            found += f", … ({len(header)} in all)"
        raise FileProblem(
            path,
            f"required column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)} "
            f"(found {found}); if one of them has another name, pass "
            f"--map SOURCE={missing[0]}",
        )
    if resource.schema.strict is True and unknown:  # "filter" drops them, as etl does anyway
        raise FileProblem(
            path,
            f"column{'s' if len(unknown) > 1 else ''} not in the schema, which is strict: "
            f"{', '.join(shown(h, 40) for h in unknown[:20])}; remove "
            f"{'them' if len(unknown) > 1 else 'it'}, or name the schema column with --map SOURCE=TARGET",
        )
    return ColumnMap(header, positions, unknown, path)


def valid_rows(n: int, problems: dict[int, str]) -> np.ndarray:
    """Which of N rows are valid, given the problems of the others."""
    valid = np.ones(n, dtype=bool)
    valid[np.fromiter(problems, dtype=np.int64, count=len(problems))] = False
    return valid


@dataclass(frozen=True)
class _Plan:
    """How one column is checked: its field, its pandera column, its checks compiled to
    kernels, and whether that is all of them (else pandera runs on every row of it)."""

    field: Field
    column: Any
    kernels: tuple[Kernel, ...]
    compiled: bool

    @property
    def idle(self) -> bool:
        """Nothing to check: optional text with no checks (every cell is good)."""
        return self.field.kind is Kind.TEXT and self.field.nullable and not self.column.checks


class Validator:
    """Checks chunks of one resource's rows against its schema and turns the valid ones into
    payloads."""

    def __init__(self, resource: Resource, decimal: str = ".", *, fast: bool = True) -> None:
        """FAST: run the checks etl knows as Arrow kernels first (False: pandera checks every
        row of every column; the answers are the same, which a test holds them to)."""
        self.resource = resource
        self.decimal = decimal
        self.fast = fast
        self.schema = resource.schema
        self._plans = []
        for f in resource.fields:
            column = _deciding(self.schema.columns[f.name])
            kernels = [compile_check(c, f.kind) if fast else None for c in column.checks]
            self._plans.append(_Plan(f, column, tuple(k for k in kernels if k is not None),
                                     all(k is not None for k in kernels)))
        self._rank = {p.field.name: i for i, p in enumerate(self._plans)}
        self._wide = list(self.schema.checks)
        self._alone: set[int] = set()  # the checks found to answer for each row alone (by id)
        self._big = False  # the chunk being checked is of a file of more than ONE_PIECE rows
        self._first_rows: dict[int, int] = {}  # each file's first row (by its ColumnMap)
        #: the checks that only warn (raise_warning=True), each with the rows that fail it and
        #: the first of them ("file row N"); the run tells them (RunRecord.warnings)
        self.warnings: dict[str, list[Any]] = {}
        self._warned: list[tuple[int, str]] = []  # this chunk's: (position, the check)
        self._warned_chunks: set[tuple[str, int, int]] = set()  # chunks counted (read twice: once)
        _register_backends()
        self._importing: threading.Thread | None = None

    def prepare(self) -> None:
        """Import pandera (and pandas) in the background while the first rows are read (the
        schema of a resource loaded by `etl.validate.resources` has imported it already)."""
        if self._importing is None:
            self._importing = threading.Thread(target=pandera, name="import-pandera", daemon=True)
            self._importing.start()

    def done(self) -> None:
        """Wait for `prepare()`'s import: an interpreter must not exit in the middle of one."""
        if self._importing is not None:
            self._importing.join()

    def cells(self, chunk: RawChunk, position: int) -> arrow.Array:
        """A column as the validator reads it: a workbook's number cells (written with a dot)
        take the decimal mark asked for, since they are numbers, not text in some locale."""
        column = chunk.columns[position]
        numeric = chunk.numeric[position] if chunk.numeric is not None else None
        if self.decimal == "." or numeric is None or not numeric.any():
            return column
        swapped = pc.replace_substring(column, ".", self.decimal)
        return pc.if_else(arrow.array(numeric), swapped, column)

    def errors(self, chunk: RawChunk, columns: ColumnMap) -> tuple[list[str], np.ndarray]:
        """Per row, its problems joined with ` | ` ("" when valid); and which rows are valid."""
        texts, valid = self.verdicts(chunk, columns)
        errors = [""] * len(chunk)
        for pos, text in texts.items():
            errors[pos] = text
        return errors, valid

    def verdicts(self, chunk: RawChunk, columns: ColumnMap) -> tuple[dict[int, str], np.ndarray]:
        """The text of the report's `errors` cell of each row that has one (by position), and
        which rows are valid."""
        problems = self.problems(chunk, columns)
        return problems, valid_rows(len(chunk), problems)

    def parsed(self, chunk: RawChunk, columns: ColumnMap, name: str) -> Parsed:
        """The values of column NAME of CHUNK."""
        return Parsed(self.resource.field(name).kind, self.cells(chunk, columns.positions[name]),
                      self.decimal, dots_ambiguous=columns.dots_ambiguous)

    def problems(self, chunk: RawChunk, columns: ColumnMap) -> dict[int, str]:
        """The rows with problems (position in the chunk), each with them joined by ` | `:
        the row's shape, then each column's (in the schema's order), then the frame's checks.
        A check that fails to run (or is seen to look across rows) stops the command with the
        file and rows it was given."""
        self._warned = []
        try:
            found = self._problems(chunk, columns)
            self._tell_warnings(chunk, columns)
            return found
        except SchemaProblem as exc:
            where = [columns.path or "the file"]
            if len(chunk):
                first, last = int(chunk.rows[0]), int(chunk.rows[-1])
                where.append(f"rows {first} to {last}" if len(chunk) > 1 else f"row {first}")
            raise SchemaProblem(f"{' '.join(where)}: {exc}") from exc

    def _tell_warnings(self, chunk: RawChunk, columns: ColumnMap) -> None:
        """The rows of this chunk that fail a check that only warns, counted (once a chunk)."""
        if not self._warned or not len(chunk):
            return
        key = (columns.path, int(chunk.rows[0]), len(chunk))
        if key in self._warned_chunks:
            return
        self._warned_chunks.add(key)
        for pos, what in sorted(self._warned):
            first = f"{columns.path or 'the file'} row {int(chunk.rows[pos])}"
            told = self.warnings.setdefault(what, [0, first])
            told[0] += 1

    def _warn(self, rows: Any, what: str) -> None:
        self._warned.extend((int(pos), what) for pos in rows)

    def _problems(self, chunk: RawChunk, columns: ColumnMap) -> dict[int, str]:
        found: list[tuple[int, int, int, str]] = []  # (row, rank, order, message)
        # a file of more than ONE_PIECE rows is checked a chunk at a time (`_each_row_alone`):
        # a chunk of more rows, or one after its file's first
        first = self._first_rows.setdefault(id(columns), int(chunk.rows[0]) if len(chunk) else 0)
        self._big = len(chunk) > ONE_PIECE or (bool(len(chunk)) and int(chunk.rows[0]) != first)
        for pos, message in chunk.shape_errors.items():
            found.append((pos, -1, 0, message))
        parsed: dict[str, Parsed] = {}
        unreadable = np.zeros(len(chunk), dtype=bool)
        named: dict[int, list[tuple[int, str]]] = {}  # column -> (row, message) the reader gave
        for pos, cells in chunk.cell_errors.items():
            for j, message in cells:
                named.setdefault(j, []).append((pos, message))
        for plan in self._plans:
            name = plan.field.name
            if name not in columns.positions:
                continue
            rank = self._rank[name]
            told = np.zeros(len(chunk), dtype=bool)  # cells the reader says what is wrong with
            for pos, message in named.get(columns.positions[name], ()):
                found.append((pos, rank, 0, message))
                told[pos] = unreadable[pos] = True
            if plan.idle and not self._wide:
                continue
            p = parsed[name] = self.parsed(chunk, columns, name)
            for pos, problem in p.problems.items():
                if not told[pos]:
                    found.append((pos, rank, 0, f"{name}: {problem}"))
                    unreadable[pos] = True
            if plan.idle:
                continue
            if plan.compiled:  # the rows the kernels are sure of pass; pandera sees the others
                sure = p.ok.copy()
                for kernel in plan.kernels:
                    sure &= kernel(p)
                if plan.field.nullable:
                    sure |= p.blank
                rows = np.flatnonzero(~sure & (p.ok | p.blank) & ~told)
            else:
                rows = np.flatnonzero((p.ok | p.blank) & ~told)
            if len(rows):
                found.extend(self._column_problems(plan, p, rows))
        found.extend(self._not_unique(chunk, columns, parsed, unreadable))
        if self._wide and len(chunk):
            found.extend(self._frame_problems(chunk, columns, parsed, unreadable))
        # found in the order a row's problems read: its shape, the columns in the schema's order
        # (each: unreadable or blank, then its checks in order), the frame's checks
        problems: dict[int, list[str]] = {}
        for pos, _, _, message in found:
            items = problems.get(pos)
            if items is None:
                problems[pos] = [message]
            elif message not in items:
                items.append(message)
        return {pos: SEPARATOR.join(items) for pos, items in problems.items()}

    def _series(self, field: Field, p: Parsed, rows: np.ndarray) -> pd.Series:
        """The values of ROWS as the pandas series of the column's declared dtype."""
        import pandas as pd

        index = pd.Index(rows)
        if field.kind is Kind.INTEGER:
            data = p.raw.take(arrow.array(rows, type=arrow.int64())).to_numpy(zero_copy_only=False)
            return pd.Series(pd.arrays.IntegerArray(data.astype(np.int64), ~p.ok[rows]), index=index)
        values = p.exact(rows)
        series = pd.Series(values, index=index, dtype=object)
        dtype = self.schema.columns[field.name].dtype
        return series if dtype is None or field.kind is Kind.AMOUNT else dtype.coerce(series)

    def _column_problems(self, plan: _Plan, p: Parsed, rows: np.ndarray) -> list[tuple[int, int, int, str]]:
        """What pandera finds in the column of PLAN at ROWS: a blank where the column is not
        nullable, and each of its checks, run by pandera's own check backend on the column's
        values (a check grouped by another column goes through the column's validation)."""
        name = plan.field.name
        series = self._series(plan.field, p, rows)
        checks = list(plan.column.checks)
        rank = self._rank[name]
        out: list[tuple[int, int, int, str]] = []
        blank = ~p.ok[rows]  # the rows handed to pandera are values or blanks
        if not plan.field.nullable:
            out.extend((int(pos), rank, 0, f"{name}: is required") for pos in rows[blank])
        # a check that ignores nulls (the default) is given the values only, as pandera would
        # give them (telling null from value again, a million Decimals at a time, is slow)
        values = series[~blank] if blank.any() else series
        for number, check in enumerate(checks):
            given = values if check.ignore_na else series
            if check.raise_warning:  # pandera only warns of it: no row is invalid, the run tells them
                self._warn_of(check, given, series.index, f"{name}: {rule(check)}")
                continue
            try:
                output = check(given).check_output
            except Exception as exc:
                raise SchemaProblem(f"column {name}: the check {label(check)} failed to run: "
                                    f"{_reason(exc)}") from exc
            self._each_row_alone(check, given, f"column {name}: the check {label(check)}",
                                 bool((plan.column.metadata or {}).get("row_by_row")), f"column {name}")
            bad = _failing(output, given.index, series.index)
            if bad is None:
                raise SchemaProblem(f"column {name}: the check {label(check)} {_OTHER_ROWS}")
            if not len(bad):
                continue
            if _one_answer(output):  # the column as a whole fails it
                out.extend((int(pos), rank, 1 + number, f"{name}: the column fails {label(check)}")
                           for pos in bad)
                continue
            cells = p.cells.take(arrow.array(bad, type=arrow.int64())).to_pylist()
            message = failure(check)
            out.extend((pos, rank, 1 + number, f"{name}: {message(shown(cell or ''), v)}")
                       for pos, cell, v in zip(bad.tolist(), cells, series.loc[bad].tolist(), strict=True))
        return out

    def _frame_problems(self, chunk: RawChunk, columns: ColumnMap, parsed: dict[str, Parsed],
                        unreadable: np.ndarray | None = None) -> list[tuple[int, int, int, str]]:
        """What the schema's DataFrame-wide checks find in the chunk's rows: every column of the
        schema (a column the file lacks as all blank, a cell that could not be read as blank:
        its row is invalid already, UNREADABLE, and what the checks say of it is not added),
        and the file's other columns as text (blank: None), as pandera gives a frame check
        the columns it does not know."""
        import pandas as pd

        rows = np.arange(len(chunk))
        data: dict[str, Any] = {}
        for plan in self._plans:
            name = plan.field.name
            if name in columns.positions:
                p = parsed.get(name) or self.parsed(chunk, columns, name)
            else:
                p = Parsed(plan.field.kind, arrow.nulls(len(chunk), arrow.string()), self.decimal)
            data[name] = self._series(plan.field, p, rows)
        taken = set(columns.positions.values())
        reasons = reasons_at(columns.header)  # an errors.csv's: etl's own column, not the file's
        others = [] if self.schema.strict == "filter" else columns.header  # pandera drops them first
        for at, header in enumerate(others):
            if at not in taken and header and at < len(chunk.columns) and at != reasons:
                name, k = header, 0
                while name in data:  # a header the file has twice: Note, Note.1, as pandas reads it
                    k += 1
                    name = f"{header}.{k}"
                texts = chunk.columns[at].to_pylist()
                data[name] = pd.Series([t if t else None for t in texts], index=rows, dtype=object)
        frame = pd.DataFrame(data, index=pd.Index(rows))
        out: list[tuple[int, int, int, str]] = []
        rank = len(self._plans)
        for number, check in enumerate(self._wide):
            if check.raise_warning:  # pandera only warns of it: no row is invalid, the run tells them
                self._warn_of(check, frame, frame.index, f"row: {label(check)}", unreadable)
                continue
            given = frame
            try:
                output = check(frame).check_output
            except Exception as exc:
                # a check that can't take the blank given for a cell that could not be read (its
                # column never blank otherwise): given the rows whose cells were all read
                some = unreadable is not None and unreadable.any() and not unreadable.all()
                given = frame[~unreadable] if some and unreadable is not None else None
                try:
                    output = check(given).check_output if given is not None else None
                except Exception:
                    given = None
                if given is None:
                    raise SchemaProblem(f"the check {label(check)} of the schema failed to run: "
                                        f"{_reason(exc)}") from exc
            self._each_row_alone(check, given, f"the check {label(check)} of the schema",
                                 bool((self.schema.metadata or {}).get("row_by_row")), "the schema")
            bad = _failing(output, given.index, given.index)
            if bad is None:
                raise SchemaProblem(f"the check {label(check)} of the schema {_OTHER_ROWS}")
            if unreadable is not None:  # a row with a cell that could not be read is invalid already
                bad = bad[~unreadable[bad]]
            message = f"row: fails {label(check)}"
            out.extend((int(pos), rank, number, message) for pos in bad)
        return out

    def _warn_of(self, check: Any, given: Any, every: Any, what: str, unreadable: np.ndarray | None = None
                 ) -> None:
        """A check that only warns, run as pandera runs it: the rows failing it told, none made
        invalid (one that fails to run, or answers for other rows, is told as failing them all)."""
        try:
            bad = _failing(check(given).check_output, given.index, every)
        except Exception:  # noqa: BLE001 - pandera would warn of it too
            bad = None
        if bad is None:
            bad = np.asarray(every, dtype=np.int64)
            what = f"{what} (failed to run, or answered for other rows)"
        if unreadable is not None:
            bad = bad[~unreadable[bad]]
        self._warn(bad, what)

    def _not_unique(self, chunk: RawChunk, columns: ColumnMap, parsed: dict[str, Parsed],
                    unreadable: np.ndarray) -> list[tuple[int, int, int, str]]:
        """The rows pandera's `unique=` refuses (a column's, or the schema's columns together):
        every row whose value (values) another row has too, blanks aside, as pandera reports
        them (`report_duplicates`: all, or all but the first or the last). Held on a file of one
        piece; on a bigger file, checked a chunk at a time, no two alike can't be told, and the
        schema is refused before a row is sent."""
        together = self.schema.unique
        together = [together] if isinstance(together, str) else list(together or [])
        alone = [plan for plan in self._plans if plan.column.unique]
        if not together and not alone:
            return []
        if self._big:
            what = f"column {alone[0].field.name}: unique=True" if alone else "SCHEMA's unique="
            raise SchemaProblem(
                f"{what} can't be held on a file of more than {ONE_PIECE:,} rows, which etl checks "
                "a chunk of rows at a time (no two alike is a rule across the whole file): check it "
                "before the export, or import the file in parts")
        import pandas as pd

        out: list[tuple[int, int, int, str]] = []
        rows = np.flatnonzero(~unreadable)
        values: dict[str, pd.Series] = {}
        for name in {p.field.name for p in alone} | set(together):
            if name not in columns.positions:
                continue
            p = parsed.get(name) or self.parsed(chunk, columns, name)
            values[name] = self._series(self.resource.field(name), p, rows)
        for plan in alone:
            name = plan.field.name
            if name not in values:
                continue
            column = values[name].dropna()
            keep = _KEEP.get(getattr(plan.column, "report_duplicates", "all"), False)
            for pos in column.index[column.duplicated(keep=keep)].tolist():
                cell = shown(str(self.cells(chunk, columns.positions[name])[pos].as_py() or ""))
                out.append((int(pos), self._rank[name], 1 + len(plan.column.checks),
                            f"{name}: {cell} is in another row too (unique=True)"))
        present = [name for name in together if name in values]
        if present:
            frame = pd.DataFrame({name: values[name] for name in present})
            keep = _KEEP.get(getattr(self.schema, "report_duplicates", "all"), False)
            for pos in frame.index[frame.duplicated(keep=keep)].tolist():
                out.append((int(pos), len(self._plans), -1,
                            f"row: {', '.join(present)} are the same in another row (unique=)"))
        return out

    def _each_row_alone(self, check: Any, given: Any, named: str, declared: bool, where: str) -> None:
        """CHECK (NAMED so) refused on a file of more than ONE_PIECE rows unless it answers for
        each row alone. etl checks such a file a chunk of rows at a time: a check that looks at
        other rows (no two alike, a total, the row before, a group) would be held within each
        chunk only, and rows that break it across chunks would be posted. A file of one piece is
        checked whole: every check sees all its rows at once, as pandera would. Pandera's
        built-ins of one value and element-wise checks answer for each row by themselves; any
        other is taken on a big file only where the schema's author says it does (DECLARED:
        `"row_by_row": True` in the metadata of WHERE, its column or the schema), and then it is
        tried once on rows it is given (GIVEN): twice over, in reverse, some one at a time, one
        among tens of thousands like it, and must say the same of each row. No trial can prove
        a check looks at nothing else: the word is the author's; the trials catch a slip."""
        if id(check) in self._alone or not len(given):
            return
        if getattr(check, "element_wise", False) or (_builtin(check) and check.name in ROW_BY_ROW):
            self._alone.add(id(check))
            return
        if not self._big:  # a file of one piece: the check saw every row at once
            return
        if not declared:
            raise SchemaProblem(
                f"{named} is neither element-wise nor one of pandera's checks of one value, and "
                f"the file has more than {ONE_PIECE:,} rows, which etl checks a chunk of rows at a "
                "time: such a check is held on every row of such a file only where the schema "
                f"says it answers for each row by itself. If it does, add \"row_by_row\": True to "
                f"the metadata of {where}; a rule across rows (no two alike, a total, the row "
                "before) belongs before the export")
        spread = given.iloc[np.unique(np.linspace(0, len(given) - 1, PROBE_ROWS).astype(np.int64))]
        why = _looks_across(check, spread)
        if why is not None:
            raise SchemaProblem(
                f"{named} is said to answer for each row by itself (\"row_by_row\" in the metadata "
                f"of {where}), but it looks at other rows ({why}): etl checks a file of more than "
                f"{ONE_PIECE:,} rows a chunk at a time, so it can't honour it on every row")
        self._alone.add(id(check))

    def payloads(
        self, chunk: RawChunk, columns: ColumnMap, positions: Sequence[int]
    ) -> list[dict[str, Any]]:
        """JSON bodies of the (valid) rows at `positions`: the values of their cells; blank
        optional fields are left out."""
        take = arrow.array(positions, type=arrow.int64())
        cells = {name: self.cells(chunk, pos).take(take).to_pylist()
                 for name, pos in columns.positions.items()}
        bodies = []
        for i in range(len(positions)):
            body = {}
            for f in self.resource.fields:
                if f.name in cells:
                    got, problem = value(f.kind, cells[f.name][i], self.decimal)
                    if problem:
                        raise ValueError(f"row is not valid: {f.name}: {problem}")
                    if got is not None:
                        body[f.name] = got
            bodies.append(body)
        return bodies


def _register_backends() -> None:
    """pandera's pandas backends, registered (older pandera registers them on a schema's first
    validation, and a check called on its own would find none)."""
    import pandas as pd

    pandera().DataFrameSchema().validate(pd.DataFrame())


def _reason(exc: Exception) -> str:
    """Why a check failed to run, in a line: pandera's NotImplementedError (or AssertionError),
    without a word, is its answer to a check whose result it cannot read."""
    if isinstance(exc, NotImplementedError | AssertionError) and not str(exc):
        return ("pandera cannot read what it returned (a check returns a pandas Series or "
                "DataFrame of True/False, of the shape and index of what it is given, or one "
                "True/False; not a NumPy array or a list)")
    if isinstance(exc, ValueError) and "NaN to bool" in str(exc):
        return (f"{type(exc).__name__}: {exc} (its result is blank, NaN, for a row: a blank cell "
                "gives a blank answer unless the check says what it means)")
    return f"{type(exc).__name__}: {exc}"


#: a check whose result is not indexed by the rows it was given (pandera fails such a check
#: without naming a row: etl will not guess which rows its answers are of)
_OTHER_ROWS = ("answered for other rows than it was given, not True for all (the index of its "
               "result is not the index of the Series or DataFrame it was given: keep that index)")


def _one_answer(output: Any) -> bool:
    """Whether a check's output is one answer for all the rows (not a Series or a DataFrame)."""
    import pandas as pd

    return not isinstance(output, pd.Series | pd.DataFrame)


def _failing(output: Any, given: Any, every: Any) -> np.ndarray | None:
    """The positions a check's output fails: False (or NA: never let through) in a series, any
    such cell in a row of a frame, of the rows it was GIVEN (an index of positions). A single
    False fails EVERY row (the column, or the frame, fails as a whole). A result indexed
    otherwise than GIVEN (rows left out, reordered, reset, labels it was not given) passes
    when every answer is True, as in pandera; else None: pandera fails it naming no row, and
    its answers can't be told to be of which rows."""
    import pandas as pd

    if isinstance(output, pd.DataFrame):
        output = output.fillna(False).astype(bool).all(axis="columns")
    if isinstance(output, pd.Series):
        passed = output.fillna(False).astype(bool).to_numpy()
        if not output.index.equals(given):  # as pandera: all True passes, else it fails whole
            return np.asarray(every[:0], dtype=np.int64) if passed.all() else None
        return np.asarray(output.index[~passed], dtype=np.int64)
    return np.asarray(every if not bool(output) else every[:0], dtype=np.int64)


#: pandera's built-in checks that answer for each value alone (not `unique_values_eq`: a
#: column's values as a whole)
ROW_BY_ROW = frozenset({
    "equal_to", "not_equal_to", "greater_than", "greater_than_or_equal_to", "less_than",
    "less_than_or_equal_to", "in_range", "isin", "notin", "str_matches", "str_contains",
    "str_startswith", "str_endswith", "str_length"})
#: pandera's report_duplicates= as pandas' keep=: which of the rows alike are refused (all of them,
#: or all but the first or the last)
_KEEP: dict[str, Any] = {"all": False, "exclude_first": "first", "exclude_last": "last"}
#: a file of up to this many rows is read and checked in one piece (a chunk of the import's)
ONE_PIECE = CHUNK_ROWS
#: the rows a check is tried on (`Validator._each_row_alone`), and how many of them one at a time
PROBE_ROWS = 64
PROBE_ALONE = 8
PROBE_COPIES = 1 << 16  # rows like the first, among which its answer must stay its own


def _looks_across(check: Any, given: Any) -> str | None:
    """How CHECK was seen to look at other rows than the one it answers for, given GIVEN (a
    series or frame of a few rows); None where it answered for each row as if alone."""
    import pandas as pd

    def passed(data: Any) -> np.ndarray | None:
        output = check(data).check_output
        if isinstance(output, pd.DataFrame):
            output = output.fillna(False).astype(bool).all(axis="columns")
        if not isinstance(output, pd.Series) or not output.index.equals(data.index):
            return None  # one answer for all the rows, or not one for each
        return output.fillna(False).astype(bool).to_numpy()

    n = len(given)
    try:
        alone = passed(given)
        if alone is None:
            return "it gives one answer for all the rows, not one for each"
        twice = pd.concat([given, given])
        twice.index = pd.RangeIndex(2 * n)
        doubled = passed(twice)
        if doubled is None or not (np.array_equal(doubled[:n], alone) and np.array_equal(doubled[n:], alone)):
            return "its answer for a row changed when the same rows came twice"
        backwards = passed(given.iloc[::-1])
        if backwards is None or not np.array_equal(backwards[::-1], alone):
            return "its answer for a row changed when the rows came in reverse order"
        for k in range(min(n, PROBE_ALONE)):
            one = passed(given.iloc[k: k + 1])
            if one is None or bool(one[0]) != bool(alone[k]):
                return "its answer for a row changed when the row was checked alone"
        many = given.iloc[[0] * PROBE_COPIES]  # a total, a count of a group's rows: grown
        many.index = pd.RangeIndex(PROBE_COPIES)
        copies = passed(many)
        if copies is None or not (copies == alone[0]).all():
            return f"its answer for a row changed among {PROBE_COPIES:,} rows like it"
    except Exception as exc:  # noqa: BLE001 - it runs on the rows it is given, not on these
        return f"it failed when the rows were given otherwise: {type(exc).__name__}: {exc}"
    return None


def _deciding(column: Any) -> Any:
    """A copy of COLUMN that reports every failing cell: pandera's options for reporting fewer
    (`n_failure_cases`) or dropping them (`drop_invalid_rows`) would let an invalid row
    through here."""
    column = copy.deepcopy(column)
    column.drop_invalid_rows = False
    column.checks = [copy.copy(check) for check in column.checks]
    for check in column.checks:
        check.n_failure_cases = None
    return column
