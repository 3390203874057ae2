"""What an operator gets back: rows that need action on the terminal and in errors.csv, the
--json summary of an import, and `etl report` on the terminal and as an HTML page."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from etl.sandbox import Faults, Sandbox
from tests.conftest import SAMPLES

TOKEN = "test-token-report-0001"
NO_ENV = {"NEXUDUS_TOKEN": None, "NEXUDUS_USERNAME": None, "NEXUDUS_PASSWORD": None,
          "NEXUDUS_API_URL": None, "ETL_CONFIG": None, "ETL_JSON": None, "ETL_QUIET": None}
HEADER = "CoworkerBookingCreditId,CreditUsed,Description"


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_the_first_rows_that_need_action_are_shown_then_how_many_more(etl, tmp_path):
    lines = [f"{1000 + i},{'abc' if i % 2 else '1.5'},room {i}" for i in range(30)]
    (tmp_path / "export.csv").write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    run = etl("validate", "export.csv", env=NO_ENV)
    assert run.code == 1
    shown = run.err.splitlines()
    assert shown[0] == 'export.csv row 3: invalid: CreditUsed: "abc" is not a number'
    assert shown[9] == 'export.csv row 21: invalid: CreditUsed: "abc" is not a number'
    assert shown[10] == f"and 5 more: see {run.report_path().parent.relative_to(tmp_path)}/errors.csv"
    assert run.out.startswith("30 rows: 15 valid, 15 invalid.")
    assert etl("validate", "export.csv", "-q", env=NO_ENV).err == ""


def test_errors_csv_holds_the_invalid_rows_in_their_own_columns_ready_to_fix(etl, tmp_path):
    run = etl("validate", SAMPLES / "credit_uses_with_errors.csv", env=NO_ENV)
    errors_csv = run.report_path().parent / "errors.csv"
    rows = read_csv(errors_csv)
    source = read_csv(SAMPLES / "credit_uses_with_errors.csv")
    assert rows[0] == source[0] + ["errors"]
    invalid = [r for r in run.report() if r["outcome"] == "invalid"]
    assert [r[:-1] for r in rows[1:]] == [source[int(r["row"]) - 1] for r in invalid]
    assert [r[-1] for r in rows[1:]] == [r["errors"] for r in invalid]
    assert "To fix and load them again: " + str(errors_csv.relative_to(tmp_path)) in run.err

    # fixed in place and validated again: the old reasons are replaced, not kept beside the new
    fixed = [rows[0]] + [["1203", "1.5", "fixed", "", "", "", old] for *_, old in rows[1:-1]] + [rows[-1]]
    with open(errors_csv, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(fixed)
    again = etl("validate", errors_csv, "--map", "Description=Description", env=NO_ENV)
    assert again.code == 1
    assert again.out.startswith("6 rows: 5 valid, 1 invalid.")
    left = read_csv(again.report_path().parent / "errors.csv")
    assert left[0] == source[0] + ["errors"]
    assert left[1][-1] == 'CreditUsed: is required | EventAttendeeId: "x17" is not a whole number'
    assert len(left) == 2


def test_errors_csv_never_overwrites_an_input(etl, tmp_path):
    (tmp_path / "errors.csv").write_text(HEADER + ",errors\n1203,abc,room,old reason\n")
    run = etl("validate", "errors.csv", "--report", "results.csv", env=NO_ENV)
    assert run.code == 1
    assert (tmp_path / "errors.csv").read_text().endswith("old reason\n")
    summary = run.summary()
    assert summary["errors_report"].startswith("errors-") and (tmp_path / summary["errors_report"]).exists()


@pytest.fixture
def faulty():
    box = Sandbox(faults=Faults(retry_after=0, reject=0.2, error_after_create=0.1, seed=4), tokens=(TOKEN,))
    with box:
        yield box


@pytest.fixture
def imported(etl, faulty, tmp_path):
    """One import of 40 rows (6 invalid) into a sandbox that rejects some and answers 500 after
    creating some: every kind of row that needs action, and its --json output."""
    lines = [f"{1000 + i},{'-1' if i % 7 == 3 else '2.5'},room {i}" for i in range(40)]
    (tmp_path / "export.csv").write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    run = etl("import", "export.csv", "--api-url", faulty.url, "--token", TOKEN, "--rate", "1000",
              "--journal", "journal.sqlite3", "--json", "--max-errors", "40", env=NO_ENV)
    assert run.code == 1, run.err
    return run


def test_import_json_and_errors_csv_of_rejected_and_invalid_rows(imported, tmp_path):
    summary = json.loads(imported.out)
    assert summary["command"] == "import" and summary["exit_code"] == 1
    results = read_csv(tmp_path / summary["report"])
    assert json.loads((tmp_path / summary["report"]).parent.joinpath("summary.json").read_text()) == summary
    need = [r for r in results[1:] if r[2] in ("invalid", "rejected", "failed", "in_doubt")]
    counts = summary["counts"]
    assert counts["invalid"] == 6 and counts["rejected"] > 0
    assert len(need) == summary["needs_action"] == sum(counts[o] for o in ("invalid", "rejected", "failed",
                                                                          "in_doubt"))
    errors = read_csv(tmp_path / summary["errors_report"])
    assert errors[0] == HEADER.split(",") + ["errors"]
    assert errors[1:] == [r[7:] + [r[6]] for r in need]
    assert TOKEN not in imported.out + imported.err


def test_report_on_the_terminal(etl, imported, tmp_path):
    summary = json.loads(imported.out)
    run_dir = (tmp_path / summary["report"]).parent
    run = etl("report", run_dir, env=NO_ENV)
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0].startswith(f"Run {summary['run_id']} (import): started ")
    c = summary["counts"]
    assert lines[1] == f"40 rows: 6 invalid, {c['created']} created, {c['rejected']} rejected"
    reasons = lines[lines.index("Most common reasons:") + 1:]
    assert ["CreditUsed", "6", '"…" must be greater than 0'] in [r.split(None, 2) for r in reasons]
    assert f"Rows that need action ({summary['needs_action']}):" in lines
    assert f"{c['created'] + c['rejected'] + c['in_doubt'] + c['failed']} POSTs from " in run.out

    as_json = json.loads(etl("report", run_dir / "results.csv", "--json", env=NO_ENV).out)
    assert as_json["counts"] == {k: v for k, v in c.items() if v}
    assert {"column": "CreditUsed", "reason": '"…" must be greater than 0', "rows": 6} in as_json["reasons"]


class Page(HTMLParser):
    """What a reader sees: text by section, and the SVG shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.text: dict[str, list[str]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.bars: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "section":
            self.section = attributes.get("id")
        if tag == "rect" and self.section:
            self.bars[self.section] = self.bars.get(self.section, 0) + 1

    def handle_data(self, data: str) -> None:
        if self.section and data.strip():
            self.text.setdefault(self.section, []).append(data.strip())


def test_html_report_shows_counts_reasons_posts_and_rows(etl, imported, tmp_path):
    summary = json.loads(imported.out)
    run = etl("report", (tmp_path / summary["report"]).parent, "--html", "out/run.html", env=NO_ENV)
    assert run.code == 0 and "Wrote out/run.html" in run.out
    html = (tmp_path / "out" / "run.html").read_text()
    page = Page()
    page.feed(html)
    tags = {t for t, _ in page.tags}
    assert "script" not in tags and "link" not in tags and "img" not in tags  # self-contained
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html

    c = summary["counts"]
    outcomes = page.text["outcomes"]
    assert outcomes[0] == "40 rows"
    for outcome in ("created", "invalid", "rejected"):
        assert outcomes[outcomes.index(outcome) - 1] == str(c[outcome])
    reasons = page.text["reasons"]
    at = reasons.index('"…" must be greater than 0')
    assert reasons[at - 1] == "CreditUsed" and reasons[at + 1] == "6"
    posts = c["created"] + c["rejected"] + c["in_doubt"] + c["failed"]
    assert page.text["posts"][0] == "POSTs over time"
    assert page.text["posts"][1].startswith(f"{posts} POSTs from ")
    per_bar = [int(t.split(": ")[1].split()[0]) for t in page.text["posts"] if " UTC: " in t]
    assert sum(per_bar) == posts and len(per_bar) == page.bars["posts"]
    rows = page.text["attention"]
    assert rows[0] == f"Rows that need action ({summary['needs_action']})"
    assert "invalid" in rows and "rejected" in rows
    assert 'CreditUsed: "-1" must be greater than 0' in rows


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium to render the page")
def test_html_report_renders_in_a_real_browser(etl, imported, tmp_path):
    summary = json.loads(imported.out)
    etl("report", (tmp_path / summary["report"]).parent, "--html", "run.html", env=NO_ENV)
    png = tmp_path / "run.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--screenshot={png}", "--window-size=1200,1600",
         (tmp_path / "run.html").as_uri()],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 1600)
    assert len(data) > 20_000  # a blank page compresses to a few kB; charts and tables do not


