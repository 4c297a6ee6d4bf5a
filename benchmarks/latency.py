"""The latency phase: runs at a fixed rate into the running worker, each score's publish timed
to its SFT or RAG sample on the output topic."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from benchmarks.common import log, partitions_of, percentile, plain_consumer
from benchmarks.corpus import SEED, Runs, sample_id
from streams.broker import kafka_io
from streams.broker.kafka_io import default_partition
from streams.faust_app.outbox import send_records
from streams.settings import DistillSettings

def write_latency_samples(path: Path, published: dict[bytes, float], arrived: dict[bytes, float],
                          run_keys: dict[bytes, bytes], partitions: int) -> None:
    """One JSON line per sample: its run, when its score was published (epoch s), the milliseconds
    to its sample (null: never came) and the input partition of its run. A tail that belongs to
    one partition points at one worker, a tail over both at the whole machine."""
    offset = time.time() - time.monotonic()
    with path.open("wb") as out:
        for sample, at in published.items():
            late = arrived.get(sample)
            out.write(orjson.dumps({
                "run": run_keys[sample].decode(), "published": round(at + offset, 4), "ms": None if late is None else round((late - at) * 1000, 2),
                "partition": default_partition(run_keys[sample], partitions),
            }) + b"\n")


# The runs due are published every TICK seconds, as record batches (one per topic and
# partition), each run's evidence before its score. One ``send`` a message cost this process
# about a third of a core at 1,200 runs/s on the two cores it shares with the worker and the
# broker, and every sample's latency paid for that.
TICK = 0.002


async def send_runs(producer: AIOKafkaProducer, settings: DistillSettings, runs: list) -> None:
    """Hand ``runs`` to the producer as record batches per topic and partition (the partition
    the default partitioner gives the key: the worker joins by co-partitioning)."""
    records: dict[tuple[str, int], list] = defaultdict(list)
    for run in runs:
        partition = default_partition(run.key, settings.partitions)
        records[settings.topic("evidence"), partition].append((run.key, run.evidence, None))
        records[settings.topic("scored-runs"), partition].append((run.key, run.score, None))
    for (topic, partition), batch in records.items():
        await send_records(producer, topic, partition, batch)


async def latency(settings: DistillSettings, rate: float, seconds: float, after: int,
                  check_alive: Callable[[], None], samples_path: Path | None = None) -> dict:
    """Publish runs at ``rate`` runs/s; time each score's publish to its SFT/RAG sample
    (``check_alive`` raises if a worker died meanwhile)."""
    n = max(1, int(rate * seconds))
    runs = Runs(n, seed=SEED + 1, id_prefix="lat", start=after + 60, span=max(60, int(seconds)))
    # aiokafka's default lets the broker hold a fetch 500 ms, which this probe would add to
    # the latency it measures (see streams/faust_fixes/fetch_wait.py).
    reader = plain_consumer(settings, isolation_level="read_committed", fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(**kafka_io.client_options(settings), linger_ms=0, acks="all",
                                max_request_size=4 * 1024 * 1024)
    await reader.start()
    await producer.start()
    published: dict[bytes, float] = {}
    arrived: dict[bytes, float] = {}
    run_keys: dict[bytes, bytes] = {}
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            batch = await reader.getmany(timeout_ms=20)
            now = time.monotonic()
            for messages in batch.values():
                for message in messages:
                    arrived.setdefault(message.key, now)

    try:
        tps = await partitions_of(reader, [settings.topic("sft-samples"), settings.topic("rag-samples")])
        reader.assign(tps)
        await reader.seek_to_end(*tps)
        for tp in tps:
            await reader.position(tp)  # resolve the seek before anything is published
        consumer_task = asyncio.create_task(consume())
        # Made before the clock starts: generating runs during the phase took the worker's CPU.
        runs_due = list(runs)
        log(f"latency: {n:,} runs at {rate:,.0f} runs/s for {seconds:.0f} s")
        t0 = time.monotonic()
        sent = 0
        while sent < n:
            due = min(n, int((time.monotonic() - t0) * rate) + 1)
            if due > sent:
                at = time.monotonic()
                await send_runs(producer, settings, runs_due[sent:due])
                for run in runs_due[sent:due]:
                    wanted = {"accepted": "sft", "partially_accepted": "rag"}.get(run.category)
                    if wanted:
                        sample = sample_id(wanted, run.run_id)
                        published[sample], run_keys[sample] = at, run.key
                sent = due
            await asyncio.sleep(TICK)
        sent_for = time.monotonic() - t0
        await producer.flush()
        wait_until = time.monotonic() + 60
        while time.monotonic() < wait_until and not published.keys() <= arrived.keys():
            check_alive()
            await asyncio.sleep(0.1)
        stop.set()
        await consumer_task
    finally:
        await producer.stop()
        await reader.stop()
    delays = [(arrived[k] - t) * 1000 for k, t in published.items() if k in arrived]
    if samples_path is not None:
        write_latency_samples(samples_path, published, arrived, run_keys, settings.partitions)
    # In publish order: rising from quarter to quarter means the rate is more than the worker carries.
    quarters = [delays[len(delays) * q // 4:len(delays) * (q + 1) // 4] for q in range(4)]
    return {
        "p99_ms_by_quarter": [percentile(quarter, 99) for quarter in quarters],
        "rate_runs_per_s": rate, "runs": n, "publish_seconds": sent_for, "measured_samples": len(published),
        "missing": len(published) - len(delays),
        "p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99), "max_ms": max(delays, default=None),
    }
