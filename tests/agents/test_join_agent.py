"""The join agents under ``test_context()``: decode, gate, send, quarantine."""

import orjson
from faust.types import TP

from tests.agents.conftest import Recorded, processed


def evidence(run_id="run-1", **over):
    return {"schema_version": 1, "run_id": run_id, "task_id": "task-1", "source_category": "scrum_reviews",
            "text": "  the evidence text  ", "source_files": [],
            "provenance": {"source_file": "e.jsonl", "line_offset": 1, "sig_hash": "ab", "recorded_at": "2026-04-20T00:00:00Z"},
            **over}


def score(run_id="run-1", category="accepted", scored_at="2026-04-20T01:00:00Z", **over):
    return {"schema_version": 1, "evidence_run_id": run_id, "evidence_task_id": "task-1", "category": category,
            "reasons": ["r"], "provenance": {"source_file": "s.jsonl", "line_offset": 2, "sig_hash": "cd",
                                             "recorded_at": "2026-04-20T00:30:00Z"}, "scored_at": scored_at, **over}


async def put(agent_ctx, key: str | None, value: dict | bytes, timestamp: float | None = None) -> None:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    await processed(agent_ctx, await agent_ctx.put(raw, key=key.encode() if key else None, timestamp=timestamp))


async def test_score_then_evidence_emits_samples(pipeline, recorded: Recorded):
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        await put(sc, "run-1", score())
        assert recorded.live("rag-samples") == {}
        await put(ev, "run-1", evidence())
    rag = recorded.live("rag-samples")
    sft = recorded.live("sft-samples")
    assert [s["text"] for s in rag.values()] == ["the evidence text"]
    assert [s["messages"][1]["content"] for s in sft.values()] == ["the evidence text"]
    assert recorded.values("quarantine") == []


async def test_bad_input_is_quarantined_and_the_agent_keeps_going(pipeline, recorded: Recorded):
    async with pipeline.app.agents["join_evidence"].test_context() as ev:
        await put(ev, "x", b"\xff\xfe not json")
        await put(ev, "x", b"[1, 2]")
        await put(ev, "run-1", evidence(text=7))
        await put(ev, "other", evidence())
        await put(ev, "run-1", evidence())
    records = recorded.values("quarantine")
    assert [(r["stage"], r["reason"]) for r in records] == [("input", "schema_violation")] * 4
    assert records[0]["raw"] is not None and records[0]["source_record"] is None
    assert records[2]["source_record"]["text"] == 7 and records[2]["raw"] is None
    assert "not the record's run id" in records[3]["errors"][0]


async def test_bad_messages_in_one_batch_each_get_their_record_and_the_good_ones_go_through(pipeline, recorded: Recorded):
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        await put(sc, "run-1", score())
        sent = []
        for key, value in [("x", b"\xff not json"), ("run-1", orjson.dumps(evidence())), ("y", b"[]"),
                           ("run-2", orjson.dumps(evidence(run_id="run-2", text=7)))]:
            sent.append(await ev.put(value, key=key.encode(), wait=False))  # one batch: nothing awaited between
        await processed(ev, sent[-1])
    assert pipeline.progress.next_offset[sent[-1].message.tp] == sent[-1].message.offset + 1
    records = recorded.values("quarantine")
    inputs = [r for r in records if r["stage"] == "input"]
    assert [(r["reason"], r["source"]["offset"]) for r in inputs] == [("schema_violation", o) for o in (0, 2, 3)]
    assert list(recorded.live("sft-samples")) and list(recorded.live("rag-samples"))


async def test_rescore_to_rejected_retracts_with_tombstone_and_record(pipeline, recorded: Recorded):
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        await put(ev, "run-1", evidence())
        await put(sc, "run-1", score())
        sft_id = next(iter(recorded.live("sft-samples")))
        await put(sc, "run-1", score(category="rejected", scored_at="2026-04-20T02:00:00Z"))
    assert recorded.live("sft-samples") == {} and recorded.live("rag-samples") == {}
    assert recorded.messages["sft-samples"][-1] == (sft_id, None)
    sft_records = [r for r in recorded.values("quarantine") if r["stage"] == "sft"]
    assert [r["reason"] for r in sft_records] == ["unsafe_sft_category"]
    assert sft_id in sft_records[0]["errors"][0]


async def test_score_without_evidence_times_out_by_stream_time(pipeline, recorded: Recorded):
    async with pipeline.app.agents["join_scores"].test_context() as sc:
        await put(sc, "lonely", score(run_id="lonely", scored_at="2026-04-20T00:00:00Z"))
        await put(sc, "later", score(run_id="later", scored_at="2026-04-20T00:59:00Z"))
        assert recorded.values("quarantine") == []
        await put(sc, "latest", score(run_id="latest", scored_at="2026-04-20T01:00:01Z"))
    records = recorded.values("quarantine")
    assert [(r["stage"], r["reason"], r["run_id"]) for r in records] == [("join", "missing_source_run_id", "lonely")]


