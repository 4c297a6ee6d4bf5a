"""The RAG and SFT gates of SPEC 4 and the sample shapes of SPEC 5, without Faust.

Each gate is checked through the public ``rag_outcome`` / ``sft_outcome`` functions, in the
SPEC's order (the first failing gate decides the reason). Expected ids are computed here
with hashlib, independently of the code under test.
"""

import hashlib
import itertools

import pytest

from schemas import EvidenceRecord, Provenance, RagSample, SftSample
from schemas.codec import encode, loads
from streams.rules.firewall import GateOptions, Rejection, rag_outcome, sft_outcome
from tests.unit.records import (
    ABSENT,
    expected_rag_id,
    expected_sft_id,
    evidence_model,
    make_provenance,
    make_score_provenance,
    score_model,
)

NO_MANIFEST: frozenset[str] = frozenset()
ALL_OPTIONS = [GateOptions(include_partial=p, include_review=r) for p, r in itertools.product([False, True], repeat=2)]
BOTH = [("rag", rag_outcome), ("sft", sft_outcome)]
SFT_KEYS = {"schema_version", "id", "run_id", "task_id", "messages", "quality_score", "created_at", "provenance"}
RAG_KEYS = {
    "schema_version", "id", "run_id", "task_id", "text", "source_category", "source_files", "quality",
    "created_at", "provenance",
}


def reason_of(outcome) -> str | None:
    """The rejection reason, or None for a sample."""
    if isinstance(outcome, Rejection):
        assert outcome.errors, "a rejection must say why in at least one human-readable error"
        assert all(isinstance(e, str) and e for e in outcome.errors)
        return outcome.reason
    assert isinstance(outcome, (RagSample, SftSample))
    return None


def outcomes(evidence=None, score=None, options=GateOptions(), manifest=NO_MANIFEST):
    evidence = evidence if evidence is not None else evidence_model()
    score = score if score is not None else score_model()
    return {stage: reason_of(gate(evidence, score, options, manifest)) for stage, gate in BOTH}


# --- 1. Category -------------------------------------------------------------------------------


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=repr)
@pytest.mark.parametrize("category", ["rejected", "needs_human_review"])
def test_sft_never_takes_rejected_or_unreviewed_runs_whatever_the_options(category, options):
    outcome = sft_outcome(evidence_model(), score_model(category=category), options, NO_MANIFEST)
    assert reason_of(outcome) == "unsafe_sft_category"


@pytest.mark.parametrize("include_review", [False, True])
def test_sft_partially_accepted_is_disallowed_without_include_partial(include_review):
    options = GateOptions(include_partial=False, include_review=include_review)
    outcome = sft_outcome(evidence_model(), score_model(category="partially_accepted"), options, NO_MANIFEST)
    assert reason_of(outcome) == "category_disallowed"


@pytest.mark.parametrize("include_review", [False, True])
def test_sft_partially_accepted_enters_with_include_partial(include_review):
    options = GateOptions(include_partial=True, include_review=include_review)
    outcome = sft_outcome(evidence_model(), score_model(category="partially_accepted"), options, NO_MANIFEST)
    assert isinstance(outcome, SftSample)
    assert outcome.quality_score == "partially_accepted"


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=repr)
def test_accepted_runs_enter_both_stages_with_any_options(options):
    assert outcomes(options=options) == {"rag": None, "sft": None}


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=repr)
def test_rag_never_takes_rejected_runs_whatever_the_options(options):
    outcome = rag_outcome(evidence_model(), score_model(category="rejected"), options, NO_MANIFEST)
    assert reason_of(outcome) == "unsafe_rag_category"


@pytest.mark.parametrize("include_partial", [False, True])
def test_rag_needs_human_review_is_disallowed_without_include_review(include_partial):
    options = GateOptions(include_partial=include_partial, include_review=False)
    outcome = rag_outcome(evidence_model(), score_model(category="needs_human_review"), options, NO_MANIFEST)
    assert reason_of(outcome) == "category_disallowed"


@pytest.mark.parametrize("include_partial", [False, True])
def test_rag_needs_human_review_enters_with_include_review(include_partial):
    options = GateOptions(include_partial=include_partial, include_review=True)
    outcome = rag_outcome(evidence_model(), score_model(category="needs_human_review"), options, NO_MANIFEST)
    assert isinstance(outcome, RagSample)
    assert outcome.quality == "needs_human_review"


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=repr)
def test_rag_takes_partially_accepted_runs_without_any_option(options):
    outcome = rag_outcome(evidence_model(), score_model(category="partially_accepted"), options, NO_MANIFEST)
    assert isinstance(outcome, RagSample)
    assert outcome.quality == "partially_accepted"


