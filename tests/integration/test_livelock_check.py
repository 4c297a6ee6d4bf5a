"""Exactly-once: Faust's livelock check sees the commits of transactions (streams/faust_fixes/transactions.py).

It reads when each partition was last committed from what only the consumer's own offset
commits record; without the fix, a worker reading a backlog longer than the check's timeout
logged ``Has not committed ... at all since worker start`` as an ERROR while it committed
twice a second."""

import pytest

from streams.commands.wait import wait_caught_up
from tests.integration.conftest import GUARANTEE, ingest, running_worker, write_jsonl
from tests.integration.runs import synthetic_runs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(GUARANTEE != "exactly_once", reason="at-least-once commits are the consumer's own"),
]

LIVELOCK_TIMEOUT = 2.0  # Faust's broker_commit_livelock_soft_timeout; 300 s by default
RUNS = 12_000  # a backlog of several seconds for one worker, well past the timeout
FED_BY_THE_WORKER = (".pair-candidates'", ".dedup-candidates'")


async def test_a_worker_reading_a_backlog_is_not_reported_as_never_committing(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("BROKER_COMMIT_LIVELOCK_SOFT_TIMEOUT", str(LIVELOCK_TIMEOUT))
    settings = make_settings(commit_interval=0.5)  # Faust checks every 2.5 commit intervals
    evidence, scores = synthetic_runs(RUNS)
    await ingest(settings, [write_jsonl(tmp_path / "e.jsonl", evidence)], [write_jsonl(tmp_path / "s.jsonl", scores)])
    async with running_worker(settings):
        await wait_caught_up(settings, timeout=300)
    # The inputs have a backlog from the worker's first second on. (The topics the worker
    # feeds itself get their first records only once samples come, seconds in: with a
    # timeout of 2 s one can be reported in the moment before its first commit, as Faust
    # would report it anyway.)
    reported = [line for line in (settings.data_dir / "worker.log").read_text().splitlines()
                if "Has not committed" in line and not any(topic in line for topic in FED_BY_THE_WORKER)]
    assert reported == []
