"""Crash-and-fault soak: the importer against a misbehaving sandbox, SIGKILLed at random moments,
rerun until it finishes; then the server's records are compared with the input.

Used by tests/test_soak.py (small) and bench/soak_bench.py (large).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

USER, PASSWORD = "soak@example.com", "soak-password-made-up"
TAG = re.compile(r"\s*\[etl:[0-9a-f]+\]$")

FAULTS = {"--unavailable": "0.05", "--error-after-create": "0.03", "--error": "0.02",
          "--drop-after-create": "0.03", "--drop": "0.02", "--hang-after-create": "0.02",
          "--unsuccessful": "0.0", "--bad-gateway": "0.02", "--gateway-timeout": "0.02",
          "--gateway-timeout-late": "0.02"}


@dataclass
class SoakResult:
    rows: int
    kills: int
    runs: int
    faults: dict[str, int]
    records: int
    duplicates: int
    lost: int
    in_doubt: int
    wrong_ids: int
    exit_codes: list[int] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.rows} rows, {self.kills} kills, {self.runs} runs, faults {self.faults}, "
                f"{self.records} records: {self.duplicates} duplicates, {self.lost} lost, "
                f"{self.in_doubt} left in doubt, {self.wrong_ids} wrong ids")


def write_export(path: str, rows: int, seed: int) -> list[tuple[int, Decimal, str]]:
    rnd = random.Random(seed)
    out = []
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        for i in range(rows):
            if i % 5 == 4 and out:  # often a row identical to an earlier one
                row = out[rnd.randrange(len(out))]
            else:
                row = (rnd.randint(1, 40), Decimal(rnd.randint(1, 40)) / 4, f"soak {i}")
            out.append(row)
            w.writerow([row[0], row[1], row[2]])
    return out


@contextlib.contextmanager
def sandbox_process(workdir: str, db: str, *options: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`etl sandbox` in a process of its own (records in DB, OPTIONS its faults), for as long as
    the block lasts: its URL, and the environment an import there runs with (its login, a state
    folder in WORKDIR)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "etl", "sandbox", "--port", "0", "--db", db, "--username", USER,
         "--password", PASSWORD, *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=workdir)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ")[1].split()[0]
        yield url, {**os.environ, "NEXUDUS_USERNAME": USER, "NEXUDUS_PASSWORD": PASSWORD,
                    "XDG_STATE_HOME": os.path.join(workdir, "state")}
    finally:
        server.terminate()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


def run_soak(workdir: str, rows: int, kills: int, seed: int = 1, *, rate: int = 400,
             concurrency: int = 4, timeout: float = 0.5, kill_window: tuple[float, float] = (0.3, 1.5),
             max_reruns: int = 12, system_id: str = "store", tag: bool = False,
             description_max: int = 0, check_credits: bool = True) -> SoakResult:
    """Identical rows, --concurrency 4, every fault of the sandbox, SIGKILLs; SYSTEM_ID is what the
    sandbox does with SystemId ("store", "drop", "refuse"), TAG adds --tag-description,
    DESCRIPTION_MAX has the sandbox keep descriptions cut to that many characters; without
    CHECK_CREDITS, rows are keyed a chunk at a time (the account checks see every row's payload,
    so with them rows are identified one by one)."""
    rnd = random.Random(seed)
    os.makedirs(workdir, exist_ok=True)
    export = os.path.join(workdir, "export.csv")
    expected = write_export(export, rows, seed)
    db = os.path.join(workdir, "server.sqlite3")
    with sandbox_process(workdir, db, "--hang", str(timeout * 2), "--seed", str(seed),
                         "--late-delay", str(timeout * 1.5), "--system-id", system_id,
                         "--description-max", str(description_max),
                         *[x for kv in FAULTS.items() for x in kv]) as (url, env):
        report = os.path.join(workdir, "results.csv")
        cmd = [sys.executable, "-m", "etl", "import", export, "--api-url", url, "-q",
               "--rate", str(rate), "--concurrency", str(concurrency), "--timeout", str(timeout),
               "--journal", os.path.join(workdir, "journal.sqlite3"), "--report", report,
               "--batch-size", "10", "--max-errors", "1000", "--gateway-settle", str(timeout * 4),
               *(["--tag-description"] if tag else []), *([] if check_credits else ["--no-check-credits"])]
        codes = []
        for _ in range(kills):
            proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(*kill_window))
            proc.send_signal(signal.SIGKILL)
            codes.append(proc.wait())
        runs = kills
        while runs < kills + max_reruns:
            time.sleep(2 * timeout + 0.1)  # let unanswered requests settle
            done = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True)
            runs += 1
            codes.append(done.returncode)
            if done.returncode == 0:
                break
        stats = json.load(urllib.request.urlopen(f"{url}/_sandbox/stats"))
    return _compare(expected, db, report, rows, kills, runs, stats["faults"], codes, description_max)


def _compare(expected: list[tuple[int, Decimal, str]], db: str, report: str, rows: int, kills: int,
             runs: int, faults: dict[str, int], codes: list[int], cut: int = 0) -> SoakResult:
    if cut:
        expected = [(c, u, d[:cut]) for c, u, d in expected]
    with sqlite3.connect(db) as con:
        records = {r[0]: (r[1], Decimal(r[2]), TAG.sub("", r[3] or ""))
                   for r in con.execute("SELECT Id, CoworkerBookingCreditId, CreditUsed, Description "
                                        "FROM credit_uses")}
    want, have = Counter(expected), Counter(records.values())
    duplicates = sum((have - want).values())
    lost = sum((want - have).values())
    with open(report, newline="") as f:
        lines = list(csv.DictReader(f))
    in_doubt = sum(r["outcome"] == "in_doubt" for r in lines)
    wrong = 0
    claimed = Counter()
    for r in lines:
        if r["outcome"] in ("created", "skipped"):
            got = records.get(int(r["id"]))
            mine = (int(r["CoworkerBookingCreditId"]), Decimal(r["CreditUsed"]),
                    r["Description"][:cut] if cut else r["Description"])
            claimed[int(r["id"])] += 1
            wrong += got != mine
    wrong += sum(n - 1 for n in claimed.values() if n > 1)
    return SoakResult(rows, kills, runs, faults, len(records), duplicates, lost, in_doubt, wrong, codes)