def test_include_review_does_not_open_sft_to_unreviewed_runs():
    options = GateOptions(include_partial=True, include_review=True)
    result = outcomes(score=score_model(category="needs_human_review"), options=options)
    assert result == {"rag": None, "sft": "unsafe_sft_category"}


# --- 2. Provenance -----------------------------------------------------------------------------

MISSING_PROVENANCE_CASES = {
    "evidence without provenance key": ({"provenance": ABSENT}, {}),
    "evidence provenance null": ({"provenance": None}, {}),
    "score without provenance key": ({}, {"provenance": ABSENT}),
    "score provenance null": ({}, {"provenance": None}),
    "both without provenance": ({"provenance": ABSENT}, {"provenance": ABSENT}),
    "evidence provenance empty object": ({"provenance": {}}, {}),
    "evidence empty source_file": ({"provenance": make_provenance(source_file="")}, {}),
    "evidence empty sig_hash": ({"provenance": make_provenance(sig_hash="")}, {}),
    "evidence empty recorded_at": ({"provenance": make_provenance(recorded_at="")}, {}),
    "evidence source_file missing": ({"provenance": make_provenance(source_file=ABSENT)}, {}),
    "score empty source_file": ({}, {"provenance": make_score_provenance(source_file="")}),
    "score empty sig_hash": ({}, {"provenance": make_score_provenance(sig_hash="")}),
    "score empty recorded_at": ({}, {"provenance": make_score_provenance(recorded_at="")}),
    "score sig_hash missing": ({}, {"provenance": make_score_provenance(sig_hash=ABSENT)}),
}


@pytest.mark.parametrize("case", list(MISSING_PROVENANCE_CASES))
def test_missing_or_incomplete_provenance_is_missing_provenance(case):
    evidence_overrides, score_overrides = MISSING_PROVENANCE_CASES[case]
    result = outcomes(evidence_model(**evidence_overrides), score_model(**score_overrides))
    assert result == {"rag": "missing_provenance", "sft": "missing_provenance"}


def test_line_offset_zero_is_not_missing_provenance():
    evidence = evidence_model(provenance=make_provenance(line_offset=0))
    score = score_model(provenance=make_score_provenance(line_offset=ABSENT))
    assert outcomes(evidence, score) == {"rag": None, "sft": None}


# --- 3. Content --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "   \t  ", "\n", "\r\n\t \n", "\u00a0\u2003 "])
def test_whitespace_only_text_is_empty_content(text):
    assert outcomes(evidence_model(text=text)) == {"rag": "empty_content", "sft": "empty_content"}


# --- 4. File paths -----------------------------------------------------------------------------

BAD_PATHS = {
    "absolute": "/etc/passwd",
    "absolute below repo": "/work/repo/src/handler.py",
    "windows drive": "C:/repo/src/handler.py",
    "parent at start": "../secrets.txt",
    "parent inside": "src/../../etc/passwd",
    "parent at end": "src/..",
    "backslash": "src\\handler.py",
    "windows absolute with backslashes": "C:\\repo\\handler.py",
    "nul": "src/handler.py\x00.png",
}


@pytest.mark.parametrize("manifest", [NO_MANIFEST, frozenset({"src/handler.py"})], ids=["no-manifest", "manifest"])
@pytest.mark.parametrize("name", list(BAD_PATHS))
def test_bad_paths_are_hallucinated_with_or_without_manifest(name, manifest):
    path = BAD_PATHS[name]
    result = outcomes(evidence_model(source_files=[path]), manifest=manifest | {path} if manifest else manifest)
    assert result == {"rag": "hallucinated_file_path", "sft": "hallucinated_file_path"}


def test_a_bad_path_anywhere_in_the_list_is_hallucinated():
    evidence = evidence_model(source_files=["src/handler.py", "docs/readme.md", "../outside.txt"])
    assert outcomes(evidence) == {"rag": "hallucinated_file_path", "sft": "hallucinated_file_path"}


def test_path_not_in_a_non_empty_manifest_is_hallucinated():
    manifest = frozenset({"src/handler.py", "README.md"})
    evidence = evidence_model(source_files=["src/handler.py", "src/invented.py"])
    result = outcomes(evidence, manifest=manifest)
    assert result == {"rag": "hallucinated_file_path", "sft": "hallucinated_file_path"}
    rejection = rag_outcome(evidence, score_model(), GateOptions(), manifest)
    assert any("src/invented.py" in error for error in rejection.errors)


