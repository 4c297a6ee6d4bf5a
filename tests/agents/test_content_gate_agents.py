"""The content gates' hops under ``test_context()``: a sample to its dedup group and back out,
a winner's retraction promoting the next candidate, a closed window planned again when an
evaluation set makes one of its runs contaminated, and secrets kept out of every record."""

import base64
import time

import orjson
import pytest
from faust.types import TP

from schemas.codec import dumps
from streams.faust_app.agents import join_agent, pair_agent
from streams.faust_app.evalsets import EvalSetView
from streams.rules.decontamination import EvalItem
from tests.agents.conftest import Recorded, processed
from tests.agents.test_join_agent import evidence, put, score

TOKEN = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"  # a fake of the GitHub token format
QUOTED = "the retry loop backs off exponentially with jitter before it gives up on the upstream call"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"dedup": True})


async def messages_of(recorded: Recorded, topic: str, since: int = 0) -> list[tuple[bytes, bytes, list]]:
    """What the agents sent to an internal topic, as a consumer of it reads the messages."""
    sent = zip(recorded.messages.get(topic, []), recorded.headers.get(topic, []))
    return [(key.encode(), value, [(k, v.encode()) for k, v in headers.items()])
            for (key, value), headers in list(sent)[since:] if key == "__candidates__"]


async def feed(agent_ctx, messages) -> None:
    for key, value, headers in messages:
        await processed(agent_ctx, await agent_ctx.put(value, key=key, headers=headers))


async def join(pipeline, runs: list[tuple[dict, dict]]) -> None:
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        for ev_record, score_record in runs:
            await put(ev, ev_record["run_id"], ev_record)
            await put(sc, score_record["evidence_run_id"], score_record)


async def test_samples_travel_to_their_dedup_group_and_only_the_earliest_comes_out(pipeline, recorded: Recorded):
    await join(pipeline, [(evidence("run-2"), score("run-2", scored_at="2026-04-20T01:05:00Z")),
                          (evidence("run-1", text="the  evidence\u00a0text"), score("run-1"))])
    assert recorded.live("rag-samples") == {}  # nothing published by the join itself
    async with pipeline.app.agents["dedup"].test_context() as dedup:
        await feed(dedup, await messages_of(recorded, "dedup-candidates"))
    rag, sft = recorded.live("rag-samples"), recorded.live("sft-samples")
    assert [s["run_id"] for s in rag.values()] == ["run-1"]  # scored first; same text once normalised
    assert [s["run_id"] for s in sft.values()] == ["run-1"]
    duplicates = [r for r in recorded.values("quarantine") if r["reason"] == "duplicate_content"]
    assert sorted((r["stage"], r["run_id"]) for r in duplicates) == [("rag", "run-2"), ("sft", "run-2")]
    assert all(next(iter(rag)) in r["errors"][0] or next(iter(sft)) in r["errors"][0] for r in duplicates)
    groups = list(pipeline.state.items("dedup", 0))
    assert len(groups) == 2 and all(len(orjson.loads(raw)["candidates"]) == 2 for _, raw in groups)


async def test_a_retracted_winner_gives_its_place_to_the_next_candidate(pipeline, recorded: Recorded):
    await join(pipeline, [(evidence("run-1"), score("run-1")),
                          (evidence("run-2"), score("run-2", scored_at="2026-04-20T01:05:00Z"))])
    async with pipeline.app.agents["dedup"].test_context() as dedup:
        await feed(dedup, await messages_of(recorded, "dedup-candidates"))
        assert [s["run_id"] for s in recorded.live("rag-samples").values()] == ["run-1"]
        sent = len(recorded.messages["dedup-candidates"])
        async with pipeline.app.agents["join_scores"].test_context() as sc:
            await put(sc, "run-1", score("run-1", category="rejected"))
        await feed(dedup, await messages_of(recorded, "dedup-candidates", since=sent))
    assert [s["run_id"] for s in recorded.live("rag-samples").values()] == ["run-2"]
    assert recorded.live("sft-samples") and [s["run_id"] for s in recorded.live("sft-samples").values()] == ["run-2"]
    reasons = [(r["stage"], r["reason"], r["run_id"]) for r in recorded.values("quarantine")]
    assert ("rag", "unsafe_rag_category", "run-1") in reasons


