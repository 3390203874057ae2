"""Column types of a resource: what a valid cell looks like, and the value it stands for.

Each type says it twice, on purpose: `ok()` judges a whole column at once with Arrow's compute
kernels (this is what makes a million-row dry run fast), and `parse()` reads one cell, giving
its value or a plain-words problem (`"abc" is not a number`). `parse()` is the definition;
`ok()` must agree with it, and a property test holds them to that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandera.pandas as pa

#: Nexudus ids are 32-bit signed integers.
MAX_ID = 2**31 - 1
REQUIRED = "is required"

_WHOLE = r"[+-]?\d+(?:\.0*)?"  # "123", and "123.0" as Excel writes whole numbers
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_WHOLE_RX = re.compile(_WHOLE, re.ASCII)
_NUMBER_RX = re.compile(_NUMBER, re.ASCII)
_SPACE = " \t\r\n\v\f"


#: invisible characters, named where a message shows a cell (never shown as if not there)
_INVISIBLE_NAMES = {"\ufeff": "<BOM>", "\u00a0": "<NBSP>", "\x00": "<NUL>", "\u200b": "<ZWSP>",
                    "\u202f": "<NNBSP>", "\u2007": "<FIGURE SPACE>", "\u200e": "<LRM>", "\u200f": "<RLM>",
                    "\u2060": "<WJ>", "\u00ad": "<SHY>"}
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00a0\u00ad\u2000-\u200f\u2028-\u202f"
                        "\u205f-\u206f\ufeff\ufff9-\ufffb]")


def visible(text: str) -> str:
    """TEXT with invisible characters named: `2.5<NBSP>`, `<BOM>CreditUsed`, `<U+2003>`."""
    return _INVISIBLE.sub(lambda m: _INVISIBLE_NAMES.get(m.group(), f"<U+{ord(m.group()):04X}>"), text)


def shown(value: str, limit: int = 60) -> str:
    """A cell quoted for a message: one line, at most LIMIT characters, invisibles named."""
    text = visible(value.strip(_SPACE).replace("\n", " ").replace("\r", " "))
    return '"' + (text if len(text) <= limit else text[: limit - 1] + "…") + '"'


def _grouped(text: str, decimal: str) -> str | None:
    """The thousands separator of a number written with one (`1.234,50`, `1,234.50`, `1 234`)."""
    for sep in (".", ",", " ", "\u00a0", "\u202f", "'"):
        if sep == decimal:
            continue
        mark = re.escape(decimal)
        if re.fullmatch(rf"[+-]?\d{{1,3}}(?:{re.escape(sep)}\d{{3}})+(?:{mark}\d*)?", text):
            return sep
    return None


def _trimmed(cells: arrow.Array) -> arrow.Array:
    return pc.utf8_trim(pc.fill_null(cells, ""), _SPACE)


def bools(mask: arrow.Array | arrow.ChunkedArray) -> np.ndarray:
    """An Arrow boolean array as numpy (null is False), unpacked from its bits: Arrow's own
    `to_numpy` goes through pandas and would import it."""
    if isinstance(mask, arrow.ChunkedArray):
        return np.concatenate([bools(c) for c in mask.chunks]) if mask.num_chunks else np.zeros(0, bool)
    if mask.null_count:
        mask = pc.fill_null(mask, False)
    n, offset = len(mask), mask.offset
    if not n:
        return np.zeros(0, dtype=bool)
    bits = np.frombuffer(mask.buffers()[1], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little", count=offset + n)[offset:].astype(bool)


def text_buffers(cells: arrow.Array) -> tuple[arrow.Array, np.ndarray, np.ndarray]:
    """A text column's cells (cast to text if laid out otherwise: a view, a dictionary), its
    N+1 offsets and its bytes, read from Arrow's buffers in place: no cell is copied."""
    if not (arrow.types.is_string(cells.type) or arrow.types.is_large_string(cells.type)):
        cells = cells.cast(arrow.large_string())
    n, buffers = len(cells), cells.buffers()
    width = np.dtype(np.int64 if arrow.types.is_large_string(cells.type) else np.int32)
    offsets = (np.frombuffer(buffers[1], dtype=width, count=n + 1, offset=cells.offset * width.itemsize)
               if n else np.zeros(1, dtype=width))
    data = np.frombuffer(buffers[2], dtype=np.uint8) if n and buffers[2] is not None \
        else np.zeros(0, dtype=np.uint8)
    return cells, offsets, data


