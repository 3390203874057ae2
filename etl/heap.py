"""The C allocator's heap, where the C library is glibc (elsewhere, nothing is done).

A night's chunks allocate and free the same large arrays, chunk after chunk, on several threads
(reading ahead, keying columns, writing the report). glibc gives each thread that allocates
while another does a heap (an arena) of its own, and each keeps its own freed memory: the
process's memory is then every thread's fragments. Given back to the system after each chunk
(malloc_trim), every page of the next chunk is faulted in and zeroed again by the kernel (a
third of a night's CPU time went there). So the process keeps one heap for every thread
(`one_heap`, at start), and memory is given back only when what that heap holds free is more
than `SLACK` (`give_back_memory`, between chunks): the next chunk reuses it, and a run's peak is
still one chunk's work plus that slack, however long the file.

Arrow's buffers (the chunks read, their columns, the report's lines) are the most of a chunk's
memory, and come and go chunk after chunk: they go to jemalloc where pyarrow has it
(`arrow_pool`), whose memory freed is reused by the next chunk and given back to the system
`DECAY_MS` after it was last used, not faulted in again every chunk (a 5M-row first night:
610,000 to 790,000 page faults with glibc's heap alone, about 100,000 with jemalloc; the dry run 70,000)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as arrow

#: what the heap may hold free between chunks before it is given back to the system
SLACK = 64 << 20
#: how long jemalloc keeps memory freed before it gives it back (a chunk's worth of time: the
#: next chunks reuse it; longer, and a night's peak grows with what it holds)
DECAY_MS = 250
_M_ARENA_MAX = -8


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc's, or not glibc
    except (OSError, AttributeError):
        return None
    info = getattr(libc, "mallinfo2", None)  # glibc 2.33 and later
    if info is not None:
        info.restype = _MallInfo2
    return libc


def one_heap() -> None:
    """Every thread of the process allocates from one heap (before threads start)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, 1)


def free_in_heap() -> int | None:
    """What the C allocator holds free (bytes), where it says."""
    libc = _libc()
    info = getattr(libc, "mallinfo2", None) if libc is not None else None
    return int(info().fordblks) if info is not None else None


def give_back_memory() -> None:
    """Memory freed but kept by the C allocator (Arrow's system pool, NumPy) given back to the
    system between chunks, when it holds more than SLACK free (always, where it does not say)."""
    libc = _libc()
    if libc is None:
        return
    free = free_in_heap()
    if free is None or free > SLACK:
        libc.malloc_trim(0)


def arrow_pool() -> arrow.MemoryPool:
    """The allocator of Arrow's buffers while a run reads its files: jemalloc where this pyarrow
    has it, else the system's (glibc's heap, given back between chunks as above)."""
    import pyarrow as arrow  # not at import: `etl --help` and `etl status` load no Arrow

    try:
        pool = arrow.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it (Windows)
        return arrow.system_memory_pool()
    arrow.jemalloc_set_decay_ms(DECAY_MS)
    return pool
