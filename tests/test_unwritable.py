"""A report folder or a state folder that can't be written: one line and exit 2, before anything
is read or sent (a cron job's user, a mistyped path). A regular file where a folder should be
stands in for a folder this user can't write, so the tests hold whoever runs them."""

from __future__ import annotations

from tests.conftest import SAMPLES


def one_line(run) -> str:
    assert "Traceback" not in run.err, run.err
    lines = [line for line in run.err.splitlines() if line.startswith("etl: error:")]
    assert len(lines) == 1, run.err
    return lines[0]


def test_a_report_folder_that_cannot_be_made(etl, tmp_path):
    (tmp_path / "not-a-folder").write_text("a file")
    for command in ("validate", "import"):
        extra = ["--sandbox"] if command == "import" else []
        run = etl(command, SAMPLES / "credit_uses.csv", *extra, "--report", "not-a-folder/results.csv")
        assert run.code == 2, run.err
        assert "can't write the run's folder" in one_line(run) and "choose another --report" in run.err


def test_a_state_folder_that_cannot_be_written(etl, tmp_path):
    (tmp_path / "state-file").write_text("a file")
    for api in (["--sandbox"], ["--api-url", "http://127.0.0.1:9/", "--token", "made-up-token"]):
        run = etl("import", SAMPLES / "credit_uses.csv", *api, "--report", "out/results.csv",
                  env={"XDG_STATE_HOME": str(tmp_path / "state-file"), "NEXUDUS_TOKEN": None})
        assert run.code == 2, run.err
        line = one_line(run)
        assert "can't write the journal's folder" in line and "XDG_STATE_HOME" in line, line
