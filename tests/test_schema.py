"""A rule added to a copy of the schema file, and nothing else, is honoured on every row: in
`etl validate`, in `etl import --sandbox` and in `etl schema`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tests.test_import import TOKEN

SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / "coworkerbookingcreditusehistories.py"
NO_ENV = {"NEXUDUS_TOKEN": None, "NEXUDUS_USERNAME": None, "NEXUDUS_PASSWORD": None,
          "NEXUDUS_API_URL": None}
ONE_LINK = (
    "    checks=[pa.Check(lambda df: df[['BookingId', 'CoworkerInvoiceLineId', 'EventAttendeeId']]"
    ".notna().sum(axis='columns') == 1,\n"
    "                     error='exactly one of BookingId, CoworkerInvoiceLineId, EventAttendeeId')],\n"
)


def schema_copy(folder: Path, old: str = "", new: str = "", name: str = "credituses.py") -> Path:
    """The installed schema file copied to FOLDER, with OLD replaced by NEW (once, and it must be
    there: a test that edits nothing proves nothing)."""
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def at_most_100(folder: Path) -> Path:
    return schema_copy(folder, "Amount, checks=[pa.Check.gt(0)],",
                       "Amount, checks=[pa.Check.gt(0), pa.Check.le(100)],")


def exactly_one_link(folder: Path) -> Path:
    return schema_copy(folder, '    name="coworkerbookingcreditusehistories",\n',
                       '    name="coworkerbookingcreditusehistories",\n' + ONE_LINK)


def uses(folder: Path, *rows: str) -> Path:
    path = folder / "uses.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Description,BookingId,CoworkerInvoiceLineId,"
                    "EventAttendeeId\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_at_most_100_added_to_credit_used_refuses_150_in_validate(etl, tmp_path):
    schema = at_most_100(tmp_path)
    data = uses(tmp_path, "101,150,big,1,,", "102,100,limit,2,,", "103,100.0000001,just over,3,,",
                "104,-1,both wrong,4,,")
    run = etl("validate", data, "--resource", schema)
    assert run.code == 1, run.err
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("invalid", 'CreditUsed: "150" is larger than 100'),
        ("valid", ""),
        ("invalid", 'CreditUsed: "100.0000001" is larger than 100'),  # exact: no float rounds it down
        ("invalid", 'CreditUsed: "-1" must be greater than 0'),
    ]
    assert run.summary()["schema"] == str(schema)  # which rules this run held the rows to
    assert etl("validate", data).code == 1  # the installed schema is untouched: 150 is fine there
    assert [r["outcome"] for r in etl("validate", data).report()] == ["valid"] * 3 + ["invalid"]


def test_at_most_100_added_to_credit_used_refuses_150_in_import(etl, tmp_path):
    schema = at_most_100(tmp_path)
    data = uses(tmp_path, "1281,150,big,880000,,", "1203,3,small,,51001,")
    run = etl("import", data, "--resource", schema, "--sandbox", "--rate", "500", env=NO_ENV)
    assert run.code == 1, run.err
    assert [r["outcome"] for r in run.report()] == ["invalid", "created"]
    assert run.report()[0]["errors"] == 'CreditUsed: "150" is larger than 100'


def test_a_dataframe_wide_check_is_honoured_on_every_row(etl, tmp_path):
    schema = exactly_one_link(tmp_path)
    data = uses(tmp_path, "1281,1,none,,,", "1203,2,one,880000,,", "1231,3,two,880001,51001,",
                "1217,abc,unreadable,,,", "1203,4,one again,,,7302")
    message = "row: fails exactly one of BookingId, CoworkerInvoiceLineId, EventAttendeeId"
    expected = [("invalid", message), ("valid", ""), ("invalid", message),
                ("invalid", 'CreditUsed: "abc" is not a number'), ("valid", "")]
    run = etl("validate", data, "--resource", schema)
    assert run.code == 1, run.err
    assert [(r["outcome"], r["errors"]) for r in run.report()] == expected
    run = etl("import", data, "--resource", schema, "--sandbox", "--rate", "500", env=NO_ENV)
    assert [r["outcome"] for r in run.report()] == ["invalid", "created", "invalid", "invalid", "created"]
    assert [r["errors"] for r in run.report() if r["outcome"] == "invalid"] == [
        errors for outcome, errors in expected if outcome == "invalid"]


def test_a_wide_check_sees_a_column_the_file_lacks_as_blank(etl, tmp_path):
    schema = exactly_one_link(tmp_path)
    path = tmp_path / "two_columns.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,BookingId\n1,1,5\n2,2,\n", encoding="utf-8")
    rows = etl("validate", path, "--resource", schema).report()
    assert [r["outcome"] for r in rows] == ["valid", "invalid"]


def test_description_length_and_a_custom_check_read_in_plain_words(etl, tmp_path):
    schema = schema_copy(
        tmp_path, 'str, required=False, nullable=True, description="Note shown with the credit use.",',
        'str, required=False, nullable=True, description="Note shown with the credit use.",\n'
        '            checks=[pa.Check.str_length(max_value=255),\n'
        '                    pa.Check(lambda s: ~s.str.contains("TODO"), name="no_todo")],')
    data = uses(tmp_path, f"1,1,{'x' * 255},,,", f"2,1,{'é' * 256},,,", "3,1,TODO fix,,,", "4,1,,,,")
    run = etl("validate", data, "--resource", schema)
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("valid", ""),
        ("invalid", f'Description: "{"é" * 59}…" is longer than 255 characters'),
        ("invalid", 'Description: "TODO fix" fails no_todo'),
        ("valid", ""),  # blank is null: checks skip it, and the column is nullable
    ]
    listed = etl("schema", "--resource", schema).out
    assert "text, at most 255 characters, no_todo" in listed


def test_a_registered_custom_check_is_honoured(etl, tmp_path):
    schema = schema_copy(
        tmp_path, "import pandera.pandas as pa\n",
        "import pandera.pandas as pa\nfrom pandera import extensions\n\n"
        "if not hasattr(pa.Check, 'quarters'):\n"
        "    @extensions.register_check_method()\n"
        "    def quarters(series):\n"
        "        return (series * 4) % 1 == 0\n")
    schema.write_text(schema.read_text().replace("Amount, checks=[pa.Check.gt(0)],",
                                                 "Amount, checks=[pa.Check.gt(0), pa.Check.quarters()],"))
    run = etl("validate", uses(tmp_path, "1,1.25,,,,", "2,1.3,,,,"), "--resource", schema)
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("valid", ""), ("invalid", 'CreditUsed: "1.3" fails quarters')]


def test_schema_lists_the_added_rules(etl, tmp_path):
    run = etl("schema", "--resource", exactly_one_link(at_most_100(tmp_path).parent))
    assert run.code == 0, run.err
    assert "Every row: exactly one of BookingId, CoworkerInvoiceLineId, EventAttendeeId" in run.out
    run = etl("schema", "--resource", at_most_100(tmp_path))
    assert "decimal number, greater than 0, at most 100" in run.out
    column = '        "EventAttendeeId": pa.Column('
    schema = schema_copy(tmp_path, column, '        "Notes": pa.Column(str),\n' + column, name="notes.py")
    assert etl("schema", "--resource", schema, "--template", "blank.csv").code == 0
    assert (tmp_path / "blank.csv").read_text().strip() == (
        "CoworkerBookingCreditId,CreditUsed,Description,BookingId,CoworkerInvoiceLineId,Notes,EventAttendeeId")


def test_required_and_nullable_come_from_the_schema(etl, tmp_path):
    schema = schema_copy(
        tmp_path, 'str, required=False, nullable=True, description="Note shown with the credit use.",',
        'str, required=True, nullable=False, description="Note shown with the credit use.",')
    run = etl("validate", SAMPLES / "credit_uses.csv", "--resource", schema)
    assert run.code == 0, run.err
    run = etl("validate", uses(tmp_path, "1,1,,,,", "2,1,  ,,,", "3,1,x,,,"), "--resource", schema)
    assert [r["errors"] for r in run.report()] == ["Description: is required"] * 2 + [""]
    path = tmp_path / "no_description.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed\n1,1\n", encoding="utf-8")
    reports = len(list(run.cwd.glob("logs/*/results.csv")))
    run = etl("validate", path, "--resource", schema)
    assert run.code == 2
    assert "no_description.csv: required column missing: Description" in run.err
    assert len(list(run.cwd.glob("logs/*/results.csv"))) == reports


@pytest.mark.parametrize("old, new, message", [
    ('"Int64", checks=ID_CHECKS, required=True,', "int, checks=ID_CHECKS, required=True,",
     'column CoworkerBookingCreditId: etl reads cells as "Int64", etl.dtypes.Amount or str, not int64 '
     '(declare "Int64"'),
    ("ID_CHECKS = [", "ID_CHECKS = [undefined_name, ", "line 16: the schema can't be loaded: NameError"),
    ("SCHEMA = pa.DataFrameSchema(", "OTHER = pa.DataFrameSchema(", "defines no SCHEMA"),
    ('"endpoint": "/api/billing/coworkerbookingcreditusehistories",', "",
     'SCHEMA has no metadata={"endpoint": "/api/..."}'),
])
def test_a_schema_etl_cannot_honour_is_one_line_and_exit_2(etl, tmp_path, old, new, message):
    schema = schema_copy(tmp_path, old, new)
    run = etl("validate", SAMPLES / "credit_uses.csv", "--resource", schema)
    assert run.code == 2
    assert message in run.err
    assert run.err.count("\n") == 1 and "Traceback" not in run.err


def test_a_schema_file_that_is_not_there(etl, tmp_path):
    run = etl("validate", SAMPLES / "credit_uses.csv", "--resource", tmp_path / "nope.py")
    assert run.code == 2
    assert "nope.py: no such schema file" in run.err


def test_a_check_that_raises_is_a_schema_problem_not_a_traceback(etl, tmp_path):
    schema = schema_copy(tmp_path, '    name="coworkerbookingcreditusehistories",\n',
                         '    name="coworkerbookingcreditusehistories",\n'
                         "    checks=[pa.Check(lambda df: df['NoSuchColumn'] > 0, name='broken')],\n")
    run = etl("validate", SAMPLES / "credit_uses.csv", "--resource", schema)
    assert run.code == 2
    assert "the check broken of the schema failed to run: KeyError" in run.err
    assert "Traceback" not in run.err
    assert f"{SAMPLES / 'credit_uses.csv'} rows 2 to " in run.err  # the file, and the rows it was given


def test_a_check_that_returns_what_pandera_cannot_read_says_so(etl, tmp_path):
    """pandera answers a check returning a NumPy array (or a list) with a NotImplementedError of
    no words: the run stops (as pandera's validate fails) and says what a check returns."""
    schema = schema_copy(tmp_path, "Amount, checks=[pa.Check.gt(0)],",
                         "Amount, checks=[pa.Check.gt(0), "
                         "pa.Check(lambda s: (s < 100).to_numpy(), name='small')],")
    run = etl("validate", SAMPLES / "credit_uses.csv", "--resource", schema)
    assert run.code == 2
    assert "column CreditUsed: the check small failed to run: pandera cannot read what it returned" in run.err
    assert "a pandas Series or DataFrame of True/False" in run.err
    assert "credit_uses.csv rows 2 to " in run.err
    assert run.err.count("\n") == 1 and "Traceback" not in run.err


def test_a_check_that_only_warns_makes_no_row_invalid(etl, tmp_path):
    schema = schema_copy(tmp_path, "Amount, checks=[pa.Check.gt(0)],",
                         "Amount, checks=[pa.Check.gt(0), pa.Check.le(100, raise_warning=True)],")
    run = etl("validate", uses(tmp_path, "1,150,,,,", "2,-1,,,,", "3,200,,,,"), "--resource", schema)
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("valid", ""), ("invalid", 'CreditUsed: "-1" must be greater than 0'), ("valid", "")]
    # as pandera warns of it: the rows that fail it told, on the terminal and in summary.json
    assert "2 rows fail CreditUsed: at most 100 (the first: " in run.err and "row 2)" in run.err
    assert "they stay valid" in run.err
    summary = json.loads((run.report_path().parent / "summary.json").read_text())
    assert [(w["check"], w["rows"]) for w in summary["warnings"]] == [("CreditUsed: at most 100", 2)]
    imported = etl("import", uses(tmp_path, "1,150,,,,", "2,-1,,,,", "3,200,,,,"), "--resource", schema,
                   "--sandbox", "--no-check-credits", "--rate", "500")
    assert [r["outcome"] for r in imported.report()] == ["created", "invalid", "created"]
    summary = json.loads((imported.report_path().parent / "summary.json").read_text())
    assert [(w["check"], w["rows"]) for w in summary["warnings"]] == [("CreditUsed: at most 100", 2)]


