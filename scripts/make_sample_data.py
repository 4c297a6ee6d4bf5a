#!/usr/bin/env python3
"""Write the bundled sample data: about 1000 scored agent runs, with a few of every defect.

The runs imitate the seed's real export run (1052 scored rows; SPEC and
``seed/phase4-commit-message.txt``): the same category proportions, review prose of a
few hundred characters, tasks with 1-8 runs each so that preference pairs, fallback
pairs and lone runs all occur. A handful of runs carry one defect each, chosen so that
every quarantine reason the input can trigger is reached (README.md in the output
folder lists them; ``expected.json`` lists their run ids for the tests).

Standard library only and seeded: every run writes the same bytes, so the tests can
compare the committed files with a fresh run.

Usage: python scripts/make_sample_data.py [--out DIR]   (default: streams/sample_data)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20260426
START = datetime(2026, 4, 20, tzinfo=timezone.utc)
DAY = 86_400
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "streams" / "sample_data"
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


# --- defects ----------------------------------------------------------------------------

PROVENANCE_BLANKS = {"empty_sig_hash": "sig_hash", "empty_source_file": "source_file",
                     "empty_recorded_at": "recorded_at"}
BLANK_TEXTS = ["", "   ", "\n\n\t", " \r\n "]
BAD_PATHS = {
    "absolute_path": ["/home/profit/lakehouse/src/auth/session.rs", "/etc/passwd", "/tmp/scratch/ingest.rs"],
    "dotdot_path": ["../lakehouse-private/secrets.toml", "src/../../etc/shadow",
                    "crates/lakehouse/../../../.ssh/id_rsa"],
    "backslash_path": ["src\\auth\\session.rs", "crates\\lakehouse\\src\\ingest.rs", "docs\\ARCHITECTURE.md"],
    "nul_path": ["src/auth/session.rs\x00", "crates/lakehouse/src/ingest.rs\x00.bak", "docs/\x00ARCHITECTURE.md"],
    "path_not_in_manifest": ["src/auth/oauth_refresh.rs", "crates/lakehouse/src/vacuum.rs",
                             "scripts/distillation/export_dpo.ts"],
}
EXTRA_FIELDS = [("harness", {"name": "scrum_master_pipeline", "version": "0.9.2"}),
                ("tokens_used", 1834), ("reviewer_notes", "rerun after the flaky CI job")]
# Defects the RAG/SFT gates must catch. They go on accepted runs, because the category
# gate runs first (SPEC 4) and would otherwise decide the reason.
GATE_DEFECTS = [("evidence_without_provenance", 3), ("score_without_provenance", 3),
                *((kind, 3) for kind in PROVENANCE_BLANKS), ("whitespace_text", len(BLANK_TEXTS)),
                *((kind, 3) for kind in BAD_PATHS), ("unknown_extra_field", len(EXTRA_FIELDS))]


def apply_gate_defect(kind: str, i: int, run: Run) -> None:
    if kind == "evidence_without_provenance":
        del run.evidence["provenance"]
    elif kind == "score_without_provenance":
        run.score["provenance"] = None
    elif kind in PROVENANCE_BLANKS:
        record = run.evidence if i % 2 == 0 else run.score  # the gate checks both records
        record["provenance"][PROVENANCE_BLANKS[kind]] = ""
    elif kind == "whitespace_text":
        run.evidence["text"] = BLANK_TEXTS[i]
    elif kind in BAD_PATHS:
        files = run.evidence["source_files"]  # the bad path sits first, in the middle or last
        files.insert(i % (len(files) + 1), BAD_PATHS[kind][i])
    elif kind == "unknown_extra_field":
        name, value = EXTRA_FIELDS[i]
        run.evidence[name] = value


def inject_gate_defects(rng: random.Random, runs: list[Run]) -> dict[str, list[str]]:
    accepted = [r for r in runs if r.category == "accepted"]
    victims = iter(rng.sample(accepted, sum(n for _, n in GATE_DEFECTS)))
    defects = {}
    for kind, n in GATE_DEFECTS:
        chosen = sorted((next(victims) for _ in range(n)), key=lambda r: r.run_id)
        for i, run in enumerate(chosen):
            apply_gate_defect(kind, i, run)
        defects[kind] = [r.run_id for r in chosen]
    return defects


def redeliveries(rng, runs, taken: set[str], offsets, seen) -> tuple[dict[str, list[str]], list[Line]]:
    """Second evidence lines: 4 with a new text (duplicate_id), 3 byte-identical (no-op)."""
    picked = sorted(rng.sample([r for r in runs if r.run_id not in taken], 7), key=lambda r: r.run_id)
    lines = []
    for run in picked[:4]:
        ev = run.evidence
        text = make_text(rng, run, ev["source_files"], seen)
        again = evidence_record(run.run_id, run.task_id, ev["source_category"], text, list(ev["source_files"]),
                                run.scored_at + rng.randint(300, 3600), offsets)
        lines.append(Line((run.arrival + rng.randint(600, 7200), 1, run.run_id), again))
    for run in picked[4:]:  # the very same dict: the same bytes
        lines.append(Line((run.arrival + rng.randint(60, 3600), 1, run.run_id), run.evidence))
    return ({"duplicate_evidence": [r.run_id for r in picked[:4]],
             "identical_redelivery": [r.run_id for r in picked[4:]]}, lines)


def orphan_scores(rng, tasks, offsets) -> tuple[list[str], list[Line]]:
    """Scores whose evidence never comes, in the first 20 minutes: later scores move stream
    time past their join timeout (1 h), so each is quarantined as missing_source_run_id."""
    ids, lines = [], []
    for i, category in enumerate(["accepted", "rejected", "accepted", "partially_accepted"], 1):
        task_id, family, _ = rng.choice(tasks)
        run_id, t = f"run-{900000 + i:06d}", rng.randint(60, 1200)
        score = score_record(run_id, task_id, SOURCE_CATEGORY[family], category, [REASONS[category][0]], t, offsets)
        ids.append(run_id)
        lines.append(Line((t, 0, run_id), score))
    return ids, lines


# Lines no consumer can decode into a record (SPEC 7: schema_violation at stage input).
# Each builder gets the line's run id and an otherwise valid record, and spoils one thing.
EVIDENCE_INVALID = [
    ("not_json", lambda rid, rec: f'{{"run_id": "{rid}", broken'),
    ("not_json", lambda rid, rec: compact(rec)[:90]),  # a write cut off mid-record
    ("json_array", lambda rid, rec: compact([rid, rec["task_id"], "not an object"])),
    ("json_array", lambda rid, rec: compact([rec])),
    ("json_string", lambda rid, rec: compact(f"{rid}: {rec['text']}")),
    ("wrong_type", lambda rid, rec: {**rec, "schema_version": "1"}),
    ("wrong_type", lambda rid, rec: {**rec, "text": 42}),
    ("wrong_type", lambda rid, rec: {**rec, "source_files": "src/auth/session.rs"}),
    ("wrong_type", lambda rid, rec: {**rec, "provenance": {**rec["provenance"], "line_offset": "12"}}),
]
SCORE_INVALID = [
    ("not_json", lambda rid, rec: f'{{"evidence_run_id": "{rid}", broken'),
    ("not_json", lambda rid, rec: f"category=accepted run={rid} scored_at={rec['scored_at']}"),
    ("json_array", lambda rid, rec: compact([rec])),
    ("json_string", lambda rid, rec: compact(f"score for {rid}: accepted")),
    ("json_string", lambda rid, rec: compact(rid)),  # the key sent as the value
    ("wrong_type", lambda rid, rec: {**rec, "reasons": "not a list"}),
    ("wrong_type", lambda rid, rec: {**rec, "schema_version": "1"}),
    ("wrong_type", lambda rid, rec: {**rec, "evidence_task_id": 7}),
    ("unknown_category", lambda rid, rec: {**rec, "category": "great"}),
    ("unknown_category", lambda rid, rec: {**rec, "category": "ACCEPTED"}),
    ("unknown_category", lambda rid, rec: {**rec, "category": "approved"}),
    ("bad_timestamp", lambda rid, rec: {**rec, "scored_at": "yesterday"}),
    ("bad_timestamp", lambda rid, rec: {**rec, "scored_at": rec["scored_at"].rstrip("Z")}),  # no zone
    ("bad_timestamp", lambda rid, rec: {**rec, "scored_at": "2026-04-31T12:00:00Z"}),
]


def invalid_lines(rng, offsets) -> tuple[dict[str, list[str]], list[Line], list[Line]]:
    """Spoiled lines at random places of each file, under run ids used nowhere else."""
    defects: dict[str, list[str]] = {}
    evidence, scores = [], []
    for base, specs, out, make in ((910_000, EVIDENCE_INVALID, evidence, "evidence"),
                                   (910_100, SCORE_INVALID, scores, "score")):
        for i, (kind, spoil) in enumerate(specs, 1):
            run_id, t = f"run-{base + i:06d}", rng.randint(3600, 3 * DAY - 3600)
            task_id = f"observer:ingest-pipeline-{rng.randint(1, 60)}"
            if make == "evidence":
                record = evidence_record(run_id, task_id, "observer_reviews",
                                         f"Observer note for {task_id.split(':')[1]}: batch {rng.randint(100, 99_999)} "
                                         "wrote its rows; lag stayed under a minute.", [], t - 300, offsets)
            else:
                record = score_record(run_id, task_id, "observer_reviews", "accepted", ["tests pass"], t, offsets)
            out.append(Line((t, 2, run_id), spoil(run_id, record), invalid_kind=kind))
            defects.setdefault(kind, []).append(run_id)
    return defects, evidence, scores


def huge_evidence(rng, offsets) -> list[Line]:
    """Two valid records of about 1.2 MB: above the 900,000-byte message limit."""
    lines = []
    for i in (1, 2):
        log = ["Observer attached the full build log of the failing run, verbatim:"]
        size = len(log[0])
        while size < 1_200_000:
            log.append(f"[{len(log):06d}] {rng.choice(['compiling', 'checking', 'linking', 'testing'])} "
                       f"{rng.choice(MANIFEST)} in {rng.randint(1, 9999)} ms")
            size += len(log[-1]) + 1
        run_id, t = f"run-{930_000 + i:06d}", DAY + rng.randint(0, DAY)
        record = evidence_record(run_id, f"observer:build-log-capture-{i}", "observer_reviews", "\n".join(log),
                                 ["crates/lakehouse/src/ingest.rs"], t, offsets)
        lines.append(Line((t, 0, run_id), record, invalid_kind="oversized_message"))
    return lines


# --- output -----------------------------------------------------------------------------

# Expected outcome per defect kind: (where it is, [(stage, reason)], note). SPEC 3, 4, 7.
OUTCOMES = {
    "evidence_without_provenance": ("evidence.jsonl", [("rag", "missing_provenance"), ("sft", "missing_provenance")],
                                    "no `provenance` key; left out of preference pairs"),
    "score_without_provenance": ("scores.jsonl", [("rag", "missing_provenance"), ("sft", "missing_provenance")],
                                 "`\"provenance\": null`; left out of preference pairs"),
    "empty_sig_hash": ("both", [("rag", "missing_provenance"), ("sft", "missing_provenance")],
                       "evidence for the 1st and 3rd run, score for the 2nd"),
    "empty_source_file": ("both", [("rag", "missing_provenance"), ("sft", "missing_provenance")],
                          "evidence for the 1st and 3rd run, score for the 2nd"),
    "empty_recorded_at": ("both", [("rag", "missing_provenance"), ("sft", "missing_provenance")],
                          "evidence for the 1st and 3rd run, score for the 2nd"),
    "whitespace_text": ("evidence.jsonl", [("rag", "empty_content"), ("sft", "empty_content")],
                        "text empty or white space only; left out of preference pairs"),
    **{kind: ("evidence.jsonl", [("rag", "hallucinated_file_path"), ("sft", "hallucinated_file_path")],
              note) for kind, note in [
        ("absolute_path", "an absolute path in `source_files`"),
        ("dotdot_path", "a path with `..`"),
        ("backslash_path", "a path with a backslash"),
        ("nul_path", "a path with a NUL character"),
        ("path_not_in_manifest", "a path absent from manifest.txt; caught once the manifest is published"),
    ]},
    "duplicate_evidence": ("evidence.jsonl", [("input", "duplicate_id")],
                           "a second, different evidence line for the run; the first stands"),
    "identical_redelivery": ("evidence.jsonl", [], "the same line twice: a no-op, no record"),
    "score_without_evidence": ("scores.jsonl", [("join", "missing_source_run_id")],
                               "in the first 20 minutes; stream time passes them by more than 1 h"),
    "unknown_extra_field": ("evidence.jsonl", [],
                            "valid: samples as usual, without the extra field (kept in quarantine copies)"),
    **{kind: ("evidence.jsonl / scores.jsonl", [("input", "schema_violation")], note) for kind, note in [
        ("not_json", "not JSON (broken or cut-off line, a log line)"),
        ("json_array", "a JSON array, not an object"),
        ("json_string", "a JSON string, not an object"),
        ("wrong_type", "a field of the wrong type"),
    ]},
    "unknown_category": ("scores.jsonl", [("input", "schema_violation")], "`great`, `ACCEPTED`, `approved`"),
    "bad_timestamp": ("scores.jsonl", [("input", "schema_violation")],
                      "`scored_at` not RFC 3339 (a word, no zone, 31 April)"),
    "oversized_message": ("evidence_huge.jsonl", [("input", "schema_violation")],
                          "about 1.2 MB, above DISTILL_MAX_RECORD_BYTES (900,000); not used by the demo"),
}


def write_jsonl(path: Path, lines: list[Line]) -> list[int]:
    """Write the lines in stream order; return the 1-based numbers of the invalid ones."""
    lines = sorted(lines, key=lambda line: line.key)
    path.write_bytes("".join(line.render() + "\n" for line in lines).encode("utf-8"))
    return [n for n, line in enumerate(lines, 1) if line.invalid_kind]


def task_shapes(runs: list[Run]) -> dict[str, int]:
    by_task: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for run in runs:
        by_task.setdefault(run.task_id, []).append(run.category)
    for cats in by_task.values():
        if len(cats) == 1:
            shape = "one_run"
        elif "accepted" in cats and "rejected" in cats:
            shape = "accepted_and_rejected"
        elif "accepted" in cats and "partially_accepted" in cats:
            shape = "accepted_and_partial_only"
        else:
            shape = "nothing_to_pair"
        counts[shape] = counts.get(shape, 0) + 1
    return dict(sorted(counts.items()))


def render_readme(expected: dict) -> str:
    cats = "\n".join(f"| `{c}` | {n} |" for c, n in expected["categories"].items())
    shapes = "\n".join(f"| {s.replace('_', ' ')} | {n} |" for s, n in expected["task_shapes"].items())
    files = "\n".join(f"| `{f}` | {n} | {expected['invalid_lines'][f]} |" for f, n in expected["lines"].items())
    defects = "\n".join(
        f"| `{kind}` | {len(ids)} | {OUTCOMES[kind][0]} | "
        f"{', '.join(f'`{stage}`: `{reason}`' for stage, reason in OUTCOMES[kind][1]) or 'none'} | "
        f"{OUTCOMES[kind][2]} |" for kind, ids in expected["defects"].items())
    first, last = expected["scored_at_range"]
    return f"""# Sample data

