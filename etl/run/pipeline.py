"""A run, stage by stage: read -> validate -> (post) -> report. The CLI only wires options in.

Files are opened and their headers matched before anything is written, so a file-level problem
(unreadable, empty, a required column missing) stops the run with exit 2 and no report rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pyarrow as arrow
import pyarrow.compute as pc

from etl import logs
from etl.errors import FileProblem, UsageProblem
from etl.fields import shown
from etl.outcomes import NEEDS_ACTION, ExitStatus, Outcome, checked, exit_status
from etl.read.reading import RawChunk, ReadOptions, Table, digest, open_table, stamp
from etl.report.cells import restore
from etl.report.reporting import (
    EXCEL,
    Attention,
    Dialect,
    ReportWriter,
    report_names,
    sparse_text,
    write_errors,
    write_summary,
)
from etl.texts import numbered
from etl.validate.resources import Resource, header_key, reasons_at, reasons_moved
from etl.validate.validating import ColumnMap, Validator, match_columns

Progress = Callable[[int], None]
T = TypeVar("T")


def new_run_id() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Inputs:
    """The run's files, opened, with their columns matched to the resource."""

    tables: list[Table]
    columns: list[ColumnMap]
    own_columns: list[str]  # every file's headers, in order of first appearance
    # each file's size and modification time when it was opened: an export still being written
    # (or written again) must not be read half old, half new
    stamps: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    # contents, once asked to keep (made by a thread of their own: `digests`)
    kept: dict[str, str | None] = field(default_factory=dict)
    _digesting: threading.Event | None = field(default=None, init=False, repr=False)
    #: files whose stamp changed, read again and found the same: the stamp they had then
    _verified: dict[str, tuple[int, int] | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.stamps:
            self.stamps = {t.path: stamp(t.path) for t in self.tables}
        # an errors.csv etl wrote (its reasons in its last column, `errors`): its cells are read
        # back exactly as the rows were first read, so a row loaded again is the same row
        self.errors_files = [reasons_at(t.header) is not None for t in self.tables]

    def keep_contents(self) -> None:
        """Remember each file's contents (a digest), so that a file merely touched (its time
        changed, by a backup or sync tool or an editor saving it unchanged) is not taken for a
        changed one. One more read of each file, by a thread of its own (hashing lets go of the
        GIL): the run goes on meanwhile, and waits for it where a digest is asked for."""
        opened = dict(self.stamps)

        def work() -> None:
            try:
                for path, was in opened.items():
                    # the digest of the file as it was opened, or none: a file written again
                    # before (or while) the thread got to it, already read as it was, must not
                    # look merely touched later (its new digest would match)
                    made = digest(path) if stamp(path) == was else None
                    self.kept[path] = made if stamp(path) == was else None
            finally:
                done.set()

        done = threading.Event()
        self._digesting = done
        threading.Thread(target=work, name="digest", daemon=True).start()

    @property
    def digests(self) -> dict[str, str | None]:
        """Each file's digest as `keep_contents` made it (waited for); none until asked to keep."""
        if self._digesting is not None:
            self._digesting.wait()
        return self.kept

    def moved(self, touched_ok: bool = False) -> str | None:
        """The first file no longer as it was when opened: its size, or its modification time
        and (when kept) its contents; TOUCHED_OK: its size only (a warning says it was touched)."""
        for path, was in self.stamps.items():
            now = stamp(path)
            if now == was:
                continue
            same_size = now is not None and was is not None and now[0] == was[0]
            if same_size and path in self.digests and digest(path) == self.digests[path]:
                self.stamps[path] = now  # touched, not changed
                continue
            if same_size and touched_ok:
                logs.get().warning(f"{path} was touched while it was read (its size is the same); "
                                   "if it was written again meanwhile, check it again")
                self.stamps[path] = now
                continue
            return path
        return None

    def as_read(self, index: int) -> bool:
        """Whether file INDEX, read again now, reads as it did when it was opened: what its
        table reads (a CSV file: the very file opened, whatever its name is now) has the same
        size and modification time, or, touched, the same digest."""
        table = self.tables[index]
        was, now = self.stamps.get(table.path), table.stamp()
        if now is None or was is None or now[0] != was[0]:
            return now == was
        if now == was or self._verified.get(table.path) == now:
            return True
        kept = self.digests.get(table.path)
        if kept is None or table.digest() != kept:
            return False
        self._verified[table.path] = now  # touched, not changed: not read whole again
        return True

    def unchanged(self, what: str, touched_ok: bool = False) -> None:
        """A FileProblem naming the first file that changed since it was opened, if one did."""
        path = self.moved(touched_ok)
        if path is not None:
            raise FileProblem(path, f"changed while it was being read (is the export still being "
                                    f"written?); {what}. Run again once it is complete")

    def chunks(self, progress: Progress | None = None, rows: int | None = None
               ) -> Iterator[tuple[int, RawChunk]]:
        """(file index, chunk of about ROWS) through all files; progress is told the bytes read."""
        for i, table in enumerate(self.tables):
            done = rows_read = 0
            for chunk in table.chunks(rows):
                rows_read += len(chunk)
                if self.errors_files[i]:  # etl's own errors.csv: its formula guard undone
                    chunk.columns = [restore(c) for c in chunk.columns]
                yield i, chunk
                now = min(chunk.read_to if chunk.read_to is not None else done, table.size)
                if progress is not None and now > done:
                    progress(now - done)
                done = now
            if progress is not None and done < table.size:
                progress(table.size - done)
            table.rows_read = rows_read

    def errors_dialect(self) -> Dialect:
        """errors.csv is written as the inputs were: their encoding (BOM included) and
        delimiter; UTF-8 with a BOM, comma-separated, for a workbook or inputs that differ,
        semicolon-separated where one of them was not comma-separated (read without --decimal:
        its numbers that may group thousands with dots stay refused when errors.csv is loaded
        again so)."""
        mixed = replace(EXCEL, delimiter=";") if any(c.dots_ambiguous for c in self.columns) else EXCEL
        found = set()
        for table in self.tables:
            encoding, delimiter = getattr(table, "encoding", None), getattr(table, "delimiter", None)
            if encoding is None or not delimiter:
                return mixed
            bom = b""
            if encoding.bom:
                with open(table.path, "rb") as f:
                    bom = f.read(encoding.bom)
            found.add(Dialect(encoding.codec, bom, delimiter))
        return found.pop() if len(found) == 1 else mixed

    def read(self) -> list[dict[str, Any]]:
        """What was read of each file: format, encoding and delimiter or sheet, rows."""
        return [{**t.describe(), "rows": t.rows_read,
                 **({"notes": [n.removeprefix(f"{t.path}: ") for n in t.notes]} if t.notes else {})}
                for t in self.tables]

    @property
    def total_bytes(self) -> int:
        return sum(t.size for t in self.tables)

    @property
    def reasons(self) -> frozenset[int]:
        """Which own columns are an errors.csv's reasons (by position in `own_columns`): replaced
        by the new reasons in the next errors.csv, never given to a check."""
        own = numbered(self.own_columns)
        return frozenset(own.index(numbered(t.header)[at]) for t in self.tables
                         if (at := reasons_at(t.header)) is not None)

    def own_cells(self, index: int, chunk: RawChunk) -> list[Any]:
        """The chunk's columns in the report's own-column order (None where a file lacks one)."""
        where = dict(zip(numbered(self.tables[index].header), range(len(chunk.columns)), strict=True))
        return [chunk.columns[where[n]] if n in where else None
                for n in numbered(self.own_columns)]


def check_paths(files: list[str], report: str) -> None:
    """The same input twice (after following links) is a mistake, and a report that would
    overwrite an input destroys it: both are refused before anything is read or written."""
    for path in [*files, report]:
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # bytes this system's encoding can't read: no report can name it
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            raise UsageProblem(f"{shown}: the file's name is not text in this system's encoding "
                               "(UTF-8, or the locale's); rename the file, or set LANG to a UTF-8 "
                               "locale") from None
    seen: dict[str, str] = {}
    inodes: dict[tuple[int, int], str] = {}  # the same file under another name (a hard link)
    for path in files:
        real = os.path.realpath(path)
        key = _inode(real)
        twin = seen.get(real) or (inodes.get(key) if key is not None else None)
        if twin is not None:
            raise UsageProblem(f"{path} and {twin} are the same file; name each input once")
        seen[real] = path
        if key is not None:
            inodes[key] = path
    _writable(report)
    folder = os.path.dirname(os.path.abspath(report))
    for out in (report, os.path.join(folder, "summary.json"), os.path.join(folder, "log.jsonl")):
        real = os.path.realpath(out)
        key = _inode(real)
        same = seen.get(real) or (inodes.get(key) if key is not None else None)
        if same is not None:
            raise UsageProblem(f"--report {report} would overwrite the input {same}"
                               + ("" if out == report else f" (as {os.path.basename(out)})")
                               + "; choose another --report")


def _inode(path: str) -> tuple[int, int] | None:
    """PATH's device and inode where it exists: two names of one file have the same."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _writable(report: str) -> None:
    """A report path that can't be written is refused before anything is read or sent (it is
    opened only after the first pass and the account checks, which can take minutes): a link
    to a folder that does not exist, a file or folder this user can't write."""
    if not os.path.islink(report) and not os.path.exists(report):
        return  # a new file in a folder the run makes (a folder it can't make stops it then)
    real = os.path.realpath(report)
    if os.path.isdir(real):
        raise UsageProblem(f"--report {report} is a folder; name a file in it")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise UsageProblem(f"--report {report} leads to {real}, whose folder does not exist; "
                           "choose another --report")
    if os.path.exists(real) and not os.access(real, os.W_OK):
        raise UsageProblem(f"--report {report} can't be written by this user; choose another --report")


