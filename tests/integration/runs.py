"""Synthetic runs for the volume tests: many tasks, every category, deterministic."""

import random

CATEGORIES = ("accepted", "rejected", "partially_accepted", "accepted", "needs_human_review", "rejected")


def synthetic_runs(count: int, seed: int = 1, prefix: str = "run") -> tuple[list[dict], list[dict]]:
    """(evidence, scores) for ``count`` runs, four runs a task, scored 30 s apart."""
    rng = random.Random(seed)
    evidence, scores = [], []
    for i in range(count):
        run_id, task = f"{prefix}-{i:07d}", f"task-{i // 4:06d}"
        at = f"2026-04-20T{(i * 30) // 3600 % 24:02d}:{(i * 30) // 60 % 60:02d}:{i * 30 % 60:02d}Z"
        day = 20 + (i * 30) // 86400
        at = f"2026-04-{day:02d}" + at[10:]
        provenance = {"source_file": "runs.jsonl", "line_offset": i, "sig_hash": f"{i:064x}", "recorded_at": at}
        evidence.append({
            "schema_version": 1, "run_id": run_id, "task_id": task, "source_category": "observer_reviews",
            "text": f"Run {run_id} on {task}: " + " ".join(rng.choice(WORDS) for _ in range(60)),
            "source_files": [], "provenance": provenance,
        })
        scores.append({
            "schema_version": 1, "evidence_run_id": run_id, "evidence_task_id": task,
            "category": CATEGORIES[rng.randrange(len(CATEGORIES))], "reasons": [f"reason {i}"],
            "provenance": provenance, "scored_at": at,
        })
    return evidence, scores


def rescores(scores: list[dict], tasks: int) -> list[dict]:
    """New scores for the first run of each of the first ``tasks`` tasks, each moved to the
    next category at the same time. One run a task: two re-scores of one pair would race
    (from two partitions) to retract it, and the record would name whichever came first."""
    return [
        {**score, "category": CATEGORIES[(CATEGORIES.index(score["category"]) + 1) % len(CATEGORIES)],
         "reasons": [f"re-scored {score['evidence_run_id']}"]}
        for score in scores[: 4 * tasks : 4]
    ]


WORDS = ("review", "patch", "latency", "index", "session", "token", "retry", "cache", "schema", "offset",
         "commit", "rollback", "verdict", "evidence", "partition", "replica", "window", "buffer", "merge")
