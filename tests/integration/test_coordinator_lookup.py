"""A coordinator lookup cut off by a closing connection (a broker shutting down) is asked again,
not fatal to the transactional producer (streams/faust_fixes/coordinator_lookup.py).

On the real broker: a transactional producer's lookup is started, and the connection it went
out on is closed while the answer is awaited, as a broker that shuts down closes it."""

import asyncio
import uuid
from contextlib import asynccontextmanager

import pytest
from aiokafka.client import CoordinationType
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaError
from aiokafka.producer.sender import Sender
from aiokafka.protocol.coordination import FindCoordinatorRequest

from streams.broker import kafka_io
from streams.faust_fixes import coordinator_lookup

pytestmark = pytest.mark.integration


def lookups_in_flight(client) -> list:
    """The connections a FindCoordinator request is in flight on."""
    return [conn for conn in client._conns.values()
            if any(getattr(request, "API_KEY", None) == FindCoordinatorRequest.API_KEY for _, request, _ in conn._requests)]


async def lookup_cut_off(producer, find_coordinator) -> int:
    """Run ``find_coordinator`` for the producer's transaction; close the connection its first
    request is in flight on; return what the lookup returns (or raise what it raises)."""
    sender = producer._sender
    # The producer's own start-up looks its coordinator up too (then asks for a producer id):
    # once that is done, the only lookup is the test's.
    async with asyncio.timeout(60):
        await producer._txn_manager.wait_for_pid()
    sender._coordinator_dead(CoordinationType.TRANSACTION)
    lookup = asyncio.create_task(find_coordinator(sender, CoordinationType.TRANSACTION, producer._txn_manager.transactional_id))
    async with asyncio.timeout(10):
        while not (in_flight := lookups_in_flight(sender.client)):
            assert not lookup.done(), f"the lookup ended before its request was in flight: {lookup!r}"
            await asyncio.sleep(0)
    for conn in in_flight:
        conn.close(reason=CloseReason.CONNECTION_BROKEN)
    async with asyncio.timeout(30):
        return await lookup


@asynccontextmanager
async def transactional_producer(settings):
    # Made in the test's own event loop (fixtures run in the session's).
    await kafka_io.ensure_topics(settings)
    producer = kafka_io.producer(settings, transactional_id=f"{settings.application_id}-{uuid.uuid4().hex[:8]}")
    async with kafka_io.started(producer):
        yield producer


async def test_aiokafka_alone_ends_the_lookup_on_a_closed_connection(make_settings):
    async with transactional_producer(make_settings()) as producer:
        with pytest.raises(KafkaError, match="closed"):
            await lookup_cut_off(producer, coordinator_lookup._aiokafka_find_coordinator)


async def test_a_lookup_cut_off_by_a_closing_connection_is_asked_again(make_settings, monkeypatch, caplog):
    settings = make_settings()
    monkeypatch.setattr(Sender, "_find_coordinator", Sender._find_coordinator)  # undone after the test
    coordinator_lookup.install()
    async with transactional_producer(settings) as producer:
        assert await lookup_cut_off(producer, Sender._find_coordinator) == 1  # the local broker's node id
        assert "asking again" in caplog.text
        # The producer still carries a transaction through to its commit.
        await producer.begin_transaction()
        await producer.send_and_wait(settings.topic("quarantine"), b"after the cut", key=b"k")
        await producer.commit_transaction()
    # The coordinator writes the commit's markers after it answered the commit: a read-committed
    # reader sees the message once they are written (on a broker just made, up to a few seconds).
    async with asyncio.timeout(30):
        while not (committed := [m.value async for m in kafka_io.read_topic(settings, settings.topic("quarantine"))]):
            await asyncio.sleep(0.1)
    assert committed == [b"after the cut"]
