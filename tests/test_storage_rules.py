"""Property tests of comparing by values: whatever the server does to the fields it stores (the
emulator's rules: trimming, HTML-encoding, cutting, rounding), once learnt from one known row,
a row's own record is never called DIFFERENT (that would send it twice), and another row's
record is never called SAME unless the server stores both rows alike (that would lose one)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from etl.ledger.storage import Match, Storage
from etl.sandbox import Faults
from etl.sandbox.rules import stored
from etl.validate.resources import load

RESOURCE = load("coworkerbookingcreditusehistories")
TEACHER = {"CoworkerBookingCreditId": 1, "CreditUsed": Decimal("1.2345"),
           "Description": "  Tom & <b>Jerry</b>  \"the\"  O'Brien  long description of a use  "}

texts = st.text(alphabet=st.sampled_from("ab &<>\"' É"), max_size=30)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99"), places=3)
bodies = st.fixed_dictionaries({"CoworkerBookingCreditId": st.integers(1, 3), "CreditUsed": amounts,
                                "Description": texts})
servers = st.builds(Faults, description_max=st.sampled_from([0, 4, 6, 12]),
                    description_trim=st.booleans(), description_html=st.booleans(),
                    amount_round=st.sampled_from([None, 0, 1, 2]))


def as_record(body: dict, faults: Faults) -> dict:
    out = stored({k: v for k, v in body.items()}, faults)
    out["CreditUsed"] = float(Decimal(out["CreditUsed"]))  # as the API answers it: a JSON number
    return out


@settings(max_examples=300, deadline=None)
@given(server=servers, mine=bodies, other=bodies, learnt=st.booleans())
def test_a_rows_own_record_is_never_different_and_anothers_never_the_same(server, mine, other, learnt):
    storage = Storage()
    if learnt:
        storage.learn(RESOURCE, TEACHER, as_record(TEACHER, server))
    record = as_record(mine, server)
    assert storage.compare(RESOURCE, record, mine).match is not Match.DIFFERENT
    if storage.compare(RESOURCE, record, other).match is Match.SAME:
        # the server stores both alike; or, with nothing learnt yet, the record holds exactly
        # the values the other row sent (exact values are the row's until a rule says otherwise)
        assert as_record(other, server) == record or (not learnt and all(
            Decimal(str(record[k])) == Decimal(str(v)) if k == "CreditUsed" else record[k] == v
            for k, v in other.items()))


def test_a_server_that_drops_descriptions_is_learnt():
    faults = Faults()
    storage = Storage()
    teacher = {**TEACHER}
    record = as_record(teacher, faults) | {"Description": None}
    storage.learn(RESOURCE, teacher, record)
    mine = {"CoworkerBookingCreditId": 2, "CreditUsed": Decimal(1), "Description": "anything"}
    assert storage.compare(RESOURCE, {**mine, "Description": None}, mine).match is Match.SAME
    assert storage.compare(RESOURCE, mine, mine).match is Match.DIFFERENT


@settings(max_examples=300, deadline=None)
@given(server=servers, teachers=st.lists(bodies, max_size=3), mine=bodies, other=bodies)
def test_whatever_rows_taught_the_rules_the_same_holds(server, teachers, mine, other):
    storage = Storage()
    for teacher in teachers:
        storage.learn(RESOURCE, teacher, as_record(teacher, server))
    record = as_record(mine, server)
    assert storage.compare(RESOURCE, record, mine).match is not Match.DIFFERENT
    if storage.compare(RESOURCE, record, other).match is Match.SAME:
        assert as_record(other, server) == record or all(
            Decimal(str(record[k])) == Decimal(str(v)) if k == "CreditUsed" else record[k] == v
            for k, v in other.items())
