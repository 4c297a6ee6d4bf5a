"""Sending what the rules decided: samples, tombstones, quarantine records, candidates.

Sends are forced (straight into the producer, in call order) instead of attached to
the source event: Faust publishes attachments per source partition at commit time, which
could put a run's tombstone ahead of the sample it retracts. Faust flushes the producer
before it commits offsets, so nothing is committed before it is sent.
"""

from schemas import QuarantineRecord
from schemas.codec import encode
from streams.app import Pipeline
from streams.join import Effect, Publish
from streams.quarantine import quarantine_headers

SAMPLE_STAGES = {"rag-samples": "rag", "sft-samples": "sft", "preference-pairs": "preference"}


async def send_effects(pipeline: Pipeline, effects: list[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, Publish):
            await pipeline.topics[effect.topic].send(key=effect.key.encode(), value=effect.value, force=True)
            if effect.topic in SAMPLE_STAGES:
                counter = pipeline.metrics.samples if effect.value is not None else pipeline.metrics.retractions
                counter.labels(SAMPLE_STAGES[effect.topic]).inc()
        else:
            await send_quarantine(pipeline, effect)


async def send_quarantine(pipeline: Pipeline, record: QuarantineRecord) -> None:
    pipeline.metrics.quarantined(record.stage, record.reason)
    await pipeline.topics["quarantine"].send(
        key=record.id.encode(), value=encode(record), headers=quarantine_headers(record), force=True
    )
