"""Exactly-once: a worker that keeps up commits soon after a batch, not at its next commit interval
(streams/faust_fixes/prompt_commit.py): its samples are seen by a read_committed reader within seconds."""

import time

import pytest

from streams.broker import kafka_io
from tests.integration.conftest import GUARANTEE, ingest, running_worker, write_jsonl
from tests.integration.runs import synthetic_runs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(GUARANTEE != "exactly_once", reason="outputs are seen before any commit at-least-once"),
]

COMMIT_INTERVAL = 90.0  # Faust's timer commits first this long after the worker started


async def seconds_until_committed(settings, topic: str, count: int, timeout: float) -> float:
    """Seconds until a read_committed reader has seen ``count`` messages of ``topic``."""
    started = time.monotonic()
    async with kafka_io.started(kafka_io.consumer(settings, settings.topic(topic))) as reader:
        seen = 0
        while seen < count:
            assert time.monotonic() - started < timeout, f"{seen} of {count} {topic} messages seen in {timeout:.0f} s"
            batch = await reader.getmany(timeout_ms=200)
            seen += sum(len(messages) for messages in batch.values())
    return time.monotonic() - started


async def test_samples_are_seen_long_before_the_commit_interval(make_settings, tmp_path):
    settings = make_settings(commit_interval=COMMIT_INTERVAL)
    evidence, scores = synthetic_runs(12)
    accepted = sum(score["category"] == "accepted" for score in scores)
    assert accepted > 0
    async with running_worker(settings):
        await ingest(settings, [write_jsonl(tmp_path / "e.jsonl", evidence)], [write_jsonl(tmp_path / "s.jsonl", scores)])
        seconds = await seconds_until_committed(settings, "sft-samples", accepted, timeout=COMMIT_INTERVAL)
    # The worker's start is part of it; the timer's first commit would come after COMMIT_INTERVAL.
    assert seconds < COMMIT_INTERVAL / 2
