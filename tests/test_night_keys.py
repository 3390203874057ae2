"""A migration night keys its rows a chunk at a time (etl.ledger.rowkeys) and keeps the keys of an
unchanged file for the next night: the identities it gives are the row-by-row rules' (etl.ledger.identity),
every night, whatever the file's spellings, repeats and chunk boundaries."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.ledger.identity import Identities, cell_digest, identity_text
from etl.ledger.rowkeys import (
    SeenKeys,
    column_keys,
    content_key_of,
    content_keys,
    identity_texts,
    key_hex,
    payload_key_of,
    payload_keys,
    ranks,
    text_hash,
    text_hashes,
)
from etl.sandbox import Faults, Sandbox
from etl.validate.values import Kind, value
from tests.test_import import NO_ENV, PASSWORD, TOKEN, USER, journal_of

RESOURCE = "coworkerbookingcreditusehistories"
COLUMNS = {"coworkerbookingcreditid": Kind.INTEGER, "creditused": Kind.AMOUNT,
           "description": Kind.TEXT, "exportedby": None}

cell = st.one_of(
    st.none(), st.sampled_from(["", " ", "1", "01", "1.0", "+1", "1.50", "1.5", ".5", "1e0", "abc",
                                "Café", "Cafe\u0301", "a\r\nb", "a\nb", " a ", "\ta", "12345678901234567890",
                                "-3", "0", "7004.0"]),
    st.text(max_size=6),
)


def texts_of(row: list[str | None]) -> dict[str, str]:
    out = {}
    for name, kind, text in zip(COLUMNS, COLUMNS.values(), row, strict=True):
        if kind is None:
            t = identity_text(text)
        else:
            got, problem = value(kind, text)
            t = "" if problem else identity_text(got)
        if t:
            out[name] = t
    return out


def oracle(rows: list[list[str | None]]) -> list[str]:
    """Identities row by row, as etl.ledger.identity defines them (no journal)."""
    return [identity for identity, _, _ in oracle_rows(rows)]


def oracle_rows(rows: list[list[str | None]]) -> list[tuple[str, str, int]]:
    ids = Identities(RESOURCE)
    header = list(COLUMNS)
    ids.start("f.csv", header)
    _, scheme = ids.columns("f.csv", header, {"coworkerbookingcreditid", "creditused", "description"})
    out = []
    for row in rows:
        digests = {n: cell_digest(t) for n, t in texts_of(row).items()}
        identity, base, occurrence, _ = ids.of(scheme, [digests.get(n, "") for n in ids.names[scheme]],
                                               "f.csv")
        out.append((identity, base, occurrence))
    return out


def keyed(rows: list[list[str | None]], sizes: list[int]) -> list[tuple[str, int]]:
    """Each row's content key and occurrence, a chunk at a time."""
    names = sorted(COLUMNS)
    seen, out, start = SeenKeys(), [], 0
    for size in [*sizes, len(rows)]:
        part = rows[start: start + size]
        start += len(part)
        if not part:
            continue
        columns = {name: column_keys(pa.array([r[k] for r in part], pa.string()), kind)
                   for k, (name, kind) in enumerate(COLUMNS.items())}
        k1, k2 = content_keys(RESOURCE, names, columns, len(part))
        occurrence = seen.occurrences(k1, k2)
        sent = {f: (columns[f][0], columns[f][2]) for f in ("coworkerbookingcreditid", "creditused")}
        payloads = payload_keys(sent, len(part))
        for k, row in enumerate(part):
            texts = texts_of(row)
            assert key_hex(k1, k2, k) == content_key_of(RESOURCE, names, texts)
            body = {f: t for f, t in texts.items() if f in sent}
            assert int(payloads[k]) == payload_key_of(body)
        out += [(key_hex(k1, k2, k), int(o)) for k, o in enumerate(occurrence.tolist())]
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(cell, min_size=4, max_size=4), min_size=1, max_size=40),
       st.lists(st.integers(1, 15), max_size=4))
