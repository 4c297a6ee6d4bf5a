"""Record factories for the unit tests: valid input records by default, any field overridable.

``make_evidence`` and ``make_score`` return the JSON objects a producer would send (plain
dicts, as the join state keeps them); ``evidence_model`` and ``score_model`` validate them
into models. Pass ``ABSENT`` as an override to leave a field out of the record.
"""

import hashlib
from typing import Any

from schemas import EvidenceRecord, ScoredRun
from schemas.codec import dumps
from streams.rules.quarantine import SourceMessage

ABSENT: Any = object()  # an override value meaning "leave this field out"

RUN_ID = "run-1"
TASK_ID = "task-1"
SCORED_AT = "2026-01-01T11:30:00Z"
TIMESTAMP_MS = 1_767_267_000_000  # 2026-01-01T11:30:00Z


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    record = dict(base)
    for name, value in overrides.items():
        if value is ABSENT:
            record.pop(name, None)
        else:
            record[name] = value
    return record


def make_provenance(**overrides: Any) -> dict[str, Any]:
    """A complete provenance object (the evidence side's by default)."""
    base = {
        "source_file": "logs/evidence/2026-01-01.jsonl",
        "line_offset": 12,
        "sig_hash": "sig-evidence-1",
        "recorded_at": "2026-01-01T10:00:00Z",
    }
    return _apply(base, overrides)


def make_score_provenance(**overrides: Any) -> dict[str, Any]:
    """A complete provenance object that differs from the evidence side's in every field."""
    base = {
        "source_file": "logs/scores/2026-01-01.jsonl",
        "line_offset": 3,
        "sig_hash": "sig-score-1",
        "recorded_at": "2026-01-01T11:00:00Z",
    }
    return _apply(base, overrides)


def make_evidence(**overrides: Any) -> dict[str, Any]:
    """A valid EvidenceRecord v1 object that passes every gate."""
    base = {
        "schema_version": 1,
        "run_id": RUN_ID,
        "task_id": TASK_ID,
        "source_category": "scrum_reviews",
        "text": "Moved the retry loop out of the request handler.",
        "source_files": ["src/handler.py"],
        "provenance": make_provenance(),
    }
    return _apply(base, overrides)


def make_score(**overrides: Any) -> dict[str, Any]:
    """A valid ScoredRun v1 object for ``make_evidence()``'s run, accepted."""
    base = {
        "schema_version": 1,
        "evidence_run_id": RUN_ID,
        "evidence_task_id": TASK_ID,
        "category": "accepted",
        "reasons": ["fixes the bug", "keeps the tests green"],
        "provenance": make_score_provenance(),
        "scored_at": SCORED_AT,
    }
    return _apply(base, overrides)


def evidence_model(**overrides: Any) -> EvidenceRecord:
    return EvidenceRecord.model_validate(make_evidence(**overrides))


def score_model(**overrides: Any) -> ScoredRun:
    return ScoredRun.model_validate(make_score(**overrides))


def make_source(**overrides: Any) -> SourceMessage:
    """Where an input message sits in Kafka (a scored-runs message of run-1 by default)."""
    fields = {
        "topic": "distill.scored-runs",
        "partition": 0,
        "offset": 0,
        "key": RUN_ID,
        "timestamp_ms": TIMESTAMP_MS,
    }
    fields.update(overrides)
    return SourceMessage(**fields)


def encoded(record: dict[str, Any]) -> bytes:
    """The bytes a producer would send for ``record``."""
    return dumps(record)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expected_rag_id(run_id: str) -> str:
    return "rag-" + sha256_hex(f"rag|{run_id}")[:16]


def expected_sft_id(run_id: str) -> str:
    return "sft-" + sha256_hex(f"sft|{run_id}")[:16]


def expected_quarantine_id(stage: str, reason: str, subject: str) -> str:
    return "q-" + sha256_hex(f"{stage}|{reason}|{subject}")[:16]
