"""The command line as a whole: help that teaches, schema, `python -m etl`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from etl.cli import main
from tests.conftest import SAMPLES


def test_every_command_and_option_has_help(etl):
    for name, command in main.commands.items():
        assert command.help and "Example" in command.help, f"{name} has no worked example"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"etl {name} {param.opts[0]} has no help"
        run = etl(name, "--help")
        assert run.code == 0


def test_schema_lists_columns(etl):
    run = etl("schema")
    assert run.code == 0
    lines = run.out.splitlines()
    assert "POST /api/billing/coworkerbookingcreditusehistories" in lines[0]
    # what SCHEMA declares: the dtype, the checks, required= and nullable=, aliases, description
    assert lines[2].split("  ")[:3] == ["CoworkerBookingCreditId",
                                        "whole number, greater than 0, at most 2147483647",
                                        "required, never blank"]
    assert "CreditId, BookingCreditId" in lines[2] and "Id of the booking credit" in lines[2]
    assert lines[3].startswith("CreditUsed               decimal number, greater than 0 ")
    assert "optional" in lines[4]


def test_schema_template_round_trips_through_validate(etl):
    run = etl("schema", "--template", "blank.csv")
    assert run.code == 0
    header = (run.cwd / "blank.csv").read_text().strip()
    assert header == (
        "CoworkerBookingCreditId,CreditUsed,Description,BookingId,CoworkerInvoiceLineId,EventAttendeeId"
    )
    assert etl("validate", "blank.csv").code == 0


def test_unknown_resource(etl):
    run = etl("schema", "--resource", "bookings")
    assert run.code == 2
    assert "unknown resource 'bookings'; available: coworkerbookingcreditusehistories" in run.err


def test_python_dash_m_is_the_same_program(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "etl", "validate", str(SAMPLES / "credit_uses.csv"), "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("24 rows: 24 valid.")
    assert done.stderr == ""


def test_resolve_takes_the_bare_file_name_the_report_shows(etl, tmp_path):
    """The README's form, `etl resolve export.csv:17`, from a folder other than the file's."""
    from etl.sandbox import Faults, Sandbox
    from tests.test_import import NO_ENV, TOKEN

    exports = tmp_path / "exports"
    exports.mkdir()
    path = exports / "export.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,first\n")
    with Sandbox(faults=Faults(retry_after=0, created_on_offset=-8), tokens=(TOKEN,)) as box:
        box.script("error_after_create")
        api = ["--api-url", box.url, "--token", TOKEN]
        run = etl("import", path, *api, "--rate", "1000", "--no-system-id", "--timeout", "0.3", env=NO_ENV)
        assert [r["outcome"] for r in run.report()] == ["in_doubt"], run.err
        record = box.store.records()[0]["Id"]
        done = etl("resolve", "export.csv:2", "--created", str(record), *api, env=NO_ENV)
        assert done.code == 0, done.err
        assert f"row 2: created, record {record}" in done.out
        again = etl("import", path, *api, "--rate", "1000", "--no-system-id", env=NO_ENV)
        assert [r["outcome"] for r in again.report()] == ["skipped"]
        assert box.stats.posts == 1


def one_json_document(run) -> dict:
    """stdout holds exactly one JSON document (json.loads refuses anything before or after it)."""
    import json

    document = json.loads(run.out)
    assert isinstance(document, dict)
    assert document["exit_code"] == run.code
    return document


def test_json_is_one_document_on_a_file_error(etl, tmp_path):
    run = etl("validate", "missing.csv", "--json")
    assert run.code == 2
    document = one_json_document(run)
    assert "missing.csv" in document["error"] and document["files"] == ["missing.csv"]
    assert document["command"] == "validate" and document["run_id"] and document["report"] is None
    # the run's folder says how it ended, not only "run started"
    summary = json.loads((tmp_path / "logs" / document["run_id"] / "summary.json").read_text())
    assert summary["exit_code"] == 2 and "missing.csv" in summary["error"]


def test_json_is_one_document_on_a_missing_column(etl, tmp_path):
    (tmp_path / "a.csv").write_text("Foo,Bar\n1,2\n")
    run = etl("import", "a.csv", "--sandbox", "--json")
    assert run.code == 2
    assert "CoworkerBookingCreditId" in one_json_document(run)["error"]


@pytest.mark.parametrize("args", [
    ["import", "a.csv", "--json", "--rate", "fast"],
    ["validate", "--json"],
    ["status", "--json", "--runs", "-1"],
    ["report", "nowhere", "--json"],
    ["reconcile", "--json", "--no-such-option"],
    ["import", "a.csv", "--sandbox", "--map", "Credits", "--json"],
])
def test_json_is_one_document_on_a_usage_error(etl, tmp_path, args):
    (tmp_path / "a.csv").write_text("CoworkerBookingCreditId,CreditUsed\n1,2\n")
    run = etl(*args)
    assert run.code == 2
    document = one_json_document(run)
    assert document["error"] and document["command"] == args[0]
    assert "Usage:" in run.err or "Error:" in run.err


def test_json_from_the_environment_or_config_file_on_a_failure(etl, tmp_path):
    run = etl("validate", "missing.csv", env={"ETL_JSON": "1"})
    assert run.code == 2 and one_json_document(run)["exit_code"] == 2
    (tmp_path / "nightly.toml").write_text("json = true\n")
    run = etl("import", "missing.csv", "--config", "nightly.toml", "--sandbox")
    assert run.code == 2 and "missing.csv" in one_json_document(run)["error"]


def test_json_on_refused_credentials_says_what_was_read(etl, tmp_path):
    from etl.sandbox import Faults, Sandbox
    from tests.test_import import NO_ENV, TOKEN

    (tmp_path / "a.csv").write_text("CoworkerBookingCreditId,CreditUsed\n1,2\n3,4\n")
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        run = etl("import", "a.csv", "--api-url", box.url, "--token", "wrong-made-up", "--json", env=NO_ENV)
    assert run.code == 3
    document = one_json_document(run)
    assert document["read"][0]["rows"] == 2 and "wrong-made-up" not in run.out + run.err


@pytest.mark.parametrize("name", ["status", "report", "reconcile"])
def test_json_help_says_what_each_command_prints(etl, name):
    help_text = " ".join(etl(name, "--help").out.split())
    assert "summary.json" not in help_text and "the run's summary" not in help_text
    assert "--json" in help_text and "whatever the exit" in " ".join(
        etl("import", "--help").out.split())


def test_quiet_prints_only_the_summary_line_even_with_a_warning(etl):
    from tests.conftest import DATA

    loud = etl("validate", DATA / "cp1252.csv")
    assert "etl: warning:" in loud.err  # the encoding guessed: a warning without -q
    run = etl("validate", DATA / "cp1252.csv", "-q")
    assert run.code == 0 and run.err == ""
    assert run.out.startswith("2 rows: 2 valid.") and run.out.count("\n") == 1
    log = (run.report_path().parent / "log.jsonl").read_text()
    assert "reads as cp1252" in log  # kept in the run's log


@pytest.mark.parametrize("path, given, right", [
    (SAMPLES / "credit_uses.csv", ";", "comma"),
    (Path(__file__).parent / "data" / "semicolon_decimal_comma.csv", ",", "semicolon"),
])
def test_a_wrong_delimiter_gets_a_delimiter_hint_not_a_map_one(etl, path, given, right):
    run = etl("validate", path, "--delimiter", given)
    assert run.code == 2
    assert f"the file is {right}-separated; pass --delimiter {right}" in run.err
    assert "--map" not in run.err


def test_schema_template_never_overwrites_a_file_with_rows(etl, tmp_path):
    """--template naming an export by mistake: refused, the export kept (before: replaced by a
    header line); an empty file is written."""
    export = tmp_path / "export.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed\n101,1\n")
    run = etl("schema", "--template", export)
    assert run.code == 2 and "exists and is not empty: it is kept" in run.err
    assert export.read_text() == "CoworkerBookingCreditId,CreditUsed\n101,1\n"
    empty = tmp_path / "blank.csv"
    empty.write_text("")
    assert etl("schema", "--template", empty).code == 0
    assert empty.read_text().startswith("CoworkerBookingCreditId")


@pytest.mark.parametrize(("args", "env"), [
    (["validate", str(SAMPLES / "credit_uses.csv"), "--json"], {}),
    (["import", str(SAMPLES / "credit_uses.csv"), "--sandbox", "--json", "-q"], {}),
    (["validate", str(SAMPLES / "credit_uses.csv")], {"ETL_JSON": "1"}),  # asked for by the environment
])
def test_json_with_standard_output_closed_is_an_error_not_a_silent_success(tmp_path, args, env):
    """`etl ... --json >&-`: Python writes nothing to a closed standard output, without a word;
    a script must not read exit 0 with no document. Asked for by option, it stops before
    anything is read or sent (exit 2)."""
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "etl", *args]) + " >&-"
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), **env}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "standard output" in done.stderr and "closed" in done.stderr and "Traceback" not in done.stderr
    if not env:
        assert not (tmp_path / "logs").exists() and not (tmp_path / "state").exists()


@pytest.mark.parametrize(("args", "code"), [
    (["import", str(SAMPLES / "credit_uses.csv"), "--sandbox", "--daily-limit", "10", "--rate", "1000"], 4),
    (["import", str(SAMPLES / "credit_uses.csv"), "--sandbox", "--json", "--rate", "1000"], 0),
    (["validate", str(SAMPLES / "credit_uses_with_errors.csv")], 1),
    (["schema"], 0),
])
def test_a_reader_of_standard_output_that_went_away_leaves_the_exit_status_as_it_was(tmp_path, args, code):
    """`etl import ... | logger` where the logger died: writing the summary fails (EPIPE), and the
    exit status still says how the run ended (before: 1 for every run, a quota stop and a clean
    one alike, without a word), with no traceback."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "s")}
    child = subprocess.Popen([sys.executable, "-m", "etl", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # gone before anything is written
    with child.stderr:
        err = child.stderr.read().decode()
    assert child.wait(timeout=120) == code, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_schema_template_to_stdout(etl, tmp_path):
    """`--template -` prints the header line, as `-` means standard output to csvkit's tools
    (before: a file named "-" was written)."""
    run = etl("schema", "--template", "-")
    assert run.code == 0
    assert run.out.splitlines()[0].startswith("CoworkerBookingCreditId,CreditUsed,")
    assert not (tmp_path / "-").exists()
