"""Making Faust's exactly-once commit what it claims: an event's effects commit with its offset.

Faust's ``TransactionManager.commit`` sends the consumed offsets and commits while
(1) table changelog writes of already processed events may still wait in Faust's
producer buffer, to slip into the *next* transaction, and (2) an event may be half
processed, its first outputs already in the transaction. A crash between two commits
then loses a state change whose offset was committed (seen in our SIGKILL test: runs
whose evidence never took effect), or repeats outputs. Here every event is processed
under ``Pipeline.processing_lock``, and a commit takes the same lock and drains the
buffer first, so a transaction holds whole events and all of their effects.
"""

import asyncio

from faust.transport.consumer import TransactionManager

_faust_commit = TransactionManager.commit


async def _commit_whole_events(self, offsets, start_new_transaction: bool = True) -> bool:
    lock: asyncio.Lock | None = getattr(self.app, "distill_processing_lock", None)
    if lock is None:
        return await _faust_commit(self, offsets, start_new_transaction=start_new_transaction)
    async with lock:
        await self.app.producer.buffer.flush()
        return await _faust_commit(self, offsets, start_new_transaction=start_new_transaction)


def install(app, lock: asyncio.Lock) -> None:
    """Route this app's transaction commits through the processing lock."""
    app.distill_processing_lock = lock
    TransactionManager.commit = _commit_whole_events
