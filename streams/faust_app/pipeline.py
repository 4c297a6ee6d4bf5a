"""Builds the Faust app from settings: topics, tables and agents, nothing read from globals.

``build_pipeline(settings)`` is the one constructor; the worker command, the agent
tests and the integration tests all call it, each with its own prefix and app id.
"""

import asyncio
from dataclasses import dataclass, field

import faust
import rocksdict
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from streams import alignment, delivery, fetch_wait, memory, resume_order, state_cache, state_store, transactions
from streams import topics as specs
from streams.alignment import InputAlignment
from streams.candidates import CandidateBatches
from streams.firewall import GateOptions
from streams.health import Progress
from streams.kafka_io import faust_credentials
from streams.manifest import ManifestView
from streams.metrics import Metrics
from streams.open_windows import OpenWindows
from streams.outbox import Outbox
from streams.pending import PendingScores, open_index_db
from streams.settings import DistillSettings
from streams.state_cache import StateCache
from streams.tables import TABLE_NAMES, Tables, declare_tables


@dataclass
class Pipeline:
    settings: DistillSettings
    app: faust.App
    topics: dict[str, faust.TopicT]
    tables: Tables
    manifest: ManifestView
    metrics: Metrics = field(default_factory=Metrics)
    progress: Progress = field(default_factory=Progress)
    # Held while a batch of events is processed, and by a transaction commit (streams/transactions.py).
    processing_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Views of table state, per join and per pair partition; dropped at every rebalance.
    pending: dict[int, PendingScores] = field(default_factory=dict)
    open_windows: dict[int, OpenWindows] = field(default_factory=dict)
    _index_db: rocksdict.Rdict | None = field(default=None, init=False, repr=False)
    # Pair candidates of the join batch being processed (streams/candidates.py).
    candidates: CandidateBatches = field(default_factory=CandidateBatches)
    # How far each input was read, and the scores partitions held back (streams/alignment.py).
    alignment: InputAlignment = field(default_factory=InputAlignment)
    # The watermark each join partition last broadcast to pairing (a rate limit only).
    last_broadcast: dict[int, float] = field(default_factory=dict)
    # Partitions whose first event since the last assignment was checked (streams/skip_guard.py).
    delivery_checked: set = field(default_factory=set)
    # Set by a join batch that read its input to the end: commit soon (streams/prompt_commit.py).
    commit_wanted: asyncio.Event | None = None
    # Set when the worker must start over in a new process (streams/skip_guard.py).
    restart_reason: Exception | None = None
    gate_options: GateOptions = field(init=False)
    # The tables' writes since the last commit (streams/state_cache.py): read and write state here.
    state: StateCache = field(init=False)
    # Outputs waiting for the commit (streams/outbox.py), exactly-once.
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.gate_options = GateOptions(
            include_partial=self.settings.include_partial, include_review=self.settings.include_review
        )
        self.outbox = Outbox.of(self.app)
        self.state = StateCache(self.app, {name: getattr(self.tables, name) for name in TABLE_NAMES}, self.outbox)

    def forget_derived_state(self, *_args, **_kwargs) -> None:
        """A rebalance moves partitions and restores tables: views built on them are stale."""
        self.state.forget()
        self.outbox.forget()
        self.candidates.take()
        self.pending.clear()
        self.open_windows.clear()
        self.alignment.forget()
        self.last_broadcast.clear()
        self.delivery_checked.clear()

    def index_db(self) -> rocksdict.Rdict:
        """The worker's own RocksDB for views too big for memory, opened on first use."""
        if self._index_db is None:
            self._index_db = open_index_db(
                self.settings.state_dir / "pending-index", state_store.index_options(self.settings.state_memory_mib)
            )
        return self._index_db

    def read_to_end(self, topic: str, partition: int, next_offset: int, slack: int = 0) -> bool:
        """Has this worker read the partition up to its end (but ``slack`` messages), as of the last fetch?"""
        try:
            end = self.app.consumer.highwater(TP(topic, partition))
        except ConsumerNotStarted:
            return True  # under test_context() nothing is fetched: what was put is all there is
        return end is None or next_offset + slack >= end


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
    )
    resume_order.install()
    state_cache.install(app, pipeline.state)
    fetch_wait.install(app, settings.fetch_max_wait)
    delivery.install()
    app.on_partitions_revoked.connect(pipeline.forget_derived_state)
    app.on_partitions_assigned.connect(pipeline.forget_derived_state)
    if settings.processing_guarantee == "exactly_once":
        transactions.install(app, pipeline.processing_lock)
        if store is None:  # the changelog-trusting store, which restores every held partition afresh
            from streams import restore_guard

            restore_guard.register(pipeline)
    from streams import prompt_commit
    from streams.agents import join_agent, manifest_task, pair_agent, watchdog, web

    prompt_commit.register(pipeline)
    join_agent.register(pipeline)
    alignment.register(pipeline)
    pair_agent.register(pipeline)
    manifest_task.register(pipeline)
    web.register(pipeline)
    watchdog.register(pipeline)
    memory.register(app, settings.memory_trim_interval)
    return pipeline
