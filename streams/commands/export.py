"""Writing the datasets: live values of the output topics, sorted by id, in the layouts and
file formats asked for, with a dataset card and a receipt.

The rows come from ``export_formats`` (pure), their types from ``export_schemas``; this
module reads the topics and writes the files. Nothing here reads a clock: exporting twice
with no new input gives the same bytes in every file, the receipt and the card included.
"""

import hashlib
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import orjson

from schemas import preference_sample, provenance, quarantine_record, rag_sample, sft_sample
from streams.broker import kafka_io
from streams.commands.evalset import registered_sets
from streams.commands.export_card import CardEntry, card
from streams.commands.export_formats import KINDS, TOPICS, jsonl, layouts_for
from streams.settings import DistillSettings

# 1: the receipt before it said how its files were made (no version of its own);
# 2: before it named the evaluation sets the datasets were cleaned against (``eval_sets``).
RECEIPT_FORMAT_VERSION = 3
SCHEMA_VERSIONS = {
    "rag": {"RagSample": rag_sample.SCHEMA_VERSION},
    "sft": {"SftSample": sft_sample.SCHEMA_VERSION},
    "preference": {"PreferenceSample": preference_sample.SCHEMA_VERSION},
    "quarantine": {"QuarantineRecord": quarantine_record.SCHEMA_VERSION},
}
OFFSETS_ARE = (
    "Per topic and partition, the offset the export read up to, excluded: the partition's end "
    "(last stable offset, as a read_committed consumer sees it) when the export began reading that topic, "
    "i.e. the offset of the next message. Not a count of records: compaction removes records below it and "
    "transaction markers take offsets of their own."
)
FILE_FORMATS = ("jsonl", "parquet", "both")
PREFERENCE_FORMATS = ("plain", "trl", "both")


@dataclass(frozen=True)
class ExportOptions:
    """What to write beside (or instead of) the default files of SPEC 9."""

    file_format: str = "jsonl"  # jsonl | parquet | both (the OpenAI files are JSONL whatever this says)
    preference_format: str = "plain"  # plain | trl | both
    openai: bool = False
    card: bool = True

    def extensions(self, columnar: bool) -> list[str]:
        if not columnar:
            return ["jsonl"]
        return {"jsonl": ["jsonl"], "parquet": ["parquet"], "both": ["jsonl", "parquet"]}[self.file_format]


def program_version() -> str:
    try:
        return metadata.version("distill-streams")
    except metadata.PackageNotFoundError:  # a checkout run without installing it
        return "0+unknown"


def _parquet(table) -> bytes:
    """Parquet bytes of an Arrow table: the same table gives the same bytes (no time in the footer)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def _write(out: Path, relative: str, body: bytes) -> dict:
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


async def export(
    settings: DistillSettings, out: Path, kinds: list[str], options: ExportOptions = ExportOptions()
) -> dict:
    """Export ``kinds`` into ``out`` and return (and write) the receipt (``TopicsMissing``,
    and nothing written, for topics that do not exist: empty files would look like a result)."""
    # pyarrow loads when an export runs, not with every `distill` command (the worker's among them).
    from streams.commands import export_schemas

    await kafka_io.require_topics(settings, [settings.topic(TOPICS[kind]) for kind in kinds])
    records: dict[str, list[dict]] = {}
    offsets: dict[str, dict[str, int]] = {}
    for kind in [k for k in KINDS if k in kinds]:
        topic = settings.topic(TOPICS[kind])
        live, offsets[topic] = await kafka_io.latest_values(settings, topic)
        # Samples and quarantine records carry their id as key, so key order is id order.
        records[kind] = [orjson.loads(live[key]) for key in sorted(live)]

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}
    entries: list[CardEntry] = []
    for layout in layouts_for(list(records), options.preference_format, options.openai):
        rows = [layout.to_row(record) for record in records[layout.kind]]
        table = export_schemas.table(layout.name, rows)  # every row checked against the file's schema
        written = {}
        for extension in options.extensions(layout.columnar):
            relative = layout.path(extension)
            body = jsonl(rows) if extension == "jsonl" else _parquet(table)
            files[relative] = {"config": layout.name, "format": extension, "count": len(rows), **_write(out, relative, body)}
            written[extension] = relative
        entries.append(CardEntry(layout, written, len(rows), export_schemas.card_features(layout.name)))

    receipt: dict = {
        "format_version": RECEIPT_FORMAT_VERSION,
        "program": {"name": "distill-streams", "version": program_version()},
        "schema_versions": {
            name: version for kind in records for name, version in SCHEMA_VERSIONS[kind].items()
        } | {"Provenance": provenance.SCHEMA_VERSION},
        "export": {"kinds": list(records), **asdict(options)},
        "files": files,
        "offsets": offsets,
        "offsets_are": OFFSETS_ARE,
        "options": settings.options(),
        "eval_sets": await registered_sets(settings),
        "topic_prefix": settings.topic_prefix,
    }
    if options.card:
        receipt["card"] = {"path": "README.md", **_write(out, "README.md", card(entries, program_version(), settings.topic_prefix))}
    (out / "receipt.json").write_bytes(orjson.dumps(receipt, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return receipt
