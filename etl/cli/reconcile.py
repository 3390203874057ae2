"""`etl reconcile`: the rows in doubt decided, through etl.run.resolving.reconcile."""


from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from etl.cli.common import DEFAULT_RESOURCE, _connection, api_options, echo_json, json_option, main

if TYPE_CHECKING:
    pass


@main.command()
@click.option("--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME",
              help="Which Nexudus target the journal's rows are for.")
@api_options
@click.option("-q", "--quiet", is_flag=True,
              help="Only the summary line: no line per row, no warnings (errors still print).")
@json_option("Print the verdicts as JSON on stdout (counts, the rows still in doubt and why), the "
             "lines going to stderr; on a problem, the exit code and the error.")
def reconcile(resource: str, quiet: bool, as_json: bool, **kw: Any) -> None:
    """Resolve the journal's rows in doubt against the API; post nothing.

    Each row whose request may have created a record (a 500, a time-out, a crash mid-request)
    is looked up (by its SystemId where the account keeps it, else by its fields): found, it is
    `created` with that Id; proved absent once its request has settled, it is marked for a
    rerun to send again; otherwise it stays in doubt and is listed with the reason, for
    `etl resolve` to decide. Exit 0 when none is left in doubt.

    \b
    Examples:
        etl reconcile
        etl reconcile --sandbox
    """
    from etl.run import resolving

    found = resolving.reconcile(resolving.ReconcileSettings(_connection(kw), resource, quiet))
    click.get_current_context().meta["etl.exit"] = int(found.exit_status)  # whatever becomes of stdout
    if not quiet:
        for line in found.lines():
            click.echo(line, err=as_json)
    click.echo(found.summary(), err=as_json)
    if as_json:
        echo_json(found.as_dict())
    sys.exit(int(found.exit_status))
