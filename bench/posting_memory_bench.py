"""Peak memory of a night that posts many rows: does it stay flat however many it posts?

A history file of --rows rows is imported once for each count of --posts (its --daily-limit),
each time into a fresh journal, against `etl sandbox` running in a process of its own (so that
the emulator's records are not counted). The import's own peak (its maximum resident set, read
from the kernel when it ends) is printed beside the first count's, the baseline of the same run.

    python bench/posting_memory_bench.py                          # 200,000 rows; 10, 40k, 80k POSTs
    python bench/posting_memory_bench.py --rows 1000000 --posts 10,20000,80000
    python bench/posting_memory_bench.py --etl-path /some/checkout   # another version's etl

The sandbox creates a few hundred records a second here: 80,000 POSTs take a few minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

USER, PASSWORD = "bench@example.com", "bench-pass"


def history(path: str, rows: int) -> None:
    """A credit-use history: a few hundred credits, amounts in quarters, rooms and members."""
    rnd = random.Random(7)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("CoworkerBookingCreditId,CreditUsed,Description,BookingId\n")
        for i in range(rows):
            f.write(f"{70000 + rnd.randrange(400)},{rnd.randrange(1, 200) / 4},"
                    f"\"Meeting room {rnd.choice('ABCDEFGH')}, member {rnd.randrange(3000)}\",{800000 + i}\n")


def sandbox(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "etl", "sandbox", "--port", "0",
                             "--username", USER, "--password", PASSWORD],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.split(" at ")[1].split()[0]


def night(path: str, posts: int, env: dict[str, str], tmp: str) -> tuple[float, float, str]:
    """(wall seconds, peak MB, the run's last line) of one import posting POSTS rows."""
    proc, url = sandbox(env)
    try:
        run_env = {**env, "NEXUDUS_USERNAME": USER, "NEXUDUS_PASSWORD": PASSWORD}
        journal = os.path.join(tmp, f"journal-{posts}.sqlite3")
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "etl", "import", path, "--api-url", url, "-q", "--no-check-credits",
             "--journal", journal, "--daily-limit", str(posts), "--rate", "100000", "--concurrency", "8",
             "--report", os.path.join(tmp, f"report-{posts}.csv")],
            env=run_env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert child.stdout is not None
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the sandbox's
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        last = (out.strip().splitlines() or [""])[-1]
        return wall, usage.ru_maxrss / 1024, f"exit {child.returncode}: {last}"
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--posts", default="10,40000,80000", help="POSTs of each night, comma-separated")
    ap.add_argument("--etl-path", help="import etl from this checkout (PYTHONPATH)")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.etl_path:
        env["PYTHONPATH"] = os.path.abspath(args.etl_path)
    counts = [int(c) for c in args.posts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "history.csv")
        history(path, args.rows)
        base = None
        for posts in counts:
            wall, peak, last = night(path, posts, env, tmp)
            base = base or peak
            per_post = (peak - base) * 1024 / max(1, posts - counts[0])
            print(f"{posts:>8} POSTs: {wall:6.1f} s, peak {peak:6.0f} MB ({peak / base:.2f}x the first; "
                  f"+{per_post:.2f} KB a POST)  | {last[:110]}", flush=True)


if __name__ == "__main__":
    main()