def test_reconcile_json(etl, imported, faulty):
    run = etl("reconcile", "--api-url", faulty.url, "--token", TOKEN, "--journal", "journal.sqlite3",
              "--json", env=NO_ENV)
    assert run.code == 0, run.err
    out = json.loads(run.out)
    assert (out["command"], out["rows"], out["exit_code"], out["in_doubt"]) == ("reconcile", 0, 0, [])
    assert "0 rows in doubt" in run.err


def test_verbose_shows_the_debug_log(etl, faulty, tmp_path):
    (tmp_path / "one.csv").write_text(HEADER + "\n1203,1.5,room\n")
    run = etl("import", "one.csv", "--api-url", faulty.url, "--token", TOKEN, "--rate", "1000",
              "--journal", "journal.sqlite3", "-v", env=NO_ENV)
    assert "etl: info: run started" in run.err
    assert f"etl: info: row (source={tmp_path / 'one.csv'}, row=2, " in run.err
    assert "from=new, to=pending, on=send" in run.err
    assert TOKEN not in run.err
    quiet = etl("import", "one.csv", "--api-url", faulty.url, "--token", TOKEN, "--rate", "1000",
                "--journal", "journal.sqlite3", env=NO_ENV)
    assert "etl: info" not in quiet.err and "debug" not in quiet.err


