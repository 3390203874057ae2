"""The command line: parses options, then hands over to the pipeline. Only this module imports click.

Start-up is kept light: `etl --help`, `etl status` and shell completion import neither pandas,
pyarrow nor pandera; the modules that need them are imported inside the commands.

Every option can also come from the environment (`ETL_<OPTION>`) or from a `--config` TOML file;
`Group.add_command` wires that into each command once, so no option is configured by hand.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from etl import __version__, config
from etl.errors import EtlError, UsageProblem, no_room
from etl.outcomes import ExitStatus

if TYPE_CHECKING:
    from etl import pipeline
    from etl.resources import Resource
    from etl.validating import Validator

DEFAULT_RESOURCE = "coworkerbookingcreditusehistories"


#: Commands that take no options from ETL_* or --config: the emulator's fault knobs
#: (its --daily-limit is the emulated server's, not the importer's).
_NOT_CONFIGURED = frozenset({"sandbox"})
#: Secrets keep their NEXUDUS_* names only.
_SECRET_OPTIONS = frozenset({"token", "password"})


def _long_name(option: click.Option) -> str:
    """The option's long name without dashes (`--daily-limit` -> `daily-limit`)."""
    longs = [o for o in option.opts if o.startswith("--")] or option.opts
    return max(longs, key=len).lstrip("-")


def _options(command: click.Command) -> dict[str, str]:
    return {_long_name(p): p.name for p in command.params
            if isinstance(p, click.Option) and p.name and p.name != "config"}


def _load_config(ctx: click.Context, _: click.Parameter, path: str | None) -> None:
    """Eager: the file's values become the command's defaults before any other option is read."""
    if not path or ctx.resilient_parsing or ctx.command.name is None:
        return
    group = ctx.find_root().command
    assert isinstance(group, click.Group)
    everywhere = {o for c in group.commands.values() for o in _options(c)}
    values = config.load(path, ctx.command.name, _options(ctx.command), everywhere, group.commands)
    ctx.default_map = {**(ctx.default_map or {}), **values}


