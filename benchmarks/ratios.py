"""The sitting's ratios: the peer's rows of the printed report, and the README's "Performance"
table made from one result (``--peer``), so that a new sitting replaces the table whole.

    .venv/bin/python -m benchmarks.ratios benchmarks/results/<result>-peer.json   # the Markdown
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def peer_rows(result: dict) -> list[tuple[str, str]]:
    """The report's rows for the peer and the ratios (empty without ``--peer``)."""
    peer, pipe = result.get("peer"), result["pipeline"]
    if not peer:
        return []
    rows = [
        ("peer", f"{peer['implementation']}, commit interval {peer['commit_interval_s']:g} s"),
        ("peer throughput, before / after", " / ".join(f"{r:,.0f}" for r in peer["runs_per_s"])
         + " runs/s  (first input to last output)"),
        ("peer CPU per 1000 runs, before / after", " / ".join(f"{c:.2f}" for c in peer["cpu_s_per_1000_runs"]) + " s"),
        ("peer peak RSS (VmHWM)", f"{peer['peak_rss_mib']:,.0f} MiB"),
        ("peer outputs", ("as expected" if peer["outputs_match"] else "NOT AS EXPECTED (counts or reasons)")
         + ("; its samples byte for byte the pipeline's" if peer["samples_same_as_pipeline"]
            else "; its samples DIFFER from the pipeline's")),
    ]
    if "ratio_pipeline_to_peer" in result:
        rows += [
            ("pipeline, first input to last output", f"{pipe['runs_per_s_from_first_input']:,.0f} runs/s, "
                                                     f"{pipe['cpu_s_per_1000_runs']:.2f} CPU-s per 1000 runs"),
            ("pipeline / peer", f"{result['ratio_pipeline_to_peer']:.2f}x the runs/s, "
                                f"{result['cpu_ratio_pipeline_to_peer']:.2f}x the CPU per run"),
            ("pipeline / ceiling, peer / ceiling",
             f"{result['ratio_pipeline_to_ceiling_from_first_input']:.3f}, "
             f"{result['ratio_peer_to_ceiling']:.3f}  (input messages per second)"),
        ]
    return rows


def markdown(result: dict) -> str:
    """The README's table of this sitting, with its date, machine and command."""
    peer, pipe, ceiling = result["peer"], result["pipeline"], result["ceiling"]
    machine, code = result["machine"], pipe.get("code") or {}
    ceiling_runs = ceiling["messages_per_s"] / 2
    ceiling_cpu = 1000 * ceiling["cpu_s"] / result["runs"]
    peer_rss = peer["peak_rss_mib"]
    lines = [
        textwrap.fill(
            f"One sitting, {result['started'][:10]} ({result['started'][11:16]} UTC), code `{code.get('commit')}`"
            + (" with uncommitted changes" if code.get("uncommitted") else "") + f": {result['runs']:,} runs, "
            f"{result['order']} order, {result['partitions']} partitions, {result['guarantee']}, on {machine['cpus']} "
            f"cores shared by the broker, the processes measured and the benchmark (load average "
            f"{machine['load_average_at_start'][0]:.1f} at the start, "
            f"{(machine.get('load_average_at_end') or [0])[0]:.1f} at the end). Command:", width=96),
        "",
        "```sh",
        result.get("command", "bash scripts/bench.sh --peer"),
        "```",
        "",
        "| figure | pipeline | Python peer, before / after | plain aiokafka ceiling | pipeline / peer "
        "| pipeline / ceiling |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| runs/s, first input to last output | {pipe['runs_per_s_from_first_input']:,.0f} | "
        + " / ".join(f"{r:,.0f}" for r in peer["runs_per_s"]) + f" | {ceiling_runs:,.0f} | "
        f"**{result['ratio_pipeline_to_peer']:.2f}** | {pipe['runs_per_s_from_first_input'] / ceiling_runs:.3f} |",
        f"| CPU-s per 1000 runs | {pipe['cpu_s_per_1000_runs']:.2f} | "
        + " / ".join(f"{c:.2f}" for c in peer["cpu_s_per_1000_runs"]) + f" | {ceiling_cpu:.2f} | "
        f"**{result['cpu_ratio_pipeline_to_peer']:.2f}** | {pipe['cpu_s_per_1000_runs'] / ceiling_cpu:.1f} |",
        f"| peak RSS, MiB | {pipe['peak_rss_mib']:,.0f} | {peer_rss:,.0f} (the larger) | | "
        f"{pipe['peak_rss_mib'] / peer_rss:.2f} | |",
        "",
        textwrap.fill(
            f"The peer's outputs {'matched' if peer['outputs_match'] else 'did NOT match'} the corpus (RAG and SFT "
            "counts, quarantine reasons) in both runs"
            + (", and its samples were the pipeline's byte for byte." if peer["samples_same_as_pipeline"] else
               "; its samples DIFFERED from the pipeline's."), width=96),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
