"""Exact duplicates (SPEC 11): one sample per content, whatever the arrival order.

Every sample that passed the gates before this one is a *candidate* of its content key. A
``DedupGroup`` keeps every live candidate of one key, not only the winner (Flink's
``DEDUPLICATE`` on updating input, Materialize's TopK): the winner is the candidate with the
smallest (``created_at`` as an instant, ``id``), so it never depends on which came first, and
when the winner is withdrawn (a re-score, a gate it now fails) the next one takes its place.
Each other candidate gets ``duplicate_content`` naming the winner; when the winner changes,
each loser's record is written again naming the new one, so the latest record of every loser
names the sample a trainer actually gets.

``upsert`` and ``withdraw`` return the new group and its effects (samples, tombstones,
quarantine records); the agent stores the group and sends the effects. Pure: no Faust, no I/O.
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import lru_cache
from operator import attrgetter
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas import PreferenceSample, Provenance, QuarantineRecord, RagSample, SftSample
from schemas.codec import dumps, loads
from streams.rules.effects import Effect, Publish
from streams.rules.quarantine import SourceMessage, quarantine_record

Kind = Literal["rag", "sft", "preference"]
SAMPLE_TOPICS: dict[str, str] = {"rag": "rag-samples", "sft": "sft-samples", "preference": "preference-pairs"}


@lru_cache(maxsize=16)  # a run's text is the RAG sample's and the SFT response: normalised once
def normalise(text: str) -> str:
    """SPEC 11: Unicode NFKC, then every run of white space one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def content_key(*parts: str) -> str:
    """The content key of a sample's parts (RAG: text; SFT: prompt, response; preference:
    prompt, chosen, rejected): sha256 of the normalised parts joined by NUL, in hex."""
    return hashlib.sha256("\x00".join(normalise(p) for p in parts).encode("utf-8")).hexdigest()


def sample_content_key(sample: RagSample | SftSample | PreferenceSample) -> str:
    """The content key of a sample: its text (RAG), prompt and response (SFT), prompt, chosen
    and rejected (preference)."""
    if isinstance(sample, RagSample):
        return content_key(sample.text)
    if isinstance(sample, SftSample):
        return content_key(*(message.content for message in sample.messages))
    return content_key(sample.prompt, sample.chosen, sample.rejected)


@dataclass(frozen=True)
class Candidate:
    """One sample that passed every gate before dedup, as its group keeps it. The sample travels
    and rests as the JSON text it is published as, with that text's digest: a group never
    decodes, encodes or hashes a sample again (it did: a sixth of the dedup hop's cost). Beside
    it only what a ``duplicate_content`` record needs and the sample cannot say: where its run's
    latest score (the chosen run's, for a pair) sits in Kafka, and the task of a pair."""

    sample_id: str
    created_at: float  # the sample's created_at as epoch seconds: the instant, whatever its zone
    value: str  # the sample as published (JSON)
    digest: str  # of ``value`` (``join.digest_of``)
    source: dict[str, Any]  # SourceMessage.to_dict() of the score message
    task_id: str

    @property
    def rank(self) -> tuple[float, str]:
        return self.created_at, self.sample_id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.sample_id, "created_at": self.created_at, "value": self.value, "digest": self.digest,
                "source": self.source, "task_id": self.task_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(data["id"], data["created_at"], data["value"], data["digest"], data["source"], data["task_id"])


