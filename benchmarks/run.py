#!/usr/bin/env python3
"""Throughput, latency and memory of the stream processor on the local broker.

    bash scripts/bench.sh --runs N [--workers W] [--partitions P] [--guarantee G] [--json] [--profile]

One invocation, under a fresh topic prefix (``bench.<random>.``) whose topics are all
deleted at the end, does:

1. generates N runs shaped like real ones, lazily (one run at a time, from a seeded
   vocabulary) and publishes their evidence and scores, already encoded, to the
   ceiling's input topics and to the pipeline's input topics (``--order files``: all
   evidence then all scores, as ``distill ingest`` does; ``interleaved``: run by run);
2. ceiling: a plain aiokafka loop in this process copies every input message of both
   input topics to one output topic (no logic, batched fetches and batched sends),
   timed from the first fetch to the last send acknowledged;
3. pipeline: starts ``distill worker`` (``streams.worker.child_worker``) on the published
   input and times it: startup (process start to first output), processing (first to
   last per-run output, i.e. RAG/SFT/quarantine), and until ``streams.wait.wait_caught_up``
   says everything is consumed, paired and every window closed;
4. latency: into the same running worker, runs at half the measured rate for
   ``--latency-seconds`` (evidence, then its score); time from a score's publish to its
   SFT sample (accepted runs) or RAG sample (partially accepted) on the output topic;
5. the worker's peak RSS (``VmHWM`` of /proc/<pid>/status), its RSS at each tenth of the
   input committed (does memory grow with the runs processed?), and CPU time.

Results go to stdout (a table, or JSON with ``--json``) and to
``benchmarks/results/<guarantee>-p<P>[-w<W>]-<order>-<N>.json``; a later run prints an estimate of its
duration from the largest earlier result. ``--profile`` runs the worker under
pyinstrument and writes ``benchmarks/profile.txt`` and ``benchmarks/hotspots.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.partitioner import murmur2  # noqa: E402

from streams import kafka_io  # noqa: E402
from streams.preflight import check_connection  # noqa: E402
from streams.settings import DistillSettings  # noqa: E402
from streams.tables import TABLE_NAMES, changelog_topic  # noqa: E402
from streams.wait import wait_caught_up  # noqa: E402
from streams.worker import child_worker, settings_env  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PROFILE_TXT = ROOT / "benchmarks" / "profile.txt"
HOTSPOTS_JSON = ROOT / "benchmarks" / "hotspots.json"

# --- the runs -----------------------------------------------------------------------------

SEED = 20260427
START = int(datetime(2026, 4, 20, tzinfo=timezone.utc).timestamp())
SPAN = 3 * 86_400  # scored_at of the N runs spreads evenly over three days
CATEGORIES = ("accepted", "partially_accepted", "rejected", "needs_human_review")
CATEGORY_WEIGHTS = (36, 10, 37, 17)  # the bundled sample (357 / 97 / 375 / 171 of 1000)
CUM_CATEGORY = [sum(CATEGORY_WEIGHTS[: i + 1]) for i in range(4)]
RUNS_PER_TASK = range(1, 9)
CUM_TASK_SIZE = [12, 26, 40, 54, 67, 79, 90, 100]  # 1-8 runs per task, mean about 4.3
ACTIVE_TASKS = 64  # tasks open at once: a task's runs interleave with others', minutes apart
FAMILIES = (("scrum_review", "scrum_reviews"), ("observer", "observer_reviews"), ("mode_experiment", "mode_experiments"))
# A small list of repository paths; no manifest is published, so the path gate checks syntax only.
SOURCE_FILES = (
    "src/auth/session.rs", "src/auth/token.rs", "src/api/handlers.rs", "src/db/pool.rs", "src/cache/lru.rs",
    "crates/lakehouse/src/ingest.rs", "crates/lakehouse/src/catalog.rs", "crates/observer/src/watcher.rs",
    "docs/ARCHITECTURE.md", "scripts/distillation/export_preference.ts", "tests/integration/ingest_roundtrip.rs",
    "migrations/0012_add_sig_hash.sql",
)
REASONS = {
    "accepted": ("verdict: approve", "tests pass", "all cited files exist", "explanation matches quoted code"),
    "partially_accepted": ("verdict: accept with changes", "edge case untested", "migration note missing"),
    "rejected": ("verdict: reject", "cited call site does not exist", "patch does not compile", "tests not run"),
    "needs_human_review": ("no validation markers", "grounded_fraction between thresholds", "unverifiable"),
}
BASE_WORDS = (
    "the run reviewer patch session token lock retry backoff latency cache entry row group parquet footer "
    "manifest schema version partition key consumer lag batch commit offset rebalance worker upstream "
    "error typed panic malformed invariant quoted lines test property round-trips flushed ordering implicit "
    "dead code feature flag signature caller clippy formatter constant time side channel observer window "
    "alert threshold drained compaction scheduled object store replayed throughput grounded fraction judge "
    "prompt temperature samples median tokens context trimmed sweep validation cited matched repository "
    "verdict approve accept reject follow-up reviewer evidence plausible verified markers recorded"
).split()


def vocabulary(seed: int) -> list[str]:
    """The base words and a few hundred seeded pseudo-words (identifiers, names)."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "ri", "sta", "ven", "mor", "tux", "pel", "dra", "qui", "zen", "bo", "fir", "gal"]
    pseudo = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(600)}
    words = BASE_WORDS + sorted(pseudo) + [p.rsplit("/", 1)[-1] for p in SOURCE_FILES]
    words += [f"{rng.randint(2, 9999)}" for _ in range(100)] + [f"{rng.randint(1, 999)}ms" for _ in range(50)]
    return words


def rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    category: str
    key: bytes
    evidence: bytes
    score: bytes


class Runs:
    """N runs, generated one at a time: same seed, same bytes (nothing is held in memory)."""

    def __init__(self, n: int, seed: int = SEED, id_prefix: str = "bench", start: int = START, span: int = SPAN):
        self.n, self.seed, self.id_prefix, self.start, self.span = n, seed, id_prefix, start, span
        # Sentences of 8-18 seeded words; a run's text is a seeded draw of them (cheaper than word by word).
        words, rng = vocabulary(seed), random.Random(seed)
        self.sentences = [" ".join(rng.choices(words, k=rng.randint(8, 18))).capitalize() + "."
                          for _ in range(4096)]

    @property
    def end(self) -> int:
        return self.start + self.span

    def __iter__(self) -> Iterator[Run]:
        rng = random.Random(self.seed)
        sentences = self.sentences
        offsets: dict[str, int] = {}
        tasks_made = 0

        def new_task() -> list:
            nonlocal tasks_made
            tasks_made += 1
            family, source_category = FAMILIES[rng.randrange(3)]
            size = RUNS_PER_TASK[_pick(rng, CUM_TASK_SIZE)]
            files = rng.sample(SOURCE_FILES, rng.choice((0, 1, 1, 2, 3)))
            return [f"{family}:{self.id_prefix}-task-{tasks_made:07d}", source_category, size, files]

        def provenance(kind: str, source_category: str, epoch: int, signed: str) -> dict:
            day = time.strftime("%Y/%m/%d", time.gmtime(epoch))
            source_file = f"data/{kind}/{day}/{source_category}.jsonl"
            offsets[source_file] = offsets.get(source_file, -1) + 1
            return {"source_file": source_file, "line_offset": offsets[source_file],
                    "sig_hash": hashlib.sha256(signed.encode()).hexdigest(), "recorded_at": rfc3339(epoch)}

        active = [new_task() for _ in range(ACTIVE_TASKS)]
        step = self.span / max(1, self.n)
        for i in range(self.n):
            slot = rng.randrange(ACTIVE_TASKS)
            task = active[slot]
            task_id, source_category, _, files = task
            task[2] -= 1
            if task[2] == 0:
                active[slot] = new_task()
            run_id = f"{self.id_prefix}-{i:07d}"
            category = CATEGORIES[_pick(rng, CUM_CATEGORY)]
            scored_at = self.start + int(i * step)
            recorded_at = scored_at - rng.randint(120, 900)
            target, size, body = rng.randint(1200, 1600), 0, []
            for sentence in rng.choices(sentences, k=40):
                body.append(sentence)
                size += len(sentence) + 1
                if size >= target:
                    break
            text = f"Review of {task_id} ({run_id}).\n{' '.join(body)}\n\nVerdict: {category.replace('_', ' ')}."
            evidence = {
                "schema_version": 1, "run_id": run_id, "task_id": task_id, "source_category": source_category,
                "text": text, "source_files": files,
                "provenance": provenance("evidence", source_category, recorded_at, f"{run_id}|{task_id}|{text}"),
            }
            stamp = rfc3339(scored_at)
            score = {
                "schema_version": 1, "evidence_run_id": run_id, "evidence_task_id": task_id, "category": category,
                "reasons": rng.sample(REASONS[category], rng.randint(1, 3)),
                "provenance": provenance("scored-runs", source_category, scored_at, f"{run_id}|{category}|{stamp}"),
                "scored_at": stamp,
            }
            yield Run(run_id, category, run_id.encode(), orjson.dumps(evidence), orjson.dumps(score))


def _pick(rng: random.Random, cumulative: list[int]) -> int:
    x = rng.random() * cumulative[-1]
    for i, edge in enumerate(cumulative):
        if x < edge:
            return i
    return len(cumulative) - 1


