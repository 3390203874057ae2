"""The value of a cell: defined once, here, for everything that reads one.

A cell is text as the file holds it. Its value depends on the kind of its column, which the
schema's dtype says (`etl.validate.resources` maps it): a whole number (`Int64`), an amount (exact
decimal, `etl.dtypes.Amount`) or text (`str`). A blank cell (nothing but spaces) has no value:
it is null, whatever the kind. A cell that is not blank and cannot be read as its kind has a
plain-words problem instead of a value (`"abc" is not a number`). Everything else (above 0, at
most 2147483647, required, one of the link ids) is a check of the schema, on values.

`value()` is the definition, one cell at a time; `Parsed` reads a whole column at once with
Arrow's kernels and agrees with it (a property test holds them to that). The checks, the
payloads and a row's identity are all built from these values.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.fields import bools, nonempty, shown

_SPACE = " \t\r\n\v\f"
_WHOLE_RX = re.compile(r"[+-]?\d+(?:\.0*)?", re.ASCII)  # "123", and "123.0" as Excel writes them
_NUMBER_RX = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT64 = 2**63 - 1
#: a number written with a decimal comma (1,5; 1.234,5), read where the mark is a dot
_COMMA_DECIMAL = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+", re.ASCII)
#: a number that reads as thousands grouped with dots: 1 to 3 digits (not a lone 0), then groups
_GROUPED_BY_DOTS = r"^[ \t]*[+-]?[1-9][0-9]{0,2}(?:\.[0-9]{3})+[ \t]*$"


class Kind(Enum):
    """How a column's cells are read: the kinds of value there are."""

    INTEGER = "whole number"
    AMOUNT = "decimal number"
    TEXT = "text"


def value(kind: Kind, cell: str | None, decimal: str = ".") -> tuple[Any, str | None]:
    """The value of CELL read as KIND: (value, None), (None, None) for a blank cell, or
    (None, problem) for a cell that is not a KIND.

    - a whole number is an `int`: `123`, `+7`, `007`, and `123.0` as Excel writes whole numbers;
    - an amount is an exact `Decimal` as written (`2.50`, `1E+2`; the DECIMAL mark `,` reads
      `2,5`), never via a float; one too large for a double (`1e400`) is a problem, one so
      small that a double holds it as 0 (`1e-400`) is 0, since the server keeps doubles;
    - text is the cell without the spaces around it.
    """
    text = (cell or "").strip(_SPACE)
    if text == "":
        return None, None
    if kind is Kind.INTEGER:
        return _integer(text, decimal)
    if kind is Kind.AMOUNT:
        return _amount(text, decimal)
    return text, None


def _integer(text: str, decimal: str = ".") -> tuple[Any, str | None]:
    # "123,0" where the decimal mark is ","; there "5.000" is five thousand, written with a
    # thousands separator, never 5
    whole = text if decimal == "." else text.replace(".", "\x00").replace(decimal, ".")
    if not _WHOLE_RX.fullmatch(whole):
        if decimal != "." and _grouped(text, decimal) == ".":
            return None, _not_a_number(text, decimal, "a whole number")
        return None, f"{shown(text)} is not a whole number"
    number = int(whole.split(".")[0])
    if abs(number) > _INT64:
        return None, f"{shown(text)} is too large"
    return number, None


def _amount(text: str, decimal: str) -> tuple[Any, str | None]:
    dotted = text if decimal == "." else text.replace(".", "\x00").replace(decimal, ".")
    if not _NUMBER_RX.fullmatch(dotted):
        return None, _not_a_number(text, decimal, "a number")
    try:
        number = Decimal(dotted)
        double = float(number)
    except (InvalidOperation, OverflowError):
        return None, f"{shown(text)} is too large"
    if math.isinf(double):
        return None, f"{shown(text)} is too large"
    if double == 0:
        return Decimal(0), None  # 1e-400 is 0 as a double, and so on the server
    return number, None


def _not_a_number(text: str, decimal: str, what: str) -> str:
    """Why TEXT is not WHAT: a thousands separator named, with the number as it should be written."""
    sep = _grouped(text, decimal)
    if sep is not None:
        plain = text.replace(sep, "")
        name = {" ": "a space", "\u00a0": "a no-break space", "\u202f": "a narrow no-break space",
                "'": "an apostrophe"}
        return f"{shown(text)} has a thousands separator ({name.get(sep, shown(sep))}); write it as {plain}"
    mark = "" if decimal == "." else f' (the decimal mark is "{decimal}")'
    if decimal == "." and _COMMA_DECIMAL.fullmatch(text):
        mark = " (a decimal comma? say --decimal ,)"
    return f"{shown(text)} is not {what}{mark}"


def _grouped(text: str, decimal: str) -> str | None:
    """The thousands separator of a number written with one (`1.234,50`, `1,234.50`, `1 234`)."""
    for sep in (".", ",", " ", "\u00a0", "\u202f", "'"):
        if sep == decimal:
            continue
        mark = re.escape(decimal)
        if re.fullmatch(rf"[+-]?\d{{1,3}}(?:{re.escape(sep)}\d{{3}})+(?:{mark}\d*)?", text):
            return sep
    return None


