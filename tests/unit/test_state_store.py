"""The worker's RocksDB memory: one limit for every table partition of the process."""

import os

import pytest

from streams import state_store
from streams.app import build_pipeline
from streams.settings import DistillSettings

LIMIT_MIB = 16


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_tables_share_one_memory_limit_however_much_they_hold(tmp_path, guarantee):
    settings = DistillSettings(data_dir=tmp_path, processing_guarantee=guarantee, state_memory_mib=LIMIT_MIB,
                               web_enabled=False)
    pipeline = build_pipeline(settings)
    stores = [pipeline.tables.runs.data, pipeline.tables.pair_windows.data]
    databases = [store._db_for_partition(partition) for store in stores for partition in (0, 1)]
    for n, db in enumerate(databases):  # 4 x 30 MiB: Faust's own options kept it all in memtables
        for i in range(20_000):
            db[b"%d-%d" % (n, i)] = os.urandom(1500)
    cache, write_buffers = state_store._shared_memory(LIMIT_MIB * state_store.MIB)
    # Both limits are soft: flushes run in the background after the write buffer manager asks
    # for them, and the cache's capacity is not strict. Without the shared limit: 28 MiB here.
    soft_limit = 1.25 * LIMIT_MIB * state_store.MIB
    memtables = sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in databases)
    assert write_buffers.get_buffer_size() == LIMIT_MIB * state_store.MIB // 2
    assert memtables <= soft_limit
    assert cache.get_usage() <= soft_limit
    assert all(len(db[b"%d-19999" % n]) == 1500 for n, db in enumerate(databases))
