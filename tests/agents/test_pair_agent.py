"""The pair agent under ``test_context()``: candidates from the join agents, windows, their index."""

import time
from types import SimpleNamespace

from faust.types import TP

from schemas.codec import dumps
from streams.faust_app import health
from streams.faust_app.agents import batches, pair_agent
from streams.rules.pairing import PairWindow, window_key
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


async def put_all(pair, messages) -> None:
    for key, value, headers in messages:
        await processed(pair, await pair.put(value, key=key, headers=headers))


async def test_an_open_window_is_indexed_in_memory_and_its_row_says_when_it_took_a_run(pipeline, recorded, monkeypatch):
    messages = await candidate_messages(pipeline, recorded, ["r1", "r2", "r3"])
    assert len(messages) == 3  # one join batch a run here: three messages, each taken alone
    clock = [1_800_000_000.0]
    monkeypatch.setattr(pair_agent, "time", SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic))
    async with pipeline.app.agents["pair"].test_context() as pair:
        await put_all(pair, messages[:2])
        clock[0] += 7.0
        await put_all(pair, messages[2:])
    [(key, raw)] = list(pipeline.state.items("pair_windows", 0))
    row = pair_agent.WindowRow.decode(raw)
    assert not row.window.closed and set(row.window.runs) == {"r1", "r2", "r3"}
    settings = pipeline.settings
    closes_at = row.window.start + settings.pair_window + settings.pair_grace
    assert (row.partition, row.active_at) == (0, 1_800_000_007.0)
    [indexed] = pipeline.open_windows[0]
    assert (indexed.key, indexed.closes_at, indexed.active_at) == (key.decode(), closes_at, 1_800_000_007.0)
    assert "open_windows" not in {table for table, _ in pipeline.state._dirty}  # no table of its own any more


async def test_the_open_window_index_is_rebuilt_from_the_rows_after_a_rebalance(pipeline, recorded):
    messages = await candidate_messages(pipeline, recorded, ["r1", "r2"])
    async with pipeline.app.agents["pair"].test_context() as pair:
        await put_all(pair, messages)
    [before] = pipeline.open_windows[0]
    await pipeline.state.flush()  # the commit before a rebalance
    pipeline.forget_derived_state()
    assert pipeline.open_windows == {}
    assert list(pair_agent.open_windows(pipeline, 0)) == [before]
    assert pair_agent.open_windows(pipeline, 1).earliest_close == float("inf")


async def test_a_pair_partition_got_back_after_a_rebalance_is_quiet_from_then_on(pipeline, recorded, monkeypatch):
    """The worker held the partition, lost it, and got it back longer than the idle close
    later: another worker read its candidates meanwhile, so the first tick read after the
    rebalance closes nothing; one idle close after the rebalance, the next tick does."""
    messages = await candidate_messages(pipeline, recorded, ["r1", "r2"])
    clock = [1_800_000_000.0]
    fake_time = SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic)
    monkeypatch.setattr(pair_agent, "time", fake_time)
    monkeypatch.setattr(health, "time", fake_time)
    idle = pipeline.settings.pair_idle_close

    async def tick(pair, now: float) -> None:
        await processed(pair, await pair.put(dumps(now), key=pair_agent.TICK_KEY))

    def window_closed() -> bool:
        [(_, raw)] = list(pipeline.state.items("pair_windows", 0))
        return pair_agent.WindowRow.is_closed(raw)

    async with pipeline.app.agents["pair"].test_context() as pair:
        await put_all(pair, messages)
        clock[0] += 2 * idle
        pipeline.progress.resumed()  # the end of the rebalance that gave the partition back
        await tick(pair, clock[0] + 1)
        assert not window_closed()
        await tick(pair, clock[0] + idle + 1)
        assert window_closed()


async def test_a_closed_window_leaves_the_index_and_is_skipped_by_a_rebuild(pipeline, recorded):
    messages = await candidate_messages(pipeline, recorded, ["r1", "r2"])
    async with pipeline.app.agents["pair"].test_context() as pair:
        await put_all(pair, messages)
        [window] = pipeline.open_windows[0]
        await pair_agent.close_window(pipeline, TP(pipeline.topics["pair-candidates"].get_topic_name(), 0), window.key)
    assert len(pipeline.open_windows[0]) == 0
    [(_, raw)] = list(pipeline.state.items("pair_windows", 0))
    assert pair_agent.WindowRow.is_closed(raw) and pair_agent.WindowRow.decode(raw).window.closed
    pipeline.open_windows.clear()
    assert len(pair_agent.open_windows(pipeline, 0)) == 0


async def test_windows_closing_at_once_go_to_the_store_as_they_close_not_all_at_the_commit(pipeline, monkeypatch):
    """A day's windows close at one watermark: what they leave for the commit is spilled as it
    grows (``spill_when_full``), so a replay's memory does not grow with the windows of a day."""
    monkeypatch.setattr(batches, "STATE_FULL", 4)
    pending_at_flush: list[int] = []
    flush = pipeline.state.flush

    async def counted_flush() -> int:
        pending_at_flush.append(pipeline.state.rows)
        return await flush()

    monkeypatch.setattr(pipeline.state, "flush", counted_flush)
    keys = [window_key(f"task-{n}", 0.0) for n in range(12)]
    for key in keys:
        pair_agent._save(pipeline, 0, key, PairWindow(key.split("|")[0], 0.0), {})
    await flush()
    source = TP(pipeline.topics["pair-candidates"].get_topic_name(), 0)
    await pair_agent.close_idle_windows(pipeline, source, now=time.time() + 3600)
    assert pending_at_flush and max(pending_at_flush) <= 4 and pipeline.state.rows < 4
    await flush()
    rows = dict(pipeline.state.items("pair_windows", 0))
    assert sorted(rows) == sorted(key.encode() for key in keys)
    assert all(pair_agent.WindowRow.is_closed(raw) for raw in rows.values())
