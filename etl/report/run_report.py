"""`etl report`: what a finished run did, read back from its results.csv, summary.json and log.

The results CSV is the source of truth (one line per input row); summary.json beside it adds
the run's times and exit code, and the run's log.jsonl gives the time of every POST.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from etl.errors import UsageProblem
from etl.outcomes import NEEDS_ACTION, Outcome
from etl.report.reporting import FIXED, results_batches
from etl.texts import aligned

DEFAULT_RESOURCE = "coworkerbookingcreditusehistories"

SEPARATOR = " | "
#: A reason's own value ("abc") is left out, so rows with the same problem count together; a
#: quoted text inside a hint in brackets (`(the decimal mark is ",")`) is the rule, and stays.
_QUOTED = re.compile(r'\([^()]*\)|"(?:[^"]|"")*"')
_FIELD = re.compile(r"^([\w.\-]+): (.*)$", re.DOTALL)


@dataclass
class RunReport:
    results: str
    summary: dict[str, Any] = field(default_factory=dict)
    log: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    by_file: dict[str, Counter[str]] = field(default_factory=dict)
    reasons: dict[str, Counter[str]] = field(default_factory=dict)  # column -> reason -> rows
    attention: list[dict[str, str]] = field(default_factory=list)  # the first rows that need action
    attention_total: int = 0
    posts: list[tuple[dt.datetime, str]] = field(default_factory=list)  # (when, outcome) per POST

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def top_reasons(self, n: int = 10) -> list[tuple[str, str, int]]:
        """(column, reason, rows), most common first."""
        every = [(col, why, k) for col, reasons in self.reasons.items() for why, k in reasons.items()]
        return sorted(every, key=lambda t: (-t[2], t[0], t[1]))[:n]


def locate(target: str) -> tuple[str, str | None]:
    """(results.csv, log.jsonl or None) of RUN_DIR or RESULTS.csv."""
    if os.path.isdir(target):
        results = os.path.join(target, "results.csv")
        if not os.path.exists(results):
            raise UsageProblem(f"{target}: no results.csv in this folder; name the report CSV itself")
    elif os.path.exists(target):
        results = target
    else:
        raise UsageProblem(f"{target}: no such run folder or results CSV")
    folder = os.path.dirname(os.path.abspath(results))
    log = os.path.join(folder, "log.jsonl")
    if not os.path.exists(log):
        run_id = _summary(folder).get("run_id")
        log = os.path.join("logs", str(run_id), "log.jsonl") if run_id else ""
    return results, log if log and os.path.exists(log) else None


def _summary(folder: str) -> dict[str, Any]:
    try:
        with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def read(target: str, *, keep: int = 200) -> RunReport:
    """The run behind TARGET (a run folder or a results CSV), with the first KEEP rows that need action."""
    import pyarrow as arrow

    results, log = locate(target)
    report = RunReport(results, _summary(os.path.dirname(os.path.abspath(results))), log)
    if os.path.getsize(results) == 0:
        raise UsageProblem(f"{results}: empty: the run wrote no line (it stopped before its first batch, "
                           "or it is still running); `etl status` says what the journal knows")
    try:
        with open(results, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
    except UnicodeDecodeError:
        header = []
    if header[: len(FIXED)] != FIXED:
        raise UsageProblem(f"{results}: not an etl results report (its columns are not {', '.join(FIXED)})")
    try:
        _count(report, results, header, keep)
    except (UnicodeDecodeError, arrow.ArrowInvalid) as exc:
        raise UsageProblem(f"{results}: not an etl results report: it can't be read as one ({exc})") from None
    if log:
        report.posts = posts(log)
    return report


def _count(report: RunReport, results: str, header: list[str], keep: int) -> None:
    """REPORT's counts, reasons and first rows that need action, from the lines of RESULTS."""
    import pyarrow as arrow
    import pyarrow.compute as pc

    columns = set(header[len(FIXED):]) | _field_names(report.summary.get("resource"))
    action = arrow.array(NEEDS_ACTION)
    for batch in results_batches(results, len(header)):
        sources, outcomes = batch.column(0).to_pylist(), batch.column(2).to_pylist()
        for source, outcome in zip(sources, outcomes, strict=True):
            report.counts[outcome] += 1
            report.by_file.setdefault(source, Counter())[outcome] += 1
        needs = batch.filter(pc.is_in(batch.column(2), value_set=action))
        report.attention_total += needs.num_rows
        for source, row, outcome, errors in zip(
            *(needs.column(i).to_pylist() for i in (0, 1, 2, 6)), strict=True
        ):
            if len(report.attention) < keep:
                report.attention.append({"source": source, "row": row, "outcome": outcome, "errors": errors})
            for column, reason in reasons(errors, columns):
                report.reasons.setdefault(column, Counter())[reason] += 1


def _field_names(resource: object) -> set[str]:
    """The columns of the run's resource: a reason names the schema's column even where the
    file called it by an alias or --map renamed it (the report keeps the file's own headers)."""
    from etl.validate.resources import load

    try:
        return {f.name for f in load(str(resource or DEFAULT_RESOURCE)).fields}
    except Exception:  # a report of a resource this installation does not have: its own headers
        return set()