def test_keys_a_chunk_at_a_time_are_the_contents_and_occurrences_row_by_row(rows, sizes):
    """Rows have one content key exactly when they have one content (base), and a row is the
    same occurrence of it in both."""
    got, expected = keyed(rows, sizes), oracle_rows(rows)
    assert [o for _, o in got] == [o for _, _, o in expected]
    by_key = {}
    for (key, _), (_, base, _) in zip(got, expected, strict=True):
        assert by_key.setdefault(key, base) == base
    assert len(set(by_key.values())) == len(by_key)


def test_chunks_of_thousands_of_rows_are_keyed_as_row_by_row():
    """Chunks large enough that a column of few values is keyed a distinct value at a time (the
    amounts, the descriptions) beside one of many (the credits): the same contents and
    occurrences as row by row, identical rows and spellings of one value included."""
    amounts = ["1.50", "1.5", " 2", "2.0", "0.25", "abc", None]
    texts = ["Desk", " Desk ", "Café", "Cafe\u0301", "Room\r\nB", "Room\nB", None]
    rows = [[str(i % 1500 + 1), amounts[i % 7], texts[(i // 7) % 7], None if i % 11 else "ops"]
            for i in range(5000)]
    got, expected = keyed(rows, [2600]), oracle_rows(rows)
    assert [o for _, o in got] == [o for _, _, o in expected]
    assert max(o for _, o in got) > 1  # identical rows there are
    by_key = {}
    for (key, _), (_, base, _) in zip(got, expected, strict=True):
        assert by_key.setdefault(key, base) == base
    assert len(set(by_key.values())) == len(by_key)


@given(st.lists(st.text(), max_size=20))
def test_texts_are_hashed_alike_at_once_and_one_at_a_time(texts):
    h1, h2 = text_hashes(pa.array(texts, pa.string()))
    assert [text_hash(t) for t in texts] == list(zip(h1.tolist(), h2.tolist(), strict=True))


@pytest.fixture
def sandbox():
    with Sandbox(faults=Faults(retry_after=0), tokens=(TOKEN,), username=USER, password=PASSWORD) as box:
        yield box


def history(path: Path, rows: int) -> list[list[str]]:
    """A history file with identical rows, spellings of one value, and text needing care."""
    lines = []
    for i in range(rows):
        credit = 11 + i % 3
        amount = ["1.50", "1.5", "2", "2.0", "0.25"][i % 5]
        text = ["Desk", " Desk ", "Café", "Cafe\u0301", "Room\r\nB", "Tom & Jerry"][i % 6]
        exported = "" if i % 7 else "ops"
        lines.append([str(credit), amount, text, exported])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description", "ExportedBy"])
        w.writerows(lines)
    return lines


def kept_keys() -> list[str]:
    from etl.ledger.entries import state_home

    folder = Path(state_home()) / "keys"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_a_migration_over_nights_posts_every_row_once_with_the_identities_row_by_row(etl, sandbox, tmp_path):
    path = tmp_path / "history.csv"
    lines = history(path, 90)
    for night in range(1, 6):  # the quota of a night: 20 POSTs more each time
        run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                  "--daily-limit", str(20 * night), "--no-check-credits", env=NO_ENV)
        assert run.code == (0 if night == 5 else 4), run.output
        assert len(sandbox.store.records()) == min(90, 20 * night)
        assert len(kept_keys()) == 1  # the file's keys, made on the first night, used after
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        kept = dict(db.execute("SELECT row, identity FROM rows WHERE state = 'created'"))
    assert [kept[n] for n in range(2, 92)] == oracle([[c or None for c in line] for line in lines])
    again = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                "--no-check-credits", env=NO_ENV)
    assert again.code == 0
    assert {r["outcome"] for r in again.report()} == {"skipped"}
    assert len(sandbox.store.records()) == 90


def test_a_file_changed_between_nights_is_keyed_again(etl, sandbox, tmp_path):
    path = tmp_path / "history.csv"
    lines = history(path, 30)
    first = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                "--daily-limit", "10", "--no-check-credits", env=NO_ENV)
    assert first.code == 4
    # the export is made again with one more row in the middle: every row after it moves
    lines.insert(5, ["12", "9.75", "Late booking", ""])
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["CoworkerBookingCreditId", "CreditUsed", "Description", "ExportedBy"],
                                 *lines])
    second = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                 "--no-check-credits", env=NO_ENV)
    assert second.code == 0
    assert len(kept_keys()) == 2
    assert len(sandbox.store.records()) == 31
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        kept = [i for (i,) in db.execute("SELECT identity FROM rows WHERE state = 'created'")]
    assert sorted(kept) == sorted(oracle([[c or None for c in line] for line in lines]))


