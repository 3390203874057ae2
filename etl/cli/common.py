"""What the commands share: the group (`main`), the shared options, and the one place errors
become a line and an exit code. Each command (etl/cli/<command>.py) parses options into a
settings object, calls one library function (etl.run.runs, etl.run.resolving,
etl.report.status, ...) and prints what comes back, with its exit code. It never builds clients,
pacers or journals itself. Only etl/cli imports click.

Start-up is kept light: `etl --help`, `etl status` and shell completion import neither pandas,
pyarrow nor pandera; the modules that need them are imported inside the commands.

Every option can also come from the environment (`ETL_<OPTION>`) or from a `--config` TOML file;
`Group.add_command` wires that into each command once, so no option is configured by hand.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from etl import __version__, config
from etl.errors import EtlError, UsageProblem, no_room
from etl.heap import one_heap
from etl.outcomes import ExitStatus

if TYPE_CHECKING:
    from etl.run.connecting import Connection
    from etl.run.runs import ReadSettings, Run

DEFAULT_RESOURCE = config.DEFAULT_RESOURCE


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
    for param in ctx.command.params:
        if param.name not in values or not isinstance(values[param.name], bool):
            continue
        flag = isinstance(param, click.Option) and param.is_flag
        if not flag:  # `daily-limit = true`: click would take it as 1
            name = next(o for o in param.opts if o.startswith("--"))
            raise UsageProblem(f"--config {path}: {name[2:]} = {str(values[param.name]).lower()} is not a "
                               f"value of {name}")
        assert isinstance(param, click.Option)
        if param.flag_value is False:  # a flag that turns something off (--no-system-id): true sets it
            values[param.name] = False if values[param.name] else param.default
        else:  # as click reads a flag's default from a map: as text
            values[param.name] = "true" if values[param.name] else "false"
    ctx.default_map = {**(ctx.default_map or {}), **values}
    ctx.meta["etl.config"] = path


class Group(click.Group):
    """Turns the project's typed errors into one line on stderr and their exit code, and gives
    every command's options their ETL_* environment variable and a --config file. With --json,
    every failure also prints one JSON document on stdout (the exit code and the error)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["etl.argv"] = list(args)  # --json is honoured even when parsing fails
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        one_heap()  # before the command starts threads
        before = _terminate_as_interrupt()
        ignored = _interrupt_heard()
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _named_where_given(exc)
            if not _wants_json(ctx):
                raise
            exc.show()
            _failed(ctx, exc.exit_code, exc.format_message())
        except EtlError as exc:
            _fail(ctx, int(exc.exit_status), str(exc))
        except KeyboardInterrupt as exc:
            what, code = ("terminated", ExitStatus.TERMINATED) if isinstance(exc, _Terminated) \
                else ("interrupted", ExitStatus.INTERRUPTED)
            click.echo(f"etl: {what}", err=True)
            _failed(ctx, int(code), what)
        except BrokenPipeError:
            # the reader of standard output went away (`| true`, a logger that died): what was
            # done is done, and said in the run's folder; the exit status still says how it ended
            _stdout_gone()
            run = ctx.meta.get("etl.run")
            finished = run.record.exit_code if run is not None else ctx.meta.get("etl.exit", 0)
            ctx.exit(int(ExitStatus.ABORTED) if finished is None else finished)
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
        finally:
            if before is not None:
                with contextlib.suppress(ValueError):
                    signal.signal(signal.SIGTERM, before)
            if ignored:
                with contextlib.suppress(ValueError):
                    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if (name or cmd.name) not in _NOT_CONFIGURED:
            _configurable(cmd)
        super().add_command(cmd, name)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, where a command has no handler of its own (the dry run): stopped as Ctrl-C stops
    it, the report and summary made of what was read, and exit 143."""


def _interrupt_heard() -> bool:
    """Ctrl-C (SIGINT) heard by every command, as `etl import` hears it, even where the process
    started with it ignored (a background job of a script, some supervisors): a `kill -INT`
    stops it with exit 130. Whether it was ignored (put back when the command is done)."""
    with contextlib.suppress(ValueError):  # not the main thread: the embedding program's business
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            return True
    return False


def _terminate_as_interrupt() -> Any:
    """SIGTERM raised as `_Terminated` while a command runs; the handler it replaced (restored
    by `Group.main` when the command is done: a program that embeds etl keeps its own)."""
    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    with contextlib.suppress(ValueError):  # not the main thread: the embedding program's business
        return signal.signal(signal.SIGTERM, handler)
    return None


def _named_where_given(exc: click.ClickException) -> None:
    """A bad value of an option given by an ETL_* variable or a --config file names that, not a
    flag the operator never typed."""
    if not isinstance(exc, click.BadParameter) or exc.ctx is None or exc.param is None \
            or exc.param.name is None:
        return
    source = exc.ctx.get_parameter_source(exc.param.name)
    name = next((o for o in exc.param.opts if o.startswith("--")), exc.param.opts[0])
    if source is click.core.ParameterSource.ENVIRONMENT:
        names = exc.param.envvar if isinstance(exc.param.envvar, list | tuple) else [exc.param.envvar]
        given = next((n for n in names if n and n in os.environ), None)
        exc.param_hint = f"{given} (in the environment, for {name})" if given else exc.param_hint
    elif source is click.core.ParameterSource.DEFAULT_MAP:
        where = exc.ctx.meta.get("etl.config")
        exc.param_hint = f"{name[2:]} in --config {where}" if where else exc.param_hint


def _stdout_gone() -> None:
    """Standard output pointed at nowhere, so that nothing more written to it (Python's own
    flush at exit included) fails."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        nowhere = os.open(os.devnull, os.O_WRONLY)
        os.dup2(nowhere, sys.stdout.fileno())
        os.close(nowhere)


