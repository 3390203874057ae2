"""`etl import`: the import, through etl.run.runs.import_files."""


from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from etl.cli.common import (
    Finite,
    _connection,
    _done,
    _show_progress,
    _Signals,
    _start,
    _validate,
    api_options,
    check_options,
    main,
    reading_options,
)
from etl.outcomes import NEEDS_ACTION

if TYPE_CHECKING:
    pass


@main.command("import")
@reading_options
@click.option("--dry-run", is_flag=True, help="Validate and report only, exactly like `etl validate`.")
@api_options
@click.option("--rate", type=Finite(min=0.001), metavar="N",
              help="Most POSTs per second, evenly spaced. Default 1 (Nexudus allows 60 a minute); "
                   "10 with --sandbox.")
@click.option("--daily-limit", type=click.IntRange(min=1), default=5000, show_default=True, metavar="N",
              help="Most POSTs in one UTC day, counted across runs from the journal.")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True, metavar="N",
              help="Rows per batch: the report is made durable after each.")
@click.option("--concurrency", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              metavar="N", help="Requests in flight at once.")
@click.option("--max-retries", type=click.IntRange(min=0), default=5, show_default=True, metavar="N",
              help="Retries of one row when the failure proves nothing was created.")
@click.option("--max-errors", type=click.IntRange(min=1), default=50, show_default=True, metavar="N",
              help="Abort after N rows in a row ended rejected, failed or in doubt.")
@click.option("--throttle-patience", type=Finite(min=0), default=600.0, show_default=True,
              metavar="S", help="Stop (exit 4, like the daily limit) after S seconds of throttling "
                                "without a break.")
@click.option("--gateway-settle", type=Finite(min=0), default=600.0, show_default=True,
              metavar="S", help="After a gateway's 502/503/504 (or a 408), seconds before \"no record\" "
                                "may mean \"not created\" (the application behind it may still be "
                                "working).")
@click.option("--settle-wait", type=Finite(min=0), default=1800.0, show_default=True,
              metavar="S", help="At the end of the run, wait at most S seconds in all for requests in "
                                "doubt to settle (a gateway's answer takes --gateway-settle): each row "
                                "is checked once its request has settled, and sent again if it was not "
                                "created. 0: look once without waiting (a rerun or etl reconcile checks "
                                "the rest).")
@click.option("--retry-rejected", is_flag=True,
              help="Send again rows the API refused in an earlier run (after fixing the account, "
                   "e.g. topping a credit up); by default a refused row is not sent again.")
@click.option("--key", metavar="COLUMN[,COLUMN]",
              help="Identify rows by these columns of the export (its own record id) instead of "
                   "by every cell and their position among identical rows.")
@click.option("--ignore-column", "ignore", multiple=True, metavar="NAME",
              help="Leave a column that changes on every export (an export timestamp) out of the "
                   "rows' identity (repeatable).")
@click.option("--allow-new-identity", is_flag=True,
              help="Post rows that match rows created under another way of identifying them "
                   "(they are new credit uses, not a re-export).")
@click.option("--no-system-id", "system_id", flag_value=False, default=True,
              help="Don't send each row's import key as SystemId (used, where the account keeps it, "
                   "to check rows in doubt exactly).")
@click.option("--new-journal", is_flag=True,
              help="Start afresh when the target's journal is missing or empty although it had "
                   "recorded created rows (only when sure the target has none of them).")
@click.option("--tag-description", is_flag=True,
              help="Stamp a short import key ([etl:...]) into each Description, so rows in doubt "
                   "are matched exactly even without SystemId; the tag shows in Nexudus.")
@click.option("--check-credits/--no-check-credits", default=True, show_default=True,
              help="Before the first POST, look each booking credit of tonight's rows up once: rows "
                   "of a credit that does not exist, or that would take it below zero, are invalid "
                   "and not sent; an expired credit is noted.")
