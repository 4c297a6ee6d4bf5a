"""``GET /metrics`` on the worker's Faust web server: Prometheus text of this worker.

The server listens on ``DISTILL_WEB_HOST`` (default 127.0.0.1) and ``DISTILL_WEB_PORT``.
Gauges are read when scraped, from the worker's own tables (the partitions assigned
to it) and its consumer, so a farm of workers sums to the whole.
"""

from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response, View

from streams.faust_app.metrics import WorkerState
from streams.faust_app.pipeline import Pipeline

CONSUMED = ("evidence", "scored-runs", "pair-candidates")


def register(pipeline: Pipeline) -> None:
    pipeline.metrics.watch(lambda: worker_state(pipeline))

    @pipeline.app.page("/metrics", name="metrics")
    async def metrics(self: View, request: Request) -> Response:
        body, content_type = pipeline.metrics.exposition()
        # The content type carries a charset, which aiohttp accepts as a header only.
        return self.bytes(body, headers={"Content-Type": content_type})


def worker_state(pipeline: Pipeline) -> WorkerState:
    return WorkerState(
        # Each partition's index counts from its first message since the assignment.
        pending_joins=sum(len(index) for index in pipeline.pending.values()),
        open_windows=sum(len(index) for index in pipeline.open_windows.values()),
        consumer_lag=consumer_lag(pipeline),
    )


def consumer_lag(pipeline: Pipeline) -> dict[tuple[str, int], int]:
    """End offset (as the consumer last fetched it) minus the offset this worker last committed.

    Both figures are already in the worker's memory, so a scrape sends no request to Kafka.
    A partition is left out until the worker has fetched from it and committed on it once;
    ``distill stats`` reports the group's lag from the broker instead.
    """
    app = pipeline.app
    names = {pipeline.topics[name].get_topic_name() for name in CONSUMED}
    committed = app.monitor.tp_committed_offsets
    lag: dict[tuple[str, int], int] = {}
    try:
        assigned = app.consumer.assignment()
        for tp in assigned:
            if tp.topic not in names or tp not in committed:
                continue
            end = app.consumer.highwater(tp)
            if end is not None and end >= 0:
                lag[(tp.topic, tp.partition)] = max(0, end - committed[tp])
    except (ConsumerNotStarted, KafkaError):
        return {}  # not started yet, or a rebalance moved the partitions under us: no figure this time
    return lag
