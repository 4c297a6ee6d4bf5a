"""Messages of a commit interval, sent as producer batches in the transaction of their source partition.

Under exactly-once each output used to go through Faust's producer and aiokafka's ``send``
one by one (a future, a partitioner call and an accumulator append per message). Here the
messages the batches decide (samples, quarantine records, candidates, and at a commit the
state cache's changelog rows) wait until the commit (``streams.agents.batches``), are
grouped by (source partition, topic, partition) and handed to the source partition's
transactional producer as whole record batches. Order is kept where Kafka keeps it:
within one producer and one partition, in the order added.

They used to be sent at the end of each batch. Waiting for the commit changes nothing a
reader sees (read_committed, it sees them at the commit either way) and sends fewer,
bigger requests; measured on 20,000 runs, in one sitting, it also left fewer run rows
split over two commits: 4.9-5.0 produced messages a run became 4.3-4.6.
"""

import asyncio
from collections import defaultdict

import faust
from faust.types import TP

from streams.kafka_io import default_partition

Headers = list[tuple[str, bytes]] | None


class Outbox:
    """Messages waiting for the commit, per producer and partition."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._messages: dict[tuple[TP, str, int | None], list[tuple[bytes | None, bytes | None, Headers]]] = (
            defaultdict(list))
        self._partition_counts: dict[str, int] = {}

    def add(self, source: TP, topic: str, key: bytes | None, value: bytes | None,
            headers: Headers = None, partition: int | None = None) -> None:
        """Queue one message; ``partition`` None: Kafka's default partitioner of ``key``."""
        self._messages[source, topic, partition].append((key, value, headers))
        self.size += 1

    size = 0  # messages queued

    def forget(self, *_args, **_kwargs) -> None:
        """A rebalance aborts the open transactions: what waits here belongs to them."""
        self._messages.clear()
        self.size = 0

    async def flush(self) -> int:
        """Hand every queued message to its producer, in order; returns how many."""
        queued, self._messages, self.size = self._messages, defaultdict(list), 0
        by_partition: dict[tuple[TP, str, int], list] = defaultdict(list)
        for (source, topic, partition), messages in queued.items():
            for key, value, headers in messages:
                target = partition if partition is not None else await self._partition_of(topic, key)
                by_partition[source, topic, target].append((key, value, headers))
        # One partition's batches in order; the partitions side by side, since a batch waits
        # until the partition's previous one has left for the broker.
        await asyncio.gather(*(self._send(self._producer_of(source), topic, partition, messages)
                               for (source, topic, partition), messages in by_partition.items()))
        return sum(len(messages) for messages in by_partition.values())

    @staticmethod
    async def _send(producer, topic: str, partition: int, messages: list) -> None:
        batch = producer.create_batch()
        for key, value, headers in messages:
            if batch.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
                await producer.send_batch(batch, topic, partition=partition)
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers or [])
        await producer.send_batch(batch, topic, partition=partition)

    async def _partition_of(self, topic: str, key: bytes | None) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            producer = self._app.consumer.transactions.producer._ensure_producer()
            count = self._partition_counts[topic] = len(await producer.partitions_for(topic))
        if key is None:
            raise ValueError(f"a message for {topic} has neither a key nor a partition")
        return default_partition(key, count)

    def _producer_of(self, source: TP):
        """The aiokafka producer of the transaction Faust keeps for ``source``'s partition."""
        app = self._app
        transactional_id = f"{app.conf.id}-{app.assignor.group_for_topic(source.topic)}-{source.partition}"
        producer = app.consumer.transactions.producer._transaction_producers.get(transactional_id)
        if producer is None:
            raise RuntimeError(f"no transactional producer for {transactional_id}: the partition is not "
                               "this worker's any more; its transaction is aborted and its events are read again")
        return producer
