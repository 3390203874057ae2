"""Options from the command line, ETL_* variables, a --config file and defaults, in that order."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import SAMPLES

CLEAN = {"ETL_REPORT": None, "ETL_CONFIG": None, "ETL_DECIMAL": None, "ETL_QUIET": None,
         "ETL_JSON": None, "ETL_MAP": None, "NEXUDUS_TOKEN": None}


def test_flag_beats_environment_beats_config_beats_default(etl, tmp_path):
    (tmp_path / "etl.toml").write_text('report = "from-config.csv"\n')
    sample = SAMPLES / "credit_uses.csv"

    default = etl("validate", sample, env=CLEAN)
    assert default.report_path().parent.parent.name == "logs"
    from_config = etl("validate", sample, "--config", "etl.toml", env=CLEAN)
    assert from_config.report_path() == tmp_path / "from-config.csv"
    from_env = etl("validate", sample, "--config", "etl.toml", env={**CLEAN, "ETL_REPORT": "from-env.csv"})
    assert from_env.report_path() == tmp_path / "from-env.csv"
    from_flag = etl("validate", sample, "--config", "etl.toml", "--report", "from-flag.csv",
                    env={**CLEAN, "ETL_REPORT": "from-env.csv"})
    assert from_flag.report_path() == tmp_path / "from-flag.csv"
    assert all(r.code == 0 for r in (default, from_config, from_env, from_flag))


def test_config_from_environment_with_command_tables_and_a_table_of_renames(etl, tmp_path):
    (tmp_path / "export.csv").write_text("CreditId;Credits\n1203;2,5\n1204;0,75\n", encoding="utf-8")
    (tmp_path / "nightly.toml").write_text(
        "# keys are long option names; [validate] applies to etl validate only\n"
        'decimal = "."\n'
        "rate = 1            # an option of etl import: ignored by validate\n"
        "daily_limit = 5000  # underscores work too\n"
        "[validate]\n"
        'decimal = ","\n'
        'map = { Credits = "CreditUsed" }\n'
        "[import]\n"
        'decimal = "."\n'
    )
    run = etl("validate", "export.csv", env={**CLEAN, "ETL_CONFIG": "nightly.toml"})
    assert run.code == 0, run.err
    assert run.out.startswith("2 rows: 2 valid.")


def test_boolean_and_repeatable_options_from_the_environment(etl, tmp_path):
    (tmp_path / "export.csv").write_text("CreditId,Credits\n1203,2.5\n", encoding="utf-8")
    run = etl("validate", "export.csv", env={**CLEAN, "ETL_JSON": "1", "ETL_QUIET": "true",
                                              "ETL_MAP": "Credits=CreditUsed"})
    assert run.code == 0, run.err
    assert json.loads(run.out)["counts"]["valid"] == 1
    assert run.err == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("daily-limt = 5000\n", "--config etl.toml: 'daily-limt' is not an option of etl"),
        ("rate = \n", "--config etl.toml: not valid TOML"),
        ('decimal = ";"\n', "Invalid value for decimal in --config etl.toml"),
    ],
)
def test_a_bad_config_file_is_a_usage_error_naming_the_file(etl, tmp_path, content, message):
    (tmp_path / "etl.toml").write_text(content)
    run = etl("validate", SAMPLES / "credit_uses.csv", "--config", "etl.toml", env=CLEAN)
    assert run.code == 2
    assert message in run.err
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


@pytest.mark.parametrize(("content", "message"), [
    (b"daily-limit = true\n", "--config etl.toml: daily-limit = true is not a value of --daily-limit"),
    (b"daily-limit = 5.5\n", "for daily-limit in --config etl.toml: '5.5' is not a valid integer"),
    (b"max-retries = 0.9\n", "for max-retries in --config etl.toml: '0.9' is not a valid integer"),
    (b"rate = nan\n", "Invalid value for rate in --config etl.toml: 'nan' is not a finite number"),
    (b'delimiter = "\xff"\n', "--config etl.toml: not valid TOML: not UTF-8 (byte 0xff at offset 13)"),
])
def test_config_values_are_checked_as_the_flags_are(etl, tmp_path, content, message):
    """A config value is the flag's text: `true` or 5.5 is no whole number, nan no rate (before:
    true was 1, 5.5 was 5, 0.9 was 0 retries, nan paced nothing); a file that is not UTF-8 is
    named (before: a traceback)."""
    (tmp_path / "etl.toml").write_bytes(content)
    run = etl("import", SAMPLES / "credit_uses.csv", "--dry-run", "--config", "etl.toml", "--json", env=CLEAN)
    assert run.code == 2 and "Traceback" not in run.err, run.err
    assert message in run.err
    assert json.loads(run.out)["exit_code"] == 2


def test_a_missing_config_file(etl):
    run = etl("validate", SAMPLES / "credit_uses.csv", "--config", "nope.toml", env=CLEAN)
    assert run.code == 2 and "nope.toml" in run.err


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_secret_is_refused_from_a_config_file_others_can_read(etl, tmp_path):
    secret = "tok-4f1d9c-never-printed"
    path = tmp_path / "nightly.toml"
    path.write_text(f'token = "{secret}"\n')
    path.chmod(0o644)
    run = etl("import", SAMPLES / "credit_uses.csv", "--dry-run", "--config", path, env=CLEAN)
    assert run.code == 2
    assert "holds the token but others can read the file" in run.err and "chmod 600" in run.err
    assert secret not in run.err + run.out

    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    run = etl("import", SAMPLES / "credit_uses.csv", "--dry-run", "--config", path, env=CLEAN)
    assert run.code == 0, run.err
    assert secret not in run.err + run.out


def test_json_prints_what_summary_json_holds_and_nothing_else(etl):
    run = etl("validate", SAMPLES / "credit_uses_with_errors.csv", "--json", env=CLEAN)
    assert run.code == 1
    printed = json.loads(run.out)
    report = run.cwd / printed["report"]
    assert printed == json.loads((report.parent / "summary.json").read_text())
    assert printed["counts"]["invalid"] == 6 and printed["exit_code"] == 1
    assert printed["errors_report"] == str(report.parent / "errors.csv").removeprefix(f"{run.cwd}/")
    assert "12 rows: 6 valid, 6 invalid." in run.err  # the human line moves to stderr


def test_a_flag_that_turns_something_off_is_set_by_true_in_a_config_file(etl, tmp_path):
    """`no-system-id = true` means the flag is given: no SystemId is sent (before: sent all the
    same); `quiet = true` in the same file still quiets the run."""
    import sqlite3

    (tmp_path / "etl.toml").write_text("no-system-id = true\nquiet = true\n")
    journal = tmp_path / "journal.sqlite3"
    run = etl("import", SAMPLES / "credit_uses.csv", "--sandbox", "--journal", journal,
              "--config", "etl.toml", env=CLEAN)
    assert run.code == 0, run.err
    assert run.err == "", run.err  # quiet: only the summary line, on stdout
    with sqlite3.connect(journal) as db:
        keys = {k for (k,) in db.execute("SELECT system_id FROM rows")}
    db.close()
    assert keys == {None}, keys


@pytest.mark.parametrize("value, sent", [("1", False), ("0", True)])
def test_a_flag_that_turns_something_off_is_set_by_its_environment_variable(etl, tmp_path, value, sent):
    """ETL_NO_SYSTEM_ID=1 means --no-system-id: no SystemId is sent (before: it was, and =0 turned
    it off)."""
    import sqlite3

    journal = tmp_path / "journal.sqlite3"
    run = etl("import", SAMPLES / "credit_uses.csv", "--sandbox", "--journal", journal, "-q",
              env={**CLEAN, "ETL_NO_SYSTEM_ID": value})
    assert run.code == 0, run.err
    with sqlite3.connect(journal) as db:
        keys = {k for (k,) in db.execute("SELECT system_id FROM rows")}
    db.close()
    assert (keys != {None}) is sent, keys


def test_a_bad_value_from_a_variable_or_a_config_file_names_where_it_was_given(etl, tmp_path):
    """The operator typed no --daily-limit: the message names the variable, or the key and the
    file (before: "Invalid value for '--daily-limit'", naming neither)."""
    config = tmp_path / "nightly.toml"
    config.write_text('daily-limit = "abc"\n')
    sample = str(SAMPLES / "credit_uses.csv")
    from_file = etl("import", sample, "--sandbox", "--config", config)
    assert from_file.code == 2 and f"Invalid value for daily-limit in --config {config}" in from_file.err
    from_env = etl("import", sample, "--sandbox", env={"ETL_DAILY_LIMIT": "abc"})
    assert from_env.code == 2
    assert "Invalid value for ETL_DAILY_LIMIT (in the environment, for --daily-limit)" in from_env.err
    typed = etl("import", sample, "--sandbox", "--daily-limit", "abc")
    assert "Invalid value for '--daily-limit'" in typed.err
