"""The sample's honest runs: tasks, their runs in time, review texts and the records of each
run (SPEC section 2 shapes), imitating the seed's real export run."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

START = datetime(2026, 4, 20, tzinfo=timezone.utc)
DAY = 86_400
MAX_LINE_BYTES = 900_000  # DISTILL_MAX_RECORD_BYTES default: main files stay far below it

# The seed's run: 351 accepted, 95 partially_accepted, 368 rejected, 168
# needs_human_review (982 of its 1052 rows had one of these); same proportions of 1000.
CATEGORY_COUNTS = {"accepted": 357, "partially_accepted": 97, "rejected": 375, "needs_human_review": 171}
SOURCE_CATEGORY = {"scrum": "scrum_reviews", "observer": "observer_reviews", "mode": "mode_experiments"}

# The files that exist in the reviewed repository (written out as manifest.txt).
MANIFEST = sorted([
    ".github/workflows/ci.yml", "Cargo.toml", "README.md", "now.md", "package.json",
    "auditor/schemas/distillation/evidence_record.ts", "auditor/schemas/distillation/preference_sample.ts",
    "auditor/schemas/distillation/rag_sample.ts", "auditor/schemas/distillation/scored_run.ts",
    "auditor/schemas/distillation/sft_sample.ts", "crates/auditor/src/lib.rs", "crates/auditor/src/rules.rs",
    "crates/lakehouse/Cargo.toml", "crates/lakehouse/src/catalog.rs", "crates/lakehouse/src/compaction.rs",
    "crates/lakehouse/src/ingest.rs", "crates/lakehouse/src/lib.rs", "crates/lakehouse/src/manifest.rs",
    "crates/lakehouse/src/parquet_writer.rs", "crates/lakehouse/src/query/executor.rs",
    "crates/lakehouse/src/query/planner.rs", "crates/lakehouse/src/schema_registry.rs",
    "crates/observer/Cargo.toml", "crates/observer/src/escalation.rs", "crates/observer/src/lib.rs",
    "crates/observer/src/watcher.rs", "docs/ARCHITECTURE.md", "docs/DISTILLATION.md", "docs/RUNBOOK.md",
    "docs/adr/0007-compacted-topics.md", "migrations/0012_add_sig_hash.sql",
    "reports/distillation/phase4-export-report.md", "scripts/distill.ts",
    "scripts/distillation/build_evidence_index.ts", "scripts/distillation/distill.ts",
    "scripts/distillation/export_preference.ts", "scripts/distillation/export_rag.ts",
    "scripts/distillation/export_sft.ts", "scripts/distillation/quarantine.ts",
    "scripts/distillation/score_runs.ts", "src/api/errors.rs", "src/api/handlers.rs", "src/api/mod.rs",
    "src/api/routes.rs", "src/auth/middleware.rs", "src/auth/mod.rs", "src/auth/session.rs",
    "src/auth/token.rs", "src/cache/lru.rs", "src/cache/mod.rs", "src/config.rs", "src/db/migrations.rs",
    "src/db/pool.rs", "src/db/queries.rs", "src/lib.rs", "src/main.rs", "src/telemetry/metrics.rs",
    "src/telemetry/tracing.rs", "tests/distillation/exports.test.ts", "tests/distillation/scoring.test.ts",
    "tests/integration/ingest_roundtrip.rs", "tests/real-world/scrum_master_pipeline.ts",
])
PIPELINES = ["ingest-pipeline", "compaction-job", "catalog-sync", "schema-drift-watch",
             "nightly-backfill", "query-latency-probe", "escalation-router"]
EXPERIMENTS = ["grounded-vs-free", "cite-first", "tool-first", "terse-review", "long-context"]
MODES = ["grounded", "free", "cite-first", "tool-first", "terse"]
FUNCTIONS = ["refresh_session", "validate_token", "SessionStore::get", "ingest_batch", "Catalog::commit",
             "compact_partition", "plan_query", "write_row_group", "QuarantineWriter.write",
             "exportPreference", "scoreRun", "buildEvidenceIndex", "Manifest::load", "escalate",
             "retry_with_backoff", "LruCache::insert", "run_migrations"]
THINGS = ["session cookie", "bearer token", "parquet footer", "manifest entry", "row group", "schema version",
          "JSONL line", "partition key", "retry budget", "connection pool", "cache entry", "sig_hash"]

# Sentence templates; slots are filled by slot_values(). The openings and bodies depend on
# the kind of task, the leaning sentences and verdicts on the run's category, so that
# chosen and rejected texts of a pair read differently.
OPENINGS = {
    "scrum": ["Scrum review of {file}, attempt {k}.",
              "Review pass over {file} for sprint {n}, focusing on the {thing} handling.",
              "Second-opinion review of the diff to {file}: {n} lines changed across {k} hunks.",
              "Reviewed the pull request touching {file} and {file2}."],
    "observer": ["Observer note for {subject}: watched {k} consecutive batches.",
                 "Escalation review from the observer on {subject}, window of {n} minutes.",
                 "Observer summary for {subject} after the {thing} alert fired."],
    "mode": ["Mode experiment {subject}: compared {mode_a} with {mode_b} on {n} prompts.",
             "Experiment log for {subject}, run {k} of the sweep ({mode_a} vs {mode_b})."],
}
BODIES = {
    "scrum": ["{fn} now returns a typed error instead of panicking when the {thing} is malformed.",
              "The lock in {fn} is held only around the map lookup now, which removes the contention "
              "seen in the {n}-client soak test.",
              "Retries back off from {ms} ms to {ms2} ms and stop after {k} attempts, so a dead upstream "
              "no longer pins a worker.",
              "The reviewer traced the {thing} from {file2} into {fn} and quoted the lines that enforce "
              "the invariant.",
              "p95 latency on the fixture went from {ms2} ms to {ms} ms; p99 is unchanged within noise.",
              "The patch adds {k} unit tests and one property test that round-trips the {thing}.",
              "Error messages now name the {thing} and the offending value, as the on-call runbook asked.",
              "A comment explains why {fn} must run before the {thing} is flushed; the order was implicit.",
              "Dead code in {file2} ({n} lines) is removed along with its feature flag.",
              "The change keeps the public signature of {fn}, so no caller in {file2} has to move.",
              "Clippy and the formatter are clean; the CI run took {k} min {n} s.",
              "The {thing} is compared in constant time now → the timing side channel is closed."],
    "observer": ["Batch {batch} wrote {rows} rows in {ms} ms; consumer lag peaked at {lag} s and drained "
                 "within {k} minutes.",
                 "The schema registry reported version {k} for the {thing}; no drift against the catalog.",
                 "{pct}% of the files in the last window were under the compaction threshold, so {fn} "
                 "was scheduled.",
                 "Retries on the object store rose to {n} per minute around the alert, then fell to zero.",
                 "The observer cross-checked the cited code in {file} before escalating.",
                 "Memory stayed under {n}0 MiB while {rows} rows were replayed.",
                 "Two workers claimed the same partition for {ms} ms during a rebalance; no duplicate "
                 "rows landed.",
                 "The nightly backfill resumed from offset {batch} after the restart instead of starting over.",
                 "Throughput held at {n}k rows/s · CPU {pct}% on the ingest nodes.",
                 "The alert threshold ({lag} s of lag) was crossed {k} times in the window."],
    "mode": ["{mode_a} cited {k} files; {pct}% of the cited lines matched the repository.",
             "grounded_fraction = {frac} for {mode_a} against {frac2} for {mode_b}.",
             "Median answer length was {n}0 tokens in {mode_a} and {ms} tokens in {mode_b}.",
             "The judge prompt was held fixed; temperature 0.{k}, {n} samples per prompt.",
             "{mode_b} answered faster ({ms} ms median) but named a path under {file2} that is not there.",
             "No validation_results block was written for {k} of the prompts.",
             "Context was trimmed to {n}k tokens for both modes; {file} was always included.",
             "The sweep reused the prompts of run {batch}, so the two logs line up row by row."],
}
LEANING = {
    "accepted": ["All {k} existing tests pass and the new test covers the failing branch.",
                 "Every file the run cites exists at the reviewed commit.",
                 "The explanation matches the code it quotes line for line."],
    "partially_accepted": ["The main fix is right, but the {thing} edge case is untested.",
                           "One of the {k} cited files was renamed last sprint; the rest check out.",
                           "The migration note is missing; otherwise the change is sound."],
    "rejected": ["The run claims {fn} is called from {file2}, but no such call site exists.",
                 "The suggested patch does not compile against the current {thing} API.",
                 "Tests were not run and the described failure does not reproduce.",
                 "The cited line numbers point past the end of {file2}."],
    "needs_human_review": ["No validation markers were recorded, so grounding could not be checked.",
                           "grounded_fraction was {frac}, between the accept and reject thresholds.",
                           "The evidence is plausible but nothing in it can be verified without a reviewer."],
}
VERDICTS = {
    "accepted": ["Verdict: approve.", "Verdict: accept; merge as is.", "Outcome: accepted, no follow-up needed."],
    "partially_accepted": ["Verdict: accept with changes.", "Outcome: partially accepted; follow-up filed."],
    "rejected": ["Verdict: reject.", "Outcome: rejected; the run is not grounded in the code."],
    "needs_human_review": ["Verdict: needs human review.", "Outcome: parked for a reviewer."],
}
REASONS = {
    "accepted": ["verdict: approve", "tests pass", "all cited files exist", "explanation matches quoted code"],
    "partially_accepted": ["verdict: accept with changes", "edge case untested", "one cited file renamed",
                           "migration note missing"],
    "rejected": ["verdict: reject", "cites a call site that does not exist", "patch does not compile",
                 "tests not run", "line numbers out of range"],
    "needs_human_review": ["no validation markers", "grounded_fraction between thresholds",
                           "needs reviewer sign-off"],
}


@dataclass
class Run:
    task_id: str
    family: str  # scrum | observer | mode: decides source_category and the prose
    category: str
    scored_at: int  # seconds after START
    arrival: int  # order key in the files: scored_at plus a little delivery jitter
    run_id: str = ""
    evidence: dict = field(default_factory=dict)
    score: dict = field(default_factory=dict)


@dataclass
class Line:
    """One line of an output file; ``payload`` is a record (dumped as JSON) or raw text."""

    key: tuple
    payload: dict | str
    invalid_kind: str | None = None  # the defect that makes the line undecodable, if any

    def render(self) -> str:
        return self.payload if isinstance(self.payload, str) else compact(self.payload)


def rfc3339(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def compact(obj) -> str:
    """One JSONL line: compact, UTF-8 kept as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --- tasks and time ---------------------------------------------------------------------


