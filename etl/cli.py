"""The command line: parses options, then hands over to the pipeline. Only this module imports click."""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
            help="CSV file encoding. Default: detected from the whole file (a BOM, UTF-8, UTF-16, or "
                 "the code page that fits, named in a warning).",
        ),
        click.option(
            "--delimiter", metavar="CHAR", callback=lambda c, p, v: _delimiter(v),
            help="CSV delimiter (a character, or tab). Default: a `sep=` first line, else sniffed "
                 "from , ; tab | outside quotes.",
        ),
        click.option(
            "--decimal", type=click.Choice([".", ","]), default=".", show_default=True,
            help="Decimal mark of numbers; ',' for European spreadsheets.",
        ),
        click.option("--sheet", metavar="NAME",
                     help="Worksheet of an .xlsx. Default: the active one (never a hidden one)."),
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




# --- import ----------------------------------------------------------------------------------


def _secret(value: str | None, path: str | None, what: str) -> str | None:
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError as exc:
            raise UsageProblem(f"can't read the {what} file {path}: {exc.strerror}") from None
    return value


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Where the API is and how to log in: the options of every command that talks to it."""
    options = [
        click.option("--sandbox", is_flag=True,
                     help="Use a Nexudus emulator started in-process (no account needed); its "
                          "records are kept beside the journal."),
        click.option("--api-url", envvar="NEXUDUS_API_URL", default="https://spaces.nexudus.com",
                     show_default=True, metavar="URL", help="Base URL of the Nexudus API."),
        click.option("--token", envvar="NEXUDUS_TOKEN", metavar="TOKEN",
                     help="A bearer token (env NEXUDUS_TOKEN). Prefer the env var or --token-file."),
        click.option("--token-file", metavar="PATH", type=click.Path(dir_okay=False),
                     help="Read the bearer token from a file, so it stays out of `ps`."),
        click.option("--username", envvar="NEXUDUS_USERNAME", metavar="EMAIL",
                     help="Log in with the password grant when no token is given (env NEXUDUS_USERNAME)."),
        click.option("--password", envvar="NEXUDUS_PASSWORD", metavar="PASSWORD",
                     help="Password for --username (env NEXUDUS_PASSWORD)."),
        click.option("--password-file", metavar="PATH", type=click.Path(dir_okay=False),
                     help="Read the password from a file, so it stays out of `ps`."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                     metavar="S",
                     help="Seconds to wait for each answer; a time-out leaves the row in doubt."),
        click.option("--journal", default=os.path.join("logs", "journal.sqlite3"), show_default=True,
                     metavar="PATH", type=click.Path(dir_okay=False),
                     help="The SQLite journal of what was posted (what makes reruns safe)."),
        click.option("--allow-insecure-http", is_flag=True,
                     help="Allow a plain http:// --api-url that is not this machine (unencrypted)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass
class Api:
    url: str
    scope: str
    credentials: Any
    sandbox: Any = None


def connect(kw: dict[str, Any]) -> Api:
    """The API to talk to (or the in-process sandbox), its journal scope and credentials."""
    from etl.posting import Credentials, check_url

    if kw["sandbox"]:
        import secrets

        from etl.sandbox import Sandbox

        token = secrets.token_urlsafe(16)
        folder = os.path.dirname(os.path.abspath(kw["journal"]))
        os.makedirs(folder, exist_ok=True)
        box = Sandbox(db=os.path.join(folder, "sandbox.sqlite3"), tokens=(token,)).start()
        return Api(box.url, "sandbox", Credentials(token=token), box)
    credentials = Credentials(
        token=_secret(kw["token"], kw["token_file"], "token"),
        username=kw["username"],
        password=_secret(kw["password"], kw["password_file"], "password"),
    )
    url = check_url(kw["api_url"], kw["allow_insecure_http"])
    credentials.check()
    return Api(url, url, credentials)


@main.command("import")
@reading_options
@click.option("--dry-run", is_flag=True, help="Validate and report only, exactly like `etl validate`.")
@api_options
@click.option("--rate", type=click.FloatRange(min=0.001), metavar="N",
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
              help="Abort after N rows in a row were rejected or failed.")
@click.option("--key", metavar="COLUMN[,COLUMN]",
              help="Identify rows by these columns of the export (an external id) instead of "
                   "by their content and position among identical rows.")
@click.option("--tag-description", is_flag=True,
              help="Stamp a short import key ([etl:...]) into each Description, so rows in doubt "
                   "are matched exactly even when identical; the tag shows in Nexudus.")
def import_(files: tuple[str, ...], **kw: Any) -> None:
    """Validate FILES, then post the valid rows to Nexudus; write the per-row report.

    Every row gets an outcome in the report. The journal remembers what was posted, so a rerun
    posts nothing twice: created rows come back `skipped`, and a run stopped by the daily limit
    (exit 4) carries on from where it stopped.

    \b
    Examples:
        etl import samples/credit_uses.csv --sandbox
        NEXUDUS_TOKEN=... etl import export-2026-11-24.csv
        etl import history-2019-2025.csv --daily-limit 5000 --rate 1
    """
    from etl.importing import Settings, import_files
    from etl.journal import Journal
    from etl.pacing import Pacer
    from etl.posting import Client, Poster

    reading = {k: kw.pop(k) for k in ("resource", "encoding", "delimiter", "decimal", "sheet",
                                      "renames", "report", "quiet")}
    if kw["dry_run"]:
        return _validate(files, **reading)
    run = Run("import", {"files": files, **reading})
    api = connect(kw)
    sandbox, api_url, scope, credentials = api.sandbox, api.url, api.scope, api.credentials
    rate = kw["rate"] or (10.0 if sandbox else 1.0)
    settings = Settings(
        batch_size=kw["batch_size"], concurrency=kw["concurrency"], max_errors=kw["max_errors"],
        key=tuple(k.strip() for k in kw["key"].split(",") if k.strip()) if kw["key"] else (),
        tag_description=kw["tag_description"],
    )

    def poster_for(journal: Journal) -> Poster:
        client = Client(api_url, credentials, timeout=kw["timeout"], pool=kw["concurrency"] + 2)
        return Poster(client, Pacer(rate), journal, run.resource.endpoint,
                      max_retries=kw["max_retries"], daily_limit=kw["daily_limit"],
                      resource=run.resource.name)

    try:
        inputs = run.inputs()
        with contextlib.ExitStack() as stack:
            progress = None
            if run.show_progress():
                def progress(total: int) -> Callable[[int, Any], None]:
                    bar = stack.enter_context(click.progressbar(
                        length=total, label="Importing", file=sys.stderr, show_eta=True,
                        item_show_func=lambda s: s))
                    def update(rows: int, counts: Any) -> None:
                        bar.update(rows, f"created {counts.get('created', 0)}, "
                                         f"errors {sum(counts.get(o, 0) for o in _ERRORS)}")
                    return update
            status = import_files(inputs, run.validator(), run.record, kw["journal"], scope,
                                  poster_for, settings, progress)
    finally:
        if sandbox is not None:
            sandbox.stop()
    run.done(status)


_ERRORS = ("invalid", "rejected", "failed", "in_doubt")


@main.command()
@click.option("--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME",
              help="Which Nexudus target the journal's rows are for.")
@api_options
@click.option("-q", "--quiet", is_flag=True, help="Only the summary line.")
def reconcile(resource: str, quiet: bool, **kw: Any) -> None:
    """Resolve the journal's rows in doubt against the API; post nothing.

    Each row whose request may have created a record (a 500, a time-out, a crash mid-request)
    is looked up and compared field by field: found once, it is `created` with that Id; not
    found, it is marked for a rerun to send again; matched by several identical records, it
    stays in doubt and is listed for a person to decide. Exit 0 when none is left in doubt.

    \b
    Examples:
        etl reconcile
        etl reconcile --journal logs/journal.sqlite3 --sandbox
    """
    from etl.journal import Journal
    from etl.pacing import Pacer
    from etl.posting import Client
    from etl.reconciling import Reconciler

    res = load(resource)
    run_id = pipeline.new_run_id()
    logs.configure(run_id, os.path.join("logs", run_id))
    api = connect(kw)
    try:
        journal = Journal(kw["journal"], api.scope, run_id=run_id)
        try:
            journal.recover(settle=2 * kw["timeout"])
            doubt = journal.in_doubt(res.name)
            client = Client(api.url, api.credentials, timeout=kw["timeout"])
            client.login()
            verdicts = Reconciler(client, journal, res, before_request=Pacer(5).acquire).reconcile(doubt)
        finally:
            journal.close()
    finally:
        if api.sandbox is not None:
            api.sandbox.stop()
    left = [(e, v) for e, v in zip(doubt, verdicts, strict=True) if v.outcome.value == "in_doubt"]
    if not quiet:
        for entry, verdict in left:
            click.echo(f"{entry.source} row {entry.row}: {verdict.reason}")
    counts = {o: sum(v.outcome.value == o for v in verdicts) for o in ("created", "failed", "in_doubt")}
    click.echo(f"{len(doubt)} rows in doubt: {counts['created']} were created, {counts['failed']} were "
               f"not (a rerun sends them), {counts['in_doubt']} still in doubt.")
    logs.close()
    sys.exit(1 if left else 0)


# --- sandbox ---------------------------------------------------------------------------------


@main.command("sandbox")
@click.option("--port", type=int, default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--db", metavar="PATH", default=":memory:", show_default=True,
              help="Keep records in this SQLite file, for a rehearsal that spans runs.")
@click.option("--username", default="sandbox@example.com", show_default=True, help="Login it accepts.")
@click.option("--password", default="sandbox-password", show_default=True, help="Password it accepts.")
@click.option("--latency", type=float, default=0.0, metavar="S", help="Seconds added to every request.")
@click.option("--rate-limit", type=float, default=0.0, metavar="N",
              help="POSTs per second accepted; more get 409 + Retry-After (0: no limit).")
@click.option("--daily-limit", type=int, default=0, metavar="N", help="POSTs per UTC day (0: no limit).")
@click.option("--unavailable", type=float, default=0.0, metavar="P", help="Share of POSTs answered 503.")
@click.option("--error", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 500 without creating anything.")
@click.option("--drop", type=float, default=0.0, metavar="P",
              help="Share of POSTs whose connection is dropped without creating anything.")
@click.option("--reject", type=float, default=0.0, metavar="P",
              help="Share of POSTs refused with 400 and Errors.")
@click.option("--retry-after", type=int, default=1, show_default=True, metavar="S",
              help="Seconds a 409 asks the client to wait.")
@click.option("--error-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer 500.")
@click.option("--drop-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then drop the connection.")
@click.option("--hang-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer only after --hang seconds.")
@click.option("--hang", type=float, default=60.0, show_default=True, metavar="S",
              help="How long a hang lasts.")
@click.option("--unsuccessful", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 200 with WasSuccessful: false.")
@click.option("--token-ttl", type=float, default=0.0, metavar="S",
              help="Seconds a token lives (0: for ever).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault dice.")
def sandbox_command(port: int, db: str, username: str, password: str, **faults: Any) -> None:
    """Run the Nexudus emulator on localhost, for rehearsals, until Ctrl-C.

    \b
    Examples:
        etl sandbox --port 8765
        etl sandbox --rate-limit 1 --unavailable 0.05 --db rehearsal.sqlite3
        NEXUDUS_API_URL=http://127.0.0.1:8765 NEXUDUS_USERNAME=sandbox@example.com \\
            NEXUDUS_PASSWORD=sandbox-password etl import samples/credit_uses.csv
    """
    from etl.sandbox import Faults, Sandbox

    box = Sandbox(port=port, faults=Faults(**faults), db=db, username=username, password=password)
    click.echo(f"Nexudus sandbox at {box.url} (username {username}, password {password})", nl=True)
    sys.stdout.flush()
    try:
        box.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        box.server.server_close()
        click.echo(f"sandbox stopped: {box.stats.created} records created", err=True)
