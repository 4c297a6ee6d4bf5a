#!/usr/bin/env python3
"""The evaluation sets' costs (SPEC 12, issue 31): the retroactive pass, the index's memory, a look-up.

    .venv/bin/python -m benchmarks.evalsets retro [--runs 100000] [--remove]   # needs the broker
    .venv/bin/python -m benchmarks.evalsets index [--sequences 1000000]        # no broker
    .venv/bin/python -m benchmarks.evalsets match [--texts 20000]              # no broker

``retro``: under a fresh topic prefix, publishes N generated runs (``corpus.py``, files order),
lets a worker of this build (exactly-once, 2 partitions, default gates, ``DISTILL_LOG_LEVEL=info``)
process them until ``distill wait`` returns, then registers HumanEval (``distill evalset add``
on the prefix) and times what follows: each partition's pass from the worker's own log line
("partition P: N runs judged against the evaluation sets ... in S s"), and the wall time from
the add to ``distill wait`` returning (the view reading the set and building its index
included). ``--remove`` then removes the set and times that pass too. The result gives seconds
per 100,000 joined runs, the worker's CPU over the pass and its RSS before and after.

``index``: a synthetic set whose items have fields of 112 distinct words (100 13-word
sequences each) up to ``--sequences``: ``EvalIndex.nbytes`` (hash and payload arrays), the
Python memory the index holds besides (tracemalloc, the item texts it keeps), and build time,
each per million word sequences; and the same of HumanEval.

``match``: ``EvalIndex.match`` on the evidence texts of the benchmark's corpus, with HumanEval
registered, with a synthetic set of ``--sequences`` word sequences (0: none) and with no set:
microseconds per text and per KB, median and p99 (each text's fastest of ``--rounds``), and the
index's bytes. ``--baseline REF`` also measures ``streams/rules/decontamination.py`` as it was at
git REF, on the same texts and sets, in the same rounds (this tree's and REF's alternate, in the
order A B B A ...), after checking that both give the same result for every text.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, delete_benchmark_topics, log, stop_leftovers  # noqa: E402
from benchmarks.corpus import SEED, Runs, publish  # noqa: E402
from benchmarks.pipeline import Workers  # noqa: E402
from streams.broker import kafka_io  # noqa: E402
from streams.commands.evalset import evalset_version  # noqa: E402
from streams.commands.wait import wait_caught_up  # noqa: E402
from streams.commands.worker import child_worker  # noqa: E402
from streams.rules.decontamination import EvalIndex, EvalItem  # noqa: E402
from streams.settings import DistillSettings  # noqa: E402

PASS_LINE = re.compile(r"partition (\d+): (\d+) runs judged against the evaluation sets '([0-9a-f]*)' "
                       r"\((\d+) changed\) in ([\d.]+) s")


def passes(log_path: Path, version: str) -> list[dict]:
    """The worker's log lines of the passes against ``version`` (its first 12 characters)."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = PASS_LINE.search(line)
        if match and match.group(3) == version[:12]:
            found.append({"partition": int(match.group(1)), "runs": int(match.group(2)),
                          "changed": int(match.group(4)), "seconds": float(match.group(5))})
    return found


async def timed_change(settings: DistillSettings, workers: Workers, log_path: Path, change, label: str) -> dict:
    """Apply ``change`` (add or remove a set), wait until every partition is judged again."""
    before = workers.status()
    started = time.monotonic()
    await change()
    version = await evalset_version(settings)
    await wait_caught_up(settings, timeout=1800)
    wall = time.monotonic() - started
    after = workers.status()
    found = passes(log_path, version)
    judged, seconds = sum(p["runs"] for p in found), sum(p["seconds"] for p in found)
    result = {"version": version, "passes": found, "runs_judged": judged, "pass_seconds": seconds,
              "pass_seconds_per_100k_runs": 100_000 * seconds / judged if judged else None,
              "change_to_caught_up_s": wall, "worker_cpu_s": after["cpu_s"] - before["cpu_s"],
              "rss_before_mib": before["VmRSS"] / 1024, "rss_after_mib": after["VmRSS"] / 1024,
              "peak_rss_after_mib": after["VmHWM"] / 1024}
    log(f"{label}: {judged:,} runs judged in {seconds:.1f} s by the worker's passes "
        f"({result['pass_seconds_per_100k_runs'] or 0:.1f} s per 100,000), {wall:.1f} s from the change to "
        f"`distill wait` returning, {result['worker_cpu_s']:.1f} CPU-s")
    return result


