"""Rows' identities a chunk at a time, from the Arrow columns: the same identities as
`etl.ledger.identity` gives row by row (a test holds the two together), at the cost of one hash per
distinct cell and one per row.

A night of a bulk migration reads a history of millions of rows to send a few thousand of them.
Most of its rows are neither in the journal nor repeated in the file, and for those a row's
identity follows from its content alone (the content's first occurrence). So a chunk is keyed
column by column (a cell's digest is made once per distinct value of its column), each row's
content (`base`) is hashed once, and an 8-byte prefix of it (`key`) is all that is kept per row
to tell, against the journal's contents and the file's repeated contents, which rows need the
row-by-row rules (identical rows, rows the journal knows). A prefix shared by two different
contents only sends a row through those exact rules: it never decides anything by itself.

The payload key does the same for the values a row sends: rows of another file whose payload is
one the journal created (a re-export, a change of identity) are found by it, then compared
exactly.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.errors import no_room
from etl.fields import text_buffers
from etl.ledger.entries import DiskFull
from etl.ledger.identity import identity_text
from etl.validate.values import Kind, value

_TAG_END = "]"
_SPACE = " \t\r\n\v\f"  # as etl.ledger.identity strips them
_NONE = bytes(8)  # no digest: a cell that adds nothing to its row
blake2b = hashlib.blake2b


_M64 = (1 << 64) - 1
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_M64], dtype=np.uint64)
_SEED = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
_MUL = (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9)


def _f1(a: np.ndarray) -> np.ndarray:
    a = a * np.uint64(_MUL[0])
    a ^= a >> np.uint64(33)
    a *= np.uint64(_MUL[1])
    return a ^ (a >> np.uint64(29))


def _f2(a: np.ndarray) -> np.ndarray:
    a = a * np.uint64(_MUL[2])
    a ^= a >> np.uint64(31)
    a *= np.uint64(_MUL[3])
    return a ^ (a >> np.uint64(27))


def _p1(a: int) -> int:
    a = (a * _MUL[0]) & _M64
    a ^= a >> 33
    a = (a * _MUL[1]) & _M64
    return a ^ (a >> 29)


def _p2(a: int) -> int:
    a = (a * _MUL[2]) & _M64
    a ^= a >> 31
    a = (a * _MUL[3]) & _M64
    return a ^ (a >> 27)


def text_hashes(texts: arrow.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each text's UTF-8 bytes, eight bytes at a time for all
    texts at once (`text_hash` is the same for one text)."""
    if not arrow.types.is_large_string(texts.type):
        texts = texts.cast(arrow.large_string())
    n = len(texts)
    buffers = texts.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[texts.offset: texts.offset + n + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    end = int(offsets[-1]) if n else 0
    padded = np.zeros(end + 8, np.uint8)
    padded[:end] = data[:end]
    windows = np.ndarray(shape=(end + 1,), dtype="<u8", buffer=padded, offset=0, strides=(1,))
    starts, lengths = offsets[:-1], np.diff(offsets)
    with np.errstate(over="ignore"):
        size = lengths.astype(np.uint64)
        h1 = np.uint64(_SEED[0]) ^ size
        h2 = np.uint64(_SEED[1]) ^ (size * np.uint64(_SEED[2]))
        step = 0
        shortest = int(lengths.min()) if n else 0
        while step + 8 <= shortest:  # a whole word of every text: no text left out, none cut
            word = windows[starts + step]
            h1 = _f1(h1 ^ word)
            h2 = _f2(h2 ^ word)
            step += 8
        which = np.arange(n)
        longest = int(lengths.max()) if n else 0
        while step < longest:
            which = which[lengths[which] > step]
            word = windows[starts[which] + step] & _MASKS[np.minimum(lengths[which] - step, 8)]
            h1[which] = _f1(h1[which] ^ word)
            h2[which] = _f2(h2[which] ^ word)
            step += 8
    return h1, h2


def text_hash(text: str) -> tuple[int, int]:
    """`text_hashes` of one text."""
    data = text.encode("utf-8")
    h1 = _SEED[0] ^ len(data)
    h2 = _SEED[1] ^ ((len(data) * _SEED[2]) & _M64)
    for step in range(0, len(data), 8):
        word = int.from_bytes(data[step: step + 8], "little")
        h1, h2 = _p1(h1 ^ word), _p2(h2 ^ word)
    return h1, h2


def identity_texts(cells: arrow.Array, kind: Kind | None, decimal: str = ".") -> arrow.Array:
    """`identity_text` of each cell's value (KIND) or text (None), "" for none: the common
    cells (plain ASCII text, whole numbers and amounts written plainly) by Arrow's kernels,
    the others one by one."""
    cells = _texts(cells)
    trimmed = pc.utf8_trim(cells, characters=_SPACE)
    if kind is None or kind is Kind.TEXT:
        return _normalised(trimmed)
    if kind is Kind.INTEGER:  # ^[1-9][0-9]{0,17}$, or empty
        length = pc.binary_length(trimmed)
        plain = pc.or_(pc.and_(pc.and_(pc.ascii_is_decimal(trimmed), pc.invert(pc.starts_with(trimmed, "0"))),
                               pc.less_equal(length, 18)),
                       pc.equal(length, 0))
    elif decimal == ".":
        trimmed = pc.replace_substring_regex(trimmed, r"^([1-9][0-9]{0,17}|0)\.([0-9]*[1-9])0+$", r"\1.\2")
        trimmed = pc.replace_substring_regex(trimmed, r"^([1-9][0-9]{0,17})\.0*$", r"\1")
        # as spelt only when `canonical_number` gives it back as is: at most 28 digits (it
        # normalises in the context's 28, rounding any more), and one dot at most
        plain = pc.or_(pc.and_(pc.match_substring_regex(trimmed, r"^([1-9][0-9]{0,17}(\.[0-9]{0,17}[1-9])?"
                                                                 r"|0\.[0-9]{0,17}[1-9])$"),
                               pc.less_equal(pc.binary_length(trimmed), 29)),
                       pc.equal(trimmed, ""))
    else:
        plain = pc.equal(trimmed, "")
    odd = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    if not len(odd):
        return trimmed
    made = []  # the odd cells alone go through Python (a chunk of 32,768 has some dozens)
    for cell in cells.take(arrow.array(odd, arrow.int64())).to_pylist():
        got, problem = value(kind, cell, decimal)
        made.append("" if problem else identity_text(got))
    mask = np.zeros(len(trimmed), bool)
    mask[odd] = True
    return pc.replace_with_mask(trimmed, arrow.array(mask), arrow.array(made, type=arrow.large_string()))


def _normalised(trimmed: arrow.Array) -> arrow.Array:
    """`normalised` of texts already trimmed: line ends as LF, then NFC; only the texts that are
    not plain ASCII go through Python, and are put back only where NFC changed one."""
    if _has_byte(trimmed, b"\r") and pc.any(pc.match_substring(trimmed, "\r")).as_py():
        trimmed = pc.replace_substring(pc.replace_substring(trimmed, "\r\n", "\n"), "\r", "\n")
    odd = _past_latin(trimmed)
    if not len(odd):
        return trimmed
    was = trimmed.take(arrow.array(odd, arrow.int64())).to_pylist()
    nfc = unicodedata.normalize
    made = [nfc("NFC", text) for text in was]
    changed = [k for k, (a, b) in enumerate(zip(was, made, strict=True)) if a != b]
    if not changed:
        return trimmed
    mask = np.zeros(len(trimmed), bool)
    mask[odd[changed]] = True
    return pc.replace_with_mask(trimmed, arrow.array(mask),
                                arrow.array([made[k] for k in changed], arrow.large_string()))


#: the UTF-8 lead bytes of the characters from U+0300 (the combining marks) on
_PAST_LATIN = 0xCC


def _past_latin(texts: arrow.Array) -> np.ndarray:
    """The positions of the TEXTS that hold a character from U+0300 on: NFC may change those
    only. A text of characters before U+0300 alone (ASCII, the Latin letters with their accents
    as one character: "Zoë", "Müller") is NFC as it is: none of them decomposes, and none is the
    second of a pair NFC composes (checked against Python's own Unicode data in the tests)."""
    _, offsets, data = text_buffers(texts)
    if not len(texts):
        return np.zeros(0, np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    at = np.flatnonzero(data[start:end] >= _PAST_LATIN) + start
    if not len(at):
        return np.zeros(0, np.int64)
    return np.unique(np.searchsorted(offsets, at, "right") - 1)


def _texts(cells: arrow.Array) -> arrow.Array:
    """CELLS as one large_string array, "" for none."""
    if isinstance(cells, arrow.ChunkedArray):
        cells = cells.combine_chunks()
    if not arrow.types.is_large_string(cells.type):
        cells = cells.cast(arrow.large_string())
    return pc.fill_null(cells, "") if cells.null_count else cells


def _has_byte(texts: arrow.Array, byte: bytes) -> bool:
    """Whether BYTE is in one of TEXTS, read in place (`text_buffers`)."""
    _, offsets, data = text_buffers(texts)
    return bool((data[offsets[0]: offsets[-1]] == byte[0]).any())


#: a column whose first SAMPLE cells have at most three quarters as many distinct values is
#: keyed a distinct value at a time (amounts, ids of a few members, names of rooms)
SAMPLE = 2048


def column_keys(cells: arrow.Array, kind: Kind | None, decimal: str = "."
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's identity text hashed (two lanes), and whether it has one (a blank cell adds
    nothing to its row). A column blank on most rows has its filled cells alone made; a column of
    few distinct values has each made once, then spread."""
    cells = _texts(cells)
    n = len(cells)
    if n > SAMPLE:  # a column blank on most rows (ids of what a credit was used for): its filled
        lengths = np.diff(text_buffers(cells)[1])  # cells alone are keyed (a blank one adds
        if np.count_nonzero(lengths) <= n // 2:  # nothing to its row)
            filled = np.flatnonzero(lengths)
            made = column_keys(cells.take(arrow.array(filled, arrow.int64())), kind, decimal)
            blank = text_hash("")
            h1, h2 = np.full(n, blank[0], np.uint64), np.full(n, blank[1], np.uint64)
            present = np.zeros(n, bool)
            h1[filled], h2[filled], present[filled] = made
            return h1, h2, present
    if n > SAMPLE and pc.count_distinct(cells.slice(0, SAMPLE)).as_py() <= SAMPLE * 3 // 4:
        encoded = pc.dictionary_encode(cells)
        h1, h2, present = column_keys(encoded.dictionary, kind, decimal)
        at = encoded.indices.to_numpy(zero_copy_only=False)
        return h1[at], h2[at], present[at]
    texts = identity_texts(cells, kind, decimal)
    h1, h2 = text_hashes(texts)
    present = pc.greater(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False)
    return h1, h2, present


def _name_hashes(name: str) -> tuple[np.uint64, np.uint64]:
    a, b = text_hash("name:" + name)
    return np.uint64(a), np.uint64(b)


def content_part(name: str, h1: np.ndarray, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column NAME's part of its rows' content keys (`content_keys`), from its cells' hashes:
    made where the column is hashed (a thread of its own), not where the columns are joined."""
    t1, t2 = _name_hashes(name)
    with np.errstate(over="ignore"):
        return _f2(h1 ^ t1), _f1(h2 ^ t2)


def content_keys(resource: str, names: Sequence[str],
                 columns: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], n: int,
                 parts: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's content (its non-empty cells of the columns NAMES, by name) as a 128-bit key
    in two lanes: rows with the same content, as `Identities` defines it, have the same key.
    PARTS: the columns' `content_part`, where made already."""
    a, b = text_hash("content:" + resource)
    k1, k2 = np.full(n, a, np.uint64), np.full(n, b, np.uint64)
    with np.errstate(over="ignore"):
        for name in names:
            if name not in columns:
                continue
            h1, h2, present = columns[name]
            m1, m2 = parts[name] if parts is not None and name in parts else content_part(name, h1, h2)
            k1 = np.where(present, _f1(k1 ^ m1), k1)
            k2 = np.where(present, _f2(k2 ^ m2), k2)
    return k1, k2


def content_key_of(resource: str, names: Sequence[str], texts: Mapping[str, str]) -> str:
    """`content_keys` of one row, from its cells' identity texts by name, as the journal keeps
    it (32 hex digits)."""
    a, b = text_hash("content:" + resource)
    for name in names:
        text = texts.get(name, "")
        if not text:
            continue
        h1, h2 = text_hash(text)
        t1, t2 = text_hash("name:" + name)
        a, b = _p1(a ^ _p2(h1 ^ t1)), _p2(b ^ _p1(h2 ^ t2))
    return f"{a:016x}{b:016x}"


def key_hex(k1: np.ndarray, k2: np.ndarray, at: int) -> str:
    return f"{int(k1[at]):016x}{int(k2[at]):016x}"


def hex_pairs(keys: Sequence[str], count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Keys as the journal keeps them (32 hex digits), back in two lanes; a key that is not 32
    hex digits (a journal edited by hand) is left out, never read shifted onto the next. COUNT:
    the keys there must be, each as etl writes it (else ValueError: a column of keys read beside
    others, whose rows would no longer line up)."""
    text = "".join(keys)
    raw = _from_hex(text, 32)
    if count is not None and (len(text) != 32 * count or len(raw) != 16 * count):
        raise ValueError("not every key is 32 hex digits")
    both = np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 2) if raw else \
        np.zeros((0, 2), np.uint64)
    return both[:, 0].copy(), both[:, 1].copy()


def hex_keys_of(texts: Sequence[str]) -> np.ndarray:
    """The payload keys of rows as the journal keeps them (each 16 hex digits, several of a row
    joined by commas), all in one array; one that is not hex digits is left out."""
    text = ",".join(texts)
    count = (len(text) + 1) // 17
    if count and len(text) == 17 * count - 1 and text.count(",") == count - 1 \
            and text[16::17] == "," * (count - 1):  # each 16 digits, as etl writes them: read at once
        keys = [text.replace(",", "")]
    else:
        keys = [k for k in text.split(",") if k]
        if set(map(len, keys)) - {16}:  # not as etl writes them: one at a time
            return np.array([int(k, 16) for k in keys if _HEX.fullmatch(k) and len(k) <= 16], np.uint64)
    raw = _from_hex("".join(keys), 16)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64) if raw else np.zeros(0, np.uint64)


_HEX = re.compile(r"[0-9a-fA-F]+")


def _from_hex(text: str, width: int) -> bytes:
    """TEXT, keys of WIDTH hex digits run together, as bytes; those that are not hex digits
    left out (bytes.fromhex skips whitespace: a key of spaces would shift every key after it)."""
    try:
        raw = bytes.fromhex(text)
        if 2 * len(raw) == len(text):
            return raw
    except ValueError:
        pass
    return b"".join(bytes.fromhex(k) for k in (text[i:i + width] for i in range(0, len(text), width))
                    if len(k) == width and _HEX.fullmatch(k))


def payload_part(name: str, h1: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Sent field NAME's part of its rows' payload keys (`payload_keys`), from its cells' first
    lane and whether each has a value."""
    tag, _ = _name_hashes(name)
    with np.errstate(over="ignore"):
        return np.where(present, _f1(h1 ^ tag), np.uint64(0))


def payload_keys(fields: Mapping[str, tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """A key of each row's payload from its sent fields' hashes (FIELDS: name -> (first lane,
    present) per row): equal payloads have equal keys (the fields' `payload_part`, xor-ed)."""
    key = np.zeros(n, np.uint64)
    for name, (h1, present) in fields.items():
        key ^= payload_part(name, h1, present)
    return key


def payload_key_of(body: Mapping[str, Any]) -> int:
    """The payload key of one payload (values by field name)."""
    key = 0
    for name, got in body.items():
        text = identity_text(got)
        if text:
            tag = text_hash("name:" + name)[0]
            key ^= _p1(text_hash(text)[0] ^ tag)
    return key


def stored_payload_keys(payloads: Iterable[str], system_id: str = "SystemId") -> list[list[int]]:
    """The payload keys of payloads kept as sent (JSON): without SystemId, and where a
    Description ends in an import tag (`--tag-description`), with and without it."""
    out: list[list[int]] = []
    for text in payloads:
        keys: list[int] = []
        out.append(keys)
        try:
            body = json.loads(text, parse_float=Decimal)
        except (TypeError, ValueError):
            continue
        if not isinstance(body, dict):
            continue
        body.pop(system_id, None)
        keys.append(payload_key_of(body))
        description = body.get("Description")
        if isinstance(description, str) and description.endswith(_TAG_END) and "[etl:" in description:
            untagged = description[: description.rfind("[etl:")].rstrip(" ")
            keys.append(payload_key_of({**body, "Description": untagged} if untagged else
                                       {k: v for k, v in body.items() if k != "Description"}))
    return out


def hex_keys(k1: np.ndarray, k2: np.ndarray) -> list[str]:
    """`key_hex` of every pair of K1, K2."""
    return [f"{a:016x}{b:016x}" for a, b in zip(k1.tolist(), k2.tolist(), strict=True)]


def among(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which KEYS are in SORTED_SET (a sorted unique array)."""
    m, n = len(sorted_set), len(keys)
    if m == 0 or n == 0:
        return np.zeros(n, bool)
    if n > 256 and m <= 1 << 18 and keys.dtype == sorted_set.dtype == np.uint64:
        # a table of the set's top bits first (keys are hashes: their top bits are uniform),
        # 16 slots a key: most keys are not in the set, and only the few that may be are
        # looked for (three to four times faster than looking for every key)
        table, shift = _table_of(sorted_set)
        maybe = np.flatnonzero(table[keys >> shift])
        found = np.zeros(n, bool)
        if len(maybe):
            found[maybe] = _in_sorted(keys[maybe], sorted_set)
        return found
    return _in_sorted(keys, sorted_set)


#: the tables of the last sets looked in (a night looks in the journal's few sets once a chunk)
_TABLES: list[tuple[np.ndarray, np.ndarray, np.uint64]] = []


def _table_of(sorted_set: np.ndarray) -> tuple[np.ndarray, np.uint64]:
    """`among`'s table of SORTED_SET's top bits, made once a set (the set is kept with it:
    the same array, never another one at the same address)."""
    for kept, table, shift in _TABLES:
        if kept is sorted_set:
            return table, shift
    bits = max(16, min(22, len(sorted_set).bit_length() + 4))
    shift = np.uint64(64 - bits)
    table = np.zeros(1 << bits, bool)
    table[sorted_set >> shift] = True
    sorted_set.flags.writeable = False  # a set changed in place would be looked up in its old table
    _TABLES.insert(0, (sorted_set, table, shift))
    del _TABLES[4:]  # at most 4 MB each
    return table, shift


def _in_sorted(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(keys) > 1024 and len(sorted_set) > 4096:  # looked for in order: the set's pages are
        order = np.argsort(keys)  # read once each, not once a key (3 to 6 times faster)
        at = np.empty(len(keys), np.int64)
        at[order] = np.searchsorted(sorted_set, keys[order])
    else:
        at = np.searchsorted(sorted_set, keys)
    at[at == len(sorted_set)] = 0
    return sorted_set[at] == keys


def ranks(k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
    """Each (K1, K2) pair's occurrence among the equal pairs before it (1 for the first)."""
    return _distinct(k1, k2)[0]


#: an entry of SeenKeys' runs, as written: a content key (both lanes) and how many rows have it
_ENTRY = np.dtype([("k1", "<u8"), ("k2", "<u8"), ("n", "<u4")])
#: keys in memory, a column each (first lanes, second lanes, rows), sorted by key
_Keys = tuple[np.ndarray, np.ndarray, np.ndarray]


class SeenKeys:
    """The content keys of one file's rows seen so far: which of the identical rows a row is,
    chunk after chunk, in memory that does not grow with the file.

    A filter first: 64-bit words (a blocked Bloom filter of 2**WORDS words), in which each
    content seen sets HASHES bits of one word. A content whose bits are not all set was surely
    not seen: most rows are answered there. The keys themselves, both lanes (an exact answer),
    each once with its number of rows, are kept in sorted runs: a chunk's run in memory, and
    every FAN_IN of them merged into a run written to a temporary file of its own in FOLDER
    (unnamed: it is gone when closed, or when the process ends, however it ends); runs of a size
    on disk are merged FAN_IN at a time too, a slice of each at a time. A file of millions of
    rows has a handful of runs, and of those on disk memory holds the first key of each block
    of BLOCK keys. Only the contents the filter may have seen are looked for, in the blocks they
    would be in (read, not mapped: memory holds the blocks read, never the file's keys), BATCH
    blocks at a time; where they are many (a file of many identical rows) that is every block of
    a run, read a batch at a time."""

    #: 16 MiB: of the contents never seen, about 1 in 1,000 a "maybe" at 5M rows (then a look in
    #: each run on disk); at 8 MiB it was 1 in 140, and those looks took half of a 5M-row
    #: night's numbering
    WORDS = 21
    HASHES = 6
    FAN_IN = 8  # a chunk's run held in memory until there are eight, then every eight merged
    BLOCK = 256  # keys (20 bytes each) of a block, the stride of a run's fences
    BATCH = 128  # blocks of a run read at a time while keys are looked for
    SLICE = 1 << 13  # keys of each run held at a time while runs are merged

    def __init__(self, folder: str | None = None) -> None:
        self.folder = folder
        self.words: np.ndarray | None = None
        self.runs: list[_Run] = []  # the oldest first; their levels never grow along the list
        self._closing = weakref.finalize(self, _close, self.runs)

    def occurrences(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """Each row's occurrence in the file so far (1 for the first), in order; the rows are
        seen."""
        if not self._closing.alive:
            raise ValueError("the keys seen of this file were let go")
        occurrence, order, keys = _distinct(k1, k2)
        u1, u2, counts = keys
        if not len(u1):
            return occurrence
        if self.words is None:
            self.words = np.zeros(1 << self.WORDS, np.uint64)
        words = self.words
        word = (u2 >> np.uint64(64 - self.WORDS)).astype(np.intp)  # a word by the second lane,
        one, six = np.uint64(1), np.uint64(63)  # its bits by the first
        bits = one << (u1 & six)
        for k in range(1, self.HASHES):
            bits |= one << ((u1 >> np.uint64(6 * k)) & six)
        held = words[word]
        maybe = np.flatnonzero((held & bits) == bits)
        if len(maybe) and self.runs:
            before = np.zeros(len(maybe), np.int64)
            q1, q2 = u1[maybe], u2[maybe]
            for run in self.runs:
                before += run.count(q1, q2, self.BLOCK, self.BATCH)
            if before.any():
                earlier = np.zeros(len(u1), np.int64)
                earlier[maybe] = before
                occurrence[order] += earlier if len(u1) == len(k1) else np.repeat(earlier, counts)
        words[word] = held | bits
        # of the keys of one word, one assignment was kept: the others' bits are set again (the
        # word gains bits each time: at most 64 times)
        left = np.flatnonzero((words[word] & bits) != bits)
        while len(left):
            word, bits = word[left], bits[left]
            words[word] |= bits
            left = np.flatnonzero((words[word] & bits) != bits)
        self._add(_Run(0, keys))
        return occurrence

    def close(self) -> None:
        """The runs' files closed (their room given back) and the filter let go."""
        self._closing()
        self.words = None

    def _add(self, run: _Run) -> None:
        """RUN kept; the last FAN_IN runs merged into one while they are of a size."""
        runs = self.runs
        runs.append(run)
        while len(runs) >= self.FAN_IN and all(r.level == run.level for r in runs[-self.FAN_IN:]):
            merging = runs[-self.FAN_IN:]
            run = self._written(_merged(merging, self.SLICE), run.level + 1)
            for r in merging:
                r.close()
            runs[-self.FAN_IN:] = [run]

    def _written(self, pieces: Iterable[_Keys], level: int) -> _Run:
        """A run of the keys of PIECES (sorted, one after another), written to a new file."""
        file, folder = scratch_file(self.folder, "seen-", "the keys of the rows read so far")
        run = _Run(level, file=file)
        fences: list[tuple[np.ndarray, np.ndarray]] = []
        try:
            for k1, k2, n in pieces:
                at = slice((-run.size) % self.BLOCK, None, self.BLOCK)
                fences.append((k1[at].copy(), k2[at].copy()))
                entries = np.empty(len(k1), _ENTRY)
                entries["k1"], entries["k2"], entries["n"] = k1, k2, n
                data = entries.view(np.uint8).data
                while data:
                    data = data[os.write(file.fileno(), data):]
                run.size += len(k1)
        except BaseException as exc:
            file.close()
            if isinstance(exc, OSError) and no_room(exc):
                raise _full(exc, folder) from exc
            raise
        run.f1 = np.concatenate([f for f, _ in fences])
        run.f2 = np.concatenate([f for _, f in fences])
        return run

def scratch_file(folder: str | None, prefix: str, what: str) -> tuple[Any, str]:
    """A new temporary file, unnamed (gone when closed, or when the process ends, however it
    ends), unbuffered, in FOLDER (or where that can't be made or written, in the system's
    temporary folder), and its folder. WHAT it holds names it if the disk is full."""
    system = tempfile.gettempdir()
    for place in dict.fromkeys([folder or system, system]):
        try:
            os.makedirs(place, exist_ok=True)
            return tempfile.TemporaryFile(dir=place, prefix=prefix, buffering=0), place
        except OSError as exc:
            if no_room(exc):
                raise _full(exc, place, what) from exc
            if place == system:
                raise
    raise AssertionError("no folder")


def _full(exc: OSError, folder: str, what: str = "the keys of the rows read so far") -> DiskFull:
    """No room left on the disk of a run's temporary files (WHAT they hold): the run ends, in so
    many words."""
    return DiskFull(f"no room left in {folder} for {what} ({exc.strerror or exc}); nothing more "
                    "is sent. Free some space and run it again: the journal says what was done")


def _close(runs: list[_Run]) -> None:
    for run in runs:
        run.close()
    runs.clear()


class _Run:
    """Keys of SeenKeys, sorted (by first lane, then second), each once with its rows: HELD in
    memory, or in FILE, of which memory holds the first key of each block (F1, F2)."""

    __slots__ = ("level", "held", "file", "size", "f1", "f2")

    def __init__(self, level: int, held: _Keys | None = None, file: Any = None) -> None:
        self.level = level
        self.held = held
        self.file = file
        self.size = len(held[0]) if held is not None else 0
        self.f1 = self.f2 = np.zeros(0, np.uint64)

    def close(self) -> None:
        self.held = None
        if self.file is not None:
            self.file.close()

    def keys(self, start: int, count: int) -> _Keys:
        """The keys from START, up to COUNT of them."""
        if self.held is not None:
            k1, k2, n = self.held
            return k1[start: start + count], k2[start: start + count], n[start: start + count]
        entries = np.empty(max(0, min(count, self.size - start)), _ENTRY)
        self._read(entries, start)
        return entries["k1"].copy(), entries["k2"].copy(), entries["n"].copy()

    def _read(self, entries: np.ndarray, start: int) -> None:
        """ENTRIES read from START (where the system has no preadv, after a seek)."""
        raw = entries.view(np.uint8)
        if not len(raw):
            return
        if hasattr(os, "preadv"):
            got = os.preadv(self.file.fileno(), [raw.data], start * _ENTRY.itemsize)
        else:
            self.file.seek(start * _ENTRY.itemsize)
            got = self.file.readinto(raw.data)
        if got != len(raw):
            raise OSError(errno.EIO, "a file of the keys seen was cut short")

    def count(self, q1: np.ndarray, q2: np.ndarray, block: int, batch: int) -> np.ndarray:
        """The rows of each key (Q1, Q2: distinct keys, sorted) in this run: on disk, of the
        blocks they would be in, those next to each other or one apart read at once, BATCH
        blocks at a time."""
        if self.held is not None:
            return _found(*self.held, q1, q2)
        out = np.zeros(len(q1), np.int64)
        f1, f2 = self.f1, self.f2
        # each key's block: the last one whose first key is at most the key (by its first
        # lane; where blocks start with the same first lane, by its second too)
        first, end = np.searchsorted(f1, q1, "left"), np.searchsorted(f1, q1, "right")
        at = first - 1
        one = np.flatnonzero(end - first == 1)
        at[one] += f2[first[one]] <= q2[one]
        for k in np.flatnonzero(end - first > 1).tolist():
            at[k] += int(np.searchsorted(f2[first[k]: end[k]], q2[k], "right"))
        which = np.flatnonzero(at >= 0)
        at = at[which]  # in order, as the keys are
        if not len(at):
            return out
        blocks = at[np.flatnonzero(np.diff(at, prepend=-1))]
        apart = np.flatnonzero(np.diff(blocks) > 2) + 1
        starts, stops = blocks[np.r_[0, apart]], blocks[np.r_[apart, len(blocks)] - 1] + 1
        stretches = zip(starts.tolist(), stops.tolist(), strict=True)
        reads: list[tuple[int, int]] = []  # blocks from, to
        taken = 0
        for start, stop in stretches:
            while start < stop:
                step = min(stop - start, batch - taken)
                reads.append((start, start + step))
                taken += step
                start += step
                if taken == batch:
                    self._batch(reads, block, q1, q2, which, at, out)
                    reads, taken = [], 0
        if reads:
            self._batch(reads, block, q1, q2, which, at, out)
        return out

    def _batch(self, reads: list[tuple[int, int]], block: int, q1: np.ndarray, q2: np.ndarray,
               which: np.ndarray, at: np.ndarray, out: np.ndarray) -> None:
        """The blocks READS read into one array (they follow each other: it is sorted), and the
        rows in it of the keys WHICH whose block (AT) is one of them, into OUT."""
        spans = [(start * block, min(stop * block, self.size)) for start, stop in reads]
        entries = np.empty(sum(b - a for a, b in spans), _ENTRY)
        got = 0
        for a, b in spans:
            self._read(entries[got: got + b - a], a)
            got += b - a
        mine = which[np.searchsorted(at, reads[0][0], "left"): np.searchsorted(at, reads[-1][1], "left")]
        out[mine] = _found(entries["k1"], entries["k2"], entries["n"], q1[mine], q2[mine])


def _found(k1: np.ndarray, k2: np.ndarray, n: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """The rows of each key (Q1, Q2) among the keys K1, K2 (sorted, each once, with N rows)."""
    out = np.zeros(len(q1), np.int64)
    i, j = np.searchsorted(k1, q1, "left"), np.searchsorted(k1, q1, "right")
    single = np.flatnonzero(j - i == 1)
    hit = single[k2[i[single]] == q2[single]]
    out[hit] = n[i[hit]]
    for k in np.flatnonzero(j - i > 1).tolist():  # keys of the same first lane
        found = np.flatnonzero(k2[i[k]: j[k]] == q2[k])
        if len(found):
            out[k] = int(n[i[k] + found[0]])
    return out


def _distinct(k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Keys]:
    """Each (K1, K2) pair's occurrence among the equal pairs before it (1 for the first), the
    order that sorts the pairs, and the distinct pairs, sorted, with how many rows have each."""
    n = len(k1)
    occurrence = np.ones(n, np.int64)
    order = np.argsort(k1)
    a = k1[order]
    same = a[1:] == a[:-1]
    if not same.any():  # no two alike: the common chunk
        return occurrence, order, (a, k2[order], np.ones(n, np.uint32))
    order = _by_both(k1, k2, order, same)
    a, b = k1[order], k2[order]
    starts = np.r_[0, np.flatnonzero((a[1:] != a[:-1]) | (b[1:] != b[:-1])) + 1]
    counts = np.diff(np.r_[starts, n])
    occurrence[order] = np.arange(n) - np.repeat(starts, counts) + 1
    return occurrence, order, (a[starts], b[starts], counts.astype(np.uint32))


def _by_both(k1: np.ndarray, k2: np.ndarray, order: np.ndarray, same: np.ndarray) -> np.ndarray:
    """ORDER, which sorts K1 (SAME: where two next to each other in it are equal), made to sort
    the pairs (K1, K2), equal pairs in the order they come: only the keys whose first lane comes
    more than once are sorted again."""
    again = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
    some = order[again]
    order[again] = some[np.lexsort((some, k2[some], k1[some]))]
    return order


def _merged(runs: Sequence[_Run], size: int) -> Iterator[_Keys]:
    """The keys of RUNS as one sorted run, a piece at a time (up to SIZE keys of each run held at
    a time): a key of more than one run comes once, with the sum of its rows."""
    held = [(np.zeros(0, np.uint64),) * 2 + (np.zeros(0, np.uint32),) for _ in runs]
    read = [0] * len(runs)
    while True:
        for k, run in enumerate(runs):
            if not len(held[k][0]) and read[k] < run.size:
                held[k] = run.keys(read[k], size)
                read[k] += len(held[k][0])
        # every key up to the least of the last keys held of the runs not read to their end is
        # held, of every run
        bound = min(((int(h[0][-1]), int(h[1][-1])) for h, r, run in zip(held, read, runs, strict=True)
                     if r < run.size), default=None)
        pieces = []
        for k, (k1, k2, n) in enumerate(held):
            cut = len(k1)
            if bound is not None:  # the keys up to it: of its first lane, those up to its second
                lo, hi = (int(np.searchsorted(k1, np.uint64(bound[0]), side)) for side in ("left", "right"))
                cut = lo + int(np.searchsorted(k2[lo:hi], np.uint64(bound[1]), "right"))
            if cut:
                pieces.append((k1[:cut], k2[:cut], n[:cut]))
                held[k] = (k1[cut:], k2[cut:], n[cut:])
        if not pieces:
            return
        yield pieces[0] if len(pieces) == 1 else _combined(pieces)


def _combined(pieces: Sequence[_Keys]) -> _Keys:
    """PIECES (each sorted) as one, sorted, each key once with the sum of its rows."""
    k1, k2, n = (np.concatenate([p[c] for p in pieces]) for c in range(3))
    order = np.argsort(k1, kind="stable")
    a = k1[order]
    same = a[1:] == a[:-1]
    if not same.any():
        return a, k2[order], n[order]
    order = _by_both(k1, k2, order, same)
    k1, k2, n = k1[order], k2[order], n[order]
    starts = np.r_[0, np.flatnonzero((k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1])) + 1]
    return k1[starts], k2[starts], np.add.reduceat(n, starts)


def _keys_sum(arrays: Sequence[np.ndarray]) -> int:
    """A sum of a chunk's kept keys (each array weighed apart), as a signed 64-bit number."""
    total = 0
    for k, a in enumerate(arrays):
        total += (2 * k + 1) * int(np.add.reduce(a, dtype=np.uint64)) if len(a) else 0
    total &= (1 << 64) - 1
    return total - (1 << 64) if total >= 1 << 63 else total


class KeyCache:
    """The keys of a file's rows (content keys in two lanes and payload keys, a chunk after
    another, with the valid rows they are of), kept between nights: a history file unchanged
    since last night is not read into keys again. TOKEN names everything the keys depend on (the
    file's contents, how it was read, how rows are identified, the schema's fields); nothing of
    the journal, whose states are always read anew. Each chunk's keys are taken only for the
    chunk they were made of: the same rows (their count, first and last), the same ones valid,
    and keys that still sum as they did (a file cut short, or left zeros by a crash, is not
    read as keys). A cache that can't be read or written is only time lost."""

    VERSION = 5  # 5: each chunk's rows and a sum of its keys kept, checked when read
    NAMES = ("content1", "content2", "payload", "occurrence")
    #: a chunk's entry: rows, keys (its valid rows), bytes of its valid bits, first and last row
    #: numbers, the sum of its keys
    WIDTH = 6

    def __init__(self, folder: str, token: str, keeps: bool = True) -> None:
        """KEEPS: this night's keys may be kept (the first pass's cache; the posting pass only
        reads what it kept)."""
        self.path = os.path.join(folder, token)
        self._keeps = keeps
        self._writer: ThreadPoolExecutor | None = None  # writes the chunks' keys as they come
        self._pending: Future[None] | None = None
        self._at = 0
        self._chunk = 0
        self._writing: tuple[str, list[Any], Any, list[tuple[int, ...]]] | None = None
        self._reading: tuple[np.ndarray, list[str], np.ndarray] | None = None
        try:
            lengths = np.load(os.path.join(self.path, "lengths.npy"))
            if lengths.ndim != 2 or lengths.shape[1] != self.WIDTH:
                raise ValueError("not of this version")
            total = int(lengths[:, 1].sum()) if len(lengths) else 0
            files = [os.path.join(self.path, f"{name}.bin") for name in self.NAMES]
            if any(os.path.getsize(f) != 8 * total for f in files):
                raise ValueError("cut short")
            bits = np.load(os.path.join(self.path, "valid.npy"))
            self._reading = (lengths, files, bits)
        except Exception:  # noqa: BLE001 - whatever is wrong with it, the keys are made again
            self._reading = None
        # written only where none was found: from the file's first chunk, or (`_restart`) from
        # the chunks before the first whose kept keys no longer fit
        self._writable = keeps and self._reading is None

    @staticmethod
    def token(*parts: object) -> str:
        text = json.dumps([KeyCache.VERSION, *parts], default=str, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    @property
    def found(self) -> bool:
        return self._reading is not None

    def next(self, valid: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...] | None:
        """The keys of the next chunk's valid rows (VALID: which of the chunk's rows, ROWS: their
        numbers), if this chunk is the one they were made of (the same rows, the same ones
        valid). Where it is not, none are read any more: a new cache is begun with the keys of
        the chunks before it (`_restart`), and the chunks from it on are added as they are
        keyed."""
        if self._reading is None:
            return None
        lengths, files, bits = self._reading
        k = self._chunk
        self._chunk += 1
        if not self._fits(k, rows):
            self._restart(k)
            return None
        m = int(lengths[k, 1])
        start_bits = int(lengths[:k, 2].sum())
        packed = np.packbits(valid)
        if not np.array_equal(np.asarray(bits[start_bits: start_bits + len(packed)]), packed):
            self._restart(k)
            return None
        try:  # read, not mapped: a night's memory holds a chunk's keys, never the file's
            out = tuple(np.fromfile(f, np.uint64, count=m, offset=8 * self._at) for f in files)
        except OSError:
            self._restart(k)
            return None
        if any(len(a) != m for a in out) or _keys_sum(out) != int(lengths[k, 5]):
            self._restart(k)
            return None
        self._at += m
        return out

    def _fits(self, k: int, rows: np.ndarray) -> bool:
        """Whether chunk K's entry is of a chunk of these ROWS."""
        assert self._reading is not None
        lengths = self._reading[0]
        if k >= len(lengths) or int(lengths[k, 0]) != len(rows):
            return False
        return not len(rows) or (int(lengths[k, 3]) == int(rows[0]) and int(lengths[k, 4]) == int(rows[-1]))

    def skip(self, rows: np.ndarray) -> bool:
        """The next chunk's keys passed over (a chunk of these ROWS the run need not key);
        whether the keys kept are of such a chunk."""
        if self._reading is None:
            return False
        lengths = self._reading[0]
        k = self._chunk
        self._chunk += 1
        if not self._fits(k, rows):
            self._reading = None
            return False
        self._at += int(lengths[k, 1])
        return True

    def _restart(self, k: int) -> None:
        """Chunk K's kept keys are not of this chunk (another schema's checks made other rows
        valid, say): none are read any more, and (by the first pass, which keeps keys) a new
        cache is begun with the chunks before K, which fit: the chunks from K on, keyed
        tonight, are kept after them. Never a cache that starts elsewhere than the file's
        first chunk."""
        assert self._reading is not None
        lengths, files, bits = self._reading
        self._reading = None
        if not self._keeps:
            return
        try:
            self._open()
            assert self._writing is not None
            _, out, bits_out, kept = self._writing
            for f, name in zip(out, files, strict=True):
                f.write(np.fromfile(name, np.uint8, count=8 * self._at).tobytes())
            bits_out.write(np.asarray(bits[: int(lengths[:k, 2].sum())]).tobytes())
            kept.extend(tuple(int(x) for x in row) for row in lengths[:k])
            self._writable = True
        except OSError:
            self.abandon()

    def _open(self) -> None:
        if self._writing is None:
            tmp = self.path + f".{os.getpid()}.tmp"
            os.makedirs(tmp, exist_ok=True)
            files = [open(os.path.join(tmp, f"{name}.bin"), "wb") for name in self.NAMES]  # noqa: SIM115
            self._writing = (tmp, files, open(os.path.join(tmp, "valid.bin"), "wb"), [])  # noqa: SIM115

    def add(self, valid: np.ndarray, rows: np.ndarray, *arrays: np.ndarray) -> None:
        """The next chunk's keys (VALID: which of its ROWS they are of), to keep (written as
        they come, by a thread of their own: nothing held a row, and the night reads on
        meanwhile); nothing where the cache is not one to write."""
        if not self._writable:
            return
        try:
            self._open()
        except OSError:
            self.abandon()
            return
        arrays = tuple(np.ascontiguousarray(a, np.uint64) for a in arrays)
        packed = np.packbits(valid)
        first, last = (int(rows[0]), int(rows[-1])) if len(rows) else (0, 0)
        assert self._writing is not None
        self._writing[3].append((len(valid), len(arrays[0]), len(packed), first, last, _keys_sum(arrays)))
        self._written()  # one chunk's writes in hand at most
        self._pending = self._thread().submit(self._put, arrays, packed)

    def _put(self, arrays: tuple[np.ndarray, ...], packed: np.ndarray) -> None:
        writing = self._writing
        if writing is None:
            return
        _, files, bits, _ = writing
        for f, a in zip(files, arrays, strict=True):
            f.write(a.data)
        bits.write(packed.data)

    def _thread(self) -> ThreadPoolExecutor:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="kept-keys")
        return self._writer

    def _written(self) -> bool:
        """The chunk handed to the writer, written; False where it could not be (the cache is
        given up: only time is lost)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        try:
            pending.result()
            return True
        except OSError:
            self.abandon()
            return False

    def finish(self) -> None:
        """Every chunk was added: the keys are kept, replacing any kept before."""
        if not self._written() or self._writing is None:
            self._stop_writer()
            return
        self._stop_writer()
        tmp, files, bits, lengths = self._writing
        self._writing = None
        try:
            for f in (*files, bits):
                f.close()
            packed = np.fromfile(os.path.join(tmp, "valid.bin"), np.uint8)
            np.save(os.path.join(tmp, "valid.npy"), packed)
            os.remove(os.path.join(tmp, "valid.bin"))
            np.save(os.path.join(tmp, "lengths.npy"), np.array(lengths, np.int64).reshape(-1, self.WIDTH))
            if os.path.isdir(self.path):
                shutil.rmtree(self.path, ignore_errors=True)
            os.replace(tmp, self.path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        self._prune()

    def _prune(self, keep: int = 8) -> None:
        """Only the newest few files' keys are kept."""
        folder = os.path.dirname(self.path)
        with contextlib.suppress(OSError):
            kept = sorted((e for e in os.scandir(folder) if e.is_dir() and not e.name.endswith(".tmp")),
                          key=lambda e: e.stat().st_mtime, reverse=True)
            for old in kept[keep:]:
                shutil.rmtree(old.path, ignore_errors=True)

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None

    def abandon(self) -> None:
        self._writable = False
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(OSError):
                pending.result()
        self._stop_writer()
        if self._writing is not None:
            tmp, files, bits, _ = self._writing
            self._writing = None
            for f in (*files, bits):
                with contextlib.suppress(OSError):
                    f.close()
            shutil.rmtree(tmp, ignore_errors=True)
