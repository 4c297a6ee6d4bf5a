"""The preference pairing rules (SPEC 5 and 6), without Faust.

Expected ids and hashes are computed here with hashlib, and the property test compares the
streaming window buffer with a plain batch computation written from the SPEC's wording.
"""

import hashlib
import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import EvidenceRecord, PreferenceSample, Provenance, ScoredRun
from streams.rules.pairing import (
    PairRejection,
    PairRun,
    PairWindow,
    admit,
    build_pair,
    change_closed,
    close,
    is_window_due,
    pair_run_from,
    plan_window,
    window_closes_at,
    window_start,
    withdraw,
)

DAY = 86400.0
BASE = 1_767_225_600  # 2026-01-01T00:00:00Z, a multiple of a day


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def iso(epoch: float, suffix: str = "Z") -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + suffix


def prov(run_id: str) -> Provenance:
    return Provenance(
        source_file=f"data/scored-runs/{run_id}.jsonl",
        line_offset=len(run_id),
        sig_hash=f"sig-{run_id}",
        recorded_at="2026-01-02T03:04:05Z",
    )


def mk(run_id, category, t=0, *, task="t1", text=None, file=None, reason=None, scored_at=None):
    return PairRun(
        run_id=run_id, task_id=task, category=category,
        scored_at=scored_at or iso(BASE + t), scored_at_epoch=float(BASE + t),
        text=f"text of {run_id}" if text is None else text,
        first_file=file, first_reason=reason, provenance=prov(run_id),
    )


def pairs_of(outcomes):
    return [(o.chosen_run_id, o.rejected_run_id) for o in outcomes]


# ---------------------------------------------------------------- build_pair (SPEC 5)


def test_sample_fields_exactly_as_spec():
    chosen = mk("run-a", "accepted", 10, file="src/app.py", reason="clean diff")
    rejected = mk("run-b", "rejected", 20, reason="broke the build")
    sample = build_pair(chosen, rejected)
    assert isinstance(sample, PreferenceSample)
    assert sample.model_dump(mode="json") == {
        "schema_version": 1,
        "id": "pref-" + sha("run-a|run-b|t1")[:16],
        "prompt": "Task: t1 · file=src/app.py",
        "chosen": "text of run-a",
        "rejected": "text of run-b",
        "reason": "chosen scored 'accepted' | rejected scored 'rejected'"
        " | chosen-rationale: clean diff | rejected-rationale: broke the build",
        "chosen_run_id": "run-a",
        "rejected_run_id": "run-b",
        "created_at": iso(BASE + 20),
        "provenance": {
            "source_file": "data/scored-runs/run-a.jsonl",
            "line_offset": 5,
            "sig_hash": sha("run-a|run-b"),
            "recorded_at": "2026-01-02T03:04:05Z",
        },
    }


def test_prompt_without_file_and_reason_without_rationales():
    sample = build_pair(mk("a", "accepted"), mk("b", "partially_accepted", file="x.py"))
    assert sample.prompt == "Task: t1"  # only the chosen run's file counts
    assert sample.reason == "chosen scored 'accepted' | rejected scored 'partially_accepted'"


def test_rationale_cut_at_80_characters_and_empty_first_reason_kept():
    long = "é" * 79 + "😀" + "tail"  # 80 code points before "tail"
    sample = build_pair(mk("a", "accepted", reason=long), mk("b", "rejected", reason=""))
    assert sample.reason.endswith(f" | chosen-rationale: {'é' * 79}😀 | rejected-rationale: ")


def test_sig_hash_is_order_free_and_id_is_not():
    ab = build_pair(mk("b2", "accepted"), mk("a1", "rejected"))
    assert ab.provenance.sig_hash == sha("a1|b2")
    assert ab.id == "pref-" + sha("b2|a1|t1")[:16]


@pytest.mark.parametrize(
    ("chosen_t", "rejected_t", "chosen_suffix", "expected"),
    [
        (30, 20, "Z", iso(BASE + 30)),  # chosen later
        (20, 30, "Z", iso(BASE + 30)),  # rejected later
        (20, 20, "+00:00", iso(BASE + 20, "+00:00")),  # same instant: the chosen score's string
    ],
)
def test_created_at_is_the_later_score_as_written(chosen_t, rejected_t, chosen_suffix, expected):
    chosen = mk("a", "accepted", chosen_t, scored_at=iso(BASE + chosen_t, chosen_suffix))
    assert build_pair(chosen, mk("b", "rejected", rejected_t)).created_at == expected


