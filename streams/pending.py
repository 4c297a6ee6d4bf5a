"""Scores waiting for their evidence on one join partition, ordered by deadline.

The ``pending_joins`` table is the durable truth; this index is its in-memory view,
rebuilt from the table after every rebalance. It answers, per message and without a
scan, the two questions stream time asks: the earliest deadline still waiting (which
holds the partition's watermark back) and the earliest publish time (before which the
evidence must have been read for any timeout to be safe). A stored minimum cannot do
this: it goes stale the moment its run joins, and then holds the watermark back for
ever (or until stream time passes a deadline that no longer exists).
"""

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple


class Waiting(NamedTuple):
    run_id: str
    deadline: float  # scored_at + join_timeout
    published_ms: int  # when the score was published (the message timestamp)


@dataclass
class PendingScores:
    _waiting: dict[str, Waiting] = field(default_factory=dict)
    # Heaps with lazy deletion: an entry counts only while it is still the run's entry.
    _by_deadline: list[tuple[float, str, Waiting]] = field(default_factory=list)
    _by_published: list[tuple[int, str, Waiting]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._waiting

    def get(self, run_id: str) -> Waiting | None:
        return self._waiting.get(run_id)

    def add(self, entry: Waiting) -> None:
        if self._waiting.get(entry.run_id) == entry:
            return
        self._waiting[entry.run_id] = entry
        heapq.heappush(self._by_deadline, (entry.deadline, entry.run_id, entry))
        heapq.heappush(self._by_published, (entry.published_ms, entry.run_id, entry))
        # Entries discarded behind a long wait stay in the heaps; keep them from piling up.
        if len(self._by_deadline) > 2 * len(self._waiting) + 64:
            self._rebuild()

    def discard(self, run_id: str) -> None:
        self._waiting.pop(run_id, None)

    def earliest_deadline(self) -> float | None:
        top = self._top(self._by_deadline)
        return top.deadline if top else None

    def earliest_published_ms(self) -> int | None:
        top = self._top(self._by_published)
        return top.published_ms if top else None

    def pop_due(self, now: float) -> list[Waiting]:
        """Remove and return the entries whose deadline has passed, earliest first."""
        due = []
        while (top := self._top(self._by_deadline)) is not None and top.deadline < now:
            heapq.heappop(self._by_deadline)
            del self._waiting[top.run_id]
            due.append(top)
        return due

    def _top(self, heap: list) -> Waiting | None:
        while heap and self._waiting.get(heap[0][1]) != heap[0][2]:
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def _rebuild(self) -> None:
        self._by_deadline = [(e.deadline, e.run_id, e) for e in self._waiting.values()]
        self._by_published = [(e.published_ms, e.run_id, e) for e in self._waiting.values()]
        heapq.heapify(self._by_deadline)
        heapq.heapify(self._by_published)
