"""What every phase of the benchmark uses: paths, logging, /proc figures, percentiles, Kafka
clients and probes, and the processes it started (stopped for sure at the end)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.broker import kafka_io
from streams.settings import DistillSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROFILE_TXT = ROOT / "benchmarks" / "profile.txt"
HOTSPOTS_JSON = ROOT / "benchmarks" / "hotspots.json"


def code_version() -> dict:
    """The commit the worker runs, and the files of streams/ and schemas/ changed since."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": git("status", "--porcelain", "--", "streams", "schemas").splitlines()}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS (KiB) and CPU seconds (user + system) of a process, from /proc."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                found[name] = int(value.split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        found["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of a process by thread name (``/proc/<pid>/task/*/comm``;
    threads of one name summed: RocksDB's ``rocksdb:low`` pool, several ``ThreadPoolExecutor``s)."""
    by_name: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                if int(task.name) == pid:
                    name = "main"
                by_name[name] = by_name.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return {name: round(cpu, 2) for name, cpu in sorted(by_name.items(), key=lambda kv: -kv[1])}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def create_topics(settings: DistillSettings, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(**kafka_io.client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1, topic_configs={"cleanup.policy": "compact"})
                                   for n in names])
    finally:
        await admin.close()


async def delete_benchmark_topics(settings: DistillSettings) -> list[str]:
    """Every topic of this benchmark: its prefix, its worker's application id, and the peer's
    Quix changelogs (``changelog__{prefix}peer-...``), which hold the prefix inside their names."""
    async with kafka_io.started(kafka_io.admin(settings)) as client:
        doomed = [t for t in await client.list_topics()
                  if settings.topic_prefix in t or t.startswith(settings.application_id + "-")]
        if doomed:
            await client.delete_topics(doomed)
        return doomed


async def partitions_of(client: AIOKafkaConsumer, names: list[str]) -> list[TopicPartition]:
    tps = []
    for name in names:
        parts = client.partitions_for_topic(name)
        if not parts:
            await client._client.force_metadata_update()
            parts = client.partitions_for_topic(name) or set()
        tps += [TopicPartition(name, p) for p in sorted(parts)]
    return tps


def plain_consumer(settings: DistillSettings, **extra) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**kafka_io.client_options(settings), enable_auto_commit=False,
                            auto_offset_reset="earliest", **extra)



class Probe:
    """End offsets and the worker group's committed offsets, with long-lived clients."""

    def __init__(self, settings: DistillSettings):
        self.settings = settings
        self.consumer = plain_consumer(settings)
        self.admin = AIOKafkaAdminClient(**kafka_io.client_options(settings))

    async def __aenter__(self) -> Probe:
        await self.consumer.start()
        await self.admin.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def ends(self, names: list[str]) -> dict[TopicPartition, int]:
        return await self.consumer.end_offsets(await partitions_of(self.consumer, names))

    async def lag(self, names: list[str], targets: dict[TopicPartition, int] | None = None) -> int:
        """Messages up to ``targets`` (default: the end offsets now) the worker has not committed."""
        ends = targets or await self.ends(names)
        try:
            committed = await self.admin.list_consumer_group_offsets(self.settings.application_id,
                                                                     partitions=list(ends))
        except Exception:  # the group coordinator may not be there yet
            return sum(ends.values())
        return sum(max(0, end - max(0, committed[tp].offset if tp in committed else 0)) for tp, end in ends.items())


async def time_range(settings: DistillSettings, names: list[str]) -> tuple[float | None, float | None]:
    """Timestamps (epoch s) of the first and the last message on the topics (read committed)."""
    reader = plain_consumer(settings, isolation_level="read_committed")
    await reader.start()
    first = last = None
    try:
        tps = await partitions_of(reader, names)
        begins, ends = await reader.beginning_offsets(tps), await reader.end_offsets(tps)
        for tp in tps:
            if ends[tp] <= begins[tp]:
                continue
            reader.assign([tp])
            for start in (begins[tp], max(begins[tp], ends[tp] - 50)):
                reader.seek(tp, start)
                while await reader.position(tp) < ends[tp]:
                    batch = await reader.getmany(tp, timeout_ms=1000)
                    for message in batch.get(tp, []):
                        ts = message.timestamp / 1000
                        first = ts if first is None else min(first, ts)
                        last = ts if last is None else max(last, ts)
                    if start == begins[tp] and batch.get(tp):
                        break  # only the first message was wanted
    finally:
        await reader.stop()
    return first, last


async def first_assignment(settings: DistillSettings, group: str, cpu_s: Callable[[], float]) -> tuple[float, float]:
    """When ``group`` first has its partitions (state Stable, a member with an assignment) and
    ``cpu_s()`` then: the start of the clock "first input to last output", the same for the
    worker and the peer (neither says when it read its first message; from here it may read,
    after what it does on an assignment, e.g. restoring its state). Polls every 20 ms."""
    admin = AIOKafkaAdminClient(**kafka_io.client_options(settings))
    await admin.start()
    try:
        while True:
            with contextlib.suppress(Exception):  # the coordinator may not know the group yet
                for response in await admin.describe_consumer_groups([group]):
                    for described in response.groups:
                        state, members = described[2], described[5]
                        if state == "Stable" and any(member[4] for member in members):
                            return time.time(), cpu_s()
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


STARTED: list[subprocess.Popen] = []  # workers of this run, stopped for sure in main()


def stop_leftovers() -> None:
    """A worker left running by an interrupted run (Ctrl-C cancels the clean stop): SIGTERM, then KILL."""
    for process in STARTED:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
