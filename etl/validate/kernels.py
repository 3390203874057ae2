"""pandera's built-in checks, compiled to Arrow kernels for the rows they surely pass.

A compiled check answers, for every cell of a column at once, "this value surely passes";
the rows it is not sure of (a failing value, or one too close to a limit to tell from its
double) are handed to pandera, which decides them. So a compiled check never makes a row
invalid on its own, and only has to be right where it says yes: a million good rows are passed
by a few Arrow kernels, and pandera sees the few others (a property test holds the two to the
same answer, row for row).

Only what can be answered exactly is compiled: comparisons and ranges of whole numbers and
amounts, sets of whole numbers and texts, text lengths. A check with `ignore_na=False`, a
`groupby`, a warning-only check, any other built-in (regular expressions: Arrow's dialect is
not Python's) and every custom check are run by pandera on every row.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.fields import bools
from etl.validate.rules import _builtin
from etl.validate.values import Kind, Parsed

#: a kernel: which cells of a parsed column surely pass (read where the column's `ok` only)
Kernel = Callable[[Parsed], np.ndarray]

_INT64 = 2**63 - 1
#: an amount's double is within an ulp or so of its exact value: a margin of a few ulps keeps
#: a comparison that a double cannot settle for pandera
_ULPS = 4


def _number(limit: Any) -> bool:
    return isinstance(limit, int | float | Decimal) and not isinstance(limit, bool)


def _whole(limit: Any) -> bool:
    return isinstance(limit, int) and not isinstance(limit, bool) and abs(limit) <= _INT64


def _nudged(limit: Any, direction: float) -> float | None:
    """LIMIT as a double, moved a few ulps towards DIRECTION (None when it is not finite)."""
    value = float(limit)
    if not np.isfinite(value):
        return None
    for _ in range(_ULPS):
        value = float(np.nextafter(value, direction))
    return value


def _compare(op: str, limit: Any, kind: Kind) -> Kernel | None:
    """`value OP limit` surely true (op: gt, ge, lt, le)."""
    fn = {"gt": pc.greater, "ge": pc.greater_equal, "lt": pc.less, "le": pc.less_equal}[op]
    if kind is Kind.INTEGER and _whole(limit):
        scalar = arrow.scalar(limit, arrow.int64())
        return lambda p: _passes(fn(p.raw, scalar))
    if kind in (Kind.INTEGER, Kind.AMOUNT) and _number(limit):
        # above a limit: surely above the limit moved up by a margin; below: moved down
        nudged = _nudged(limit, np.inf if op in ("gt", "ge") else -np.inf)
        if nudged is None:
            return None
        strict = {"gt": pc.greater, "ge": pc.greater, "lt": pc.less, "le": pc.less}[op]
        scalar = arrow.scalar(nudged, arrow.float64())
        return lambda p: _passes(strict(pc.cast(p.raw, arrow.float64(), safe=False), scalar))
    return None


def _passes(mask: arrow.Array) -> np.ndarray:
    """A kernel's answer, nulls (blank cells, which pandera skips) counted as passing."""
    return bools(pc.fill_null(mask, True))


def _both(a: Kernel | None, b: Kernel | None) -> Kernel | None:
    if a is None or b is None:
        return None
    return lambda p: a(p) & b(p)


def _members(values: Any, kind: Kind) -> arrow.Array | None:
    items = list(values)
    if kind is Kind.INTEGER and all(_whole(v) for v in items):
        return arrow.array(items, type=arrow.int64())
    if kind is Kind.TEXT and all(isinstance(v, str) for v in items):
        return arrow.array(items, type=arrow.string())
    return None


def compile_check(check: Any, kind: Kind) -> Kernel | None:
    """CHECK as a kernel over a column of KIND, or None when pandera must run it on every row."""
    if (not _builtin(check) or check.groupby is not None or not check.ignore_na
            or check.raise_warning or getattr(check, "element_wise", False)):
        return None
    s, name = check.statistics or {}, check.name
    ops = {"greater_than": ("gt", "min_value"), "greater_than_or_equal_to": ("ge", "min_value"),
           "less_than": ("lt", "max_value"), "less_than_or_equal_to": ("le", "max_value")}
    if name in ops:
        op, key = ops[name]
        return _compare(op, s.get(key), kind) if key in s else None
    if name == "in_range" and {"min_value", "max_value"} <= set(s):
        return _both(_compare("ge" if s.get("include_min", True) else "gt", s["min_value"], kind),
                     _compare("le" if s.get("include_max", True) else "lt", s["max_value"], kind))
    if name in ("equal_to", "not_equal_to", "isin", "notin"):
        wanted = [s.get("value")] if name in ("equal_to", "not_equal_to") else \
            s.get("allowed_values" if name == "isin" else "forbidden_values")
        if wanted is None:
            return None
        members = _members(wanted, kind)
        if members is None:
            return None
        inside = name in ("equal_to", "isin")
        return lambda p: _passes(_in(p.raw, members, inside))
    if name == "str_length" and kind is Kind.TEXT:
        low, high, exact = s.get("min_value"), s.get("max_value"), s.get("exact_value")
        if exact is not None:
            low = high = exact
        if not all(v is None or _whole(v) for v in (low, high)):
            return None

        def lengths(p: Parsed) -> np.ndarray:
            n = pc.utf8_length(p.raw)
            ok = _passes(pc.greater_equal(n, low)) if low is not None else np.ones(len(p.raw), bool)
            if high is not None:
                ok &= _passes(pc.less_equal(n, high))
            return ok

        return lengths
    return None


def _in(values: arrow.Array, members: arrow.Array, inside: bool) -> arrow.Array:
    found = pc.is_in(values, value_set=members)
    found = pc.if_else(pc.is_null(values), None, found)
    return found if inside else pc.invert(found)
