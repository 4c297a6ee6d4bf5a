"""The pair agent: joined runs, re-keyed by task id, buffered per task window (SPEC 6).

Windows close by stream time (the latest ``scored_at`` on the partition), never by the
clock, so a replay closes them where the original run did; a tick sent by a timer
closes windows left idle at the tail of a stream. Faust's windowed tables are not used
(see FAUST-NOTES.md): the buffers are plain RocksDB rows restored from their changelog.
"""

import time

from faust.types import EventT
from mode import CrashingSupervisor

from schemas import PreferenceSample
from schemas.codec import dumps, encode, loads
from streams.agents.emit import WATERMARK_KEY, Watermark, publish, send_effects, send_quarantine
from streams.app import Pipeline
from streams.join import Publish
from streams.pairing import (
    PairRejection, PairRun, PairWindow, admit, close, least_watermark, rescore_closed, window_closes_at, window_start, withdraw,
)
from streams.quarantine import SourceMessage, quarantine_record
from streams.skip_guard import check_first_delivery
from streams.tables import lookup

TICK_KEY = b"__idle_tick__"
LATE = "late"  # pair_run_window value of a run refused as late_arrival


def register(pipeline: Pipeline) -> None:
    app, progress = pipeline.app, pipeline.progress
    candidates = pipeline.topics["pair-candidates"]

    @app.agent(candidates, name="pair", supervisor_strategy=CrashingSupervisor)
    async def pair(stream):
        async for event in stream.events():
            async with pipeline.processing_lock:
                await check_first_delivery(pipeline, event)
                await on_message(event)
            progress.processed(event.message.tp, event.message.offset)

    async def on_message(event: EventT) -> None:
        partition = event.message.partition
        if event.message.key == TICK_KEY:
            progress.tick_read_at[partition] = time.monotonic()
            now = loads(event.message.value)
            # Idleness is the stream's, not one window's: while a backlog flows, windows close
            # by stream time only. A partition first heard of now starts being quiet now.
            if now - progress.quiet_since.setdefault(partition, now) >= pipeline.settings.pair_idle_close:
                await close_idle_windows(pipeline, partition, now)
            return
        progress.quiet_since[partition] = time.time()
        moved = take_watermark(pipeline, partition, Watermark.from_headers(event.message.headers))
        if event.message.key != WATERMARK_KEY:
            await handle_candidate(pipeline, event)
        if moved:
            await close_due_windows(pipeline, partition)

    @app.timer(interval=pipeline.settings.pair_tick_interval)
    async def idle_tick() -> None:
        """Idleness is wall-clock time, but state may only change inside the stream: ask it."""
        for partition in range(pipeline.settings.partitions):
            await publish(pipeline, "pair-candidates", TICK_KEY, dumps(time.time()), partition=partition)
        progress.tick_sent_at = time.monotonic()


def _load(pipeline: Pipeline, key: str) -> dict | None:
    raw = lookup(pipeline.tables.pair_windows, key)
    return loads(raw) if raw is not None else None


def _save(pipeline: Pipeline, key: str, window: PairWindow, sources: dict, insufficient: bool = False) -> None:
    pipeline.tables.pair_windows[key] = dumps({"window": window.to_dict(), "sources": sources, "insufficient": insufficient})


async def handle_candidate(pipeline: Pipeline, event: EventT) -> None:
    settings, tables = pipeline.settings, pipeline.tables
    candidate = loads(event.message.value)
    run_id = candidate["run_id"]
    run = PairRun.from_dict(candidate["run"]) if candidate["run"] else None
    partition = event.message.partition
    known = lookup(tables.pair_run_window, run_id)
    known = known.decode() if known is not None else None
    if known == LATE:
        return
    if known is not None:
        stored = _load(pipeline, known)
        window = PairWindow.from_dict(stored["window"])
        sources = stored["sources"] | {run_id: candidate["score_source"]}
        if window.closed:
            window, retractions = rescore_closed(window, run, run_id)
            _save(pipeline, known, window, sources, stored["insufficient"])
            for retraction in retractions:
                await send_effects(pipeline, [Publish("preference-pairs", retraction.pair_id, None)])
                chosen_source = SourceMessage.from_dict(sources[retraction.chosen_run_id])
                await send_quarantine(pipeline, quarantine_record(
                    stage="preference", reason="invalid_preference_pairing", subject=retraction.pair_id,
                    errors=[f"retracted {retraction.pair_id}", *retraction.errors], source=chosen_source,
                    run_id=retraction.chosen_run_id, task_id=retraction.task_id,
                    source_record={"task_id": retraction.task_id, "chosen_run_id": retraction.chosen_run_id,
                                   "rejected_run_id": retraction.rejected_run_id},
                ))
        else:
            window = admit(window, run) if run else withdraw(window, run_id)
            _save(pipeline, known, window, sources)
            touch_open_window(pipeline, known, partition)
    elif run is not None:
        start = window_start(run.scored_at_epoch, settings.pair_window)
        key = f"{run.task_id}|{start:.0f}"
        stored = _load(pipeline, key)
        closes_at = window_closes_at(start, settings.pair_window, settings.pair_grace)
        if (stored and stored["window"]["closed"]) or stream_time(pipeline, partition) > closes_at:
            tables.pair_run_window[run_id] = LATE.encode()
            await send_quarantine(pipeline, quarantine_record(
                stage="preference", reason="late_arrival", subject=run_id,
                errors=[f"window {key} of task {run.task_id!r} closed before run {run_id!r} arrived"],
                source=SourceMessage.from_dict(candidate["score_source"]), run_id=run_id, task_id=run.task_id,
                source_record={"run_id": run_id, "task_id": run.task_id, "scored_at": run.scored_at},
                source_provenance=run.provenance,
            ))
        else:
            window = PairWindow.from_dict(stored["window"]) if stored else PairWindow(run.task_id, start)
            sources = (stored["sources"] if stored else {}) | {run_id: candidate["score_source"]}
            _save(pipeline, key, admit(window, run), sources)
            tables.pair_run_window[run_id] = key.encode()
            touch_open_window(pipeline, key, partition, closes_at)


