"""Deliveries that wait for nothing run inline; one that waits is raced against a rebalance."""

import asyncio

import pytest
from mode import Service

from streams.faust_fixes import delivery


class Consumer(Service):
    """What ``delivery.wait_first`` reads of Faust's consumer: a service with ``suspend_flow``."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()

    async def drain_one(self, deliver) -> object:
        return await delivery.wait_first(self, deliver, self.suspend_flow.wait())


async def test_a_delivery_that_waits_for_nothing_runs_inline_without_a_task():
    consumer, tasks = Consumer(), []

    async def deliver() -> str:
        tasks.append(asyncio.current_task())
        return "delivered"

    result = await consumer.drain_one(deliver())
    assert result.results == ["delivered"]
    assert tasks == [asyncio.current_task()]


async def test_a_delivery_that_waits_goes_on_from_its_wait():
    consumer, room, steps = Consumer(), asyncio.Event(), []

    async def deliver() -> str:
        steps.append("started")
        await room.wait()
        steps.append("resumed")
        return "delivered"

    draining = asyncio.ensure_future(consumer.drain_one(deliver()))
    await asyncio.sleep(0.01)
    assert steps == ["started"] and not draining.done()
    room.set()
    assert (await draining).results == ["delivered"]
    assert steps == ["started", "resumed"]


async def test_a_waiting_delivery_is_cut_short_by_a_rebalance():
    consumer, room, cancelled = Consumer(), asyncio.Event(), []

    async def deliver() -> None:
        try:
            await room.wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    draining = asyncio.ensure_future(consumer.drain_one(deliver()))
    await asyncio.sleep(0.01)
    consumer.suspend_flow.set()
    result = await asyncio.wait_for(draining, 1)
    assert cancelled == [True] and result.results == [True]  # the suspension won


async def test_no_delivery_starts_while_the_flow_is_suspended():
    consumer, started = Consumer(), []

    async def deliver() -> None:
        started.append(True)

    consumer.suspend_flow.set()
    await consumer.drain_one(deliver())
    assert started == []


async def test_an_error_of_an_inline_delivery_reaches_the_fetcher():
    async def deliver() -> None:
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        await Consumer().drain_one(deliver())


async def test_other_waits_are_left_to_faust():
    consumer, other = Consumer(), asyncio.Event()
    other.set()

    async def work() -> str:
        return "done"

    result = await delivery.wait_first(consumer, work(), other.wait())
    assert "done" in result.results
