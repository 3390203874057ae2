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


def test_an_export_piped_in_is_refused_with_what_to_do(tmp_path):
    import os
    import subprocess
    import sys

    if not os.path.exists("/dev/stdin"):
        return  # no /dev/stdin on this system: nothing to pipe into
    sample = (SAMPLES / "credit_uses.csv").read_bytes()
    piped = subprocess.run([sys.executable, "-m", "etl", "validate", "/dev/stdin", "--report", "out/r.csv"],
                           input=sample, cwd=tmp_path, capture_output=True, timeout=60)
    assert piped.returncode == 2
    assert b"is a pipe or a device, not a file" in piped.stderr and b"Traceback" not in piped.stderr


def test_an_errors_csv_named_through_a_linked_folder_is_not_overwritten(etl, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fixed = out / "errors.csv"
    fixed.write_text("CoworkerBookingCreditId,CreditUsed,errors\nabc,1.5,old reason\n", encoding="utf-8")
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    before = fixed.read_bytes()
    run = etl("validate", tmp_path / "link" / "errors.csv", "--report", "out/results.csv")
    assert run.code == 1, run.err
    assert fixed.read_bytes() == before, "the input errors.csv was overwritten"
    assert list(out.glob("errors-*.csv")), "the new errors.csv went elsewhere"
