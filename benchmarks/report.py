"""The benchmark's report: the printed table of one result, and the estimate of a run's
duration from the earlier results in ``benchmarks/results/``."""

from __future__ import annotations

import contextlib
import json

from benchmarks.common import HOTSPOTS_JSON, PROFILE_TXT, RESULTS, ROOT
from benchmarks.ratios import markdown, peer_rows


def estimate(runs: int, guarantee: str, partitions: int, order: str, workers: int) -> str | None:
    """The expected duration of this benchmark, from the largest earlier result."""
    earlier = []
    for path in RESULTS.glob("*.json"):
        with contextlib.suppress(ValueError, KeyError, OSError):
            data = json.loads(path.read_text())
            if not data.get("profile") and "guarantee" in data and "runs_per_s" in data.get("pipeline", {}):
                earlier.append(data)  # a pipeline result (not a profile, nor another benchmark's file)
    if not earlier:
        return None
    best = max(earlier, key=lambda d: (d["guarantee"] == guarantee, d["partitions"] == partitions,
                                       d.get("workers", 1) == workers, d.get("order") == order, d["runs"]))
    pipe = best["pipeline"]
    per_run = (best["publish"]["seconds"] + best["ceiling"]["seconds"]) / best["runs"] + 1 / pipe["runs_per_s"]
    fixed = pipe["startup_s"] + (pipe.get("latency") or {}).get("publish_seconds", 0) + 60
    total = per_run * runs + fixed
    return (f"estimated duration: {total / 60:,.1f} min, of which pipeline processing {runs / pipe['runs_per_s'] / 60:,.1f} min "
            f"(linear extrapolation of the {best['runs']:,}-run result, {best['guarantee']}, "
            f"{best['partitions']} partitions, {best.get('workers', 1)} worker(s): {pipe['runs_per_s']:,.0f} runs/s"
            f"{', itself stopped by --timeout' if pipe.get('timed_out') else ''})")


