"""The index of scores waiting for evidence: the same answers as a scan of what waits."""

from hypothesis import given
from hypothesis import strategies as st

from streams.pending import PendingScores, Waiting


def test_earliest_moves_on_when_the_earliest_joins():
    index = PendingScores()
    index.add(Waiting("r2", 100.0, 10))
    index.add(Waiting("x1", 200.0, 20))
    assert (index.earliest_deadline(), index.earliest_published_ms()) == (100.0, 10)
    index.discard("r2")
    assert (index.earliest_deadline(), index.earliest_published_ms()) == (200.0, 20)
    index.discard("x1")
    assert (index.earliest_deadline(), index.earliest_published_ms(), len(index)) == (None, None, 0)


def test_pop_due_takes_only_passed_deadlines_earliest_first():
    index = PendingScores()
    for run_id, deadline in (("c", 30.0), ("a", 10.0), ("b", 20.0)):
        index.add(Waiting(run_id, deadline, 0))
    assert [w.run_id for w in index.pop_due(25.0)] == ["a", "b"]
    assert index.pop_due(30.0) == [] and "c" in index


def test_a_re_added_run_counts_with_its_latest_entry_only():
    index = PendingScores()
    index.add(Waiting("r", 10.0, 1))
    index.add(Waiting("r", 50.0, 5))  # re-scored while still waiting
    assert (index.earliest_deadline(), index.earliest_published_ms(), len(index)) == (50.0, 5, 1)


operations = st.lists(st.tuples(
    st.sampled_from(["add", "discard", "pop_due"]),
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.integers(0, 50),
), max_size=200)


@given(operations)
def test_matches_a_scan_of_what_waits(ops):
    index, model = PendingScores(), {}
    for op, run_id, value in ops:
        if op == "add":
            entry = Waiting(run_id, float(value), value * 3 % 17)
            index.add(entry)
            model[run_id] = entry
        elif op == "discard":
            index.discard(run_id)
            model.pop(run_id, None)
        else:
            due = sorted((e for e in model.values() if e.deadline < value), key=lambda e: (e.deadline, e.run_id))
            assert index.pop_due(float(value)) == due
            for entry in due:
                del model[entry.run_id]
        assert index.earliest_deadline() == min((e.deadline for e in model.values()), default=None)
        assert index.earliest_published_ms() == min((e.published_ms for e in model.values()), default=None)
        assert len(index) == len(model)
