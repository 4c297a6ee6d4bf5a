"""The outbox on the real broker: records reach their partitions in the order added, across
as many record batches as the producer's batch size needs, keys where Kafka puts them."""

import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP

from streams.broker import kafka_io
from streams.broker.topics import TopicSpec
from streams.faust_app.outbox import Outbox

pytestmark = pytest.mark.integration

OUT = TopicSpec("outbox-out", "key", "delete", "input")


async def read_all(settings) -> dict[int, list[tuple[bytes, bytes, list]]]:
    by_partition: dict[int, list] = {}
    async for message in kafka_io.read_topic(settings, settings.topic(OUT.name)):
        by_partition.setdefault(message.partition, []).append(
            (message.key, message.value, [(name, bytes(value)) for name, value in message.headers]))
    return by_partition


async def test_flush_sends_every_record_in_order_and_keys_by_kafkas_partitioner(make_settings):
    settings = make_settings(partitions=3)
    topic = settings.topic(OUT.name)
    await kafka_io.ensure_topics(settings, [OUT])
    # A batch of 512 bytes holds a few of these records: the outbox must start new batches.
    async with kafka_io.started(kafka_io.producer(settings, max_batch_size=512)) as producer:
        async def partition_count(name: str) -> int:
            return len(await producer.partitions_for(name))

        box = Outbox(lambda source: "tx", lambda: {"tx": producer}, partition_count)
        for n in range(60):
            source = TP("evidence" if n % 2 else "scores", 0)
            box.add(source, topic, b"p1-%02d" % n, b"v" * 40, [("n", b"%d" % n)] if n % 3 == 0 else None, partition=1)
        keyed = [b"run-%d" % n for n in range(12)]
        for key in keyed:
            box.add(TP("scores", 0), topic, key, b"keyed")
        assert await box.flush() == 72
    by_partition = await read_all(settings)
    assert [key for key, _, _ in by_partition[1] if key.startswith(b"p1-")] == [b"p1-%02d" % n for n in range(60)]
    assert [headers for key, _, headers in by_partition[1] if key.startswith(b"p1-")] == [
        [("n", b"%d" % n)] if n % 3 == 0 else [] for n in range(60)]
    # Keyed records where aiokafka's own partitioner (as the Java client's) puts them.
    partitioner = DefaultPartitioner()
    assert {key: partition for partition, records in by_partition.items() for key, value, _ in records
            if value == b"keyed"} == {key: partitioner(key, [0, 1, 2], [0, 1, 2]) for key in keyed}
    assert sum(len(records) for records in by_partition.values()) == 72
