"""The join agents: evidence and scores of one run meet here, keyed by run id (SPEC 3-4).

The input topics are co-partitioned (Faust assigns partition N of both to one worker),
so the ``runs`` table holds the whole state of a run in the partition of its id. One
agent a topic, both taking batches under the pipeline's processing lock
(``streams.faust_app.agents.batches``): a run's events are decided and sent strictly one after the
other, so a retraction can never overtake the sample it retracts, and a transaction commit
never splits a batch. State is read and written through the pipeline's state cache.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from faust.types import TP, EventT
from mode import CrashingSupervisor

from schemas import EvidenceRecord, ScoredRun
from schemas.codec import Undecodable, decode_input, dumps, loads
from streams.faust_app.agents.batches import process_batches, spill_when_full
from streams.faust_app.agents.emit import (
    WATERMARK_KEY, Watermark, is_candidate, publish, send_candidates, send_effects, send_quarantine, send_tick,
)
from streams.faust_app.alignment import align
from streams.faust_app.pending import PendingScores, Waiting
from streams.faust_app.pipeline import Pipeline
from streams.faust_fixes import transactions
from streams.faust_fixes.prompt_commit import note_batch
from streams.rules.join import RunState, on_evidence, on_join_timeout, on_score, rejudge
from streams.rules.quarantine import SourceMessage, quarantine_record
from streams.rules.screening import ContentGates


def source_of(event: EventT) -> SourceMessage:
    message = event.message
    key = message.key.decode("utf-8", "replace") if message.key is not None else None
    return SourceMessage(message.topic, message.partition, message.offset, key, round(message.timestamp * 1000))


AGENTS = (("join_evidence", "evidence", True), ("join_scores", "scored-runs", False))


def register(pipeline: Pipeline) -> None:
    for name, topic, is_evidence in AGENTS:
        _register_join(pipeline, name, topic, is_evidence)


def _register_join(pipeline: Pipeline, name: str, topic: str, is_evidence: bool) -> None:
    @pipeline.app.agent(pipeline.topics[topic], name=name, supervisor_strategy=CrashingSupervisor)
    async def join(stream):
        await pipeline.manifest.ready.wait()
        await pipeline.evalsets.ready.wait()
        await process_batches(pipeline, stream, lambda events: handle_batch(pipeline, events, is_evidence=is_evidence))


async def handle_batch(pipeline: Pipeline, events: Sequence[EventT], *, is_evidence: bool) -> None:
    """Each event in order, then the batch's pair candidates; then, once per partition of
    the batch, the timeouts stream time has made due and the watermark for pairing (after
    the candidates: a watermark must not overtake the candidates it was stamped on). First,
    a partition whose runs were judged against other evaluation sets is judged again."""
    gates = pipeline.content_gates()
    for source in sorted({event.message.tp for event in events}):
        await rejudge_if_stale(pipeline, source, gates)
    for event in events:
        await handle(pipeline, event, gates, is_evidence=is_evidence)
        pipeline.metrics.processed(event.message.timestamp)
    await send_candidates(pipeline, events[0].message.topic)
    for source in sorted({event.message.tp for event in events}):
        await time_out_overdue(pipeline, source)
        await broadcast_watermark(pipeline, source)
    align(pipeline, events, is_evidence=is_evidence)
    await keep_pairing_awake(pipeline, events[0].message.tp)
    note_batch(pipeline, events)


async def handle(pipeline: Pipeline, event: EventT, gates: ContentGates, *, is_evidence: bool) -> None:
    settings, state_cache = pipeline.settings, pipeline.state
    source = source_of(event)
    model = EvidenceRecord if is_evidence else ScoredRun
    record = decode_input(model, event.message.value, settings.max_record_bytes)
    if isinstance(record, Undecodable):
        await reject_input(pipeline, event, record.errors, record.source_record, event.message.value)
        return
    obj = original_object(record)
    run_id = record.run_id if is_evidence else record.evidence_run_id
    if source.key != run_id:
        errors = [f"message key {source.key!r} is not the record's run id {run_id!r}; inputs must be keyed by run id"]
        await reject_input(pipeline, event, errors, obj, None)
        return

    if is_evidence:
        note_evidence_progress(pipeline, source)
    else:
        set_stream_time(pipeline, source.partition, record.scored_at_epoch)
    state = state_cache.get_decoded("runs", source.partition, run_id.encode(), RunState.decode) or RunState()
    step = on_evidence if is_evidence else on_score
    new_state, effects = step(state, record, obj, source, pipeline.gate_options, pipeline.manifest, gates)
    if new_state != state:
        state_cache.set_decoded("runs", source.partition, run_id.encode(), new_state, RunState.encode)
        pipeline.metrics.screened(state, new_state)
    # The watermark stamps pair candidates only, and asks the pending index: not for every event.
    stamp = watermark(pipeline, source.partition) if any(is_candidate(effect) for effect in effects) else None
    await send_effects(pipeline, event.message.tp, effects, stamp)
    if _waits(state) or _waits(new_state):
        track_pending(pipeline, run_id, new_state, source, None if is_evidence else record)


def original_object(record) -> dict:
    """The input object as it came (fields it set, extras included), without parsing again."""
    return record.model_dump(mode="json", exclude_unset=True)


async def reject_input(pipeline: Pipeline, event: EventT, errors, obj, raw: bytes | None) -> None:
    """Input that is not a valid record: ``schema_violation`` at ``input``, one per message."""
    source = source_of(event)
    run_id = obj.get("run_id") or obj.get("evidence_run_id") if obj else None
    task_id = obj.get("task_id") or obj.get("evidence_task_id") if obj else None
    await send_quarantine(pipeline, event.message.tp, quarantine_record(
        stage="input", reason="schema_violation", subject=source.coordinates, errors=errors, source=source,
        run_id=run_id if isinstance(run_id, str) else None, task_id=task_id if isinstance(task_id, str) else None,
        source_record=obj, raw=raw if obj is None else None,
    ))


def _waits(state: RunState) -> bool:
    """Is the run's score in the index of waiting scores (or should it be)?"""
    return state.pending and not state.join_quarantined