def _room_for(files: int) -> None:
    """Each CSV file is held open from its opening to the run's end (CsvTable): the process's
    limit of open files (often 1,024) is raised, within what the system allows, to hold FILES
    and as many more."""
    try:
        import resource
    except ImportError:  # not on this system: its limit is its own
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * files + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        top = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if top > soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def prepare_inputs(
    paths: list[str], resource: Resource, read: ReadOptions, renames: dict[str, str], *,
    decimal_said: bool = True,
) -> Inputs:
    """The files, opened, and where each field sits in each. Without DECIMAL_SAID (--decimal not
    given), the numbers that read as thousands grouped with dots (1.500) of a file separated by
    anything but a comma (";", a tab) are refused as ambiguous: such files are written where the
    comma is the decimal mark (a comma-separated file can't be)."""
    _room_for(len(paths))
    tables = [open_table(p, read) for p in paths]
    columns = []
    for t in tables:
        try:
            found = match_columns(t.path, t.header, resource, renames)
            # a file whose delimiter is not the comma may come from where the comma is the
            # decimal mark (a ";" CSV, Excel's tab-separated "Unicode Text")
            columns.append(replace(
                found, dots_ambiguous=not decimal_said and t.describe().get("delimiter") not in (None, ",")))
        except FileProblem as exc:
            raise _delimiter_problem(t, resource, renames) or exc from None
    own: list[tuple[str, int]] = []  # a header and which of its namesakes it is
    for table in tables:
        own.extend(h for h in numbered(table.header) if h not in own)
    renamed = {header_key(source) for source in renames}
    for table, found in zip(tables, columns, strict=True):
        if reasons_moved(table.header):  # said: its cells are read back as etl wrote them
            at = reasons_at(table.header)
            table.notes.insert(0, f'{table.path}: read as an errors.csv etl wrote (its column '
                                  f'"{table.header[at or 0]}" is taken for the reasons): a leading \' '
                                  "before a cell a spreadsheet would run as a formula (=, +, -, @) is "
                                  "taken off, as etl puts it there")
        for note in table.notes:
            logs.get().warning(note)
        for target, position in found.positions.items():  # by design, so said, not warned of...
            name = table.header[position]
            if header_key(name) != header_key(target) and header_key(name) not in renamed:
                table.notes.append(f'{table.path}: column "{name}" is read as {target} (one of its names)')
                # ...unless the file has columns that are not read: which of its columns is
                # the field is then part of the warning that they are not sent
                (logs.get().warning if found.unknown else logs.get().info)(table.notes[-1])
    reasons = {numbered(t.header)[at] for t in tables if (at := reasons_at(t.header)) is not None}
    for old, new in report_names([name for name, _ in own]).items():
        if old in reasons:
            continue  # an errors.csv's own reasons: replaced by the new ones, nothing to warn of
        why = ("so that it does not shadow the report's own column" if new.endswith(" (input)")
               else "so that a spreadsheet does not run it as a formula")
        logs.get().warning(f'input column "{old[0]}" is "{new}" in the report, {why}')
    unknown = [u for c in columns for u in c.unknown]
    if unknown:
        logs.get().warning(
            "columns not in the schema are kept in the report and never sent: "
            + ", ".join(shown(u) if u.strip() else "one without a name"  # an invisible character named
                        for u in dict.fromkeys(unknown)),
            resource=resource.name,
        )
    return Inputs(tables, columns, [name for name, _ in own])


