"""`etl validate`: the dry run (and with --online the account preflight), through etl.run.runs."""


from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from etl.cli.common import _validate, api_options, check_options, main, reading_options

if TYPE_CHECKING:
    pass


@main.command()  # here, below api_options, which it takes for --online
@reading_options
@click.option("--online", is_flag=True,
              help="Also check the account: each booking credit exists, has enough left, and "
                   "whether it expired. Reads the API (credentials, or --sandbox), never posts.")
@api_options
@check_options
def validate(files: tuple[str, ...], **kw: Any) -> None:
    """Dry run: read and validate FILES and write the per-row report. Never touches the network,
    unless --online: then each booking credit the valid rows use is looked up once (it exists,
    enough is left for the rows in input order, expiry), and nothing is posted.

    Exit 0 when every row is valid, 1 when some are not (the report names each problem),
    2 when a file can't be used at all.

    \b
    Examples:
        etl validate samples/credit_uses.csv
        etl validate export.csv --delimiter ';' --decimal ','
        etl validate bookings.xlsx --sheet March --map 'Credits=CreditUsed'
        NEXUDUS_TOKEN=... etl validate export.csv --online
    """
    _validate(files, **kw)
