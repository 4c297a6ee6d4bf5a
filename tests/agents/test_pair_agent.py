"""The pair agent under ``test_context()``: candidates from the join agents, windows, their index."""

import time
from types import SimpleNamespace

from schemas.codec import loads
from streams.agents import pair_agent
from tests.agents.conftest import Recorded, processed
from tests.agents.test_join_agent import evidence, put, score


async def candidate_messages(pipeline, recorded: Recorded, runs: list[str]) -> list[tuple[bytes, bytes, list]]:
    """The pair-candidates messages the join agents send for ``runs`` (one task, one window)."""
    async with pipeline.app.agents["join_evidence"].test_context() as ev, \
            pipeline.app.agents["join_scores"].test_context() as sc:
        for minute, run_id in enumerate(runs):
            await put(ev, run_id, evidence(run_id=run_id))
            await put(sc, run_id, score(run_id=run_id, scored_at=f"2026-04-20T01:{minute:02d}:00Z"))
    return [(key.encode(), value, [(k, v.encode()) for k, v in headers.items()])
            for (key, value), headers in zip(recorded.messages["pair-candidates"], recorded.headers["pair-candidates"])
            if key == "__candidates__"]


async def test_an_open_window_is_indexed_again_once_half_a_tick_not_at_every_run(pipeline, recorded, monkeypatch):
    messages = await candidate_messages(pipeline, recorded, ["r1", "r2", "r3"])
    assert len(messages) == 3  # one join batch a run here: three messages, each taken alone
    clock = [1_800_000_000.0]
    monkeypatch.setattr(pair_agent, "time", SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic))
    written = []
    set_row = pipeline.state.set
    monkeypatch.setattr(pipeline.state, "set", lambda table, partition, key, value: (
        written.append(loads(value)) if table == "open_windows" else None, set_row(table, partition, key, value)))
    half_tick = pipeline.settings.pair_tick_interval / 2
    async with pipeline.app.agents["pair"].test_context() as pair:
        for key, value, headers in messages[:2]:  # the window opens, then takes a run at once
            await processed(pair, await pair.put(value, key=key, headers=headers))
        clock[0] += half_tick
        await processed(pair, await pair.put(messages[2][1], key=messages[2][0], headers=messages[2][2]))
    assert [entry["active_at"] for entry in written] == [1_800_000_000.0, 1_800_000_000.0 + half_tick]
