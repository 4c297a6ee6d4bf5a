"""Sending what the rules decided: samples, tombstones, quarantine records, candidates.

Sends are forced (straight into the producer, in call order) instead of attached to
the source event: Faust publishes attachments per source partition at commit time, which
could put a run's tombstone ahead of the sample it retracts. Faust flushes the producer
before it commits offsets, so nothing is committed before it is sent.
"""

from dataclasses import dataclass

from schemas import QuarantineRecord
from schemas.codec import encode
from streams.app import Pipeline
from streams.join import Effect, Publish
from streams.quarantine import quarantine_headers

SAMPLE_STAGES = {"rag-samples": "rag", "sft-samples": "sft", "preference-pairs": "preference"}
WATERMARK_KEY = b"__watermark__"


@dataclass(frozen=True)
class Watermark:
    """How far stream time has come on a join partition, stamped on what it sends to pairing.

    ``pair-candidates`` merges every join partition, so a pair partition's stream time
    is the least of its sources' watermarks, not the latest ``scored_at`` it saw: a
    partition that runs ahead must not make another's runs look late.
    """

    partition: int
    stream_time: float | None

    def headers(self) -> list[tuple[str, bytes]]:
        time = "" if self.stream_time is None else repr(self.stream_time)
        return [("source_partition", str(self.partition).encode()), ("watermark", time.encode())]

    @classmethod
    def from_headers(cls, headers) -> "Watermark | None":
        found = {k: v.decode() for k, v in (headers.items() if isinstance(headers, dict) else headers or ())}
        if "source_partition" not in found:
            return None
        return cls(int(found["source_partition"]), float(found["watermark"]) if found["watermark"] else None)


async def send_effects(pipeline: Pipeline, effects: list[Effect], watermark: Watermark | None = None) -> None:
    for effect in effects:
        if isinstance(effect, Publish):
            headers = watermark.headers() if watermark and effect.topic == "pair-candidates" else None
            await pipeline.topics[effect.topic].send(
                key=effect.key.encode(), value=effect.value, headers=headers, force=True
            )
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
