"""The peer's join and gates, written from SPEC alone: a run's evidence and score meet in
either order, the latest score wins (SPEC 3); gates 1-4 of SPEC 4 (without a file manifest the
path gate checks syntax only); RAG and SFT samples (SPEC 5).

A run's state is its evidence and its latest score with where that came from. Its RAG and SFT
outcomes are a pure function of the two, so a re-score is judged by the outcomes of the old and
the new score: what changed is sent (a sample that no longer passes is retracted with a
tombstone and a quarantine record naming the retracted id).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import orjson

from benchmarks.peers.records import Emit, Source, contract_provenance, decode, quarantine, short_id

STAGE_TOPICS = {"rag": "rag-samples", "sft": "sft-samples"}


class State(Protocol):
    """A state store scoped to one run id (what the peer uses of Quix Streams' ``State``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class Options(NamedTuple):
    include_partial: bool = False
    include_review: bool = False


def category_gate(stage: str, category: str, options: Options) -> tuple[str, list[str]] | None:
    if stage == "sft":
        if category in ("rejected", "needs_human_review"):
            return "unsafe_sft_category", [f"a {category} run never enters SFT"]
        if category == "partially_accepted" and not options.include_partial:
            return "category_disallowed", ["partially_accepted enters SFT only with include_partial"]
    elif category == "rejected":
        return "unsafe_rag_category", ["a rejected run never enters RAG"]
    elif category == "needs_human_review" and not options.include_review:
        return "category_disallowed", ["needs_human_review enters RAG only with include_review"]
    return None


def path_problem(path: str) -> str | None:
    if path.startswith("/") or path[1:2] == ":":
        return f"{path!r} is absolute"
    for bad, what in (("..", "'..'"), ("\\", "a backslash"), ("\x00", "a NUL")):
        if bad in path:
            return f"{path!r} contains {what}"
    return None


def content_gates(evidence: dict, score: dict) -> tuple[str, list[str]] | None:
    """Gates 2-4, the same for both stages."""
    missing = []
    for name, record in (("evidence", evidence), ("score", score)):
        provenance = record.get("provenance")
        if not isinstance(provenance, dict):
            missing.append(f"{name} has no provenance")
        elif empty := [f for f in ("source_file", "sig_hash", "recorded_at") if not provenance.get(f)]:
            missing.append(f"{name} provenance has empty {', '.join(empty)}")
    if missing:
        return "missing_provenance", missing
    if not evidence["text"].strip():
        return "empty_content", ["evidence text is empty after trimming white space"]
    problems = [p for p in map(path_problem, evidence.get("source_files", [])) if p]
    return ("hallucinated_file_path", problems) if problems else None


def sample(stage: str, evidence: dict, score: dict) -> tuple[str, bytes]:
    run_id, text = evidence["run_id"], evidence["text"].strip()
    head = {"schema_version": 1, "id": short_id(f"{stage}-", f"{stage}|{run_id}"), "run_id": run_id,
            "task_id": evidence["task_id"]}
    tail = {"created_at": score["scored_at"], "provenance": contract_provenance(score["provenance"])}
    if stage == "rag":
        body = {"text": text, "source_category": evidence["source_category"],
                "source_files": evidence.get("source_files", []), "quality": score["category"]}
    else:
        files = evidence.get("source_files", [])
        prompt = f"Task: {evidence['task_id']}" + (f" · file={files[0]}" if files and files[0] else "")
        body = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}],
                "quality_score": score["category"]}
    return head["id"], orjson.dumps(head | body | tail)


def outcome(stage: str, evidence: dict, score: dict, options: Options) -> tuple[str, Any]:
    """``("sample", (id, bytes))`` or ``("reason", (reason, errors))``: the first gate that fails decides."""
    rejection = category_gate(stage, score["category"], options) or content_gates(evidence, score)
    return ("reason", rejection) if rejection else ("sample", sample(stage, evidence, score))


def judge(evidence: dict, old: list | None, new: list, options: Options) -> list[Emit]:
    """What changes on the outputs when the run's score goes from ``old`` to ``new``
    (``[score, source]``; ``old`` None: the run was not joined before)."""
    emits: list[Emit] = []
    score, source = new[0], Source(*new[1])
    for stage, topic in STAGE_TOPICS.items():
        now = outcome(stage, evidence, score, options)
        before = outcome(stage, evidence, old[0], options) if old else None
        if now == before or (before and now[0] == before[0] == "reason" and now[1][0] == before[1][0]):
            continue  # the same sample, or the same reason (its record is already there)
        if now[0] == "sample":
            emits.append(Emit(topic, now[1][0], now[1][1], []))
            continue
        reason, errors = now[1]
        if before and before[0] == "sample":
            errors = [f"retracted {before[1][0]}: the run no longer passes the {reason} gate", *errors]
            emits.append(Emit(topic, before[1][0], None, []))
        emits.append(quarantine(stage, reason, evidence["run_id"], errors, source, run_id=evidence["run_id"],
                                task_id=evidence["task_id"], record=score))
    return emits


def on_message(state: State, raw: bytes | None, source: Source, is_evidence: bool,
               options: Options = Options()) -> list[Emit]:
    """One input message: its state changes and the messages it makes."""
    obj, errors = decode(raw, is_evidence)
    if obj is not None and not errors:
        run_id = obj["run_id" if is_evidence else "evidence_run_id"]
        if source.key != run_id:
            errors = [f"message key {source.key!r} is not the record's run id {run_id!r}"]
    if errors:
        run_id = task_id = None
        if obj is not None:
            run_id = obj.get("run_id") or obj.get("evidence_run_id")
            task_id = obj.get("task_id") or obj.get("evidence_task_id")
        return [quarantine("input", "schema_violation", f"{source.topic}:{source.partition}:{source.offset}", errors,
                           source, run_id=run_id if isinstance(run_id, str) else None,
                           task_id=task_id if isinstance(task_id, str) else None, record=obj,
                           raw=raw if obj is None else None)]
    if is_evidence:
        first = state.get("evidence")
        if first is not None:
            if first == obj:
                return []  # an identical redelivery
            return [quarantine("input", "duplicate_id", run_id, [f"run {run_id!r} already has other evidence"], source,
                               run_id=run_id, task_id=obj["task_id"], record=obj)]
        state.set("evidence", obj)
        scored = state.get("score")
        return judge(obj, None, scored, options) if scored is not None else []
    old = state.get("score")
    if old is not None and old[0] == obj:
        return []
    new = [obj, list(source)]
    state.set("score", new)
    evidence = state.get("evidence")
    return judge(evidence, old, new, options) if evidence is not None else []
