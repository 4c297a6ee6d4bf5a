"""The bundled sample end to end on the real broker: every defect ends where SPEC says."""

import orjson
import pytest

from streams.manifest_publish import manifest_paths, publish_manifest
from streams.stats import collect
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