def _model_file(folder: Path, credit_id: str, credit_used: str, tail: str) -> Path:
    """A schema file of a DataFrameModel `Uses` (the fields' pa.Field arguments given), its
    endpoint in Config.metadata, then TAIL (which says what SCHEMA is)."""
    model = folder / "model.py"
    model.write_text(
        "import pandas as pd\n"
        "import pandera.pandas as pa\n"
        "from pandera.typing import Series\n"
        "from etl.dtypes import Amount\n\n\n"
        "class Uses(pa.DataFrameModel):\n"
        f"    CoworkerBookingCreditId: Series[pd.Int64Dtype] = pa.Field({credit_id})\n"
        f"    CreditUsed: Series[Amount] = pa.Field({credit_used})\n\n"
        "    class Config:\n"
        "        name = 'coworkerbookingcreditusehistories'\n"
        "        metadata = {'endpoint': '/api/billing/coworkerbookingcreditusehistories'}\n\n\n"
        + tail, encoding="utf-8")
    return model


@pytest.mark.parametrize("given", ["Uses", "Uses.to_schema()"])
def test_a_dataframe_model_is_a_schema_too(etl, tmp_path, given):
    """The model, or the schema it makes (whose to_schema() leaves Config.metadata behind: the
    endpoint is the model's all the same)."""
    model = _model_file(tmp_path, "gt=0, le=2**31 - 1, nullable=False",
                        "gt=0, le=100, metadata={'aliases': ['Amount']}", f"SCHEMA = {given}\n")
    path = tmp_path / "m.csv"
    path.write_text("CoworkerBookingCreditId,Amount\n1,150\n2,2.5\n", encoding="utf-8")
    run = etl("validate", path, "--resource", model)
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("invalid", 'CreditUsed: "150" is larger than 100'), ("valid", "")]


