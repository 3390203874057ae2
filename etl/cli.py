"""The command line: parses options, then hands over to the pipeline. Only this module imports click."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from etl import __version__, logs, pipeline
from etl.errors import EtlError, UsageProblem
from etl.outcomes import ExitStatus
from etl.reading import ReadOptions
from etl.resources import Resource, available, load
from etl.validating import Validator

DEFAULT_RESOURCE = "coworkerbookingcreditusehistories"


class Group(click.Group):
    """Turns the project's typed errors into one line on stderr and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EtlError as exc:
            click.echo(f"etl: error: {exc}", err=True)
            ctx.exit(int(exc.exit_status))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="etl")
def main() -> None:
    """Import credit-use exports into Nexudus Spaces, safely.

    Every row is validated against the resource's schema; valid rows are posted at a pace the
    API accepts, and a report gives the outcome of every single row.

    \b
    Start with a dry run:
        etl validate export.csv
    """


# --- shared options --------------------------------------------------------------------------


def _parse_map(values: tuple[str, ...]) -> dict[str, str]:
    renames = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise click.BadParameter(f"{value!r} is not SOURCE=TARGET", param_hint="--map")
        renames[source.strip()] = target.strip()
    return renames


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(value.lower(), value)
    if len(value) != 1:
        raise click.BadParameter("one character (or tab, comma, semicolon, pipe)")
    return value


def reading_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that reads files takes (contract: 'Options every reading command takes')."""
    options = [
        click.argument(
            "files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str)
        ),
        click.option(
            "--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME",
            help="Which Nexudus target the rows are for (see `etl schema`).",
        ),
        click.option(
            "--encoding", metavar="ENC",
            help="File encoding. Default: detected (UTF-8 with or without BOM, UTF-16, cp1252).",
        ),
        click.option(
            "--delimiter", metavar="CHAR", callback=lambda c, p, v: _delimiter(v),
            help="CSV delimiter (a character, or tab). Default: sniffed from , ; tab |.",
        ),
        click.option(
            "--decimal", type=click.Choice([".", ","]), default=".", show_default=True,
            help="Decimal mark of numbers; ',' for European spreadsheets.",
        ),
        click.option("--sheet", metavar="NAME", help="Worksheet of an .xlsx. Default: the first."),
        click.option(
            "--map", "renames", multiple=True, metavar="SOURCE=TARGET",
            callback=lambda c, p, v: _parse_map(v),
            help="Rename a column to a schema column (repeatable), e.g. --map 'Credits=CreditUsed'.",
        ),
        click.option(
            "--report", metavar="PATH", type=click.Path(dir_okay=False),
            help="Per-row results CSV. Default: logs/<run-id>/results.csv.",
        ),
        click.option(
            "-q", "--quiet", is_flag=True, help="No progress bar; only the summary line."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class Run:
    """What every reading command sets up: the run id, logs, the resource, inputs, a record."""

    def __init__(self, command: str, kw: dict[str, Any]) -> None:
        self.command = command
        self.quiet: bool = kw["quiet"]
        self.resource: Resource = load(kw["resource"])
        for target in kw["renames"].values():
            if self.resource.match(target) is None:
                raise UsageProblem(
                    f"--map target {target!r} is not a column of {self.resource.name}; "
                    f"its columns are: {', '.join(f.name for f in self.resource.fields)}"
                )
        self.renames = {s: self.resource.match(t) or t for s, t in kw["renames"].items()}
        self.run_id = pipeline.new_run_id()
        self.run_dir = os.path.join("logs", self.run_id)
        report = kw["report"] or os.path.join(self.run_dir, "results.csv")
        logs.configure(self.run_id, self.run_dir)
        self.read = ReadOptions(encoding=kw["encoding"], delimiter=kw["delimiter"], sheet=kw["sheet"])
        self.decimal: str = kw["decimal"]
        self.files: list[str] = list(kw["files"])
        self.record = pipeline.RunRecord(self.run_id, command, report, self.files)
        logs.get().info("run started", command=command, files=self.files)

    def inputs(self) -> pipeline.Inputs:
        return pipeline.prepare_inputs(self.files, self.resource, self.read, self.renames)

    def validator(self) -> Validator:
        return Validator(self.resource, self.decimal)

    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()

    def done(self, status: ExitStatus) -> None:
        click.echo(self.record.line())
        logs.close()
        sys.exit(int(status))


def _validate(files: tuple[str, ...], **kw: Any) -> None:
    run = Run("validate", {"files": files, **kw})
    inputs = run.inputs()
    if run.show_progress():
        with click.progressbar(
            length=inputs.total_bytes, label="Validating", file=sys.stderr, show_eta=True
        ) as bar:
            status = pipeline.validate(inputs, run.validator(), run.record, bar.update)
    else:
        status = pipeline.validate(inputs, run.validator(), run.record)
    run.done(status)


@main.command()
@reading_options
def validate(files: tuple[str, ...], **kw: Any) -> None:
    """Dry run: read and validate FILES and write the per-row report. Never touches the network.

    Exit 0 when every row is valid, 1 when some are not (the report names each problem),
    2 when a file can't be used at all.

    \b
    Examples:
        etl validate samples/credit_uses.csv
        etl validate export.csv --delimiter ';' --decimal ','
        etl validate bookings.xlsx --sheet March --map 'Credits=CreditUsed'
    """
    _validate(files, **kw)


# --- schema ----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME",
    help="Which Nexudus target to describe.",
)
@click.option(
    "--template", metavar="PATH", type=click.Path(dir_okay=False),
    help="Write an empty CSV with the right headers to PATH instead.",
)
def schema(resource: str, template: str | None) -> None:
    """Print the columns a file needs: name, type, required or optional, aliases.

    \b
    Examples:
        etl schema
        etl schema --template blank.csv
    """
    res = load(resource)
    if template:
        with open(template, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([field.name for field in res.fields])
        click.echo(f"Wrote the headers of {res.name} to {template}")
        return
    click.echo(f"{res.name}: {res.description}  (POST {res.endpoint})")
    rows = [
        (f.name, f.type_name, "required" if f.required else "optional", ", ".join(f.aliases), f.help)
        for f in res.fields
    ]
    head = ("column", "type", "", "aliases", "")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        click.echo("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    others = [n for n in available() if n != res.name]
    if others:
        click.echo(f"Other resources: {', '.join(others)}")


def command_names() -> list[str]:
    return sorted(main.commands)