def sample_id(kind: str, run_id: str) -> bytes:
    """SPEC 5: ``sft-`` / ``rag-`` + sha256(``{kind}|{run_id}``)[:16]."""
    return f"{kind}-{hashlib.sha256(f'{kind}|{run_id}'.encode()).hexdigest()[:16]}".encode()


# --- small helpers ------------------------------------------------------------------------


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


# --- 1. publish -----------------------------------------------------------------------------


async def publish(settings: DistillSettings, runs: Runs, targets: list[tuple[str, str]],
                  order: str = "files") -> dict:
    """Each run's evidence and score to every (evidence topic, score topic) of ``targets``.

    ``interleaved``: a run's evidence, then its score, run after run (live producers).
    ``files``: every evidence, then every score, as ``distill ingest`` publishes two files.
    """
    producer = AIOKafkaProducer(**kafka_io.client_options(settings), linger_ms=50, max_batch_size=1024 * 1024,
                                max_request_size=4 * 1024 * 1024, acks=1)
    await producer.start()
    counts = {c: 0 for c in CATEGORIES}
    evidence_bytes = score_bytes = 0
    pending: list[asyncio.Future] = []
    started = time.perf_counter()
    passes = [("evidence", "score")] if order == "interleaved" else [("evidence",), ("score",)]
    try:
        for kinds in passes:
            for i, run in enumerate(runs, 1):
                if "evidence" in kinds:
                    counts[run.category] += 1
                    evidence_bytes += len(run.evidence)
                if "score" in kinds:
                    score_bytes += len(run.score)
                for evidence_topic, score_topic in targets:
                    if "evidence" in kinds:
                        pending.append(await producer.send(evidence_topic, run.evidence, key=run.key))
                    if "score" in kinds:
                        pending.append(await producer.send(score_topic, run.score, key=run.key))
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
                if i % 100_000 == 0:
                    log(f"published {'/'.join(kinds)} of {i:,} of {runs.n:,} runs")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return {"seconds": time.perf_counter() - started, "categories": counts,
            "mean_evidence_bytes": evidence_bytes / max(1, runs.n), "mean_score_bytes": score_bytes / max(1, runs.n)}


# --- 2. ceiling -----------------------------------------------------------------------------


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


# --- 3. pipeline ----------------------------------------------------------------------------

RUN_OUTPUTS = ("rag-samples", "sft-samples", "quarantine")  # one outcome per stage and run: per-run work


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


class Workers:
    """The worker processes of the pipeline phase, measured together."""

    def __init__(self) -> None:
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def add(self, process: subprocess.Popen, log_path: Path) -> None:
        STARTED.append(process)
        self.processes.append((process, log_path))

    def check_alive(self) -> None:
        for process, log_path in self.processes:
            if process.poll() is not None:
                lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
                tail = "\n".join([line for line in lines if "producer buffer full" not in line][-60:])
                raise RuntimeError(f"a worker exited with {process.returncode} (log: {log_path}):\n{tail}")

    def status(self) -> dict[str, float]:
        """CPU seconds summed over the workers; VmHWM and VmRSS (KiB) of the largest one; VmHWM summed."""
        each = [proc_status(process.pid) for process, _ in self.processes]
        return {"cpu_s": sum(st.get("cpu_s", 0.0) for st in each),
                "VmHWM": max((st.get("VmHWM", 0) for st in each), default=0),
                "VmRSS": max((st.get("VmRSS", 0) for st in each), default=0),
                "VmHWM_sum": sum(st.get("VmHWM", 0) for st in each)}


@contextlib.asynccontextmanager
async def worker_processes(settings: DistillSettings, count: int, profile: bool):
    """``count`` ``distill worker`` children of one group (``streams.worker.child_worker``), each with
    its own data folder; or one under pyinstrument."""
    workers = Workers()
    if not profile:
        async with contextlib.AsyncExitStack() as stack:
            for i in range(count):
                own = settings if i == 0 else settings.model_copy(update={"data_dir": settings.data_dir / f"worker-{i}"})
                log_path = own.data_dir / "worker.log"
                workers.add(await stack.enter_async_context(child_worker(own, log_path)), log_path)
            yield workers
        return
    env = settings_env(settings) | {"BENCH_HOTSPOTS_OUT": str(HOTSPOTS_JSON)}
    # 5 ms samples: pyinstrument keeps every sample in memory until the worker exits (about 1 GB
    # per 100,000 at 1 ms); VmHWM of a profiled worker is therefore not the worker's own.
    command = [sys.executable, "-m", "pyinstrument", "-i", "0.005", "-r", "benchmarks.profiling.HotspotRenderer",
               "-o", str(PROFILE_TXT), "-m", "streams", "worker"]
    log_path = settings.data_dir / "worker.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=ROOT)
        workers.add(process, log_path)
        try:
            yield workers
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 900)  # pyinstrument renders on the way out
            except subprocess.TimeoutExpired:
                process.kill()


