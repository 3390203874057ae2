"""Posting throughput against the sandbox running in its own process.

(a) paced: the sandbox allows 20 POSTs/s with 50 ms latency; `etl import --rate 20` for about
    60 s. Reports the achieved rate as a fraction of the limit and the share of 409s.
(b) flat out: no limit, no latency, the journal on; the most rows per second the client sustains.
(c) over the limit: the sandbox allows 20/s, `--rate 30`: how close the pace settles under the
    server's real limit, and how many requests are throttled on the way.

    python bench/post_bench.py                    # all three
    python bench/post_bench.py --only b
    python bench/post_bench.py --only a --seconds 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request


def sandbox(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "etl", "sandbox", "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.split(" at ")[1].split()[0]


def export(path: str, rows: int) -> None:
    with open(path, "w") as f:
        f.write("CoworkerBookingCreditId,CreditUsed,Description\n")
        for i in range(rows):
            f.write(f"{1000 + i % 500},{1 + i % 7}.5,bench row {i}\n")


def posting_rate(report: str) -> tuple[int, float]:
    """Rows created, and POSTs a second from the first answer to the last, read back through
    `etl report`'s own reader (the run's log), not the journal's tables, whose layout is etl's."""
    from etl.report.run_report import read

    times = [when for when, outcome in read(report).posts if outcome == "created"]
    if len(times) < 2:
        return len(times), 0.0
    span = (times[-1] - times[0]).total_seconds()
    return len(times), (len(times) - 1) / span if span > 0 else float("inf")


def run(name: str, rows: int, sandbox_args: list[str], import_args: list[str]) -> None:
    proc, url = sandbox("--username", "bench@example.com", "--password", "bench-pass", *sandbox_args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "export.csv")
            export(path, rows)
            env = {**os.environ, "NEXUDUS_USERNAME": "bench@example.com", "NEXUDUS_PASSWORD": "bench-pass"}
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "etl", "import", path, "--api-url", url, "-q",
                 "--journal", os.path.join(tmp, "j.sqlite3"), "--daily-limit", "1000000",
                 "--report", os.path.join(tmp, "r.csv"), *import_args],
                env=env, capture_output=True, text=True, cwd=tmp)
            wall = time.perf_counter() - start
            created, rate = posting_rate(os.path.join(tmp, "r.csv"))
            stats = json.load(urllib.request.urlopen(f"{url}/_sandbox/stats"))
            throttled = stats["faults"].get("throttle", 0)
            print(f"[{name}] exit {done.returncode}; {created} created in {wall:.1f} s wall; "
                  f"posting rate {rate:.2f}/s (first to last creation); "
                  f"409s {throttled} of {stats['posts'] + throttled} requests "
                  f"({100 * throttled / max(1, stats['posts'] + throttled):.2f}%)")
            if done.returncode:
                print(done.stdout, done.stderr)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=["a", "b", "c"])
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    if args.only in (None, "a"):
        rows = int(20 * args.seconds)
        run("a: limit 20/s, 50 ms latency", rows, ["--rate-limit", "20", "--latency", "0.05"],
            ["--rate", "20", "--concurrency", "4"])
        print("    fraction of the limit = posting rate / 20")
    if args.only in (None, "c"):
        run("c: limit 20/s, --rate 30", int(20 * args.seconds),
            ["--rate-limit", "20", "--latency", "0.05"], ["--rate", "30", "--concurrency", "4"])
    if args.only in (None, "b"):
        run("b: no limit, no latency", 5000, [], ["--rate", "100000", "--concurrency", "4"])


if __name__ == "__main__":
    main()
