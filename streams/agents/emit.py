"""Sending what the rules decided: samples, tombstones, quarantine records, candidates."""

from schemas import QuarantineRecord
from schemas.codec import encode
from streams.app import Pipeline
from streams.join import Effect, Publish
from streams.quarantine import quarantine_headers

SAMPLE_STAGES = {"rag-samples": "rag", "sft-samples": "sft", "preference-pairs": "preference"}


async def send_effects(pipeline: Pipeline, effects: list[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, Publish):
            await pipeline.topics[effect.topic].send(key=effect.key.encode(), value=effect.value)
            if effect.topic in SAMPLE_STAGES:
                counter = pipeline.metrics.samples if effect.value is not None else pipeline.metrics.retractions
                counter.labels(SAMPLE_STAGES[effect.topic]).inc()
        else:
            await send_quarantine(pipeline, effect)


async def send_quarantine(pipeline: Pipeline, record: QuarantineRecord) -> None:
    pipeline.metrics.quarantined(record.stage, record.reason)
    await pipeline.topics["quarantine"].send(
        key=record.id.encode(), value=encode(record), headers=quarantine_headers(record)
    )