def render(result: dict) -> str:
    p, c, pub = result["pipeline"], result["ceiling"], result["publish"]
    cats = pub["categories"]
    n = result["runs"]
    rows = [
        ("runs", f"{n:,}  ({', '.join(f'{k} {v / n:.0%}' for k, v in cats.items())})"),
        ("input sizes", f"evidence {pub['mean_evidence_bytes']:,.0f} B, score {pub['mean_score_bytes']:,.0f} B (mean)"),
        ("partitions / workers / guarantee / order", f"{result['partitions']} / {result.get('workers', 1)} / "
                                                     f"{result['guarantee']} / {result['order']}"
                                   + ("  (worker under pyinstrument)" if result["profile"] else "")),
        ("worker settings", ", ".join(f"{k} {v}" for k, v in result.get("worker_settings", {}).items())
                            + (f"  (build {result['build']}: only the settings it knows)" if result.get("build") else "")),
        (f"publish ({6 if 'peer' in result else 4} topics)", f"{pub['seconds']:.1f} s"),
        ("ceiling (plain aiokafka copy)", f"{c['messages_per_s']:,.0f} msg/s  ({c['messages']:,} msgs in "
                                          f"{c['seconds']:.1f} s, {c['cpu_s']:.1f} s CPU)"),
        ("Faust floor (forward each input once)", f"{result['faust_floor']['messages_per_s']:,.0f} msg/s"
                                                  if "faust_floor" in result else "not measured"),
        ("pipeline startup", f"{p['startup_s']:.1f} s  (process start to first output; "
                             f"{p['worker_cpu_startup_s']:.1f} s CPU)"),
    ]
    if p.get("timed_out"):
        rows += [
            ("pipeline processing", f"STOPPED after {p['processing_s']:.0f} s (--timeout): "
                                    f"{p['input_messages_done']:,} of {2 * n:,} input messages committed"),
            ("pipeline throughput", f"{p['runs_per_s']:,.0f} runs/s = {p['messages_per_s']:,.0f} input msg/s (so far)"),
        ]
    else:
        rows += [
            ("pipeline processing", f"{p['processing_s']:.1f} s  (first to last RAG/SFT/quarantine output)"),
            ("pipeline throughput", f"{p['runs_per_s']:,.0f} runs/s = {p['messages_per_s']:,.0f} input msg/s"),
        ]
        if "whole_pipeline_s" in p:
            rows.append(("through the whole pipeline", f"{p['whole_pipeline_runs_per_s']:,.0f} runs/s  (first output to the "
                                                       f"last preference pair, {p['whole_pipeline_s']:.1f} s; the "
                                                       "idle close of the last windows included)"))
    rows += [
        ("pipeline / ceiling", f"{result['ratio_pipeline_to_ceiling']:.1%}  (input messages per second)"),
        ("pipeline / Faust floor", f"{result['ratio_pipeline_to_faust_floor']:.1%}  (input messages per second)"
                                   if "ratio_pipeline_to_faust_floor" in result else "not measured"),
        ("worker CPU per 1000 runs", f"{1000 * p['worker_cpu_processing_s'] / (p.get('input_messages_done', 2 * n) / 2):.2f} s"
                                     f"  ({p['worker_cpu_processing_s']:.1f} s CPU while processing)"),
    ]
    if not p.get("timed_out"):
        rows += [
            ("all input consumed (committed)", f"{p['consumed_s']:.1f} s after first output"),
            ("caught up (distill wait)", f"{p['caught_up_s']:.1f} s after first output (incl. 5 s idle window close)"),
            ("messages produced per run", f"{p['produced_per_run']:.1f}  (outputs, pair-candidates, changelogs; "
                                          "transaction markers included)" if "produced_per_run" in p else "not measured"),
            ("bytes produced per run", f"{p['produced_bytes_per_run']:,.0f}  (their log segments on the local broker)"
                                       if "produced_bytes_per_run" in p else "not measured (broker not local)"),
            ("outputs", ", ".join(f"{k} {v:,}" for k, v in p["output_messages"].items())
                        + f"  (expected samples: rag {p['expected_samples']['rag']:,}, "
                          f"sft {p['expected_samples']['sft']:,})"),
        ]
    if p.get("rss_by_runs"):
        rows.append(("worker RSS by runs committed", ", ".join(f"{m['runs_committed']:,}: {m['rss_mib']:,.0f}"
                                                              for m in p["rss_by_runs"]) + " MiB"))
    if "quarantine" in p:
        rows.append(("quarantine by stage/reason", ", ".join(f"{k} {v:,}" for k, v in p["quarantine"].items())))
        if p["unexpected_quarantine"]:
            rows.append(("  NOT EXPECTED for this data", ", ".join(f"{k} {v:,}" for k, v in p["unexpected_quarantine"].items())))
    lat = p.get("latency")
    if lat:
        label = "latency at half rate" if lat.get("fixed_rate") is None else "latency at a fixed rate"
        rows.append((label, f"p50 {lat['p50_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms, "
                                             f"max {lat['max_ms']:,.0f} ms  ({lat['measured_samples']:,} samples at "
                                             f"{lat['rate_runs_per_s']:,.0f} runs/s, {lat['missing']} missing)")
                    if lat["p50_ms"] is not None else (label, "no samples arrived"))
        if lat.get("p99_ms_by_quarter") and None not in lat["p99_ms_by_quarter"]:
            rows.append(("  p99 by quarter of the phase", ", ".join(f"{v:,.0f}" for v in lat["p99_ms_by_quarter"]) + " ms"))
    rows.append(("worker peak RSS (VmHWM)", f"{p['peak_rss_mib']:,.0f} MiB"
                 + (f" the largest worker, {p['peak_rss_all_workers_mib']:,.0f} MiB all"
                    if result.get("workers", 1) > 1 else "")
                 + (f"  ({p['peak_rss_after_processing_mib']:,.0f} MiB after the batch)"
                    if "peak_rss_after_processing_mib" in p else "")))
    rows += peer_rows(result)
    rows.append(("load average start / end", f"{result['machine']['load_average_at_start']} / "
                                             f"{result['machine'].get('load_average_at_end')} "
                                             f"on {result['machine']['cpus']} CPUs"))
    if "broker_partitions_at_start" in result["machine"]:
        rows.append(("partitions on the broker at start", f"{result['machine']['broker_partitions_at_start']:,}"))
    code = p.get("code") or {}
    rows.append(("code measured", f"{code.get('commit')}" + (f" + uncommitted changes in {len(code['uncommitted'])} "
                                                             "files of streams/, schemas/" if code.get("uncommitted") else "")))
    width = max(len(k) for k, _ in rows)
    lines = [f"distill-streams benchmark ({result['started']})", ""]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    hot = result.get("hotspots")
    if hot:
        lines += ["", f"  profile: {hot['busy_s']:.1f} s busy of {hot['total_s']:.1f} s sampled "
                      f"(idle in select {hot['idle_s']:.1f} s); cumulative time in streams/ and schemas/:"]
        for entry in hot["ours"][:15]:
            lines.append(f"    {entry['share_of_busy']:6.1%}  {entry['file']}:{entry['function']}")
        lines += ["", "  self time by package (leaf frames; C code counts for its caller):"]
        for entry in hot["self_by_package"][:10]:
            lines.append(f"    {entry['share_of_busy']:6.1%}  {entry['package']}")
        lines += ["", f"  text tree: {PROFILE_TXT.relative_to(ROOT)}; summary: {HOTSPOTS_JSON.relative_to(ROOT)}"]
    if "ratio_pipeline_to_peer" in result:
        lines += ["", "README table of this sitting (also: .venv/bin/python -m benchmarks.ratios RESULT.json):", "",
                  markdown(result)]
    return "\n".join(lines)