Written by `scripts/make_sample_data.py` (seed {SEED}); do not edit by hand, rerun the script.
The same script always writes the same bytes (`tests/unit/test_sample_data.py` checks it).

| file | lines | invalid lines |
| --- | --- | --- |
{files}

`manifest.txt` lists the {len(MANIFEST)} repository files that exist (publish it with
`distill manifest publish`); `expected.json` holds the counts below and the run ids of every
defect, for tests. Records are SPEC section 2 shapes, compact JSON, one a line, in stream
order: ordered by `scored_at` (up to 2 minutes of delivery jitter), evidence lines in the
same order as their scores. Evidence is recorded 2-15 minutes before its score.

## Runs

{expected['runs']} runs with both evidence and a valid score, in {expected['tasks']} tasks,
scored from {first} to {last}. Each task's runs fall inside one UTC day (one pair window).
The proportions are the seed's real run (351 / 95 / 368 / 168).

| category | runs |
| --- | --- |
{cats}

| tasks | count |
| --- | --- |
{shapes}

Valid scores: {expected['valid_scores']} (the runs plus the scores whose evidence never comes).

## Defects

Each defect run has one defect. The gate defects sit on `accepted` runs, so no category gate
decides first (SPEC 4). Outcomes per SPEC sections 3, 4 and 7; invalid lines use run ids
`run-9101xx` (evidence `run-91000x`) that appear nowhere else, one `input` record per line.

