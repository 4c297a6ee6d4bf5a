"""The bundled sample data: byte-identical on every run, and exactly what expected.json says.

The checks re-derive every count and defect list from the files themselves (decoding with
the real models), so a change to the generator that breaks the data's promises fails here.
"""

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import EvidenceRecord, ScoredRun
from schemas.codec import Undecodable, decode_input
from streams.commands.evalset_files import read_eval_set
from streams.rules.decontamination import EvalIndex
from streams.rules.dedup import normalise
from streams.rules.secrets import load_scanner

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_sample_data.py"
BUNDLED = ROOT / "streams" / "sample_data"
OUTPUTS = ["evidence.jsonl", "scores.jsonl", "evidence_huge.jsonl", "manifest.txt", "evalset.jsonl", "expected.json",
           "README.md"]
MAIN = {"evidence.jsonl": EvidenceRecord, "scores.jsonl": ScoredRun}
MAX_RECORD_BYTES = 900_000
PROVENANCE_KINDS = ["evidence_without_provenance", "score_without_provenance", "empty_sig_hash",
                    "empty_source_file", "empty_recorded_at"]
INVALID_KINDS = ["not_json", "json_array", "json_string", "wrong_type", "unknown_category", "bad_timestamp",
                 "secret_in_invalid_line"]
COPY_KINDS = ["duplicate_text_same_prompt", "duplicate_text_other_prompt"]
# Where each secret defect's fakes are (SPEC 10 gates the text, not a reason or a later path).
SECRET_PLACES = {"secret_in_text": "text", "secret_in_url": "text", "secret_in_reason": "reasons[0]",
                 "secret_in_path": "source_files[1]"}
PATH_KINDS = {
    "absolute_path": lambda path, manifest: path.startswith("/"),
    "dotdot_path": lambda path, manifest: ".." in path,
    "backslash_path": lambda path, manifest: "\\" in path,
    "nul_path": lambda path, manifest: "\x00" in path,
    "path_not_in_manifest": lambda path, manifest: path not in manifest,
}


def generate(out: Path) -> None:
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True)


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def decode(model, line: bytes):
    """The record, or None when the line is not a valid ``model`` (an invalid input line)."""
    try:
        obj = json.loads(line)
        return model.model_validate(obj) if isinstance(obj, dict) else None
    except (ValueError, ValidationError):
        return None


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample_data")
    generate(folder)
    return folder