def test_unknown_provenance_fields_never_reach_the_sample():
    chosen = mk("a", "accepted")
    extra = Provenance.model_validate({**prov("a").model_dump(), "x": 1})
    chosen = PairRun(**{**chosen.__dict__, "provenance": extra})
    assert "x" not in build_pair(chosen, mk("b", "rejected")).provenance.model_dump()


def test_self_pairing():
    run = mk("a", "accepted")
    out = build_pair(run, run)
    assert isinstance(out, PairRejection)
    assert (out.reason, out.pair_id, out.task_id) == ("self_pairing", "pref-" + sha("a|a|t1")[:16], "t1")
    assert out.errors


@pytest.mark.parametrize(
    ("chosen", "rejected"),
    [
        (mk("a", "accepted", text="same"), mk("b", "rejected", text="same")),
        (mk("a", "accepted", text=""), mk("b", "rejected")),
        (mk("a", "accepted"), mk("b", "rejected", text="")),
        (mk("a", "accepted"), mk("b", "rejected", task="t2")),
    ],
    ids=["identical", "empty-chosen", "empty-rejected", "task-mismatch"],
)
def test_invalid_preference_pairing(chosen, rejected):
    out = build_pair(chosen, rejected)
    assert isinstance(out, PairRejection)
    assert out.reason == "invalid_preference_pairing"
    assert (out.chosen_run_id, out.rejected_run_id) == (chosen.run_id, rejected.run_id)
    assert out.pair_id == "pref-" + sha(f"{chosen.run_id}|{rejected.run_id}|t1")[:16]


def test_schema_violation_is_a_rejection_not_an_exception():
    out = build_pair(mk("a", "accepted"), mk("", "rejected"))
    assert isinstance(out, PairRejection)
    assert out.reason == "schema_violation"
    assert any("rejected_run_id" in e for e in out.errors)


# ---------------------------------------------------------------- plan_window (SPEC 6)


def test_cap_at_max_pairs_accepted_outer_rejected_inner():
    runs = [mk(f"a{i}", "accepted", i) for i in range(3)] + [mk(f"r{i}", "rejected", i) for i in range(3)]
    outcomes, insufficient = plan_window(runs, 5)
    assert pairs_of(outcomes) == [("a0", "r0"), ("a0", "r1"), ("a0", "r2"), ("a1", "r0"), ("a1", "r1")]
    assert not insufficient


def test_cap_counts_candidates_before_validation():
    runs = [mk("a0", "accepted", 0, text="x"), mk("r0", "rejected", 1, text="x"), mk("r1", "rejected", 2)]
    outcomes, _ = plan_window(runs, 1)
    assert len(outcomes) == 1 and isinstance(outcomes[0], PairRejection)


def test_ordering_by_scored_at_then_run_id():
    runs = [mk("a-late", "accepted", 9), mk("a-z", "accepted", 1), mk("a-b", "accepted", 1),
            mk("r-2", "rejected", 5), mk("r-1", "rejected", 7)]
    random.Random(4).shuffle(runs)
    outcomes, _ = plan_window(runs, 10)
    assert pairs_of(outcomes) == [(a, r) for a in ("a-b", "a-z", "a-late") for r in ("r-2", "r-1")]


def test_ordering_uses_the_instant_not_the_string():
    early = mk("a-2", "accepted", 0, scored_at=iso(BASE + 3600, "+01:00"))  # BASE, written in +01:00
    outcomes, _ = plan_window([mk("a-1", "accepted", 1), early, mk("r", "rejected", 2)], 10)
    assert pairs_of(outcomes) == [("a-2", "r"), ("a-1", "r")]


def test_partial_fallback_only_without_accepted_x_rejected_candidates():
    runs = [mk("a", "accepted"), mk("p", "partially_accepted"), mk("r", "rejected")]
    assert pairs_of(plan_window(runs, 5)[0]) == [("a", "r")]
    assert pairs_of(plan_window(runs[:2], 5)[0]) == [("a", "p")]
    # a refused accepted x rejected candidate still counts: no fallback to partial
    runs = [mk("a", "accepted", text="x"), mk("p", "partially_accepted"), mk("r", "rejected", text="x")]
    outcomes, insufficient = plan_window(runs, 5)
    assert pairs_of(outcomes) == [("a", "r")] and outcomes[0].reason == "invalid_preference_pairing"
    assert not insufficient


