"""The sandbox over HTTP: the token endpoint, the credit-use POST, list and read, credit lookups."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import socket
import ssl
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from etl.sandbox import rules
from etl.sandbox.store import USE_COLUMNS, CreditRefused

if TYPE_CHECKING:
    from etl.sandbox.server import Sandbox

CREDIT_USES = "/api/billing/coworkerbookingcreditusehistories"
CREDITS = "/api/billing/coworkerbookingcredits"
FILTERS = {
    "CoworkerBookingCreditUseHistory_CoworkerBookingCredit": "CoworkerBookingCreditId",
    "CoworkerBookingCreditUseHistory_Booking": "BookingId",
    "CoworkerBookingCreditUseHistory_CoworkerInvoiceLine": "CoworkerInvoiceLineId",
    "CoworkerBookingCreditUseHistory_EventAttendee": "EventAttendeeId",
    "CoworkerBookingCreditUseHistory_Description": "Description",
    "CoworkerBookingCreditUseHistory_SystemId": "SystemId",
}
DENIED = {"Message": "Authorization has been denied for this request."}
OOPS = {"Message": "Ooops! There was a problem while running this action..."}
_DESCENDING = {"-1", "desc", "descending"}
_ASCENDING = {"0", "asc", "ascending"}


def list_order(query: dict[str, str], dir_one: str, newest_first: bool) -> tuple[str, bool]:
    """The column and direction a list asks for (query keys lower-case): (column, descending).

    No orderBy and no dir: by Id, oldest first, or with `newest_first` newest first as the UI
    shows it. orderBy=<record field> (unknown ones are ignored, as unknown parameters are) or a
    dir alone (on Id): ascending unless `dir` says otherwise. `dir` is read in both documented
    conventions: -1/desc/descending is descending, 0/asc/ascending ascending, and the ambiguous
    1 means what `dir_one` says ("asc" by default: the 1/-1 convention).
    """
    names = {c.lower(): c for c in ("Id", *USE_COLUMNS)}
    column = names.get(query.get("orderby", "").strip().lower())
    way = query.get("dir", "").strip().lower()
    if way == "1":
        return column or "Id", dir_one == "desc"
    if way in _DESCENDING or way in _ASCENDING:
        return column or "Id", way in _DESCENDING
    return (column, False) if column else ("Id", newest_first)


def _an_id(text: str) -> bool:
    """TEXT could be a record's Id (an Id past Int32 is none: never looked for in the store)."""
    return text.isascii() and text.isdigit() and int(text) <= rules.MAX_ID


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "NexudusSandbox/1"
        disable_nagle_algorithm = True  # headers and body go out as they are written: no 40 ms stalls
        trickle = 0.0  # seconds between the bytes of this answer's body

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            """The Date header: the server's (skewed) clock, RFC 7231, in GMT."""
            return email.utils.formatdate(sandbox.clock() if timestamp is None else timestamp, usegmt=True)

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            if body is None:
                return self._write(status, b"", None, headers)
            self._write(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

        def _write(self, status: int, data: bytes, kind: str | None,
                   headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if kind:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not self.trickle:
                self.wfile.write(data)
                return
            try:
                for i in range(len(data)):
                    time.sleep(self.trickle)
                    self.wfile.write(data[i: i + 1])
            except OSError:  # the client gave up waiting
                self.close_connection = True

        def _gateway(self, status: int, fault: str) -> None:
            """An answer from a proxy in front of the server: HTML, not JSON."""
            sandbox.stats.count(fault)
            title = {403: "403 Forbidden", 502: "502 Bad Gateway", 503: "503 Service Unavailable",
                     504: "504 Gateway Time-out"}[status]
            page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
            self._write(status, page.encode(), "text/html")

        def _throttle(self, fault: str) -> None:
            sandbox.stats.count(fault)
            self._send(409, None, {"Retry-After": str(sandbox.faults.retry_after)})

        def _drop(self, fault: str) -> None:
            """Close the connection without an answer."""
            sandbox.stats.count(fault)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _break_tls(self, fault: str) -> None:
            """A TLS record that fails its integrity check where the answer should be: the
            client's TLS layer fails while reading the answer (plain HTTP: a dropped connection)."""
            sandbox.stats.count(fault)
            self.close_connection = True
            if isinstance(self.connection, ssl.SSLSocket):
                raw = socket.socket(fileno=os.dup(self.connection.fileno()))
                try:
                    raw.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
                except OSError:
                    pass
                finally:
                    raw.close()
            self.connection.shutdown(socket.SHUT_RDWR)

        def _oops(self, fault: str) -> None:
            sandbox.stats.count(fault)
            self._send(500, OOPS)

        def _refuse(self, errors: list[dict[str, Any]]) -> None:
            message = "\n".join(f"{e['PropertyName']}: {e['Message']}" for e in errors)
            self._send(400, {"Message": message, "Value": None, "Errors": errors, "WasSuccessful": False})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.trickle = 0.0
            if sandbox.faults.latency:
                time.sleep(sandbox.faults.latency)
            path = urlsplit(self.path).path
            raw = self._body()  # always read, so the kept-alive connection stays in step
            if path == "/api/token":
                return self._token(raw)
            if path.rstrip("/") == CREDIT_USES:
                self.trickle = sandbox.faults.trickle
                return self._create(raw)
            self._send(404, {"Message": "No HTTP resource was found that matches the request URI."})

        def do_GET(self) -> None:  # noqa: N802
            self.trickle = 0.0
            if sandbox.faults.latency:
                time.sleep(sandbox.faults.latency)
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/")
            if path == "/_sandbox/stats":  # for rehearsals and benchmarks, not in Nexudus
                return self._send(200, sandbox.stats.as_dict())
            head, _, tail = path.rpartition("/")
            route: Callable[[str, dict[str, str]], None]
            if path == CREDIT_USES:
                route = self._list
            elif head == CREDIT_USES:
                route = self._read
            elif head == CREDITS:
                route = self._credit
            else:
                return self._send(404, {"Message": "Not found"})
            if not sandbox.authorized(self.headers.get("Authorization")):
                return self._send(401, DENIED)
            if sandbox.over_read_rate():
                return self._throttle("read_throttle")
            route(tail, {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()})

        def _list(self, _: str, query: dict[str, str]) -> None:
            sandbox.stats.add("lists")
            fault = sandbox.next_list_fault()
            if fault == "list_throttle":
                return self._throttle(fault)
            if fault == "list_drop":
                return self._drop(fault)
            if fault == "list_error":
                return self._oops(fault)
            filters = {name.lower(): column for name, column in FILTERS.items()}
            if sandbox.faults.ignore_system_id_filter:
                filters.pop("coworkerbookingcreditusehistory_systemid")
            where = {col: query[name] for name, col in filters.items() if name in query}
            order, descending = list_order(query, sandbox.faults.dir_one, sandbox.faults.newest_first)
            records = sandbox.store.records(where, order=order, descending=descending)
            size = max(1, min(1000, _int(query.get("size"), 25)))
            page = 1 if fault == "list_ignore_page" else max(1, _int(query.get("page"), 1))
            shift = 1 if fault == "list_shift" and page > 1 else 0  # one record new at the front
            total = len(records) + shift
            pages = max(1, -(-total // size))
            start = (page - 1) * size - shift
            answer = {
                "Records": records[start: start + size], "CurrentPage": page,
                "CurrentPageSize": size, "TotalItems": total, "TotalPages": pages,
                "HasNextPage": page < pages or fault == "list_ignore_page", "HasPreviousPage": page > 1,
            }
            if fault != "ok":
                sandbox.stats.count(fault)
            if fault == "list_no_records":
                del answer["Records"]
            self._send(200, answer)

        def _read(self, tail: str, _: dict[str, str]) -> None:
            sandbox.stats.add("reads")
            record = sandbox.store.record(int(tail)) if _an_id(tail) else None
            if record is None:
                return self._send(404, {"Message": f"CoworkerBookingCreditUseHistory {tail} was not found."})
            self._send(200, record)

        def _credit(self, tail: str, _: dict[str, str]) -> None:
            sandbox.stats.add("credit_lookups")
            credit = sandbox.store.credit(int(tail)) if _an_id(tail) else None
            if credit is None:
                return self._send(404, {"Message": f"CoworkerBookingCredit {tail} was not found."})
            self._send(200, credit)

        def _token(self, raw: bytes) -> None:
            if "json" in (self.headers.get("Content-Type") or ""):
                return self._send(400, {"error": "unsupported_grant_type"})
            form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            grant = form.get("grant_type")
            if grant == "password":
                if form.get("username") == sandbox.username and form.get("password") == sandbox.password:
                    return self._send(200, sandbox.issue_token())
            elif grant == "refresh_token":
                if sandbox.refreshable(form.get("refresh_token")):
                    return self._send(200, sandbox.issue_token())
            else:
                return self._send(400, {"error": "unsupported_grant_type"})
            self._send(400, {"error": "invalid_grant",
                             "error_description": "The user name or password is incorrect."})

        def _create(self, raw: bytes) -> None:
            faults = sandbox.faults
            if not sandbox.authorized(self.headers.get("Authorization")):
                return self._send(401, DENIED)
            if faults.throttle_all:
                return self._throttle("throttle_all")
            if sandbox.over_rate():
                return self._throttle("throttle")
            fault = sandbox.next_fault()
            if fault == "throttle":
                return self._throttle(fault)
            if fault == "unauthorized":
                sandbox.stats.count(fault)
                return self._send(401, DENIED)
            if faults.daily_limit and sandbox.store.count_post(sandbox.now().date().isoformat()) > \
                    faults.daily_limit:
                sandbox.stats.count("daily_limit")
                return self._send(409, None, {"Retry-After": str(_seconds_to_midnight(sandbox.now()))})
            sandbox.stats.add("posts")
            if faults.on_post is not None:
                faults.on_post(sandbox.stats.posts)
            if fault == "unavailable":
                sandbox.stats.count(fault)
                return self._send(503, None)
            if fault == "blocked":
                return self._gateway(403, fault)
            if fault == "bad_gateway":
                return self._gateway(502, fault)
            if fault == "gateway_timeout":
                return self._gateway(504, fault)
            if fault == "drop":
                return self._drop(fault)
            if fault == "error":
                return self._oops(fault)
            self._accept(raw, fault)

        def _accept(self, raw: bytes, fault: str) -> None:
            """The server proper: check the body, create the record, answer (or misbehave)."""
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            errors = rules.validate_body(body) or rules.system_id_errors(body, sandbox.faults)
            if fault == "reject" and not errors:
                sandbox.stats.count(fault)
                errors = [{"AttemptedValue": body.get("CreditUsed"), "PropertyName": "CreditUsed",
                           "Message": "total use would exceed the credit's TotalCredit"}]
            if errors:
                return self._refuse(errors)
            if fault == "unsuccessful":
                sandbox.stats.count(fault)
                return self._send(200, {"Status": 200, "Message": "Credit could not be used.",
                                        "Value": None, "WasSuccessful": False, "Errors": [
                                            {"AttemptedValue": body.get("CreditUsed"),
                                             "Message": "exceeds the remaining credit",
                                             "PropertyName": "CreditUsed"}]})
            if fault == "gateway_timeout_late":
                sandbox.create_later(body)
                return self._gateway(504, fault)
            try:
                record_id = sandbox.create(body)
            except CreditRefused as refused:
                return self._refuse([refused.error])
            if fault == "error_after_create":
                return self._oops(fault)
            if fault == "drop_after_create":
                return self._drop(fault)
            if fault == "tls_after_create":
                return self._break_tls(fault)
            if fault == "unavailable_after_create":
                return self._gateway(503, fault)
            if fault == "request_timeout_after_create":
                sandbox.stats.count(fault)
                self.close_connection = True
                return self._send(408, {"Message": "The request timed out."}, {"Connection": "close"})
            if fault == "hang_after_create":
                sandbox.stats.count(fault)
                time.sleep(sandbox.faults.hang)
            self._send(200, {
                "Status": 200, "Message": "CoworkerBookingCreditUseHistory was successfully created.",
                "Value": {"Id": record_id}, "OpenInDialog": False, "OpenInWindow": False,
                "RedirectURL": None, "JavaScript": None,
                "UpdatedOn": sandbox.now().isoformat(timespec="seconds"),
                "UpdatedBy": sandbox.username, "Errors": None, "WasSuccessful": True,
            })

    return Handler


def _seconds_to_midnight(now: dt.datetime) -> int:
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    return int((midnight - now).total_seconds()) + 1
