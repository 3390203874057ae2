"""Two state folders, two SQLite journals, one file, one target, one run at a time: the soak.

Two homes (their own XDG_STATE_HOME, so their own journal and registry of journals, as two users
or two machines have) import one export into one sandbox, never at the same moment: each round
picks a home at random and runs it; some runs are SIGKILLed at a random moment. A journal that
knows no row of the file may stop with exit 2 ("another journal has these rows"): a correct, safe
stop, counted; the operator then stops using that home. Finally each home still in use is rerun
until it exits 0 (or 1 with no row left in doubt or failed). The server's records are then compared
with the export: every row must be created exactly once.

    python bench/two_journals_soak.py --rows 600 --kills 10
    python bench/two_journals_soak.py --rows 600 --kills 10 --system-id drop
    python bench/two_journals_soak.py --rows 300 --kills 3 --repeat 5   # five soaks, seeds 7..11

The danger is in the first runs, before both journals know the file: --repeat replays them.

Prints rows, rounds, kills, runs, the guard's stops (exit 2), faults, duplicates, lost rows, rows
left in doubt, wrong ids; each run's home and exit; and, for a duplicate or a lost row, the
server's records of it and what each journal says of them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.soak import FAULTS, PASSWORD, TAG, USER, SoakResult, _compare, write_export  # noqa: E402

GUARD = "another journal has these rows"


@dataclass
class Home:
    name: str
    path: str
    env: dict[str, str]
    cmd: list[str]
    runs: int = 0
    retired: bool = False  # stopped by the guard: the operator uses the other home
    finished: bool = False
    report: str = ""


@dataclass
class TwoJournals:
    result: SoakResult
    rounds: int
    guard_stops: int
    log: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


def _left(report: str) -> int:
    """Rows of a finished run's report still needing a run: in doubt or failed."""
    with open(report, newline="") as f:
        return sum(r["outcome"] in ("in_doubt", "failed", "not_attempted") for r in csv.DictReader(f))


def _run(home: Home, timeout: float, kill_at: float | None) -> tuple[int, str]:
    home.runs += 1
    home.report = os.path.join(home.path, f"results-{home.runs}.csv")
    cmd = [*home.cmd, "--report", home.report]
    errfile = os.path.join(home.path, f"stderr-{home.runs}.txt")
    with open(errfile, "w") as err:
        proc = subprocess.Popen(cmd, env=home.env, cwd=home.path, stdout=subprocess.DEVNULL, stderr=err)
        if kill_at is not None:
            try:
                proc.wait(kill_at)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        code = proc.wait()
    with open(errfile) as f:
        return code, f.read()


def run_two_journals(workdir: str, rows: int, rounds: int, kills: int, seed: int = 1, *,
                     system_id: str = "store", timeout: float = 0.5,
                     kill_window: tuple[float, float] = (0.5, 5.0), kill_share: float = 0.8,
                     max_reruns: int = 30, faults: dict[str, str] | None = None,
                     schedule: list[str] | None = None) -> TwoJournals:
    """FAULTS: the sandbox's fault knobs (default: tests/soak.py's), e.g. {"--unavailable": "0.5"}."""
    rnd = random.Random(seed)
    os.makedirs(workdir, exist_ok=True)
    export = os.path.join(workdir, "export.csv")
    expected = write_export(export, rows, seed)
    db = os.path.join(workdir, "server.sqlite3")
    server = subprocess.Popen(
        [sys.executable, "-m", "etl", "sandbox", "--port", "0", "--db", db, "--username", USER,
         "--password", PASSWORD, "--hang", str(timeout * 2), "--seed", str(seed),
         "--late-delay", str(timeout * 1.5), "--system-id", system_id,
         *[x for kv in {**FAULTS, **(faults or {})}.items() for x in kv]],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=workdir)
    homes: list[Home] = []
    log: list[str] = []
    codes: list[int] = []
    guard_stops = killed = 0
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ")[1].split()[0]
        for name in ("home-a", "home-b"):
            path = os.path.join(workdir, name)
            os.makedirs(path)
            env = {**os.environ, "NEXUDUS_USERNAME": USER, "NEXUDUS_PASSWORD": PASSWORD,
                   "XDG_STATE_HOME": os.path.join(path, "state")}
            env.pop("ETL_JOURNAL", None)
            cmd = [sys.executable, "-m", "etl", "import", export, "--api-url", url, "-q",
                   "--rate", "400", "--concurrency", "4", "--timeout", str(timeout),
                   "--batch-size", "10", "--max-errors", "1000", "--gateway-settle", str(timeout * 4)]
            homes.append(Home(name, path, env, cmd))

        def one(home: Home, kill_at: float | None, phase: str) -> int:
            nonlocal guard_stops, killed
            time.sleep(2 * timeout + 0.1)  # one at a time; unanswered requests settle
            began = time.perf_counter()
            code, err = _run(home, timeout, kill_at)
            codes.append(code)
            took = time.perf_counter() - began
            what = f"{phase} {home.name} run {home.runs}: exit {code} after {took:.1f} s"
            if code == -9:
                killed += 1
                what += " (killed)"
            elif code == 2 and GUARD in err:
                guard_stops += 1
                home.retired = True
                what += " (guard: " + err.strip().splitlines()[-1][:150] + ")"
            elif code not in (0, 1):
                what += " (" + (err.strip().splitlines() or ["no message"])[-1][:150] + ")"
            elif code == 0 or _left(home.report) == 0:
                home.finished = True
            log.append(what)
            return code

        r = 0
        for step in schedule or []:  # a set order first: "ak" home-a killed, "b" home-b to its end
            home = homes["ab".index(step[0])]
            r += 1
            one(home, rnd.uniform(*kill_window) if step.endswith("k") else None, f"round {r}")
        while killed < kills and r < rounds:  # a run at a time, a random home, most of them killed
            live = [h for h in homes if not h.retired] or homes
            if all(h.finished for h in live):
                break
            home = rnd.choice(live)
            r += 1
            kill = r == 1 or rnd.random() < kill_share  # the first run always: its journal's rows are few
            one(home, rnd.uniform(*kill_window) if kill else None, f"round {r}")
        for home in homes:  # each home still in use until it finishes
            home.finished = False
            for _ in range(max_reruns):
                if home.retired or home.finished:
                    break
                one(home, None, "final")
        stats = json.load(urllib.request.urlopen(f"{url}/_sandbox/stats"))
    finally:
        server.terminate()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    done = [h for h in homes if h.finished]
    report = done[-1].report if done else max(homes, key=lambda h: h.runs).report
    result = _compare(expected, db, report, rows, killed, len(codes), stats["faults"], codes)
    for h in done[:-1]:  # every finished home's report must name the right records
        result.wrong_ids += _compare(expected, db, h.report, rows, killed, len(codes), stats["faults"],
                                     codes).wrong_ids
        result.in_doubt += _left(h.report)
    return TwoJournals(result, r, guard_stops, log, _explain(expected, db, homes), [h.name for h in done])


