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

from streams.faust_app.pipeline import Pipeline
from streams.faust_fixes import transactions
from streams.faust_fixes.skip_guard import check_first_delivery

OUTBOX_FULL = 5000  # messages (~1.5 KB each): a few commit intervals' outputs at full speed
# Table rows waiting for the flush: a few commit intervals' worth at full speed (a row
# written again counts once: counting every write split a run's two row writes over two
# flushes, 4.55 -> 5.01 messages a run). A day's pair windows all close at one watermark (a
# window is a task's day): a 1,000,000-run replay closed ~80,000 windows of ~10 KB in one
# batch (~4 runs and their texts each), held them and their pairs for the commit and
# peaked at 4 GiB.
STATE_FULL = 5_000


async def process_batches(pipeline: Pipeline, stream, handle: Callable[[Sequence[EventT]], Awaitable[None]]) -> None:
    settings, progress = pipeline.settings, pipeline.progress
    async def process(events: Sequence[EventT]) -> None:
        async with pipeline.processing_lock:
            for event in events:
                await check_first_delivery(pipeline, event)
            await handle(events)
            await spill_when_full(pipeline)
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


async def spill_when_full(pipeline: Pipeline) -> None:
    """Send what waits for the commit early when so much waits that memory would grow.

    Table changes and outputs wait for the commit, which sends them (a read_committed
    reader sees them only once it commits anyway) in fewer, bigger produce requests, and a
    row written again before it writes it once. Sent early, they join the same open
    transaction: the store is rebuilt from the committed changelog after any abort. While a
    commit's round trips run, the batches go on without the transaction: a spill waits."""
    spill_state, spill_outbox = pipeline.state.rows >= STATE_FULL, pipeline.outbox.size >= OUTBOX_FULL
    if spill_state or spill_outbox:
        await transactions.sendable(pipeline.app)
    if spill_state:
        await pipeline.state.flush()
    if spill_outbox:
        await pipeline.outbox.flush()