def test_partial_fallback_respects_the_cap():
    runs = [mk(f"a{i}", "accepted", i) for i in range(3)]
    runs += [mk(f"p{i}", "partially_accepted", i) for i in range(3)]
    assert len(plan_window(runs, 4)[0]) == 4


def test_needs_human_review_never_paired():
    assert plan_window([mk("a", "accepted"), mk("h", "needs_human_review")], 5) == ([], True)
    outcomes, _ = plan_window([mk("h", "needs_human_review"), mk("a", "accepted"), mk("r", "rejected")], 5)
    assert pairs_of(outcomes) == [("a", "r")]


@pytest.mark.parametrize(
    ("categories", "insufficient"),
    [
        ([], True),
        (["accepted"], True),
        (["accepted", "accepted"], True),
        (["rejected", "partially_accepted"], True),
        (["accepted", "rejected"], False),
        (["accepted", "partially_accepted"], False),
    ],
)
def test_insufficient_flag(categories, insufficient):
    runs = [mk(f"x{i}", c, i) for i, c in enumerate(categories)]
    assert plan_window(runs, 5)[1] is insufficient


# ---------------------------------------------------------------- windows


def test_window_alignment_and_closing():
    assert window_start(BASE, DAY) == BASE
    assert window_start(BASE + DAY - 0.001, DAY) == BASE
    assert window_start(BASE + DAY, DAY) == BASE + DAY
    assert window_start(BASE + 7, 10.0) == BASE
    assert window_closes_at(BASE, DAY, 600) == BASE + DAY + 600
    assert not is_window_due(BASE, DAY, 600, BASE + DAY + 600)
    assert is_window_due(BASE, DAY, 600, BASE + DAY + 600.001)


def test_pair_run_from_joined_records():
    p = {"source_file": "f", "line_offset": 3, "sig_hash": "s", "recorded_at": "2026-01-01T00:00:00Z", "x": 1}
    ev = EvidenceRecord.model_validate({"schema_version": 1, "run_id": "r", "task_id": "t", "source_category": "c",
                                        "text": "  hello \n", "source_files": ["", "b"], "provenance": p})
    sc = ScoredRun.model_validate({"schema_version": 1, "evidence_run_id": "r", "evidence_task_id": "t",
                                   "category": "accepted", "reasons": ["ok", "more"], "provenance": p,
                                   "scored_at": "2026-01-01T01:00:00+01:00"})
    run = pair_run_from(ev, sc)
    assert (run.text, run.first_file, run.first_reason, run.scored_at, run.scored_at_epoch) == (
        "hello", None, "ok", "2026-01-01T01:00:00+01:00", float(BASE))
    assert "x" not in run.provenance.model_dump()
    assert pair_run_from(ev.model_copy(update={"text": " \t"}), sc) is None
    assert pair_run_from(ev.model_copy(update={"provenance": None}), sc) is None
    assert pair_run_from(ev, sc.model_copy(update={"provenance": Provenance(source_file="f")})) is None


def test_window_round_trips_through_json():
    w = admit(admit(PairWindow("t1", BASE), mk("a", "accepted", reason="r", file="f")), mk("b", "rejected"))
    w = admit(admit(w, mk("c", "rejected", text="text of a")), excluded(mk("d", "rejected")))
    w, _ = close(w, 5, lambda sample: "key-" + sample.id)
    assert w.recorded and w.emitted  # a refused pair and an excluded run recorded, a pair emitted
    assert PairWindow.from_dict(json.loads(json.dumps(w.to_dict()))) == w


def test_a_window_row_of_the_version_before_replanning_reads_as_sent_straight_to_the_topic():
    row = {"task_id": "t1", "start": BASE, "runs": {}, "closed": True,
           "emitted": {"pref-1": ["a", "b", "rejected"]}}
    w = PairWindow.from_dict(row)
    assert w.emitted == {"pref-1": ("a", "b", "", None)} and w.recorded == frozenset()


def test_a_run_read_back_writes_the_bytes_it_was_read_from():
    """A window row keeps each run's dict as read, not dumped again: the same bytes either way."""
    run = mk("a", "accepted", reason="r", file="f")
    again = PairRun.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again == run and json.dumps(again.to_dict()) == json.dumps(run.to_dict())


