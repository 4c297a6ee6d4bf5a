"""The dedup agent: sample candidates re-keyed by content key, one group a key (SPEC 11).

The join (RAG and SFT) and the pair agent (preference) send every sample that passed the
gates before dedup to ``dedup-candidates``, keyed by its content, in batch messages
(``streams.faust_app.candidates``). Partition P of that topic is co-partitioned with the
inputs, so its transaction is the one of partition P of the join: a candidate and its effects
commit once each, in the two hops' own transactions (docs/exactly-once.md, "Two hops"). The
``dedup`` table keeps every live candidate of a key (``streams.rules.dedup``); this agent
publishes the winner and the losers' ``duplicate_content`` records.
"""

from collections.abc import Sequence

from faust.types import TP, EventT
from mode import CrashingSupervisor

from schemas.codec import loads
from streams.faust_app.agents.batches import process_batches
from streams.faust_app.agents.emit import send_effects
from streams.faust_app.candidates import read_batch
from streams.faust_app.pipeline import Pipeline
from streams.faust_fixes.prompt_commit import note_batch
from streams.rules.dedup import DedupGroup, apply_message, group_key


def register(pipeline: Pipeline) -> None:
    @pipeline.app.agent(pipeline.topics["dedup-candidates"], name="dedup", supervisor_strategy=CrashingSupervisor)
    async def dedup(stream):
        await process_batches(pipeline, stream, lambda events: handle_batch(pipeline, events))


async def handle_batch(pipeline: Pipeline, events: Sequence[EventT]) -> None:
    """Each candidate in order; a worker that keeps up then commits soon, as after a join batch
    (its samples are the ones a reader waits for)."""
    for event in events:
        for _watermark, message in read_batch(event.message.value):
            await take(pipeline, event.message.tp, message)
    note_batch(pipeline, events, pipeline.inputs_processed())


async def take(pipeline: Pipeline, source: TP, message: dict) -> None:
    """One candidate (or its withdrawal) into its group; the group's effects sent in order."""
    key, partition = group_key(message), source.partition
    group = pipeline.state.get_decoded("dedup", partition, key, _decode)
    group, effects = apply_message(group, message)
    if group.candidates:
        pipeline.state.set_decoded("dedup", partition, key, group, DedupGroup.encode)
    else:
        pipeline.state.delete("dedup", partition, key)
    await send_effects(pipeline, source, effects)


def _decode(raw: bytes) -> DedupGroup:
    return DedupGroup.from_dict(loads(raw))