class Pool:
    """Categories left to hand out, so the totals are exactly CATEGORY_COUNTS."""

    def __init__(self) -> None:
        self.left = dict(CATEGORY_COUNTS)

    def total(self) -> int:
        return sum(self.left.values())

    def take(self, category: str) -> str:
        assert self.left[category] > 0, category
        self.left[category] -= 1
        return category

    def take_any(self, rng: random.Random, allowed=tuple(CATEGORY_COUNTS)) -> str:
        choices = [c for c in allowed if self.left[c] > 0]
        return self.take(rng.choices(choices, [self.left[c] for c in choices])[0])


def plan_categories(rng: random.Random) -> list[tuple[str, list[str]]]:
    """(shape, categories) per task. Shapes give the pairing cases the demo should show."""
    pool, tasks = Pool(), []
    # Mode experiments had no validation markers in the seed: their runs await a human.
    while pool.left["needs_human_review"] > 40:
        tasks.append(("review", [pool.take("needs_human_review") for _ in range(rng.randint(2, 6))]))
    for _ in range(24):  # accepted + partial only: the fallback pairs
        extra = [pool.take_any(rng, ("accepted", "partially_accepted")) for _ in range(rng.randint(0, 2))]
        tasks.append(("fallback", [pool.take("accepted"), pool.take("partially_accepted"), *extra]))
    for _ in range(12):  # nothing to pair: counted as insufficient, never quarantined
        tasks.append(("no_pair", [pool.take_any(rng, ("rejected", "needs_human_review"))
                                  for _ in range(rng.randint(2, 3))]))
    for _ in range(30):
        tasks.append(("single", [pool.take_any(rng)]))
    pairable: list[list[str]] = []
    while pool.left["accepted"] and pool.left["rejected"] and pool.total() >= 2:
        size = min(rng.randint(2, 8), pool.total())
        pairable.append([pool.take("accepted"), pool.take("rejected"),
                         *(pool.take_any(rng) for _ in range(size - 2))])
    while pool.total():  # the few left over join pairable tasks that still have room
        rng.choice([t for t in pairable if len(t) < 8]).append(pool.take_any(rng))
    tasks += [("pairable", cats) for cats in pairable]
    for _, cats in tasks:
        rng.shuffle(cats)  # categories in time order would look staged
    return tasks