def test_kept_keys_that_do_not_read_back_are_made_again(etl, sandbox, tmp_path):
    from etl.ledger.entries import state_home

    path = tmp_path / "history.csv"
    history(path, 30)
    first = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                "--daily-limit", "10", "--no-check-credits", env=NO_ENV)
    assert first.code == 4
    (folder,) = kept_keys()
    where = Path(state_home()) / "keys" / folder
    (where / "keys.bin").write_bytes(b"\x00" * 8)  # cut short: a disk that filled up
    second = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                 "--no-check-credits", env=NO_ENV)
    assert second.code == 0
    assert [r["outcome"] for r in second.report()] == ["skipped"] * 10 + ["created"] * 20
    assert len(sandbox.store.records()) == 30


def test_keys_the_journal_keeps_wrong_never_post_a_row_twice(etl, sandbox, tmp_path):
    """The journal's keys only speed a night up: a row they fail to find (keys lost or wrong)
    is still looked up by its identity before it is sent."""
    path = tmp_path / "history.csv"
    history(path, 30)
    first = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                "--no-check-credits", env=NO_ENV)
    assert first.code == 0
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        db.execute("UPDATE keys SET content = '0000000000000000000000000000000' || substr(identity, 1, 1), "
                   "payload = '0000000000000001'")
    again = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                "--no-check-credits", env=NO_ENV)
    assert again.code == 0
    assert {r["outcome"] for r in again.report()} == {"skipped"}
    assert len(sandbox.store.records()) == 30
    assert sandbox.stats.posts == 30


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(
    list(" \t\r\n\v\f\u00a0\u2028\x1cabcé\u0301Å\u212b")), max_size=8), st.text(max_size=6)), max_size=15))
def test_identity_texts_a_column_at_a_time_are_the_rules_cell_by_cell(cells):
    """Spaces around a cell, line ends and Unicode forms: a column at once reads as a cell alone."""
    for kind in (None, Kind.TEXT, Kind.INTEGER, Kind.AMOUNT):
        got = identity_texts(pa.array(cells, pa.string()), kind).to_pylist()
        expected = []
        for cell in cells:
            if kind is None:
                expected.append(identity_text(cell))
            else:
                found, problem = value(kind, cell)
                expected.append("" if problem else identity_text(found))
        assert got == expected


def test_text_before_the_combining_marks_is_nfc_as_it_is():
    """Columns are normalised by Python only where a text holds a character from U+0300 on: below
    it, no character changes under NFC, and none is the second of a pair NFC composes (Python's
    own Unicode data), so a Latin name with its accents ("Zoë") is NFC as it is."""
    for c in range(0x300):
        assert unicodedata.normalize("NFC", chr(c)) == chr(c)
    for c in range(0x110000):
        decomposition = unicodedata.decomposition(chr(c)).split()
        if len(decomposition) == 2 and not decomposition[0].startswith("<"):
            assert int(decomposition[1], 16) >= 0x300, hex(c)
    column = ["Zoë", "Zoe\u0308", "Müller", "\u212b", "Å", "plain", None, "É\u0301"]
    assert identity_texts(pa.array(column, pa.string()), Kind.TEXT).to_pylist() == \
        ["Zoë", "Zoë", "Müller", "Å", "Å", "plain", "", unicodedata.normalize("NFC", "É\u0301")]


