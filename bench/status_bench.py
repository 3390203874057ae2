"""`etl status` on a migration's journal of a million rows, as a whole process, against a baseline.

The journal is made by etl's own Journal (its real schema, indexes and migrations), then filled
in one transaction with rows as an import leaves them: one history file, most rows created, a
few thousand refused, some failed, in doubt and not attempted, realistic payloads and
identities. Then, alternately, each of

    status-1M   python -m etl status --journal BIG --daily-limit 5000
    status-10   python -m etl status --journal SMALL (a journal of 10 rows)
    import      python -c 'import etl.cli'

runs ROUNDS times; the medians (and the best) are printed, and the ratio of status-1M to each
baseline. The page cache is warm after the first round (the journal was just written), as on
an operator's machine that runs status after a night's import; with --cold, the big journal's
pages are dropped from the page cache (posix_fadvise DONTNEED, that file only) before each of
its runs, as on the first status of a morning.

    python bench/status_bench.py                        # 1,000,000 rows, SQLite
    python bench/status_bench.py --rows 200000 --rounds 5
    python bench/status_bench.py --cold                 # the journal read from disk each time
    python bench/status_bench.py --postgresql           # the same in a pgserver PostgreSQL
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

TARGET = "https://spaces.nexudus.com"
RESOURCE = "coworkerbookingcreditusehistories"
HISTORY = "/data/history-2019-2025.csv"


def states(rows: int) -> Iterator[str]:
    """What a migration half way through leaves: per 1,000 rows, 900 created, 60 refused, 20
    failed, 10 in doubt, 10 not attempted (withdrawn at a stop)."""
    plan = ["created"] * 900 + ["rejected"] * 60 + ["failed"] * 20 + ["in_doubt"] * 10 \
        + ["not_attempted"] * 10
    for i in range(rows):
        yield plan[i % len(plan)]


def make_journal(path: str, rows: int, *, extra_valid: int = 0) -> None:
    """A journal of ROWS rows of one file (whose other EXTRA_VALID valid rows were never sent)."""
    from etl.ledger.entries import ROW_COLUMNS, canonical_json, now_iso, payload_hash
    from etl.ledger.journal import Journal

    journal = Journal(path, TARGET, run_id="bench-run-2", command="bench")
    try:
        journal.start_run("import", [HISTORY], "2026-11-23T01:00:00+00:00")
        now, t = now_iso(), time.time()
        batch: list[tuple[Any, ...]] = []
        with journal.transaction() as db:
            marks = ",".join("?" * len(ROW_COLUMNS))
            insert = f"INSERT INTO rows ({', '.join(ROW_COLUMNS)}) VALUES ({marks})"
            for i, state in enumerate(states(rows)):
                body = canonical_json({"CoworkerBookingCreditId": 1000 + i % 5000,
                                       "CreditUsed": f"{1 + i % 7}.5",
                                       "Description": f"Meeting room {i % 97}, history row {i}",
                                       "SystemId": f"etl-{i:012x}"})
                identity = hashlib.sha256(f"{RESOURCE}\n{i}".encode()).hexdigest()[:40]
                batch.append((
                    identity, "values", identity[:32], 0, state,
                    10_000_000 + i if state == "created" else None,
                    {"created": 200, "rejected": 400, "failed": 503}.get(state),
                    1, None if state == "created" else f"bench: {state}", body,
                    payload_hash(RESOURCE, body), HISTORY, i + 2, RESOURCE, "bench-run-2",
                    f"etl-{i:012x}", 30.0, t, t, 0.0, None,
                    now if state == "created" else None, now, 9_999_999 + i, t, None))
                if len(batch) == 50_000:
                    db.executemany(insert, batch)
                    batch.clear()
            db.executemany(insert, batch)
            db.execute("INSERT OR REPLACE INTO quota VALUES (?, ?)",
                       (time.strftime("%Y-%m-%d", time.gmtime()), 4000))
        journal.note_source(HISTORY, rows + extra_valid + rows // 100, rows + extra_valid, "values")
        journal.finish_run(4, {"created": rows * 9 // 10})
    finally:
        journal.close()


def evict(path: str) -> None:
    """Drop PATH's pages from the page cache (this file's only; nothing else is touched)."""
    for name in (path, path + "-wal"):
        if os.path.exists(name):
            fd = os.open(name, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--postgresql", action="store_true", help="the big journal in PostgreSQL (pgserver)")
    parser.add_argument("--cold", action="store_true",
                        help="drop the big SQLite journal from the page cache before each of its runs")
    parser.add_argument("--keep", metavar="DIR", help="make the journals in DIR and leave them there")
    args = parser.parse_args()

    tmp = args.keep or tempfile.mkdtemp(prefix="status-bench-")
    os.makedirs(tmp, exist_ok=True)
    env = {**os.environ, "XDG_STATE_HOME": os.path.join(tmp, "state"), "ETL_CONFIG": ""}
    os.environ["XDG_STATE_HOME"] = env["XDG_STATE_HOME"]  # the journals made here register there
    server = None
    if args.postgresql:
        import pgserver

        server = pgserver.get_server(os.path.join(tmp, "pg"), cleanup_mode="stop")
        big = server.get_uri()
    else:
        big = os.path.join(tmp, f"journal-{args.rows}.sqlite3")
    small = os.path.join(tmp, "journal-10.sqlite3")
    try:
        if not os.path.exists(small):
            make_journal(small, 10)
        if args.postgresql or not os.path.exists(big):
            start = time.perf_counter()
            make_journal(big, args.rows, extra_valid=args.rows // 10)
            size = "" if args.postgresql else f", {os.path.getsize(big) / 1e6:.0f} MB"
            print(f"made a journal of {args.rows:,} rows in {time.perf_counter() - start:.1f} s{size}")
        etl = [sys.executable, "-m", "etl", "status", "--daily-limit", "5000", "--journal"]
        runs = {"status-1M": etl + [big], "status-10": etl + [small],
                "import": [sys.executable, "-c", "import etl.cli"]}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, argv in runs.items():
                if args.cold and name == "status-1M" and not args.postgresql:
                    evict(big)
                took, done = timed(argv, env)
                if done.returncode != 0:
                    sys.exit(f"{name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
                times[name].append(took)
        out = subprocess.run(etl + [big], capture_output=True, text=True, env=env).stdout
        print(out.split("Last runs:")[0].rstrip())
        med = {name: statistics.median(t) for name, t in times.items()}
        for name, t in times.items():
            print(f"{name:10} median {med[name]:.3f} s, best {min(t):.3f} s, worst {max(t):.3f} s "
                  f"({args.rounds} rounds)")
        print(f"status of {args.rows:,} rows: {med['status-1M']:.3f} s = "
              f"{med['status-1M'] / med['status-10']:.2f}x status of 10 rows, "
              f"{med['status-1M'] / med['import']:.2f}x importing etl.cli "
              f"({'PostgreSQL' if args.postgresql else 'SQLite'}{', cold' if args.cold else ''})")
        print(json.dumps({"rows": args.rows, "median_s": med}))
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
