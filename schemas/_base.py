"""Shared model configuration and small helpers for the record models."""

import hashlib
import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictInt


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


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (ISO 8601's other forms, and naive times, are refused)."""
    if not RFC3339.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp (e.g. 2026-04-20T01:00:00Z)")
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))


def _version_one(value: int) -> int:
    if value != 1:
        raise ValueError(f"schema_version {value} is not supported (this reader knows version 1)")
    return value


# Literal[1] lets JSON true and 1.0 through even in strict mode; a strict int does not.
SchemaVersionOne = Annotated[StrictInt, AfterValidator(_version_one)]
