"""The command line as a whole: help that teaches, schema, `python -m etl`."""

from __future__ import annotations

import subprocess
import sys

import click

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
    assert lines[2].split()[:3] == ["CoworkerBookingCreditId", "positive", "integer"]
    assert "required" in lines[2] and "optional" in lines[4]


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
