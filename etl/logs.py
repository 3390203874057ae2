"""structlog set-up: JSON lines in the run's folder, readable lines on stderr, secrets masked.

Every event carries the run id. Known secret values (token, password) are replaced by `***`
wherever they would appear in an event, as a last line of defence behind code that never logs
them in the first place.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from etl.errors import UsageProblem

_SECRETS: set[str] = set()


def add_secret(value: str | None) -> None:
    """Mask VALUE in every event from now on (short values would mask too much: 4+ chars)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def _mask(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _SECRETS:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = _mask(value)
            elif value is not None and not isinstance(value, (int, float, bool)):
                event[key] = _mask(str(value))
    return event


def configure(run_id: str, log_dir: str | None, *, verbose: bool = False,
              quiet: bool = False) -> str | None:
    """Log JSON to LOG_DIR/log.jsonl (if given) and to the console (warnings; with QUIET only
    errors, for a cron job that mails what it prints; with VERBOSE everything); returns the log
    path."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
    ]
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger("etl")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    root.propagate = False

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _console_line,
            ],
            foreign_pre_chain=shared,
        )
    )
    root.addHandler(console)

    path = None
    if log_dir is not None:
        path = os.path.join(log_dir, "log.jsonl")
        try:
            os.makedirs(log_dir, exist_ok=True)
            handler = _RunLog(path, encoding="utf-8")
        except OSError as exc:  # before anything is read or sent: the folder is the operator's choice
            raise UsageProblem(f"can't write the run's folder {log_dir} ({exc.strerror or exc}); "
                               "choose another --report") from None
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(default=str),
                ],
                foreign_pre_chain=shared,
            )
        )
        root.addHandler(handler)
    return path


class _RunLog(logging.FileHandler):
    """log.jsonl. A disk that fills up under it stops it quietly, once, with a warning on the
    terminal (the report and the journal, which say what was done, stop the run if they can't
    be written): not a traceback per log line."""

    failed: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed is None:
            super().emit(record)

    def flush(self) -> None:
        if self.failed is None:
            try:
                super().flush()
            except OSError as exc:
                self._give_up(exc)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and self.failed is None:
            self._give_up(exc)
            return
        super().handleError(record)

    def _give_up(self, exc: OSError) -> None:
        self.failed = exc
        sys.stderr.write(f"etl: warning: {self.baseFilename} can't be written ({exc.strerror or exc}); "
                         "the run's log stops here (the report and the journal go on)\n")

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            if self.failed is None:
                self._give_up(exc)


def _console_line(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    """`etl: warning: <event> (key=value, ...)`, without the noise the JSON log keeps."""
    level = event.pop("level", "info")
    text = str(event.pop("event", ""))
    for key in ("timestamp", "run_id"):
        event.pop(key, None)
    extra = ", ".join(f"{k}={v}" for k, v in event.items())
    return f"etl: {level}: {text}" + (f" ({extra})" if extra else "")


def get(name: str = "etl") -> Any:
    return structlog.get_logger(name if name.startswith("etl") else f"etl.{name}")


def close() -> None:
    for handler in list(logging.getLogger("etl").handlers):
        handler.flush()
        handler.close()
        logging.getLogger("etl").removeHandler(handler)


