"""Review of the lines after tonight's quota written in turn by the posting pass (598c1ae): the
report, errors.csv, summary.json and the exit code of nights stopped at the quota, by a signal
or by a changed input, and the rows posted, as an operator and a misbehaving server see them."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_ahead import leftovers, night
from tests.test_import import NO_ENV, PASSWORD, TOKEN, USER
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture
from tests.test_seen_keys import SmallChunks

HEADER = ["CoworkerBookingCreditId", "CreditUsed", "Description"]
ROWS = 70_000  # two chunks (the reader's 1 MB blocks gathered to at least 32,768 rows)


def export(path: Path, rows: int = ROWS, bad: set[int] = frozenset(), tag: str = "") -> None:
    """ROWS distinct credit uses; the rows (from 0) in BAD have an amount that is no number."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows([str(11 + i % 5), "abc" if i in bad else f"{1 + i % 40}.25", f"Desk #{i}{tag}"]
                     for i in range(rows))


def chunk_starts(path: Path) -> list[int]:
    """The positions (from 0) of the first row of each chunk etl reads PATH in."""
    from etl.read.reading import ReadOptions, open_table

    starts, at = [], 0
    for chunk in open_table(str(path), ReadOptions()).chunks():
        starts.append(at)
        at += len(chunk)
    return starts


def write(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


@pytest.fixture
def faulty():
    """Sandboxes that misbehave as asked (Faults' fields), stopped at the end."""
    boxes: list[Sandbox] = []

    def make(**faults) -> Sandbox:
        box = Sandbox(faults=Faults(**{"retry_after": 0, **faults}), tokens=(TOKEN,), username=USER,
                      password=PASSWORD)
        box.__enter__()
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.__exit__(None, None, None)


def errors_of(run) -> list[dict[str, str]]:
    with open(run.report_path().parent / "errors.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def when_posted(sandbox, n: int, then) -> threading.Thread:  # noqa: F811
    """THEN() run once the sandbox has seen N POSTs (the posting pass is under way)."""
    def watch() -> None:
        deadline = time.monotonic() + 30
        while sandbox.stats.posts < n and time.monotonic() < deadline:
            time.sleep(0.005)
        then()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


# --- an input that changes while the posting pass runs ---------------------------------------------

@pytest.mark.parametrize("checks", ["--no-check-credits", "--check-credits"])
def test_an_export_rewritten_while_posting_stops_the_run_and_its_report_says_where_it_ends(
        etl, sandbox, tmp_path, checks):  # noqa: F811
    """The export job writes history.csv again in place (a newer export: its rows renamed, more
    of them) while tonight's rows are being posted. The run stops before its next POST (exit 3).
    The rows after tonight's can no longer be read as they were: the report holds the lines of
    the rows as read, in order, and ends there, saying so; its counts are its lines. Before, it
    went on with the new export's rows (84,088 lines for 70,000 rows, some row numbers twice)."""
    path = tmp_path / "history.csv"
    export(path)
    watcher = when_posted(sandbox, 1, lambda: export(path, ROWS + 5_000, tag=" (v2)"))
    run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "4",
              "--daily-limit", "6", checks, env=NO_ENV)
    watcher.join()
    assert run.code == 3, (run.out + run.err)
    summary = run.summary()
    report = run.report()
    assert 0 < len(report) < ROWS
    assert f"the report ends after its first {len(report)} lines" in summary["stopped"]
    assert "changed while it was being imported" in summary["stopped"]
    assert [int(r["row"]) for r in report] == list(range(2, len(report) + 2))
    assert [r["Description"] for r in report] == [f"Desk #{i}" for i in range(len(report))]  # not "(v2)"
    assert sum(summary["counts"].values()) == len(report)
    assert summary["counts"]["created"] == len(sandbox.store.records()) >= 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("checks", ["--no-check-credits", "--check-credits"])
def test_an_export_moved_away_while_posting_stops_the_run_with_its_report(etl, sandbox, tmp_path, checks):  # noqa: F811
    """A clean-up job moves history.csv into an archive folder while tonight's rows are being
    posted. The run stops before its next POST (exit 3: the input changed), without a
    traceback, and the report of the rows it read is written whole."""
    path = tmp_path / "history.csv"
    export(path)
    (tmp_path / "archive").mkdir()
    watcher = when_posted(sandbox, 1, lambda: path.rename(tmp_path / "archive" / "history.csv"))
    run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "4",
              "--daily-limit", "6", checks, env=NO_ENV)
    watcher.join()
    assert "Traceback" not in run.out + run.err
    assert run.code == 3, run.out + run.err
    assert "No such file" not in run.err, run.err  # 598c1ae: the file is read again, and gone
    (folder,) = (tmp_path / "logs").iterdir()
    with open(folder / "results.csv", newline="", encoding="utf-8") as f:
        report = list(csv.DictReader(f))
    assert [int(r["row"]) for r in report] == list(range(2, ROWS + 2))  # 598c1ae: 48,665 lines
    counts = json.loads((folder / "summary.json").read_text())["counts"]
    assert sum(counts.values()) == ROWS
    assert counts["created"] == len(sandbox.store.records()) >= 1