_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def _delimiter_problem(table: Table, resource: Resource, renames: dict[str, str]) -> FileProblem | None:
    """A header that names the required columns once split at another delimiter: the file was
    read with the wrong one (a --delimiter given or sniffed wrong), not named otherwise."""
    read_with = getattr(table, "delimiter", None)
    if not read_with:
        return None
    text = read_with.join(table.header)
    for other, name in _DELIMITERS.items():
        if other == read_with or other not in text:
            continue
        try:
            match_columns(table.path, text.split(other), resource, renames)
        except FileProblem:
            continue
        return FileProblem(table.path, (
            f"its header read with the delimiter {_DELIMITERS.get(read_with, repr(read_with))} is "
            f"{len(table.header)} column{'s' if len(table.header) != 1 else ''}, but split at "
            f"{name}s it names the columns needed: the file is {name}-separated; pass "
            f"--delimiter {name} (or leave --delimiter out: it is sniffed)"))
    return None


@dataclass
class RunRecord:
    """What summary.json says about a run (and `--json` prints)."""

    run_id: str
    command: str
    report: str
    files: list[str]
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    exit_code: int | None = None
    stopped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    attention: Attention | None = None
    inputs: Inputs | None = None  # what was read, once known
    #: the checks that only warn: the rows failing each, and the first ("file row N")
    warnings: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def summary_path(self) -> str:
        return os.path.join(os.path.dirname(os.path.abspath(self.report)), "summary.json")

    @property
    def errors_path(self) -> str:
        """errors.csv beside the report, unless that is one of this run's inputs (an operator
        who fixed an errors.csv in place and reports into the same folder keeps the fixes)."""
        path = os.path.join(os.path.dirname(self.report), "errors.csv")
        here = _inode(path)  # a hard link of an input is that input too
        if any(os.path.realpath(path) == os.path.realpath(f) or (here is not None and _inode(f) == here)
               for f in self.files):
            path = os.path.join(os.path.dirname(self.report), f"errors-{self.run_id}.csv")
        return path

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "command": self.command,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "files": self.files,
            **({"read": self.inputs.read()} if self.inputs is not None else {}),
            "rows": sum(self.counts.values()),
            "counts": {o.value: self.counts.get(o.value, 0) for o in Outcome},
            "exit_code": self.exit_code,
            "stopped": self.stopped,
            # what stopped a run that failed (exit 2 or 3): the same key as a run that never began
            "error": self.stopped if self.exit_code in (ExitStatus.USAGE, ExitStatus.ABORTED) else None,
            "report": self.report,
            "errors_report": self.attention.path if self.attention else None,
            "needs_action": self.attention.total if self.attention else None,
            **({"warnings": [{"check": what, "rows": n, "first": first}
                             for what, (n, first) in self.warnings.items()]} if self.warnings else {}),
            **self.extra,
        }

    def finish(self, status: ExitStatus) -> None:
        """Cut errors.csv from the finished report, then write summary.json (and tell the rows
        that fail a check that only warns)."""
        for what, (n, first) in self.warnings.items():
            logs.get().warning(f"{n} row{'s fail' if n != 1 else ' fails'} {what} (the first: {first}); "
                               "the check only warns (raise_warning=True): they stay valid")
        self.finished_at = now_iso()
        self.exit_code = int(status)
        if os.path.exists(self.report) and self.attention is None:  # else cut as it was written
            expected = sum(self.counts.get(o, 0) for o in NEEDS_ACTION)
            self.attention = write_errors(
                self.report, self.errors_path, expected=expected,
                dialect=self.inputs.errors_dialect() if self.inputs is not None else None,
                reasons=self.inputs.reasons if self.inputs is not None else ())
        write_summary(self.summary_path, self.summary())

    def line(self) -> str:
        """The one summary line printed at the end."""
        total = sum(self.counts.values())
        parts = ", ".join(f"{n} {o}" for o, n in sorted(self.counts.items(), key=_order) if n)
        return (
            f"{total} row{'s' if total != 1 else ''}"
            + (f": {parts}" if parts else "")
            + (f"; stopped: {self.stopped}" if self.stopped else "")
            + (f". Read {self._read()}" if self.inputs is not None else "")
            + f". Report: {self.report}"
        )

    def _read(self) -> str:
        """Each file as read: `a.csv (UTF-8, ","; 24 rows)`, `b.xlsx (sheet "Uses"; 10 rows)`."""
        items = []
        for r in self.inputs.read() if self.inputs is not None else []:
            how = (f'sheet "{r["sheet"]}"' if "sheet" in r
                   else f'{r["encoding"]}, "{_delimiter_name(r["delimiter"])}"')
            rows = "" if r["rows"] is None else f"; {r['rows']} row{'s' if r['rows'] != 1 else ''}"
            items.append(f"{r['path']} ({how}{rows})")
        return ", ".join(items)


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab"}.get(delimiter, delimiter)