async def quarantine_reasons(settings: DistillSettings) -> dict[str, int]:
    """Quarantine records by ``stage/reason``, from their headers (the values are not parsed)."""
    counts: dict[str, int] = {}
    async for message in kafka_io.read_topic(settings, settings.topic("quarantine")):
        headers = {k: v.decode() for k, v in message.headers or ()}
        key = f"{headers.get('stage')}/{headers.get('reason')}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


# What this data should give: RAG and SFT gates by category, nothing else (SPEC 4, default options).
EXPECTED_REASONS = {"rag/category_disallowed", "rag/unsafe_rag_category", "sft/category_disallowed",
                    "sft/unsafe_sft_category"}


async def pipeline(settings: DistillSettings, runs: Runs, categories: dict, args) -> dict:
    """Start the worker on input already published; time startup, processing, catching up."""
    out_topics = [settings.topic(t) for t in RUN_OUTPUTS]
    lag_topics = [settings.topic(t) for t in ("evidence", "scored-runs", "pair-candidates")]
    # One RAG and one SFT outcome per run (a sample or a quarantine record); join timeouts and
    # late arrivals add records, so outcomes are counted from the committed input instead.
    result: dict = {"expected_samples": {"rag": categories["accepted"] + categories["partially_accepted"],
                                         "sft": categories["accepted"]}}
    async with Probe(settings) as probe:
        result["code"] = code_version()
        spawned = time.time()
        async with worker_processes(settings, args.workers, args.profile) as workers:
            while sum((await probe.ends(out_topics)).values()) == 0:
                workers.check_alive()
                if time.time() - spawned > 300:
                    raise TimeoutError("no output 300 s after the worker started")
                await asyncio.sleep(0.05)
            first_seen = time.time()
            cpu_at_first = workers.status()["cpu_s"]
            log(f"worker producing after {first_seen - spawned:.1f} s; processing {runs.n:,} runs")
            last_report = time.monotonic()
            inputs = 2 * runs.n
            consumed_at = pair_targets = None
            # Does memory grow with the runs processed? RSS of the largest worker at each tenth.
            rss_by_runs: list[dict] = []
            tenths_seen = 0
            while consumed_at is None:
                workers.check_alive()
                input_lag = await probe.lag(lag_topics[:2])
                tenth = 10 * (inputs - input_lag) // inputs
                if tenth > tenths_seen:
                    tenths_seen = tenth
                    rss_by_runs.append({"runs_committed": (inputs - input_lag) // 2,
                                        "rss_mib": round(workers.status()["VmRSS"] / 1024, 1)})
                if input_lag == 0:
                    # Idle ticks keep arriving on pair-candidates: wait for what was there now.
                    pair_targets = pair_targets or await probe.ends(lag_topics[2:])
                    if await probe.lag(lag_topics[2:], pair_targets) == 0:
                        consumed_at = time.time()
                        break
                elapsed = time.time() - first_seen
                if elapsed > args.timeout:
                    done = inputs - input_lag
                    result |= {"timed_out": True, "timeout_s": args.timeout, "input_messages_done": done,
                               "messages_per_s": done / elapsed, "runs_per_s": done / 2 / elapsed,
                               "startup_s": first_seen - spawned, "processing_s": elapsed,
                               "worker_cpu_startup_s": cpu_at_first,
                               "worker_cpu_processing_s": workers.status()["cpu_s"] - cpu_at_first,
                               "rss_by_runs": rss_by_runs}
                    log(f"stopping: {done:,} of {inputs:,} input messages committed after {elapsed:.0f} s")
                    result["quarantine"] = await quarantine_reasons(settings)
                    result["unexpected_quarantine"] = {k: v for k, v in result["quarantine"].items()
                                                       if k not in EXPECTED_REASONS}
                    break
                if time.monotonic() - last_report > 15:
                    last_report = time.monotonic()
                    log(f"  {inputs - input_lag:,} of {inputs:,} input messages committed "
                        f"(~{(inputs - input_lag) / 2 / elapsed:,.0f} runs/s so far)")
                await asyncio.sleep(0.5)
            if consumed_at is not None:
                await wait_caught_up(settings, timeout=300)
                caught_up_at = time.time()
                status = workers.status()
                first, last = await time_range(settings, out_topics)
                processing = last - first
                # Through the whole pipeline: until the last preference pair (the windows still open
                # at the end of the input close by idleness, DISTILL_PAIR_IDLE_CLOSE later).
                _, last_pair = await time_range(settings, [settings.topic("preference-pairs")])
                result |= {
                    "startup_s": first - spawned,
                    "processing_s": processing,
                    "runs_per_s": runs.n / processing,
                    "whole_pipeline_s": max(last, last_pair or last) - first,
                    "whole_pipeline_runs_per_s": runs.n / (max(last, last_pair or last) - first),
                    "messages_per_s": 2 * runs.n / processing,
                    "consumed_s": consumed_at - first,
                    "caught_up_s": caught_up_at - first,
                    "worker_cpu_startup_s": cpu_at_first,
                    "worker_cpu_processing_s": status["cpu_s"] - cpu_at_first,
                    "peak_rss_after_processing_mib": status["VmHWM"] / 1024,
                    "rss_by_runs": rss_by_runs,
                    "output_messages": {t: sum((await probe.ends([settings.topic(t)])).values())
                                        for t in ("rag-samples", "sft-samples", "preference-pairs", "quarantine")},
                }
                result["produced_offsets"] = await produced_offsets(settings, probe)
                result["produced_per_run"] = sum(result["produced_offsets"].values()) / runs.n
                result["quarantine"] = await quarantine_reasons(settings)
                result["unexpected_quarantine"] = {k: v for k, v in result["quarantine"].items()
                                                   if k not in EXPECTED_REASONS}
                log(f"pipeline: {result['runs_per_s']:,.0f} runs/s over {processing:.1f} s "
                    f"(startup {result['startup_s']:.1f} s)")
                if args.latency_seconds > 0:
                    rate = max(1.0, result["runs_per_s"] / 2)
                    result["latency"] = await latency(settings, rate, args.latency_seconds, runs.end,
                                                      workers, args.latency_samples)
            final = workers.status()
            result["peak_rss_mib"] = final["VmHWM"] / 1024
            result["peak_rss_all_workers_mib"] = final["VmHWM_sum"] / 1024
            result["worker_cpu_total_s"] = final["cpu_s"]
    return result


