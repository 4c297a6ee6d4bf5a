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
import gc

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


# Python's cyclic collector runs its youngest generation every 700 net allocations of container
# objects, and each of those collections walks every young object still alive: here most of
# them are records decoded for the batch at hand and rows waiting in the state cache for the
# commit, which refcounting frees anyway, and the old ones were walked again and again by
# full collections. Measured (100,000 runs, one worker, exactly-once): 11.4 s of 146 CPU-s
# in collections (69 full ones, ~100 ms each); with these thresholds 2.1 s of 132.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_garbage_collector() -> None:
    """Collect cycles less often: the worker makes few of them and allocates a lot."""
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_startup_objects() -> None:
    """Move what start-up made (modules, classes, the app, its rules and index) out of the
    collector's sight: it lives as long as the worker, and every full collection walked it again."""
    gc.collect()
    gc.freeze()


def register(app: faust.App, interval: float) -> None:
    """Release free memory every ``interval`` seconds (0: never).

    In a thread: a trim takes up to ~40 ms with 150 MiB of arenas (measured), and the
    event loop goes on meanwhile."""
    if not interval:
        return

    @app.timer(interval=interval)
    async def release_freed_memory() -> None:
        await asyncio.to_thread(release_free_memory)
