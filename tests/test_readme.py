"""The README's runbooks, run as written: every command of its quick start, runbooks and
development sections is run here (against the sandbox or the bundled samples, made-up file
names given real files) and checked to do what the README says of it. A command added to
those sections without a check here, or a check of a command no longer there, fails
`test_every_runbook_command_is_run_here`: the README and etl stay in step."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.conftest import SAMPLES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TOKEN = "made-up-token-for-the-readme-0022"
BIN = Path(sys.executable).parent


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else len(README)]


def runbook_commands() -> set[str]:
    """The commands of the quick start, the runbooks and the development section: each line of
    their sh and cron blocks, and each inline `etl ...` of their text (comments left out)."""
    found = set()
    for title in ("Quick start", "Runbooks", "Development"):
        text = section(title)
        for kind, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
            if kind in ("sh", "cron"):
                found.update(re.sub(r"\s+#.*$", "", line).strip() for line in body.splitlines())
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        found.update(span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith("etl "))
    return {c for c in found if c}


def as_written(command: str) -> str:
    """COMMAND, which the README must hold as is (`test_every_runbook_command_is_run_here` reads
    the commands given here from this file)."""
    assert command in runbook_commands(), f"the README no longer says {command!r}"
    return command


@pytest.fixture
def desk(tmp_path, monkeypatch):
    """A working folder with the files the runbooks name, made from the bundled samples, and
    `etl` on the PATH; no credentials in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("NEXUDUS_", "ETL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ETL_RATE", "1000")  # a test's pace; the dress rehearsal keeps the server's
    shutil.copy(SAMPLES / "credit_uses_with_errors.csv", tmp_path / "export.csv")
    small = "".join((SAMPLES / "credit_uses.csv").read_text().splitlines(keepends=True)[:4])
    (tmp_path / "history-2019-2025.csv").write_text(small)
    (tmp_path / "export-2026-11-24.csv").write_text(small)
    return tmp_path