async def produced_offsets(settings: DistillSettings, probe: Probe) -> dict[str, int]:
    """Offsets the worker wrote per topic: outputs, pair-candidates and the table changelogs
    (under exactly-once each transaction also leaves one commit marker per partition)."""
    names = [settings.topic(t) for t in ("rag-samples", "sft-samples", "preference-pairs", "quarantine",
                                         "pair-candidates")]
    names += [changelog_topic(settings, table) for table in TABLE_NAMES]
    return {name: sum((await probe.ends([name])).values()) for name in names}


# --- 4. latency -----------------------------------------------------------------------------


def write_latency_samples(path: Path, published: dict[bytes, float], arrived: dict[bytes, float],
                          run_keys: dict[bytes, bytes], partitions: int) -> None:
    """One JSON line per sample: when its score was published (epoch s), the milliseconds to
    its sample (null: never came) and the input partition of its run. A tail that belongs to
    one partition points at one worker, a tail over both at the whole machine."""
    offset = time.time() - time.monotonic()
    with path.open("wb") as out:
        for sample, at in published.items():
            late = arrived.get(sample)
            out.write(orjson.dumps({
                "published": round(at + offset, 4), "ms": None if late is None else round((late - at) * 1000, 2),
                "partition": (murmur2(run_keys[sample]) & 0x7FFFFFFF) % partitions,
            }) + b"\n")


async def latency(settings: DistillSettings, rate: float, seconds: float, after: int,
                  workers: Workers, samples_path: Path | None = None) -> dict:
    """Publish runs at ``rate`` runs/s; time each score's publish to its SFT/RAG sample."""
    n = max(1, int(rate * seconds))
    runs = Runs(n, seed=SEED + 1, id_prefix="lat", start=after + 60, span=max(60, int(seconds)))
    # aiokafka's default lets the broker hold a fetch 500 ms, which this probe would add to
    # the latency it measures (see streams/fetch_wait.py).
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
        log(f"latency: {n:,} runs at {rate:,.0f} runs/s for {seconds:.0f} s")
        t0 = time.monotonic()
        for i, run in enumerate(runs):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(settings.topic("evidence"), run.evidence, key=run.key)
            wanted = {"accepted": "sft", "partially_accepted": "rag"}.get(run.category)
            at = time.monotonic()
            await producer.send(settings.topic("scored-runs"), run.score, key=run.key)
            if wanted:
                sample = sample_id(wanted, run.run_id)
                published[sample], run_keys[sample] = at, run.key
        sent_for = time.monotonic() - t0
        await producer.flush()
        wait_until = time.monotonic() + 60
        while time.monotonic() < wait_until and not published.keys() <= arrived.keys():
            workers.check_alive()
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


