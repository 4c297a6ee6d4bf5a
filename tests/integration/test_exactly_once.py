"""Nothing lost, nothing duplicated: SIGKILLed workers, a two-worker group, a restarted
broker, and a flood of bad input, each compared with an undisturbed run."""

import asyncio
import random

import pytest

from streams.broker import kafka_io
from streams.commands.wait import wait_caught_up
from streams.commands.worker import child_worker
from tests.integration.conftest import ingest, running_worker, settle_and_export, write_jsonl
from tests.integration.failover import (
    COMPARED, assert_same_export, message_counts, parts, reference_run, then_rescore, until_producing,
)
from tests.integration.runs import synthetic_runs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

async def test_sigkill_at_random_points_loses_and_duplicates_nothing(make_settings, tmp_path):
    files, expected_rows, expected_counts = await reference_run(make_settings, tmp_path, 12000)
    settings = make_settings(**COMPARED)
    rng = random.Random(5)
    kills = 0
    # A third of the input before each worker: one that had finished all it was given never
    # produced again, and the kill waiting for it waited for ever (the third worker of a run
    # at ~2,000 runs/s found all 12,000 runs done). Each topic gets its messages in the same
    # order as in the reference run, so offsets match.
    for evidence, scores in zip(parts(files[0], tmp_path, 3), parts(files[1], tmp_path, 3)):
        await ingest(settings, [evidence], [scores])
        async with child_worker(settings, settings.data_dir / "worker.log") as process:
            await until_producing(settings, process)  # killed only once it is producing
            await asyncio.sleep(rng.uniform(0.1, 2.0))
            if process.poll() is None:
                process.kill()
                kills += 1
    async with running_worker(settings):
        rows = await settle_and_export(settings, timeout=600)
    assert kills == 3
    assert_same_export(rows, expected_rows)
    assert await message_counts(settings) == expected_counts


async def test_a_killed_worker_of_two_hands_over_its_partitions(make_settings, tmp_path):
    files, expected_rows, expected_counts = await reference_run(make_settings, tmp_path, 3000, rescored=150, partitions=4)
    settings = make_settings(**COMPARED, partitions=4)
    # Half the input first, the other half once both workers are in the group (the survivor
    # alone got through all 3,000 runs before the second worker had joined). Each topic gets
    # its messages in the same order as in the reference run, so offsets match.
    (evidence, second_evidence), (scores, second_scores) = parts(files[0], tmp_path, 2), parts(files[1], tmp_path, 2)
    await ingest(settings, [evidence], [scores])
    doomed_settings = settings.model_copy(update={"data_dir": settings.data_dir / "doomed"})
    # The survivor starts alone, a second worker joins and takes half the partitions, and is
    # killed once the group is stable with both and producing: the survivor gets back
    # partitions whose transactional ids the dead worker used meanwhile.
    async with running_worker(settings) as survivor:
        async with asyncio.timeout(300):
            await until_producing(settings, survivor)
        async with child_worker(doomed_settings, doomed_settings.data_dir / "worker.log") as doomed:
            async with asyncio.timeout(300):
                while await kafka_io.group_state(settings, settings.application_id) != ("Stable", 2):
                    assert doomed.poll() is None
                    await asyncio.sleep(0.2)
                await ingest(settings, [second_evidence], [second_scores])
                await until_producing(settings, doomed)
            assert await kafka_io.group_state(settings, settings.application_id) == ("Stable", 2)
            doomed.kill()
        await then_rescore(settings, files[2])
        rows = await settle_and_export(settings, timeout=600)
    assert_same_export(rows, expected_rows)
    assert await message_counts(settings) == expected_counts


async def test_worker_carries_on_across_a_broker_restart(make_settings, tmp_path, broker):
    from streams.broker.localkafka.broker import LocalKafka

    # Enough runs to be still processing when the broker goes down.
    files, expected_rows, expected_counts = await reference_run(make_settings, tmp_path, 6000)
    settings = make_settings(**COMPARED)
    await ingest(settings, [files[0]], [files[1]])
    kafka = LocalKafka.from_env()
    async with running_worker(settings) as process:
        await until_producing(settings, process)
        await asyncio.to_thread(kafka.down)
        await asyncio.sleep(3)
        await asyncio.to_thread(kafka.up, 180)
        rows = await settle_and_export(settings, timeout=600)
    assert_same_export(rows, expected_rows)
    assert await message_counts(settings) == expected_counts


async def test_bad_input_flood_is_quarantined_with_bounded_memory(make_settings, tmp_path):
    settings = make_settings(session_timeout=8)
    evidence, scores = synthetic_runs(1000, prefix="good")
    rng = random.Random(9)
    bad: list[bytes] = []
    for i in range(6000):
        kind = i % 6
        if kind == 0:
            bad.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b" "))
        elif kind == 1:
            bad.append(b'{"run_id": "x' + str(i).encode() + b'", "text": "' + b"A" * 950_000 + b'"}')
        elif kind == 2:
            bad.append(b"[" * 3000 + b"]" * 3000)
        elif kind == 3:
            bad.append(b'{"schema_version": 1, "run_id": ' + str(i).encode() + b', "task_id": []}')
        elif kind == 4:
            bad.append(b'"just a string"')
        else:
            bad.append(("{\"run_id\": \"caf\u00e9-" + str(i) + "\", \"text\": 3}").encode("latin-1"))
    mixed_evidence = []
    for i, record in enumerate(evidence):
        mixed_evidence.append(record)
        mixed_evidence.extend(bad[i * 3:(i + 1) * 3])
    mixed_scores = list(scores) + bad[3000:]
    await ingest(settings, [write_jsonl(tmp_path / "e.jsonl", mixed_evidence)],
                 [write_jsonl(tmp_path / "s.jsonl", mixed_scores)])
    async with running_worker(settings) as process:
        peak = 0
        waiting = asyncio.create_task(wait_caught_up(settings, 900))
        while not waiting.done():
            peak = max(peak, rss_kib(process.pid))
            await asyncio.sleep(0.5)
        await waiting
        rows = await settle_and_export(settings)
    input_records = [r for r in rows["quarantine"] if r["stage"] == "input"]
    assert len(input_records) == len(bad)
    assert {r["reason"] for r in input_records} == {"schema_violation"}
    assert len(rows["sft"]) + len([r for r in rows["quarantine"] if r["stage"] == "sft"]) == 1000
    assert peak < 600 * 1024, f"worker peak RSS {peak} KiB"


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