def track_pending(pipeline: Pipeline, run_id: str, state: RunState, source: SourceMessage,
                  score: ScoredRun | None = None) -> None:
    """Keep the index of scores waiting for evidence in step with the run's state.
    ``score``: the state's score as the model it was just decoded into, if at hand."""
    index = pending_scores(pipeline, source.partition)
    if _waits(state):
        index.add(waiting_entry(pipeline, run_id, state, score))
    else:
        index.discard(run_id)


def waiting_entry(pipeline: Pipeline, run_id: str, state: RunState, score: ScoredRun | None = None) -> Waiting:
    score = score or ScoredRun.model_validate(state.score)
    return Waiting(run_id, score.scored_at_epoch + pipeline.settings.join_timeout, state.score_source["timestamp_ms"])


def pending_scores(pipeline: Pipeline, partition: int) -> PendingScores:
    """The partition's index of waiting scores, rebuilt from the ``runs`` rows once a rebalance.

    The rows are the durable truth (a waiting score is a run with a score and no evidence),
    so the index needs no table and no changelog of its own: that was two changelog
    messages a run (the entry, then its tombstone)."""
    index = pipeline.pending.get(partition)
    if index is None:
        index = pipeline.pending[partition] = PendingScores(pipeline.index_db(), partition)
        for raw_id, raw in pipeline.state.items("runs", partition):
            if not RunState.may_be_pending(raw):
                continue
            state = RunState.decode(raw)
            # The agent tests' in-memory store has one partition for all.
            if _waits(state) and state.score_source["partition"] == partition:
                index.add(waiting_entry(pipeline, raw_id.decode(), state))
    return index


def note_evidence_progress(pipeline: Pipeline, source: SourceMessage) -> None:
    key = f"evidence:{source.partition}".encode()
    raw = pipeline.state.get("stream_time", source.partition, key)
    latest = max(loads(raw)["ts"], source.timestamp_ms) if raw is not None else source.timestamp_ms
    pipeline.state.set("stream_time", source.partition, key, dumps({"ts": latest, "next_offset": source.offset + 1}))


