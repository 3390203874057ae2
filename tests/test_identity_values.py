"""A row is its credit use, not its spelling: re-exports, a spreadsheet's re-save, a corrected
row under --key and a journal of the release before never post a credit use a second time."""

from __future__ import annotations

import json
import shutil
import sqlite3
import unicodedata
from pathlib import Path

import pytest

from etl.ledger.entries import normalise_url
from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, PASSWORD, TOKEN, USER, journal_of

DATA = Path(__file__).parent / "data" / "journals"
HEADER = "Date,CoworkerBookingCreditId,CreditUsed,Description,BookingId,Notes"


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), username=USER, password=PASSWORD) as box:
        yield box


@pytest.fixture
def post(etl, sandbox):
    def run(*args):
        return etl("import", *args, "--api-url", sandbox.url, "--rate", "1000", "--token", TOKEN,
                   env=NO_ENV)
    return run


def outcomes(run) -> list[str]:
    return [r["outcome"] for r in run.report()]


def night(tmp_path: Path, name: str, rows: list[str], newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(newline.join([HEADER, *rows, ""]).encode("utf-8"))
    return path


CAFE = "Caf\u00e9"
NIGHT_1 = ["2026-11-24,101,1.50,Coffee,7004,",
           "2026-11-24,101,1.50,Coffee,7004,",  # the same use twice that day: two credit uses
           "2026-11-24,102,0.5,Tea,,",
           "2026-11-24,103,1e0,Day pass,7005,",
           f"2026-11-24,104,2,{CAFE},,",
           '2026-11-24,105,3,"Lunch\r\nroom",,"late\r\nbooking"']


def test_a_re_export_that_spells_the_same_values_otherwise_posts_nothing(post, sandbox, tmp_path):
    first = night(tmp_path, "night-1.csv", NIGHT_1, newline="\r\n")
    assert outcomes(post(first)) == ["created"] * 6
    nfd = unicodedata.normalize("NFD", CAFE)
    resaved = night(tmp_path, "night-2.csv", [
        "2026-11-24,101,1.5,Coffee,7004.0,",
        "2026-11-24,101,1.5,Coffee,7004.0,",
        "2026-11-24,102,.5,Tea,,",
        "2026-11-24,103,1,Day pass,7005.0,",
        f"2026-11-24,104,2.00,{nfd},,",
        '2026-11-24,105,3,"Lunch\nroom",,"late\nbooking"'])
    run = post(resaved)
    assert run.code == 0, run.err
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["skipped"] * 6
    assert sandbox.stats.posts == 6
    assert all(r["errors"].endswith("): the same values in every cell") for r in rows)
    assert f"already created from {first} row 2 on " in rows[0]["errors"]
    assert "other cells differ" not in run.err
    assert "6 rows were skipped: the same values in every cell as rows created earlier from other " \
           "files, however spelt (1.50 is 1.5" in run.err
    assert run.summary()["notes"]["skipped_identical_from_other_files"] == 6
    # what is sent stays as read: the decomposed text was never sent, the first spelling was
    assert {r["Description"] for r in sandbox.store.records()} >= {CAFE, "Lunch\r\nroom"}


def test_a_changed_value_is_a_new_credit_use_and_a_third_copy_a_new_occurrence(post, sandbox, tmp_path):
    post(night(tmp_path, "night-1.csv", NIGHT_1[:2]))
    run = post(night(tmp_path, "night-2.csv", ["2026-11-24,101,1.5,Coffee,7004.0,",
                                               "2026-11-24,101,1.5,Coffee,7004.0,",
                                               "2026-11-24,101,1.5,Coffee,7004.0,",
                                               "2026-11-24,101,1.51,Coffee,7004,"]))
    assert outcomes(run) == ["skipped", "skipped", "created", "created"]
    assert sandbox.stats.posts == 4


def test_an_optional_column_empty_on_every_row_tonight_does_not_stop_the_night(post, sandbox, tmp_path):
    post(night(tmp_path, "night-1.csv", ["2026-11-24,101,1,Desk,7004,", "2026-11-24,102,1,Desk,7005,"]))
    # tonight nobody booked: BookingId is in the export, empty on every row; the same payloads recur
    run = post(night(tmp_path, "night-2.csv", ["2026-11-25,101,1,Desk,,", "2026-11-25,102,1,Desk,,"]))
    assert run.code == 0, run.err
    assert outcomes(run) == ["created", "created"]
    assert "another way of identifying rows" not in run.err
    assert outcomes(post(tmp_path / "night-2.csv")) == ["skipped", "skipped"]
    assert sandbox.stats.posts == 4


def test_a_column_the_export_dropped_still_stops_the_run(post, sandbox, tmp_path):
    post(night(tmp_path, "night-1.csv", ["2026-11-24,101,1,Desk,,"]))
    thinner = tmp_path / "night-2.csv"
    thinner.write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,Desk\n")
    run = post(thinner)
    assert run.code == 2
    assert "another way of identifying rows" in run.err
    assert sandbox.stats.posts == 1


def test_an_export_spelling_its_columns_by_their_aliases_says_so_and_posts_nothing(post, sandbox, tmp_path):
    """The export of the same rows under `CreditId` and `Amount` (the schema's aliases of
    CoworkerBookingCreditId and CreditUsed): a row is known by its columns' names as spelt, so
    the run stops before posting, naming the columns spelt otherwise and the way on (it named
    --key and --ignore-column, neither of which applies, and --allow-new-identity, which posts
    every row again)."""
    first = tmp_path / "night-1.csv"
    first.write_text("CoworkerBookingCreditId,CreditUsed,Description\n101,1,Desk\n102,2,Room\n")
    assert post(first).code == 0
    again = tmp_path / "night-2.csv"
    again.write_text("CreditId,Amount,Description\n101,1,Desk\n102,2,Room\n103,3,Hall\n")
    run = post(again)
    assert run.code == 2
    assert "amount, once creditused; creditid, once coworkerbookingcreditid" in run.err
    assert "rename the header back" in run.err and "Nothing was posted" in run.err
    mapped = tmp_path / "night-3.csv"  # the same, named through --map
    mapped.write_text("Credit Ref,Credits,Description\n101,1,Desk\n102,2,Room\n")
    run = post(mapped, "--map", "Credit Ref=CoworkerBookingCreditId", "--map", "Credits=CreditUsed")
    assert run.code == 2
    assert "creditref, once coworkerbookingcreditid; credits, once creditused" in run.err
    assert sandbox.stats.posts == 2


def test_a_corrected_row_under_its_key_is_skipped_and_reported_as_changed(post, sandbox, tmp_path):
    path = tmp_path / "uses.csv"
    path.write_text("Ref,CoworkerBookingCreditId,CreditUsed,Description\nU1,101,1,Desk\nU2,102,2,Room\n")
    assert outcomes(post(path, "--key", "Ref")) == ["created", "created"]
    fixed = tmp_path / "uses-fixed.csv"
    fixed.write_text("Ref,CoworkerBookingCreditId,CreditUsed,Description\nU1,101,5,Desk\n"
                     "U2,102,2.0,Room\n")
    run = post(fixed, "--key", "Ref")
    assert run.code == 0, run.err
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["skipped", "skipped"]
    assert rows[0]["errors"].startswith("changed under the same --key: CreditUsed was 1, now 5 (not sent")
    assert "changed" not in rows[1]["errors"] and "spelt differently" not in rows[1]["errors"]
    assert "1 rows were skipped although their values differ from what was sent for their --key" in run.err
    assert "identical in every cell" not in run.err
    notes = run.summary()["notes"]
    assert notes["skipped_changed_under_key"] == 1 and notes["skipped_same_key_from_other_files"] == 1
    assert sandbox.stats.posts == 2
    assert [r["CreditUsed"] for r in sandbox.store.records()] == [1, 2]


@pytest.fixture
def previous_journal(sandbox, state_home):
    """The journal the release before this one wrote importing previous_release.csv (made with
    that release's own code against `etl sandbox`), moved to this sandbox's address."""
    path = Path(journal_of(sandbox.url))
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "previous_release.sqlite3", path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'target'", (normalise_url(sandbox.url),))
    db.close()
    return path


def test_a_journal_of_the_previous_release_and_the_same_file_post_nothing(post, sandbox, tmp_path,
                                                                         previous_journal):
    path = tmp_path / "night-1.csv"
    shutil.copy(DATA / "previous_release.csv", path)
    run = post(path)
    assert run.code == 0, run.err
    rows = run.report()
    assert [r["outcome"] for r in rows] == ["skipped"] * 4
    assert [r["id"] for r in rows] == ["87654321", "87654322", "87654323", "87654324"]
    assert sandbox.stats.posts == 0
    with sqlite3.connect(previous_journal) as db:
        migrated = db.execute("SELECT count(*) FROM rows WHERE occurrence IS NOT NULL").fetchone()[0]
    db.close()
    assert migrated == 4
    again = post(path)  # the journal now holds today's identities
    assert outcomes(again) == ["skipped"] * 4 and sandbox.stats.posts == 0
    respelt = tmp_path / "night-1-resaved.csv"
    respelt.write_bytes(path.read_bytes().replace(b"1.50", b"1.5").replace(b"1e0", b"1"))
    assert outcomes(post(respelt)) == ["skipped"] * 4
    assert sandbox.stats.posts == 0


def test_ignore_column_given_on_a_later_night_re_identifies_the_rows_created(post, sandbox, tmp_path):
    def history(name: str, at: str, extra: int = 0) -> Path:
        path = tmp_path / name
        path.write_text("ExportedAt,CoworkerBookingCreditId,CreditUsed,Description\n"
                        + "".join(f"{at},{100 + i},{i + 1},use {i}\n" for i in range(3 + extra)))
        return path

    assert outcomes(post(history("n1.csv", "2026-11-24T01:00"))) == ["created"] * 3
    forgot = post(history("n2.csv", "2026-11-25T01:00", extra=1))  # the option not given yet
    assert forgot.code == 2 and sandbox.stats.posts == 3
    assert f"this run re-exports credit uses already created: 3 of the 3 rows created from {tmp_path}" \
        in forgot.err
    assert 'differing only in column "ExportedAt"' in forgot.err
    assert "rerun with --ignore-column ExportedAt" in forgot.err
    run = post(history("n2.csv", "2026-11-25T01:00", extra=1), "--ignore-column", "ExportedAt")
    assert run.code == 0, run.err
    assert outcomes(run) == ["skipped", "skipped", "skipped", "created"]
    assert "3 rows created earlier under another choice of columns are the same credit uses" in run.err
    assert sandbox.stats.posts == 4
    forgot = post(history("n3.csv", "2026-11-26T01:00", extra=1))  # cron without the option
    assert forgot.code == 2 and "--ignore-column" in forgot.err
    assert sandbox.stats.posts == 4
    again = post(history("n3.csv", "2026-11-26T01:00", extra=1), "--ignore-column", "ExportedAt")
    assert outcomes(again) == ["skipped"] * 4
    assert sandbox.stats.posts == 4
    # a night the quota stops before them: the rows it never reaches are still the ones created
    # (their keys were made again after they took today's identity)
    later = tmp_path / "n4.csv"
    text = history("n4.csv", "2026-11-27T01:00", extra=1).read_text()
    head, rest = text.split("\n", 1)
    later.write_text(f"{head}\n2026-11-27T01:00,200,1,new a\n2026-11-27T01:00,201,2,new b\n{rest}")
    stopped = post(later, "--ignore-column", "ExportedAt", "--daily-limit", "5", "--no-check-credits")
    assert stopped.code == 4, stopped.err
    assert outcomes(stopped) == ["created", "not_attempted"] + ["skipped"] * 4
    assert [r["id"] for r in stopped.report()[2:]] == [r["id"] for r in run.report()]
    assert sandbox.stats.posts == 5


def test_a_re_export_of_identical_rows_stops_before_the_first_post(post, sandbox, tmp_path):
    """Four copies of one credit use come back as four rows of the earlier file, not one: the
    re-export is 10 of 10 rows and stops (before, 7 of 10 counted: under 90 %, the whole export
    was posted a second time)."""
    def export(name: str, at: str) -> Path:
        path = tmp_path / name
        path.write_text("CoworkerBookingCreditId,CreditUsed,Description,BookingId,ExportedAt\n"
                        + f"1201,1,Hot desk day pass,,{at}\n" * 4
                        + "".join(f"120{i},2,Meeting room,88000{i},{at}\n" for i in range(1, 7)))
        return path

    assert outcomes(post(export("n1.csv", "2026-11-24T01:00"))) == ["created"] * 10
    again = post(export("n2.csv", "2026-11-25T01:00"))
    assert again.code == 2, again.err
    assert "10 of the 10 rows created from" in again.err and "--ignore-column ExportedAt" in again.err
    assert sandbox.stats.posts == 10
    run = post(export("n2.csv", "2026-11-25T01:00"), "--ignore-column", "ExportedAt")
    assert outcomes(run) == ["skipped"] * 10 and sandbox.stats.posts == 10


def test_a_column_dropped_from_the_export_does_not_re_identify_rows(post, sandbox, tmp_path):
    """Two uses told apart only by their date: without that column they are no earlier row."""
    post(night(tmp_path, "night-1.csv", ["2026-11-24,101,1,Desk,,"]))
    thinner = tmp_path / "night-2.csv"
    thinner.write_text("CoworkerBookingCreditId,CreditUsed,Description,BookingId,Notes\n101,1,Desk,,\n")
    run = post(thinner)
    assert run.code == 2 and "another way of identifying rows" in run.err
    assert outcomes(post(thinner, "--allow-new-identity")) == ["created"]
    assert sandbox.stats.posts == 2


def test_a_re_export_stamped_row_by_row_stops_before_the_first_post(post, sandbox, tmp_path):
    rows = [f"{101 + i},{i + 1},use {i}" for i in range(5)]
    first = tmp_path / "uses.csv"
    first.write_text("Stamp,CoworkerBookingCreditId,CreditUsed,Description\n"
                     + "".join(f"2026-11-24T01:00:0{i},{r}\n" for i, r in enumerate(rows)))
    post(first)
    again = tmp_path / "uses-again.csv"
    again.write_text("Stamp,CoworkerBookingCreditId,CreditUsed,Description\n"
                     + "".join(f"2026-11-25T01:00:0{i},{r}\n" for i, r in enumerate(rows)))
    run = post(again)
    assert run.code == 2 and "--ignore-column Stamp" in run.err
    assert sandbox.stats.posts == 5
    keyed = post(again, "--key", "Stamp")  # the column is the key: they are other credit uses
    assert keyed.code == 2 and "re-exports" not in keyed.err  # but the key changed: that stop
    assert outcomes(post(again, "--allow-new-identity")) == ["created"] * 5


def test_a_nightly_file_whose_regular_uses_recur_is_not_stopped(post, sandbox, tmp_path):
    regular = ["101,1,Desk,,", "102,1,Desk,,", "103,2,Room,,"]
    post(night(tmp_path, "night-1.csv", [f"2026-11-24,{r}" for r in regular] + ["2026-11-24,104,7,Event,,"]))
    run = post(night(tmp_path, "night-2.csv", [f"2026-11-25,{r}" for r in regular]))
    assert run.code == 0, run.err
    assert outcomes(run) == ["created"] * 3
    assert sandbox.stats.posts == 7


@pytest.mark.parametrize("system_id", [True, False])
def test_a_second_journal_looks_before_it_posts_and_stops(etl, sandbox, tmp_path, monkeypatch, state_home,
                                                          system_id):
    """The first night by hand, then cron under another HOME: the second journal knows none of
    the rows, and a sample of them (first, last, spread between) is found on the server."""
    flags = [] if system_id else ["--no-system-id"]

    def run(path, url=sandbox.url, *extra):
        return etl("import", path, "--api-url", url, "--token", TOKEN, "--rate", "1000", *flags, *extra,
                   env=NO_ENV)

    rows = [f"2026-11-24,{101 + i},{i + 1},use {i},," for i in range(40)]
    night1 = night(tmp_path, "night-1.csv", rows)
    assert outcomes(run(night1)) == ["created"] * 40
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "cron-home"))
    later = night(tmp_path, "night-1-and-2.csv", rows[35:] + [f"2026-11-25,{201 + i},1,new {i},,"
                                                               for i in range(30)])
    for url in (sandbox.url, sandbox.url.replace("127.0.0.1", "localhost")):
        second = run(later, url)
        assert second.code == 2, second.err
        assert f"{later} row 2 was already posted to" in second.err and "Nothing was posted" in second.err
        assert ("carries its import key" if system_id
                else "has its exact values and was not made by this journal") in second.err
    assert sandbox.stats.posts == 40