@check_options
def import_(files: tuple[str, ...], **kw: Any) -> None:
    """Validate FILES, then post the valid rows to Nexudus; write the per-row report.

    Every row gets an outcome in the report. The journal (one per API target, in your state
    folder) remembers what was posted, so a rerun from any folder posts nothing twice: created
    rows come back `skipped`, and a run stopped by the daily limit (exit 4) carries on from
    where it stopped. Ctrl-C finishes the requests under way and completes the report (exit 130).

    \b
    Examples:
        etl import samples/credit_uses.csv --sandbox
        NEXUDUS_TOKEN=... etl import export-2026-11-24.csv
        etl import history-2019-2025.csv --daily-limit 5000 --rate 1
        etl import export.csv --key InvoiceLineRef
    """
    from etl.run import runs
    from etl.run.import_rows import Settings, Stopper

    reading = {k: kw.pop(k) for k in ("resource", "encoding", "delimiter", "decimal", "sheet",
                                      "renames", "report", "quiet", "verbose", "as_json")}
    if kw["dry_run"]:
        return _validate(files, **reading)
    run = _start("import", files, reading)
    settings = Settings(
        batch_size=kw["batch_size"], concurrency=kw["concurrency"], max_errors=kw["max_errors"],
        key=tuple(k.strip() for k in kw["key"].split(",") if k.strip()) if kw["key"] else (),
        ignore=tuple(kw["ignore"]), tag_description=kw["tag_description"],
        system_id=kw["system_id"], allow_new_identity=kw["allow_new_identity"],
        gateway_settle=kw["gateway_settle"], settle_wait=kw["settle_wait"],
        retry_rejected=kw["retry_rejected"],
        account_checks=kw["check_credits"],
    )
    posting = runs.Posting(rate=kw["rate"], daily_limit=kw["daily_limit"], max_retries=kw["max_retries"],
                           throttle_patience=kw["throttle_patience"], read_rate=kw["read_rate"])
    stopper = Stopper()
    stack = contextlib.ExitStack()
    progress = None
    if _show_progress(run):
        def progress(total: int) -> Callable[[int, Any], None]:
            bar = stack.enter_context(click.progressbar(
                length=total, label="Importing", file=sys.stderr, show_eta=True,
                item_show_func=lambda s: s))

            def update(rows: int, counts: Any) -> None:
                label = (f"created {counts.get('created', 0)}, "
                         f"errors {sum(counts.get(o, 0) for o in NEEDS_ACTION)}")
                if stopper.is_set():
                    # the rows after a stop are not attempted: the bar stays where the run
                    # stopped, and says so
                    bar.current_item = f"{label}; stopping"
                else:
                    bar.update(rows, label)
                bar.render_progress()  # the counts of a batch just written, too
            return update
    status = runs.import_files(run, _connection(kw), settings, posting, stopper=stopper, progress=progress,
                               while_posting=_while_posting(stack, stopper, run, reading["as_json"]))
    notes = {} if run.quiet else run.record.extra.get("notes") or {}
    for key, text in _IMPORT_NOTES:
        if notes.get(key):
            click.echo(f"{notes[key]} {text}", err=True)
    _done(run, status, reading["as_json"])


@contextlib.contextmanager
def _while_posting(stack: contextlib.ExitStack, stopper: Any, run: Any, as_json: bool) -> Iterator[None]:
    """Around the import itself: Ctrl-C and SIGTERM stop it cleanly; the progress bar, if one
    was shown, is closed at its end."""
    with stack, _Signals(stopper, run, as_json):
        yield


#: what the import's summary notes say on the terminal, in this order (the count goes first)
_IMPORT_NOTES = (
    ("skipped_identical_from_other_files",
     "rows were skipped: the same values in every cell as rows created earlier from other files, however "
     "spelt (1.50 is 1.5, 7004.0 is 7004; the report names them)."),
    ("reidentified",
     "rows created earlier under another choice of columns are the same credit uses under this one "
     "(their cells, as the journal kept them, agree): they are identified this way from now on, and "
     "skipped."),
    ("skipped_same_key_from_other_files",
     "rows were skipped: rows of the same --key were created earlier from other files with the same "
     "values (the report names them)."),
    ("skipped_changed_under_key",
     "rows were skipped although their values differ from what was sent for their --key: corrections "
     "are never sent again; the report's errors name the cells that differ."),
    ("posted_with_the_payload_of_an_earlier_row",
     "rows were posted although rows with the same payload were created earlier from other files; their "
     "other cells differ (the report names the earlier rows)."),
)