async def retro(args) -> dict:
    from benchmarks.run import register_evalset
    from streams.commands.evalset import remove_eval_set

    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"distill-retro-{tag}-"))
    settings = DistillSettings(bootstrap=args.bootstrap, topic_prefix=f"bench.{tag}.", data_dir=work, partitions=2,
                               web_enabled=False, processing_guarantee="exactly_once", pair_idle_close=5.0,
                               log_level="info")
    result: dict = {"runs": args.runs, "prefix": settings.topic_prefix, "worker_settings": settings.model_dump(
        include={"secrets", "dedup", "processing_guarantee", "partitions", "log_level"}),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    failed = True
    try:
        await kafka_io.ensure_topics(settings)
        runs = Runs(args.runs, seed=args.seed)
        log(f"publishing {args.runs:,} runs")
        result["publish"] = await publish(settings, runs, [(settings.topic("evidence"), settings.topic("scored-runs"))])
        log_path = work / "worker.log"
        workers = Workers()
        async with child_worker(settings, log_path) as process:
            workers.add(process, log_path)
            started = time.monotonic()
            await wait_caught_up(settings, timeout=3600)
            result["processing_s"] = time.monotonic() - started
            log(f"the worker holds {args.runs:,} runs after {result['processing_s']:.0f} s; adding HumanEval")
            result["add"] = await timed_change(settings, workers, log_path,
                                               lambda: register_evalset(settings, "humaneval"), "add HumanEval")
            if args.remove:
                result["remove"] = await timed_change(
                    settings, workers, log_path, lambda: remove_eval_set(settings, "humaneval"), "remove HumanEval")
            workers.check_alive()
        failed = False
    finally:
        stop_leftovers()
        deleted = await delete_benchmark_topics(settings)
        log(f"deleted {len(deleted)} topics of {settings.topic_prefix}")
        if failed:
            log(f"worker state and log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


def synthetic_items(sequences: int, seed: int, words_per_field: int = 112) -> list[EvalItem]:
    """Items of one field of ``words_per_field`` random words (every 13-word run distinct)."""
    rng = random.Random(seed)
    per_item = words_per_field - 13 + 1
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return [EvalItem("synthetic", f"item-{i}", {"text": " ".join(
        "".join(rng.choices(alphabet, k=rng.randint(3, 9))) for _ in range(words_per_field))})
        for i in range(-(-sequences // per_item))]


def index_memory(items: list[EvalItem]) -> dict:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    index = EvalIndex.build(items)
    seconds = time.perf_counter() - started
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sequences = len(index)
    text_bytes = sum(len(t.encode()) for i in items for t in i.fields.values())
    return {"items": len(items), "sequences": sequences, "nbytes": index.nbytes,
            "nbytes_per_million_sequences": index.nbytes / sequences * 1e6,
            "python_bytes_held_per_million_sequences": (held - base) / sequences * 1e6,
            "build_peak_bytes_per_million_sequences": (peak - base) / sequences * 1e6,
            "build_seconds_per_million_sequences": seconds / sequences * 1e6,
            "item_text_bytes": text_bytes}


def humaneval_items() -> list[EvalItem]:
    from benchmarks.run import EVALSETS
    from streams.commands.evalset_files import read_eval_set
    path, fields, id_field = EVALSETS["humaneval"]()
    return read_eval_set("humaneval", [path], list(fields), id_field).items


def index(args) -> dict:
    result = {"synthetic": index_memory(synthetic_items(args.sequences, args.seed)),
              "humaneval": index_memory(humaneval_items())}
    for name, figures in result.items():
        log(f"{name}: {figures['sequences']:,} sequences, nbytes {figures['nbytes_per_million_sequences'] / 2**20:.1f} "
            f"MiB per million sequences, {figures['python_bytes_held_per_million_sequences'] / 2**20:.1f} MiB held "
            f"(tracemalloc), build {figures['build_seconds_per_million_sequences']:.2f} s per million")
    return result


def timed_rounds(calls: dict, texts: list[str], rounds: int) -> dict[str, list[float]]:
    """Each text's fastest call of each of ``calls`` over ``rounds`` rounds, the calls' order
    reversed every other round."""
    best = {name: [float("inf")] * len(texts) for name in calls}
    order = list(calls)
    for _ in range(rounds):
        for name in order:
            call, each = calls[name], best[name]
            for n, text in enumerate(texts):
                started = time.perf_counter()
                call(text)
                each[n] = min(each[n], time.perf_counter() - started)
        order.reverse()
    return best


def figures(each: list[float], texts: list[str]) -> dict:
    per_kb = sorted(s * 1e9 / len(t) for s, t in zip(each, texts, strict=True))
    each = sorted(each)
    return {"us_per_text": {"median": each[len(each) // 2] * 1e6, "p99": each[int(len(each) * 0.99)] * 1e6},
            "us_per_kb": {"median": per_kb[len(per_kb) // 2], "p99": per_kb[int(len(per_kb) * 0.99)]},
            "texts": len(texts), "mean_text_chars": sum(map(len, texts)) / len(texts)}


def match(args) -> dict:
    texts = [orjson.loads(run.evidence)["text"] for run in Runs(args.texts, seed=args.seed)]
    sets = {"humaneval": humaneval_items()}
    if args.sequences:
        sets[f"synthetic {args.sequences:,}"] = synthetic_items(args.sequences, args.seed)
    sets["no set"] = []
    before = None
    if args.baseline:
        from benchmarks.secret_scan import commit_of, module_at
        before = module_at(args.baseline, "streams/rules/decontamination.py", "baseline_decontamination")
    result: dict = {"baseline": {"ref": args.baseline, "commit": commit_of(args.baseline)}} if before else {}
    for name, items in sets.items():
        built = EvalIndex.build(items)
        calls = {"this tree": built.match}
        if before:
            old = before.EvalIndex.build(items)
            for text in texts:
                mine, theirs = built.match(text), old.match(text)
                assert (mine and (mine.set_name, mine.item_id, mine.field, mine.words)) == (
                    theirs and (theirs.set_name, theirs.item_id, theirs.field, theirs.words)), (name, text)
            calls["baseline"] = old.match
        best = timed_rounds(calls, texts, args.rounds)
        result[name] = {**figures(best["this tree"], texts), "sequences": len(built), "nbytes": built.nbytes,
                        "matched": sum(built.match(text) is not None for text in texts)}
        line = (f"match, {name}: {result[name]['us_per_text']['median']:.1f} µs per text median "
                f"({result[name]['us_per_kb']['median']:.1f} µs/KB), p99 {result[name]['us_per_text']['p99']:.1f} µs, "
                f"{len(built):,} sequences in {built.nbytes:,} bytes")
        if before:
            result[name]["baseline"] = {**figures(best["baseline"], texts), "nbytes": old.nbytes}
            b = result[name]["baseline"]
            line += (f"; at {args.baseline}: {b['us_per_text']['median']:.1f} µs median, p99 {b['us_per_text']['p99']:.1f} µs, "
                     f"{old.nbytes:,} bytes")
        log(line)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("retro", help="the retroactive pass of a set added to a worker holding --runs runs")
    one.add_argument("--runs", type=int, default=100_000)
    one.add_argument("--remove", action="store_true", help="also remove the set and time that pass")
    one.add_argument("--bootstrap", default="127.0.0.1:9092")
    two = sub.add_parser("index", help="the index's memory per million word sequences")
    two.add_argument("--sequences", type=int, default=1_000_000)
    three = sub.add_parser("match", help="EvalIndex.match on the corpus's evidence texts")
    three.add_argument("--texts", type=int, default=20_000)
    three.add_argument("--sequences", type=int, default=0, help="also a synthetic set of this many word sequences")
    three.add_argument("--rounds", type=int, default=3, help="each text's figure is its fastest of these rounds")
    three.add_argument("--baseline", metavar="REF", help="also measure decontamination.py as it was at git REF")
    for each in (one, two, three):
        each.add_argument("--seed", type=int, default=SEED)
        each.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(retro(args)) if args.what == "retro" else index(args) if args.what == "index" else match(args)
    folder = RESULTS / "evalsets"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{args.what}{f'-{args.runs}' if args.what == 'retro' else ''}"
    name += f"-vs-{result['baseline']['commit']}.json" if args.what == "match" and args.baseline else ".json"
    (folder / name).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