class Group(click.Group):
    """Turns the project's typed errors into one line on stderr and their exit code, and gives
    every command's options their ETL_* environment variable and a --config file. With --json,
    every failure also prints one JSON document on stdout (the exit code and the error)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["etl.argv"] = list(args)  # --json is honoured even when parsing fails
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if not _wants_json(ctx):
                raise
            exc.show()
            _failed(ctx, exc.exit_code, exc.format_message())
        except EtlError as exc:
            _fail(ctx, int(exc.exit_status), str(exc))
        except KeyboardInterrupt:
            click.echo("etl: interrupted", err=True)
            _failed(ctx, int(ExitStatus.INTERRUPTED), "interrupted")
        except OSError as exc:
            sent = ctx.invoked_subcommand in ("import", "reconcile", "resolve")
            if not no_room(exc):
                if exc.filename is None:
                    raise
                _fail(ctx, int(ExitStatus.ABORTED if sent else ExitStatus.USAGE),
                      f"{exc.filename}: {exc.strerror or exc}"
                      + ("; nothing more is sent: the journal says what was done" if sent else ""))
            where = f" writing {exc.filename}" if exc.filename else ""
            then = ("nothing more is sent; free some space and run it again: the journal says what "
                    "was done" if sent else "free some space and run it again")
            _fail(ctx, int(ExitStatus.ABORTED), f"no room left{where} ({exc.strerror or exc}); {then}")

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if (name or cmd.name) not in _NOT_CONFIGURED:
            _configurable(cmd)
        super().add_command(cmd, name)


def _wants_json(ctx: click.Context) -> bool:
    """--json was asked for: on the command line, by ETL_JSON, or by a config file (once read)."""
    if ctx.meta.get("etl.json"):
        return True
    if "--json" in ctx.meta.get("etl.argv", ()):
        return True
    return os.environ.get("ETL_JSON", "").strip().lower() in ("1", "true", "t", "yes", "y", "on")


def _fail(ctx: click.Context, code: int, message: str) -> None:
    click.echo(f"etl: error: {message}", err=True)
    _failed(ctx, code, message)


def _failed(ctx: click.Context, code: int, message: str) -> None:
    """Exit CODE; with --json, first the one JSON document of a run that failed: what a run
    had read and counted so far (also kept as its summary.json), or the command and error."""
    run: Run | None = ctx.meta.get("etl.run")
    if run is not None:
        document = run.failed(code, message)
    else:
        document = {"command": ctx.invoked_subcommand, "exit_code": code, "error": message}
        if ctx.meta.get("etl.files"):
            document["files"] = ctx.meta["etl.files"]
    if _wants_json(ctx):
        click.echo(json.dumps(document, indent=2, default=str))
    ctx.exit(code)


def _note_json(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta["etl.json"] = True
    return value


def _note_files(ctx: click.Context, _: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    ctx.meta["etl.files"] = list(value)
    return value


def _configurable(command: click.Command) -> None:
    """Flag, then ETL_<OPTION> (or NEXUDUS_*), then --config, then the default: click's own order
    of command line, envvar, default_map and default, set up here for every option at once."""
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("help", "version"):
            continue
        name = _long_name(param)
        if param.envvar is None:
            param.envvar = config.env_name(name)
        elif name not in _SECRET_OPTIONS and isinstance(param.envvar, str):
            param.envvar = [param.envvar, config.env_name(name)]
    command.params.append(click.Option(
        ["--config"], metavar="FILE", is_eager=True, expose_value=False, callback=_load_config,
        envvar="ETL_CONFIG", type=click.Path(dir_okay=False),
        help="Read options from a TOML file whose keys are long option names "
             "(daily-limit = 5000); the command line and ETL_* variables win over it.",
    ))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="etl")
def main() -> None:
    """Import credit-use exports into Nexudus Spaces, safely.

    Every row is validated against the resource's schema; valid rows are posted at a pace the
    API accepts, and a report gives the outcome of every single row.

    Every option can also be set by an environment variable ETL_<OPTION> (ETL_DAILY_LIMIT=5000)
    or in a --config TOML file (daily-limit = 5000); secrets only as NEXUDUS_TOKEN,
    NEXUDUS_USERNAME and NEXUDUS_PASSWORD, or in a config file only its owner can read.

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
    options: list[Callable[[Any], Any]] = [
        click.argument(
            "files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str),
            callback=_note_files,
        ),
        click.option(
            "--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME|PATH",
            help="Which Nexudus target the rows are for (see `etl schema`): a resource's name, or "
                 "the path of a schema file (a copy of one in schemas/, with rules of your own).",
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
            "-q", "--quiet", is_flag=True,
            help="Only the summary line: no progress bar, no warnings (they stay in the run's "
                 "log.jsonl), no list of rows that need action; errors still print.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Show the debug log on stderr."),
        json_option(
            "Print the run's summary as JSON on stdout (what summary.json holds), whatever the exit "
            "code (on a problem: the exit code and the error); the summary line goes to stderr."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def json_option(text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--json, with what it prints for this command."""
    return click.option("--json", "as_json", is_flag=True, callback=_note_json, help=text)


class Run:
    """What every reading command sets up: the run id, logs, the resource, inputs, a record."""

    def __init__(self, command: str, kw: dict[str, Any]) -> None:
        from etl.resources import is_path, load_soon

        loading = load_soon(kw["resource"])  # the schema, and pandera with it, while the rest starts
        from etl import logs, pipeline
        from etl.reading import ReadOptions

        self.command = command
        self.quiet: bool = kw["quiet"]
        self.verbose: bool = kw.get("verbose", False)
        self.as_json: bool = kw.get("as_json", False)
        self.resource: Resource = loading()
        for target in kw["renames"].values():
            if self.resource.match(target) is None:
                raise UsageProblem(
                    f"--map target {target!r} is not a column of {self.resource.name}; "
                    f"its columns are: {', '.join(f.name for f in self.resource.fields)}"
                )
        self.renames = {s: self.resource.match(t) or t for s, t in kw["renames"].items()}
        #: the options a fixed errors.csv is read with again (its headers and numbers are the file's)
        self.again: list[str] = [
            *(["--resource", kw["resource"]] if kw["resource"] != DEFAULT_RESOURCE else []),
            *(["--decimal", kw["decimal"]] if kw["decimal"] != "." else []),
            *(["--encoding", kw["encoding"]] if kw["encoding"] else []),
            *(["--delimiter", {"\t": "tab"}.get(kw["delimiter"], kw["delimiter"])]
              if kw["delimiter"] else []),
            *[x for s, t in kw["renames"].items() for x in ("--map", f"{s}={t}")]]
        self.run_id = pipeline.new_run_id()
        self.run_dir = os.path.join("logs", self.run_id)
        report = kw["report"] or os.path.join(self.run_dir, "results.csv")
        files = list(kw["files"])
        if "-" in files and (command != "validate" or files.count("-") > 1):
            raise UsageProblem(
                "- (stdin) can be validated once, not imported: an import reads its file more than "
                "once and a rerun must find it again; save it to a file first"
                if command != "validate" else "- (stdin) can be named once")
        pipeline.check_paths([f for f in files if f != "-"], report)
        logs.configure(self.run_id, os.path.dirname(os.path.abspath(report)), verbose=self.verbose,
                       quiet=self.quiet)
        if "-" in files:
            files[files.index("-")] = _spool_stdin(os.path.dirname(os.path.abspath(report)), self.run_id)
        self.read = ReadOptions(encoding=kw["encoding"], delimiter=kw["delimiter"], sheet=kw["sheet"])
        self.decimal: str = kw["decimal"]
        self.files: list[str] = files
        self.record = pipeline.RunRecord(self.run_id, command, report, self.files)
        self.record.extra["resource"] = self.resource.name
        if is_path(kw["resource"]):  # the rules the rows were held to, when not the installed ones
            self.record.extra["schema"] = os.path.abspath(kw["resource"])
        with contextlib.suppress(FileNotFoundError):  # an earlier run's, beside a --report reused
            os.remove(self.record.summary_path)
        logs.get().info("run started", command=command, files=self.files)
        click.get_current_context().meta["etl.run"] = self

    def failed(self, code: int, message: str) -> dict[str, Any]:
        """The run's summary when it ends on a problem: kept as its summary.json too (unless the
        run already wrote one), so its log folder says how it ended."""
        from etl import logs
        from etl.pipeline import now_iso
        from etl.reporting import write_summary

        # no report was written when the run stopped before it: none is named
        document = {**self.record.summary(), "exit_code": code, "error": message,
                    **({} if os.path.exists(self.record.report) else {"report": None})}
        if self.record.finished_at is None:
            self.record.finished_at = document["finished_at"] = now_iso()
            self.record.exit_code = code
            with contextlib.suppress(OSError):
                write_summary(self.record.summary_path, document)
        with contextlib.suppress(Exception):
            logs.get().info("run failed", exit_code=code, error=message)
        logs.close()
        return document

    def inputs(self) -> pipeline.Inputs:
        from etl import pipeline

        return pipeline.prepare_inputs(self.files, self.resource, self.read, self.renames)

    def validator(self) -> Validator:
        from etl.validating import Validator

        return Validator(self.resource, self.decimal)

    def show_progress(self) -> bool:
        return not self.quiet and not self.verbose and sys.stderr.isatty()

    def done(self, status: ExitStatus) -> None:
        from etl import logs

        attention = self.record.attention
        if attention is not None and attention.total and not self.quiet:
            show_attention(attention, self.again)
        if self.as_json:
            if not self.quiet:
                click.echo(self.record.line(), err=True)
            click.echo(json.dumps(self.record.summary(), indent=2, default=str))
        else:
            click.echo(self.record.line())
        logs.close()
        sys.exit(int(status))


def _spool_stdin(folder: str, run_id: str) -> str:
    """`etl validate -`: stdin is kept as a file in the run's folder (the report names it), since
    a file is read more than once (checked, then read)."""
    stream = sys.stdin.buffer
    if stream.isatty():
        raise UsageProblem("- reads the export from stdin, which is a terminal here; pipe it in "
                           "(etl validate - < export.csv)")
    head = stream.read(4)
    path = os.path.join(folder, "stdin" + (".xlsx" if head.startswith(b"PK\x03\x04") else ".csv"))
    if os.path.exists(path):  # a --report folder used before
        path = os.path.join(folder, f"stdin-{run_id}{os.path.splitext(path)[1]}")
    with open(path, "wb") as f:
        f.write(head)
        while chunk := stream.read(1 << 20):
            f.write(chunk)
    return path


def show_attention(attention: Any, again: list[str] | None = None) -> None:
    """The first rows that need action, on stderr, each with its row number and reason; and the
    options errors.csv must be loaded again with (it keeps the file's own headers and numbers)."""
    for source, row, outcome, errors in attention.first:
        click.echo(f"{source} row {row}: {outcome}: {errors}", err=True)
    more = attention.total - len(attention.first)
    if more > 0:
        click.echo(f"and {more} more: see {attention.path}", err=True)
    else:
        click.echo(f"To fix and load them again: {attention.path}", err=True)
    if again:
        import shlex

        click.echo(f"Load it again with the same options: {shlex.join(again)}", err=True)


def _validate(files: tuple[str, ...], online: bool = False, **kw: Any) -> None:
    from etl import pipeline

    run = Run("validate", {"files": files, **kw})
    inputs = run.inputs()
    if kw.get("credits_file") and not online:
        raise UsageProblem("--credits is for the account checks of --online --sandbox")
    api = connect(kw) if online else None
    if api is not None and api.sandbox is not None and not kw.get("credits_file"):
        from etl import logs

        logs.get().warning("--online --sandbox without --credits FILE checks an emulator in which every "
                           "booking credit exists and has credit left: it proves nothing about your "
                           "account (give --credits, or check against the API)")
    try:
        with contextlib.ExitStack() as stack:
            progress = None
            if run.show_progress():
                progress = stack.enter_context(click.progressbar(
                    length=inputs.total_bytes, label="Validating", file=sys.stderr, show_eta=True
                )).update
            if api is None:
                status = pipeline.validate(inputs, run.validator(), run.record, progress)
            else:
                from etl.checks import validate_online

                status = validate_online(inputs, run.validator(), run.record, api.url, api.credentials,
                                         timeout=kw["timeout"], read_rate=_read_rate(kw, api),
                                         progress=progress)
    finally:
        if api is not None and api.sandbox is not None:
            api.sandbox.stop()
    run.done(status)


def _read_rate(kw: dict[str, Any], api: Api) -> float:
    """--read-rate, else the default: under Nexudus' read limits, or quicker for the sandbox."""
    from etl.checks import READ_RATE, SANDBOX_READ_RATE

    return float(kw["read_rate"] or (SANDBOX_READ_RATE if api.sandbox else READ_RATE))


def check_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How the account checks read (`etl import`, `etl validate --online`)."""
    command = click.option(
        "--credits", "credits_file", metavar="FILE", type=click.Path(dir_okay=False),
        help="With --sandbox: the booking credits the emulator has (a JSON list or a CSV "
             "Id,TotalCredit,RemainingCredit,..., as `etl sandbox --credits`). Without it every "
             "credit exists there, so the account checks prove nothing.")(command)
    return click.option(
        "--read-rate", type=click.FloatRange(min=0.001), metavar="N",
        help="Most look-ups (reads) a second when checking booking credits before posting. "
             "Default 1.25, after a first 40 at once (Nexudus allows 120 requests a minute and "
             "5,000 an hour); 50 with --sandbox.")(command)


# --- schema ----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--resource", default=DEFAULT_RESOURCE, show_default=True, metavar="NAME|PATH",
    help="Which Nexudus target to describe: a resource's name, or the path of a schema file.",
)
@click.option(
    "--template", metavar="PATH", type=click.Path(dir_okay=False),
    help="Write an empty CSV with the right headers to PATH instead.",
)
def schema(resource: str, template: str | None) -> None:
    """Print the columns a file needs: name, type and rules, required or optional, aliases.

    Everything shown is read from the resource's pandera schema (`SCHEMA` in
    schemas/<name>.py, or the file --resource names).

    \b
    Examples:
        etl schema
        etl schema --template blank.csv
        etl schema --resource ./my_schema.py
    """
    from etl.resources import available, load
    from etl.rules import label

    res = load(resource)
    if template:
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


# --- status ----------------------------------------------------------------------------------


@main.command()
@click.option("--api-url", envvar="NEXUDUS_API_URL", default="https://spaces.nexudus.com",
              show_default=True, metavar="URL", help="The target whose journal to read.")
@click.option("--sandbox", is_flag=True, help="The journal of the in-process sandbox's rehearsals.")
@click.option("--journal", metavar="PATH", type=click.Path(dir_okay=False),
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
    from etl import status as journal_status

    found = journal_status.read(journal_status.journal_for(journal, api_url, sandbox),
                                daily_limit=daily_limit, runs=runs)
    if as_json:
        click.echo(json.dumps(found.as_dict(), indent=2))
    else:
        click.echo(journal_status.text(found))


# --- report ----------------------------------------------------------------------------------


@main.command()
@click.argument("target", metavar="RUN_DIR|RESULTS.csv", type=click.Path(exists=True))
@click.option("--html", "html_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML page (charts, no network) to PATH.")
@click.option("--rows", type=click.IntRange(min=0), default=10, show_default=True, metavar="N",
              help="How many rows that need action to list on the terminal.")
@json_option("Print the run's summing-up (counts per outcome and file, reasons by column, rows "
             "that need action) as JSON on stdout instead of the text; on a problem, the exit "
             "code and the error.")
def report(target: str, html_path: str | None, rows: int, as_json: bool) -> None:
    """Summarise a finished run: counts per outcome and file, the most common reasons by
    column, the rows that need action; with --html, a page with charts to share.

    \b
    Examples:
        etl report logs/20261124T010000Z-3f9c0a
        etl report logs/20261124T010000Z-3f9c0a/results.csv --html run.html
    """
    from etl import report as run_report

    found = run_report.read(target)
    if html_path:
        from etl import report_html

        report_html.write(found, html_path)
    if as_json:
        click.echo(json.dumps({
            "results": found.results, "summary": found.summary, "rows": found.rows,
            "counts": dict(run_report.ordered(found.counts)),
            "files": {f: dict(run_report.ordered(c)) for f, c in found.by_file.items()},
            "reasons": [{"column": c, "reason": r, "rows": n} for c, r, n in found.top_reasons()],
            "needs_action": found.attention_total, "posts": len(found.posts), "html": html_path,
        }, indent=2, default=str))
    else:
        click.echo(run_report.text(found, rows=rows))
        if html_path:
            click.echo(f"Wrote {html_path}")


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
                          "records are kept beside its journal."),
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
                     help="Seconds the whole answer to a request may take; a time-out leaves the row "
                          "in doubt."),
        click.option("--journal", envvar="ETL_JOURNAL", metavar="PATH", type=click.Path(dir_okay=False),
                     help="The SQLite journal of what was posted (what makes reruns safe). Default: "
                          "one per API target in your state folder, whatever folder you start in."),
        click.option("--allow-insecure-http", is_flag=True,
                     help="Allow a plain http:// --api-url that is not this machine (unencrypted)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass
class Api:
    url: str
    target: str
    credentials: Any
    journal: str
    sandbox: Any = None


def _target(kw: dict[str, Any]) -> tuple[str, str]:
    """The API target (its normalised URL, or "sandbox") and the path of its journal."""
    from etl.journal import default_journal_path, normalise_url
    from etl.posting import check_url

    target = "sandbox" if kw["sandbox"] else normalise_url(
        check_url(kw["api_url"], kw["allow_insecure_http"]))
    return target, kw["journal"] or default_journal_path(target)


def connect(kw: dict[str, Any], *, credentials: bool = True) -> Api:
    """The API to talk to (or the in-process sandbox), its journal and credentials."""
    from etl.posting import Credentials

    target, journal = _target(kw)
    if kw["sandbox"]:
        import secrets

        from etl.sandbox import Sandbox

        token = secrets.token_urlsafe(16)
        from etl.journal import default_journal_path
        from etl.journal_backends import is_url

        # the emulator's records are kept beside its journal, or in the state folder
        folder = os.path.dirname(default_journal_path(target) if is_url(journal)
                                 else os.path.abspath(journal))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            from etl.journal import journal_folder_problem

            raise journal_folder_problem(folder, exc) from None
        box = Sandbox(db=os.path.join(folder, "sandbox-records.sqlite3"), tokens=(token,),
                      credits=_sandbox_credits(kw.get("credits_file"))).start()
        return Api(box.url, target, Credentials(token=token), journal, box)
    if kw.get("credits_file"):
        raise UsageProblem("--credits declares the booking credits of the emulator: it goes with --sandbox")
    creds = Credentials(
        token=_secret(kw["token"], kw["token_file"], "token"),
        username=kw["username"],
        password=_secret(kw["password"], kw["password_file"], "password"),
    )
    if credentials:
        creds.check()
    return Api(target, target, creds, journal)


def _sandbox_credits(path: str | None) -> list[dict[str, Any]]:
    from etl.sandbox import load_credits

    if not path:
        return []
    try:
        return load_credits(path)
    except (OSError, ValueError) as exc:
        raise UsageProblem(f"--credits {path}: {getattr(exc, 'strerror', None) or exc}") from None


def open_journal(api: Api, kw: dict[str, Any], run_id: str, command: str) -> Any:
    """The target's journal, taking over the one an earlier version kept in this folder."""
    from etl import logs
    from etl.journal import OLD_DEFAULT, Journal, forget

    if kw.get("new_journal"):
        forget(api.journal)
    journal = Journal(api.journal, api.target, run_id=run_id, command=command,
                      fresh=bool(kw.get("new_journal")))
    if not kw["journal"] and os.path.isfile(OLD_DEFAULT) and \
            os.path.abspath(OLD_DEFAULT) != journal.path:
        taken = journal.adopt_legacy(OLD_DEFAULT)
        if taken:
            logs.get().warning(
                f"took over {taken} rows of {api.target} from {OLD_DEFAULT}, the journal an earlier "
                f"version kept in this folder; the journal is now {journal.path}")
    logs.get().info("journal", path=journal.path, target=api.target)
    return journal


class _Signals:
    """Ctrl-C and SIGTERM stop a run cleanly; a second one exits at once (the journal is
    consistent either way: every write is one transaction)."""

    def __init__(self, stopper: Any) -> None:
        self.stopper = stopper
        self.old: dict[int, Any] = {}
        self.count = 0

    def __enter__(self) -> _Signals:
        from etl.importing import Interrupted

        def handler(signum: int, frame: Any) -> None:
            self.count += 1
            if self.count > 1:
                sys.stderr.write("etl: interrupted again: stopped at once; the report is incomplete, "
                                 "the journal consistent: rerun to continue\n")
                os._exit(128 + signum)
            self.stopper.stop(Interrupted(signum))

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: the embedding program handles signals
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


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
              help="Abort after N rows in a row ended rejected, failed or in doubt.")
@click.option("--throttle-patience", type=click.FloatRange(min=0), default=600.0, show_default=True,
              metavar="S", help="Stop (exit 4, like the daily limit) after S seconds of throttling "
                                "without a break.")
@click.option("--gateway-settle", type=click.FloatRange(min=0), default=600.0, show_default=True,
              metavar="S", help="After a gateway's 502/503/504 (or a 408), seconds before \"no record\" "
                                "may mean \"not created\" (the application behind it may still be "
                                "working).")
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
    from etl.importing import Settings, Stopper, import_files
    from etl.pacing import Pacer
    from etl.posting import Client, Poster

    reading = {k: kw.pop(k) for k in ("resource", "encoding", "delimiter", "decimal", "sheet",
                                      "renames", "report", "quiet", "verbose", "as_json")}
    if kw["dry_run"]:
        return _validate(files, **reading)
    run = Run("import", {"files": files, **reading})
    api = connect(kw)
    rate = kw["rate"] or (10.0 if api.sandbox else 1.0)
    settings = Settings(
        batch_size=kw["batch_size"], concurrency=kw["concurrency"], max_errors=kw["max_errors"],
        key=tuple(k.strip() for k in kw["key"].split(",") if k.strip()) if kw["key"] else (),
        ignore=tuple(kw["ignore"]), tag_description=kw["tag_description"],
        system_id=kw["system_id"], allow_new_identity=kw["allow_new_identity"], timeout=kw["timeout"],
        gateway_settle=kw["gateway_settle"], retry_rejected=kw["retry_rejected"],
        account_checks=kw["check_credits"], read_rate=_read_rate(kw, api),
    )
    stopper = Stopper()
    try:
        inputs = run.inputs()
        journal = open_journal(api, kw, run.run_id, "import")
        try:
            client = Client(api.url, api.credentials, timeout=kw["timeout"], pool=kw["concurrency"] + 2)
            poster = Poster(client, Pacer(rate), journal, run.resource.endpoint,
                            max_retries=kw["max_retries"], daily_limit=kw["daily_limit"],
                            throttle_patience=kw["throttle_patience"])
            with contextlib.ExitStack() as stack, _Signals(stopper):
                progress = None
                if run.show_progress():
                    def progress(total: int) -> Callable[[int, Any], None]:
                        bar = stack.enter_context(click.progressbar(
                            length=total, label="Importing", file=sys.stderr, show_eta=True,
                            item_show_func=lambda s: s))

                        def update(rows: int, counts: Any) -> None:
                            label = (f"created {counts.get('created', 0)}, "
                                     f"errors {sum(counts.get(o, 0) for o in _ERRORS)}")
                            if stopper.is_set():
                                # the rows after a stop are not attempted: the bar stays where
                                # the run stopped, and says so
                                bar.current_item = f"{label}; stopping"
                            else:
                                bar.update(rows, label)
                            bar.render_progress()  # the counts of a batch just written, too
                        return update
                status = import_files(inputs, run.validator(), run.record, journal, poster, settings,
                                      stopper, progress)
        finally:
            journal.close()
    finally:
        if api.sandbox is not None:
            api.sandbox.stop()
    notes = {} if run.quiet else run.record.extra.get("notes") or {}
    for key, text in _IMPORT_NOTES:
        if notes.get(key):
            click.echo(f"{notes[key]} {text}", err=True)
    run.done(status)


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


_ERRORS = ("invalid", "rejected", "failed", "in_doubt")


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
    from etl import logs, pipeline
    from etl.ledger import CRASH_REASON, Event, Ledger
    from etl.pacing import Pacer
    from etl.posting import Client
    from etl.reconciling import Reconciler, settle_time
    from etl.resources import load

    res = load(resource)
    run_id = pipeline.new_run_id()
    logs.configure(run_id, os.path.join("logs", run_id), quiet=quiet)
    api = connect(kw)
    try:
        journal = open_journal(api, kw, run_id, "reconcile")
        try:
            ledger = Ledger(journal)
            for e in journal.entries("pending"):
                ledger.apply(e.identity, Event.CRASHED, CRASH_REASON,
                             settle_until=(e.last_sent or e.first_sent or 0.0) + settle_time(e.timeout))
            doubt = [e for e in journal.entries("in_doubt") if e.resource in (None, "", res.name)]
            client = Client(api.url, api.credentials, timeout=kw["timeout"])
            client.login()
            verdicts = Reconciler(client, journal, ledger, res,
                                  before_request=Pacer(5).acquire).reconcile(doubt, final=True)
        finally:
            journal.close()
    finally:
        if api.sandbox is not None:
            api.sandbox.stop()
    left = [v for v in verdicts if v.outcome.value == "in_doubt"]
    if not quiet:
        for v in verdicts:
            click.echo(f"{v.entry.where}: {v.outcome.value}"
                       + (f" (Id {v.record_id})" if v.record_id else "") + f": {v.reason}", err=as_json)
    counts = {o: sum(v.outcome.value == o for v in verdicts) for o in ("created", "failed", "in_doubt")}
    click.echo(f"{len(verdicts)} rows in doubt: {counts['created']} were created, {counts['failed']} were "
               f"not (a rerun sends them), {counts['in_doubt']} still in doubt.", err=as_json)
    if as_json:
        click.echo(json.dumps({
            "run_id": run_id, "command": "reconcile", "rows": len(verdicts), "counts": counts,
            "exit_code": 1 if left else 0,
            "in_doubt": [{"source": v.entry.source, "row": v.entry.row, "reason": v.reason} for v in left],
        }, indent=2))
    logs.close()
    sys.exit(1 if left else 0)


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
    from etl import logs, pipeline
    from etl.ledger import Event, Ledger
    from etl.resources import load

    source, sep, row = where.rpartition(":")
    if not sep or not row.isdigit() or not source:
        raise UsageProblem(f"{where!r} is not SOURCE:ROW (e.g. export.csv:17)")
    if (record_id is None) == (not not_created):
        raise UsageProblem("say either --created ID or --not-created")
    load(resource)
    run_id = pipeline.new_run_id()
    logs.configure(run_id, None)
    api = connect(kw)
    journal = open_journal(api, kw, run_id, "resolve")
    try:
        found = [e for e in journal.at(source, int(row)) if e.resource in (None, "", resource)]
        doubt = [e for e in found if e.state in ("in_doubt", "pending")]
        if not doubt and found and found[0].base:
            # identical rows are interchangeable: the report may name another of them
            doubt = [e for e in journal.entries("in_doubt")
                     if e.base == found[0].base and e.source == found[0].source][:1]
        if not doubt:
            what = f"it is {found[0].state}" if found else "the journal has no such row"
            raise UsageProblem(f"{where}: not in doubt ({what}); only rows in doubt are resolved")
        if len(doubt) > 1:
            raise UsageProblem(f"{where}: {len(doubt)} rows in doubt have that name and row "
                               f"({', '.join(e.source or '' for e in doubt)}); give the full path")
        entry = doubt[0]
        if record_id is not None and record_id in journal.claimed_ids():
            raise UsageProblem(f"record {record_id} already belongs to another row of the journal")
        if record_id is not None:
            from etl.storage import Storage

            _check_record(api, kw, load(resource), entry, record_id,
                          Storage.loads(journal.target_fact("storage")))
        else:
            _check_absent(api, kw, load(resource), entry, journal)
        ledger = Ledger(journal)
        if entry.state == "pending":
            ledger.apply(entry.identity, Event.CRASHED, "a run stopped while this row was being sent")
        text = f"decided by hand on {pipeline.now_iso()}" + (f": {note}" if note else "")
        if record_id is not None:
            ledger.apply(entry.identity, Event.RESOLVED_CREATED, text, record_id=record_id)
            click.echo(f"{entry.where}: created, record {record_id} ({text})")
        else:
            ledger.apply(entry.identity, Event.RESOLVED_ABSENT, text)
            click.echo(f"{entry.where}: not created; the next import of it sends it ({text})")
    finally:
        journal.close()
        logs.close()
        if api.sandbox is not None:
            api.sandbox.stop()


def _check_absent(api: Api, kw: dict[str, Any], res: Resource, entry: Any, journal: Any) -> None:
    """`--not-created` only once the row's request can't create a record any more, and while no
    record that may be its own exists: either would let the rerun post a second credit use."""
    import time as time_

    from etl.ledger import Ledger
    from etl.posting import Client, ReadFailed
    from etl.reconciling import Reconciler, settles_at

    left = settles_at(entry) - time_.time()
    if left > 0:
        raise UsageProblem(f"{entry.where}: its request may still be under way for {left:.0f} s more "
                           "(a record may yet appear); decide it after that")
    client = Client(api.url, api.credentials, timeout=kw["timeout"])
    try:
        client.login()
        ids = Reconciler(client, journal, Ledger(journal), res).may_be_its_records(entry)
    except ReadFailed as exc:
        raise UsageProblem(f"could not look for the row's record: {exc}") from None
    if ids:
        shown = ", ".join(str(i) for i in ids[:10])
        raise UsageProblem(f"{entry.where}: a record that may be this row's exists (Id {shown}); if "
                           "it is, say --created ID, else check it in Nexudus first")


def _check_record(api: Api, kw: dict[str, Any], res: Resource, entry: Any, record_id: int,
                  storage: Any = None) -> None:
    """The record a person names must exist and be this row's credit use, compared as values
    (ids, the exact amount, through the target's storage rules as learnt)."""
    from etl.posting import Client, ReadFailed
    from etl.reconciling import body_of, differences
    from etl.storage import Match

    client = Client(api.url, api.credentials, timeout=kw["timeout"])
    try:
        client.login()
        record = client.get(f"{res.endpoint}/{record_id}")
    except ReadFailed as exc:
        raise UsageProblem(f"could not read record {record_id} to check it: {exc}") from None
    if not isinstance(record, dict):
        raise UsageProblem(f"there is no record {record_id} in {api.target}")
    body = body_of(entry)
    compared = differences(res, record, body, storage)
    # a text the server may have rewritten (cut, encoded) is for the person to judge; an id or
    # an amount that is not the row's, or not provably so, is not
    texts = {f.name for f in res.fields if f.type_name == "text"}
    differ = list(compared.different) + [n for n in compared.unsure if n not in texts]
    if compared.match is not Match.SAME and differ:
        shown = ", ".join(f"{n} {record.get(n)!r} (the row: {body.get(n)!r})" for n in differ)
        raise UsageProblem(f"record {record_id} is not this row's credit use: {shown}")


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
@click.option("--unavailable", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 503 without creating anything.")
@click.option("--unavailable-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then a gateway answers 503.")
@click.option("--request-timeout-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer 408 Request Timeout.")
@click.option("--blocked", type=float, default=0.0, metavar="P",
              help="Share of POSTs a firewall in front of the API refuses with 403, nothing created.")
@click.option("--error", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 500 without creating anything.")
@click.option("--drop", type=float, default=0.0, metavar="P",
              help="Share of POSTs whose connection is dropped without creating anything.")
@click.option("--reject", type=float, default=0.0, metavar="P",
              help="Share of POSTs refused with 400 and Errors.")
@click.option("--retry-after", default="1", show_default=True, metavar="TEXT",
              help="A 409's Retry-After, sent verbatim: seconds, an HTTP date, or an odd value.")
@click.option("--error-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer 500.")
@click.option("--drop-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then drop the connection.")
@click.option("--hang-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer only after --hang seconds.")
@click.option("--hang", type=float, default=60.0, show_default=True, metavar="S",
              help="How long a hang lasts.")
@click.option("--tls-after-create", type=float, default=0.0, metavar="P",
              help="Share of POSTs that create the record, then break the TLS session (with --tls-cert).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, metavar="PEM",
              help="Serve https with this certificate (and --tls-key); clients trust it via "
                   "REQUESTS_CA_BUNDLE.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, metavar="PEM",
              help="The private key of --tls-cert.")
@click.option("--unsuccessful", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 200 with WasSuccessful: false.")
@click.option("--token-ttl", type=float, default=0.0, metavar="S",
              help="Seconds a token lives (0: for ever).")
@click.option("--system-id", type=click.Choice(["store", "refuse", "drop"]), default="store",
              show_default=True, help="A POSTed SystemId is stored, refused with 400, or silently dropped.")
@click.option("--ignore-system-id-filter", is_flag=True,
              help="The list ignores CoworkerBookingCreditUseHistory_SystemId, as unknown filters are.")
@click.option("--clock-skew", type=float, default=0.0, metavar="S",
              help="Seconds added to the server's clock (dates of records, Date header); may be negative.")
@click.option("--created-on-offset", type=float, default=None, metavar="H",
              help="CreatedOn in this UTC offset's local time, without an offset (e.g. -8, 5.5).")
@click.option("--description-max", type=int, default=0, metavar="N",
              help="Descriptions stored cut to N characters (0: no limit).")
@click.option("--description-trim", is_flag=True,
              help="Descriptions stored stripped, runs of spaces made one.")
@click.option("--description-html", is_flag=True, help="Descriptions stored HTML-encoded (& < > quotes).")
@click.option("--amount-round", type=int, default=None, metavar="N",
              help="CreditUsed stored rounded to N decimal places (default: exact).")
@click.option("--ids-random", is_flag=True,
              help="Record Ids drawn at random instead of from one rising sequence.")
@click.option("--bad-gateway", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 502 by a proxy, nothing created.")
@click.option("--gateway-timeout", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 504 at once, nothing created.")
@click.option("--gateway-timeout-late", type=float, default=0.0, metavar="P",
              help="Share of POSTs answered 504 at once whose record is created --late-delay seconds later.")
@click.option("--late-delay", type=float, default=2.0, show_default=True, metavar="S",
              help="How long after its 504 a late record is created.")
@click.option("--list-no-records", type=float, default=0.0, metavar="P",
              help="Share of list answers with the paging fields but no Records.")
@click.option("--list-throttle", type=float, default=0.0, metavar="P",
              help="Share of list requests answered 409 + Retry-After.")
@click.option("--list-drop", type=float, default=0.0, metavar="P",
              help="Share of list requests whose connection is dropped.")
@click.option("--list-error", type=float, default=0.0, metavar="P",
              help="Share of list requests answered 500.")
@click.option("--list-ignore-page", type=float, default=0.0, metavar="P",
              help="Share of list answers that are page 1, whatever page was asked, with HasNextPage.")
@click.option("--list-shift", type=float, default=0.0, metavar="P",
              help="Share of list answers (page 2 on) that start one record early, as after an insert.")
@click.option("--newest-first", is_flag=True,
              help="A list without orderBy/dir answers newest first (Id descending), as the UI does.")
@click.option("--dir-one", type=click.Choice(["asc", "desc"]), default="asc", show_default=True,
              help="What the list's ambiguous dir=1 means (-1 is always descending, 0 ascending).")
@click.option("--throttle-all", is_flag=True, help="Answer every credit-use POST 409 + Retry-After.")
@click.option("--read-rate-limit", type=float, default=0.0, metavar="N",
              help="GETs per second accepted (lists, reads, credit lookups); more get 409 (0: no limit).")
@click.option("--trickle", type=float, default=0.0, metavar="S",
              help="Seconds between the bytes of a POST's answer body (defeats a per-read time-out).")
@click.option("--credits", "credits_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Booking credits to declare: a JSON list or a CSV (Id,TotalCredit,RemainingCredit,...).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault dice.")
def sandbox_command(port: int, db: str, username: str, password: str, credits_file: str | None,
                    tls_cert: str | None, tls_key: str | None, **faults: Any) -> None:
    """Run the Nexudus emulator on localhost, for rehearsals, until Ctrl-C.

    \b
    Examples:
        etl sandbox --port 8765
        etl sandbox --rate-limit 1 --unavailable 0.05 --db rehearsal.sqlite3
        etl sandbox --credits credits.csv --system-id drop --created-on-offset -8 --list-shift 0.2
        NEXUDUS_API_URL=http://127.0.0.1:8765 NEXUDUS_USERNAME=sandbox@example.com \\
            NEXUDUS_PASSWORD=sandbox-password etl import samples/credit_uses.csv
    """
    from etl.sandbox import Faults, Sandbox, load_credits

    try:
        credits = load_credits(credits_file) if credits_file else []
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--credits") from e
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give --tls-cert and --tls-key together")
    box = Sandbox(port=port, faults=Faults(**faults), db=db, username=username, password=password,
                  credits=credits, tls=(tls_cert, tls_key) if tls_cert and tls_key else None)
    click.echo(f"Nexudus sandbox at {box.url} (username {username}, password {password})", nl=True)
    sys.stdout.flush()
    try:
        box.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        box.server.server_close()
        click.echo(f"sandbox stopped: {box.stats.created} records created", err=True)