def test_html_report_of_an_import_that_sent_nothing_says_so(etl, tmp_path):
    (tmp_path / "one.csv").write_text(HEADER + "\n1203,1.5,room\n")
    with Sandbox(tokens=(TOKEN,)) as box:
        args = ["import", "one.csv", "--api-url", box.url, "--token", TOKEN, "--rate", "1000"]
        etl(*args, env=NO_ENV)
        again = etl(*args, env=NO_ENV)  # everything skipped: no POST
    assert again.report()[0]["outcome"] == "skipped"
    run = etl("report", again.report_path().parent, "--html", "page.html", env=NO_ENV)
    assert run.code == 0
    page = Page()
    page.feed((tmp_path / "page.html").read_text())
    assert page.text["posts"][1] == "No POST was sent in this run."


def test_reasons_by_column_when_headers_are_aliases_or_mapped(etl, tmp_path):
    (tmp_path / "eu.csv").write_text(
        "Credit Id;Credit;Note\n5;abc;x\n6;2,5;y\n0;1;z\n7;1.5;w\n8;-1;v\n")
    run = etl("validate", "eu.csv", "--map", "Credit Id=CoworkerBookingCreditId", "--map", "Note=Description",
              "--decimal", ",", "--delimiter", ";")
    assert run.code == 1, run.err
    folder = run.report_path().parent
    found = etl("report", folder, "--json", "--html", "page.html")
    reasons = {(r["column"], r["reason"]): r["rows"] for r in json.loads(found.out)["reasons"]}
    assert reasons == {
        ("CreditUsed", '"…" is not a number (the decimal mark is ",")'): 2,
        ("CreditUsed", '"…" must be greater than 0'): 1,
        ("CoworkerBookingCreditId", '"…" must be greater than 0'): 1,
    }
    text = etl("report", folder).out
    assert '  CreditUsed                    2  "…" is not a number (the decimal mark is ",")' in text
    assert "(row)" not in text
    page = (tmp_path / "page.html").read_text()
    assert ("<td>CreditUsed</td><td>&quot;…&quot; is not a number (the decimal mark is &quot;,&quot;)</td>"
            in page)


@pytest.mark.parametrize("target", ["results.csv", "summary.json", "export.csv"])
def test_html_report_never_overwrites_the_run_or_a_file_that_is_no_page(etl, imported, tmp_path, target):
    """--html named after the run's own results.csv (before: replaced by the page, the per-row
    report gone), its summary, or an input: refused, the file kept; a page written before is
    written again."""
    run_dir = (tmp_path / json.loads(imported.out)["report"]).parent
    path = tmp_path / "export.csv" if target == "export.csv" else run_dir / target
    before = path.read_bytes()
    run = etl("report", run_dir, "--html", path)
    assert run.code == 2 and "--html" in run.err, run.err
    assert path.read_bytes() == before
    page = tmp_path / "run.html"
    assert etl("report", run_dir, "--html", page).code == 0
    assert etl("report", run_dir, "--html", page).code == 0 and page.read_text().startswith("<!DOCTYPE html>")


def test_report_of_a_run_that_did_not_finish_says_so(etl, tmp_path):
    """A run folder without summary.json (the run was killed): its lines are counted, and the
    first line says the run did not finish (before: counted as if complete). An empty results.csv
    (killed before its first batch) and one that is not text are named as such, in one line."""
    folder = tmp_path / "logs" / "20261124T010000Z-3f9c0a"
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text("source,row,outcome,id,http_status,attempts,errors,CreditUsed\n"
                                        '"a.csv",2,"created",87654321,200,1,"","1"\n')
    (folder / "log.jsonl").write_text('{"event": "run started"}\n')
    run = etl("report", folder)
    assert run.code == 0 and run.out.startswith("The run did not finish (no summary.json"), run.out
    assert "1 rows: 1 created" in run.out or "1 row: 1 created" in run.out
    (tmp_path / "empty.csv").write_bytes(b"")
    empty = etl("report", tmp_path / "empty.csv", "--json")
    assert empty.code == 2 and "empty: the run wrote no line" in empty.err
    assert json.loads(empty.out)["exit_code"] == 2
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00source,row\n")
    binary = etl("report", tmp_path / "binary.csv")
    assert binary.code == 2 and "not an etl results report" in binary.err and "Traceback" not in binary.err
