"""The join of SPEC section 3 and the per-stage outcomes of section 4, as a pure state machine.

One ``RunState`` per run id lives in a RocksDB table. Each input event becomes
``(new state, effects)``; the agent stores the state and sends the effects. Keeping the
decisions here, away from Faust, lets unit and property tests drive every arrival order.
"""

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from schemas import EvidenceRecord, ScoredRun
from schemas.codec import dumps, encode, loads
from schemas.quarantine_record import QuarantineRecord
from streams.rules.firewall import GateOptions, Manifest, Rejection, rag_outcome, sft_outcome
from streams.rules.pairing import pair_run_from
from streams.rules.quarantine import SourceMessage, quarantine_record

OutputTopic = Literal["rag-samples", "sft-samples", "preference-pairs", "pair-candidates"]
STAGE_TOPICS: dict[str, OutputTopic] = {"rag": "rag-samples", "sft": "sft-samples"}


@dataclass(frozen=True)
class Publish:
    """A message for an output topic; ``value`` None is a tombstone (the sample is retracted)."""

    topic: OutputTopic
    key: str
    value: bytes | None


Effect = Publish | QuarantineRecord


@dataclass(frozen=True)
class RunState:
    """What is known of one run. ``outcomes`` maps a stage to ``{"sample": id, "digest": ...}``
    or ``{"reason": ...}``: the latest outcome, so a re-score can tell what changed."""

    evidence: dict[str, Any] | None = None
    score: dict[str, Any] | None = None
    score_source: dict[str, Any] | None = None
    outcomes: dict[str, dict[str, str]] = field(default_factory=dict)
    join_quarantined: bool = False
    pair_candidate: str | None = None  # the last candidate sent to pairing, to skip repeats
    # Task id -> scored_at of the first candidate with a run sent for that task: the window
    # holding that instant is the one pairing admitted the run to (unless it came late).
    first_scored_at: dict[str, float] = field(default_factory=dict)

    @property
    def joined(self) -> bool:
        return self.evidence is not None and self.score is not None

    @property
    def pending(self) -> bool:
        return self.score is not None and self.evidence is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence,
            "score": self.score,
            "score_source": self.score_source,
            "outcomes": self.outcomes,
            "join_quarantined": self.join_quarantined,
            "pair_candidate": self.pair_candidate,
            "first_scored_at": self.first_scored_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "RunState":
        return cls(**data) if data else cls()

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> "RunState":
        return cls.from_dict(loads(raw))

    @staticmethod
    def may_be_pending(raw: bytes) -> bool:
        """False for an encoded state that has evidence, without decoding it: a scan for the
        waiting scores of a partition decodes the few rows that may be waiting, not all."""
        return raw.startswith(_NO_EVIDENCE)


# ``encode`` writes the evidence first (``to_dict``'s order): rows without evidence start so.
_NO_EVIDENCE = b'{"evidence":null,'


def on_evidence(
    state: RunState, evidence: EvidenceRecord, obj: dict[str, Any], source: SourceMessage,
    options: GateOptions, manifest: Manifest,
) -> tuple[RunState, list[Effect]]:
    """Evidence arrived. The first one stands; a different second one is a ``duplicate_id``."""
    if state.evidence is not None:
        if state.evidence == obj:
            return state, []  # identical redelivery
        return state, [quarantine_record(
            stage="input", reason="duplicate_id", subject=evidence.run_id,
            errors=[f"run {evidence.run_id!r} already has different evidence; the first one stands"],
            source=source, run_id=evidence.run_id, task_id=evidence.task_id, source_record=obj,
            source_provenance=evidence.provenance,
        )]
    state = replace(state, evidence=obj)
    return _evaluate(state, options, manifest, evidence=evidence) if state.joined else (state, [])


def on_score(
    state: RunState, score: ScoredRun, obj: dict[str, Any], source: SourceMessage,
    options: GateOptions, manifest: Manifest,
) -> tuple[RunState, list[Effect]]:
    """A score arrived: the latest one wins and the run is evaluated again if joined."""
    if state.score == obj:
        return state, []  # identical redelivery
    state = replace(state, score=obj, score_source=source.to_dict())
    return _evaluate(state, options, manifest, score=score) if state.joined else (state, [])


