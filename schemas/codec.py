"""Bytes in, models out (and back): the one place that touches JSON.

Agents and commands never call ``orjson`` or ``model_validate`` themselves; they call
``decode_input`` and ``encode``, so every record is decoded once, the same way.
"""

from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Undecodable:
    """Why a message could not become a model, with what could be read of it."""

    errors: list[str]
    source_record: dict[str, Any] | None  # the JSON object, when the bytes were one


def encode(model: BaseModel) -> bytes:
    """Compact JSON in field order: the same model always gives the same bytes."""
    return orjson.dumps(model.model_dump(mode="json"))


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def describe_validation_error(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '(record)'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    ]


def decode_object(data: bytes | None) -> dict[str, Any] | Undecodable:
    """Bytes to a JSON object, or the reason they are not one."""
    if data is None:
        return Undecodable(["message has no value (null); expected a JSON object"], None)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return Undecodable([f"not valid UTF-8 JSON: {exc}"], None)
    if not isinstance(obj, dict):
        return Undecodable([f"expected a JSON object, got {type(obj).__name__}"], None)
    return obj


def validate(model: type[M], obj: dict[str, Any]) -> M | Undecodable:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        return Undecodable(describe_validation_error(exc), obj)


def decode_input(model: type[M], data: bytes | None, max_bytes: int) -> M | Undecodable:
    """Decode one input message into ``model``, or say what is wrong with it."""
    if data is not None and len(data) > max_bytes:
        return Undecodable(
            [f"message is {len(data)} bytes, above the limit of {max_bytes} (DISTILL_MAX_RECORD_BYTES)"],
            None,
        )
    obj = decode_object(data)
    if isinstance(obj, Undecodable):
        return obj
    return validate(model, obj)
