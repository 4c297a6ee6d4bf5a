"""The per-run join state machine of SPEC 3 and the re-scoring of SPEC 6, without Faust.

Each step returns ``(new state, effects)``; these tests feed events in the orders Kafka can
deliver them and read the effects the way the agent would send them.
"""

import pytest

from schemas import EvidenceRecord, QuarantineRecord, ScoredRun
from schemas.codec import dumps, encode, loads
from streams.rules.firewall import GateOptions, rag_outcome, sft_outcome
from streams.rules.join import Publish, RunState, on_evidence, on_join_timeout, on_score
from tests.unit.records import (
    RUN_ID,
    TASK_ID,
    expected_quarantine_id,
    expected_rag_id,
    expected_sft_id,
    make_evidence,
    make_score,
    make_source,
)

OPTIONS = GateOptions()
MANIFEST: frozenset[str] = frozenset()
EVIDENCE_SOURCE = make_source(topic="distill.evidence", offset=5, timestamp_ms=1_767_265_200_000)
SCORE_SOURCE = make_source(topic="distill.scored-runs", offset=9, timestamp_ms=1_767_267_000_123)


def evidence_step(state, obj, source=EVIDENCE_SOURCE, options=OPTIONS, manifest=MANIFEST):
    return on_evidence(state, EvidenceRecord.model_validate(obj), obj, source, options, manifest)


def score_step(state, obj, source=SCORE_SOURCE, options=OPTIONS, manifest=MANIFEST):
    return on_score(state, ScoredRun.model_validate(obj), obj, source, options, manifest)


def publishes(effects, topic=None):
    return [e for e in effects if isinstance(e, Publish) and (topic is None or e.topic == topic)]


def sample_publishes(effects):
    return [e for e in effects if isinstance(e, Publish) and e.topic in ("rag-samples", "sft-samples")]


def records(effects):
    return [e for e in effects if isinstance(e, QuarantineRecord)]


def joined(evidence=None, score=None):
    """A run joined from ``evidence`` and ``score`` (evidence first), with all its effects."""
    state, first = evidence_step(RunState(), evidence or make_evidence())
    state, second = score_step(state, score or make_score())
    return state, first + second


def expected_sample_bytes(evidence, score, options=OPTIONS, manifest=MANIFEST):
    ev, sc = EvidenceRecord.model_validate(evidence), ScoredRun.model_validate(score)
    return {
        "rag-samples": encode(rag_outcome(ev, sc, options, manifest)),
        "sft-samples": encode(sft_outcome(ev, sc, options, manifest)),
    }


# --- Arrival order -----------------------------------------------------------------------------


def test_either_arrival_order_gives_the_same_samples():
    evidence, score = make_evidence(), make_score()
    state_a, first_a = evidence_step(RunState(), evidence)
    state_a, second_a = score_step(state_a, score)
    state_b, first_b = score_step(RunState(), score)
    state_b, second_b = evidence_step(state_b, evidence)

    assert first_a == [] and first_b == []  # nothing happens before the run is joined
    assert sample_publishes(second_a) == sample_publishes(second_b)
    assert {(p.topic, p.key) for p in sample_publishes(second_a)} == {
        ("rag-samples", expected_rag_id(RUN_ID)), ("sft-samples", expected_sft_id(RUN_ID)),
    }
    assert {p.topic: p.value for p in sample_publishes(second_a)} == expected_sample_bytes(evidence, score)
    assert state_a.outcomes == state_b.outcomes
    assert state_a.joined and state_b.joined


def test_either_arrival_order_gives_the_same_quarantine_records():
    evidence, score = make_evidence(), make_score(category="rejected")
    _, effects_a = joined(evidence, score)
    state_b, _ = score_step(RunState(), score)
    _, effects_b = evidence_step(state_b, evidence)
    assert sorted((r.id, r.stage, r.reason) for r in records(effects_a)) == sorted(
        (r.id, r.stage, r.reason) for r in records(effects_b))
    assert {(r.stage, r.reason) for r in records(effects_a)} == {
        ("rag", "unsafe_rag_category"), ("sft", "unsafe_sft_category"),
    }
    assert sample_publishes(effects_a) == sample_publishes(effects_b) == []


def test_first_outcome_of_a_rejected_run_is_a_quarantine_record_per_stage():
    score = make_score(category="rejected")
    state, effects = joined(score=score)
    by_stage = {r.stage: r for r in records(effects)}
    assert set(by_stage) == {"rag", "sft"}
    for stage, reason in (("rag", "unsafe_rag_category"), ("sft", "unsafe_sft_category")):
        record = by_stage[stage]
        assert record.id == expected_quarantine_id(stage, reason, RUN_ID)
        assert record.reason == reason
        assert record.run_id == RUN_ID and record.task_id == TASK_ID
        assert record.source_record == score
        assert record.raw is None
        assert (record.source.topic, record.source.offset) == ("distill.scored-runs", 9)
        assert record.recorded_at == "2026-01-01T11:30:00.123Z"
        assert state.outcomes[stage] == {"reason": reason}


