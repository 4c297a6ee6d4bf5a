"""The bundled sample end to end on the real broker: every defect ends where SPEC says."""

import base64
from collections import Counter
from datetime import datetime

import orjson
import pytest

from schemas.rag_sample import rag_sample_id
from schemas.sft_sample import sft_sample_id
from streams.broker import kafka_io
from streams.commands.evalset import add_eval_set
from streams.commands.evalset_files import read_eval_set
from streams.commands.manifest_publish import manifest_paths, publish_manifest
from streams.commands.stats import collect
from streams.rules.decontamination import EvalIndex
from tests.integration.conftest import SAMPLE_DATA, ingest, running_worker, settle_and_export

pytestmark = pytest.mark.integration

EXPECTED = orjson.loads((SAMPLE_DATA / "expected.json").read_bytes())
# Every topic the worker writes: the outputs (SPEC 1), and the candidates it sends itself (built
# from the redacted records too, DESIGN "What the worker does now").
WRITTEN_TOPICS = ["rag-samples", "sft-samples", "preference-pairs", "quarantine", "pair-candidates", "dedup-candidates"]


def sample_eval_set():
    info = EXPECTED["eval_set"]
    return read_eval_set(info["name"], [SAMPLE_DATA / info["file"]], id_field=info["id_field"])


def needles() -> list[bytes]:
    return [n.encode() for entry in EXPECTED["planted_secrets"].values() for n in entry["needles"]]


def leaks(data: bytes, where: str) -> list[str]:
    return [f"{where}: {n.decode()[:24]}..." for n in needles() if n in data]


async def topic_leaks(settings) -> tuple[list[str], int]:
    """Planted secrets in any key, value or header of a topic the worker writes, and in the
    undecodable bytes a quarantine record quotes (``raw``, base64); and how many messages were read."""
    found, read = [], 0
    for name in WRITTEN_TOPICS:
        topic = settings.topic(name)
        async for message in kafka_io.read_topic(settings, topic):
            read += 1
            where = f"{topic}@{message.partition}:{message.offset}"
            parts = [message.key or b"", message.value or b""]
            parts += [key.encode() + b"=" + (value or b"") for key, value in message.headers or ()]
            found += leaks(b"\n".join(parts), where)
            if name == "quarantine" and message.value and (raw := orjson.loads(message.value).get("raw")):
                found += leaks(base64.b64decode(raw), where + " raw")
    return found, read


def records_of(rows: dict, run_id: str) -> Counter:
    return Counter((r["stage"], r["reason"]) for r in rows["quarantine"] if r["run_id"] == run_id)


def samples_of(rows: dict, run_id: str) -> dict[str, list[str]]:
    return {
        "rag": [s["id"] for s in rows["rag"] if s["run_id"] == run_id],
        "sft": [s["id"] for s in rows["sft"] if s["run_id"] == run_id],
        "pairs": [p["id"] for p in rows["preference"] if run_id in (p["chosen_run_id"], p["rejected_run_id"])],
    }


def errors_of(rows: dict, run_id: str, stage: str) -> list[str]:
    return [e for r in rows["quarantine"] if r["run_id"] == run_id and r["stage"] == stage for e in r["errors"]]


