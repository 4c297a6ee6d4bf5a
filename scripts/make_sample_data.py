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

from sample_runs.content import EVAL_ITEMS, EVAL_SET_NAME, inject_content_defects, needles
from sample_runs.defects import huge_evidence, inject_gate_defects, invalid_lines, orphan_scores, redeliveries
from sample_runs.runs import (
    CATEGORY_COUNTS, MANIFEST, Line, Run, build_records, compact, name_tasks, plan_categories, schedule,
)

SEED = 20260426
CONTENT_SEED = SEED + 1012  # the content defects' own generator (SPEC 10-12): the rest keeps its bytes
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
    # SPEC 10: secrets. A run with a secret in its text or prompt takes no part in pairing: one
    # `preference` record when its window closes (these runs have provenance and text).
    "secret_in_text": ("evidence.jsonl", [("rag", "secret_in_content"), ("sft", "secret_in_content"),
                                          ("preference", "secret_in_content")],
                       "a fake GitHub token in a quoted `.env` line; an AWS key id and secret key; a PEM private key"),
    "secret_in_url": ("evidence.jsonl", [("rag", "secret_in_content"), ("sft", "secret_in_content"),
                                         ("preference", "secret_in_content")],
                      "a password in a `postgres://` URL in the text"),
    "secret_in_reason": ("scores.jsonl", [],
                         "a fake Slack webhook URL, a Slack bot token, in the first score reason: not a gated "
                         "place, so samples as usual; the run leads a pair whose `reason` shows `<SECRET:...>`"),
    "secret_in_path": ("evidence.jsonl", [("rag", "hallucinated_file_path"), ("sft", "hallucinated_file_path")],
                       "a Hugging Face token in `source_files[1]`: not gated but redacted; the redacted path is "
                       "not in manifest.txt (without the manifest: samples, path redacted); paired as usual"),
    "secret_in_invalid_line": ("evidence.jsonl", [("input", "schema_violation")],
                               "a log line (not JSON) with a fake GitLab token; the record's `raw` has it redacted"),
    # SPEC 11: exact duplicates. The copy is scored after its original, which stays the sample.
    "duplicate_text_same_prompt": ("evidence.jsonl", [("rag", "duplicate_content"), ("sft", "duplicate_content"),
                                                      ("preference", "duplicate_content")],
                                   "the text of the task's other accepted run, same files (1st: exactly; 2nd: with "
                                   "non-breaking spaces and more white space); scored last in its task, so its "
                                   "pairs repeat the original's and are the later ones"),
    "duplicate_text_other_prompt": ("evidence.jsonl", [("rag", "duplicate_content")],
                                    "the text of an earlier accepted run of another task (1st: exactly; 2nd: with "
                                    "full-width digits and the ligature U+FB01): another prompt, so an SFT "
                                    "sample as usual"),
    # SPEC 12: decontamination, once evalset.jsonl is registered (the demo does).
    "benchmark_quote": ("evidence.jsonl", [("rag", "benchmark_contamination"), ("sft", "benchmark_contamination"),
                                           ("preference", "benchmark_contamination")],
                        f"13+ consecutive words of an item of `evalset.jsonl` (set `{EVAL_SET_NAME}`), "
                        "the 2nd in other case and punctuation; samples as usual when the set is not registered"),
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
decides first (SPEC 4). Outcomes per SPEC sections 3, 4, 7 and 10-12; invalid lines use run ids
`run-9101xx` (evidence `run-9100xx`) that appear nowhere else, one `input` record per line.

The content defects (SPEC 10-12, the kinds from `secret_in_text` on) come from a random
generator of their own and touch runs no other defect touched. The fake secrets are in formats
the default rules find (`streams/rules/secret_rules.toml`), spelled with words like `Fake` and
`Sample`: `expected.json` lists them per run (`planted_secrets`), and none of them may appear in
any output. `duplicate_of` names the run each copied text copies (the sample kept).
`evalset.jsonl` is a small evaluation set of {expected['eval_set']['items']} items (fields `id`, `prompt`,
`solution`); `distill demo` registers it as `{expected['eval_set']['name']}` before it ingests
(`distill evalset add {expected['eval_set']['name']} streams/sample_data/evalset.jsonl --id-field id`).

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
    taken |= {run_id for ids in redelivered.values() for run_id in ids}
    content, planted, copies, secret_line = inject_content_defects(CONTENT_SEED, runs, taken)
    defects |= content

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "evidence.jsonl": [Line((r.arrival, 0, r.run_id), r.evidence) for r in runs] + extra_evidence + bad_evidence
                          + [secret_line],
        "scores.jsonl": [Line((r.arrival, 0, r.run_id), r.score) for r in runs] + orphan_lines + bad_scores,
        "evidence_huge.jsonl": huge,
    }
    invalid = {name: write_jsonl(out / name, lines) for name, lines in files.items()}
    (out / "manifest.txt").write_text("".join(f"{path}\n" for path in MANIFEST), encoding="utf-8")
    (out / "evalset.jsonl").write_bytes("".join(compact(item) + "\n" for item in EVAL_ITEMS).encode("utf-8"))

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
        # The fake secrets planted, per run: their rules, and the strings no output may hold.
        "planted_secrets": {run_id: {"rules": rules, "needles": [n for rule in rules for n in needles(rule)]}
                            for run_id, rules in sorted(planted.items())},
        # Per copied text: the run whose sample is kept (SPEC 11: the smallest created_at, then id).
        "duplicate_of": dict(sorted(copies.items())),
        "eval_set": {"name": EVAL_SET_NAME, "file": "evalset.jsonl", "id_field": "id", "items": len(EVAL_ITEMS)},
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