def test_admit_replaces_a_rescored_run_and_withdraw_removes_it():
    w = admit(admit(PairWindow("t1", BASE), mk("a", "accepted")), mk("b", "accepted"))
    w = admit(w, mk("b", "rejected", 5))
    assert pairs_of(close(w, 5)[1].emit) == [("a", "b")]
    changes = close(withdraw(w, "b"), 5)[1]
    assert (changes.emit, changes.insufficient) == ([], True)


def test_a_run_of_another_task_is_refused_at_pairing_not_at_admission():
    w = admit(admit(PairWindow("t1", BASE), mk("a", "accepted")), mk("r", "rejected", task="t2"))
    (out,) = close(w, 5)[1].refused
    assert (out.reason, out.chosen_run_id, out.rejected_run_id) == ("invalid_preference_pairing", "a", "r")


def test_closed_windows_refuse_admit_and_close():
    closed, _ = close(PairWindow("t1", BASE), 5)
    with pytest.raises(ValueError):
        admit(closed, mk("a", "accepted"))
    with pytest.raises(ValueError):
        close(closed, 5)


def test_close_records_what_it_sent_and_refuses_once():
    w = PairWindow("t1", BASE)
    for run in (mk("a", "accepted"), mk("r1", "rejected", 1), mk("r2", "rejected", 2, text="text of a")):
        w = admit(w, run)
    w, changes = close(w, 5)
    assert pairs_of(changes.emit) == [("a", "r1")]
    assert [(o.reason, o.rejected_run_id) for o in changes.refused] == [("invalid_preference_pairing", "r2")]
    assert w.closed and set(w.emitted) == {pid("a", "r1")} and not changes.insufficient
    assert w.emitted[pid("a", "r1")][3] is None  # dedup off: sent straight to the topic
    assert w.recorded == {f"invalid_preference_pairing|{pid('a', 'r2')}"}


# ---------------------------------------------------------------- a closed window planned again


def excluded(run, reason="benchmark_contamination"):
    return PairRun(**{**run.__dict__, "exclusion": {"reason": reason, "errors": [f"{reason} of {run.run_id}"]}})


def closed_window():
    w = PairWindow("t1", BASE)
    for run in (mk("a1", "accepted"), mk("a2", "accepted", 1), mk("r", "rejected", 2)):
        w = admit(w, run)
    w = admit(w, mk("h", "needs_human_review", 3))
    return close(w, 5)[0]


def pid(c, r):
    return "pref-" + sha(f"{c}|{r}|t1")[:16]


@pytest.mark.parametrize(
    ("run_id", "new_category", "retracted", "sent"),
    [
        ("r", "accepted", {("a1", "r"), ("a2", "r")}, set()),  # nothing to pair any more
        ("r", "partially_accepted", set(), {("a1", "r"), ("a2", "r")}),  # accepted x partial now: same ids, new content
        ("a1", "partially_accepted", {("a1", "r")}, set()),
        ("a2", "needs_human_review", {("a2", "r")}, set()),
        ("a1", "rejected", {("a1", "r")}, {("a2", "a1")}),  # the plan gets a pair it never had
        ("r", "rejected", set(), {("a1", "r"), ("a2", "r")}),  # same pairs, new reason and created_at
        ("h", "accepted", set(), {("h", "r")}),
    ],
)
def test_a_closed_window_is_planned_again_when_a_run_changes(run_id, new_category, retracted, sent):
    w = closed_window()
    assert set(w.emitted) == {pid("a1", "r"), pid("a2", "r")}
    w2, changes = change_closed(w, mk(run_id, new_category, 30, reason="new"), run_id, 5)
    assert {(g.chosen_run_id, g.rejected_run_id) for g in changes.retract} == retracted
    assert set(pairs_of(changes.emit)) == sent
    for g in changes.retract:
        assert g.pair_id == pid(g.chosen_run_id, g.rejected_run_id) and g.errors and g.task_id == "t1"
        assert run_id in g.errors[0]
    plan, _ = plan_window(w2.runs.values(), 5)
    assert set(w2.emitted) == {o.id for o in plan if isinstance(o, PreferenceSample)}
    assert w2.runs[run_id].category == new_category


def test_a_partial_pair_rescored_to_rejected_is_replaced_by_the_rejected_pair():
    w = PairWindow("t1", BASE)
    for run in (mk("a", "accepted"), mk("p", "partially_accepted", 1)):
        w = admit(w, run)
    w = close(w, 5)[0]
    assert set(w.emitted) == {pid("a", "p")}
    w, changes = change_closed(w, mk("p", "rejected", 1), "p", 5)
    # Same pair id (same runs), new content (its reason names the new category): sent again.
    assert not changes.retract and pairs_of(changes.emit) == [("a", "p")]
    assert "rejected scored 'rejected'" in changes.emit[0].reason


