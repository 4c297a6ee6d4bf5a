"""Replay, export receipts and the quarantine tail, on the real broker (the daily-use paths)."""

import hashlib

import orjson
import pytest

from streams.commands.export import export
from streams.commands.quarantine_tail import tail
from streams.commands.wait import wait_caught_up
from streams.commands.worker import replay
from streams.errors import DistillError
from tests.integration.conftest import SAMPLE_DATA, ingest, running_worker

pytestmark = pytest.mark.integration


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.jsonl"))}


async def test_replay_rebuilds_byte_identical_and_applies_changed_options(make_settings):
    settings = make_settings()
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
    async with running_worker(settings):
        await wait_caught_up(settings, 120)
        with pytest.raises(DistillError, match="is running"):
            await replay(settings, timeout=180)  # refused while a worker of the group runs
    first = settings.data_dir / "first"
    receipt = await export(settings, first, ["rag", "sft", "preference", "quarantine"])
    again = settings.data_dir / "again"
    await export(settings, again, ["rag", "sft", "preference", "quarantine"])
    assert files_of(first) == files_of(again)  # exporting twice with no new input: identical
    for relative, info in receipt["files"].items():
        assert info["sha256"] == hashlib.sha256((first / relative).read_bytes()).hexdigest()

    await replay(settings, timeout=180)
    replayed = settings.data_dir / "replayed"
    await export(settings, replayed, ["rag", "sft", "preference", "quarantine"])
    assert files_of(replayed) == files_of(first)

    wider = settings.model_copy(update={"include_partial": True})
    await replay(wider, timeout=180)
    partial = settings.data_dir / "partial"
    await export(wider, partial, ["rag", "sft", "preference", "quarantine"])
    before = [orjson.loads(line) for line in (first / "sft/samples.jsonl").read_bytes().splitlines()]
    after = [orjson.loads(line) for line in (partial / "sft/samples.jsonl").read_bytes().splitlines()]
    added = [s for s in after if s not in before]
    assert before == [s for s in after if s["quality_score"] == "accepted"]
    assert added and {s["quality_score"] for s in added} == {"partially_accepted"}
    assert files_of(partial)["rag/samples.jsonl"] == files_of(first)["rag/samples.jsonl"]
    records = [orjson.loads(line) for line in (partial / "quarantine/records.jsonl").read_bytes().splitlines()]
    assert not [r for r in records if r["stage"] == "sft" and r["reason"] == "category_disallowed"]


async def test_quarantine_tail_filters_by_reason_and_stage(make_settings):
    settings = make_settings()
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
    async with running_worker(settings):
        await wait_caught_up(settings, 120)
        shown: list[dict] = []
        await tail(settings, {"missing_provenance", "empty_content"}, "sft", True, False,
                   lambda record, raw: shown.append(record))
    expected = orjson.loads((SAMPLE_DATA / "expected.json").read_bytes())
    want = {run for kind in ("evidence_without_provenance", "score_without_provenance", "empty_sig_hash",
                             "empty_source_file", "empty_recorded_at", "whitespace_text")
            for run in expected["defects"][kind]}
    assert {r["run_id"] for r in shown} == want
    assert {(r["stage"], r["reason"]) for r in shown} == {("sft", "missing_provenance"), ("sft", "empty_content")}
    assert len(shown) == len(want)
