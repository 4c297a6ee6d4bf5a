"""Convergence, the rule of SPEC 10-12: the datasets are a function of the latest input and the
registered evaluation sets, whatever the arrival order.

The pure rules are wired here as the agents wire them (join -> dedup groups and pair windows,
pair windows -> dedup groups), with every hop a FIFO channel per (source, target) as Kafka
keeps them, delivered in an order hypothesis picks. Inserts, re-scores (category changes that
retract and give back samples), evaluation-set adds and removes and window closes are
interleaved at random; at the end the output topics (as compacted topics keep them) and each
run's latest outcome per stage must equal a batch reference over the final state, written
below from the SPEC's wording.
"""

import hashlib
from collections import defaultdict, deque
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import EvidenceRecord, QuarantineRecord, ScoredRun
from schemas.codec import loads
from streams.rules import dedup, pairing
from streams.rules.decontamination import EvalIndex, EvalItem
from streams.rules.firewall import GateOptions
from streams.rules.dedup import sample_content_key
from streams.rules.pair_effects import plan_effects
from streams.rules.join import RunState, on_evidence, on_score, rejudge
from streams.rules.screening import ContentGates
from tests.batch_reference import expected
from tests.unit.records import make_evidence, make_score, make_source

MAX_PAIRS = 3
DAY_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: every run is scored within this day's window
OPTIONS = GateOptions()
# Texts share words, so evaluation items overlap some and duplicates are common.
TEXTS = [
    "retry the request with exponential backoff and jitter before giving up on the upstream",
    "retry the request with exponential backoff and jitter before giving up on the upstream",
    "Retry the  request with exponential backoff and jitter before giving up on the upstream",
    "the cache entry is evicted once the lock is released by the worker thread",
    "the cache entry is evicted once the lock is released by the worker thread",
    "move the parsing of the manifest into its own module and test it there",
]
EVAL_ITEMS = {
    "bench-a": [EvalItem("bench-a", "0", {"prompt": "the request with exponential backoff and jitter before giving up"})],
    "bench-b": [EvalItem("bench-b", "7", {"solution": "the cache entry is evicted once the lock is released"})],
}


@dataclass
class Run:
    run_id: str
    task_id: str
    text: str
    minute: int  # scored_at within the day
    categories: list[str]  # every score it gets, in order: the last one is final


runs_strategy = st.lists(
    st.builds(lambda i, task, text, minute, cats: Run(f"run-{i}", f"task-{task}", text, minute, cats),
              st.integers(0, 30), st.integers(0, 2), st.sampled_from(TEXTS), st.integers(0, 5),
              st.lists(st.sampled_from(["accepted", "partially_accepted", "rejected", "needs_human_review"]),
                       min_size=1, max_size=3)),
    min_size=1, max_size=8, unique_by=lambda r: r.run_id,
)


def scored_at(minute: int) -> str:
    return f"2026-01-01T00:{minute:02d}:00Z"


def evidence_of(run: Run) -> dict:
    return make_evidence(run_id=run.run_id, task_id=run.task_id, text=run.text)


def score_of(run: Run, category: str) -> dict:
    return make_score(evidence_run_id=run.run_id, evidence_task_id=run.task_id, category=category,
                      reasons=[f"scored {category}"], scored_at=scored_at(run.minute))


# ---------------------------------------------------------------- the pipeline, as the agents wire it


@dataclass
class Pipeline:
    gates: ContentGates
    runs: dict[str, RunState] = field(default_factory=dict)
    groups: dict[bytes, dedup.DedupGroup] = field(default_factory=dict)
    windows: dict[str, pairing.PairWindow] = field(default_factory=dict)
    channels: dict[tuple, deque] = field(default_factory=lambda: defaultdict(deque))
    topics: dict[str, dict[str, bytes]] = field(default_factory=lambda: defaultdict(dict))
    latest: dict[tuple[str, str], str] = field(default_factory=dict)  # (stage, run id) -> latest record's reason
    latest_errors: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    first_seen: set[str] = field(default_factory=set)
    excluded: dict[str, str] = field(default_factory=dict)  # run id -> reason of its preference record  # runs whose pair candidate reached their window

    def send(self, source: str, effects) -> None:
        for effect in effects:
            if isinstance(effect, QuarantineRecord):
                self.latest[(effect.stage, effect.run_id)] = effect.reason
                self.latest_errors[(effect.stage, effect.run_id)] = effect.errors
            elif effect.topic in ("pair-candidates", "dedup-candidates"):
                self.channels[(source, effect.topic, effect.key)].append(loads(effect.value))
            elif effect.value is None:
                assert self.topics[effect.topic].pop(effect.key, None) is not None, f"tombstone for {effect.key}"
            else:
                self.topics[effect.topic][effect.key] = effect.value

    def deliver(self, channel) -> None:
        source, topic, key = channel
        message = self.channels[channel].popleft()
        if topic == "dedup-candidates":
            group_key = dedup.group_key(message)
            group, effects = dedup.apply_message(self.groups.get(group_key), message)
            self.groups[group_key] = group
            self.send(f"dedup:{key}", effects)
            return
        run = pairing.PairRun.from_dict(message["run"]) if message["run"] else None
        window = self.windows.setdefault(key, pairing.PairWindow(key, DAY_START))
        self.first_seen.add(message["run_id"])
        if not window.closed:
            self.windows[key] = pairing.admit(window, run) if run else pairing.withdraw(window, message["run_id"])
            return
        self.windows[key], changes = pairing.change_closed(window, run, message["run_id"], MAX_PAIRS, sample_content_key)
        self.send_plan(key, changes)

    def close(self, task: str) -> None:
        self.windows[task], changes = pairing.close(self.windows[task], MAX_PAIRS, sample_content_key)
        self.send_plan(task, changes)

    def send_plan(self, task: str, changes: pairing.PlanChanges) -> None:
        sources = dict.fromkeys(self.windows[task].runs, make_source().to_dict())
        self.send(f"pair:{task}", plan_effects(self.windows[task], changes, sources))
        for run in changes.excluded:
            self.excluded[run.run_id] = run.exclusion["reason"]

    def pending(self) -> list[tuple]:
        return [channel for channel, queue in self.channels.items() if queue]


