"""The emulator itself, over real HTTP on loopback: each knob does what real servers do."""

from __future__ import annotations

import datetime as dt
import email.utils
import gc
import json
import re
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from etl.sandbox import Faults, Sandbox, Store, load_credits

TOKEN = "sandbox-test-token-0001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USES = "/api/billing/coworkerbookingcreditusehistories"
CREDITS = "/api/billing/coworkerbookingcredits"


@contextmanager
def running(credits: list[dict[str, Any]] | None = None, **faults: Any) -> Iterator[Sandbox]:
    knobs = Faults(**{"retry_after": 0, **faults})
    with Sandbox(faults=knobs, tokens=(TOKEN,), credits=credits or ()) as box:
        yield box


def post(box: Sandbox, credit: int = 101, used: Any = 1.5, **fields: Any) -> requests.Response:
    body = {"CoworkerBookingCreditId": credit, "CreditUsed": used, **fields}
    return requests.post(box.url + USES, json=body, headers=AUTH, timeout=5)


def get(box: Sandbox, path: str, **params: Any) -> requests.Response:
    return requests.get(box.url + path, params=params, headers=AUTH, timeout=5)


def ids(answer: requests.Response) -> list[int]:
    return [r["Id"] for r in answer.json()["Records"]]


# --- SystemId -------------------------------------------------------------------------------


def test_system_id_is_stored_read_back_and_filtered_on() -> None:
    with running() as box:
        tagged = post(box, SystemId="etl:abc").json()["Value"]["Id"]
        plain = post(box).json()["Value"]["Id"]
        record = get(box, f"{USES}/{tagged}").json()
        assert record["SystemId"] == "etl:abc" and record["Id"] == tagged
        assert record["UniqueId"] and record["CreatedOn"] and record["UpdatedOn"]
        assert get(box, f"{USES}/{plain}").json()["SystemId"] is None
        assert ids(get(box, USES, CoworkerBookingCreditUseHistory_SystemId="etl:abc")) == [tagged]
        missing = get(box, f"{USES}/1")
        assert missing.status_code == 404 and "Message" in missing.json()
        assert box.stats.reads == 3 and box.stats.lists == 1


def test_a_server_can_refuse_system_id_and_create_nothing() -> None:
    with running(system_id="refuse") as box:
        answer = post(box, SystemId="etl:abc")
        assert answer.status_code == 400
        assert [e["PropertyName"] for e in answer.json()["Errors"]] == ["SystemId"]
        assert box.store.records() == []
        assert post(box).status_code == 200


def test_a_server_can_drop_system_id_silently() -> None:
    with running(system_id="drop") as box:
        answer = post(box, SystemId="etl:abc")
        assert answer.status_code == 200 and answer.json()["WasSuccessful"] is True
        assert get(box, f"{USES}/{answer.json()['Value']['Id']}").json()["SystemId"] is None


def test_a_list_can_ignore_the_system_id_filter() -> None:
    with running(ignore_system_id_filter=True) as box:
        post(box, SystemId="a")
        post(box, SystemId="b")
        assert len(ids(get(box, USES, CoworkerBookingCreditUseHistory_SystemId="a"))) == 2


# --- clocks ---------------------------------------------------------------------------------


def test_clock_skew_moves_record_dates_and_every_date_header() -> None:
    with running(clock_skew=-3600) as box:
        created = post(box)
        server_time = email.utils.parsedate_to_datetime(created.headers["Date"])
        assert created.headers["Date"].endswith(" GMT")
        assert abs(server_time.timestamp() - (time.time() - 3600)) < 5
        record = box.store.records()[0]
        assert abs(dt.datetime.fromisoformat(record["CreatedOn"]).timestamp() - (time.time() - 3600)) < 5
        for answer in (requests.get(box.url + USES, timeout=5), get(box, "/nowhere"), get(box, USES)):
            when = email.utils.parsedate_to_datetime(answer.headers["Date"])
            assert abs(when.timestamp() - (time.time() - 3600)) < 5