@pytest.mark.parametrize("trigger", ["join batch", "idle tick"])
async def test_a_closed_window_is_planned_again_when_an_evaluation_set_makes_a_run_contaminated(pipeline, recorded, trigger):
    pipeline.settings = pipeline.settings.model_copy(update={"dedup": False})  # pairs straight to their topic
    runs = [(evidence("a1", text="a clean accepted review of the patch"), score("a1")),
            (evidence("r1", text=QUOTED), score("r1", category="rejected", scored_at="2026-04-20T01:01:00Z")),
            (evidence("r2", text="another rejected review of the patch"),
             score("r2", category="rejected", scored_at="2026-04-20T01:02:00Z"))]
    await join(pipeline, runs)
    source = TP(pipeline.topics["pair-candidates"].get_topic_name(), 0)
    async with pipeline.app.agents["pair"].test_context() as pair:
        await feed(pair, await messages_of(recorded, "pair-candidates"))
        [key] = [k.decode() for k, _ in pipeline.state.items("pair_windows", 0)]
        await pair_agent.close_window(pipeline, source, key)
        assert {p["rejected_run_id"] for p in recorded.live("preference-pairs").values()} == {"r1", "r2"}
        sent = len(recorded.messages["pair-candidates"])
        pipeline.evalsets = EvalSetView(pipeline.settings, items=[EvalItem("bench", "7", {"solution": QUOTED})])
        if trigger == "join batch":  # the partition's next join batch judges its runs again
            async with pipeline.app.agents["join_scores"].test_context() as sc:
                await put(sc, "other", score("other"))
        else:  # or its next idle tick, which the view of the sets asks for at once
            await processed(pair, await pair.put(dumps(time.time()), key=pair_agent.TICK_KEY))
        await feed(pair, await messages_of(recorded, "pair-candidates", since=sent))
    assert {p["rejected_run_id"] for p in recorded.live("preference-pairs").values()} == {"r2"}
    records = {(r["stage"], r["reason"], r["run_id"]) for r in recorded.values("quarantine")}
    # r1 is rejected: the category gate decides its RAG and SFT outcomes before the contamination gate.
    assert {("preference", "benchmark_contamination", "r1"), ("preference", "invalid_preference_pairing", "a1")} <= records
    assert not {(stage, "benchmark_contamination", "r1") for stage in ("rag", "sft")} & records
    contaminated = [r for r in recorded.values("quarantine") if r["reason"] == "benchmark_contamination"]
    assert all("'bench'" in r["errors"][-1] and "'7'" in r["errors"][-1] for r in contaminated)


async def test_no_record_carries_a_secret_whatever_its_reason(pipeline, recorded: Recorded):
    text = f"the .env had GITHUB_TOKEN={TOKEN} in it"
    await join(pipeline, [(evidence("run-1", text=text), score("run-1"))])
    async with pipeline.app.agents["join_evidence"].test_context() as ev:
        await put(ev, "x", f"not json {TOKEN}".encode())
        await put(ev, "run-1", evidence("run-1", text=f"other text {TOKEN}"))  # conflicting duplicate
        await put(ev, TOKEN, evidence("run-9"))  # its key is not its run id
    records = recorded.values("quarantine")
    assert {(r["stage"], r["reason"]) for r in records} >= {
        ("rag", "secret_in_content"), ("sft", "secret_in_content"), ("input", "schema_violation"),
        ("input", "duplicate_id")}
    secret = [r for r in records if r["reason"] == "secret_in_content"]
    start = text.index(TOKEN)
    assert all("'github-pat'" in r["errors"][0] and f"characters {start}-{start + len(TOKEN)}" in r["errors"][0]
               for r in secret)
    everything = b"".join(v or b"" for msgs in recorded.messages.values() for _, v in msgs)
    everything += b"".join(base64.b64decode(r["raw"]) for r in records if r["raw"])
    everything += orjson.dumps(recorded.headers)
    assert TOKEN.encode() not in everything and TOKEN[:16].encode() not in everything
    assert b"<SECRET:github-pat>" in everything


async def test_the_retroactive_pass_judges_a_slice_a_call_and_asks_for_the_next_at_once(pipeline, recorded, monkeypatch):
    monkeypatch.setattr(join_agent, "REJUDGE_SLICE", 2)
    runs = [(evidence(f"run-{n}", text=f"{QUOTED} (copy {n})"), score(f"run-{n}")) for n in range(5)]
    await join(pipeline, runs)
    pipeline.evalsets = EvalSetView(pipeline.settings, items=[EvalItem("bench", "7", {"solution": QUOTED})])
    source = TP(pipeline.topics["pair-candidates"].get_topic_name(), 0)

    def ticks() -> list:
        return [(k.encode(), v) for k, v in recorded.messages.get("pair-candidates", []) if k == "__idle_tick__"]

    async with pipeline.app.agents["pair"].test_context() as pair:
        await join_agent.rejudge_if_stale(pipeline, source, pipeline.content_gates())  # the first slice
        assert join_agent.Judged.read(pipeline, 0) == join_agent.Judged(pipeline.evalsets.version, "run-1".encode().hex())
        for _ in range(3):  # each slice that leaves runs asks for a tick, whose reading judges the next
            assert ticks(), "no tick asked for the next slice"
            key, value = ticks()[-1]
            recorded.messages["pair-candidates"].clear()
            await processed(pair, await pair.put(value, key=key))
            if join_agent.Judged.read(pipeline, 0).after is None:
                break
    assert join_agent.Judged.read(pipeline, 0) == join_agent.Judged(pipeline.evalsets.version, None)
    contaminated = {r["run_id"] for r in recorded.values("quarantine") if r["reason"] == "benchmark_contamination"
                    and r["stage"] == "rag"}
    assert contaminated == {f"run-{n}" for n in range(5)}
