"""The large crash-and-fault soak: many rows, many SIGKILLs, every fault on.

    python bench/soak_bench.py --rows 3000 --kills 10
    python bench/soak_bench.py --rows 3000 --kills 10 --system-id drop   # matched by fields
    python bench/soak_bench.py --rows 3000 --kills 10 --system-id drop --description-max 6

Prints rows, kills, faults injected, duplicates, lost rows and rows left in doubt.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.soak import run_soak  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--system-id", default="store", choices=["store", "drop", "refuse"],
                    help="what the sandbox does with SystemId (drop/refuse: rows matched by fields)")
    ap.add_argument("--tag-description", action="store_true")
    ap.add_argument("--no-check-credits", dest="check_credits", action="store_false",
                    help="rows keyed a chunk at a time (the account checks identify them one by one)")
    ap.add_argument("--description-max", type=int, default=0,
                    help="the sandbox keeps descriptions cut to this many characters")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_soak(tmp, args.rows, args.kills, args.seed, kill_window=(0.5, 4.0), max_reruns=30,
                          system_id=args.system_id, tag=args.tag_description,
                          description_max=args.description_max, check_credits=args.check_credits)
        print(result.line())
        print(f"exit codes: {result.exit_codes}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
