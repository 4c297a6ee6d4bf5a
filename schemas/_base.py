"""Shared model configuration and small helpers for the record models."""

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class InputModel(BaseModel):
    """An input record: strict types, unknown fields kept (they go to quarantine copies)."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class OutputModel(BaseModel):
    """An output record: strict types, no field beyond the contract."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def short_id(prefix: str, seed: str) -> str:
    """``prefix`` + the first 16 hex digits of sha256(seed): the id scheme of SPEC 5 and 7."""
    return prefix + sha256_hex(seed)[:16]


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; a naive one is refused (its instant is unknown)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone offset (RFC 3339 needs one)")
    return parsed
