"""Exact dedup (SPEC 11) without Faust: content keys, the winner rule, and a group's effects
under any arrival order compared with the batch rule written here."""

import hashlib
import unicodedata

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import PreferenceSample, QuarantineRecord
from schemas.codec import loads
from streams.rules.dedup import (
    Candidate,
    DedupGroup,
    apply_message,
    content_key,
    group_key,
    sample_content_key,
    upsert,
    upsert_message,
    withdraw,
    withdraw_message,
)
from streams.rules.effects import Publish
from streams.rules.firewall import GateOptions, rag_outcome, sft_outcome
from tests.unit.records import TASK_ID, evidence_model, make_provenance, make_source, score_model

SOURCE = make_source().to_dict()


def candidate(sample_id: str, created_at: float, text: str = "same text", extra: str = "") -> Candidate:
    value = orjson.dumps({"id": sample_id, "run_id": f"run-of-{sample_id}", "text": text, "created_at": created_at,
                          "extra": extra, "provenance": make_provenance()}).decode()
    return Candidate(sample_id, created_at, value, hashlib.sha256(value.encode()).hexdigest()[:32], SOURCE, "t")


def test_content_key_is_sha256_of_the_nfkc_whitespace_normalised_parts_joined_by_nul():
    parts = ["  Ｔask:\u00a0t1 ", "line one\n\n\tline two", "ﬁn"]
    expected = hashlib.sha256("\x00".join(
        " ".join(unicodedata.normalize("NFKC", p).split()) for p in parts).encode()).hexdigest()
    assert content_key(*parts) == expected
    assert content_key("a  b", "c") == content_key("a b", "c") != content_key("a b c")  # parts stay parts
    assert content_key("Fin") != content_key("fin")  # no case folding


def test_sample_content_keys_per_kind():
    evidence, score = evidence_model(text=" x  y "), score_model()
    rag, sft = rag_outcome(evidence, score, GateOptions(), frozenset()), sft_outcome(evidence, score, GateOptions(), frozenset())
    assert sample_content_key(rag) == content_key("x y")
    assert sample_content_key(sft) == content_key(f"Task: {TASK_ID} · file=src/handler.py", "x y")
    pair = PreferenceSample.model_validate({
        "id": "pref-0123456789abcdef", "prompt": "p", "chosen": "c", "rejected": "r", "reason": "why", "chosen_run_id": "a",
        "rejected_run_id": "b", "created_at": "2026-01-01T00:00:00Z",
        "provenance": {"source_file": "f", "line_offset": 0, "sig_hash": "s", "recorded_at": "2026-01-01T00:00:00Z"}})
    assert sample_content_key(pair) == content_key("p", "c", "r")


def test_the_earliest_then_smallest_id_wins_and_a_loser_names_it():
    group = DedupGroup("rag", "k")
    group, effects = upsert(group, candidate("rag-b", 10.0))
    assert effects == [Publish("rag-samples", "rag-b", effects[0].value)] and group.live == "rag-b"
    group, effects = upsert(group, candidate("rag-c", 10.0))  # same instant: the id decides
    (record,) = effects
    assert (record.stage, record.reason, record.run_id) == ("rag", "duplicate_content", "run-of-rag-c")
    assert record.source_record == orjson.loads(candidate("rag-c", 10.0).value)  # the duplicate itself
    assert (record.source.topic, record.source.offset) == (SOURCE["topic"], SOURCE["offset"])  # its run's score
    assert "rag-b" in record.errors[0]
    group, effects = upsert(group, candidate("rag-a", 5.0))  # earlier: takes the place
    assert effects[0] == Publish("rag-samples", "rag-b", None)
    assert effects[1].key == "rag-a" and loads(effects[1].value)["id"] == "rag-a"
    renamed = {r.run_id: r.errors[0] for r in effects[2:]}
    assert set(renamed) == {"run-of-rag-b", "run-of-rag-c"} and all("rag-a" in e for e in renamed.values())


def test_a_withdrawn_winner_is_replaced_by_the_next_and_the_last_leaves_nothing():
    group = DedupGroup("sft", "k")
    for c in (candidate("sft-1", 1.0), candidate("sft-2", 2.0)):
        group, _ = upsert(group, c)
    group, effects = withdraw(group, "sft-1")
    assert effects == [Publish("sft-samples", "sft-1", None), Publish("sft-samples", "sft-2", effects[1].value)]
    group, effects = withdraw(group, "sft-2")
    assert effects == [Publish("sft-samples", "sft-2", None)] and group.live is None and not group.candidates
    assert withdraw(group, "sft-9") == (group, [])


def test_an_unchanged_candidate_sends_nothing_and_a_changed_winner_is_sent_again():
    group, _ = upsert(DedupGroup("rag", "k"), candidate("rag-a", 1.0))
    assert upsert(group, candidate("rag-a", 1.0))[1] == []
    assert [e.key for e in upsert(group, candidate("rag-a", 1.0, extra="new quality"))[1]] == ["rag-a"]


def test_messages_round_trip_through_the_group_table():
    message = loads(upsert_message("rag", "k", candidate("rag-a", 1.0)).value)
    group, _ = apply_message(None, message)
    assert group_key(message) == b"rag:k"
    assert DedupGroup.from_dict(loads(group.encode())) == group
    group, effects = apply_message(group, loads(withdraw_message("rag", "k", "rag-a").value))
    assert effects == [Publish("rag-samples", "rag-a", None)]


# ---------------------------------------------------------------- any arrival order == the batch rule

ids = st.sampled_from([f"rag-{c}" for c in "abcdef"])
events = st.lists(st.tuples(st.sampled_from(["upsert", "withdraw"]), ids, st.integers(0, 3)), max_size=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_the_topic_and_the_records_converge_to_the_batch_rule(history):
    group, topic, latest_record = DedupGroup("rag", "k"), {}, {}
    live_now: dict[str, float] = {}
    for op, sample_id, t in history:
        if op == "upsert":
            group, effects = upsert(group, candidate(sample_id, float(t)))
            live_now[sample_id] = float(t)
        else:
            group, effects = withdraw(group, sample_id)
            live_now.pop(sample_id, None)
        for effect in effects:
            if isinstance(effect, QuarantineRecord):
                latest_record[effect.run_id] = effect
            elif effect.value is None:
                assert topic.pop(effect.key, None) is not None, "a tombstone for a sample not on the topic"
            else:
                topic[effect.key] = effect.value
        # At every moment: one sample on the topic, the batch winner of the live candidates.
        winner = min(live_now.items(), key=lambda kv: (kv[1], kv[0]), default=(None, 0))[0]
        assert list(topic) == ([winner] if winner else [])
        for loser in set(live_now) - {winner}:
            assert winner in latest_record[f"run-of-{loser}"].errors[0]
