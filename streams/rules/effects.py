"""What a rule decides to send, besides quarantine records: a message for a topic."""

from dataclasses import dataclass
from typing import Literal

from schemas import QuarantineRecord

OutputTopic = Literal["rag-samples", "sft-samples", "preference-pairs", "pair-candidates", "dedup-candidates"]


@dataclass(frozen=True)
class Publish:
    """A message for an output or internal topic; ``value`` None is a tombstone (the sample is retracted)."""

    topic: OutputTopic
    key: str
    value: bytes | None


Effect = Publish | QuarantineRecord
