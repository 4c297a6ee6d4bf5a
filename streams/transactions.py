"""Making Faust's exactly-once commit what it claims: an event's effects commit with its offset.

Faust's ``TransactionManager.commit`` sends the consumed offsets and commits while
(1) table changelog writes of already processed events may still wait in Faust's
producer buffer, to slip into the *next* transaction, and (2) an event may be half
processed, its first outputs already in the transaction. A crash between two commits
then loses a state change whose offset was committed (seen in our SIGKILL test: runs
whose evidence never took effect), or repeats outputs. Here every event is processed
under ``Pipeline.processing_lock``, and a commit takes the same lock and drains the
buffer first, so a transaction holds whole events and all of their effects.

Faust's own ``ProducerBuffer.flush`` is not a drain: it returns when a message takes
more than 0.1 s, and it counts a message as sent once it has left the queue, before it
has reached the producer. So the buffer counts the messages it is handing over, and the
drain waits until the queue is empty and none is in hand.
"""

import asyncio
import contextlib

from faust.transport.consumer import TransactionManager
from faust.transport.producer import ProducerBuffer

_faust_commit = TransactionManager.commit
_faust_send_pending = ProducerBuffer._send_pending


async def _send_pending_counted(self: ProducerBuffer, fut) -> None:
    self.distill_in_hand = getattr(self, "distill_in_hand", 0) + 1
    try:
        await _faust_send_pending(self, fut)
    finally:
        self.distill_in_hand -= 1


async def drain(buffer: ProducerBuffer) -> None:
    """Return once every message put in the buffer has been handed to the producer."""
    while buffer.size or getattr(buffer, "distill_in_hand", 0):
        if buffer.should_stop:
            raise RuntimeError("the producer stopped with table changes unsent; the transaction must abort")
        buffer.message_sent.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(buffer.message_sent.wait(), timeout=1.0)


async def _commit_whole_events(self, offsets, start_new_transaction: bool = True) -> bool:
    lock: asyncio.Lock | None = getattr(self.app, "distill_processing_lock", None)
    if lock is None:
        return await _faust_commit(self, offsets, start_new_transaction=start_new_transaction)
    async with lock:
        await drain(self.app.producer.buffer)
        return await _faust_commit(self, offsets, start_new_transaction=start_new_transaction)


def install(app, lock: asyncio.Lock) -> None:
    """Route this app's transaction commits through the processing lock and a full drain."""
    app.distill_processing_lock = lock
    TransactionManager.commit = _commit_whole_events
    ProducerBuffer._send_pending = _send_pending_counted
