"""The demo's export in every layout and file format, loaded as the trainers' tools load it.

One worker runs on the bundled sample once (module fixture); the folder is exported four
ways: with no flags, with every flag (API), with every flag again (CLI), and Parquet only.
Each file is then loaded with ``datasets`` (the pinned version here, the oldest claimed in
a venv of its own) and with ``pyarrow`` directly, and its features compared with the exact
columns and types below: a change of shape fails here.
"""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import orjson
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest
import yaml

from streams.broker import kafka_io
from streams.commands import export_schemas
from streams.commands.export import ExportOptions, export
from streams.commands.export_formats import KINDS
from streams.commands.ingest import publish_files
from streams.commands.manifest_publish import manifest_paths, publish_manifest
from streams.commands.wait import wait_caught_up
from streams.settings import DistillSettings
from tests.integration.conftest import GUARANTEE, SAMPLE_DATA, running_worker
from tests.integration.old_datasets import OLD_DATASETS, old_datasets_python

pytestmark = pytest.mark.integration

TIME = "timestamp[us, tz=UTC]"
MESSAGES = "list<item: struct<role: string, content: string>>"
PROVENANCE = f"struct<source_file: string, line_offset: int64, sig_hash: string, recorded_at: {TIME}>"
PAIR_META = [("reason", "string"), ("chosen_run_id", "string"), ("rejected_run_id", "string"),
             ("created_at", TIME), ("provenance", PROVENANCE)]
EXPECTED = {
    "rag": [("schema_version", "int64"), ("id", "string"), ("run_id", "string"), ("task_id", "string"),
            ("text", "string"), ("source_category", "string"), ("source_files", "list<item: string>"),
            ("quality", "string"), ("created_at", TIME), ("provenance", PROVENANCE)],
    "sft": [("schema_version", "int64"), ("id", "string"), ("run_id", "string"), ("task_id", "string"),
            ("messages", MESSAGES), ("quality_score", "string"), ("created_at", TIME), ("provenance", PROVENANCE)],
    "sft_openai": [("messages", MESSAGES)],
    "preference": [("schema_version", "int64"), ("id", "string"), ("prompt", "string"), ("chosen", "string"),
                   ("rejected", "string"), *PAIR_META],
    "preference_trl": [("schema_version", "int64"), ("id", "string"), ("prompt", MESSAGES), ("chosen", MESSAGES),
                       ("rejected", MESSAGES), *PAIR_META],
    "preference_openai": [("input", f"struct<messages: {MESSAGES}>"), ("preferred_output", MESSAGES),
                          ("non_preferred_output", MESSAGES)],
    "quarantine": [("schema_version", "int64"), ("id", "string"), ("stage", "string"), ("reason", "string"),
                   ("errors", "list<item: string>"), ("run_id", "string"), ("task_id", "string"),
                   ("source_record", "string"), ("raw", "string"),
                   ("source", "struct<topic: string, partition: int64, offset: int64, key: string>"),
                   ("source_provenance", PROVENANCE), ("recorded_at", TIME)],
}
COLUMNAR = ["rag", "sft", "preference", "preference_trl", "quarantine"]
EVERYTHING = ExportOptions(file_format="both", preference_format="both", openai=True)


def columns(schema) -> list[tuple[str, str]]:
    return [(field.name, str(field.type)) for field in schema]


def in_parquet(name: str) -> list[tuple[str, str]]:
    """The columns read back from a Parquet file: its lists' items are named ``element``, as
    the Parquet format names them (pyarrow writes compliant nested types); ``datasets``
    casts them back to ``item``."""
    return [(column, type_.replace("list<item: ", "list<element: ")) for column, type_ in EXPECTED[name]]


