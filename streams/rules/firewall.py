"""The contamination firewall: the RAG and SFT gates of SPEC section 4, as pure functions.

Gates 1-7 decide here; the secret and contamination gates (5, 6) read verdicts found when the
run's records arrived (``streams.rules.screening``); gate 8, exact duplicates, needs every
candidate of a content together and decides in ``streams.rules.dedup``.

Each gate returns ``None`` when the run passes it, or a ``Rejection`` with its reason.
Gates run in SPEC order and the first failure decides. No Faust, no I/O: this module
imports only ``schemas``, so every rule is tested alone.
"""

from collections.abc import Container, Sized
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from schemas import EvidenceRecord, RagSample, ScoredRun, SftSample
from schemas.codec import describe_validation_error
from schemas.quarantine_record import Reason
from schemas.rag_sample import rag_sample_id
from schemas.sft_sample import sft_sample_id

# No option lifts these: a rejected run never teaches, a rejected or unreviewed run never speaks.
SFT_NEVER = frozenset({"rejected", "needs_human_review"})
RAG_NEVER = frozenset({"rejected"})


class Manifest(Container[str], Sized, Protocol):
    """The repo-relative paths known to exist; empty means "no manifest yet"."""


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    errors: tuple[str, ...]


@dataclass(frozen=True)
class GateOptions:
    include_partial: bool = False
    include_review: bool = False


@dataclass(frozen=True)
class ContentVerdicts:
    """What the content gates found in a joined run (``streams.rules.screening``): the
    ``secret_in_content`` errors (rule ids and offsets) and the ``benchmark_contamination`` ones."""

    secrets: tuple[str, ...] = ()
    contamination: tuple[str, ...] = ()

    @property
    def exclusion(self) -> dict | None:
        """Why the run takes no part in pairing (a secret decides first), or None."""
        if self.secrets:
            return {"reason": "secret_in_content", "errors": list(self.secrets)}
        if self.contamination:
            return {"reason": "benchmark_contamination", "errors": list(self.contamination)}
        return None


CLEAN = ContentVerdicts()


def sft_category_gate(score: ScoredRun, options: GateOptions) -> Rejection | None:
    if score.category in SFT_NEVER:
        return Rejection("unsafe_sft_category", (f"category {score.category!r} may never enter SFT",))
    if score.category == "partially_accepted" and not options.include_partial:
        return Rejection(
            "category_disallowed",
            ("category 'partially_accepted' enters SFT only with include_partial (DISTILL_INCLUDE_PARTIAL)",),
        )
    return None


def rag_category_gate(score: ScoredRun, options: GateOptions) -> Rejection | None:
    if score.category in RAG_NEVER:
        return Rejection("unsafe_rag_category", (f"category {score.category!r} may never enter RAG",))
    if score.category == "needs_human_review" and not options.include_review:
        return Rejection(
            "category_disallowed",
            ("category 'needs_human_review' enters RAG only with include_review (DISTILL_INCLUDE_REVIEW)",),
        )
    return None


def provenance_gate(evidence: EvidenceRecord, score: ScoredRun) -> Rejection | None:
    errors = []
    for name, record in (("evidence", evidence), ("scored run", score)):
        if record.provenance is None:
            errors.append(f"{name} has no provenance")
        elif not record.provenance.is_complete:
            empty = [f for f in ("source_file", "sig_hash", "recorded_at") if not getattr(record.provenance, f)]
            errors.append(f"{name} provenance has empty {', '.join(empty)}")
    return Rejection("missing_provenance", tuple(errors)) if errors else None


def content_gate(evidence: EvidenceRecord) -> Rejection | None:
    if not evidence.text.strip():
        return Rejection("empty_content", ("evidence text is empty after trimming white space",))
    return None


def path_problem(path: str, manifest: Manifest) -> str | None:
    """Why a ``source_files`` entry cannot be trusted, or None."""
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return f"{path!r} is absolute"
    if ".." in path:
        return f"{path!r} contains '..'"
    if "\\" in path:
        return f"{path!r} contains a backslash"
    if "\x00" in path:
        return f"{path!r} contains a NUL character"
    if len(manifest) and path not in manifest:
        return f"{path!r} is not in the file manifest"
    return None


def file_path_gate(evidence: EvidenceRecord, manifest: Manifest) -> Rejection | None:
    problems = [p for p in (path_problem(path, manifest) for path in evidence.source_files) if p]
    return Rejection("hallucinated_file_path", tuple(problems)) if problems else None


def secret_gate(verdicts: ContentVerdicts) -> Rejection | None:
    return Rejection("secret_in_content", verdicts.secrets) if verdicts.secrets else None


def contamination_gate(verdicts: ContentVerdicts) -> Rejection | None:
    return Rejection("benchmark_contamination", verdicts.contamination) if verdicts.contamination else None


def prompt_for(evidence: EvidenceRecord) -> str:
    prompt = f"Task: {evidence.task_id}"
    if evidence.source_files and evidence.source_files[0]:
        prompt += f" · file={evidence.source_files[0]}"
    return prompt


def _build(factory, **fields) -> RagSample | SftSample | Rejection:
    try:
        return factory(**fields)
    except ValidationError as exc:
        return Rejection("schema_violation", tuple(describe_validation_error(exc)))


def _shared_gates(
    evidence: EvidenceRecord, score: ScoredRun, manifest: Manifest, verdicts: ContentVerdicts
) -> Rejection | None:
    return (
        provenance_gate(evidence, score)
        or content_gate(evidence)
        or file_path_gate(evidence, manifest)
        or secret_gate(verdicts)
        or contamination_gate(verdicts)
    )


def rag_outcome(
    evidence: EvidenceRecord, score: ScoredRun, options: GateOptions, manifest: Manifest,
    verdicts: ContentVerdicts = CLEAN,
) -> RagSample | Rejection:
    """The one RAG outcome of a joined run: a sample, or the first gate it fails."""
    rejection = rag_category_gate(score, options) or _shared_gates(evidence, score, manifest, verdicts)
    if rejection:
        return rejection
    return _build(
        RagSample,
        id=rag_sample_id(evidence.run_id),
        run_id=evidence.run_id,
        task_id=evidence.task_id,
        text=evidence.text.strip(),
        source_category=evidence.source_category,
        source_files=list(evidence.source_files),
        quality=score.category,
        created_at=score.scored_at,
        provenance=score.provenance.contract_fields(),
    )


def sft_outcome(
    evidence: EvidenceRecord, score: ScoredRun, options: GateOptions, manifest: Manifest,
    verdicts: ContentVerdicts = CLEAN,
) -> SftSample | Rejection:
    """The one SFT outcome of a joined run: a sample, or the first gate it fails."""
    rejection = sft_category_gate(score, options) or _shared_gates(evidence, score, manifest, verdicts)
    if rejection:
        return rejection
    return _build(
        SftSample,
        id=sft_sample_id(evidence.run_id),
        run_id=evidence.run_id,
        task_id=evidence.task_id,
        messages=(
            {"role": "user", "content": prompt_for(evidence)},
            {"role": "assistant", "content": evidence.text.strip()},
        ),
        quality_score=score.category,
        created_at=score.scored_at,
        provenance=score.provenance.contract_fields(),
    )
