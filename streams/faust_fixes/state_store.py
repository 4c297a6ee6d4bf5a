"""The RocksDB stores of the worker's tables: memory bounded, and safe for exactly-once.

Memory: Faust opens one RocksDB per table partition, each with its own 2 GiB block cache
and up to three 64 MiB write buffers, so a worker's memory grew with the state it held
(331 MiB after 20,000 runs, 581 MiB after 100,000). Here every database of the process
shares one block cache, write buffers are charged to that cache by one write buffer
manager, and index and filter blocks live in the cache too: RocksDB's memory stays under
``DISTILL_STATE_MEMORY_MIB`` however many runs the tables hold; the rest is on disk.

Exactly-once: Faust's RocksDB store keeps what a worker wrote while it owned a partition,
including writes of transactions that were later aborted (on a crash, or when a rebalance
took the partition away mid-transaction). When the partition comes back, Faust trusts
that local copy (or stops with ``ConsistencyError`` when the committed changelog is
shorter), and a re-processed event would look like a redelivery. A rebalance can abort
the open transaction of a partition the worker keeps, too. So, like Kafka Streams under
exactly-once after an unclean close, ``ChangelogTrustingStore`` drops its local copy of
every partition it holds after a rebalance and restores it from the committed changelog:
RocksDB still holds the state (memory stays bounded), the truth is the changelog. The
price is a full restore of the worker's state at every rebalance.
"""

import functools
import shutil

import faust.stores
import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore

URL = "distill-rocksdb://"  # exactly-once
AT_LEAST_ONCE_URL = "distill-rocksdb-bounded://"

MIB = 1024 * 1024


def table_options(memory_mib: int) -> dict[str, int]:
    """The ``options`` of a table: the process's RocksDB memory, and modest write buffers.

    A memtable flushes at 8 MiB (or earlier, when all of them together reach half the
    budget): the tables take small records at a steady rate, so bigger buffers only hold
    more in memory before the same amount reaches disk."""
    return {"block_cache_size": memory_mib * MIB, "write_buffer_size": 8 * MIB, "max_write_buffer_number": 2}


def index_options(memory_mib: int) -> rocksdict.Options:
    """Options of a database the worker keeps for itself (not a table): within the same limit."""
    return SharedMemoryOptions(**table_options(memory_mib), use_rocksdict=True).as_options()


@functools.cache
def _shared_memory(limit: int) -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    cache = rocksdict.Cache(limit)
    return cache, rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(limit // 2, False, cache)


class SharedMemoryOptions(RocksDBOptions):
    """Faust's options, except that every database shares one cache for blocks, indexes,
    filters and write buffers (``block_cache_size`` is the limit of all of them together),
    and compacts in small pieces.

    RocksDB's leveled defaults (a 256-MiB base level, 64-MiB files, level sizes fitted to the
    last level) merge every four flushed files into the whole table until it passes 256 MiB: at
    100,000 runs the tables' 35-37 compactions wrote 1,268-1,444 MiB for 7.7-8.4 CPU-s, the
    longest 0.58-0.77 s, on the two cores the worker shares with the broker. With a 16-MiB base
    level and 4-MiB files: 57-66 compactions, 684-780 MiB, 4.6-4.9 CPU-s, the longest 0.24-0.43 s
    (docs/benchmarks.md, item 36)."""

    def as_options(self) -> rocksdict.Options:
        cache, write_buffers = _shared_memory(self.block_cache_size)
        options = super().as_options()
        options.set_write_buffer_manager(write_buffers)
        blocks = rocksdict.BlockBasedOptions()
        blocks.set_block_cache(cache)
        blocks.set_bloom_filter(10, True)  # lookups of runs not seen yet are the common case
        blocks.set_cache_index_and_filter_blocks(True)
        blocks.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(blocks)
        options.set_max_bytes_for_level_base(16 * MIB)  # L0 merges into ~16 MiB, not the whole table
        options.set_target_file_size_base(4 * MIB)  # a deeper merge rewrites the files a 4-MiB range overlaps
        return options


class BoundedStore(RocksDBStore):
    """Faust's RocksDB store with its memory under one limit per process."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rocksdb_options = SharedMemoryOptions(**self.options, use_rocksdict=True)


class ChangelogTrustingStore(BoundedStore):
    """A bounded store that rebuilds its partitions from the changelog after a rebalance.

    ``restored_to`` is the last changelog offset each partition's restore applied
    (``streams.faust_fixes.restore_guard`` checks that nothing committed lies beyond it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.restored_to: dict = {}

    async def on_rebalance(self, assigned, revoked, newly_assigned, generation_id: int = 0) -> None:
        mine = {tp for tp in assigned if tp.topic in self.table.changelog_topic.topics}
        for tp in mine | set(revoked):
            self.restored_to.pop(tp, None)
        for tp in mine:
            self._dbs.pop(tp.partition, None)
            shutil.rmtree(self.partition_path(tp.partition), ignore_errors=True)
        # Every held partition counts as new, so Faust restores each of them afresh.
        await super().on_rebalance(assigned, revoked, newly_assigned | mine, generation_id)

    def _open_for_partition(self, partition: int):
        # No write-ahead log: the copy is rebuilt from the changelog whenever the partition is
        # assigned, so a crash loses nothing it needs (a put without it: 3 instead of 9 µs).
        db = super()._open_for_partition(partition)
        unlogged = rocksdict.WriteOptions()
        unlogged.disable_wal = True
        db.set_write_options(unlogged)
        return db

    # The local copy is always rebuilt from the start of the committed changelog, so it keeps
    # no offset. Faust records one as each changelog send is acknowledged, and a send of a
    # transaction that a rebalance aborts can be acknowledged after the wipe: its offset then
    # stood in the fresh copy, above the committed changelog, and Faust stopped the worker
    # with ConsistencyError (seen when one worker of two was killed). One RocksDB write less
    # per changelog message, too.
    # -1 ("nothing yet"), not None: for None, Faust's recovery keeps the offset it restored a
    # partition it keeps to at the last rebalance and reads on from there, into the wiped
    # copy (seen as a survivor's tables missing every change before that restore).
    def persisted_offset(self, tp) -> int:
        return -1

    def apply_changelog_batch(self, batch, to_key, to_value) -> None:
        super().apply_changelog_batch(batch, to_key, to_value)
        for event in batch:
            tp, offset = event.message.tp, event.message.offset
            if offset > self.restored_to.get(tp, -1):
                self.restored_to[tp] = offset

    def set_persisted_offset(self, tp, offset: int) -> None:
        pass


faust.stores.STORES.aliases.setdefault(URL.split(":")[0], f"{__name__}:ChangelogTrustingStore")
faust.stores.STORES.aliases.setdefault(AT_LEAST_ONCE_URL.split(":")[0], f"{__name__}:BoundedStore")
