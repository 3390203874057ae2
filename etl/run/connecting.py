"""Where a command that talks to the API goes: the target (its normalised URL, or the emulator),
the credentials, and the target's journal.

`etl import`, `etl validate --online`, `etl reconcile` and `etl resolve` all reach the API the
same way, so it is built here once, from one `Connection`, and a Python caller gets the same
target, credentials and journal as the command line. The in-process emulator is started by
whoever asks for it (`Connection.sandbox`): only the CLI reaches the emulator.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from etl import logs
from etl.config import DEFAULT_API_URL
from etl.errors import UsageProblem
from etl.ledger import journal_backends as backends
from etl.ledger.entries import (
    OLD_DEFAULT,
    default_journal_path,
    forget,
    journal_folder_problem,
    normalise_url,
)
from etl.ledger.journal import Journal
from etl.ledger.journal_backends import is_url
from etl.post.answers import Credentials, check_url


class Emulator(Protocol):
    """A Nexudus emulator running in this process (`etl ... --sandbox`)."""

    url: str

    def stop(self) -> None: ...


#: Starts the emulator: (the SQLite file its records are kept in, the one token it accepts, the
#: booking credits file it declares or None) -> the emulator, running.
StartEmulator = Callable[[str, str, str | None], Emulator]


@dataclass(frozen=True)
class Connection:
    """How to reach the API and which journal to keep: the options every command that talks to
    the API takes (`--api-url`, `--token`, `--journal`, ...)."""

    api_url: str = DEFAULT_API_URL
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    timeout: float = 30.0
    journal: str | None = None  # a SQLite file or a postgresql:// URL; None: the target's own
    allow_insecure_http: bool = False
    #: the emulator instead of the API (`--sandbox`): its journal is the target "sandbox"'s
    sandbox: StartEmulator | None = None
    credits_file: str | None = None  # the booking credits the emulator declares (with sandbox only)
    new_journal: bool = False  # knowingly start the journal afresh (`etl import --new-journal`)


@dataclass
class Api:
    """The API reached: where requests go, the target the journal is kept for, the credentials,
    the journal's path, and the emulator when there is one (stopped by `close`)."""

    url: str
    target: str
    credentials: Credentials
    journal: str
    sandbox: Emulator | None = None

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()


def target_of(settings: Connection) -> tuple[str, str]:
    """The API target (its normalised URL, or "sandbox") and the path of its journal."""
    target = "sandbox" if settings.sandbox is not None else normalise_url(
        check_url(settings.api_url, settings.allow_insecure_http))
    return target, settings.journal or default_journal_path(target)


def connect(settings: Connection, *, credentials: bool = True) -> Api:
    """The API to talk to (or the emulator, started), its journal and credentials; CREDENTIALS:
    refuse to go on without any (a token, or a username and password)."""
    target, journal = target_of(settings)
    if settings.sandbox is not None:
        token = secrets.token_urlsafe(16)
        # the emulator's records are kept beside its journal, or in the state folder
        folder = os.path.dirname(default_journal_path(target) if is_url(journal)
                                 else os.path.abspath(journal))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise journal_folder_problem(folder, exc) from None
        records = os.path.join(folder, "sandbox-records.sqlite3")
        try:
            box = settings.sandbox(records, token, settings.credits_file)
        except sqlite3.Error as exc:  # a folder it can't write (/proc, read-only), a damaged file
            raise UsageProblem(f"the emulator can't keep its records in {records} ({exc}); give a "
                               "--journal in a folder this user can write") from None
        return Api(box.url, target, Credentials(token=token), journal, box)
    if settings.credits_file:
        raise UsageProblem("--credits declares the booking credits of the emulator: it goes with --sandbox")
    creds = Credentials(
        token=secret(settings.token, settings.token_file, "token"),
        username=settings.username,
        password=secret(settings.password, settings.password_file, "password"),
    )
    if credentials:
        creds.check()
    return Api(target, target, creds, journal)


def secret(value: str | None, path: str | None, what: str) -> str | None:
    """VALUE, or the first line of the file at PATH (`--token-file`), so it stays out of `ps`."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError as exc:
            raise UsageProblem(f"can't read the {what} file {path}: {exc.strerror}") from None
    return value


def open_journal(api: Api, settings: Connection, run_id: str, command: str, *,
                 existing: bool = False) -> Journal:
    """The target's journal, taking over the one an earlier version kept in this folder.
    EXISTING: only a journal that exists (a command that reads it, never one that starts it:
    a mistyped --journal, or a relative one from another folder, would otherwise be a new empty
    journal, and `etl reconcile` would say "0 rows in doubt" of the night's 40)."""
    if existing and not (not settings.journal and os.path.isfile(OLD_DEFAULT)):
        _must_exist(api.journal)
    if settings.new_journal:
        forget(api.journal)
    journal = Journal(api.journal, api.target, run_id=run_id, command=command, fresh=settings.new_journal)
    if not settings.journal and os.path.isfile(OLD_DEFAULT) and \
            os.path.abspath(OLD_DEFAULT) != journal.path:
        taken = journal.adopt_legacy(OLD_DEFAULT)
        if taken:
            logs.get().warning(
                f"took over {taken} rows of {api.target} from {OLD_DEFAULT}, the journal an earlier "
                f"version kept in this folder; the journal is now {journal.path}")
    logs.get().info("journal", path=journal.path, target=api.target)
    return journal


def _must_exist(journal: str) -> None:
    """As `etl status` says it: no journal there, nothing was imported through it."""
    if not is_url(journal):
        if not os.path.isfile(journal) or os.path.getsize(journal) == 0:
            raise UsageProblem(f"no journal at {os.path.abspath(journal)}: nothing has been imported into "
                               "this target yet (or name it with --journal)")
        return
    db = backends.PgConnection(journal, read_only=True)
    try:
        found = db.execute("SELECT to_regclass('meta')").fetchone()[0] is not None
    finally:
        db.close()
    if not found:
        raise UsageProblem(f"no journal in {backends.shown(journal)}: nothing has been imported through "
                           "it yet (or name another with --journal)")


def read_rate(asked: float | None, api: Api) -> float:
    """The account checks' look-ups a second: ASKED, else under Nexudus' read limits, or quicker
    for the emulator."""
    from etl.run.checks import READ_RATE, SANDBOX_READ_RATE

    return float(asked or (SANDBOX_READ_RATE if api.sandbox else READ_RATE))
