"""Dry-run speed and memory: `etl validate` against a bare pandas read of the same file.

Generates an export of N rows (1 in 200 bad), then alternates the two, each in a fresh
process so both pay for start-up and imports, and reports wall time and peak RSS (wait4) and
the ratio of each pair (the median ratio is the figure: it holds when the machine drifts).
The baseline is `pandas.read_csv(path, dtype=str, keep_default_na=False)` for CSV and
`pandas.read_excel(path, dtype=str)` (its default engine) for a workbook.

    python bench/validate_bench.py --rows 1000000 --repeat 3
    python bench/validate_bench.py --rows 5000000 --repeat 1
    python bench/validate_bench.py --rows 100000 --xlsx
    python bench/validate_bench.py --rows 1000000 --same-as /path/to/old/venv/bin/python
    python bench/validate_bench.py --rows 1000000 --resource strict.py   # a schema of your own

`--same-as PYTHON` also runs `etl validate` with another install (the code before a change) and
says whether the two wrote the same results.csv and errors.csv, byte for byte.
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

HEADER = ["CoworkerBookingCreditId", "CreditUsed", "Description", "BookingId",
          "CoworkerInvoiceLineId", "EventAttendeeId"]


def generate(path: str, rows: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(rows):
            row = [str(rnd.randint(1, 99_999)), f"{rnd.randint(1, 800) / 4}",
                   f"Meeting room, {rnd.choice(['Ada', 'Grace', 'Linus', 'Zoë'])} #{i}",
                   str(rnd.randint(1, 10**6)) if i % 3 == 0 else "",
                   str(rnd.randint(1, 10**6)) if i % 3 == 1 else "",
                   str(rnd.randint(1, 10**6)) if i % 3 == 2 else ""]
            if i % 200 == 0:
                row[rnd.randint(0, 1)] = rnd.choice(["abc", "-3", "0", "12.5", ""])
            w.writerow(row)


def timed(cmd: list[str], cwd: str | None = None, ok: tuple[int, ...] = (0, 1)) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process; OK: the exit codes that are no failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in ok:
        raise SystemExit(f"{cmd} failed with {status}")
    return elapsed, usage.ru_maxrss / 1024


def generate_xlsx(path: str, rows: int) -> None:
    """A workbook as Excel keeps one: numbers as numbers, 1 row in 200 with a bad cell."""
    import openpyxl

    rnd = random.Random(7)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(HEADER)
    for i in range(rows):
        row: list[object] = [rnd.randint(1, 99_999), rnd.randint(1, 800) / 4, f"Meeting room #{i}",
                             rnd.randint(1, 10**6) if i % 3 == 0 else None,
                             rnd.randint(1, 10**6) if i % 3 == 1 else None,
                             rnd.randint(1, 10**6) if i % 3 == 2 else None]
        if i % 200 == 0:
            row[rnd.randint(0, 1)] = rnd.choice(["abc", -3, 0, 12.5, None])
        sheet.append(row)
    book.save(path)


def same_reports(python: str, etl_python: str, path: str, folder: str) -> bool:
    """Whether two installs of etl write the same results.csv and errors.csv for PATH."""
    outs = []
    for name, exe in (("before", python), ("after", etl_python)):
        out = os.path.join(folder, name)
        os.makedirs(out, exist_ok=True)
        subprocess.run([exe, "-m", "etl", "validate", path, "-q", "--report",
                        os.path.join(out, "results.csv")], cwd=folder, stdout=subprocess.DEVNULL, check=False)
        outs.append(out)
    return all(filecmp.cmp(os.path.join(outs[0], f), os.path.join(outs[1], f), shallow=False)
               for f in ("results.csv", "errors.csv"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(__file__), "out"))
    ap.add_argument("--xlsx", action="store_true", help="a workbook, against pandas.read_excel")
    ap.add_argument("--same-as", metavar="PYTHON", help="compare the reports with another install's")
    ap.add_argument("--resource", metavar="NAME|PATH", help="the schema etl validates against")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.abspath(os.path.join(args.dir, f"export-{args.rows}.{'xlsx' if args.xlsx else 'csv'}"))
    if not os.path.exists(path):
        print(f"generating {path} ...", file=sys.stderr)
        (generate_xlsx if args.xlsx else generate)(path, args.rows)
    print(f"{args.rows} rows, {os.path.getsize(path) / 1e6:.0f} MB")
    if args.xlsx:
        baseline = f"import pandas; pandas.read_excel({path!r}, dtype=str)"
        label = "pandas.read_excel(dtype=str)"
    else:
        baseline = f"import pandas; pandas.read_csv({path!r}, dtype=str, keep_default_na=False)"
        label = "pandas.read_csv(dtype=str)"
    with tempfile.TemporaryDirectory() as tmp:
        pandas_cmd = [sys.executable, "-c", baseline]
        etl_cmd = [sys.executable, "-m", "etl", "validate", path, "-q",
                   "--report", os.path.join(tmp, "results.csv")]
        if args.resource:
            etl_cmd += ["--resource", os.path.abspath(args.resource)]
        base, ours = [], []
        for _ in range(args.repeat):  # alternated, so a drift of the machine hits both
            base.append(timed(pandas_cmd, tmp))
            ours.append(timed(etl_cmd, tmp))
        if args.same_as:
            same = same_reports(args.same_as, sys.executable, path, tmp)
    bt = statistics.median(t for t, _ in base)
    et = statistics.median(t for t, _ in ours)
    ratios = [o / b for (o, _), (b, _) in zip(ours, base, strict=True)]
    print(f"{label:29} {bt:.2f} s median, peak {max(m for _, m in base):.0f} MB")
    print(f"{'etl validate':29} {et:.2f} s median, peak {max(m for _, m in ours):.0f} MB")
    print(f"ratio etl/pandas: {statistics.median(ratios):.2f} median of pairs "
          f"({', '.join(f'{r:.2f}' for r in ratios)})")
    if args.same_as:
        print(f"reports the same as {args.same_as}'s: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