def test_losing_eligibility_retracts_all_its_pairs():
    w, changes = change_closed(closed_window(), None, "r", 5)
    assert {g.pair_id for g in changes.retract} == {pid("a1", "r"), pid("a2", "r")}
    assert "r" not in w.runs and w.emitted == {} and changes.insufficient
    assert change_closed(w, None, "r", 5)[1].retract == []  # unknown run: nothing to do


def test_an_excluded_run_leaves_the_plan_and_is_recorded_once_and_comes_back_when_clean():
    w, changes = change_closed(closed_window(), excluded(mk("r", "rejected", 2)), "r", 5)
    assert {g.pair_id for g in changes.retract} == {pid("a1", "r"), pid("a2", "r")}
    assert [run.run_id for run in changes.excluded] == ["r"] and "excluded" in changes.retract[0].errors[0]
    w, changes = change_closed(w, excluded(mk("r", "rejected", 2)), "r", 5)
    assert (changes.retract, changes.emit, changes.excluded) == ([], [], [])  # nothing new
    w, changes = change_closed(w, mk("r", "rejected", 2), "r", 5)  # the evaluation set was removed
    assert set(pairs_of(changes.emit)) == {("a1", "r"), ("a2", "r")} and not changes.excluded


def test_excluded_runs_at_close_get_their_record_and_no_pair():
    w = PairWindow("t1", BASE)
    for run in (mk("a", "accepted"), excluded(mk("r", "rejected", 1), "secret_in_content"), mk("r2", "rejected", 2)):
        w = admit(w, run)
    w, changes = close(w, 5)
    assert pairs_of(changes.emit) == [("a", "r2")]
    assert [(run.run_id, run.exclusion["reason"]) for run in changes.excluded] == [("r", "secret_in_content")]


def test_pairs_sent_through_dedup_are_retracted_through_dedup():
    w = admit(admit(PairWindow("t1", BASE), mk("a", "accepted")), mk("r", "rejected", 1))
    w, _ = close(w, 5, lambda sample: "key-" + sample.id)
    assert w.emitted[pid("a", "r")][3] == "key-" + pid("a", "r")
    _, changes = change_closed(w, None, "r", 5, lambda sample: "key-" + sample.id)
    assert [g.content_key for g in changes.retract] == ["key-" + pid("a", "r")]


def test_change_closed_refuses_open_windows():
    with pytest.raises(ValueError):
        change_closed(PairWindow("t1", BASE), None, "r", 5)


# ---------------------------------------------------------------- property: stream == batch

CATEGORIES = ["accepted", "partially_accepted", "rejected", "needs_human_review"]


@st.composite
def scenarios(draw):
    """Final runs of random tasks in one window, with drafts and withdrawals, as per-run event lists."""
    ids = draw(st.lists(st.sampled_from([f"run-{i:02d}" for i in range(40)]), unique=True, max_size=14))
    events, finals = [], {}
    for run_id in ids:
        def one(category=None):
            t = draw(st.integers(0, 4))  # few distinct instants: ties on scored_at are common
            return PairRun(
                run_id=run_id, task_id=task, category=category or draw(st.sampled_from(CATEGORIES)),
                scored_at=iso(BASE + t, draw(st.sampled_from(["Z", "+00:00"]))), scored_at_epoch=float(BASE + t),
                text=draw(st.sampled_from(["alpha", "beta", "gamma", "delta"])),
                first_file=draw(st.one_of(st.none(), st.sampled_from(["src/a.py", "docs/b.md"]))),
                first_reason=draw(st.one_of(st.none(), st.sampled_from(["", "ok", "r" * 100, "é😀" * 50]))),
                provenance=prov(run_id),
            )
        task = draw(st.sampled_from(["t1", "t2", "t3"]))
        history = [("admit", task, one()) for _ in range(draw(st.integers(0, 2)))]  # earlier scores
        if draw(st.integers(0, 5)) == 0:
            history.append(("withdraw", task, run_id))  # lost eligibility while the window is open
        else:
            final = one()
            history.append(("admit", task, final))
            finals[run_id] = final
        events.append(history)
    return events, finals