def card_configs(folder: Path) -> dict[str, str]:
    meta = yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])
    return {c["config_name"]: c["data_files"][0]["path"] for c in meta["configs"]}


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
async def demo(broker, tmp_path_factory):
    """The bundled sample through one worker, exported four ways; the topics as they were."""
    root = tmp_path_factory.mktemp("export-files")
    settings = DistillSettings(
        bootstrap=broker, topic_prefix=f"it.export-files-{os.urandom(4).hex()}.", data_dir=root / "data",
        web_enabled=False, pair_idle_close=2.0, processing_guarantee=GUARANTEE, log_level="info",
    )
    try:
        await publish_manifest(settings, manifest_paths(SAMPLE_DATA / "manifest.txt"))
        await publish_files(settings, {"evidence": [SAMPLE_DATA / "evidence.jsonl"], "scored-runs": [SAMPLE_DATA / "scores.jsonl"]})
        async with running_worker(settings):
            await wait_caught_up(settings, 180)
        topics = {}
        for kind, topic in (("rag", "rag-samples"), ("sft", "sft-samples"), ("preference", "preference-pairs"),
                            ("quarantine", "quarantine")):
            live, _ = await kafka_io.latest_values(settings, settings.topic(topic))
            topics[kind] = [live[key] for key in sorted(live)]
        await export(settings, root / "default", list(KINDS))
        await export(settings, root / "everything", list(KINDS), EVERYTHING)
        await export(settings, root / "parquet", list(KINDS), ExportOptions(file_format="parquet", preference_format="both", openai=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_")} | {
            "DISTILL_BOOTSTRAP": broker, "DISTILL_TOPIC_PREFIX": settings.topic_prefix, "DISTILL_DATA_DIR": str(settings.data_dir),
            "DISTILL_PAIR_IDLE_CLOSE": "2"}
        cli = subprocess.run(
            [sys.executable, "-m", "streams", "export", "--out", str(root / "again"), "--format", "both",
             "--preference-format", "both", "--openai", "--json"], env=env, capture_output=True, text=True, timeout=300)
        assert cli.returncode == 0, cli.stderr
        yield {"root": root, "topics": topics, "cli_receipt": orjson.loads(cli.stdout)}
    finally:
        await kafka_io.delete_prefixed(settings)


def test_default_files_are_todays_bytes_and_quarantine_keeps_its_record(demo):
    default, topics = demo["root"] / "default", demo["topics"]
    for kind, relative in (("rag", "rag/samples.jsonl"), ("sft", "sft/samples.jsonl"),
                           ("preference", "preference/chosen_rejected.jsonl")):
        assert (default / relative).read_bytes() == b"".join(orjson.dumps(orjson.loads(v)) + b"\n" for v in topics[kind])
    assert sorted(p.relative_to(default).as_posix() for p in default.rglob("*") if p.is_file()) == [
        "README.md", "preference/chosen_rejected.jsonl", "quarantine/records.jsonl", "rag/samples.jsonl",
        "receipt.json", "sft/samples.jsonl"]
    rows, records = lines(default / "quarantine/records.jsonl"), [orjson.loads(v) for v in topics["quarantine"]]
    assert len(rows) == len(records) and any(r["source_provenance"] and r["source_provenance"]["recorded_at"] == ""
                                             for r in records), "the demo has inputs without a recorded_at"
    for row, record in zip(rows, records, strict=True):
        original = None if row["source_record"] is None else orjson.loads(row["source_record"])
        assert original == record["source_record"]
        provenance = record["source_provenance"]
        if provenance is not None and provenance["recorded_at"] == "":
            provenance = provenance | {"recorded_at": None}  # the demo's other times are UTC already
        assert row["source_provenance"] == provenance
        assert row | {"source_record": original, "source_provenance": record["source_provenance"]} == record


def test_exporting_again_gives_the_same_bytes_in_every_file(demo):
    first, again = demo["root"] / "everything", demo["root"] / "again"
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    assert {"README.md", "receipt.json", "sft/samples.parquet", "openai/preference.jsonl"} <= set(files)
    for relative in files:
        assert (first / relative).read_bytes() == (again / relative).read_bytes(), relative


def test_receipt_says_how_the_files_were_made(demo):
    folder = demo["root"] / "everything"
    receipt = orjson.loads((folder / "receipt.json").read_bytes())
    assert receipt == demo["cli_receipt"]
    assert receipt["format_version"] == 3
    assert receipt["eval_sets"] == {"version": "", "sets": {}}
    assert receipt["program"] == {"name": "distill-streams", "version": metadata.version("distill-streams")}
    assert receipt["schema_versions"] == {"RagSample": 1, "SftSample": 1, "PreferenceSample": 1,
                                          "QuarantineRecord": 1, "Provenance": 1}
    assert receipt["export"] == {"kinds": list(KINDS), "file_format": "both", "preference_format": "both",
                                 "openai": True, "card": True}
    assert "not a count" in receipt["offsets_are"].lower() and "next message" in receipt["offsets_are"]
    import hashlib

    for relative, info in [*receipt["files"].items(), (receipt["card"]["path"], receipt["card"])]:
        body = (folder / relative).read_bytes()
        assert info["bytes"] == len(body) and info["sha256"] == hashlib.sha256(body).hexdigest(), relative
    assert {i["config"] for i in receipt["files"].values()} == set(EXPECTED)
    assert len(receipt["files"]) == 2 * len(COLUMNAR) + 2
    for topic, partitions in receipt["offsets"].items():
        assert topic.startswith(receipt["topic_prefix"]) and all(end > 0 for end in partitions.values())


def test_pyarrow_reads_every_file_with_its_exact_schema(demo):
    folder = demo["root"] / "everything"
    for name in COLUMNAR:
        stem = folder / card_configs(folder)[name].removesuffix(".jsonl")
        table = pq.read_table(f"{stem}.parquet")
        assert columns(table.schema) == in_parquet(name), name
        inferred = pj.read_json(f"{stem}.jsonl")  # with no schema, as any reader would: it loads
        assert inferred.column_names == [c for c, _ in EXPECTED[name]] and inferred.num_rows == table.num_rows
        typed = pj.read_json(f"{stem}.jsonl", parse_options=pj.ParseOptions(explicit_schema=table.schema))
        assert typed.equals(table), name  # the JSONL and the Parquet file hold the same rows
    for name, relative in (("sft_openai", "openai/sft.jsonl"), ("preference_openai", "openai/preference.jsonl")):
        assert columns(pj.read_json(folder / relative).schema) == EXPECTED[name]
    # One type for provenance.recorded_at in sample and quarantine files, even when inferred.
    inferred = {name: pj.read_json(folder / card_configs(folder)[name]).schema for name in ("sft", "quarantine")}
    assert inferred["sft"].field("provenance").type.field("recorded_at").type == \
        inferred["quarantine"].field("source_provenance").type.field("recorded_at").type


def load_all(folder: Path, cache: Path) -> dict:
    import datasets

    loaded = {}
    for name in card_configs(folder):
        rows = datasets.load_dataset(str(folder), name, split="train", cache_dir=str(cache))
        loaded[name] = rows
    return loaded


def test_datasets_loads_every_config_of_every_export_with_the_exact_features(demo, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import Features

    root = demo["root"]
    assert set(card_configs(root / "default")) == {"rag", "sft", "preference", "quarantine"}
    assert set(card_configs(root / "everything")) == set(EXPECTED)
    assert all(p.endswith(".jsonl") for p in card_configs(root / "everything").values())
    assert set(card_configs(root / "parquet")) == set(COLUMNAR)
    assert all(p.endswith(".parquet") for p in card_configs(root / "parquet").values())
    receipt = orjson.loads((root / "everything" / "receipt.json").read_bytes())
    counts = {info["config"]: info["count"] for info in receipt["files"].values()}
    by_export = {name: load_all(root / name, tmp_path / "cache") for name in ("default", "everything", "parquet")}
    for export_name, loaded in by_export.items():
        for name, rows in loaded.items():
            assert columns(rows.data.schema) == EXPECTED[name], (export_name, name)
            assert rows.features == Features.from_arrow_schema(export_schemas.SCHEMAS[name]), (export_name, name)
            assert rows.num_rows == counts[name], (export_name, name)
    for name in COLUMNAR:  # JSONL through the card and Parquet give the same rows
        assert by_export["everything"][name].to_list() == by_export["parquet"][name].to_list(), name
    created = by_export["default"]["sft"][0]["created_at"]
    assert created.tzinfo is not None and created.utcoffset().total_seconds() == 0


def test_the_oldest_claimed_datasets_loads_every_config_alike(demo, tmp_path):
    python = old_datasets_python()
    folders = [str(demo["root"] / name) for name in ("default", "everything", "parquet")]
    script = Path(__file__).with_name("old_datasets_loader.py")
    done = subprocess.run([str(python), str(script), str(tmp_path / "cache"), *folders], capture_output=True, text=True,
                          timeout=600, env={k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {
                              "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 0, done.stderr[-3000:]
    report = orjson.loads(done.stdout)
    assert report["datasets"] == OLD_DATASETS
    assert len(report["loaded"]) == 4 + len(EXPECTED) + len(COLUMNAR)
    for key, loaded in report["loaded"].items():
        name = key.split(":")[1]
        assert [tuple(c) for c in loaded["columns"]] == EXPECTED[name], key
    for key, read in report["parquet"].items():
        name = key.split(":")[1]
        assert [tuple(c) for c in read] == in_parquet(name), key


def test_trl_rows_and_openai_lines_have_the_documented_shapes(demo):
    folder = demo["root"] / "everything"
    plain = lines(folder / "preference/chosen_rejected.jsonl")
    trl = lines(folder / "preference_trl/chosen_rejected.jsonl")
    sft = lines(folder / "sft/samples.jsonl")
    assert len(trl) == len(plain) > 0
    message_keys = {tuple(m) for row in sft for m in row["messages"]}
    for conversational, row in zip(trl, plain, strict=True):
        # TRL's conversational preference: prompt a list of messages ending with the user's turn,
        # chosen and rejected lists of assistant messages, each message {role, content}.
        assert [m["role"] for m in conversational["prompt"]] == ["user"]
        assert [m["role"] for m in conversational["chosen"]] == ["assistant"] == [m["role"] for m in conversational["rejected"]]
        messages = conversational["prompt"] + conversational["chosen"] + conversational["rejected"]
        assert {tuple(m) for m in messages} == message_keys == {("role", "content")}
        assert [m["content"] for m in messages] == [row["prompt"], row["chosen"], row["rejected"]]
        assert not {"messages", "completion", "text", "label"} & set(conversational)  # no other TRL type's keys
    openai_sft = lines(folder / "openai/sft.jsonl")
    assert [line["messages"] for line in openai_sft] == [row["messages"] for row in sft]
    for line in openai_sft:
        # Chat fine-tuning lines: `messages` only; roles system/user/assistant; the last turn the assistant's.
        assert set(line) == {"messages"}
        assert all(set(m) == {"role", "content"} and m["role"] in {"system", "user", "assistant"} and m["content"]
                   for m in line["messages"])
        assert line["messages"][-1]["role"] == "assistant"
    openai_pairs = lines(folder / "openai/preference.jsonl")
    assert len(openai_pairs) == len(plain)
    for line, row in zip(openai_pairs, plain, strict=True):
        # Preference (DPO) lines: input.messages, and one assistant message on each side.
        assert set(line) == {"input", "preferred_output", "non_preferred_output"}
        assert set(line["input"]) == {"messages"}
        assert line["input"]["messages"] == [{"role": "user", "content": row["prompt"]}]
        assert line["preferred_output"] == [{"role": "assistant", "content": row["chosen"]}]
        assert line["non_preferred_output"] == [{"role": "assistant", "content": row["rejected"]}]