# --- the quota's end at chunk boundaries, identical rows straddling chunks after it -------------

@pytest.mark.parametrize("concurrency", [1, 4])
def test_nights_ending_at_chunk_boundaries_report_every_line_and_post_each_row_once(
        etl, sandbox, tmp_path, monkeypatch, concurrency):  # noqa: F811
    """The valid rows are the last 5 rows of the first chunk, the first and last 5 of the second
    and the first 5 of the third (the others invalid); the third chunk's 5 are identical to the
    first chunk's (the same credit use twice, a chunk apart). Nights of 5 POSTs each end at
    the first chunk's end, inside the second, at its end, and a fourth sends the third
    chunk's: every night the report is every line
    in order, the rows created earlier skipped with their own Ids, tonight's created, the rest
    not attempted (the first of them saying why), errors.csv the invalid rows, and at the end
    each row is one record."""
    from etl.read import reading

    # chunks of some dozens of rows (the boundaries are the reader's, whatever their size: a
    # file of 75,000 rows in chunks of ~34,000 passed the same, in 5 s of CPU the suite can't spare)
    monkeypatch.setattr(reading, "ReadOptions", SmallChunks)
    path, total = tmp_path / "history.csv", 400
    # the chunk boundaries: every version of the file below has the same widths ("x" for "5")
    write(path, [[str(11 + i % 5), f"{1 + i % 40}.2x", f"Desk #{i:06d}........"] for i in range(total)])
    starts = chunk_starts(path)
    assert len(starts) >= 3, starts
    two, three = starts[1], starts[2]
    valid = [*range(two - 5, two), *range(two, two + 5), *range(three - 5, three),
             *range(three, three + 5)]
    same = dict(zip(range(three, three + 5), range(two - 5, two), strict=True))
    write(path, [[str(11 + i % 5), f"{1 + i % 40}.2" + ("5" if i in valid else "x"),
                  f"Desk #{same.get(i, i):06d}........"] for i in range(total)])
    assert chunk_starts(path)[:3] == starts[:3]
    ids: dict[int, str] = {}
    for n, limit in enumerate((5, 10, 15, 20), 1):
        run = night(etl, sandbox, path, limit, "--concurrency", str(concurrency))
        # the fourth night sends the last 5: nothing is left but the invalid rows
        assert run.code == (4 if limit < 20 else 1), run.out + run.err
        report = run.report()
        assert [int(r["row"]) for r in report] == list(range(2, total + 2))
        lines = {i: report[i] for i in valid}
        for i, line in lines.items():
            if i in ids:  # created on a night before: skipped, with its own record's Id
                assert line["outcome"] == "skipped" and line["id"] == ids[i], (n, i, line)
                assert f"row {i + 2} on " in line["errors"], (n, i, line)
        new = {i: line["id"] for i, line in lines.items() if line["outcome"] == "created"}
        assert len(new) == 5 and not set(new) & set(ids), (n, new)
        ids.update(new)
        left = [i for i in valid if i not in ids]
        assert {lines[i]["outcome"] for i in left} <= {"not_attempted"}, n
        if concurrency == 1:  # in file order; the first row left says why it was not sent
            assert [i for i in valid if i in ids] == valid[:limit]
            if left:
                assert f"--daily-limit {limit} reached" in lines[left[0]]["errors"], n
        if left:
            assert any(f"--daily-limit {limit} reached" in lines[i]["errors"] for i in left), n
        counts = {k: v for k, v in run.summary()["counts"].items() if v}
        assert counts == +Counter({"invalid": total - 20, "skipped": limit - 5, "created": 5,
                                   "not_attempted": 20 - limit}), (n, counts)
        assert len(errors_of(run)) == total - 20
        assert leftovers(tmp_path) == []
    records = sandbox.store.records()
    assert sorted(str(r["Id"]) for r in records) == sorted(ids.values())
    assert len(set(ids.values())) == 20


