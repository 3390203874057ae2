"""`etl report --html`: one self-contained page (inline CSS and SVG, no script, no network).

It shows the outcome counts, the most common reasons, the POSTs over time of an import and the
rows that need action, so it can be mailed or attached to a ticket and opened anywhere.
"""

from __future__ import annotations

import os
from html import escape

from etl.errors import UsageProblem
from etl.report.run_report import RunReport, ordered, per_bucket

#: One colour per outcome, the same in every chart and badge.
COLOURS = {
    "valid": "#4c9f70", "created": "#2f7d4f", "skipped": "#8fbf9f", "invalid": "#d9822b",
    "rejected": "#c23b3b", "failed": "#8e44ad", "in_doubt": "#d4ac0d", "not_attempted": "#7f8c8d",
}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
color:#1d2630;background:#f4f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.meta{color:#56636f;margin:0 0 16px}
section{background:#fff;border:1px solid #dde3e8;border-radius:8px;padding:16px 20px;margin:16px 0}
.tiles{display:flex;flex-wrap:wrap;gap:12px}
.tile{border-radius:8px;padding:10px 16px;min-width:110px;color:#fff}
.tile b{display:block;font-size:26px;line-height:1.1}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e8ecef;vertical-align:top}
th{font-weight:600;color:#56636f;font-size:13px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px}
.bar{height:10px;border-radius:3px;background:#d9822b;display:inline-block}
.note{color:#56636f;font-size:13px}
svg text{font:12px system-ui,sans-serif;fill:#3a4650}
"""


def render(report: RunReport, *, rows: int = 200) -> str:
    """The page, as text."""
    s = report.summary
    title = f"etl run {s.get('run_id')}" if s.get("run_id") else f"etl report of {report.results}"
    meta = []
    if s:
        command, started, finished, code = (escape(str(s.get(k))) for k in
                                            ("command", "started_at", "finished_at", "exit_code"))
        meta.append(f"{command}: started {started}, finished {finished}, exit code {code}")
        if s.get("stopped"):
            meta.append(f"stopped: {escape(str(s['stopped']))}")
    meta.append(f"report: {escape(report.results)}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{"<br>".join(meta)}</p>',
        _outcomes(report),
        _files(report),
        _reasons(report),
        _posts(report),
        _attention(report, rows),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write(report: RunReport, path: str) -> None:
    """The page, at PATH: never over one of the run's own files, nor over a file that is not a
    page already (an export, a report CSV named by mistake)."""
    folder = os.path.dirname(os.path.abspath(path))
    run = os.path.dirname(os.path.abspath(report.results))
    if os.path.exists(path):
        owns = (report.results, *(os.path.join(run, n) for n in ("summary.json", "log.jsonl", "errors.csv")))
        for own in owns:
            if os.path.exists(own) and os.path.samefile(path, own):
                raise UsageProblem(f"--html {path} is the run's own {os.path.basename(own)}; "
                                   "name another file")
        with open(path, "rb") as f:
            head = f.read(512).removeprefix(b"\xef\xbb\xbf").lstrip().lower()
        if head and not head.startswith((b"<!doctype html", b"<html", b"<!--")):
            raise UsageProblem(f"--html {path} exists and is not an HTML page: it is kept; name another file")
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(report))


def _badge(outcome: str) -> str:
    return f'<span class="badge" style="background:{COLOURS.get(outcome, "#555")}">{escape(outcome)}</span>'


def _outcomes(report: RunReport) -> str:
    counted = ordered(report.counts)
    tiles = "".join(
        f'<div class="tile" style="background:{COLOURS.get(o, "#555")}" id="count-{escape(o)}">'
        f"<b>{n}</b>{escape(o)}</div>" for o, n in counted)
    total = max(report.rows, 1)
    width, x, bars = 1000, 0.0, []
    for o, n in counted:
        w = width * n / total
        bars.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="22" fill="{COLOURS.get(o, "#555")}">'
                    f"<title>{escape(o)}: {n}</title></rect>")
        x += w
    chart = (f'<svg viewBox="0 0 {width} 22" width="100%" height="22" role="img" '
             f'aria-label="share of rows per outcome">{"".join(bars)}</svg>')
    return (f'<section id="outcomes"><h2>{report.rows} rows</h2><div class="tiles">{tiles}</div>'
            f'<p style="margin:14px 0 0">{chart}</p></section>')


def _files(report: RunReport) -> str:
    if len(report.by_file) < 2:
        return ""
    outcomes = [o for o, _ in ordered(report.counts)]
    head = "".join(f'<th class="n">{escape(o)}</th>' for o in outcomes)
    body = "".join(
        f"<tr><td>{escape(src)}</td>" + "".join(f'<td class="n">{c.get(o, 0)}</td>' for o in outcomes)
        + "</tr>"
        for src, c in report.by_file.items())
    return f'<section id="files"><h2>Per file</h2><table><tr><th>file</th>{head}</tr>{body}</table></section>'


def _reasons(report: RunReport) -> str:
    top = report.top_reasons(15)
    if not top:
        return ""
    most = top[0][2]
    body = "".join(
        f'<tr><td>{escape(col)}</td><td>{escape(why)}</td><td class="n">{n}</td>'
        f'<td style="width:30%"><span class="bar" style="width:{100 * n / most:.0f}%"></span></td></tr>'
        for col, why, n in top)
    return (f'<section id="reasons"><h2>Most common reasons</h2><table><tr><th>column</th><th>reason</th>'
            f'<th class="n">rows</th><th></th></tr>{body}</table></section>')


def _posts(report: RunReport) -> str:
    if not report.posts:
        if report.summary.get("command") == "import":
            why = ("No POST was sent in this run." if report.log
                   else "The run's log (log.jsonl) was not found.")
            return f'<section id="posts"><h2>POSTs over time</h2><p class="note">{escape(why)}</p></section>'
        return ""
    size, buckets = per_bucket(report.posts)
    peak = max(n for _, n in buckets) or 1
    w, h, left, bottom = 1000, 220, 44, 28
    plot_w, plot_h = w - left - 10, h - bottom - 10
    step = plot_w / len(buckets)
    bars = []
    for i, (start, n) in enumerate(buckets):
        bh = plot_h * n / peak
        bars.append(f'<rect x="{left + i * step + 1:.1f}" y="{10 + plot_h - bh:.1f}" '
                    f'width="{max(step - 2, 1):.1f}" height="{bh:.1f}" fill="#2f7d4f">'
                    f"<title>{start:%H:%M:%S} UTC: {n} POSTs</title></rect>")
    labels = []
    every = max(1, len(buckets) // 8)
    for i in range(0, len(buckets), every):
        labels.append(f'<text x="{left + i * step + step / 2:.1f}" y="{h - 8}" text-anchor="middle">'
                      f"{buckets[i][0]:%H:%M:%S}</text>")
    axis = (f'<line x1="{left}" y1="{10 + plot_h}" x2="{w - 10}" y2="{10 + plot_h}" stroke="#8a96a0"/>'
            f'<text x="{left - 6}" y="16" text-anchor="end">{peak}</text>'
            f'<text x="{left - 6}" y="{10 + plot_h}" text-anchor="end">0</text>')
    per = _duration(size)
    first, last = report.posts[0][0], report.posts[-1][0]
    return (f'<section id="posts"><h2>POSTs over time</h2>'
            f'<p class="note">{len(report.posts)} POSTs from {first:%Y-%m-%d %H:%M:%S} '
            f"to {last:%H:%M:%S} UTC, per {per}.</p>"
            f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="POSTs per {per}">'
            f'{axis}{"".join(bars)}{"".join(labels)}</svg></section>')


def _attention(report: RunReport, rows: int) -> str:
    if not report.attention_total:
        return ('<section id="attention"><h2>Rows that need action</h2>'
                '<p class="note">None: every row is done.</p></section>')
    shown = report.attention[:rows]
    body = "".join(
        f'<tr><td>{escape(str(r["source"]))}</td><td class="n">{escape(str(r["row"]))}</td>'
        f'<td>{_badge(r["outcome"])}</td><td>{escape(str(r["errors"]))}</td></tr>' for r in shown)
    more = report.attention_total - len(shown)
    errors_csv = os.path.join(os.path.dirname(report.results), "errors.csv")
    tail = (f'<p class="note">and {more} more: see {escape(errors_csv)}</p>' if more > 0 else
            f'<p class="note">Fix them in {escape(errors_csv)} and import that file again; '
            "a rerun skips what was created.</p>")
    return (f'<section id="attention"><h2>Rows that need action ({report.attention_total})</h2>'
            f'<table><tr><th>file</th><th class="n">row</th><th>outcome</th><th>errors</th></tr>'
            f"{body}</table>{tail}</section>")


def _duration(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds} seconds"