def _journal_rows(home: Home) -> list[dict[str, object]]:
    folder = os.path.join(home.path, "state", "nexudus-etl", "journals")
    out: list[dict[str, object]] = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(".sqlite3"):
            continue
        con = sqlite3.connect(f"file:{os.path.join(folder, name)}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            out += [dict(r) for r in con.execute(
                "SELECT row, state, record_id, run_id, payload, reason FROM rows")]
        finally:
            con.close()
    return out


def _explain(expected: list[tuple[int, Decimal, str]], db: str, homes: list[Home]) -> list[str]:
    """For each credit use the server holds more or fewer times than the export: its records and
    what each journal says of the rows with its values."""
    with sqlite3.connect(db) as con:
        records = [(r[0], (r[1], Decimal(r[2]), TAG.sub("", r[3] or "")), r[4], r[5]) for r in con.execute(
            "SELECT Id, CoworkerBookingCreditId, CreditUsed, Description, SystemId, CreatedOn "
            "FROM credit_uses ORDER BY Id")]
    want, have = Counter(expected), Counter(v for _, v, _, _ in records)
    journals = {h.name: _journal_rows(h) for h in homes}
    lines = []
    for values in sorted(set(want) | set(have)):
        if want[values] == have[values]:
            continue
        lines.append(f"{values}: export has {want[values]}, server has {have[values]}")
        for rid, v, sid, created in records:
            if v == values:
                lines.append(f"    record {rid} SystemId={sid} CreatedOn={created}")
        for name, entries in journals.items():
            for e in entries:
                body = json.loads(str(e["payload"]))
                if (body.get("CoworkerBookingCreditId"), Decimal(str(body.get("CreditUsed"))),
                        TAG.sub("", body.get("Description") or "")) == values:
                    lines.append(f"    {name} journal: row {e['row']} {e['state']} record {e['record_id']} "
                                 f"run {e['run_id']} {e['reason'] or ''}".rstrip())
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs to land before the final runs")
    ap.add_argument("--rounds", type=int, default=30, help="at most this many runs before the final runs")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--system-id", default="store", choices=["store", "drop"],
                    help="what the sandbox does with SystemId (drop: rows matched by their values)")
    ap.add_argument("--kill-window", type=float, nargs=2, default=(0.5, 8.0), metavar=("FROM", "TO"),
                    help="a killed run is killed this many seconds after it started, at random")
    ap.add_argument("--fault", action="append", default=[], metavar="KNOB=P",
                    help="a sandbox fault knob's share instead of tests/soak.py's, e.g. unavailable=0.5")
    ap.add_argument("--schedule", default="", help='runs before the random ones, e.g. "ak,b": home-a '
                    "killed, then home-b to its end")
    ap.add_argument("--repeat", type=int, default=1, help="soaks to run, seeds SEED, SEED+1, ...")
    ap.add_argument("--keep", help="work in this folder and keep it (homes, journals, reports)")
    args = ap.parse_args()
    faults = {"--" + k: v for k, v in (f.split("=", 1) for f in args.fault)}
    total: Counter[str] = Counter()
    for seed in range(args.seed, args.seed + args.repeat):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            work = os.path.join(args.keep, f"seed-{seed}") if args.keep else tmp
            out = run_two_journals(work, args.rows, args.rounds, args.kills, seed, system_id=args.system_id,
                                   kill_window=tuple(args.kill_window), faults=faults,
                                   schedule=[x for x in args.schedule.split(",") if x])
        res = out.result
        print(f"seed {seed}, 2 journals one at a time, SystemId {args.system_id}, {out.rounds} rounds: "
              + res.line())
        print(f"guard stops (exit 2, another journal has these rows): {out.guard_stops}; "
              f"finished: {out.finished}; exit codes: {dict(sorted(Counter(res.exit_codes).items()))}; "
              f"{time.perf_counter() - start:.0f} s")
        for line in out.log:
            print("  " + line)
        if out.explained:
            print("rows not created exactly once:")
            for line in out.explained:
                print("  " + line)
        total.update(soaks=1, rows=res.rows, kills=res.kills, runs=res.runs, guard_stops=out.guard_stops,
                     duplicates=res.duplicates, lost=res.lost, in_doubt=res.in_doubt, wrong_ids=res.wrong_ids,
                     unfinished=not out.finished)
        sys.stdout.flush()
    if args.repeat > 1:
        print("total: " + ", ".join(f"{v} {k}" for k, v in total.items()))


if __name__ == "__main__":
    main()
