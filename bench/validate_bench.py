"""Dry-run speed and memory: `etl validate` against `pandas.read_csv(path, dtype=str)`.

Generates an export of N rows (1 in 200 bad), then alternates the two, each in a fresh
process so both pay for start-up and imports, and reports wall time and peak RSS (wait4).

    python bench/validate_bench.py --rows 1000000 --repeat 3
    python bench/validate_bench.py --rows 5000000 --repeat 1
    python bench/validate_bench.py --rows 100000 --xlsx   # workbook readers: calamine vs openpyxl
"""

from __future__ import annotations

import argparse
import csv
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


def timed(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{cmd} failed with {status}")
    return elapsed, usage.ru_maxrss / 1024


def xlsx_readers(rows: int, folder: str) -> None:
    """Seconds to read every cell of an N-row sheet: calamine (what `etl` uses) vs openpyxl's
    read-only mode (which trusts `<dimension>` and loses rows when it understates the sheet)."""
    import openpyxl

    path = os.path.join(folder, f"export-{rows}.xlsx")
    if not os.path.exists(path):
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet()
        sheet.append(HEADER)
        for i in range(rows):
            sheet.append([i + 1, 1.25, f"Meeting room #{i}", None, i, None])
        book.save(path)
    readers = {
        "calamine": "from python_calamine import CalamineWorkbook as B\n"
                    "s = B.from_path(P).get_sheet_by_name(B.from_path(P).sheet_names[0])\n"
                    "n = sum(1 for _ in s.iter_rows())",
        "openpyxl read-only": "import openpyxl\n"
                              "b = openpyxl.load_workbook(P, read_only=True, data_only=True)\n"
                              "n = sum(1 for _ in b.worksheets[0].iter_rows(values_only=True))",
    }
    print(f"{rows} rows, {os.path.getsize(path) / 1e6:.1f} MB .xlsx")
    for name, code in readers.items():
        seconds, peak = timed([sys.executable, "-c", f"P = {path!r}\n{code}"])
        print(f"{name:20} {seconds:.2f} s, peak {peak:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(__file__), "out"))
    ap.add_argument("--xlsx", action="store_true", help="measure the workbook readers instead")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    if args.xlsx:
        xlsx_readers(args.rows, args.dir)
        return
    path = os.path.join(args.dir, f"export-{args.rows}.csv")
    if not os.path.exists(path):
        print(f"generating {path} ...", file=sys.stderr)
        generate(path, args.rows)
    print(f"{args.rows} rows, {os.path.getsize(path) / 1e6:.0f} MB")
    pandas_cmd = [sys.executable, "-c",
                  f"import pandas; pandas.read_csv({path!r}, dtype=str)"]
    with tempfile.TemporaryDirectory() as tmp:
        etl_cmd = [sys.executable, "-m", "etl", "validate", path, "-q",
                   "--report", os.path.join(tmp, "results.csv")]
        base, ours = [], []
        for _ in range(args.repeat):
            base.append(timed(pandas_cmd))
            ours.append(timed(etl_cmd))
    bt = statistics.median(t for t, _ in base)
    et = statistics.median(t for t, _ in ours)
    print(f"pandas.read_csv(dtype=str): {bt:.2f} s median, peak {max(m for _, m in base):.0f} MB")
    print(f"etl validate:               {et:.2f} s median, peak {max(m for _, m in ours):.0f} MB")
    print(f"ratio etl/pandas: {et / bt:.2f}")


if __name__ == "__main__":
    main()
