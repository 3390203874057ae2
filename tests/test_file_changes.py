"""An export that changes while it is being imported (a nightly job that starts before the export
is written, or an operator who saves over it): nothing is sent from a file that moved.

Before the first POST the run stops with exit 2 and nothing posted; while posting, it stops
before its next POST with exit 3, and a rerun of the finished file creates every row once.
The sandbox's latency keeps the run busy long enough to change the file at the moment wanted.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from etl.sandbox import Faults, Sandbox

TOKEN = "test-token-not-a-real-one-0003"
HEADER = "CoworkerBookingCreditId,CreditUsed,Description\n"


def start(export: Path, url: str, cwd: Path, state: Path) -> subprocess.Popen:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    for name in ("NEXUDUS_TOKEN", "NEXUDUS_API_URL", "ETL_JOURNAL", "ETL_CONFIG"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "etl", "import", str(export), "--api-url", url, "--token", TOKEN,
         "--rate", "1000", "--concurrency", "1", "-q", "--report", "out/results.csv", "--no-check-credits"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(what, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def journal_has(state: Path, count: str) -> bool:
    """Whether the COUNT query finds something in a journal of the state folder (read-only)."""
    for path in (state / "nexudus-etl" / "journals").glob("*.sqlite3"):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                if db.execute(count).fetchone()[0]:
                    return True
        except sqlite3.Error:
            pass
    return False


def rows(numbers: range) -> str:
    return "".join(f"{i % 7 + 1},1.5,Meeting room {i}\n" for i in numbers)


def test_a_file_that_changes_before_anything_is_sent_stops_the_run_with_nothing_posted(tmp_path):
    export = tmp_path / "nightly.csv"
    export.write_text(HEADER + rows(range(5)))
    state = tmp_path / "state"
    with Sandbox(faults=Faults(retry_after=0, latency=1.0), tokens=(TOKEN,)) as box:
        run = start(export, box.url, tmp_path, state)
        # the run is in the journal: it has opened the file, and logs in
        wait_for(lambda: journal_has(state, "SELECT COUNT(*) FROM runs"))
        with export.open("a") as f:  # the export is still being written
            f.write(rows(range(5, 8)))
        _, err = run.communicate(timeout=60)
        assert run.returncode == 2, err
        assert "nightly.csv: changed while it was being read" in err and "nothing was posted" in err
        assert box.store.records() == []


def test_a_file_that_changes_while_posting_stops_before_the_next_post_and_a_rerun_finishes(tmp_path):
    export = tmp_path / "nightly.csv"
    export.write_text(HEADER + rows(range(10)))
    state = tmp_path / "state"
    with Sandbox(faults=Faults(retry_after=0, latency=0.3), tokens=(TOKEN,)) as box:
        run = start(export, box.url, tmp_path, state)
        wait_for(lambda: len(box.store.records()) >= 1)
        with export.open("a") as f:
            f.write(rows(range(10, 12)))
        _, err = run.communicate(timeout=60)
        assert run.returncode == 3, err
        assert "nightly.csv changed while it was being imported" in err and "nothing more is sent" in err
        sent = len(box.store.records())
        assert 1 <= sent < 10

        again = start(export, box.url, tmp_path, state)
        _, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        made = Counter(r["Description"] for r in box.store.records())
        assert sorted(made) == sorted(f"Meeting room {i}" for i in range(12))
        assert set(made.values()) == {1}, "a row was posted twice"


def test_a_dry_run_of_a_file_that_changes_while_it_is_read_says_so(tmp_path):
    export = tmp_path / "history.csv"
    export.write_text(HEADER + rows(range(300_000)))
    report = tmp_path / "out" / "results.csv"
    env = {k: v for k, v in os.environ.items() if k != "ETL_CONFIG"}
    run = subprocess.Popen(
        [sys.executable, "-m", "etl", "validate", str(export), "-q", "--report", str(report)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(report.exists)  # the report is open: the rows are being read
    with export.open("a") as f:
        f.write(rows(range(300_000, 300_010)))
    _, err = run.communicate(timeout=60)
    assert run.returncode == 2, err
    assert "history.csv: changed while it was being read" in err
    assert "its report may not match the finished file" in err


def test_a_stop_between_a_refused_system_id_and_the_send_without_it_loses_no_row(tmp_path):
    """The first POST to a target that refuses SystemId (a 400 naming it) is sent again without
    the field; a run stopped in between (here: the file moved) leaves the row for the next run,
    not `rejected`, which a rerun would never send."""
    export = tmp_path / "nightly.csv"
    export.write_text(HEADER + rows(range(5)))
    state = tmp_path / "state"
    with Sandbox(faults=Faults(retry_after=0, latency=0.4, system_id="refuse"), tokens=(TOKEN,)) as box:
        run = start(export, box.url, tmp_path, state)

        # the first POST is under way
        wait_for(lambda: journal_has(state, "SELECT COUNT(*) FROM rows WHERE state = 'pending'"))
        with export.open("a") as f:
            f.write(rows(range(5, 6)))
        _, err = run.communicate(timeout=60)
        assert run.returncode == 3, err

        again = start(export, box.url, tmp_path, state)
        _, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        made = Counter(r["Description"] for r in box.store.records())
        assert sorted(made) == sorted(f"Meeting room {i}" for i in range(6))
        assert set(made.values()) == {1}, "a row was posted twice"


def test_a_file_touched_but_not_changed_does_not_stop_the_import(tmp_path):
    """A backup or sync tool, or an editor saving it unchanged, moves a file's time only: the
    run goes on. Rewritten with other bytes of the same size, it stops."""
    export = tmp_path / "nightly.csv"
    export.write_text(HEADER + rows(range(8)))
    state = tmp_path / "state"
    with Sandbox(faults=Faults(retry_after=0, latency=0.3), tokens=(TOKEN,)) as box:
        run = start(export, box.url, tmp_path, state)
        wait_for(lambda: len(box.store.records()) >= 1)
        os.utime(export, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert len(box.store.records()) == 8

        export.write_text(HEADER + rows(range(8, 16)))
        run = start(export, box.url, tmp_path, state)
        wait_for(lambda: len(box.store.records()) >= 9)
        export.write_text(HEADER + rows(range(8, 16)).replace("Meeting", "Meetinh"))  # same size
        _, err = run.communicate(timeout=60)
        assert run.returncode == 3, err
        assert "changed while it was being imported" in err
