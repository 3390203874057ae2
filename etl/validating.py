"""Matching a file's headers to a resource, and checking every cell with pandera, lazily.

Every failing cell of every row is found in one pass and turned into a plain-words message
(`CreditUsed: "abc" is not a number`), never a pandera check name.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.errors import FileProblem
from etl.fields import shown
from etl.lazy import pandera
from etl.reading import RawChunk
from etl.resources import Resource, header_key

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

SEPARATOR = " | "


@dataclass(frozen=True)
class ColumnMap:
    """Where each of the resource's fields sits in one file's header."""

    header: list[str]
    positions: dict[str, int]  # field name -> column position
    unknown: list[str]  # headers that are no field: kept in the report, never sent


def match_columns(
    path: str, header: list[str], resource: Resource, renames: dict[str, str] | None = None
) -> ColumnMap:
    """Match headers ignoring case, spaces, `_` and `-`; `renames` (from --map) come first."""
    renamed = {header_key(src): dst for src, dst in (renames or {}).items()}
    positions: dict[str, int] = {}
    unknown: list[str] = []
    for pos, name in enumerate(header):
        target = renamed.get(header_key(name)) or resource.match(name)
        if target is None:
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
    return ColumnMap(header, positions, unknown)


def valid_rows(n: int, problems: dict[int, str]) -> np.ndarray:
    """Which of N rows are valid, given the problems of the others."""
    valid = np.ones(n, dtype=bool)
    valid[np.fromiter(problems, dtype=np.int64, count=len(problems))] = False
    return valid


class Validator:
    """Checks chunks of one resource's rows and turns the valid ones into payloads.

    Each column is judged once, whole, by its field's Arrow kernels; pandera then validates
    only the rows with a failing cell, so its error objects are built for those cells alone
    (building them for every chunk was most of a dry run's time). pandera, and pandas with it,
    is imported on first need, or ahead of it in the background by `prepare()`.
    """

    def __init__(self, resource: Resource, decimal: str = ".") -> None:
        self.resource = resource
        self.decimal = decimal
        self._schema: pa.DataFrameSchema | None = None
        self._rank = {f.name: i for i, f in enumerate(resource.fields)}
        self._fields = {f.name: f for f in resource.fields}
        self._importing: threading.Thread | None = None

    @property
    def schema(self) -> pa.DataFrameSchema:
        if self._schema is None:
            self._schema = self.resource.schema(self.decimal)
        return self._schema

    def prepare(self) -> None:
        """Import pandera (and pandas) in the background while the first rows are read."""
        if self._importing is None and self._schema is None:
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

    def frame(self, chunk: RawChunk, columns: ColumnMap, rows: np.ndarray | None = None,
              fields: Sequence[str] | None = None) -> pd.DataFrame:
        """The chunk's fields as an Arrow-backed frame; only the ROWS positions (the index is
        then those positions) and only FIELDS, when given."""
        import pandas as pd

        names = columns.positions if fields is None else fields
        cells = {name: self.cells(chunk, columns.positions[name]) for name in names}
        if rows is not None:
            take = arrow.array(rows, type=arrow.int64())
            cells = {name: column.take(take) for name, column in cells.items()}
        frame = arrow.table(cells).to_pandas(types_mapper=pd.ArrowDtype)
        if rows is not None:
            frame.index = pd.Index(rows)
        return frame

    def failing(self, chunk: RawChunk, columns: ColumnMap) -> tuple[np.ndarray, list[str]]:
        """Positions of the rows with a cell its field refuses, and the fields that refuse one
        (each column judged once, whole)."""
        bad = np.zeros(len(chunk), dtype=bool)
        fields = []
        for name, pos in columns.positions.items():
            ok = self._fields[name].ok(self.cells(chunk, pos), self.decimal)
            named = [i for i, cells in chunk.cell_errors.items() if any(j == pos for j, _ in cells)]
            if named:  # the reader says what is wrong with these cells
                ok = ok.copy()
                ok[named] = True
            if not ok.all():
                bad |= ~ok
                fields.append(name)
        return np.flatnonzero(bad), fields

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

    def problems(self, chunk: RawChunk, columns: ColumnMap) -> dict[int, str]:
        """The rows with problems (position in the chunk), each with them joined by ` | `."""
        problems: dict[int, list[str]] = {}
        for pos, message in chunk.shape_errors.items():
            problems.setdefault(pos, []).append(message)
        used = set(columns.positions.values())  # a column never sent can't make a row invalid
        for pos, cells in chunk.cell_errors.items():
            problems.setdefault(pos, []).extend(m for j, m in cells if j in used)
            if not problems[pos]:
                del problems[pos]
        rows, fields = self.failing(chunk, columns)
        if len(rows):  # pandera sees the failing rows of the failing columns, and nothing else
            for index, problem in self.cell_problems(self.frame(chunk, columns, rows, fields)):
                problems.setdefault(index, []).append(problem)
        return {pos: SEPARATOR.join(items) for pos, items in problems.items()}

    def cell_problems(self, frame: pd.DataFrame) -> list[tuple[int, str]]:
        """(row index, `Field: problem`) of every failing cell pandera finds in FRAME, in row
        order and, within a row, in the resource's column order.

        pandera validates FRAME a column at a time with the schema's own column: each column has
        one check, so the first error it raises holds every failing cell of that column (the
        lazy mode gathers the same cells but builds its error report three times over, which
        was most of a dry run's time in pandera)."""
        import pandas as pd

        pa = pandera()
        found: list[tuple[int, int, str]] = []
        for column in frame.columns:
            try:
                self.schema.columns[column].validate(frame[[column]], inplace=True)
            except pa.errors.SchemaError as exc:
                cases = exc.failure_cases
                if (not isinstance(cases, pd.DataFrame) or "index" not in cases
                        or cases["index"].isna().any()):  # a check that raised: a defect of ours
                    raise RuntimeError(f"schema check of {column} failed to run: {exc}") from exc
                field = self.resource.field(column)
                rank = self._rank[column]
                for value, index in zip(cases["failure_case"], cases["index"], strict=True):
                    problem = field.parse(str(value), self.decimal)[1]
                    problem = problem or f"{shown(str(value))} is not a valid {field.type_name}"
                    found.append((int(index), rank, f"{column}: {problem}"))
        found.sort(key=lambda item: item[:2])
        return [(index, problem) for index, _, problem in found]

    def payloads(
        self, chunk: RawChunk, columns: ColumnMap, positions: Sequence[int]
    ) -> list[dict[str, Any]]:
        """JSON bodies of the (valid) rows at `positions`; blank optional fields are left out."""
        take = arrow.array(positions, type=arrow.int64())
        cells = {name: self.cells(chunk, pos).take(take).to_pylist()
                 for name, pos in columns.positions.items()}
        bodies = []
        for i in range(len(positions)):
            body = {}
            for f in self.resource.fields:
                if f.name in cells:
                    value, problem = f.parse(cells[f.name][i] or "", self.decimal)
                    if problem:
                        raise ValueError(f"row is not valid: {f.name}: {problem}")
                    if value is not None:
                        body[f.name] = value
            bodies.append(body)
        return bodies
