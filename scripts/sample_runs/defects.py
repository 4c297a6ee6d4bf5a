"""The sample's defects: runs spoiled one defect each, redelivered and orphan records, invalid
lines and an oversized one, so that every quarantine reason the input can trigger is reached."""

from __future__ import annotations

import random

from sample_runs.runs import (
    DAY, MANIFEST, REASONS, SOURCE_CATEGORY, Line, Run, compact, evidence_record, make_text, score_record,
)

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