def evidence_read_up_to(pipeline: Pipeline, partition: int) -> float:
    """Up to which publish time (ms) the evidence of this partition has been read.

    The two input topics are consumed side by side, not in time order: scores may be read
    far ahead of their evidence (a replay does it every time). A score may only time out
    once the evidence published before it has been read, or all the evidence there is
    (then: infinity). Only up to the millisecond *before* the latest evidence read: more
    evidence of that same millisecond may still come (an interleaved replay of 100,000
    runs timed out 72,089 of them while their evidence waited a few offsets further on)."""
    raw = pipeline.state.get("stream_time", partition, f"evidence:{partition}".encode())
    progress = loads(raw) if raw is not None else {"ts": 0, "next_offset": 0}
    if pipeline.read_to_end(pipeline.settings.topic("evidence"), partition, progress["next_offset"]):
        return float("inf")
    return progress["ts"] - 1


def stream_time(pipeline: Pipeline, partition: int) -> float | None:
    raw = pipeline.state.get("stream_time", partition, f"join:{partition}".encode())
    return loads(raw) if raw is not None else None


def set_stream_time(pipeline: Pipeline, partition: int, scored_at: float) -> None:
    """Stream time is the latest ``scored_at`` seen on the partition: it moves with the data."""
    current = stream_time(pipeline, partition)
    if current is None or scored_at > current:
        pipeline.state.set("stream_time", partition, f"join:{partition}".encode(), dumps(scored_at))


def watermark(pipeline: Pipeline, partition: int) -> Watermark:
    """How far pairing may trust this partition: its stream time, held back to the oldest
    score still waiting for evidence, since that run may yet join with its old ``scored_at``
    (a score read ahead of its evidence must not make its own run late for pairing)."""
    now = stream_time(pipeline, partition)
    deadline = pending_scores(pipeline, partition).earliest_deadline()
    if now is not None and deadline is not None:
        now = min(now, deadline - pipeline.settings.join_timeout)
    return Watermark(partition, now)


async def time_out_overdue(pipeline: Pipeline, source: TP) -> None:
    """Scores whose evidence has not come within ``join_timeout`` of stream time."""
    partition = source.partition
    now, index = stream_time(pipeline, partition), pending_scores(pipeline, partition)
    earliest = index.earliest_deadline()
    if now is None or earliest is None or now <= earliest:
        return
    seen_up_to = evidence_read_up_to(pipeline, partition)
    if index.earliest_published_ms() > seen_up_to:
        return
    for entry in index.pop_due(now, published_up_to=seen_up_to):
        run_key = entry.run_id.encode()
        new_state, effects = on_join_timeout(pipeline.state.get_decoded("runs", partition, run_key, RunState.decode))
        pipeline.state.set_decoded("runs", partition, run_key, new_state, RunState.encode)
        await send_effects(pipeline, source, effects)


async def broadcast_watermark(pipeline: Pipeline, source: TP) -> None:
    """Tell every pair partition how far this partition's watermark has come, now and then,
    so pair windows close by stream time even where this partition sends no candidates
    (and when the watermark moves because a waiting score joined, not by a new score)."""
    partition = source.partition
    mark = watermark(pipeline, partition)
    if mark.stream_time is None:
        return
    # Only a rate limit, so kept in memory: after a restart the first event broadcasts again.
    last = pipeline.last_broadcast.get(partition)
    if last is not None and mark.stream_time - last < max(1.0, pipeline.settings.pair_grace / 4):
        return
    pipeline.last_broadcast[partition] = mark.stream_time
    await send_watermark(pipeline, source, mark)


async def send_watermark(pipeline: Pipeline, source: TP, mark: Watermark) -> None:
    """The watermark of ``source``'s partition to every pair partition."""
    for target in range(pipeline.settings.partitions):
        await publish(pipeline, source, "pair-candidates", WATERMARK_KEY, b"{}", mark.headers(), partition=target)