def test_a_copy_named_otherwise_is_still_the_same_rows_to_the_journal(etl, tmp_path):
    """A rerun with a schema file whose name= differs (or is left out) sends nothing again."""
    first = etl("import", SAMPLES / "credit_uses.csv", "--sandbox", "--rate", "500", env=NO_ENV)
    assert first.out.startswith("24 rows: 24 created."), first.err
    for old, new in (('name="coworkerbookingcreditusehistories",', 'name="strict",'),
                     ('    name="coworkerbookingcreditusehistories",\n', "")):
        schema = schema_copy(tmp_path, old, new, name="strict.py")
        again = etl("import", SAMPLES / "credit_uses.csv", "--resource", schema, "--sandbox", "--rate", "500",
                    env=NO_ENV)
        assert again.out.startswith("24 rows: 24 skipped."), again.out + again.err


def test_reporting_options_of_pandera_let_no_invalid_row_through(etl, tmp_path):
    schema = schema_copy(tmp_path, "Amount, checks=[pa.Check.gt(0)], required=True, nullable=False,",
                         "Amount, checks=[pa.Check.gt(0, n_failure_cases=1)], required=True, nullable=False, "
                         "drop_invalid_rows=True,")
    run = etl("validate", uses(tmp_path, "1,-1,,,,", "2,-2,,,,", "3,0,,,,", "4,1,,,,"), "--resource", schema)
    assert [r["outcome"] for r in run.report()] == ["invalid"] * 3 + ["valid"]


