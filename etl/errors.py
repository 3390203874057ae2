"""Typed problems that end a run, each turned into one line and an exit code by the CLI."""

from __future__ import annotations

import errno

from etl.outcomes import ExitStatus

#: errno of a write that found no room: a full disk, a file size limit, a quota
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def no_room(exc: BaseException) -> bool:
    """Whether EXC is a write that found no room (Arrow's own write errors carry no errno, only
    the system's words)."""
    return isinstance(exc, OSError) and (
        exc.errno in _NO_ROOM or "No space left" in str(exc) or "File too large" in str(exc))


class EtlError(Exception):
    """A problem the operator can fix; its message is shown as is, without a traceback."""

    exit_status: ExitStatus = ExitStatus.USAGE


class UsageProblem(EtlError):
    """Options that don't fit together or name something that does not exist."""


class FileProblem(EtlError):
    """A whole file can't be used: unreadable, empty, wrong encoding, required column missing."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RunAborted(EtlError):
    """The run stopped early on purpose (bad credentials, journal in use, too many errors)."""

    exit_status = ExitStatus.ABORTED
