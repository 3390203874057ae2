"""Per-row outcomes and the exit status they add up to (the contract's two tables)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum


class Outcome(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    CREATED = "created"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    NOT_ATTEMPTED = "not_attempted"


class ExitStatus(IntEnum):
    OK = 0
    ROWS_NEED_ATTENTION = 1
    USAGE = 2
    ABORTED = 3
    DAILY_LIMIT = 4
    INTERRUPTED = 130
    TERMINATED = 143


#: Outcomes that mean the row is done and needs nobody's attention.
GOOD = frozenset({Outcome.VALID, Outcome.CREATED, Outcome.SKIPPED})


def exit_status(
    counts: Mapping[str, int], *, aborted: bool = False, daily_limit: bool = False
) -> ExitStatus:
    """The exit code of a finished run, from its outcome counts and how it stopped."""
    if aborted:
        return ExitStatus.ABORTED
    if daily_limit:
        return ExitStatus.DAILY_LIMIT
    if any(n for outcome, n in counts.items() if outcome not in GOOD):
        return ExitStatus.ROWS_NEED_ATTENTION
    return ExitStatus.OK
