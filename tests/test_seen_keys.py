"""A file's identical rows are numbered (SeenKeys) in memory that does not grow with the file: its
keys go to temporary files of the state folder that nobody else sees and that are gone when
the import is done with them, and a row's occurrence is still its rank among the equal rows
of the whole file before it, whatever the chunks, the runs on disk and their merges."""

from __future__ import annotations

import csv
import errno
import os
import sqlite3
import sys
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.ledger import rowkeys
from etl.ledger.entries import DiskFull
from etl.ledger.rowkeys import SeenKeys
from etl.read.reading import ReadOptions
from tests.test_import import NO_ENV, TOKEN, journal_of
from tests.test_night_keys import history, oracle, sandbox  # noqa: F401 - the fixture

#: of a pool of keys, several share a first lane (with other second lanes)
POOL = [(7 if v % 3 == 0 else v * 0x9E3779B97F4A7C15 % 2**64, v * 0xC2B2AE3D27D4EB4F % 2**64)
        for v in range(40)]


def small(seen: SeenKeys, fan_in: int = 2, block: int = 2, batch: int = 2, slice_: int = 3,
          words: int = 21, hashes: int = 6) -> SeenKeys:
    """SEEN with runs of a few keys: written to disk, merged and read a block at a time within a
    few chunks."""
    seen.FAN_IN, seen.BLOCK, seen.BATCH, seen.SLICE, seen.WORDS, seen.HASHES = \
        fan_in, block, batch, slice_, words, hashes
    return seen


def counted(chunks: list[list[tuple[int, int]]]) -> list[int]:
    """Each key's occurrence in the whole file, counted."""
    count: Counter[tuple[int, int]] = Counter()
    return [count.update([k]) or count[k] for chunk in chunks for k in chunk]


def occurrences(seen: SeenKeys, chunks: list[list[tuple[int, int]]]) -> list[int]:
    got: list[int] = []
    for chunk in chunks:
        k1 = np.array([a for a, _ in chunk], np.uint64)
        k2 = np.array([b for _, b in chunk], np.uint64)
        got += seen.occurrences(k1, k2).tolist()
    return got


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.integers(0, len(POOL) - 1), max_size=25), max_size=14),
       st.sampled_from([2, 3]), st.sampled_from([1, 2, 3, 5]), st.sampled_from([1, 2, 4]),
       st.sampled_from([1, 2, 7]), st.sampled_from([1, 3, 21]), st.sampled_from([1, 6]))
def test_a_rows_occurrence_is_its_rank_among_the_equal_rows_before_it(tmp_path_factory, picks, fan_in, block,
                                                                      batch, slice_, words, hashes):
    """Empty chunks, keys repeated within a chunk and across chunks, keys of one first lane and
    other second lanes, a filter that says "maybe" for nearly every key (WORDS 1): every run
    size, block, batch and slice gives the count."""
    chunks = [[POOL[p] for p in pick] for pick in picks]
    seen = small(SeenKeys(str(tmp_path_factory.mktemp("keys"))), fan_in, block, batch, slice_, words, hashes)
    assert occurrences(seen, chunks) == counted(chunks)
    seen.close()


def test_a_file_of_one_row_many_times_is_counted_quickly():
    """Every row a "maybe", and found: a file of one content, or a handful, is counted a
    distinct key at a time, not a row at a time."""
    seen = small(SeenKeys(), block=16, batch=4, slice_=64)
    count = {11: 0, 13: 0}
    for _ in range(40):
        k = np.full(5_000, 11, np.uint64)
        k[::7] = 13  # another content, now and then
        got = seen.occurrences(k, k)
        for v in (11, 13):
            theirs = got[k == v]
            assert (theirs == np.arange(count[v] + 1, count[v] + 1 + len(theirs))).all()
            count[v] += len(theirs)
    assert len(seen.runs) <= 6  # merged as they come
    seen.close()


def fds_in(folder: Path) -> list[str]:
    """The files this process has open in FOLDER (Linux: their names as the system gives them)."""
    where = os.path.realpath(folder) + os.sep
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(where):
            out.append(target)
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")
def test_the_keys_on_disk_are_unnamed_files_of_its_folder_gone_once_let_go(tmp_path):
    folder = tmp_path / "keys"
    seen = small(SeenKeys(str(folder)))
    chunks = [[POOL[(i * 7 + j) % len(POOL)] for j in range(9)] for i in range(9)]
    assert occurrences(seen, chunks) == counted(chunks)
    assert fds_in(folder)  # runs on disk, there,
    assert os.listdir(folder) == []  # named nowhere
    seen.close()
    assert fds_in(folder) == []
    with pytest.raises(ValueError, match="let go"):
        seen.occurrences(np.zeros(1, np.uint64), np.zeros(1, np.uint64))
    dropped = small(SeenKeys(str(folder)))  # dropped without being closed: they are closed too
    occurrences(dropped, chunks)
    assert fds_in(folder)
    del dropped
    assert fds_in(folder) == []


