"""A check that no partition starts past its committed offset.

With faust-streaming 0.15.3, a restarted or rebalanced worker sometimes delivered a
partition hundreds of offsets after the group's committed offset (137 -> 215, 129 -> 470),
the messages between were never processed, and the partition's commit stalled below them.
``streams.faust_fixes.resume_order`` removes the cause; this check stays because a skipped message is
a lost sample. The first event of each partition after an assignment is compared with the
committed offset; when real messages lie between, nothing is processed and the worker
restarts itself (``streams.commands.worker``), which seeks to the committed offset and reads in
order again.
"""

from aiokafka import TopicPartition
from faust.types import EventT

from streams.broker import kafka_io
from streams.faust_fixes.running_worker import RunningWorker


class SkippedMessages(RuntimeError):
    """The consumer delivered a partition past unread messages; the worker must restart."""


async def check_first_delivery(pipeline: RunningWorker, event: EventT) -> None:
    message = event.message
    if message.tp in pipeline.delivery_checked:
        return
    pipeline.delivery_checked.add(message.tp)
    # No committed offset (Faust keeps None for 0 too): the partition must start at its beginning.
    committed = pipeline.app.consumer._committed_offset.get(message.tp) or 0
    if message.offset <= committed:
        return
    tp = TopicPartition(message.topic, message.partition)
    if await kafka_io.has_messages_between(pipeline.settings, tp, committed, message.offset):
        pipeline.restart_reason = SkippedMessages(
            f"{message.topic}[{message.partition}] was delivered from offset {message.offset}, but the "
            f"group's committed offset is {committed or 'none'}: the messages between were skipped. Restarting."
        )
        raise pipeline.restart_reason
