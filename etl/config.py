"""Where an option's value comes from when the command line does not give it.

Precedence is the command line, then the environment (`ETL_<OPTION>`, or `NEXUDUS_*` for the
API's settings and secrets), then a `--config` TOML file, then the option's default. The file's
keys are the long option names (`api-url = "..."`, `daily-limit = 5000`); a table named after a
command (`[import]`) holds values for that command only (`etl status`, which describes the
import, also takes its target, journal and daily limit from `[import]`; its own `[status]` table
wins). A key that is an option of some other command is ignored (one file serves `etl import`
and `etl status`); a key that is an option of no command is a typo and stops the run.

This module does not import click: the CLI hands it the option names it knows.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from etl.errors import UsageProblem
from etl.ledger.journal_backends import has_password, is_url, reads_two_ways
from etl.ledger.journal_backends import shown as shown_url

#: The defaults of the options that name the API and the resource, for the CLI and the library.
DEFAULT_API_URL = "https://spaces.nexudus.com"
DEFAULT_RESOURCE = "coworkerbookingcreditusehistories"

#: Keys a command also takes from another command's table, before its own: `etl status`
#: describes the target, journal and daily limit of `etl import`, so `[import] daily-limit = 2000`
#: holds for it (how the import prints, `json` or `quiet`, does not).
BORROWS: dict[str, dict[str, frozenset[str]]] = {
    "status": {"import": frozenset({"api-url", "sandbox", "journal", "daily-limit"})}}

#: Options whose values are secrets: never read from a file that others can read.
SECRETS = frozenset({"token", "password"})


def env_name(option: str) -> str:
    """`--daily-limit` -> `ETL_DAILY_LIMIT`."""
    return "ETL_" + option.lstrip("-").upper().replace("-", "_")


def key(name: str) -> str:
    """A config key as a long option name: `daily_limit` and `daily-limit` are the same key."""
    return name.strip().lstrip("-").lower().replace("_", "-")


def load(
    path: str, command: str, options: Mapping[str, str], everywhere: Iterable[str],
    commands: Iterable[str] = (),
) -> dict[str, Any]:
    """The values FILE sets for COMMAND, keyed by parameter name.

    OPTIONS maps this command's long option names (without `--`) to its parameter names;
    EVERYWHERE is every long option name of every command, so a key meant for another command
    is skipped quietly while a misspelt one is reported.
    """
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UsageProblem(f"--config {path}: no such file") from None
    except OSError as exc:
        raise UsageProblem(f"--config {path}: can't read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageProblem(f"--config {path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageProblem(f"--config {path}: not valid TOML: not UTF-8 (byte {exc.object[exc.start]:#04x} "
                           f"at offset {exc.start}); save it as UTF-8") from None
    command_names = set(commands) | {command}
    known = {key(o) for o in everywhere}
    values: dict[str, Any] = {}
    borrowed = BORROWS.get(command, {})
    scopes: list[tuple[dict[str, Any], frozenset[str] | None]] = [(data, None)]
    for table, keys in [*borrowed.items(), (command, None)]:
        if isinstance(data.get(table), dict):
            scopes.append((data[table], keys))
    for scope, only in scopes:
        for name, value in scope.items():
            if only is not None and key(name) not in only:
                continue  # the rest of another command's table is that command's business
            if name in command_names and isinstance(value, dict):
                continue  # a command's own table: applied after the top level, or not this command
            option = key(name)
            if option not in known:
                raise UsageProblem(
                    f"--config {path}: {name!r} is not an option of etl; keys are long option "
                    "names such as api-url, daily-limit, rate"
                )
            if option in SECRETS and _readable_by_others(mode):
                raise UsageProblem(
                    f"--config {path} holds the {option} but others can read the file; "
                    f"make it readable only by its owner (chmod 600 {path}) or use "
                    f"NEXUDUS_{option.upper()}"
                )
            if option == "journal" and isinstance(value, str) and has_password(value) \
                    and _readable_by_others(mode):
                raise UsageProblem(
                    f"--config {path} holds the journal's database password but others can read "
                    f"the file; make it readable only by its owner (chmod 600 {path})"
                )
            if option in options:
                values[options[option]] = _value(value)
    return values


def _readable_by_others(mode: int) -> bool:
    return os.name == "posix" and bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def _value(value: Any) -> Any:
    """TOML values as the option parsers take them from a command line: numbers as text, so they
    are checked as a flag's would be (`daily-limit = 5.5` is no whole number, where click would
    take 5); true and false as they are, for flags only (etl.cli refuses them elsewhere); a table
    of renames becomes SOURCE=TARGET items."""
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, bool):
        return value  # a flag's (etl.cli checks that it is one)
    if isinstance(value, int | float):
        return str(value)
    return value


#: a libpq keyword string's password, quoted or not
_SECRET_KEYWORD = re.compile(r"""(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|"[^"]*"?|\S+)""")


def check_journal(spec: str) -> None:
    """A --journal: a SQLite file, or a postgresql:// URL that reads one way only (a '@' in its
    password is %40: libpq and Python's URL parser split it at different '@'s, and libpq's
    message would show the part it took for the host). A libpq keyword string is neither, and
    is never echoed with its password."""
    if is_url(spec):
        if urlsplit(spec).netloc.count("@") > 1:
            raise UsageProblem(f"--journal {shown_url(spec)}: write a '@' in the user name or password "
                               "as %40 (the URL reads two ways otherwise)")
        if reads_two_ways(spec):
            raise UsageProblem(f"--journal {shown_url(spec)}: write a '/', '?' or '#' in the user name "
                               "or password as %2F, %3F or %23 (the URL reads two ways otherwise)")
    elif re.search(r"(?:^|\s)(?:password|host|dbname)\s*=", spec):
        raise UsageProblem("--journal takes a SQLite file or a postgresql:// URL "
                           "(postgresql://user@host/database), not a string of keywords ("
                           + _SECRET_KEYWORD.sub(r"\1***", spec) + ")")