def nonempty(cells: arrow.Array | arrow.ChunkedArray) -> np.ndarray:
    """Which cells of a text column hold something (null and "" do not)."""
    if isinstance(cells, arrow.ChunkedArray):
        return np.concatenate([nonempty(c) for c in cells.chunks] or [np.zeros(0, bool)])
    cells, offsets, _ = text_buffers(cells)
    filled = offsets[1:] > offsets[:-1]
    if cells.null_count:
        filled &= bools(cells.is_valid())
    return filled


def _and_the_rest(good: arrow.Array, simple: arrow.Array, text: arrow.Array,
                  judge: Callable[[arrow.Array], arrow.Array]) -> arrow.Array:
    """GOOD for the SIMPLE cells, and JUDGE's verdict for the other, rarer ones (blank cells,
    which the caller decides, are left out)."""
    rest = np.flatnonzero(~bools(simple) & bools(pc.not_equal(text, "")))
    if not len(rest):
        return good
    verdict = bools(good)
    verdict[rest] = bools(judge(text.take(arrow.array(rest))))
    return arrow.array(verdict)


def _full(cells: arrow.Array, pattern: str) -> arrow.Array:
    return pc.match_substring_regex(cells, f"^(?:{pattern})$")


@dataclass(frozen=True)
class Field:
    """One column of a resource; subclasses say what a cell must look like."""

    name: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    help: str = ""

    type_name: ClassVar[str] = "text"

    def parse(self, cell: str, decimal: str = ".") -> tuple[Any, str | None]:
        """(value, None) for a good cell, (None, problem) for a bad one; blank is value None."""
        text = cell.strip(_SPACE)
        if text == "":
            return None, (REQUIRED if self.required else None)
        return self.parse_text(text, decimal)

    def parse_text(self, text: str, decimal: str) -> tuple[Any, str | None]:
        return text, None

    def ok(self, cells: arrow.Array, decimal: str = ".") -> np.ndarray:
        """Which cells of a column are good, all at once (agrees with `parse`)."""
        if type(self).ok_text is Field.ok_text and not self.required:
            return np.ones(len(cells), dtype=bool)  # optional free text: every cell is good
        text = _trimmed(cells)
        blank = pc.equal(text, "")
        good = pc.if_else(blank, not self.required, self.ok_text(text, decimal))
        return bools(good)

    def ok_text(self, text: arrow.Array, decimal: str) -> arrow.Array:
        return pc.not_equal(text, "\x00never")  # any text is good text

    def check(self, decimal: str) -> pa.Check:
        """The pandera check of this column: one pass, every failing cell reported."""
        import pandas as pd

        from etl.lazy import pandera

        pa = pandera()

        def column_ok(series: pd.Series) -> pd.Series:
            return pd.Series(self.ok(arrow.array(series), decimal), index=series.index)

        return pa.Check(column_ok, name=f"etl_{self.name}", error=self.type_name)


@dataclass(frozen=True)
class Text(Field):
    """Free text, trimmed; a blank cell means the field is absent."""


