"""Scores waiting for their evidence on one join partition, ordered by deadline.

The ``runs`` table is the durable truth (a waiting score is a run with a score and no
evidence); this index is a view of it, rebuilt from the table after every rebalance. It
answers, per message and without a scan, the two questions stream time asks: the
earliest deadline still waiting (which holds the partition's watermark back) and the
earliest publish time (before which the evidence must have been read for any timeout to
be safe). A stored minimum cannot do this: it goes stale the moment its run joins, and
then holds the watermark back for ever (or until stream time passes a deadline that no
longer exists).

The view lives in a RocksDB of the worker's own, not in Python objects: a replay reads
scores far ahead of their evidence, and half of all runs waited at once in the
1,000,000-run benchmark (the heaps this replaced took ~370 bytes of Python memory a waiting
score). Keys sort by deadline and by publish time; only the least key of each order is
remembered. Nothing of it is logged: it is rebuilt from the table anyway.
"""

import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import rocksdict


class Waiting(NamedTuple):
    run_id: str
    deadline: float  # scored_at + join_timeout
    published_ms: int  # when the score was published (the message timestamp)


_ENTRY = struct.Struct(">dq")  # deadline, published_ms
_RUN, _BY_DEADLINE, _BY_PUBLISHED = b"r", b"d", b"p"


def open_index_db(path: Path, options: rocksdict.Options) -> rocksdict.Rdict:
    """A fresh database for the worker's pending indexes (whatever an earlier process left
    there is stale: each partition's view is rebuilt from the table)."""
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = rocksdict.Rdict(str(path), options)
    unlogged = rocksdict.WriteOptions()
    unlogged.disable_wal = True
    db.set_write_options(unlogged)
    return db


def _sortable_float(value: float) -> bytes:
    """Eight bytes that sort as the floats do (IEEE 754 with the sign bit flipped, and all
    bits flipped for negatives)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", value))
    return struct.pack(">Q", bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63)


def _sortable_int(value: int) -> bytes:
    return struct.pack(">Q", value + (1 << 63))


class _Order:
    """One ordering of a partition's waiting scores: keys ``prefix + sort key + run id``.

    The least key is remembered until it is removed. A search for the next one starts at
    a floor no live key is below, not at the start of the order: the keys removed before
    it are tombstones RocksDB would otherwise step over again at every search."""

    def __init__(self, db: rocksdict.Rdict, prefix: bytes) -> None:
        self._db, self._prefix = db, prefix
        self._floor = prefix
        self._least: tuple[bytes, bytes] | None = None  # (key, entry), None when not known
        self._bounded = rocksdict.ReadOptions()
        self._bounded.set_iterate_upper_bound(prefix[:-1] + bytes([prefix[-1] + 1]))

    def key(self, sort_key: bytes, run_id: bytes) -> bytes:
        return self._prefix + sort_key + run_id

    def added(self, key: bytes, entry: bytes) -> None:
        self._floor = min(self._floor, key)
        if self._least is not None and key < self._least[0]:
            self._least = (key, entry)

    def removed(self, key: bytes) -> None:
        if self._least is not None and key == self._least[0]:
            self._least = None

    def walk(self) -> Iterator[tuple[bytes, bytes]]:
        """Keys and entries from the least on, in order (as of the start of the walk)."""
        found = self._db.iter(self._bounded)
        found.seek(self._floor)
        while found.valid():
            yield found.key(), found.value()
            found.next()

    def least(self) -> tuple[bytes, bytes] | None:
        if self._least is None:
            self._least = next(self.walk(), None)
            if self._least is not None:
                self._floor = self._least[0]
        return self._least

    def run_id(self, key: bytes) -> bytes:
        return key[len(self._prefix) + 8:]


class PendingScores:
    """The scores waiting on one join partition, in the worker's index database."""

    def __init__(self, db: rocksdict.Rdict, partition: int) -> None:
        self._db = db
        self._prefix = struct.pack(">I", partition)
        self._count = 0
        self._by_deadline = _Order(db, self._prefix + _BY_DEADLINE)
        self._by_published = _Order(db, self._prefix + _BY_PUBLISHED)
        # What an earlier view of this partition left (before a rebalance) is stale.
        db.delete_range(self._prefix, struct.pack(">I", partition + 1))

    def __len__(self) -> int:
        return self._count

    def __contains__(self, run_id: str) -> bool:
        return self.get(run_id) is not None

    def get(self, run_id: str) -> Waiting | None:
        entry = self._db.get(self._prefix + _RUN + run_id.encode())
        return Waiting(run_id, *_ENTRY.unpack(entry)) if entry is not None else None

    def add(self, waiting: Waiting) -> bool:
        """Index the run's entry in place of its earlier one; False if it was there already."""
        known = self.get(waiting.run_id)
        if known == waiting:
            return False
        if known is not None:
            self._remove(known)
        entry = _ENTRY.pack(waiting.deadline, waiting.published_ms)
        run_key, by_deadline, by_published = self._keys(waiting)
        for key in (run_key, by_deadline, by_published):
            self._db[key] = entry
        self._by_deadline.added(by_deadline, entry)
        self._by_published.added(by_published, entry)
        self._count += 1
        return True

    def discard(self, run_id: str) -> bool:
        """Forget the run's entry; False if it had none."""
        known = self.get(run_id)
        if known is not None:
            self._remove(known)
        return known is not None

    def earliest_deadline(self) -> float | None:
        least = self._by_deadline.least() if self._count else None
        return _ENTRY.unpack(least[1])[0] if least else None

    def earliest_published_ms(self) -> int | None:
        least = self._by_published.least() if self._count else None
        return _ENTRY.unpack(least[1])[1] if least else None

    def pop_due(self, now: float, published_up_to: float = float("inf")) -> list[Waiting]:
        """Remove and return the entries whose deadline has passed and that were published
        up to ``published_up_to`` (ms), earliest deadline first.

        With a limit, the walk is in publish order: in a backlog, scores read ahead of
        their evidence are due by the deadline long before their evidence is read, and a
        walk by deadline would step over all of them at every message."""
        due: list[Waiting] = []
        by_deadline = published_up_to == float("inf")
        order = self._by_deadline if by_deadline else self._by_published
        for key, entry in order.walk() if self._count else ():
            waiting = Waiting(order.run_id(key).decode(), *_ENTRY.unpack(entry))
            if (waiting.deadline >= now) if by_deadline else (waiting.published_ms > published_up_to):
                break
            if waiting.deadline < now:
                due.append(waiting)
        for waiting in due:
            self._remove(waiting)
        return sorted(due, key=lambda waiting: (waiting.deadline, waiting.run_id))

    def _keys(self, waiting: Waiting) -> tuple[bytes, bytes, bytes]:
        """The run's keys: by run id, by deadline, by publish time."""
        run_id = waiting.run_id.encode()
        return (self._prefix + _RUN + run_id,
                self._by_deadline.key(_sortable_float(waiting.deadline), run_id),
                self._by_published.key(_sortable_int(waiting.published_ms), run_id))

    def _remove(self, waiting: Waiting) -> None:
        run_key, by_deadline, by_published = self._keys(waiting)
        for key in (run_key, by_deadline, by_published):
            del self._db[key]
        self._by_deadline.removed(by_deadline)
        self._by_published.removed(by_published)
        self._count -= 1
