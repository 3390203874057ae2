"""What every part of the import run (etl.run.importing) holds: the attributes Importer.__init__
sets, declared here so that each part (first_pass, keyed_rows, sending, end_of_run) knows them,
and the methods one part calls on another, declared for the type checker only."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

from etl.errors import RunAborted
from etl.ledger.entries import Entry
from etl.ledger.identity import Identities
from etl.ledger.journal import Journal
from etl.ledger.life import Ledger
from etl.ledger.rowkeys import KeyCache
from etl.ledger.storage import Storage
from etl.post.poster import Poster
from etl.post.reconciling import Reconciler
from etl.read.reading import RawChunk
from etl.run.checks import AccountChecks
from etl.run.created_ahead import CreatedAhead
from etl.run.import_rows import Done, Here, Plan, Row, Settings, Stopper, _FileKeys, _Keyed, _Sample
from etl.run.kept_verdicts import KeptVerdicts
from etl.run.night import Night
from etl.run.pipeline import Inputs, RunRecord
from etl.validate.resources import Resource
from etl.validate.validating import Validator


class ImporterBase:
    """The attributes of an Importer (set by Importer.__init__), and what its parts share."""

    inputs: Inputs
    validator: Validator
    resource: Resource
    record: RunRecord
    journal: Journal
    ledger: Ledger
    poster: Poster
    reconciler: Reconciler
    settings: Settings
    stopper: Stopper
    log: Any
    sources: set[str]
    doubtful: set[str]
    night: Night
    _real: dict[str, str]
    streak: list[str]
    notes: Counter[str]
    legacy: bool
    valid_rows: dict[str, int]
    zone_checked: bool
    _storage_lock: threading.Lock
    learn_reads: int
    evidence: dict[str, dict[str, dict[str, tuple[Row, Entry]]]] | None
    column_names: dict[str, str]
    samples: dict[int, _Sample]
    known_files: set[int]
    accounted: Counter[str]
    _files: dict[int, _FileKeys]
    _read_keys: dict[int, _FileKeys]
    _first: bool
    _kept_chunks: list[tuple[int, RawChunk]]
    _here_kept: dict[tuple[int, int, int], tuple[int, np.ndarray, Here, np.ndarray]]
    _ahead: dict[int, CreatedAhead]
    _keys_soon: Future[tuple[tuple[str, str, str, str], int]] | None
    _checked: KeptVerdicts
    _keys: dict[tuple[int, int], tuple[np.ndarray, ...]]
    _candidates: dict[tuple[int, int], np.ndarray]
    _untouched_chunks: set[tuple[int, int]]
    _caches: dict[int, KeyCache]
    cut_short: bool
    _repeated: dict[int, np.ndarray]
    account: AccountChecks | None
    _chunks_read: int  # by the first pass, in all files
    _reach: int  # rows the quota may send tonight, and a few (the account checks collect twice that)
    _collected: int  # rows to send the first pass collected for the account checks
    _verdicts_given: int  # rows given the account checks' verdicts with their chunk's plan
    _segments: dict[int, Any]  # etl.run.lines._Ahead: chunks whose lines the first pass wrote

    if TYPE_CHECKING:  # one part's methods another calls (the type checker's view only)
        def _identify(self, identities: Identities, index: int, chunk: RawChunk, valid: np.ndarray,
                      assigned: dict[int, tuple[int, str | None]] | None = None
                      ) -> tuple[list[Row], list[tuple[int, str]]]: ...

        def _known(self, identities: Identities, rows: list[Row]) -> dict[str, Entry]: ...

        def _key_cache(self, index: int) -> KeyCache | None: ...

        def _start_ahead(self, index: int) -> None: ...

        def _checked_verdicts(self, identities: Identities, index: int, chunk: RawChunk
                              ) -> tuple[dict[int, str], np.ndarray]: ...

        def _read_keys_soon(self, identities: Identities) -> None: ...

        def _keyed(self, identities: Identities, index: int, chunk: RawChunk, valid: np.ndarray,
                   kept: tuple[np.ndarray, ...] | None = None, candidates: np.ndarray | None = None
                   ) -> _Keyed | None: ...

        def _keyed_rows(self, identities: Identities, index: int, chunk: RawChunk, keyed: _Keyed,
                        light: bool = False) -> tuple[list[Row], dict[str, Entry]]: ...

        def _plain_rows(self, identities: Identities, index: int, chunk: RawChunk, keyed: _Keyed,
                        keep: bool = False, plan: Plan | None = None) -> Callable[[list[int]], list[Row]]: ...

        def _decide(self, p: Plan, r: Row, entry: Entry | None) -> bool: ...

        def _same_payload(self, p: Plan, rows: list[Row]) -> None: ...

        def _plan_of(self, identities: Identities, index: int, chunk: RawChunk, texts: dict[int, str],
                     keyed: _Keyed | None, rows: list[Row], problems: list[tuple[int, str]],
                     known: dict[str, Entry], send: bool = True, plain: np.ndarray | None = None
                     ) -> Plan: ...

        def _keep(self, rows: list[Row]) -> None: ...

        def _written_first(self, identities: Identities, index: int, chunk: RawChunk,
                           texts: dict[int, str], keyed: _Keyed | None) -> bool: ...

        def _send(self, row: Row, learn: bool = True, reason: str = "sent") -> Done: ...

        def storage(self) -> Storage: ...

    def _real_path(self, path: str) -> str:
        """A file's real path, as the journal keeps its rows' files (found once a run)."""
        real = self._real.get(path)
        if real is None:
            real = self._real[path] = os.path.realpath(path)
        return real

    def _files_done(self, keep: int = -1) -> None:
        """The rows seen of the files this pass read, let go (their temporary files removed),
        and the rows created from their lines read ahead, but file KEEP's."""
        for state in self._files.values():
            state.seen.close()
        self._aheads_done(keep)

    def _aheads_done(self, keep: int = -1) -> None:
        """The threads reading ahead the rows created from the files' lines stopped (before the
        journal is closed), but file KEEP's."""
        for index in [i for i in self._ahead if i != keep]:
            self._ahead.pop(index).close()

    def _stop_if_moved(self) -> None:
        """While sending: an input that changed stops the run before its next POST (exit 3)."""
        moved = self.inputs.moved()
        if moved is not None:
            self.cut_short = True  # what is left of the file, as it now is, is not known
            self.stopper.stop(RunAborted(
                f"{moved} changed while it was being imported (is the export still being written?); "
                "nothing more is sent. Run again once it is complete: what was created is skipped"))

