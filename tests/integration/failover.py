"""What the failover tests and the soak share: an undisturbed reference run and the comparison."""

import asyncio
from collections import Counter
from pathlib import Path

import orjson

from streams.broker import kafka_io
from streams.commands.wait import wait_caught_up
from tests.integration.conftest import ingest, running_worker, settle_and_export, write_jsonl
from tests.integration.runs import rescores, synthetic_runs

OUTPUTS = ("rag-samples", "sft-samples", "preference-pairs", "quarantine")
# Idleness is wall-clock time: a window must not close by it while a disturbed run pauses,
# or that run would pair differently from the reference. A rebalance's own pause no longer
# counts (a quiet clock starts over when it ends), but a broker restart's does, and so does
# the time a pair partition hears nothing while the join partitions feeding it restore on
# another worker. Here it only closes the last windows. (Before the clocks started over, two
# rebalances with their restores took ~50 s in the two-worker test: 45 s was too short.)
COMPARED = dict(session_timeout=8, pair_idle_close=120)


async def message_counts(settings) -> dict[str, int]:
    """Committed messages on each output topic: a duplicate would show as one more."""
    counts = {}
    for name in OUTPUTS:
        counts[name] = sum([1 async for _ in kafka_io.read_topic(settings, settings.topic(name))])
    return counts


def comparable(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Export rows without what differs between two ingests of the same lines under two
    prefixes: the source topic's name and the message timestamp of a quarantine record."""
    def strip(record: dict) -> dict:
        if "source" not in record:
            return record
        return {**record, "source": {**record["source"], "topic": None}, "recorded_at": None}
    return {kind: [strip(r) for r in records] for kind, records in rows.items()}


def differences(rows: dict[str, list[dict]], expected: dict[str, list[dict]], shown: int = 5) -> list[str]:
    """What differs between two runs' exports (see ``comparable``), a few rows of each kind:
    the full diff of 30,000 runs is more than CI keeps of a failed run's output."""
    rows, expected, found = comparable(rows), comparable(expected), []
    for kind in sorted(set(rows) | set(expected)):
        got = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in rows.get(kind, [])]
        want = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in expected.get(kind, [])]
        if got == want:
            continue
        extra, missing = Counter(got) - Counter(want), Counter(want) - Counter(got)
        found.append(f"{kind}: {len(got)} rows for {len(want)} expected, {sum(missing.values())} missing, "
                     f"{sum(extra.values())} not expected" + ("" if extra or missing else ", in another order"))
        found += [f"  missing: {row[:700]}" for row in list(missing)[:shown]]
        found += [f"  not expected: {row[:700]}" for row in list(extra)[:shown]]
    return found


def assert_same_export(rows: dict[str, list[dict]], expected: dict[str, list[dict]]) -> None:
    """The disturbed run's export is the undisturbed run's (see ``comparable``)."""
    if found := differences(rows, expected):
        raise AssertionError("the export differs from the undisturbed run's:\n" + "\n".join(found))


def parts(path: Path, tmp_path: Path, count: int) -> list[Path]:
    """The file's lines in ``count`` consecutive parts of about the same size, as files."""
    lines = path.read_bytes().splitlines(keepends=True)
    files = []
    for i in range(count):
        part = tmp_path / f"part{i}-{path.name}"
        part.write_bytes(b"".join(lines[len(lines) * i // count: len(lines) * (i + 1) // count]))
        files.append(part)
    return files


async def progress(settings) -> int:
    return (await message_counts(settings))["sft-samples"]


async def until_producing(settings, process, timeout: float = 300) -> None:
    """Until the SFT output grows, while ``process`` lives; at most ``timeout`` seconds (a
    worker with nothing left to read never produces)."""
    async with asyncio.timeout(timeout):
        before = await progress(settings)
        while await progress(settings) == before:
            assert process.poll() is None
            await asyncio.sleep(0.2)


async def until_stable(settings, members: int, timeout: float = 300) -> None:
    """Until the group is stable with ``members`` members."""
    async with asyncio.timeout(timeout):
        while await kafka_io.group_state(settings, settings.application_id) != ("Stable", members):
            await asyncio.sleep(0.5)


async def reference_run(make_settings, tmp_path, runs: int, rescored: int = 0, **overrides):
    """An undisturbed run; the same partitions as the disturbed one, since quarantine
    records name their source partition and offset. With ``rescored``, a run of each of the
    first tasks is scored again once everything settled (``then_rescore``)."""
    settings = make_settings(**{**COMPARED, **overrides})
    evidence, scores = synthetic_runs(runs)
    files = (write_jsonl(tmp_path / "e.jsonl", evidence), write_jsonl(tmp_path / "s.jsonl", scores),
             write_jsonl(tmp_path / "rescores.jsonl", rescores(scores, rescored)))
    await ingest(settings, [files[0]], [files[1]])
    async with running_worker(settings):
        if rescored:
            await then_rescore(settings, files[2])
        rows = await settle_and_export(settings, timeout=600)
    return files, rows, await message_counts(settings)


async def then_rescore(settings, rescores_file) -> None:
    """Once all is settled, re-score runs joined long before: each needs its run's state, so a
    worker that lost any in a rebalance answers differently from the reference."""
    await wait_caught_up(settings, 600)
    await ingest(settings, [], [rescores_file])