def test_paths_in_the_manifest_pass():
    manifest = frozenset({"src/handler.py", "README.md", "docs/guide.md"})
    evidence = evidence_model(source_files=["src/handler.py", "README.md"])
    assert outcomes(evidence, manifest=manifest) == {"rag": None, "sft": None}


@pytest.mark.parametrize("paths", [
    ["src/invented.py"], ["README.md"], ["a/b/c/d.py", "x.txt"], ["some dir/with spaces.md"], [],
])
def test_empty_manifest_accepts_any_clean_relative_path(paths):
    assert outcomes(evidence_model(source_files=paths)) == {"rag": None, "sft": None}


def test_manifest_is_exact_match_not_prefix():
    manifest = frozenset({"src"})
    assert outcomes(evidence_model(source_files=["src/handler.py"]), manifest=manifest) == {
        "rag": "hallucinated_file_path", "sft": "hallucinated_file_path",
    }


# --- Gate order: the first failure decides -----------------------------------------------------


def test_rejected_run_without_provenance_is_unsafe_not_missing_provenance():
    result = outcomes(evidence_model(provenance=ABSENT), score_model(category="rejected", provenance=ABSENT))
    assert result == {"rag": "unsafe_rag_category", "sft": "unsafe_sft_category"}


def test_rejected_run_failing_every_later_gate_is_still_unsafe():
    evidence = evidence_model(provenance=None, text="   ", source_files=["/etc/passwd"])
    result = outcomes(evidence, score_model(category="rejected", provenance=None))
    assert result == {"rag": "unsafe_rag_category", "sft": "unsafe_sft_category"}


def test_unreviewed_run_without_provenance_is_category_first():
    evidence = evidence_model(provenance=None)
    assert outcomes(evidence, score_model(category="needs_human_review")) == {
        "rag": "category_disallowed", "sft": "unsafe_sft_category",
    }
    opened = GateOptions(include_partial=True, include_review=True)
    assert outcomes(evidence, score_model(category="needs_human_review"), options=opened) == {
        "rag": "missing_provenance", "sft": "unsafe_sft_category",
    }


def test_partially_accepted_run_without_provenance_is_category_first_for_sft():
    evidence = evidence_model(provenance=None)
    assert outcomes(evidence, score_model(category="partially_accepted")) == {
        "rag": "missing_provenance", "sft": "category_disallowed",
    }
    partial_allowed = GateOptions(include_partial=True)
    assert outcomes(evidence, score_model(category="partially_accepted"), options=partial_allowed) == {
        "rag": "missing_provenance", "sft": "missing_provenance",
    }


def test_missing_provenance_comes_before_empty_content_and_bad_paths():
    evidence = evidence_model(text=" ", source_files=["../x"], provenance=make_provenance(sig_hash=""))
    assert outcomes(evidence) == {"rag": "missing_provenance", "sft": "missing_provenance"}


def test_empty_content_comes_before_bad_paths():
    evidence = evidence_model(text="\n\t", source_files=["/abs/path.py"])
    assert outcomes(evidence, manifest=frozenset({"other.py"})) == {"rag": "empty_content", "sft": "empty_content"}


def test_schema_violation_is_the_last_line_of_defence():
    """A record that slipped past input validation still cannot become a sample."""
    good = evidence_model()
    broken = EvidenceRecord.model_construct(**{**dict(good), "task_id": ""})
    assert outcomes(broken) == {"rag": "schema_violation", "sft": "schema_violation"}


# --- 5. Sample shapes --------------------------------------------------------------------------

SCORED_AT = "2026-03-04T05:06:07.250+02:00"  # kept as written, not normalised


def test_rag_sample_has_exactly_the_spec_shape():
    evidence = evidence_model(
        run_id="run-42", task_id="task-7", text="  \n Use a bounded queue.\t\n", source_category="observer_reviews",
        source_files=["src/queue.py", "docs/queue.md"],
    )
    score = score_model(evidence_run_id="run-42", evidence_task_id="task-7", category="partially_accepted",
                        scored_at=SCORED_AT)
    sample = rag_outcome(evidence, score, GateOptions(), NO_MANIFEST)
    body = loads(encode(sample))
    assert body == {
        "schema_version": 1,
        "id": expected_rag_id("run-42"),
        "run_id": "run-42",
        "task_id": "task-7",
        "text": "Use a bounded queue.",
        "source_category": "observer_reviews",
        "source_files": ["src/queue.py", "docs/queue.md"],
        "quality": "partially_accepted",
        "created_at": SCORED_AT,
        "provenance": make_score_provenance(),
    }
    assert set(body) == RAG_KEYS