@pytest.mark.parametrize("system_id", [True, False])
def test_a_journals_own_records_do_not_stop_a_nightly_file_that_resembles_last_night(
        etl, sandbox, tmp_path, system_id):
    flags = [] if system_id else ["--no-system-id"]

    def run(path):
        return etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000", *flags,
                   env=NO_ENV)

    regular = ["101,1,Desk,,", "102,1,Desk,,"]
    first = run(night(tmp_path, "night-1.csv", [f"2026-11-24,{r}" for r in regular]))
    assert outcomes(first) == ["created"] * 2
    tonight = run(night(tmp_path, "night-2.csv", [f"2026-11-25,{r}" for r in regular]))
    assert tonight.code == 0, tonight.err
    assert outcomes(tonight) == ["created"] * 2
    assert sandbox.stats.posts == 4


def test_a_journal_of_localhost_is_the_journal_of_127_0_0_1(etl, sandbox, tmp_path):
    path = night(tmp_path, "night-1.csv", ["2026-11-24,101,1,Desk,,"])
    etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000", env=NO_ENV)
    other = etl("import", path, "--api-url", sandbox.url.replace("127.0.0.1", "localhost"), "--token", TOKEN,
                "--rate", "1000", env=NO_ENV)
    assert other.code == 0, other.err  # the same journal: its row is skipped
    assert [r["outcome"] for r in other.report()] == ["skipped"]
    v6 = etl("import", path, "--api-url", sandbox.url.replace("127.0.0.1", "[::1]"), "--token", TOKEN,
             "--rate", "1000", env=NO_ENV)
    assert f"the journal {journal_of(sandbox.url)} records" not in v6.err  # the same journal again
    assert sandbox.stats.posts == 1


