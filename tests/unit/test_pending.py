"""The index of scores waiting for evidence: the same answers as a scan of what waits,
held in RocksDB rather than in the worker's memory."""

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.faust_app.pending import PendingScores, Waiting, open_index_db
from streams.faust_fixes.state_store import index_options


@pytest.fixture(scope="module")
def index_db(tmp_path_factory):
    db = open_index_db(tmp_path_factory.mktemp("pending") / "index", index_options(16))
    yield db
    db.close()


def test_earliest_moves_on_when_the_earliest_joins(index_db):
    index = PendingScores(index_db, 0)
    index.add(Waiting("r2", 100.0, 10))
    index.add(Waiting("x1", 200.0, 20))
    assert (index.earliest_deadline(), index.earliest_published_ms()) == (100.0, 10)
    index.discard("r2")
    assert (index.earliest_deadline(), index.earliest_published_ms()) == (200.0, 20)
    index.discard("x1")
    assert (index.earliest_deadline(), index.earliest_published_ms(), len(index)) == (None, None, 0)


def test_pop_due_takes_only_passed_deadlines_earliest_first(index_db):
    index = PendingScores(index_db, 0)
    for run_id, deadline in (("c", 30.0), ("a", 10.0), ("b", 20.0)):
        index.add(Waiting(run_id, deadline, 0))
    assert [w.run_id for w in index.pop_due(25.0)] == ["a", "b"]
    assert index.pop_due(30.0) == [] and "c" in index


def test_a_re_added_run_counts_with_its_latest_entry_only(index_db):
    index = PendingScores(index_db, 0)
    index.add(Waiting("r", 10.0, 1))
    index.add(Waiting("r", 50.0, 5))  # re-scored while still waiting
    assert (index.earliest_deadline(), index.earliest_published_ms(), len(index)) == (50.0, 5, 1)


def test_deadlines_sort_as_numbers_whatever_their_sign(index_db):
    index = PendingScores(index_db, 0)
    for n, deadline in enumerate((2.5, -1.0, 1e12, 0.0, -3e9, 1.0)):
        index.add(Waiting(f"r{n}", deadline, n))
    assert [w.deadline for w in index.pop_due(float("inf"))] == [-3e9, -1.0, 0.0, 1.0, 2.5, 1e12]


def test_partitions_are_apart_and_a_new_view_starts_empty(index_db):
    mine, other = PendingScores(index_db, 1), PendingScores(index_db, 2)
    mine.add(Waiting("a", 10.0, 1))
    other.add(Waiting("b", 5.0, 0))
    assert (mine.earliest_deadline(), other.earliest_deadline()) == (10.0, 5.0)
    again = PendingScores(index_db, 1)  # after a rebalance: rebuilt from the table, not from here
    assert (len(again), again.get("a"), again.earliest_deadline()) == (0, None, None)
    assert other.get("b") == Waiting("b", 5.0, 0)


def test_waiting_scores_take_no_python_memory(index_db):
    """A replay has half of all runs waiting at once: they must not be held in the heap."""
    index = PendingScores(index_db, 4)
    for n in range(1000):  # what is allocated once (iterators, option objects) is allocated here
        index.add(Waiting(f"warm-{n}", float(n), n))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in range(50_000):
            index.add(Waiting(f"run-{n:06d}", 1000.0 + n, 1000 + n))
            index.earliest_deadline()
        grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert len(index) == 51_000
    assert grown < 256 * 1024  # the heaps this replaced: 17.7 MiB for 50,000 waiting scores


def test_pop_due_up_to_a_publish_time_leaves_scores_whose_evidence_may_still_come(index_db):
    index = PendingScores(index_db, 0)
    for n in range(100):  # a backlog: all due by stream time, evidence read up to 1040 ms
        index.add(Waiting(f"r{n:03d}", 500.0 - n, 1000 + n))
    due = index.pop_due(600.0, published_up_to=1040)
    assert [w.run_id for w in due] == [f"r{n:03d}" for n in range(40, -1, -1)]  # earliest deadline first
    assert len(index) == 59 and index.earliest_published_ms() == 1041


operations = st.lists(st.tuples(
    st.sampled_from(["add", "discard", "pop_due"]),
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.integers(0, 50),
    st.one_of(st.just(float("inf")), st.integers(0, 17)),
), max_size=200)


@given(ops=operations)
def test_matches_a_scan_of_what_waits(index_db, ops):
    index, model = PendingScores(index_db, 5), {}
    for op, run_id, value, published_up_to in ops:
        if op == "add":
            entry = Waiting(run_id, float(value), value * 3 % 17)
            index.add(entry)
            model[run_id] = entry
        elif op == "discard":
            index.discard(run_id)
            model.pop(run_id, None)
        else:
            due = sorted((e for e in model.values() if e.deadline < value and e.published_ms <= published_up_to),
                         key=lambda e: (e.deadline, e.run_id))
            assert index.pop_due(float(value), published_up_to) == due
            for entry in due:
                del model[entry.run_id]
        assert index.earliest_deadline() == min((e.deadline for e in model.values()), default=None)
        assert index.earliest_published_ms() == min((e.published_ms for e in model.values()), default=None)
        assert len(index) == len(model)