def name_tasks(rng: random.Random, plans) -> list[tuple[str, str, list[str]]]:
    """(task_id, family, categories): one scrum task per repository file at most."""
    files, used, named = rng.sample(MANIFEST, len(MANIFEST)), set(), []
    for shape, cats in plans:
        family, task_id = draw_task_name(rng, shape, files)
        while task_id in used:  # a name clash: draw again
            family, task_id = draw_task_name(rng, shape, files)
        used.add(task_id)
        named.append((task_id, family, cats))
    return named


def draw_task_name(rng: random.Random, shape: str, files: list[str]) -> tuple[str, str]:
    if shape == "review":
        return "mode", f"mode_experiment:{rng.choice(EXPERIMENTS)}-{rng.randint(1, 99):02d}"
    if files and rng.random() < 0.3:
        return "scrum", f"scrum_review:{files.pop()}"
    return "observer", f"observer:{rng.choice(PIPELINES)}-{rng.randint(1, 60)}"


def schedule(rng: random.Random, tasks) -> list[Run]:
    """Place each task's runs minutes to hours apart inside one UTC day.

    Pair windows are UTC days (SPEC 6, default 1 day), so a task kept inside one day is
    paired in one window. Runs start after 00:30 so the orphan scores come first.
    """
    runs = []
    for task_id, family, cats in tasks:
        gaps = [0] + [rng.randint(120, 5400) for _ in cats[1:]]
        t = rng.randrange(3) * DAY + rng.randint(1800, DAY - 1800 - sum(gaps))
        for cat, gap in zip(cats, gaps):
            t += gap
            runs.append(Run(task_id, family, cat, t, t + rng.randint(0, 120)))
    runs.sort(key=lambda r: (r.arrival, r.task_id, r.scored_at))
    for i, run in enumerate(runs, 1):
        run.run_id = f"run-{i:06d}"
    return runs


