"""`etl resolve`: one row's fate decided by hand, through etl.run.resolving.resolve."""


from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from etl.cli.common import DEFAULT_RESOURCE, _connection, api_options, main

if TYPE_CHECKING:
    pass


@main.command()
@click.argument("where", metavar="SOURCE:ROW")
@click.option("--created", "record_id", type=click.IntRange(min=1), metavar="ID",
              help="The row's credit use exists: it is the record with this Id.")
@click.option("--not-created", is_flag=True,
              help="The row's credit use does not exist: a rerun sends it again.")
@click.option("--note", default="", metavar="TEXT", help="Why: kept in the journal with the decision.")
@click.option("--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME",
              help="Which Nexudus target the row is for.")
@api_options
def resolve(where: str, record_id: int | None, not_created: bool, note: str, resource: str,
            **kw: Any) -> None:
    """Decide a row in doubt by hand, after looking in Nexudus; recorded in the journal.

    SOURCE is the input file (its path, or its name when only one file of that name is known)
    and ROW its spreadsheet row number, as in the report. Nothing is sent.

    \b
    Examples:
        etl resolve export-2026-11-24.csv:17 --created 87654399 --note "found in the UI"
        etl resolve export-2026-11-24.csv:18 --not-created
    """
    from etl.run import resolving

    done = resolving.resolve(resolving.ResolveSettings(where, record_id, not_created, note, resource,
                                                       _connection(kw)))
    click.echo(done.line())
