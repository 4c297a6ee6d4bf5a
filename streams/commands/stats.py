"""Counts and the books of SPEC section 8, read from the topics and the tables' changelogs.

Two independent sources are compared: what the worker's state says each run's outcome
is, and what the output topics actually hold. The books balance only when they agree.
With dedup on, a run's sample is a candidate of its content's group: the ``dedup`` table says
which candidate is live and which are duplicates (SPEC 11), and the books count both.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

from schemas import EvidenceRecord, ScoredRun
from schemas.codec import Undecodable, decode_input, loads
from streams.broker import kafka_io
from streams.broker.topics import TOPIC_SPECS
from streams.faust_app.health import Limits, OpenWindow, windows_past_close
from streams.faust_app.tables import changelog_topic
from streams.rules.pairing import least_watermark, window_closes_at
from streams.rules.quarantine import input_secret_rules
from streams.settings import DistillSettings


@dataclass
class Stats:
    valid_scores: int = 0
    joined: int = 0
    pending_joins: int = 0
    join_timed_out: int = 0
    samples_live: dict[str, int] = field(default_factory=dict)
    stage_quarantined: dict[str, int] = field(default_factory=dict)  # runs whose latest outcome is a record
    duplicates: dict[str, int] = field(default_factory=dict)  # live candidates that lost to another, by stage
    contaminated_by_set: dict[str, int] = field(default_factory=dict)  # runs overlapping an evaluation set
    secret_findings: dict[str, int] = field(default_factory=dict)  # by rule: in runs, and in invalid input
    quarantine_by_stage_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    input_messages: int = 0
    invalid_input_messages: int = 0
    input_quarantine_records: int = 0
    open_windows: int = 0
    closed_windows: int = 0
    insufficient_pair_tasks: int = 0
    consumer_lag: int = 0
    windows_past_close: list[str] = field(default_factory=list)  # open, though they should have closed
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return all(self.checks.values())

    def to_dict(self) -> dict:
        return {**self.__dict__, "balanced": self.balanced}


async def _table(settings: DistillSettings, name: str) -> dict[bytes, bytes]:
    live, _ = await kafka_io.latest_values(settings, changelog_topic(settings, name))
    return live


async def collect(settings: DistillSettings) -> Stats:
    """The figures; ``TopicsMissing`` for a prefix nothing has run with (the tables'
    changelogs may be missing: no worker has run yet, so they count as empty)."""
    await kafka_io.require_topics(settings, [settings.topic(s.name) for s in TOPIC_SPECS])
    stats = Stats()
    runs = [loads(v) for v in (await _table(settings, "runs")).values()]
    published: dict[str, set[str]] = {"rag": set(), "sft": set()}  # samples sent straight to their topic
    candidates: dict[str, set[str]] = {"rag": set(), "sft": set()}  # samples sent to their dedup group
    stage_records, contaminated, findings = Counter(), Counter(), Counter()
    for run in runs:
        findings.update(rule for _path, rule, *_ in run.get("evidence_secrets", []) + run.get("score_secrets", []))
        if run["score"] is None:
            continue
        if run["evidence"] is None:
            stats.join_timed_out += run["join_quarantined"]
            stats.pending_joins += not run["join_quarantined"]
            continue
        stats.joined += 1
        if run.get("contamination"):
            contaminated[run["contamination"]["set"]] += 1
        for stage in ("rag", "sft"):
            outcome = run["outcomes"].get(stage, {})
            if "sample" in outcome:
                (candidates if "key" in outcome else published)[stage].add(outcome["sample"])
            elif "reason" in outcome:
                stage_records[stage] += 1
    stats.stage_quarantined = dict(stage_records)
    stats.contaminated_by_set = dict(sorted(contaminated.items()))
    winners: dict[str, set[str]] = {"rag": set(), "sft": set(), "preference": set()}
    members: dict[str, set[str]] = {"rag": set(), "sft": set(), "preference": set()}
    for raw in (await _table(settings, "dedup")).values():
        group = loads(raw)
        members[group["kind"]].update(c["id"] for c in group["candidates"])
        winners[group["kind"]].update([group["live"]] if group["live"] else [])
    stats.duplicates = {kind: len(members[kind] - winners[kind]) for kind in members}

    live_ids: dict[str, set[bytes]] = {}
    for stage, topic in (("rag", "rag-samples"), ("sft", "sft-samples"), ("preference", "preference-pairs")):
        live, _ = await kafka_io.latest_values(settings, settings.topic(topic))
        live_ids[stage] = set(live)
        stats.samples_live[stage] = len(live)

    by_stage_reason: dict[str, Counter] = {}
    input_coordinates = set()
    async for message in kafka_io.read_topic(settings, settings.topic("quarantine")):
        record = loads(message.value)
        by_stage_reason.setdefault(record["stage"], Counter())[record["reason"]] += 1
        if record["stage"] == "input":  # not built from a run's (redacted) state: redacted on its way out
            findings.update(input_secret_rules(record))
        if record["stage"] == "input" and record["reason"] == "schema_violation":
            source = record["source"]
            input_coordinates.add((source["topic"], source["partition"], source["offset"]))
    stats.secret_findings = dict(sorted(findings.items()))
    stats.quarantine_by_stage_reason = {s: dict(sorted(c.items())) for s, c in sorted(by_stage_reason.items())}
    stats.input_quarantine_records = len(input_coordinates)

    invalid = set()
    scored_run_ids = set()
    for topic, model in (("evidence", EvidenceRecord), ("scored-runs", ScoredRun)):
        async for message in kafka_io.read_topic(settings, settings.topic(topic)):
            stats.input_messages += 1
            decoded = decode_input(model, message.value, settings.max_record_bytes)
            key_ok = not isinstance(decoded, Undecodable) and (message.key or b"").decode("utf-8", "replace") == (
                decoded.run_id if topic == "evidence" else decoded.evidence_run_id
            )
            if not key_ok:
                invalid.add((message.topic, message.partition, message.offset))
            elif topic == "scored-runs":
                scored_run_ids.add(decoded.evidence_run_id)
    stats.invalid_input_messages = len(invalid)
    stats.valid_scores = len(scored_run_ids)

    windows = {key.decode(): loads(v) for key, v in (await _table(settings, "pair_windows")).items()}
    stats.closed_windows = sum(w["window"]["closed"] for w in windows.values())
    stats.open_windows = len(windows) - stats.closed_windows
    stats.insufficient_pair_tasks = sum(w["insufficient"] for w in windows.values() if w["window"]["closed"])
    # What the closed windows' plans sent: [chosen, rejected, digest, dedup key or None] per pair
    # (rows of versions before dedup: [chosen, rejected, category], sent straight out).
    planned_pairs: dict[str, set[str]] = {"direct": set(), "candidates": set()}
    for row in windows.values():
        for pair_id, sent in row["window"]["emitted"].items():
            planned_pairs["candidates" if len(sent) == 4 and sent[3] else "direct"].add(pair_id)
    stats.consumer_lag = await consumer_lag(settings)
    stats.windows_past_close = await overdue_windows(settings, windows)

    stats.checks = {
        "valid scores = joined + pending + timed out at join": stats.valid_scores
        == stats.joined + stats.pending_joins + stats.join_timed_out,
        **{
            f"{stage}: joined = samples live + quarantined + duplicates": stats.joined
            == stats.samples_live[stage] + stats.stage_quarantined.get(stage, 0) + stats.duplicates[stage]
            and live_ids[stage] == {i.encode() for i in published[stage] | winners[stage]}
            and candidates[stage] == members[stage]
            for stage in ("rag", "sft")
        },
        "preference: pairs live = pairs planned (sent straight out, or won their dedup group)":
            {i.decode() for i in live_ids["preference"]} == planned_pairs["direct"] | winners["preference"]
            and planned_pairs["candidates"] == members["preference"],
        "every invalid input message has one input record": invalid == input_coordinates,
    }
    return stats


async def consumer_lag(settings: DistillSettings) -> int:
    """Messages of the worker's input (and internal) topics not yet committed by its group."""
    names = [settings.topic(n) for n in ("evidence", "scored-runs", "pair-candidates", "dedup-candidates")]
    return sum((await kafka_io.unconsumed(settings, settings.application_id, names)).values())



