"""errors.csv goes back to the spreadsheet that made the export and comes back to etl: it is in
the input's encoding and delimiter, its formula cells are text, and etl reads its own errors.csv
back exactly, so a row loaded again is the same row (never a second credit use)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from etl.sandbox import Faults, Sandbox
from tests.test_import import NO_ENV, TOKEN

HEAD = "CoworkerBookingCreditId,CreditUsed,Description\n"

HEADER = "Credit Id;Credit;Description"
MAP = ["--map", "Credit Id=CoworkerBookingCreditId", "--decimal", ","]


def lines(path, encoding="utf-8", delimiter=","):
    with open(path, newline="", encoding=encoding) as f:
        return list(csv.reader(f, delimiter=delimiter))


def test_errors_csv_is_in_the_inputs_encoding_and_delimiter_with_formulas_made_text(etl, tmp_path):
    (tmp_path / "eu.csv").write_bytes(
        f'{HEADER}\r\n5;abc;"=HYPERLINK(""http://x"";""y"")"\r\n6;2,5;Café crème\r\n7;0;+1 journée\r\n'
        .encode("cp1252"))
    run = etl("validate", "eu.csv", *MAP)
    assert run.code == 1, run.err
    assert "Load it again with the same options: --decimal , --map 'Credit Id=CoworkerBookingCreditId'" \
        in run.err
    errors_csv = run.report_path().parent / "errors.csv"
    raw = errors_csv.read_bytes()
    assert raw.decode("cp1252").startswith("Credit Id;Credit;Description;errors\n")
    rows = lines(errors_csv, "cp1252", ";")
    assert [r[:3] for r in rows[1:]] == [["5", "abc", "'=HYPERLINK(\"http://x\";\"y\")"],
                                         ["7", "0", "'+1 journée"]]

    again = etl("validate", errors_csv, *MAP)
    assert again.code == 1
    assert '"errors"' not in again.err and "errors (input)" not in again.err, again.err
    # its own errors.csv is the same file again, byte for byte (the same rows, cells and reasons)
    assert (again.report_path().parent / "errors.csv").read_bytes() == raw
    # read back as the rows were first read: the report holds the very same cells
    first = {r["row"]: r for r in run.report()}
    for r in again.report():
        original = first[{"2": "2", "3": "4"}[r["row"]]]
        assert [r[k] for k in ("Credit Id", "Credit", "Description")] == \
            [original[k] for k in ("Credit Id", "Credit", "Description")]


def test_a_workbook_or_mixed_inputs_give_an_errors_csv_excel_reads_right(etl, tmp_path):
    (tmp_path / "a.csv").write_text("CoworkerBookingCreditId,CreditUsed,Description\n1,x,Crème\n",
                                    encoding="utf-8")
    (tmp_path / "b.csv").write_bytes("CoworkerBookingCreditId;CreditUsed;Description\n2;y;Brûlée\n"
                                     .encode("cp1252"))
    run = etl("validate", "a.csv", "b.csv", "--decimal", ".")
    assert run.code == 1
    raw = (run.report_path().parent / "errors.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfCoworkerBookingCreditId,CreditUsed,Description,errors\n")
    assert "Crème" in raw.decode("utf-8-sig") and "Brûlée" in raw.decode("utf-8-sig")
    # without --decimal, the ";" file's numbers may group thousands with dots: errors.csv is
    # ";"-separated (as a spreadsheet where the comma is the decimal mark opens it), so that they
    # stay refused when it is loaded again
    run = etl("validate", "a.csv", "b.csv")
    raw = (run.report_path().parent / "errors.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfCoworkerBookingCreditId;CreditUsed;Description;errors\n")


def test_a_row_fixed_or_sent_again_from_errors_csv_is_the_same_row(etl, tmp_path):
    """A formula-looking Description survives the round trip: the row of errors.csv is the
    failed row itself, created once, and the original file's rerun skips it."""
    (tmp_path / "export.csv").write_text(
        "CoworkerBookingCreditId,CreditUsed,Description\n"
        '101,1,"=SUM(A1:A2) booked"\n102,2,-desk 4\n103,3,plain\n', encoding="utf-8")
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        api = ["--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--max-retries", "0"]
        box.script("blocked", "blocked")
        run = etl("import", "export.csv", *api, env=NO_ENV)
        assert [r["outcome"] for r in run.report()] == ["failed", "failed", "created"], run.err
        errors_csv = run.report_path().parent / "errors.csv"
        assert [r[2] for r in lines(errors_csv)[1:]] == ["'=SUM(A1:A2) booked", "'-desk 4"]
        again = etl("import", errors_csv, *api, env=NO_ENV)
        assert [r["outcome"] for r in again.report()] == ["created", "created"], again.err
        assert sorted(r["Description"] for r in box.store.records()) == [
            "-desk 4", "=SUM(A1:A2) booked", "plain"]
        rerun = etl("import", "export.csv", *api, env=NO_ENV)
        assert [r["outcome"] for r in rerun.report()] == ["skipped"] * 3
        assert box.stats.posts == 3 + 2  # two refused by a firewall (403), then each row once


def test_loading_errors_csv_does_not_warn_about_its_own_errors_column(etl, tmp_path):
    (tmp_path / "export.csv").write_text("CoworkerBookingCreditId,CreditUsed\n1,x\n")
    run = etl("validate", "export.csv")
    again = etl("validate", run.report_path().parent / "errors.csv")
    assert again.code == 1
    assert "warning" not in again.err, again.err


