"""``GET /health`` and the watchdog timer: a worker that holds work and stops moving says so.

The verdict (``streams.faust_app.health``) is taken from what the worker already has in memory
(the consumer's fetch state, the agents' progress) and from the open-window index of the
pair partitions it holds. Only a partition quiet for the whole stall timeout with offsets
past what was processed is read (read_committed, once for those offsets), since
transaction markers take offsets too. While a rebalance runs (the tables are being
restored) the worker counts as moving. The Kubernetes liveness probe reads ``/health``
(``deploy/worker.yaml``): a 503 restarts the pod.
"""

import logging
import time
from dataclasses import replace

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response, View

from streams.broker import kafka_io
from streams.faust_app.agents.pair_agent import stream_time
from streams.faust_app.agents.web import CONSUMED
from streams.faust_app.health import InputView, Limits, PairView, StallDetector, Verdict
from streams.faust_app.pipeline import Pipeline

log = logging.getLogger(__name__)


class StalledWorker(RuntimeError):
    """The worker holds work and nothing moved for DISTILL_STALL_TIMEOUT; it starts over."""


def register(pipeline: Pipeline) -> None:
    app, settings = pipeline.app, pipeline.settings
    detector = StallDetector(Limits(
        settings.stall_timeout, settings.pair_idle_close, settings.pair_tick_interval,
        commit_interval=app.conf.broker_commit_interval,
    ))
    app.on_rebalance_complete.connect(pipeline.progress.resumed)
    reported: list[Verdict] = []  # the verdict last logged

    read: dict[tuple, int] = {}  # (topic, partition, start, stable end) -> messages there

    async def verdict() -> Verdict:
        if app.rebalancing:
            return Verdict(True, [])
        inputs = await with_waiting(pipeline, input_views(pipeline), read)
        return detector.check(inputs, pair_views(pipeline), time.monotonic(), time.time())

    @app.page("/health", name="health")
    async def health(self: View, request: Request) -> Response:
        current = await verdict()
        return self.json({**current.to_dict(), **details(pipeline)}, status=200 if current.healthy else 503)

    @app.timer(interval=max(1.0, settings.stall_timeout / 4))
    async def watch_progress() -> None:
        current = await verdict()
        if not current.healthy and (not reported or reported[-1].reasons != current.reasons):
            log.warning(
                "worker stalled: %s\nstate: %s\nagents:\n%s", "; ".join(current.reasons), details(pipeline),
                app.agents.human_tracebacks(),
            )
        elif current.healthy and reported and not reported[-1].healthy:
            log.warning("worker moving again")
        reported[:] = [current]
        if not current.healthy and settings.stall_restart:
            # Same process id and settings (streams.commands.worker): the state comes back from the changelogs.
            pipeline.restart_reason = StalledWorker(f"worker stalled, restarting: {'; '.join(current.reasons)}")
            raise pipeline.restart_reason


def _aiokafka(pipeline: Pipeline):
    return pipeline.app.consumer._thread._ensure_consumer()


def input_views(pipeline: Pipeline) -> list[InputView]:
    app, progress = pipeline.app, pipeline.progress
    names = {pipeline.topics[name].get_topic_name() for name in CONSUMED}
    try:
        assignment = [tp for tp in app.consumer.assignment() if tp.topic in names]
        client = _aiokafka(pipeline)
    except ConsumerNotStarted:
        return []
    now, wall_now, views = time.monotonic(), time.time(), []
    for tp in sorted(assignment):
        try:
            state = client._subscription.subscription.assignment.state_value(TopicPartition(tp.topic, tp.partition))
        except (AttributeError, KeyError):
            continue  # the assignment is changing under us: no figure this time
        if state is None:
            continue
        views.append(InputView(
            tp.topic, tp.partition, stable_end=state.lso, processed_to=progress.next_offset.get(tp),
            committed=app.consumer._committed_offset.get(tp),
            quiet_for=now - max(progress.moved_at.get(tp, 0.0), progress.resumed_at),
            fetched_ago=None if state.timestamp is None else wall_now - state.timestamp / 1000,
        ))
    return views


async def with_waiting(pipeline: Pipeline, views: list[InputView], read: dict[tuple, int]) -> list[InputView]:
    """The views, with the messages waiting on partitions quiet for the whole stall timeout."""
    suspects = {
        (view.topic, view.partition, view.start, view.stable_end): view for view in views
        if view.quiet_for > pipeline.settings.stall_timeout and view.may_wait()
    }
    known = {key: read[key] for key in suspects if key in read}
    unread = {key: (TopicPartition(key[0], key[1]), (key[2], key[3])) for key in suspects if key not in read}
    if unread:
        try:
            counts = await kafka_io.messages_between(pipeline.settings, dict(unread.values()))
            known.update({key: counts.get(tp, 0) for key, (tp, _) in unread.items()})
        except (KafkaError, OSError, TimeoutError) as exc:  # no figure this time
            log.info("could not read the input waiting on %s: %r", sorted(unread), exc)
    read.clear()  # only the ranges of the partitions suspect now are worth keeping
    read.update(known)
    return [replace(view, waiting=read.get(key, 0)) if key in suspects else view
            for view in views for key in [(view.topic, view.partition, view.start, view.stable_end)]]


def pair_views(pipeline: Pipeline) -> list[PairView]:
    app, progress = pipeline.app, pipeline.progress
    name = pipeline.topics["pair-candidates"].get_topic_name()
    try:
        held = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == name)
    except ConsumerNotStarted:
        return []
    # Each partition's index, as its first message since the assignment built it (built here,
    # it could be built from a table still being restored).
    windows = {p: list(pipeline.open_windows.get(p, ())) for p in held}
    return [
        PairView(p, windows[p], stream_time(pipeline, p), progress.quiet_since.get(p, progress.resumed_wall))
        for p in held
    ]


def details(pipeline: Pipeline) -> dict:
    """What a person looking at a stalled worker wants to know next (logged and served)."""
    app, progress, now = pipeline.app, pipeline.progress, time.monotonic()
    return {
        "rebalancing": bool(app.rebalancing),
        "processing_lock_held": pipeline.processing_lock.locked(),
        "flow_active": app.flow_control.is_active(),
        "idle_tick_sent_s_ago": None if progress.tick_sent_at is None else round(now - progress.tick_sent_at, 1),
        "idle_tick_read_s_ago": {p: round(now - t, 1) for p, t in sorted(progress.tick_read_at.items())},
    }
