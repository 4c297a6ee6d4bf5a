"""The exported rows, schemas and card, from records shaped as the output topics hold them."""

from datetime import UTC, datetime

import orjson
import pytest
import yaml

from schemas import ChatMessage, PreferenceSample, Provenance, QuarantineRecord, QuarantineSource, RagSample, SftSample
from schemas.codec import encode
from streams.commands import export_schemas
from streams.commands.export_card import CardEntry, card, front_matter
from streams.commands.export_formats import LAYOUTS, jsonl, layouts_for
from streams.errors import ExportShapeError
from streams.rules.quarantine import SourceMessage, quarantine_record

PROVENANCE = Provenance(
    source_file="data/scored-runs/2026/04/20/scrum_reviews.jsonl", line_offset=19, sig_hash="ab" * 32,
    recorded_at="2026-04-20T06:26:50Z",
)


def topic_record(model) -> dict:
    """A record as `export` decodes it from its topic."""
    return orjson.loads(encode(model))


RAG = topic_record(RagSample(
    id="rag-003700594074a12c", run_id="run-000011", task_id="scrum_review:src/api/handlers.rs", text="Review.",
    source_category="scrum_reviews", source_files=["src/api/handlers.rs"], quality="accepted",
    created_at="2026-04-20T06:26:50Z", provenance=PROVENANCE,
))
SFT = topic_record(SftSample(
    id="sft-0053141d3b07da69", run_id="run-000465", task_id="scrum_review:a.ts",
    messages=(ChatMessage(role="user", content="Task: scrum_review:a.ts · file=a.ts"),
              ChatMessage(role="assistant", content="Review pass over a.ts.")),
    quality_score="accepted", created_at="2026-04-20T08:26:50+02:00", provenance=PROVENANCE,
))
PAIR = topic_record(PreferenceSample(
    id="pref-00b7f4a8d53eb729", prompt="Task: observer:schema-drift-watch-59", chosen="Escalation review.",
    rejected="Observer note.", reason="accepted over rejected", chosen_run_id="run-000001",
    rejected_run_id="run-000002", created_at="2026-04-20T06:26:50Z", provenance=PROVENANCE,
))


def quarantined(source_record, recorded_at="") -> dict:
    source = SourceMessage(topic="distill.scored-runs", partition=1, offset=39, key="run-000075",
                           timestamp_ms=1_796_156_210_135)
    return topic_record(quarantine_record(
        stage="input", reason="schema_violation", subject=source.coordinates, errors=["text: Input should be a valid string"],
        source=source, run_id="run-000075", task_id=None, source_record=source_record,
        source_provenance=PROVENANCE.model_copy(update={"recorded_at": recorded_at}),
    ))


RECORDS = {"rag": RAG, "sft": SFT, "preference": PAIR, "quarantine": quarantined({"text": 7})}


def test_the_default_files_hold_the_topic_records_as_they_were_written():
    for name in ("rag", "sft", "preference"):
        record = RECORDS[name]
        assert LAYOUTS[name].to_row(record) == record
        assert jsonl([LAYOUTS[name].to_row(record)]) == orjson.dumps(record) + b"\n"


def test_trl_preference_rows_are_conversational_with_the_sft_message_shape():
    row = LAYOUTS["preference_trl"].to_row(PAIR)
    assert row["prompt"] == [{"role": "user", "content": PAIR["prompt"]}]
    assert row["chosen"] == [{"role": "assistant", "content": PAIR["chosen"]}]
    assert row["rejected"] == [{"role": "assistant", "content": PAIR["rejected"]}]
    assert list(row) == list(PAIR)  # the same columns, in the same order
    assert {k: v for k, v in row.items() if k not in ("prompt", "chosen", "rejected")} == {
        k: v for k, v in PAIR.items() if k not in ("prompt", "chosen", "rejected")}
    assert {tuple(m) for m in row["prompt"] + row["chosen"]} == {tuple(m) for m in SFT["messages"]}


def test_openai_sft_lines_hold_only_messages():
    assert LAYOUTS["sft_openai"].to_row(SFT) == {"messages": SFT["messages"]}


def test_openai_preference_lines_have_the_dpo_shape():
    assert LAYOUTS["preference_openai"].to_row(PAIR) == {
        "input": {"messages": [{"role": "user", "content": PAIR["prompt"]}]},
        "preferred_output": [{"role": "assistant", "content": PAIR["chosen"]}],
        "non_preferred_output": [{"role": "assistant", "content": PAIR["rejected"]}],
    }


@pytest.mark.parametrize("original", [{"text": 7, "reasons": "one"}, {"text": "x", "reasons": ["a"]}, {}, None])
def test_quarantine_source_record_is_its_json_text(original):
    record = quarantined(original, "2026-04-20T06:26:50Z")
    row = LAYOUTS["quarantine"].to_row(record)
    assert row["source_record"] == (None if original is None else orjson.dumps(original).decode())
    assert (None if row["source_record"] is None else orjson.loads(row["source_record"])) == original
    assert row | {"source_record": original} == record  # nothing else changes