def test_a_strict_schema_refuses_a_file_with_other_columns(etl, tmp_path):
    schema = schema_copy(tmp_path, '    name="coworkerbookingcreditusehistories",\n',
                         '    name="coworkerbookingcreditusehistories",\n    strict=True,\n')
    path = tmp_path / "extra.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed,Member\n1,1,Ada\n", encoding="utf-8")
    run = etl("validate", path, "--resource", schema)
    assert run.code == 2
    assert 'extra.csv: column not in the schema, which is strict: "Member"' in run.err
    assert etl("validate", SAMPLES / "credit_uses.csv", "--resource", schema).code == 0


def test_a_schema_file_of_the_release_before_the_stage_folders_still_loads(etl, tmp_path):
    """An operator's copy of the schema, made before the stages had folders (it imports
    `etl.resources`), keeps validating and importing as it did."""
    schema = Path(__file__).parent / "data" / "schemas" / "previous_release.py"
    sample = Path(__file__).parent.parent / "samples" / "credit_uses.csv"
    run = etl("validate", sample, "--resource", schema)
    assert run.code == 0, run.err
    assert {r["outcome"] for r in run.report()} == {"valid"}


@pytest.fixture
def sandbox():
    from etl.sandbox import Faults, Sandbox

    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,)) as box:
        yield box


ACROSS_ROWS = {  # rules that look at other rows than the one they answer for, as users write them
    "no two alike": ('"BookingId": pa.Column(\n', "checks=ID_CHECKS,",
                     "checks=ID_CHECKS + [pa.Check(lambda s: ~s.duplicated(keep=False), name='once')],"),
    "the row before": ('"BookingId": pa.Column(\n', "checks=ID_CHECKS,",
                       "checks=ID_CHECKS + [pa.Check(lambda s: s.diff().fillna(1) > 0, name='rising')],"),
    "a total": ('"CreditUsed": pa.Column(\n', "checks=[pa.Check.gt(0)],",
                "checks=[pa.Check.gt(0), pa.Check(lambda s: s.sum() < 10**6, name='total')],"),
    "far from the mean": ('"BookingId": pa.Column(\n', "checks=ID_CHECKS,",
                          "checks=ID_CHECKS + [pa.Check(lambda s: (s - s.mean()).abs() <= 3 * s.std(), "
                          "name='usual')],"),
    "one answer for the column": ('"CreditUsed": pa.Column(\n', "checks=[pa.Check.gt(0)],",
                                  "checks=[pa.Check.gt(0), pa.Check.unique_values_eq([1])],"),
    "a group's count (the frame)": ('    name="coworkerbookingcreditusehistories",\n', "", ""),
}


def across(tmp_path: Path, rule: str, declared: bool = False) -> Path:
    """The installed schema with RULE of ACROSS_ROWS added (DECLARED: its column, or the schema,
    said to be checked row by row)."""
    where, old, new = ACROSS_ROWS[rule]
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    said = '"row_by_row": True, '
    if old:
        at = text.index(where)
        end = text.index(old, at)
        text = text[:end] + new + text[end + len(old):]
        close = text.index("\n        ),", at)  # the column's end
        block = text[at:close]
        block = block.replace("metadata={", "metadata={" + said, 1) if "metadata={" in block else \
            block + f"\n            metadata={{{said}}},"
        if declared:
            text = text[:at] + block + text[close:]
    else:
        text = text.replace(where, where + "    checks=[pa.Check(lambda df: df.groupby("
                            "'CoworkerBookingCreditId')['CreditUsed'].transform('count') <= 500, "
                            "name='few_uses')],\n")
        if declared:
            text = text.replace("metadata={\n", "metadata={\n" + "        " + said + "\n", 1)
    assert text != SCHEMA_FILE.read_text(encoding="utf-8")
    schema = tmp_path / "across.py"
    schema.write_text(text, encoding="utf-8")
    return schema


