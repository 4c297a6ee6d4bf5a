"""The peer's records, written from SPEC alone: the two inputs decoded and validated (SPEC 2),
quarantine records built (SPEC 7), and what an output message is. Plain Python and orjson, no
framework and nothing of ``streams/`` or ``schemas/``: the peer stands for another team's code."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

CATEGORIES = frozenset({"accepted", "partially_accepted", "rejected", "needs_human_review"})
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
QUARANTINE = "quarantine"


class Emit(NamedTuple):
    """One message for an output topic; ``value`` None is a tombstone."""

    topic: str
    key: str
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Source(NamedTuple):
    """An input message's coordinates and timestamp (ms)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int


def short_id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:16]


# -- SPEC 2: decoding and validation ---------------------------------------------------------

def _check_provenance(value: Any, errors: list[str]) -> None:
    if value is None:
        return  # missing provenance is gate 2's business, not a schema violation
    if not isinstance(value, dict):
        errors.append("provenance: expected an object or null")
        return
    for name in ("source_file", "sig_hash", "recorded_at"):
        if name in value and not isinstance(value[name], str):
            errors.append(f"provenance.{name}: expected a string")
    if "line_offset" in value and (type(value["line_offset"]) is not int):
        errors.append("provenance.line_offset: expected an integer")


def _check(obj: dict, strings: tuple[str, ...], errors: list[str]) -> None:
    if type(obj.get("schema_version")) is not int or obj["schema_version"] != 1:
        errors.append(f"schema_version: expected 1, got {obj.get('schema_version')!r}")
    for name in strings:
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            errors.append(f"{name}: expected a non-empty string")
    _check_provenance(obj.get("provenance"), errors)


def validate_evidence(obj: dict) -> list[str]:
    errors: list[str] = []
    _check(obj, ("run_id", "task_id", "source_category"), errors)
    if not isinstance(obj.get("text"), str):
        errors.append("text: expected a string")
    files = obj.get("source_files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        errors.append("source_files: expected a list of strings")
    return errors


def validate_score(obj: dict) -> list[str]:
    errors: list[str] = []
    _check(obj, ("evidence_run_id", "evidence_task_id"), errors)
    if obj.get("category") not in CATEGORIES:
        errors.append(f"category: expected one of {sorted(CATEGORIES)}, got {obj.get('category')!r}")
    reasons = obj.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        errors.append("reasons: expected a list of strings")
    scored_at = obj.get("scored_at")
    if not isinstance(scored_at, str) or not RFC3339.fullmatch(scored_at):
        errors.append(f"scored_at: expected an RFC 3339 timestamp, got {scored_at!r}")
    return errors


def decode(raw: bytes | None, is_evidence: bool) -> tuple[dict | None, list[str]]:
    """The JSON object and what is wrong with it (nothing: a valid record)."""
    if raw is None:
        return None, ["message has no value; expected a JSON object"]
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, [f"not UTF-8 JSON: {exc}"]
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"]
    return obj, validate_evidence(obj) if is_evidence else validate_score(obj)


# -- SPEC 7: quarantine records --------------------------------------------------------------

def contract_provenance(value: dict | None) -> dict | None:
    if not isinstance(value, dict):
        return None
    return {"source_file": value.get("source_file", ""), "line_offset": value.get("line_offset", 0),
            "sig_hash": value.get("sig_hash", ""), "recorded_at": value.get("recorded_at", "")}


def quarantine(stage: str, reason: str, subject: str, errors: list[str], source: Source, *,
               run_id: str | None, task_id: str | None, record: dict | None, raw: bytes | None = None) -> Emit:
    moment = datetime.fromtimestamp(source.timestamp_ms / 1000, tz=timezone.utc)
    value = {
        "schema_version": 1, "id": short_id("q-", f"{stage}|{reason}|{subject}"), "stage": stage, "reason": reason,
        "errors": errors, "run_id": run_id, "task_id": task_id, "source_record": record,
        "raw": base64.b64encode(raw).decode("ascii") if raw is not None else None,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset, "key": source.key},
        "source_provenance": contract_provenance(record.get("provenance")) if record else None,
        "recorded_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    headers = [("stage", stage.encode()), ("reason", reason.encode()), ("source_topic", source.topic.encode()),
               ("source_partition", str(source.partition).encode()), ("source_offset", str(source.offset).encode())]
    return Emit(QUARANTINE, value["id"], orjson.dumps(value), headers)
