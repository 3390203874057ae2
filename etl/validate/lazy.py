"""pandera, imported on first need (a schema file imports it: `etl.validate.resources` loads one in the
background while a run sets up), and without what a dry run never uses.

pandera's pandas backend imports `hypothesis` when it is installed, for its data-synthesis
strategies; the checks etl runs never use them, and the import is a quarter of a second of a
dry run's start. While pandera and its pandas backend load, `hypothesis` is hidden from them
(a `None` in `sys.modules` makes an import of it fail, which pandera handles), then shown
again, so other code in the process imports it as usual.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

_HIDDEN = "hypothesis"
_lock = threading.Lock()
_loaded: ModuleType | None = None


@contextlib.contextmanager
def hypothesis_hidden() -> Iterator[None]:
    """While pandera loads (its own import, or a schema file importing it), `hypothesis` is
    hidden unless something already imported it (callers hold `_lock` or run on one thread)."""
    hide = _HIDDEN not in sys.modules
    if hide:
        sys.modules[_HIDDEN] = None  # type: ignore[assignment]
    try:
        with contextlib.suppress(ImportError):
            # the backend of the built-in checks is what imports hypothesis: load it now
            importlib.import_module("pandera.backends.pandas.builtin_checks")
        yield
    finally:
        if hide and sys.modules.get(_HIDDEN, 0) is None:
            del sys.modules[_HIDDEN]


def pandera() -> ModuleType:
    """`pandera.pandas`, imported once, by whichever thread comes first (another thread that
    asks meanwhile waits for the import to finish: a module half imported is never handed out)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            with hypothesis_hidden():
                module = importlib.import_module("pandera.pandas")
            _loaded = module
    return _loaded
