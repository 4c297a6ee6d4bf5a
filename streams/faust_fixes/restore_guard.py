"""A check that a restore read every committed change of the tables it rebuilt.

Faust ends a restore partly by judgement: once nothing has arrived for two 5-s waits and
the consumer's position has reached a partition's highwater, the rest counts as aborted
transactions ("Aborted tx until highwater"). The count of those waits lives as long as the
worker and only a changelog event resets it, so in a survivor that processed streams for
minutes the first wait that ends just after its next restore begins makes the judgement at
once: small partitions are already fetched to their highwater, their records still on the
way to the recovery queue, and those records are then dropped as already seen. The restore
has applied nothing of whole partitions (seen: ``open_windows[2]``, 353 committed changes
between 0 and 355), and the windows it did not restore stay open for good, with nothing to
say so: the worker's own view has nothing to close (docs/exactly-once.md, item 12).

So, after every restore and before the streams resume, the changelog offsets between what
each partition's restore applied and its highwater are read; where a committed change lies
there, the worker restarts itself (``streams.commands.worker``): a new process starts that count at
zero and restores completely."""

import logging

from aiokafka import TopicPartition

from streams.broker import kafka_io
from streams.faust_fixes.running_worker import RunningWorker

log = logging.getLogger(__name__)


class IncompleteRestore(RuntimeError):
    """Committed table changes were not restored; the worker must restart."""


def unread_ranges(restored_to: dict, highwaters: dict) -> dict:
    """Offsets [next after the last applied, highwater] of each changelog partition the
    restore aimed at, where that range is not empty (Faust's highwater is the last offset
    to restore, not the end offset), as [start, stop)."""
    ranges = {}
    for tp, highwater in highwaters.items():
        start = restored_to.get(tp, -1) + 1
        if highwater is not None and highwater >= start:
            ranges[tp] = (start, highwater + 1)
    return ranges


async def check_restore_complete(pipeline: RunningWorker) -> None:
    tables = pipeline.app.tables
    restored_to: dict = {}
    for table in tables.values():
        restored_to.update(getattr(table.data, "restored_to", {}))
    ranges = unread_ranges(restored_to, dict(tables.recovery.active_highwaters))
    unread = await kafka_io.messages_between(
        pipeline.settings, {TopicPartition(tp.topic, tp.partition): span for tp, span in ranges.items()}
    )
    if unread:
        pipeline.restart_reason = IncompleteRestore(
            "the table restore ended before committed changes: " + ", ".join(
                f"{tp.topic}[{tp.partition}] {n} between {ranges[tp][0]} and {ranges[tp][1]}"
                for tp, n in sorted(unread.items())
            ) + ". Restarting to restore again."
        )
        raise pipeline.restart_reason


def register(pipeline: RunningWorker) -> None:
    """Run the check when a restore completes (Faust awaits it before resuming the streams)."""
    async def on_rebalance_complete(*_args, **_kwargs) -> None:
        await check_restore_complete(pipeline)

    pipeline.app.on_rebalance_complete.connect(on_rebalance_complete)
