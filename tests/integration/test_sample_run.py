"""The bundled sample end to end on the real broker: every defect ends where SPEC says."""

import orjson
import pytest

from streams.commands.manifest_publish import manifest_paths, publish_manifest
from streams.commands.stats import collect
from tests.integration.conftest import SAMPLE_DATA, ingest, running_worker, settle_and_export

pytestmark = pytest.mark.integration


async def test_bundled_sample_reaches_every_reason_and_balances(make_settings):
    settings = make_settings()
    expected = orjson.loads((SAMPLE_DATA / "expected.json").read_bytes())
    await publish_manifest(settings, manifest_paths(SAMPLE_DATA / "manifest.txt"))
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
    async with running_worker(settings):
        rows = await settle_and_export(settings)
        stats = await collect(settings)

    records = rows["quarantine"]
    seen = {(r["stage"], r["reason"], r["run_id"]) for r in records}
    for defect, run_ids in expected["defects"].items():
        for outcome in expected["expected_outcomes"][defect]:
            if outcome["stage"] == "input" and outcome["reason"] == "schema_violation":
                continue  # counted below: many of these lines have no run id to name
            for run_id in run_ids:
                assert (outcome["stage"], outcome["reason"], run_id) in seen, (defect, run_id)
    input_violations = [r for r in records if r["stage"] == "input" and r["reason"] == "schema_violation"]
    assert len(input_violations) == expected["invalid_lines"]["evidence.jsonl"] + expected["invalid_lines"]["scores.jsonl"]
    assert {r["source"]["topic"] for r in input_violations} == {settings.topic("evidence"), settings.topic("scored-runs")}

    sft_quality = {s["quality_score"] for s in rows["sft"]}
    assert sft_quality == {"accepted"}  # the firewall: no rejected, no review, no partial by default
    assert {s["quality"] for s in rows["rag"]} == {"accepted", "partially_accepted"}
    assert all(p["chosen_run_id"] != p["rejected_run_id"] for p in rows["preference"])
    assert rows["preference"], "the sample has tasks with accepted and rejected runs"
    for kind in ("rag", "sft", "preference", "quarantine"):
        ids = [r["id"] for r in rows[kind]]
        assert ids == sorted(ids) and len(ids) == len(set(ids))

    assert stats.balanced, stats.checks
    assert stats.valid_scores == expected["valid_scores"]
    assert stats.pending_joins == 0
    assert stats.join_timed_out == len(expected["defects"]["score_without_evidence"])
    assert stats.samples_live["sft"] == len(rows["sft"]) and stats.samples_live["rag"] == len(rows["rag"])


def batch_pairs(evidence_path, scores_path, settings) -> list[dict]:
    """SPEC 6 as a plain batch over the files: what the stream must have emitted."""
    from collections import defaultdict

    from schemas import EvidenceRecord, ScoredRun
    from schemas.codec import Undecodable, decode_input, encode
    from streams.rules.pairing import PreferenceSample, pair_run_from, plan_window, window_start

    evidence, scores = {}, {}
    for line in evidence_path.read_bytes().splitlines():
        record = decode_input(EvidenceRecord, line, settings.max_record_bytes)
        if not isinstance(record, Undecodable):
            evidence.setdefault(record.run_id, record)  # the first one stands
    for line in scores_path.read_bytes().splitlines():
        record = decode_input(ScoredRun, line, settings.max_record_bytes)
        if not isinstance(record, Undecodable):
            scores[record.evidence_run_id] = record  # the latest wins
    windows = defaultdict(list)
    for run_id, score in scores.items():
        run = pair_run_from(evidence[run_id], score) if run_id in evidence else None
        if run:
            windows[(run.task_id, window_start(run.scored_at_epoch, settings.pair_window))].append(run)
    pairs = []
    for runs in windows.values():
        outcomes, _ = plan_window(runs, settings.max_pairs_per_task)
        pairs += [orjson.loads(encode(o)) for o in outcomes if isinstance(o, PreferenceSample)]
    return sorted(pairs, key=lambda p: p["id"])


async def test_streamed_pairs_equal_the_batch_computation(make_settings):
    settings = make_settings()
    evidence, scores = SAMPLE_DATA / "evidence.jsonl", SAMPLE_DATA / "scores.jsonl"
    await publish_manifest(settings, manifest_paths(SAMPLE_DATA / "manifest.txt"))
    await ingest(settings, [evidence], [scores])
    async with running_worker(settings):
        rows = await settle_and_export(settings)
    assert not [r for r in rows["quarantine"] if r["reason"] == "late_arrival"]
    assert rows["preference"] == batch_pairs(evidence, scores, settings)


async def test_exported_files_load_as_trainer_datasets(make_settings, monkeypatch, tmp_path):
    """The files load with `datasets` and have the columns DPO and SFT trainers read."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    settings = make_settings()
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
    async with running_worker(settings):
        rows = await settle_and_export(settings)
    out = settings.data_dir / "export"
    pairs = datasets.load_dataset("json", data_files=str(out / "preference/chosen_rejected.jsonl"), split="train",
                                  cache_dir=str(tmp_path / "cache"))
    assert {"prompt", "chosen", "rejected"} <= set(pairs.column_names)
    assert pairs.num_rows == len(rows["preference"])
    sft = datasets.load_dataset("json", data_files=str(out / "sft/samples.jsonl"), split="train",
                                cache_dir=str(tmp_path / "cache"))
    assert "messages" in sft.column_names and not {"prompt", "completion", "text"} & set(sft.column_names)
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    rag = datasets.load_dataset("json", data_files=str(out / "rag/samples.jsonl"), split="train",
                                cache_dir=str(tmp_path / "cache"))
    assert rag.num_rows == len(rows["rag"])