@contextmanager
def row_in_doubt(etl, tmp_path, head: str, first: str, then: str
                 ) -> Iterator[tuple[Sandbox, list[str], object]]:
    """first.csv imported the night before (FIRST), then again with the row THEN added, whose
    record the server made but whose answer was lost (a 500 after creating, lists failing):
    (the emulator, the import's options, that run), the faults over."""
    (tmp_path / "first.csv").write_text(head + first, encoding="utf-8")
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        api = ["--api-url", box.url, "--token", TOKEN, "--rate", "1000", "--no-check-credits",
               "--max-retries", "0", "--settle-wait", "0"]
        assert etl("import", "first.csv", *api, env=NO_ENV).code == 0  # the export, the night before
        with open(tmp_path / "first.csv", "a", encoding="utf-8") as f:
            f.write(then)
        box.faults.error_after_create = box.faults.list_error = 1.0
        run = etl("import", "first.csv", *api, env=NO_ENV)
        assert [r["outcome"] for r in run.report()] == ["skipped", "in_doubt"], run.err
        box.faults.error_after_create = box.faults.list_error = 0.0
        yield box, api, run


def test_an_errors_csv_without_its_errors_column_never_posts_a_row_in_doubt_again(etl, tmp_path):
    """The operator takes the reasons column out of errors.csv before loading it again: the file
    is no errors.csv then, and its "'+1 guest" is read as it is, a row the journal never saw. But
    without the ' it is the row in doubt (its record made, its answer lost): refused, with what
    to do (before: posted as a second credit use, "'+1 guest")."""
    with row_in_doubt(etl, tmp_path, HEAD, "1281,1.5,plain\n", "1203,3,+1 guest\n") as (box, api, run):
        rows = lines(run.report_path().parent / "errors.csv")
        with open(tmp_path / "again.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([r[:-1] for r in rows])  # the reasons column taken out
        assert rows[1][2] == "'+1 guest"
        again = etl("import", "again.csv", *api, env=NO_ENV)
        (line,) = again.report()
        assert line["outcome"] == "invalid", again.err
        assert "first.csv row 3's credit use (" in line["errors"], line["errors"]
        assert [r["Description"] for r in box.store.records()] == ["plain", "+1 guest"]
        # a file whose own cells start so, of rows the journal never saw, is read as it is
        (tmp_path / "own.csv").write_text("CoworkerBookingCreditId,CreditUsed,Description\n1204,1,'-5 off\n",
                                          encoding="utf-8")
        assert [r["outcome"] for r in etl("import", "own.csv", *api, env=NO_ENV).report()] == ["created"]
        assert box.store.records()[-1]["Description"] == "'-5 off"


def test_a_guard_in_a_column_not_sent_without_the_errors_column_never_posts_a_row_in_doubt_again(
        etl, tmp_path):
    """The same with the guard in a column the schema does not know (a phone number, "+44 ...",
    is "'+44 ..." in errors.csv): the row's cells differ, so it is another row to etl, with the
    very payload of the row in doubt. Refused (before: posted again, a second charge)."""
    head = "CoworkerBookingCreditId,CreditUsed,Description,Phone\n"
    with row_in_doubt(etl, tmp_path, head, "1281,1.5,plain,0\n", "1203,3,Hot desk,+44 20 7946 0958\n") as (
            box, api, run):
        rows = lines(run.report_path().parent / "errors.csv")
        assert rows[1][3] == "'+44 20 7946 0958"
        with open(tmp_path / "again.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([r[:-1] for r in rows])
        (line,) = etl("import", "again.csv", *api, env=NO_ENV).report()
        assert line["outcome"] == "invalid" and "first.csv row 3's credit use (" in line["errors"], line
        assert [r["Description"] for r in box.store.records()] == ["plain", "Hot desk"]


@pytest.mark.parametrize("saved", ["trailing delimiter", "Errors", "moved first"])
def test_a_row_in_doubt_loaded_again_from_an_errors_csv_a_spreadsheet_saved_is_never_sent_twice(
        etl, tmp_path, saved):
    """A row created on the server whose answer was lost (in doubt) goes to errors.csv; the
    operator's spreadsheet saves it back with a trailing delimiter, a column added after the
    reasons, the header respelt, the reasons column moved. Each is still etl's errors.csv: its
    formula guard is taken off, the row is the same row, found created, and not posted again
    (a stricter reading of "etl's own errors.csv" posted it twice, with the guard on). Where the
    layout is not etl's, the reading is said."""
    with row_in_doubt(etl, tmp_path, HEAD, "1281,1.5,plain\n", "1203,3,+1 guest\n") as (box, api, run):
        rows = lines(run.report_path().parent / "errors.csv")
        assert rows[1][2] == "'+1 guest"
        rows = {"trailing delimiter": [r + [""] for r in rows],
                "Errors": [rows[0][:-1] + ["Errors"], rows[1]],
                "moved first": [[r[-1], *r[:-1]] for r in rows]}[saved]
        with open(tmp_path / "again.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
        again = etl("import", "again.csv", *api, env=NO_ENV)
        assert [r["outcome"] for r in again.report()] in (["created"], ["skipped"]), again.err
        assert [r["Description"] for r in box.store.records()] == ["plain", "+1 guest"]
        assert ("read as an errors.csv etl wrote" in again.err) is (saved != "trailing delimiter")
