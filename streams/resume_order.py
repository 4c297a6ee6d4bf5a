"""Closing the hole Faust opens when it resumes streams after table recovery.

In faust-streaming 0.15.3, ``Recovery.on_recovery_completed`` resumes the stream
partitions and then awaits ``perform_seek`` (a broker round trip) while the consumer's
flow is still active from reading the changelogs. In that window the fetch loop
delivers stream messages into the agents' queues and moves its read offset past them;
the ``flow_control.resume()`` that follows clears those queues, and the re-fetch from
the committed offset drops the same messages as already read ("DROPPED MESSAGE ROFF").
Those messages are never processed, and since they are never acked, the partition's
commit stalls below them. Seen after SIGKILL restarts and rebalances as a partition
delivered from 4-17 (once 341) offsets past its committed offset.

Stopping the flow first closes the window: nothing is fetched for the streams until
the seek has set the read offsets, the queues have been cleared and Faust resumes the
flow itself. ``streams.skip_guard`` stays as the check that this holds.
"""

from faust.tables.recovery import Recovery

_faust_on_recovery_completed = Recovery.on_recovery_completed


async def _on_recovery_completed_flow_stopped(self: Recovery, generation_id: int = 0) -> None:
    self.app.consumer.stop_flow()
    await _faust_on_recovery_completed(self, generation_id)


def install() -> None:
    Recovery.on_recovery_completed = _on_recovery_completed_flow_stopped
