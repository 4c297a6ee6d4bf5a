"""Prometheus metrics of one worker, served at ``/metrics`` on the worker's web server.

Counters count what this worker process emitted since it started (they restart at zero
with the process, as Prometheus counters may). Gauges of state are not kept up to date
by the agents: they are read from the worker when scraped (see ``streams.faust_app.agents.web``).
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.rules.join import RunState


@dataclass(frozen=True)
class WorkerState:
    """What the worker holds right now, on the partitions assigned to it."""

    pending_joins: int
    open_windows: int
    consumer_lag: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> messages


class StateCollector(Collector):
    """Gauges computed at scrape time from ``read()``."""

    def __init__(self, read: Callable[[], WorkerState]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        state = self.read()
        yield GaugeMetricFamily(
            "distill_pending_joins", "Scores waiting for their evidence (before join_timeout)", value=state.pending_joins
        )
        yield GaugeMetricFamily("distill_open_pair_windows", "Pair windows not closed yet", value=state.open_windows)
        lag = GaugeMetricFamily(
            "distill_consumer_lag",
            "Offsets of a consumed partition past this worker's last commit there (transaction markers count)",
            labels=["topic", "partition"],
        )
        for (topic, partition), messages in sorted(state.consumer_lag.items()):
            lag.add_metric([topic, str(partition)], messages)
        yield lag


class Metrics:
    """Counters of what the worker emitted; one registry per pipeline, so tests never share."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.samples = Counter(
            "distill_samples_emitted", "Samples emitted (tombstones excluded)", ["stage"], registry=self.registry
        )
        self.retractions = Counter(
            "distill_samples_retracted", "Samples retracted with a tombstone", ["stage"], registry=self.registry
        )
        self.quarantine = Counter(
            "distill_quarantined", "Quarantine records emitted", ["stage", "reason"], registry=self.registry
        )
        self.secret_findings = Counter(
            "distill_secret_findings", "Secrets found in input records and redacted, by rule (SPEC 10)", ["rule"],
            registry=self.registry,
        )
        self.contaminated = Counter(
            "distill_contaminated_runs", "Runs found to overlap an evaluation set, by set (SPEC 12)", ["set"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "distill_processing_seconds", "Time from an input message's timestamp to the end of its processing",
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        # Each counter's labelled child, found once: ``labels()`` checks and converts its
        # arguments under a lock at every call, and outputs are counted one by one.
        self._children: dict[tuple, Any] = {}

    def count(self, counter: Counter, *labels: str) -> None:
        """Add one to ``counter`` with ``labels``."""
        child = self._children.get((counter, labels))
        if child is None:
            child = self._children[counter, labels] = counter.labels(*labels)
        child.inc()

    def quarantined(self, stage: str, reason: str) -> None:
        self.count(self.quarantine, stage, reason)

    def screened(self, before: RunState, after: RunState) -> None:
        """Count what a run's new record or a judgement against the evaluation sets found."""
        found = []
        if before.evidence is None and after.evidence is not None:
            found += after.evidence_secrets
        if after.score_source != before.score_source:
            found += after.score_secrets
        for _path, rule, *_offsets in found:
            self.count(self.secret_findings, rule)
        if after.contamination and after.contamination != before.contamination:
            self.count(self.contaminated, after.contamination["set"])

    def processed(self, message_timestamp: float) -> None:
        """An input message (timestamp in epoch seconds) has been fully handled."""
        self.latency.observe(max(0.0, time.time() - message_timestamp))

    def watch(self, read: Callable[[], WorkerState]) -> None:
        """Serve gauges of the worker's state, read by ``read()`` at every scrape."""
        self.registry.register(StateCollector(read))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