number = st.text(alphabet=st.sampled_from(list("0123456789.,+-e ")), max_size=22)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), number, cell), max_size=40))
def test_numbers_a_column_at_a_time_read_as_each_cell_alone(cells):
    """Whole numbers and amounts, spelt every way (leading zeros, signs, exponents, 18 digits and
    19, trailing zeros and dots): a column at once gives each cell's identity text alone."""
    for kind in (Kind.INTEGER, Kind.AMOUNT):
        got = identity_texts(pa.array(cells, pa.string()), kind).to_pylist()
        expected = []
        for one in cells:
            found, problem = value(kind, one)
            expected.append("" if problem else identity_text(found))
        assert got == expected


def test_amounts_of_many_digits_or_two_dots_a_column_at_a_time_read_as_each_cell_alone():
    """An amount of more than 28 significant digits is a Decimal the rules round (`canonical_number`
    normalises in the context's 28 digits): a column at once must not keep it as spelt, or two
    rows the rules call identical get two contents, both first of theirs, and one identity. A
    "0.5" followed by a second ".5" is no number at all."""
    cells = ["123456789012345678.12345678901234567", "123456789012345678.12345678901234568",
             "999999999999999999.99999999999999999", "12345678901234567.12345678901",
             "1234567890123456.123456789012", "0.5.5", "0.1.20", "0.25", "1.5", "12345.678"]
    for kind in (Kind.INTEGER, Kind.AMOUNT):
        expected = []
        for one in cells:
            found, problem = value(kind, one)
            expected.append("" if problem else identity_text(found))
        assert identity_texts(pa.array(cells, pa.string()), kind).to_pylist() == expected
        h1, h2, present = column_keys(pa.array(cells * 300, pa.string()), kind)  # a distinct value at a time
        assert list(zip(h1.tolist(), h2.tolist(), present.tolist(), strict=True)) == \
            [(*text_hash(text), bool(text)) for text in expected] * 300


def rule_keys(cell: str | None, kind: Kind | None) -> tuple[int, int, bool]:
    """A cell's keys as the rules make them for that cell alone: its identity text hashed, and
    whether it has one."""
    if kind is None:
        text = identity_text(cell)
    else:
        found, problem = value(kind, cell)
        text = "" if problem else identity_text(found)
    return (*text_hash(text), bool(text))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), number, cell), min_size=1, max_size=30), st.integers(0, 2**32))
def test_a_column_of_few_values_is_keyed_as_cell_by_cell(values, seed):
    """A column of many rows and few distinct values (keyed a distinct value at a time) has each
    row's keys as the rules make them for that row alone."""
    picks = np.random.default_rng(seed).integers(len(values), size=3000)
    cells = [values[k] for k in picks]
    for kind in (None, Kind.INTEGER, Kind.AMOUNT):
        h1, h2, present = column_keys(pa.array(cells, pa.string()), kind)
        rules = [rule_keys(one, kind) for one in values]
        got = list(zip(h1.tolist(), h2.tolist(), present.tolist(), strict=True))
        assert got == [rules[k] for k in picks]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(number, cell), min_size=1, max_size=40), st.integers(0, 2**32),
       st.floats(0.5, 0.99))