def check_content_defects(rows: dict, settings) -> None:
    """The exact outcome of every run of a content defect (SPEC 10-12), as README.md's table says."""
    defects, planted, copies = EXPECTED["defects"], EXPECTED["planted_secrets"], EXPECTED["duplicate_of"]

    # A secret in the text: secret_in_content at rag and sft, and one preference record (it takes
    # no part in pairing); the errors name the rules and offsets, never the secret.
    for run_id in defects["secret_in_text"] + defects["secret_in_url"]:
        assert records_of(rows, run_id) == Counter({("rag", "secret_in_content"): 1, ("sft", "secret_in_content"): 1,
                                                    ("preference", "secret_in_content"): 1}), run_id
        assert samples_of(rows, run_id) == {"rag": [], "sft": [], "pairs": []}, run_id
        for stage in ("rag", "sft"):
            errors = errors_of(rows, run_id, stage)
            assert [e.split("'")[1] for e in errors] == planted[run_id]["rules"], errors
            assert all(e.startswith("evidence text: a secret of rule ") and " at characters " in e for e in errors)
        assert errors_of(rows, run_id, "preference")[0] == f"run {run_id!r} takes no part in pairing"

    # A secret in the first reason: not gated. Samples as usual, and the pairs it leads quote
    # the reason with the secret replaced.
    for run_id in defects["secret_in_reason"]:
        [rule] = planted[run_id]["rules"]
        assert records_of(rows, run_id) == Counter(), run_id
        mine = samples_of(rows, run_id)
        assert len(mine["rag"]) == len(mine["sft"]) == 1 and mine["pairs"], run_id
        for pair in (p for p in rows["preference"] if p["chosen_run_id"] == run_id):
            assert "chosen-rationale: " in pair["reason"] and f"<SECRET:{rule}>" in pair["reason"], pair["reason"]

    # A secret in a later path: not gated, redacted; the redacted path is not in the manifest.
    for run_id in defects["secret_in_path"]:
        [rule] = planted[run_id]["rules"]
        assert records_of(rows, run_id) == Counter({("rag", "hallucinated_file_path"): 1,
                                                    ("sft", "hallucinated_file_path"): 1}), run_id
        assert samples_of(rows, run_id)["rag"] == samples_of(rows, run_id)["sft"] == []
        for stage in ("rag", "sft"):
            [error] = errors_of(rows, run_id, stage)
            assert f"<SECRET:{rule}>" in error and error.endswith("is not in the file manifest"), error

    # A secret in an undecodable line: schema_violation at input, its raw bytes redacted.
    [line_run] = defects["secret_in_invalid_line"]
    quoting = [r for r in rows["quarantine"] if r["raw"] and line_run.encode() in base64.b64decode(r["raw"])]
    assert [(r["stage"], r["reason"], r["source"]["topic"]) for r in quoting] == [
        ("input", "schema_violation", settings.topic("evidence"))]
    [rule] = planted[line_run]["rules"]
    assert f"<SECRET:{rule}>".encode() in base64.b64decode(quoting[0]["raw"])

    # Copies (SPEC 11): the original stays the sample, the copy is duplicate_content naming it.
    for run_id in defects["duplicate_text_same_prompt"] + defects["duplicate_text_other_prompt"]:
        original = copies[run_id]
        assert samples_of(rows, original)["rag"] == [rag_sample_id(original)]
        assert samples_of(rows, original)["sft"] == [sft_sample_id(original)]
        assert errors_of(rows, run_id, "rag") == [
            f"{rag_sample_id(run_id)} has the same content as {rag_sample_id(original)}, the sample kept "
            "(the earliest created_at, then the smallest id)"]
        assert samples_of(rows, run_id)["rag"] == []
    for run_id in defects["duplicate_text_same_prompt"]:
        # Same prompt: SFT too; and each pair of the copy repeats a pair of the original, later.
        original_pairs = [p for p in rows["preference"] if p["chosen_run_id"] == copies[run_id]]
        assert original_pairs and samples_of(rows, run_id) == {"rag": [], "sft": [], "pairs": []}
        assert records_of(rows, run_id) == Counter({("rag", "duplicate_content"): 1, ("sft", "duplicate_content"): 1,
                                                    ("preference", "duplicate_content"): len(original_pairs)}), run_id
        assert errors_of(rows, run_id, "sft")[0].endswith(f"as {sft_sample_id(copies[run_id])}, the sample kept "
                                                          "(the earliest created_at, then the smallest id)")
        named = {e.split(" has the same content as ")[1].split(",")[0] for e in errors_of(rows, run_id, "preference")}
        assert named == {p["id"] for p in original_pairs}
    for run_id in defects["duplicate_text_other_prompt"]:
        # Another prompt: the SFT sample stands.
        assert records_of(rows, run_id) == Counter({("rag", "duplicate_content"): 1}), run_id
        assert samples_of(rows, run_id)["sft"] == [sft_sample_id(run_id)]

    # A quote of the registered evaluation set (SPEC 12).
    for run_id in defects["benchmark_quote"]:
        assert records_of(rows, run_id) == Counter({("rag", "benchmark_contamination"): 1,
                                                    ("sft", "benchmark_contamination"): 1,
                                                    ("preference", "benchmark_contamination"): 1}), run_id
        assert samples_of(rows, run_id) == {"rag": [], "sft": [], "pairs": []}, run_id
        for stage in ("rag", "sft"):
            [error] = errors_of(rows, run_id, stage)
            assert error.startswith(f"overlaps evaluation set {EXPECTED['eval_set']['name']!r}, item "), error