# --- texts and records ------------------------------------------------------------------


def pick_files(rng: random.Random, run: Run) -> list[str]:
    """0-3 repository files; a scrum review names the file it reviews first."""
    if run.family == "scrum":
        own = run.task_id.split(":", 1)[1]
        if rng.random() < 0.1:
            return []
        return [own, *rng.sample([f for f in MANIFEST if f != own], rng.randint(0, 2))]
    weights = [25, 35, 25, 15] if run.family == "observer" else [40, 40, 20, 0]
    return rng.sample(MANIFEST, rng.choices(range(4), weights)[0])


def make_text(rng: random.Random, run: Run, files: list[str], seen: set[str]) -> str:
    """Review prose of about 200-1500 characters, never the same text twice."""
    text = compose_text(rng, run, files)
    while text in seen:
        text = compose_text(rng, run, files)
    seen.add(text)
    if rng.random() < 0.05:  # some producers leave white space around: samples must trim it
        text = rng.choice(["\n", "  ", " \n"]) + text if rng.random() < 0.3 else text + "\n"
    return text


def compose_text(rng: random.Random, run: Run, files: list[str]) -> str:
    mode_a, mode_b = rng.sample(MODES, 2)
    fixed = {"file": files[0] if files else rng.choice(MANIFEST), "subject": run.task_id.split(":", 1)[1],
             "mode_a": mode_a, "mode_b": mode_b}

    def fill(template: str) -> str:
        ms = rng.randint(3, 400)
        return template.format(**fixed, file2=rng.choice(MANIFEST), fn=rng.choice(FUNCTIONS),
                               thing=rng.choice(THINGS), n=rng.randint(2, 64), k=rng.randint(2, 9),
                               ms=ms, ms2=ms + rng.randint(5, 900), pct=rng.randint(1, 99),
                               frac=f"{rng.random():.2f}", frac2=f"{rng.random():.2f}",
                               rows=f"{rng.randint(1_000, 2_000_000):,}", lag=rng.randint(5, 900),
                               batch=rng.randint(100, 99_999))

    opening = fill(rng.choice(OPENINGS[run.family]))
    verdict = fill(rng.choice(VERDICTS[run.category]))
    target = rng.randint(200, 1400)
    body = []
    for template in rng.sample(BODIES[run.family], len(BODIES[run.family])):
        if len(opening) + len(verdict) + sum(len(s) + 1 for s in body) >= target:
            break
        body.append(fill(template))
    body.insert(rng.randint(0, len(body)), fill(rng.choice(LEANING[run.category])))
    text = f"{opening}\n{' '.join(body)}\n\n{verdict}"
    while len(text) > 1500:
        body.pop(0)
        text = f"{opening}\n{' '.join(body)}\n\n{verdict}"
    return text


