"""Failover soak: workers SIGKILLed at random moments and restarted, again and again, and the
read-committed export compared with an undisturbed run's (rows and message counts).

Not part of the default run (marker ``soak``): ``bash scripts/soak.sh`` (README, "Failover soak"). Its knobs:
DISTILL_SOAK_RUNS (runs, 3), DISTILL_SOAK_KILLS (kills a run, 7), DISTILL_SOAK_WORKERS (2),
DISTILL_SOAK_SEED (1). The tally is printed and written to DISTILL_SOAK_TALLY (a JSON file)
when set; a run's failure names its cause and the test fails once every run has ended.
"""

import asyncio
import json
import os
import random
import time
from contextlib import AsyncExitStack

import pytest

from streams.commands.worker import child_worker
from tests.integration.conftest import ingest, settle_and_export
from tests.integration.failover import (
    COMPARED, differences, message_counts, progress, reference_run, then_rescore, until_stable,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.soak]

RUNS = int(os.environ.get("DISTILL_SOAK_RUNS", "3"))
KILLS = int(os.environ.get("DISTILL_SOAK_KILLS", "7"))
WORKERS = int(os.environ.get("DISTILL_SOAK_WORKERS", "2"))
SEED = int(os.environ.get("DISTILL_SOAK_SEED", "1"))
PARTITIONS = 4


class Workers:
    """``WORKERS`` child workers of one group, each with its own state folder, restartable."""

    def __init__(self, settings, stack: AsyncExitStack) -> None:
        self.settings, self.stack = settings, stack
        self.processes: dict[int, object] = {}
        self.starts = 0

    async def start(self, slot: int) -> None:
        own = self.settings.model_copy(update={"data_dir": self.settings.data_dir / f"worker-{slot}"})
        self.starts += 1
        log = own.data_dir / f"worker-{self.starts}.log"
        self.processes[slot] = await self.stack.enter_async_context(child_worker(own, log))

    def dead(self) -> list[int]:
        return [slot for slot, process in self.processes.items() if process.poll() is not None]


async def soak_run(make_settings, files, rng: random.Random, kills: list[dict]) -> dict:
    """One run: start the workers, kill one at a random moment, restart it, ``KILLS`` times."""
    settings = make_settings(**COMPARED, partitions=PARTITIONS)
    await ingest(settings, [files[0]], [files[1]])
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        workers = Workers(settings, stack)
        for slot in range(WORKERS):
            await workers.start(slot)
        await until_stable(settings, WORKERS)
        for _ in range(KILLS):
            # While they produce (or, once the input is read, while windows wait to close).
            before = await progress(settings)
            await asyncio.sleep(rng.uniform(0.5, 8.0))
            victim = rng.randrange(WORKERS)
            workers.processes[victim].kill()
            kills.append({"at_s": round(time.monotonic() - started, 1), "worker": victim,
                          "sft_before": before, "sft_at_kill": await progress(settings)})
            await workers.start(victim)
            await until_stable(settings, WORKERS)
            assert not workers.dead(), f"workers {workers.dead()} exited on their own"
        await then_rescore(settings, files[2])
        rows = await settle_and_export(settings, timeout=600)
        counts = await message_counts(settings)
    return {"rows": rows, "counts": counts}


async def test_failover_soak(make_settings, tmp_path):
    files, expected_rows, expected_counts = await reference_run(
        make_settings, tmp_path, 3000, rescored=150, partitions=PARTITIONS
    )
    rng = random.Random(SEED)
    tally = {"runs": 0, "kills": 0, "failures": []}
    for run in range(RUNS):
        tally["runs"] += 1
        kills: list[dict] = []
        try:
            result = await soak_run(make_settings, files, rng, kills)
        except Exception as exc:  # noqa: BLE001 -- a run's failure is tallied with its cause
            tally["failures"].append({"run": run, "cause": f"{type(exc).__name__}: {exc}", "kills": kills})
            continue
        finally:
            tally["kills"] += len(kills)
        problems = []
        if found := differences(result["rows"], expected_rows):
            problems.append("export differs from the undisturbed run: " + "; ".join(found))
        if result["counts"] != expected_counts:
            problems.append(f"message counts {result['counts']} != {expected_counts}")
        if problems:
            tally["failures"].append({"run": run, "cause": "; ".join(problems), "kills": kills})
    print(f"\nfailover soak tally: {json.dumps(tally, indent=2)}")
    if os.environ.get("DISTILL_SOAK_TALLY"):
        with open(os.environ["DISTILL_SOAK_TALLY"], "w") as out:
            json.dump(tally, out, indent=2)
    assert tally["failures"] == [], tally["failures"]
