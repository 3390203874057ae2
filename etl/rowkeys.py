"""Rows' identities a chunk at a time, from the Arrow columns: the same identities as
`etl.identity` gives row by row (a test holds the two together), at the cost of one hash per
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

import binascii
import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as arrow
import pyarrow.compute as pc

from etl.identity import cell_digest, identity_text
from etl.values import Kind, value

_TAG_END = "]"
_SPACE = " \t\r\n\v\f"  # as etl.identity strips them
_NONE = bytes(8)  # no digest: a cell that adds nothing to its row
blake2b = hashlib.blake2b


def column_digests(cells: arrow.Array, kind: Kind | None, decimal: str = "."
                   ) -> tuple[arrow.Array, np.ndarray]:
    """The digest of each cell as a row's identity has it (null where the cell adds nothing),
    and the same as an unsigned 64-bit number (0 for none). KIND: how the cell is sent (its
    value's text), or None for a column that is not sent (its text, normalised)."""
    if isinstance(cells, arrow.ChunkedArray):
        cells = cells.combine_chunks()
    if not (arrow.types.is_string(cells.type) or arrow.types.is_large_string(cells.type)):
        cells = cells.cast(arrow.large_string())
    encoded = pc.fill_null(cells, "").dictionary_encode()
    texts = identity_texts(encoded.dictionary, kind, decimal)
    raw = [blake2b(t.encode("utf-8"), digest_size=8).digest() if t else _NONE for t in texts]
    m = len(raw)
    joined = b"".join(raw)
    numbers = np.frombuffer(joined, dtype=">u8").astype(np.uint64) if m else np.zeros(0, np.uint64)
    hexes = arrow.FixedSizeBinaryArray.from_buffers(
        arrow.binary(16), m, [None, arrow.py_buffer(binascii.hexlify(joined))]
    ).cast(arrow.binary()).cast(arrow.string())
    present = arrow.array([bool(t) for t in texts], type=arrow.bool_())
    hexes = pc.if_else(present, hexes, arrow.scalar(None, arrow.string()))
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return hexes.take(encoded.indices), numbers[indices] if m else np.zeros(len(cells), np.uint64)


def identity_texts(cells: arrow.Array, kind: Kind | None, decimal: str = ".") -> list[str]:
    """`identity_text` of each cell's value (KIND) or text (None): the common cells (plain
    ASCII text, whole numbers in digits) by Arrow's kernels, the others one by one."""
    trimmed = pc.utf8_trim(cells, characters=_SPACE)
    if kind is None or kind is Kind.TEXT:
        plain = pc.and_(pc.string_is_ascii(trimmed), pc.invert(pc.match_substring(trimmed, "\r")))
        made = trimmed
    elif kind is Kind.INTEGER:
        plain = pc.match_substring_regex(trimmed, r"^[1-9][0-9]{0,17}$")
        made = pc.if_else(plain, trimmed, "")
    else:
        plain = arrow.array(np.zeros(len(cells), bool))
        made = trimmed
    texts = made.to_pylist()
    for k in np.flatnonzero(~plain.to_numpy(zero_copy_only=False)).tolist():
        cell = cells[k].as_py()
        if kind is None:
            texts[k] = identity_text(cell)
        else:
            got, problem = value(kind, cell, decimal)
            texts[k] = "" if problem else identity_text(got)
    return texts


def bases(resource: str, names: Sequence[str], digests: Mapping[str, arrow.Array], n: int) -> list[bytes]:
    """Each row's content (`Identities._base` of a "cells:" scheme) as 20 raw bytes: the
    non-empty cells of the columns NAMES, `name=digest`, joined."""
    parts = [pc.binary_join_element_wise(f"{name}=", digests[name], "") for name in names
             if name in digests]
    joined = arrow.nulls(n, arrow.string())
    for part in parts:  # Arrow's own "skip" of nulls gives no rows for a single column of them
        both = pc.binary_join_element_wise(joined, part, "\x1f")
        joined = pc.if_else(pc.is_null(joined), part, pc.if_else(pc.is_null(part), joined, both))
    prefix = f"{resource}\ncells\n"
    texts = pc.binary_join_element_wise(prefix, pc.fill_null(joined, ""), "").cast(arrow.binary())
    blake = hashlib.blake2b
    return [blake(t, digest_size=20).digest() for t in texts.to_pylist()]


def keys_of(raw: Sequence[bytes]) -> np.ndarray:
    """The 8-byte prefix of each raw 20-byte digest, as unsigned numbers."""
    if not raw:
        return np.zeros(0, np.uint64)
    joined = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(-1, 20)
    return np.ascontiguousarray(joined[:, :8]).view(">u8").ravel().astype(np.uint64)


def hex_keys(bases: Iterable[str]) -> np.ndarray:
    """The keys of contents (bases) spelt as hex, as the journal keeps them."""
    prefixes = "".join(b[:16] for b in bases if b and len(b) >= 16)
    return np.frombuffer(bytes.fromhex(prefixes), dtype=">u8").astype(np.uint64)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every bit of the input moves every bit of the output."""
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def payload_keys(fields: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """A key of each row's payload from its sent fields' digests (FIELDS: name -> 64-bit digest
    per row, 0 where the row sends nothing): equal payloads have equal keys."""
    key = np.zeros(n, np.uint64)
    for name, numbers in fields.items():
        tag = np.uint64(int(cell_digest("field:" + name), 16))
        key ^= np.where(numbers != 0, _mix(numbers ^ tag), np.uint64(0))
    return key


def payload_key_of(body: Mapping[str, Any]) -> int:
    """The payload key of one payload (as the journal keeps it: values by field name)."""
    fields = {}
    for name, got in body.items():
        text = identity_text(got)
        if text:
            fields[name] = np.array([int(cell_digest(text), 16)], np.uint64)
    return int(payload_keys(fields, 1)[0])


def stored_payload_keys(payloads: Iterable[str], system_id: str = "SystemId") -> np.ndarray:
    """The payload keys of the journal's payloads (JSON as sent): without SystemId, and where a
    Description ends in an import tag (`--tag-description`), with and without it."""
    keys: list[int] = []
    for text in payloads:
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
    return np.unique(np.array(keys, dtype=np.uint64))


def repeated(keys: np.ndarray) -> np.ndarray:
    """The keys that occur more than once, sorted."""
    if len(keys) < 2:
        return np.zeros(0, np.uint64)
    ordered = np.sort(keys)
    twice = ordered[1:] == ordered[:-1]
    return np.unique(ordered[1:][twice])


def among(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which KEYS are in SORTED_SET (a sorted unique array)."""
    if len(sorted_set) == 0 or len(keys) == 0:
        return np.zeros(len(keys), bool)
    at = np.searchsorted(sorted_set, keys)
    at[at == len(sorted_set)] = 0
    return sorted_set[at] == keys


def ranks(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each of KEYS (a file's, in file order) in WANTED, its occurrence (1, 2, ...) among the
    equal keys before it; 1 for the others."""
    out = np.ones(len(keys), np.int64)
    which = np.flatnonzero(among(keys, wanted))
    if len(which):
        sub = keys[which]
        order = np.argsort(sub, kind="stable")
        s = sub[order]
        starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
        run = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
        occ = np.empty(len(s), np.int64)
        occ[order] = run + 1
        out[which] = occ
    return out


class SeenKeys:
    """The keys of one file's rows seen so far (8 bytes a row): which of the identical rows a
    row is, chunk after chunk."""

    def __init__(self) -> None:
        self.big = np.zeros(0, np.uint64)
        self.small: list[np.ndarray] = []

    def occurrences(self, keys: np.ndarray) -> np.ndarray:
        """Each key's occurrence in the file so far (1 for the first), in order; KEYS are seen."""
        before = np.zeros(len(keys), np.int64)
        for seen in (self.big, *self.small):
            if len(seen) and len(keys):
                before += np.searchsorted(seen, keys, "right") - np.searchsorted(seen, keys, "left")
        occurrence = before + ranks(keys, repeated(keys))
        if len(keys):
            self.small.append(np.sort(keys))
        if len(self.small) > 8:
            self.big = np.sort(np.concatenate([self.big, *self.small]))
            self.small = []
        return occurrence


class KeyCache:
    """The keys of a file's rows (content and payload keys, a chunk after another, with the
    valid rows they are of), kept between nights: a history file unchanged since last night
    is not hashed again. TOKEN names everything the keys depend on (the file's contents, how
    rows are identified, the schema's fields); nothing of the journal, whose states are always
    read anew. A cache that can't be read or written is only time lost."""

    VERSION = 1

    def __init__(self, folder: str, token: str) -> None:
        self.path = os.path.join(folder, token)
        self._at = 0
        self._chunk = 0
        self._writing: tuple[Any, Any, Any, list[tuple[int, int, int]]] | None = None
        self._reading: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        try:
            lengths = np.load(os.path.join(self.path, "lengths.npy"))
            total = int(lengths[:, 1].sum()) if len(lengths) else 0
            keys = np.memmap(os.path.join(self.path, "keys.bin"), np.uint64, "r", shape=(total,)) \
                if total else np.zeros(0, np.uint64)
            payloads = np.memmap(os.path.join(self.path, "payloads.bin"), np.uint64, "r", shape=(total,)) \
                if total else np.zeros(0, np.uint64)
            bits = np.load(os.path.join(self.path, "valid.npy"), mmap_mode="r")
            self._reading = (lengths, keys, payloads, bits)
        except (OSError, ValueError, IndexError):
            self._reading = None

    @staticmethod
    def token(*parts: object) -> str:
        text = json.dumps([KeyCache.VERSION, *parts], default=str, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    @property
    def found(self) -> bool:
        return self._reading is not None

    def next(self, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The keys and payload keys of the next chunk's valid rows, if this chunk is the one
        they were made of (the same rows, the same ones valid)."""
        if self._reading is None:
            return None
        lengths, keys, payloads, bits = self._reading
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
        out = np.array(keys[self._at: self._at + m]), np.array(payloads[self._at: self._at + m])
        self._at += m
        return out

    def add(self, valid: np.ndarray, keys: np.ndarray, payloads: np.ndarray) -> None:
        """The next chunk's keys, to keep (written as they come: nothing held a row)."""
        try:
            if self._writing is None:
                tmp = self.path + f".{os.getpid()}.tmp"
                os.makedirs(tmp, exist_ok=True)
                self._writing = (tmp, open(os.path.join(tmp, "keys.bin"), "wb"),  # noqa: SIM115
                                 open(os.path.join(tmp, "payloads.bin"), "wb"), [])  # noqa: SIM115
                self._bits = open(os.path.join(tmp, "valid.bin"), "wb")  # noqa: SIM115
            tmp, kf, pf, lengths = self._writing
            kf.write(np.ascontiguousarray(keys, np.uint64).tobytes())
            pf.write(np.ascontiguousarray(payloads, np.uint64).tobytes())
            packed = np.packbits(valid)
            self._bits.write(packed.tobytes())
            lengths.append((len(valid), len(keys), len(packed)))
        except OSError:
            self.abandon()

    def finish(self) -> None:
        """Every chunk was added: the keys are kept, replacing any kept before."""
        if self._writing is None:
            return
        tmp, kf, pf, lengths = self._writing
        self._writing = None
        try:
            kf.close()
            pf.close()
            self._bits.close()
            bits = np.fromfile(os.path.join(tmp, "valid.bin"), np.uint8)
            np.save(os.path.join(tmp, "valid.npy"), bits)
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
            tmp, kf, pf, _ = self._writing
            self._writing = None
            for f in (kf, pf, self._bits):
                with contextlib.suppress(OSError):
                    f.close()
            shutil.rmtree(tmp, ignore_errors=True)
