"""The dry run's answers, held cell for cell: ~20k-row exports with assorted bad cells give the
very reports (results.csv and errors.csv) they gave when tests/data/make_golden.py made them (a
faster validator or reader must not change one word of one line)."""

from __future__ import annotations

import gzip
import shutil

import pytest

from tests.conftest import DATA


@pytest.mark.parametrize(
    "source, options, expected",
    [
        ("golden.csv.gz", [], "golden.csv.report.gz"),
        ("golden.xlsx", [], "golden.xlsx.report.gz"),
        ("golden.xlsx", ["--decimal", ","], "golden.xlsx.comma.report.gz"),
    ],
)
def test_report_is_the_golden_one(etl, tmp_path, source, options, expected):
    name = source.removesuffix(".gz")
    if source.endswith(".gz"):
        (tmp_path / name).write_bytes(gzip.decompress((DATA / source).read_bytes()))
    else:
        shutil.copy(DATA / source, tmp_path / name)
    run = etl("validate", name, *options, "--report", "out/results.csv")
    assert run.code == 1
    for made, kept in (("results.csv", expected), ("errors.csv", expected.replace(".report.", ".errors."))):
        got = (tmp_path / "out" / made).read_bytes().splitlines(keepends=True)
        want = gzip.decompress((DATA / kept).read_bytes()).splitlines(keepends=True)
        assert len(got) == len(want), made
        assert [i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b][:5] == [], made