# --- Redelivery and duplicates -----------------------------------------------------------------


@pytest.mark.parametrize("joined_first", [False, True])
def test_identical_evidence_redelivery_is_a_no_op(joined_first):
    state, _ = joined() if joined_first else evidence_step(RunState(), make_evidence())
    again, effects = evidence_step(state, make_evidence(), source=make_source(topic="distill.evidence", offset=99))
    assert effects == []
    assert again == state


@pytest.mark.parametrize("joined_first", [False, True])
def test_different_second_evidence_is_duplicate_id_and_the_first_stands(joined_first):
    first = make_evidence()
    second = make_evidence(text="A completely different answer.", source_files=[])
    state, _ = joined(first) if joined_first else evidence_step(RunState(), first)
    dup_source = make_source(topic="distill.evidence", offset=77, key=RUN_ID)
    after, effects = evidence_step(state, second, source=dup_source)

    assert after == state
    assert len(effects) == 1
    (record,) = effects
    assert isinstance(record, QuarantineRecord)
    assert (record.stage, record.reason) == ("input", "duplicate_id")
    assert record.id == expected_quarantine_id("input", "duplicate_id", RUN_ID)
    assert record.source_record == second
    assert record.run_id == RUN_ID and record.task_id == TASK_ID
    assert (record.source.topic, record.source.offset, record.source.key) == ("distill.evidence", 77, RUN_ID)

    if not joined_first:  # the score that comes later joins with the first evidence
        _, effects = score_step(after, make_score())
        assert {p.topic: p.value for p in sample_publishes(effects)} == expected_sample_bytes(first, make_score())


def test_identical_score_redelivery_is_a_no_op():
    state, _ = joined()
    again, effects = score_step(state, make_score(), source=make_source(offset=100))
    assert effects == []
    assert again == state


def test_identical_score_redelivery_before_the_join_is_a_no_op():
    state, _ = score_step(RunState(), make_score())
    again, effects = score_step(state, make_score(), source=make_source(offset=100))
    assert effects == [] and again == state


# --- Re-scoring --------------------------------------------------------------------------------


def test_rescore_to_rejected_retracts_both_samples_with_tombstones_and_records():
    state, _ = joined()
    rejected = make_score(category="rejected", scored_at="2026-01-02T09:00:00Z")
    state, effects = score_step(state, rejected, source=make_source(offset=10))

    tombstones = {(p.topic, p.key) for p in sample_publishes(effects) if p.value is None}
    assert tombstones == {("rag-samples", expected_rag_id(RUN_ID)), ("sft-samples", expected_sft_id(RUN_ID))}
    assert all(p.value is None for p in sample_publishes(effects))
    by_stage = {r.stage: r for r in records(effects)}
    assert len(records(effects)) == 2
    for stage, reason, sample_id in (
        ("rag", "unsafe_rag_category", expected_rag_id(RUN_ID)),
        ("sft", "unsafe_sft_category", expected_sft_id(RUN_ID)),
    ):
        record = by_stage[stage]
        assert record.reason == reason
        assert record.id == expected_quarantine_id(stage, reason, RUN_ID)
        assert any(sample_id in error for error in record.errors), record.errors
        assert record.source_record == rejected
        assert record.source.offset == 10
        assert state.outcomes[stage] == {"reason": reason}


def test_each_tombstone_comes_before_the_record_that_explains_it():
    state, _ = joined()
    _, effects = score_step(state, make_score(category="rejected"))
    for stage, topic in (("rag", "rag-samples"), ("sft", "sft-samples")):
        tomb = next(i for i, e in enumerate(effects) if isinstance(e, Publish) and e.topic == topic)
        rec = next(i for i, e in enumerate(effects) if isinstance(e, QuarantineRecord) and e.stage == stage)
        assert tomb < rec


def test_rescore_to_needs_human_review_retracts_only_sft_by_default():
    state, _ = joined()
    state, effects = score_step(state, make_score(category="needs_human_review"))
    assert {(p.topic, p.value) for p in sample_publishes(effects)} == {
        ("rag-samples", None), ("sft-samples", None),
    }
    assert {(r.stage, r.reason) for r in records(effects)} == {
        ("rag", "category_disallowed"), ("sft", "unsafe_sft_category"),
    }


