"""RagSample v1: one retrieval document made from a joined run."""

from typing import Literal

from pydantic import Field

from schemas._base import OutputModel, short_id
from schemas.provenance import Provenance

SCHEMA_VERSION = 1


def rag_sample_id(run_id: str) -> str:
    return short_id("rag-", f"rag|{run_id}")


class RagSample(OutputModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^rag-[0-9a-f]{16}$")
    run_id: str = Field(min_length=1)
    task_id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    source_category: str = Field(min_length=1)
    source_files: list[str]
    quality: Literal["accepted", "partially_accepted", "needs_human_review"]
    created_at: str = Field(min_length=1)
    provenance: Provenance