@pytest.mark.parametrize("system_id", [True, False])
def test_two_journals_one_after_the_other_stopped_midway_post_every_row_once(
        etl, sandbox, tmp_path, monkeypatch, state_home, system_id):
    flags = [] if system_id else ["--no-system-id"]
    homes = [state_home, tmp_path / "laptop-2"]

    def run(home, path):
        monkeypatch.setenv("XDG_STATE_HOME", str(home))
        return etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000", *flags,
                   env=NO_ENV)

    path = night(tmp_path, "night-1.csv", [f"2026-11-24,{101 + i},1,use {i},," for i in range(30)])
    sandbox.faults.daily_limit = 7  # the first journal's run stops part way (exit 4)
    assert run(homes[0], path).code == 4
    sandbox.faults.daily_limit = 0
    other = run(homes[1], path)  # the second laptop, its own journal
    assert other.code == 2 and "was already posted to" in other.err
    assert len(sandbox.store.records()) == 7
    done = run(homes[0], path)
    assert done.code == 0, done.err
    assert outcomes(done).count("skipped") == 7
    records = sandbox.store.records()
    assert sorted(r["Description"] for r in records) == sorted(f"use {i}" for i in range(30))
    assert run(homes[1], path).code == 2  # the second journal still knows none of them
    assert len(sandbox.store.records()) == 30


