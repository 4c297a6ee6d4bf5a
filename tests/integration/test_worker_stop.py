"""Workers that stop or rebalance in the middle of a backlog, with nothing lost or repeated
(``streams/faust_fixes/transactions.py``: a commit that ends every transaction, a stopping worker's last
or a revocation's, leaves none open until a rebalance starts fresh ones)."""

import asyncio
import random

import pytest

from streams.broker import kafka_io
from streams.commands.worker import child_worker
from tests.integration.conftest import GUARANTEE, ingest, running_worker, settle_and_export
from tests.integration.failover import (
    COMPARED, assert_same_export, message_counts, parts, reference_run, until_producing, until_stable,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(GUARANTEE != "exactly_once", reason="at-least-once has no transactions to end"),
]

STOPS = 3
# A clean stop and a clean leave pause pairing for a few seconds and a restore (11-13 s
# here), not for a kill's session timeout as well: half the failover tests' idle close
# still pairs as the reference does.
STOPPED = {**COMPARED, "pair_idle_close": 60}


async def test_workers_stopped_mid_backlog_exit_cleanly_and_the_next_finishes_exactly(make_settings, tmp_path):
    files, expected_rows, expected_counts = await reference_run(make_settings, tmp_path, 6000, pair_idle_close=STOPPED["pair_idle_close"])
    # Commits ten times as often as by default: a timer's commit waiting for the processing
    # lock while the stopping worker makes its last one is what crashed a worker on its way out.
    settings = make_settings(**STOPPED, commit_interval=0.05)
    rng = random.Random(3)
    # A part of the input before each worker, so each has a backlog (see the SIGKILL test).
    input_parts = zip(parts(files[0], tmp_path, STOPS), parts(files[1], tmp_path, STOPS))
    for stop, (evidence, scores) in enumerate(input_parts):
        await ingest(settings, [evidence], [scores])
        log = settings.data_dir / f"worker-{stop}.log"
        async with child_worker(settings, log) as process:
            await until_producing(settings, process)
            await asyncio.sleep(rng.uniform(0.1, 1.0))
        assert process.returncode == 0, f"stop {stop}: exited with {process.returncode}\n{log.read_text()[-3000:]}"
        # A worker that left its group cleanly is gone at once, not after the session timeout.
        assert not await kafka_io.group_has_members(settings, settings.application_id), f"stop {stop}"
    async with running_worker(settings):
        rows = await settle_and_export(settings, timeout=600)
    assert_same_export(rows, expected_rows)
    assert await message_counts(settings) == expected_counts


async def test_a_worker_keeping_partitions_across_rebalances_mid_backlog_commits_on(make_settings, tmp_path):
    # A backlog long enough that both rebalances (a worker joining, then leaving) come while
    # the first worker has processed events it has not committed: the revocation commits
    # them and ends every transaction, and the partitions it keeps need fresh ones.
    files, expected_rows, expected_counts = await reference_run(
        make_settings, tmp_path, 30000, pair_idle_close=STOPPED["pair_idle_close"], partitions=4)
    settings = make_settings(**STOPPED, partitions=4)
    # The second half once both workers are in the group, so the second has work to produce
    # from and the first a backlog when the second leaves (the first alone could finish all
    # of it before the second had joined).
    (evidence, second_evidence), (scores, second_scores) = parts(files[0], tmp_path, 2), parts(files[1], tmp_path, 2)
    await ingest(settings, [evidence], [scores])
    second_settings = settings.model_copy(update={"data_dir": settings.data_dir / "second"})
    async with running_worker(settings) as first:
        await until_producing(settings, first)
        async with child_worker(second_settings, second_settings.data_dir / "worker.log") as second:
            await until_stable(settings, 2)
            await ingest(settings, [second_evidence], [second_scores])
            await until_producing(settings, second)
        assert second.returncode == 0
        rows = await settle_and_export(settings, timeout=300)
    assert_same_export(rows, expected_rows)
    assert await message_counts(settings) == expected_counts