def test_rescore_to_needs_human_review_keeps_rag_with_include_review():
    options = GateOptions(include_review=True)
    state, _ = evidence_step(RunState(), make_evidence(), options=options)
    state, _ = score_step(state, make_score(), options=options)
    review = make_score(category="needs_human_review")
    state, effects = score_step(state, review, options=options)
    rag = publishes(effects, "rag-samples")
    assert len(rag) == 1 and rag[0].value is not None
    assert loads(rag[0].value)["quality"] == "needs_human_review"
    assert publishes(effects, "sft-samples") == [Publish("sft-samples", expected_sft_id(RUN_ID), None)]
    assert [(r.stage, r.reason) for r in records(effects)] == [("sft", "unsafe_sft_category")]


def test_rescore_back_to_accepted_re_emits_the_samples():
    state, _ = joined()
    state, _ = score_step(state, make_score(category="rejected", scored_at="2026-01-02T00:00:00Z"))
    accepted_again = make_score(scored_at="2026-01-03T00:00:00Z", reasons=["fixed on review"])
    state, effects = score_step(state, accepted_again)

    assert records(effects) == []
    assert {p.topic: p.value for p in sample_publishes(effects)} == expected_sample_bytes(
        make_evidence(), accepted_again)
    assert {(p.topic, p.key) for p in sample_publishes(effects)} == {
        ("rag-samples", expected_rag_id(RUN_ID)), ("sft-samples", expected_sft_id(RUN_ID)),
    }
    assert "sample" in state.outcomes["rag"] and "sample" in state.outcomes["sft"]


@pytest.mark.parametrize("category", ["accepted", "rejected"])
def test_rescore_with_the_same_verdict_emits_nothing_new(category):
    state, _ = joined(score=make_score(category=category))
    # Same category, same time and provenance: only fields no sample reads differ.
    same = make_score(category=category, reasons=["fixes the bug", "second opinion"], grader="other")
    after, effects = score_step(state, same, source=make_source(offset=50))
    assert sample_publishes(effects) == [] and records(effects) == []
    assert after.outcomes == state.outcomes
    # The candidate names the new score message as its source; what pairing reads of the run is unchanged.
    previous = loads(publishes(joined(score=make_score(category=category))[1], "pair-candidates")[0].value)
    for candidate in publishes(effects, "pair-candidates"):
        assert loads(candidate.value)["run"] == previous["run"]
    # Delivered at the original coordinates (a replay of a changed record), it is silent altogether.
    assert score_step(state, same)[1] == []


def test_rescore_rejected_again_later_adds_no_second_record():
    state, _ = joined(score=make_score(category="rejected"))
    later = make_score(category="rejected", scored_at="2026-01-05T00:00:00Z", reasons=["still wrong"])
    _, effects = score_step(state, later)
    assert records(effects) == []
    assert sample_publishes(effects) == []


def test_rescore_with_a_new_time_refreshes_created_at_in_place():
    state, _ = joined()
    later = make_score(scored_at="2026-01-05T00:00:00Z")
    _, effects = score_step(state, later)
    assert records(effects) == []
    assert {(p.topic, p.key) for p in sample_publishes(effects)} == {
        ("rag-samples", expected_rag_id(RUN_ID)), ("sft-samples", expected_sft_id(RUN_ID)),
    }
    assert all(loads(p.value)["created_at"] == "2026-01-05T00:00:00Z" for p in sample_publishes(effects))


def test_rescore_between_two_rejection_reasons_records_the_new_one():
    state, _ = joined(score=make_score(category="partially_accepted"))
    assert state.outcomes["sft"] == {"reason": "category_disallowed"}
    state, effects = score_step(state, make_score(category="rejected"))
    assert {(r.stage, r.reason) for r in records(effects)} == {
        ("sft", "unsafe_sft_category"), ("rag", "unsafe_rag_category"),
    }
    sft_record = next(r for r in records(effects) if r.stage == "sft")
    assert not any("retracted" in error for error in sft_record.errors)  # nothing was live to retract
    assert publishes(effects, "sft-samples") == []
    assert publishes(effects, "rag-samples") == [Publish("rag-samples", expected_rag_id(RUN_ID), None)]


# --- Join timeout ------------------------------------------------------------------------------


def test_join_timeout_quarantines_a_pending_run_once():
    score = make_score()
    state, _ = score_step(RunState(), score)
    assert state.pending
    state, effects = on_join_timeout(state)
    assert len(effects) == 1
    (record,) = effects
    assert (record.stage, record.reason) == ("join", "missing_source_run_id")
    assert record.id == expected_quarantine_id("join", "missing_source_run_id", RUN_ID)
    assert record.run_id == RUN_ID and record.task_id == TASK_ID
    assert record.source_record == score
    assert (record.source.topic, record.source.offset) == ("distill.scored-runs", 9)
    assert record.recorded_at == "2026-01-01T11:30:00.123Z"

    again, effects = on_join_timeout(state)
    assert effects == [] and again == state


