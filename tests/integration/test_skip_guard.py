"""A partition delivered past unread messages restarts the worker (``streams.faust_fixes.skip_guard``): the
join agent under ``test_context()``, the messages it would skip on the real broker."""

import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP

from streams.broker import kafka_io
from streams.faust_app.build import build_pipeline
from streams.faust_fixes.skip_guard import SkippedMessages
from tests.agents.conftest import PIPELINES, record_sends
from tests.agents.test_join_agent import evidence, put

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("committed", "first_offset", "named"), [
    (2, 7, "committed offset is 2"),  # five offsets past the committed one
    (None, 1808, "committed offset is none"),  # no commit: the partition must start at its beginning
])
async def test_a_partition_delivered_past_unread_messages_restarts_the_worker(
    make_settings, committed, first_offset, named
):
    settings = make_settings(processing_guarantee="at_least_once")
    await kafka_io.ensure_topics(settings)
    producer = AIOKafkaProducer(**kafka_io.client_options(settings))
    await producer.start()
    try:  # the messages the consumer's first event of the partition would have skipped
        for offset in range(first_offset):
            await producer.send(settings.topic("evidence"), b"{}", key=f"run-{offset}".encode(), partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    # Faust is not started (test_context() feeds the agent); the guard reads the real topic.
    pipeline = build_pipeline(settings, broker="kafka://127.0.0.1:1", store="memory://")
    pipeline.manifest.ready.set()
    pipeline.evalsets.ready.set()
    PIPELINES[pipeline.app] = pipeline
    recorded = record_sends(pipeline)
    try:
        if committed is not None:
            pipeline.app.consumer._committed_offset[TP(settings.topic("evidence"), 0)] = committed
        async with pipeline.app.agents["join_evidence"].test_context() as ev:
            ev.sent_offset = first_offset  # the consumer's first event of the partition
            try:
                await put(ev, "run-1", evidence())
            except SkippedMessages:
                pass
    finally:
        PIPELINES.pop(pipeline.app, None)
    assert isinstance(pipeline.restart_reason, SkippedMessages)
    assert f"from offset {first_offset}" in str(pipeline.restart_reason) and named in str(pipeline.restart_reason)
    assert recorded.messages == {}  # nothing was processed past the hole
