"""The write-behind state cache over the agent tests' in-memory store (``memory://``, one dict
for every partition, no broker behind it); on a worker's RocksDB tables and the broker:
tests/integration/test_state_cache.py."""

import asyncio

from streams.faust_app.build import build_pipeline
from streams.settings import DistillSettings


def test_the_agent_tests_in_memory_store_is_one_dict_for_every_partition(tmp_path):
    settings = DistillSettings(data_dir=tmp_path, web_enabled=False, processing_guarantee="at_least_once")
    pipeline = build_pipeline(settings, broker="kafka://127.0.0.1:1", store="memory://")
    memory = pipeline.tables.runs.data
    memory.data[b"a"] = b"1"
    cache = pipeline.state
    cache.set("runs", 1, b"b", b"2")
    assert sorted(cache.all_items("runs")) == [(b"a", b"1"), (b"b", b"2")]
    assert asyncio.run(cache.flush()) == 1 and dict(memory.data) == {b"a": b"1", b"b": b"2"}
    assert pipeline.outbox.size == 0
