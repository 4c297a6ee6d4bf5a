"""The outbox: a commit interval's messages, kept per transactional producer in the order added,
then grouped per partition. Sending them is tested on the real broker
(tests/integration/test_outbox_send.py)."""

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.broker.kafka_io import default_partition, default_partitions
from streams.faust_app.outbox import Outbox, producer_of, records_per_partition


def no_producers() -> dict:
    return {}


async def no_partition_count(topic: str) -> int:
    raise AssertionError(f"no partition count asked for in this test ({topic})")


def outbox() -> Outbox:
    return Outbox(lambda source: f"app-0-{source.partition}", no_producers, no_partition_count)


def test_messages_wait_per_source_partitions_producer_in_the_order_added():
    box = outbox()
    box.add(TP("in", 0), "out", b"k1", b"a", partition=2)
    box.add(TP("in", 1), "out", b"k2", b"b", partition=2)
    box.add(TP("in", 0), "out", b"k3", None, [("h", b"1")], partition=2)
    assert box.size == 3
    assert box.take() == {
        "app-0-0": [("out", 2, b"k1", b"a", None), ("out", 2, b"k3", None, [("h", b"1")])],
        "app-0-1": [("out", 2, b"k2", b"b", None)],
    }
    assert box.size == 0 and box.take() == {}


def test_one_producers_messages_keep_their_order_whatever_input_topic_they_came_from():
    """The evidence and the scores agents of a partition share its producer: a watermark the
    scores agent queued after the evidence agent's candidates must reach pairing after them."""
    box = outbox()
    box.add(TP("evidence", 0), "pair-candidates", b"candidates", b"first", partition=1)
    box.add(TP("scores", 0), "pair-candidates", b"watermark", b"second", partition=1)
    box.add(TP("evidence", 0), "pair-candidates", b"candidates", b"third", partition=1)
    assert records_per_partition(box.take(), {}) == {
        ("app-0-0", "pair-candidates", 1): [(b"candidates", b"first", None), (b"watermark", b"second", None),
                                            (b"candidates", b"third", None)]}


def test_a_rebalance_forgets_what_waits():
    box = outbox()
    box.add(TP("in", 0), "out", b"k", b"v", partition=0)
    box.forget()
    assert box.size == 0 and box.take() == {}


def test_records_go_per_partition_and_a_key_without_partition_by_the_default_partitioner():
    queued = {"tx0": [("out", 2, b"k1", b"a", None), ("samples", None, b"sample-id", b"c", None),
                      ("out", 2, b"k3", b"d", None)],
              "tx1": [("out", 2, b"k2", b"b", None)]}
    assert records_per_partition(queued, {"samples": 3}) == {
        ("tx0", "out", 2): [(b"k1", b"a", None), (b"k3", b"d", None)],
        ("tx0", "samples", default_partition(b"sample-id", 3)): [(b"sample-id", b"c", None)],
        ("tx1", "out", 2): [(b"k2", b"b", None)],
    }


def test_a_message_with_neither_key_nor_partition_is_refused():
    with pytest.raises(ValueError, match="neither a key nor a partition"):
        records_per_partition({"tx0": [("samples", None, None, b"v", None)]}, {"samples": 3})


def test_a_partition_this_worker_lost_has_no_producer_and_says_so():
    with pytest.raises(RuntimeError, match="app-0-7.*not this worker's any more"):
        producer_of({}, "app-0-7")


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas_as_aiokafka_computes_it(key):
    # 2^31 partitions: the partition is the whole of the hash's 31 bits that Kafka uses
    assert default_partition(key, 2**31) == aiokafka_murmur2(key) & 0x7FFFFFFF


@given(st.lists(st.binary(max_size=80), max_size=40), st.integers(1, 12))
def test_keys_partitioned_together_go_where_each_alone_goes(keys, partitions):
    assert default_partitions(keys, partitions) == [default_partition(key, partitions) for key in keys]
