"""Scores wait in Kafka, not in the tables, while the evidence published before them is unread.

The two input topics are fetched side by side and by bytes, so a fetch brings about four
times as many scores (~440 bytes each) as evidence records (~1.9 KB): scores run ahead of
their evidence, and each such score is parked (its run's row written and indexed, then
written again in another commit when its evidence comes). Kafka Streams reads the
partitions of a task in timestamp order (``max.task.idle.ms``); this does the same for the
one pair that matters. After each join batch, a scores partition whose last score was
published after all evidence read so far on its partition is held back in the consumer
until the evidence catches up or has been read to its end.

The hold is Faust's own for a stream whose buffer is full (``Consumer.on_buffer_full``):
records already fetched still reach the stream, and the partition is not asked for more.
(Faust's ``pause_partitions`` would drop the rest of a fetch already being delivered.)
Waiting inside the agent instead stops the evidence too: Faust's delivery loop hands each
fetched record to its stream in turn, and waits while that stream is not taking any.
Holds are only ever an order of reading: outcomes do not depend on it, so a hold Faust
lets go of (its own buffer drained, a rebalance) merely lets scores run ahead again.

A hold ends, too, once no evidence has been read for ``DISTILL_ALIGNMENT_IDLE`` seconds,
and the partition is not held again before more evidence comes: whether the evidence is
"read to its end" is judged from the high watermark, which a transactional producer's
last commit marker keeps one offset beyond the last record for good.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from faust.types import TP, EventT


@dataclass
class InputAlignment:
    """Per join partition: how far each input has been read, and the scores partitions held."""

    scores_published_ms: dict[int, int] = field(default_factory=dict)
    evidence_published_ms: dict[int, int] = field(default_factory=dict)
    evidence_next_offset: dict[int, int] = field(default_factory=dict)
    evidence_read_at: dict[int, float] = field(default_factory=dict)  # monotonic time of the last evidence
    # Partitions let go of because no evidence came: the evidence read then (ms).
    gave_up_at_ms: dict[int, int] = field(default_factory=dict)
    held: set[TP] = field(default_factory=set)
    awake_sent_at: float = float("-inf")  # monotonic time pairing was last told the join side is at work

    def read(self, events: Sequence[EventT], *, is_evidence: bool) -> set[int]:
        """Note how far a batch read its partitions; returns them."""
        published = self.evidence_published_ms if is_evidence else self.scores_published_ms
        partitions = set()
        for event in events:
            message = event.message
            partitions.add(message.partition)
            published[message.partition] = max(published.get(message.partition, 0), round(message.timestamp * 1000))
            if is_evidence:
                self.evidence_next_offset[message.partition] = message.offset + 1
                self.evidence_read_at[message.partition] = time.monotonic()
        return partitions

    def scores_ahead(self, partition: int, evidence_read_to_end) -> bool:
        """Were scores published later than any evidence read, while more evidence waits?"""
        scores, evidence = self.scores_published_ms.get(partition), self.evidence_published_ms.get(partition, -1)
        if scores is None or scores <= evidence or self.gave_up_at_ms.get(partition) == evidence:
            return False
        return not evidence_read_to_end(partition, self.evidence_next_offset.get(partition, 0))

    def idle(self, idle_after: float) -> list[TP]:
        """The held partitions whose evidence has not moved for ``idle_after`` seconds: let go."""
        now, idle = time.monotonic(), []
        for tp in sorted(self.held):
            if now - self.evidence_read_at.get(tp.partition, 0.0) >= idle_after:
                self.gave_up_at_ms[tp.partition] = self.evidence_published_ms.get(tp.partition, -1)
                idle.append(tp)
        self.held.difference_update(idle)
        return idle

    def forget(self) -> None:
        """A rebalance: Faust resumes every stream partition once it has recovered."""
        self.scores_published_ms.clear()
        self.evidence_published_ms.clear()
        self.evidence_next_offset.clear()
        self.evidence_read_at.clear()
        self.gave_up_at_ms.clear()
        self.held.clear()


def register(pipeline) -> None:
    idle_after = pipeline.settings.alignment_idle
    if not idle_after:
        return  # scores are never held: nothing to let go of

    @pipeline.app.timer(interval=max(0.1, idle_after / 2))
    async def let_go_of_idle_holds() -> None:
        for tp in pipeline.alignment.idle(idle_after):
            pipeline.app.consumer.on_buffer_drop(tp)


def align(pipeline, events: Sequence[EventT], *, is_evidence: bool) -> None:
    """Hold or let go of the scores partitions of a join batch's partitions."""
    alignment = pipeline.alignment
    if not pipeline.settings.alignment_idle:
        return
    scores, evidence = pipeline.settings.topic("scored-runs"), pipeline.settings.topic("evidence")

    def evidence_read_to_end(partition: int, next_offset: int) -> bool:
        return pipeline.read_to_end(evidence, partition, next_offset)

    for partition in sorted(alignment.read(events, is_evidence=is_evidence)):
        tp = TP(scores, partition)
        if alignment.scores_ahead(partition, evidence_read_to_end):
            if tp not in alignment.held:
                alignment.held.add(tp)
                pipeline.app.consumer.on_buffer_full(tp)
        elif tp in alignment.held:
            alignment.held.discard(tp)
            pipeline.app.consumer.on_buffer_drop(tp)
