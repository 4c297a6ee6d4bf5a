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

import orjson

from streams.broker.kafka_io import default_partitions

CANDIDATES_KEY = b"__candidates__"
# Well under the broker's default message limit (1 MiB); a larger candidate goes alone.
BATCH_BYTES = 512 * 1024
# A source partition's candidates waiting for the end of the batch, at most (a retroactive
# slice of 20,000 runs can give back every one of their samples): then they go at once.
SOURCE_BYTES = 8 * BATCH_BYTES


@dataclass
class CandidateBatches:
    """The candidates a batch decided, per source partition in the order decided. Their target
    partitions are worked out together when they are taken (murmur2 over all their keys in
    numpy: one key at a time it was ~7 µs a content key in the worker, 2% of its time with
    dedup on); a source's candidates then go as one message per target partition, or several
    of at most ``BATCH_BYTES``."""

    partitions: int
    pending: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)  # source -> [(key, entry)]
    sizes: dict[int, int] = field(default_factory=dict)

    def add(self, source_partition: int, key: str, watermark: float | None, candidate: bytes) -> list[tuple[int, bytes]]:
        """Add one; when the source's candidates would pass ``SOURCE_BYTES``, return them first
        as (target partition, value) messages, to send now (none: nothing to send yet)."""
        entry = b"[" + orjson.dumps(watermark) + b"," + candidate + b"]"
        full: list[tuple[int, bytes]] = []
        if source_partition in self.pending and self.sizes[source_partition] + len(entry) > SOURCE_BYTES:
            full = self._messages(self.pending.pop(source_partition))
            del self.sizes[source_partition]
        self.pending.setdefault(source_partition, []).append((key.encode(), entry))
        self.sizes[source_partition] = self.sizes.get(source_partition, 0) + len(entry) + 1
        return full

    def take(self) -> list[tuple[int, int, bytes]]:
        """Every candidate as (source partition, target partition, value) messages, in source and
        target order; empties the batches."""
        taken = [(source, target, value) for source in sorted(self.pending)
                 for target, value in self._messages(self.pending[source])]
        self.pending.clear()
        self.sizes.clear()
        return taken

    def _messages(self, entries: list[tuple[bytes, bytes]]) -> list[tuple[int, bytes]]:
        """One source's entries as messages per target partition, each entry's order kept."""
        by_target: dict[int, list[bytes]] = {}
        for target, (_key, entry) in zip(default_partitions([key for key, _ in entries], self.partitions), entries):
            by_target.setdefault(target, []).append(entry)
        messages = []
        for target in sorted(by_target):
            chunk: list[bytes] = []
            size = 1  # the brackets of the list, less the comma the first entry does not need
            for entry in by_target[target]:
                if chunk and size + len(entry) + 1 > BATCH_BYTES:
                    messages.append((target, _value(chunk)))
                    chunk, size = [], 1
                chunk.append(entry)
                size += len(entry) + 1
            messages.append((target, _value(chunk)))
        return messages


def _value(entries: list[bytes]) -> bytes:
    return b"[" + b",".join(entries) + b"]"


def read_batch(value: bytes) -> list[tuple[float | None, dict]]:
    """The (watermark, candidate) pairs of a batch message, in order."""
    return [(watermark, candidate) for watermark, candidate in orjson.loads(value)]
