"""A use of a coworker's booking credit (CoworkerBookingCreditUseHistory)."""

from etl.fields import PositiveDecimal, PositiveInteger, Text
from etl.resources import Reference, Resource

RESOURCE = Resource(
    name="coworkerbookingcreditusehistories",
    endpoint="/api/billing/coworkerbookingcreditusehistories",
    description="Credit consumed from a coworker's booking credit.",
    fields=(
        PositiveInteger(
            "CoworkerBookingCreditId",
            required=True,
            aliases=("CreditId", "BookingCreditId"),
            help="Id of the booking credit that was consumed.",
        ),
        PositiveDecimal(
            "CreditUsed",
            required=True,
            aliases=("Credit", "Amount"),
            help="Amount of credit consumed, above 0.",
        ),
        Text("Description", help="Note shown with the credit use."),
        PositiveInteger("BookingId", help="The booking the credit paid for."),
        PositiveInteger("CoworkerInvoiceLineId", help="The invoice line the credit paid for."),
        PositiveInteger("EventAttendeeId", help="The event attendance the credit paid for."),
    ),
    lookup={"CoworkerBookingCreditUseHistory_CoworkerBookingCredit": "CoworkerBookingCreditId"},
    system_id_filter="CoworkerBookingCreditUseHistory_SystemId",
    references=(
        Reference(
            column="CoworkerBookingCreditId",
            endpoint="/api/billing/coworkerbookingcredits/{id}",
            name="credit",
            draws="CreditUsed",
            remaining="RemainingCredit",
            expires="ExpireDate",
        ),
    ),
)