def test_a_rerun_with_a_lower_daily_limit_than_already_spent_sends_nothing(etl, sandbox, tmp_path):  # noqa: F811
    """Tonight's quota is already spent (a rerun with a lower --daily-limit the same UTC day):
    the first pass counts on no POST, the posting pass sends none, and writes every line: the
    rows created skipped, the others not attempted (the first saying why), exit 4."""
    path = tmp_path / "history.csv"
    bad = set(range(7, ROWS, 4_001))
    export(path, bad=bad)
    assert night(etl, sandbox, path, 12).code == 4
    for limit in (5, 12):
        run = night(etl, sandbox, path, limit)
        assert run.code == 4, run.out + run.err
        report = run.report()
        assert [int(r["row"]) for r in report] == list(range(2, ROWS + 2))
        good = [r for i, r in enumerate(report) if i not in bad]
        assert [r["outcome"] for r in good[:12]] == ["skipped"] * 12
        assert good[12]["outcome"] == "not_attempted"
        assert f"--daily-limit {limit} reached" in good[12]["errors"]
        assert {(r["outcome"], r["errors"]) for r in good[13:]} == {("not_attempted", "")}
        counts = run.summary()["counts"]
        assert (counts["skipped"], counts["created"], counts["invalid"]) == (12, 0, len(bad))
        assert [e["Description"] for e in errors_of(run)] == [f"Desk #{i}" for i in sorted(bad)]
    assert len(sandbox.store.records()) == 12
    status = etl("status", "--api-url", sandbox.url)
    assert f"{ROWS - len(bad) - 12:,} rows to post" in status.out or \
        f"{ROWS - len(bad) - 12} rows to post" in status.out, status.out


# --- several files ---------------------------------------------------------------------------

