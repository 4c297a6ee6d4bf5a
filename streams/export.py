"""Writing the datasets: live values of the output topics, sorted by id, with a receipt."""

import hashlib
from pathlib import Path

import orjson

from streams import kafka_io
from streams.settings import DistillSettings

EXPORT_FILES = {
    "rag": ("rag-samples", "rag/samples.jsonl"),
    "sft": ("sft-samples", "sft/samples.jsonl"),
    "preference": ("preference-pairs", "preference/chosen_rejected.jsonl"),
    "quarantine": ("quarantine", "quarantine/records.jsonl"),
}


async def export(settings: DistillSettings, out: Path, kinds: list[str]) -> dict:
    """Export ``kinds`` into ``out`` and return (and write) the receipt (``TopicsMissing``,
    and nothing written, for topics that do not exist: empty files would look like a result)."""
    await kafka_io.require_topics(settings, [settings.topic(EXPORT_FILES[kind][0]) for kind in kinds])
    receipt: dict = {"files": {}, "offsets": {}, "options": settings.options(), "topic_prefix": settings.topic_prefix}
    for kind in kinds:
        topic, relative = EXPORT_FILES[kind]
        live, offsets = await kafka_io.latest_values(settings, settings.topic(topic))
        # Samples and quarantine records carry their id as key, so key order is id order.
        rows = [live[key] for key in sorted(live)]
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        body = b"".join(orjson.dumps(orjson.loads(row)) + b"\n" for row in rows)
        path.write_bytes(body)
        receipt["files"][relative] = {"count": len(rows), "sha256": hashlib.sha256(body).hexdigest()}
        receipt["offsets"][settings.topic(topic)] = offsets
    (out / "receipt.json").write_bytes(orjson.dumps(receipt, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return receipt
