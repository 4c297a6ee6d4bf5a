"""The join of SPEC section 3 and the per-stage outcomes of section 4, as a pure state machine.

One ``RunState`` per run id lives in a RocksDB table. Each input event becomes
``(new state, effects)``; the agent stores the state and sends the effects. Keeping the
decisions here, away from Faust, lets unit and property tests drive every arrival order.

A record is screened when it arrives (``streams.rules.screening``): the state keeps it with
its secrets redacted, where they were, and the evidence text's verdict against the evaluation
sets. With dedup on, a sample that passes gates 1-7 is not published here but sent, keyed by
its content, to its dedup group (``streams.rules.dedup``), which publishes the winner.
"""

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from schemas import EvidenceRecord, RagSample, ScoredRun, SftSample
from schemas.codec import dumps, encode, loads
from streams.rules.dedup import Candidate, sample_content_key, upsert_message, withdraw_message
from streams.rules.effects import Effect, OutputTopic, Publish
from streams.rules.firewall import ContentVerdicts, GateOptions, Manifest, Rejection, rag_outcome, sft_outcome
from streams.rules.pairing import pair_run_from
from streams.rules.quarantine import SourceMessage, quarantine_record
from streams.rules.screening import (
    NO_CONTENT_GATES, ContentGates, Screened, judge, screen, screen_source, secret_errors,
)

__all__ = ["Effect", "Publish", "RunState", "on_evidence", "on_score", "on_join_timeout", "rejudge"]

STAGE_TOPICS: dict[str, OutputTopic] = {"rag": "rag-samples", "sft": "sft-samples"}


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
    # Where each record's secrets were ([path, rule id, start, end]; the records above are redacted).
    evidence_secrets: list = field(default_factory=list)
    score_secrets: list = field(default_factory=list)
    # The evidence text's verdict against the evaluation sets ({"set", "error"}), or None.
    contamination: dict[str, str] | None = None

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
            "evidence_secrets": self.evidence_secrets,
            "score_secrets": self.score_secrets,
            "contamination": self.contamination,
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
    options: GateOptions, manifest: Manifest, gates: ContentGates = NO_CONTENT_GATES,
) -> tuple[RunState, list[Effect]]:
    """Evidence arrived. The first one stands; a different second one is a ``duplicate_id``."""
    screened = _own_id(screen(obj, gates), "run_id", source)
    if screened.obj is not obj:
        evidence = EvidenceRecord.model_validate(screened.obj)
    if state.evidence is not None:
        if _same(state.evidence, screened.obj, "run_id"):
            return state, []  # identical redelivery
        return state, [quarantine_record(
            stage="input", reason="duplicate_id", subject=evidence.run_id,
            errors=[f"run {evidence.run_id!r} already has different evidence; the first one stands"],
            source=source, run_id=evidence.run_id, task_id=evidence.task_id, source_record=screened.obj,
            source_provenance=evidence.provenance,
        )]
    state = replace(state, evidence=screened.obj, evidence_secrets=screened.findings,
                    contamination=judge(evidence.text, gates.index))
    return _evaluate(state, options, manifest, gates, evidence=evidence) if state.joined else (state, [])


def on_score(
    state: RunState, score: ScoredRun, obj: dict[str, Any], source: SourceMessage,
    options: GateOptions, manifest: Manifest, gates: ContentGates = NO_CONTENT_GATES,
) -> tuple[RunState, list[Effect]]:
    """A score arrived: the latest one wins and the run is evaluated again if joined."""
    screened = _own_id(screen(obj, gates), "evidence_run_id", source)
    if screened.obj is not obj:
        score = ScoredRun.model_validate(screened.obj)
    if state.score is not None and _same(state.score, screened.obj, "evidence_run_id"):
        return state, []  # identical redelivery
    state = replace(state, score=screened.obj, score_source=screen_source(source.to_dict(), gates),
                    score_secrets=screened.findings)
    return _evaluate(state, options, manifest, gates, score=score) if state.joined else (state, [])


def _own_id(screened: Screened, field: str, source: SourceMessage) -> Screened:
    """A run id that held a secret, made its run's own again: two ids holding secrets of one rule
    redact to one string, so the coordinates of the message it came in follow it (a hash of
    the id would fingerprint the secret). Only a quarantine record can show such an id: the
    secret keeps the run out of every dataset."""
    if not any(path == field for path, *_ in screened.findings):
        return screened
    return Screened({**screened.obj, field: f"{screened.obj[field]}@{source.coordinates}"}, screened.findings)


def _same(kept: dict[str, Any], arrived: dict[str, Any], field: str) -> bool:
    """The same record, but for the run id's coordinates (the key, and so the id, is the same)."""
    return kept == arrived or {**kept, field: None} == {**arrived, field: None}


