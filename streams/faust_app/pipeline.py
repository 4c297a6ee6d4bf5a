"""The pipeline: a worker's Faust app with its topics and tables, and the state its agents share.

``streams.faust_app.build.build_pipeline`` makes one; the agents and the work-arounds that
act on a running worker take it as their argument.
"""

import asyncio
from dataclasses import dataclass, field, replace

import faust
import rocksdict
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from streams.faust_app.alignment import InputAlignment
from streams.faust_app.candidates import CandidateBatches
from streams.faust_app.evalsets import EvalSetView
from streams.faust_app.health import Progress
from streams.faust_app.manifest import ManifestView
from streams.faust_app.metrics import Metrics
from streams.faust_app.open_windows import OpenWindows
from streams.faust_app.outbox import Outbox
from streams.faust_app.pending import PendingScores, open_index_db
from streams.faust_app.state_cache import StateCache
from streams.faust_app.tables import TABLE_NAMES, Tables
from streams.faust_fixes import state_store
from streams.rules.firewall import GateOptions
from streams.rules.pii import redact_pii_object
from streams.rules.screening import ContentGates
from streams.rules.secrets import load_scanner
from streams.settings import DistillSettings


@dataclass
class Pipeline:
    settings: DistillSettings
    app: faust.App
    topics: dict[str, faust.TopicT]
    tables: Tables
    manifest: ManifestView
    evalsets: EvalSetView
    metrics: Metrics = field(default_factory=Metrics)
    progress: Progress = field(default_factory=Progress)
    # Held while a batch of events is processed, and by a transaction commit (streams/faust_fixes/transactions.py).
    processing_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Views of table state, per join and per pair partition; dropped at every rebalance.
    pending: dict[int, PendingScores] = field(default_factory=dict)
    open_windows: dict[int, OpenWindows] = field(default_factory=dict)
    _index_db: rocksdict.Rdict | None = field(default=None, init=False, repr=False)
    # Pair and dedup candidates of the batch being processed (streams/faust_app/candidates.py).
    candidates: CandidateBatches = field(init=False)
    dedup_candidates: CandidateBatches = field(init=False)
    # How far each input was read, and the scores partitions held back (streams/faust_app/alignment.py).
    alignment: InputAlignment = field(default_factory=InputAlignment)
    # The watermark each join partition last broadcast to pairing (a rate limit only).
    last_broadcast: dict[int, float] = field(default_factory=dict)
    # Partitions whose first event since the last assignment was checked (streams/faust_fixes/skip_guard.py).
    delivery_checked: set = field(default_factory=set)
    # Set by a join batch that read its input to the end: commit soon (streams/faust_fixes/prompt_commit.py).
    commit_wanted: asyncio.Event | None = None
    # Set when the worker must start over in a new process (streams/faust_fixes/skip_guard.py).
    restart_reason: Exception | None = None
    gate_options: GateOptions = field(init=False)
    _content_gates: ContentGates = field(init=False)
    # The tables' writes since the last commit (streams/faust_app/state_cache.py): read and write state here.
    state: StateCache = field(init=False)
    # Outputs waiting for the commit (streams/faust_app/outbox.py), exactly-once.
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.gate_options = GateOptions(
            include_partial=self.settings.include_partial, include_review=self.settings.include_review
        )
        self._content_gates = content_gates_of(self.settings)
        self.candidates = CandidateBatches(self.settings.partitions)
        self.dedup_candidates = CandidateBatches(self.settings.partitions)
        self.outbox = Outbox.of(self.app)
        self.state = StateCache(self.app, {name: getattr(self.tables, name) for name in TABLE_NAMES}, self.outbox)

    def forget_derived_state(self, *_args, **_kwargs) -> None:
        """A rebalance moves partitions and restores tables: views built on them are stale."""
        self.state.forget()
        self.outbox.forget()
        self.candidates.take()
        self.dedup_candidates.take()
        self.pending.clear()
        self.open_windows.clear()
        self.alignment.forget()
        self.last_broadcast.clear()
        self.delivery_checked.clear()

    @property
    def scanner(self):
        """The secret scanner (``streams.rules.secrets.SecretScanner``), None with DISTILL_SECRETS=off."""
        return self._content_gates.scanner

    def content_gates(self) -> ContentGates:
        """The content gates with the evaluation sets as they are now (one look per batch:
        every run of a batch is judged against the same sets)."""
        return replace(self._content_gates, index=self.evalsets.index)

    def inputs_processed(self) -> dict[TP, int]:
        """Each input partition processed since the last rebalance, with its next offset."""
        inputs = {self.settings.topic("evidence"), self.settings.topic("scored-runs")}
        return {tp: offset for tp, offset in self.progress.next_offset.items() if tp.topic in inputs}

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


def content_gates_of(settings: DistillSettings) -> ContentGates:
    """The secret scanner (default rules and DISTILL_SECRET_RULES: ``SecretRulesError`` for a
    rule it cannot use), PII redaction and dedup, as the settings ask."""
    return ContentGates(
        secrets=settings.secrets,
        scanner=load_scanner(settings.secret_rules) if settings.secrets != "off" else None,
        pii=redact_pii_object if settings.pii == "redact" else None,
        dedup=settings.dedup,
    )
