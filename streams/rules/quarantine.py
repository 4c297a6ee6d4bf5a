"""Building quarantine records and the Kafka headers that repeat their routing fields."""

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas import Provenance, QuarantineRecord, QuarantineSource
from schemas.quarantine_record import Reason, Stage, quarantine_id
from streams.rules.secret_rules import RULE_ID

PLACEHOLDER_RULE = re.compile(f"<SECRET:({RULE_ID.pattern})>")
# Raw bytes beyond this are cut from the record (the limit keeps a record under Kafka's size cap).
RAW_KEEP_BYTES = 64 * 1024


@dataclass(frozen=True)
class SourceMessage:
    """Where an input message sits in Kafka, and when it was written there."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int

    @property
    def coordinates(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def recorded_at(self) -> str:
        moment = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": self.key, "timestamp_ms": self.timestamp_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SourceMessage":
        return cls(**data)


def quarantine_record(
    *,
    stage: Stage,
    reason: Reason,
    subject: str,
    errors: list[str] | tuple[str, ...],
    source: SourceMessage,
    run_id: str | None = None,
    task_id: str | None = None,
    source_record: dict[str, Any] | None = None,
    raw: bytes | None = None,
    source_provenance: Provenance | None = None,
) -> QuarantineRecord:
    errors = list(errors)
    raw_text = None
    if raw is not None:
        # Kept whole until ``cut_raw``: cut first, a secret across the cut would be found by no
        # rule any more, and its first part would go out (SPEC 10).
        if len(raw) > RAW_KEEP_BYTES:
            errors.append(f"raw bytes cut to the first {RAW_KEEP_BYTES} of {len(raw)}")
        raw_text = base64.b64encode(raw).decode("ascii")
    return QuarantineRecord(
        id=quarantine_id(stage, reason, subject),
        stage=stage,
        reason=reason,
        errors=errors,
        run_id=run_id,
        task_id=task_id,
        source_record=source_record,
        raw=raw_text,
        source=QuarantineSource(topic=source.topic, partition=source.partition, offset=source.offset, key=source.key),
        source_provenance=source_provenance.contract_fields() if source_provenance else None,
        recorded_at=source.recorded_at,
    )


def cut_raw(record: QuarantineRecord) -> QuarantineRecord:
    """The record with its raw bytes cut to ``RAW_KEEP_BYTES`` (the record must stay under Kafka's
    size cap), once ``redact_record`` has replaced the secrets in the whole of them."""
    if record.raw is None or len(record.raw) <= base64_length(RAW_KEEP_BYTES):
        return record
    raw = base64.b64decode(record.raw)[:RAW_KEEP_BYTES]
    return record.model_copy(update={"raw": base64.b64encode(raw).decode("ascii")})


def base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def quarantine_headers(record: QuarantineRecord) -> list[tuple[str, bytes]]:
    """Routing fields as headers, so a consumer can filter without parsing the value."""
    return [
        ("stage", record.stage.encode()),
        ("reason", record.reason.encode()),
        ("source_topic", record.source.topic.encode()),
        ("source_partition", str(record.source.partition).encode()),
        ("source_offset", str(record.source.offset).encode()),
    ]


def redact_record(record: QuarantineRecord, scanner) -> tuple[QuarantineRecord, list[str]]:
    """The record with every secret in it replaced by its placeholder (SPEC 10: whatever its
    reason), and the rule ids found; the same record when it holds none.

    Records built from the join's state carry redacted copies already; this catches the rest:
    an invalid message's object and raw bytes (read as UTF-8 with replacement), a message key,
    errors that quote input. ``scanner``: ``streams.rules.secrets.SecretScanner``."""
    shown = {"errors": record.errors, "run_id": record.run_id, "task_id": record.task_id,
             "source_record": record.source_record, "key": record.source.key,
             "source_provenance": record.source_provenance.model_dump(mode="json") if record.source_provenance else None}
    redacted, found = scanner.redact_object(shown)
    rules = [finding.rule_id for _, finding in found]
    raw = record.raw
    if raw is not None:
        text = base64.b64decode(raw).decode("utf-8", "replace")
        redacted_text, raw_found = scanner.redact(text)
        if raw_found:
            raw = base64.b64encode(redacted_text.encode("utf-8")).decode("ascii")
            redacted = {**redacted, "errors": [*redacted["errors"],
                                               "raw: secrets replaced by placeholders, in the bytes read as UTF-8"]}
            rules += [finding.rule_id for finding in raw_found]
    if not rules:
        return record, []
    provenance = redacted["source_provenance"]
    return record.model_copy(update={
        "errors": redacted["errors"], "run_id": redacted["run_id"], "task_id": redacted["task_id"],
        "source_record": redacted["source_record"], "raw": raw,
        "source": record.source.model_copy(update={"key": redacted["key"]}),
        "source_provenance": Provenance.model_validate(provenance) if provenance else None,
    }), rules


def input_secret_rules(record: dict[str, Any]) -> list[str]:
    """The rule of each placeholder in what a record of an input message copies of that message:
    its object (``source_record``), its key, its raw bytes read as UTF-8; so each secret of the
    message counts once. (The record's ids, errors and provenance repeat these: an error quotes
    the key, ``run_id`` the object's.) ``record``: a QuarantineRecord as JSON."""
    text = json.dumps([record.get("source_record"), (record.get("source") or {}).get("key")], ensure_ascii=False)
    if record.get("raw"):
        text += base64.b64decode(record["raw"]).decode("utf-8", "replace")
    return PLACEHOLDER_RULE.findall(text)
