"""The outbox: a batch's messages, grouped per producer and partition, in the order added."""

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.kafka_io import default_partition, murmur2
from streams.outbox import Outbox


class FakeBatch:
    def __init__(self, room: int) -> None:
        self.records, self.room = [], room

    def append(self, *, key, value, timestamp, headers):
        if len(self.records) == self.room:
            return None
        self.records.append((key, value, headers))
        return object()


class FakeProducer:
    def __init__(self, name: str, sent: list, room: int = 100) -> None:
        self.name, self.sent, self.room = name, sent, room

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.room)

    async def send_batch(self, batch, topic, *, partition):
        self.sent.append((self.name, topic, partition, batch.records))

    async def partitions_for(self, topic):
        return {0, 1, 2}


def outbox_with(room: int = 100) -> tuple[Outbox, list]:
    sent: list = []
    producers = {f"app-0-{p}": FakeProducer(f"tx{p}", sent, room) for p in (0, 1)}
    transactions = SimpleNamespace(producer=SimpleNamespace(
        _transaction_producers=producers, _ensure_producer=lambda: producers["app-0-0"]))
    app = SimpleNamespace(conf=SimpleNamespace(id="app"), assignor=SimpleNamespace(group_for_topic=lambda topic: 0),
                          consumer=SimpleNamespace(transactions=transactions))
    return Outbox(app), sent


def test_messages_go_to_their_source_partitions_producer_in_order_and_keys_by_the_default_partitioner():
    outbox, sent = outbox_with()
    source0, source1 = TP("in", 0), TP("in", 1)
    outbox.add(source0, "out", b"k1", b"a", partition=2)
    outbox.add(source1, "out", b"k2", b"b", partition=2)
    outbox.add(source0, "out", b"k3", None, [("h", b"1")], partition=2)
    outbox.add(source0, "samples", b"sample-id", b"c")
    assert asyncio.run(outbox.flush()) == 4
    assert sorted(sent) == sorted([
        ("tx0", "out", 2, [(b"k1", b"a", []), (b"k3", None, [("h", b"1")])]),
        ("tx1", "out", 2, [(b"k2", b"b", [])]),
        ("tx0", "samples", default_partition(b"sample-id", 3), [(b"sample-id", b"c", [])]),
    ])
    assert asyncio.run(outbox.flush()) == 0


def test_a_full_batch_is_sent_and_the_rest_follows_in_the_next():
    outbox, sent = outbox_with(room=2)
    for n in range(5):
        outbox.add(TP("in", 0), "out", b"k%d" % n, b"v", partition=0)
    asyncio.run(outbox.flush())
    assert [[key for key, _, _ in records] for _, _, _, records in sent] == [[b"k0", b"k1"], [b"k2", b"k3"], [b"k4"]]


def test_a_partition_this_worker_lost_has_no_producer_and_says_so():
    outbox, _ = outbox_with()
    outbox.add(TP("in", 7), "out", b"k", b"v", partition=0)
    with pytest.raises(RuntimeError, match="app-0-7"):
        asyncio.run(outbox.flush())
    outbox.add(TP("in", 7), "out", b"k", b"v", partition=0)
    outbox.forget()
    assert asyncio.run(outbox.flush()) == 0


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas_as_aiokafka_computes_it(key):
    assert murmur2(key) == aiokafka_murmur2(key)


def test_one_producers_messages_keep_their_order_whatever_input_topic_they_came_from():
    """The evidence and the scores agents of a partition share its producer: a watermark the
    scores agent queued after the evidence agent's candidates must reach pairing after them."""
    outbox, sent = outbox_with()
    outbox.add(TP("evidence", 0), "pair-candidates", b"candidates", b"first", partition=1)
    outbox.add(TP("scores", 0), "pair-candidates", b"watermark", b"second", partition=1)
    outbox.add(TP("evidence", 0), "pair-candidates", b"candidates", b"third", partition=1)
    asyncio.run(outbox.flush())
    assert sent == [("tx0", "pair-candidates", 1, [(b"candidates", b"first", []), (b"watermark", b"second", []),
                                                   (b"candidates", b"third", [])])]
