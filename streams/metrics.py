"""Prometheus metrics of one worker, served at ``/metrics`` on the worker's web server."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest


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
        self.latency = Histogram(
            "distill_processing_seconds", "Time from an input message's timestamp to its processing",
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def quarantined(self, stage: str, reason: str) -> None:
        self.quarantine.labels(stage, reason).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
