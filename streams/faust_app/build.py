"""Builds the Faust app from settings: topics, tables and agents, nothing read from globals.

``build_pipeline(settings)`` is the one constructor; the worker command, the agent
tests and the integration tests all call it, each with its own prefix and app id.
"""

import faust

from streams.broker import topics as specs
from streams.broker.kafka_io import faust_credentials
from streams.faust_app import alignment, memory, state_cache
from streams.faust_app.agents import dedup_agent, join_agent, manifest_task, pair_agent, watchdog, web
from streams.faust_app.evalsets import EvalSetView
from streams.faust_app.manifest import ManifestView
from streams.faust_app.pipeline import Pipeline
from streams.faust_app.tables import declare_tables
from streams.faust_fixes import (
    coordinator_lookup, delivery, fetch_wait, prompt_commit, restore_guard, resume_order, state_store, transactions,
)
from streams.settings import DistillSettings


def build_pipeline(settings: DistillSettings, *, broker: str | None = None, store: str | None = None) -> Pipeline:
    """``broker``/``store`` override the real ones (``memory://``) for agent tests."""
    app = faust.App(
        settings.application_id,
        broker=broker or f"kafka://{settings.bootstrap}",
        store=store or (state_store.URL if settings.processing_guarantee == "exactly_once" else state_store.AT_LEAST_ONCE_URL),
        datadir=str(settings.state_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_commit_interval=settings.commit_interval,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        producer_max_request_size=2 * 1024 * 1024,
        # A standby follows another worker's changelogs, all of them: with two workers that
        # doubled the state writes of each (20,000 runs: 9.3 -> 7.7 CPU-s per 1000 runs
        # without). Under exactly-once it buys nothing: the store rebuilds every partition
        # it holds from the changelog at each rebalance anyway.
        table_standby_replicas=settings.standby_replicas,
        # Outputs are forced sends, not awaited one by one: a short linger lets them batch.
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        broker_credentials=faust_credentials(settings),
    )
    topics = {
        spec.name: app.topic(
            settings.topic(spec.name),
            key_type=bytes,
            value_type=bytes,
            partitions=spec.partition_count(settings),
            internal=False,
        )
        for spec in specs.TOPIC_SPECS
    }
    pipeline = Pipeline(
        settings=settings,
        app=app,
        topics=topics,
        tables=declare_tables(app, settings),
        manifest=ManifestView(settings),
        evalsets=EvalSetView(settings),
    )
    resume_order.install()
    state_cache.install(app, pipeline.state)
    fetch_wait.install(app, settings.fetch_max_wait, settings.fetch_min_bytes)
    delivery.install()
    app.on_partitions_revoked.connect(pipeline.forget_derived_state)
    app.on_partitions_assigned.connect(pipeline.forget_derived_state)
    if settings.processing_guarantee == "exactly_once":
        transactions.install(app, pipeline.processing_lock)
        coordinator_lookup.install()
        if store is None:  # the changelog-trusting store, which restores every held partition afresh
            restore_guard.register(pipeline)
    prompt_commit.register(pipeline)
    join_agent.register(pipeline)
    alignment.register(pipeline)
    pair_agent.register(pipeline)
    dedup_agent.register(pipeline)
    manifest_task.register(pipeline)
    web.register(pipeline)
    watchdog.register(pipeline)
    memory.register(app, settings.memory_trim_interval)
    return pipeline