async def keep_pairing_awake(pipeline: Pipeline, source: TP) -> None:
    """While scores wait in Kafka (``streams.faust_app.alignment``), tell every pair partition now and
    then that the join side is at work.

    A pair partition that hears nothing for ``pair_idle_close`` closes its windows as idle;
    with the scores held through a long evidence backlog, it closed windows whose runs were
    still to come, and those runs came as ``late_arrival`` (173 of 100,000 in a replay in
    files order, in some runs and not others)."""
    alignment = pipeline.alignment
    now = time.monotonic()
    if not alignment.held or now - alignment.awake_sent_at < pipeline.settings.pair_tick_interval / 2:
        return
    alignment.awake_sent_at = now
    await send_watermark(pipeline, source, watermark(pipeline, source.partition))


# Rows judged by one call: a pass holds the processing lock and its transaction open, and a
# run takes ~113 µs (measured): ~2.3 s a slice, far inside a transaction's timeout (60 s).
REJUDGE_SLICE = 20_000


@dataclass(frozen=True)
class Judged:
    """A partition's ``evalsets:{p}`` row: the version of the sets its runs were judged against,
    and, while a pass for it is under way, the last run key judged ("" at its start)."""

    version: str = ""
    after: str | None = None  # hex of a run key; None: the pass is done

    @classmethod
    def read(cls, pipeline: Pipeline, partition: int) -> "Judged":
        raw = pipeline.state.get("stream_time", partition, f"evalsets:{partition}".encode())
        return cls(**loads(raw)) if raw is not None else cls()

    def write(self, pipeline: Pipeline, partition: int) -> None:
        pipeline.state.set("stream_time", partition, f"evalsets:{partition}".encode(),
                           dumps({"version": self.version, "after": self.after}))


async def rejudge_if_stale(pipeline: Pipeline, source: TP, gates: ContentGates) -> None:
    """Judge the runs of ``source``'s partition again if the evaluation sets changed since they
    were judged (SPEC 12, retroactive), from the ``runs`` rows, not the input topics: a slice of
    ``REJUDGE_SLICE`` runs a call, in key order, until every run is judged.

    Where the pass is (the version it judges against, the last key judged) is a row of its own,
    written in the same transaction as the slice's state and outputs: a crash mid-slice aborts
    them all, and the slice runs again. Called at the start of every join batch and at every pair
    partition's idle tick (which the evaluation sets' view sends at once after a change, and a
    slice that leaves runs to judge sends at once again). A run that arrives meanwhile is judged
    against the new sets when it arrives."""
    partition = source.partition
    judged = Judged.read(pipeline, partition)
    if judged.version == gates.index.version and judged.after is None:
        return
    if judged.version != gates.index.version:
        judged = Judged(gates.index.version, "")
        # Every row in the store, so that the pass's key order sees them all (runs arriving from
        # now on are judged against the new sets as they arrive).
        await transactions.sendable(pipeline.app)
        await pipeline.state.flush()
    started, changed = time.monotonic(), 0
    after = bytes.fromhex(judged.after) if judged.after else None
    keys = pipeline.state.keys_after("runs", partition, after, REJUDGE_SLICE)
    for key in keys:
        raw = pipeline.state.get("runs", partition, key)
        if raw is None or RunState.may_be_pending(raw):
            continue
        state = RunState.decode(raw)
        new_state, effects = rejudge(state, pipeline.gate_options, pipeline.manifest, gates)
        if new_state == state:
            continue
        changed += 1
        pipeline.state.set_decoded("runs", partition, key, new_state, RunState.encode)
        pipeline.metrics.screened(state, new_state)
        stamp = watermark(pipeline, partition) if any(is_candidate(effect) for effect in effects) else None
        await send_effects(pipeline, source, effects, stamp)
        await spill_when_full(pipeline)
    await send_candidates(pipeline, source.topic)
    done = len(keys) < REJUDGE_SLICE
    Judged(judged.version, None if done else keys[-1].hex()).write(pipeline, partition)
    logging.getLogger(__name__).info(
        "partition %d: %d runs judged against the evaluation sets %r (%d changed) in %.1f s%s",
        partition, len(keys), judged.version[:12], changed, time.monotonic() - started, "" if done else "; more to come")
    if not done:
        await send_tick(pipeline, partition)