def test_created_on_can_be_local_time_without_an_offset() -> None:
    with running(created_on_offset=5.5) as box:
        post(box)
        record = box.store.records()[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", record["CreatedOn"])
        local = dt.datetime.fromisoformat(record["CreatedOn"]).replace(tzinfo=dt.UTC)
        assert abs(local.timestamp() - 5.5 * 3600 - time.time()) < 5
        assert dt.datetime.fromisoformat(record["UpdatedOn"]).utcoffset() == dt.timedelta(0)


def test_created_on_is_utc_with_its_offset_by_default() -> None:
    with running() as box:
        post(box)
        assert box.store.records()[0]["CreatedOn"].endswith("+00:00")


# --- normalised fields ----------------------------------------------------------------------


@pytest.mark.parametrize(("knobs", "sent", "stored"), [
    ({}, "  Tom &  Jerry's <b> ", "  Tom &  Jerry's <b> "),
    ({"description_trim": True}, "  Tom &  Jerry's   <b> ", "Tom & Jerry's <b>"),
    ({"description_html": True}, 'Tom & "Jerry" <b>', "Tom &amp; &quot;Jerry&quot; &lt;b&gt;"),
    ({"description_max": 5}, "coffee and cake", "coffe"),
    ({"description_trim": True, "description_html": True, "description_max": 12},
     "  Tom &  Jerry's <b>", "Tom &amp; Je"),
])
def test_descriptions_come_back_normalised(knobs: dict[str, Any], sent: str, stored: str) -> None:
    with running(**knobs) as box:
        post(box, Description=sent)
        assert get(box, USES).json()["Records"][0]["Description"] == stored


@pytest.mark.parametrize(("places", "sent", "stored"), [(None, 1.005, 1.005), (2, 1.005, 1.01),
                                                        (0, 2.5, 3.0), (1, "1.25", 1.3)])
def test_amounts_come_back_rounded(places: int | None, sent: Any, stored: float) -> None:
    with running(amount_round=places) as box:
        post(box, used=sent)
        assert get(box, USES).json()["Records"][0]["CreditUsed"] == stored


# --- gateways -------------------------------------------------------------------------------


def test_gateways_answer_html_and_create_nothing() -> None:
    with running() as box:
        box.script("bad_gateway", "gateway_timeout")
        assert [(a.status_code, a.headers["Content-Type"]) for a in (post(box), post(box))] == [
            (502, "text/html"), (504, "text/html")]
        assert box.store.records() == []
        assert box.stats.faults == {"bad_gateway": 1, "gateway_timeout": 1}


def test_a_late_gateway_time_out_creates_the_record_afterwards() -> None:
    with running(late_delay=0.2) as box:
        box.script("gateway_timeout_late")
        answer = post(box, Description="late")
        answered = time.time()
        assert answer.status_code == 504 and box.store.records() == []
        deadline = time.time() + 3
        while not box.store.records() and time.time() < deadline:
            time.sleep(0.02)
        (record,) = box.store.records()
        assert record["Description"] == "late" and box.stats.created == 1
        assert dt.datetime.fromisoformat(record["CreatedOn"]).timestamp() >= answered + 0.1


def test_random_gateway_faults_are_seeded() -> None:
    def statuses() -> list[int]:
        with running(bad_gateway=0.3, gateway_timeout=0.3, seed=7) as box:
            return [post(box).status_code for _ in range(12)]

    first = statuses()
    assert first == statuses() and {502, 504, 200} <= set(first)


# --- list answers ---------------------------------------------------------------------------


def test_list_answers_that_misbehave() -> None:
    with running(retry_after="3") as box:
        post(box)
        box.script_list("list_no_records", "list_throttle", "list_error", "list_drop", "ok")
        empty = get(box, USES)
        assert empty.status_code == 200 and "Records" not in empty.json()
        assert empty.json()["TotalItems"] == 1 and "HasNextPage" in empty.json()
        throttled = get(box, USES)
        assert throttled.status_code == 409 and throttled.headers["Retry-After"] == "3"
        assert get(box, USES).status_code == 500
        with pytest.raises(requests.ConnectionError):
            get(box, USES)
        assert len(ids(get(box, USES))) == 1
        assert box.stats.faults == {"list_no_records": 1, "list_throttle": 1, "list_error": 1,
                                    "list_drop": 1}
        with pytest.raises(ValueError, match="unknown faults"):
            box.script_list("throttle")


def test_a_list_that_ignores_the_page_always_has_a_next_one() -> None:
    with running() as box:
        for _ in range(3):
            post(box)
        box.script_list("list_ignore_page")
        answer = get(box, USES, page=2, size=2).json()
        assert answer["CurrentPage"] == 1 and answer["HasNextPage"] is True
        assert [r["Id"] for r in answer["Records"]] == ids(get(box, USES, page=1, size=2))


def test_a_shifted_list_shows_a_record_twice_across_pages() -> None:
    with running(newest_first=True) as box:
        made = [post(box).json()["Value"]["Id"] for _ in range(4)]
        box.script_list("ok", "list_shift", "list_shift")
        pages = [get(box, USES, page=p, size=2).json() for p in (1, 2, 3)]
        seen = [r["Id"] for page in pages for r in page["Records"]]
        assert seen == [made[3], made[2], made[2], made[1], made[0]]
        assert [p["HasNextPage"] for p in pages] == [True, True, False]


def test_list_order_follows_order_by_and_dir_in_both_conventions() -> None:
    with running(newest_first=True) as box:
        made = [post(box).json()["Value"]["Id"] for _ in range(3)]
        assert ids(get(box, USES)) == made[::-1]
        assert ids(get(box, USES, orderBy="Id")) == made
        assert ids(get(box, USES, orderBy="CreatedOn", dir="-1")) == made[::-1]
        assert ids(get(box, USES, orderBy="NoSuchField", dir="0")) == made
        assert ids(get(box, USES, orderby="Id", dir="-1")) == made[::-1]
        assert ids(get(box, USES, orderBy="Id", dir="0")) == made
        assert ids(get(box, USES, orderBy="Id", dir="1")) == made
        assert ids(get(box, USES, orderBy="Id", dir="Descending")) == made[::-1]
        box.faults.dir_one = "desc"
        assert ids(get(box, USES, orderBy="Id", dir="1")) == made[::-1]
        box.faults.newest_first = False
        assert ids(get(box, USES)) == made


def test_random_list_faults_are_seeded_apart_from_post_faults() -> None:
    def statuses() -> list[int]:
        with running(list_error=0.5, seed=3) as box:
            return [get(box, USES).status_code for _ in range(10)]

    first = statuses()
    assert first == statuses() and {200, 500} <= set(first)


# --- throttling and slow answers ------------------------------------------------------------


def test_throttle_all_answers_every_post_409() -> None:
    with running(throttle_all=True, retry_after="1") as box:
        answers = [post(box) for _ in range(3)]
        assert {(a.status_code, a.headers["Retry-After"]) for a in answers} == {(409, "1")}
        assert box.store.records() == [] and box.stats.faults == {"throttle_all": 3}


@pytest.mark.parametrize("value", ["1", "soon", "120s", "Wed, 21 Oct 2026 07:28:00 GMT", 0])
def test_retry_after_is_sent_verbatim(value: str | int) -> None:
    with running(retry_after=value) as box:
        box.script("throttle")
        assert post(box).headers["Retry-After"] == str(value)


def test_reads_over_the_rate_limit_get_409() -> None:
    with running(read_rate_limit=1) as box:  # one a second: the three after the first come too soon
        time.sleep(1.05)
        first = get(box, USES).status_code
        later = [get(box, USES).status_code, get(box, f"{CREDITS}/1").status_code,
                 get(box, f"{USES}/1").status_code]
        assert first == 200 and later == [409, 409, 409]
        assert box.stats.faults == {"read_throttle": 3}
        assert post(box).status_code == 200  # POSTs have their own limit


def test_a_trickled_answer_defeats_a_per_read_time_out() -> None:
    with running(trickle=0.001) as box:
        started = time.monotonic()
        answer = requests.post(box.url + USES, json={"CoworkerBookingCreditId": 1, "CreditUsed": 1},
                               headers=AUTH, timeout=(1, 0.05))
        took = time.monotonic() - started
        assert answer.json()["WasSuccessful"] is True
        assert took > len(answer.content) * 0.001 > 0.05


# --- booking credits ------------------------------------------------------------------------


def test_declared_credits_are_looked_up_and_drawn_down() -> None:
    credits = [{"Id": 7, "TotalCredit": 10, "ValidFrom": "2025-01-01T00:00:00Z", "CoworkerId": 55},
               {"Id": 8, "TotalCredit": 5, "RemainingCredit": 1, "ExpireDate": "2025-06-30T00:00:00Z"}]
    with running(credits=credits) as box:
        assert get(box, f"{CREDITS}/7").json() == {
            "Id": 7, "TotalCredit": 10.0, "RemainingCredit": 10.0, "ValidFrom": "2025-01-01T00:00:00Z",
            "ExpireDate": None, "CoworkerId": 55}
        missing = get(box, f"{CREDITS}/9")
        assert missing.status_code == 404 and missing.json()["Message"]
        unknown = post(box, credit=9)
        assert unknown.status_code == 400
        assert unknown.json()["Errors"][0]["PropertyName"] == "CoworkerBookingCreditId"
        assert "credit 9 does not exist" in unknown.json()["Message"]
        assert post(box, credit=7, used=6).status_code == 200
        over = post(box, credit=7, used=5)
        assert over.status_code == 400 and over.json()["WasSuccessful"] is False
        assert over.json()["Errors"][0]["PropertyName"] == "CreditUsed"
        assert "exceed" in over.json()["Errors"][0]["Message"]
        assert get(box, f"{CREDITS}/7").json()["RemainingCredit"] == 4.0
        assert post(box, credit=8, used=1).status_code == 200  # expired: historic uses are normal
        assert len(box.store.records()) == 2 and box.stats.credit_lookups == 3


def test_without_declared_credits_every_credit_exists() -> None:
    with running() as box:
        assert get(box, f"{CREDITS}/123").json()["TotalCredit"] == 1_000_000
        assert post(box, credit=456, used=2).status_code == 200
        assert get(box, f"{CREDITS}/456").json()["RemainingCredit"] == 999_998
        box.add_credit(5, 2, expires=dt.date(2030, 1, 1))
        assert get(box, f"{CREDITS}/123").status_code == 404
        assert get(box, f"{CREDITS}/5").json()["ExpireDate"] == "2030-01-01T00:00:00Z"
        assert post(box, credit=5, used=3).status_code == 400


def test_credits_load_from_json_or_csv(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps([{"Id": 1, "TotalCredit": 3}]))
    (tmp_path / "c.csv").write_text("Id,TotalCredit,RemainingCredit,ValidFrom,ExpireDate,CoworkerId\n"
                                    "2,10,4,2025-01-01,,77\n")
    assert load_credits(tmp_path / "c.json") == [{"Id": 1, "TotalCredit": 3}]
    with running(credits=load_credits(tmp_path / "c.csv")) as box:
        assert get(box, f"{CREDITS}/2").json() == {
            "Id": 2, "TotalCredit": 10.0, "RemainingCredit": 4.0, "ValidFrom": "2025-01-01",
            "ExpireDate": None, "CoworkerId": 77}
    (tmp_path / "bad.csv").write_text("Id,Total\n1,2\n")
    with pytest.raises(ValueError, match="unknown credit fields"):
        load_credits(tmp_path / "bad.csv")


def test_etl_sandbox_refuses_a_bad_credits_file(etl: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('[{"Id": "x", "TotalCredit": 1}]')
    run = etl("sandbox", "--port", "0", "--credits", "bad.json")
    assert run.code == 2 and "--credits" in run.err


# --- stats and storage ----------------------------------------------------------------------


def test_stats_count_lists_reads_and_credit_lookups() -> None:
    with running() as box:
        post(box)
        get(box, USES)
        get(box, f"{USES}/1")
        get(box, f"{CREDITS}/1")
        box.script_list("list_error")
        get(box, USES)
        stats = requests.get(box.url + "/_sandbox/stats", timeout=5).json()
        assert stats == {"posts": 1, "created": 1, "lists": 2, "reads": 1, "credit_lookups": 1,
                         "faults": {"list_error": 1}}


def test_a_file_from_an_older_sandbox_gains_the_new_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite3")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE credit_uses (Id INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "CoworkerBookingCreditId INTEGER, CreditUsed TEXT, Description TEXT, BookingId INTEGER, "
                   "CoworkerInvoiceLineId INTEGER, EventAttendeeId INTEGER, CreatedOn TEXT)")
        db.execute("INSERT INTO credit_uses (CoworkerBookingCreditId, CreditUsed) VALUES (1, '2')")
    db.close()
    store = Store(path)
    store.create({"CoworkerBookingCreditId": 1, "CreditUsed": 1, "SystemId": "s"})
    assert [r["SystemId"] for r in store.records()] == [None, "s"]


def test_every_knob_of_the_sandbox_is_an_option_of_etl_sandbox(etl):
    import dataclasses

    from etl.sandbox import Faults

    shown = etl("sandbox", "--help").out
    missing = [f.name for f in dataclasses.fields(Faults)
               if f"--{f.name.replace('_', '-')}" not in shown and not f.metadata.get("hook")]
    assert missing == [], missing
    for option in ("--tls-cert", "--tls-key", "--tls-after-create", "--ids-random"):
        assert option in shown


@pytest.mark.parametrize("fields", [
    {"credit": 12345678901234567890123},  # past Int32, past SQLite's integers
    {"credit": 2**31},
    {"BookingId": 99999999999999999999999},
    {"used": "1e400"},  # a double's infinity, as Python's json reads it
    {"used": "1e29"},
])
def test_values_past_what_nexudus_stores_are_refused_with_400(fields: dict[str, Any]) -> None:
    """An Id past .NET's Int32 or an amount past its decimal: a 400 naming the field, as the real
    server answers, not a dropped connection and a traceback; and the emulator keeps serving."""
    with running() as box:
        if "used" in fields:  # written as the JSON text, which no client library would send
            text = f'{{"CoworkerBookingCreditId": 101, "CreditUsed": {fields["used"]}}}'
            answer = requests.post(box.url + USES, data=text, timeout=5,
                                   headers={**AUTH, "Content-Type": "application/json"})
        else:
            answer = post(box, **fields)
        assert answer.status_code == 400 and answer.json()["WasSuccessful"] is False
        field = next(iter(fields))
        named = {"credit": "CoworkerBookingCreditId", "used": "CreditUsed"}.get(field, field)
        assert [e["PropertyName"] for e in answer.json()["Errors"]] == [named]
        assert get(box, USES).json()["TotalItems"] == 0
        assert post(box).status_code == 200


@pytest.mark.parametrize("tail", ["123456789012345678901234", "2147483648", "²"])
def test_an_id_no_record_can_have_is_not_found(tail: str) -> None:
    with running() as box:
        assert get(box, f"{USES}/{tail}").status_code == 404
        assert get(box, f"{CREDITS}/{tail}").status_code == 404


def test_etl_sandbox_says_in_one_line_why_it_cannot_start(etl, tmp_path):
    """A port another sandbox holds, a --db in a folder that is not there, a port or a share out
    of range: one line and exit 2 (before: a traceback and exit 1 for the first three)."""
    with running() as box:
        port = box.url.rsplit(":", 1)[1]
        taken = etl("sandbox", "--port", port)
        assert taken.code == 2 and f"can't listen on 127.0.0.1:{port}" in taken.err
    nowhere = etl("sandbox", "--port", "0", "--db", tmp_path / "no" / "such" / "folder.sqlite3")
    assert nowhere.code == 2 and "can't keep the records there" in nowhere.err
    assert etl("sandbox", "--port", "99999").code == 2
    assert etl("sandbox", "--unavailable", "2").code == 2
    pem = tmp_path / "bad.pem"
    pem.write_text("not a certificate\n")
    gc.collect()
    with warnings.catch_warnings(record=True) as seen:  # nor leaves its listening socket open
        warnings.simplefilter("always", ResourceWarning)
        unusable = etl("sandbox", "--port", "0", "--tls-cert", pem, "--tls-key", pem)
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []
    assert unusable.code == 2 and "can't serve https" in unusable.err
    assert "another sandbox" not in unusable.err
    for run in (taken, nowhere, unusable):
        assert "Traceback" not in run.err