def _order(item: tuple[str, int]) -> int:
    return list(Outcome).index(Outcome(item[0]))


def validate(
    inputs: Inputs,
    validator: Validator,
    record: RunRecord,
    progress: Progress | None = None,
) -> ExitStatus:
    """The dry run: every row is `valid` or `invalid` with its reasons; nothing is sent.

    Three things overlap: the next chunk is read (Arrow lets go of the GIL) while this one is
    checked, and the last one written; errors.csv is cut as the report is written, since a dry
    run's outcomes are final when written.
    """
    log = logs.get()
    record.inputs = inputs
    validator.prepare()
    # the system allocator gives freed chunks back; Arrow's default (mimalloc) keeps ~20% more
    previous = arrow.default_memory_pool()
    arrow.set_memory_pool(arrow.system_memory_pool())
    # a dry run's report is made again by running it again: it is not worth an fsync
    writer = ReportWriter(record.report, inputs.own_columns, errors=record.errors_path, durable=False,
                          errors_dialect=inputs.errors_dialect(), reasons=inputs.reasons)
    try:
        for index, chunk in read_ahead(inputs.chunks(progress, VALIDATE_ROWS)):
            texts, valid = validator.verdicts(chunk, inputs.columns[index])
            errors = sparse_text(len(chunk), texts)
            good = int(valid.sum())
            record.counts.update({VALID: good, INVALID: len(chunk) - good})
            outcomes = pc.if_else(arrow.array(valid), VALID, INVALID)
            writer.write(
                inputs.tables[index].path, chunk.rows, outcomes, errors,
                inputs.own_cells(index, chunk),
            )
        inputs.unchanged("its report may not match the finished file", touched_ok=True)
        record.attention = writer.finish_errors()
    except FileProblem as exc:  # found mid-read: the report so far and summary.json still say so
        record.attention = writer.finish_errors()
        record.stopped = str(exc)
        record.finish(ExitStatus.USAGE)
        raise
    finally:
        writer.close()
        validator.done()
        arrow.set_memory_pool(previous)
    status = exit_status(record.counts)
    record.finish(status)
    log.info("validated", counts=dict(record.counts), report=record.report)
    return status


#: a dry run's two outcomes, as etl.outcomes decides them
VALID, INVALID = checked(True).value, checked(False).value
#: rows checked at a time in a dry run: pandera's cost per call (a few failing rows or many)
#: is mostly fixed, so fewer, larger calls; memory stays flat all the same
VALIDATE_ROWS = 100_000


_END = object()


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """ITEMS made in a background thread, at most DEPTH ahead of the consumer (so memory stays
    flat); what the thread raises is raised here, in order. Reading Arrow's CSV lets go of the
    GIL, so the next chunk is read while this one is checked."""
    ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                ready.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            put(None, exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()