@pytest.mark.parametrize(("recorded_at", "in_file"), [
    ("", None), ("yesterday", None), ("2026-04-20T06:26:50Z", "2026-04-20T06:26:50Z"),
    ("2026-04-20T08:26:50+02:00", "2026-04-20T06:26:50Z"), ("2026-04-20 06:26:50.5z", "2026-04-20T06:26:50.500000Z"),
])
def test_quarantine_provenance_time_is_utc_or_null(recorded_at, in_file):
    row = LAYOUTS["quarantine"].to_row(quarantined({"text": 7}, recorded_at))
    assert row["source_provenance"]["recorded_at"] == in_file
    assert row["recorded_at"] == "2026-12-01T20:16:50.135Z"  # the Kafka time, as the record has it


def test_layouts_follow_the_flags_and_the_kinds():
    def names(kinds, preference_format="plain", openai=False):
        return [layout.name for layout in layouts_for(kinds, preference_format, openai)]

    assert names(["rag", "sft", "preference", "quarantine"]) == ["rag", "sft", "preference", "quarantine"]
    assert names(["preference"], "trl") == ["preference_trl"]
    assert names(["sft", "preference"], "both", True) == [
        "sft", "sft_openai", "preference", "preference_trl", "preference_openai"]
    assert names(["rag"], "both", True) == ["rag"]


MODELS = {"rag": RagSample, "sft": SftSample, "preference": PreferenceSample, "quarantine": QuarantineRecord}


def test_schemas_have_the_record_models_fields_in_their_order():
    for name, model in MODELS.items():
        assert export_schemas.SCHEMAS[name].names == list(model.model_fields)
    assert export_schemas.SCHEMAS["preference_trl"].names == list(PreferenceSample.model_fields)
    assert [f.name for f in export_schemas.PROVENANCE] == list(Provenance.model_fields)
    source = export_schemas.SCHEMAS["quarantine"].field("source").type
    assert [f.name for f in source] == list(QuarantineSource.model_fields)


def test_every_row_has_exactly_the_columns_of_its_schema():
    for layout in LAYOUTS.values():
        row = layout.to_row(RECORDS[layout.kind])
        assert list(row) == export_schemas.SCHEMAS[layout.name].names, layout.name


def test_tables_type_times_as_utc_from_the_rows():
    table = export_schemas.table("sft", [LAYOUTS["sft"].to_row(SFT)])
    assert table.schema == export_schemas.SCHEMAS["sft"]
    (row,) = table.to_pylist()
    assert row["created_at"] == datetime(2026, 4, 20, 6, 26, 50, tzinfo=UTC)
    assert row["provenance"]["recorded_at"] == datetime(2026, 4, 20, 6, 26, 50, tzinfo=UTC)
    assert row["messages"] == SFT["messages"]
    (q,) = export_schemas.table("quarantine", [LAYOUTS["quarantine"].to_row(quarantined({"a": 1}))]).to_pylist()
    assert q["source_provenance"]["recorded_at"] is None
    assert q["recorded_at"] == datetime(2026, 12, 1, 20, 16, 50, 135000, tzinfo=UTC)


def test_a_field_the_schema_lacks_is_refused_not_dropped():
    with pytest.raises(ExportShapeError, match=r"sft\.provenance: field\(s\) extra"):
        export_schemas.table("sft", [SFT | {"provenance": SFT["provenance"] | {"extra": 1}}])
    with pytest.raises(ExportShapeError, match="weight"):
        export_schemas.table("rag", [RAG | {"weight": 1.0}])


def test_card_features_are_what_datasets_writes_and_reads():
    from datasets import Features

    for name, schema in export_schemas.SCHEMAS.items():
        features = export_schemas.card_features(name)
        assert features == Features.from_arrow_schema(schema)._to_yaml_list(), name
        assert Features._from_yaml_list(features).arrow_schema == schema, name


def entries(formats: dict[str, list[str]]) -> list[CardEntry]:
    return [
        CardEntry(LAYOUTS[name], {ext: LAYOUTS[name].path(ext) for ext in exts}, 2, export_schemas.card_features(name))
        for name, exts in formats.items()
    ]


def test_card_front_matter_is_yaml_with_one_config_per_layout():
    written = entries({"sft": ["jsonl", "parquet"], "sft_openai": ["jsonl"], "quarantine": ["jsonl", "parquet"]})
    text = card(written, "0.1.0", "distill.").decode()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta == front_matter(written)
    assert [c["config_name"] for c in meta["configs"]] == ["sft", "sft_openai", "quarantine"]
    assert [c["data_files"] for c in meta["configs"]] == [
        [{"split": "train", "path": "sft/samples.jsonl"}], [{"split": "train", "path": "openai/sft.jsonl"}],
        [{"split": "train", "path": "quarantine/records.jsonl"}]]
    assert [i["features"] for i in meta["dataset_info"]] == [export_schemas.card_features(n) for n in ("sft", "sft_openai", "quarantine")]
    assert "`source_record` is the original input" in text and "JSON string" in text
    assert card(written, "0.1.0", "distill.") == text.encode()


def test_card_of_a_parquet_only_export_has_parquet_configs_only():
    written = entries({"sft": ["parquet"], "sft_openai": ["jsonl"]})
    meta = front_matter(written)
    assert meta["configs"] == [{"config_name": "sft", "data_files": [{"split": "train", "path": "sft/samples.parquet"}]}]
    assert "(no config) | `openai/sft.jsonl`" in card(written, "0.1.0", "distill.").decode()