def big_file(tmp_path: Path, rows: int = 40_000) -> Path:
    """A file of more rows than etl checks in one piece: each row valid, bookings and credits
    all different, amounts rising."""
    path = tmp_path / "big.csv"
    lines = ["CoworkerBookingCreditId,CreditUsed,Description,BookingId"]
    lines += [f"{1000 + i},{1 + i / 1000:.3f},use {i},{700000 + i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_check_across_rows_is_held_on_a_file_of_one_piece_as_pandera_holds_it(etl, tmp_path):
    """A file of up to 32,768 rows is checked whole: a rule across rows (no two bookings alike)
    sees every row at once, and the rows that break it are invalid, never posted."""
    schema = across(tmp_path, "no two alike")
    data = uses(tmp_path, "1281,1,a,880000,,", "1203,2,b,880001,,", "1231,3,c,880000,,", "1217,4,d,,,")
    run = etl("validate", data, "--resource", schema)
    assert run.code == 1, run.err
    assert [r["outcome"] for r in run.report()] == ["invalid", "valid", "invalid", "valid"]
    posted = etl("import", data, "--resource", schema, "--sandbox", "--rate", "500", env=NO_ENV)
    assert [r["outcome"] for r in posted.report()] == ["invalid", "created", "invalid", "created"]


def test_on_a_big_file_a_check_not_said_row_by_row_is_refused_before_anything_is_sent(etl, sandbox, tmp_path):
    """A file of more rows is checked a chunk at a time: a check etl can't know answers for
    each row alone (a vectorised lambda) is refused there, in the dry run and the import,
    before a row is sent, naming what to do (rows breaking a rule across chunks were posted)."""
    schema = across(tmp_path, "no two alike")
    data = big_file(tmp_path)
    dry = etl("validate", data, "--resource", schema)
    assert dry.code == 2, dry.err
    assert 'add "row_by_row": True to the metadata of column BookingId' in dry.err
    assert "Traceback" not in dry.err and len(dry.err.strip().splitlines()) == 1
    run = etl("import", data, "--resource", schema, "--api-url", sandbox.url, "--token", TOKEN,
              "--no-check-credits", env=NO_ENV)
    assert run.code == 2, run.err
    assert sandbox.store.records() == []


@pytest.mark.parametrize("rule", sorted(ACROSS_ROWS))
def test_on_a_big_file_a_check_said_row_by_row_that_looks_across_rows_is_refused(etl, tmp_path, rule):
    """The author's word that a check answers for each row by itself is tried: a rule across
    rows said to be row by row is refused on a big file (no trial proves the word; these catch
    a total, a count, no two alike, the row before, a group)."""
    run = etl("validate", big_file(tmp_path), "--resource", across(tmp_path, rule, declared=True))
    assert run.code == 2, run.err
    assert "but it looks at other rows" in run.err and "Traceback" not in run.err


def test_on_a_big_file_a_check_said_row_by_row_is_held_on_every_row(etl, tmp_path):
    schema = schema_copy(tmp_path, '"BookingId": pa.Column(\n            "Int64", checks=ID_CHECKS,',
                         '"BookingId": pa.Column(\n            "Int64", checks=ID_CHECKS + '
                         '[pa.Check(lambda s: s % 1000 != 7, name="not_7")], metadata={"row_by_row": True},')
    run = etl("validate", big_file(tmp_path), "--resource", schema)
    assert run.code == 1, run.err
    bad = [r for r in run.report() if r["outcome"] == "invalid"]
    assert len(bad) == 40 and all(r["BookingId"].endswith("007") for r in bad)


def test_checks_of_each_row_alone_are_kept_whatever_they_are_written_as(etl, tmp_path):
    """Checks that answer for each row by itself pass the trials, written as a vectorised
    function, an element-wise one, or a frame check across a row's columns."""
    schema = schema_copy(
        tmp_path, "Amount, checks=[pa.Check.gt(0)],",
        "Amount, checks=[pa.Check.gt(0), pa.Check(lambda s: s <= 100), "
        "pa.Check(lambda v: v != 7, element_wise=True)],")
    text = schema.read_text(encoding="utf-8").replace(
        '    name="coworkerbookingcreditusehistories",\n',
        '    name="coworkerbookingcreditusehistories",\n'
        "    checks=[pa.Check(lambda df: df[['BookingId', 'CoworkerInvoiceLineId', 'EventAttendeeId']]"
        ".notna().sum(axis=1) <= 1, name='one_use')],\n")
    schema.write_text(text, encoding="utf-8")
    run = etl("validate", SAMPLES / "credit_uses.csv", "--resource", schema)
    assert run.code in (0, 1), run.err
    assert len(run.report()) == 24


@pytest.mark.parametrize(("old", "new", "said"), [
    ("Amount, checks=[pa.Check.gt(0)],",
     "Amount, checks=[pa.Check.gt(0, groupby='CoworkerBookingCreditId')],", "is grouped by"),
    ('"BookingId": pa.Column(\n            "Int64",',
     '"BookingId": pa.Column(\n            "Int64", default=1,', "default= can't be honoured"),
    ('    name="coworkerbookingcreditusehistories",\n',
     '    name="coworkerbookingcreditusehistories",\n    ordered=True,\n', "ordered=True can't be honoured"),
    ('    name="coworkerbookingcreditusehistories",\n',
     '    name="coworkerbookingcreditusehistories",\n    add_missing_columns=True,\n',
     "add_missing_columns=True can't be honoured"),
    ('    name="coworkerbookingcreditusehistories",\n',
     '    name="coworkerbookingcreditusehistories",\n    index=pa.Index(int, checks=pa.Check.lt(10)),\n',
     "index= can't be honoured"),
    ('    name="coworkerbookingcreditusehistories",\n',
     '    name="coworkerbookingcreditusehistories",\n    unique_column_names=True,\n',
     "unique_column_names=True can't be honoured"),
    ('"Description": pa.Column(\n            str,',
     '"Description": pa.Column(\n            str, parsers=pa.Parser(lambda s: s.str.lower()),',
     "parsers= can't be honoured"),
])
def test_what_a_schema_says_that_etl_would_not_honour_is_refused_at_once(etl, tmp_path, old, new, said):
    """pandera options etl would ignore (a value parsed or defaulted before it is checked, an
    order of columns, an index, a check by group) are refused in one line, not ignored: the
    posted value was the cell as read, and rows pandera refuses were posted."""
    schema = schema_copy(tmp_path, old, new)
    run = etl("validate", SAMPLES / "credit_uses.csv", "--resource", schema)
    assert run.code == 2
    assert said in run.err and "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1


def test_a_small_file_with_many_blank_lines_is_checked_in_one_piece(etl, tmp_path):
    """Blank lines count in row numbers, not in rows: three rows after 33,000 blank lines are a
    file of one piece, and a rule across rows is held on it (it was refused as a big file)."""
    schema = across(tmp_path, "no two alike")
    data = tmp_path / "blank.csv"
    data.write_text("CoworkerBookingCreditId,CreditUsed,Description,BookingId\n" + "\n" * 33_000
                    + "1281,1,a,880000\n1203,2,b,880001\n1231,3,c,880000\n", encoding="utf-8")
    run = etl("validate", data, "--resource", schema)
    assert run.code == 1, run.err
    assert [r["outcome"] for r in run.report()] == ["invalid", "valid", "invalid"]


def test_unique_is_held_on_a_file_of_one_piece_and_refused_on_a_big_file(etl, sandbox, tmp_path):
    """pandera's unique=True (a booking charged once) and unique= of the schema (the same credit
    and booking twice): held on a file checked in one piece, every row that shares its value
    with another invalid, never posted; refused before a row is sent on a bigger file, checked
    a chunk at a time (it was refused on every file)."""
    schema = schema_copy(tmp_path, '"BookingId": pa.Column(\n            "Int64", checks=ID_CHECKS,',
                         '"BookingId": pa.Column(\n            "Int64", checks=ID_CHECKS, unique=True,')
    data = uses(tmp_path, "1281,1,a,880000,,", "1203,2,b,880001,,", "1231,3,c,880000,,", "1217,4,d,,,",
                "1218,5,e,,,")
    run = etl("validate", data, "--resource", schema)
    assert run.code == 1, run.err
    assert [r["outcome"] for r in run.report()] == ["invalid", "valid", "invalid", "valid", "valid"]
    assert run.report()[0]["errors"] == 'BookingId: "880000" is in another row too (unique=True)'
    posted = etl("import", data, "--resource", schema, "--api-url", sandbox.url, "--token", TOKEN,
                 "--no-check-credits", env=NO_ENV)
    assert [r["outcome"] for r in posted.report()] == ["invalid", "created", "invalid", "created", "created"]
    big = etl("import", big_file(tmp_path), "--resource", schema, "--api-url", sandbox.url, "--token", TOKEN,
              "--no-check-credits", env=NO_ENV)
    assert big.code == 2 and "unique=True can't be held on a file of more than 32,768 rows" in big.err
    assert len(sandbox.store.records()) == 3

    together = schema_copy(tmp_path, '    name="coworkerbookingcreditusehistories",\n',
                           '    name="coworkerbookingcreditusehistories",\n'
                           '    unique=["CoworkerBookingCreditId", "BookingId"],\n', name="together.py")
    pairs = uses(tmp_path, "1281,1,a,880000,,", "1281,2,b,880000,,", "1203,3,c,880000,,")
    run = etl("validate", pairs, "--resource", together)
    assert [r["outcome"] for r in run.report()] == ["invalid", "invalid", "valid"]


def test_unique_keeps_the_first_or_the_last_of_rows_alike_as_report_duplicates_says(etl, tmp_path):
    """pandera's report_duplicates= says which rows alike fail: all of them (the default), or
    all but the first (exclude_first) or the last (exclude_last)."""
    data = uses(tmp_path, "1281,1,a,880000,,", "1203,2,b,880000,,", "1231,3,c,880000,,")
    expected = {"all": ["invalid"] * 3, "exclude_first": ["valid", "invalid", "invalid"],
                "exclude_last": ["invalid", "invalid", "valid"]}
    for report, outcomes in expected.items():
        schema = schema_copy(tmp_path, '"BookingId": pa.Column(\n            "Int64", checks=ID_CHECKS,',
                             '"BookingId": pa.Column(\n            "Int64", checks=ID_CHECKS, unique=True, '
                             f'report_duplicates="{report}",', name=f"{report}.py")
        run = etl("validate", data, "--resource", schema)
        assert [r["outcome"] for r in run.report()] == outcomes, report


def _two_column_file(folder: Path, *lines: str, extra: str = "") -> Path:
    path = folder / "uses.csv"
    path.write_text(f"CoworkerBookingCreditId,CreditUsed,BookingId{extra}\n" + "\n".join(lines) + "\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("result", [
    "(s > 4).reset_index(drop=True)",  # the blank rows are not given to it: other labels
    "(s > 4)[::-1]",  # its rows in another order (pandera fails it, naming no row)
    "pd.Series([False], index=[999])",  # a label no row has
    "pd.Series([False], index=['x'])",
])
def test_a_check_answering_for_other_rows_than_it_was_given_stops_the_run(etl, tmp_path, result):
    """A check whose result is indexed otherwise than what it was given would put its answers
    on other rows (a row it refuses reported valid): the run stops before a row is sent, and
    says what to keep."""
    schema = schema_copy(tmp_path, "import pandera.pandas as pa\n",
                         "import pandas as pd\nimport pandera.pandas as pa\n")
    schema.write_text(schema.read_text().replace(
        '"Int64", checks=ID_CHECKS, required=False, nullable=True,\n'
        '            description="The booking the credit paid for.",',
        '"Int64", checks=[pa.Check(lambda s: ' + result + ', name="above_4")], required=False,\n'
        '            nullable=True, description="The booking the credit paid for.",'))
    assert "above_4" in schema.read_text()
    data = _two_column_file(tmp_path, "1,1,5", "2,1,", "3,1,-1", "4,1,12", "5,1,3")
    for command in (["validate"], ["import", "--sandbox", "--no-check-credits"]):
        run = etl(*command, data, "--resource", schema)
        assert run.code == 2, run.output
        assert "uses.csv rows 2 to 6: column BookingId: the check above_4 answered for other rows" in run.err
        assert "keep that index" in run.err and "Traceback" not in run.err