def test_a_second_export_repeating_the_first_is_skipped_where_sent_and_left_where_not(etl, sandbox, tmp_path):  # noqa: F811
    """b.csv is another export of a.csv's history (the same rows, a different order of its first
    rows: a.csv's rows 0-29 reversed) and 10 rows of its own at the end. Tonight's quota ends in
    a.csv's first chunk; the posting pass writes every later line in turn: b.csv's rows sent
    tonight from a.csv are skipped (naming a.csv's row), the others not attempted, then b.csv's
    own rows not attempted. Night after night, every line once, and no credit use twice."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    rows = [[str(11 + i % 5), f"{1 + i % 40}.25", f"Desk #{i}"] for i in range(ROWS)]
    write(a, rows)
    mine = [[str(11 + i % 5), f"{1 + i % 40}.75", f"Room #{i}"] for i in range(10)]
    write(b, rows[29::-1] + rows[30:] + mine)
    for limit, before in ((10, 0), (25, 10)):
        run = night(etl, sandbox, a, limit, str(b))
        assert run.code == 4, run.out + run.err
        report = run.report()
        assert [int(r["row"]) for r in report] == [*range(2, ROWS + 2), *range(2, ROWS + 12)]
        theirs, ours = report[:ROWS], report[ROWS:]
        assert [r["outcome"] for r in theirs[:limit]] == ["skipped"] * before + ["created"] * (limit - before)
        assert {r["outcome"] for r in theirs[limit:]} == {"not_attempted"}
        sent = {f"Desk #{i}" for i in range(limit)}
        for r in ours:
            if r["Description"] in sent:
                assert r["outcome"] == "skipped" and "already created from" in r["errors"], r
                assert f"a.csv row {int(r['Description'][6:]) + 2} " in r["errors"], r
            else:
                assert r["outcome"] == "not_attempted", r
        counts = run.summary()["counts"]
        assert counts["skipped"] + counts["created"] == 2 * limit
        assert counts["not_attempted"] == 2 * ROWS + 10 - 2 * limit
    records = sandbox.store.records()
    assert sorted(r["Description"] for r in records) == sorted(f"Desk #{i}" for i in range(25))


# --- signals while posting -----------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGINT"])  # SIGTERM passed too (4 s more of the suite)
def test_a_signal_while_posting_four_at_once_ends_with_a_whole_report_and_no_row_twice(
        sandbox, tmp_path, sig):  # noqa: F811
    """SIGTERM (or Ctrl-C) reaches a night posting four rows at a time, its quota far from spent:
    the requests under way are finished, no more leave, and the report is every line of both
    files (the rows created, the rest not attempted), with the exit code of the signal; the
    rerun carries on and creates no row twice."""
    import os
    import signal
    import subprocess
    import sys

    import etl as package

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    export(a)
    write(b, [[str(11 + i % 5), f"{1 + i % 40}.75", f"Room #{i}"] for i in range(3_000)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUDUS_")}
    env["PYTHONPATH"] = str(Path(package.__file__).parents[1])  # this checkout's etl
    command = [sys.executable, "-m", "etl", "import", "a.csv", "b.csv", "--api-url", sandbox.url,
               "--token", TOKEN, "--rate", "40", "--concurrency", "4", "--no-check-credits", "--json", "-q"]
    child = subprocess.Popen([*command, "--daily-limit", "200"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while sandbox.stats.posts < 8 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    child.send_signal(getattr(signal, sig))
    out, err = child.communicate(timeout=60)
    code = {"SIGTERM": 143, "SIGINT": 130}[sig]
    assert child.returncode == code, err
    summary = json.loads(out)
    assert summary["exit_code"] == code
    with open(tmp_path / summary["report"], newline="", encoding="utf-8") as f:
        report = list(csv.DictReader(f))
    assert [int(r["row"]) for r in report] == [*range(2, ROWS + 2), *range(2, 3_002)]
    created = [r for r in report if r["outcome"] == "created"]
    records = sandbox.store.records()
    assert 8 <= len(created) < 40
    assert sorted(r["id"] for r in created) == sorted(str(r["Id"]) for r in records)
    assert {r["outcome"] for r in report} == {"created", "not_attempted"}
    assert summary["counts"]["created"] == len(created)
    assert summary["counts"]["not_attempted"] == ROWS + 3_000 - len(created)
    assert errors_of_path(tmp_path / summary["report"]) == []
    assert leftovers(tmp_path) == []
    again = subprocess.run([*command, "--daily-limit", "40"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 4, again.stderr
    records = sandbox.store.records()
    assert len(records) == 40 == len({r["Description"] for r in records})


def errors_of_path(report: Path) -> list[dict[str, str]]:
    with open(report.parent / "errors.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- a misbehaving server around the quota's end --------------------------------------------

@pytest.mark.parametrize("faults", [
    {"error_after_create": 0.2, "drop_after_create": 0.2, "error": 0.1},
    {"rate_limit": 60.0},
    {"gateway_timeout_late": 0.3, "late_delay": 0.3},
], ids=["ambiguous", "throttled", "late-504"])
def test_server_faults_around_the_quota_end_post_each_row_once_over_the_nights(etl, faulty, tmp_path, faults):
    """Nights of 30 POSTs, four at a time, against a server that creates records and then
    fails to say so (500, a dropped connection, a gateway's 504 whose record appears later), or
    throttles (409): each night spends its quota and no more, its report is every line in
    order (the rows not reached not attempted), its counts the report's, and over the nights
    every row is created once."""
    box = faulty(**faults)
    path = tmp_path / "history.csv"
    bad = set(range(5, ROWS, 9_973))
    export(path, bad=bad)
    more = ("--concurrency", "4", "--gateway-settle", "1", "--settle-wait", "10")
    for limit in (30, 60, 90):
        run = night(etl, box, path, limit, *more)
        assert run.code in (1, 4), run.out + run.err
        report = run.report()
        assert [int(r["row"]) for r in report] == list(range(2, ROWS + 2))
        counts = {k: v for k, v in run.summary()["counts"].items() if v}
        assert counts == +Counter(r["outcome"] for r in report)
        assert counts["invalid"] == len(bad)
        assert counts.get("not_attempted", 0) >= ROWS - len(bad) - limit
        assert box.stats.posts - sum(box.stats.faults.get(k, 0) for k in ("rate_limit", "throttled")) >= 0
        assert leftovers(tmp_path) == []
    records = box.store.records()
    descriptions = [r["Description"] for r in records]
    assert len(descriptions) == len(set(descriptions)), "a row created twice"
    report = run.report()
    created = {r["Description"]: r["id"] for r in report if r["outcome"] in ("created", "skipped")}
    made = {r["Description"]: str(r["Id"]) for r in records}
    assert {d: made.get(d) for d in created} == created  # each created line names its record
    doubt = {r["Description"] for r in report if r["outcome"] == "in_doubt"}
    assert set(made) <= set(created) | doubt  # a record not reported created is a row in doubt


def test_more_files_than_the_open_file_limit_are_read(tmp_path):
    """Each CSV file is held open for the run (it is read again as it was opened): a run of
    1,100 files under the common limit of 1,024 open files raises the limit (within what the
    system allows) rather than failing on the 1,021st."""
    import os
    import resource
    import subprocess
    import sys

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * 1100 + 256:
        pytest.skip(f"this system allows {hard} open files")
    names = []
    for i in range(1100):
        write(tmp_path / f"e{i}.csv", [[str(11 + i % 5), f"{1 + i % 40}.25", f"Desk #{i}"]])
        names.append(f"e{i}.csv")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUDUS_")}
    done = subprocess.run([sys.executable, "-m", "etl", "validate", *names, "-q", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, preexec_fn=limited, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["counts"]["valid"] == 1100


@pytest.mark.parametrize("reopened", [True, False], ids=["proc-fd", "copied-descriptor"])
def test_a_csv_file_reads_as_opened_whatever_its_name_holds_later(tmp_path, monkeypatch, reopened):
    """A CSV table reads the file it opened: moved away and another file written under its name,
    it still reads the rows it had, whether the system can reopen an open file (Linux's
    /proc/self/fd) or its descriptor is copied (elsewhere); and it says when the file it holds
    was written again in place."""
    from etl.read import csvfiles
    from etl.read.reading import ReadOptions, open_table

    if not reopened:
        monkeypatch.setattr(csvfiles, "_PROC_FD", None)
    path = tmp_path / "history.csv"
    rows = [[str(11 + i % 5), f"{1 + i % 40}.25", f"Desk #{i}"] for i in range(5000)]
    write(path, rows)
    table = open_table(str(path), ReadOptions())
    first = [c.to_pylist() for chunk in table.chunks() for c in chunk.columns[2:3]]
    stamp = table.stamp()
    path.rename(tmp_path / "archived.csv")
    write(path, [[r[0], r[1], r[2] + " (v2)"] for r in rows])
    again = [c.to_pylist() for chunk in table.chunks() for c in chunk.columns[2:3]]
    assert again == first and first[0][0] == "Desk #0"
    assert table.stamp() == stamp
    with open(tmp_path / "archived.csv", "a", encoding="utf-8") as f:  # the held file, written to
        f.write("12,1.25,Desk #5000\n")
    assert table.stamp() != stamp