def test_sft_sample_has_exactly_the_spec_shape():
    evidence = evidence_model(run_id="run-42", task_id="task-7", text="\t Use a bounded queue. \n",
                              source_files=["src/queue.py", "docs/queue.md"])
    score = score_model(evidence_run_id="run-42", evidence_task_id="task-7", scored_at=SCORED_AT)
    sample = sft_outcome(evidence, score, GateOptions(), NO_MANIFEST)
    body = loads(encode(sample))
    assert body == {
        "schema_version": 1,
        "id": expected_sft_id("run-42"),
        "run_id": "run-42",
        "task_id": "task-7",
        "messages": [
            {"role": "user", "content": "Task: task-7 · file=src/queue.py"},
            {"role": "assistant", "content": "Use a bounded queue."},
        ],
        "quality_score": "accepted",
        "created_at": SCORED_AT,
        "provenance": make_score_provenance(),
    }
    assert set(body) == SFT_KEYS
    assert not {"prompt", "completion", "text"} & set(body)


def test_sft_prompt_names_the_only_file():
    sample = sft_outcome(evidence_model(task_id="task-9", source_files=["lib/one.py"]),
                         score_model(evidence_task_id="task-9"), GateOptions(), NO_MANIFEST)
    assert sample.messages[0].content == "Task: task-9 · file=lib/one.py"


def test_sft_prompt_without_files_is_only_the_task():
    sample = sft_outcome(evidence_model(task_id="task-9", source_files=[]), score_model(evidence_task_id="task-9"),
                         GateOptions(), NO_MANIFEST)
    assert sample.messages[0].content == "Task: task-9"
    assert sample.messages[0].role == "user" and sample.messages[1].role == "assistant"


def test_ids_depend_only_on_the_run_id():
    for run_id in ["run-1", "r", "run with spaces", "ünïcode-run"]:
        evidence = evidence_model(run_id=run_id)
        score = score_model(evidence_run_id=run_id)
        assert rag_outcome(evidence, score, GateOptions(), NO_MANIFEST).id == expected_rag_id(run_id)
        assert sft_outcome(evidence, score, GateOptions(), NO_MANIFEST).id == expected_sft_id(run_id)
    assert expected_rag_id("run-1") == "rag-" + hashlib.sha256(b"rag|run-1").hexdigest()[:16]


def test_provenance_is_the_scores_not_the_evidences():
    for stage, gate in BOTH:
        sample = gate(evidence_model(), score_model(), GateOptions(), NO_MANIFEST)
        assert sample.provenance == Provenance(**make_score_provenance()), stage


def test_unknown_extra_input_fields_never_reach_a_sample():
    evidence = evidence_model(
        secret_note="EVIDENCE-EXTRA", provenance=make_provenance(internal_host="PROV-EXTRA-E"),
    )
    score = score_model(
        grader_notes="SCORE-EXTRA", provenance=make_score_provenance(internal_host="PROV-EXTRA-S", cost=3),
    )
    for stage, gate in BOTH:
        sample = gate(evidence, score, GateOptions(), NO_MANIFEST)
        raw = encode(sample)
        for marker in (b"EXTRA", b"secret_note", b"grader_notes", b"internal_host", b"cost"):
            assert marker not in raw, (stage, marker)
        assert set(loads(raw)["provenance"]) == {"source_file", "line_offset", "sig_hash", "recorded_at"}
        assert set(loads(raw)) == (RAG_KEYS if stage == "rag" else SFT_KEYS)


def test_samples_are_a_pure_function_of_their_inputs():
    for _stage, gate in BOTH:
        first = encode(gate(evidence_model(), score_model(), GateOptions(), NO_MANIFEST))
        again = encode(gate(evidence_model(), score_model(), GateOptions(), NO_MANIFEST))
        assert first == again


def test_created_at_follows_the_score_that_produced_the_sample():
    later = "2026-02-01T00:00:00Z"
    for _stage, gate in BOTH:
        sample = gate(evidence_model(), score_model(scored_at=later), GateOptions(), NO_MANIFEST)
        assert sample.created_at == later