def rejudge(
    state: RunState, options: GateOptions, manifest: Manifest, gates: ContentGates
) -> tuple[RunState, list[Effect]]:
    """The evaluation sets changed: the evidence text is judged again, and a joined run whose
    verdict changed is evaluated again (its samples retracted, or given back, and its pair
    candidate sent again so that a closed window is planned again)."""
    if state.evidence is None:
        return state, []
    verdict = judge(state.evidence["text"], gates.index)
    if verdict == state.contamination:
        return state, []
    state = replace(state, contamination=verdict)
    return _evaluate(state, options, manifest, gates) if state.joined else (state, [])


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


def verdicts_of(state: RunState, gates: ContentGates) -> ContentVerdicts:
    return ContentVerdicts(
        secrets=secret_errors(gates.secrets, state.evidence_secrets, state.score_secrets),
        contamination=(state.contamination["error"],) if state.contamination else (),
    )


def _evaluate(
    state: RunState, options: GateOptions, manifest: Manifest, gates: ContentGates,
    evidence: EvidenceRecord | None = None, score: ScoredRun | None = None,
) -> tuple[RunState, list[Effect]]:
    """The gates on the joined run; the record that just came is passed as the model it was
    decoded into (the stored objects are those models dumped, so validating them again
    gives the same model)."""
    evidence = evidence or EvidenceRecord.model_validate(state.evidence)
    score = score or ScoredRun.model_validate(state.score)
    verdicts = verdicts_of(state, gates)
    outcomes = dict(state.outcomes)
    effects: list[Effect] = []
    for stage, outcome in (
        ("rag", rag_outcome(evidence, score, options, manifest, verdicts)),
        ("sft", sft_outcome(evidence, score, options, manifest, verdicts)),
    ):
        previous = outcomes.get(stage, {})
        if isinstance(outcome, Rejection):
            if previous.get("reason") == outcome.reason:
                continue  # the same verdict again: its record is already in the quarantine
            errors = list(outcome.errors)
            if "sample" in previous:
                errors.insert(0, f"retracted {previous['sample']}: the run no longer passes the {outcome.reason} gate")
                effects.append(_retraction(stage, previous))
            effects.append(quarantine_record(
                stage=stage, reason=outcome.reason, subject=evidence.run_id, errors=errors,
                source=SourceMessage.from_dict(state.score_source), run_id=evidence.run_id,
                task_id=evidence.task_id, source_record=state.score, source_provenance=score.provenance,
            ))
            outcomes[stage] = {"reason": outcome.reason}
        else:
            value = encode(outcome)
            current = {"sample": outcome.id, "digest": digest_of(value)}
            if gates.dedup:
                current["key"] = sample_content_key(outcome)
            if previous == current:
                continue
            if "sample" in previous and ("key" in previous) != gates.dedup:
                effects.append(_retraction(stage, previous))  # sent the other way before DISTILL_DEDUP changed
            effects.append(_candidate(stage, outcome, value, current, state, score) if gates.dedup
                           else Publish(STAGE_TOPICS[stage], outcome.id, value))
            outcomes[stage] = current
    state = replace(state, outcomes=outcomes)
    return _forward_to_pairing(state, evidence, score, verdicts, effects)


def _retraction(stage: str, previous: dict[str, str]) -> Publish:
    """Take back the sample of an earlier outcome: from its dedup group, or off its topic."""
    if "key" in previous:
        return withdraw_message(stage, previous["key"], previous["sample"])
    return Publish(STAGE_TOPICS[stage], previous["sample"], None)


def _candidate(stage: str, sample: RagSample | SftSample, value: bytes, current: dict[str, str], state: RunState,
               score: ScoredRun) -> Publish:
    """The sample (``value``: as published) as a candidate of its content's dedup group."""
    return upsert_message(stage, current["key"], Candidate(
        sample.id, score.scored_at_epoch, value.decode(), current["digest"], state.score_source, sample.task_id))


def _forward_to_pairing(
    state: RunState, evidence: EvidenceRecord, score: ScoredRun, verdicts: ContentVerdicts, effects: list[Effect]
) -> tuple[RunState, list[Effect]]:
    """Send the run to its task's pair buffer when what pairing sees of it changed.

    A run that may not take part (no provenance, no text) goes too, as ``run: null``, so
    pairs made of it before a re-score can be retracted. Each candidate carries where the
    run was first a candidate of each task (``first_scored_at``), so pairing finds the
    window holding the run without a table of its own."""
    run = pair_run_from(evidence, score, verdicts.exclusion)
    first_scored_at = state.first_scored_at
    if run is not None and run.task_id not in first_scored_at:
        first_scored_at = {**first_scored_at, run.task_id: run.scored_at_epoch}
    candidate = dumps({
        "run_id": evidence.run_id,
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
