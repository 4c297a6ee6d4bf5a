"""Hot spots of a profiled worker: a pyinstrument renderer that also writes a summary.

The benchmark runs the worker as
``python -m pyinstrument -r benchmarks.profiling.HotspotRenderer -o benchmarks/profile.txt -m streams worker``
(from the repository root, so this module is importable). On exit the renderer writes the
usual text tree to ``profile.txt`` and, to the path in ``BENCH_HOTSPOTS_OUT``, a JSON
summary computed from the raw samples (nothing as large as a saved session is written):

- ``ours``: cumulative time of every function in ``streams/`` and ``schemas/`` (time of the
  samples with that function anywhere on the stack, counted once per sample);
- ``self_by_package``: where the leaf frames are (time spent in C code counts for the
  Python function that called it);
- ``idle_s``: samples waiting in the event loop's ``select`` (with uvloop: in the C loop, the
  leaf frame being mode's ``execute_from_commandline``); ``busy_s`` is the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import defaultdict
from pathlib import Path

from pyinstrument import processors
from pyinstrument.frame_info import frame_info_get_identifier
from pyinstrument.renderers import ConsoleRenderer

# The tree whose streams/ and schemas/ are "ours": this one, or another build's (``--profile --build``).
ROOT = Path(os.environ.get("BENCH_PROFILE_ROOT") or Path(__file__).resolve().parents[1])
OUR_FOLDERS = ("streams", "schemas")


def _split(frame_info: str) -> tuple[str, str, int]:
    function, path, line = (frame_info_get_identifier(frame_info).split("\x00") + ["", "0"])[:3]
    return function, path, int(line or 0)


def _ours(path: str) -> str | None:
    try:
        rel = Path(path).resolve().relative_to(ROOT)
    except (ValueError, OSError):
        return None
    return str(rel) if rel.parts and rel.parts[0] in OUR_FOLDERS else None


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    ours = _ours(path)
    if ours:
        return "/".join(Path(ours).parts[:2]) if Path(ours).parts[1:2] == ("agents",) else ours
    if path.startswith("<"):
        return path
    return "stdlib:" + Path(path).name


def _waits_in_uvloop(frames: list[tuple[str, str, int]]) -> bool:
    """The worker runs on uvloop, whose loop is C: a sample waiting for I/O (or in uvloop's own C
    code, which is little) ends in the Python frame that started the loop, mode's
    ``execute_from_commandline`` (there is no ``selectors.select`` frame to see)."""
    return bool(frames) and frames[-1][0] == "execute_from_commandline" and frames[-1][1].endswith("mode/worker.py")


def hotspots(frame_records, limit: int = 40) -> dict:
    total = idle = 0.0
    cumulative: dict[tuple[str, str, int], float] = defaultdict(float)
    everything: dict[tuple[str, str], float] = defaultdict(float)  # any code, by function and package
    leaf_package: dict[str, float] = defaultdict(float)
    leaf_function: dict[tuple[str, str], float] = defaultdict(float)
    path_cache: dict[str, str | None] = {}
    for stack, seconds in frame_records:
        total += seconds
        frames = [_split(f) for f in stack]
        if any(fn == "select" and path.endswith("selectors.py") for fn, path, _ in frames) or _waits_in_uvloop(frames):
            idle += seconds
            continue
        seen = set()
        seen_any = set()
        for fn, path, line in frames:
            where = _package(path)
            if (fn, where) not in seen_any:
                seen_any.add((fn, where))
                everything[(fn, where)] += seconds
            if path not in path_cache:
                path_cache[path] = _ours(path)
            rel = path_cache[path]
            if rel and (fn, rel, line) not in seen:
                seen.add((fn, rel, line))
                cumulative[(fn, rel, line)] += seconds
        if frames:
            fn, path, _ = frames[-1]
            leaf_package[_package(path)] += seconds
            leaf_function[(fn, path_cache.get(path) or _package(path))] += seconds
    busy = total - idle

    def share(s: float) -> dict:
        return {"seconds": round(s, 3), "share_of_busy": round(s / busy, 4) if busy else 0.0}

    return {
        "total_s": round(total, 3),
        "idle_s": round(idle, 3),
        "busy_s": round(busy, 3),
        # Every function of ours down to 0.1% of the busy time (the content gates' functions are
        # a few per cent each: a fixed top 40 left them out).
        "ours": [{"function": fn, "file": rel, "line": line, **share(s)}
                 for (fn, rel, line), s in sorted(cumulative.items(), key=lambda kv: -kv[1])
                 if s >= 0.001 * busy],
        # Library frames too (Faust's commit, the consumer, the producer...); wrappers that
        # hold nearly every sample (the event loop, the worker) are left out.
        "all_cumulative": [{"function": fn, "where": where, **share(s)}
                           for (fn, where), s in sorted(everything.items(), key=lambda kv: -kv[1])
                           if s < 0.9 * busy][:limit],
        "self_by_package": [{"package": p, **share(s)}
                            for p, s in sorted(leaf_package.items(), key=lambda kv: -kv[1])[:limit]],
        "self_top": [{"function": fn, "where": where, **share(s)}
                     for (fn, where), s in sorted(leaf_function.items(), key=lambda kv: -kv[1])[:limit]],
    }


class HotspotRenderer(ConsoleRenderer):
    """The text tree of ``ConsoleRenderer``, plus the JSON summary as a side file.

    Library frames are shown, not folded away: most of the worker's time is in Faust,
    aiokafka and asyncio, around our agents. Frames under 1% of the total are still left out.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        with contextlib.suppress(ValueError):
            self.processors.remove(processors.group_library_frames_processor)

    def render(self, session) -> str:
        out = os.environ.get("BENCH_HOTSPOTS_OUT")
        if out:
            summary = hotspots(session.frame_records)
            summary["duration_s"] = round(session.duration, 3)
            summary["cpu_time_s"] = round(session.cpu_time, 3)
            summary["samples"] = session.sample_count
            Path(out).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        return super().render(session)


