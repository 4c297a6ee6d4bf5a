"""``/health`` of a real worker whose window sweep is stopped on purpose: unhealthy with the
reason, the log and ``distill stats`` say so, and healthy again once the sweep runs (and
while it then idles)."""

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from streams.commands.stats import collect
from streams.commands.wait import wait_caught_up
from tests.integration.conftest import hooks_path, ingest, running_worker, write_jsonl
from tests.integration.runs import synthetic_runs
from tests.integration.test_metrics import free_port

pytestmark = pytest.mark.integration

# Loaded by the child worker's interpreter (PYTHONPATH): while the file SWEEP_HOLD names
# exists, idle windows are not swept. Nothing else of the worker changes.
SITECUSTOMIZE = '''
import os, pathlib
import streams.faust_app.agents.pair_agent as pair_agent

_hold, _sweep = pathlib.Path(os.environ["SWEEP_HOLD"]), pair_agent.close_idle_windows

async def close_idle_windows(pipeline, partition, now):
    if not _hold.exists():
        await _sweep(pipeline, partition, now)

pair_agent.close_idle_windows = close_idle_windows
'''


async def health(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, await response.json()


async def until_logged(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} not in {log} after {timeout} s"
        await asyncio.sleep(0.5)


async def until_health(url: str, status: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found, body = await health(url)
            if found == status:
                return body
        except aiohttp.ClientConnectionError:
            found, body = None, None  # the web server is not up yet
        assert time.monotonic() < deadline, f"/health still {found} {body} after {timeout} s"
        await asyncio.sleep(0.5)


def stopped_sweep(tmp_path, monkeypatch):
    """The child worker's idle sweep does nothing while the returned file exists."""
    hooks, hold = tmp_path / "hooks", tmp_path / "hold-sweep"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    hold.touch()
    monkeypatch.setenv("PYTHONPATH", hooks_path(hooks))
    monkeypatch.setenv("SWEEP_HOLD", str(hold))
    return hold


async def ten_open_windows(settings, tmp_path) -> None:
    evidence, scores = synthetic_runs(40)  # ten tasks, all in one day's window: they close by idleness
    await ingest(settings, [write_jsonl(tmp_path / "e.jsonl", evidence)], [write_jsonl(tmp_path / "s.jsonl", scores)])


async def test_health_turns_unhealthy_on_a_stopped_window_sweep_and_back(make_settings, tmp_path, monkeypatch):
    settings = make_settings(web_enabled=True, web_port=free_port(), stall_timeout=3, stall_restart=False)
    hold = stopped_sweep(tmp_path, monkeypatch)
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    await ten_open_windows(settings, tmp_path)

    async with running_worker(settings):
        body = await until_health(url, 503)
        assert any("windows open past their idle close" in reason for reason in body["reasons"]), body
        assert body["healthy"] is False and body["rebalancing"] is False
        stats = await collect(settings)
        assert stats.open_windows == 10 and len(stats.windows_past_close) == 10
        log = settings.data_dir / "worker.log"
        await until_logged(log, "worker stalled: pair partition")  # the watchdog's own check, on its timer

        hold.unlink()
        body = await until_health(url, 200)
        assert body == {**body, "healthy": True, "reasons": []}
        await wait_caught_up(settings, 60)
        assert (await collect(settings)).windows_past_close == []
        # Caught up and quiet far past the stall timeout, with transaction markers after the
        # last messages of its partitions: no work, so no stall (observed, not awaited).
        deadline = time.monotonic() + 4 * settings.stall_timeout
        while time.monotonic() < deadline:
            assert (await health(url))[0] == 200
            await asyncio.sleep(0.5)
        await until_logged(log, "worker moving again")


async def test_a_stalled_worker_restarts_itself(make_settings, tmp_path, monkeypatch):
    settings = make_settings(stall_timeout=3)  # DISTILL_STALL_RESTART: true, the default
    hold = stopped_sweep(tmp_path, monkeypatch)
    await ten_open_windows(settings, tmp_path)
    async with running_worker(settings) as process:
        await until_logged(settings.data_dir / "worker.log", "worker stalled, restarting", timeout=120)
        hold.unlink()
        await wait_caught_up(settings, 120)  # the same process (pid), started over, closes them
        assert process.poll() is None
    assert (await collect(settings)).open_windows == 0
