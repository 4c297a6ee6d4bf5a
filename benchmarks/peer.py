"""The peer phase: the Python peer (``benchmarks/peers/``, a Quix Streams application) on the
same runs, timed on the pipeline's clock, its outputs checked against what the corpus gives.

Each peer run has a fresh consumer group, state folder and output topics
(``{prefix}peer-{label}.rag-samples`` ...), and reads the peer's copy of the input topics
(``{prefix}peer.evidence`` and ``{prefix}peer.scored-runs``: the same runs, published with the
pipeline's, same partitions and order), so that the latency phase, which publishes into the
pipeline's inputs, never reaches it. Its output topics take the broker's clock
(``LogAppendTime``): Quix Streams stamps an output with its input's timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from benchmarks.common import ROOT, STARTED, Probe, first_assignment, log, proc_status, time_range
from streams.broker import kafka_io
from streams.settings import DistillSettings

OUTPUTS = ("rag-samples", "sft-samples", "quarantine")


def peer_inputs(settings: DistillSettings) -> tuple[str, str]:
    return settings.topic("peer.evidence"), settings.topic("peer.scored-runs")


def expected_outputs(categories: dict[str, int]) -> dict:
    """What the corpus gives under the default options (SPEC 4: the category gate decides every run)."""
    accepted, partial = categories["accepted"], categories["partially_accepted"]
    rejected, review = categories["rejected"], categories["needs_human_review"]
    reasons = {"rag/category_disallowed": review, "rag/unsafe_rag_category": rejected,
               "sft/category_disallowed": partial, "sft/unsafe_sft_category": rejected + review}
    return {"rag": accepted + partial, "sft": accepted, "quarantine": {k: v for k, v in reasons.items() if v}}


async def read_outputs(settings: DistillSettings, names: dict[str, str]) -> dict:
    """Messages, sample ids with a digest of their value, and quarantine records by stage/reason
    (headers) of the output topics (``names``: kind -> topic), read committed."""
    found: dict = {"messages": {}, "digests": {}, "quarantine": {}}
    for kind, name in names.items():
        digests: dict[bytes, bytes | None] = {}
        count = 0
        async for message in kafka_io.read_topic(settings, name):
            count += 1
            digests[message.key] = hashlib.sha256(message.value).digest() if message.value is not None else None
            if kind == "quarantine":
                headers = {k: v.decode() for k, v in message.headers or ()}
                reason = f"{headers.get('stage')}/{headers.get('reason')}"
                found["quarantine"][reason] = found["quarantine"].get(reason, 0) + 1
        found["messages"][kind], found["digests"][kind] = count, digests
    found["quarantine"] = dict(sorted(found["quarantine"].items()))
    return found


def matches(found: dict, expected: dict) -> bool:
    """One message per outcome, each id once, the counts and reasons the corpus gives."""
    return (found["messages"]["rag"] == len(found["digests"]["rag"]) == expected["rag"]
            and found["messages"]["sft"] == len(found["digests"]["sft"]) == expected["sft"]
            and found["quarantine"] == expected["quarantine"]
            and found["messages"]["quarantine"] == len(found["digests"]["quarantine"]))


async def create_outputs(settings: DistillSettings, names: list[str]) -> None:
    async with kafka_io.started(kafka_io.admin(settings)) as admin:
        await admin.create_topics([NewTopic(name, settings.partitions, 1, topic_configs={
            "cleanup.policy": "delete" if name.endswith("quarantine") else "compact",
            "message.timestamp.type": "LogAppendTime"}) for name in names])


async def delete_peer_topics(settings: DistillSettings, group: str) -> list[str]:
    """The peer run's outputs and Quix's changelog (``changelog__{group}--...``)."""
    async with kafka_io.started(kafka_io.admin(settings)) as admin:
        doomed = [t for t in await admin.list_topics() if group in t]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed


async def lag_of(probe: Probe, group: str, targets: dict[TopicPartition, int]) -> int:
    """Input messages the peer's group has not committed (its outputs are committed with them)."""
    try:
        committed = await probe.admin.list_consumer_group_offsets(group, partitions=list(targets))
    except Exception:  # the group coordinator may not be there yet
        return sum(targets.values())
    return sum(max(0, end - max(0, committed[tp].offset if tp in committed else 0)) for tp, end in targets.items())