def test_a_column_blank_on_most_rows_is_keyed_as_cell_by_cell(values, seed, blank):
    """A column blank on most rows (a booking id where most credits were used on invoice lines)
    has its filled cells alone keyed: each row's keys are still the rules' for that row alone,
    blanks (none, "", spaces) included, whatever the kind."""
    rng = np.random.default_rng(seed)
    cells = [[None, "", "  "][k % 3] if rng.random() < blank else values[k % len(values)]
             for k in rng.integers(0, 10**6, size=5000)]
    for kind in (None, Kind.INTEGER, Kind.AMOUNT):
        expected = [rule_keys(one, kind) for one in cells]
        h1, h2, present = column_keys(pa.array(cells, pa.string()), kind)
        assert list(zip(h1.tolist(), h2.tolist(), present.tolist(), strict=True)) == expected


@given(st.lists(st.integers(0, 40), max_size=300), st.lists(st.integers(1, 60), min_size=1, max_size=12))
def test_identical_rows_are_numbered_across_many_chunks_as_in_one(values, sizes):
    """SeenKeys keeps a file's keys in runs it merges as they come: a row's occurrence is its
    rank among the equal rows of the whole file before it, however the file was cut."""
    k1 = np.array([v * 0x9E3779B97F4A7C15 % 2**64 for v in values], np.uint64)
    k2 = np.array([(v % 7) << 40 for v in values], np.uint64)
    seen, got, start, s = SeenKeys(), [], 0, 0
    seen.FAN_IN, seen.BLOCK, seen.SLICE = 2, 4, 8  # runs written and merged within a few chunks
    while start < len(values):
        end = start + sizes[s % len(sizes)]
        got += seen.occurrences(k1[start:end], k2[start:end]).tolist()
        start, s = end, s + 1
    seen.close()
    count: Counter[int] = Counter()
    assert got == [count.update([v]) or count[v] for v in values]
    assert ranks(k1, k2).tolist() == got


@given(st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=3), max_size=30))
def test_payload_keys_as_the_journal_keeps_them_read_back_at_once(rows):
    from etl.ledger.rowkeys import hex_keys_of

    texts = [",".join(f"{k:016x}" for k in keys) for keys in rows]
    assert hex_keys_of(texts).tolist() == [k for keys in rows for k in keys]
    assert hex_keys_of([t.lstrip("0") for t in texts if t]).tolist() == \
        [int(k, 16) for t in texts if t for k in t.lstrip("0").split(",") if k]


def _night(etl, sandbox, path, *args: str):
    return etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
               "--no-check-credits", *args, env=NO_ENV)


