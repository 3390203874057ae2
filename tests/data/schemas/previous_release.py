"""A use of a coworker's booking credit (CoworkerBookingCreditUseHistory).

`SCHEMA` is what every row of a file is checked against, by pandera, before anything is sent.
A cell reaches its checks as a value: "Int64" columns hold whole numbers, `Amount` columns
exact decimals, `str` columns text without the spaces around it; a blank cell is null. To add
a rule, add a check (see the README, "Adding a rule"): it is honoured on every row.
"""

import pandera.pandas as pa

from etl.dtypes import Amount
from etl.fields import MAX_ID
from etl.resources import Reference

#: an id names a record: a whole number from 1 to 2**31-1 (Nexudus ids are 32-bit)
ID_CHECKS = [pa.Check.gt(0), pa.Check.le(MAX_ID)]

SCHEMA = pa.DataFrameSchema(
    {
        "CoworkerBookingCreditId": pa.Column(
            "Int64", checks=ID_CHECKS, required=True, nullable=False,
            description="Id of the booking credit that was consumed.",
            metadata={"aliases": ["CreditId", "BookingCreditId"]},
        ),
        "CreditUsed": pa.Column(
            Amount, checks=[pa.Check.gt(0)], required=True, nullable=False,
            description="Amount of credit consumed, above 0.",
            metadata={"aliases": ["Credit", "Amount"]},
        ),
        "Description": pa.Column(
            str, required=False, nullable=True, description="Note shown with the credit use.",
        ),
        "BookingId": pa.Column(
            "Int64", checks=ID_CHECKS, required=False, nullable=True,
            description="The booking the credit paid for.",
        ),
        "CoworkerInvoiceLineId": pa.Column(
            "Int64", checks=ID_CHECKS, required=False, nullable=True,
            description="The invoice line the credit paid for.",
        ),
        "EventAttendeeId": pa.Column(
            "Int64", checks=ID_CHECKS, required=False, nullable=True,
            description="The event attendance the credit paid for.",
        ),
    },
    name="coworkerbookingcreditusehistories",
    description="Credit consumed from a coworker's booking credit.",
    metadata={
        "endpoint": "/api/billing/coworkerbookingcreditusehistories",
        # the list filter that finds the records of a row (the field whose value it takes)
        "lookup": {"CoworkerBookingCreditUseHistory_CoworkerBookingCredit": "CoworkerBookingCreditId"},
        # the list filter on the user-defined SystemId
        "system_id_filter": "CoworkerBookingCreditUseHistory_SystemId",
        # records of the account a row needs, looked up before the first POST (etl.checks)
        "references": [
            Reference(
                column="CoworkerBookingCreditId",
                endpoint="/api/billing/coworkerbookingcredits/{id}",
                name="credit",
                draws="CreditUsed",
                remaining="RemainingCredit",
                expires="ExpireDate",
            ),
        ],
    },
)
