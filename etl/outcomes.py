"""Per-row outcomes, the exit status they add up to (the contract's two tables), and the one
function that says what the report says of a row.

`decide(facts)` is the only place a row's reported outcome is decided: the results report
(its lines as the run goes and the report made whole at the end), errors.csv, summary.json's
counts, `--json` and the terminal lines all show what it returns, and `etl status` buckets the
journal's rows through `STATE_OUTCOME`, the same table's reading of a state. Its input is the
row's facts, nothing else: whether it is valid (and why not), the account checks' verdict, its
journal entry as it stands, whether this line of this run sent it, and this run's notes on it.

    standing of the row          journal state -> outcome
    invalid, refused             any           -> invalid (never sent)
    checked (a dry run)          any           -> valid
    to send (not sent)           any           -> not_attempted (the run stopped before it)
    sent by this line            created -> created; rejected, failed, in_doubt (pending),
                                 not_attempted (new) -> the same
    known (decided before,       created -> skipped (naming the row it was created from);
      or by another line)        the rest as sent

This module stays light (no numpy, no pandas): the CLI imports it to start.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from etl.ledger.entries import Entry


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
#: The outcomes of rows someone has to act on: these go to errors.csv and on the terminal.
NEEDS_ACTION = (Outcome.INVALID.value, Outcome.REJECTED.value, Outcome.FAILED.value,
                Outcome.IN_DOUBT.value)
#: An outcome's number, for a column of them kept a byte a row (`OUTCOMES[code]` is the outcome).
OUTCOMES = tuple(Outcome)
CODE = {o: i for i, o in enumerate(OUTCOMES)}


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


# --- what the report says of a row -----------------------------------------------------------

#: The journal's states (etl.ledger.life's table moves a row between them); "new" is a row it lacks.
STATES = ("new", "pending", "created", "rejected", "failed", "in_doubt", "not_attempted")


class Standing(enum.IntEnum):
    """Where a row stands in this run, before its journal state is read."""

    INVALID = 0  # failed local validation, or its identity could not be made
    REFUSED = 1  # the account checks refused it (no such credit, not enough left)
    CHECKED = 2  # a dry run: valid, nothing is sent
    TO_SEND = 3  # this run meant to send it and has not (yet)
    SENT = 4  # this line's request went out in this run: its state is that request's fate
    KNOWN = 5  # decided before this run, or by another line of it: nothing to send


_O = Outcome
_AS_SENT = {"new": _O.NOT_ATTEMPTED, "pending": _O.IN_DOUBT, "created": _O.CREATED,
            "rejected": _O.REJECTED, "failed": _O.FAILED, "in_doubt": _O.IN_DOUBT,
            "not_attempted": _O.NOT_ATTEMPTED}

#: The decision, as data: TABLE[standing][state] is the row's outcome.
TABLE: tuple[dict[str, Outcome], ...] = (
    dict.fromkeys(STATES, _O.INVALID),
    dict.fromkeys(STATES, _O.INVALID),
    dict.fromkeys(STATES, _O.VALID),
    dict.fromkeys(STATES, _O.NOT_ATTEMPTED),
    _AS_SENT,
    {**_AS_SENT, "created": _O.SKIPPED},
)

#: What a journal state is, as an outcome, for a row whose last request is that state's cause
#: (`etl status` buckets the journal's rows by it: created is done, pending is in doubt).
STATE_OUTCOME: Mapping[str, Outcome] = TABLE[Standing.SENT]


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known of one row when its line is written, or made again at the end of the run."""

    problem: str = ""  # why it failed local validation (or why its identity could not be made)
    refused: str = ""  # the account checks' problem: the row is never sent
    dry_run: bool = False
    to_send: bool = False  # the journal left it for this run to send
    sent: bool = False  # this line's request went out in this run (its answer is in the journal)
    entry: Entry | None = None  # the journal's row, as it stands
    attempts_before: int = 0  # the journal's count of this row's requests before this run sent it
    why: str = ""  # why this run did not send a row it meant to (what stopped it)
    notes: tuple[str, ...] = ()  # the account checks' notes (expired, could not be checked)
    twin: Entry | None = None  # a created row with its payload whose other cells differ
    key: bool = False  # rows are identified by --key (not by every cell)
    other_file: bool = False  # ENTRY came from another file than this line's
    changed: tuple[str, ...] = ()  # under --key: "Field was X, now Y" against what was sent then

    @property
    def standing(self) -> Standing:
        if self.problem:
            return Standing.INVALID
        if self.refused:
            return Standing.REFUSED
        if self.dry_run:
            return Standing.CHECKED
        if self.sent:
            return Standing.SENT
        if self.to_send:
            return Standing.TO_SEND
        return Standing.KNOWN


