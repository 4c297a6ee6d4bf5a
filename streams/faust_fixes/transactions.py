"""Making Faust's exactly-once commit what it claims: an event's effects commit with its offset.

Faust's ``TransactionManager.commit`` sends the consumed offsets and commits while
(1) table changelog writes of already processed events may still wait in Faust's
producer buffer, to slip into the *next* transaction, and (2) an event may be half
processed, its first outputs already in the transaction. A crash between two commits
then loses a state change whose offset was committed (seen in our SIGKILL test: runs
whose evidence never took effect), or repeats outputs. Here every batch of events is
processed under ``Pipeline.processing_lock`` (``streams.faust_app.agents.batches``), and a commit
takes the same lock, flushes the state cache into the transaction (``streams.faust_app.state_cache``)
and drains the buffer first, so a transaction holds whole batches and all of their effects.

Faust's own ``ProducerBuffer.flush`` is not a drain: it returns when a message takes
more than 0.1 s, and it counts a message as sent once it has left the queue, before it
has reached the producer. So the buffer counts the messages it is handing over, and the
drain waits until the queue is empty and none is in hand.

At a rebalance, every transactional producer is stopped and Faust starts a fresh one for
each partition it owns; a fresh producer's start aborts whatever its transactional id
left open. Faust keeps the open transactions of partitions it keeps, but it commits at a
revocation only partitions with new offsets, so a transaction could stay open across the
rebalance holding outputs and table changes of events past the committed offset: the
tables, restored from the committed changelog, did not know those events, they were
processed again after the seek to the committed offset, and both outputs were committed
(seen as duplicates in the two-worker test). It also keeps Faust from reusing a producer
of a partition it kept as a standby, which the partition's new owner had fenced
(``ProducerFenced`` when the partition came back).

Under transactions Faust takes a changelog partition's highwater, the end of what it must
restore, from ``last_stable_offset``: the value the consumer saw in its last fetch of that
partition, None for one not fetched since the rebalance reset it. None counts as "nothing
to restore", so after a rebalance inside a running worker the tables came back empty (seen
as pair windows that never closed once one worker of two was killed). The highwaters are
asked of the broker instead: a read_committed ListOffsets answers the last stable offset.

A transaction's first request may reach the broker while the markers of the one before are
still being written; the broker answers ``CONCURRENT_TRANSACTIONS`` and aiokafka retries
after ``retry_backoff_ms``, 100 ms by default (it waits 20 ms only for the first partition
added). A commit soon after another (``streams.faust_fixes.prompt_commit``) met it as a commit of 127 ms
among commits of 10-16 ms, and the runs behind it waited that long. The transactional
producers retry after 20 ms.

Faust's livelock check (``AIOKafkaConsumerThread.verify_event_path``) reads when each
partition was last committed from ``tp_last_committed_at``, which only the consumer's own
offset commit sets; a transaction's commit (``send_offsets_to_transaction``) never does. So
every exactly-once worker still reading a backlog 5 minutes after its start logged
``Has not committed ... at all since worker start`` as an ERROR, several times a second,
though it committed twice a second (seen in a 1,000,000-run benchmark). A transaction's
commit records its partitions there too.

Faust picks a commit's offsets before it calls the transaction manager, so the processing
lock is taken before that (``Consumer.force_commit``): taken only around the transaction,
a batch that finished while the commit waited for the lock had its effects in the
transaction and its offsets not (found by reading; a commit waited 15-24 s for the lock
while a day's pair windows closed in a 1,000,000-run replay). And the lock is let go once the transaction holds everything those
offsets cover: the round trips that commit it and begin the next (~25 ms of a ~38 ms
commit, twelve commits a second in a worker keeping up) no longer hold up the batches,
which meanwhile keep what they decide for the next commit; a batch that must spill waits
for the next transaction (``sendable``). Faust commits the transactions of a worker's
partitions one after the other (``Producer.commit_transactions``), each two to three round
trips; they are committed side by side.
"""

import asyncio
import contextlib
import logging
from time import monotonic

from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Producer
from faust.transport.producer import ProducerBuffer

_faust_force_commit = Consumer.force_commit
_faust_commit = TransactionManager.commit
_faust_on_rebalance = TransactionManager.on_rebalance
_faust_send_pending = ProducerBuffer._send_pending
_faust_settings_extra = Producer._settings_extra
_faust_commit_transactions = Producer.commit_transactions
TRANSACTION_RETRY_BACKOFF_MS = 20
logger = logging.getLogger(__name__)


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