def provenance(kind: str, source_category: str, seconds: int, offsets: dict[str, int], signed: str) -> dict:
    """Where the batch pipeline wrote the record: one JSONL file per kind, day and source."""
    day = (START + timedelta(seconds=seconds)).strftime("%Y/%m/%d")
    source_file = f"data/{kind}/{day}/{source_category}.jsonl"
    offsets[source_file] = offsets.get(source_file, -1) + 1
    return {"source_file": source_file, "line_offset": offsets[source_file],
            "sig_hash": sha256_hex(signed), "recorded_at": rfc3339(seconds)}


def evidence_record(run_id, task_id, source_category, text, files, recorded_at, offsets) -> dict:
    return {"schema_version": 1, "run_id": run_id, "task_id": task_id, "source_category": source_category,
            "text": text, "source_files": files,
            "provenance": provenance("evidence", source_category, recorded_at, offsets,
                                     f"{run_id}|{task_id}|{text}")}


def score_record(run_id, task_id, source_category, category, reasons, scored_at, offsets) -> dict:
    stamp = rfc3339(scored_at)
    return {"schema_version": 1, "evidence_run_id": run_id, "evidence_task_id": task_id, "category": category,
            "reasons": reasons,
            "provenance": provenance("scored-runs", source_category, scored_at, offsets,
                                     f"{run_id}|{category}|{stamp}"),
            "scored_at": stamp}


def build_records(rng: random.Random, runs: list[Run], offsets: dict[str, int], seen: set[str]) -> None:
    for run in runs:
        source_category = SOURCE_CATEGORY[run.family]
        files = pick_files(rng, run)
        text = make_text(rng, run, files, seen)
        # The evidence is recorded a few minutes before the run is scored.
        run.evidence = evidence_record(run.run_id, run.task_id, source_category, text, files,
                                       run.scored_at - rng.randint(120, 900), offsets)
        reasons = rng.sample(REASONS[run.category], rng.randint(1, 3))
        run.score = score_record(run.run_id, run.task_id, source_category, run.category, reasons,
                                 run.scored_at, offsets)