def test_a_journal_killed_before_its_run_closed_is_known_to_the_next_journal(etl, sandbox, tmp_path,
                                                                            state_home):
    import os
    import subprocess
    import sys
    import time

    path = night(tmp_path, "night-1.csv", [f"2026-11-24,{101 + i},1,use {i},," for i in range(20)])
    sandbox.faults.latency = 0.1
    proc = subprocess.Popen([sys.executable, "-m", "etl", "import", str(path), "--api-url", sandbox.url,
                             "--rate", "1000", "-q", "--no-check-credits"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NEXUDUS_TOKEN": TOKEN})
    deadline = time.monotonic() + 30
    while len(sandbox.store.records()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()  # SIGKILL: the run never closes its journal
    proc.wait()
    sandbox.faults.latency = 0.0
    # a request under way when it was killed is still answered (and counted) by the sandbox's
    # own thread, up to its latency later: the count is taken once it stands still
    posts, still = sandbox.stats.posts, time.monotonic()
    while time.monotonic() - still < 0.5:
        time.sleep(0.05)
        if sandbox.stats.posts != posts:
            posts, still = sandbox.stats.posts, time.monotonic()
    other = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                "--journal", str(tmp_path / "other.sqlite3"), env=NO_ENV)
    assert other.code == 2
    assert f"the journal {journal_of(sandbox.url)} records " in other.err
    assert sandbox.stats.posts == posts


def test_a_new_journal_after_the_upgrade_stops_on_the_previous_releases_records(post, sandbox, tmp_path):
    """The release before this one posted previous_release.csv with import keys made from its own
    identities; a new journal (another state folder) after the upgrade finds those records by
    their values: another import's key is no proof that a record is another row's."""
    with sqlite3.connect(DATA / "previous_release.sqlite3") as db:
        sent = [json.loads(p) for (p,) in db.execute(
            "SELECT payload FROM rows WHERE state = 'created' ORDER BY record_id")]
    db.close()
    assert all(str(body.get("SystemId", "")).startswith("etl-") for body in sent)
    for body in sent:
        sandbox.store.create(body)
    path = tmp_path / "night-1.csv"
    shutil.copy(DATA / "previous_release.csv", path)
    run = post(path)
    assert run.code == 2 and "was already posted to" in run.err, run.err
    assert sandbox.stats.posts == 0 and len(sandbox.store.records()) == len(sent)


@pytest.mark.parametrize("system_id", ["etl-3f9c0a1b2d4e5f60", None])
def test_a_new_journal_stops_on_the_rows_another_journals_killed_run_made_early_in_the_file(
        post, sandbox, tmp_path, system_id):
    """Another journal's first run was killed after creating rows 3, 4 and 7 of a file (its POST
    of row 2 had failed): none of them is the file's first or last row, nor on the spread of a
    sample; a run sends rows in file order, so a new journal looks at the first rows to send."""
    rows = [f"{500 + i},1,use {i}" for i in range(100)]  # no two rows alike
    for i in (1, 2, 5):  # spreadsheet rows 3, 4 and 7
        credit, amount, text = rows[i].split(",")
        sandbox.store.create({"CoworkerBookingCreditId": int(credit), "CreditUsed": amount,
                              "Description": text, "SystemId": system_id})
    path = tmp_path / "history.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Description\n" + "".join(f"{r}\n" for r in rows))
    run = post(path, "--no-check-credits")
    assert run.code == 2 and "was already posted to" in run.err, run.err
    assert sandbox.stats.posts == 0 and len(sandbox.store.records()) == 3


def test_a_new_journal_whose_look_fails_stops_before_posting(post, sandbox, tmp_path):
    """The look for rows another journal posted could not be made (the list came back without
    Records): "no record" was not seen, so nothing is posted; a rerun looks again."""
    path = night(tmp_path, "night-1.csv", [f"2026-11-24,{101 + i},1,use {i},," for i in range(3)])
    sandbox.script_list("list_no_records")
    run = post(path, "--no-check-credits")
    assert run.code == 3, (run.out, run.err)
    errors = [line for line in run.err.splitlines() if not line.startswith("etl: warning")]
    assert len(errors) == 1, errors
    assert "nothing was posted" in errors[0] and "A rerun looks again" in errors[0]
    assert "Traceback" not in run.err
    assert sandbox.stats.posts == 0
    again = post(path, "--no-check-credits")
    assert again.code == 0 and outcomes(again) == ["created"] * 3
    assert sandbox.stats.posts == 3


def test_a_new_journal_stops_on_a_record_that_may_be_a_row_as_the_target_stores_it(
        etl, tmp_path, monkeypatch):
    """The account forgets SystemId and cuts descriptions: another journal's record of a row
    ("Meetin" for "Meeting room A") can't be compared exactly by a journal that has not seen
    how this target stores texts. That is never taken as "not posted": the run stops."""
    faults = Faults(retry_after=0, system_id="drop", description_max=6)
    with Sandbox(faults=faults, tokens=(TOKEN,)) as box:
        path = night(tmp_path, "night-1.csv", ["2026-11-24,101,1.5,Meeting room A,,",
                                               "2026-11-24,102,2,Meeting room B,,"])

        def run():
            return etl("import", path, "--api-url", box.url, "--token", TOKEN, "--rate", "1000",
                       env=NO_ENV)

        assert outcomes(run()) == ["created"] * 2
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "cron-home"))  # another journal
        second = run()
        assert second.code == 2, second.err
        assert f"{path} row 2 may already have been posted to" in second.err
        assert "Description may be stored otherwise by the API" in second.err
        assert "Nothing was posted" in second.err and "--allow-new-identity" in second.err
        assert box.stats.posts == 2 and len(box.store.records()) == 2


