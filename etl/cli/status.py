"""`etl status`: what a target's journal knows, through etl.report.status."""


from __future__ import annotations

from typing import TYPE_CHECKING

import click

from etl import config
from etl.cli.common import checked_journal, echo_json, json_option, main

if TYPE_CHECKING:
    pass


# --- status ----------------------------------------------------------------------------------


@main.command()
@click.option("--api-url", envvar="NEXUDUS_API_URL", default=config.DEFAULT_API_URL,
              show_default=True, metavar="URL", help="The target whose journal to read.")
@click.option("--sandbox", is_flag=True, help="The journal of the in-process sandbox's rehearsals.")
@click.option("--journal", metavar="PATH", type=click.Path(dir_okay=False), callback=checked_journal,
              help="Read this journal. Default: the target's, in the user's state folder.")
@click.option("--daily-limit", type=click.IntRange(min=1), default=5000, show_default=True, metavar="N",
              help="POSTs a night, to count the nights still needed.")
@click.option("--runs", type=click.IntRange(min=0), default=5, show_default=True, metavar="N",
              help="How many of the last runs to list.")
@json_option("Print what the journal knows (files, today's POSTs, nights to go, last runs) as JSON "
             "on stdout instead of the table; on a problem, the exit code and the error.")
def status(api_url: str, sandbox: bool, journal: str | None, daily_limit: int, runs: int,
           as_json: bool) -> None:
    """What the journal of a target knows: per file done, in doubt, failed and left; today's
    POSTs against the daily limit; the nights still needed; the last runs. Read-only, offline.

    \b
    Examples:
        etl status
        etl status --config nightly.toml
        etl status --sandbox --json
    """
    from etl.report import status as journal_status

    found = journal_status.status(journal_status.StatusSettings(journal, api_url, sandbox, daily_limit, runs))
    if as_json:
        echo_json(found.as_dict())
    else:
        click.echo(journal_status.text(found))