@pytest.mark.parametrize(("result", "passes"), [
    ("(s < 50)[s > 10]", False),  # some rows left out, a False among the others
    ("(s < 500)[s > 10]", True),  # some rows left out, the others True
    ("(s > 0).sort_values()", True),  # reordered, all True
])
def test_a_check_answering_for_other_rows_passes_only_if_all_true_as_pandera(etl, tmp_path, result, passes):
    """A result indexed otherwise than what the check was given passes when every answer is
    True, as in pandera; one False fails the check as a whole (pandera names no row): the run
    stops, since its answers can't be told to be of which rows."""
    schema = schema_copy(tmp_path, "Amount, checks=[pa.Check.gt(0)],",
                         f"Amount, checks=[pa.Check.gt(0), pa.Check(lambda s: {result}, name='small')],")
    data = _two_column_file(tmp_path, "1,70,5", "2,5,6", "3,20,7")
    run = etl("validate", data, "--resource", schema)
    if passes:
        assert run.code == 0 and [r["outcome"] for r in run.report()] == ["valid"] * 3, run.err
    else:
        assert run.code == 2 and "the check small answered for other rows" in run.err, run.err


def test_a_schema_made_of_a_model_then_changed_keeps_its_changes(etl, tmp_path):
    """SCHEMA = Model.to_schema(), then a check added: the endpoint is the model's, the rules
    are SCHEMA's (the added check held); two models alike with the same metadata are one."""
    model = _model_file(tmp_path, "gt=0, nullable=False", "gt=0",
                        "class Again(Uses):\n    pass\n\n\n"
                        "SCHEMA = Uses.to_schema().update_column('CreditUsed', checks=[pa.Check.gt(0), "
                        "pa.Check.le(100)])\n")
    path = tmp_path / "m.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed\n1,150\n2,3\n", encoding="utf-8")
    run = etl("validate", path, "--resource", model)
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("invalid", 'CreditUsed: "150" is larger than 100'), ("valid", "")], run.err


