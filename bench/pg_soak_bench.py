"""Two machines, one PostgreSQL journal: the soak of a shared journal.

Two importers with separate homes (their own state folders and working folders, as two hosts
have) import one export into one target through one PostgreSQL journal, started at the same
moment, round after round, and SIGKILLed at random; then each is rerun until both finish. The
server's records are compared with the export: every row must be created exactly once.

    python bench/pg_soak_bench.py --rows 600 --rounds 12

Needs the test extra (pgserver starts a PostgreSQL server in a temporary folder). Prints rows,
rounds, kills, runs stopped by the other's lock (exit 3), faults, duplicates, lost rows, rows
left in doubt.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.soak import FAULTS, PASSWORD, USER, _compare, write_export  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    timeout = 0.5
    with tempfile.TemporaryDirectory() as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            pg = pgserver.get_server(os.path.join(tmp, "pg"), cleanup_mode="stop")
        import psycopg

        with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE shared_journal")
        journal = pg.get_uri("shared_journal").replace("postgres:@", "postgres:made-up-soak-secret@")
        export = os.path.join(tmp, "export.csv")
        expected = write_export(export, args.rows, args.seed)
        db = os.path.join(tmp, "server.sqlite3")
        server = subprocess.Popen(
            [sys.executable, "-m", "etl", "sandbox", "--port", "0", "--db", db, "--username", USER,
             "--password", PASSWORD, "--hang", str(timeout * 2), "--seed", str(args.seed),
             "--late-delay", str(timeout * 1.5), *[x for kv in FAULTS.items() for x in kv]],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp)
        start = time.perf_counter()
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split(" at ")[1].split()[0]
            homes = []
            for name in ("host-a", "host-b"):
                home = os.path.join(tmp, name)
                os.makedirs(home)
                env = {**os.environ, "NEXUDUS_USERNAME": USER, "NEXUDUS_PASSWORD": PASSWORD,
                       "XDG_STATE_HOME": os.path.join(home, "state"), "ETL_JOURNAL": journal}
                cmd = [sys.executable, "-m", "etl", "import", export, "--api-url", url, "-q",
                       "--rate", "400", "--concurrency", "4", "--timeout", str(timeout),
                       "--report", os.path.join(home, "results.csv"), "--batch-size", "10",
                       "--max-errors", "1000", "--gateway-settle", str(timeout * 4)]
                homes.append((home, env, cmd))
            codes: Counter[int] = Counter()
            kills = runs = 0
            for _ in range(args.rounds):  # both at once; kill what still runs at a random moment
                procs = [subprocess.Popen(cmd, env=env, cwd=home, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL) for home, env, cmd in homes]
                runs += 2
                time.sleep(rnd.uniform(0.5, 3.0))
                for proc in procs:
                    if proc.poll() is None and rnd.random() < 0.8:
                        proc.send_signal(signal.SIGKILL)
                        kills += 1
                    codes[proc.wait()] += 1
            finished = []
            for attempt in range(40):  # rerun each machine in turn until both finish
                home, env, cmd = homes[attempt % 2]
                time.sleep(2 * timeout + 0.1)
                done = subprocess.run(cmd, env=env, cwd=home, capture_output=True, text=True)
                runs += 1
                codes[done.returncode] += 1
                if done.returncode == 0:
                    finished.append(home)
                    if len(set(finished)) == 2:
                        break
            stats = json.load(urllib.request.urlopen(f"{url}/_sandbox/stats"))
        finally:
            server.terminate()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pg.cleanup()
        result = _compare(expected, db, os.path.join(finished[-1], "results.csv"), args.rows, kills, runs,
                          stats["faults"], sorted(codes.elements()))
        print(f"2 machines, {args.rounds} rounds: " + result.line())
        print(f"exit codes: {dict(sorted(codes.items()))} (3: the other held the journal, or a fault "
              f"stopped it; -9: killed); both finished: {len(set(finished)) == 2}; "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
