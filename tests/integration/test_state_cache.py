"""The write-behind state cache on a real worker's tables: reads see writes at once; the
RocksDB store and the changelog topic on the broker get them once a flush (at-least-once, so
the flush sends through Faust's producer; exactly-once it joins the transaction, covered by
the worker tests)."""

import pytest
from aiokafka.admin import NewTopic

from streams.broker import kafka_io
from streams.faust_app.build import build_pipeline
from streams.faust_app.tables import changelog_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
async def pipeline(make_settings):
    settings = make_settings(processing_guarantee="at_least_once")
    changelog = changelog_topic(settings, "runs")
    async with kafka_io.started(kafka_io.admin(settings)) as admin:
        await admin.create_topics([NewTopic(changelog, settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})])
    pipeline = build_pipeline(settings)
    yield pipeline
    await pipeline.app.producer.stop()
    for db in pipeline.tables.runs.data._dbs.values():
        db.close()


async def changelog_rows(pipeline) -> list[tuple[int, bytes, bytes | None]]:
    await pipeline.app.producer.flush()
    name = changelog_topic(pipeline.settings, "runs")
    return [(m.partition, m.key, m.value) async for m in kafka_io.read_topic(pipeline.settings, name)]


def stored(pipeline, partition: int) -> dict[bytes, bytes]:
    return {k: v for k, v in pipeline.tables.runs.data._db_for_partition(partition).items() if not k.startswith(b"__faust")}


async def test_reads_see_writes_before_the_flush_and_the_store_only_after_it(pipeline):
    cache = pipeline.state
    cache.set("runs", 1, b"a", b"1")
    cache.set("runs", 1, b"a", b"2")
    assert cache.get("runs", 1, b"a") == b"2" and stored(pipeline, 1) == {}
    assert await cache.flush() == 1
    assert stored(pipeline, 1) == {b"a": b"2"}
    assert await changelog_rows(pipeline) == [(1, b"a", b"2")]
    assert cache.get("runs", 1, b"a") == b"2" and cache.get("runs", 0, b"a") is None


async def test_a_key_set_and_deleted_between_two_commits_never_reaches_the_changelog(pipeline):
    cache = pipeline.state
    cache.set("runs", 0, b"old", b"x")
    await cache.flush()
    cache.set("runs", 0, b"new", b"1")
    cache.delete("runs", 0, b"new")
    cache.delete("runs", 0, b"old")  # stored: its tombstone must go out
    await cache.flush()
    assert await changelog_rows(pipeline) == [(0, b"old", b"x"), (0, b"old", None)]
    assert stored(pipeline, 0) == {}


async def test_objects_are_encoded_once_at_the_flush(pipeline):
    encoded = []

    def encode(value: dict) -> bytes:
        encoded.append(value)
        return repr(value).encode()

    cache = pipeline.state
    for n in range(3):
        cache.set_decoded("runs", 0, b"w", {"n": n}, encode)
        assert cache.get_decoded("runs", 0, b"w", lambda raw: None) == {"n": n}
    assert encoded == []
    await cache.flush()
    assert encoded == [{"n": 2}] and await changelog_rows(pipeline) == [(0, b"w", b"{'n': 2}")]
    assert cache.get_decoded("runs", 0, b"w", lambda raw: raw.decode()) == "{'n': 2}"


async def test_items_are_the_rows_the_next_commit_leaves_and_forget_drops_what_is_unflushed(pipeline):
    cache = pipeline.state
    for partition, key, value in [(0, b"a", b"1"), (0, b"b", b"2"), (1, b"z", b"9")]:
        cache.set("runs", partition, key, value)
    await cache.flush()
    cache.set("runs", 0, b"b", b"3")
    cache.delete("runs", 0, b"a")
    cache.set("runs", 0, b"c", b"4")
    assert list(cache.items("runs", 0)) == [(b"b", b"3"), (b"c", b"4")]
    assert list(cache.all_items("runs")) == [(b"b", b"3"), (b"c", b"4"), (b"z", b"9")]
    cache.forget()
    assert list(cache.items("runs", 0)) == [(b"a", b"1"), (b"b", b"2")]