class Said(NamedTuple):
    """A line of the report: its outcome and cells, and the run note it counts towards (a tuple:
    a night says hundreds of thousands of them)."""

    outcome: Outcome
    record_id: int | None = None
    http_status: int | None = None
    attempts: int | None = None
    errors: str = ""
    counted: str | None = None  # a key of summary.json's "notes" (etl.cli says each in words)


def decide(facts: Facts) -> Said:
    """What the report says of the row FACTS describe. Pure: the same facts, the same line."""
    standing = facts.standing
    entry = facts.entry
    outcome = TABLE[standing][entry.state if entry is not None else "new"]
    if standing is Standing.INVALID:
        return Said(outcome, errors=facts.problem)
    if standing is Standing.REFUSED:
        return Said(outcome, errors=facts.refused)
    if standing is Standing.CHECKED:
        return Said(outcome, errors=_joined(*_noted(facts.notes)))
    if standing is Standing.TO_SEND or entry is None:
        return Said(Outcome.NOT_ATTEMPTED, errors=facts.why)
    if standing is Standing.SENT:
        twin = facts.twin
        return Said(
            outcome, entry.record_id if outcome is Outcome.CREATED else None, entry.http_status,
            (entry.attempts - facts.attempts_before) or None,
            # a row created as asked has nothing to say (its outcome says it); a row found
            # created by reconcile, or decided by hand, says how
            _joined((entry.reason or "") if entry.reason != "created" else "",
                    _twin_note(twin) if twin is not None else "", *_noted(facts.notes)),
            "posted_with_the_payload_of_an_earlier_row" if twin is not None else None)
    if outcome is Outcome.SKIPPED:
        return _skipped(facts, entry)
    if outcome is Outcome.REJECTED:
        return Said(outcome, http_status=entry.http_status, errors=(
            f"{entry.reason} (refused on {when(entry)}; not sent again: fix the row, or "
            "--retry-rejected once the account is fixed)"))
    if outcome is Outcome.IN_DOUBT:
        return Said(outcome, errors=entry.reason or "an earlier request may have created it")
    return Said(outcome, http_status=entry.http_status, errors=entry.reason or "")


def checked(valid: bool) -> Outcome:
    """A dry run's outcome of a valid or invalid row: `decide`'s, for a whole chunk at once (its
    errors cell is the row's problems as validation joined them; the account checks' notes on a
    valid row, with `--online`, come from `decide` row by row)."""
    return TABLE[Standing.CHECKED if valid else Standing.INVALID]["new"]


def _skipped(facts: Facts, entry: Entry) -> Said:
    """Why a row is skipped, truthfully: the row it was created from, and under --key the values
    sent then against its values now."""
    outcome, record_id = Outcome.SKIPPED, entry.record_id
    note = f"note: already created from {entry.where} on {when(entry)} (Id {record_id})"
    if not facts.key:  # the same identity: the same values, however spelt
        return Said(outcome, record_id, errors=note + ": the same values in every cell",
                    counted="skipped_identical_from_other_files" if facts.other_file else None)
    if not facts.changed:
        return Said(outcome, record_id, errors=note,
                    counted="skipped_same_key_from_other_files" if facts.other_file else None)
    # --key says it is that row: a corrected row is never sent again, nor silently
    return Said(outcome, record_id, counted="skipped_changed_under_key", errors=(
        f"changed under the same --key: {'; '.join(facts.changed)} (not sent: a row of that key was "
        f"created from {entry.where} on {when(entry)}, Id {record_id}; correct that record in "
        "Nexudus if the change is right)"))


def _twin_note(twin: Entry) -> str:
    return (f"note: same payload as {twin.where} (Id {twin.record_id}, created {when(twin)}), but "
            "its other cells differ: posted as a new credit use")


def _noted(notes: tuple[str, ...]) -> list[str]:
    return [f"note: {n}" for n in notes]


def _joined(*items: str) -> str:
    return " | ".join(i for i in items if i)


def when(entry: Entry) -> str:
    """When the journal's row was created (else last changed), to the minute, UTC."""
    return (entry.created_at or entry.updated_at or "")[:16].replace("T", " ")
