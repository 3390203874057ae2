"""A Nexudus emulator over real HTTP on localhost: rehearsals for operators, the server for tests.

It speaks the parts of the Spaces API the importer uses (the token endpoint, the credit-use POST,
list and read, the booking-credit lookup) with the documented bodies, and can behave as real
servers do on a bad day, on purpose: latency, a rate limit answered with 409 + Retry-After, a
daily quota, 503s, 500 or a dropped connection *after* creating the record, gateways that give up
(before or after the record is made), a hang past the client's time-out, an answer that trickles,
`WasSuccessful: false`, expiring tokens, a skewed clock, local-time dates, normalised fields,
a refused or forgotten `SystemId`, list pages that shift or ignore `page`. Records and credits
live in SQLite: in memory, or in a file for a rehearsal that spans runs.

It speaks plain HTTP, or HTTPS with a certificate it is given (`tls=`, `--tls-cert`), so that a
TLS session broken after the request left can be rehearsed too.

    store.py    the records, booking credits and POST counts
    rules.py    the server's checks, and what it does to the fields it stores
    faults.py   the knobs (`Faults`), the seeded dice, the rate limiters, `Stats`
    server.py   `Sandbox`: state and lifecycle
    handler.py  the HTTP endpoints
"""

from etl.sandbox.faults import FAULT_NAMES, LIST_FAULT_NAMES, Faults, Stats
from etl.sandbox.rules import validate_body
from etl.sandbox.server import Sandbox
from etl.sandbox.store import Store, load_credits

__all__ = ["FAULT_NAMES", "LIST_FAULT_NAMES", "Faults", "Sandbox", "Stats", "Store", "load_credits",
           "validate_body"]
