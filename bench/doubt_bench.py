"""Rows left in doubt at the end of a run, and after an immediate rerun, under the sandbox's
faults, with the real settle windows (a gateway's answer: --gateway-settle, 10 minutes).

The soak bench reruns until every row is decided, with windows of a few seconds: it proves
that nothing is posted twice or lost, not how much one run leaves for the next. This one
imports a file of identical and invalid rows once, then again at once, and counts the rows in
doubt each time, then compares the sandbox's records with the file.

    python bench/doubt_bench.py --fault unavailable=0.1                    # 30 minutes or so
    python bench/doubt_bench.py --fault unavailable=0.1 --settle-wait 0    # a run that does not wait
    python bench/doubt_bench.py --fault unavailable=0.1 --fault error-after-create=0.1 \\
        --fault drop-after-create=0.1
    python bench/doubt_bench.py --rows 200 --timeout 0.3 --gateway-settle 2 --fault unavailable=0.2

Prints, per run: exit code, seconds, outcomes, rows in doubt (% of valid rows); then the
records the sandbox holds against the file: duplicates, rows lost, report Ids that are wrong.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tests.soak import sandbox_process  # noqa: E402


def export(path: str, rows: int, seed: int) -> list[tuple[int, Decimal, str] | None]:
    """ROWS rows: about 10 % invalid, about 25 % the same as an earlier valid row."""
    rnd = random.Random(seed)
    out: list[tuple[int, Decimal, str] | None] = []
    valid: list[tuple[int, Decimal, str]] = []
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        for i in range(rows):
            draw = rnd.random()
            if draw < 0.10:
                w.writerow([rnd.randint(1, 40), "-1", f"bad {i}"])
                out.append(None)
                continue
            if draw < 0.35 and valid:
                row = valid[rnd.randrange(len(valid))]
            else:
                row = (rnd.randint(1, 40), Decimal(rnd.randint(1, 16)) / 4, f"use {i % 50}")
                valid.append(row)
            out.append(row)
            w.writerow(list(row))
    return out


def compare(expected: list[tuple[int, Decimal, str] | None], db: str, report: str) -> str:
    with sqlite3.connect(db) as con:
        records = {r[0]: (r[1], Decimal(r[2]), r[3] or "") for r in con.execute(
            "SELECT Id, CoworkerBookingCreditId, CreditUsed, Description FROM credit_uses")}
    with open(report, newline="") as f:
        lines = list(csv.DictReader(f))
    want = Counter(e for e in expected if e is not None)
    have = Counter(records.values())
    left: Counter[tuple[int, Decimal, str]] = Counter()  # rows a later run or a person decides
    claimed: Counter[int] = Counter()
    wrong = 0
    for line, row in zip(lines, expected, strict=True):
        if row is None:
            continue
        if line["outcome"] in ("in_doubt", "failed", "not_attempted", "rejected"):
            left[row] += 1
        elif line["outcome"] in ("created", "skipped"):
            claimed[int(line["id"])] += 1
            wrong += records.get(int(line["id"])) != row
    wrong += sum(n - 1 for n in claimed.values() if n > 1)
    duplicates = sum((have - want).values())
    lost = sum(max(0, want[c] - have[c] - left[c]) for c in want)
    return (f"{len(records)} records for {sum(want.values())} valid rows: {duplicates} duplicates, "
            f"{lost} lost, {wrong} wrong ids")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fault", action="append", default=[], metavar="NAME=P",
                    help="an `etl sandbox` fault and its share (unavailable=0.1); repeatable")
    ap.add_argument("--timeout", default="30")
    ap.add_argument("--gateway-settle", default="600")
    ap.add_argument("--settle-wait", default=None, help="etl import's --settle-wait (default: its own)")
    ap.add_argument("--rate", default="200")
    ap.add_argument("--concurrency", default="4")
    args = ap.parse_args()
    knobs = [x for f in args.fault for x in (f"--{f.split('=')[0]}", f.split("=")[1])]
    with tempfile.TemporaryDirectory() as tmp:
        path, db = os.path.join(tmp, "export.csv"), os.path.join(tmp, "server.sqlite3")
        expected = export(path, args.rows, args.seed)
        with sandbox_process(tmp, db, "--seed", str(args.seed), "--latency", "0.01", "--hang", "1.5",
                             *knobs) as (url, env):
            cmd = [sys.executable, "-m", "etl", "import", path, "--api-url", url, "-q",
                   "--rate", args.rate, "--concurrency", args.concurrency, "--daily-limit", "100000",
                   "--timeout", args.timeout, "--gateway-settle", args.gateway_settle,
                   "--max-errors", "100000", "--journal", os.path.join(tmp, "journal.sqlite3"),
                   *(["--settle-wait", args.settle_wait] if args.settle_wait is not None else [])]
            valid = sum(row is not None for row in expected)
            for name in ("run", "rerun"):
                report = os.path.join(tmp, f"{name}.csv")
                start = time.perf_counter()
                done = subprocess.run([*cmd, "--report", report], env=env, cwd=tmp, capture_output=True,
                                      text=True)
                took = time.perf_counter() - start
                with open(report, newline="") as f:
                    counts = Counter(line["outcome"] for line in csv.DictReader(f))
                shown = ", ".join(f"{n} {o}" for o, n in counts.most_common())
                share = 100 * counts["in_doubt"] / max(1, valid)
                print(f"{name}: exit {done.returncode}, {took:.0f} s: {shown}; in doubt "
                      f"{counts['in_doubt']} of {valid} valid rows ({share:.2f} %)")
            print(compare(expected, db, report))


if __name__ == "__main__":
    main()