@dataclass(frozen=True)
class DedupGroup:
    """Every live candidate of one (kind, content key), the sample on the topic, and the winner
    each loser's latest ``duplicate_content`` record names."""

    kind: Kind
    key: str
    candidates: dict[str, Candidate] = field(default_factory=dict)
    live: str | None = None  # the sample id on the output topic
    live_digest: str | None = None  # of the value published for it, so an unchanged value is not sent again
    named: dict[str, str] = field(default_factory=dict)  # loser id -> winner its latest record names

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "live": self.live, "live_digest": self.live_digest,
                "named": self.named, "candidates": [c.to_dict() for c in self.candidates.values()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DedupGroup:
        candidates = {c["id"]: Candidate.from_dict(c) for c in data["candidates"]}
        return cls(data["kind"], data["key"], candidates, data["live"], data["live_digest"], data["named"])

    def encode(self) -> bytes:
        return dumps(self.to_dict())


def upsert(group: DedupGroup, candidate: Candidate) -> tuple[DedupGroup, list[Effect]]:
    """A candidate arrived, or changed (a re-score of its run): the group settles again."""
    return _settle(group, {**group.candidates, candidate.sample_id: candidate})


def withdraw(group: DedupGroup, sample_id: str) -> tuple[DedupGroup, list[Effect]]:
    """A candidate's run no longer has this sample (it fails an earlier gate now)."""
    if sample_id not in group.candidates:
        return group, []
    remaining = {k: c for k, c in group.candidates.items() if k != sample_id}
    return _settle(group, remaining)


def _settle(before: DedupGroup, candidates: dict[str, Candidate]) -> tuple[DedupGroup, list[Effect]]:
    """The group with ``candidates``: the winner on the topic, every other candidate with a
    record naming it. (Built whole, not by ``dataclasses.replace``: that was a third of the
    dedup agent's own time, most groups having one candidate.)"""
    kind, topic, effects = before.kind, SAMPLE_TOPICS[before.kind], []
    ranked = sorted(candidates.values(), key=attrgetter("rank"))
    winner = ranked[0] if ranked else None
    live, live_digest = before.live, before.live_digest
    if winner is None or live != winner.sample_id:
        if live is not None:
            effects.append(Publish(topic, live, None))
        live = live_digest = None
    if winner is not None:
        if winner.digest != live_digest:
            effects.append(Publish(topic, winner.sample_id, winner.value.encode()))
        live, live_digest = winner.sample_id, winner.digest
    named = {}
    for candidate in ranked[1:]:
        named[candidate.sample_id] = winner.sample_id
        if before.named.get(candidate.sample_id) != winner.sample_id:
            effects.append(duplicate_record(kind, candidate, winner))
    return DedupGroup(kind, before.key, candidates, live, live_digest, named), effects


def duplicate_record(kind: Kind, loser: Candidate, winner: Candidate) -> QuarantineRecord:
    """A loser's record: its subject (the run; a pair's id), the score message of its run as
    source, and the duplicate sample itself as ``source_record`` (what is kept out). Like the
    other records of its stage, a RAG or SFT one has its run's provenance, a pair's none."""
    sample = loads(loser.value)
    pair = kind == "preference"
    run_id = sample["chosen_run_id"] if pair else sample["run_id"]
    return quarantine_record(
        stage=kind, reason="duplicate_content", subject=loser.sample_id if pair else run_id,
        errors=[f"{loser.sample_id} has the same content as {winner.sample_id}, the sample kept "
                "(the earliest created_at, then the smallest id)"],
        source=SourceMessage.from_dict(loser.source), run_id=run_id, task_id=loser.task_id, source_record=sample,
        source_provenance=None if pair else Provenance.model_validate(sample["provenance"]),
    )


def upsert_message(kind: Kind, key: str, candidate: Candidate) -> Publish:
    """The candidate for its group, on the re-keyed topic (the agent batches these per partition)."""
    return Publish("dedup-candidates", key, dumps({"op": "upsert", "kind": kind, "key": key,
                                                   "candidate": candidate.to_dict()}))


def withdraw_message(kind: Kind, key: str, sample_id: str) -> Publish:
    """Take a candidate back from its group."""
    return Publish("dedup-candidates", key, dumps({"op": "withdraw", "kind": kind, "key": key, "id": sample_id}))


def apply_message(group: DedupGroup | None, message: dict[str, Any]) -> tuple[DedupGroup, list[Effect]]:
    """One message of the re-keyed topic applied to its group (None: the group is new)."""
    group = group or DedupGroup(message["kind"], message["key"])
    if message["op"] == "upsert":
        return upsert(group, Candidate.from_dict(message["candidate"]))
    return withdraw(group, message["id"])


def group_key(message: dict[str, Any]) -> bytes:
    """The ``dedup`` table key of a message's group: one group per kind and content key."""
    return f"{message['kind']}:{message['key']}".encode()
