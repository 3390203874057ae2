"""`etl sandbox`: the Nexudus emulator, started from etl.sandbox."""


from __future__ import annotations

import sqlite3
import ssl
import sys
from typing import TYPE_CHECKING, Any

import click

from etl.cli.common import main
from etl.errors import UsageProblem

if TYPE_CHECKING:
    pass


# --- sandbox ---------------------------------------------------------------------------------


@main.command("sandbox")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--db", metavar="PATH", default=":memory:", show_default=True,
              help="Keep records in this SQLite file, for a rehearsal that spans runs.")
@click.option("--username", default="sandbox@example.com", show_default=True, help="Login it accepts.")
@click.option("--password", default="sandbox-password", show_default=True, help="Password it accepts.")
@click.option("--latency", type=float, default=0.0, metavar="S", help="Seconds added to every request.")
@click.option("--rate-limit", type=float, default=0.0, metavar="N",
              help="POSTs per second accepted; more get 409 + Retry-After (0: no limit).")
@click.option("--daily-limit", type=int, default=0, metavar="N", help="POSTs per UTC day (0: no limit).")
@click.option("--unavailable", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs answered 503 without creating anything.")
@click.option("--unavailable-after-create", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs that create the record, then a gateway answers 503.")
@click.option("--request-timeout-after-create", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer 408 Request Timeout.")
@click.option("--blocked", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs a firewall in front of the API refuses with 403, nothing created.")
@click.option("--error", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs answered 500 without creating anything.")
@click.option("--drop", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs whose connection is dropped without creating anything.")
@click.option("--reject", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs refused with 400 and Errors.")
@click.option("--retry-after", default="1", show_default=True, metavar="TEXT",
              help="A 409's Retry-After, sent verbatim: seconds, an HTTP date, or an odd value.")
@click.option("--error-after-create", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer 500.")
@click.option("--drop-after-create", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs that create the record, then drop the connection.")
@click.option("--hang-after-create", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs that create the record, then answer only after --hang seconds.")
@click.option("--hang", type=float, default=60.0, show_default=True, metavar="S",
              help="How long a hang lasts.")
@click.option("--tls-after-create", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs that create the record, then break the TLS session (with --tls-cert).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, metavar="PEM",
              help="Serve https with this certificate (and --tls-key); clients trust it via "
                   "REQUESTS_CA_BUNDLE.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, metavar="PEM",
              help="The private key of --tls-cert.")
@click.option("--unsuccessful", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs answered 200 with WasSuccessful: false.")
@click.option("--token-ttl", type=float, default=0.0, metavar="S",
              help="Seconds a token lives (0: for ever).")
@click.option("--system-id", type=click.Choice(["store", "refuse", "drop"]), default="store",
              show_default=True, help="A POSTed SystemId is stored, refused with 400, or silently dropped.")
@click.option("--ignore-system-id-filter", is_flag=True,
              help="The list ignores CoworkerBookingCreditUseHistory_SystemId, as unknown filters are.")
@click.option("--clock-skew", type=float, default=0.0, metavar="S",
              help="Seconds added to the server's clock (dates of records, Date header); may be negative.")
@click.option("--created-on-offset", type=float, default=None, metavar="H",
              help="CreatedOn in this UTC offset's local time, without an offset (e.g. -8, 5.5).")
@click.option("--description-max", type=int, default=0, metavar="N",
              help="Descriptions stored cut to N characters (0: no limit).")
@click.option("--description-trim", is_flag=True,
              help="Descriptions stored stripped, runs of spaces made one.")
@click.option("--description-html", is_flag=True, help="Descriptions stored HTML-encoded (& < > quotes).")
@click.option("--amount-round", type=int, default=None, metavar="N",
              help="CreditUsed stored rounded to N decimal places (default: exact).")
@click.option("--ids-random", is_flag=True,
              help="Record Ids drawn at random instead of from one rising sequence.")
@click.option("--bad-gateway", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs answered 502 by a proxy, nothing created.")
@click.option("--gateway-timeout", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs answered 504 at once, nothing created.")
@click.option("--gateway-timeout-late", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of POSTs answered 504 at once whose record is created --late-delay seconds later.")
@click.option("--late-delay", type=float, default=2.0, show_default=True, metavar="S",
              help="How long after its 504 a late record is created.")
@click.option("--list-no-records", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of list answers with the paging fields but no Records.")
@click.option("--list-throttle", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of list requests answered 409 + Retry-After.")
@click.option("--list-drop", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of list requests whose connection is dropped.")
@click.option("--list-error", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of list requests answered 500.")
@click.option("--list-ignore-page", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of list answers that are page 1, whatever page was asked, with HasNextPage.")
@click.option("--list-shift", type=click.FloatRange(0, 1), default=0.0, metavar="P",
              help="Share of list answers (page 2 on) that start one record early, as after an insert.")
@click.option("--newest-first", is_flag=True,
              help="A list without orderBy/dir answers newest first (Id descending), as the UI does.")
@click.option("--dir-one", type=click.Choice(["asc", "desc"]), default="asc", show_default=True,
              help="What the list's ambiguous dir=1 means (-1 is always descending, 0 ascending).")
@click.option("--throttle-all", is_flag=True, help="Answer every credit-use POST 409 + Retry-After.")
@click.option("--read-rate-limit", type=float, default=0.0, metavar="N",
              help="GETs per second accepted (lists, reads, credit lookups); more get 409 (0: no limit).")
@click.option("--trickle", type=float, default=0.0, metavar="S",
              help="Seconds between the bytes of a POST's answer body (defeats a per-read time-out).")
@click.option("--credits", "credits_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Booking credits to declare: a JSON list or a CSV (Id,TotalCredit,RemainingCredit,...).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault dice.")
def sandbox_command(port: int, db: str, username: str, password: str, credits_file: str | None,
                    tls_cert: str | None, tls_key: str | None, **faults: Any) -> None:
    """Run the Nexudus emulator on localhost, for rehearsals, until Ctrl-C.

    \b
    Examples:
        etl sandbox --port 8765
        etl sandbox --rate-limit 1 --unavailable 0.05 --db rehearsal.sqlite3
        etl sandbox --credits credits.csv --system-id drop --created-on-offset -8 --list-shift 0.2
        NEXUDUS_API_URL=http://127.0.0.1:8765 NEXUDUS_USERNAME=sandbox@example.com \\
            NEXUDUS_PASSWORD=sandbox-password etl import samples/credit_uses.csv
    """
    from etl.sandbox import Faults, Sandbox, load_credits

    try:
        credits = load_credits(credits_file) if credits_file else []
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--credits") from e
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give --tls-cert and --tls-key together")
    try:
        box = Sandbox(port=port, faults=Faults(**faults), db=db, username=username, password=password,
                      credits=credits, tls=(tls_cert, tls_key) if tls_cert and tls_key else None)
    except sqlite3.Error as exc:
        raise UsageProblem(f"--db {db}: can't keep the records there ({exc})") from None
    except ssl.SSLError as exc:  # an OSError too, but nothing to do with the port
        raise UsageProblem(f"--tls-cert {tls_cert} and --tls-key {tls_key} can't serve https "
                           f"({exc.reason or exc})") from None
    except OSError as exc:  # the port taken (another sandbox), or not ours to take
        raise UsageProblem(f"can't listen on 127.0.0.1:{port} ({exc.strerror or exc}): is another sandbox "
                           "running there? Pick another --port, or --port 0 for any free one") from None
    click.echo(f"Nexudus sandbox at {box.url} (username {username}, password {password})", nl=True)
    sys.stdout.flush()
    stop: KeyboardInterrupt | None = None
    try:
        box.server.serve_forever()
    except KeyboardInterrupt as exc:
        stop = exc
    finally:
        box.server.server_close()
        click.echo(f"sandbox stopped: {box.stats.created} records created", err=True)
    if stop is not None and type(stop) is not KeyboardInterrupt:
        raise stop  # SIGTERM: exit 143, as it always was; Ctrl-C ends it quietly, as ever
