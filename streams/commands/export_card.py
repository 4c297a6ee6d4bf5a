"""The dataset card of an export folder: ``README.md`` whose front matter ``datasets`` reads.

The ``configs:`` list names one config per layout written, with its file as the ``train``
split, so ``load_dataset(DIR, "sft")`` needs no other argument; ``dataset_info:`` gives
each config its features (the Arrow schema of ``export_schemas``), so the JSONL files
load with the same types as the Parquet ones (times as UTC timestamps).

``datasets`` reads every config of a folder with the builder of the first config's files,
so the configs are all of one format: the JSONL files where the export wrote JSONL, the
Parquet files where it wrote only Parquet (then the JSONL-only OpenAI files are no config).
A pure function of what was exported.
"""

import re
from dataclasses import dataclass
from typing import Any

import orjson

from streams.commands.export_formats import Layout

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


@dataclass(frozen=True)
class CardEntry:
    layout: Layout
    files: dict[str, str]  # format ("jsonl", "parquet") -> path in the folder
    count: int
    features: list[dict[str, Any]]


def _scalar(value: Any) -> str:
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return orjson.dumps(value).decode()  # JSON strings and numbers are YAML too


def yaml_lines(value: Any, indent: str = "") -> list[str]:
    """Block-style YAML of dicts, lists and scalars (all this card needs)."""
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines += [f"{indent}{key}:", *yaml_lines(item, indent + "  ")]
            else:
                lines.append(f"{indent}{key}: {_scalar(item)}")
    else:
        for item in value:
            nested = yaml_lines(item, indent + "  ") if isinstance(item, dict | list) else [indent + "  " + _scalar(item)]
            lines += [f"{indent}- {nested[0].lstrip()}", *nested[1:]]
    return lines


def config_format(entries: list[CardEntry]) -> str:
    """The one file format of the configs: JSONL if the export wrote any, else Parquet."""
    return "jsonl" if any("jsonl" in e.files for e in entries if e.layout.columnar) else "parquet"


def front_matter(entries: list[CardEntry]) -> dict[str, Any]:
    fmt = config_format(entries)
    configs = [e for e in entries if fmt in e.files]
    return {
        "pretty_name": "distill-streams export",
        "configs": [
            {"config_name": e.layout.name, "data_files": [{"split": "train", "path": e.files[fmt]}]} for e in configs
        ],
        "dataset_info": [{"config_name": e.layout.name, "features": e.features} for e in configs],
    }


NOTES = """\
## Types

- Every time is a UTC timestamp (`timestamp[us, tz=UTC]`) in the Parquet files and, through
  the features above, when `datasets` loads a JSONL file. In the JSONL files themselves a
  time is the RFC 3339 string of the record; to read one with `pyarrow.json` and keep the
  types, pass the schema: `ParseOptions(explicit_schema=pyarrow.parquet.read_schema(...))`
  of an export with `--format both`.
- `quarantine`: `source_record` is the original input object as a JSON string (its fields
  have whatever types the bad input had, so as objects they would not share one type);
  `json.loads` gives it back. It is null where the input was no JSON object (`raw` then has
  its bytes in base64). The quarantine topic's record keeps the object itself (SPEC 7). `source_provenance.recorded_at` is the input's time in
  UTC, or null where the input left it empty or wrote something that is not a time (the
  original is in `source_record`).
- In the sample files `provenance.recorded_at` is the scored run's; a value that is not
  RFC 3339 is null in a Parquet file.
- Rows are sorted by `id`. Every row of a file has the same columns, nested ones included.
"""


def card(entries: list[CardEntry], program_version: str, topic_prefix: str) -> bytes:
    """The card's bytes: the same export gives the same card (no time, no folder name in it)."""
    fmt = config_format(entries)
    rows = "\n".join(
        f"| {f'`{e.layout.name}`' if fmt in e.files else '(no config)'} | {', '.join(f'`{p}`' for p in e.files.values())} "
        f"| {e.count} | {e.layout.summary} |"
        for e in entries
    )
    first = entries[0].layout.name if entries else "sft"
    text = "\n".join([
        "---", *yaml_lines(front_matter(entries)), "---", "",
        "# Datasets exported by distill-streams", "",
        f"Written by `distill export` (distill-streams {program_version}) from the output topics of prefix",
        f"`{topic_prefix}`. `receipt.json` beside this card lists every file with its rows, bytes and",
        "sha256, the schema versions and the topic offsets read.", "",
        "| config | files | rows | what |", "| --- | --- | ---: | --- |", rows, "",
        *(["A file of no config loads with `load_dataset(\"json\", data_files=PATH, split=\"train\")`.", ""]
          if any(fmt not in e.files for e in entries) else []),
        f"Each config is one {dict(jsonl='JSONL', parquet='Parquet')[fmt]} file, loaded as the `train` split "
        "(`datasets` reads all configs of a folder in one file format):", "",
        "```python", "from datasets import load_dataset", "",
        f'rows = load_dataset("path/to/this/folder", "{first}", split="train")', "```", "",
        NOTES,
    ])
    return text.encode()
