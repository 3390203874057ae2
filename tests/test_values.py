"""The value of a cell (etl.validate.values), the column reader agreeing with it, and the Arrow kernels
agreeing with pandera row for row on random chunks."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal

import numpy as np
import pandera.pandas as pa
import pyarrow as arrow
from hypothesis import example, given, settings
from hypothesis import strategies as st

from etl.fields import MAX_ID, canonical_number
from etl.read.reading import RawChunk
from etl.validate.resources import from_schema
from etl.validate.validating import ColumnMap, Validator
from etl.validate.values import Kind, Parsed, value

# the characters numbers are made of, and the ones that trip parsers up
NUMBERISH = st.text(alphabet="0123456789+-.,eE _x\t n", max_size=12) | st.sampled_from(
    ["1e400", "NaN", "inf", "-inf", "0x1F", "1_000", "١٢٣", "1e-400", "2147483648", "2147483647.0",
     "9223372036854775808", "-9223372036854775807", "100", "100.0", "100.00000000000001", "0.1"]
)


def whole(cell: str) -> tuple[object, str | None]:
    return value(Kind.INTEGER, cell)


def amount(cell: str, decimal: str = ".") -> tuple[object, str | None]:
    return value(Kind.AMOUNT, cell, decimal)


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_whole_numbers_and_excel_floats_are_integers(n):
    assert whole(str(n)) == (n, None)
    assert whole(f"{n}.0") == (n, None)
    assert whole(f" {n} ") == (n, None)


@given(st.integers(min_value=2**63))
def test_whole_numbers_beyond_64_bits_are_too_large(n):
    assert whole(str(n)) == (None, f'"{n}" is too large')


def test_integer_examples():
    assert whole("123") == (123, None)
    assert whole("+7") == (7, None) and whole("007") == (7, None)
    assert whole("-3") == (-3, None)  # a value: "above 0" is the schema's check, not the reader's
    assert whole("12.5")[1] == '"12.5" is not a whole number'
    assert whole("abc")[1] == '"abc" is not a whole number'
    assert whole("  ") == (None, None) and whole("") == (None, None)  # blank: null


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e12"), places=6))
def test_amounts_stay_exact(d):
    got, problem = amount(str(d))
    assert problem is None
    assert got == d
    assert Decimal(canonical_number(got)) == d


def test_amount_examples():
    assert canonical_number(amount("0.1")[0]) == "0.1"
    assert canonical_number(amount("2.50")[0]) == "2.5"
    assert canonical_number(amount("1E+2")[0]) == "100"
    assert amount("2,5", ",")[0] == Decimal("2.5")
    assert amount("-2")[0] == Decimal("-2")
    assert amount("abc")[1] == '"abc" is not a number'
    assert amount("1.5", ",")[1] == '"1.5" is not a number (the decimal mark is ",")'
    assert amount("1,234.50")[1] == '"1,234.50" has a thousands separator (","); write it as 1234.50'
    assert amount("1'234.50")[1] == ('"1\'234.50" has a thousands separator (an apostrophe); write it as '
                                     "1234.50")
    assert amount("1e400")[1] == '"1e400" is too large'
    assert amount("1e-400") == (Decimal(0), None)  # 0 as a double: the server keeps doubles
    for absurd in ("NaN", "inf", "0x1F", "1_000"):
        assert amount(absurd)[1] == f'"{absurd}" is not a number'


def test_text_is_trimmed_and_blank_is_null():
    assert value(Kind.TEXT, "  Room A \t") == ("Room A", None)
    assert value(Kind.TEXT, " \r\n") == (None, None)


def _ulps(a: float, b: float) -> float:
    return abs(a - b) / max(math.ulp(b), 5e-324)


@settings(deadline=None)  # the first Arrow kernel of a process may import pandas: no test of speed
@given(st.lists(NUMBERISH, max_size=30), st.sampled_from([".", ","]))
@example(["", " ", "+0012", "00", "-0", "1.", ".5", "5.", "1e-400", "2147483647.000"], ".")
@example(["9" * 300, "9" * 309, "9" * 400, "123456789", "1234567890", "000000000", "000000001", "1.5.",
          "1" + "0" * 299 + ".5", "0." + "0" * 330 + "1", "9" * 18, "9" * 19], ".")
def test_the_column_reader_agrees_with_the_cell_definition(cells, decimal):
    column = arrow.array(cells, type=arrow.string())
    for kind in Kind:
        parsed = Parsed(kind, column, decimal)
        for i, cell in enumerate(cells):
            got, problem = value(kind, cell, decimal)
            assert parsed.problems.get(i) == problem, (kind, cell)
            assert bool(parsed.blank[i]) == (got is None and problem is None), (kind, cell)
            assert bool(parsed.ok[i]) == (got is not None), (kind, cell)
            held = parsed.values[i].as_py()
            if got is None:
                assert held is None
            elif kind is Kind.AMOUNT:  # a double near the exact value, for the kernels
                assert _ulps(held, float(got)) <= 1, (cell, held, got)
                assert parsed.exact(np.array([i]))[0] == got
            else:
                assert held == got


# --- the fast path against pandera, row for row ------------------------------------------------

SMALL = st.integers(-3, 12)
LIMITS = SMALL | st.sampled_from([0, 1, 100, 2**31 - 1, 2**62, 0.1, 2.5, 100.0, 1e-300, Decimal("0.1"),
                                  Decimal("100.00000000000001"), Decimal("2.5"), 2.0])


def _checks(kind: Kind) -> st.SearchStrategy:
    compare = st.builds(lambda op, v: getattr(pa.Check, op)(v), st.sampled_from(["gt", "ge", "lt", "le"]),
                        LIMITS)
    ranges = st.builds(lambda a, b, i, j: pa.Check.in_range(min(a, b), max(a, b), i or a == b, j or a == b),
                       LIMITS, LIMITS, st.booleans(), st.booleans())
    if kind is Kind.TEXT:
        return st.one_of(
            st.builds(lambda a, b: pa.Check.str_length(min(a, b), max(a, b)), st.integers(0, 6),
                      st.integers(0, 6)),
            st.builds(lambda n: pa.Check.str_length(max_value=n), st.integers(0, 6)),
            st.builds(lambda v: pa.Check.isin(v), st.lists(st.sampled_from(["1", "a", "Room", "-0"]))),
            st.builds(lambda v: pa.Check.notin(v), st.lists(st.sampled_from(["1", "a", "Room"]))),
            st.builds(lambda v: pa.Check.eq(v), st.sampled_from(["1", "a"])),
        )
    if kind is Kind.INTEGER:
        return st.one_of(compare, ranges, st.builds(lambda v: pa.Check.isin(v), st.lists(SMALL)),
                         st.builds(lambda v: pa.Check.notin(v), st.lists(SMALL)),
                         st.builds(lambda v: pa.Check.eq(v), SMALL),
                         st.builds(lambda v: pa.Check.ne(v), SMALL))
    return st.one_of(compare, ranges)


#: cells of each column: values at and around the limits above, and anything number-like
CELLS = {
    Kind.INTEGER: SMALL.map(str) | st.sampled_from(["2147483647", "2147483648", "100", " 7.0 ", "+1"])
    | NUMBERISH,
    Kind.AMOUNT: SMALL.map(str) | st.sampled_from(
        ["100", "100.000000000000001", "99.99999999999999999", "0.1000000000000000055", "0.1", "2.5",
         "2.50", "2,5", "1e-300", "1e-301", "100.00000000000001", "0.09999999999999999"]) | NUMBERISH,
    Kind.TEXT: st.sampled_from(["1", "a", "Room", "  a  ", "é" * 5, "-0", ""]) | st.text(max_size=7),
}


@st.composite
def chunks(draw):
    from etl.dtypes import Amount

    kinds = {"I": (Kind.INTEGER, "Int64"), "A": (Kind.AMOUNT, Amount), "T": (Kind.TEXT, str)}
    columns = {name: pa.Column(dtype, checks=draw(st.lists(_checks(kind), max_size=3)),
                               nullable=draw(st.booleans()), required=False)
               for name, (kind, dtype) in kinds.items()}
    schema = pa.DataFrameSchema(columns, name="t", metadata={"endpoint": "/api/t"})
    rows = draw(st.lists(st.tuples(*(CELLS[kind] for kind, _ in kinds.values())), min_size=1, max_size=25))
    return schema, rows


@settings(deadline=None, max_examples=120)
@given(chunks(), st.sampled_from([".", ","]))
def test_the_fast_path_and_pandera_on_every_row_give_the_same_answers(drawn, decimal):
    """Kernels pass only rows pandera passes, and what they leave to pandera it decides: the
    problems of every row are the very ones pandera alone finds."""
    schema, rows = drawn
    resource = from_schema(schema, "t")
    chunk = RawChunk(rows=np.arange(2, len(rows) + 2), columns=[
        arrow.array([r[i] for r in rows], type=arrow.string()) for i in range(3)])
    columns = ColumnMap(["I", "A", "T"], {"I": 0, "A": 1, "T": 2}, [])
    fast = Validator(resource, decimal).problems(chunk, columns)
    slow = Validator(resource, decimal, fast=False).problems(chunk, columns)
    assert fast == slow
    # and the rows are the ones pandera's own validation of the whole frame refuses, the cells
    # read by the definition of a value (a cell that is not one is invalid before pandera)
    unreadable, frame = set(), {}
    for i, (name, kind) in enumerate((("I", Kind.INTEGER), ("A", Kind.AMOUNT), ("T", Kind.TEXT))):
        got = [value(kind, r[i], decimal) for r in rows]
        unreadable |= {n for n, (_, problem) in enumerate(got) if problem}
        frame[name] = [v for v, _ in got]
    import pandas as pd

    typed = pd.DataFrame({"I": pd.array(frame["I"], dtype="Int64"),
                          "A": pd.Series(frame["A"], dtype=object),
                          "T": schema.columns["T"].dtype.coerce(pd.Series(frame["T"], dtype=object))})
    try:
        with warnings.catch_warnings():  # older pandas warns from within pandera's error report
            warnings.simplefilter("ignore", FutureWarning)
            schema.validate(typed, lazy=True)
        refused = set()
    except pa.errors.SchemaErrors as exc:
        refused = {int(i) for i in exc.failure_cases["index"]}
    assert set(fast) == {n for n in refused | unreadable}


def test_a_limit_a_double_cannot_tell_is_decided_by_pandera_exactly():
    from etl.dtypes import Amount

    schema = pa.DataFrameSchema({"A": pa.Column(Amount, checks=pa.Check.le(100))},
                                metadata={"endpoint": "/api/t"})
    resource = from_schema(schema, "t")
    cells = ["100", "100.0000000000000001", "99.9999999999999999", "150"]
    chunk = RawChunk(rows=np.arange(2, 6), columns=[arrow.array(cells)])
    problems = Validator(resource).problems(chunk, ColumnMap(["A"], {"A": 0}, []))
    assert problems == {1: 'A: "100.0000000000000001" is larger than 100', 3: 'A: "150" is larger than 100'}


def test_ids_above_32_bits_fail_the_schema_check():
    from etl.validate.resources import load

    resource = load("coworkerbookingcreditusehistories")
    cells = [str(MAX_ID), str(MAX_ID + 1), "99999999999999999999", "0", "-3"]
    chunk = RawChunk(rows=np.arange(2, 7), columns=[arrow.array(cells), arrow.array(["1"] * 5)])
    columns = ColumnMap(["CoworkerBookingCreditId", "CreditUsed"],
                        {"CoworkerBookingCreditId": 0, "CreditUsed": 1}, [])
    assert Validator(resource).problems(chunk, columns) == {
        1: f'CoworkerBookingCreditId: "{MAX_ID + 1}" is larger than {MAX_ID}',
        2: 'CoworkerBookingCreditId: "99999999999999999999" is too large',
        3: 'CoworkerBookingCreditId: "0" must be greater than 0',
        4: 'CoworkerBookingCreditId: "-3" must be greater than 0',
    }


def test_any_arrow_layout_of_text_is_read_the_same():
    cells = ["12", " 7 ", "", None, "abc", "2.5"]
    plain = Parsed(Kind.AMOUNT, arrow.array(cells, type=arrow.string()))
    for layout in (arrow.array(cells, type=arrow.string()).dictionary_encode(),
                   arrow.array(cells, type=arrow.large_string())):
        other = Parsed(Kind.AMOUNT, layout)
        assert other.problems == plain.problems and list(other.ok) == list(plain.ok)
        assert other.exact(np.arange(len(cells))) == plain.exact(np.arange(len(cells)))