class Parsed:
    """A column's cells read as KIND, all at once: which are blank, which have a problem, and
    the values of the others as an Arrow array (`int64` for whole numbers, trimmed text for
    text; for amounts a `float64` near the exact value, which is enough for a kernel to be
    sure of most comparisons: the exact `Decimal`s are made for the rows that need them).
    `raw` holds the same without nulls, for kernels, whose answers count where `ok` only.

    The common cell (plain ASCII digits) is read by Arrow's kernels; any other non-blank cell
    goes through `value()`, so the two cannot disagree on it."""

    def __init__(self, kind: Kind, cells: arrow.Array, decimal: str = ".", *,
                 dots_ambiguous: bool = False) -> None:
        if not (arrow.types.is_string(cells.type) or arrow.types.is_large_string(cells.type)):
            cells = cells.cast(arrow.large_string())  # a view or a dictionary: text all the same
        self.kind = kind
        self.cells = cells
        self.decimal = decimal
        self.problems: dict[int, str] = {}
        if kind is Kind.TEXT:
            text = pc.utf8_trim(pc.fill_null(cells, ""), _SPACE)
            self.blank = bools(pc.equal(text, ""))
            self.raw: arrow.Array = text
            self.ok = ~self.blank
            return
        # numbers are judged on the cells as they are: one with spaces around it is not plain
        # digits, and `value()` reads it (and finds it blank when it is nothing but spaces)
        text = pc.fill_null(cells, "") if cells.null_count else cells
        self.blank = ~nonempty(cells)
        if kind is Kind.INTEGER:
            simple = pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 18))
            target, zero = arrow.int64(), "0"
        else:
            dotted = text
            if decimal != ".":
                dotted = pc.replace_substring(pc.replace_substring(text, ".", "\x00"), decimal, ".")
            # ASCII digits with at most one dot, short enough to be finite (not 0: 0 is "0")
            simple = pc.and_(
                pc.and_(pc.ascii_is_decimal(pc.replace_substring(dotted, ".", "", max_replacements=1)),
                        pc.less_equal(pc.binary_length(dotted), 300)),
                pc.less_equal(pc.count_substring(dotted, "."), 1))
            text, target, zero = dotted, arrow.float64(), "0"
        simple_np = bools(simple)
        self._simple, self._text = simple_np, text  # plain digits: the value is the text as is
        values = pc.cast(pc.if_else(simple, text, zero), target)
        rest = np.flatnonzero(~simple_np & ~self.blank)
        if len(rest):
            fixed: list[Any] = []
            raw = cells.take(arrow.array(rest)).to_pylist()
            for pos, cell in zip(rest.tolist(), raw, strict=True):
                got, problem = value(kind, cell, decimal)
                if problem is not None:
                    self.problems[pos] = problem
                elif got is None:
                    self.blank[pos] = True  # nothing but spaces
                fixed.append(0 if got is None else got if kind is Kind.INTEGER else float(got))
            np_values = values.to_numpy(zero_copy_only=False).copy()
            np_values[rest] = fixed
            values = arrow.array(np_values, type=target)
        if dots_ambiguous and decimal == ".":
            self._ambiguous(cells)
        self.ok = ~self.blank
        if self.problems:
            self.ok[np.fromiter(self.problems, dtype=np.int64, count=len(self.problems))] = False
        self.raw = values  # what a kernel reads: a value where `ok`, anything elsewhere

    def _ambiguous(self, cells: arrow.Array) -> None:
        """Numbers whose dots may group thousands (`1.500`, `12.345.678`; not `0.250`), where the
        file may be written where the comma is the decimal mark (separated by ";" or a tab) and the run
        did not say which: a problem each, never a guess."""
        grouped = pc.match_substring_regex(pc.fill_null(cells, ""), _GROUPED_BY_DOTS)
        for pos in np.flatnonzero(bools(grouped)).tolist():
            if pos not in self.problems:
                text = str(cells[pos].as_py()).strip(_SPACE)
                self.problems[pos] = (
                    f"{shown(text)} could be {text.replace('.', '')} (dots grouping thousands, as an "
                    f"export not separated by commas may write them) or {Decimal(text).normalize():f}: "
                    "say which with --decimal , or --decimal .")

    @property
    def values(self) -> arrow.Array:
        """The values, null where a cell is blank or not a value."""
        return self.raw if self.ok.all() else pc.if_else(arrow.array(self.ok), self.raw, None)

    def exact(self, rows: np.ndarray) -> list[Any]:
        """The values of ROWS as Python objects (exact `Decimal`s for amounts; None where blank
        or not a value)."""
        take = arrow.array(rows, type=arrow.int64())
        if self.kind is not Kind.AMOUNT:
            return [v if good else None
                    for v, good in zip(self.raw.take(take).to_pylist(), self.ok[rows], strict=True)]
        raw, plain = self.cells.take(take).to_pylist(), self._text.take(take).to_pylist()
        return [None if not good else Decimal(digits) if simple else value(self.kind, cell, self.decimal)[0]
                for cell, digits, good, simple in zip(raw, plain, self.ok[rows], self._simple[rows],
                                                      strict=True)]
