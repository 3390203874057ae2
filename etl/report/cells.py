"""Cells guarded against spreadsheet formulas on the way into a report and restored on the way back."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.fields import bools, nonempty, text_buffers

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")

_RISKY_FIRST = "=+-@\t\r"
_FIRST_OR_QUOTE = np.zeros(256, dtype=bool)  # by first byte: a cell that may need the guard
_FIRST_OR_QUOTE[list(f"{_RISKY_FIRST}'".encode())] = True
_RISKY = "^[=+\\-@\t\r]"


def _at_risk(cell: str) -> bool:
    """Excel would run it as a formula once any apostrophes it starts with are taken off."""
    rest = cell.lstrip("'")
    return bool(rest) and rest[0] in _RISKY_FIRST and not _PLAIN_NUMBER.fullmatch(rest)


def neutralise_cell(cell: str) -> str:
    """A cell Excel would run as a formula (`=`, `+`, `-`, `@`, tab, CR first), made text with a
    leading `'`; one that already starts with apostrophes before such a character gets one more,
    so that `restore_cell` gives every cell back exactly."""
    return "'" + cell if cell and _at_risk(cell) else cell


def restore_cell(cell: str) -> str:
    """The cell as read, from its neutralised form (an errors.csv loaded again: a changed cell
    would be another row, and another payload)."""
    return cell[1:] if cell.startswith("'") and _at_risk(cell[1:]) else cell


def _risky(cells: arrow.Array) -> arrow.Array:
    rest = pc.utf8_ltrim(cells, characters="'")
    return pc.and_not(pc.match_substring_regex(rest, _RISKY),
                      pc.match_substring_regex(rest, f"^(?:{_PLAIN_NUMBER.pattern})$"))


def neutralise(cells: arrow.Array) -> arrow.Array:
    """The column with formula-looking cells neutralised, all at once (most columns have none;
    only the cells that start with one of the characters are looked at closely)."""
    return _mended(cells, _FIRST_OR_QUOTE[first_bytes(cells)], _neutralised)


def restore(cells: arrow.Array) -> arrow.Array:
    """`neutralise` undone, all at once."""
    return _mended(cells, pc.starts_with(cells, "'"), _restored)


def guarded(cells: arrow.Array | arrow.ChunkedArray) -> np.ndarray:
    """Which cells carry the guard `neutralise` puts on (`restore` would take it off): the
    cells that start with a `'` alone are looked at closely."""
    where = np.flatnonzero(first_bytes(cells) == ord("'"))
    found = np.zeros(len(cells), dtype=bool)
    if len(where):
        if isinstance(cells, arrow.ChunkedArray):
            cells = cells.combine_chunks()
        picked = cells.take(arrow.array(where, type=arrow.int64()))
        found[where[bools(pc.not_equal(_restored(picked), picked))]] = True
    return found


def first_bytes(cells: arrow.Array | arrow.ChunkedArray) -> np.ndarray:
    """The first byte of each cell of a text column (0 for an empty or null cell)."""
    if isinstance(cells, arrow.ChunkedArray):
        return np.concatenate([first_bytes(c) for c in cells.chunks] or [np.zeros(0, np.uint8)])
    first = np.zeros(len(cells), dtype=np.uint8)
    _, offsets, data = text_buffers(cells)
    filled = nonempty(cells)
    first[filled] = data[offsets[:-1][filled]]
    return first


def _neutralised(cells: arrow.Array) -> arrow.Array:
    return pc.if_else(_risky(cells), pc.binary_join_element_wise("'", cells, ""), cells)


def _restored(cells: arrow.Array) -> arrow.Array:
    tail = pc.utf8_slice_codeunits(cells, 1)
    return pc.if_else(_risky(tail), tail, cells)


def _mended(cells: arrow.Array, candidates: arrow.Array | np.ndarray, mend: Any) -> arrow.Array:
    """CELLS with MEND applied to the CANDIDATES (a mask) alone: the regular expressions that
    judge a cell run on a few cells, not on the whole column."""
    where = np.flatnonzero(candidates if isinstance(candidates, np.ndarray) else bools(candidates))
    if not len(where):
        return cells
    if isinstance(cells, arrow.ChunkedArray):
        cells = cells.combine_chunks()
    picked = cells.take(arrow.array(where, type=arrow.int64()))
    mended = mend(picked)
    changed = bools(pc.not_equal(mended, picked))
    if not changed.any():
        return cells
    mask = np.zeros(len(cells), dtype=bool)
    mask[where[changed]] = True
    return pc.replace_with_mask(cells, arrow.array(mask), mended.filter(arrow.array(changed)))
