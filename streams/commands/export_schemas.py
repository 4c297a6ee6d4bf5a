"""One explicit Arrow schema per exported layout, and the rows typed to it.

The Parquet files are written from these schemas, never from types inferred from the data;
the dataset card gives the same types to ``datasets`` for the JSONL files, so a config
loads with the same features from either. Every time is ``timestamp[us, tz=UTC]``; every
integer ``int64`` (what JSON readers make of a number); every field may be null (Arrow
readers such as ``datasets`` keep no nullability). Column order is the records' field order.
"""

from typing import Any

import pyarrow as pa

from streams.commands.export_formats import Row, utc_time
from streams.errors import ExportShapeError

TIME = pa.timestamp("us", tz="UTC")
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
PROVENANCE = pa.struct([
    ("source_file", pa.string()), ("line_offset", pa.int64()), ("sig_hash", pa.string()), ("recorded_at", TIME),
])
_PREFERENCE_META = [
    ("reason", pa.string()), ("chosen_run_id", pa.string()), ("rejected_run_id", pa.string()),
    ("created_at", TIME), ("provenance", PROVENANCE),
]

SCHEMAS: dict[str, pa.Schema] = {
    "rag": pa.schema([
        ("schema_version", pa.int64()), ("id", pa.string()), ("run_id", pa.string()), ("task_id", pa.string()),
        ("text", pa.string()), ("source_category", pa.string()), ("source_files", pa.list_(pa.string())),
        ("quality", pa.string()), ("created_at", TIME), ("provenance", PROVENANCE),
    ]),
    "sft": pa.schema([
        ("schema_version", pa.int64()), ("id", pa.string()), ("run_id", pa.string()), ("task_id", pa.string()),
        ("messages", MESSAGES), ("quality_score", pa.string()), ("created_at", TIME), ("provenance", PROVENANCE),
    ]),
    "sft_openai": pa.schema([("messages", MESSAGES)]),
    "preference": pa.schema([
        ("schema_version", pa.int64()), ("id", pa.string()),
        ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()), *_PREFERENCE_META,
    ]),
    "preference_trl": pa.schema([
        ("schema_version", pa.int64()), ("id", pa.string()),
        ("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES), *_PREFERENCE_META,
    ]),
    "preference_openai": pa.schema([
        ("input", pa.struct([("messages", MESSAGES)])), ("preferred_output", MESSAGES), ("non_preferred_output", MESSAGES),
    ]),
    "quarantine": pa.schema([
        ("schema_version", pa.int64()), ("id", pa.string()), ("stage", pa.string()), ("reason", pa.string()),
        ("errors", pa.list_(pa.string())), ("run_id", pa.string()), ("task_id", pa.string()),
        ("source_record", pa.string()), ("raw", pa.string()),
        ("source", pa.struct([
            ("topic", pa.string()), ("partition", pa.int64()), ("offset", pa.int64()), ("key", pa.string()),
        ])),
        ("source_provenance", PROVENANCE), ("recorded_at", TIME),
    ]),
}


def _typed(value: Any, type_: pa.DataType, where: str) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(type_):
        return utc_time(value)
    if pa.types.is_struct(type_):
        names = [field.name for field in type_]
        if unknown := [key for key in value if key not in names]:
            raise ExportShapeError(where, unknown)
        return {field.name: _typed(value.get(field.name), field.type, f"{where}.{field.name}") for field in type_}
    if pa.types.is_list(type_):
        return [_typed(item, type_.value_type, f"{where}[]") for item in value]
    return value


def table(layout: str, rows: list[Row]) -> pa.Table:
    """The rows of ``layout`` as an Arrow table of its schema (times parsed to UTC)."""
    schema = SCHEMAS[layout]
    row_type = pa.struct(list(schema))
    typed = [_typed(row, row_type, layout) for row in rows]
    return pa.Table.from_pylist(typed, schema=schema)


def _dtype(type_: pa.DataType) -> str:
    if pa.types.is_timestamp(type_):
        return f"timestamp[{type_.unit}, tz={type_.tz}]"
    return str(type_)


def _feature(type_: pa.DataType) -> dict[str, Any]:
    if pa.types.is_struct(type_):
        return {"struct": [{"name": field.name, **_feature(field.type)} for field in type_]}
    if pa.types.is_list(type_):
        inner = _feature(type_.value_type)
        return {"list": inner["dtype"] if "dtype" in inner else inner["struct"]}
    return {"dtype": _dtype(type_)}


def card_features(layout: str) -> list[dict[str, Any]]:
    """The schema of ``layout`` as the ``features`` list of a dataset card's ``dataset_info``."""
    return [{"name": field.name, **_feature(field.type)} for field in SCHEMAS[layout]]
