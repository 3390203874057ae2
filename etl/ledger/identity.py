"""A row's identity: which credit use of the export it is, the same from any folder, any run.

By default a row is the whole row: the value of every cell (sent to the API or not), by
normalised header name, whatever the column order, plus its occurrence among identical whole rows (the
second identical row is a second credit use). Identical rows are interchangeable, so a run's
identical rows take the journal's rows of that content unfinished ones first: re-importing
only the failed one of three identical rows (an errors.csv) sends that one, never skips it as
one of the two created; a fourth identical row is a new occurrence. `--key` names the export's own id
columns instead; `--ignore-column` leaves out a column that changes on every export (an export
timestamp). The *scheme* (which columns, or which key) is kept with each row in the journal, so
a later run can tell that rows were identified differently before, and stop instead of
posting them again.

A row is its credit use, not its spelling: a cell the API is sent enters the identity as the
value sent (`etl.validate.values`: `1.50` and `1.5` are one amount, `7004.0` is 7004, `1e0` is 1), and
text, sent or not, after one normalisation (`normalised`: spaces around it dropped, line
endings CRLF and CR as LF, Unicode NFC). That is for the identity only: what is sent stays as
read. A journal written before identities were made of values has its rows re-identified when
a file that has them is read again (`Identities.previous`: the same rows, as they were spelt).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any

from etl.errors import UsageProblem
from etl.fields import canonical_number
from etl.texts import numbered
from etl.validate.resources import header_key

#: headers that look like an export's own record id
_ID_LIKE = re.compile(r"^(id|.*(id|ref|reference|uuid|guid|key)|.*(number|no))$")


#: what a journal records (meta `identity`) when its identities are made of values
VALUES = "values"
_SPACE = " \t\r\n\v\f"


def normalised(text: str) -> str:
    """Text as a row's identity sees it: without the spaces around it, line endings (CRLF, CR)
    as LF, in Unicode NFC (a re-save that writes `Café` decomposed writes the same text)."""
    text = text.strip(_SPACE)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def identity_text(value: Any) -> str:
    """A cell's value as it enters a row's identity: "" for none, a whole number in digits, an
    amount as its exact decimal without trailing zeros, text `normalised`."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return "0" if value == 0 else canonical_number(value)
    if isinstance(value, int):
        return str(value)
    return normalised(str(value))


def scheme_columns(scheme: str) -> set[str] | None:
    """The columns of a "cells:" scheme, or None for any other scheme."""
    kind, _, cols = scheme.partition(":")
    return set(cols.split(",")) if kind == "cells" else None


