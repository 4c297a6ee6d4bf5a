"""Freed memory goes back to the system (streams/faust_app/memory.py)."""

import gc
import os
import weakref

import pytest

from streams.faust_app import memory
from streams.faust_app.build import build_pipeline
from streams.settings import DistillSettings

MIB = 1024 * 1024


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the RSS from /proc")
def test_memory_freed_between_live_blocks_goes_back_to_the_system():
    if not memory.release_free_memory():
        pytest.skip("this C library has no malloc_trim")
    # 2 KiB objects come from malloc (Python's own allocator takes only up to 512 bytes);
    # keeping every 16th leaves the freed ones scattered where malloc cannot return them.
    blocks = [bytes(2048) for _ in range(64 * MIB // 2048)]
    kept = blocks[::16]
    del blocks
    before = resident_bytes()
    assert memory.release_free_memory()
    released = before - resident_bytes()
    assert released > 32 * MIB, f"released {released / MIB:.1f} MiB of ~60 MiB freed"
    assert len(kept) == 64 * MIB // 2048 // 16


@pytest.mark.parametrize("interval, timers", [(10.0, 1), (0.0, 0)])
def test_the_worker_releases_freed_memory_on_a_timer_unless_told_not_to(tmp_path, interval, timers):
    settings = DistillSettings(data_dir=tmp_path, memory_trim_interval=interval, web_enabled=False)
    app = build_pipeline(settings).app
    names = [task.__name__ for task in app._app_tasks]
    assert names.count("release_freed_memory") == timers


def test_the_worker_collects_cycles_less_often_and_still_collects_them():
    before = gc.get_threshold()
    try:
        memory.tune_garbage_collector()
        assert gc.get_threshold() == memory.GC_THRESHOLDS
        gc.collect()
        watched = weakref.ref(Cycle())
        assert watched() is not None  # a cycle: refcounting alone does not free it
        kept = [[] for _ in range(2 * memory.GC_THRESHOLDS[0])]  # allocations enough for a collection
        assert watched() is None and kept
    finally:
        gc.set_threshold(*before)


class Cycle:
    def __init__(self) -> None:
        self.me = self
