from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from etl.cli import main

DATA = Path(__file__).parent / "data"
SAMPLES = Path(__file__).parent.parent / "samples"


@dataclass
class Run:
    result: Result
    cwd: Path

    @property
    def code(self) -> int:
        return self.result.exit_code

    @property
    def out(self) -> str:
        return self.result.stdout

    @property
    def err(self) -> str:
        return self.result.stderr

    def report_path(self) -> Path:
        """The report this run named in its summary line."""
        match = re.search(r"Report: (.+?)\s*$", self.out)
        assert match, f"no report named; stdout: {self.out!r}; stderr: {self.err!r}"
        return self.cwd / match.group(1)

    def report(self) -> list[dict[str, str]]:
        with open(self.report_path(), newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def summary(self) -> dict:
        return json.loads((self.report_path().parent / "summary.json").read_text())


# tests do not time things: a property test's examples take what the machine gives them (a
# loaded CI runner made a 0.3 s first example "flaky" under hypothesis' 200 ms deadline)
try:
    from hypothesis import settings as hypothesis_settings
except ImportError:  # an environment without the test extra: pytest_configure says so, in one line
    pass
else:
    hypothesis_settings.register_profile("etl", deadline=None)
    hypothesis_settings.load_profile("etl")


#: what etl itself imports (pyproject's dependencies, as modules)
RUNTIME = ("pandas", "pandera", "requests", "urllib3", "click", "structlog", "python_calamine",
           "tenacity", "pyarrow", "numpy", "platformdirs", "filelock")
#: what the test modules import as they are collected (the test extra's)
TESTING = ("hypothesis",)


def pytest_configure(config: pytest.Config) -> None:
    """A Python without etl's dependencies (a global `pytest` outside the project's environment)
    stops with one line saying what to install, not an import error per test module."""
    import importlib.util

    missing = [m for m in RUNTIME if importlib.util.find_spec(m) is None]
    if missing:
        pytest.exit(f"etl's dependencies are missing from this Python ({', '.join(missing)}): "
                    "install the project with its test extra, pip install -e '.[test]', and run "
                    "pytest from that environment", returncode=pytest.ExitCode.USAGE_ERROR)
    missing = [m for m in TESTING if importlib.util.find_spec(m) is None]
    if missing:  # etl installed, and pytest beside it, without the test extra
        pytest.exit(f"the test extra is missing from this Python ({', '.join(missing)}): install it, "
                    "pip install -e '.[test]', and run pytest again", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Six tests at a time (most wait on a sandbox or a child process) where pytest-xdist is
    installed, unless `-n` says otherwise, each worker taking the next test as it is free (the
    last tests are not queued behind a long one); one at a time without it, so that a plain
    `pytest` works in any environment that has the project's dependencies."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not hasattr(config.option, "numprocesses"):
        return
    if config.option.numprocesses is None and not config.option.collectonly:
        config.option.numprocesses = 6
        if config.option.dist == "no":
            config.option.dist = "worksteal"


@pytest.fixture(autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test has a state folder of its own: journals never land in the real home."""
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.delenv("ETL_JOURNAL", raising=False)
    return home


@pytest.fixture
def etl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `etl ARGS...` in a fresh working folder (so logs/ lands there)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str | os.PathLike, env: dict[str, str] | None = None) -> Run:
        result = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
        return Run(result, tmp_path)

    return run


# --- PostgreSQL journals: one server per test process, a fresh database per test ------------------

PG_SECRET = "made-up-pg-secret-0001"


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of this test process (each xdist worker starts its own), started
    from nothing by pip's pgserver and stopped at the end. Its folder is not under pytest's
    temporary folder: where the tests run as root the server runs as another user, and every
    pytest session makes pytest's folder readable by its owner alone."""
    import shutil
    import tempfile
    import warnings

    folder = tempfile.mkdtemp(prefix="etl-pg-")
    with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR where tests run as root
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode="stop")
    yield server
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new, empty database, with a (made-up) password that must never be shown."""
    import uuid
    from urllib.parse import urlsplit

    import psycopg

    name = f"j{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    host = urlsplit(pg_server.get_uri()).query  # host=<the server's socket folder>
    return f"postgresql://postgres:{PG_SECRET}@/{name}?{host}"


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A journal on each backend: a SQLite file, or a PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "journal.sqlite3")
    return str(request.getfixturevalue("pg_url"))