# --- the whole benchmark ----------------------------------------------------------------------


def estimate(runs: int, guarantee: str, partitions: int, order: str, workers: int) -> str | None:
    """The expected duration of this benchmark, from the largest earlier result."""
    earlier = []
    for path in RESULTS.glob("*.json"):
        with contextlib.suppress(ValueError, KeyError, OSError):
            data = json.loads(path.read_text())
            if not data.get("profile"):
                earlier.append(data)
    if not earlier:
        return None
    best = max(earlier, key=lambda d: (d["guarantee"] == guarantee, d["partitions"] == partitions,
                                       d.get("workers", 1) == workers, d.get("order") == order, d["runs"]))
    pipe = best["pipeline"]
    per_run = (best["publish"]["seconds"] + best["ceiling"]["seconds"]) / best["runs"] + 1 / pipe["runs_per_s"]
    fixed = pipe["startup_s"] + (pipe.get("latency") or {}).get("publish_seconds", 0) + 60
    total = per_run * runs + fixed
    return (f"estimated duration: {total / 60:,.1f} min, of which pipeline processing {runs / pipe['runs_per_s'] / 60:,.1f} min "
            f"(linear extrapolation of the {best['runs']:,}-run result, {best['guarantee']}, "
            f"{best['partitions']} partitions, {best.get('workers', 1)} worker(s): {pipe['runs_per_s']:,.0f} runs/s"
            f"{', itself stopped by --timeout' if pipe.get('timed_out') else ''})")


