"""Preference pairs on the real broker: closing by stream time and by idleness, fallback,
cap, late arrival, retraction on re-score, and a restart with open windows."""

import asyncio
import hashlib
import time

import pytest

from schemas.codec import loads
from streams.broker import kafka_io
from streams.commands.stats import consumer_lag
from tests.integration.conftest import ingest, running_worker, settle_and_export, write_jsonl

pytestmark = pytest.mark.integration

DAY = "2026-04-20"


def evidence(run_id, task, text=None):
    return {"schema_version": 1, "run_id": run_id, "task_id": task, "source_category": "scrum_reviews",
            "text": text or f"answer of {run_id}", "source_files": ["src/a.py"],
            "provenance": {"source_file": "e.jsonl", "line_offset": 1, "sig_hash": "aa", "recorded_at": f"{DAY}T00:00:00Z"}}


def score(run_id, task, category, at):
    return {"schema_version": 1, "evidence_run_id": run_id, "evidence_task_id": task, "category": category,
            "reasons": [f"why {run_id}"], "scored_at": at,
            "provenance": {"source_file": "s.jsonl", "line_offset": 2, "sig_hash": "bb", "recorded_at": at}}


def pair_id(chosen, rejected, task):
    return "pref-" + hashlib.sha256(f"{chosen}|{rejected}|{task}".encode()).hexdigest()[:16]


async def publish(settings, tmp_path, runs, name):
    """runs: (run_id, task, category, scored_at) tuples; evidence first, then scores."""
    ev = write_jsonl(tmp_path / f"{name}-e.jsonl", [evidence(r, t) for r, t, _, _ in runs])
    sc = write_jsonl(tmp_path / f"{name}-s.jsonl", [score(r, t, c, at) for r, t, c, at in runs])
    await ingest(settings, [ev], [sc])


async def preference_messages(settings) -> list[tuple[str, bool]]:
    """Every message of the preference topic in order: (key, is_tombstone)."""
    return [(m.key.decode(), m.value is None)
            async for m in kafka_io.read_topic(settings, settings.topic("preference-pairs"))]


async def until(condition, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not (result := await condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.3)
    return result


async def test_window_closes_by_stream_time_not_before(make_settings, tmp_path):
    settings = make_settings(partitions=1, pair_idle_close=3600)
    await publish(settings, tmp_path, [("a1", "t", "accepted", f"{DAY}T01:00:00Z"),
                                       ("r1", "t", "rejected", f"{DAY}T02:00:00Z")], "day1")
    async with running_worker(settings):
        await until(lambda: all_consumed(settings))
        assert await preference_messages(settings) == []  # the window is still open
        # Stream time passes the end of the day plus grace (10 min): the window closes.
        await publish(settings, tmp_path, [("x1", "other", "accepted", "2026-04-21T00:10:01Z")], "day2")
        messages = await until(lambda: preference_messages(settings))
    assert messages == [(pair_id("a1", "r1", "t"), False)]


async def all_consumed(settings) -> bool:
    return await consumer_lag(settings) == 0


async def quarantine_records(settings):
    async for message in kafka_io.read_topic(settings, settings.topic("quarantine")):
        yield loads(message.value)


async def test_idle_window_closes_by_the_clock(make_settings, tmp_path):
    settings = make_settings(pair_idle_close=2)
    await publish(settings, tmp_path, [("a1", "t", "accepted", f"{DAY}T01:00:00Z"),
                                       ("r1", "t", "rejected", f"{DAY}T02:00:00Z")], "only")
    async with running_worker(settings):
        rows = await settle_and_export(settings)
    assert [(p["chosen_run_id"], p["rejected_run_id"]) for p in rows["preference"]] == [("a1", "r1")]


async def test_fallback_to_partial_and_the_cap(make_settings, tmp_path):
    settings = make_settings(max_pairs_per_task=5)
    runs = [("p-a", "partial-task", "accepted", f"{DAY}T01:00:00Z"),
            ("p-p", "partial-task", "partially_accepted", f"{DAY}T01:30:00Z"),
            ("p-h", "partial-task", "needs_human_review", f"{DAY}T01:40:00Z")]
    runs += [(f"c-a{i}", "capped", "accepted", f"{DAY}T02:0{i}:00Z") for i in range(3)]
    runs += [(f"c-r{i}", "capped", "rejected", f"{DAY}T03:0{i}:00Z") for i in range(3)]
    await publish(settings, tmp_path, runs, "mix")
    async with running_worker(settings):
        rows = await settle_and_export(settings)
    pairs = {(p["chosen_run_id"], p["rejected_run_id"]) for p in rows["preference"]}
    assert ("p-a", "p-p") in pairs and not any("p-h" in pair for pair in pairs)
    capped = [(c, r) for c, r in pairs if c.startswith("c-")]
    # accepted x rejected in (scored_at, run_id) order, cut at five
    assert sorted(capped) == sorted([("c-a0", "c-r0"), ("c-a0", "c-r1"), ("c-a0", "c-r2"),
                                     ("c-a1", "c-r0"), ("c-a1", "c-r1")])


async def test_late_arrival_and_retraction_on_rescore(make_settings, tmp_path):
    settings = make_settings(partitions=1, pair_idle_close=3600)
    await publish(settings, tmp_path, [("a1", "t", "accepted", f"{DAY}T01:00:00Z"),
                                       ("r1", "t", "rejected", f"{DAY}T02:00:00Z"),
                                       ("x1", "other", "accepted", "2026-04-21T00:10:01Z")], "first")
    async with running_worker(settings):
        await until(lambda: preference_messages(settings))
        # A run for the closed window: late for pairing, still gets its RAG and SFT outcomes.
        await publish(settings, tmp_path, [("late", "t", "rejected", f"{DAY}T03:00:00Z")], "late")
        # The chosen run is re-scored as rejected: its pair is no longer supported.
        rescore = write_jsonl(tmp_path / "rescore.jsonl", [score("a1", "t", "rejected", "2026-04-21T00:20:00Z")])
        await ingest(settings, scores=[rescore])
        messages = await until(lambda: _two(preference_messages(settings)))
        await until(lambda: all_consumed(settings))
    pid = pair_id("a1", "r1", "t")
    assert messages == [(pid, False), (pid, True)]
    found = {(r["stage"], r["reason"], r["run_id"])
             async for r in quarantine_records(settings)}
    assert ("preference", "late_arrival", "late") in found
    assert ("preference", "invalid_preference_pairing", "a1") in found
    assert ("rag", "unsafe_rag_category", "late") in found


async def _two(coro):
    messages = await coro
    return messages if len(messages) >= 2 else None


async def test_restart_with_open_windows_loses_and_repeats_nothing(make_settings, tmp_path):
    settings = make_settings(partitions=1, pair_idle_close=3600)
    await publish(settings, tmp_path, [("a1", "t", "accepted", f"{DAY}T01:00:00Z"),
                                       ("r1", "t", "rejected", f"{DAY}T02:00:00Z")], "before")
    async with running_worker(settings):
        await until(lambda: all_consumed(settings))
    assert await preference_messages(settings) == []
    # The worker is gone with its window open; a new one restores the buffer from the changelog.
    await publish(settings, tmp_path, [("r2", "t", "rejected", f"{DAY}T03:00:00Z"),
                                       ("x1", "other", "accepted", "2026-04-21T00:10:01Z")], "after")
    async with running_worker(settings):
        messages = await until(lambda: _two(preference_messages(settings)))
        await until(lambda: all_consumed(settings))
    assert sorted(messages) == sorted([(pair_id("a1", "r1", "t"), False), (pair_id("a1", "r2", "t"), False)])