| kind | count | file | expected outcome (stage: reason) | note |
| --- | --- | --- | --- | --- |
{defects}

Every other run of an `accepted` category gets a RAG and an SFT sample; `partially_accepted`
gets RAG and `category_disallowed` at SFT; `rejected` gets `unsafe_rag_category` and
`unsafe_sft_category`; `needs_human_review` gets `category_disallowed` at RAG and
`unsafe_sft_category` at SFT (default options).
"""


def generate(out: Path) -> dict:
    rng = random.Random(SEED)
    tasks = name_tasks(rng, plan_categories(rng))
    runs = schedule(rng, tasks)
    offsets: dict[str, int] = {}
    seen: set[str] = set()
    build_records(rng, runs, offsets, seen)

    defects = inject_gate_defects(rng, runs)
    taken = {run_id for ids in defects.values() for run_id in ids}
    redelivered, extra_evidence = redeliveries(rng, runs, taken, offsets, seen)
    orphans, orphan_lines = orphan_scores(rng, tasks, offsets)
    spoiled, bad_evidence, bad_scores = invalid_lines(rng, offsets)
    huge = huge_evidence(rng, offsets)
    extra_field = defects.pop("unknown_extra_field")
    defects |= redelivered | {"score_without_evidence": orphans} | spoiled
    defects |= {"unknown_extra_field": extra_field, "oversized_message": [line.key[2] for line in huge]}

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "evidence.jsonl": [Line((r.arrival, 0, r.run_id), r.evidence) for r in runs] + extra_evidence + bad_evidence,
        "scores.jsonl": [Line((r.arrival, 0, r.run_id), r.score) for r in runs] + orphan_lines + bad_scores,
        "evidence_huge.jsonl": huge,
    }
    invalid = {name: write_jsonl(out / name, lines) for name, lines in files.items()}
    (out / "manifest.txt").write_text("".join(f"{path}\n" for path in MANIFEST), encoding="utf-8")

    stamps = sorted(r.score["scored_at"] for r in runs)
    expected = {
        "seed": SEED,
        "runs": len(runs),
        "tasks": len(tasks),
        "categories": {c: sum(r.category == c for r in runs) for c in CATEGORY_COUNTS},
        "task_shapes": task_shapes(runs),
        "valid_scores": len(runs) + len(orphans),
        "scored_at_range": [stamps[0], stamps[-1]],
        "lines": {name: len(lines) for name, lines in files.items()},
        "invalid_lines": {name: len(numbers) for name, numbers in invalid.items()},
        "invalid_line_numbers": invalid,
        "defects": defects,
        "expected_outcomes": {kind: [{"stage": s, "reason": r} for s, r in OUTCOMES[kind][1]] for kind in defects},
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(render_readme(expected), encoding="utf-8")
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    out = parser.parse_args().out
    expected = generate(out)
    print(f"wrote {out}: {expected['runs']} runs in {expected['tasks']} tasks")
    for name, value in [("categories", expected["categories"]), ("tasks", expected["task_shapes"]),
                        ("lines", expected["lines"]), ("invalid lines", expected["invalid_lines"])]:
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
    print("  defects: " + ", ".join(f"{kind} {len(ids)}" for kind, ids in expected["defects"].items()))


if __name__ == "__main__":
    main()
