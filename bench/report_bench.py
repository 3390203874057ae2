"""What an import's report costs at the end of a run, and its fsyncs along the way.

An export of N rows (1 in 200 bad, as bench/validate_bench.py makes them) is imported into
`etl sandbox` running in its own process, with a small --daily-limit. The import runs in this
process so that two of its steps can be timed from outside the code that does them: the end of
the run (`Importer._report_whole`: the lines of rows sent or in doubt decided again from the
journal, the report and errors.csv made again whole when a line changed, errors.csv published)
and every `os.fsync`. Reported with the run's counts and wall time.

    python bench/report_bench.py --rows 200000 --daily-limit 10        # most nights
    python bench/report_bench.py --rows 200000 --daily-limit 200 --late 0.3 --valid-every 1000
        # a share of the POSTs answered 504 whose record appears later: in doubt when their line
        # is written, found created at the end, so the report is made again (--valid-every: only
        # every Nth row valid, so that the run ends by itself and its end-of-run check runs)
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from validate_bench import generate  # noqa: E402


def timed(obj: Any, name: str, into: dict[str, list[float]], key: str) -> None:
    """OBJ.NAME, timed into INTO[KEY] (one entry per call)."""
    original = getattr(obj, name)

    def wrapper(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kw)
        finally:
            into.setdefault(key, []).append(time.perf_counter() - start)

    setattr(obj, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--daily-limit", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--late", type=float, default=0.0,
                    help="share of POSTs answered 504 whose record appears half a second later")
    ap.add_argument("--valid-every", type=int, default=1, help="only every Nth row is valid")
    args = ap.parse_args()

    folder = tempfile.mkdtemp(prefix="etl-report-bench-")
    path = os.path.join(folder, "history.csv")
    generate(path, args.rows)
    if args.valid_every > 1:
        with open(path, newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
        for i, line in enumerate(lines[1:]):
            line[1] = "1.5" if i % args.valid_every == 0 else "abc"
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(lines)
    os.environ["XDG_STATE_HOME"] = os.path.join(folder, "state")
    box = subprocess.Popen([sys.executable, "-m", "etl", "sandbox", "--port", "0", "--late-delay", "0.5",
                            "--gateway-timeout-late", str(args.late)], stdout=subprocess.PIPE, text=True)
    assert box.stdout is not None
    url = box.stdout.readline().split(" at ")[1].split()[0]

    from etl.cli import main as etl
    from etl.run import importing

    took: dict[str, list[float]] = {}
    timed(importing.Importer, "_report_whole", took, "end")
    timed(os, "fsync", took, "fsync")
    report = os.path.join(folder, "out", "results.csv")
    start = time.perf_counter()
    try:
        etl(["import", path, "--api-url", url, "--username", "sandbox@example.com", "--password",
             "sandbox-password", "--rate", "1000", "--timeout", "0.5", "--no-check-credits",
             "--daily-limit", str(args.daily_limit), "--batch-size", str(args.batch_size), "-q",
             "--report", report], prog_name="etl", standalone_mode=False)
    except SystemExit:
        pass
    wall = time.perf_counter() - start
    box.terminate()
    box.wait()
    size = os.path.getsize(report) + os.path.getsize(os.path.join(folder, "out", "errors.csv"))
    shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.rows} rows, --daily-limit {args.daily_limit}, --batch-size {args.batch_size}: "
          f"wall {wall:.2f} s; end of run {sum(took.get('end', [0.0])):.3f} s "
          f"(report and errors.csv {size / 1e6:.1f} MB); {len(took.get('fsync', []))} fsyncs, "
          f"{sum(took.get('fsync', [])):.3f} s")


if __name__ == "__main__":
    main()
