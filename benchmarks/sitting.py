#!/usr/bin/env python3
"""One sitting: several builds and configurations of the worker on the same corpus, alternating,
each as a ratio to the baseline build of the same sitting (issues 30 and 31).

    bash scripts/bench.sh --sitting [--baseline e7eaa95] [--rounds 3] [--configs a,b,...] [run.py options]

Each measurement is one ``benchmarks/run.py`` benchmark (``--no-floor``: the ceiling stays, as
the state of the machine at that moment) under a fresh topic prefix, on the same generated
runs (same seed, same bytes: this build's ``corpus.py`` feeds every worker, the baseline's too).
Round 1 runs the configurations in the order given, round 2 in the reverse order, and so on
(A B C C B A A B C: a drift of the machine's load over the sitting falls on every configuration
alike). The configurations:

- ``baseline``: the worker of ``--baseline REF`` (``--build``: unpacked under ``.local/builds/``,
  its own environment under ``.local/venvs/``); it knows no content gate and ignores their topics;
- ``gates-off``: this build, ``DISTILL_SECRETS=off``, ``DISTILL_DEDUP=off``: the round's plumbing alone;
- ``defaults``: this build as shipped: secrets ``quarantine``, dedup on, no evaluation set;
- ``secrets``: secrets ``quarantine``, dedup off (issue 30's figure);
- ``dedup``: dedup on, secrets off, no evaluation set (dedup's share of the next one);
- ``humaneval``: HumanEval registered, dedup and secrets off (decontamination's share);
- ``dedup-humaneval``: dedup on and HumanEval registered before the worker starts, secrets off
  (issue 31's figure: dedup and decontamination alone);
- ``all-humaneval``: the defaults and HumanEval.

The sitting's table (each figure the mean of its runs, each run's figure beside it, and the
ratio of the mean to the baseline's mean), the budgets of issues 30 and 31, and every result go to
``benchmarks/results/sitting-<date>/`` (``sitting.json``, ``sitting.md``, one JSON per run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, log, stop_leftovers  # noqa: E402
from benchmarks.run import benchmark, check_gate_options, make_parser  # noqa: E402

CONFIGS = {
    "baseline": [],  # --build REF, added below
    "gates-off": ["--secrets", "off", "--dedup", "off"],
    "defaults": ["--secrets", "quarantine", "--dedup", "on"],
    "secrets": ["--secrets", "quarantine", "--dedup", "off"],
    "dedup": ["--secrets", "off", "--dedup", "on"],
    "humaneval": ["--secrets", "off", "--dedup", "off", "--evalset", "humaneval"],
    "dedup-humaneval": ["--secrets", "off", "--dedup", "on", "--evalset", "humaneval"],
    "all-humaneval": ["--secrets", "quarantine", "--dedup", "on", "--evalset", "humaneval"],
}
DEFAULT_CONFIGS = "baseline,gates-off,secrets,dedup,dedup-humaneval,defaults"
# (label, where in a result, format)
FIGURES = [
    ("runs/s, first input to last output", ("pipeline", "runs_per_s_from_first_input"), "{:,.0f}"),
    ("runs/s, first to last output", ("pipeline", "runs_per_s"), "{:,.0f}"),
    ("runs/s through the whole pipeline", ("pipeline", "whole_pipeline_runs_per_s"), "{:,.0f}"),
    ("CPU-s per 1000 runs", ("pipeline", "cpu_s_per_1000_runs"), "{:.3f}"),
    ("messages produced per run", ("pipeline", "produced_per_run"), "{:.2f}"),
    ("bytes produced per run", ("pipeline", "produced_bytes_per_run"), "{:,.0f}"),
    ("main thread CPU-s per 1000 runs (start-up included)", "main", "{:.3f}"),
    ("other threads' CPU-s per 1000 runs (start-up included)", "others", "{:.3f}"),
    ("peak RSS, MiB", ("pipeline", "peak_rss_mib"), "{:,.0f}"),
    ("ceiling, msg/s (machine state)", ("ceiling", "messages_per_s"), "{:,.0f}"),
]
# The budgets: (issue, configuration, figure, largest fall of a rate / rise of a cost)
BUDGETS = [
    ("30", "secrets", "runs/s, first input to last output", -0.10),
    ("30", "secrets", "runs/s, first to last output", -0.10),
    ("30", "secrets", "CPU-s per 1000 runs", +0.10),
    ("31", "dedup-humaneval", "runs/s, first input to last output", -0.15),
    ("31", "dedup-humaneval", "runs/s, first to last output", -0.15),
]


def _get(result: dict, where: tuple[str, str] | str) -> float | None:
    if isinstance(where, str):  # the worker's CPU by thread: "main", or every other thread
        threads = (result.get("pipeline") or {}).get("worker_cpu_by_thread_s")
        if not threads:
            return None
        cpu = threads.get("main", 0.0) if where == "main" else sum(v for k, v in threads.items() if k != "main")
        return 1000 * cpu / result["runs"]
    return (result.get(where[0]) or {}).get(where[1])


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def schedule(configs: list[str], rounds: int) -> list[str]:
    order = []
    for r in range(rounds):
        order += configs if r % 2 == 0 else configs[::-1]
    return order


def summarise(results: dict[str, list[dict]], baseline: str = "baseline") -> dict:
    table: dict = {}
    for config, runs in results.items():
        table[config] = {}
        for label, where, _ in FIGURES:
            values = [_get(r, where) for r in runs]
            table[config][label] = {"runs": values, "mean": _mean(values), "median": _median(values)}
    if baseline in table:
        for config, figures in table.items():
            for label, figure in figures.items():
                for stat, name in (("mean", "ratio"), ("median", "median_ratio")):
                    base = table[baseline][label][stat]
                    figure[name] = figure[stat] / base if base and figure[stat] is not None else None
    verdicts = []
    for issue, config, label, limit in BUDGETS:
        figure = table.get(config, {}).get(label) or {}
        if figure.get("ratio") is None:
            continue
        change, median_change = figure["ratio"] - 1, figure["median_ratio"] - 1
        holds = change >= limit if limit < 0 else change <= limit
        verdicts.append({"issue": issue, "config": config, "figure": label, "change": change,
                         "median_change": median_change, "limit": limit, "holds": holds})
    return {"table": table, "budgets": verdicts}


def markdown(sitting: dict) -> str:
    table, configs = sitting["summary"]["table"], list(sitting["summary"]["table"])
    lines = [
        f"One sitting, {sitting['started'][:10]} {sitting['started'][11:16]}-{sitting['ended'][11:16]} UTC, "
        f"{sitting['machine']['cpus']} cores shared with the broker and other work (load average "
        f"{sitting['machine']['load_average_at_start'][0]:.1f} at the start, "
        f"{sitting['machine']['load_average_at_end'][0]:.1f} at the end); code `{sitting['code']}`, baseline "
        f"`{sitting['baseline']}`; {sitting['runs']:,} runs, {sitting['order']} order, {sitting['partitions']} "
        f"partitions, {sitting['guarantee']}, latency phase off; in this order: {', '.join(sitting['schedule'])}.",
        "",
        "```sh", sitting["command"], "```", "",
        "| figure | " + " | ".join(configs) + " |",
        "| --- |" + " --- |" * len(configs),
    ]
    for label, _, fmt in FIGURES:
        cells = []
        for config in configs:
            figure = table[config][label]
            if figure["mean"] is None:
                cells.append("n/a")
                continue
            each = " / ".join(fmt.format(v) if v is not None else "n/a" for v in figure["runs"])
            ratio = f" **{figure['ratio']:.3f}**" if figure.get("ratio") is not None and config != "baseline" else ""
            cells.append(f"{fmt.format(figure['mean'])}{ratio} ({each})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Each cell: the mean of the configuration's runs, in bold its ratio to the baseline's mean, and "
                  "in brackets each run in the order run.", ""]
    for verdict in sitting["summary"]["budgets"]:
        lines.append(f"- issue {verdict['issue']}, {verdict['config']}, {verdict['figure']}: "
                     f"{verdict['change']:+.1%} of the means, {verdict['median_change']:+.1%} of the medians "
                     f"(budget {verdict['limit']:+.0%}): {'holds' if verdict['holds'] else 'MISSED'} (means)")
    checks = sitting.get("checks") or {}
    if checks:
        lines += ["", f"- samples (RAG, SFT, preference pairs) byte for byte the baseline's: {checks['samples_same']}",
                  f"- quarantine reasons other than the category gate's: {checks['unexpected_quarantine'] or 'none'}"]
    return "\n".join(lines)


def checks(results: dict[str, list[dict]]) -> dict:
    """Every run made the same samples as the first baseline run; no unexpected quarantine reason."""
    digests = {c: [r["pipeline"].get("samples_digest") for r in runs] for c, runs in results.items()}
    reference = (digests.get("baseline") or next(iter(digests.values())))[0]
    same = {c: all(d == reference for d in ds) for c, ds in digests.items()}
    unexpected = {c: [r["pipeline"]["unexpected_quarantine"] for r in runs
                      if r["pipeline"].get("unexpected_quarantine")] for c, runs in results.items()}
    return {"samples_same": same, "unexpected_quarantine": {c: u for c, u in unexpected.items() if u}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--baseline", default="e7eaa95", help="git REF of the baseline build (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration (default %(default)s)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help=f"comma-separated, of {', '.join(CONFIGS)} (default {DEFAULT_CONFIGS})")
    ours, rest = parser.parse_known_args()
    configs = [c.strip() for c in ours.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations: {', '.join(unknown)}")
    run_parser = make_parser()
    common = ["--guarantee", "exactly_once", "--latency-seconds", "0", "--no-floor", *rest]
    prepared = {}
    for config in configs:  # every build made, every option checked, before the sitting starts
        extra = ["--build", ours.baseline] if config == "baseline" else CONFIGS[config]
        args = run_parser.parse_args([*common, *extra])
        if args.profile or args.peer:
            parser.error("a sitting measures without --profile and --peer")
        check_gate_options(run_parser, args)
        prepared[config] = args
    first = next(iter(prepared.values()))
    started = datetime.now(timezone.utc)
    folder = RESULTS / f"sitting-{started.strftime('%Y%m%dT%H%M%SZ')}"
    folder.mkdir(parents=True, exist_ok=True)
    order = schedule(configs, ours.rounds)
    sitting = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["bash scripts/bench.sh --sitting", *sys.argv[1:]]),
        "baseline": prepared["baseline"].build_made.short if "baseline" in prepared else None,
        "runs": first.runs, "partitions": first.partitions, "guarantee": first.guarantee, "order": first.order,
        "schedule": order, "configs": {c: CONFIGS[c] for c in configs},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }
    results: dict[str, list[dict]] = {c: [] for c in configs}
    try:
        for n, config in enumerate(order, 1):
            log(f"sitting: run {n} of {len(order)}: {config}")
            result = asyncio.run(benchmark(prepared[config]))
            stop_leftovers()
            result["config"] = config
            results[config].append(result)
            (folder / f"{n:02d}-{config}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
            pipe = result["pipeline"]
            log(f"sitting: {config}: {pipe.get('runs_per_s_from_first_input', 0):,.0f} runs/s from first input, "
                f"{pipe.get('cpu_s_per_1000_runs', 0):.3f} CPU-s per 1000 runs")
    finally:
        stop_leftovers()
    sitting["ended"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sitting["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    sitting["code"] = next((r["pipeline"]["code"]["commit"] for c, runs in results.items() if c != "baseline"
                            for r in runs), None)
    sitting["summary"] = summarise(results)
    sitting["checks"] = checks(results)
    (folder / "sitting.json").write_text(json.dumps(sitting, indent=1) + "\n", encoding="utf-8")
    text = markdown(sitting)
    (folder / "sitting.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    log(f"results in {folder.relative_to(RESULTS.parents[1])}")


if __name__ == "__main__":
    main()