def sh(command: str, env: dict[str, str] | None = None, timeout: float = 120
       ) -> subprocess.CompletedProcess[str]:
    """COMMAND as a shell runs it, in the current folder, with ENV added. An `etl ...` line (after
    `export NAME=VALUE` lines or `NAME=VALUE` words, with a `< FILE` at its end) runs in this
    process (click's runner: the same program, without a second start-up); anything else a
    shell does (pipes, `$(...)`, `>`, `&&`) runs in bash."""
    env = dict(env or {})
    lines = command.split("\n")
    for line in lines[:-1]:
        exported = re.fullmatch(r"export (\w+)=(\S*)", line.strip())
        if exported is None:
            break
        env[exported.group(1)] = exported.group(2)
    else:
        words = shlex.split(lines[-1]) if not re.search(r"[>|&;$`]", lines[-1]) else []
        while words and re.fullmatch(r"\w+=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        stdin = None
        if len(words) > 2 and words[-2] == "<":
            stdin, words = Path(words[-1]).read_bytes(), words[:-2]
        if words[:1] == ["etl"] and "<" not in words:
            from click.testing import CliRunner

            from etl.cli import main

            result = CliRunner().invoke(main, words[1:], env=env, input=stdin, catch_exceptions=False)
            return subprocess.CompletedProcess(words, result.exit_code, result.stdout, result.stderr)
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def report_of(done: subprocess.CompletedProcess[str]) -> Path:
    match = re.search(r"Report: (\S+)\s*$", done.stdout)
    assert match, (done.stdout, done.stderr)
    return Path(match.group(1))


def outcomes(results: Path) -> list[str]:
    import csv

    with open(results, newline="", encoding="utf-8") as f:
        return [r["outcome"] for r in csv.DictReader(f)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Quick start and Development -----------------------------------------------------------------


def test_quick_start_and_development(desk):
    first = as_written("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && "
                       "etl import samples/credit_uses.csv --sandbox")
    as_written("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]'")
    # the install is what .ci/run does from nothing on every change (and by hand on a Python
    # that refuses system installs); here, the import it ends with, run twice
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python3 -m venv "$1"' in ci and "-e '.[test]'" in ci and ". \"$work/venv/bin/activate\"" in ci
    shutil.copytree(SAMPLES, desk / "samples")
    tail = first.split(" && ")[-1]
    done = sh(tail)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("24 rows: 24 created.")
    again = sh(tail)
    assert again.returncode == 0 and again.stdout.startswith("24 rows: 24 skipped.")  # "run it again"

    # the README's test command is the one CI runs, after `ruff check .`
    test_command = as_written("python -m pytest")
    lines = [line.strip() for line in ci.splitlines()]
    assert test_command in lines and "ruff check ." in lines
    assert lines.index("ruff check .") < lines.index(test_command)
    as_written("ruff check .")
    done = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout
    # the benchmarks start (post_bench.py, status_bench.py, night_bench.py, doubt_bench.py and
    # posting_memory_bench.py run briefly in tests/test_bench.py)
    import runpy

    for bench in (as_written("python bench/validate_bench.py"), as_written("python bench/post_bench.py"),
                  as_written("python bench/soak_bench.py"), as_written("python bench/credit_bench.py"),
                  as_written("python bench/status_bench.py"), as_written("python bench/night_bench.py"),
                  as_written("python bench/posting_memory_bench.py"),
                  as_written("python bench/doubt_bench.py --fault unavailable=0.1")):
        script = str(ROOT / bench.split()[1])
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "argv", [script, "--help"])
            with pytest.raises(SystemExit) as started:  # its options shown: it imports and starts
                runpy.run_path(script, run_name="__main__")
        assert started.value.code == 0
    done = sh(as_written("etl --help"))
    assert done.returncode == 0 and "validate" in done.stdout and "import" in done.stdout


# --- Checking a spreadsheet -------------------------------------------------------------------------


def test_checking_a_spreadsheet(desk):
    done = sh(as_written("etl validate export.csv"))
    assert done.returncode == 1  # exit 0: every row valid; 1: some are not
    run_dir = report_of(done).parent
    assert re.search(r"(and \d+ more: see|To fix and load them again:) logs/[^/]+/errors.csv",
                     done.stderr), done.stderr
    first = [line for line in done.stderr.splitlines() if " row " in line][0]
    assert re.match(r"\S*export.csv row \d+: invalid: \w+: ", first), first
    assert sh("etl validate history-2019-2025.csv").returncode == 0  # every row valid: exit 0

    # errors.csv: only the rows that need action, the file's own columns, `errors` last; validate it
    errors_csv = run_dir / "errors.csv"
    header = errors_csv.read_text().splitlines()[0]
    assert header == (SAMPLES / "credit_uses_with_errors.csv").read_text().splitlines()[0] + ",errors"
    again = sh(f"etl validate {errors_csv}")
    assert again.returncode == 1 and "warning" not in again.stderr

    # `etl report logs/<run-id>` sums the run up; `--html report.html` makes a page
    summed = sh(as_written("etl report logs/<run-id>").replace("logs/<run-id>", str(run_dir)))
    assert summed.returncode == 0 and "Most common reasons:" in summed.stdout
    assert "--html report.html" in section("Runbooks")
    page = sh(f"etl report {run_dir} --html report.html")
    assert page.returncode == 0 and (desk / "report.html").read_text().startswith("<!DOCTYPE html>")

    european = desk / "export.csv"
    european.write_text("CoworkerBookingCreditId;CreditUsed;Description\n1281;1,5;Ada\n1203;3;desk\n")
    done = sh(as_written("etl validate export.csv --delimiter ';' --decimal ','"))
    assert done.returncode == 0 and done.stdout.startswith("2 rows: 2 valid."), done.stderr

    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "February"
    march = book.create_sheet("March")
    for row in (["CoworkerBookingCreditId", "Credits", "Description"], [1281, 1.5, "Ada"], [1203, 3, "desk"]):
        march.append(row)
    book.save(desk / "bookings.xlsx")
    done = sh(as_written("etl validate bookings.xlsx --sheet March --map 'Credits=CreditUsed'"))
    assert done.returncode == 0 and done.stdout.startswith("2 rows: 2 valid."), done.stderr

    shutil.copy(desk / "history-2019-2025.csv", european)
    done = sh(as_written("etl validate - < export.csv"))
    assert done.returncode == 0 and done.stdout.startswith("3 rows: 3 valid."), done.stderr
    assert (report_of(done).parent / "stdin.csv").read_text() == european.read_text()

    done = sh(as_written("etl schema"))
    assert done.returncode == 0
    assert "CoworkerBookingCreditId" in done.stdout and "required" in done.stdout
    done = sh(as_written("etl schema --template blank.csv"))
    assert done.returncode == 0 and (desk / "blank.csv").read_text().startswith("CoworkerBookingCreditId,")


# --- Migrating years of history ---------------------------------------------------------------------


def test_migrating_years_of_history(desk):
    (desk / "history-2019-2025.csv").write_text(
        "CoworkerBookingCreditId,CreditUsed,Description\n1281,1.5,Ada\n1203,3,desk\n1231,0.5,studio\n")
    # 1. check the file, then the account
    assert sh(as_written("etl validate history-2019-2025.csv")).returncode == 0
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        account = {"NEXUDUS_API_URL": box.url, "NEXUDUS_TOKEN": TOKEN}
        done = sh(as_written("etl validate history-2019-2025.csv --online"), env=account)
        assert done.returncode == 0, done.stderr
        assert box.stats.posts == 0  # reads the API, never posts

    # 2. rehearse: in-process, then a dress rehearsal against `etl sandbox` in another terminal
    done = sh(as_written("etl import history-2019-2025.csv --sandbox"))
    assert done.returncode == 0 and done.stdout.startswith("3 rows: 3 created.")
    (desk / "credits.csv").write_text("Id,TotalCredit,RemainingCredit\n1281,10,10\n1203,10,1\n")
    done = sh(as_written("etl validate history-2019-2025.csv --online --sandbox --credits credits.csv"))
    assert done.returncode == 1 and "proves nothing" not in done.stderr
    assert "credit 1231 does not exist" in done.stderr and "credit 1203 has 1 left" in done.stderr
    port = str(free_port())
    server = as_written("etl sandbox --rate-limit 1 --daily-limit 5000 --unavailable 0.02")
    rehearsal = as_written("NEXUDUS_USERNAME=sandbox@example.com NEXUDUS_PASSWORD=sandbox-password etl "
                           "import history-2019-2025.csv --api-url http://127.0.0.1:8765")
    other_terminal = subprocess.Popen(["bash", "-c", f"exec {server} --port {port}"], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
    try:
        assert other_terminal.stdout is not None
        said = other_terminal.stdout.readline()
        assert "username sandbox@example.com, password sandbox-password" in said  # "it prints"
        done = sh(rehearsal.replace("8765", port), env={"ETL_RATE": "1"})  # the default pace
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("3 rows: 3 created.")
    finally:
        other_terminal.terminate()
        other_terminal.wait(timeout=30)
        other_terminal.stdout.close()

    # 3. the config file, as the README gives it, pointed at a sandbox standing in for Nexudus
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        toml = re.search(r"```toml\n(.*?)```", section("Runbooks"), re.S).group(1)
        toml = "\n".join(line.strip() for line in toml.splitlines())
        assert tomllib.loads(toml)["api-url"] == "https://spaces.nexudus.com"
        (desk / "nightly.toml").write_text(toml.replace("https://spaces.nexudus.com", box.url))
        assert sh(as_written("chmod 600 nightly.toml")).returncode == 0
        assert (desk / "nightly.toml").stat().st_mode & 0o077 == 0
        (desk / "nightly.toml").write_text((desk / "nightly.toml").read_text() + f'token = "{TOKEN}"\n')
        (desk / "nightly.toml").chmod(0o644)
        refused = sh("etl import --config nightly.toml history-2019-2025.csv")
        assert refused.returncode == 2 and TOKEN not in refused.stderr  # a secret in a file others read
        (desk / "nightly.toml").write_text(toml.replace("https://spaces.nexudus.com", box.url))

        # 4. the first night, by hand: exit 0, or 4 at the daily limit
        night = {"NEXUDUS_TOKEN": TOKEN}
        done = sh(as_written("etl import --config nightly.toml history-2019-2025.csv"), env=night)
        assert done.returncode in (0, 4), done.stderr
        assert done.stderr == ""  # quiet = true: only the summary line
        assert done.stdout.startswith("3 rows: 3 created.")

        # 5. the cron line, made-up paths replaced
        cron = as_written("30 1 * * * cd /srv/etl && NEXUDUS_TOKEN=$(cat /srv/etl/token) etl import --config "
                          "nightly.toml history-2019-2025.csv --json > last-run.json")
        (desk / "token").write_text(TOKEN + "\n")
        done = sh(cron.split(" * * * ", 1)[1].replace("/srv/etl", str(desk)))
        assert done.returncode == 0, done.stderr
        last = json.loads((desk / "last-run.json").read_text())
        assert last["exit_code"] == 0 and last["counts"]["skipped"] == 3

        # 6. each morning
        status = sh(as_written("etl status --config nightly.toml"))
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        example = re.search(r"\*\*Each morning.*?```\n(.*?)```", section("Runbooks"), re.S).group(1)
        shown = [line.strip() for line in example.splitlines()]
        assert lines[0].startswith("Journal ") and shown[0].startswith("Journal ")
        assert lines[1].split() == shown[1].split()  # file rows valid done in doubt failed rejected left
        assert lines[2].split()[1:] == ["3", "3", "3", "0", "0", "0", "0"]
        assert re.fullmatch(r"POSTs today \(\d{4}-\d\d-\d\d UTC\): 3 of 5000 \(--daily-limit\)\.", lines[3])
        assert re.fullmatch(r"POSTs today \(\d{4}-\d\d-\d\d UTC\): \d+ of 5000 \(--daily-limit\)\.", shown[3])
        assert "--json" in section("Runbooks")
        assert json.loads(sh("etl status --config nightly.toml --json").stdout)["sources"][0]["done"] == 3

    # 7. a row in doubt the API can't tell: `etl reconcile`, then decided by hand with `etl resolve`
    as_written("etl reconcile")
    as_written("etl resolve SOURCE:ROW --created ID")
    (desk / "export.csv").write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,first\n")
    with Sandbox(faults=Faults(retry_after=0, created_on_offset=-8), tokens=(TOKEN,)) as box:
        api = {"NEXUDUS_API_URL": box.url, "NEXUDUS_TOKEN": TOKEN}
        box.script("error_after_create")
        done = sh("etl import export.csv --no-system-id --timeout 0.3", env=api)
        assert outcomes(report_of(done)) == ["in_doubt"], done.stderr
        assert sh("etl reconcile", env=api).returncode == 1  # it can't tell: still in doubt
        record = box.store.records()[0]["Id"]
        done = sh(f"etl resolve export.csv:2 --created {record}", env=api)
        assert done.returncode == 0, done.stderr
        assert sh("etl import export.csv", env=api).stdout.startswith("1 row: 1 skipped.")
        assert box.stats.posts == 1


# --- The nightly job ---------------------------------------------------------------------------------


def test_the_nightly_job(desk, monkeypatch):
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        monkeypatch.setenv("NEXUDUS_API_URL", box.url)  # the account, standing in for Nexudus
        export = as_written("export NEXUDUS_TOKEN=...")
        night = as_written("etl import export-2026-11-24.csv -q")
        first = sh(f"{export.replace('...', TOKEN)}\n{night}")
        assert first.returncode == 0 and first.stderr == ""
        assert first.stdout.count("\n") == 1 and first.stdout.startswith("3 rows: 3 created.")
        import csv

        with open(report_of(first), newline="", encoding="utf-8") as f:
            assert all(r["id"].isdigit() for r in csv.DictReader(f))  # created rows get their new Id
        again = sh(f"{export.replace('...', TOKEN)}\n{night}")
        assert again.returncode == 0 and again.stdout.startswith("3 rows: 3 skipped.")
        assert box.stats.posts == 3  # again: nothing posted

        # the cron line: the export of the day, --json for the wrapper, mail on a non-zero exit
        cron = as_written('15 2 * * * cd /srv/etl && etl import --config nightly.toml '
                          '"exports/export-$(date +\\%F).csv" --json > last-run.json || '
                          'mail -s "etl exit $?" ops@example.com < last-run.json')
        (desk / "nightly.toml").write_text(f'api-url = "{box.url}"\nquiet = true\n')
        (desk / "exports").mkdir()
        line = cron.split(" * * * ", 1)[1].replace("/srv/etl", str(desk)).replace("\\%", "%")
        mail = 'mail() { cat > "mailed-$3.txt"; }\n'  # the mail of a failed night, kept to read
        (desk / "exports" / f"export-{dt.date.today():%Y-%m-%d}.csv").write_text(
            "CoworkerBookingCreditId,CreditUsed,Description\n1281,2,Ada\n1203,abc,desk\n")
        done = sh(mail + line, env={"NEXUDUS_TOKEN": TOKEN})
        assert done.returncode == 0 and done.stderr == ""
        mailed = json.loads((desk / "mailed-ops@example.com.txt").read_text())
        assert mailed["exit_code"] == 1 and mailed["errors_report"]  # 1: look at errors.csv
        # the likeliest failure of a night, no export yet, mails one JSON document too
        for old in desk.glob("exports/*.csv"):
            old.unlink()
        done = sh(mail + line, env={"NEXUDUS_TOKEN": TOKEN})
        mailed = json.loads((desk / "mailed-ops@example.com.txt").read_text())
        assert mailed["exit_code"] == 2 and "export-" in mailed["error"]
        # `etl status` shows the target's journal
        status = sh(as_written("etl status"))
        assert status.returncode == 0 and "POSTs today" in status.stdout, status.stderr
    monkeypatch.delenv("NEXUDUS_API_URL")

    # rehearsals: `etl import FILE --sandbox`; `etl sandbox` and its knobs
    done = sh(as_written("etl import FILE --sandbox").replace("FILE", "export-2026-11-24.csv"))
    assert done.returncode == 0
    help_text = sh(as_written("etl sandbox --help")).stdout
    from etl.cli import main

    knobs = [o for p in main.commands["sandbox"].params for o in p.opts if o.startswith("--")]
    assert [k for k in knobs if k not in help_text] == []
    as_written("etl sandbox")
    port = str(free_port())
    server = subprocess.Popen(["bash", "-c", f"exec etl sandbox --port {port}"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        assert f"http://127.0.0.1:{port}" in server.stdout.readline()
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()
    assert "`etl sandbox` runs it on `http://127.0.0.1:8765`" in section("Runbooks")


def test_every_runbook_command_is_run_here():
    """Every command of those sections is given to `as_written` by a test above (read from this
    file's own source, so it holds however the tests are spread over processes)."""
    import ast

    ran = {node.args[0].value for node in ast.walk(ast.parse(Path(__file__).read_text()))
           if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "as_written"
           and node.args and isinstance(node.args[0], ast.Constant)}
    missing = runbook_commands() - ran
    assert missing == set(), f"README commands no test here runs: {sorted(missing)}"
    assert ran - runbook_commands() == set(), "checks of commands the README no longer has"
