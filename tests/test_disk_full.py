"""A disk that fills up mid-run: one plain line and exit 3, never a traceback, and a rerun with room
finishes the import with every row created once.

The full disk is a file size limit (RLIMIT_FSIZE) on the run's process: a write past it fails
the way a write to a full disk does (EFBIG instead of ENOSPC), at whatever point the run has
reached: creating the journal, marking a row pending, recording a created row, or the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox

resource = pytest.importorskip("resource")  # POSIX: a file size limit stands in for a full disk
signal = pytest.importorskip("signal")

TOKEN = "test-token-not-a-real-one-0002"
ROWS = 300


def limited(size: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing the run
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


def etl(args: list[str], cwd: Path, state: Path, room: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    for name in ("NEXUDUS_TOKEN", "NEXUDUS_API_URL", "ETL_JOURNAL", "ETL_CONFIG"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "etl", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, preexec_fn=None if room is None else limited(room))


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("etl: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.skipif(sys.platform == "win32", reason="no file size limit to stand in for a full disk")
@pytest.mark.parametrize("room", [20_000, 120_000, 300_000])
def test_an_import_that_runs_out_of_room_stops_cleanly_and_a_rerun_finishes_it(tmp_path, room):
    export = tmp_path / "nightly.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed,Description\n"
                      + "".join(f"{i % 7 + 1},1.5,Meeting room {i}\n" for i in range(ROWS)))
    state = tmp_path / "state"
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        args = ["import", str(export), "--api-url", box.url, "--token", TOKEN, "--rate", "1000", "-q"]
        full = etl(args, tmp_path, state, room=room)
        assert full.returncode == 3, full.stderr
        line = one_line(full.stderr)
        assert "could not be written" in line or "no room left" in line, line
        assert "damaged" not in line
        assert len(box.store.records()) < ROWS

        again = etl(args, tmp_path, state)
        assert again.returncode == 0, again.stderr
        made = Counter(r["Description"] for r in box.store.records())
        assert sorted(made) == sorted(f"Meeting room {i}" for i in range(ROWS))
        assert set(made.values()) == {1}, "a row was posted twice"


@pytest.mark.skipif(sys.platform == "win32", reason="no file size limit to stand in for a full disk")
def test_a_dry_run_that_runs_out_of_room_says_so_in_one_line(tmp_path):
    export = tmp_path / "history.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed,Description\n"
                      + "".join(f"{i % 7 + 1},1.5,Meeting room {i}\n" for i in range(20_000)))
    run = etl(["validate", str(export), "--report", "out/results.csv"], tmp_path, tmp_path / "state",
              room=100_000)
    assert run.returncode == 3, run.stderr
    line = one_line(run.stderr)
    assert "no room left" in line and "free some space and run it again" in line, line
    assert "journal" not in line


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full to write the report to")
def test_an_import_whose_report_cannot_be_written_stops_cleanly_and_a_rerun_posts_nothing_twice(tmp_path):
    """The report fills the disk while the journal still has room (the report is a link to
    /dev/full, where every write fails with ENOSPC)."""
    export = tmp_path / "nightly.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed,Description\n"
                      + "".join(f"{i % 7 + 1},1.5,Meeting room {i}\n" for i in range(ROWS)))
    state = tmp_path / "state"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "results.csv").symlink_to("/dev/full")
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        args = ["import", str(export), "--api-url", box.url, "--token", TOKEN, "--rate", "1000", "-q"]
        full = etl([*args, "--report", "full/results.csv"], tmp_path, state)
        assert full.returncode == 3, full.stderr
        line = one_line(full.stderr)
        assert "no room left" in line and "the journal says what was done" in line, line

        status = etl(["status", "--api-url", box.url], tmp_path, state)
        assert "exit 3" in status.stdout.splitlines()[-1], status.stdout  # the journal says how it ended

        again = etl([*args, "--report", "again/results.csv"], tmp_path, state)
        assert again.returncode == 0, again.stderr
        made = Counter(r["Description"] for r in box.store.records())
        assert sorted(made) == sorted(f"Meeting room {i}" for i in range(ROWS))
        assert set(made.values()) == {1}, "a row was posted twice"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full to write the log to")
def test_a_log_that_cannot_be_written_is_one_warning_and_the_import_goes_on(tmp_path):
    export = tmp_path / "nightly.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed,Description\n"
                      + "".join(f"{i % 7 + 1},1.5,Meeting room {i}\n" for i in range(30)))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "log.jsonl").symlink_to("/dev/full")
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        run = etl(["import", str(export), "--api-url", box.url, "--token", TOKEN, "--rate", "1000",
                   "--report", "out/results.csv"], tmp_path, tmp_path / "state")
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr and "Logging error" not in run.stderr, run.stderr[:2000]
        assert run.stderr.count("log.jsonl can't be written") == 1, run.stderr
        assert len(box.store.records()) == 30


@pytest.mark.skipif(sys.platform == "win32", reason="a link needs privileges on Windows")
def test_a_report_that_leads_nowhere_is_refused_before_anything_is_sent(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.csv").symlink_to(tmp_path / "no-such-folder" / "results.csv")
    export = tmp_path / "nightly.csv"
    export.write_text("CoworkerBookingCreditId,CreditUsed,Description\n1,1.5,Meeting room\n")
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        run = etl(["import", str(export), "--api-url", box.url, "--token", TOKEN,
                   "--report", "out/results.csv"], tmp_path, tmp_path / "state")
        assert run.returncode == 2, run.stderr
        assert "whose folder does not exist" in one_line(run.stderr)
        assert box.store.records() == []