async def benchmark(args) -> dict:
    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"distill-bench-{tag}-"))
    settings = DistillSettings(
        bootstrap=args.bootstrap, topic_prefix=f"bench.{tag}.", data_dir=work, partitions=args.partitions,
        web_enabled=False, processing_guarantee=args.guarantee, pair_idle_close=5.0, log_level=args.worker_log_level,
    )
    ceiling_in = [settings.topic("ceiling.evidence"), settings.topic("ceiling.scored-runs")]
    ceiling_out = settings.topic("ceiling.out")
    result: dict = {
        "runs": args.runs, "partitions": args.partitions, "workers": args.workers, "guarantee": args.guarantee, "profile": args.profile,
        "order": args.order,
        "prefix": settings.topic_prefix, "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # Settings a DISTILL_* variable may have changed for this run, so results say what they measured.
        "worker_settings": settings.model_dump(include={"state_memory_mib", "standby_replicas"}),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }
    await check_connection(settings)
    failed = True
    try:
        await kafka_io.ensure_topics(settings)
        await create_topics(settings, [*ceiling_in, ceiling_out], args.partitions)
        runs = Runs(args.runs, seed=args.seed)
        log(f"publishing {args.runs:,} runs (evidence + score) to the ceiling's and the pipeline's inputs")
        result["publish"] = await publish(settings, runs, [tuple(ceiling_in),
                                                           (settings.topic("evidence"), settings.topic("scored-runs"))],
                                          args.order)
        log(f"published in {result['publish']['seconds']:.1f} s; ceiling: copying {2 * args.runs:,} messages")
        result["ceiling"] = await ceiling(settings, ceiling_in, ceiling_out, 2 * args.runs)
        log(f"ceiling: {result['ceiling']['messages_per_s']:,.0f} messages/s; Faust floor: forwarding them")
        floor_out = settings.topic("ceiling.floor-out")
        await create_topics(settings, [floor_out], args.partitions)
        result["faust_floor"] = await faust_floor(settings, ceiling_in, floor_out, 2 * args.runs, work)
        log(f"Faust floor: {result['faust_floor']['messages_per_s']:,.0f} messages/s")
        await kafka_io.delete_topics(settings, [*ceiling_in, ceiling_out, floor_out])  # free the disk early
        result["pipeline"] = await pipeline(settings, runs, result["publish"]["categories"], args)
        result["ratio_pipeline_to_ceiling"] = result["pipeline"]["messages_per_s"] / result["ceiling"]["messages_per_s"]
        result["ratio_pipeline_to_faust_floor"] = (result["pipeline"]["messages_per_s"]
                                                   / result["faust_floor"]["messages_per_s"])
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        failed = False
    finally:
        if args.keep_topics:
            log(f"topics kept: DISTILL_TOPIC_PREFIX={settings.topic_prefix} (delete them when done)")
        else:
            with contextlib.suppress(Exception):
                deleted = await kafka_io.delete_prefixed(settings)
                log(f"deleted {len(deleted)} topics of {settings.topic_prefix} / {settings.application_id}")
        if args.keep_state or failed:
            log(f"worker state and log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.profile and HOTSPOTS_JSON.exists():
        result["hotspots"] = json.loads(HOTSPOTS_JSON.read_text())
    return result


# --- output -----------------------------------------------------------------------------------


def render(result: dict) -> str:
    p, c, pub = result["pipeline"], result["ceiling"], result["publish"]
    cats = pub["categories"]
    n = result["runs"]
    rows = [
        ("runs", f"{n:,}  ({', '.join(f'{k} {v / n:.0%}' for k, v in cats.items())})"),
        ("input sizes", f"evidence {pub['mean_evidence_bytes']:,.0f} B, score {pub['mean_score_bytes']:,.0f} B (mean)"),
        ("partitions / workers / guarantee / order", f"{result['partitions']} / {result.get('workers', 1)} / "
                                                     f"{result['guarantee']} / {result['order']}"
                                   + ("  (worker under pyinstrument)" if result["profile"] else "")),
        ("worker settings", ", ".join(f"{k} {v}" for k, v in result.get("worker_settings", {}).items())),
        ("publish (4 topics)", f"{pub['seconds']:.1f} s"),
        ("ceiling (plain aiokafka copy)", f"{c['messages_per_s']:,.0f} msg/s  ({c['messages']:,} msgs in "
                                          f"{c['seconds']:.1f} s, {c['cpu_s']:.1f} s CPU)"),
        ("Faust floor (forward each input once)", f"{result['faust_floor']['messages_per_s']:,.0f} msg/s"
                                                  if "faust_floor" in result else "not measured"),
        ("pipeline startup", f"{p['startup_s']:.1f} s  (process start to first output; "
                             f"{p['worker_cpu_startup_s']:.1f} s CPU)"),
    ]
    if p.get("timed_out"):
        rows += [
            ("pipeline processing", f"STOPPED after {p['processing_s']:.0f} s (--timeout): "
                                    f"{p['input_messages_done']:,} of {2 * n:,} input messages committed"),
            ("pipeline throughput", f"{p['runs_per_s']:,.0f} runs/s = {p['messages_per_s']:,.0f} input msg/s (so far)"),
        ]
    else:
        rows += [
            ("pipeline processing", f"{p['processing_s']:.1f} s  (first to last RAG/SFT/quarantine output)"),
            ("pipeline throughput", f"{p['runs_per_s']:,.0f} runs/s = {p['messages_per_s']:,.0f} input msg/s"),
        ]
        if "whole_pipeline_s" in p:
            rows.append(("through the whole pipeline", f"{p['whole_pipeline_runs_per_s']:,.0f} runs/s  (first output to the "
                                                       f"last preference pair, {p['whole_pipeline_s']:.1f} s; the "
                                                       "idle close of the last windows included)"))
    rows += [
        ("pipeline / ceiling", f"{result['ratio_pipeline_to_ceiling']:.1%}  (input messages per second)"),
        ("pipeline / Faust floor", f"{result['ratio_pipeline_to_faust_floor']:.1%}  (input messages per second)"
                                   if "ratio_pipeline_to_faust_floor" in result else "not measured"),
        ("worker CPU per 1000 runs", f"{1000 * p['worker_cpu_processing_s'] / (p.get('input_messages_done', 2 * n) / 2):.2f} s"
                                     f"  ({p['worker_cpu_processing_s']:.1f} s CPU while processing)"),
    ]
    if not p.get("timed_out"):
        rows += [
            ("all input consumed (committed)", f"{p['consumed_s']:.1f} s after first output"),
            ("caught up (distill wait)", f"{p['caught_up_s']:.1f} s after first output (incl. 5 s idle window close)"),
            ("messages produced per run", f"{p['produced_per_run']:.1f}  (outputs, pair-candidates, changelogs; "
                                          "transaction markers included)" if "produced_per_run" in p else "not measured"),
            ("outputs", ", ".join(f"{k} {v:,}" for k, v in p["output_messages"].items())
                        + f"  (expected samples: rag {p['expected_samples']['rag']:,}, "
                          f"sft {p['expected_samples']['sft']:,})"),
        ]
    if p.get("rss_by_runs"):
        rows.append(("worker RSS by runs committed", ", ".join(f"{m['runs_committed']:,}: {m['rss_mib']:,.0f}"
                                                              for m in p["rss_by_runs"]) + " MiB"))
    if "quarantine" in p:
        rows.append(("quarantine by stage/reason", ", ".join(f"{k} {v:,}" for k, v in p["quarantine"].items())))
        if p["unexpected_quarantine"]:
            rows.append(("  NOT EXPECTED for this data", ", ".join(f"{k} {v:,}" for k, v in p["unexpected_quarantine"].items())))
    lat = p.get("latency")
    if lat:
        rows.append(("latency at half rate", f"p50 {lat['p50_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms, "
                                             f"max {lat['max_ms']:,.0f} ms  ({lat['measured_samples']:,} samples at "
                                             f"{lat['rate_runs_per_s']:,.0f} runs/s, {lat['missing']} missing)")
                    if lat["p50_ms"] is not None else ("latency at half rate", "no samples arrived"))
        if lat.get("p99_ms_by_quarter") and None not in lat["p99_ms_by_quarter"]:
            rows.append(("  p99 by quarter of the phase", ", ".join(f"{v:,.0f}" for v in lat["p99_ms_by_quarter"]) + " ms"))
    rows.append(("worker peak RSS (VmHWM)", f"{p['peak_rss_mib']:,.0f} MiB"
                 + (f" the largest worker, {p['peak_rss_all_workers_mib']:,.0f} MiB all"
                    if result.get("workers", 1) > 1 else "")
                 + (f"  ({p['peak_rss_after_processing_mib']:,.0f} MiB after the batch)"
                    if "peak_rss_after_processing_mib" in p else "")))
    rows.append(("load average start / end", f"{result['machine']['load_average_at_start']} / "
                                             f"{result['machine'].get('load_average_at_end')} "
                                             f"on {result['machine']['cpus']} CPUs"))
    code = p.get("code") or {}
    rows.append(("code measured", f"{code.get('commit')}" + (f" + uncommitted changes in {len(code['uncommitted'])} "
                                                             "files of streams/, schemas/" if code.get("uncommitted") else "")))
    width = max(len(k) for k, _ in rows)
    lines = [f"distill-streams benchmark ({result['started']})", ""]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    hot = result.get("hotspots")
    if hot:
        lines += ["", f"  profile: {hot['busy_s']:.1f} s busy of {hot['total_s']:.1f} s sampled "
                      f"(idle in select {hot['idle_s']:.1f} s); cumulative time in streams/ and schemas/:"]
        for entry in hot["ours"][:15]:
            lines.append(f"    {entry['share_of_busy']:6.1%}  {entry['file']}:{entry['function']}")
        lines += ["", "  self time by package (leaf frames; C code counts for its caller):"]
        for entry in hot["self_by_package"][:10]:
            lines.append(f"    {entry['share_of_busy']:6.1%}  {entry['package']}")
        lines += ["", f"  text tree: {PROFILE_TXT.relative_to(ROOT)}; summary: {HOTSPOTS_JSON.relative_to(ROOT)}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--runs", type=int, default=20_000, help="runs to generate (default %(default)s; "
                        "try 100000, and 1000000 for the long run)")
    parser.add_argument("--partitions", type=int, default=2, help="partitions of the topics (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes in the group (at most --partitions; default %(default)s)")
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once"], default="at_least_once",
                        help="the worker's processing_guarantee (default %(default)s)")
    parser.add_argument("--order", choices=["files", "interleaved"], default="files",
                        help="publish all evidence, then all scores (files, as `distill ingest` publishes two "
                             "files), or each run's evidence then its score (interleaved, as live producers "
                             "do; a backlog of it is the stress case of the join timeout sweep) "
                             "(default %(default)s)")
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="duration of the fixed-rate latency phase; 0 skips it (default %(default)s)")
    parser.add_argument("--latency-samples", type=Path, metavar="FILE",
                        help="write each latency sample to FILE (JSON lines: publish time, ms, input partition)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="stop the pipeline phase after this many seconds of processing and report the "
                             "rate so far (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--bootstrap", default=os.environ.get("DISTILL_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--profile", action="store_true",
                        help="run the worker under pyinstrument; writes benchmarks/profile.txt and hotspots.json")
    parser.add_argument("--worker-log-level", default="warning", help="the worker's log level (default %(default)s)")
    parser.add_argument("--keep-state", action="store_true", help="keep the worker's data folder (and its log)")
    parser.add_argument("--keep-topics", action="store_true",
                        help="do not delete the benchmark's topics (to inspect them with distill stats; debugging)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if not 1 <= args.workers <= args.partitions:
        parser.error("--workers must be between 1 and --partitions (a worker without a partition idles)")
    if args.profile and args.workers != 1:
        parser.error("--profile runs one worker; leave out --workers")
    if args.profile:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            parser.error("--profile needs pyinstrument: .venv/bin/pip install pyinstrument")
    guess = estimate(args.runs, args.guarantee, args.partitions, args.order, args.workers)
    if guess:
        log(guess)
    try:
        result = asyncio.run(benchmark(args))
    finally:
        stop_leftovers()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = (f"{args.guarantee}-p{args.partitions}{f'-w{args.workers}' if args.workers > 1 else ''}"
            f"-{args.order}-{args.runs}"
            f"{'-profile' if args.profile else ''}.json")
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1) if args.json else render(result))


if __name__ == "__main__":
    main()