def _wants_json(ctx: click.Context) -> bool:
    """--json was asked for: on the command line, by ETL_JSON, or by a config file (once read)."""
    if ctx.meta.get("etl.json"):
        return True
    if "--json" in ctx.meta.get("etl.argv", ()):
        return True
    return os.environ.get("ETL_JSON", "").strip().lower() in ("1", "true", "t", "yes", "y", "on")


def echo_json(document: Any) -> None:
    """The one JSON document of --json, on standard output; a standard output that is closed
    (`>&-`: Python then writes nothing, without a word) is an error, as a full one is."""
    text = json.dumps(document, indent=2, default=str)
    if sys.stdout is None:
        raise OSError(errno.EBADF, "it is closed", "standard output")
    click.echo(text)


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
        try:
            echo_json(document)
        except OSError as exc:  # standard output full or gone: the error is said on stderr already
            click.echo("etl: error: can't write the JSON document to standard output "
                       f"({exc.strerror or exc})", err=True)
    ctx.exit(code)


def _note_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta["etl.json"] = True
        if sys.stdout is None:  # said before anything is done, not after the import
            raise click.BadParameter("standard output is closed: the JSON document has nowhere to go",
                                     ctx, param)
    return value


def _note_files(ctx: click.Context, _: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    ctx.meta["etl.files"] = list(value)
    return value


def _off_from_environment(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A flag that turns something off (--no-system-id), set by its ETL_ variable: 1 or true means
    the flag is given (click took it as the value of what the flag turns off: on)."""
    if ctx.get_parameter_source(param.name or "") is not click.core.ParameterSource.ENVIRONMENT:
        return value
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    text = next((os.environ[n] for n in names if n in os.environ), "")
    given = text.strip().lower() in ("1", "true", "t", "yes", "y", "on")
    return False if given else param.default


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
        if param.is_flag and param.flag_value is False and param.callback is None:
            param.callback = _off_from_environment
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


class Finite(click.FloatRange):
    """A FloatRange without nan and inf (click's own lets them through: `--rate nan` paced
    nothing, `--timeout inf` failed in the socket)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def checked_journal(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """--journal, checked before anything is read (etl.config.check_journal)."""
    if value is not None:
        config.check_journal(value)
    return value


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
            "--decimal", type=click.Choice([".", ","]), default=None, show_default=".",
            help="Decimal mark of numbers; ',' for European spreadsheets. Not given, a "
                 "';'-separated file (as they write) refuses a number like 1.500: 1500 or 1.5?",
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


def _reading(files: tuple[str, ...], kw: dict[str, Any]) -> ReadSettings:
    from etl.run.runs import ReadSettings

    return ReadSettings(
        files=tuple(files), resource=kw["resource"], encoding=kw["encoding"], delimiter=kw["delimiter"],
        decimal=kw["decimal"], sheet=kw["sheet"], renames=kw["renames"], report=kw["report"],
        quiet=kw["quiet"], verbose=kw.get("verbose", False))


def _start(command: str, files: tuple[str, ...], kw: dict[str, Any]) -> Run:
    """The run of a reading command, known to the error handler from here on (its --json
    document then says what the run had read and counted)."""
    from etl.run.runs import Run

    run = Run(command, _reading(files, kw), stdin=lambda: sys.stdin.buffer)
    click.get_current_context().meta["etl.run"] = run
    return run


def _show_progress(run: Run) -> bool:
    return not run.quiet and not run.verbose and sys.stderr.isatty()


def _done(run: Run, status: ExitStatus, as_json: bool) -> None:
    from etl import logs

    attention = run.record.attention
    if attention is not None and attention.total and not run.quiet:
        show_attention(attention, run.again)
    if as_json:
        if not run.quiet:
            click.echo(run.record.line(), err=True)
        echo_json(run.record.summary())
    else:
        click.echo(run.record.line())
    logs.close()
    sys.exit(int(status))


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
    from etl.run import runs

    run = _start("validate", files, kw)
    connection = _connection(kw) if "api_url" in kw else None
    with contextlib.ExitStack() as stack:
        progress = None
        if _show_progress(run):
            def progress(total: int) -> Callable[[int], None]:
                return stack.enter_context(click.progressbar(
                    length=total, label="Validating", file=sys.stderr, show_eta=True)).update
        status = runs.validate(run, connection, online=online, read_rate=kw.get("read_rate"),
                               progress=progress)
    _done(run, status, kw.get("as_json", False))


def check_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How the account checks read (`etl import`, `etl validate --online`)."""
    command = click.option(
        "--credits", "credits_file", metavar="FILE", type=click.Path(dir_okay=False),
        help="With --sandbox: the booking credits the emulator has (a JSON list or a CSV "
             "Id,TotalCredit,RemainingCredit,..., as `etl sandbox --credits`). Without it every "
             "credit exists there, so the account checks prove nothing.")(command)
    return click.option(
        "--read-rate", type=Finite(min=0.001), metavar="N",
        help="Most look-ups (reads) a second when checking booking credits before posting. "
             "Default 1.25, after a first 40 at once (Nexudus allows 120 requests a minute and "
             "5,000 an hour); 50 with --sandbox.")(command)


def command_names() -> list[str]:
    return sorted(main.commands)




# --- import ----------------------------------------------------------------------------------


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Where the API is and how to log in: the options of every command that talks to it."""
    options = [
        click.option("--sandbox", is_flag=True,
                     help="Use a Nexudus emulator started in-process (no account needed); its "
                          "records are kept beside its journal."),
        click.option("--api-url", envvar="NEXUDUS_API_URL", default=config.DEFAULT_API_URL,
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
        click.option("--timeout", type=Finite(min=0.1), default=30.0, show_default=True,
                     metavar="S",
                     help="Seconds the whole answer to a request may take; a time-out leaves the row "
                          "in doubt."),
        click.option("--journal", envvar="ETL_JOURNAL", metavar="PATH", type=click.Path(dir_okay=False),
                     callback=checked_journal,
                     help="The SQLite journal of what was posted (what makes reruns safe). Default: "
                          "one per API target in your state folder, whatever folder you start in."),
        click.option("--allow-insecure-http", is_flag=True,
                     help="Allow a plain http:// --api-url that is not this machine (unencrypted)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _connection(kw: dict[str, Any]) -> Connection:
    """The options of api_options (and --credits, --new-journal where a command takes them)."""
    from etl.run.connecting import Connection

    return Connection(
        api_url=kw["api_url"], token=kw["token"], token_file=kw["token_file"], username=kw["username"],
        password=kw["password"], password_file=kw["password_file"], timeout=kw["timeout"],
        journal=kw["journal"], allow_insecure_http=kw["allow_insecure_http"],
        sandbox=_start_sandbox if kw["sandbox"] else None, credits_file=kw.get("credits_file"),
        new_journal=bool(kw.get("new_journal")))


def _start_sandbox(db: str, token: str, credits_file: str | None) -> Any:
    """--sandbox: the emulator, in this process, keeping its records in DB."""
    from etl.sandbox import Sandbox

    return Sandbox(db=db, tokens=(token,), credits=_sandbox_credits(credits_file)).start()


def _sandbox_credits(path: str | None) -> list[dict[str, Any]]:
    from etl.sandbox import load_credits

    if not path:
        return []
    try:
        return load_credits(path)
    except (OSError, ValueError) as exc:
        raise UsageProblem(f"--credits {path}: {getattr(exc, 'strerror', None) or exc}") from None


class _Signals:
    """Ctrl-C and SIGTERM stop a run cleanly; a second one exits at once (the journal is
    consistent either way: every write is one transaction), after RUN's last words: its
    summary.json and, with AS_JSON, its one JSON document, as far as they are known."""

    def __init__(self, stopper: Any, run: Run | None = None, as_json: bool = False) -> None:
        self.stopper = stopper
        self.run, self.as_json = run, as_json
        self.old: dict[int, Any] = {}
        self.count = 0

    def __enter__(self) -> _Signals:
        from etl.run.import_rows import Interrupted

        def handler(signum: int, frame: Any) -> None:
            self.count += 1
            if self.count > 1:
                sys.stderr.write(f"etl: {_AT_ONCE}\n")
                self._last_words(128 + signum)
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

    def _last_words(self, code: int) -> None:
        """The run's summary as far as it is known, kept as summary.json and, with --json,
        written as the one document on stdout (by the system call itself: the process ends
        at once, and Python's buffers may be in the middle of a write)."""
        if self.run is None:
            return
        document: dict[str, Any] = {"command": self.run.record.command, "exit_code": code, "error": _AT_ONCE}
        with contextlib.suppress(Exception):  # changing under it: the plain document
            # the counts are of the lines said so far, not of the rows sent: the journal's are
            # the truth (etl status), and none is given rather than wrong ones
            document = {**self.run.record.summary(), "rows": None, "counts": None, "exit_code": code,
                        "error": _AT_ONCE}
        text = json.dumps(document, indent=2, default=str) + "\n"
        with contextlib.suppress(Exception):
            from etl.report.reporting import write_summary

            write_summary(self.run.record.summary_path, document)
        if self.as_json:
            with contextlib.suppress(OSError):
                data = text.encode()
                while data:
                    data = data[os.write(1, data):]


#: what a second Ctrl-C (or SIGTERM) says
_AT_ONCE = ("interrupted again: stopped at once; the report is incomplete, the journal consistent "
            "(etl status counts what was done): rerun to continue")
