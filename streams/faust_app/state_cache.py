"""A write-behind cache in front of the tables: state reaches RocksDB and its changelog once a commit.

Through Faust, every table write is a RocksDB write and a changelog message sent through
Faust's producer buffer, ~150 µs each; a run wrote a dozen of them (its row twice, the
partition's stream time and evidence progress, its pending-join entry, its window and
the window's index entry...), most of them rewriting a key written moments before. Here
writes land in a dict per (table, partition); a commit first ``flush``es it: each key
changed since the last commit becomes one store write and one changelog message, sent
in the transaction of its partition (every topic of the app has the same partition
count, so Faust puts them in one co-partitioned group: partition P of a changelog shares
the transaction of partition P of the inputs). Reads see the cache first.

At a rebalance what the cache holds is dropped: the commit that precedes a revocation
flushed what belongs to committed offsets, and the rest belongs to events that will be
read again (under exactly-once their transaction is aborted and the store restored from
the committed changelog).
"""

from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import islice
from dataclasses import dataclass
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import TP

from streams.faust_app.outbox import Outbox

_FAUST_KEYS = b"__faust"  # the store's own keys (its persisted offset), not table rows
_DELETED = None


@dataclass(frozen=True)
class _Unencoded:
    """A value kept as the object it is until the flush needs its bytes (never mutated after set)."""

    value: Any
    encode: Callable[[Any], bytes]

    def __bytes__(self) -> bytes:
        return self.encode(self.value)


