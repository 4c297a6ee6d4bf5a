"""What the pipeline is measured against: the ceiling (a plain aiokafka copy of the input) and
the Faust floor (a trivial Faust worker forwarding each input message once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from benchmarks.common import ROOT, STARTED, Probe, partitions_of, plain_consumer, proc_status, time_range
from streams.broker import kafka_io
from streams.settings import DistillSettings


async def ceiling(settings: DistillSettings, inputs: list[str], output: str, expected: int) -> dict:
    """Copy every message of ``inputs`` to ``output`` (same partition), as fast as aiokafka goes."""
    consumer = plain_consumer(settings, max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    producer = AIOKafkaProducer(**kafka_io.client_options(settings), linger_ms=5, max_batch_size=1024 * 1024,
                                max_request_size=4 * 1024 * 1024, acks="all")
    await consumer.start()
    await producer.start()
    try:
        tps = await partitions_of(consumer, inputs)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        consumed, first, cpu0 = 0, None, time.process_time()
        in_flight: list[asyncio.Future] = []
        deadline = time.monotonic() + 120 + expected / 1000
        while consumed < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"ceiling: {consumed} of {expected} messages after the deadline")
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            if not batch:
                continue
            first = first or time.perf_counter()
            sent: list[asyncio.Future] = []
            for tp, messages in batch.items():
                builder = producer.create_batch()
                for message in messages:
                    if builder.append(key=message.key, value=message.value, timestamp=None) is None:
                        sent.append(await producer.send_batch(builder, output, partition=tp.partition))
                        builder = producer.create_batch()
                        builder.append(key=message.key, value=message.value, timestamp=None)
                sent.append(await producer.send_batch(builder, output, partition=tp.partition))
                consumed += len(messages)
            await asyncio.gather(*in_flight)  # keep at most two fetches' worth unacknowledged
            in_flight = sent
        await asyncio.gather(*in_flight)
        seconds = time.perf_counter() - first
        cpu = time.process_time() - cpu0
    finally:
        await producer.stop()
        await consumer.stop()
    return {"messages": consumed, "seconds": seconds, "messages_per_s": consumed / seconds, "cpu_s": cpu}


async def faust_floor(settings: DistillSettings, inputs: list[str], output: str, expected: int, work: Path) -> dict:
    """A trivial Faust worker (``benchmarks/faust_floor.py``, the worker's Faust settings)
    forwards every input message once: from its first output to its last."""
    app_id = f"{settings.application_id}-faust-floor"
    log_path = work / "faust-floor.log"
    env = {**os.environ, "DISTILL_PROCESSING_GUARANTEE": settings.processing_guarantee,
           "DISTILL_PARTITIONS": str(settings.partitions)}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "faust_floor.py"), settings.bootstrap,
                                    app_id, output, *inputs], cwd=work, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    STARTED.append(process)
    try:
        async with Probe(settings) as probe:
            deadline = time.monotonic() + 300 + expected / 200
            while sum((await probe.ends([output])).values()) < expected:
                if process.poll() is not None:
                    raise RuntimeError(f"the Faust floor exited with {process.returncode} (log: {log_path})")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the Faust floor did not forward {expected} messages in time (log: {log_path})")
                await asyncio.sleep(0.2)
        cpu = proc_status(process.pid).get("cpu_s", 0.0)
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
        if process.poll() is None:
            process.kill()
    first, last = await time_range(settings, [output])
    seconds = last - first
    return {"messages": expected, "seconds": seconds, "messages_per_s": expected / seconds, "cpu_s_total": cpu}