def test_one_false_for_a_column_fails_every_row_blank_ones_too(etl, tmp_path):
    """A check answering False once (not row by row) fails the column as a whole, as pandera
    fails it: every row is invalid, its blank rows too when the check sees them (ignore_na=False)."""
    schema = schema_copy(
        tmp_path, '"Int64", checks=ID_CHECKS, required=False, nullable=True,\n'
                  '            description="The booking the credit paid for.",',
        '"Int64", checks=[pa.Check(lambda s: bool(s.notna().all()), ignore_na=False, name="no_blank")],\n'
        '            required=False, nullable=True, description="The booking the credit paid for.",')
    data = _two_column_file(tmp_path, "1,1,5", "2,1,", "3,1,7")
    run = etl("validate", data, "--resource", schema)
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("invalid", "BookingId: the column fails no_blank")] * 3


def test_a_frame_check_across_rows_sees_a_row_with_a_cell_it_cannot_read(etl, tmp_path):
    """A row with an unreadable cell is given to a frame check with that cell blank: its twin
    (a rule across rows) is refused as pandera would refuse both; the unreadable row says only
    what is wrong with its cell."""
    schema = schema_copy(
        tmp_path, '    name="coworkerbookingcreditusehistories",\n',
        '    name="coworkerbookingcreditusehistories",\n'
        '    checks=[pa.Check(lambda df: ~df.duplicated(subset=["CoworkerBookingCreditId", "BookingId"],'
        ' keep=False), name="no_two_alike")],\n')
    data = _two_column_file(tmp_path, "1,abc,5", "1,2,5", "2,2,5")
    assert [(r["outcome"], r["errors"]) for r in etl("validate", data, "--resource", schema).report()] == [
        ("invalid", 'CreditUsed: "abc" is not a number'), ("invalid", "row: fails no_two_alike"),
        ("valid", "")]


def test_a_frame_check_sees_neither_etls_own_errors_column_nor_columns_strict_filter_drops(etl, tmp_path):
    """errors.csv loaded again: its `errors` column is etl's, not the export's, and a frame
    check counting filled cells must not count it (the row failed, then passed, and was
    posted); under strict="filter" pandera drops the columns it does not know before checking."""
    three = ('    name="coworkerbookingcreditusehistories",\n'
             '    checks=[pa.Check(lambda df: df.notna().sum(axis="columns") >= 3, name="three_filled")],\n')
    schema = schema_copy(tmp_path, '    name="coworkerbookingcreditusehistories",\n', three)
    first = etl("validate", _two_column_file(tmp_path, "1,1,"), "--resource", schema)
    assert [r["errors"] for r in first.report()] == ["row: fails three_filled"]
    errors = first.report_path().parent / "errors.csv"
    again = etl("import", errors, "--resource", schema, "--sandbox", "--no-check-credits", "--rate", "500")
    assert [r["outcome"] for r in again.report()] == ["invalid"], again.output
    filtered = schema_copy(tmp_path, '    name="coworkerbookingcreditusehistories",\n',
                           three + '    strict="filter",\n', name="filtered.py")
    data = _two_column_file(tmp_path, "1,1,,", "2,3,,9", extra=",Note")
    assert [r["outcome"] for r in etl("validate", data, "--resource", filtered).report()] == ["invalid"] * 2


