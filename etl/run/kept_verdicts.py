"""The first pass's verdicts on each chunk, kept for the posting pass, which reads the chunk
again and would otherwise check every row of it again (etl.run.importing).

A chunk's verdicts are a bit a row, held in memory, and the texts of its invalid rows: held in
memory while they are few, else written to a file without a name (`scratch_file`: in the state
folder's `keys/`, beside the keys of the rows seen) and read back when the posting pass reaches
the chunk.
A file of millions of invalid rows keeps a night's memory flat (before: 65 MB more at 1M rows
half of them invalid, growing with the file)."""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np

from etl.errors import no_room
from etl.ledger.rowkeys import _full, scratch_file

#: what the file holds, as a full disk names it
_WHAT = "the reasons of the invalid rows read so far"

#: a chunk's verdicts as kept: the invalid rows' texts (by position), a bit a row, its rows
Verdicts = tuple[dict[int, str], np.ndarray, int]


class KeptVerdicts:
    """Chunks' verdicts by (file, chunk), the texts of more than HELD invalid rows on disk."""

    HELD = 1_000

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._kept: dict[tuple[int, int], tuple[dict[int, str] | tuple[int, int, int], np.ndarray, int]] = {}
        self._file: Any = None
        self._closing: weakref.finalize | None = None

    def put(self, key: tuple[int, int], texts: dict[int, str], valid: np.ndarray) -> None:
        bits, n = np.packbits(valid), len(valid)
        if len(texts) <= self.HELD:
            self._kept[key] = (texts, bits, n)
            return
        data = [t.encode("utf-8", "surrogatepass") for t in texts.values()]
        head = np.concatenate([np.fromiter(texts, np.int64, len(texts)),
                               np.fromiter(map(len, data), np.int64, len(data))])
        blob = head.tobytes() + b"".join(data)
        f = self._spill()
        at = os.lseek(f.fileno(), 0, os.SEEK_END)
        try:
            done = 0
            while done < len(blob):
                done += os.write(f.fileno(), blob[done:])
        except OSError as exc:
            if no_room(exc):
                raise _full(exc, self.folder, _WHAT) from exc
            raise
        self._kept[key] = ((at, len(texts), len(blob)), bits, n)

    def pop(self, key: tuple[int, int]) -> Verdicts | None:
        """A chunk's verdicts, no longer kept (None: not kept)."""
        kept = self._kept.pop(key, None)
        if kept is None:
            return None
        texts, bits, n = kept
        if isinstance(texts, dict):
            return texts, bits, n
        at, m, size = texts
        blob = os.pread(self._file.fileno(), size, at) if hasattr(os, "pread") else self._read(at, size)
        if len(blob) != size:
            raise OSError(f"the file of the invalid rows' reasons in {self.folder} was cut short")
        positions = np.frombuffer(blob, np.int64, m)
        ends = np.cumsum(np.frombuffer(blob, np.int64, m, 8 * m)) + 16 * m
        starts = np.r_[16 * m, ends[:-1]]
        return ({p: blob[s:e].decode("utf-8", "surrogatepass")
                 for p, s, e in zip(positions.tolist(), starts.tolist(), ends.tolist(), strict=True)},
                bits, n)

    def discard(self, key: tuple[int, int]) -> None:
        self._kept.pop(key, None)

    def close(self) -> None:
        """The file of texts closed (its room given back); what was kept, let go."""
        self._kept.clear()
        if self._closing is not None:
            self._closing()

    def _spill(self) -> Any:
        if self._file is None:
            self._file, self.folder = scratch_file(self.folder, "verdicts-", _WHAT)
            self._closing = weakref.finalize(self, self._file.close)
        return self._file

    def _read(self, at: int, size: int) -> bytes:
        self._file.seek(at)
        return bytes(self._file.read(size))
