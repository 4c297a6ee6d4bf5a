"""``/metrics`` of a real worker agrees with ``distill stats`` after the bundled sample."""

import asyncio
import socket
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.commands.manifest_publish import manifest_paths, publish_manifest
from streams.commands.stats import collect
from streams.commands.wait import wait_caught_up
from tests.integration.conftest import SAMPLE_DATA, ingest, running_worker

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def scrape(url: str, timeout: float = 60.0) -> tuple[str, dict[tuple[str, tuple], float]]:
    """Content type and every sample as {(name, sorted labels): value}; retries until the server is up."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    assert response.status == 200, await response.text()
                    text = await response.text()
                    content_type = response.headers["Content-Type"]
                    break
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return content_type, samples


def figures(samples: dict) -> dict:
    """The scraped figures in the shape of ``Stats``, for one comparison."""
    by_name: dict[str, dict[tuple, float]] = {}
    for (name, labels), value in samples.items():
        by_name.setdefault(name, {})[labels] = value
    quarantine: dict[str, dict[str, int]] = {}
    for labels, value in by_name.get("distill_quarantined_total", {}).items():
        label = dict(labels)
        quarantine.setdefault(label["stage"], {})[label["reason"]] = int(value)
    emitted = {dict(k)["stage"]: int(v) for k, v in by_name.get("distill_samples_emitted_total", {}).items()}
    return {
        # Live = emitted - retracted: the sample has no re-scores, but a copy whose candidate
        # reaches the dedup agent before its original's is the sample until the original's
        # arrives (SPEC 11), then retracted. retractions() says how many.
        "samples_live": {stage: n - retractions(samples).get(stage, 0) for stage, n in emitted.items()},
        "quarantine_by_stage_reason": {s: dict(sorted(r.items())) for s, r in sorted(quarantine.items())},
        "pending_joins": int(by_name["distill_pending_joins"][()]),
        "open_windows": int(by_name["distill_open_pair_windows"][()]),
        "processed": int(by_name["distill_processing_seconds_count"][()]),
    }


def retractions(samples: dict) -> dict[str, int]:
    """Samples retracted with a tombstone, by stage."""
    return {dict(labels)["stage"]: int(value) for (name, labels), value in samples.items()
            if name == "distill_samples_retracted_total"}


def expected(stats) -> dict:
    return {
        "samples_live": stats.samples_live,
        "quarantine_by_stage_reason": stats.quarantine_by_stage_reason,
        "pending_joins": stats.pending_joins, "open_windows": stats.open_windows,
        "processed": stats.input_messages,
    }


async def test_metrics_equal_stats_after_the_bundled_sample(make_settings):
    settings = make_settings(web_enabled=True, web_port=free_port())
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    await publish_manifest(settings, manifest_paths(SAMPLE_DATA / "manifest.txt"))
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
    async with running_worker(settings):
        await wait_caught_up(settings, 120)
        # The last outcomes of a closing window may still be on their way: compare until they agree.
        deadline = time.monotonic() + 30
        while True:
            stats = await collect(settings)
            content_type, samples = await scrape(url)
            if figures(samples) == expected(stats) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)

    assert content_type.startswith("text/plain")
    assert figures(samples) == expected(stats)
    # At most one retraction per duplicate: the winner its original replaced (the arrival order
    # at the dedup agent decides how many).
    retracted = retractions(samples)
    assert all(n <= stats.duplicates.get(stage, 0) for stage, n in retracted.items()), (retracted, stats.duplicates)
    assert stats.balanced, stats.checks
    assert set(stats.samples_live) == {"rag", "sft", "preference"} and all(stats.samples_live.values())
    assert stats.pending_joins == 0 and stats.open_windows == 0
    inputs = {settings.topic("evidence"), settings.topic("scored-runs")}
    lag = {dict(k)["partition"]: v for (name, k), v in samples.items()
           if name == "distill_consumer_lag" and dict(k)["topic"] in inputs}
    assert lag and set(lag.values()) == {0.0}, lag
