"""TLS: only a failed connect or handshake proves nothing was sent; a TLS session that breaks
once the request has left is ambiguous like a dropped connection (the server may have acted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, write


def self_signed(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, made here for this test (never kept)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture
def tls_sandbox(tmp_path_factory):
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), tls=(cert, key)) as box:
        box.cert = cert
        yield box


def test_a_tls_session_broken_after_the_request_left_is_in_doubt_and_found(etl, tls_sandbox, tmp_path):
    box = tls_sandbox
    assert box.url.startswith("https://")
    box.script("ok", "tls_after_create")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = etl("import", path, "--api-url", box.url, "--token", TOKEN, "--rate", "1000",
              "--timeout", "0.5", env={**NO_ENV, "REQUESTS_CA_BUNDLE": box.cert})
    assert "Traceback" not in run.err
    rows = run.report()
    # the second row's answer was a broken TLS record: in doubt, then found by its SystemId
    assert [r["outcome"] for r in rows] == ["created", "created"], rows
    assert box.stats.faults.get("tls_after_create") == 1
    assert box.stats.posts == 2 and len(box.store.records()) == 2
    assert run.code == 0
    again = etl("import", path, "--api-url", box.url, "--token", TOKEN,
                env={**NO_ENV, "REQUESTS_CA_BUNDLE": box.cert})
    assert [r["outcome"] for r in again.report()] == ["skipped", "skipped"]
    assert box.stats.posts == 2


def test_a_broken_tls_answer_whose_record_cant_be_told_stays_in_doubt_never_resent(
    etl, tls_sandbox, tmp_path
):
    box = tls_sandbox
    box.faults.created_on_offset = -8  # a local time in a zone never learnt: can't be placed
    box.script("tls_after_create")
    path = write(tmp_path, "a.csv", "101,1,a")
    env = {**NO_ENV, "REQUESTS_CA_BUNDLE": box.cert}
    run = etl("import", path, "--api-url", box.url, "--token", TOKEN, "--timeout", "0.5",
              "--no-system-id", env=env)
    row = run.report()[0]
    assert row["outcome"] == "in_doubt", row
    assert "a TLS error while the answer was awaited" in (run.report_path().parent / "log.jsonl").read_text()
    assert run.code == 1 and "nothing was sent" not in run.err
    rerun = etl("import", path, "--api-url", box.url, "--token", TOKEN, "--no-system-id", env=env)
    assert [r["outcome"] for r in rerun.report()] == ["in_doubt"]
    assert box.stats.posts == 1 and len(box.store.records()) == 1


def test_a_certificate_not_trusted_is_a_failed_handshake_nothing_sent(etl, tls_sandbox, tmp_path):
    box = tls_sandbox
    run = etl("import", write(tmp_path, "a.csv", "101,1,a"), "--api-url", box.url, "--token", TOKEN,
              env=NO_ENV)
    assert run.code == 3 and "certificate could not be verified" in run.err
    assert "nothing was sent" in run.err
    assert [r["outcome"] for r in run.report()] == ["not_attempted"]
    assert box.stats.posts == 0 and box.store.records() == []