def cell_digest(text: str) -> str:
    """What a row's identity, and the journal, keep of one (normalised) cell."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


#: etl's own errors.csv holds exactly the rows that needed action: its copies of a content take
#: the journal's rows in doubt, failed or never sent first, then those created
_NEEDING_ACTION_FIRST = {"in_doubt": 0, "pending": 0, "failed": 1, "not_attempted": 1, "rejected": 1}


def copy_rank(state: str, occurrence: int | None, needing_action: bool) -> tuple[int, int]:
    """Where the journal's row of a content (its STATE, its OCCURRENCE) comes among those a
    file's identical rows take in turn, its first copy the first. In the order the copies were
    numbered, whatever became of each: a file's k-th copy takes the row its k-th copy took
    before, so a line keeps its record from night to night, and a file that now holds fewer
    copies (one taken out after it failed) takes those created, never sending one more. A
    refused row comes last: the refused copy fixed or left out, the others take the created
    rows, never the refused one, which --retry-rejected would send again. NEEDING_ACTION (etl's
    own errors.csv): the rows that needed action first."""
    if needing_action:
        return _NEEDING_ACTION_FIRST.get(state, 2), occurrence or 0
    return (1 if state == "rejected" else 0), occurrence or 0


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=20).hexdigest()


class Identities:
    """Identities of the rows of one run, file after file (occurrences count across the run)."""

    def __init__(self, resource: str, key: Sequence[str] = (), ignore: Sequence[str] = (),
                 known: Callable[[str], list[tuple[str, str, int]]] | None = None) -> None:
        """KNOWN gives the journal's rows of a content (base): (identity, state, occurrence)."""
        self.resource = resource
        self.key = tuple(key)
        self.ignore = {header_key(c) for c in ignore}
        self.known = known
        self.always_ignored = {"errors"}  # the reasons column of an errors.csv being loaded again
        self.queues: dict[str, deque[tuple[str, int]]] = {}
        self.next_occurrence: dict[str, int] = {}
        self.key_rows: dict[str, str] = {}
        self.source: str | None = None
        self.needing_action = False
        self.names: dict[str, list[str]] = {}
        self.legacy: Counter[str] = Counter()
        #: the same rows identified as an earlier release did (every cell as spelt), while a
        #: journal of that release has rows to re-identify
        self.previous: Identities | None = None

    def start(self, source: str, header: Sequence[str] = ()) -> None:
        """Identical rows count within their file: the same row in two files (overlapping
        exports) is one credit use, in one run as in two. A file with an `errors` column (an
        errors.csv loaded again) holds the rows that needed action: of identical rows, it takes
        the refused ones before the created ones."""
        if source != self.source:
            self.source = source
            self.queues.clear()
            self.next_occurrence.clear()
            self.needing_action = "errors" in {header_key(h) for h in header}

    def columns(self, path: str, header: list[str], sent: AbstractSet[str] = frozenset()
                ) -> tuple[list[int], str]:
        """The positions of the columns that make a row's identity in HEADER, and the scheme:
        the export's columns (one empty on every row tonight is still one of them: the scheme
        follows the export, not the night's data). SENT are the (normalised) names of the
        columns the API is sent: never left out."""
        keys = [header_key(h) for h in header]
        if self.key:
            wanted = [header_key(k) for k in self.key]
            missing = [k for k, w in zip(self.key, wanted, strict=True) if w not in keys]
            if missing:
                raise UsageProblem(f"{path}: --key column {', '.join(missing)} is not in the file")
            scheme = "key:" + ",".join(wanted)
            self.names[scheme] = wanted
            return [keys.index(w) for w in wanted], scheme
        unknown = [c for c in self.ignore if c not in keys]
        if unknown:
            raise UsageProblem(f"{path}: --ignore-column {', '.join(sorted(unknown))} is not in the file")
        sent_ignored = [c for c in self.ignore if c in sent]
        if sent_ignored:
            raise UsageProblem(f"--ignore-column {', '.join(sorted(sent_ignored))}: a column the API is "
                               "sent is always part of a row's identity")
        left_out = self.ignore | self.always_ignored
        positions = [i for i, k in enumerate(keys) if k and k not in left_out]
        names = _numbered([keys[i] for i in positions])
        order = sorted(range(len(positions)), key=lambda i: names[i])
        scheme = "cells:" + ",".join(sorted(names))
        self.names[scheme] = sorted(names)
        return [positions[i] for i in order], scheme

    def kept(self, header: list[str]) -> tuple[list[int], list[str]]:
        """The positions and names of every column a row's identity could be made of, under any
        choice of columns: a digest of each of their cells is kept in the journal, so that a
        later --key or --ignore-column re-identifies the rows already created."""
        keys = [header_key(h) for h in header]
        positions = [i for i, k in enumerate(keys) if k and k not in self.always_ignored]
        return positions, _numbered([keys[i] for i in positions])

    def base_of(self, scheme: str, digests: dict[str, str]) -> str:
        """The content (base) under SCHEME of a row whose cells' digests (by name) are DIGESTS."""
        return self._base(scheme, [digests.get(n, "") for n in self.names[scheme]])[1]

    def _base(self, scheme: str, cells: Sequence[str]) -> tuple[str, str]:
        if scheme.startswith("cells:"):
            # the row's non-empty cells by column name: a column that is empty on every row (one
            # another file of the run has) changes nothing
            text = "\x1f".join(f"{n}={(c or '').strip()}" for n, c in zip(self.names[scheme], cells,
                                                                          strict=True)
                               if (c or "").strip())
            return text, digest(f"{self.resource}\ncells\n{text}")
        text = "\x1f".join((c or "").strip() for c in cells)
        return text, digest(f"{self.resource}\n{scheme}\n{text}")

    def of(self, scheme: str, cells: Sequence[str], where: str, shown: Sequence[str] | None = None
           ) -> tuple[str, str, int, str | None]:
        """(identity, base, occurrence, problem) of a row whose identity cells are CELLS (in
        scheme order: its cells' digests, or as an earlier release, its cells as spelt); BASE
        is the content shared by identical rows. SHOWN: the cells as a message shows them."""
        text, base = self._base(scheme, cells)
        if scheme.startswith("key:"):
            if not any((c or "").strip() for c in cells):
                return "", base, 0, "key: the key cell is empty; every row needs its own key"
            if text in self.key_rows:
                return "", base, 0, f"key: {', '.join(shown or cells)} repeats {self.key_rows[text]}"
            self.key_rows[text] = where
            return base, base, 0, None
        if base not in self.next_occurrence:  # the first row of this content in the file
            known = self.known(base) if self.known else []
            known.sort(key=lambda k: copy_rank(k[1], k[2], self.needing_action))
            if known:  # most contents are new: no queue is kept for them (a file has millions)
                self.queues[base] = deque((k[0], k[2]) for k in known)
            self.next_occurrence[base] = max((k[2] for k in known), default=0) + 1
        queue = self.queues.get(base)
        if queue:
            identity, occurrence = queue.popleft()
            if not queue:
                del self.queues[base]
            return identity, base, occurrence, None
        occurrence = self.next_occurrence[base]
        self.next_occurrence[base] = occurrence + 1
        return digest(f"{base}\n{occurrence}"), base, occurrence, None

    def legacy_of(self, body: str, key_text: str | None) -> str:
        """The identity an earlier version gave this row: its payload and occurrence (or key)."""
        if key_text is not None:
            return hashlib.sha256(f"{self.resource}\nkey\n{key_text}".encode()).hexdigest()[:40]
        self.legacy[body] += 1
        return hashlib.sha256(f"{self.resource}\n{body}\n{self.legacy[body]}".encode()).hexdigest()[:40]


def _numbered(names: list[str]) -> list[str]:
    """Repeated header names stay apart: "notes", "notes#2"."""
    return [n if k == 0 else f"{n}#{k + 1}" for n, k in numbered(names)]


def id_like_columns(header: list[str], sent: set[str]) -> list[int]:
    """Positions of columns that are not sent and whose name looks like an export's record id."""
    return [i for i, h in enumerate(header)
            if header_key(h) not in sent and _ID_LIKE.match(header_key(h))]


def describe_scheme(scheme: str) -> str:
    kind, _, cols = scheme.partition(":")
    if kind == "key":
        return f"--key {cols}"
    if kind == "cells":
        return f"every cell of the columns {cols.replace(',', ', ')}"
    return "an earlier version's identity (the payload)"
