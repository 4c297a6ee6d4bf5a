"""Record shapes of the distillation stream (SPEC sections 2, 5 and 7).

One model per concept, each beside its ``SCHEMA_VERSION``. This package imports only
pydantic (and the standard library), so every other layer may depend on it.
"""

from schemas.evidence_record import EvidenceRecord
from schemas.preference_sample import PreferenceSample
from schemas.provenance import Provenance
from schemas.quarantine_record import QuarantineRecord, QuarantineSource, Reason, Stage
from schemas.rag_sample import RagSample
from schemas.scored_run import Category, ScoredRun
from schemas.sft_sample import ChatMessage, SftSample

__all__ = [
    "Category",
    "ChatMessage",
    "EvidenceRecord",
    "PreferenceSample",
    "Provenance",
    "QuarantineRecord",
    "QuarantineSource",
    "RagSample",
    "Reason",
    "ScoredRun",
    "SftSample",
    "Stage",
]
