"""PreferenceSample v1: a chosen/rejected pair of runs of one task (the seed's fields)."""

from typing import Literal

from pydantic import Field, model_validator

from schemas._base import OutputModel, sha256_hex, short_id
from schemas.provenance import Provenance

SCHEMA_VERSION = 1


def preference_sample_id(chosen_run_id: str, rejected_run_id: str, task_id: str) -> str:
    return short_id("pref-", f"{chosen_run_id}|{rejected_run_id}|{task_id}")


def pair_sig_hash(run_a: str, run_b: str) -> str:
    """The pair's signature: order-free, so both directions sign alike (as in the seed)."""
    return sha256_hex("|".join(sorted([run_a, run_b])))


class PreferenceSample(OutputModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^pref-[0-9a-f]{16}$")
    prompt: str = Field(min_length=1)
    chosen: str = Field(min_length=1)
    rejected: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    chosen_run_id: str = Field(min_length=1)
    rejected_run_id: str = Field(min_length=1)
    created_at: str = Field(min_length=1)
    provenance: Provenance

    @model_validator(mode="after")
    def _distinct_sides(self) -> "PreferenceSample":
        if self.chosen_run_id == self.rejected_run_id:
            raise ValueError("chosen_run_id and rejected_run_id are the same run")
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected texts are identical")
        return self
