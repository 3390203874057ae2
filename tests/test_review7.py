"""Review of 825b6e8: a file reached through a link is kept in the journal by its real path."""

from __future__ import annotations

import os
import sqlite3

import pytest

from tests.test_import import NO_ENV, journal_of
from tests.test_resolve import api, sandbox  # noqa: F401 - the fixtures


def _linked(tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    day = exports / "2026-12-03.csv"
    day.write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,a\n", encoding="utf-8")
    nightly = tmp_path / "nightly"
    nightly.mkdir()
    latest = nightly / "latest.csv"
    latest.symlink_to(day)
    return day, latest


@pytest.mark.parametrize("shared", [False, True])
def test_resolve_by_the_links_bare_name_as_the_report_names_it(
        etl, sandbox, api, tmp_path, request, shared):  # noqa: F811 - the fixtures
    """The night imports nightly/latest.csv; `etl resolve latest.csv:2` (a file name alone,
    as the contract allows) finds the row in doubt, as it did before the journal kept real paths."""
    day, latest = _linked(tmp_path)
    journal = ("--journal", request.getfixturevalue("pg_url")) if shared else ()
    sandbox.script("gateway_timeout")
    run = etl("import", latest, *api, *journal, "--no-system-id", "--timeout", "0.3",
              "--settle-wait", "0", env=NO_ENV)
    report = run.report()
    assert [r["outcome"] for r in report] == ["in_doubt"]
    assert report[0]["source"].endswith("latest.csv")
    got = etl("resolve", "latest.csv:2", "--not-created", *api, *journal, env=NO_ENV)
    assert "no such row" not in got.err, got.err
    assert "may still be under way for" in got.err, got.err


def test_a_journal_kept_by_the_links_name_before_is_this_files_on_the_rerun(
        etl, sandbox, api, tmp_path):  # noqa: F811 - the fixtures
    """A journal written before rows were kept by their real path has the night's rows under
    the link's name (nightly/latest.csv): the same night rerun through the same link, with this
    release, says they were created from this very file, not 'from other files', and etl status
    still has nothing left to post."""
    day, latest = _linked(tmp_path)
    day.write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,a\n102,2,b\n", encoding="utf-8")
    first = etl("import", latest, *api, "--no-system-id", "--no-check-credits", env=NO_ENV)
    assert first.code == 0, first.output
    with sqlite3.connect(journal_of(sandbox.url)) as db:  # as the release before kept them
        db.execute("UPDATE rows SET source = ?", (os.path.abspath(latest),))
    again = etl("import", latest, *api, "--no-system-id", "--no-check-credits", env=NO_ENV)
    assert again.code == 0, again.output
    assert [r["outcome"] for r in again.report()] == ["skipped", "skipped"]
    assert "other files" not in again.err, again.err
    assert "skipped_identical_from_other_files" not in again.summary().get("notes", {})
    status = etl("status", "--api-url", sandbox.url)
    assert "Nothing left to post" in status.out, status.out
    assert len(sandbox.store.records()) == 2


@pytest.mark.parametrize("shared", [False, True])
def test_resolve_through_a_linked_folder_by_every_spelling(
        etl, sandbox, api, tmp_path, request, shared):  # noqa: F811 - the fixtures
    """exports/ reached through a linked folder (today/ -> exports/): the row in doubt is found by
    the link's path, the real path, a relative name and the file name alone, on a SQLite or a
    PostgreSQL journal."""
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "day.csv").write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,a\n",
                                     encoding="utf-8")
    (tmp_path / "today").symlink_to(exports, target_is_directory=True)
    journal = ("--journal", request.getfixturevalue("pg_url")) if shared else ()
    sandbox.script("gateway_timeout")
    run = etl("import", "today/day.csv", *api, *journal, "--no-system-id", "--timeout", "0.3",
              "--settle-wait", "0", env=NO_ENV)
    assert [r["outcome"] for r in run.report()] == ["in_doubt"]
    for name in (tmp_path / "today" / "day.csv", exports / "day.csv", "today/day.csv", "exports/day.csv",
                 "./today/../today/day.csv", "day.csv"):
        got = etl("resolve", f"{name}:2", "--not-created", *api, *journal, env=NO_ENV)
        assert "may still be under way for" in got.err, (name, got.err)
    status = etl("status", "--api-url", sandbox.url, *journal)
    assert str(exports / "day.csv") in status.out and "/today/" not in status.out, status.out