def test_a_folder_that_cant_be_made_is_the_systems_temporary_folder(tmp_path):
    (tmp_path / "a file").write_text("")
    seen = small(SeenKeys(str(tmp_path / "a file" / "keys")))
    chunks = [[POOL[(i * 5 + j) % len(POOL)] for j in range(6)] for i in range(6)]
    assert occurrences(seen, chunks) == counted(chunks)
    assert seen.runs and any(r.file is not None for r in seen.runs)
    seen.close()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_full_disk_ends_the_run_in_so_many_words(tmp_path, monkeypatch, code):
    def write(fd: int, data: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(rowkeys, "os", types.SimpleNamespace(**{**vars(os), "write": write}))
    folder = tmp_path / "keys"
    seen = small(SeenKeys(str(folder)))
    occurrences(seen, [[POOL[0], POOL[1]]])  # a chunk's run is held in memory
    with pytest.raises((OSError, DiskFull)) as raised:
        occurrences(seen, [[POOL[2]]])  # two: merged into a file
    if code == errno.ENOSPC:
        assert isinstance(raised.value, DiskFull)
        assert str(raised.value).startswith(f"no room left in {folder} for the keys of the rows read so far")
    else:
        assert isinstance(raised.value, OSError) and raised.value.errno == errno.EIO
    if sys.platform.startswith("linux"):
        assert fds_in(folder) == []  # the file begun is closed
    seen.close()


@dataclass(frozen=True)
class SmallChunks(ReadOptions):
    """Chunks of about 40 rows (tests that cross chunk boundaries with small files)."""

    chunk_rows: int = 40
    block_bytes: int = 1024


def test_an_import_whose_keys_go_to_disk_posts_every_row_once_as_row_by_row(etl, sandbox, tmp_path,  # noqa: F811
                                                                            monkeypatch):
    """A file read in chunks of about 40 rows, whose keys seen go to disk every two chunks: each
    of its identical rows is created once, with the identity the rules row by row give it, and
    the night after (the file edited: keyed again) sends only the row added."""
    from etl.read import reading

    monkeypatch.setattr(reading, "ReadOptions", SmallChunks)
    for name, value in (("FAN_IN", 2), ("BLOCK", 4), ("BATCH", 2), ("SLICE", 16)):
        monkeypatch.setattr(SeenKeys, name, value)
    written = []
    write = SeenKeys._written
    monkeypatch.setattr(SeenKeys, "_written", lambda self, *a: written.append(write(self, *a)) or written[-1])
    path = tmp_path / "history.csv"
    lines = history(path, 420)
    run = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
              "--no-check-credits", env=NO_ENV)
    assert run.code == 0, run.output
    assert len(sandbox.store.records()) == 420
    assert len(written) > 3  # runs went to disk, and were merged there
    with sqlite3.connect(journal_of(sandbox.url)) as db:
        kept = dict(db.execute("SELECT row, identity FROM rows WHERE state = 'created'"))
    assert [kept[n] for n in range(2, 422)] == oracle([[c or None for c in line] for line in lines])
    lines.append(list(lines[3]))  # one more of a content the file has
    with path.open("a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(lines[-1])
    again = etl("import", path, "--api-url", sandbox.url, "--token", TOKEN, "--rate", "1000",
                "--no-check-credits", env=NO_ENV)
    assert again.code == 0, again.output
    assert [r["outcome"] for r in again.report()] == ["skipped"] * 420 + ["created"]
    assert len(sandbox.store.records()) == 421
    if sys.platform.startswith("linux"):
        from etl.ledger.entries import state_home

        assert fds_in(Path(state_home()) / "keys") == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=400),
       st.lists(st.integers(0, 2**64 - 1), min_size=300, max_size=3000),
       st.integers(0, 63), st.sampled_from([0, 2**63, 2**64 - 2**40]))
def test_which_keys_a_set_has_is_exact_whatever_their_top_bits(members: list[int], others: list[int],
                                                                 low: int, top: int) -> None:
    """`among` (a key's row known to the journal or not) looks first in a table of the set's top
    bits: keys that share them with a member, or equal it but in their lowest bits, are still
    told apart exactly."""
    members += [top | (m % 2**20) for m in members[:50]]  # many members under one top
    keys = others + members + [m ^ (1 << low) for m in members] + [top | (k % 2**16) for k in others]
    sorted_set = np.unique(np.array(members, np.uint64))
    asked = np.array(keys, np.uint64)
    assert rowkeys.among(asked, sorted_set).tolist() == np.isin(asked, sorted_set).tolist()
