"""QuarantineRecord v1: a record kept out of every dataset, with the reason why."""

from typing import Any, Literal

from pydantic import Field

from schemas._base import OutputModel, short_id
from schemas.provenance import Provenance

SCHEMA_VERSION = 1

Stage = Literal["input", "join", "rag", "sft", "preference"]

Reason = Literal[
    "missing_provenance",
    "missing_source_run_id",
    "empty_content",
    "schema_violation",
    "unsafe_sft_category",
    "unsafe_rag_category",
    "invalid_preference_pairing",
    "hallucinated_file_path",
    "duplicate_id",
    "self_pairing",
    "category_disallowed",
    "late_arrival",
    "secret_in_content",
    "benchmark_contamination",
    "duplicate_content",
]


def quarantine_id(stage: str, reason: str, subject: str) -> str:
    """Subject: the run id, the pair id, or ``topic:partition:offset`` of an undecodable message."""
    return short_id("q-", f"{stage}|{reason}|{subject}")


class QuarantineSource(OutputModel):
    topic: str
    partition: int
    offset: int
    key: str | None


class QuarantineRecord(OutputModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^q-[0-9a-f]{16}$")
    stage: Stage
    reason: Reason
    errors: list[str] = Field(min_length=1)
    run_id: str | None
    task_id: str | None
    source_record: dict[str, Any] | None
    raw: str | None
    source: QuarantineSource
    source_provenance: Provenance | None
    recorded_at: str
