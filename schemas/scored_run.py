"""ScoredRun v1: the verdict on one run, with its reasons."""

from typing import Literal

from pydantic import Field, field_validator

from schemas._base import InputModel, SchemaVersionOne, parse_rfc3339
from schemas.provenance import Provenance

SCHEMA_VERSION = 1

Category = Literal["accepted", "partially_accepted", "rejected", "needs_human_review"]


class ScoredRun(InputModel):
    schema_version: SchemaVersionOne
    evidence_run_id: str = Field(min_length=1)
    evidence_task_id: str = Field(min_length=1)
    category: Category
    reasons: list[str]
    provenance: Provenance | None = None
    scored_at: str

    @field_validator("scored_at")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        parse_rfc3339(value)
        return value

    @property
    def scored_at_epoch(self) -> float:
        """``scored_at`` in seconds since the epoch: the unit of stream time."""
        return parse_rfc3339(self.scored_at).timestamp()