# The content gates' functions (SPEC 10-12) and the parts of the worker they add to, as
# (label, file, function): ``gate_shares`` reads them from a profiled result's summary.
GATE_FUNCTIONS = (
    ("secret scan, all callers (SecretScanner.redact_object)", "streams/rules/secrets.py", "redact_object"),
    ("  keyword pre-filter (_has_keyword)", "streams/rules/secrets.py", "_has_keyword"),
    ("  strings of the object (_gather_strings)", "streams/rules/secrets.py", "_gather_strings"),
    ("screening at arrival (screening.screen)", "streams/rules/screening.py", "screen"),
    ("quarantine records scanned again (quarantine.redact_record)", "streams/rules/quarantine.py", "redact_record"),
    ("decontamination at arrival (screening.judge)", "streams/rules/screening.py", "judge"),
    ("  EvalIndex.match", "streams/rules/decontamination.py", "match"),
    ("retroactive pass check (join_agent.rejudge_if_stale)", "streams/faust_app/agents/join_agent.py",
     "rejudge_if_stale"),
    ("content keys (dedup.sample_content_key)", "streams/rules/dedup.py", "sample_content_key"),
    ("  normalise (NFKC, white space)", "streams/rules/dedup.py", "normalise"),
    ("dedup candidates built at the join (join._candidate)", "streams/rules/join.py", "_candidate"),
    ("dedup agent (dedup_agent.handle_batch)", "streams/faust_app/agents/dedup_agent.py", "handle_batch"),
    ("  candidate batches read (candidates.read_batch)", "streams/faust_app/candidates.py", "read_batch"),
    ("  a group in and out of the table (dedup_agent.take)", "streams/faust_app/agents/dedup_agent.py", "take"),
    ("  the group settled (dedup.apply_message)", "streams/rules/dedup.py", "apply_message"),
    ("  group rows encoded (DedupGroup.encode)", "streams/rules/dedup.py", "encode"),
    ("candidate batches sent (emit.send_candidates)", "streams/faust_app/agents/emit.py", "send_candidates"),
    ("state cache flushed into the transaction, all tables (state_cache.flush)", "streams/faust_app/state_cache.py",
     "flush"),
    ("outbox records sent (outbox.send_records)", "streams/faust_app/outbox.py", "send_records"),
    ("join agent, whole (join_agent.handle_batch)", "streams/faust_app/agents/join_agent.py", "handle_batch"),
    ("pair agent, whole (pair_agent.on_batch)", "streams/faust_app/agents/pair_agent.py", "on_batch"),
    ("commit (transactions.commit)", "streams/faust_fixes/transactions.py", "commit"),
)


def gate_shares(summary: dict) -> list[dict]:
    """Each of ``GATE_FUNCTIONS``: seconds and share of the busy time (cumulative: a function
    and its callees, once per sample). A summary written before ``_waits_in_uvloop`` counted
    the uvloop wait as busy: it is taken out here."""
    busy = summary["busy_s"]
    if not summary.get("idle_s"):
        busy -= sum(e["seconds"] for e in summary.get("self_top", ())
                    if e["function"] == "execute_from_commandline" and e["where"] == "mode")
    rows = []
    for label, file, function in GATE_FUNCTIONS:
        seconds = sum(e["seconds"] for e in summary["ours"] if e["file"] == file and e["function"] == function)
        rows.append({"label": label, "seconds": round(seconds, 3), "share_of_busy": round(seconds / busy, 4)})
    return rows


if __name__ == "__main__":
    import sys
    # .venv/bin/python -m benchmarks.profiling RESULT-profile.json|hotspots.json ...: the gates' shares side by side
    columns = []
    for name in sys.argv[1:]:
        data = json.loads(Path(name).read_text())
        columns.append((Path(name).stem, gate_shares(data.get("hotspots", data))))
    print("| function | " + " | ".join(stem for stem, _ in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for n, (label, _, _) in enumerate(GATE_FUNCTIONS):
        print(f"| {label} | " + " | ".join(f"{rows[n]['share_of_busy']:.1%} ({rows[n]['seconds']:.2f} s)"
                                           for _, rows in columns) + " |")
