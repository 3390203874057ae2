"""An API that can't be reached at all is one fact about the target: the run stops at once
(exit 3) with one line, and no row is marked failed that was never sent."""

from __future__ import annotations

import json
import socket
import sqlite3

import pytest

from tests.test_import import NO_ENV, journal_of


@pytest.fixture
def closed_port() -> str:
    """A loopback URL whose port nobody listens on: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


ROWS = "CoworkerBookingCreditId,CreditUsed,Description\n" + "".join(
    f"{100 + i},1,use {i}\n" for i in range(5))


def journal_states(url: str) -> list[str]:
    try:
        with sqlite3.connect(journal_of(url)) as db:
            return [r[0] for r in db.execute("SELECT state FROM rows")]
    except sqlite3.OperationalError:
        return []


@pytest.mark.parametrize("extra", [[], ["--no-check-credits"], ["--no-check-credits", "--no-system-id"],
                                   ["--no-check-credits", "--no-system-id", "--concurrency", "4"]])
def test_an_unreachable_api_stops_the_run_at_once_with_exit_3(etl, tmp_path, closed_port, extra):
    (tmp_path / "a.csv").write_text(ROWS)
    run = etl("import", "a.csv", "--api-url", closed_port, "--token", "made-up-token", "--json",
              "--max-retries", "5", *extra, env=NO_ENV)
    assert run.code == 3, run.err
    said = [line for line in run.err.splitlines() if "refused" in line]
    # once (with the summary line when posting had begun), never once a row
    assert len(said) <= 2 and not [line for line in run.err.splitlines() if " row " in line], run.err
    assert (f"can't reach the API at {closed_port[7:]} (connection refused); nothing more is sent. "
            "Check --api-url and the network, then run again") in said[0]
    document = json.loads(run.out)
    assert document["exit_code"] == 3 and "connection refused" in document["error"]
    assert document["counts"]["failed"] == 0
    assert "failed" not in journal_states(closed_port)
    report = tmp_path / "logs" / document["run_id"] / "results.csv"
    # a new journal's first contact is a read (it looks for the file's rows on the server before
    # posting, and with account checks for the credits): no report of rows that were never sent
    assert not report.exists()


def test_a_password_login_to_an_unreachable_api_says_so(etl, tmp_path, closed_port):
    (tmp_path / "a.csv").write_text(ROWS)
    run = etl("import", "a.csv", "--api-url", closed_port, "--username", "ops@example.com",
              "--password", "made-up-password", env=NO_ENV)
    assert run.code == 3
    assert run.err.strip().endswith("(connection refused); nothing more is sent. Check --api-url and "
                                    "the network, then run again")


def test_an_online_validate_against_an_unreachable_api_stops_at_once(etl, tmp_path, closed_port):
    (tmp_path / "a.csv").write_text(ROWS)
    run = etl("validate", "a.csv", "--online", "--api-url", closed_port, "--token", "made-up", env=NO_ENV)
    assert run.code == 3 and "connection refused" in run.err
    assert "unchecked" not in run.err


@pytest.fixture
def silent_port():
    """A loopback port that never accepts: its backlog is full, so a connection is never made
    (what a firewall that drops packets looks like: no answer at all, not a refusal)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    held = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        try:
            client.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        held.append(client)
    yield f"http://127.0.0.1:{port}"
    for client in held:
        client.close()
    server.close()


@pytest.mark.parametrize("extra", [[], ["--no-check-credits", "--no-system-id"]])
def test_an_api_that_never_answers_a_connection_stops_the_run_after_its_retries(
        etl, tmp_path, silent_port, extra):
    (tmp_path / "a.csv").write_text(ROWS)
    run = etl("import", "a.csv", "--api-url", silent_port, "--token", "made-up-token", "--json",
              "--timeout", "0.2", "--max-retries", "1", *extra, env=NO_ENV)
    assert run.code == 3, run.err
    document = json.loads(run.out)
    assert f"can't reach the API at {silent_port[7:]} (no connection within 0.2 s" in document["error"]
    assert document["counts"]["failed"] == 0 and "failed" not in journal_states(silent_port)
    said = [line for line in run.err.splitlines() if "no connection within" in line]
    assert 1 <= len(said) <= 2, run.err