def stream_time(pipeline: Pipeline, partition: int) -> float:
    """The least watermark of all join partitions feeding this one (-inf until all spoke)."""
    raw = lookup(pipeline.tables.stream_time, f"pair:{partition}")
    return least_watermark(loads(raw) if raw is not None else {}, pipeline.settings.partitions)


def take_watermark(pipeline: Pipeline, partition: int, mark: Watermark | None) -> bool:
    """Record a source's watermark; True when it moved this partition's stream time."""
    if mark is None or mark.stream_time is None:
        return False
    key = f"pair:{partition}"
    raw = lookup(pipeline.tables.stream_time, key)
    marks = loads(raw) if raw is not None else {}
    if marks.get(str(mark.partition), float("-inf")) >= mark.stream_time:
        return False
    before = stream_time(pipeline, partition)
    pipeline.tables.stream_time[key] = dumps(marks | {str(mark.partition): mark.stream_time})
    return stream_time(pipeline, partition) > before


def touch_open_window(pipeline: Pipeline, key: str, partition: int, closes_at: float | None = None) -> None:
    """Index an open window with the wall-clock time it last took a run.

    Beside the index, each partition keeps lower bounds of its windows' close times and
    activity times: a sweep reads the index only when one of them says a window may be
    due, so the per-message cost does not grow with the number of open windows."""
    index, now = pipeline.tables.open_windows, time.time()
    raw = lookup(index, key)
    if raw is not None:
        entry = loads(raw)
    else:
        entry = {"partition": partition, "closes_at": closes_at}
        bounds = _bounds(pipeline, partition)
        _set_bounds(pipeline, partition, min(bounds["closes_at"], closes_at), min(bounds["active_at"], now))
    entry["active_at"] = now
    index[key] = dumps(entry)


def _bounds(pipeline: Pipeline, partition: int) -> dict:
    raw = lookup(pipeline.tables.stream_time, f"open_bounds:{partition}")
    return loads(raw) if raw is not None else {"closes_at": float("inf"), "active_at": float("inf")}


def _set_bounds(pipeline: Pipeline, partition: int, closes_at: float, active_at: float) -> None:
    key = f"open_bounds:{partition}"
    if closes_at == float("inf"):
        if key in pipeline.tables.stream_time:
            del pipeline.tables.stream_time[key]
    else:
        pipeline.tables.stream_time[key] = dumps({"closes_at": closes_at, "active_at": active_at})


async def close_due_windows(pipeline: Pipeline, partition: int) -> None:
    now = stream_time(pipeline, partition)
    if now > _bounds(pipeline, partition)["closes_at"]:
        await _sweep(pipeline, partition, lambda entry: now > entry["closes_at"])


async def close_idle_windows(pipeline: Pipeline, partition: int, now: float) -> None:
    """Close what idled on a quiet partition, and what its stream time passed.

    This sweep reads the whole index, not the bounds: a tick comes once a tick interval,
    and if the bounds were ever wrong (too late), the windows of a quiet partition would
    otherwise stay open for good, with nothing to say so."""
    idle, passed = pipeline.settings.pair_idle_close, stream_time(pipeline, partition)
    await _sweep(pipeline, partition, lambda entry: now - entry["active_at"] >= idle or passed > entry["closes_at"])


async def _sweep(pipeline: Pipeline, partition: int, is_due) -> None:
    """Close the partition's windows that are due, in key order, and tighten the bounds."""
    due, staying = [], []
    for raw_key, raw in pipeline.tables.open_windows.items():
        entry = loads(raw)
        if entry["partition"] == partition:
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            (due if is_due(entry) else staying).append((key, entry))
    for key, _ in sorted(due):
        await close_window(pipeline, key)
    _set_bounds(pipeline, partition, min((e["closes_at"] for _, e in staying), default=float("inf")),
                min((e["active_at"] for _, e in staying), default=float("inf")))


async def close_window(pipeline: Pipeline, key: str) -> None:
    stored = _load(pipeline, key)
    window = PairWindow.from_dict(stored["window"])
    emitted_before = set(window.emitted)
    window, outcomes, insufficient = close(window, pipeline.settings.max_pairs_per_task, emitted_before.__contains__)
    _save(pipeline, key, window, stored["sources"], insufficient)
    del pipeline.tables.open_windows[key]
    for outcome in outcomes:
        if isinstance(outcome, PreferenceSample):
            await send_effects(pipeline, [Publish("preference-pairs", outcome.id, encode(outcome))])
        else:
            await send_rejected_pair(pipeline, outcome, stored["sources"])


async def send_rejected_pair(pipeline: Pipeline, rejection: PairRejection, sources: dict) -> None:
    await send_quarantine(pipeline, quarantine_record(
        stage="preference", reason=rejection.reason, subject=rejection.pair_id, errors=rejection.errors,
        source=SourceMessage.from_dict(sources[rejection.chosen_run_id]), run_id=rejection.chosen_run_id,
        task_id=rejection.task_id,
        source_record={"task_id": rejection.task_id, "chosen_run_id": rejection.chosen_run_id,
                       "rejected_run_id": rejection.rejected_run_id},
    ))
