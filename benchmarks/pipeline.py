"""The pipeline phase: ``distill worker`` processes on the published input, timed from the first
output to the last, with their CPU, RSS by tenth of the input and the messages they produce."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import hashlib
import time
from pathlib import Path

from benchmarks.builds import Build, profiling_module
from benchmarks.common import (
    HOTSPOTS_JSON, PROFILE_TXT, ROOT, STARTED, Probe, code_version, first_assignment, log, proc_status, thread_cpu,
    time_range,
)
from benchmarks.corpus import Runs
from benchmarks.latency import latency
from benchmarks.peer import read_outputs
from streams.broker import kafka_io
from streams.broker.localkafka.home import BrokerHome
from streams.commands.wait import wait_caught_up
from streams.commands.worker import child_worker, settings_env, worker_subprocess
from streams.faust_app.tables import TABLE_NAMES, changelog_topic
from streams.settings import DistillSettings

RUN_OUTPUTS = ("rag-samples", "sft-samples", "quarantine")  # one outcome per stage and run: per-run work


class Workers:
    """The worker processes of the pipeline phase, measured together."""

    def __init__(self) -> None:
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def add(self, process: subprocess.Popen, log_path: Path) -> None:
        STARTED.append(process)
        self.processes.append((process, log_path))

    def check_alive(self) -> None:
        for process, log_path in self.processes:
            if process.poll() is not None:
                lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
                tail = "\n".join([line for line in lines if "producer buffer full" not in line][-60:])
                raise RuntimeError(f"a worker exited with {process.returncode} (log: {log_path}):\n{tail}")

    def status(self) -> dict[str, float]:
        """CPU seconds summed over the workers; VmHWM and VmRSS (KiB) of the largest one; VmHWM summed."""
        each = [proc_status(process.pid) for process, _ in self.processes]
        return {"cpu_s": sum(st.get("cpu_s", 0.0) for st in each),
                "VmHWM": max((st.get("VmHWM", 0) for st in each), default=0),
                "VmRSS": max((st.get("VmRSS", 0) for st in each), default=0),
                "VmHWM_sum": sum(st.get("VmHWM", 0) for st in each)}


@contextlib.asynccontextmanager
async def build_worker(build: Build, settings: DistillSettings, log_path: Path):
    """Another build's ``distill worker`` (``--build``): its interpreter, in its folder, with the
    same settings as variables (a build ignores the variables it does not know)."""
    env = {k: v for k, v in settings_env(settings).items() if k != "PYTHONPATH"}
    async with worker_subprocess(build.python, env, log_path, cwd=build.root) as process:
        yield process


@contextlib.asynccontextmanager
async def worker_processes(settings: DistillSettings, count: int, profile: bool, build: Build | None = None):
    """``count`` ``distill worker`` children of one group (``streams.commands.worker.child_worker``), each with
    its own data folder; or one under pyinstrument; or ``count`` of another build (``--build``)."""
    workers = Workers()
    if not profile:
        async with contextlib.AsyncExitStack() as stack:
            for i in range(count):
                own = settings if i == 0 else settings.model_copy(update={"data_dir": settings.data_dir / f"worker-{i}"})
                log_path = own.data_dir / "worker.log"
                started = build_worker(build, own, log_path) if build else child_worker(own, log_path)
                workers.add(await stack.enter_async_context(started), log_path)
            yield workers
        return
    env = settings_env(settings) | {"BENCH_HOTSPOTS_OUT": str(HOTSPOTS_JSON)}
    python, renderer, cwd = sys.executable, "benchmarks.profiling.HotspotRenderer", ROOT
    if build is not None:
        # The build's interpreter in its folder, with this build's renderer (a module of its own
        # name, so the build's benchmarks/ package does not hide it) counting the build's files as ours.
        python, renderer, cwd = build.python, f"{profiling_module(build)}.HotspotRenderer", build.root
        env = {k: v for k, v in env.items() if k != "PYTHONPATH"} | {
            "PYTHONPATH": str(build.root.parent), "BENCH_PROFILE_ROOT": str(build.root)}
    # 5 ms samples: pyinstrument keeps every sample in memory until the worker exits (about 1 GB
    # per 100,000 at 1 ms); VmHWM of a profiled worker is therefore not the worker's own.
    command = [str(python), "-m", "pyinstrument", "-i", "0.005", "-r", renderer,
               "-o", str(PROFILE_TXT), "-m", "streams", "worker"]
    log_path = settings.data_dir / "worker.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=cwd)
        workers.add(process, log_path)
        try:
            yield workers
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 900)  # pyinstrument renders on the way out
            except subprocess.TimeoutExpired:
                process.kill()


async def quarantine_reasons(settings: DistillSettings) -> dict[str, int]:
    """Quarantine records by ``stage/reason``, from their headers (the values are not parsed)."""
    counts: dict[str, int] = {}
    async for message in kafka_io.read_topic(settings, settings.topic("quarantine")):
        headers = {k: v.decode() for k, v in message.headers or ()}
        key = f"{headers.get('stage')}/{headers.get('reason')}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


# What this data should give: RAG and SFT gates by category, nothing else (SPEC 4, default options).
EXPECTED_REASONS = {"rag/category_disallowed", "rag/unsafe_rag_category", "sft/category_disallowed",
                    "sft/unsafe_sft_category"}


async def pipeline(settings: DistillSettings, runs: Runs, categories: dict, args) -> dict:
    """Start the worker on input already published; time startup, processing, catching up."""
    out_topics = [settings.topic(t) for t in RUN_OUTPUTS]
    lag_topics = [settings.topic(t) for t in ("evidence", "scored-runs", "pair-candidates")]
    # One RAG and one SFT outcome per run (a sample or a quarantine record); join timeouts and
    # late arrivals add records, so outcomes are counted from the committed input instead.
    result: dict = {"expected_samples": {"rag": categories["accepted"] + categories["partially_accepted"],
                                         "sft": categories["accepted"]}}
    async with Probe(settings) as probe:
        build = getattr(args, "build_made", None)
        result["code"] = code_version() if build is None else {"commit": build.short, "build": build.ref,
                                                               "uncommitted": []}
        spawned = time.time()
        async with worker_processes(settings, args.workers, args.profile, build) as workers:
            assigned = asyncio.create_task(first_assignment(settings, settings.application_id,
                                                            lambda: workers.status()["cpu_s"]))
            while sum((await probe.ends(out_topics)).values()) == 0:
                workers.check_alive()
                if time.time() - spawned > 300:
                    raise TimeoutError("no output 300 s after the worker started")
                await asyncio.sleep(0.05)
            first_seen = time.time()
            cpu_at_first = workers.status()["cpu_s"]
            log(f"worker producing after {first_seen - spawned:.1f} s; processing {runs.n:,} runs")
            last_report = time.monotonic()
            inputs = 2 * runs.n
            consumed_at = pair_targets = None
            # Does memory grow with the runs processed? RSS of the largest worker at each tenth.
            rss_by_runs: list[dict] = []
            tenths_seen = 0
            while consumed_at is None:
                workers.check_alive()
                input_lag = await probe.lag(lag_topics[:2])
                tenth = 10 * (inputs - input_lag) // inputs
                if tenth > tenths_seen:
                    tenths_seen = tenth
                    rss_by_runs.append({"runs_committed": (inputs - input_lag) // 2,
                                        "rss_mib": round(workers.status()["VmRSS"] / 1024, 1)})
                if input_lag == 0:
                    # Idle ticks keep arriving on pair-candidates: wait for what was there now.
                    pair_targets = pair_targets or await probe.ends(lag_topics[2:])
                    if await probe.lag(lag_topics[2:], pair_targets) == 0:
                        consumed_at = time.time()
                        break
                elapsed = time.time() - first_seen
                if elapsed > args.timeout:
                    done = inputs - input_lag
                    result |= {"timed_out": True, "timeout_s": args.timeout, "input_messages_done": done,
                               "messages_per_s": done / elapsed, "runs_per_s": done / 2 / elapsed,
                               "startup_s": first_seen - spawned, "processing_s": elapsed,
                               "worker_cpu_startup_s": cpu_at_first,
                               "worker_cpu_processing_s": workers.status()["cpu_s"] - cpu_at_first,
                               "rss_by_runs": rss_by_runs}
                    log(f"stopping: {done:,} of {inputs:,} input messages committed after {elapsed:.0f} s")
                    result["quarantine"] = await quarantine_reasons(settings)
                    result["unexpected_quarantine"] = {k: v for k, v in result["quarantine"].items()
                                                       if k not in EXPECTED_REASONS}
                    break
                if time.monotonic() - last_report > 15:
                    last_report = time.monotonic()
                    log(f"  {inputs - input_lag:,} of {inputs:,} input messages committed "
                        f"(~{(inputs - input_lag) / 2 / elapsed:,.0f} runs/s so far)")
                await asyncio.sleep(0.5)
            if consumed_at is not None:
                await wait_caught_up(settings, timeout=300)
                caught_up_at = time.time()
                status = workers.status()
                result["worker_cpu_by_thread_s"] = thread_cpu(workers.processes[0][0].pid)  # the first worker's
                first, last = await time_range(settings, out_topics)
                processing = last - first
                # Through the whole pipeline: until the last preference pair (the windows still open
                # at the end of the input close by idleness, DISTILL_PAIR_IDLE_CLOSE later).
                _, last_pair = await time_range(settings, [settings.topic("preference-pairs")])
                result |= {
                    "startup_s": first - spawned,
                    "processing_s": processing,
                    "runs_per_s": runs.n / processing,
                    "whole_pipeline_s": max(last, last_pair or last) - first,
                    "whole_pipeline_runs_per_s": runs.n / (max(last, last_pair or last) - first),
                    "messages_per_s": 2 * runs.n / processing,
                    "consumed_s": consumed_at - first,
                    "caught_up_s": caught_up_at - first,
                    "worker_cpu_startup_s": cpu_at_first,
                    "worker_cpu_processing_s": status["cpu_s"] - cpu_at_first,
                    "peak_rss_after_processing_mib": status["VmHWM"] / 1024,
                    "rss_by_runs": rss_by_runs,
                    "output_messages": {t: sum((await probe.ends([settings.topic(t)])).values())
                                        for t in ("rag-samples", "sft-samples", "preference-pairs", "quarantine")},
                }
                if assigned.done() and not assigned.exception():
                    assigned_at, cpu_at_assigned = assigned.result()
                    result |= {  # the clock of the peer's figures (benchmarks/peer.py)
                        "assigned_s": assigned_at - spawned,
                        "first_input_to_last_output_s": last - assigned_at,
                        "runs_per_s_from_first_input": runs.n / (last - assigned_at),
                        "cpu_s_per_1000_runs": 1000 * (status["cpu_s"] - cpu_at_assigned) / runs.n,
                    }
                result["samples_digest"] = await samples_digest(settings)
                result["produced_offsets"] = await produced_offsets(settings, probe)
                result["produced_per_run"] = sum(result["produced_offsets"].values()) / runs.n
                produced = produced_bytes(list(result["produced_offsets"]))
                if produced is not None:
                    result["produced_bytes"] = produced
                    result["produced_bytes_per_run"] = sum(produced.values()) / runs.n
                result["quarantine"] = await quarantine_reasons(settings)
                result["unexpected_quarantine"] = {k: v for k, v in result["quarantine"].items()
                                                   if k not in EXPECTED_REASONS}
                log(f"pipeline: {result['runs_per_s']:,.0f} runs/s over {processing:.1f} s "
                    f"(startup {result['startup_s']:.1f} s)")
                if args.latency_seconds > 0:
                    rate = args.latency_rate or max(1.0, result["runs_per_s"] / 2)
                    result["latency"] = await latency(settings, rate, args.latency_seconds, runs.end,
                                                      workers.check_alive, args.latency_samples)
                    result["latency"]["fixed_rate"] = args.latency_rate
            assigned.cancel()
            final = workers.status()
            result["peak_rss_mib"] = final["VmHWM"] / 1024
            result["peak_rss_all_workers_mib"] = final["VmHWM_sum"] / 1024
            result["worker_cpu_total_s"] = final["cpu_s"]
    return result


async def produced_offsets(settings: DistillSettings, probe: Probe) -> dict[str, int]:
    """Offsets the worker wrote per topic: outputs, pair-candidates and the table changelogs
    (under exactly-once each transaction also leaves one commit marker per partition)."""
    names = [settings.topic(t) for t in ("rag-samples", "sft-samples", "preference-pairs", "quarantine",
                                         "pair-candidates", "dedup-candidates")]
    names += [changelog_topic(settings, table) for table in TABLE_NAMES]
    return {name: sum((await probe.ends([name])).values()) for name in names}


async def samples_digest(settings: DistillSettings) -> dict[str, str]:
    """A digest of each sample topic's latest value per key (read committed): two builds or
    configurations that made the same samples, byte for byte, have the same digests."""
    found = await read_outputs(settings, {kind: settings.topic(f"{kind}-{suffix}") for kind, suffix in
                                          (("rag", "samples"), ("sft", "samples"), ("preference", "pairs"))})
    digests = {}
    for kind, values in found["digests"].items():
        live = sorted((key, digest) for key, digest in values.items() if digest is not None)
        digests[kind] = hashlib.sha256(b"".join(key + b"\0" + digest for key, digest in live)).hexdigest()[:16]
    return digests


def broker_log_dirs() -> list[Path]:
    """The local broker's data folders (``log.dirs`` of its ``server.properties``, in
    ``$DISTILL_KAFKA_HOME`` or the bootstrap's ``.local/kafka``), if the broker is the local one;
    else none."""
    properties = BrokerHome.from_env().server_properties
    if not properties.exists():
        return []
    for line in properties.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() in ("log.dirs", "log.dir"):
            return [Path(d.strip()) for d in value.split(",") if d.strip()]
    return []


def produced_bytes(names: list[str]) -> dict[str, int] | None:
    """Bytes of each topic's log segments on the local broker (record batches as stored:
    compressed if the producer compressed, transaction markers included), read from its data
    folders; None when the broker is not local. Nothing is compacted yet: the segments are young."""
    dirs = broker_log_dirs()
    if not dirs:
        return None
    sizes = {}
    for name in names:
        total = 0
        for folder in dirs:
            for partition in folder.glob(f"{name}-*"):
                if partition.name[len(name) + 1:].isdigit():
                    total += sum(f.stat().st_size for f in partition.glob("*.log"))
        sizes[name] = total
    return sizes
