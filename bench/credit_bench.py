"""Booking-credit checks: what they cost in reads and time, and what they save in POSTs.

A 100,000-row export over 5,000 distinct booking credits (rows in random order); the sandbox, in
its own process, holds 4,900 of the credits (2 % of the ids do not exist), 10 % of them too small
for their rows, 5 % expired.

(a) look-ups and time: `etl validate --online` (every row) and `etl import --daily-limit 5000`
    (tonight's rows only) with reads unpaced, which measures the client's own cost; then
    `etl validate --online --read-rate P` against a sandbox that refuses more than P + 20 % reads
    a second, which shows the pacer keeps to P without a single 409. Time at the default read
    pace is the look-ups at that pace: the pacer's schedule, which (a) checks at P.
(b) POSTs saved: one night (`--daily-limit 5000`) with the check and one with
    `--no-check-credits`, each against a fresh sandbox: POSTs refused, rows created.

    python bench/credit_bench.py               # all, paced part at 50 reads/s (about 100 s)
    python bench/credit_bench.py --pace 0      # skip the paced run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal

ROWS, CREDITS, NIGHT = 100_000, 5_000, 5_000
READ_RATE, READ_BURST = 1.25, 40  # etl.run.checks defaults
USER, PASSWORD = "bench@example.com", "bench-pass"


def make(folder: str, seed: int = 11) -> tuple[str, str]:
    """The export and the credits file; returns their paths."""
    rnd = random.Random(seed)
    rows = [(1 + i % CREDITS, Decimal(rnd.randint(2, 8)) / 2) for i in range(ROWS)]
    rnd.shuffle(rows)
    export = os.path.join(folder, "export.csv")
    with open(export, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CoworkerBookingCreditId", "CreditUsed", "Description"])
        for n, (credit, used) in enumerate(rows):
            w.writerow([credit, used, f"bench row {n}"])
    needs: dict[int, Decimal] = {}
    for credit, used in rows:
        needs[credit] = needs.get(credit, Decimal(0)) + used
    credits = os.path.join(folder, "credits.csv")
    with open(credits, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Id", "TotalCredit", "RemainingCredit", "ValidFrom", "ExpireDate", "CoworkerId"])
        for credit in range(1, CREDITS + 1):
            roll = rnd.random()
            if roll < 0.02:
                continue  # not in the account
            total = needs[credit] * (Decimal("0.6") if roll < 0.12 else 1)
            expires = "2021-12-31T00:00:00Z" if rnd.random() < 0.05 else ""
            w.writerow([credit, total, "", "2020-01-01T00:00:00Z", expires, ""])
    return export, credits


def sandbox(credits: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "etl", "sandbox", "--port", "0", "--username", USER,
                             "--password", PASSWORD, "--credits", credits, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split(" at ")[1].split()[0]


def etl(folder: str, *args: str) -> tuple[dict, float]:
    env = {**os.environ, "NEXUDUS_USERNAME": USER, "NEXUDUS_PASSWORD": PASSWORD,
           "XDG_STATE_HOME": os.path.join(folder, "state")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "etl", *args, "-q", "--json"], cwd=folder, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode not in (0, 1, 4):
        sys.exit(f"etl {args[0]} exited {done.returncode}: {done.stderr}")
    return json.loads(done.stdout), took


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/_sandbox/stats") as answer:
        return json.load(answer)


def counted(summary: dict) -> str:
    return ", ".join(f"{n} {o}" for o, n in summary["counts"].items() if n)


def lookups(folder: str, export: str, credits: str) -> None:
    proc, url = sandbox(credits)
    try:
        online, took = etl(folder, "validate", export, "--online", "--api-url", url, "--read-rate", "100000")
        checks = online["account_checks"]
        print(f"(a) validate --online, reads unpaced: {checks['lookups']} look-ups for {ROWS:,} rows, "
              f"checks {checks['seconds']:.1f} s, whole run {took:.1f} s; {counted(online)}; "
              f"found {checks['missing']} missing, {checks['expired']} expired")
        night, took = etl(folder, "import", export, "--api-url", url, "--read-rate", "100000",
                          "--rate", "100000", "--concurrency", "4", "--daily-limit", str(NIGHT))
        checks = night["account_checks"]
        print(f"    import --daily-limit {NIGHT}, reads unpaced: {checks['lookups']} look-ups (tonight's "
              f"rows only), checks {checks['seconds']:.1f} s")
        for name, n in (("validate --online", online["account_checks"]["lookups"]),
                        ("import, one night", checks["lookups"])):
            paced = max(0, n - READ_BURST) / READ_RATE
            print(f"    at the default read pace ({READ_RATE}/s after {READ_BURST} at once), {name}: "
                  f"{n} look-ups take {paced / 60:.0f} min")
    finally:
        proc.terminate()
        proc.wait()


def paced(folder: str, export: str, credits: str, pace: float) -> None:
    proc, url = sandbox(credits, "--read-rate-limit", f"{pace * 1.2:g}")
    try:
        time.sleep(1.5)  # the sandbox's read bucket fills
        online, took = etl(folder, "validate", export, "--online", "--api-url", url, "--read-rate", str(pace))
        checks, seen = online["account_checks"], stats(url)
        expected = max(0, checks["lookups"] - READ_BURST) / pace
        print(f"    paced at {pace:g}/s (sandbox refuses over {pace * 1.2:g}/s): {checks['lookups']} "
              f"look-ups in {checks['seconds']:.1f} s (schedule {expected:.1f} s), "
              f"{seen.get('faults', {}).get('read_throttle', 0)} throttled")
    finally:
        proc.terminate()
        proc.wait()


def saved(folder: str, export: str, credits: str) -> None:
    for flag in ("--check-credits", "--no-check-credits"):
        proc, url = sandbox(credits)
        try:
            night, took = etl(os.path.join(folder, flag), "import", export, "--api-url", url, flag,
                              "--read-rate", "100000", "--rate", "100000", "--concurrency", "4",
                              "--daily-limit", str(NIGHT), "--max-errors", "100000")
            seen = stats(url)
            print(f"(b) one night {flag}: {seen['posts']} POSTs, {night['counts']['created']} created, "
                  f"{night['counts']['rejected']} refused by the server, {night['counts']['invalid']} "
                  f"found invalid before sending ({took:.0f} s)")
        finally:
            proc.terminate()
            proc.wait()


def whole_migration(export: str, credits: str) -> None:
    """POSTs the server would refuse over every night of the migration without the check: a row of
    a missing credit, or one that exceeds what is left when it is sent (computed from the files,
    with the server's own rule, in input order)."""
    left = {int(c["Id"]): Decimal(c["TotalCredit"]) for c in csv.DictReader(open(credits))}
    refused = 0
    with open(export) as f:
        for row in csv.DictReader(f):
            credit, used = int(row["CoworkerBookingCreditId"]), Decimal(row["CreditUsed"])
            if credit not in left or used > left[credit]:
                refused += 1
            else:
                left[credit] -= used
    print(f"    over the whole migration ({ROWS:,} rows, {ROWS // NIGHT} nights at {NIGHT}), without the "
          f"check the server would refuse {refused} POSTs (computed from the files)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pace", type=float, default=50.0, help="reads/s of the paced run (0: skip)")
    parser.add_argument("--only", choices=["a", "paced", "b"], help="run one part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("a", "--check-credits", "--no-check-credits"):
            os.makedirs(os.path.join(tmp, sub))
        export, credits = make(tmp)
        if args.only in (None, "a"):
            lookups(os.path.join(tmp, "a"), export, credits)
        if args.pace and args.only in (None, "paced"):
            paced(tmp, export, credits, args.pace)
        if args.only in (None, "b"):
            saved(tmp, export, credits)
            whole_migration(export, credits)


if __name__ == "__main__":
    main()
