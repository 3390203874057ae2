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
import hashlib
import json
import os
import shutil
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

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
        which = np.arange(n)
        step = 0
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
    if isinstance(cells, arrow.ChunkedArray):
        cells = cells.combine_chunks()
    if not arrow.types.is_large_string(cells.type):
        cells = cells.cast(arrow.large_string())
    cells = pc.fill_null(cells, "")
    trimmed = pc.utf8_trim(cells, characters=_SPACE)
    if kind is None or kind is Kind.TEXT:  # `normalised`: trimmed, line ends as LF, then NFC
        if pc.any(pc.match_substring(trimmed, "\r")).as_py():
            trimmed = pc.replace_substring(pc.replace_substring(trimmed, "\r\n", "\n"), "\r", "\n")
        odd = np.flatnonzero(~pc.string_is_ascii(trimmed).to_numpy(zero_copy_only=False))
        if not len(odd):
            return trimmed
        texts = trimmed.to_pylist()
        nfc = unicodedata.normalize
        for k in odd.tolist():
            texts[k] = nfc("NFC", texts[k])
        return arrow.array(texts, type=arrow.large_string())
    if kind is Kind.INTEGER:
        plain = pc.or_(pc.match_substring_regex(trimmed, r"^[1-9][0-9]{0,17}$"), pc.equal(trimmed, ""))
    elif decimal == ".":
        trimmed = pc.replace_substring_regex(trimmed, r"^([1-9][0-9]{0,17}|0)\.([0-9]*[1-9])0+$", r"\1.\2")
        trimmed = pc.replace_substring_regex(trimmed, r"^([1-9][0-9]{0,17})\.0*$", r"\1")
        plain = pc.or_(pc.match_substring_regex(trimmed, r"^([1-9][0-9]{0,17}|0\.[0-9]{0,17}[1-9])"
                                                         r"(\.[0-9]{0,17}[1-9])?$"),
                       pc.equal(trimmed, ""))
    else:
        plain = pc.equal(trimmed, "")
    odd = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    if not len(odd):
        return trimmed
    texts = trimmed.to_pylist()
    for k in odd.tolist():
        cell = cells[k].as_py()
        got, problem = value(kind, cell, decimal)
        texts[k] = "" if problem else identity_text(got)
    return arrow.array(texts, type=arrow.large_string())


def column_keys(cells: arrow.Array, kind: Kind | None, decimal: str = "."
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's identity text hashed (two lanes), and whether it has one (a blank cell adds
    nothing to its row)."""
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


def hex_pairs(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Keys as the journal keeps them (32 hex digits), back in two lanes."""
    raw = bytes.fromhex("".join(keys))
    both = np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 2) if raw else \
        np.zeros((0, 2), np.uint64)
    return both[:, 0].copy(), both[:, 1].copy()


def hex_keys_of(texts: Sequence[str]) -> np.ndarray:
    """The payload keys of rows as the journal keeps them (each 16 hex digits, several of a row
    joined by commas), all in one array."""
    keys = [k for k in ",".join(texts).split(",") if k]
    if set(map(len, keys)) - {16}:  # not as etl writes them: one at a time
        return np.array([int(k, 16) for k in keys], np.uint64)
    raw = bytes.fromhex("".join(keys))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64) if raw else np.zeros(0, np.uint64)


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
    if len(sorted_set) == 0 or len(keys) == 0:
        return np.zeros(len(keys), bool)
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
    n = len(k1)
    out = np.ones(n, np.int64)
    if n < 2:
        return out
    first = np.sort(k1)
    if not (first[1:] == first[:-1]).any():
        return out  # no two alike: the common chunk
    order = np.lexsort((k2, k1))
    a, b = k1[order], k2[order]
    same = (a[1:] == a[:-1]) & (b[1:] == b[:-1])
    if not same.any():
        return out
    starts = np.r_[0, np.flatnonzero(~same) + 1]
    run = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    out[order] = run + 1  # lexsort is stable: equal pairs stay in file order
    return out


