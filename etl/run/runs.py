"""A run of `etl validate` or `etl import`, from its settings: the run's id, logs, resource,
inputs and record (`Run`), then the dry run (`validate`) or the import (`import_files`), which
build the API's client, the pacer, the poster and the journal here, once.

The CLI parses options into these settings and prints what comes back; a Python caller runs the
same import with the same calls. The heavy modules (pandas, pyarrow, pandera) are imported
inside, once the resource's schema has started loading.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from etl.config import DEFAULT_RESOURCE
from etl.errors import UsageProblem
from etl.outcomes import ExitStatus
from etl.run import connecting
from etl.run.connecting import Connection, connect, open_journal

if TYPE_CHECKING:
    from etl.run.import_rows import Settings, Stopper
    from etl.run.pipeline import Inputs
    from etl.validate.resources import Resource
    from etl.validate.validating import Validator

#: progress of a dry run: bytes read so far
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ReadSettings:
    """What every command that reads files takes: the files and how to read them."""

    files: tuple[str, ...]
    resource: str = DEFAULT_RESOURCE
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None  # None: ".", not said (a ";"-separated file's 1.500 is refused)
    sheet: str | None = None
    renames: dict[str, str] = field(default_factory=dict)  # SOURCE -> TARGET column
    report: str | None = None  # default: logs/<run-id>/results.csv
    quiet: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class Posting:
    """How fast and how far an import posts, and how patiently."""

    rate: float | None = None  # POSTs a second; default 1, 10 for the emulator
    daily_limit: int = 5000
    max_retries: int = 5
    throttle_patience: float = 600.0
    read_rate: float | None = None  # the account checks' look-ups a second; default by target


class Run:
    """What every reading command sets up: the run id, logs, the resource, inputs, a record."""

    def __init__(self, command: str, settings: ReadSettings,
                 stdin: Callable[[], IO[bytes]] | None = None) -> None:
        from etl.validate.resources import is_path, load_soon

        loading = load_soon(settings.resource)  # the schema, and pandera with it, while the rest starts
        from etl import logs
        from etl.read.reading import ReadOptions
        from etl.run import pipeline

        self.command = command
        self.quiet = settings.quiet
        self.verbose = settings.verbose
        self.resource: Resource = loading()
        for target in settings.renames.values():
            if self.resource.match(target) is None:
                raise UsageProblem(
                    f"--map target {target!r} is not a column of {self.resource.name}; "
                    f"its columns are: {', '.join(f.name for f in self.resource.fields)}"
                )
        self.renames = {s: self.resource.match(t) or t for s, t in settings.renames.items()}
        #: the options a fixed errors.csv is read with again (its headers and numbers are the file's)
        self.again: list[str] = [
            *(["--resource", settings.resource] if settings.resource != DEFAULT_RESOURCE else []),
            *(["--decimal", settings.decimal] if settings.decimal is not None else []),
            *(["--encoding", settings.encoding] if settings.encoding else []),
            *(["--delimiter", {"\t": "tab"}.get(settings.delimiter, settings.delimiter)]
              if settings.delimiter else []),
            *[x for s, t in settings.renames.items() for x in ("--map", f"{s}={t}")]]
        self.run_id = pipeline.new_run_id()
        self.run_dir = os.path.join("logs", self.run_id)
        report = settings.report or os.path.join(self.run_dir, "results.csv")
        files = list(settings.files)
        if "-" in files and (command != "validate" or files.count("-") > 1):
            raise UsageProblem(
                "- (stdin) can be validated once, not imported: an import reads its file more than "
                "once and a rerun must find it again; save it to a file first"
                if command != "validate" else "- (stdin) can be named once")
        pipeline.check_paths([f for f in files if f != "-"], report)
        logs.configure(self.run_id, os.path.dirname(os.path.abspath(report)), verbose=self.verbose,
                       quiet=self.quiet)
        if "-" in files:
            if stdin is None:
                raise UsageProblem("- (stdin) names no file here")
            files[files.index("-")] = _spool_stdin(stdin(), os.path.dirname(os.path.abspath(report)),
                                                   self.run_id)
        self.read = ReadOptions(encoding=settings.encoding, delimiter=settings.delimiter,
                                sheet=settings.sheet)
        self.decimal = settings.decimal or "."
        self.decimal_said = settings.decimal is not None
        self.files: list[str] = files
        self.record = pipeline.RunRecord(self.run_id, command, report, self.files)
        self.record.extra["resource"] = self.resource.name
        if is_path(settings.resource):  # the rules the rows were held to, when not the installed ones
            self.record.extra["schema"] = os.path.abspath(settings.resource)
        with contextlib.suppress(FileNotFoundError):  # an earlier run's, beside a --report reused
            os.remove(self.record.summary_path)
        logs.get().info("run started", command=command, files=self.files)

    def failed(self, code: int, message: str) -> dict[str, Any]:
        """The run's summary when it ends on a problem: kept as its summary.json too (unless the
        run already wrote one), so its log folder says how it ended."""
        from etl import logs
        from etl.report.reporting import write_summary
        from etl.run.pipeline import now_iso

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

    def inputs(self) -> Inputs:
        from etl.run import pipeline

        return pipeline.prepare_inputs(self.files, self.resource, self.read, self.renames,
                                       decimal_said=self.decimal_said)

    def validator(self) -> Validator:
        from etl.validate.validating import Validator

        validator = Validator(self.resource, self.decimal)
        validator.warnings = self.record.warnings  # the rows failing a check that only warns
        return validator


def _spool_stdin(stream: IO[bytes], folder: str, run_id: str) -> str:
    """`etl validate -`: stdin is kept as a file in the run's folder (the report names it), since
    a file is read more than once (checked, then read)."""
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


def validate(run: Run, connection: Connection | None = None, *, online: bool = False,
             read_rate: float | None = None,
             progress: Callable[[int], Progress] | None = None) -> ExitStatus:
    """The dry run of RUN's files; ONLINE, with the account checks against the API CONNECTION
    reaches (read, never posted to). PROGRESS, given the bytes to read, says how far it is."""
    from etl.run import pipeline

    inputs = run.inputs()
    connection = connection or Connection()
    if connection.credits_file and not online:
        raise UsageProblem("--credits is for the account checks of --online --sandbox")
    api = connect(connection) if online else None
    if api is not None and api.sandbox is not None and not connection.credits_file:
        from etl import logs

        logs.get().warning("--online --sandbox without --credits FILE checks an emulator in which every "
                           "booking credit exists and has credit left: it proves nothing about your "
                           "account (give --credits, or check against the API)")
    try:
        update = progress(inputs.total_bytes) if progress else None
        if api is None:
            return pipeline.validate(inputs, run.validator(), run.record, update)
        from etl.run.checks import validate_online

        return validate_online(inputs, run.validator(), run.record, api.url, api.credentials,
                               timeout=connection.timeout, read_rate=connecting.read_rate(read_rate, api),
                               progress=update)
    finally:
        if api is not None:
            api.close()


def import_files(run: Run, connection: Connection, settings: Settings, posting: Posting | None = None, *,
                 stopper: Stopper | None = None,
                 progress: Callable[[int], Callable[[int, Counter[str]], None]] | None = None,
                 while_posting: contextlib.AbstractContextManager[Any] | None = None) -> ExitStatus:
    """Import RUN's files into the API CONNECTION reaches, keeping its journal: the client, the
    pacer and the poster are built here. STOPPER stops the run cleanly when set (Ctrl-C);
    WHILE_POSTING is entered around the import itself (signal handlers, a progress bar);
    PROGRESS, given the rows to go through, says how far it is."""
    from etl.post.pacing import Pacer
    from etl.post.poster import Poster
    from etl.post.posting import Client
    from etl.run import importing

    posting = posting or Posting()
    api = connect(connection)
    try:
        rate = posting.rate or (10.0 if api.sandbox else 1.0)
        settings = replace(settings, timeout=connection.timeout,
                           read_rate=connecting.read_rate(posting.read_rate, api))
        inputs = run.inputs()
        journal = open_journal(api, connection, run.run_id, "import")
        try:
            with Client(api.url, api.credentials, timeout=connection.timeout,
                        pool=settings.concurrency + 2) as client:
                poster = Poster(client, Pacer(rate), journal, run.resource.endpoint,
                                max_retries=posting.max_retries, daily_limit=posting.daily_limit,
                                throttle_patience=posting.throttle_patience)
                with while_posting or contextlib.nullcontext():
                    return importing.import_files(inputs, run.validator(), run.record, journal, poster,
                                                  settings, stopper, progress)
        finally:
            journal.close()
    finally:
        api.close()