class StateCache:
    """Pending writes of the worker's tables, per table and partition, flushed at each commit."""

    def __init__(self, app: faust.App, tables: dict[str, faust.Table], outbox: Outbox) -> None:
        self._app = app
        self._tables = tables
        self._outbox = outbox
        self._dirty: dict[tuple[str, int], dict[bytes, bytes | None]] = defaultdict(dict)

    rows = 0  # rows waiting for the flush (a row written twice counts once)

    def get(self, table: str, partition: int, key: bytes) -> bytes | None:
        pending = self._dirty.get((table, partition))
        if pending is not None and key in pending:
            return _bytes(pending[key])
        return _partition_db(self._tables[table], partition).get(key)

    def set(self, table: str, partition: int, key: bytes, value: bytes) -> None:
        pending = self._dirty[table, partition]
        self.rows += key not in pending
        pending[key] = value

    def get_decoded(self, table: str, partition: int, key: bytes, decode: Callable[[bytes], Any]) -> Any | None:
        """The value as an object: the one ``set_decoded`` left, or ``decode`` of the stored bytes.

        A pair window rewritten by every run it admits is then decoded and encoded once a
        commit, not once a run (with a few hundred runs a window, that was most of pairing)."""
        pending = self._dirty.get((table, partition))
        if pending is not None and key in pending:
            found = pending[key]
            if isinstance(found, _Unencoded):
                return found.value
            return None if found is _DELETED else decode(found)
        raw = _partition_db(self._tables[table], partition).get(key)
        return None if raw is None else decode(raw)

    def set_decoded(self, table: str, partition: int, key: bytes, value: Any, encode: Callable[[Any], bytes]) -> None:
        """Set an object, encoded by ``encode`` at the flush; it must not change after this."""
        pending = self._dirty[table, partition]
        self.rows += key not in pending
        pending[key] = _Unencoded(value, encode)

    def delete(self, table: str, partition: int, key: bytes) -> None:
        pending = self._dirty[table, partition]
        if key in pending and _partition_db(self._tables[table], partition).get(key) is None:
            del pending[key]  # set and deleted since the last commit: the store and changelog never knew it
            self.rows -= 1
        else:
            self.rows += key not in pending
            pending[key] = _DELETED

    def items(self, table: str, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The partition's rows as the next commit will leave them."""
        yield from _merged(_partition_db(self._tables[table], partition).items(), self._dirty.get((table, partition), {}))

    def keys_after(self, table: str, partition: int, after: bytes | None, limit: int) -> list[bytes]:
        """Up to ``limit`` keys of the partition's store in key order, past ``after`` (None: from
        the first). The store only: flush first for the pending writes to be among them."""
        db = _partition_db(self._tables[table], partition)
        if isinstance(db, dict):  # the agent tests' in-memory store
            keys = iter(sorted(db))
        else:
            keys = db.keys(from_key=after) if after is not None else db.keys()
        wanted = (key for key in keys if (after is None or key > after) and not key.startswith(_FAUST_KEYS))
        return list(islice(wanted, limit))

    def all_items(self, table: str) -> Iterator[tuple[bytes, bytes]]:
        """The rows of every partition this worker holds (the web pages and the watchdog)."""
        store, mine = self._tables[table].data, {p: rows for (t, p), rows in self._dirty.items() if t == table}
        if not hasattr(store, "_db_for_partition"):  # the agent tests' in-memory store: one dict
            yield from _merged(store.data.items(), {k: v for rows in mine.values() for k, v in rows.items()})
            return
        for partition in sorted(set(store._dbs) | set(mine)):
            yield from self.items(table, partition)

    def forget(self, *_args, **_kwargs) -> None:
        """A rebalance: what was not flushed belongs to events that will be read again."""
        self._dirty.clear()
        self.rows = 0

    async def flush(self) -> int:
        """Write every pending change to the store and send it to the changelog; returns how many.

        The store writes happen before the first await, so a read between two sends of
        this flush still sees every change."""
        dirty, self._dirty, self.rows = self._dirty, defaultdict(dict), 0
        for (table, partition), rows in dirty.items():
            db = _partition_db(self._tables[table], partition)
            for key, value in rows.items():
                if value is _DELETED:
                    _delete(db, key)
                else:
                    rows[key] = value = _bytes(value)
                    db[key] = value
        if not _sends_changelogs(self._tables):
            return sum(len(rows) for rows in dirty.values())
        if self._app.in_transaction:
            for (table, partition), rows in dirty.items():
                changelog = self._tables[table].changelog_topic.get_topic_name()
                for key, value in rows.items():
                    self._outbox.add(TP(changelog, partition), changelog, key, value, partition=partition)
            return await self._outbox.flush()
        producer = await self._app.maybe_start_producer()
        count = 0
        for (table, partition), rows in dirty.items():
            changelog = self._tables[table].changelog_topic.get_topic_name()
            for key, value in rows.items():
                sent = await producer.send(changelog, key, value, partition, None, None)
                count += 1
            sent.add_done_callback(self._persisted(self._tables[table].data, TP(changelog, partition)))
        return count

    @staticmethod
    def _persisted(store, tp: TP):
        """A store's restore resumes after the offset it persisted: at-least-once only (under
        exactly-once the store restores from the committed changelog every time)."""
        def note(sent) -> None:
            if not sent.cancelled() and sent.exception() is None:
                store.set_persisted_offset(tp, sent.result().offset)
        return note


def _merged(stored, pending: dict[bytes, bytes | None]) -> Iterator[tuple[bytes, bytes]]:
    """Stored rows with the pending changes applied: store order, then the new keys."""
    pending = dict(pending)
    for key, value in stored:
        if key.startswith(_FAUST_KEYS):
            continue
        if key in pending:
            value = pending.pop(key)
            if value is _DELETED:
                continue
        yield key, _bytes(value)
    yield from ((k, _bytes(v)) for k, v in pending.items() if v is not _DELETED)


def _bytes(value: "bytes | _Unencoded | None") -> bytes | None:
    return bytes(value) if isinstance(value, _Unencoded) else value


def _partition_db(table: faust.Table, partition: int):
    """The store of one table partition: its RocksDB (``rocksdict.Rdict``), or the one dict of
    the in-memory store of the agent tests."""
    store = table.data
    open_db = getattr(store, "_db_for_partition", None)
    return open_db(partition) if open_db is not None else store.data


def _delete(db, key: bytes) -> None:
    if isinstance(db, dict):
        db.pop(key, None)
    else:
        del db[key]


def _sends_changelogs(tables: dict[str, faust.Table]) -> bool:
    """The in-memory store of the agent tests has no broker behind it."""
    return any(hasattr(table.data, "_db_for_partition") for table in tables.values())


_faust_commit_offsets = Consumer._commit_offsets


async def _flush_then_commit_offsets(self, offsets, start_new_transaction: bool = True) -> bool:
    # At-least-once the offsets commit after Faust flushes its producer: the changes of the
    # events they cover must be in it by then. (Exactly-once flushes inside the transaction
    # commit, under the processing lock: streams/faust_fixes/transactions.py.)
    cache = getattr(self.app, "distill_state_cache", None)
    if cache is not None and not self.in_transaction:
        await cache.flush()
    return await _faust_commit_offsets(self, offsets, start_new_transaction=start_new_transaction)


def install(app: faust.App, cache: StateCache) -> None:
    """Make every offset commit of this app flush ``cache`` first."""
    app.distill_state_cache = cache
    Consumer._commit_offsets = _flush_then_commit_offsets
