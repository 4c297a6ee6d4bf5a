"""Candidates travel in batches: one ``pair-candidates`` (or ``dedup-candidates``) message per
batch, source partition and target partition, not one per run.

Every message consumed through Faust costs ~125 µs before any logic runs; one per joined
run was a third of the pair side's cost. A batch message's value is a JSON list of
``[watermark, candidate]`` in the order the join decided them: the pair agent takes each
watermark before its candidate, exactly as it took the header of a message of its own.
The message key is ``CANDIDATES_KEY``; a candidate's task decides its pair partition with
the partitioner the task-id key used to go through, so a task's windows stay where they were
(a dedup candidate's content key decides its dedup partition the same way; its watermark is null).
"""

from dataclasses import dataclass, field
from functools import lru_cache

import orjson

from streams.broker.kafka_io import default_partition

CANDIDATES_KEY = b"__candidates__"
# Well under the broker's default message limit (1 MiB); a larger candidate goes alone.
BATCH_BYTES = 512 * 1024


@lru_cache(maxsize=4096)  # a task's runs come minutes apart: its id is partitioned once, not once a run
def target_partition(key: str, partitions: int) -> int:
    """The partition of a candidate keyed by ``key`` (a task id, or a content key)."""
    return default_partition(key.encode(), partitions)


@dataclass
class CandidateBatches:
    """The candidates a join batch decided, grouped by (source partition, pair partition)."""

    groups: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)

    def add(self, source_partition: int, target: int, watermark: float | None, candidate: bytes) -> bytes | None:
        """Add one; when the group would grow past ``BATCH_BYTES``, return its value first (to send now)."""
        entry = b"[" + orjson.dumps(watermark) + b"," + candidate + b"]"
        group = (source_partition, target)
        full = None
        if group in self.groups and self.sizes[group] + len(entry) > BATCH_BYTES:
            full = self._value(self.groups.pop(group))
            del self.sizes[group]
        self.groups.setdefault(group, []).append(entry)
        self.sizes[group] = self.sizes.get(group, 0) + len(entry) + 1
        return full

    def take(self) -> list[tuple[int, int, bytes]]:
        """Every group as (source partition, pair partition, value), in group order; empties the batches."""
        taken = [(source, target, self._value(entries)) for (source, target), entries in sorted(self.groups.items())]
        self.groups.clear()
        self.sizes.clear()
        return taken

    @staticmethod
    def _value(entries: list[bytes]) -> bytes:
        return b"[" + b",".join(entries) + b"]"


def read_batch(value: bytes) -> list[tuple[float | None, dict]]:
    """The (watermark, candidate) pairs of a batch message, in order."""
    return [(watermark, candidate) for watermark, candidate in orjson.loads(value)]
