"""The pair agent: joined runs, re-keyed by task id, buffered per task window (SPEC 6).

Windows close by stream time (the latest ``scored_at`` on the partition), never by the
clock, so a replay closes them where the original run did; a tick sent by a timer
closes windows left idle at the tail of a stream. Faust's windowed tables are not used
(see FAUST-NOTES.md): the buffers are plain RocksDB rows restored from their changelog,
read and written through the pipeline's state cache. Events come in batches
(``streams.faust_app.agents.batches``) but are decided one by one: a watermark that moves closes
the windows it makes due before the next candidate is looked at, as it always did.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from faust.types import TP, EventT
from mode import CrashingSupervisor

from schemas.codec import dumps, loads
from streams.faust_app.agents.batches import process_batches, spill_when_full
from streams.faust_app.agents.emit import (
    TICK_KEY, WATERMARK_KEY, Watermark, send_candidates, send_effects, send_quarantine, send_tick,
)
from streams.faust_app.agents.join_agent import rejudge_if_stale
from streams.faust_app.candidates import CANDIDATES_KEY, read_batch
from streams.faust_app.health import OpenWindow
from streams.faust_app.open_windows import OpenWindows
from streams.faust_app.pipeline import Pipeline
from streams.faust_fixes.prompt_commit import note_batch
from streams.rules.dedup import sample_content_key
from streams.rules.pair_effects import plan_effects
from streams.rules.pairing import (
    PairRun,
    PairWindow,
    admit,
    change_closed,
    close,
    least_watermark,
    window_closes_at,
    window_key,
    window_start,
    withdraw,
)
from streams.rules.quarantine import SourceMessage, quarantine_record

LATE = "late"  # pair_run_window value of a run refused as late_arrival


def register(pipeline: Pipeline) -> None:
    app, progress = pipeline.app, pipeline.progress
    candidates = pipeline.topics["pair-candidates"]

    @app.agent(candidates, name="pair", supervisor_strategy=CrashingSupervisor)
    async def pair(stream):
        await process_batches(pipeline, stream, on_batch)

    async def on_batch(events: Sequence[EventT]) -> None:
        for event in events:
            await on_message(event)
        await send_candidates(pipeline, events[0].message.topic)  # the pairs for their dedup groups
        note_batch(pipeline, events, pipeline.inputs_processed())  # caught up: the pairs it decided commit soon

    async def on_message(event: EventT) -> None:
        partition, source = event.message.partition, event.message.tp
        if event.message.key == TICK_KEY:
            progress.tick_read_at[partition] = time.monotonic()
            if pipeline.evalsets.ready.is_set():  # the join partition of the same number, after a change of sets
                await rejudge_if_stale(pipeline, source, pipeline.content_gates())
            now = loads(event.message.value)
            # Idleness is the stream's, not one window's: while a backlog flows, windows close
            # by stream time only. A partition not heard of since the last rebalance starts
            # being quiet at that rebalance's end (or at the tick, if later): ticks sent during
            # the pause are read after it, and what another worker read from the partition
            # meanwhile was never heard here.
            quiet_since = progress.quiet_since.setdefault(partition, max(now, progress.resumed_wall))
            if now - quiet_since >= pipeline.settings.pair_idle_close:
                await close_idle_windows(pipeline, source, now)
            return
        progress.quiet_since[partition] = time.time()
        stamp = Watermark.from_headers(event.message.headers)
        if event.message.key == CANDIDATES_KEY:
            for mark, candidate in read_batch(event.message.value):
                await take_candidate(pipeline, source, Watermark(stamp.partition, mark), candidate)
        elif event.message.key == WATERMARK_KEY:
            if take_watermark(pipeline, partition, stamp):
                await close_due_windows(pipeline, source)
        else:  # one candidate keyed by its task, as versions before candidate batches sent them
            await take_candidate(pipeline, source, stamp, loads(event.message.value))

    @app.timer(interval=pipeline.settings.pair_tick_interval)
    async def idle_tick() -> None:
        await send_ticks(pipeline)


async def send_ticks(pipeline: Pipeline) -> None:
    """Idleness is wall-clock time, but state may only change inside the stream: ask it (a
    change of the evaluation sets asks at once, for the partitions' retroactive pass)."""
    for partition in range(pipeline.settings.partitions):
        await send_tick(pipeline, partition)
    pipeline.progress.tick_sent_at = time.monotonic()


@dataclass(frozen=True)
class WindowRow:
    """A ``pair_windows`` row: the window, each run's score source, whether it closed
    insufficient; while open, also its partition and the wall-clock time it last took a run
    (with the window's start, what the open-window index is rebuilt from)."""

    window: PairWindow
    sources: dict
    insufficient: bool = False
    partition: int | None = None
    active_at: float | None = None

    def encode(self) -> bytes:
        # "open" first: a scan for open windows skips closed rows without decoding them.
        return dumps({"open": not self.window.closed, "partition": self.partition, "active_at": self.active_at,
                      "window": self.window.to_dict(), "sources": self.sources, "insufficient": self.insufficient})

    @classmethod
    def decode(cls, raw: bytes) -> "WindowRow":
        row = loads(raw)  # rows of versions before the open-window fields lack them
        return cls(PairWindow.from_dict(row["window"]), row["sources"], row["insufficient"],
                   row.get("partition"), row.get("active_at"))

    @staticmethod
    def is_closed(raw: bytes) -> bool:
        """True for a closed row of this version, known without decoding it."""
        return raw.startswith(_CLOSED_ROW)


_CLOSED_ROW = b'{"open":false,'


def _load(pipeline: Pipeline, partition: int, key: str) -> WindowRow | None:
    return pipeline.state.get_decoded("pair_windows", partition, key.encode(), WindowRow.decode)


def _save(pipeline: Pipeline, partition: int, key: str, window: PairWindow, sources: dict, insufficient: bool = False) -> None:
    """Write the window's row (kept as an object until the commit: a window is rewritten by
    every run it takes) and keep the partition's open-window index in step with it."""
    settings, index = pipeline.settings, open_windows(pipeline, partition)
    if window.closed:
        # Encoded now: a closed window is rarely written again, and its runs as objects took
        # twice the memory (measured) while a day's windows closed at once (``spill_when_full``).
        index.discard(key)
        pipeline.state.set("pair_windows", partition, key.encode(), WindowRow(window, sources, insufficient).encode())
        return
    row = WindowRow(window, sources, insufficient, partition, time.time())
    index.note(OpenWindow(key, window_closes_at(window.start, settings.pair_window, settings.pair_grace), row.active_at))
    pipeline.state.set_decoded("pair_windows", partition, key.encode(), row, WindowRow.encode)


def open_windows(pipeline: Pipeline, partition: int) -> OpenWindows:
    """The partition's index of open windows, rebuilt from its ``pair_windows`` rows once a
    rebalance. A window of an earlier version that does not say when it last took a run
    counts as active now (its idle close then comes at most one idle close late)."""
    index = pipeline.open_windows.get(partition)
    if index is None:
        settings, now, found = pipeline.settings, time.time(), []
        for raw_key, raw in pipeline.state.items("pair_windows", partition):
            if WindowRow.is_closed(raw):
                continue
            row = WindowRow.decode(raw)
            # The agent tests' in-memory store has one partition for all.
            if row.window.closed or row.partition not in (None, partition):
                continue
            closes_at = window_closes_at(row.window.start, settings.pair_window, settings.pair_grace)
            found.append(OpenWindow(raw_key.decode(), closes_at, row.active_at or now))
        index = pipeline.open_windows[partition] = OpenWindows(found)
    return index


async def take_candidate(pipeline: Pipeline, source: TP, mark: Watermark | None, candidate: dict) -> None:
    """The watermark the candidate was stamped with, the candidate, then what the watermark made due."""
    moved = take_watermark(pipeline, source.partition, mark)
    await handle_candidate(pipeline, source, candidate)
    if moved:
        await close_due_windows(pipeline, source)


async def handle_candidate(pipeline: Pipeline, source: TP, candidate: dict) -> None:
    settings, state_cache = pipeline.settings, pipeline.state
    run_id = candidate["run_id"]
    run = PairRun.from_dict(candidate["run"]) if candidate["run"] else None
    partition = source.partition
    known = admitted_window(pipeline, partition, candidate)
    if known == LATE:
        return
    if known is not None:
        stored = _load(pipeline, partition, known)
        window = stored.window
        sources = stored.sources | {run_id: candidate["score_source"]}
        if window.closed:
            window, changes = change_closed(window, run, run_id, settings.max_pairs_per_task, _content_key(pipeline))
            _save(pipeline, partition, known, window, sources, changes.insufficient)
            await send_effects(pipeline, source, plan_effects(window, changes, sources))
        else:
            window = admit(window, run) if run else withdraw(window, run_id)
            _save(pipeline, partition, known, window, sources)
    elif run is not None:
        start = window_start(run.scored_at_epoch, settings.pair_window)
        key = window_key(run.task_id, start)
        stored = _load(pipeline, partition, key)
        closes_at = window_closes_at(start, settings.pair_window, settings.pair_grace)
        if (stored and stored.window.closed) or stream_time(pipeline, partition) > closes_at:
            state_cache.set("pair_run_window", partition, run_id.encode(), LATE.encode())
            await send_quarantine(pipeline, source, quarantine_record(
                stage="preference", reason="late_arrival", subject=run_id,
                errors=[f"window {key} of task {run.task_id!r} closed before run {run_id!r} arrived"],
                source=SourceMessage.from_dict(candidate["score_source"]), run_id=run_id, task_id=run.task_id,
                source_record={"run_id": run_id, "task_id": run.task_id, "scored_at": run.scored_at},
                source_provenance=run.provenance,
            ))
        else:
            window = stored.window if stored else PairWindow(run.task_id, start)
            sources = (stored.sources if stored else {}) | {run_id: candidate["score_source"]}
            _save(pipeline, partition, key, admit(window, run), sources)


def admitted_window(pipeline: Pipeline, partition: int, candidate: dict) -> str | None:
    """The key of the window this partition admitted the run to, ``LATE`` if it refused it
    as late, None if neither.

    ``pair_run_window`` keeps the late ones (and, from versions before ``first_scored_at``,
    every run's window); otherwise the window is the one holding the run's first candidate
    of a task, if that window took the run: one read, and no row written a run."""
    run_id = candidate["run_id"]
    known = pipeline.state.get("pair_run_window", partition, run_id.encode())
    if known is not None:
        return known.decode()
    for task_id, scored_at_epoch in candidate.get("first_scored_at", {}).items():
        key = window_key(task_id, window_start(scored_at_epoch, pipeline.settings.pair_window))
        stored = _load(pipeline, partition, key)
        if stored is not None and run_id in stored.sources:
            return key
    return None


def stream_time(pipeline: Pipeline, partition: int) -> float:
    """The least watermark of all join partitions feeding this one (-inf until all spoke)."""
    raw = pipeline.state.get("stream_time", partition, f"pair:{partition}".encode())
    return least_watermark(loads(raw) if raw is not None else {}, pipeline.settings.partitions)


def take_watermark(pipeline: Pipeline, partition: int, mark: Watermark | None) -> bool:
    """Record a source's watermark; True when it moved this partition's stream time."""
    if mark is None or mark.stream_time is None:
        return False
    key = f"pair:{partition}".encode()
    raw = pipeline.state.get("stream_time", partition, key)
    marks = loads(raw) if raw is not None else {}
    if marks.get(str(mark.partition), float("-inf")) >= mark.stream_time:
        return False
    before = stream_time(pipeline, partition)
    pipeline.state.set("stream_time", partition, key, dumps(marks | {str(mark.partition): mark.stream_time}))
    return stream_time(pipeline, partition) > before


async def close_due_windows(pipeline: Pipeline, source: TP) -> None:
    now, index = stream_time(pipeline, source.partition), open_windows(pipeline, source.partition)
    if now > index.earliest_close:
        for key in index.take_due(lambda window: now > window.closes_at):
            await close_window(pipeline, source, key)
            await spill_when_full(pipeline)


async def close_idle_windows(pipeline: Pipeline, source: TP, now: float) -> None:
    """Close what idled on a quiet partition, and what its stream time passed."""
    idle, passed = pipeline.settings.pair_idle_close, stream_time(pipeline, source.partition)
    for key in open_windows(pipeline, source.partition).take_due(
            lambda window: now - window.active_at >= idle or passed > window.closes_at):
        await close_window(pipeline, source, key)
        await spill_when_full(pipeline)


async def close_window(pipeline: Pipeline, source: TP, key: str) -> None:
    partition = source.partition
    stored = _load(pipeline, partition, key)
    window, changes = close(stored.window, pipeline.settings.max_pairs_per_task, _content_key(pipeline))
    _save(pipeline, partition, key, window, stored.sources, changes.insufficient)
    await send_effects(pipeline, source, plan_effects(window, changes, stored.sources))


def _content_key(pipeline: Pipeline):
    """How a pair is keyed for its dedup group; None with dedup off (pairs go straight out)."""
    return sample_content_key if pipeline.settings.dedup else None
