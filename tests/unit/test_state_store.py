"""The worker's RocksDB memory: one limit for every table partition of the process."""

import os
import time

import pytest

from streams.faust_app.build import build_pipeline
from streams.faust_fixes import state_store
from streams.settings import DistillSettings

LIMIT_MIB = 16


@pytest.fixture(autouse=True)
def own_memory_limit():
    """The limit is one per process (cached); each test measures a cache of its own, not one
    still charged with the databases of the test before it."""
    state_store._shared_memory.cache_clear()
    yield
    state_store._shared_memory.cache_clear()


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_tables_share_one_memory_limit_however_much_they_hold(tmp_path, guarantee):
    settings = DistillSettings(data_dir=tmp_path, processing_guarantee=guarantee, state_memory_mib=LIMIT_MIB,
                               web_enabled=False)
    pipeline = build_pipeline(settings)
    stores = [pipeline.tables.runs.data, pipeline.tables.pair_windows.data]
    databases = [store._db_for_partition(partition) for store in stores for partition in (0, 1)]
    for n, db in enumerate(databases):  # 4 x 30 MiB, more than the limit many times over
        for i in range(20_000):
            db[b"%d-%d" % (n, i)] = os.urandom(1500)
    cache, write_buffers = state_store._shared_memory(LIMIT_MIB * state_store.MIB)
    # Both limits are soft: flushes run in background threads after the write buffer manager
    # asks for them (on a busy machine they lag behind the writes), and the cache's capacity
    # is not strict. So: within the limit once the flushes asked for are done. Without the
    # shared limit nothing is flushed, and the memtables stay at 28 MiB here.
    soft_limit = 1.25 * LIMIT_MIB * state_store.MIB

    def memtables() -> int:
        return sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in databases)

    deadline = time.monotonic() + 60
    while max(memtables(), cache.get_usage()) > soft_limit and time.monotonic() < deadline:
        time.sleep(0.05)
    assert write_buffers.get_buffer_size() == LIMIT_MIB * state_store.MIB // 2
    assert memtables() <= soft_limit
    assert cache.get_usage() <= soft_limit
    assert all(len(db[b"%d-19999" % n]) == 1500 for n, db in enumerate(databases))