def _unvalued(text: str) -> str:
    return _QUOTED.sub(lambda m: m.group(0) if m.group(0).startswith("(") else '"…"', text).strip()


def reasons(errors: str, columns: set[str]) -> list[tuple[str, str]]:
    """`CreditUsed: "abc" is not a number | BookingId: ...` as (column, reason) pairs, the cells'
    own values left out; an item that names no column is the row's as a whole."""
    out = []
    for item in errors.split(SEPARATOR) if errors else []:
        match = _FIELD.match(item.strip())
        if match and match.group(1) in columns:
            out.append((match.group(1), _unvalued(match.group(2))))
        else:
            out.append(("(row)", _unvalued(item)))
    return out


def posts(log: str) -> list[tuple[dt.datetime, str]]:
    """When each POST of the run was answered, and its outcome, from the run's log: the ledger's
    events that take a row out of `pending` (one per answered request)."""
    out = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            if '"from": "pending"' not in line:
                continue
            try:
                event = json.loads(line)
                when = dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
            except (ValueError, KeyError, TypeError):
                continue
            if event.get("event") == "row" and event.get("from") == "pending" \
                    and event.get("on") not in ("withdrawn", "crashed"):
                out.append((when, str(event.get("to", ""))))
    return sorted(out)


_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


def per_bucket(
    times: list[tuple[dt.datetime, str]], most: int = 60
) -> tuple[int, list[tuple[dt.datetime, int]]]:
    """(bucket seconds, [(bucket start, POSTs)]): the smallest round bucket that gives at most
    MOST bars, so a one-minute rehearsal and a night at one POST a second both read well."""
    if not times:
        return 60, []
    first, last = times[0][0], times[-1][0]
    span = (last - first).total_seconds()
    size = next((b for b in _BUCKETS if span / b < most), _BUCKETS[-1])
    start = first.replace(microsecond=0)
    start -= dt.timedelta(seconds=(start.hour * 3600 + start.minute * 60 + start.second) % size)
    counts: Counter[int] = Counter(int((t - start).total_seconds() // size) for t, _ in times)
    return size, [(start + dt.timedelta(seconds=i * size), counts.get(i, 0)) for i in range(max(counts) + 1)]


def ordered(counts: Counter[str]) -> list[tuple[str, int]]:
    """Outcomes in the contract's order, then any unknown ones."""
    order = [o.value for o in Outcome]
    return sorted(((o, n) for o, n in counts.items() if n),
                  key=lambda t: (order.index(t[0]) if t[0] in order else len(order), t[0]))


def text(report: RunReport, *, rows: int = 10) -> str:
    """The terminal summary: counts per outcome and file, the most common reasons, the first rows."""
    s = report.summary
    lines = []
    if s:
        lines.append(f"Run {s.get('run_id', '?')} ({s.get('command', '?')}): started {s.get('started_at')}, "
                     f"finished {s.get('finished_at')}, exit {s.get('exit_code')}"
                     + (f"; stopped: {s['stopped']}" if s.get("stopped") else ""))
    elif report.log:  # a run folder without its summary: the run was killed, or is still running
        lines.append("The run did not finish (no summary.json beside the report): the lines below are "
                     "those it wrote before it stopped; `etl status` says what the journal knows")
    counted = ordered(report.counts)
    lines.append(f"{report.rows} row{'' if report.rows == 1 else 's'}: "
                 + (", ".join(f"{n} {o}" for o, n in counted) or "none"))
    if report.by_file:
        outcomes = [o for o, _ in counted]
        lines.append("")
        numbers = range(1, len(outcomes) + 1)
        lines.extend(aligned(
            [["file", *outcomes]]
            + [[f, *(str(counts.get(o, 0)) for o in outcomes)] for f, counts in report.by_file.items()],
            right=numbers, least={i: 6 for i in numbers}))
    top = report.top_reasons()
    if top:
        lines.append("")
        lines.append("Most common reasons:")
        lines.extend(aligned([[column, str(n), reason] for column, reason, n in top], right={1},
                             least={1: 6}, indent="  "))
    if report.attention_total:
        lines.append("")
        lines.append(f"Rows that need action ({report.attention_total}):")
        for r in report.attention[:rows]:
            lines.append(f"  {r['source']} row {r['row']}: {r['outcome']}: {r['errors']}")
        more = report.attention_total - min(rows, len(report.attention))
        errors_csv = os.path.join(os.path.dirname(report.results), "errors.csv")
        if more > 0:
            see = errors_csv if os.path.exists(errors_csv) else report.results
            lines.append(f"  and {more} more: see {see}")
    if report.posts:
        first, last = report.posts[0][0], report.posts[-1][0]
        minutes = max((last - first).total_seconds() / 60, 1 / 60)
        lines.append("")
        lines.append(f"{len(report.posts)} POSTs from {first:%H:%M:%S} to {last:%H:%M:%S} UTC "
                     f"({len(report.posts) / minutes:.1f} a minute)")
    return "\n".join(lines)