def test_identical_rows_keep_their_records_from_night_to_night(post, sandbox, tmp_path):
    """Two copies of one credit use: the first created on a night, the second left in doubt on
    the next. The night after, the first copy is still the one created (skipped, its Id), and the
    second is the one still owed (checked, sent, created): a copy never reads `created` on two
    nights with two Ids while the other reads `skipped` (found by a fault run: 20 such lines in
    3,000). A rerun of the same file numbers its copies as the first night did."""
    path = night(tmp_path, "history.csv", ["2026-11-24,101,1.50,Coffee,7004,"] * 2)
    first = post(path, "--daily-limit", "1")
    assert outcomes(first) == ["created", "not_attempted"]
    record = first.report()[0]["id"]
    sandbox.faults.error = 1.0  # the second copy's POST: a 500, nothing created
    second = post(path, "--timeout", "0.2", "--settle-wait", "0")
    assert outcomes(second) == ["skipped", "in_doubt"]
    assert second.report()[0]["id"] == record
    sandbox.faults.error = 0.0
    third = post(path, "--timeout", "0.2")
    lines = third.report()
    assert [r["outcome"] for r in lines] == ["skipped", "created"], lines
    assert lines[0]["id"] == record and "row 2 " in lines[0]["errors"]
    assert len(sandbox.store.records()) == 2 and lines[1]["id"] != record
    assert [r["outcome"] for r in post(path).report()] == ["skipped", "skipped"]


def test_a_copy_taken_out_of_the_file_is_not_sent_for_the_one_left(post, sandbox, tmp_path):
    """Two copies, the first created and the second left in doubt; the export is then corrected
    to hold one copy. The one copy left takes the record created: the target holds one record,
    as the file now says (it took the copy in doubt before, and sent it: a second record)."""
    path = night(tmp_path, "history.csv", ["2026-11-24,101,1.50,Coffee,7004,"] * 2)
    first = post(path, "--daily-limit", "1")
    record = first.report()[0]["id"]
    sandbox.faults.error = 1.0
    assert outcomes(post(path, "--timeout", "0.2", "--settle-wait", "0")) == ["skipped", "in_doubt"]
    sandbox.faults.error = 0.0
    night(tmp_path, "history.csv", ["2026-11-24,101,1.50,Coffee,7004,"])
    lines = post(path, "--timeout", "0.2").report()
    assert [(r["outcome"], r["id"]) for r in lines] == [("skipped", record)], lines
    assert len(sandbox.store.records()) == 1
