"""Number and id parsing: exact values, and the column-at-once check agreeing with the cell parser."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as arrow
from hypothesis import example, given, settings
from hypothesis import strategies as st

from etl.fields import MAX_ID, PositiveDecimal, PositiveInteger, Text, canonical_number

ID = PositiveInteger("BookingId", required=True)
AMOUNT = PositiveDecimal("CreditUsed", required=True)
OPTIONAL_ID = PositiveInteger("EventAttendeeId")

# the characters numbers are made of, and the ones that trip parsers up
NUMBERISH = st.text(alphabet="0123456789+-.,eE _x\t n", max_size=12) | st.sampled_from(
    ["1e400", "NaN", "inf", "-inf", "0x1F", "1_000", "١٢٣", "1e-400", "2147483648", "2147483647.0"]
)


@given(st.integers(min_value=1, max_value=MAX_ID))
def test_whole_numbers_and_excel_floats_are_ids(n):
    assert ID.parse(str(n)) == (n, None)
    assert ID.parse(f"{n}.0") == (n, None)
    assert ID.parse(f" {n} ") == (n, None)


@given(st.integers(max_value=0))
def test_zero_and_negative_ids_are_refused(n):
    value, problem = ID.parse(str(n))
    assert value is None and problem == f'"{n}" must be greater than 0'


@given(st.integers(min_value=MAX_ID + 1))
def test_ids_beyond_32_bits_are_refused(n):
    assert ID.parse(str(n))[1] == f'"{n}" is larger than {MAX_ID}'


def test_id_examples_from_the_spec():
    assert ID.parse("123") == (123, None)
    assert ID.parse("123.0") == (123, None)
    assert ID.parse("12.5")[1] == '"12.5" is not a whole number'
    assert ID.parse("abc")[1] == '"abc" is not a whole number'
    assert ID.parse("-3")[1] == '"-3" must be greater than 0'
    assert ID.parse("0")[1] == '"0" must be greater than 0'
    assert ID.parse("  ")[1] == "is required"
    assert OPTIONAL_ID.parse("") == (None, None)


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e12"), places=6))
def test_amounts_stay_exact(d):
    value, problem = AMOUNT.parse(str(d))
    assert problem is None
    assert value == d
    assert Decimal(canonical_number(value)) == d


def test_amount_examples_from_the_spec():
    value, _ = AMOUNT.parse("0.1")
    assert canonical_number(value) == "0.1"
    assert canonical_number(AMOUNT.parse("2.50")[0]) == "2.5"
    assert canonical_number(AMOUNT.parse("1E+2")[0]) == "100"
    assert AMOUNT.parse("2,5", ",")[0] == Decimal("2.5")
    assert AMOUNT.parse("abc")[1] == '"abc" is not a number'
    assert AMOUNT.parse("0")[1] == '"0" must be greater than 0'
    assert AMOUNT.parse("1e400")[1] == '"1e400" is too large'
    for absurd in ("NaN", "inf", "0x1F", "1_000"):
        assert AMOUNT.parse(absurd)[1] == f'"{absurd}" is not a number'


@settings(deadline=None)  # the first Arrow kernel of a process imports pandas: no test of speed
@given(st.lists(NUMBERISH, max_size=30), st.sampled_from([".", ","]))
@example(["", " ", "+0012", "00", "-0", "1.", ".5", "5.", "1e-400", "2147483647.000"], ".")
@example(["9" * 300, "9" * 309, "9" * 400, "123456789", "1234567890", "000000000", "000000001", "1.5.",
          "1" + "0" * 299 + ".5", "0." + "0" * 330 + "1"], ".")
def test_column_check_agrees_with_the_cell_parser(cells, decimal):
    column = arrow.array(cells, type=arrow.string())
    for field in (ID, AMOUNT, OPTIONAL_ID, Text("Description"), Text("Note", required=True)):
        expected = [field.parse(c, decimal)[1] is None for c in cells]
        assert list(field.ok(column, decimal)) == expected, (field.name, cells)
