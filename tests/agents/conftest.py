"""Agent tests: the real agents under Faust's ``test_context()`` with ``memory://`` tables, no broker."""

import asyncio
import time
from dataclasses import dataclass, field

import pytest
from faust.types import EventT

from schemas.codec import loads
from streams.faust_app.build import build_pipeline
from streams.faust_app.pipeline import Pipeline
from streams.settings import DistillSettings


@dataclass
class Recorded:
    """What the agents sent, topic by topic, in order: (key, value) with None for tombstones."""

    messages: dict[str, list[tuple[str, bytes | None]]] = field(default_factory=dict)
    headers: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def values(self, topic: str) -> list[dict | None]:
        return [None if v is None else loads(v) for _, v in self.messages.get(topic, [])]

    def live(self, topic: str) -> dict[str, dict]:
        latest: dict[str, dict] = {}
        for key, value in self.messages.get(topic, []):
            if value is None:
                latest.pop(key, None)
            else:
                latest[key] = loads(value)
        return latest


def record_sends(pipeline: Pipeline) -> Recorded:
    """Route every output topic's ``send`` into a list, as a consumer of the topic would see it."""
    recorded = Recorded()
    for name, topic in pipeline.topics.items():
        async def send(*, key=None, value=None, headers=None, force=False, partition=None, _name=name):
            recorded.messages.setdefault(_name, []).append((key.decode() if key else None, value))
            recorded.headers.setdefault(_name, []).append({k: v.decode() for k, v in headers or ()})
        topic.send = send
    return recorded


@pytest.fixture
def settings(tmp_path) -> DistillSettings:
    return DistillSettings(
        topic_prefix="agent-test.", data_dir=tmp_path, web_enabled=False,
        processing_guarantee="at_least_once", join_timeout=3600, pair_window=86400, pair_grace=600,
        dedup=False,  # samples straight to their topics; tests/agents/test_dedup_agent.py takes the hop
    )


@pytest.fixture
def pipeline(settings) -> Pipeline:
    # The app is never started here: test_context() feeds the agents directly, no broker is dialled.
    pipeline = build_pipeline(settings, broker="kafka://127.0.0.1:1", store="memory://")
    pipeline.manifest.ready.set()
    pipeline.evalsets.ready.set()  # no evaluation sets: the empty index
    PIPELINES[pipeline.app] = pipeline
    yield pipeline
    PIPELINES.pop(pipeline.app, None)


PIPELINES: dict = {}  # app -> its pipeline, for ``processed``


async def processed(agent_ctx, event: EventT, timeout: float = 5.0) -> None:
    """Wait until the agent has processed ``event``: ``put`` returns once the event is in the
    agent's stream, but the agent takes it in a batch, up to DISTILL_BATCH_WAIT later."""
    progress = PIPELINES[agent_ctx.app].progress
    deadline = time.monotonic() + timeout
    while progress.next_offset.get(event.message.tp, 0) <= event.message.offset:
        if agent_ctx._crash_reason:
            raise agent_ctx._crash_reason
        assert time.monotonic() < deadline, f"offset {event.message.offset} not processed within {timeout} s"
        await asyncio.sleep(0.002)


@pytest.fixture
def recorded(pipeline) -> Recorded:
    return record_sends(pipeline)
