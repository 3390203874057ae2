"""`etl schema`: a resource's columns and rules, or a template CSV to fill in."""


from __future__ import annotations

import csv
import os
import sys
from typing import TYPE_CHECKING

import click

from etl.cli.common import DEFAULT_RESOURCE, main
from etl.errors import UsageProblem

if TYPE_CHECKING:
    pass


# --- schema ----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME|PATH",
    help="Which Nexudus target to describe: a resource's name, or the path of a schema file.",
)
@click.option(
    "--template", metavar="PATH", type=click.Path(dir_okay=False),
    help="Write an empty CSV with the right headers to PATH instead (- for stdout).",
)
def schema(resource: str, template: str | None) -> None:
    """Print the columns a file needs: name, type and rules, required or optional, aliases.

    Everything shown is read from the resource's pandera schema (`SCHEMA` in
    schemas/<name>.py, or the file --resource names).

    \b
    Examples:
        etl schema
        etl schema --template blank.csv
        etl schema --template - > blank.csv
        etl schema --resource ./my_schema.py
    """
    from etl.validate.resources import available, load
    from etl.validate.rules import label

    res = load(resource)
    if template == "-":  # as csvkit's tools take it: the header line on stdout
        csv.writer(sys.stdout, lineterminator="\n").writerow([field.name for field in res.fields])
        return
    if template:
        if os.path.exists(template) and os.path.getsize(template) > 0:
            raise UsageProblem(f"--template {template} exists and is not empty: it is kept; name a new file")
        with open(template, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([field.name for field in res.fields])
        click.echo(f"Wrote the headers of {res.name} to {template}")
        return
    click.echo(f"{res.name}: {res.description}  (POST {res.endpoint})")
    rows = [
        (f.name, ", ".join([f.type_name, *f.rules]),
         ("required" if f.required else "optional") + (", may be blank" if f.required and f.nullable
                                                       else ", never blank" if not f.nullable else ""),
         ", ".join(f.aliases), f.help)
        for f in res.fields
    ]
    head = ("column", "type", "", "aliases", "")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        click.echo("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    for check in res.schema.checks:
        click.echo(f"Every row: {label(check)}")
    others = [n for n in available() if n != res.name]
    if others:
        click.echo(f"Other resources: {', '.join(others)}")
