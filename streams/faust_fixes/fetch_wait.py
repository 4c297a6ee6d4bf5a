"""How long the broker may hold a worker's fetch, and for how much: Faust fixes 1.5 s and 1 byte.

aiokafka keeps one fetch in flight per broker, for the partitions that have nothing fetched
and unread. A partition whose records were still being processed when the request left is
not in it, and when every partition in it is idle (a ``pair-candidates`` partition between
ticks, Faust's leader topic) the broker holds the request for the whole wait: the busy
partition's next records wait with it. Measured at half load (20,000-run benchmark, two
workers, wait 1.5 s): every run of one input partition came out in bursts every ~1.7 s
(p99 1,670 ms), the runs of the other partition in 15-60 ms.

The same wait, shorter, is still in every sample's latency: at 0.1 s, timing logs of a
100,000-run benchmark's latency phase (one worker, exactly-once) had a score wait 61 ms
(p50; p90 185 ms) from its publish to the start of its batch, more than the batch, the
commit and its round trips together; at 0.02 s, 25 ms (p90 71 ms). An idle worker then asks
the broker 50 times a second instead of 10.

A fetch also returns as soon as the broker holds ``fetch_min_bytes`` for it (aiokafka and
Faust ask for 1 byte). Under a steady flow one byte is always there, so a worker fetched a few
records at a time as fast as the round trips went: at 1,200 runs/s (20,000-run benchmark, one
worker, exactly-once, two runs each, alternated) the consumer thread took 14-17% of a core
and the broker 38-40%; with 32 KiB (about 11 ms of that flow) 9% and 37%, latency the same
(p99 199-270 ms against 214-240). The wait stays bounded by ``fetch_max_wait``.
"""

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_faust_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def _create_worker_consumer(self: AIOKafkaConsumerThread, transport):
    consumer = _faust_create_worker_consumer(self, transport)
    seconds = getattr(self.app, "distill_fetch_max_wait", None)
    if seconds is not None:
        # Both read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = round(seconds * 1000)
        consumer._fetch_min_bytes = self.app.distill_fetch_min_bytes
    return consumer


def install(app, seconds: float, min_bytes: int) -> None:
    """Let the broker hold this app's stream fetches ``seconds`` at most, until ``min_bytes`` are there."""
    app.distill_fetch_max_wait, app.distill_fetch_min_bytes = seconds, min_bytes
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
