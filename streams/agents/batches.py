"""The agents' loop: events a batch at a time, the batch processed whole under the processing lock.

Faust's per-event machinery (an asyncio hand-off per event, and here the processing lock
each event took) cost more than the decisions themselves. A batch is what the consumer
has delivered, up to ``DISTILL_BATCH_SIZE`` events or ``DISTILL_BATCH_WAIT`` seconds. A
transaction commit takes the same lock, so it never splits a batch, and the batch's events
are acked before the lock is let go, so a commit has a batch's offsets exactly when it has
its outputs.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from faust.types import EventT

from streams.app import Pipeline
from streams.skip_guard import check_first_delivery

OUTBOX_FULL = 5000  # messages (~1.5 KB each): a few commit intervals' outputs at full speed


async def process_batches(pipeline: Pipeline, stream, handle: Callable[[Sequence[EventT]], Awaitable[None]]) -> None:
    settings, progress = pipeline.settings, pipeline.progress
    async def process(events: Sequence[EventT]) -> None:
        async with pipeline.processing_lock:
            for event in events:
                await check_first_delivery(pipeline, event)
            await handle(events)
            # The outputs wait for the commit, which sends them (they are seen only once it
            # commits anyway) in fewer, bigger produce requests, unless so many wait that
            # memory would grow.
            if pipeline.outbox.size >= OUTBOX_FULL:
                await pipeline.outbox.flush()
            # Acked here, under the lock: take_events acks only once the loop asks for the next
            # batch, and a commit that took the lock in between sent the batch's outputs without
            # its offsets (a crash then read it again: its input quarantine records twice).
            for event in events:
                event.ack()

    async for events in stream.take_events(settings.batch_size, within=settings.batch_wait):
        # Shielded: a worker stopping cancels its agents, and Faust then acks the batch it had
        # handed over; cut short, the last commit would take the batch's offsets without all of
        # its outputs. The commit waits for the processing lock, so it sees the batch whole.
        await asyncio.shield(process(events))
        for event in events:
            progress.processed(event.message.tp, event.message.offset)
