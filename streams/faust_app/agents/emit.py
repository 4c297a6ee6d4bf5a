"""Sending what the rules decided: samples, tombstones, quarantine records, candidates.

Sends are forced (straight into the producer, in call order) instead of attached to
the source event: Faust publishes attachments per source partition at commit time, which
could put a run's tombstone ahead of the sample it retracts. Faust flushes the producer
before it commits offsets, so nothing is committed before it is sent.
"""

import time
from dataclasses import dataclass

from faust.types import TP

from schemas import QuarantineRecord
from schemas.codec import dumps, encode
from streams.faust_app.candidates import CANDIDATES_KEY
from streams.faust_app.pipeline import Pipeline
from streams.rules.effects import Effect, Publish
from streams.rules.quarantine import cut_raw, input_secret_rules, quarantine_headers, redact_record

SAMPLE_STAGES = {"rag-samples": "rag", "sft-samples": "sft", "preference-pairs": "preference"}
CANDIDATE_TOPICS = ("pair-candidates", "dedup-candidates")
WATERMARK_KEY = b"__watermark__"
TICK_KEY = b"__idle_tick__"  # a pair partition's clock: idle closes, and the retroactive pass's next slice


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


async def publish(
    pipeline: Pipeline, source: TP | None, topic: str, key: bytes, value: bytes | None,
    headers: list[tuple[str, bytes]] | None = None, partition: int | None = None,
) -> None:
    """Send one message, inside the transaction of ``source`` (the partition of the event it
    comes from; None for a timer's tick) when exactly-once.

    Faust's transaction manager picks the transaction of the *destination* partition, so
    an output keyed to another partition than its source would commit apart from the
    source offset (lost on a crash, or refused on a worker that does not own it). The
    transaction of the *source* partition is the one committed with its offset. Such a
    message waits in the pipeline's outbox until the commit (``streams.faust_app.outbox``)."""
    app = pipeline.app
    if source is None or not app.in_transaction:
        if app.in_transaction:  # a timer's tick: harmless outside any transaction
            await app.producer.send(pipeline.topics[topic].get_topic_name(), key, value, partition, None, headers)
            return
        await pipeline.topics[topic].send(key=key, value=value, headers=headers, partition=partition, force=True)
        return
    pipeline.outbox.add(source, pipeline.topics[topic].get_topic_name(), key, value, headers, partition)


async def send_tick(pipeline: Pipeline, partition: int) -> None:
    """Ask pair partition ``partition`` (and the join partition of its number) to look at its
    clocks: a message outside any transaction (harmless if lost or repeated)."""
    await publish(pipeline, None, "pair-candidates", TICK_KEY, dumps(time.time()), partition=partition)


async def send_effects(pipeline: Pipeline, source: TP, effects: list[Effect], watermark: Watermark | None = None) -> None:
    """Send the effects in order; pair and dedup candidates join the batch's candidate messages
    (``streams.faust_app.candidates``), pair candidates stamped with ``watermark``:
    ``send_candidates`` sends them."""
    for effect in effects:
        if isinstance(effect, Publish) and effect.topic in CANDIDATE_TOPICS:
            batches = pipeline.candidates if effect.topic == "pair-candidates" else pipeline.dedup_candidates
            mark = watermark.stream_time if watermark and effect.topic == "pair-candidates" else None
            for target, value in batches.add(source.partition, effect.key, mark, effect.value):
                await publish_candidates(pipeline, source, effect.topic, target, value)
        elif isinstance(effect, Publish):
            await publish(pipeline, source, effect.topic, effect.key.encode(), effect.value)
            if effect.topic in SAMPLE_STAGES:
                metrics = pipeline.metrics
                metrics.count(metrics.samples if effect.value is not None else metrics.retractions,
                              SAMPLE_STAGES[effect.topic])
        else:
            await send_quarantine(pipeline, source, effect)


def is_candidate(effect: Effect) -> bool:
    """A pair candidate: what a watermark is stamped on."""
    return isinstance(effect, Publish) and effect.topic == "pair-candidates"


async def send_candidates(pipeline: Pipeline, topic: str) -> None:
    """Send the candidate messages of the batch just decided (events of ``topic``), each in
    the transaction of the partition its candidates came from."""
    for candidates, batches in (("pair-candidates", pipeline.candidates), ("dedup-candidates", pipeline.dedup_candidates)):
        for source, target, value in batches.take():
            await publish_candidates(pipeline, TP(topic, source), candidates, target, value)


async def publish_candidates(pipeline: Pipeline, source: TP, topic: str, target: int, value: bytes) -> None:
    """One candidate batch message; its headers name the source partition (the watermarks
    of pair candidates are in the value, one per candidate)."""
    await publish(pipeline, source, topic, CANDIDATES_KEY, value, Watermark(source.partition, None).headers(),
                  partition=target)


async def send_quarantine(pipeline: Pipeline, source: TP, record: QuarantineRecord) -> None:
    """Every quarantine record passes here. An ``input`` record is the one kind that carries what
    was never screened (an invalid message's object and raw bytes, a key, errors quoting them),
    so this is where its secrets are replaced (SPEC 10); records of the later stages are built
    from the join's state, whose records were redacted when they arrived (measured: scanning
    those again was 40% of the scanner's cost, and found nothing)."""
    if pipeline.scanner is not None and record.stage == "input":
        record, _ = redact_record(record, pipeline.scanner)
        for rule in input_secret_rules(record.model_dump(mode="json")):  # each secret of the message once
            pipeline.metrics.count(pipeline.metrics.secret_findings, rule)
    record = cut_raw(record)
    pipeline.metrics.quarantined(record.stage, record.reason)
    await publish(pipeline, source, "quarantine", record.id.encode(), encode(record), quarantine_headers(record))
