"""SftSample v1: one chat-format supervised fine-tuning example."""

from typing import Literal

from pydantic import Field

from schemas._base import OutputModel, short_id
from schemas.provenance import Provenance

SCHEMA_VERSION = 1


def sft_sample_id(run_id: str) -> str:
    return short_id("sft-", f"sft|{run_id}")


class ChatMessage(OutputModel):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class SftSample(OutputModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^sft-[0-9a-f]{16}$")
    run_id: str = Field(min_length=1)
    task_id: str = Field(min_length=1)
    messages: tuple[ChatMessage, ChatMessage]
    # The firewall's second layer: the type itself cannot hold rejected or needs_human_review.
    quality_score: Literal["accepted", "partially_accepted"]
    created_at: str = Field(min_length=1)
    provenance: Provenance
