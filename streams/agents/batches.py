"""The agents' loop: events a batch at a time, the batch processed whole under the processing lock.

Faust's per-event machinery (an asyncio hand-off per event, and here the processing lock
each event took) cost more than the decisions themselves. A batch is what the consumer
has delivered, up to ``DISTILL_BATCH_SIZE`` events or ``DISTILL_BATCH_WAIT`` seconds. A
transaction commit takes the same lock, so it never splits a batch; Faust acks the batch's
events once it is processed.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from faust.types import EventT

from streams.app import Pipeline
from streams.skip_guard import check_first_delivery


async def process_batches(pipeline: Pipeline, stream, handle: Callable[[Sequence[EventT]], Awaitable[None]]) -> None:
    settings, progress = pipeline.settings, pipeline.progress
    async def process(events: Sequence[EventT]) -> None:
        async with pipeline.processing_lock:
            for event in events:
                await check_first_delivery(pipeline, event)
            await handle(events)
            await pipeline.outbox.flush()

    async for events in stream.take_events(settings.batch_size, within=settings.batch_wait):
        # Shielded: a worker stopping cancels its agents, and Faust then acks the batch it had
        # handed over; cut short, the last commit would take the batch's offsets without all of
        # its outputs. The commit waits for the processing lock, so it sees the batch whole.
        await asyncio.shield(process(events))
        for event in events:
            progress.processed(event.message.tp, event.message.offset)
