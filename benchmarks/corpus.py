"""The benchmark's input: N runs shaped like real ones, generated lazily from a seed (same seed,
same bytes), and their publication to the input topics."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
from aiokafka import AIOKafkaProducer

from benchmarks.common import log
from streams.broker import kafka_io
from streams.settings import DistillSettings

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
