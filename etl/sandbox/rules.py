"""The server's own checks of a credit use, and what it does to the fields it stores."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from etl.sandbox.faults import Faults

#: Nexudus keeps Ids as .NET Int32, amounts as .NET decimal: a value past either is refused
MAX_ID = 2**31 - 1
MAX_DECIMAL = Decimal("79228162514264337593543950335")

#: How .NET's HttpUtility.HtmlEncode writes the characters it encodes (`&` first).
_HTML = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;"))


def validate_body(body: Any) -> list[dict[str, Any]]:
    """The server's own checks of a credit use, as 400 `Errors` items."""
    if not isinstance(body, dict):
        return [{"AttemptedValue": None, "Message": "the body must be a JSON object", "PropertyName": ""}]
    errors = []

    def error(name: str, message: str) -> None:
        errors.append({"AttemptedValue": body.get(name), "Message": message, "PropertyName": name})

    for name in ("CoworkerBookingCreditId", "CreditUsed"):
        if body.get(name) is None:
            error(name, "is a required field")
    for name in ("CoworkerBookingCreditId", "BookingId", "CoworkerInvoiceLineId", "EventAttendeeId"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            error(name, "must be a positive whole number")
        elif value is not None and value > MAX_ID:
            error(name, f"must be at most {MAX_ID}")
    used = body.get("CreditUsed")
    if used is not None:
        try:
            ok = not isinstance(used, bool) and 0 < Decimal(str(used)) <= MAX_DECIMAL
        except InvalidOperation:
            ok = False
        if not ok:
            error("CreditUsed", "must be a number greater than 0")
    return errors


def system_id_errors(body: dict[str, Any], faults: Faults) -> list[dict[str, Any]]:
    """A server that refuses `SystemId` on create names it in a 400."""
    if faults.system_id != "refuse" or body.get("SystemId") is None:
        return []
    return [{"AttemptedValue": body["SystemId"], "PropertyName": "SystemId",
             "Message": "is not a field that can be set when creating a CoworkerBookingCreditUseHistory"}]


def description(text: str, faults: Faults) -> str:
    """Description as the server stores it: trimmed, then HTML-encoded, then cut to length."""
    if faults.description_trim:
        text = re.sub(" {2,}", " ", text.strip())
    if faults.description_html:
        for plain, encoded in _HTML:
            text = text.replace(plain, encoded)
    if faults.description_max:
        text = text[: faults.description_max]
    return text


def amount(value: Any, faults: Faults) -> str:
    """CreditUsed as the server stores it: exact, or rounded half away from zero."""
    if faults.amount_round is None:
        return str(value)
    return str(Decimal(str(value)).quantize(Decimal(1).scaleb(-faults.amount_round), ROUND_HALF_UP))


def stored(body: dict[str, Any], faults: Faults) -> dict[str, Any]:
    """The body as the server writes it: normalised fields, SystemId kept or dropped."""
    out = dict(body)
    out["CreditUsed"] = amount(body["CreditUsed"], faults)
    if isinstance(body.get("Description"), str):
        out["Description"] = description(body["Description"], faults)
    system_id = body.get("SystemId")
    out["SystemId"] = None if system_id is None or faults.system_id == "drop" else str(system_id)
    return out
