"""Reading cells in place: Arrow buffers as numpy, and a cell quoted for a message.

What a cell's value is lives in `etl.validate.values`; which values are good, in the schema's checks.
"""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

#: Nexudus ids are 32-bit signed integers.
MAX_ID = 2**31 - 1

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
    if len(value) <= limit and value.isascii() and value.isprintable() and value.strip(_SPACE) == value:
        return f'"{value}"'  # the common cell (`150`, `abc`) as it is
    text = visible(value.strip(_SPACE).replace("\n", " ").replace("\r", " "))
    return '"' + (text if len(text) <= limit else text[: limit - 1] + "…") + '"'


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


def canonical_number(value: Decimal) -> str:
    """The exact decimal as plain JSON number text: 2.50 -> "2.5", 1E+2 -> "100"."""
    return format(value.normalize(), "f")
