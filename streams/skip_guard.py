"""A guard against Faust starting a partition past its committed offset.

Seen with faust-streaming 0.15.3 under exactly-once, after a SIGKILL: the restarted
worker's first event of a partition came hundreds of offsets after the group's committed
offset (137 -> 215, 129 -> 470), the messages between were never delivered, and since
Faust's own gap tracking did not register the hole, it never committed that partition
again (the worker looked stalled; a later restart would have processed the skipped
messages after newer ones). So the first event of each partition after an assignment is
checked against the committed offset; when real messages lie between, nothing is
processed and the worker restarts itself (``streams.worker``), which seeks to the
committed offset again and reads in order.
"""

from aiokafka import TopicPartition
from faust.types import EventT

from streams import kafka_io
from streams.app import Pipeline


class SkippedMessages(RuntimeError):
    """The consumer delivered a partition past unread messages; the worker must restart."""


async def check_first_delivery(pipeline: Pipeline, event: EventT) -> None:
    message = event.message
    if message.tp in pipeline.delivery_checked:
        return
    pipeline.delivery_checked.add(message.tp)
    committed = pipeline.app.consumer._committed_offset.get(message.tp)
    if committed is None or message.offset <= committed:
        return
    tp = TopicPartition(message.topic, message.partition)
    if await kafka_io.has_messages_between(pipeline.settings, tp, committed, message.offset):
        pipeline.restart_reason = SkippedMessages(
            f"{message.topic}[{message.partition}] was delivered from offset {message.offset}, but the "
            f"group's committed offset is {committed}: the messages between were skipped. Restarting."
        )
        raise pipeline.restart_reason