async def test_waiting_scores_are_found_again_from_the_runs_table_after_a_rebalance(pipeline, recorded: Recorded):
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        await put(sc, "lonely", score(run_id="lonely", scored_at="2026-04-20T00:00:00Z"))
        await put(sc, "joins", score(run_id="joins", scored_at="2026-04-20T00:10:00Z"))
        await put(ev, "joins", evidence(run_id="joins"))
        pipeline.pending.clear()  # what a rebalance does to the index: rebuilt from the rows
        await put(sc, "latest", score(run_id="latest", scored_at="2026-04-20T01:00:01Z"))
        assert "latest" in pipeline.pending[0]
        assert "joins" not in pipeline.pending[0]
    records = recorded.values("quarantine")
    assert [(r["stage"], r["reason"], r["run_id"]) for r in records] == [("join", "missing_source_run_id", "lonely")]


async def test_a_score_waits_for_evidence_published_in_its_own_millisecond(pipeline, recorded: Recorded, monkeypatch):
    monkeypatch.setattr(pipeline, "read_to_end", lambda *_: False)  # more evidence is on the way
    published = 1_800_000_000.0
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        await put(sc, "waiting", score(run_id="waiting", scored_at="2026-04-20T00:00:00Z"), timestamp=published)
        await put(ev, "other", evidence(run_id="other"), timestamp=published)  # the same millisecond
        await put(sc, "other", score(run_id="other", scored_at="2026-04-20T02:00:00Z"), timestamp=published)
        assert recorded.values("quarantine") == []  # past its deadline, but its evidence may be next
        await put(ev, "next", evidence(run_id="next"), timestamp=published + 0.001)
    records = recorded.values("quarantine")
    assert [(r["stage"], r["reason"], r["run_id"]) for r in records] == [("join", "missing_source_run_id", "waiting")]


async def test_pairing_hears_from_the_join_side_while_scores_are_held_back(pipeline, recorded: Recorded, monkeypatch):
    """A pair partition that hears nothing closes its windows as idle, with runs still to come."""
    monkeypatch.setattr(pipeline, "settings", pipeline.settings.model_copy(update={"alignment_idle": 1.0}))
    monkeypatch.setattr(pipeline, "read_to_end", lambda *_: False)  # more evidence is on the way
    async with pipeline.app.agents["join_scores"].test_context() as sc:
        await put(sc, "s1", score(run_id="s1"), timestamp=1_800_000_000.0)
    scores = TP(pipeline.settings.topic("scored-runs"), 0)
    assert pipeline.alignment.held == {scores}
    assert scores in pipeline.app.consumer._buffered_partitions  # Faust's consumer asks no more of it
    recorded.messages.clear(), recorded.headers.clear()
    pipeline.alignment.awake_sent_at = float("-inf")
    async with pipeline.app.agents["join_evidence"].test_context() as ev:  # evidence, no candidates
        await put(ev, "e1", evidence(run_id="e1"), timestamp=1_799_999_990.0)
        await put(ev, "e2", evidence(run_id="e2"), timestamp=1_799_999_991.0)  # within a tick interval: once
    sent = [(key, headers["source_partition"]) for (key, _), headers in
            zip(recorded.messages["pair-candidates"], recorded.headers["pair-candidates"])]
    assert sent == [("__watermark__", "0")] * pipeline.settings.partitions


def pairing_watermark(recorded: Recorded) -> float:
    """The latest watermark pairing has heard from join partition 0."""
    return max(float(h["watermark"]) for h in recorded.headers["pair-candidates"] if h.get("watermark"))


async def test_watermark_moves_on_when_waiting_scores_join(pipeline, recorded: Recorded):
    # Scores read ahead of their evidence hold the watermark back to the oldest of them...
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        await put(sc, "r2", score(run_id="r2", scored_at="2026-04-20T03:00:00Z"))
        await put(sc, "x1", score(run_id="x1", scored_at="2026-04-20T03:30:00Z"))
        assert pairing_watermark(recorded) == 1776654000.0  # 03:00, r2 may still join
        # ...and once they have joined, pairing must hear the stream time (by an evidence message).
        await put(ev, "r2", evidence(run_id="r2"))
        await put(ev, "x1", evidence(run_id="x1"))
    assert pairing_watermark(recorded) == 1776655800.0  # 03:30
