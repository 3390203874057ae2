"""`etl report`: a finished run's results read back, through etl.report.run_report."""


from __future__ import annotations

from typing import TYPE_CHECKING

import click

from etl.cli.common import echo_json, json_option, main

if TYPE_CHECKING:
    pass


# --- report ----------------------------------------------------------------------------------


@main.command()
@click.argument("target", metavar="RUN_DIR|RESULTS.csv", type=click.Path(exists=True))
@click.option("--html", "html_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML page (charts, no network) to PATH.")
@click.option("--rows", type=click.IntRange(min=0), default=10, show_default=True, metavar="N",
              help="How many rows that need action to list on the terminal.")
@json_option("Print the run's summing-up (counts per outcome and file, reasons by column, rows "
             "that need action) as JSON on stdout instead of the text; on a problem, the exit "
             "code and the error.")
def report(target: str, html_path: str | None, rows: int, as_json: bool) -> None:
    """Summarise a finished run: counts per outcome and file, the most common reasons by
    column, the rows that need action; with --html, a page with charts to share.

    \b
    Examples:
        etl report logs/20261124T010000Z-3f9c0a
        etl report logs/20261124T010000Z-3f9c0a/results.csv --html run.html
    """
    from etl.report import run_report

    found = run_report.read(target)
    if html_path:
        from etl.report import report_html

        report_html.write(found, html_path)
    if as_json:
        echo_json({
            "results": found.results, "summary": found.summary, "rows": found.rows,
            "counts": dict(run_report.ordered(found.counts)),
            "files": {f: dict(run_report.ordered(c)) for f, c in found.by_file.items()},
            "reasons": [{"column": c, "reason": r, "rows": n} for c, r, n in found.top_reasons()],
            "needs_action": found.attention_total, "posts": len(found.posts), "html": html_path,
        })
    else:
        click.echo(run_report.text(found, rows=rows))
        if html_path:
            click.echo(f"Wrote {html_path}")
