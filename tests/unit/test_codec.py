"""Bytes to input models and back (``schemas.codec``): every way an input can be unreadable.

Whatever ``decode_input`` refuses becomes a ``schema_violation`` record at stage ``input``
(SPEC 7), so each refusal must come with a readable error and, when the bytes were a JSON
object, that object.
"""

import pytest

from schemas import EvidenceRecord, ScoredRun
from schemas.codec import Undecodable, decode_input, encode
from tests.unit.records import ABSENT, encoded, make_evidence, make_provenance, make_score

MAX = 1_000_000
MODELS = {"evidence": (EvidenceRecord, make_evidence), "score": (ScoredRun, make_score)}


def refused(result) -> Undecodable:
    assert isinstance(result, Undecodable), f"expected a refusal, got {result!r}"
    assert result.errors, "a refusal must say why"
    assert all(isinstance(e, str) and e.strip() for e in result.errors)
    return result


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("data", [b"\xff\xfe", b"\xff\xfe{}", b"{\"run_id\": ", b"", b"not json", b"{'a': 1}"])
def test_bytes_that_are_not_json_are_refused(kind, data):
    model, _ = MODELS[kind]
    result = refused(decode_input(model, data, MAX))
    assert result.source_record is None


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("data", [b"[]", b"[{\"run_id\": \"r\"}]", b"\"a string\"", b"42", b"3.5", b"null", b"true"])
def test_json_that_is_not_an_object_is_refused(kind, data):
    model, _ = MODELS[kind]
    result = refused(decode_input(model, data, MAX))
    assert result.source_record is None
    assert any("object" in error for error in result.errors)


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_message_without_value_is_refused(kind):
    model, _ = MODELS[kind]
    assert refused(decode_input(model, None, MAX)).source_record is None


WRONG_TYPES = {
    "evidence": [
        ("schema_version", "1"),
        ("schema_version", 2),
        ("run_id", 17),
        ("run_id", ""),
        ("task_id", None),
        ("text", None),
        ("text", ["a", "b"]),
        ("source_files", "src/a.py"),
        ("source_files", [1, 2]),
        ("source_category", ""),
        ("provenance", "logs/evidence.jsonl"),
        ("provenance", make_provenance(line_offset="3")),
        ("provenance", make_provenance(line_offset=True)),
        ("provenance", make_provenance(line_offset=3.0)),
        ("provenance", make_provenance(sig_hash=123)),
    ],
    "score": [
        ("schema_version", "1"),
        ("reasons", "x"),
        ("reasons", [1]),
        ("category", "ACCEPTED"),
        ("category", "approved"),
        ("category", None),
        ("evidence_run_id", 5),
        ("scored_at", "yesterday"),
        ("scored_at", "2026-01-01T00:00:00"),  # no offset: the instant is unknown
        ("scored_at", 1767225600),
        ("provenance", make_provenance(line_offset="3")),
        ("provenance", make_provenance(line_offset=False)),
    ],
}


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [(kind, field, value) for kind, cases in WRONG_TYPES.items() for field, value in cases],
)
def test_wrong_types_and_unknown_categories_are_refused_with_the_field_named(kind, field, value):
    model, make = MODELS[kind]
    record = make(**{field: value})
    result = refused(decode_input(model, encoded(record), MAX))
    assert result.source_record == record
    assert any(field in error for error in result.errors), result.errors


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("value", [True, 1.0])
def test_bool_or_float_schema_version_is_refused(kind, value):
    model, make = MODELS[kind]
    refused(decode_input(model, encoded(make(schema_version=value)), MAX))


@pytest.mark.parametrize(("kind", "field"), [
    ("evidence", "schema_version"), ("evidence", "run_id"), ("evidence", "task_id"),
    ("evidence", "source_category"), ("evidence", "text"),
    ("score", "schema_version"), ("score", "evidence_run_id"), ("score", "evidence_task_id"),
    ("score", "category"), ("score", "reasons"), ("score", "scored_at"),
])
def test_a_missing_required_field_is_refused(kind, field):
    model, make = MODELS[kind]
    record = make(**{field: ABSENT})
    result = refused(decode_input(model, encoded(record), MAX))
    assert result.source_record == record
    assert any(field in error for error in result.errors), result.errors


