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
