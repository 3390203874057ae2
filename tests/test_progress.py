"""The progress bar on a terminal: its last frame says what the run did (the counts of the last
batch included), and after Ctrl-C it stays where the run stopped instead of sweeping to 100 %."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

from etl.sandbox import Faults, Sandbox
from tests.conftest import SAMPLES

TOKEN = "test-token-not-a-real-one-0022"


def on_a_terminal(args: list[str], cwd, until=None) -> tuple[int, str]:
    """Run `python -m etl ARGS` with stderr on a pseudo-terminal; UNTIL() true: send Ctrl-C."""
    main, side = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUDUS_", "ETL_"))}
    proc = subprocess.Popen([sys.executable, "-m", "etl", *args], cwd=cwd, env={**env, "COLUMNS": "120"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=side)
    os.close(side)
    seen, sent = b"", False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            seen += chunk
        if until is not None and not sent and until():
            proc.send_signal(signal.SIGINT)
            sent = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=60)
    os.close(main)
    return proc.returncode, seen.decode("utf-8", "replace")


def frames(text: str) -> list[str]:
    return [f.strip() for f in re.split(r"[\r\n]", text) if "Importing" in f]


def test_the_last_frame_counts_every_row(tmp_path):
    code, text = on_a_terminal(["import", str(SAMPLES / "credit_uses.csv"), "--sandbox",
                                "--batch-size", "5", "--rate", "1000"], tmp_path)
    assert code == 0, text
    last = frames(text)[-1]
    assert "100%" in last and "created 24, errors 0" in last, last


def test_after_ctrl_c_the_bar_stays_where_the_run_stopped(tmp_path):
    (tmp_path / "a.csv").write_text("CoworkerBookingCreditId,CreditUsed,Description\n"
                                    + "".join(f"{100 + i},1,row {i}\n" for i in range(40)))
    with Sandbox(faults=Faults(retry_after=0, latency=0.05), tokens=(TOKEN,)) as box:
        code, text = on_a_terminal(
            ["import", "a.csv", "--api-url", box.url, "--token", TOKEN, "--rate", "1000",
             "--batch-size", "5", "--no-check-credits"], tmp_path,
            until=lambda: len(box.store.records()) >= 5)
        made = len(box.store.records())
    assert code == 130, text
    last = frames(text)[-1]
    assert "100%" not in last and "stopping" in last, last
    percent = int(re.search(r"(\d+)%", last).group(1))
    assert percent <= 100 * made // 40 + 3, (last, made)
