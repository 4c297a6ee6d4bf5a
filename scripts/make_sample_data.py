#!/usr/bin/env python3
"""Write the bundled sample data: about 1000 scored agent runs, with a few of every defect.

The runs imitate the seed's real export run (1052 scored rows; SPEC and
``seed/phase4-commit-message.txt``): the same category proportions, review prose of a
few hundred characters, tasks with 1-8 runs each so that preference pairs, fallback
pairs and lone runs all occur. A handful of runs carry one defect each, chosen so that
every quarantine reason the input can trigger is reached (README.md in the output
folder lists them; ``expected.json`` lists their run ids for the tests).

Standard library only and seeded: every run writes the same bytes, so the tests can
compare the committed files with a fresh run. The runs are made in ``sample_runs/runs.py``,
the defects in ``sample_runs/defects.py``; this script writes the files and what to expect.

Usage: python scripts/make_sample_data.py [--out DIR]   (default: streams/sample_data)
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from sample_runs.defects import huge_evidence, inject_gate_defects, invalid_lines, orphan_scores, redeliveries
from sample_runs.runs import CATEGORY_COUNTS, MANIFEST, Line, Run, build_records, name_tasks, plan_categories, schedule

SEED = 20260426
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "streams" / "sample_data"


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