async def overdue_windows(settings: DistillSettings, windows: dict[str, dict]) -> list[str]:
    """Open pair windows (``windows``: the ``pair_windows`` rows by key) past their close time:
    a worker that stopped closing them.

    Idleness counts only where the worker has read every candidate (its idle ticks aside):
    while a backlog flows, windows close by stream time alone. A row of a version before the
    open-window fields does not say when it was active, and is left out until the worker
    writes it again."""
    candidates = settings.topic("pair-candidates")
    from streams.faust_app.agents.pair_agent import TICK_KEY  # the worker's idle ticks are no work for it

    waiting = await kafka_io.unconsumed(settings, settings.application_id, [candidates], skip_key=TICK_KEY)
    caught_up = set(range(settings.partitions)) - {tp.partition for tp in waiting}
    stream_times = {
        int(key.decode().split(":")[1]): least_watermark(loads(raw), settings.partitions)
        for key, raw in (await _table(settings, "stream_time")).items() if key.startswith(b"pair:")
    }
    open_windows = [
        (row["partition"], OpenWindow(key, window_closes_at(row["window"]["start"], settings.pair_window,
                                                            settings.pair_grace), row["active_at"]))
        for key, row in windows.items() if row.get("open") and row.get("active_at") is not None
    ]
    limits = Limits(settings.stall_timeout, settings.pair_idle_close, settings.pair_tick_interval)
    return windows_past_close(open_windows, stream_times, caught_up, time.time(), limits)