@pytest.fixture(scope="module")
def expected(out: Path) -> dict:
    return json.loads((out / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def decoded(out: Path) -> dict[str, list[tuple[int, bytes, object]]]:
    """Per main file: (line number, bytes, record or None) for every line."""
    return {name: [(n, line, decode(model, line)) for n, line in enumerate(lines_of(out / name), 1)]
            for name, model in MAIN.items()}


@pytest.fixture(scope="module")
def runs(decoded) -> dict[str, dict]:
    """What a consumer ends up with: first valid evidence and latest valid score per run."""
    evidence, scores = {}, {}
    for _, _, rec in decoded["evidence.jsonl"]:
        if rec is not None:
            evidence.setdefault(rec.run_id, rec)
    for _, _, rec in decoded["scores.jsonl"]:
        if rec is not None:
            scores[rec.evidence_run_id] = rec
    return {"evidence": evidence, "scores": scores, "joined": sorted(evidence.keys() & scores.keys())}


def test_generator_is_deterministic(out: Path, tmp_path: Path) -> None:
    generate(tmp_path)
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_bundled_files_are_the_generators_output(out: Path) -> None:
    for name in OUTPUTS:
        assert (BUNDLED / name).is_file(), f"run scripts/make_sample_data.py to write {name}"
        assert (BUNDLED / name).read_bytes() == (out / name).read_bytes(), f"{name} is stale: rerun the script"


def test_main_lines_fit_in_a_message(out: Path) -> None:
    for name in MAIN:
        assert max(len(line) for line in lines_of(out / name)) < MAX_RECORD_BYTES


def test_invalid_lines_are_exactly_the_listed_ones(decoded, expected) -> None:
    for name, rows in decoded.items():
        invalid = [n for n, _, rec in rows if rec is None]
        assert len(rows) == expected["lines"][name]
        assert invalid == expected["invalid_line_numbers"][name]
        assert len(invalid) == expected["invalid_lines"][name]
    # Each invalid-line run id is on exactly one line, and that line is an invalid one.
    invalid_ids = [run_id for kind in INVALID_KINDS for run_id in expected["defects"][kind]]
    for run_id in invalid_ids:
        hits = [rec for rows in decoded.values() for _, line, rec in rows if run_id.encode() in line]
        assert hits == [None], run_id


def test_oversized_records_are_valid_but_over_the_limit(out: Path, expected) -> None:
    lines = lines_of(out / "evidence_huge.jsonl")
    assert len(lines) == expected["lines"]["evidence_huge.jsonl"] == expected["invalid_lines"]["evidence_huge.jsonl"]
    ids = []
    for line in lines:
        assert 1_100_000 < len(line) < 1_400_000
        ids.append(EvidenceRecord.model_validate(json.loads(line)).run_id)
        assert isinstance(decode_input(EvidenceRecord, line, MAX_RECORD_BYTES), Undecodable)
    assert ids == expected["defects"]["oversized_message"]


def test_counts_match_the_files(runs, expected) -> None:
    joined = runs["joined"]
    assert len(joined) == expected["runs"]
    assert len(runs["scores"]) == expected["valid_scores"]
    assert Counter(runs["scores"][r].category for r in joined) == Counter(expected["categories"])
    tasks = Counter(runs["evidence"][r].task_id for r in joined)
    assert len(tasks) == expected["tasks"]
    assert 200 <= len(tasks) <= 300 and set(tasks.values()) <= set(range(1, 9))
    assert sorted(runs["scores"].keys() - runs["evidence"].keys()) == expected["defects"]["score_without_evidence"]


def test_gate_defects_sit_alone_on_accepted_runs(runs, expected, out: Path) -> None:
    manifest = set((out / "manifest.txt").read_text(encoding="utf-8").splitlines())
    found: dict[str, set[str]] = {}
    for run_id in runs["joined"]:
        ev, sc = runs["evidence"][run_id], runs["scores"][run_id]
        problems = set()
        if not (ev.provenance and ev.provenance.is_complete and sc.provenance and sc.provenance.is_complete):
            problems.add("provenance")
        if not ev.text.strip():
            problems.add("text")
        if any(check(path, manifest) for path in ev.source_files for check in PATH_KINDS.values()):
            problems.add("path")
        assert len(problems) <= 1, run_id  # one defect each, so its reason is unambiguous
        for problem in problems:
            assert sc.category == "accepted", run_id  # else a category gate would decide first
            found.setdefault(problem, set()).add(run_id)
    defects = expected["defects"]
    assert found["provenance"] == {r for kind in PROVENANCE_KINDS for r in defects[kind]}
    assert found["text"] == set(defects["whitespace_text"])
    # secret_in_path: the path holding the token is not in the manifest either (it decides first).
    assert found["path"] == {r for kind in PATH_KINDS for r in defects[kind]} | set(defects["secret_in_path"])
    for kind, check in PATH_KINDS.items():
        for run_id in defects[kind]:
            assert any(check(path, manifest) for path in runs["evidence"][run_id].source_files), (kind, run_id)


def test_redeliveries(decoded, expected) -> None:
    lines_by_run: dict[str, list[bytes]] = {}
    for _, line, rec in decoded["evidence.jsonl"]:
        if rec is not None:
            lines_by_run.setdefault(rec.run_id, []).append(line)
    repeated = {run_id: lines for run_id, lines in lines_by_run.items() if len(lines) > 1}
    assert all(len(lines) == 2 for lines in repeated.values())
    assert sorted(r for r, (a, b) in repeated.items() if a != b) == expected["defects"]["duplicate_evidence"]
    assert sorted(r for r, (a, b) in repeated.items() if a == b) == expected["defects"]["identical_redelivery"]


def test_unknown_extra_fields_are_kept(runs, expected) -> None:
    extra = sorted(r for r in runs["joined"] if runs["evidence"][r].model_extra)
    assert extra == expected["defects"]["unknown_extra_field"]


def test_stream_order_and_times(decoded, runs, expected) -> None:
    scores = [rec for _, _, rec in decoded["scores.jsonl"] if rec is not None]
    stamps = [epoch(s.scored_at) for s in scores]
    start = epoch("2026-04-20T00:00:00Z")
    assert start <= min(stamps) and max(stamps) < start + 3 * 86_400
    running = [max(stamps[: i + 1]) for i in range(len(stamps))]
    assert all(t >= latest - 300 for t, latest in zip(stamps, running))  # ordered up to a little jitter
    # Scores without evidence come first, and later scores pass them by more than the join timeout.
    orphans = expected["defects"]["score_without_evidence"]
    assert [s.evidence_run_id for s in scores[: len(orphans)]] == sorted(orphans, key=lambda r: runs["scores"][r].scored_at)
    assert max(stamps) > max(epoch(runs["scores"][r].scored_at) for r in orphans) + 3600
    # Evidence follows the order of the scores, and was recorded minutes before them.
    order = [r.evidence_run_id for r in scores if r.evidence_run_id in runs["evidence"]]
    evidence_order = list(dict.fromkeys(rec.run_id for _, _, rec in decoded["evidence.jsonl"]
                                        if rec is not None and rec.run_id in runs["scores"]))
    assert evidence_order == order
    for run_id in runs["joined"]:
        ev, sc = runs["evidence"][run_id], runs["scores"][run_id]
        if ev.provenance and ev.provenance.recorded_at:
            assert 60 <= epoch(sc.scored_at) - epoch(ev.provenance.recorded_at) <= 900, run_id


def test_texts_differ_and_have_review_length(runs, expected) -> None:
    copies = expected["duplicate_of"]
    texts = [runs["evidence"][r].text for r in runs["joined"] if runs["evidence"][r].text.strip()]
    assert all(200 <= len(text.strip()) <= 1500 for text in texts)
    # Only the copies repeat a text, and only as SPEC 11 normalises it.
    texts = [normalise(runs["evidence"][r].text) for r in runs["joined"] if r not in copies]
    texts = [text for text in texts if text]
    assert len(set(texts)) == len(texts)


def test_copied_texts(runs, expected) -> None:
    copies, defects = expected["duplicate_of"], expected["defects"]
    assert sorted(copies) == sorted(r for kind in COPY_KINDS for r in defects[kind])
    taken = {r for kind, ids in defects.items() for r in ids if kind not in COPY_KINDS}
    for kind in COPY_KINDS:
        raw_equal = []
        for copy in defects[kind]:
            original = copies[copy]
            ev, orig = runs["evidence"][copy], runs["evidence"][original]
            sc, orig_sc = runs["scores"][copy], runs["scores"][original]
            assert normalise(ev.text) == normalise(orig.text), copy
            raw_equal.append(ev.text == orig.text)
            # The original is the sample kept: scored first (created_at), and clean.
            assert epoch(orig_sc.scored_at) < epoch(sc.scored_at), copy
            assert sc.category == orig_sc.category == "accepted" and original not in taken
            assert original not in copies and copy not in copies.values()
            same_prompt = ev.task_id == orig.task_id and ev.source_files[:1] == orig.source_files[:1]
            assert same_prompt == (kind == "duplicate_text_same_prompt"), copy
        assert sorted(raw_equal) == [False, True], kind  # one exact copy, one that only normalises equal
    for copy in defects["duplicate_text_same_prompt"]:
        # Scored last in a task with two accepted runs and one or two to pair them with: each
        # pair of the copy repeats a pair of the original and is the later one.
        task = sorted((r for r in runs["joined"] if runs["evidence"][r].task_id == runs["evidence"][copy].task_id),
                      key=lambda r: epoch(runs["scores"][r].scored_at))
        categories = Counter(runs["scores"][r].category for r in task)
        assert task[-1] == copy and categories["accepted"] == 2
        assert 1 <= (categories["rejected"] or categories["partially_accepted"]) <= 2


def test_planted_secrets_are_exactly_where_listed(out: Path, decoded, runs, expected) -> None:
    scanner = load_scanner()
    planted, defects = expected["planted_secrets"], expected["defects"]
    found: dict[str, list[tuple[str, str]]] = {}
    for rows in decoded.values():
        for _, line, rec in rows:
            obj = json.loads(line) if rec is not None else line.decode("utf-8")
            run_id = rec.run_id if isinstance(rec, EvidenceRecord) else rec.evidence_run_id if rec else None
            if isinstance(obj, str):
                hits = [("raw", f.rule_id) for f in scanner.find(obj)]
                run_id = next((r for r in defects["secret_in_invalid_line"] if r in obj), None)
            else:
                hits = [(path, f.rule_id) for path, f in scanner.redact_object(obj)[1]]
            if hits:
                found.setdefault(run_id, []).extend(hits)
    assert sorted(found) == sorted(planted)
    for kind, place in SECRET_PLACES.items():
        for run_id in defects[kind]:
            assert found[run_id] == [(place, rule) for rule in planted[run_id]["rules"]], (kind, run_id)
    [line_run] = defects["secret_in_invalid_line"]
    assert found[line_run] == [("raw", rule) for rule in planted[line_run]["rules"]]
    rules = {rule for p in planted.values() for rule in p["rules"]}
    assert {"github-pat", "aws-access-token", "aws-secret-access-key", "private-key", "url-password"} <= rules
    data = (out / "evidence.jsonl").read_bytes() + (out / "scores.jsonl").read_bytes()
    for entry in planted.values():  # what the integration test looks for in every output is there
        assert all(needle.encode() in data for needle in entry["needles"])
    for run_id in defects["secret_in_reason"]:
        # It leads a pair: the first accepted run of a task with a rejected run, so the pair's
        # reason quotes its first reason.
        task = sorted((r for r in runs["joined"] if runs["evidence"][r].task_id == runs["evidence"][run_id].task_id),
                      key=lambda r: epoch(runs["scores"][r].scored_at))
        cats = [runs["scores"][r].category for r in task]
        assert task[cats.index("accepted")] == run_id and "rejected" in cats


def test_benchmark_quotes_are_the_only_contaminated_runs(out: Path, runs, expected) -> None:
    info = expected["eval_set"]
    eval_set = read_eval_set(info["name"], [out / info["file"]], None, info["id_field"])
    assert len(eval_set.items) == info["items"] and eval_set.fields == ["id", "prompt", "solution"]
    index = EvalIndex.build(eval_set.items)
    hits = {r: index.match(runs["evidence"][r].text) for r in runs["joined"]}
    assert sorted(r for r, hit in hits.items() if hit) == expected["defects"]["benchmark_quote"]
    assert len({hits[r].item_id for r in expected["defects"]["benchmark_quote"]}) == 2