def start(python: Path, settings: DistillSettings, group: str, label: str, work: Path,
          commit_interval: float) -> subprocess.Popen:
    """The peer process; its log and state in ``work`` (kept when the benchmark fails)."""
    command = [str(python), "-m", "benchmarks.peers.quix_peer", "--bootstrap", settings.bootstrap,
               "--inputs", settings.topic("peer."), "--outputs", f"{group}.", "--group", group,
               "--state-dir", str(work / f"peer-{label}-state"), "--commit-interval", str(commit_interval)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with (work / f"peer-{label}.log").open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    STARTED.append(process)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
    if process.poll() is None:
        process.kill()
        process.wait(10)


async def run_peer(settings: DistillSettings, python: Path, label: str, runs: int, categories: dict[str, int],
                   work: Path, commit_interval: float, timeout: float) -> dict:
    """One peer run on the whole input: rate and CPU from its first input (the group's first
    assignment) to its last output, also from its first output, peak RSS, its outputs checked."""
    group = f"{settings.topic_prefix}peer-{label}"
    outputs = {kind: f"{group}.{name}" for kind, name in zip(("rag", "sft", "quarantine"), OUTPUTS, strict=True)}
    await create_outputs(settings, list(outputs.values()))
    spawned = time.time()
    process = start(python, settings, group, label, work, commit_interval)
    cpu_s = lambda: proc_status(process.pid).get("cpu_s", 0.0)  # noqa: E731
    assigned = asyncio.create_task(first_assignment(settings, group, cpu_s))
    try:
        async with Probe(settings) as probe:
            targets = await probe.ends(list(peer_inputs(settings)))
            while sum((await probe.ends(list(outputs.values()))).values()) == 0:
                if process.poll() is not None:
                    raise RuntimeError(f"the peer exited with {process.returncode} (log in {work})")
                if time.time() - spawned > 300:
                    raise TimeoutError(f"no output from the peer 300 s after its start (log in {work})")
                await asyncio.sleep(0.05)
            cpu_at_first = proc_status(process.pid).get("cpu_s", 0.0)
            log(f"peer ({label}) producing after {time.time() - spawned:.1f} s")
            while await lag_of(probe, group, targets):
                if process.poll() is not None:
                    raise RuntimeError(f"the peer exited with {process.returncode} (log in {work})")
                if time.time() - spawned > timeout:
                    raise TimeoutError(f"the peer did not consume its input in {timeout:.0f} s (log in {work})")
                await asyncio.sleep(0.2)
            status = proc_status(process.pid)
            assigned_at, cpu_at_assigned = await asyncio.wait_for(assigned, 10)
    finally:
        assigned.cancel()
        stop(process)
    first, last = await time_range(settings, list(outputs.values()))
    found = await read_outputs(settings, outputs)
    await delete_peer_topics(settings, group)
    cpu = status.get("cpu_s", 0.0) - cpu_at_assigned
    result = {
        "assigned_s": assigned_at - spawned, "startup_s": first - spawned,
        "first_input_to_last_output_s": last - assigned_at, "runs_per_s": runs / (last - assigned_at),
        "first_to_last_output_s": last - first, "runs_per_s_first_to_last_output": runs / (last - first),
        "cpu_s": cpu, "cpu_s_per_1000_runs": 1000 * cpu / runs, "cpu_before_assignment_s": cpu_at_assigned,
        "cpu_s_per_1000_runs_first_to_last_output": 1000 * (status.get("cpu_s", 0.0) - cpu_at_first) / runs,
        "peak_rss_mib": status.get("VmHWM", 0) / 1024, "output_messages": found["messages"],
        "quarantine": found["quarantine"], "outputs_match": matches(found, expected_outputs(categories)),
    }
    log(f"peer ({label}): {result['runs_per_s']:,.0f} runs/s over {result['first_input_to_last_output_s']:.1f} s "
        f"(first input to last output), {result['cpu_s_per_1000_runs']:.2f} CPU-s per 1000 runs, outputs "
        f"{'as expected' if result['outputs_match'] else 'NOT as expected'}")
    return result | {"digests": found["digests"]}


def same_as_pipeline(peer: dict, pipeline: dict, exact: bool) -> bool:
    """Every sample of the peer is the pipeline's sample of that id, byte for byte, and every
    quarantine id of the peer is one of the pipeline's (``errors`` are each one's own words);
    ``exact`` (no latency phase added runs to the pipeline's): the same samples, no more."""
    for kind in ("rag", "sft"):
        mine, theirs = peer[kind], pipeline[kind]
        if any(theirs.get(key) != digest for key, digest in mine.items()) or (exact and len(theirs) != len(mine)):
            return False
    return peer["quarantine"].keys() <= pipeline["quarantine"].keys()


def summary(before: dict, after: dict, pipeline_digests: dict, exact: bool, commit_interval: float,
            version: str) -> dict:
    """The report's ``peer``: both runs' rates and CPU, the larger peak RSS, the checks."""
    runs = (before, after)
    return {
        "implementation": f"Quix Streams {version}, exactly-once (benchmarks/peers/quix_peer.py)",
        "commit_interval_s": commit_interval,
        "runs_per_s": [r["runs_per_s"] for r in runs],
        "cpu_s_per_1000_runs": [r["cpu_s_per_1000_runs"] for r in runs],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "outputs_match": all(r["outputs_match"] for r in runs),
        "samples_same_as_pipeline": all(same_as_pipeline(r["digests"], pipeline_digests, exact) for r in runs),
        "before": {k: v for k, v in before.items() if k != "digests"},
        "after": {k: v for k, v in after.items() if k != "digests"},
    }