@dataclass(frozen=True)
class PositiveInteger(Field):
    """An id: a whole number from 1 up to 2**31-1. Excel's "123.0" is 123."""

    type_name: ClassVar[str] = "positive integer"

    def parse_text(self, text: str, decimal: str) -> tuple[Any, str | None]:
        if not _WHOLE_RX.fullmatch(text):
            return None, f"{shown(text)} is not a whole number"
        number = int(text.split(".")[0])
        if number <= 0:
            return None, f"{shown(text)} must be greater than 0"
        if number > MAX_ID:
            return None, f"{shown(text)} is larger than {MAX_ID}"
        return number, None

    def ok_text(self, text: arrow.Array, decimal: str) -> arrow.Array:
        # the common cell, at most 9 ASCII digits, is a number below MAX_ID: good when above 0
        simple = pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 9))
        good = pc.greater(pc.cast(pc.if_else(simple, text, "0"), arrow.int64()), 0)
        return _and_the_rest(good, simple, text, self._ok_text)

    def _ok_text(self, text: arrow.Array) -> arrow.Array:
        # 1 to 10 significant digits, no sign but "+": then it fits in int64 and can be compared
        whole = pc.match_substring_regex(text, r"^\+?0*[1-9]\d{0,9}(?:\.0*)?$")
        digits = pc.replace_substring_regex(pc.if_else(whole, text, "0"), r"^\+?0*|\.0*$", "")
        number = pc.cast(pc.if_else(whole, digits, "0"), arrow.int64())
        return pc.and_(pc.greater(number, 0), pc.less_equal(number, MAX_ID))


@dataclass(frozen=True)
class PositiveDecimal(Field):
    """An amount: a finite number above 0, kept exact (sent as written, never via a float)."""

    type_name: ClassVar[str] = "positive decimal"

    def parse_text(self, text: str, decimal: str) -> tuple[Any, str | None]:
        dotted = _dotted(text, decimal)
        if not _NUMBER_RX.fullmatch(dotted):
            sep = _grouped(text, decimal)
            if sep is not None:
                plain = text.replace(sep, "")
                name = {" ": "a space", "\u00a0": "a no-break space", "\u202f": "a narrow no-break space"}
                return None, (f"{shown(text)} has a thousands separator "
                              f"({name.get(sep, repr(sep).replace(chr(39), chr(34)))}); write it as {plain}")
            mark = "" if decimal == "." else f' (the decimal mark is "{decimal}")'
            return None, f"{shown(text)} is not a number{mark}"
        try:
            value = Decimal(dotted)
            too_large = math.isinf(float(value))
        except (InvalidOperation, OverflowError):
            too_large = True
        if too_large:
            return None, f"{shown(text)} is too large"
        if float(value) <= 0:  # as a double, like the server sees it: 1e-400 is 0 there
            return None, f"{shown(text)} must be greater than 0"
        return value, None

    def ok_text(self, text: arrow.Array, decimal: str) -> arrow.Array:
        if decimal != ".":
            text = pc.replace_substring(pc.replace_substring(text, ".", "\x00"), decimal, ".")
        # the common cell, ASCII digits with at most one dot and short enough to be finite, is
        # a number: good when above 0
        simple = pc.and_(
            pc.and_(pc.ascii_is_decimal(pc.replace_substring(text, ".", "", max_replacements=1)),
                    pc.less_equal(pc.binary_length(text), 300)),
            pc.less_equal(pc.count_substring(text, "."), 1))
        good = pc.greater(pc.cast(pc.if_else(simple, text, "0"), arrow.float64()), 0.0)
        return _and_the_rest(good, simple, text, self._ok_number)

    def _ok_number(self, text: arrow.Array) -> arrow.Array:
        number = _full(text, _NUMBER)
        value = pc.cast(pc.if_else(number, text, "0"), arrow.float64())
        finite = pc.is_finite(value)
        return pc.and_(pc.and_(number, finite), pc.greater(value, 0.0))


def _dotted(text: str, decimal: str) -> str:
    """Text with the file's decimal mark made a dot; a dot in a comma file stays wrong."""
    return text if decimal == "." else text.replace(".", "\x00").replace(decimal, ".")


def canonical_number(value: Decimal) -> str:
    """The exact decimal as plain JSON number text: 2.50 -> "2.5", 1E+2 -> "100"."""
    return format(value.normalize(), "f")
