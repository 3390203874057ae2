"""TLS: only a failed connect or handshake proves nothing was sent; a TLS session that breaks
once the request has left is ambiguous like a dropped connection (the server may have acted)."""

from __future__ import annotations

import socket
import subprocess
import threading
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


def untrusted_then_known(etl, box, tmp_path, env: dict) -> None:
    """A certificate not trusted: the run stops at its first contact, a new journal's look (no
    report: no row was reached), or at the first POST of a file the journal knows, with the rows
    not attempted; nothing was sent either way."""
    path = write(tmp_path, "a.csv", "101,1,a")
    api = ["--api-url", box.url, "--token", TOKEN, "--no-check-credits"]
    run = etl("import", path, *api, env={**env, "REQUESTS_CA_BUNDLE": None})
    assert run.code == 3 and "certificate could not be verified" in run.err, run.err
    assert "nothing was sent" in run.err
    assert box.stats.posts == 0 and box.stats.lists == 0
    assert etl("import", path, *api, env=env).code == 0  # trusted: the journal knows the file now
    write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    run = etl("import", path, *api, env={**env, "REQUESTS_CA_BUNDLE": None})
    assert run.code == 3 and "certificate could not be verified" in run.err and "nothing was sent" in run.err
    assert [r["outcome"] for r in run.report()] == ["skipped", "not_attempted"]
    assert box.stats.posts == 1 and len(box.store.records()) == 1


def test_a_certificate_not_trusted_is_a_failed_handshake_nothing_sent(etl, tls_sandbox, tmp_path):
    box = tls_sandbox
    untrusted_then_known(etl, box, tmp_path, {**NO_ENV, "REQUESTS_CA_BUNDLE": box.cert})


class ConnectProxy:
    """A forward proxy on 127.0.0.1, as HTTPS_PROXY names one: CONNECT host:port opens a tunnel
    to it, bytes are passed both ways until either side closes."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.tunnels = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target = head.split(b" ")[:2]
            if method != b"CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.decode().rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                self.tunnels += 1
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                back = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
                back.start()
                self._pipe(client, upstream)
                back.join(5)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def proxy():
    p = ConnectProxy()
    yield p
    p.close()


def proxied(box, proxy) -> dict[str, str | None]:
    return {**NO_ENV, "REQUESTS_CA_BUNDLE": box.cert, "HTTPS_PROXY": proxy.url, "https_proxy": proxy.url,
            "NO_PROXY": None, "no_proxy": None, "ALL_PROXY": None, "all_proxy": None}


def test_through_a_proxy_a_tls_session_broken_after_the_request_left_is_in_doubt_never_resent(
    etl, tls_sandbox, proxy, tmp_path
):
    """HTTPS_PROXY: the request goes through the proxy's tunnel, and a TLS failure once it has
    left is ambiguous there too (not 'nothing was sent', which stopped the run and had the
    rerun post the row again)."""
    box = tls_sandbox
    box.script("ok", "tls_after_create")
    path = write(tmp_path, "a.csv", "101,1,a", "102,2,b")
    env = proxied(box, proxy)
    run = etl("import", path, "--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--timeout", "0.5",
              env=env)
    assert "Traceback" not in run.err
    assert proxy.tunnels >= 1  # the requests went through the proxy
    assert [r["outcome"] for r in run.report()] == ["created", "created"], run.report()
    assert run.code == 0 and "nothing was sent" not in run.err
    again = etl("import", path, "--api-url", box.url, "--token", TOKEN, env=env)
    assert [r["outcome"] for r in again.report()] == ["skipped", "skipped"]
    assert box.stats.posts == 2 and len(box.store.records()) == 2


def test_through_a_proxy_a_certificate_not_trusted_is_still_nothing_sent(etl, tls_sandbox, proxy, tmp_path):
    untrusted_then_known(etl, tls_sandbox, tmp_path, proxied(tls_sandbox, proxy))
    assert proxy.tunnels >= 3


def test_a_proxy_that_is_down_stops_the_run_before_anything_is_sent(etl, tls_sandbox, tmp_path):
    box = tls_sandbox
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    gone = f"http://127.0.0.1:{port}"
    env = {**NO_ENV, "REQUESTS_CA_BUNDLE": box.cert, "HTTPS_PROXY": gone, "https_proxy": gone,
           "NO_PROXY": None, "no_proxy": None}
    run = etl("import", write(tmp_path, "a.csv", "101,1,a"), "--api-url", box.url, "--token", TOKEN,
              "--no-check-credits", env=env)
    # stopped at the first look-up, as when the API itself can't be reached: nothing was posted
    assert run.code == 3 and "through the proxy" in run.err and "nothing more is sent" in run.err, run.err
    assert str(port) not in run.err  # the proxy's URL is not shown (it may hold a password)
    assert box.stats.posts == 0 and box.stats.lists == 0