def test_join_timeout_does_nothing_without_a_score_or_once_joined():
    assert on_join_timeout(RunState()) == (RunState(), [])
    evidence_only, _ = evidence_step(RunState(), make_evidence())
    assert on_join_timeout(evidence_only) == (evidence_only, [])
    state, _ = joined()
    assert on_join_timeout(state) == (state, [])


def test_rescore_while_pending_after_timeout_is_not_quarantined_again():
    state, _ = score_step(RunState(), make_score())
    state, _ = on_join_timeout(state)
    state, effects = score_step(state, make_score(category="rejected"))
    assert effects == []
    assert on_join_timeout(state)[1] == []


def test_evidence_after_the_timeout_joins_the_run_normally():
    score = make_score()
    state, _ = score_step(RunState(), score)
    state, _ = on_join_timeout(state)
    state, effects = evidence_step(state, make_evidence())
    assert state.joined and not state.pending
    assert records(effects) == []  # the join record stays as history, nothing retracts it
    assert {p.topic: p.value for p in sample_publishes(effects)} == expected_sample_bytes(make_evidence(), score)
    assert len(publishes(effects, "pair-candidates")) == 1


# --- Pair candidates ---------------------------------------------------------------------------


def test_pair_candidate_is_published_once_per_change_keyed_by_task():
    state, effects = evidence_step(RunState(), make_evidence())
    assert publishes(effects, "pair-candidates") == []
    state, effects = score_step(state, make_score())
    (candidate,) = publishes(effects, "pair-candidates")
    assert candidate.key == TASK_ID
    body = loads(candidate.value)
    assert body["run_id"] == RUN_ID
    assert body["run"]["category"] == "accepted"

    state, effects = score_step(state, make_score())  # redelivery
    assert publishes(effects, "pair-candidates") == []
    state, effects = evidence_step(state, make_evidence(text="other"))  # duplicate evidence
    assert publishes(effects, "pair-candidates") == []

    state, effects = score_step(state, make_score(category="rejected"))
    (candidate,) = publishes(effects, "pair-candidates")
    assert candidate.key == TASK_ID and loads(candidate.value)["run"]["category"] == "rejected"


def test_pair_candidate_of_a_run_that_may_not_pair_is_null():
    _, effects = joined(evidence=make_evidence(text="   "))
    (candidate,) = publishes(effects, "pair-candidates")
    assert loads(candidate.value)["run"] is None


def test_pair_candidates_carry_the_first_scored_at_of_each_task():
    """Pairing finds a re-scored run's window from where its first candidate of the task went."""
    first = ScoredRun.model_validate(make_score()).scored_at_epoch
    state, effects = joined()
    assert loads(publishes(effects, "pair-candidates")[0].value)["first_scored_at"] == {TASK_ID: first}
    state, effects = score_step(state, make_score(category="rejected", scored_at="2026-01-03T08:00:00Z"))
    assert loads(publishes(effects, "pair-candidates")[0].value)["first_scored_at"] == {TASK_ID: first}
    later = ScoredRun.model_validate(make_score(scored_at="2026-01-04T08:00:00Z")).scored_at_epoch
    _, effects = score_step(state, make_score(evidence_task_id="task-2", scored_at="2026-01-04T08:00:00Z"))
    assert loads(publishes(effects, "pair-candidates")[0].value)["first_scored_at"] == {TASK_ID: first, "task-2": later}


def test_a_run_that_may_not_pair_adds_no_first_scored_at():
    state, effects = joined(evidence=make_evidence(text="   "))
    assert loads(publishes(effects, "pair-candidates")[0].value)["first_scored_at"] == {}
    assert state.first_scored_at == {}


# --- State storage -----------------------------------------------------------------------------


def test_only_states_without_evidence_may_be_pending_by_their_bytes():
    """The scan that rebuilds the waiting scores after a rebalance decodes only these rows."""
    waiting, _ = score_step(RunState(), make_score())
    evidence_only, _ = evidence_step(RunState(), make_evidence())
    both, _ = joined()
    assert waiting.pending and RunState.may_be_pending(waiting.encode())
    assert not RunState.may_be_pending(evidence_only.encode())
    assert not RunState.may_be_pending(both.encode())


def test_state_survives_a_json_round_trip_between_events():
    """The agent stores the state as JSON in a table; decisions must not depend on object identity."""
    def stored(state):
        return RunState.from_dict(loads(dumps(state.to_dict())))

    state, _ = evidence_step(RunState(), make_evidence())
    state, _ = score_step(stored(state), make_score())
    state = stored(state)
    assert evidence_step(state, make_evidence())[1] == []
    assert score_step(state, make_score())[1] == []
    _, effects = score_step(state, make_score(category="rejected"))
    assert len([p for p in sample_publishes(effects) if p.value is None]) == 2

