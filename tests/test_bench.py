"""The README's benchmarks run against today's etl (one crashed on a journal table etl no longer
has, after 7 minutes): a brief run of the posting bench, through etl's own public pieces."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_post_bench_runs_briefly(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "post_bench.py"), "--only", "a",
                           "--seconds", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^\[a: limit 20/s, 50 ms latency\] exit 0; 20 created in [\d.]+ s wall; "
                     r"posting rate [\d.]+/s", done.stdout, re.M), done.stdout


def test_status_bench_runs_briefly(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "status_bench.py"), "--rows", "2000",
                           "--rounds", "1", "--keep", str(tmp_path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^/data/history-2019-2025.csv +2220 +2200 +1800 +20 +40 +120 +280$", done.stdout,
                     re.M), done.stdout
    assert re.search(r"^status of 2,000 rows: [\d.]+ s = [\d.]+x status of 10 rows, [\d.]+x importing "
                     r"etl.cli \(SQLite\)$", done.stdout, re.M), done.stdout


def test_night_bench_runs_briefly(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "night_bench.py"), "--rows", "2000",
                           "--repeat", "1", "--nights", "1", "--rate", "1000", "--no-warm",
                           "--dir", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for night in ("night 1", r"night 2 \(file unchanged\)"):
        assert re.search(rf"^{night}: etl import [\d.]+ s, peak \d+ MB; etl validate [\d.]+ s, peak \d+ MB; "
                         r"ratio median [\d.]+ \(pairs [\d., ]+\)$", done.stdout, re.M), done.stdout


def test_doubt_bench_runs_briefly(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "doubt_bench.py"), "--rows", "40",
                           "--timeout", "0.2", "--gateway-settle", "0.8", "--fault", "unavailable=0.1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("run", "rerun"):
        assert re.search(rf"^{name}: exit [01], \d+ s: .*; in doubt \d+ of 36 valid rows \([\d.]+ %\)$",
                         done.stdout, re.M), done.stdout
    # (the faults fall on rows as the requests arrive: how many a run leaves varies, a little)
    assert re.search(r"^\d+ records for 36 valid rows: 0 duplicates, 0 lost, 0 wrong ids$", done.stdout,
                     re.M), done.stdout


def test_posting_memory_bench_runs_briefly(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "posting_memory_bench.py"), "--rows", "300",
                           "--posts", "10,120"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for posts in (10, 120):
        assert re.search(rf"^ +{posts} POSTs: +[\d.]+ s, peak +\d+ MB \([\d.]+x the first; "
                         rf"\+-?[\d.]+ KB a POST\) +\| exit 4: 300 rows: {posts} created, "
                         rf"{300 - posts} not_attempted", done.stdout, re.M), done.stdout
