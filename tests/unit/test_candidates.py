"""Candidate batches: grouping, order, size limits, and the partition of a task."""

import orjson
from aiokafka.partitioner import DefaultPartitioner

from streams.faust_app.candidates import BATCH_BYTES, SOURCE_BYTES, CandidateBatches, read_batch

TASKS = ["task-1", "scrum_review:src/auth/token.rs", "ü", "", "a" * 64]


def candidate(run_id: str, text: str = "t") -> bytes:
    return orjson.dumps({"run_id": run_id, "run": {"text": text}, "score_source": None})


def keyed_to(partition: int, partitions: int = 2) -> str:
    """A key the default partitioner sends to ``partition``."""
    partitioner = DefaultPartitioner()
    return next(k for k in (f"task-{n}" for n in range(100)) if partitioner(k.encode(), list(range(partitions)), []) == partition)


def test_candidates_are_grouped_by_source_and_target_partition_in_the_order_decided():
    batches = CandidateBatches(2)
    for source, target, mark, run_id in [(0, 1, 5.0, "a"), (1, 1, None, "b"), (0, 1, 6.0, "c"), (0, 0, 7.0, "d")]:
        assert batches.add(source, keyed_to(target), mark, candidate(run_id)) == []
    taken = batches.take()
    assert [(s, t) for s, t, _ in taken] == [(0, 0), (0, 1), (1, 1)]
    assert [(m, c["run_id"]) for m, c in read_batch(taken[1][2])] == [(5.0, "a"), (6.0, "c")]
    assert read_batch(taken[2][2]) == [(None, orjson.loads(candidate("b")))]
    assert batches.take() == []


def test_a_target_past_the_message_limit_gets_several_messages_in_order():
    batches, big = CandidateBatches(2), "x" * (BATCH_BYTES // 3)
    for n, run_id in enumerate("abcde"):
        assert batches.add(0, keyed_to(0), float(n), candidate(run_id, big)) == []
    taken = batches.take()
    assert [(s, t) for s, t, _ in taken] == [(0, 0), (0, 0), (0, 0)]
    assert [[c["run_id"] for _, c in read_batch(value)] for _, _, value in taken] == [["a", "b"], ["c", "d"], ["e"]]
    assert all(len(value) <= BATCH_BYTES for _, _, value in taken)


def test_a_source_past_its_limit_is_handed_back_before_the_candidate_that_overflows_it():
    batches, big = CandidateBatches(2), "x" * (SOURCE_BYTES // 3)
    assert batches.add(0, keyed_to(1), 1.0, candidate("a", big)) == []
    assert batches.add(0, keyed_to(0), 2.0, candidate("b", big)) == []
    assert batches.add(1, keyed_to(0), 2.5, candidate("other source", big)) == []
    full = batches.add(0, keyed_to(1), 3.0, candidate("c", big))
    assert [(t, [c["run_id"] for _, c in read_batch(v)]) for t, v in full] == [(0, ["b"]), (1, ["a"])]
    assert [(s, t, [c["run_id"] for _, c in read_batch(v)]) for s, t, v in batches.take()] == [
        (0, 1, ["c"]), (1, 0, ["other source"])]


def test_a_task_goes_to_the_partition_its_task_id_key_went_to():
    partitioner = DefaultPartitioner()
    for partitions in (1, 2, 3, 12):
        batches = CandidateBatches(partitions)
        for task_id in TASKS:
            batches.add(0, task_id, None, candidate(task_id))
        placed = {c["run_id"]: target for _, target, value in batches.take() for _, c in read_batch(value)}
        assert placed == {t: partitioner(t.encode(), list(range(partitions)), []) for t in TASKS}