async def test_bundled_sample_reaches_every_reason_and_balances(make_settings):
    settings = make_settings()
    expected = EXPECTED
    await publish_manifest(settings, manifest_paths(SAMPLE_DATA / "manifest.txt"))
    await add_eval_set(settings, sample_eval_set())
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
    async with running_worker(settings):
        rows = await settle_and_export(settings)
        stats = await collect(settings)

    records = rows["quarantine"]
    seen = {(r["stage"], r["reason"], r["run_id"]) for r in records}
    for defect, run_ids in expected["defects"].items():
        for outcome in expected["expected_outcomes"][defect]:
            if outcome["stage"] == "input" and outcome["reason"] == "schema_violation":
                continue  # counted below: many of these lines have no run id to name
            for run_id in run_ids:
                assert (outcome["stage"], outcome["reason"], run_id) in seen, (defect, run_id)
    input_violations = [r for r in records if r["stage"] == "input" and r["reason"] == "schema_violation"]
    assert len(input_violations) == expected["invalid_lines"]["evidence.jsonl"] + expected["invalid_lines"]["scores.jsonl"]
    assert {r["source"]["topic"] for r in input_violations} == {settings.topic("evidence"), settings.topic("scored-runs")}

    sft_quality = {s["quality_score"] for s in rows["sft"]}
    assert sft_quality == {"accepted"}  # the firewall: no rejected, no review, no partial by default
    assert {s["quality"] for s in rows["rag"]} == {"accepted", "partially_accepted"}
    assert all(p["chosen_run_id"] != p["rejected_run_id"] for p in rows["preference"])
    assert rows["preference"], "the sample has tasks with accepted and rejected runs"
    for kind in ("rag", "sft", "preference", "quarantine"):
        ids = [r["id"] for r in rows[kind]]
        assert ids == sorted(ids) and len(ids) == len(set(ids))

    assert stats.balanced, stats.checks
    assert stats.valid_scores == expected["valid_scores"]
    assert stats.pending_joins == 0
    assert stats.join_timed_out == len(expected["defects"]["score_without_evidence"])
    assert stats.samples_live["sft"] == len(rows["sft"]) and stats.samples_live["rag"] == len(rows["rag"])

    check_content_defects(rows, settings)
    same, other = expected["defects"]["duplicate_text_same_prompt"], expected["defects"]["duplicate_text_other_prompt"]
    preference_duplicates = sum(r["stage"] == "preference" and r["reason"] == "duplicate_content"
                                for r in rows["quarantine"])
    assert preference_duplicates >= len(same)
    assert stats.duplicates == {"rag": len(same) + len(other), "sft": len(same), "preference": preference_duplicates}
    assert stats.contaminated_by_set == {expected["eval_set"]["name"]: len(expected["defects"]["benchmark_quote"])}
    planted_rules = Counter(rule for entry in expected["planted_secrets"].values() for rule in entry["rules"])
    assert stats.secret_findings == dict(planted_rules)

    # SPEC 10: no planted secret in anything the product wrote: topics, exported files, the
    # worker's log, the figures.
    found, read = await topic_leaks(settings)
    assert read > len(rows["quarantine"])
    exported = sorted(p for p in (settings.data_dir / "export").rglob("*") if p.is_file())
    assert len(exported) >= 5
    for path in [*exported, settings.data_dir / "worker.log"]:
        found += leaks(path.read_bytes(), str(path))
    found += leaks(orjson.dumps(stats.to_dict()), "distill stats --json")
    assert not found, found


