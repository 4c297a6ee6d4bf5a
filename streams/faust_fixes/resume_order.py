"""Closing the holes Faust opens when it resumes streams after table recovery.

1. In faust-streaming 0.15.3, ``Recovery.on_recovery_completed`` resumes the stream
partitions and then awaits ``perform_seek`` (a broker round trip) while the consumer's
flow is still active from reading the changelogs. In that window the fetch loop
delivers stream messages into the agents' queues and moves its read offset past them;
the ``flow_control.resume()`` that follows clears those queues, and the re-fetch from
the committed offset drops the same messages as already read ("DROPPED MESSAGE ROFF").
Those messages are never processed, and since they are never acked, the partition's
commit stalls below them. Seen after SIGKILL restarts and rebalances as a partition
delivered from 4-17 (once 341) offsets past its committed offset. Stopping the flow
first closes the window: nothing is fetched for the streams until the seek has set the
read offsets, the queues have been cleared and Faust resumes the flow itself.

2. ``perform_seek`` ("seek back to committed offsets", Faust's answer to every fetch it
throws away) moves nothing for a partition without a committed offset: aiokafka's
``seek_to_committed`` seeks only to offsets above 0. Messages Faust fetched and dropped
(fetched for a partition it had just paused or resumed, or while the flow was stopped)
then stay skipped. Seen when one worker of two was killed before its first commit: the
survivor took its partitions of ``pair-candidates`` and started them 1808 and 1970
offsets in, 478 candidates never reached a pair window. Such partitions are sought to
their beginning, where a partition without a commit starts (``auto_offset_reset``).

``streams.faust_fixes.skip_guard`` stays as the check that both hold.
"""

from aiokafka import TopicPartition
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer

_faust_on_recovery_completed = Recovery.on_recovery_completed
_faust_perform_seek = Consumer.perform_seek


async def _on_recovery_completed_flow_stopped(self: Recovery, generation_id: int = 0) -> None:
    self.app.consumer.stop_flow()
    await _faust_on_recovery_completed(self, generation_id)


async def _perform_seek_everywhere(self: Consumer) -> None:
    await _faust_perform_seek(self)
    changelogs = self.app.tables.changelog_topics
    uncommitted = [tp for tp in self.assignment() if tp.topic not in changelogs and not self._committed_offset.get(tp)]
    if uncommitted:  # their read offsets Faust's seek has already cleared
        await self._thread.seek_to_beginning(*(TopicPartition(tp.topic, tp.partition) for tp in uncommitted))


def install() -> None:
    Recovery.on_recovery_completed = _on_recovery_completed_flow_stopped
    Consumer.perform_seek = _perform_seek_everywhere