class SeenKeys:
    """The content keys of one file's rows seen so far (12 bytes a row, and 8 MiB of slots, a bit
    each, that answer "surely not seen" for most rows without a search): which of the identical
    rows a row is, chunk after chunk."""

    BITS = 26
    #: a chunk's keys are kept sorted in parts; parts are merged while the merged part stays
    #: under this many rows (a chunk's search is a search of each part: few parts, whatever the
    #: file's length, without holding the whole file's keys twice to merge them)
    MERGE = 1 << 20

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []  # each sorted by first lane
        self.slots = np.zeros(1 << (self.BITS - 3), np.uint8)

    def occurrences(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """Each row's occurrence in the file so far (1 for the first), in order; the rows are
        seen."""
        occurrence = ranks(k1, k2)
        if not len(k1):
            return occurrence
        slot = (k1 & np.uint64((1 << self.BITS) - 1)).astype(np.int64)
        byte, bit = slot >> 3, (np.uint8(1) << (slot & 7).astype(np.uint8))
        maybe = np.flatnonzero(self.slots[byte] & bit)
        for a, b in self.parts:
            if not len(maybe):
                break
            lo = np.searchsorted(a, k1[maybe], "left")
            hi = np.searchsorted(a, k1[maybe], "right")
            for k, start, stop in zip(maybe[hi > lo].tolist(), lo[hi > lo].tolist(), hi[hi > lo].tolist(),
                                      strict=True):
                occurrence[k] += int(np.count_nonzero(b[start:stop] == np.uint32(int(k2[k]) >> 32)))
        np.bitwise_or.at(self.slots, byte, bit)
        # a chunk's keys, sorted; of the second lane, its upper half is kept (a 96-bit key: 12
        # bytes a row)
        order = np.argsort(k1, kind="stable")
        self.parts.append((k1[order], (k2[order] >> np.uint64(32)).astype(np.uint32)))
        while len(self.parts) > 1 and len(self.parts[-1][0]) >= len(self.parts[-2][0]) \
                and len(self.parts[-1][0]) + len(self.parts[-2][0]) <= self.MERGE:
            last = self.parts.pop()
            self.parts[-1] = _merged(self.parts[-1], last)
        return occurrence


def _merged(p: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Two parts of SeenKeys (each sorted by first lane) as one."""
    (a1, a2), (b1, b2) = p, q
    at = np.searchsorted(a1, b1, "right") + np.arange(len(b1))
    n = len(a1) + len(b1)
    k1, k2 = np.empty(n, a1.dtype), np.empty(n, a2.dtype)
    theirs = np.zeros(n, bool)
    theirs[at] = True
    k1[at], k2[at] = b1, b2
    k1[~theirs], k2[~theirs] = a1, a2
    return k1, k2


class KeyCache:
    """The keys of a file's rows (content keys in two lanes and payload keys, a chunk after
    another, with the valid rows they are of), kept between nights: a history file unchanged
    since last night is not read into keys again. TOKEN names everything the keys depend on (the
    file's contents, how rows are identified, the schema's fields); nothing of the journal,
    whose states are always read anew. A cache that can't be read or written is only time lost."""

    VERSION = 3
    NAMES = ("content1", "content2", "payload", "occurrence")

    def __init__(self, folder: str, token: str) -> None:
        self.path = os.path.join(folder, token)
        self._at = 0
        self._chunk = 0
        self._writing: tuple[str, list[Any], Any, list[tuple[int, int, int]]] | None = None
        self._reading: tuple[np.ndarray, list[str], np.ndarray] | None = None
        try:
            lengths = np.load(os.path.join(self.path, "lengths.npy"))
            total = int(lengths[:, 1].sum()) if len(lengths) else 0
            files = [os.path.join(self.path, f"{name}.bin") for name in self.NAMES]
            if any(os.path.getsize(f) != 8 * total for f in files):
                raise ValueError("cut short")
            bits = np.load(os.path.join(self.path, "valid.npy"))
            self._reading = (lengths, files, bits)
        except (OSError, ValueError, IndexError):
            self._reading = None

    @staticmethod
    def token(*parts: object) -> str:
        text = json.dumps([KeyCache.VERSION, *parts], default=str, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    @property
    def found(self) -> bool:
        return self._reading is not None

    def next(self, valid: np.ndarray) -> tuple[np.ndarray, ...] | None:
        """The keys of the next chunk's valid rows, if this chunk is the one they were made of
        (the same rows, the same ones valid)."""
        if self._reading is None:
            return None
        lengths, files, bits = self._reading
        k = self._chunk
        self._chunk += 1
        if k >= len(lengths) or int(lengths[k, 0]) != len(valid):
            self._reading = None
            return None
        m = int(lengths[k, 1])
        start_bits = int(lengths[:k, 2].sum())
        packed = np.packbits(valid)
        if not np.array_equal(np.asarray(bits[start_bits: start_bits + len(packed)]), packed):
            self._reading = None
            return None
        try:  # read, not mapped: a night's memory holds a chunk's keys, never the file's
            out = tuple(np.fromfile(f, np.uint64, count=m, offset=8 * self._at) for f in files)
        except OSError:
            self._reading = None
            return None
        if any(len(a) != m for a in out):
            self._reading = None
            return None
        self._at += m
        return out

    def skip(self, rows: int) -> bool:
        """The next chunk's keys passed over (a chunk of ROWS rows the run need not key);
        whether the keys kept are of such a chunk."""
        if self._reading is None:
            return False
        lengths = self._reading[0]
        k = self._chunk
        self._chunk += 1
        if k >= len(lengths) or int(lengths[k, 0]) != rows:
            self._reading = None
            return False
        self._at += int(lengths[k, 1])
        return True

    def add(self, valid: np.ndarray, *arrays: np.ndarray) -> None:
        """The next chunk's keys, to keep (written as they come: nothing held a row)."""
        try:
            if self._writing is None:
                tmp = self.path + f".{os.getpid()}.tmp"
                os.makedirs(tmp, exist_ok=True)
                files = [open(os.path.join(tmp, f"{name}.bin"), "wb") for name in self.NAMES]  # noqa: SIM115
                self._writing = (tmp, files, open(os.path.join(tmp, "valid.bin"), "wb"), [])  # noqa: SIM115
            tmp, files, bits, lengths = self._writing
            for f, a in zip(files, arrays, strict=True):
                f.write(np.ascontiguousarray(a, np.uint64).tobytes())
            packed = np.packbits(valid)
            bits.write(packed.tobytes())
            lengths.append((len(valid), len(arrays[0]), len(packed)))
        except OSError:
            self.abandon()

    def finish(self) -> None:
        """Every chunk was added: the keys are kept, replacing any kept before."""
        if self._writing is None:
            return
        tmp, files, bits, lengths = self._writing
        self._writing = None
        try:
            for f in (*files, bits):
                f.close()
            packed = np.fromfile(os.path.join(tmp, "valid.bin"), np.uint8)
            np.save(os.path.join(tmp, "valid.npy"), packed)
            os.remove(os.path.join(tmp, "valid.bin"))
            np.save(os.path.join(tmp, "lengths.npy"), np.array(lengths, np.int64).reshape(-1, 3))
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

    def abandon(self) -> None:
        if self._writing is not None:
            tmp, files, bits, _ = self._writing
            self._writing = None
            for f in (*files, bits):
                with contextlib.suppress(OSError):
                    f.close()
            shutil.rmtree(tmp, ignore_errors=True)
