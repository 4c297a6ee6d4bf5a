"""Handing memory that was freed back to the system, now and then.

A worker allocates tens of MiB for a few seconds at a time and frees them again
(measured: +40 to +75 MiB of malloc's in-use bytes for 15-90 s, in both workers of a
benchmark at once, during a commit stall: ~25 MiB as a RocksDB compaction runs, the rest in
Faust's producer buffer, ~12,000 messages waiting to be sent); glibc's malloc keeps the
freed pages, scattered between live allocations where it cannot return them by itself.
Each such episode left the worker's RSS higher for good (100,000 runs: +80 MiB). A
periodic ``malloc_trim(0)`` returns every whole free page to the system, so the RSS
follows what is in use. Where the C library has no ``malloc_trim`` (not glibc), this does
nothing.
"""

import asyncio
import ctypes

import faust


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return malloc's free pages to the system; False where that cannot be done."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def register(app: faust.App, interval: float) -> None:
    """Release free memory every ``interval`` seconds (0: never).

    In a thread: a trim takes up to ~40 ms with 150 MiB of arenas (measured), and the
    event loop goes on meanwhile."""
    if not interval:
        return

    @app.timer(interval=interval)
    async def release_freed_memory() -> None:
        await asyncio.to_thread(release_free_memory)