@pytest.mark.parametrize(("kind", "field"), [("evidence", "provenance"), ("evidence", "source_files"),
                                              ("score", "provenance")])
def test_optional_fields_may_be_left_out(kind, field):
    model, make = MODELS[kind]
    assert isinstance(decode_input(model, encoded(make(**{field: ABSENT})), MAX), model)


@pytest.mark.parametrize("kind", list(MODELS))
def test_oversize_message_is_refused_before_parsing(kind):
    model, make = MODELS[kind]
    data = encoded(make())
    result = refused(decode_input(model, data, len(data) - 1))
    assert result.source_record is None
    assert any(str(len(data)) in error and str(len(data) - 1) in error for error in result.errors)


@pytest.mark.parametrize("kind", list(MODELS))
def test_message_exactly_at_the_limit_is_accepted(kind):
    model, make = MODELS[kind]
    data = encoded(make())
    assert isinstance(decode_input(model, data, len(data)), model)


def test_oversize_garbage_is_refused_for_its_size():
    result = refused(decode_input(EvidenceRecord, b"\xff" * 100, 10))
    assert any("100 bytes" in error for error in result.errors)


def test_valid_evidence_decodes_and_keeps_extra_fields():
    record = make_evidence(secret_note="kept", provenance=make_provenance(internal_host="h1"))
    model = decode_input(EvidenceRecord, encoded(record), MAX)
    assert isinstance(model, EvidenceRecord)
    assert model.run_id == record["run_id"] and model.text == record["text"]
    assert model.source_files == record["source_files"]
    assert model.model_extra == {"secret_note": "kept"}
    assert model.provenance.model_extra == {"internal_host": "h1"}
    assert model.model_dump()["secret_note"] == "kept"


def test_valid_score_decodes_and_keeps_extra_fields():
    record = make_score(category="needs_human_review", grader={"name": "g", "version": 2})
    model = decode_input(ScoredRun, encoded(record), MAX)
    assert isinstance(model, ScoredRun)
    assert model.category == "needs_human_review"
    assert model.reasons == record["reasons"]
    assert model.model_extra == {"grader": {"name": "g", "version": 2}}


@pytest.mark.parametrize("category", ["accepted", "partially_accepted", "rejected", "needs_human_review"])
def test_every_spec_category_decodes(category):
    assert decode_input(ScoredRun, encoded(make_score(category=category)), MAX).category == category


@pytest.mark.parametrize("scored_at", ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456+02:00",
                                       "2026-01-01T00:00:00-05:30"])
def test_rfc3339_timestamps_with_an_offset_decode(scored_at):
    assert decode_input(ScoredRun, encoded(make_score(scored_at=scored_at)), MAX).scored_at == scored_at


@pytest.mark.parametrize("scored_at", ["20260101T000000Z", "2026-W01-1T00:00:00Z", "2026-01-01T00Z",
                                       "2026-01-01T00:00:00+0200"])
def test_scored_at_that_is_not_rfc3339_is_refused(scored_at):
    refused(decode_input(ScoredRun, encoded(make_score(scored_at=scored_at)), MAX))


@pytest.mark.parametrize("kind", list(MODELS))
def test_encode_gives_the_same_bytes_for_the_same_model(kind):
    model, make = MODELS[kind]
    first = decode_input(model, encoded(make(extra_field=[1, 2])), MAX)
    second = decode_input(model, encoded(make(extra_field=[1, 2])), MAX)
    assert first == second
    assert encode(first) == encode(second) == encode(first)
    # Field order follows the model, whatever the order the producer used.
    reordered = dict(reversed(list(make(extra_field=[1, 2]).items())))
    assert encode(decode_input(model, encoded(reordered), MAX)) == encode(first)


@pytest.mark.parametrize("kind", list(MODELS))
def test_encode_then_decode_round_trips(kind):
    model, make = MODELS[kind]
    original = decode_input(model, encoded(make()), MAX)
    assert decode_input(model, encode(original), MAX) == original
