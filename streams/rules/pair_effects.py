"""What a pair window's plan sends (SPEC 6, 10-12), as effects for the pair agent to send: its
pairs (straight to their topic, or to their dedup group), the tombstones of pairs it no longer
has, and the records of retracted and refused pairs and of excluded runs. Pure: no Faust, no I/O.
"""

from schemas import QuarantineRecord
from streams.rules.dedup import Candidate, upsert_message, withdraw_message
from streams.rules.effects import Effect, Publish
from streams.rules.pairing import PairRejection, PairRun, PairWindow, PlanChanges
from streams.rules.quarantine import SourceMessage, quarantine_record


def plan_effects(window: PairWindow, changes: PlanChanges, sources: dict[str, dict]) -> list[Effect]:
    """``changes`` of ``window``'s plan as effects; ``sources``: each run's score message
    (``SourceMessage.to_dict``), the source of its pairs' records."""
    effects: list[Effect] = []
    for gone in changes.retract:
        effects.append(withdraw_message("preference", gone.content_key, gone.pair_id) if gone.content_key
                       else Publish("preference-pairs", gone.pair_id, None))
        effects.append(_pair_record("invalid_preference_pairing", gone.pair_id, gone.task_id, gone.chosen_run_id,
                                    gone.rejected_run_id, [f"retracted {gone.pair_id}", *gone.errors], sources))
    for sample in changes.emit:
        key, value = window.emitted[sample.id][3], changes.encoded[sample.id]
        if key is None:
            effects.append(Publish("preference-pairs", sample.id, value))
            continue
        created_at = max(window.runs[sample.chosen_run_id].scored_at_epoch,
                         window.runs[sample.rejected_run_id].scored_at_epoch)
        effects.append(upsert_message("preference", key, Candidate(
            sample.id, created_at, value.decode(), window.emitted[sample.id][2],
            sources[sample.chosen_run_id], window.task_id)))
    effects += [refusal_record(refused, sources) for refused in changes.refused]
    effects += [_exclusion_record(run, sources) for run in changes.excluded]
    return effects


def refusal_record(rejection: PairRejection, sources: dict[str, dict]) -> QuarantineRecord:
    """A pair the plan refused (``self_pairing``, ``invalid_preference_pairing``, ``schema_violation``)."""
    return _pair_record(rejection.reason, rejection.pair_id, rejection.task_id, rejection.chosen_run_id,
                        rejection.rejected_run_id, rejection.errors, sources)


def pair_source_record(task_id: str, chosen_run_id: str, rejected_run_id: str) -> dict:
    """The ``source_record`` of a pair's quarantine records: which runs it pairs."""
    return {"task_id": task_id, "chosen_run_id": chosen_run_id, "rejected_run_id": rejected_run_id}


def _pair_record(reason, pair_id: str, task_id: str, chosen: str, rejected: str, errors: list[str],
                 sources: dict[str, dict]) -> QuarantineRecord:
    return quarantine_record(
        stage="preference", reason=reason, subject=pair_id, errors=errors,
        source=SourceMessage.from_dict(sources[chosen]), run_id=chosen, task_id=task_id,
        source_record=pair_source_record(task_id, chosen, rejected),
    )


def _exclusion_record(run: PairRun, sources: dict[str, dict]) -> QuarantineRecord:
    """The one ``preference`` record of a run kept out of pairing for a secret or a benchmark."""
    return quarantine_record(
        stage="preference", reason=run.exclusion["reason"], subject=run.run_id,
        errors=[f"run {run.run_id!r} takes no part in pairing", *run.exclusion["errors"]],
        source=SourceMessage.from_dict(sources[run.run_id]), run_id=run.run_id, task_id=run.task_id,
        source_record={"run_id": run.run_id, "task_id": run.task_id, "scored_at": run.scored_at},
        source_provenance=run.provenance,
    )