def batch_reference(runs, max_pairs):
    """SPEC 6, read literally, over the final runs, task by task."""
    def instant(run):
        return datetime.fromisoformat(run.scored_at).timestamp()

    result = {}
    for task in sorted({r.task_id for r in runs}):
        ordered = sorted((r for r in runs if r.task_id == task), key=lambda r: (instant(r), r.run_id))
        accepted = [r for r in ordered if r.category == "accepted"]
        pairs = [(a, b) for a in accepted for b in ordered if b.category == "rejected"][:max_pairs]
        if not pairs:
            partial = [b for b in ordered if b.category == "partially_accepted"]
            pairs = [(a, b) for a in accepted for b in partial][:max_pairs]
        samples, refused = [], []
        for a, b in pairs:
            pair_id = "pref-" + sha(f"{a.run_id}|{b.run_id}|{task}")[:16]
            if not a.text or not b.text or a.text == b.text:
                refused.append(pair_id)
                continue
            reason = [f"chosen scored '{a.category}'", f"rejected scored '{b.category}'"]
            reason += [f"chosen-rationale: {a.first_reason[:80]}"] if a.first_reason is not None else []
            reason += [f"rejected-rationale: {b.first_reason[:80]}"] if b.first_reason is not None else []
            samples.append({
                "schema_version": 1, "id": pair_id,
                "prompt": f"Task: {task}" + (f" · file={a.first_file}" if a.first_file else ""),
                "chosen": a.text, "rejected": b.text, "reason": " | ".join(reason),
                "chosen_run_id": a.run_id, "rejected_run_id": b.run_id,
                "created_at": b.scored_at if instant(b) > instant(a) else a.scored_at,
                "provenance": {"source_file": a.provenance.source_file, "line_offset": a.provenance.line_offset,
                               "sig_hash": sha("|".join(sorted([a.run_id, b.run_id]))),
                               "recorded_at": a.provenance.recorded_at},
            })
        result[task] = (samples, refused, len(ordered) < 2 or not pairs)
    return result


@settings(max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(1, 6), st.integers(1, 4), st.randoms(use_true_random=False))
def test_stream_equals_batch(scenario, max_pairs, n_partitions, rnd):
    events, finals = scenario
    # A random interleaving that keeps each run's own events in order (Kafka orders per key).
    slots = [i for i, history in enumerate(events) for _ in history]
    rnd.shuffle(slots)
    cursors = [iter(h) for h in events]
    stream = [next(cursors[i]) for i in slots]

    stores = [{} for _ in range(n_partitions)]  # per partition: window key -> JSON, as a state table would
    part_of = {task: rnd.randrange(n_partitions) for task in ("t1", "t2", "t3")}
    for kind, task, payload in stream:
        store = stores[part_of[task]]
        key = f"{task}@{window_start(BASE, DAY)}"
        if key in store:
            w = PairWindow.from_dict(json.loads(store[key]))
        else:
            w = PairWindow(task, window_start(BASE, DAY))
        w = admit(w, payload) if kind == "admit" else withdraw(w, payload)
        store[key] = json.dumps(w.to_dict())

    got = {}
    keys = [(p, k) for p, store in enumerate(stores) for k in store]
    rnd.shuffle(keys)
    for p, key in keys:
        w, changes = close(PairWindow.from_dict(json.loads(stores[p][key])), max_pairs)
        assert set(w.emitted) == {o.id for o in changes.emit}
        got[w.task_id] = (changes, changes.insufficient)

    expected = batch_reference(list(finals.values()), max_pairs)
    for task, (changes, insufficient) in got.items():
        samples, refused = changes.emit, changes.refused
        outcomes = samples + refused
        exp_samples, exp_refused, exp_insufficient = expected.get(task, ([], [], True))
        assert [s.model_dump(mode="json") for s in samples] == exp_samples
        assert [(r.pair_id, r.reason) for r in refused] == [
            (i, "invalid_preference_pairing") for i in exp_refused
        ]
        assert insufficient == exp_insufficient
        # properties that hold whatever the reference says
        assert len(outcomes) <= max_pairs
        for s in samples:
            assert s.chosen_run_id != s.rejected_run_id
            assert finals[s.chosen_run_id].category == "accepted"
            assert finals[s.rejected_run_id].category in ("rejected", "partially_accepted")
            sides = (finals[s.chosen_run_id].category, finals[s.rejected_run_id].category)
            assert "needs_human_review" not in sides
    assert set(expected) <= set(got)