def on_join_timeout(state: RunState) -> tuple[RunState, list[Effect]]:
    """Stream time passed the score's join deadline and the evidence is still missing."""
    if not state.pending or state.join_quarantined:
        return state, []
    score = ScoredRun.model_validate(state.score)
    record = quarantine_record(
        stage="join", reason="missing_source_run_id", subject=score.evidence_run_id,
        errors=[f"no evidence for run {score.evidence_run_id!r} within the join timeout of its score"],
        source=SourceMessage.from_dict(state.score_source), run_id=score.evidence_run_id,
        task_id=score.evidence_task_id, source_record=state.score, source_provenance=score.provenance,
    )
    return replace(state, join_quarantined=True), [record]


def _evaluate(
    state: RunState, options: GateOptions, manifest: Manifest,
    evidence: EvidenceRecord | None = None, score: ScoredRun | None = None,
) -> tuple[RunState, list[Effect]]:
    """The gates on the joined run; the record that just came is passed as the model it was
    decoded into (the stored objects are those models dumped, so validating them again
    gives the same model)."""
    evidence = evidence or EvidenceRecord.model_validate(state.evidence)
    score = score or ScoredRun.model_validate(state.score)
    source = SourceMessage.from_dict(state.score_source)
    outcomes = dict(state.outcomes)
    effects: list[Effect] = []
    for stage, outcome in (
        ("rag", rag_outcome(evidence, score, options, manifest)),
        ("sft", sft_outcome(evidence, score, options, manifest)),
    ):
        previous = outcomes.get(stage, {})
        if isinstance(outcome, Rejection):
            if previous.get("reason") == outcome.reason:
                continue  # the same verdict again: its record is already in the quarantine
            errors = list(outcome.errors)
            if "sample" in previous:
                errors.insert(0, f"retracted {previous['sample']}: the run no longer passes the {outcome.reason} gate")
                effects.append(Publish(STAGE_TOPICS[stage], previous["sample"], None))
            effects.append(quarantine_record(
                stage=stage, reason=outcome.reason, subject=evidence.run_id, errors=errors, source=source,
                run_id=evidence.run_id, task_id=evidence.task_id, source_record=state.score,
                source_provenance=score.provenance,
            ))
            outcomes[stage] = {"reason": outcome.reason}
        else:
            value = encode(outcome)
            if previous == {"sample": outcome.id, "digest": digest_of(value)}:
                continue
            effects.append(Publish(STAGE_TOPICS[stage], outcome.id, value))
            outcomes[stage] = {"sample": outcome.id, "digest": digest_of(value)}
    state = replace(state, outcomes=outcomes)
    return _forward_to_pairing(state, evidence, score, effects)


def _forward_to_pairing(
    state: RunState, evidence: EvidenceRecord, score: ScoredRun, effects: list[Effect]
) -> tuple[RunState, list[Effect]]:
    """Send the run to its task's pair buffer when what pairing sees of it changed.

    A run that may not take part (no provenance, no text) goes too, as ``run: null``, so
    pairs made of it before a re-score can be retracted. Each candidate carries where the
    run was first a candidate of each task (``first_scored_at``), so pairing finds the
    window holding the run without a table of its own."""
    run = pair_run_from(evidence, score)
    first_scored_at = state.first_scored_at
    if run is not None and run.task_id not in first_scored_at:
        first_scored_at = {**first_scored_at, run.task_id: run.scored_at_epoch}
    candidate = dumps({
        "run_id": score.evidence_run_id,
        "run": run.to_dict() if run else None,
        "score_source": state.score_source,
        "first_scored_at": first_scored_at,
    })
    digest = digest_of(candidate)
    if digest == state.pair_candidate:
        return state, effects
    effects.append(Publish("pair-candidates", score.evidence_task_id, candidate))
    return replace(state, pair_candidate=digest, first_scored_at=first_scored_at), effects


def digest_of(value: bytes) -> str:
    """A short fingerprint of an emitted value, so state need not keep a second copy of it."""
    return hashlib.sha256(value).hexdigest()[:32]
