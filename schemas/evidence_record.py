"""EvidenceRecord v1: the text a run produced, with the files it names."""

from pydantic import Field

from schemas._base import InputModel, SchemaVersionOne
from schemas.provenance import Provenance

SCHEMA_VERSION = 1


class EvidenceRecord(InputModel):
    schema_version: SchemaVersionOne
    run_id: str = Field(min_length=1)
    task_id: str = Field(min_length=1)
    source_category: str = Field(min_length=1)
    text: str
    source_files: list[str] = Field(default_factory=list)
    provenance: Provenance | None = None