def index_of(sets: set[str]) -> EvalIndex:
    return EvalIndex.build([item for name in sorted(sets) for item in EVAL_ITEMS[name]])


# ---------------------------------------------------------------- the property


@st.composite
def scenarios(draw):
    runs = draw(runs_strategy)
    steps = []
    for run in runs:
        steps.append(("evidence", run, None))
        steps += [("score", run, category) for category in run.categories]
    steps += [("sets", None, frozenset(draw(st.sets(st.sampled_from(sorted(EVAL_ITEMS))))))
              for _ in range(draw(st.integers(0, 3)))]
    steps += [("close", task, None) for task in {run.task_id for run in runs}]
    order = draw(st.permutations(range(len(steps))))
    # Each run's own events keep their order (Kafka orders per key): sort them back in place.
    per_run = defaultdict(list)
    for position in order:
        kind, run, _ = steps[position]
        if kind in ("evidence", "score"):
            per_run[run.run_id].append(position)
    slots = {run_id: sorted(positions) for run_id, positions in per_run.items()}
    cursor = defaultdict(int)
    ordered = []
    for position in order:
        kind, run, _ = steps[position]
        if kind in ("evidence", "score"):
            position = slots[run.run_id][cursor[run.run_id]]
            cursor[run.run_id] += 1
        ordered.append(steps[position])
    deliveries = draw(st.lists(st.integers(0, 50), min_size=len(ordered) * 4, max_size=len(ordered) * 4))
    return runs, ordered, deliveries


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_the_datasets_converge_to_the_batch_reference_whatever_the_order(scenario):
    runs, steps, deliveries = scenario
    sets: set[str] = set()
    pipeline = Pipeline(ContentGates(index=index_of(sets), dedup=True))
    task_runs = defaultdict(set)
    for run in runs:
        task_runs[run.task_id].add(run.run_id)
    choices = iter(deliveries)
    close_wanted: set[str] = set()

    def deliver_some() -> None:
        for _ in range(next(choices, 0) % 3):
            pending = pipeline.pending()
            if pending:
                pipeline.deliver(pending[next(choices, 0) % len(pending)])

    for offset, (kind, run, payload) in enumerate(steps):
        if kind == "sets":
            sets = set(payload)
            pipeline.gates = ContentGates(index=index_of(sets), dedup=True)
            for run_id, state in sorted(pipeline.runs.items()):  # the retroactive pass of every partition
                pipeline.runs[run_id], effects = rejudge(state, OPTIONS, frozenset(), pipeline.gates)
                pipeline.send(f"join:{run_id}", effects)
        elif kind == "close":
            close_wanted.add(run)  # stream time passes the window: it closes once every run of it came (none late)
        else:
            state = pipeline.runs.get(run.run_id, RunState())
            if kind == "evidence":
                obj = evidence_of(run)
                state, effects = on_evidence(state, EvidenceRecord.model_validate(obj), obj,
                                             make_source(offset=offset), OPTIONS, frozenset(), pipeline.gates)
            else:
                obj = score_of(run, payload)
                state, effects = on_score(state, ScoredRun.model_validate(obj), obj, make_source(offset=offset),
                                          OPTIONS, frozenset(), pipeline.gates)
            pipeline.runs[run.run_id] = state
            pipeline.send(f"join:{run.run_id}", effects)
        deliver_some()
        for task in sorted(close_wanted):
            window = pipeline.windows.get(task)
            if window and not window.closed and task_runs[task] <= pipeline.first_seen:
                pipeline.close(task)
    while pending := pipeline.pending():
        pipeline.deliver(pending[0])
    for task, window in list(pipeline.windows.items()):
        if not window.closed:
            pipeline.close(task)
    while pending := pipeline.pending():
        pipeline.deliver(pending[0])

    reference = expected([(evidence_of(run), score_of(run, run.categories[-1])) for run in runs],
                         [text for name in sets for item in EVAL_ITEMS[name] for text in item.fields.values()],
                         max_pairs=MAX_PAIRS)
    for topic, samples in reference.datasets.items():
        assert pipeline.topics[topic] == samples, topic
    # Each run's latest outcome per stage, as the books read it: the join's state, and for a
    # candidate its dedup group (the quarantine topic is history: a record of a candidate decided
    # while its withdrawal was on its way may come after the record of the run's new verdict).
    groups = {candidate: group for group in pipeline.groups.values() for candidate in group.candidates}
    for (stage, run_id), outcome_expected in reference.outcomes.items():
        outcome = pipeline.runs[run_id].outcomes[stage]
        if "reason" in outcome:
            got = outcome["reason"]
        else:
            group = groups[outcome["sample"]]
            got = "sample" if group.live == outcome["sample"] else "duplicate_content"
            if got == "duplicate_content":  # and its latest record names the sample kept
                assert pipeline.latest[(stage, run_id)] == "duplicate_content"
                assert group.live in pipeline.latest_errors[(stage, run_id)][0]
        assert got == outcome_expected, (stage, run_id)
        sample_id = f"{stage}-" + hashlib.sha256(f"{stage}|{run_id}".encode()).hexdigest()[:16]
        assert (sample_id in pipeline.topics[f"{stage}-samples"]) == (outcome_expected == "sample")
    for run_id, reason in reference.excluded.items():
        assert pipeline.excluded.get(run_id) == reason
