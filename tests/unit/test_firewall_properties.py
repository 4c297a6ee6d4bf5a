"""Property tests: the firewall against a plain reading of SPEC 4-5, and the join under any
arrival order, redelivery, duplicate, re-score and timeout.

The join effects are replayed the way a compacted topic keeps them (a Publish with a value
sets the sample, a tombstone removes it) and the resulting datasets are checked against the
safety rules and against one evaluation of (first evidence, latest score).
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import EvidenceRecord, QuarantineRecord, ScoredRun
from schemas.codec import dumps, encode, loads
from streams.rules.firewall import GateOptions, Rejection, rag_outcome, sft_outcome
from streams.rules.join import Publish, RunState, on_evidence, on_join_timeout, on_score
from streams.rules.pairing import pair_run_from
from tests.unit.records import (
    ABSENT,
    expected_quarantine_id,
    expected_rag_id,
    expected_sft_id,
    make_evidence,
    make_provenance,
    make_score,
    make_score_provenance,
    make_source,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CATEGORIES = ["accepted", "partially_accepted", "rejected", "needs_human_review"]
GOOD_PATHS = ["src/a.py", "src/b.py", "README.md", "docs/guide.md", "deep/x/y/z.txt", "with space.md"]
BAD_PATHS = ["/etc/passwd", "/src/a.py", "../a.py", "src/../a.py", "src\\a.py", "C:/a.py", "D:\\a.py", "a\x00.py"]
WHITESPACE = " \t\n\r\u00a0\u2003\u3000"
STAGE_TOPIC = {"rag": "rag-samples", "sft": "sft-samples"}
TOPIC_STAGE = {topic: stage for stage, topic in STAGE_TOPIC.items()}

# --- Strategies ---------------------------------------------------------------------------------

run_ids = st.sampled_from(["run-1", "run-2", "r/3", "ünïcode run"])
task_ids = st.sampled_from(["task-1", "task-2"])
# Random relative paths; ':' is left out so "absolute" has one reading (leading '/' or a drive letter).
random_paths = st.text(alphabet="abz09_-./\\ ", min_size=1, max_size=12)
paths = st.one_of(st.sampled_from(GOOD_PATHS), st.sampled_from(BAD_PATHS), random_paths)
# Mostly clean file lists, so that enough runs reach the later gates and become samples.
clean_file_lists = st.lists(st.sampled_from(GOOD_PATHS), max_size=3)
file_lists = st.one_of(clean_file_lists, clean_file_lists, st.lists(paths, max_size=3))
manifests = st.one_of(st.just(frozenset()), st.just(frozenset(GOOD_PATHS)),
                      st.frozensets(st.sampled_from(GOOD_PATHS + ["other.py"]), min_size=1))
options_strategy = st.builds(GateOptions, include_partial=st.booleans(), include_review=st.booleans())
content = st.one_of(st.sampled_from(["Use a bounded queue.", "Retry with backoff", "x"]),
                    st.text(min_size=1, max_size=40))
texts = st.one_of(
    st.text(alphabet=WHITESPACE, max_size=6),  # whitespace only (or empty)
    content,
    st.tuples(st.text(alphabet=WHITESPACE, max_size=3), content,
              st.text(alphabet=WHITESPACE, max_size=3)).map("".join),
)
timestamps = st.builds(
    lambda moment, tz, zulu: (moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z") if zulu
                              else moment.replace(tzinfo=tz).isoformat()),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1)),
    st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]),
    st.booleans(),
)


@st.composite
def provenances(draw, side: str):
    """Absent, null, complete, or with some fields empty or missing; sometimes with extras."""
    shape = draw(st.sampled_from(["absent", "null", "partial"] + ["complete"] * 8))  # mostly complete
    if shape == "absent":
        return ABSENT
    if shape == "null":
        return None
    value = {"source_file": f"logs/{side}.jsonl", "line_offset": draw(st.integers(0, 500)),
             "sig_hash": f"sig-{side}", "recorded_at": "2026-01-01T00:00:00Z"}
    if shape == "partial":
        for name in ("source_file", "sig_hash", "recorded_at", "line_offset"):
            choice = draw(st.sampled_from(["keep", "empty", "missing"]))
            if choice == "missing":
                del value[name]
            elif choice == "empty" and name != "line_offset":
                value[name] = ""
    if draw(st.booleans()):
        value["x_extra"] = draw(st.sampled_from(["EXTRA-VALUE", 7, {"nested": True}]))
    return value


@st.composite
def evidences(draw, run_id: str, task_id: str):
    extra = {"x_note": "EXTRA-EVIDENCE"} if draw(st.booleans()) else {}
    clean = draw(st.booleans())  # half the records pass every later gate, so categories decide
    return make_evidence(
        run_id=run_id, task_id=task_id, text=draw(content if clean else texts),
        source_category=draw(st.sampled_from(["scrum_reviews", "observer_reviews", "mode_experiments"])),
        source_files=draw(clean_file_lists if clean else file_lists),
        provenance=make_provenance(source_file="logs/evidence.jsonl") if clean else draw(provenances("evidence")),
        **extra,
    )


@st.composite
def scores(draw, run_id: str, task_id: str):
    extra = {"x_grader": "EXTRA-SCORE"} if draw(st.booleans()) else {}
    return make_score(
        evidence_run_id=run_id, evidence_task_id=task_id, category=draw(st.sampled_from(CATEGORIES)),
        reasons=draw(st.lists(st.sampled_from(["ok", "wrong file", "style"]), max_size=2)),
        provenance=make_score_provenance() if draw(st.booleans()) else draw(provenances("score")),
        scored_at=draw(timestamps), **extra,
    )


@st.composite
def pairs(draw):
    run_id, task_id = draw(run_ids), draw(task_ids)
    return draw(evidences(run_id, task_id)), draw(scores(run_id, task_id))


@st.composite
def histories(draw):
    """One run's input events in a random order: evidence (with duplicates and redeliveries),
    several scores (with redeliveries), and join timeouts anywhere."""
    run_id, task_id = draw(run_ids), draw(task_ids)
    evidence_pool = draw(st.lists(evidences(run_id, task_id), min_size=1, max_size=3))
    score_pool = draw(st.lists(scores(run_id, task_id), min_size=1, max_size=4))
    extra_events = draw(st.lists(
        st.one_of(
            st.tuples(st.just("evidence"), st.sampled_from(evidence_pool)),
            st.tuples(st.just("score"), st.sampled_from(score_pool)),
            st.tuples(st.just("timeout"), st.none()),
        ),
        max_size=12,
    ))
    # Most histories hold at least one evidence and one score somewhere; some are left to chance.
    joinable = draw(st.sampled_from([True, True, True, False]))
    base = [("evidence", evidence_pool[0]), ("score", score_pool[0])] if joinable else []
    events = draw(st.permutations(base + extra_events))
    if not events:
        events = [("timeout", None)]
    return run_id, task_id, events


# --- The firewall against the SPEC's wording ---------------------------------------------------


def spec_reason(stage: str, evidence: dict, score: dict, options: GateOptions, manifest) -> str | None:
    """SPEC 4, gates 1-4, written from the text; None means the run passes."""
    category = score["category"]
    if stage == "sft":
        if category in ("rejected", "needs_human_review"):
            return "unsafe_sft_category"
        if category == "partially_accepted" and not options.include_partial:
            return "category_disallowed"
    else:
        if category == "rejected":
            return "unsafe_rag_category"
        if category == "needs_human_review" and not options.include_review:
            return "category_disallowed"
    for record in (evidence, score):
        provenance = record.get("provenance")
        if not provenance or not all(provenance.get(n) for n in ("source_file", "sig_hash", "recorded_at")):
            return "missing_provenance"
    if not evidence["text"].strip():
        return "empty_content"
    for path in evidence["source_files"]:
        absolute = path.startswith("/") or re.match(r"^[A-Za-z]:", path)
        if absolute or ".." in path or "\\" in path or "\x00" in path or (manifest and path not in manifest):
            return "hallucinated_file_path"
    return None


def spec_sample(stage: str, evidence: dict, score: dict) -> dict:
    """SPEC 5, the sample a passing run gets, as JSON."""
    provenance = {n: score["provenance"].get(n, default)
                  for n, default in (("source_file", ""), ("line_offset", 0), ("sig_hash", ""), ("recorded_at", ""))}
    text = evidence["text"].strip()
    if stage == "rag":
        return {
            "schema_version": 1, "id": expected_rag_id(evidence["run_id"]), "run_id": evidence["run_id"],
            "task_id": evidence["task_id"], "text": text, "source_category": evidence["source_category"],
            "source_files": evidence["source_files"], "quality": score["category"],
            "created_at": score["scored_at"], "provenance": provenance,
        }
    files = evidence["source_files"]
    prompt = f"Task: {evidence['task_id']}" + (f" · file={files[0]}" if files else "")
    return {
        "schema_version": 1, "id": expected_sft_id(evidence["run_id"]), "run_id": evidence["run_id"],
        "task_id": evidence["task_id"],
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}],
        "quality_score": score["category"], "created_at": score["scored_at"], "provenance": provenance,
    }


@PROPERTY_SETTINGS
@given(pair=pairs(), options=options_strategy, manifest=manifests)
def test_firewall_outcome_is_the_spec_outcome(pair, options, manifest):
    evidence, score = pair
    ev, sc = EvidenceRecord.model_validate(evidence), ScoredRun.model_validate(score)
    for stage, gate in (("rag", rag_outcome), ("sft", sft_outcome)):
        outcome = gate(ev, sc, options, manifest)
        expected = spec_reason(stage, evidence, score, options, manifest)
        if expected is None:
            assert not isinstance(outcome, Rejection), (stage, outcome)
            raw = encode(outcome)
            assert loads(raw) == spec_sample(stage, evidence, score)
            for marker in (b"EXTRA-VALUE", b"EXTRA-EVIDENCE", b"EXTRA-SCORE", b"x_note", b"x_grader", b"x_extra"):
                assert marker not in raw  # exact equality above already rules out extra keys
        else:
            assert isinstance(outcome, Rejection) and outcome.reason == expected, (stage, outcome, expected)
            assert outcome.errors


@PROPERTY_SETTINGS
@given(pair=pairs(), options=options_strategy, manifest=manifests)
def test_no_option_lets_an_unsafe_category_through(pair, options, manifest):
    evidence, score = pair
    ev, sc = EvidenceRecord.model_validate(evidence), ScoredRun.model_validate(score)
    if sc.category in ("rejected", "needs_human_review"):
        assert sft_outcome(ev, sc, options, manifest).reason == "unsafe_sft_category"
    if sc.category == "rejected":
        assert rag_outcome(ev, sc, options, manifest).reason == "unsafe_rag_category"


# --- The join under any history ----------------------------------------------------------------


@dataclass
class Datasets:
    """The output topics as a compacted topic keeps them, plus what the checks need to know."""

    live: dict[tuple[str, str], bytes] = field(default_factory=dict)
    last_stage_event: dict[str, tuple[str, str]] = field(default_factory=dict)  # stage -> (kind, id or reason)
    records: list[QuarantineRecord] = field(default_factory=list)
    candidates: list[Publish] = field(default_factory=list)

    def apply(self, effects) -> None:
        for effect in effects:
            if isinstance(effect, QuarantineRecord):
                self.records.append(effect)
                if effect.stage in STAGE_TOPIC:
                    self.last_stage_event[effect.stage] = ("reason", effect.reason)
            elif effect.topic == "pair-candidates":
                self.candidates.append(effect)
            elif effect.value is None:
                assert (effect.topic, effect.key) in self.live, f"tombstone for a sample that is not live: {effect}"
                del self.live[(effect.topic, effect.key)]
            else:
                self.live[(effect.topic, effect.key)] = effect.value
                self.last_stage_event[TOPIC_STAGE[effect.topic]] = ("sample", effect.key)


def stored(state: RunState) -> RunState:
    """The state as the agent keeps it: JSON in a table."""
    return RunState.from_dict(loads(dumps(state.to_dict())))


def assert_safe(datasets: Datasets, latest_score: dict | None) -> None:
    if latest_score is None:
        return
    sft_live = [key for topic, key in datasets.live if topic == "sft-samples"]
    rag_live = [key for topic, key in datasets.live if topic == "rag-samples"]
    if latest_score["category"] in ("rejected", "needs_human_review"):
        assert not sft_live, f"{latest_score['category']} run has a live SFT sample"
    if latest_score["category"] == "rejected":
        assert not rag_live, "rejected run has a live RAG sample"


def replay_single(evidence: dict, score: dict, options, manifest) -> Datasets:
    datasets = Datasets()
    state, effects = on_evidence(RunState(), EvidenceRecord.model_validate(evidence), evidence,
                                 make_source(topic="distill.evidence"), options, manifest)
    datasets.apply(effects)
    _, effects = on_score(state, ScoredRun.model_validate(score), score, make_source(), options, manifest)
    datasets.apply(effects)
    return datasets


@PROPERTY_SETTINGS
@given(history=histories(), options=options_strategy, manifest=manifests)
def test_join_keeps_the_datasets_safe_and_consistent_under_any_history(history, options, manifest):
    run_id, task_id, events = history
    state, datasets = RunState(), Datasets()
    first_evidence = latest_score = None
    expected_duplicates = expected_timeouts = 0

    for offset, (kind, obj) in enumerate(events):
        state = stored(state)
        if kind == "evidence":
            source = make_source(topic="distill.evidence", offset=offset, key=run_id)
            state, effects = on_evidence(state, EvidenceRecord.model_validate(obj), obj, source, options, manifest)
            if first_evidence is None:
                first_evidence = obj
            elif obj != first_evidence:
                expected_duplicates += 1
        elif kind == "score":
            source = make_source(offset=offset, key=run_id)
            state, effects = on_score(state, ScoredRun.model_validate(obj), obj, source, options, manifest)
            latest_score = obj
        else:
            if latest_score is not None and first_evidence is None and expected_timeouts == 0:
                expected_timeouts = 1
            state, effects = on_join_timeout(state)
        datasets.apply(effects)
        assert_safe(datasets, latest_score)  # after every step, not only at the end

    # Quarantine records: right ids, one duplicate_id per differing evidence, at most one join record.
    for record in datasets.records:
        assert record.id == expected_quarantine_id(record.stage, record.reason, run_id)
        assert record.run_id == run_id
    by_reason = [(r.stage, r.reason) for r in datasets.records]
    assert by_reason.count(("input", "duplicate_id")) == expected_duplicates
    assert by_reason.count(("join", "missing_source_run_id")) == expected_timeouts
    assert {r.stage for r in datasets.records} <= {"input", "join", "rag", "sft"}

    is_joined = first_evidence is not None and latest_score is not None
    assert state.joined == is_joined
    if not is_joined:
        assert datasets.live == {} and state.outcomes == {} and datasets.candidates == []
        assert not [r for r in datasets.records if r.stage in STAGE_TOPIC]
        return

    # Exactly one outcome per stage: a live sample XOR its latest quarantine record.
    for stage, topic in STAGE_TOPIC.items():
        outcome = state.outcomes[stage]
        assert set(outcome) in ({"sample", "digest"}, {"reason"}), outcome
        live_keys = [key for t, key in datasets.live if t == topic]
        if "sample" in outcome:
            assert live_keys == [outcome["sample"]]
            assert datasets.last_stage_event[stage] == ("sample", outcome["sample"])
        else:
            assert live_keys == []
            assert datasets.last_stage_event[stage] == ("reason", outcome["reason"])

    # The live samples are those of one evaluation of (first evidence, latest score).
    ev, sc = EvidenceRecord.model_validate(first_evidence), ScoredRun.model_validate(latest_score)
    expected_live = {}
    for stage, gate in (("rag", rag_outcome), ("sft", sft_outcome)):
        outcome = gate(ev, sc, options, manifest)
        if isinstance(outcome, Rejection):
            assert state.outcomes[stage] == {"reason": outcome.reason}
        else:
            expected_live[(STAGE_TOPIC[stage], outcome.id)] = encode(outcome)
    assert datasets.live == expected_live
    assert datasets.live == replay_single(first_evidence, latest_score, options, manifest).live

    # Pair candidates: keyed by task, one per change, the last one describing the run as it now is.
    assert all(c.key == task_id for c in datasets.candidates)
    values = [c.value for c in datasets.candidates]
    assert all(a != b for a, b in zip(values, values[1:])), "the same candidate was sent twice in a row"
    run = pair_run_from(ev, sc)
    assert loads(values[-1])["run"] == (loads(dumps(run.to_dict())) if run else None)