def test_a_frame_check_sees_the_files_other_columns_as_text(etl, tmp_path):
    schema = schema_copy(
        tmp_path, '    name="coworkerbookingcreditusehistories",\n',
        '    name="coworkerbookingcreditusehistories",\n'
        '    checks=[pa.Check(lambda df: df["Note"] != "bad", name="note_ok")],\n')
    data = _two_column_file(tmp_path, "1,1,5,ok", "2,1,6,bad", "3,1,7,", extra=",Note")
    run = etl("validate", data, "--resource", schema)
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("valid", ""), ("invalid", "row: fails note_ok"), ("valid", "")]
    # a header the file has twice: the second as pandas names it
    twice = schema_copy(tmp_path, '    name="coworkerbookingcreditusehistories",\n',
                        '    name="coworkerbookingcreditusehistories",\n'
                        '    checks=[pa.Check(lambda df: df["Note.1"] != "bad", name="second_note_ok")],\n',
                        name="twice.py")
    data = _two_column_file(tmp_path, "1,1,5,ok,bad", "2,1,6,bad,ok", extra=",Note,Note")
    assert [(r["outcome"], r["errors"]) for r in etl("validate", data, "--resource", twice).report()] == [
        ("invalid", "row: fails second_note_ok"), ("valid", "")]


@pytest.mark.parametrize(("check", "verdicts"), [
    ("pa.Check.gt(0.3)", ["invalid", "invalid", "valid"]),
    ("pa.Check.le(0.3)", ["valid", "valid", "invalid"]),
    ("pa.Check.isin([0.1, 0.2])", ["invalid", "valid", "invalid"]),
    ("pa.Check.in_range(0.1, 0.3)", ["valid", "valid", "invalid"]),
    ("pa.Check.in_range(0.1, 0.3, include_min=False)", ["valid", "invalid", "invalid"]),
    ("pa.Check.le(np.float64(0.3))", ["valid", "valid", "invalid"]),  # NumPy's floats too
])
def test_a_float_bound_of_an_amount_is_the_number_written(etl, tmp_path, check, verdicts):
    """`le(0.3)` holds "0.3" (an amount is an exact decimal; the double 0.3 is a hair below it):
    a float bound is read as its author wrote it, by pandera's run of the check as by etl's."""
    schema = schema_copy(tmp_path, "Amount, checks=[pa.Check.gt(0)],", f"Amount, checks=[{check}],")
    schema.write_text("import numpy as np\n" + schema.read_text(), encoding="utf-8")
    data = _two_column_file(tmp_path, "1,0.3,", "2,0.1,", "3,0.30000000000000001,")
    assert [r["outcome"] for r in etl("validate", data, "--resource", schema).report()] == verdicts


def test_a_range_open_at_an_end_says_so(etl, tmp_path):
    schema = schema_copy(tmp_path, "Amount, checks=[pa.Check.gt(0)],",
                         "Amount, checks=[pa.Check.in_range(0.5, 100, include_min=False)],")
    data = _two_column_file(tmp_path, "1,0.5,", "2,100,")
    assert [(r["outcome"], r["errors"]) for r in etl("validate", data, "--resource", schema).report()] == [
        ("invalid", 'CreditUsed: "0.5" must be above 0.5 and at most 100'), ("valid", "")]
    assert "above 0.5 and at most 100" in etl("schema", "--resource", schema).out


def test_a_frame_check_that_cannot_take_a_blank_still_checks_a_file_with_a_cell_it_cannot_read(etl, tmp_path):
    """A frame check of a column never blank (one value at a time: `v < 100` raises on None) is
    given the rows whose cells were all read when it can't take the blank of an unreadable one:
    the file is checked as before, the unreadable row invalid for its cell."""
    schema = schema_copy(
        tmp_path, '    name="coworkerbookingcreditusehistories",\n',
        '    name="coworkerbookingcreditusehistories",\n'
        '    checks=[pa.Check(lambda df: df["CreditUsed"].map(lambda v: v < 100), name="under_100")],\n')
    data = _two_column_file(tmp_path, "1,1,5", "2,abc,6", "3,150,7")
    run = etl("validate", data, "--resource", schema)
    assert run.code == 1, run.output
    assert [(r["outcome"], r["errors"]) for r in run.report()] == [
        ("valid", ""), ("invalid", 'CreditUsed: "abc" is not a number'), ("invalid", "row: fails under_100")]


def test_a_strict_schema_takes_its_own_errors_csv_back(etl, tmp_path):
    """errors.csv ends with etl's reasons column, which no schema names: under strict=True it is
    etl's own, not a column of the file's, and the fixed rows load again."""
    schema = schema_copy(tmp_path, '    name="coworkerbookingcreditusehistories",\n',
                         '    name="coworkerbookingcreditusehistories",\n    strict=True,\n')
    path = tmp_path / "export.csv"
    path.write_text("CoworkerBookingCreditId,CreditUsed\n1,1\n2,x\n", encoding="utf-8")
    run = etl("validate", path, "--resource", schema)
    errors_csv = run.report_path().parent / "errors.csv"
    errors_csv.write_text(errors_csv.read_text(encoding="utf-8").replace('"2","x"', '"2","2"'),
                          encoding="utf-8")  # the row fixed; its old reason stays, as an operator leaves it
    again = etl("validate", errors_csv, "--resource", schema)
    assert again.code == 0, again.err
    assert [r["outcome"] for r in again.report()] == ["valid"]