class CommitHold:
    """The processing lock as a commit holds it: taken before Faust picks the offsets, let go
    as soon as the transaction holds every effect of the events they cover."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock
        self.held = False

    async def take(self) -> None:
        await self.lock.acquire()
        self.held = True

    def let_go(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


async def _force_commit_at_a_cut(self, topics=None, start_new_transaction: bool = True) -> bool:
    hold: CommitHold | None = getattr(self.app, "distill_commit_hold", None)
    if hold is None or not self.in_transaction:
        return await _faust_force_commit(self, topics, start_new_transaction=start_new_transaction)

    async def commit() -> bool:
        await hold.take()
        try:
            return await _faust_force_commit(self, topics, start_new_transaction=start_new_transaction)
        finally:
            hold.let_go()  # nothing to commit, or a commit that failed before it let go

    # Shielded: a stopping worker cancels its periodic commit; cut between a transaction's
    # commit and the start of the next, the worker's last commit found no transaction open
    # ("Not in the middle of a transaction") and the worker never left its group.
    return await asyncio.shield(commit())


async def _commit_whole_events(self, offsets, start_new_transaction: bool = True) -> bool:
    hold: CommitHold | None = getattr(self.app, "distill_commit_hold", None)
    if hold is None:
        return await _faust_commit(self, offsets, start_new_transaction=start_new_transaction)
    if not hold.held:
        raise RuntimeError("a transaction commit that does not hold the processing lock: "
                           "only Consumer.force_commit may commit (streams/faust_fixes/transactions.py)")
    if getattr(self.app, "distill_transactions_ended", False):
        # A commit that ended every transaction (a stopping worker's last, or a
        # revocation's) leaves none open until a rebalance starts fresh ones: a timer's
        # commit that waited for the lock meanwhile crashed the worker on its way out.
        return False
    await self.app.distill_state_cache.flush()
    await drain(self.app.producer.buffer)
    sendable: asyncio.Event = self.app.distill_sendable
    sendable.clear()
    hold.let_go()
    try:
        committed = await _faust_commit(self, offsets, start_new_transaction=start_new_transaction)
    finally:
        sendable.set()
    if committed:
        self.consumer._thread.tp_last_committed_at.update(dict.fromkeys(offsets, monotonic()))
    if not start_new_transaction:
        self.app.distill_transactions_ended = True
    return committed


async def _commit_transactions_side_by_side(self: Producer, tid_to_offset_map, group_id: str,
                                            start_new_transaction: bool = True) -> None:
    async def commit_one(transactional_id: str, offsets) -> None:
        async with self._trn_locks[transactional_id]:
            producer = self._transaction_producers.get(transactional_id)
            if producer is None:
                # Faust's own answer: the partition left this worker, its transaction with it.
                logger.warning("Commit invoked for unknown transaction %s", transactional_id)
                return
            await producer.send_offsets_to_transaction(offsets, group_id)
            await producer.commit_transaction()
            if start_new_transaction:
                await producer.begin_transaction()

    await asyncio.gather(*(commit_one(tid, offsets) for tid, offsets in tid_to_offset_map.items()))


async def sendable(app) -> None:
    """Until a transaction is open for sends: not while one commits and the next begins."""
    event: asyncio.Event | None = getattr(app, "distill_sendable", None)
    if event is not None:
        await event.wait()


async def _on_rebalance_fresh_producers(self, assigned, revoked, newly_assigned) -> None:
    for transactional_id in sorted(self.producer._transaction_producers):
        await self.producer.stop_transaction(transactional_id)
    await _faust_on_rebalance(self, assigned, revoked, newly_assigned)
    # Faust ends every transaction before a revocation (``Consumer.wait_empty``): left set,
    # a worker that kept partitions never committed again, and ~60 s later the broker
    # aborted its transactions (``ProducerFenced``; two workers, a rebalance mid-stream).
    self.app.distill_transactions_ended = False


def _settings_quick_retry(self) -> dict:
    settings = dict(_faust_settings_extra(self))
    if self.app.in_transaction:
        settings["retry_backoff_ms"] = TRANSACTION_RETRY_BACKOFF_MS
    return settings


async def _stable_highwaters(self, partitions):
    return await self._ensure_consumer().end_offsets(list(partitions))


def install(app, lock: asyncio.Lock) -> None:
    """Route this app's transaction commits through the processing lock (from the choice of
    the offsets to the last send), the state cache's flush (``streams.faust_app.state_cache``: state
    changes join the transaction here) and a full drain,
    start every transaction afresh at a rebalance, and restore the tables up to the
    broker's last stable offsets; the transactional producers retry sooner and commit side
    by side."""
    app.distill_commit_hold = CommitHold(lock)
    app.distill_sendable = asyncio.Event()
    app.distill_sendable.set()
    Consumer.force_commit = _force_commit_at_a_cut
    TransactionManager.commit = _commit_whole_events
    TransactionManager.on_rebalance = _on_rebalance_fresh_producers
    AIOKafkaConsumerThread._highwaters = _stable_highwaters
    ProducerBuffer._send_pending = _send_pending_counted
    Producer._settings_extra = _settings_quick_retry
    Producer.commit_transactions = _commit_transactions_side_by_side
