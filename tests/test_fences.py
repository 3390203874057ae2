"""Record Ids as fences: where a target's Ids rise (checked at run time), a row's record lies
above the largest Id seen before its request left, whatever the clocks say; the storage rules
can be learnt without any 200, from the only new record inside a settled fence."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN, journal_of, write


def fact(url: str, key: str) -> str | None:
    with sqlite3.connect(journal_of(url)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (f"target:{key}",)).fetchone()
    return row[0] if row else None


#: a first night of six rows answered 200: five of them above their fences, enough to see Ids rise
FIRST = ["100,1,p", "100,2,q", "100,3,r", "100,4,s", "100,5,t", "100,6,u"]


def scenario_rows(credits: int) -> list[str]:
    """120 rows over CREDITS credits, a third of them identical to another row; descriptions
    that a 6-character cut makes alike."""
    rnd = random.Random(7)
    distinct = [f"{100 + i % credits},{[1, 2, 1.5][i % 3]},Meeting room {i}" for i in range(80)]
    copies = [distinct[rnd.randrange(1, 80)] for _ in range(40)]
    rest = distinct[1:] + copies
    rnd.shuffle(rest)
    return distinct[:1] + rest


@pytest.mark.parametrize("credits", [40, 1])
def test_every_post_504_then_created_no_systemid_cut_descriptions_local_times(etl, tmp_path, credits):
    """With 40 credits, a row alone in its credit teaches the rules; with one credit, every
    pairing of the settled rows with the records teaches the same rules."""
    faults = Faults(retry_after=0, gateway_timeout_late=1.0, late_delay=0.3, system_id="drop",
                    description_max=6, created_on_offset=-8)
    rows = scenario_rows(credits)
    with Sandbox(faults=faults, tokens=(TOKEN,)) as box:
        # paced so that records are made while the rows are still being sent (the API allows
        # one POST a second): Ids are seen to rise only from a credit's listing read twice
        # with records new in between; 120 POSTs in less than the 0.3 s a record takes would
        # show every listing empty until the last, and every row would stay in doubt
        run = etl("import", write(tmp_path, "a.csv", *rows), "--api-url", box.url, "--token", TOKEN,
                  "--rate", "100", "--concurrency", "4", "--timeout", "0.5", "--gateway-settle", "1",
                  "--max-errors", "1000", env=NO_ENV)
        records = box.store.records()
        assert box.stats.faults["gateway_timeout_late"] == len(rows)  # not one POST answered 200
        url = box.url
    assert "Traceback" not in run.err
    report = run.report()
    outcomes = Counter(r["outcome"] for r in report)
    # 0 duplicates, 0 lost: one record per row, of each credit and amount
    wanted = Counter(tuple(line.split(",")[:2]) for line in rows)
    made = Counter((str(r["CoworkerBookingCreditId"]), f"{r['CreditUsed']:g}") for r in records)
    assert made == wanted and len(records) == len(rows)
    ids = [r["id"] for r in report if r["outcome"] == "created"]
    assert len(ids) == len(set(ids))
    # at most 1 % of the rows left in doubt (the first row, sent before any Id was seen)
    assert outcomes["in_doubt"] <= len(rows) // 100, [r["errors"] for r in report if r["errors"]]
    assert outcomes["created"] + outcomes["in_doubt"] == len(rows)
    assert run.code == (1 if outcomes["in_doubt"] else 0)
    assert fact(url, "ids_rise") == "yes"
    cut = json.loads(fact(url, "storage"))["texts"]["Description"]["shapes"]
    assert cut and all(shape[2:] == [6, 6] for shape in cut)


@pytest.mark.parametrize("random_ids", [False, True])
def test_ids_are_checked_to_rise_before_they_are_used(etl, tmp_path, random_ids):
    faults = Faults(retry_after=0, ids_random=random_ids, seed=1)
    with Sandbox(faults=faults, tokens=(TOKEN,)) as box:
        box.script("ok", "error_after_create", "ok", "ok", "drop_after_create", "ok", "ok")
        run = etl("import", write(tmp_path, "a.csv", *[f"{100 + i},1,use {i}" for i in range(9)]),
                  "--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--no-system-id",
                  "--timeout", "0.3", env=NO_ENV)
        assert [r["outcome"] for r in run.report()] == ["created"] * 9, run.report()
        assert sorted(int(r["id"]) for r in run.report()) == sorted(r["Id"] for r in box.store.records())
        assert fact(box.url, "ids_rise") == ("no" if random_ids else "yes")


def test_no_read_is_made_for_a_fence_while_every_answer_is_clear(etl, tmp_path):
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        run = etl("import", write(tmp_path, "a.csv", *[f"{100 + i},1,use {i}" for i in range(6)]),
                  "--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--concurrency", "4",
                  env=NO_ENV)
        assert run.code == 0
        # the only lists are the new journal's looks for rows posted before under another journal
        # (one a sampled row: the first, the last and some between); no read for a fence
        assert box.stats.lists <= 6 and box.stats.reads <= 1
        looks = box.stats.lists
        assert etl("import", write(tmp_path, "c.csv", "300,1,y"), "--api-url", box.url, "--token", TOKEN,
                   "--rate", "1000", env=NO_ENV).code == 0
        assert box.stats.lists == looks + 1  # a file the journal does not know: one look, no fence read
        box.script("gateway_timeout")
        again = etl("import", write(tmp_path, "b.csv", "200,1,x"), "--api-url", box.url, "--token",
                    TOKEN, "--rate", "1000", "--timeout", "0.3", "--settle-wait", "0", env=NO_ENV)
        assert [r["outcome"] for r in again.report()] == ["in_doubt"]
        assert box.stats.lists > 1  # after the ambiguous answer: a fence, then the row's check


@pytest.mark.parametrize("theirs", ["Meeting room", "Meet"])
def test_a_record_someone_else_made_above_an_old_fence_is_never_taken_for_a_row(etl, tmp_path, theirs):
    """A row answered 504 (nothing made) keeps a lower fence from before its request; after the
    request settled, an admin makes a credit use with the row's values (or the row's text cut
    short, which would teach a cut): above the fence, but made after the row's window. The rerun
    neither claims it (the row would be lost) nor learns how the target stores texts from it,
    nor sends the row again: the row stays in doubt, naming that record."""
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        api = ["--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--no-system-id"]
        first = etl("import", write(tmp_path, "first.csv", *FIRST), *api, env=NO_ENV)
        assert first.code == 0 and fact(box.url, "ids_rise") == "yes"
        rules = fact(box.url, "storage")
        box.script("gateway_timeout")
        path = write(tmp_path, "a.csv", "101,1,Meeting room")
        run = etl("import", path, *api, "--timeout", "0.3", "--gateway-settle", "1.2", "--settle-wait", "0.5",
                  env=NO_ENV)
        assert [r["outcome"] for r in run.report()] == ["in_doubt"]
        time.sleep(0.8)  # the request has settled
        # the admin's record, made an hour later by the server's clock (the rerun is the next night)
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        foreign = box.store.create({"CoworkerBookingCreditId": 101, "CreditUsed": 1, "Description": theirs},
                                   created_on=later)
        rerun = etl("import", path, *api, env=NO_ENV)
        row = rerun.report()[0]
        assert row["outcome"] == "in_doubt" and str(foreign) in row["errors"], row
        assert rerun.code == 1 and "Traceback" not in rerun.err
        assert box.stats.posts == len(FIRST) + 1 and len(box.store.records()) == len(FIRST) + 1
        assert fact(box.url, "storage") == rules
        with sqlite3.connect(journal_of(box.url)) as db:
            assert db.execute("SELECT state, record_id FROM rows WHERE record_id = ? OR state = "
                              "'in_doubt'", (foreign,)).fetchall() == [("in_doubt", None)]


@pytest.mark.parametrize("dir_one", ["asc", "desc"])
def test_a_list_that_ignores_the_page_asked_for_still_gives_a_fresh_fence(etl, tmp_path, dir_one):
    """A read for a fence asks for both ends of the list sorted by Id. A server that answers
    page 1 whatever page was asked for (HasNextPage still true) shows its oldest record twice:
    the other end is then read sorted the other way, and the rows sent after the read are
    fenced by the newest record, someone else's. Before, the oldest record was taken for the
    newest: the journal's old fence was called fresh, so a record someone else had made before
    the read, above that fence, could be placed inside a row's window (where the server's clock
    can't place it) and taken for the row's record: a row never sent, reported created."""
    faults = Faults(retry_after=0, list_ignore_page=1.0, dir_one=dir_one)
    with Sandbox(faults=faults, tokens=(TOKEN,)) as box:
        api = ["--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--no-system-id"]
        first = etl("import", write(tmp_path, "first.csv", *FIRST), *api, env=NO_ENV)
        assert first.code == 0 and fact(box.url, "ids_rise") == "yes"
        for n in range(3):  # credit uses someone else made since: newer than any the journal has
            newest = box.store.create({"CoworkerBookingCreditId": 900 + n, "CreditUsed": 1,
                                       "Description": "theirs"})
        box.script("error", "ok", "ok")  # the first row: 500, nothing made; a fence is read
        run = etl("import", write(tmp_path, "a.csv", "101,1,a", "102,1,b", "103,1,c"), *api,
                  "--settle-wait", "0", env=NO_ENV)
        assert box.stats.lists >= 2
        assert [r["outcome"] for r in run.report()][1:] == ["created", "created"]
        with sqlite3.connect(journal_of(box.url)) as db:
            fences = db.execute("SELECT row, fence_low, fence_at FROM rows WHERE source LIKE '%a.csv' "
                                "AND row > 2 ORDER BY row").fetchall()
        # the second row left after the read: fenced by the newest record, freshly
        assert fences[0][1] == newest and fences[0][2] is not None, fences


def test_ids_drawn_at_random_are_not_taken_to_rise_from_one_lucky_pair(etl, tmp_path):
    """Record Ids drawn at random, two of them rising by chance on the first night: one 200
    above its fence is a coin toss, not evidence. Before, it was taken as enough: the next
    night's record, made by a POST answered 500, had an Id below the row's fence, was ruled out,
    and the row was proved absent and sent again (3 records for 1 row). Now fences wait for
    five records seen to rise, and the server's clock finds the row's record."""
    faults = Faults(retry_after=0, ids_random=True, system_id="drop", seed=1)
    with Sandbox(faults=faults, tokens=(TOKEN,)) as box:
        api = ["--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--timeout", "1",
               "--no-check-credits"]
        first = etl("import", write(tmp_path, "z.csv", "9,1,zero", "9,2,one"), *api, env=NO_ENV)
        assert first.code == 0
        ids = [r["Id"] for r in box.store.records()]
        assert ids[1] > ids[0]  # the lucky pair
        assert fact(box.url, "ids_rise") != "yes"
        box.faults.error_after_create = 1.0
        run = etl("import", write(tmp_path, "f.csv", "7,2.5,Desk"), *api, "--settle-wait", "3",
                  "--max-errors", "100", env=NO_ENV)
        mine = [r for r in box.store.records() if r["CoworkerBookingCreditId"] == 7]
        assert len(mine) == 1, mine
        assert [(r["outcome"], r["id"]) for r in run.report()] == [("created", str(mine[0]["Id"]))]
