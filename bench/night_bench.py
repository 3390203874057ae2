"""A migration night against its dry run: `etl import --sandbox --no-check-credits` of a history
file at a small --daily-limit, alternated with `etl validate` of the same file.

Each command runs in a fresh process (start-up and imports included); the ratio of each pair is
reported, and its median is the figure (it holds when the machine drifts). Peak RSS is wait4's.

- night 1: a state folder of its own for every pair (no journal, no keys kept);
- nights 2.. : one state folder, a night after another, each with a quota 10 POSTs larger (the
  journal counts today's POSTs);
- with --big N: before the nights after, one night posts N rows (a journal that has carried
  N rows of the file: a migration twenty nights in at --daily-limit N/20).

After each timed run, its report folder is removed and the disk synced (not timed): a night
writes one report, not the backlog of every run before it (left to write back, the reports of
the runs before slowed each later run by up to a third, the import more than the dry run).

    python bench/night_bench.py --rows 1000000 --repeat 3
    python bench/night_bench.py --rows 1000000 --repeat 3 --big 100000
    python bench/night_bench.py --rows 5000000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from validate_bench import generate  # noqa: E402
from validate_bench import timed as one_run  # noqa: E402


def run(label: str, pairs: list[tuple[float, float, float, float]]) -> None:
    ratios = [n / v for n, _, v, _ in pairs]
    night = statistics.median(p[0] for p in pairs)
    dry = statistics.median(p[2] for p in pairs)
    print(f"{label}: etl import {night:.2f} s, "
          f"peak {max(p[1] for p in pairs):.0f} MB; etl validate {dry:.2f} s, "
          f"peak {max(p[3] for p in pairs):.0f} MB; ratio median {statistics.median(ratios):.2f} "
          f"(pairs {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nights", type=int, default=3, help="nights after the first, each measured")
    ap.add_argument("--big", type=int, default=0, metavar="N", help="a night of N POSTs before them")
    ap.add_argument("--rate", type=float, metavar="N",
                    help="etl import's --rate (default: its own, 10 POSTs a second with --sandbox)")
    ap.add_argument("--no-warm", action="store_true", help="no unmeasured first run of each command")
    ap.add_argument("--check-credits", action="store_true",
                    help="import with the account checks on (etl import's default; off by default here)")
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args()
    # an installed etl has its bytecode compiled (pip does it): where this machine says never to
    # write it, both commands would compile etl's modules on every run
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, f"history-{args.rows}.csv")
    if not os.path.exists(path):
        generate(path, args.rows)
    etl = [sys.executable, "-m", "etl"]
    dry = [*etl, "validate", path, "-q"]
    work = tempfile.mkdtemp(prefix="night-bench-")

    def timed(cmd: list[str], cwd: str, ok: tuple[int, ...] = (0, 1)) -> tuple[float, float]:
        measured = one_run(cmd, cwd=cwd, ok=ok)
        shutil.rmtree(os.path.join(cwd, "logs"), ignore_errors=True)
        os.sync()
        return measured

    try:
        def night(state: str, limit: int) -> tuple[float, float]:
            os.environ["XDG_STATE_HOME"] = state
            rate = ["--rate", str(args.rate)] if args.rate else []
            checks = [] if args.check_credits else ["--no-check-credits"]
            return timed([*etl, "import", path, "--sandbox", *checks, "-q",
                          "--daily-limit", str(limit), *rate], cwd=work, ok=(0, 1, 4))

        if not args.no_warm:  # both commands once, unmeasured (bytecode, caches)
            night(os.path.join(work, "warm"), 10)
            timed(dry, cwd=work)
        pairs = []
        for k in range(args.repeat):
            state = os.path.join(work, f"first-{k}")
            pairs.append((*night(state, 10), *timed(dry, cwd=work)))
        run("night 1", pairs)
        state = os.path.join(work, "nights")
        night(state, 10)
        done = 10
        if args.big:
            night(state, args.big)
            done = args.big
            print(f"(a night of {args.big} POSTs: the journal holds {args.big} rows)", flush=True)
        for n in range(2, 2 + args.nights):
            pairs = []
            for _ in range(args.repeat):
                done += 10
                pairs.append((*night(state, done), *timed(dry, cwd=work)))
            run(f"night {n}" + (" (after the big night)" if args.big else "") + " (file unchanged)", pairs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