def test_the_same_bytes_read_another_way_are_keyed_again(etl, sandbox, tmp_path):
    """The keys kept of a file are those of its cells as read: its bytes read in another
    encoding, or another sheet of the same workbook, are other rows, and are posted (they were
    reported skipped, with the Ids of the rows read the first way, and never posted)."""
    import openpyxl

    path = tmp_path / "export.csv"
    path.write_bytes(b"CoworkerBookingCreditId,CreditUsed,Description\n"
                     + b"".join(b"%d,1,Caf\xe9 na\xefve %d\n" % (100 + i, i) for i in range(6)))
    assert _night(etl, sandbox, path, "--encoding", "cp1252").code == 0
    again = _night(etl, sandbox, path, "--encoding", "cp1251")
    assert again.code == 0, again.err
    assert [r["outcome"] for r in again.report()] == ["created"] * 6
    assert len(sandbox.store.records()) == 12

    book = openpyxl.Workbook()
    for name, base in (("A", 200), ("B", 300)):
        sheet = book.create_sheet(name)
        sheet.append(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        for i in range(5):
            sheet.append([base + i, 2, f"sheet {name} use {i}"])
    workbook = tmp_path / "book.xlsx"
    book.save(workbook)
    assert _night(etl, sandbox, workbook, "--sheet", "A").code == 0
    other = _night(etl, sandbox, workbook, "--sheet", "B")
    assert other.code == 0, other.err
    assert [r["outcome"] for r in other.report()] == ["created"] * 5
    assert sorted(r["Description"] for r in sandbox.store.records())[-5:] == \
        [f"sheet B use {i}" for i in range(5)]


def test_a_schema_that_makes_other_rows_valid_never_takes_another_chunks_keys(etl, sandbox, tmp_path):
    """The README's "Adding a rule": a copy of the schema with one more check makes a row of
    the second chunk invalid. The keys kept of the file no longer fit from that chunk on: the
    chunks before it keep theirs, the rest are keyed again, and no row is given another row's
    keys (they were: a cache that started at the second chunk was read for the first, rows were
    posted with keys of rows 32,768 lines further, and those rows were then reported skipped,
    never posted)."""
    from etl.ledger.entries import state_home

    path = tmp_path / "history.csv"
    lines = ["CoworkerBookingCreditId,CreditUsed,Description,BookingId"]
    for i in range(70_000):  # lines of 32 bytes: a chunk (a block of 1 MiB) is 32,768 rows
        amount = "   " if i == 100 else "150" if i == 32_768 + 100 else "  1"
        lines.append(f"{100000 + i},{amount},use {i:09d},{500000 + i}")
    path.write_text("\n".join(lines) + "\n")
    bundled = (Path(__file__).parents[1] / "schemas" / "coworkerbookingcreditusehistories.py").read_text()
    strict = tmp_path / "strict.py"
    strict.write_text(bundled.replace("Amount, checks=[pa.Check.gt(0)]",
                                      "Amount, checks=[pa.Check.gt(0), pa.Check.le(100)]"))
    assert "le(100)" in strict.read_text()
    assert _night(etl, sandbox, path, "--daily-limit", "5").code == 4
    for limit in (10, 15):
        assert _night(etl, sandbox, path, "--resource", strict, "--daily-limit", str(limit)).code == 4
    shutil.rmtree(Path(state_home()) / "keys")  # the truth: every row keyed from its cells
    last = _night(etl, sandbox, path, "--resource", strict, "--daily-limit", "20")
    assert last.code == 4
    done = {int(r["row"]): r for r in last.report() if r["outcome"] in ("created", "skipped")}
    assert sorted(done) == list(range(2, 22))  # the first twenty rows, each once
    assert all(f"row {n} on" in r["errors"] for n, r in done.items() if r["outcome"] == "skipped")
    assert sorted(r["Description"] for r in sandbox.store.records()) == [f"use {i:09d}" for i in range(20)]


@pytest.mark.parametrize("which", ["content1.bin content2.bin payload.bin occurrence.bin", "occurrence.bin",
                                   "lengths.npy", "valid.npy"])
def test_kept_keys_a_crash_left_zeros_in_or_cut_are_made_again(etl, sandbox, tmp_path, which):
    """A crash before the system wrote the kept keys out can leave their files full of zeros,
    or empty: they are not taken for keys (all zeros posted a row a second time, then stopped
    with a traceback; zeros for the occurrences gave two identical rows one Id; an empty file
    ended the run in "Aborted!")."""
    from etl.ledger.entries import state_home

    path = tmp_path / "export.csv"
    lines = ["CoworkerBookingCreditId,CreditUsed,Description"]
    for i in range(10):
        lines += [f"{1000 + i},1,use {i}"] * 2  # each credit use twice: two identical rows
    path.write_text("\n".join(lines) + "\n")
    assert _night(etl, sandbox, path, "--daily-limit", "12").code == 4
    (folder,) = kept_keys()
    for name in which.split():
        file = Path(state_home()) / "keys" / folder / name
        file.write_bytes(bytes(file.stat().st_size) if name.endswith(".bin") else b"")
    again = _night(etl, sandbox, path, "--json")
    assert again.code == 0, again.err
    document = json.loads(again.out)
    assert document["counts"]["created"] == 8
    with (tmp_path / document["report"]).open(encoding="utf-8") as f:
        report = list(csv.DictReader(f))
    assert [r["outcome"] for r in report] == ["skipped"] * 12 + ["created"] * 8
    assert len({r["id"] for r in report}) == 20
    assert len(sandbox.store.records()) == 20
