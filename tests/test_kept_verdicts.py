"""The first pass's verdicts kept for the posting pass (etl.run.kept_verdicts): the texts of a
chunk's many invalid rows go to a file without a name and come back as they were, so a night
over a file of many invalid rows keeps its memory flat and reports every reason."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from etl.run.kept_verdicts import KeptVerdicts
from tests.test_ahead import leftovers, night
from tests.test_night_keys import sandbox  # noqa: F401 - the fixture


def test_many_reasons_come_back_as_they_were_and_few_stay_in_memory(tmp_path):
    kept = KeptVerdicts(str(tmp_path / "keys"))
    odd = ["CreditUsed: 'x1' is not a number", "", "Description: Zoë’s ☕ \x00 nul", "a\r\nb", "\udc80"]
    many = {p: odd[p % len(odd)] + f" #{p}" for p in range(0, 6000, 3)}
    valid = np.ones(6000, bool)
    valid[list(many)] = False
    kept.put((0, 0), many, valid)
    kept.put((0, 1), {5: "few"}, np.arange(10) != 5)
    kept.put((1, 0), {1: "gone"}, np.arange(3) != 1)
    assert [p.name.startswith("verdicts-") for p in (tmp_path / "keys").iterdir()] == []  # unnamed
    texts, bits, n = kept.pop((0, 0))
    assert texts == many and n == 6000
    assert np.array_equal(np.unpackbits(bits, count=n).astype(bool), valid)
    assert kept.pop((0, 1))[0] == {5: "few"}
    kept.discard((1, 0))
    assert kept.pop((1, 0)) is None and kept.pop((0, 0)) is None
    kept.close()


def test_a_night_over_a_file_of_many_invalid_rows_reports_every_reason(etl, sandbox, tmp_path):  # noqa: F811
    """Half of 70,000 rows are invalid (every chunk's reasons go to disk): tonight's rows are
    created, and each invalid row's line says what the dry run says of it, in order."""
    path = tmp_path / "history.csv"
    rows = 70_000
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        w.writerows([str(11 + i % 5), f"x{i}" if i % 2 else f"{1 + i % 40}.25", f"Desk #{i}"]
                    for i in range(rows))
    dry = etl("validate", path)
    run = night(etl, sandbox, path, 10)
    assert run.code == 4, run.out + run.err
    report = run.report()
    assert [r["errors"] for r in report[1::2]] == [r["errors"] for r in dry.report()[1::2]]
    assert all(f"x{i}" in report[i]["errors"] for i in range(1, rows, 2))
    assert [r["outcome"] for r in report[0:20:2]] == ["created"] * 10
    counts = {k: n for k, n in run.summary()["counts"].items() if n}
    assert counts == {"invalid": rows // 2, "created": 10, "not_attempted": rows // 2 - 10}
    assert len(sandbox.store.records()) == 10
    assert leftovers(tmp_path) == []
    assert not list(Path(tmp_path).rglob("verdicts-*"))


def test_a_folder_that_cant_be_made_keeps_the_reasons_in_the_systems_temporary_folder(tmp_path):
    """As the keys of the rows seen do (etl.ledger.rowkeys.scratch_file): a state folder that
    can't be made (here under a file) is no reason to stop; the reasons go to the system's."""
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder would be")
    kept = KeptVerdicts(str(blocker / "keys"))
    many = {p: f"CreditUsed: 'x{p}' is not a number" for p in range(2000)}
    kept.put((0, 0), many, np.zeros(2000, bool))
    assert kept.pop((0, 0))[0] == many
    assert kept.folder != str(blocker / "keys")
    kept.close()