def batch_pairs(evidence_path, scores_path, settings, index) -> list[dict]:
    """SPEC 6 as a plain batch over the files: what the stream must have emitted. Records are
    screened as they arrive (SPEC 10: redacted; a secret in the text or prompt, or an overlap with
    the evaluation sets of ``index``, keeps the run out of pairing), and of pairs with one content
    only the one with the smallest (created_at, id) is kept (SPEC 11)."""
    from collections import defaultdict

    from schemas import EvidenceRecord, ScoredRun
    from schemas.codec import Undecodable, decode_input, encode
    from streams.rules.dedup import content_key
    from streams.rules.firewall import ContentVerdicts
    from streams.rules.pairing import PreferenceSample, pair_run_from, plan_window, window_start
    from streams.rules.screening import ContentGates, judge, screen, secret_errors
    from streams.rules.secrets import load_scanner

    gates = ContentGates(secrets="quarantine", scanner=load_scanner(), index=index, dedup=True)

    def screened(model, line):
        record = decode_input(model, line, settings.max_record_bytes)
        if isinstance(record, Undecodable):
            return None, []
        found = screen(orjson.loads(line), gates)
        return model.model_validate(found.obj), found.findings

    evidence, scores = {}, {}
    for line in evidence_path.read_bytes().splitlines():
        record, findings = screened(EvidenceRecord, line)
        if record is not None:
            evidence.setdefault(record.run_id, (record, findings))  # the first one stands
    for line in scores_path.read_bytes().splitlines():
        record, findings = screened(ScoredRun, line)
        if record is not None:
            scores[record.evidence_run_id] = (record, findings)  # the latest wins
    windows = defaultdict(list)
    for run_id, (score, score_findings) in scores.items():
        if run_id not in evidence:
            continue
        ev, ev_findings = evidence[run_id]
        contamination = judge(ev.text, index)
        verdicts = ContentVerdicts(secrets=secret_errors("quarantine", ev_findings, score_findings),
                                   contamination=(contamination["error"],) if contamination else ())
        run = pair_run_from(ev, score, verdicts.exclusion)
        if run:
            windows[(run.task_id, window_start(run.scored_at_epoch, settings.pair_window))].append(run)
    pairs = []
    for runs in windows.values():
        outcomes, _ = plan_window(runs, settings.max_pairs_per_task)
        pairs += [orjson.loads(encode(o)) for o in outcomes if isinstance(o, PreferenceSample)]
    kept: dict[str, dict] = {}
    for pair in pairs:
        key, rank = content_key(pair["prompt"], pair["chosen"], pair["rejected"]), (epoch(pair["created_at"]), pair["id"])
        if key not in kept or rank < (epoch(kept[key]["created_at"]), kept[key]["id"]):
            kept[key] = pair
    return sorted(kept.values(), key=lambda p: p["id"])


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def test_streamed_pairs_equal_the_batch_computation(make_settings):
    settings = make_settings()
    evidence, scores = SAMPLE_DATA / "evidence.jsonl", SAMPLE_DATA / "scores.jsonl"
    eval_set = sample_eval_set()
    await publish_manifest(settings, manifest_paths(SAMPLE_DATA / "manifest.txt"))
    await add_eval_set(settings, eval_set)
    await ingest(settings, [evidence], [scores])
    async with running_worker(settings):
        rows = await settle_and_export(settings)
    assert not [r for r in rows["quarantine"] if r["reason"] == "late_arrival"]
    batch = batch_pairs(evidence, scores, settings, EvalIndex.build(eval_set.items))
    assert rows["preference"] == batch
    # The sample's content defects change the pairs: runs left out, duplicates dropped, reasons redacted.
    assert any("<SECRET:" in p["reason"] for p in batch)
    left_out = {r for kind in ("secret_in_text", "secret_in_url", "benchmark_quote") for r in EXPECTED["defects"][kind]}
    copies = set(EXPECTED["defects"]["duplicate_text_same_prompt"])
    assert not [p for p in batch if {p["chosen_run_id"], p["rejected_run_id"]} & (left_out | copies)]


async def test_exported_files_load_as_trainer_datasets(make_settings, monkeypatch, tmp_path):
    """The files load with `datasets` and have the columns DPO and SFT trainers read."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    settings = make_settings()
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
    async with running_worker(settings):
        rows = await settle_and_export(settings)
    out = settings.data_dir / "export"
    pairs = datasets.load_dataset("json", data_files=str(out / "preference/chosen_rejected.jsonl"), split="train",
                                  cache_dir=str(tmp_path / "cache"))
    assert {"prompt", "chosen", "rejected"} <= set(pairs.column_names)
    assert pairs.num_rows == len(rows["preference"])
    sft = datasets.load_dataset("json", data_files=str(out / "sft/samples.jsonl"), split="train",
                                cache_dir=str(tmp_path / "cache"))
    assert "messages" in sft.column_names and not {"prompt", "completion", "text"} & set(sft.column_names)
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    rag = datasets.load_dataset("json", data_files=str(out / "rag/samples.jsonl"), split="train",
                                cache_dir=str(tmp_path / "cache"))
    assert rag.num_rows == len(rows["rag"])
